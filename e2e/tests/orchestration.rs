//! The orchestration story with stock kubectl: Deployment → ReplicaSet → Pod
//! → scheduler → simulated kubelet, rollouts and rollbacks, garbage
//! collection, namespaces, placement, and node failure.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use rkube_e2e::{Cluster, eventually, k, ok, wait_for};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

/// Poll a kubectl command until it prints `n` non-empty lines.
fn wait_count(c: &Cluster, secs: u64, args: &[&str], n: usize) {
    let mut last = String::new();
    let got = eventually(Duration::from_secs(secs), || {
        last = String::from_utf8_lossy(&c.kubectl(args).stdout).into_owned();
        (last.lines().filter(|l| !l.trim().is_empty()).count() == n).then_some(())
    });
    assert!(got.is_some(), "kubectl {args:?}: wanted {n} lines, last saw:\n{last}");
}

async fn client(c: &Cluster) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// A standalone `rkube kubelet` process (a node we can kill).
fn kubelet(c: &Cluster, node: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["kubelet", "--runtime", "sim", "--node-name", node, "--kubeconfig"])
        .arg(c.kubeconfig())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rkube kubelet starts")
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

#[test]
fn deployment_runs_on_simulated_nodes() {
    let c = Cluster::start(BIN, &["--sim-nodes", "3"]).unwrap();
    k(&c, &["create", "deployment", "web", "--image=nginx", "--replicas=3"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    let wide = k(&c, &["get", "pods", "-o", "wide"]);
    let rows: Vec<&str> = wide.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{wide}");
    for r in &rows {
        let cols: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(cols[2], "Running", "{wide}");
        assert!(cols[5].starts_with("10.244."), "pod IP from the node's podCIDR: {wide}");
        assert!(cols[6].starts_with("sim-"), "node column: {wide}");
    }
    let nodes = k(&c, &["get", "nodes", "-o", "wide"]);
    assert_eq!(nodes.lines().filter(|l| l.contains(" Ready ")).count(), 3, "{nodes}");
    let desc = k(&c, &["describe", "pod", "-l", "app=web"]);
    for ev in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(desc.contains(ev), "describe pod lacks event {ev}:\n{desc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_unavailability() {
    let c = Arc::new(Cluster::start(BIN, &["--sim-nodes", "3"]).unwrap());
    let c2 = c.clone();
    blocking(move || {
        k(&c2, &["create", "deployment", "web", "--image=nginx:1.26", "--replicas=10"]);
        k(
            &c2,
            &[
                "patch",
                "deployment",
                "web",
                "-p",
                r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":3,"maxUnavailable":2}}}}"#,
            ],
        );
        k(&c2, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    })
    .await
    .unwrap();

    // Watch every pod event during the rollout and check the bounds at each one.
    let pods: kube::Api<Pod> = kube::Api::default_namespaced(client(&c).await);
    let state: Arc<Mutex<HashMap<String, (bool, bool)>>> = Default::default();
    let worst = Arc::new(Mutex::new((0usize, usize::MAX)));
    let (st, w) = (state.clone(), worst.clone());
    let stream = watcher(pods, watcher::Config::default().labels("app=web"));
    let watch = tokio::spawn(async move {
        futures::pin_mut!(stream);
        let mut ready_seen = false;
        while let Some(ev) = stream.next().await {
            let Ok(ev) = ev else { continue };
            let mut s = st.lock().unwrap();
            match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let deleting = p.metadata.deletion_timestamp.is_some();
                    let ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                    s.insert(name, (deleting, ready));
                }
                watcher::Event::Delete(p) => {
                    s.remove(&p.metadata.name.clone().unwrap_or_default());
                }
                watcher::Event::InitDone => ready_seen = true,
                watcher::Event::Init => {}
            }
            if ready_seen {
                let total = s.values().filter(|(d, _)| !d).count();
                let available = s.values().filter(|(d, r)| !d && *r).count();
                let mut w = w.lock().unwrap();
                w.0 = w.0.max(total);
                w.1 = w.1.min(available);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c2 = c.clone();
    blocking(move || {
        k(&c2, &["set", "image", "deployment/web", "nginx=nginx:1.27"]);
        k(&c2, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let (max_total, min_available) = *worst.lock().unwrap();
    assert!(max_total <= 13, "more than replicas+maxSurge pods at once: {max_total}");
    assert!(min_available >= 8, "fewer than replicas-maxUnavailable available: {min_available}");
    assert!(max_total > 10, "the rollout surged ({max_total})");
    let c2 = c.clone();
    blocking(move || {
        // old pods finish terminating, then only the new template is left
        let want = ["nginx:1.27"; 10].join(" ");
        wait_for(
            &c2,
            30,
            &["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}"],
            &want,
        );
    })
    .await
    .unwrap();
}

#[test]
fn rollout_history_undo_pause_restart_and_scale() {
    let c = Cluster::start(BIN, &["--sim-nodes", "3"]).unwrap();
    k(&c, &["create", "deployment", "web", "--image=nginx:1.26", "--replicas=2"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    k(&c, &["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    let hist = k(&c, &["rollout", "history", "deployment/web"]);
    assert!(hist.contains("1 ") && hist.contains("2 "), "{hist}");
    k(&c, &["rollout", "undo", "deployment/web"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    let img = "jsonpath={.spec.template.spec.containers[0].image}";
    assert_eq!(k(&c, &["get", "deploy", "web", "-o", img]), "nginx:1.26");
    wait_for(
        &c,
        30,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"],
        "3",
    );
    assert_eq!(k(&c, &["get", "rs", "-o", "name"]).lines().count(), 2, "undo reuses the old ReplicaSet");

    // paused: template changes wait
    k(&c, &["rollout", "pause", "deployment/web"]);
    k(&c, &["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(k(&c, &["get", "rs", "-o", "name"]).lines().count(), 2, "no rollout while paused");
    k(&c, &["rollout", "resume", "deployment/web"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(k(&c, &["get", "rs", "-o", "name"]).lines().count(), 3);

    // restart makes a new ReplicaSet
    k(&c, &["rollout", "restart", "deployment/web"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(k(&c, &["get", "rs", "-o", "name"]).lines().count(), 4);

    // scale to 0 and to 20
    k(&c, &["scale", "deployment/web", "--replicas=0"]);
    wait_for(&c, 30, &["get", "pods", "-l", "app=web", "-o", "name"], "");
    k(&c, &["scale", "deployment/web", "--replicas=20"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    wait_count(&c, 30, &["get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o", "name"], 20);
}

#[test]
fn deletion_cascades_and_namespaces_empty() {
    let c = Cluster::start(BIN, &["--sim-nodes", "2"]).unwrap();
    // background (default): everything goes
    k(&c, &["create", "deployment", "bg", "--image=nginx", "--replicas=2"]);
    k(&c, &["rollout", "status", "deployment/bg", "--timeout=60s"]);
    k(&c, &["delete", "deployment", "bg"]);
    wait_for(&c, 30, &["get", "rs,pods", "-l", "app=bg", "-o", "name"], "");

    // orphan: ReplicaSet and pods stay, without their owner
    k(&c, &["create", "deployment", "or", "--image=nginx", "--replicas=2"]);
    k(&c, &["rollout", "status", "deployment/or", "--timeout=60s"]);
    k(&c, &["delete", "deployment", "or", "--cascade=orphan"]);
    wait_for(&c, 30, &["get", "deploy", "-l", "app=or", "-o", "name"], "");
    let rs = k(&c, &["get", "rs", "-l", "app=or", "-o", "jsonpath={.items[*].metadata.ownerReferences}"]);
    assert_eq!(rs.trim(), "", "orphaned ReplicaSet keeps no ownerReference");
    assert_eq!(k(&c, &["get", "pods", "-l", "app=or", "-o", "name"]).lines().count(), 2);

    // foreground: the Deployment goes last
    k(&c, &["create", "deployment", "fg", "--image=nginx", "--replicas=2"]);
    k(&c, &["rollout", "status", "deployment/fg", "--timeout=60s"]);
    k(&c, &["delete", "deployment", "fg", "--cascade=foreground", "--wait=false"]);
    let fin = k(&c, &["get", "deploy", "fg", "-o", "jsonpath={.metadata.finalizers}"]);
    assert!(fin.contains("foregroundDeletion"), "{fin}");
    wait_for(&c, 60, &["get", "deploy,rs,pods", "-l", "app=fg", "-o", "name"], "");

    // a namespace empties, then goes
    k(&c, &["create", "namespace", "scratch"]);
    k(&c, &["create", "deployment", "x", "--image=nginx", "--replicas=2", "-n", "scratch"]);
    k(&c, &["create", "configmap", "cfg", "--from-literal=a=b", "-n", "scratch"]);
    k(&c, &["rollout", "status", "deployment/x", "-n", "scratch", "--timeout=60s"]);
    k(&c, &["delete", "namespace", "scratch", "--timeout=60s"]);
    let out = c.kubectl(&["get", "namespace", "scratch"]);
    assert!(!out.status.success(), "namespace still there");
    // every namespace has its default ServiceAccount and root CA
    k(&c, &["create", "namespace", "fresh"]);
    wait_for(&c, 20, &["get", "sa", "default", "-n", "fresh", "-o", "name"], "serviceaccount/default");
    wait_for(&c, 20, &["get", "cm", "kube-root-ca.crt", "-n", "fresh", "-o", "name"], "configmap/kube-root-ca.crt");
}

#[test]
fn placement_follows_selectors_taints_requests_and_affinity() {
    let c = Cluster::start(BIN, &["--sim-nodes", "2", "--sim-node-cpu", "2"]).unwrap();
    wait_for(&c, 20, &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"], "sim-0 sim-1");
    k(&c, &["label", "node", "sim-1", "disk=ssd"]);
    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n{extra}  containers:\n  - name: c\n    image: nginx\n"
        )
    };
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(&pod("ssd", "  nodeSelector: {disk: ssd}\n"))));
    wait_for(&c, 30, &["get", "pod", "ssd", "-o", "jsonpath={.spec.nodeName}"], "sim-1");

    // a NoSchedule taint keeps untolerating pods away
    k(&c, &["taint", "node", "sim-1", "dedicated=db:NoSchedule"]);
    k(&c, &["create", "deployment", "spread", "--image=nginx", "--replicas=4"]);
    k(&c, &["rollout", "status", "deployment/spread", "--timeout=60s"]);
    let nodes = k(&c, &["get", "pods", "-l", "app=spread", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    assert!(nodes.split_whitespace().all(|n| n == "sim-0"), "{nodes}");
    k(&c, &["taint", "node", "sim-1", "dedicated-"]);

    // a request no node can hold: FailedScheduling with upstream's reason counts
    let big = "  containers:\n  - name: c\n    image: nginx\n    resources: {requests: {cpu: \"3\"}}\n";
    let manifest = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n{big}");
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(&manifest)));
    let mut events = String::new();
    eventually(Duration::from_secs(30), || {
        events = k(
            &c,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=big,reason=FailedScheduling",
                "-o",
                "jsonpath={.items[*].message}",
            ],
        );
        (!events.is_empty()).then_some(())
    })
    .expect("a FailedScheduling event");
    assert!(events.contains("0/2 nodes are available: 2 Insufficient cpu."), "{events}");
    let cond = k(&c, &["get", "pod", "big", "-o", "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}"]);
    assert_eq!(cond, "Unschedulable");
    // a node that fits appears: the pod is placed there
    let mut big_node = kubelet(&c, "big-node", &["--sim-cpu", "8"]);
    wait_for(&c, 60, &["get", "pod", "big", "-o", "jsonpath={.spec.nodeName}"], "big-node");
    let _ = big_node.kill();
    let _ = big_node.wait();

    // required anti-affinity spreads replicas over distinct nodes
    let aa = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: aa\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: aa}}\n  template:\n    metadata: {labels: {app: aa}}\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector: {matchLabels: {app: aa}}\n            topologyKey: kubernetes.io/hostname\n      containers:\n      - name: c\n        image: nginx\n";
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(aa)));
    k(&c, &["rollout", "status", "deployment/aa", "--timeout=60s"]);
    let nodes = k(&c, &["get", "pods", "-l", "app=aa", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    let v: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(v.len(), 2);
    assert_ne!(v[0], v[1], "anti-affinity: {nodes}");
}

#[test]
fn a_silent_node_is_evicted_and_its_pods_replaced() {
    let c =
        Cluster::start(BIN, &["--sim-nodes", "2", "--node-monitor-period", "1s", "--node-monitor-grace-period", "4s"])
            .unwrap();
    let mut edge = kubelet(&c, "edge", &[]);
    wait_for(
        &c,
        30,
        &["get", "node", "edge", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"],
        "True",
    );
    // pods that tolerate an unreachable node for 2 s only, spread over the three nodes
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc\nspec:\n  replicas: 6\n  selector: {matchLabels: {app: svc}}\n  template:\n    metadata: {labels: {app: svc}}\n    spec:\n      tolerations:\n      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}\n      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}\n      topologySpreadConstraints:\n      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: svc}}}\n      containers:\n      - name: c\n        image: nginx\n";
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(dep)));
    k(&c, &["rollout", "status", "deployment/svc", "--timeout=60s"]);
    let on_edge = k(&c, &["get", "pods", "-l", "app=svc", "--field-selector", "spec.nodeName=edge", "-o", "name"]);
    assert!(on_edge.lines().count() >= 1, "spreading put pods on edge: {on_edge}");

    // the node goes silent
    let _ = edge.kill();
    let _ = edge.wait();
    wait_for(
        &c,
        30,
        &["get", "node", "edge", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"],
        "Unknown",
    );
    let taints = k(&c, &["get", "node", "edge", "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(taints.contains("node.kubernetes.io/unreachable"), "{taints}");
    // its pods are evicted and replaced elsewhere: 6 running, none on edge
    wait_for(&c, 60, &["get", "pods", "-l", "app=svc", "--field-selector", "spec.nodeName=edge", "-o", "name"], "");
    wait_count(&c, 60, &["get", "pods", "-l", "app=svc", "--field-selector", "status.phase=Running", "-o", "name"], 6);
}

/// Every component also runs alone against any apiserver, as upstream's do.
#[test]
fn components_run_alone_against_an_apiserver() {
    let c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    let spawn = |args: &[&str]| -> Child {
        Command::new(BIN)
            .args(args)
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("component starts")
    };
    let mut procs = vec![spawn(&["controller-manager"]), spawn(&["scheduler"])];
    procs.push(kubelet(&c, "solo", &["--node-labels", "tier=edge"]));
    k(&c, &["create", "deployment", "alone", "--image=nginx", "--replicas=2"]);
    k(&c, &["rollout", "status", "deployment/alone", "--timeout=60s"]);
    let nodes = k(&c, &["get", "pods", "-l", "app=alone", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    assert_eq!(nodes, "solo solo");
    assert_eq!(k(&c, &["get", "node", "solo", "-o", "jsonpath={.metadata.labels.tier}"]), "edge");
    for mut p in procs {
        let _ = p.kill();
        let _ = p.wait();
    }
}
