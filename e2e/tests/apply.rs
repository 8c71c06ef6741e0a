//! Careful changes with stock kubectl: server-side apply and its conflicts,
//! client-side to server-side migration, diff, server dry-run, prune, and
//! field validation with its warnings.

use rkube_e2e::{Cluster, fails, ok};

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

fn deploy(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels: {{app: api, suite: apply}}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    metadata:\n      labels: {{app: api}}\n    spec:\n      containers:\n      - name: api\n        image: {image}\n"
    )
}

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{suite: apply}}\ndata:\n  v: \"{value}\"\n"
    )
}

#[test]
fn server_side_apply_conflicts_and_force() {
    let c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    let apply = |args: &[&str], input: &str| c.kubectl_with("kubectl", args, Some(input));
    let out = ok(apply(&["apply", "--server-side", "-f", "-"], &deploy(2, "nginx:1")));
    assert!(out.contains("deployment.apps/api serverside-applied"), "{out}");
    let mf = ok(c.kubectl(&[
        "get",
        "deploy",
        "api",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}/{.metadata.managedFields[*].operation}",
    ]));
    assert_eq!(mf, "kubectl/Apply");

    // someone else changes replicas; re-applying another value conflicts
    ok(c.kubectl(&["scale", "deploy", "api", "--replicas=5"]));
    let err = fails(apply(&["apply", "--server-side", "-f", "-"], &deploy(3, "nginx:1")));
    assert!(err.contains("conflict") && err.contains(".spec.replicas"), "{err}");
    assert!(err.contains("kubectl-scale") || err.contains("\"kubectl\""), "names the other manager: {err}");
    // forcing takes the field over
    ok(apply(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &deploy(3, "nginx:1")));
    assert_eq!(ok(c.kubectl(&["get", "deploy", "api", "-o", "jsonpath={.spec.replicas}"])), "3");

    // diff shows a pending change and changes nothing
    let out = c.kubectl_with("kubectl", &["diff", "--server-side", "-f", "-"], Some(&deploy(3, "nginx:2")));
    assert_eq!(
        out.status.code(),
        Some(1),
        "diff exits 1 when there are differences: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-      - image: nginx:1") && text.contains("+      - image: nginx:2"), "{text}");
    // server dry-run changes nothing either
    let out = ok(apply(&["apply", "--server-side", "--dry-run=server", "-f", "-"], &deploy(3, "nginx:3")));
    assert!(out.contains("(server dry run)"), "{out}");
    let image = "jsonpath={.spec.template.spec.containers[0].image}";
    assert_eq!(ok(c.kubectl(&["get", "deploy", "api", "-o", image])), "nginx:1");
}

#[test]
fn client_side_apply_migrates_to_server_side() {
    let c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    let apply = |args: &[&str], input: &str| c.kubectl_with("kubectl", args, Some(input));
    ok(apply(&["apply", "-f", "-"], &deploy(2, "nginx:1")));
    let out = ok(apply(&["apply", "--server-side", "-f", "-"], &deploy(2, "nginx:2")));
    assert!(out.contains("serverside-applied"), "{out}");
    let mf = ok(c.kubectl(&["get", "deploy", "api", "-o", "jsonpath={.metadata.managedFields[*].manager}"]));
    assert!(mf.split_whitespace().any(|m| m == "kubectl"), "{mf}");
    assert_eq!(
        ok(c.kubectl(&["get", "deploy", "api", "-o", "jsonpath={.spec.template.spec.containers[0].image}"])),
        "nginx:2"
    );
    // and client-side apply still works afterwards, with its three-way merge
    ok(apply(&["apply", "-f", "-"], &deploy(4, "nginx:2")));
    assert_eq!(ok(c.kubectl(&["get", "deploy", "api", "-o", "jsonpath={.spec.replicas}"])), "4");
}

#[test]
fn prune_and_server_dry_run() {
    let c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    let all = format!("{}---\n{}---\n{}", cm("one", "1"), cm("two", "2"), cm("three", "3"));
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(&all)));
    let fewer = format!("{}---\n{}", cm("one", "1"), cm("two", "22"));
    let out = ok(c.kubectl_with(
        "kubectl",
        &["apply", "--prune", "-l", "suite=apply", "--prune-allowlist=core/v1/ConfigMap", "-f", "-"],
        Some(&fewer),
    ));
    assert!(out.contains("configmap/three pruned"), "{out}");
    assert_eq!(ok(c.kubectl(&["get", "cm", "-l", "suite=apply", "-o", "name"])).lines().count(), 2);
    let out = ok(c.kubectl_with("kubectl", &["apply", "--dry-run=server", "-f", "-"], Some(&cm("one", "changed"))));
    assert!(out.contains("(server dry run)"), "{out}");
    assert_eq!(ok(c.kubectl(&["get", "cm", "one", "-o", "jsonpath={.data.v}"])), "1");
}

#[test]
fn unknown_fields_are_refused_or_warned() {
    let c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    let bad = deploy(1, "nginx").replace("  replicas: 1\n", "  replicas: 1\n  replicaz: 2\n");
    // kubectl's default --validate=strict asks the server for fieldValidation=Strict
    let err = fails(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(&bad)));
    assert!(err.contains("strict decoding error") && err.contains("unknown field \"spec.replicaz\""), "{err}");
    let out = c.kubectl_with("kubectl", &["create", "--validate=warn", "-f", "-"], Some(&bad));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Warning: unknown field \"spec.replicaz\""), "{stderr}");
}
