//! CustomResourceDefinitions with stock kubectl: a CRD and its resource in
//! one file, printer columns, explain, CEL rules, pruning warnings, scale,
//! categories, and deleting the CRD.

use rkube_e2e::{Cluster, eventually, fails, ok};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");
const CRONTAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/tests/manifests/crontab.yaml");

#[test]
fn crd_and_custom_resources_with_kubectl() {
    let c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    // As upstream: kubectl maps every object before applying, so the resource of a CRD
    // created in the same run is refused once ("ensure CRDs are installed first")...
    let first = c.kubectl(&["apply", "-f", CRONTAB]);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"), "{out}");
    // ...and the second run applies it, the CRD being Established by then.
    ok(c.kubectl(&["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"]));
    let out = ok(c.kubectl(&["apply", "-f", CRONTAB]));
    assert!(out.contains("crontab.stable.example.com/my-cron created"), "{out}");

    // printer columns (and the default from the schema: replicas 1)
    let table = ok(c.kubectl(&["get", "crontabs"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(table.contains("my-cron") && table.contains("* * * * */5") && table.contains(" 1 "), "{table}");
    // short name and category
    assert!(ok(c.kubectl(&["get", "ct", "-o", "name"])).contains("crontab.stable.example.com/my-cron"));
    assert!(ok(c.kubectl(&["get", "all"])).contains("crontab.stable.example.com/my-cron"));
    let ar = ok(c.kubectl(&["api-resources", "--api-group=stable.example.com"]));
    assert!(ar.contains("crontabs") && ar.contains("ct") && ar.contains("CronTab"), "{ar}");

    // explain shows the schema's documentation
    let ex = ok(c.kubectl(&["explain", "crontab.spec.cronSpec"]));
    assert!(ex.contains("When the job runs."), "{ex}");

    // CEL rule
    let bad = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\nspec:\n  replicas: 50\n";
    let err = fails(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(bad)));
    assert!(err.contains("replicas must be at most 10"), "{err}");
    // unknown fields: refused with strict validation, pruned with a warning otherwise
    let extra = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: extra\nspec:\n  cronSpec: x\n  bogus: true\n";
    let err = fails(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(extra)));
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    let out = c.kubectl_with("kubectl", &["create", "--validate=warn", "-f", "-"], Some(extra));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Warning: unknown field \"spec.bogus\""));
    assert_eq!(ok(c.kubectl(&["get", "ct", "extra", "-o", "jsonpath={.spec}"])), r#"{"cronSpec":"x","replicas":1}"#);

    // scale subresource
    ok(c.kubectl(&["scale", "ct", "my-cron", "--replicas=3"]));
    assert_eq!(ok(c.kubectl(&["get", "ct", "my-cron", "-o", "jsonpath={.spec.replicas}"])), "3");

    // deleting the CRD deletes its resources, then the API goes away
    ok(c.kubectl(&["delete", "crd", "crontabs.stable.example.com", "--timeout=30s"]));
    let gone = eventually(Duration::from_secs(10), || {
        let out = c.kubectl(&["get", "crontabs"]);
        (!out.status.success()).then_some(())
    });
    assert!(gone.is_some(), "crontabs still served after the CRD was deleted");
}

/// rkube's own CRDs: a NodePool scales simulated nodes, a PodBehavior steers pods.
#[test]
fn nodepool_and_podbehavior() {
    let c = Cluster::start(BIN, &[]).unwrap();
    ok(c.kubectl(&["wait", "--for=condition=Established", "crd/nodepools.sim.rkube.io", "--timeout=10s"]));
    let pool = "apiVersion: sim.rkube.io/v1alpha1\nkind: NodePool\nmetadata:\n  name: edge\nspec:\n  replicas: 2\n  capacity: {cpu: \"2\", memory: 4Gi}\n  labels: {tier: edge}\n";
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(pool)));
    let ready = |n: usize| {
        let want = vec!["True"; n].join(" ");
        eventually(Duration::from_secs(30), || {
            let out = c.kubectl(&[
                "get",
                "nodes",
                "-l",
                "tier=edge",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (String::from_utf8_lossy(&out.stdout).trim() == want).then_some(())
        })
    };
    assert!(ready(2).is_some(), "two edge nodes Ready");
    ok(c.kubectl(&["scale", "nodepool", "edge", "--replicas=4"]));
    assert!(ready(4).is_some(), "scaled up to four");
    ok(c.kubectl(&["scale", "nodepool", "edge", "--replicas=1"]));
    assert!(ready(1).is_some(), "scaled down to one");
    let table = ok(c.kubectl(&["get", "nodepool", "edge"]));
    assert!(table.contains("edge"), "{table}");

    // a PodBehavior makes matching pods exit 1 after 2 s
    let behavior = "apiVersion: sim.rkube.io/v1alpha1\nkind: PodBehavior\nmetadata:\n  name: crash\nspec:\n  selector: {matchLabels: {app: crash}}\n  exitAfter: 2s\n  exitCode: 1\n";
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(behavior)));
    std::thread::sleep(Duration::from_millis(500));
    ok(c.kubectl(&["run", "crash", "--image=busybox", "--restart=Never", "--labels=app=crash"]));
    let failed = eventually(Duration::from_secs(30), || {
        let out = c.kubectl(&[
            "get",
            "pod",
            "crash",
            "-o",
            "jsonpath={.status.phase}/{.status.containerStatuses[0].state.terminated.exitCode}",
        ]);
        (String::from_utf8_lossy(&out.stdout).trim() == "Failed/1").then_some(())
    });
    assert!(failed.is_some(), "the pod exited 1 and failed");
}
