//! The HPA controller against an in-process apiserver, with the real Deployment and ReplicaSet
//! controllers, a fake kubelet (pods become Running+Ready shortly after creation) and a load
//! simulator that spreads a total CPU load evenly over the running pods through the
//! `sim.rkube.io/cpu-usage` annotation, read by the annotation-based metrics source.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rkube_controller_horizontalpodautoscaler::metrics::{AnnotationMetrics, CPU_USAGE_ANNOTATION};
use rkube_controller_horizontalpodautoscaler::{Config, run_with_metrics};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

const NS: &str = "default";
/// Pods with this image stay Pending.
const NEVER_STARTS: &str = "never-starts";

struct Harness {
    _env: rkube_apiserver::testenv::TestEnv,
    client: Client,
    /// Total CPU load of the app, in millicores.
    load: Arc<AtomicI64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Harness {
    async fn start(config: Config) -> Result<Self> {
        let env = rkube_apiserver::testenv::TestEnv::start().await?;
        let client = env.client();
        let load = Arc::new(AtomicI64::new(0));
        let mut tasks = Vec::new();
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_controller_deployment::run(c, rkube_controller_deployment::Config::default()).await;
        }));
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_controller_replicaset::run(c, rkube_controller_replicaset::Config::default()).await;
        }));
        let c = client.clone();
        let l = load.clone();
        tasks.push(tokio::spawn(async move { kubelet_and_load(c, l).await }));
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let metrics = Arc::new(AnnotationMetrics::new(c.clone()));
            let _ = run_with_metrics(c, config, metrics).await;
        }));
        Ok(Self { _env: env, client, load, tasks })
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn hpas(&self) -> Api<HorizontalPodAutoscaler> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn set_load(&self, millicores: i64) {
        self.load.store(millicores, Ordering::SeqCst);
    }

    async fn replicas(&self, name: &str) -> Result<i32> {
        Ok(self.deployments().get(name).await?.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    async fn wait_replicas(&self, name: &str, want: i32, secs: u64) -> Result<()> {
        eventually(secs, &format!("{name} at {want} replicas"), || async move {
            Ok((self.replicas(name).await? == want).then_some(()))
        })
        .await
    }

    async fn condition(&self, hpa: &str, type_: &str) -> Result<Option<(String, String)>> {
        let h = self.hpas().get(hpa).await?;
        Ok(h.status
            .and_then(|s| s.conditions)
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == type_))
            .map(|c| (c.status, c.reason.unwrap_or_default())))
    }

    async fn wait_condition(&self, hpa: &str, type_: &str, status: &str, reason: &str, secs: u64) -> Result<()> {
        eventually(secs, &format!("{type_}={status} ({reason})"), || async move {
            Ok((self.condition(hpa, type_).await? == Some((status.into(), reason.into()))).then_some(()))
        })
        .await
    }

    async fn events(&self) -> Result<Vec<Event>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), NS);
        Ok(api.list(&ListParams::default()).await?.items)
    }

    async fn wait_event(&self, reason: &str, note: &str, secs: u64) -> Result<Event> {
        eventually(secs, &format!("event {reason}: {note}"), || async move {
            Ok(self
                .events()
                .await?
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason) && e.note.as_deref().is_some_and(|n| n.contains(note))))
        })
        .await
    }
}

async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast_config() -> Config {
    Config {
        sync_period: Duration::from_millis(700),
        downscale_stabilization: Duration::from_secs(2),
        ..Default::default()
    }
}

fn deployment(name: &str, replicas: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}]}
            }
        }
    }))?)
}

fn hpa(name: &str, min: i32, max: i32, behavior: Option<serde_json::Value>) -> Result<HorizontalPodAutoscaler> {
    let mut v = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
        }
    });
    if let Some(b) = behavior {
        v["spec"]["behavior"] = b;
    }
    Ok(serde_json::from_value(v)?)
}

