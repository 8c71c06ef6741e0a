//! NodePools and PodBehaviors (rkube-crds) reconciled by the sim kubelet against an in-process
//! apiserver with node IPAM.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_crds::{NodePool, PodBehavior};
use rkube_kubelet::{Config, NodeConfig, run_nodepools};
use serde_json::json;
use std::time::Duration;

struct Env {
    _env: rkube_apiserver::testenv::TestEnv,
    client: kube::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// TestEnv + CRDs installed + nodeipam + a NodePool-driven kubelet pool with `static_nodes`.
async fn setup(static_nodes: Vec<NodeConfig>) -> anyhow::Result<Env> {
    let env = rkube_apiserver::testenv::TestEnv::start().await?;
    let client = env.client();
    rkube_crds::install(client.clone()).await?;
    let ipam = tokio::spawn({
        let c = client.clone();
        async move {
            let _ = rkube_controller_nodeipam::run(c, Default::default()).await;
        }
    });
    let cfg = Config {
        nodes: static_nodes,
        node_status_update_frequency: Duration::from_millis(500),
        node_lease_duration_seconds: 2,
        termination_grace_cap: Duration::from_secs(1),
        ..Config::default()
    };
    let defaults = NodeConfig { cpu: "2".into(), ..NodeConfig::default() };
    let pool = tokio::spawn({
        let c = client.clone();
        async move {
            if let Err(e) = run_nodepools(c, cfg, defaults).await {
                eprintln!("run_nodepools ended: {e}");
            }
        }
    });
    Ok(Env { _env: env, client, tasks: vec![ipam, pool] })
}

async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until the pool's status says `n` replicas, all Ready, and returns it.
async fn pool_at(client: &kube::Client, name: &str, n: i32) -> anyhow::Result<NodePool> {
    let pools: Api<NodePool> = Api::all(client.clone());
    wait_for(&format!("{name} at {n} ready replicas"), 15, || async {
        let p = pools.get(name).await?;
        let ok = p.status.as_ref().is_some_and(|s| {
            s.replicas == n
                && s.ready_replicas == n
                && s.nodes.len() == n as usize
                && s.observed_generation == p.metadata.generation
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        });
        Ok(ok.then_some(p))
    })
    .await
}

#[tokio::test]
async fn nodepool_registers_nodes_and_follows_the_scale_subresource() -> anyhow::Result<()> {
    let env = setup(Vec::new()).await?;
    let pools: Api<NodePool> = Api::all(env.client.clone());
    let nodes: Api<Node> = Api::all(env.client.clone());
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "sim.rkube.io/v1alpha1", "kind": "NodePool", "metadata": {"name": "pool"},
        "spec": {"replicas": 2, "capacity": {"memory": "8Gi", "pods": 30}, "labels": {"tier": "sim"},
                 "zones": ["za", "zb"]}
    }))?;
    pools.create(&PostParams::default(), &np).await?;
    let p = pool_at(&env.client, "pool", 2).await?;
    let status = p.status.clone().unwrap_or_default();
    assert_eq!(status.nodes, ["pool-0", "pool-1"]);
    assert_eq!(status.selector.as_deref(), Some("sim.rkube.io/nodepool=pool"));
    for (name, zone) in [("pool-0", "za"), ("pool-1", "zb")] {
        let n = nodes.get(name).await?;
        assert!(ready(&n), "{name} not Ready");
        let labels = n.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("sim.rkube.io/nodepool").map(String::as_str), Some("pool"));
        assert_eq!(labels.get("tier").map(String::as_str), Some("sim"));
        assert_eq!(labels.get("topology.kubernetes.io/zone").map(String::as_str), Some(zone));
        let cap = n.status.and_then(|s| s.capacity).unwrap_or_default();
        assert_eq!(cap.get("memory").map(|q| q.0.as_str()), Some("8Gi"));
        assert_eq!(cap.get("pods").map(|q| q.0.as_str()), Some("30"));
        assert_eq!(cap.get("cpu").map(|q| q.0.as_str()), Some("2"), "the defaults fill unset capacity");
    }

    // kubectl scale nodepool pool --replicas=4 (the scale subresource).
    pools.patch_scale("pool", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await?;
    let p = pool_at(&env.client, "pool", 4).await?;
    assert_eq!(p.status.unwrap_or_default().nodes, ["pool-0", "pool-1", "pool-2", "pool-3"]);
    assert!(ready(&nodes.get("pool-3").await?));

    // Down to 1: the highest-numbered nodes go, their Node objects are deleted.
    pools.patch_scale("pool", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await?;
    let p = pool_at(&env.client, "pool", 1).await?;
    assert_eq!(p.status.unwrap_or_default().nodes, ["pool-0"]);
    wait_for("removed nodes deleted", 10, || async {
        let mut left = Vec::new();
        for n in ["pool-1", "pool-2", "pool-3"] {
            if nodes.get_opt(n).await?.is_some() {
                left.push(n);
            }
        }
        Ok(left.is_empty().then_some(()))
    })
    .await?;
    let scale = pools.get_scale("pool").await?;
    assert_eq!(scale.status.map(|s| s.replicas), Some(1));
    assert!(ready(&nodes.get("pool-0").await?));

    // Deleting the NodePool removes its nodes.
    pools.delete("pool", &Default::default()).await?;
    wait_for("nodes of the deleted pool gone", 10, || async {
        Ok(nodes.get_opt("pool-0").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

fn pod(name: &str, node: &str, labels: serde_json::Value, annotations: serde_json::Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels, "annotations": annotations},
        "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"}]}
    }))?)
}

