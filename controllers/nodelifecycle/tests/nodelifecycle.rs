//! The node lifecycle controller against an in-process apiserver. The tests play the kubelet: they
//! create Nodes and their Leases and renew them, then stop renewing one.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_nodelifecycle::{Config, run};
use serde_json::json;

fn config() -> Config {
    Config {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(1),
        node_startup_grace_period: Duration::from_secs(2),
        orphaned_pod_quarantine: Duration::from_millis(500),
        ..Config::default()
    }
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn now_str() -> String {
    Timestamp::now().to_string()
}

async fn post_ready(client: &Client, name: &str, status: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = now_str();
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "lastHeartbeatTime": now, "lastTransitionTime": now},
    ]}});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Create a Ready node and its lease; returns a switch that keeps the lease renewed while true.
async fn kubelet(client: &Client, name: &str) -> anyhow::Result<Arc<AtomicBool>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    nodes.create(&PostParams::default(), &node).await?;
    post_ready(client, name, "True").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": Timestamp::now().to_string()}
    }))?;
    leases.create(&PostParams::default(), &lease).await?;
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        loop {
            if flag.load(Ordering::SeqCst) {
                let renew = MicroTime(Timestamp::now());
                let patch = json!({"spec": {"renewTime": renew}});
                let _ = leases.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    Ok(alive)
}

async fn pod_on(client: &Client, name: &str, node: &str, tolerations: serde_json::Value) -> anyhow::Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "busybox"}]}
    }))?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    let now = now_str();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(created)
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| ts.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect())
        .unwrap_or_default()
}

fn ready_of(node: &Node) -> Option<(String, Option<String>)> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn unreachable_node_is_tainted_and_its_pods_evicted_then_recovers() -> anyhow::Result<()> {
    let _ =
        tracing_subscriber::fmt().with_env_filter("rkube_controller_nodelifecycle=debug").with_test_writer().try_init();
    let env = TestEnv::start().await?;
    let client = env.client();
    let _up = kubelet(&client, "n-up").await?;
    let down = kubelet(&client, "n-down").await?;
    tokio::spawn(run(client.clone(), config()));

    let unreachable_ne = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 2}]);
    let forever = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]);
    // Default tolerations (300 s) may be added by admission, so "at once" is tolerationSeconds 0 here.
    let zero = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                       "effect": "NoExecute", "tolerationSeconds": 0}]);
    pod_on(&client, "p-none", "n-down", zero).await?;
    pod_on(&client, "p-timed", "n-down", unreachable_ne).await?;
    pod_on(&client, "p-forever", "n-down", forever).await?;
    pod_on(&client, "p-up", "n-up", json!([])).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Healthy for a while: no taints, nothing deleted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ready_of(&nodes.get("n-down").await?).map(|r| r.0).as_deref(), Some("True"));
    assert!(taint_keys(&nodes.get("n-down").await?).is_empty());

    down.store(false, Ordering::SeqCst);
    let node = eventually("n-down Unknown", 10, || async {
        nodes.get("n-down").await.ok().filter(|n| ready_of(n).is_some_and(|r| r.0 == "Unknown"))
    })
    .await;
    assert_eq!(ready_of(&node).and_then(|r| r.1).as_deref(), Some("NodeStatusUnknown"));
    let mem = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "MemoryPressure"))
        .map(|c| (c.status.clone(), c.message.clone()));
    assert_eq!(mem, Some(("Unknown".into(), Some("Kubelet stopped posting node status.".into()))));

    let node = eventually("unreachable taints", 10, || async {
        nodes.get("n-down").await.ok().filter(|n| {
            let k = taint_keys(n);
            k.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
                && k.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
        })
    })
    .await;
    let tainted_at = Instant::now();
    let time_added = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .and_then(|ts| ts.iter().find(|t| t.effect == "NoExecute"))
        .and_then(|t| t.time_added.clone());
    assert!(time_added.is_some(), "NoExecute taint carries timeAdded");

    // The pod without tolerations is deleted at once (graceful), then force-deleted by pod GC once its
    // grace period is over, since no kubelet will finish it.
    let p = eventually("p-none terminating", 3, || async {
        match pods.get_opt("p-none").await {
            Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => Some(Some(p)),
            Ok(None) => Some(None),
            _ => None,
        }
    })
    .await;
    if let Some(p) = p {
        let dt = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
            .and_then(|c| c.reason.clone());
        assert_eq!(dt.as_deref(), Some("DeletionByTaintManager"));
    }
    eventually("p-none gone", 6, || async { matches!(pods.get_opt("p-none").await, Ok(None)).then_some(()) }).await;

    // The pod tolerating for 2 s is still there early on, and deleted after.
    if tainted_at.elapsed() < Duration::from_millis(800) {
        let p = pods.get("p-timed").await?;
        assert!(p.metadata.deletion_timestamp.is_none(), "p-timed deleted before its tolerationSeconds");
    }
    eventually("p-timed deleted", 8, || async {
        match pods.get_opt("p-timed").await {
            Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => Some(()),
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(tainted_at.elapsed() >= Duration::from_millis(900), "p-timed deleted too early");

    // Tolerating forever: kept, but marked not ready.
    let p = pods.get("p-forever").await?;
    assert!(p.metadata.deletion_timestamp.is_none());
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("False"));
    // Pods on the healthy node are untouched.
    assert!(pods.get("p-up").await?.metadata.deletion_timestamp.is_none());

    // Events as upstream.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("TaintManagerEviction event", 5, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("TaintManagerEviction")
                    && e.note.as_deref() == Some("Marking for deletion Pod default/p-none")
                    && e.reporting_controller.as_deref() == Some("taint-eviction-controller")
            })
            .then_some(())
    })
    .await;

    // The kubelet comes back: taints go away.
    down.store(true, Ordering::SeqCst);
    post_ready(&client, "n-down", "True").await?;
    eventually("taints removed", 10, || async {
        nodes.get("n-down").await.ok().filter(|n| {
            taint_keys(n).iter().all(|k| !k.starts_with("node.kubernetes.io/unreachable"))
                && ready_of(n).is_some_and(|r| r.0 == "True")
        })
    })
    .await;
    assert!(pods.get("p-forever").await?.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test]
