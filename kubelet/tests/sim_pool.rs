//! The kubelet pool with the sim runtime against an in-process apiserver plus node IPAM.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rkube_kubelet::{Config, NodeConfig, PoolHandle, start};
use serde_json::json;
use std::time::Duration;

struct Env {
    _env: rkube_apiserver::testenv::TestEnv,
    client: kube::Client,
    handle: PoolHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn setup(node: &str) -> anyhow::Result<Env> {
    let env = rkube_apiserver::testenv::TestEnv::start().await?;
    let client = env.client();
    let ipam = tokio::spawn({
        let c = client.clone();
        async move {
            let _ = rkube_controller_nodeipam::run(c, Default::default()).await;
        }
    });
    let cfg = Config {
        nodes: vec![NodeConfig { zone: Some("zone-a".into()), ..NodeConfig::new(node) }],
        node_status_update_frequency: Duration::from_millis(500),
        node_lease_duration_seconds: 2,
        crash_loop_base: Duration::from_millis(800),
        termination_grace_cap: Duration::from_secs(10),
        ..Config::default()
    };
    let (handle, join) = start(client.clone(), cfg)?;
    let pool = tokio::spawn(async move {
        let _ = join.await;
    });
    Ok(Env { _env: env, client, handle, tasks: vec![ipam, pool] })
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

async fn node_ready(client: &kube::Client, name: &str) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for("node Ready with podCIDR", 10, || async {
        let Some(n) = nodes.get_opt(name).await? else { return Ok(None) };
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        Ok((ready && cidr.is_some()).then_some(n))
    })
    .await
}

fn pod(name: &str, node: &str, extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

async fn wait_phase(pods: &Api<Pod>, name: &str, phase: &str, secs: u64) -> anyhow::Result<Pod> {
    wait_for(&format!("{name} {phase}"), secs, || async {
        let p = pods.get(name).await?;
        Ok((p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase)).then_some(p))
    })
    .await
}

fn cond(p: &Pod, t: &str) -> Option<String> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == t).map(|c| c.status.clone())
}

#[tokio::test]
async fn node_registers_ready_with_lease_and_heartbeat_control() -> anyhow::Result<()> {
    let env = setup("n1").await?;
    let n = node_ready(&env.client, "n1").await?;
    let labels = n.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("n1"));
    assert_eq!(labels.get("kubernetes.io/os").map(String::as_str), Some("linux"));
    assert_eq!(labels.get("topology.kubernetes.io/zone").map(String::as_str), Some("zone-a"));
    let st = n.status.clone().unwrap_or_default();
    assert_eq!(st.node_info.as_ref().map(|i| i.container_runtime_version.as_str()), Some("sim://0.1"));
    assert!(st.node_info.as_ref().is_some_and(|i| i.kubelet_version.starts_with("v1.33.")));
    assert_eq!(st.capacity.as_ref().and_then(|c| c.get("pods")).map(|q| q.0.as_str()), Some("110"));
    assert!(st.addresses.unwrap_or_default().iter().any(|a| a.type_ == "InternalIP"));

    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
    let lease = wait_for("lease", 5, || async { Ok(leases.get_opt("n1").await?) }).await?;
    let owner = lease.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Node"));
    assert_eq!(owner.first().map(|o| o.uid.clone()), n.metadata.uid.clone());
    let renew = |l: &Lease| l.spec.as_ref().and_then(|s| s.renew_time.clone()).map(|t| t.0);
    let first = renew(&lease);
    // Renewed every 0.25 × 2 s.
    wait_for("lease renewal", 5, || async { Ok((renew(&leases.get("n1").await?) > first).then_some(())) }).await?;

    // Heartbeat stopped: the lease goes stale.
    env.handle.set_heartbeat("n1", false);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let frozen = renew(&leases.get("n1").await?);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(renew(&leases.get("n1").await?), frozen, "lease renewed while heartbeat stopped");
    env.handle.set_heartbeat("n1", true);
    wait_for("lease renewal after resume", 5, || async {
        Ok((renew(&leases.get("n1").await?) > frozen).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn bound_pod_runs_with_ip_conditions_and_events() -> anyhow::Result<()> {
    let env = setup("n1").await?;
    let n = node_ready(&env.client, "n1").await?;
    let cidr = n.spec.and_then(|s| s.pod_cidr).unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let extra = json!({"spec": {"initContainers": [{"name": "setup", "image": "busybox"}]}});
    pods.create(&PostParams::default(), &pod("web", "n1", extra)).await?;
    let p = wait_phase(&pods, "web", "Running", 10).await?;
    let st = p.status.clone().unwrap_or_default();
    let ip = st.pod_ip.clone().unwrap_or_default();
    let prefix = cidr.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "pod IP {ip} not in {cidr}");
    assert_eq!(st.pod_ips.unwrap_or_default().first().map(|i| i.ip.clone()), Some(ip));
    assert!(st.host_ip.is_some() && st.start_time.is_some());
    for t in ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(cond(&p, t).as_deref(), Some("True"), "{t}");
    }
    let cs = &st.container_statuses.unwrap_or_default()[0];
    assert!(cs.ready && cs.started == Some(true) && cs.restart_count == 0);
    assert!(cs.container_id.as_deref().is_some_and(|i| i.starts_with("sim://")));
    assert!(cs.image_id.starts_with("sim://"));
    assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    let init = &st.init_container_statuses.unwrap_or_default()[0];
    let term = init.state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| (t.exit_code, t.reason.clone()));
    assert_eq!(term, Some((0, Some("Completed".into()))));

    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let evs = wait_for("Started events", 5, || async {
        let l = events.list(&ListParams::default()).await?;
        Ok((l.items.iter().filter(|e| e.reason.as_deref() == Some("Started")).count() >= 2).then_some(l.items))
    })
    .await?;
    let pulled = evs
        .iter()
        .find(|e| e.reason.as_deref() == Some("Pulled") && e.message.as_deref().is_some_and(|m| m.contains("nginx")));
    let pulled = pulled.ok_or_else(|| anyhow::anyhow!("no Pulled event"))?;
    assert_eq!(pulled.message.as_deref(), Some("Container image \"nginx\" already present on machine"));
    assert_eq!(pulled.source.as_ref().and_then(|s| s.host.as_deref()), Some("n1"));
    assert_eq!(pulled.source.as_ref().and_then(|s| s.component.as_deref()), Some("kubelet"));

    // A hostNetwork pod gets the node's IP.
    let hn = json!({"spec": {"hostNetwork": true}});
    pods.create(&PostParams::default(), &pod("hostnet", "n1", hn)).await?;
    let p = wait_phase(&pods, "hostnet", "Running", 10).await?;
    let st = p.status.unwrap_or_default();
    assert_eq!(st.pod_ip, st.host_ip);
    Ok(())
}