/// Fake kubelet (pods become Running+Ready with a start time ~100 ms after creation) and load
/// simulator (each running `app=web` pod's cpu-usage annotation = total load / those pods).
async fn kubelet_and_load(client: Client, load: Arc<AtomicI64>) {
    let pods: Api<Pod> = Api::namespaced(client, NS);
    loop {
        let _ = kubelet_round(&pods, &load).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kubelet_round(pods: &Api<Pod>, load: &AtomicI64) -> Result<()> {
    let list = pods.list(&ListParams::default()).await?.items;
    let live: Vec<&Pod> = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let now = k8s_openapi::jiff::Timestamp::now();
    for p in &live {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let age =
            p.metadata.creation_timestamp.as_ref().map(|t| now.duration_since(t.0).as_millis_f64()).unwrap_or(0.0);
        let image = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.as_deref());
        if !running && age >= 100.0 && image != Some(NEVER_STARTS) {
            let t = Time(now);
            let status = json!({"status": {
                "phase": "Running",
                "startTime": t,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}]
            }});
            let _ = pods.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
        }
    }
    let running: Vec<&&Pod> = live
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter(|p| p.labels().get("app").map(String::as_str) == Some("web"))
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    let per_pod = load.load(Ordering::SeqCst) / running.len() as i64;
    let want = format!("{per_pod}m");
    for p in running {
        if p.annotations().get(CPU_USAGE_ANNOTATION) != Some(&want) {
            let patch = json!({"metadata": {"annotations": {CPU_USAGE_ANNOTATION: want}}});
            let _ = pods.patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
        }
    }
    Ok(())
}

#[tokio::test]
async fn scales_up_with_load_and_down_after_stabilization() -> Result<()> {
    let h = Harness::start(fast_config()).await?;
    h.set_load(20);
    h.deployments().create(&PostParams::default(), &deployment("web", 1)?).await?;
    h.hpas().create(&PostParams::default(), &hpa("web", 1, 10, None)?).await?;
    // 20% of request against a 50% target: no change, metrics found.
    h.wait_condition("web", "ScalingActive", "True", "ValidMetricFound", 10).await?;
    assert_eq!(h.replicas("web").await?, 1);

    // 300m on one pod = 300%: wants 6, limited to max(2×1, 4) = 4 first, then 6 (50m each = 50%).
    h.set_load(300);
    h.wait_event(
        "SuccessfulRescale",
        "New size: 4; reason: cpu resource utilization (percentage of request) above target",
        10,
    )
    .await?;
    h.wait_replicas("web", 6, 15).await?;
    let s = h.hpas().get("web").await?;
    let st = s.status.clone().unwrap_or_default();
    assert!(st.last_scale_time.is_some());
    assert_eq!(st.observed_generation, s.metadata.generation);
    let current = st.current_metrics.unwrap_or_default();
    assert_eq!(current.len(), 1);
    let cpu = current[0].resource.clone().unwrap_or_default();
    assert_eq!(cpu.name, "cpu");
    assert!(cpu.current.average_utilization.is_some() && cpu.current.average_value.is_some());
    // It stays at 6 (50% = target).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(h.replicas("web").await?, 6);
    let st = h.hpas().get("web").await?.status.unwrap_or_default();
    assert_eq!((st.current_replicas, st.desired_replicas), (Some(6), 6));

    // Load drops: 30m over 6 pods = 5% → wants 1, but only after the 2 s window.
    h.set_load(30);
    let dropped = Instant::now();
    h.wait_condition("web", "AbleToScale", "True", "ScaleDownStabilized", 10).await?;
    h.wait_replicas("web", 1, 15).await?;
    // The last "6" recommendation was made at most one sync period (0.7 s) before the drop, and
    // holds for the 2 s window.
    assert!(dropped.elapsed() >= Duration::from_millis(1250), "scale-down waited for the stabilization window");
    h.wait_event("SuccessfulRescale", "New size: 1; reason: All metrics below target", 5).await?;
    Ok(())
}

