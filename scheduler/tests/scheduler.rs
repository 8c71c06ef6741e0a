//! The scheduler against an in-process apiserver (TestEnv): binding, events, the
//! Unschedulable path, retry on cluster events, filters end to end, no overcommit under
//! parallel decisions, and a throughput print.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use serde_json::json;

async fn start() -> anyhow::Result<(TestEnv, Client)> {
    start_with(rkube_scheduler::Config::default()).await
}

async fn start_with(config: rkube_scheduler::Config) -> anyhow::Result<(TestEnv, Client)> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let c = client.clone();
    tokio::spawn(async move {
        let _ = rkube_scheduler::run(c, config).await;
    });
    Ok((env, client))
}

fn node_json(
    name: &str,
    cpu: &str,
    mem: &str,
    pods: &str,
    labels: serde_json::Value,
    taints: serde_json::Value,
) -> Node {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let v = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "capacity": {"cpu": cpu, "memory": mem, "pods": pods},
            "allocatable": {"cpu": cpu, "memory": mem, "pods": pods},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]
        }
    });
    serde_json::from_value(v).unwrap_or_default()
}

async fn create_node(client: &Client, n: Node) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let name = n.metadata.name.clone().unwrap_or_default();
    let status = n.status.clone();
    api.create(&PostParams::default(), &n).await?;
    // Make sure the status is there even if create dropped it.
    let got = api.get(&name).await?;
    if got.status.as_ref().and_then(|s| s.allocatable.as_ref()).is_none() {
        let patch = json!({"status": status});
        api.patch_status(&name, &Default::default(), &kube::api::Patch::Merge(patch)).await?;
    }
    Ok(())
}

fn pod_json(name: &str, cpu: &str, extra_spec: serde_json::Value, labels: serde_json::Value) -> Pod {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec
    }))
    .unwrap_or_default()
}

async fn create_pod(client: &Client, p: Pod) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &p).await?;
    Ok(())
}

async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn node_of(client: &Client, name: &str) -> Option<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.get(name).await.ok()?.spec?.node_name.filter(|n| !n.is_empty())
}

async fn wait_bound(client: &Client, name: &str) -> Option<String> {
    wait_for(Duration::from_secs(10), || node_of(client, name)).await
}

async fn events_for(client: &Client, pod: &str) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

fn condition(p: &Pod) -> Option<(String, String, String)> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

#[tokio::test]
async fn binds_pod_and_records_scheduled_event() -> anyhow::Result<()> {
    let (_env, client) = start().await?;
    create_node(&client, node_json("node-1", "4", "8Gi", "110", json!({}), json!(null))).await?;
    create_pod(&client, pod_json("web", "500m", json!({}), json!({}))).await?;
    assert_eq!(wait_bound(&client, "web").await.as_deref(), Some("node-1"));
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = api.get("web").await?;
    assert_eq!(condition(&p).map(|c| c.0), Some("True".to_string()));
    let ev = wait_for(Duration::from_secs(5), || async {
        events_for(&client, "web").await.into_iter().find(|e| e.1 == "Scheduled")
    })
    .await;
    assert_eq!(ev, Some(("Normal".into(), "Scheduled".into(), "Successfully assigned default/web to node-1".into())));
    Ok(())
}

#[tokio::test]
async fn unschedulable_message_event_and_retry_when_node_appears() -> anyhow::Result<()> {
    let (_env, client) = start().await?;
    for i in 0..3 {
        create_node(&client, node_json(&format!("small-{i}"), "1", "1Gi", "110", json!({}), json!(null))).await?;
    }
    create_pod(&client, pod_json("big", "2", json!({}), json!({}))).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cond = wait_for(Duration::from_secs(10), || async {
        api.get("big").await.ok().as_ref().and_then(condition).filter(|c| c.0 == "False")
    })
    .await;
    let want = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
                3 Preemption is not helpful for scheduling.";
    assert_eq!(cond, Some(("False".into(), "Unschedulable".into(), want.into())));
    let ev = wait_for(Duration::from_secs(5), || async {
        events_for(&client, "big").await.into_iter().find(|e| e.1 == "FailedScheduling")
    })
    .await;
    assert_eq!(ev, Some(("Warning".into(), "FailedScheduling".into(), want.into())));
    assert_eq!(node_of(&client, "big").await, None);
    // A fitting node appears: the node-add event moves the pod back (after its 1 s backoff).
    create_node(&client, node_json("large", "4", "8Gi", "110", json!({}), json!(null))).await?;
    assert_eq!(wait_bound(&client, "big").await.as_deref(), Some("large"));
    Ok(())
}

