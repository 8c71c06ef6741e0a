//! Test harness: an in-process apiserver, the Deployment controller, and a minimal
//! stand-in for the ReplicaSet controller plus a "kubelet" (pods to match each RS's
//! replicas; pods become Running+Ready after a short delay unless their image is
//! `never-ready`; RS status counts them).
#![allow(dead_code)]

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NS: &str = "default";
pub const NEVER_READY: &str = "never-ready";

pub struct Harness {
    pub env: rkube_apiserver::testenv::TestEnv,
    pub client: Client,
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
    /// Deployment controller + stand-in ReplicaSet controller + kubelet.
    pub async fn start() -> Result<Self> {
        Self::start_with(false).await
    }

    /// Deployment controller + the real ReplicaSet controller + the test kubelet.
    pub async fn start_with_replicaset_controller() -> Result<Self> {
        Self::start_with(true).await
    }

    /// Like [`Harness::start`], but the stand-in ReplicaSet controller deletes a scaled-down
    /// ReplicaSet's excess pods only `delay` after it first sees them (a busy controller), while
    /// it creates pods at once; its status counts the pods that still exist.
    pub async fn start_with_deletion_delay(delay: Duration) -> Result<Self> {
        Self::start_sim(false, delay).await
    }

    async fn start_with(real_rs: bool) -> Result<Self> {
        Self::start_sim(real_rs, Duration::ZERO).await
    }

    async fn start_sim(real_rs: bool, deletion_delay: Duration) -> Result<Self> {
        let env = rkube_apiserver::testenv::TestEnv::start().await?;
        let client = env.client();
        let mut tasks = Vec::new();
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_controller_deployment::run(c, rkube_controller_deployment::Config::default()).await;
        }));
        if real_rs {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                let _ = rkube_controller_replicaset::run(c, rkube_controller_replicaset::Config::default()).await;
            }));
        }
        let c = client.clone();
        tasks.push(tokio::spawn(async move { simulate(c, !real_rs, deletion_delay).await }));
        Ok(Self { env, client, tasks })
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }
}

/// A Deployment manifest (apps/v1, selector app=<name>).
pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap_or_default()
}

/// Polls `f` every 50 ms until it returns Some, or fails after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> Result<T>
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

/// What `kubectl rollout status` checks: the rollout of the current generation is done.
pub fn rollout_done(d: &Deployment) -> bool {
    let Some(s) = d.status.as_ref() else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

pub async fn wait_rollout(h: &Harness, name: &str, secs: u64) -> Result<Deployment> {
    let api = h.deployments();
    eventually(secs, &format!("rollout of {name}"), || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let d = api.get(&name).await?;
            Ok(rollout_done(&d).then_some(d))
        }
    })
    .await
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn image_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone())
}

fn owner_uid(p: &Pod) -> Option<String> {
    p.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true)).map(|o| o.uid.clone())
}