#[tokio::test]
async fn min_and_max_replicas_bound_the_size() -> Result<()> {
    let h = Harness::start(fast_config()).await?;
    h.set_load(10);
    h.deployments().create(&PostParams::default(), &deployment("web", 1)?).await?;
    h.hpas().create(&PostParams::default(), &hpa("web", 2, 3, None)?).await?;
    // Below minReplicas: raised to 2 whatever the metrics say.
    h.wait_event("SuccessfulRescale", "New size: 2; reason: Current number of replicas below Spec.MinReplicas", 10)
        .await?;
    h.wait_replicas("web", 2, 5).await?;
    // Low load keeps it at the minimum: TooFewReplicas.
    h.wait_condition("web", "ScalingLimited", "True", "TooFewReplicas", 10).await?;
    // High load: capped at maxReplicas.
    h.set_load(1000);
    h.wait_replicas("web", 3, 10).await?;
    h.wait_condition("web", "ScalingLimited", "True", "TooManyReplicas", 10).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.replicas("web").await?, 3);
    Ok(())
}

#[tokio::test]
async fn behavior_policies_limit_the_step() -> Result<()> {
    let h = Harness::start(fast_config()).await?;
    h.set_load(20);
    h.deployments().create(&PostParams::default(), &deployment("web", 1)?).await?;
    let behavior = json!({
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 0}
    });
    h.hpas().create(&PostParams::default(), &hpa("web", 1, 10, Some(behavior))?).await?;
    h.wait_condition("web", "ScalingActive", "True", "ValidMetricFound", 10).await?;
    h.set_load(800);
    // One pod per minute: 1 → 2, then held there with ScaleUpLimit.
    h.wait_replicas("web", 2, 10).await?;
    h.wait_condition("web", "ScalingLimited", "True", "ScaleUpLimit", 10).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.replicas("web").await?, 2);
    Ok(())
}

#[tokio::test]
async fn failure_conditions_and_events() -> Result<()> {
    let h = Harness::start(fast_config()).await?;
    // No target.
    h.hpas().create(&PostParams::default(), &hpa("missing", 1, 5, None)?).await?;
    h.wait_condition("missing", "AbleToScale", "False", "FailedGetScale", 10).await?;
    h.wait_event("FailedGetScale", "not found", 5).await?;
    // A target whose pods report no CPU usage.
    let mut quiet = deployment("quiet", 2)?;
    if let Some(c) = quiet.spec.as_mut().and_then(|s| s.template.spec.as_mut()).and_then(|s| s.containers.first_mut()) {
        c.image = Some(NEVER_STARTS.into());
    }
    h.deployments().create(&PostParams::default(), &quiet).await?;
    h.hpas().create(&PostParams::default(), &hpa("quiet", 1, 5, None)?).await?;
    // Pods that never start have no metrics at all.
    h.wait_condition("quiet", "ScalingActive", "False", "FailedGetResourceMetric", 10).await?;
    h.wait_event("FailedGetResourceMetric", "failed to get cpu utilization: unable to get metrics for resource cpu", 5)
        .await?;
    h.wait_event("FailedComputeMetricsReplicas", "invalid metrics (1 invalid out of 1)", 5).await?;
    assert_eq!(h.replicas("quiet").await?, 2, "no scaling without metrics");
    Ok(())
}

#[tokio::test]
async fn api_metrics_source_reads_metrics_k8s_io() -> Result<()> {
    use rkube_controller_horizontalpodautoscaler::metrics::{ApiMetrics, MetricsSource, resource_metric};
    let env = rkube_apiserver::testenv::TestEnv::start().await?;
    let pods: Api<Pod> = Api::namespaced(env.client(), NS);
    for (name, app) in [("m1", "m"), ("m2", "m"), ("other", "x")] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": app}, "annotations": {CPU_USAGE_ANNOTATION: "150m"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        let status = json!({"status": {"phase": "Running"}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    }
    let source = ApiMetrics::new(env.client());
    let samples = source.pod_metrics(NS, "app=m").await?;
    let mut names: Vec<&str> = samples.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["m1", "m2"]);
    let (cpu, _) = resource_metric(&samples, "cpu", None).map_err(anyhow::Error::msg)?;
    assert_eq!(cpu.get("m1").map(|m| m.value), Some(300), "150m in each of two containers");
    let (cpu_a, _) = resource_metric(&samples, "cpu", Some("a")).map_err(anyhow::Error::msg)?;
    assert_eq!(cpu_a.get("m2").map(|m| m.value), Some(150));
    Ok(())
}