#[tokio::test]
async fn filters_end_to_end() -> anyhow::Result<()> {
    let (_env, client) = start().await?;
    let taint = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    create_node(&client, node_json("a1", "4", "8Gi", "110", json!({"zone": "a", "disk": "ssd"}), json!(null))).await?;
    create_node(&client, node_json("a2", "4", "8Gi", "110", json!({"zone": "a"}), json!(null))).await?;
    create_node(&client, node_json("b1", "4", "8Gi", "110", json!({"zone": "b"}), taint)).await?;
    // nodeSelector
    create_pod(&client, pod_json("ssd", "100m", json!({"nodeSelector": {"disk": "ssd"}}), json!({}))).await?;
    assert_eq!(wait_bound(&client, "ssd").await.as_deref(), Some("a1"));
    // toleration opens the tainted node; required affinity to zone b forces it
    let tolerant = json!({
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}
    });
    create_pod(&client, pod_json("gpu", "100m", tolerant, json!({}))).await?;
    assert_eq!(wait_bound(&client, "gpu").await.as_deref(), Some("b1"));
    // anti-affinity by hostname: two replicas land on different nodes of zone a
    let anti = json!({
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    });
    create_pod(&client, pod_json("db-0", "100m", anti.clone(), json!({"app": "db"}))).await?;
    let first = wait_bound(&client, "db-0").await;
    create_pod(&client, pod_json("db-1", "100m", anti.clone(), json!({"app": "db"}))).await?;
    let second = wait_bound(&client, "db-1").await;
    assert!(first.is_some() && second.is_some() && first != second, "{first:?} {second:?}");
    // a third cannot fit (b1 is tainted, a1/a2 taken)
    create_pod(&client, pod_json("db-2", "100m", anti, json!({"app": "db"}))).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cond = wait_for(Duration::from_secs(10), || async {
        api.get("db-2").await.ok().as_ref().and_then(condition).filter(|c| c.0 == "False")
    })
    .await;
    let msg = cond.map(|c| c.2).unwrap_or_default();
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
             2 node(s) didn't match pod anti-affinity rules."
        ),
        "{msg}"
    );
    // deleting one replica frees its node: the pod-deleted event retries db-2
    let now = kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    api.delete("db-0", &now).await?;
    assert_eq!(wait_bound(&client, "db-2").await, first);
    Ok(())
}

#[tokio::test]
async fn no_overcommit_with_200_pods_on_5_nodes() -> anyhow::Result<()> {
    let (_env, client) = start().await?;
    for i in 0..5 {
        create_node(&client, node_json(&format!("n{i}"), "10", "64Gi", "110", json!({}), json!(null))).await?;
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            create_pod(&c, pod_json(&format!("p{i}"), "500m", json!({}), json!({}))).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // 5 × 10 cpu / 0.5 = 100 pods fit; the rest stay pending as Unschedulable.
    let done = wait_for(Duration::from_secs(15), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let bound = list.items.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
        let unsched = list.items.iter().filter(|p| condition(p).is_some_and(|c| c.0 == "False")).count();
        (bound + unsched == 200).then_some(list)
    })
    .await;
    let list = done.ok_or_else(|| anyhow::anyhow!("pods not all decided"))?;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in &list.items {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let total: usize = per_node.values().sum();
    assert_eq!(total, 100, "{per_node:?}");
    assert!(per_node.values().all(|n| *n == 20), "{per_node:?}");
    Ok(())
}

async fn throughput(nodes: usize, pods: usize, timeout: Duration) -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    for i in 0..nodes {
        create_node(&client, node_json(&format!("n{i:04}"), "32", "128Gi", "110", json!({}), json!(null))).await?;
    }
    let mut tasks = Vec::new();
    for chunk in 0..8 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (chunk..pods).step_by(8) {
                create_pod(&c, pod_json(&format!("t{i}"), "100m", json!({}), json!({}))).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // All pods pending first, then the scheduler starts: this measures scheduling + binding.
    let t0 = Instant::now();
    let c = client.clone();
    tokio::spawn(async move {
        let _ = rkube_scheduler::run(c, rkube_scheduler::Config::default()).await;
    });
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let bound = wait_for(timeout, || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let list = api.list(&ListParams::default()).await.ok()?;
        let n = list.items.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
        (n == pods).then_some(n)
    })
    .await;
    let elapsed = t0.elapsed();
    println!(
        "scheduler throughput: {} pods on {nodes} nodes bound in {:.2}s: {:.0} pods/s",
        bound.unwrap_or(0),
        elapsed.as_secs_f64(),
        pods as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(bound, Some(pods));
    Ok(())
}

/// Quick print (no timing assertion): 1,000 pending pods on 100 nodes.
#[tokio::test]
async fn throughput_print() -> anyhow::Result<()> {
    throughput(100, 1000, Duration::from_secs(20)).await
}

/// The bench shape (1,000 nodes, 10,000 pods); slow in debug builds:
/// `cargo test --release -p rkube-scheduler --test scheduler -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn throughput_bench_shape() -> anyhow::Result<()> {
    throughput(1000, 10_000, Duration::from_secs(300)).await
}
