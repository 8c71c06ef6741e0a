//! The DaemonSet controller against an in-process apiserver, with the real scheduler and a test
//! "kubelet" (bound pods become Running+Ready after 100 ms; deleted pods are finalized at once).

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NS: &str = "default";

struct Harness {
    _env: rkube_apiserver::testenv::TestEnv,
    client: Client,
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
    async fn start() -> Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let env = rkube_apiserver::testenv::TestEnv::start().await?;
        let client = env.client();
        let mut tasks = Vec::new();
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_controller_daemonset::run(c, rkube_controller_daemonset::Config::default()).await;
        }));
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_scheduler::run(c, rkube_scheduler::Config::default()).await;
        }));
        let c = client.clone();
        tasks.push(tokio::spawn(async move { kubelet(c).await }));
        Ok(Self { _env: env, client, tasks })
    }

    fn ds(&self) -> Api<DaemonSet> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    async fn add_node(&self, name: &str, labels: Value, taints: Value) -> Result<()> {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))?;
        self.nodes().create(&PostParams::default(), &node).await?;
        let status = json!({"status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }});
        self.nodes().patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
        Ok(())
    }
}

/// Test kubelet: finalizes deletions, marks bound pods Running+Ready 100 ms after binding.
async fn kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut seen: HashMap<String, Instant> = HashMap::new();
    loop {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for p in list.items {
                let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
                if p.metadata.deletion_timestamp.is_some() {
                    let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                    let _ = api.delete(&p.name_any(), &dp).await;
                    continue;
                }
                let bound = p.spec.as_ref().and_then(|s| s.node_name.clone()).is_some();
                if !bound || is_ready(&p) {
                    continue;
                }
                let first = *seen.entry(p.uid().unwrap_or_default()).or_insert_with(Instant::now);
                if first.elapsed() < Duration::from_millis(100) {
                    continue;
                }
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}
                ]}});
                let _ = api.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn image_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone())
}

fn daemonset(name: &str, image: &str, extra_spec: Value, strategy: Value) -> Result<DaemonSet> {
    let mut pod_spec = json!({"containers": [{"name": "c", "image": image}]});
    if let (Some(m), Some(extra)) = (pod_spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}
        }
    }))?)
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

/// Live (non-terminating) pods of the DaemonSet by node.
async fn pods_by_node(h: &Harness, app: &str) -> Result<BTreeMap<String, Vec<Pod>>> {
    let lp = ListParams::default().labels(&format!("app={app}"));
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in h.pods().list(&lp).await?.items {
        if p.metadata.deletion_timestamp.is_none() {
            out.entry(node_of(&p).unwrap_or_default()).or_default().push(p);
        }
    }
    Ok(out)
}

/// What `kubectl rollout status daemonset` checks.
fn rollout_done(d: &DaemonSet) -> bool {
    let Some(s) = d.status.as_ref() else { return false };
    s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && s.updated_number_scheduled.unwrap_or(0) >= s.desired_number_scheduled
        && s.number_available.unwrap_or(0) >= s.desired_number_scheduled
}

async fn wait_rollout(h: &Harness, name: &str, desired: i32, secs: u64) -> Result<DaemonSet> {
    eventually(secs, &format!("rollout of {name}"), || async {
        let d = h.ds().get(name).await?;
        let ok = rollout_done(&d) && d.status.as_ref().is_some_and(|s| s.desired_number_scheduled == desired);
        Ok(ok.then_some(d))
    })
    .await
}

/// Records, at every pod event, the number of ready non-terminating pods per node.
struct Sampler {
    samples: Arc<Mutex<Vec<BTreeMap<String, usize>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sampler {
    fn start(client: Client, app: &str) -> Self {
        let samples: Arc<Mutex<Vec<BTreeMap<String, usize>>>> = Arc::default();
        let s = samples.clone();
        let api: Api<Pod> = Api::namespaced(client, NS);
        let cfg = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut live: HashMap<String, Pod> = HashMap::new();
            let mut stream = watcher(api, cfg).boxed();
            while let Some(Ok(ev)) = stream.next().await {
                match ev {
                    watcher::Event::InitApply(p) => {
                        // Sample only once the initial list is complete.
                        live.insert(p.name_any(), p);
                        continue;
                    }
                    watcher::Event::Init => continue,
                    watcher::Event::InitDone => {}
                    watcher::Event::Apply(p) => {
                        live.insert(p.name_any(), p);
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.name_any());
                    }
                }
                let mut sample: BTreeMap<String, usize> = BTreeMap::new();
                for p in live.values() {
                    let e = sample.entry(node_of(p).unwrap_or_default()).or_default();
                    if p.metadata.deletion_timestamp.is_none() && is_ready(p) {
                        *e += 1;
                    }
                }
                if let Ok(mut v) = s.lock() {
                    v.push(sample);
                }
            }
        });
        Self { samples, task }
    }

    fn samples(&self) -> Vec<BTreeMap<String, usize>> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