#[tokio::test]
async fn exit_code_with_never_fails_and_job_pod_succeeds() -> anyhow::Result<()> {
    let env = setup("n1").await?;
    node_ready(&env.client, "n1").await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let fail = json!({
        "metadata": {"annotations": {"sim.rkube.io/exit-after": "300ms", "sim.rkube.io/exit-code": "1"}},
        "spec": {"restartPolicy": "Never"}
    });
    pods.create(&PostParams::default(), &pod("bad", "n1", fail)).await?;
    let job = json!({
        "metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "0000-1111", "controller": true}]},
        "spec": {"restartPolicy": "Never"}
    });
    pods.create(&PostParams::default(), &pod("job-x", "n1", job)).await?;

    let p = wait_phase(&pods, "bad", "Failed", 10).await?;
    let cs = &p.status.clone().unwrap_or_default().container_statuses.unwrap_or_default()[0];
    let t = cs.state.as_ref().and_then(|s| s.terminated.clone()).ok_or_else(|| anyhow::anyhow!("not terminated"))?;
    assert_eq!(t.exit_code, 1);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cond(&p, "Ready").as_deref(), Some("False"));

    let p = wait_phase(&pods, "job-x", "Succeeded", 10).await?;
    let cs = &p.status.clone().unwrap_or_default().container_statuses.unwrap_or_default()[0];
    let t = cs.state.as_ref().and_then(|s| s.terminated.clone()).ok_or_else(|| anyhow::anyhow!("not terminated"))?;
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready").cloned());
    assert_eq!(ready.and_then(|c| c.reason).as_deref(), Some("PodCompleted"));
    Ok(())
}

#[tokio::test]
async fn always_restarts_with_crash_loop_back_off() -> anyhow::Result<()> {
    let env = setup("n1").await?;
    node_ready(&env.client, "n1").await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let crash =
        json!({"metadata": {"annotations": {"sim.rkube.io/exit-after": "200ms", "sim.rkube.io/exit-code": "2"}}});
    pods.create(&PostParams::default(), &pod("crash", "n1", crash)).await?;
    let p = wait_for("CrashLoopBackOff", 10, || async {
        let p = pods.get("crash").await?;
        let cs = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        let waiting =
            cs.first().and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone());
        Ok((waiting.as_deref() == Some("CrashLoopBackOff")).then_some(p))
    })
    .await?;
    let st = p.status.clone().unwrap_or_default();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let cs = &st.container_statuses.unwrap_or_default()[0];
    assert!(cs.restart_count >= 1);
    let last =
        cs.last_state.as_ref().and_then(|s| s.terminated.clone()).ok_or_else(|| anyhow::anyhow!("no lastState"))?;
    assert_eq!(last.exit_code, 2);
    let msg = cs.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.message.clone()).unwrap_or_default();
    assert!(
        msg.starts_with("back-off ") && msg.contains("restarting failed container=app pod=crash_default("),
        "{msg}"
    );
    let before = cs.restart_count;
    // After the back-off it is restarted again.
    wait_for("another restart", 10, || async {
        let p = pods.get("crash").await?;
        let n = p
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()
            .first()
            .map(|c| c.restart_count)
            .unwrap_or(0);
        Ok((n > before).then_some(()))
    })
    .await?;
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let l = events.list(&ListParams::default()).await?;
    assert!(l.items.iter().any(|e| e.reason.as_deref() == Some("BackOff") && e.type_.as_deref() == Some("Warning")));
    Ok(())
}

#[tokio::test]
async fn deletion_honours_grace_then_removes_the_object() -> anyhow::Result<()> {
    let env = setup("n1").await?;
    node_ready(&env.client, "n1").await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("victim", "n1", json!({}))).await?;
    wait_phase(&pods, "victim", "Running", 10).await?;
    pods.delete("victim", &DeleteParams { grace_period_seconds: Some(2), ..Default::default() }).await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let p = pods.get_opt("victim").await?;
    assert!(
        p.as_ref().is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "removed before the grace period: {p:?}"
    );
    wait_for("pod removal", 6, || async { Ok(pods.get_opt("victim").await?.is_none().then_some(())) }).await?;
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let l = events.list(&ListParams::default()).await?;
    let killing = l.items.iter().find(|e| e.reason.as_deref() == Some("Killing"));
    assert_eq!(killing.and_then(|e| e.message.as_deref()), Some("Stopping container app"));
    Ok(())
}