async fn single_node_down_is_full_disruption_and_evicts_nothing() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let only = kubelet(&client, "solo").await?;
    tokio::spawn(run(client.clone(), config()));
    pod_on(&client, "p", "solo", json!([])).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    only.store(false, Ordering::SeqCst);
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("solo Unknown with NoSchedule taint", 10, || async {
        nodes.get("solo").await.ok().filter(|n| {
            ready_of(n).is_some_and(|r| r.0 == "Unknown")
                && taint_keys(n).contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
        })
    })
    .await;
    // Every zone fully disrupted: upstream stops NoExecute tainting, so nothing is evicted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = nodes.get("solo").await?;
    assert!(!taint_keys(&n).contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert!(pods.get("p").await?.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test]
async fn pods_of_a_missing_node_are_garbage_collected() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let _k = kubelet(&client, "real").await?;
    tokio::spawn(run(client.clone(), config()));
    pod_on(&client, "orphan", "ghost", json!([])).await?;
    pod_on(&client, "fine", "real", json!([])).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    eventually("orphan gone", 8, || async { matches!(pods.get_opt("orphan").await, Ok(None)).then_some(()) }).await;
    assert!(start.elapsed() >= Duration::from_millis(400), "deleted before the quarantine");
    assert!(pods.get("fine").await?.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test]
async fn conditions_drive_no_schedule_taints() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let _k = kubelet(&client, "n1").await?;
    tokio::spawn(run(client.clone(), config()));
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"spec": {"unschedulable": true}});
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    eventually("unschedulable taint", 5, || async {
        nodes
            .get("n1")
            .await
            .ok()
            .filter(|n| taint_keys(n).contains(&"node.kubernetes.io/unschedulable:NoSchedule".to_string()))
    })
    .await;
    let patch = json!({"spec": {"unschedulable": false}});
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    eventually("unschedulable taint removed", 5, || async {
        nodes.get("n1").await.ok().filter(|n| taint_keys(n).is_empty())
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn user_no_execute_taint_evicts_untolerating_pods_and_cancels_on_removal() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let _k = kubelet(&client, "n1").await?;
    let _k2 = kubelet(&client, "n2").await?;
    tokio::spawn(run(client.clone(), config()));
    pod_on(&client, "plain", "n1", json!([])).await?;
    let tol = |secs: Option<i64>| {
        let mut t = json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"});
        if let Some(s) = secs {
            t["tolerationSeconds"] = json!(s);
        }
        json!([t])
    };
    pod_on(&client, "forever", "n1", tol(None)).await?;
    pod_on(&client, "timed", "n1", tol(Some(30))).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let patch = json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}});
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    eventually("plain evicted", 3, || async {
        match pods.get_opt("plain").await {
            Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => Some(()),
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pods.get("forever").await?.metadata.deletion_timestamp.is_none());
    assert!(pods.get("timed").await?.metadata.deletion_timestamp.is_none());

    // Taint removed before 30 s: the scheduled deletion is cancelled, with upstream's event.
    let patch = json!({"spec": {"taints": null}});
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("cancel event", 5, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("TaintManagerEviction")
                    && e.note.as_deref() == Some("Cancelling deletion of Pod default/timed")
            })
            .then_some(())
    })
    .await;
    assert!(pods.get("timed").await?.metadata.deletion_timestamp.is_none());
    Ok(())
}