async fn set_image(h: &Harness, name: &str, image: &str) -> Result<()> {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    h.ds().patch(name, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    Ok(())
}

#[tokio::test]
async fn one_pod_per_eligible_node_following_nodes() -> Result<()> {
    let h = Harness::start().await?;
    h.add_node("n1", json!({"disk": "ssd"}), json!([])).await?;
    h.add_node("n2", json!({"disk": "ssd"}), json!([])).await?;
    h.add_node("n3", json!({}), json!([])).await?;
    h.add_node("n4", json!({"disk": "ssd"}), json!([{"key": "dedicated", "effect": "NoSchedule"}])).await?;
    let ds = daemonset("agent", "agent:1", json!({"nodeSelector": {"disk": "ssd"}}), json!({"type": "RollingUpdate"}))?;
    h.ds().create(&PostParams::default(), &ds).await?;

    let d = wait_rollout(&h, "agent", 2, 15).await?;
    let by_node = pods_by_node(&h, "agent").await?;
    assert_eq!(by_node.keys().cloned().collect::<Vec<_>>(), ["n1", "n2"]);
    assert!(by_node.values().all(|v| v.len() == 1));
    let s = d.status.clone().unwrap_or_default();
    assert_eq!((s.current_number_scheduled, s.number_ready, s.number_misscheduled), (2, 2, 0));
    assert_eq!(s.number_unavailable, Some(0));
    // Pods are pinned by node affinity and carry the daemon tolerations and the revision hash.
    let p = &by_node["n1"][0];
    let spec = serde_json::to_value(p.spec.clone())?;
    assert_eq!(
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"]
            [0],
        json!({"key": "metadata.name", "operator": "In", "values": ["n1"]})
    );
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    assert!(tolerations.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"));
    let revs: Api<ControllerRevision> = Api::namespaced(h.client.clone(), NS);
    let rev_list = revs.list(&ListParams::default()).await?.items;
    assert_eq!(rev_list.len(), 1);
    let hash = p.labels().get("controller-revision-hash").cloned().unwrap_or_default();
    assert_eq!(rev_list[0].name_any(), format!("agent-{hash}"));

    // A node that becomes eligible gets a pod.
    let label = json!({"metadata": {"labels": {"disk": "ssd"}}});
    h.nodes().patch("n3", &PatchParams::default(), &Patch::Merge(&label)).await?;
    wait_rollout(&h, "agent", 3, 15).await?;
    assert!(pods_by_node(&h, "agent").await?.contains_key("n3"));

    // A deleted node loses its pod; a NoExecute taint evicts.
    h.nodes().delete("n1", &DeleteParams::default()).await?;
    let taint = json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}});
    h.nodes().patch("n2", &PatchParams::default(), &Patch::Merge(&taint)).await?;
    eventually(15, "pods leave n1 and n2", || async {
        let by_node = pods_by_node(&h, "agent").await?;
        Ok((by_node.keys().cloned().collect::<Vec<_>>() == ["n3"]).then_some(()))
    })
    .await?;
    wait_rollout(&h, "agent", 1, 15).await?;
    Ok(())
}

#[tokio::test]
async fn rolling_update_with_max_unavailable_one() -> Result<()> {
    let h = Harness::start().await?;
    for n in ["a", "b", "c", "d"] {
        h.add_node(n, json!({}), json!([])).await?;
    }
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}});
    h.ds().create(&PostParams::default(), &daemonset("web", "web:1", json!({}), strategy)?).await?;
    wait_rollout(&h, "web", 4, 15).await?;
    let sampler = Sampler::start(h.client.clone(), "web");
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_image(&h, "web", "web:2").await?;
    wait_rollout(&h, "web", 4, 20).await?;
    let by_node = pods_by_node(&h, "web").await?;
    assert_eq!(by_node.len(), 4);
    assert!(by_node.values().all(|v| v.len() == 1 && image_of(&v[0]).as_deref() == Some("web:2")));
    let samples = sampler.samples();
    assert!(samples.len() > 4, "too few samples: {}", samples.len());
    for s in &samples {
        let without_ready = ["a", "b", "c", "d"].iter().filter(|n| s.get(**n).copied().unwrap_or(0) == 0).count();
        assert!(without_ready <= 1, "two nodes without a ready pod: {s:?}");
    }
    Ok(())
}