/// Stand-in ReplicaSet controller + kubelet.
async fn simulate(client: Client, manage_pods: bool, deletion_delay: Duration) {
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut excess_since: HashMap<String, Instant> = HashMap::new();
    loop {
        let delays = Delays { deletion: deletion_delay, excess_since: &mut excess_since };
        if let Err(e) = sim_round(&rss, &pods, &mut first_seen, manage_pods, delays).await {
            tracing::debug!(error = %e, "sim round failed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How late the stand-in ReplicaSet controller deletes: since when (per ReplicaSet UID) it has
/// seen too many pods.
struct Delays<'a> {
    deletion: Duration,
    excess_since: &'a mut HashMap<String, Instant>,
}

async fn sim_round(
    rss: &Api<ReplicaSet>,
    pods: &Api<Pod>,
    first_seen: &mut HashMap<String, Instant>,
    manage_pods: bool,
    delays: Delays<'_>,
) -> Result<()> {
    let rs_list = rss.list(&ListParams::default()).await?.items;
    let mut pod_list: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    // Deletions first (all ReplicaSets), then creations: never more pods than the specs sum
    // (unless deletions are delayed, see `Delays`).
    for rs in rs_list.iter().filter(|_| manage_pods) {
        let uid = rs.uid().unwrap_or_default();
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as usize;
        let mut owned: Vec<Pod> = pod_list.iter().filter(|p| owner_uid(p).as_deref() == Some(&uid)).cloned().collect();
        if owned.len() <= want {
            delays.excess_since.remove(&uid);
        } else if delays.excess_since.entry(uid.clone()).or_insert_with(Instant::now).elapsed() < delays.deletion {
            // Not yet: the pods keep running (and counting in the status) meanwhile.
        } else {
            delays.excess_since.remove(&uid);
            owned.sort_by_key(|p| (is_ready(p), std::cmp::Reverse(p.metadata.creation_timestamp.clone())));
            for p in owned.iter().take(owned.len() - want) {
                let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                let _ = pods.delete(&p.name_any(), &dp).await;
                pod_list.retain(|q| q.metadata.uid != p.metadata.uid);
            }
        }
    }
    for rs in rs_list.iter().filter(|_| manage_pods) {
        let uid = rs.uid().unwrap_or_default();
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as usize;
        let have = pod_list.iter().filter(|p| owner_uid(p).as_deref() == Some(&uid)).count();
        let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
        for _ in have..want {
            let pod = Pod {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}-", rs.name_any())),
                    namespace: Some(NS.into()),
                    labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: rs.name_any(),
                        uid: uid.clone(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]),
                    ..Default::default()
                },
                spec: template.spec.clone(),
                status: None,
            };
            let created = pods.create(&PostParams::default(), &pod).await?;
            pod_list.push(created);
        }
    }
    // Kubelet: pods become Running+Ready 100 ms after creation (never for NEVER_READY).
    let now = k8s_openapi::jiff::Timestamp::now();
    for p in pod_list.iter_mut() {
        if is_ready(p) || image_of(p).as_deref() == Some(NEVER_READY) {
            continue;
        }
        let seen = *first_seen.entry(p.uid().unwrap_or_default()).or_insert_with(Instant::now);
        if seen.elapsed() < Duration::from_millis(100) {
            continue;
        }
        let status = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let patch = json!({"status": status});
        if let Ok(updated) = pods.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            *p = updated;
        }
    }
    // RS status from the pods as they are now.
    for rs in rs_list.iter().filter(|_| manage_pods) {
        let uid = rs.uid().unwrap_or_default();
        let owned: Vec<&Pod> = pod_list.iter().filter(|p| owner_uid(p).as_deref() == Some(&uid)).collect();
        let ready = owned.iter().filter(|p| is_ready(p)).count() as i32;
        let status = ReplicaSetStatus {
            replicas: owned.len() as i32,
            fully_labeled_replicas: Some(owned.len() as i32),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            observed_generation: rs.metadata.generation,
            conditions: None,
            terminating_replicas: None,
        };
        let current = rs.status.clone().unwrap_or_default();
        if current != status {
            let mut copy = rs.clone();
            copy.status = Some(status);
            let _ = rss.replace_status(&rs.name_any(), &PostParams::default(), &copy).await;
        }
    }
    Ok(())
}

/// Per controller-owner UID: (non-terminating pods, ready pods).
pub type Sample = HashMap<String, (usize, usize)>;

/// Watches pods and records, at every event, (non-terminating pods, available pods) per owner UID.
pub struct PodWatch {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    pub fn start(client: Client) -> Self {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let s = samples.clone();
        let api: Api<Pod> = Api::namespaced(client, NS);
        let task = tokio::spawn(async move {
            let mut live: HashMap<String, Pod> = HashMap::new();
            let mut initial: HashMap<String, Pod> = HashMap::new();
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                match ev {
                    watcher::Event::Init => {
                        initial.clear();
                        continue;
                    }
                    watcher::Event::InitApply(p) => {
                        if p.metadata.deletion_timestamp.is_none() {
                            initial.insert(p.name_any(), p);
                        }
                        continue;
                    }
                    watcher::Event::InitDone => live = std::mem::take(&mut initial),
                    watcher::Event::Apply(p) => {
                        if p.metadata.deletion_timestamp.is_some() {
                            live.remove(&p.name_any());
                        } else {
                            live.insert(p.name_any(), p);
                        }
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.name_any());
                    }
                }
                let mut sample: HashMap<String, (usize, usize)> = HashMap::new();
                for p in live.values() {
                    let e = sample.entry(owner_uid(p).unwrap_or_default()).or_default();
                    e.0 += 1;
                    if is_ready(p) {
                        e.1 += 1;
                    }
                }
                if let Ok(mut v) = s.lock() {
                    v.push(sample);
                }
            }
        });
        Self { samples, task }
    }

    pub fn samples(&self) -> Vec<HashMap<String, (usize, usize)>> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