fn terminated(p: &Pod) -> Option<(i32, i64)> {
    let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let t = cs.state.as_ref()?.terminated.as_ref()?;
    let ran = t.finished_at.as_ref()?.0.as_second() - t.started_at.as_ref()?.0.as_second();
    Some((t.exit_code, ran))
}

#[tokio::test]
async fn podbehavior_makes_selected_pods_exit() -> anyhow::Result<()> {
    let env = setup(vec![NodeConfig::new("n1")]).await?;
    let nodes: Api<Node> = Api::all(env.client.clone());
    wait_for("n1 Ready with podCIDR", 10, || async {
        let n = nodes.get_opt("n1").await?;
        Ok(n.filter(|n| ready(n) && n.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some())).map(|_| ()))
    })
    .await?;
    let behaviors: Api<PodBehavior> = Api::all(env.client.clone());
    let pb: PodBehavior = serde_json::from_value(json!({
        "apiVersion": "sim.rkube.io/v1alpha1", "kind": "PodBehavior", "metadata": {"name": "crash"},
        "spec": {"selector": {"matchLabels": {"app": "crash"}}, "exitAfter": "2s", "exitCode": 1}
    }))?;
    behaviors.create(&PostParams::default(), &pb).await?;
    // Let the pool's PodBehavior watch deliver it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    pods.create(&pp, &pod("crash", "n1", json!({"app": "crash"}), json!({}))?).await?;
    pods.create(&pp, &pod("own", "n1", json!({"app": "crash"}), json!({"sim.rkube.io/exit-code": "3"}))?).await?;
    pods.create(&pp, &pod("web", "n1", json!({"app": "web"}), json!({}))?).await?;

    let failed = |name: &'static str| {
        let pods = pods.clone();
        async move {
            wait_for(&format!("{name} Failed"), 10, || async {
                let p = pods.get(name).await?;
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                Ok((phase.as_deref() == Some("Failed")).then_some(p))
            })
            .await
        }
    };
    let crash = failed("crash").await?;
    let (code, ran) = terminated(&crash).ok_or_else(|| anyhow::anyhow!("no terminated state"))?;
    assert_eq!(code, 1);
    assert!((1..=3).contains(&ran), "ran {ran}s, want about 2s");
    // The pod object itself is not annotated: the behaviour is the kubelet's view only.
    assert!(!crash.metadata.annotations.unwrap_or_default().contains_key("sim.rkube.io/exit-after"));
    // The pod's own annotation wins over the behavior's exitCode; exitAfter still comes from it.
    let own = failed("own").await?;
    assert_eq!(terminated(&own).map(|t| t.0), Some(3));
    // An unselected pod keeps running.
    let web = pods.get("web").await?;
    assert_eq!(web.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    Ok(())
}