#[tokio::test]
async fn rolling_update_with_max_surge_keeps_every_node_ready() -> Result<()> {
    let h = Harness::start().await?;
    for n in ["a", "b", "c"] {
        h.add_node(n, json!({}), json!([])).await?;
    }
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    h.ds().create(&PostParams::default(), &daemonset("surge", "s:1", json!({}), strategy)?).await?;
    wait_rollout(&h, "surge", 3, 15).await?;
    let sampler = Sampler::start(h.client.clone(), "surge");
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_image(&h, "surge", "s:2").await?;
    if let Err(e) = wait_rollout(&h, "surge", 3, 20).await {
        let d = h.ds().get("surge").await?;
        eprintln!("STATUS {:?}", d.status);
        for p in h.pods().list(&ListParams::default()).await?.items {
            eprintln!(
                "POD {} node={:?} img={:?} ready={} del={:?} labels={:?}",
                p.name_any(),
                node_of(&p),
                image_of(&p),
                is_ready(&p),
                p.metadata.deletion_timestamp,
                p.metadata.labels
            );
        }
        return Err(e);
    }
    let by_node = eventually(10, "old pods gone", || async {
        let by_node = pods_by_node(&h, "surge").await?;
        Ok(by_node.values().all(|v| v.len() == 1).then_some(by_node))
    })
    .await?;
    assert!(by_node.values().all(|v| image_of(&v[0]).as_deref() == Some("s:2")));
    let samples = sampler.samples();
    let mut saw_two = false;
    for s in &samples {
        for n in ["a", "b", "c"] {
            let ready = s.get(n).copied().unwrap_or(0);
            assert!(ready >= 1, "node {n} without a ready pod: {s:?}");
            saw_two |= ready >= 2;
        }
    }
    assert!(saw_two, "surge never ran old and new pods side by side");
    Ok(())
}

#[tokio::test]
async fn rollback_through_controller_revisions() -> Result<()> {
    let h = Harness::start().await?;
    for n in ["a", "b"] {
        h.add_node(n, json!({}), json!([])).await?;
    }
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}});
    let mut ds = daemonset("app", "app:1", json!({}), strategy)?;
    if let Some(s) = ds.spec.as_mut() {
        s.revision_history_limit = Some(1);
    }
    h.ds().create(&PostParams::default(), &ds).await?;
    wait_rollout(&h, "app", 2, 15).await?;
    set_image(&h, "app", "app:2").await?;
    wait_rollout(&h, "app", 2, 15).await?;

    let revs: Api<ControllerRevision> = Api::namespaced(h.client.clone(), NS);
    let mut list = revs.list(&ListParams::default().labels("app=app")).await?.items;
    list.sort_by_key(|r| r.revision);
    assert_eq!(list.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    // What `kubectl rollout undo daemonset/app` does: apply revision 1's data as a strategic merge patch.
    let data = list[0].data.clone().map(|d| d.0).unwrap_or_default();
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    h.ds().patch("app", &PatchParams::default(), &Patch::Strategic(&data)).await?;
    let d = h.ds().get("app").await?;
    let image = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    assert_eq!(image.as_deref(), Some("app:1"));
    wait_rollout(&h, "app", 2, 15).await?;
    let by_node = pods_by_node(&h, "app").await?;
    assert!(by_node.values().all(|v| v.len() == 1 && image_of(&v[0]).as_deref() == Some("app:1")));
    // The old revision is reused and renumbered; history stays within revisionHistoryLimit.
    let list = eventually(10, "revision renumbered", || async {
        let mut list = revs.list(&ListParams::default().labels("app=app")).await?.items;
        list.sort_by_key(|r| r.revision);
        let ok = list.len() == 2 && list.iter().map(|r| r.revision).collect::<Vec<_>>() == [2, 3];
        Ok(ok.then_some(list))
    })
    .await?;
    let hash = by_node.values().next().and_then(|v| v[0].labels().get("controller-revision-hash").cloned());
    assert_eq!(list[1].labels().get("controller-revision-hash").cloned(), hash);
    Ok(())
}
