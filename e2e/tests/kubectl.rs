//! Stock kubectl against a real `rkube server`: the everyday commands of a
//! Kubernetes user, with the default client-side checks (strict validation,
//! TLS verification) left on. Run with the kubectl on PATH, and with 1.33 and
//! 1.27 from /usr/lib/google-cloud-sdk/bin.

use rkube_e2e::{Cluster, eventually, fails, kubectl_version, ok};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");
const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/tests/manifests/app.yaml");

struct K<'a> {
    c: &'a Cluster,
    bin: String,
}

impl K<'_> {
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.c.kubectl_with(&self.bin, args, None)
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args))
    }
    fn fails(&self, args: &[&str]) -> String {
        fails(self.run(args))
    }
    fn stdin(&self, args: &[&str], input: &str) -> String {
        ok(self.c.kubectl_with(&self.bin, args, Some(input)))
    }
}

fn cluster() -> Cluster {
    Cluster::start(BIN, &[]).expect("rkube server starts")
}

/// The whole everyday workflow with one kubectl binary.
fn workflow(kubectl: &str) {
    let c = cluster();
    let k = K { c: &c, bin: kubectl.to_string() };

    // create -f of a multi-document manifest with many kinds, then apply -f of the same
    let out = k.ok(&["create", "-f", APP]);
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
        "cronjob.batch/report created",
        "horizontalpodautoscaler.autoscaling/web created",
        "priorityclass.scheduling.k8s.io/shop-high created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let out = k.ok(&["apply", "-f", APP]);
    assert!(out.contains("deployment.apps/web configured") || out.contains("deployment.apps/web unchanged"), "{out}");
    let out = k.ok(&["apply", "-f", APP]);
    assert!(out.contains("configmap/web-config unchanged"), "{out}");

    // get in every output format
    let wide = k.ok(&["get", "-n", "shop", "pods,deploy,svc,jobs,cm,secrets", "-o", "wide"]);
    for want in [
        "pod/debug",
        "deployment.apps/web",
        "service/web",
        "CLUSTER-IP",
        "job.batch/migrate",
        "configmap/web-config",
        "secret/web-secret",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ] {
        assert!(wide.contains(want), "missing {want} in:\n{wide}");
    }
    let nodeport = k.ok(&["get", "svc", "web-nodeport", "-n", "shop"]);
    assert!(nodeport.contains("80:30080/TCP"), "{nodeport}");
    let yaml = k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "yaml"]);
    assert!(yaml.contains("maxSurge: 25%") && yaml.contains("revisionHistoryLimit: 10"), "defaults missing:\n{yaml}");
    assert!(yaml.contains("imagePullPolicy: IfNotPresent"), "{yaml}");
    let json = k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]);
    let svc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.") && ip != "10.96.0.1", "{ip}");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    let names = k.ok(&["get", "cm,secret", "-n", "shop", "-l", "app=web", "-o", "name"]);
    assert_eq!(names.trim(), "configmap/web-config\nsecret/web-secret");
    let jp = k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[*].name}"]);
    assert_eq!(jp, "web sidecar");
    let cc =
        k.ok(&["get", "pods", "-n", "shop", "-o", "custom-columns=NAME:.metadata.name,RESTART:.spec.restartPolicy"]);
    assert!(cc.contains("debug") && cc.contains("Always"), "{cc}");
    let all = k.ok(&["get", "all", "-n", "shop"]);
    assert!(all.contains("deployment.apps/web") && all.contains("cronjob.batch/report"), "{all}");
    let desc = k.ok(&["describe", "deployment", "web", "-n", "shop"]);
    assert!(desc.contains("RollingUpdate") && desc.contains("25% max unavailable"), "{desc}");
    let desc = k.ok(&["describe", "svc", "web", "-n", "shop"]);
    assert!(desc.contains(&ip), "{desc}");

    // label, annotate, and the three patch types
    k.ok(&["label", "cm", "web-config", "-n", "shop", "tier=frontend"]);
    k.ok(&["annotate", "cm", "web-config", "-n", "shop", "note=hello"]);
    let got = k.ok(&[
        "get",
        "cm",
        "web-config",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}",
    ]);
    assert_eq!(got, "frontend hello");
    k.ok(&["label", "cm", "web-config", "-n", "shop", "tier-"]);
    let got = k.ok(&["get", "cm", "-n", "shop", "-l", "tier", "-o", "name"]);
    assert_eq!(got.trim(), "");
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"MODE","value":"fast"}]}]}}}}"#,
    ]);
    let env =
        k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].env[*].name}"]);
    assert_eq!(env, "MODE GREETING", "strategic merge must merge env by name");
    let images =
        k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[*].image}"]);
    assert_eq!(images, "nginx:1.27 busybox:1.36", "strategic merge must keep the other container");
    k.ok(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":null,"color":"blue"}}"#,
    ]);
    let data = k.ok(&["get", "cm", "web-config", "-n", "shop", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"color":"blue"}"#);
    let generation = |k: &K| -> i64 {
        k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.metadata.generation}"]).parse().unwrap()
    };
    let before = generation(&k);
    k.ok(&["patch", "deploy", "web", "-n", "shop", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/patched","value":"yes"}]"#]);
    let got =
        k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas} {.metadata.labels.patched}"]);
    assert_eq!(got, "4 yes");
    assert!(generation(&k) > before, "a spec change bumps metadata.generation");
    let err = k.fails(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    ]);
    assert!(err.contains("Error from server") || err.contains("error"), "{err}");

    // apply twice with a changed container list: list items merge by name
    let v1 = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: api:1\n        ports: [{containerPort: 80}]\n      - name: log\n        image: log:1\n";
    k.stdin(&["apply", "-f", "-"], v1);
    let v2 = v1
        .replace("      - name: log\n        image: log:1\n", "      - name: metrics\n        image: metrics:1\n")
        .replace("api:1", "api:2");
    k.stdin(&["apply", "-f", "-"], &v2);
    let got = k.ok(&[
        "get",
        "deploy",
        "api",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(got, "api metrics=api:2 metrics:1");

    // replace with a stale resourceVersion is a Conflict
    let cm = k.ok(&["get", "cm", "web-config", "-n", "shop", "-o", "json"]);
    k.ok(&["annotate", "cm", "web-config", "-n", "shop", "bump=1"]);
    let err = fails(c.kubectl_with(kubectl, &["replace", "-f", "-"], Some(&cm)));
    assert!(err.contains("Conflict") || err.contains("the object has been modified"), "{err}");

    // edit through KUBE_EDITOR
    let editor = c.dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/color: blue/color: green/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(kubectl)
        .args(["edit", "cm", "web-config", "-n", "shop"])
        .env("KUBECONFIG", c.kubeconfig())
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(k.ok(&["get", "cm", "web-config", "-n", "shop", "-o", "jsonpath={.data.color}"]), "green");

    // scale
    k.ok(&["scale", "deployment", "web", "-n", "shop", "--replicas=7"]);
    assert_eq!(k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}"]), "7");

    // get -w sees a change
    let mut w = std::process::Command::new(kubectl)
        .args(["get", "cm", "-n", "shop", "-w", "--request-timeout=20s"])
        .env("KUBECONFIG", c.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    k.ok(&["create", "configmap", "watched", "-n", "shop", "--from-literal=a=b"]);
    std::thread::sleep(Duration::from_millis(800));
    let _ = w.kill();
    let out = w.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("web-config") && text.contains("watched"), "get -w printed:\n{text}");

    // wait --for=jsonpath and --for=delete
    let waiter = {
        let bin = kubectl.to_string();
        let kc = c.kubeconfig().to_path_buf();
        std::thread::spawn(move || {
            std::process::Command::new(bin)
                .args(["wait", "cm/watched", "-n", "shop", "--for=jsonpath={.data.a}=c", "--timeout=20s"])
                .env("KUBECONFIG", kc)
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    k.ok(&["patch", "cm", "watched", "-n", "shop", "--type=merge", "-p", r#"{"data":{"a":"c"}}"#]);
    let out = waiter.join().unwrap();
    assert!(out.status.success(), "wait --for=jsonpath: {}", String::from_utf8_lossy(&out.stderr));
    let waiter = {
        let bin = kubectl.to_string();
        let kc = c.kubeconfig().to_path_buf();
        std::thread::spawn(move || {
            std::process::Command::new(bin)
                .args(["wait", "cm/watched", "-n", "shop", "--for=delete", "--timeout=20s"])
                .env("KUBECONFIG", kc)
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    k.ok(&["delete", "cm", "watched", "-n", "shop"]);
    let out = waiter.join().unwrap();
    assert!(out.status.success(), "wait --for=delete: {}", String::from_utf8_lossy(&out.stderr));

    // delete by name, by label, and --all
    k.ok(&["delete", "pod", "debug", "-n", "shop"]);
    assert!(k.fails(&["get", "pod", "debug", "-n", "shop"]).contains("NotFound"));
    let out = k.ok(&["delete", "cm,secret", "-n", "shop", "-l", "app=web"]);
    assert!(out.contains("configmap \"web-config\" deleted") && out.contains("secret \"web-secret\" deleted"), "{out}");
    k.ok(&["delete", "deploy", "--all", "-n", "shop"]);
    assert_eq!(k.ok(&["get", "deploy", "-n", "shop", "-o", "name"]).trim(), "");

    // discovery-driven commands
    let ar = k.ok(&["api-resources"]);
    for row in [
        r"^pods\s+po\s+v1\s+true\s+Pod$",
        r"^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$",
        r"^horizontalpodautoscalers\s+hpa\s+autoscaling/v2\s+true\s+HorizontalPodAutoscaler$",
        r"^clusterroles\s+rbac.authorization.k8s.io/v1\s+false\s+ClusterRole$",
    ] {
        let re = regex_lite(row);
        assert!(ar.lines().any(|l| re(l.trim_end())), "api-resources lacks {row}:\n{ar}");
    }
    let av = k.ok(&["api-versions"]);
    for v in ["apps/v1", "autoscaling/v1", "autoscaling/v2", "batch/v1", "v1", "policy/v1"] {
        assert!(av.lines().any(|l| l == v), "api-versions lacks {v}:\n{av}");
    }
    let ex = k.ok(&["explain", "deployment.spec.strategy"]);
    assert!(ex.contains("rollingUpdate") && ex.contains("Recreate"), "{ex}");
}

/// A tiny matcher for the api-resources rows: `\s+` between literal fields.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let fields: Vec<String> =
        pattern.trim_start_matches('^').trim_end_matches('$').split(r"\s+").map(|s| s.replace('\\', "")).collect();
    move |line: &str| {
        line.split_whitespace().collect::<Vec<_>>() == fields.iter().map(String::as_str).collect::<Vec<_>>()
    }
}

#[test]
fn kubectl_on_path() {
    workflow("kubectl");
}

#[test]
fn kubectl_1_33() {
    let k = kubectl_version(33).expect("kubectl 1.33 is installed under /usr/lib/google-cloud-sdk/bin");
    workflow(&k);
}

#[test]
fn kubectl_1_27() {
    let k = kubectl_version(27).expect("kubectl 1.27 is installed under /usr/lib/google-cloud-sdk/bin");
    workflow(&k);
}

#[test]
fn bad_input_is_refused_and_server_keeps_serving() {
    let c = cluster();
    let k = K { c: &c, bin: "kubectl".into() };
    let err = k.fails(&["create", "configmap", "Bad_Name"]);
    assert!(err.contains("a lowercase RFC 1123 subdomain"), "{err}");
    let err = fails(c.kubectl_with(
        "kubectl",
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nowhere\n"),
    ));
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    let err = k.fails(&["get", "--raw", "/api/v1/namespaces/default/nothings"]);
    assert!(err.contains("NotFound") || err.contains("could not find"), "{err}");
    // the server is still there
    assert_eq!(k.ok(&["get", "--raw", "/readyz"]), "ok");
    assert!(c.started_in < Duration::from_secs(5));
    let ns = eventually(Duration::from_secs(5), || {
        let out = k.run(&["get", "ns", "-o", "name"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap();
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
}
