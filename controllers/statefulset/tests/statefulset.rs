//! The StatefulSet controller against an in-process apiserver (TestEnv), with a fake "kubelet"
//! (pods become Running + Ready on a node, terminating pods are removed), the garbage collector
//! and the local-path provisioner.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_statefulset::identity::{POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(15);

struct Harness {
    _env: TestEnv,
    _dir: Option<tempfile::TempDir>,
    client: Client,
    /// While false, the fake kubelet leaves pods alone (not ready).
    kubelet_on: Arc<AtomicBool>,
    /// Pod names in the order the kubelet first saw them.
    seen: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Harness {
    async fn start(with_storage: bool) -> Result<Self> {
        let env = TestEnv::start().await?;
        let client = env.client();
        let mut tasks = Vec::new();
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_controller_statefulset::run(c, Default::default()).await;
        }));
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let _ = rkube_controller_garbagecollector::run(c, Default::default()).await;
        }));
        let mut dir = None;
        if with_storage {
            let tmp = tempfile::tempdir()?;
            let root = tmp.path().to_path_buf();
            dir = Some(tmp);
            let c = client.clone();
            let config = rkube_controller_localpath::Config { root, ..Default::default() };
            tasks.push(tokio::spawn(async move {
                let _ = rkube_controller_localpath::run(c, config).await;
            }));
        }
        let kubelet_on = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        tasks.push(fake_kubelet(client.clone(), kubelet_on.clone(), seen.clone()));
        Ok(Self { _env: env, _dir: dir, client, kubelet_on, seen, tasks })
    }

    fn sets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), NS)
    }
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }
    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), NS)
    }
    fn revisions(&self) -> Api<ControllerRevision> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create(&self, set: Value) -> Result<StatefulSet> {
        let set: StatefulSet = serde_json::from_value(set)?;
        Ok(self.sets().create(&PostParams::default(), &set).await?)
    }

    async fn patch(&self, name: &str, patch: Value) -> Result<StatefulSet> {
        let mut attempts = 0;
        loop {
            match self.sets().patch(name, &PatchParams::default(), &Patch::Strategic(patch.clone())).await {
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 20 => attempts += 1,
                other => return Ok(other?),
            }
        }
    }

    /// Live (not terminating) pod names, sorted.
    async fn live_pods(&self) -> Result<Vec<Pod>> {
        let mut pods: Vec<Pod> = self
            .pods()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by_key(|p| p.name_any());
        Ok(pods)
    }

    async fn pod_names(&self) -> Result<Vec<String>> {
        Ok(self.live_pods().await?.iter().map(|p| p.name_any()).collect())
    }

    async fn wait_pods(&self, want: &[&str]) -> Result<Vec<Pod>> {
        eventually(&format!("pods {want:?}"), || async {
            let pods = self.live_pods().await?;
            let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
            Ok((names == want).then_some(pods))
        })
        .await
    }

    async fn wait_status(&self, name: &str, f: impl Fn(&StatefulSet) -> bool) -> Result<StatefulSet> {
        eventually(&format!("status of {name}"), || async {
            let s = self.sets().get(name).await?;
            Ok(f(&s).then_some(s))
        })
        .await
    }
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn mark_ready(client: &Client, pod: &Pod) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let name = pod.name_any();
    if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
        // Bind it (as the scheduler would) so that WaitForFirstConsumer claims get provisioned.
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": NS},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}
        });
        let req = http_post(&format!("/api/v1/namespaces/{NS}/pods/{name}/binding"), &binding)?;
        let _ = client.request_text(req).await;
    }
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

fn http_post(path: &str, body: &Value) -> Result<http::Request<Vec<u8>>> {
    Ok(http::Request::post(path).header("content-type", "application/json").body(serde_json::to_vec(body)?)?)
}

/// A fake kubelet: pods become Running + Ready on node-1 (while switched on); terminating pods are
/// removed (grace period 0).
fn fake_kubelet(client: Client, on: Arc<AtomicBool>, seen: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let name = p.name_any();
                    if let Ok(mut s) = seen.lock()
                        && !s.contains(&name)
                    {
                        s.push(name.clone());
                    }
                    if p.metadata.deletion_timestamp.is_some() {
                        let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                        let _ = pods.delete(&name, &dp).await;
                    } else if on.load(Ordering::SeqCst) && !rkube_controller_common::pod::is_pod_ready(&p) {
                        let _ = mark_ready(&client, &p).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

fn sts(name: &str, replicas: i32, image: &str, extra: Value) -> Value {
    let mut v = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": format!("{name}-svc"),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            spec.insert(k.clone(), val.clone());
        }
    }
    v
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

#[tokio::test]
async fn ordered_ready_creates_one_at_a_time_with_identity() -> Result<()> {
    let h = Harness::start(false).await?;
    h.kubelet_on.store(false, Ordering::SeqCst);
    h.create(sts("web", 3, "nginx:1", json!({}))).await?;
    h.wait_pods(&["web-0"]).await?;
    // web-0 is not ready: web-1 must not appear.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.pod_names().await?, ["web-0"]);
    let p = h.pods().get("web-0").await?;
    assert_eq!(p.labels().get(POD_NAME_LABEL).map(String::as_str), Some("web-0"));
    assert_eq!(p.labels().get(POD_INDEX_LABEL).map(String::as_str), Some("0"));
    assert!(p.labels().get(REVISION_LABEL).is_some_and(|r| r.starts_with("web-")));
    let spec = p.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web-svc"));
    // Switch the kubelet on: the rest follow in order.
    h.kubelet_on.store(true, Ordering::SeqCst);
    h.wait_pods(&["web-0", "web-1", "web-2"]).await?;
    let s = h
        .wait_status("web", |s| {
            s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(3) && st.available_replicas == Some(3))
        })
        .await?;
    let st = s.status.clone().unwrap_or_default();
    assert_eq!(st.replicas, 3);
    assert_eq!(st.observed_generation, s.metadata.generation);
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!(st.current_replicas, Some(3));
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.collision_count, Some(0));
    let seen = h.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen, ["web-0", "web-1", "web-2"]);
    // One ControllerRevision, revision 1, named in status.
    let revs = h.revisions().list(&ListParams::default()).await?.items;
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].revision, 1);
    assert_eq!(Some(revs[0].name_any()), st.update_revision);

    // Scale down: highest ordinal first, one at a time.
    h.seen.lock().map(|mut s| s.clear()).ok();
    h.patch("web", json!({"spec": {"replicas": 1}})).await?;
    h.wait_pods(&["web-0"]).await?;
    h.wait_status("web", |s| s.status.as_ref().is_some_and(|st| st.replicas == 1 && st.ready_replicas == Some(1)))
        .await?;
    Ok(())
}

#[tokio::test]
async fn scale_down_is_reverse_and_waits_for_each_deletion() -> Result<()> {
    let h = Harness::start(false).await?;
    h.create(sts("db", 4, "pg:1", json!({}))).await?;
    h.wait_pods(&["db-0", "db-1", "db-2", "db-3"]).await?;
    h.wait_status("db", |s| s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(4))).await?;
    // Record the order pods disappear in.
    let gone = Arc::new(Mutex::new(Vec::<String>::new()));
    let g = gone.clone();
    let pods = h.pods();
    let watcher = tokio::spawn(async move {
        let mut last: BTreeSet<String> = ["db-0", "db-1", "db-2", "db-3"].iter().map(|s| s.to_string()).collect();
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                let now: BTreeSet<String> = list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any())
                    .collect();
                for n in last.difference(&now) {
                    g.lock().map(|mut v| v.push(n.clone())).ok();
                }
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    h.patch("db", json!({"spec": {"replicas": 1}})).await?;
    h.wait_pods(&["db-0"]).await?;
    // Let the recorder see the last disappearance.
    tokio::time::sleep(Duration::from_millis(200)).await;
    watcher.abort();
    let order = gone.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(order, ["db-3", "db-2", "db-1"]);
    Ok(())
}

#[tokio::test]
async fn parallel_creates_all_without_waiting() -> Result<()> {
    let h = Harness::start(false).await?;
    h.kubelet_on.store(false, Ordering::SeqCst);
    h.create(sts("par", 3, "nginx:1", json!({"podManagementPolicy": "Parallel"}))).await?;
    // None is ready, yet all three exist.
    h.wait_pods(&["par-0", "par-1", "par-2"]).await?;
    // Scaling down deletes all condemned pods at once, not-ready or not.
    h.patch("par", json!({"spec": {"replicas": 0}})).await?;
    h.wait_pods(&[]).await?;
    Ok(())
}

#[tokio::test]
async fn claims_are_created_per_ordinal_and_bound() -> Result<()> {
    let h = Harness::start(true).await?;
    let claims = json!({
        "volumeClaimTemplates": [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        }],
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"}
    });
    let set = h.create(sts("kv", 2, "kv:1", claims)).await?;
    h.wait_pods(&["kv-0", "kv-1"]).await?;
    for i in 0..2 {
        let name = format!("data-kv-{i}");
        let pvc = eventually(&format!("{name} bound"), || async {
            let c = h.claims().get_opt(&name).await?;
            Ok(c.filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")))
        })
        .await?;
        assert_eq!(pvc.labels().get("app").map(String::as_str), Some("kv"));
        let vol = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).context("volumeName")?;
        assert_eq!(vol, format!("pvc-{}", pvc.uid().unwrap_or_default()));
        // whenScaled=Delete only: no owner while in range.
        assert!(pvc.metadata.owner_references.as_ref().is_none_or(|o| o.is_empty()));
        let pod = h.pods().get(&format!("kv-{i}")).await?;
        let vols = pod.spec.and_then(|s| s.volumes).unwrap_or_default();
        let claim = vols.iter().find(|v| v.name == "data").and_then(|v| v.persistent_volume_claim.clone());
        assert_eq!(claim.map(|c| c.claim_name), Some(name));
    }
    // Scale down: kv-1's claim becomes owned by the pod and is garbage collected with it.
    h.patch("kv", json!({"spec": {"replicas": 1}})).await?;
    h.wait_pods(&["kv-0"]).await?;
    eventually("data-kv-1 deleted", || async { Ok(h.claims().get_opt("data-kv-1").await?.is_none().then_some(())) })
        .await?;
    assert!(h.claims().get_opt("data-kv-0").await?.is_some());
    // Deleting the set (whenDeleted=Retain) keeps data-kv-0.
    h.sets().delete("kv", &DeleteParams::default()).await?;
    h.wait_pods(&[]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = h.claims().get_opt("data-kv-0").await?.context("data-kv-0 kept")?;
    assert!(kept.metadata.owner_references.iter().flatten().all(|r| Some(&r.uid) != set.uid().as_ref()));
    Ok(())
}

#[tokio::test]
async fn when_deleted_delete_removes_claims_with_the_set() -> Result<()> {
    let h = Harness::start(true).await?;
    let claims = json!({
        "volumeClaimTemplates": [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        }],
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain", "whenDeleted": "Delete"}
    });
    let set = h.create(sts("q", 2, "q:1", claims)).await?;
    h.wait_pods(&["q-0", "q-1"]).await?;
    // whenScaled=Retain: scaling down keeps data-q-1 (owned by the set).
    h.patch("q", json!({"spec": {"replicas": 1}})).await?;
    h.wait_pods(&["q-0"]).await?;
    let c1 = h.claims().get("data-q-1").await?;
    let owner = c1.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.len(), 1);
    assert_eq!(Some(&owner[0].uid), set.uid().as_ref());
    assert_eq!(owner[0].controller, Some(true));
    h.sets().delete("q", &DeleteParams::default()).await?;
    eventually("claims deleted", || async {
        let left = h.claims().list(&ListParams::default()).await?.items;
        Ok(left.is_empty().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn rolling_update_reverse_order_with_partition_and_rollback() -> Result<()> {
    let h = Harness::start(false).await?;
    let strategy = json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
    h.create(sts("app", 3, "img:1", strategy)).await?;
    let s1 = h.wait_status("app", |s| s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(3))).await?;
    let rev1 = s1.status.as_ref().and_then(|s| s.update_revision.clone()).context("rev1")?;

    // Record the order pods are replaced in.
    h.seen.lock().map(|mut s| s.clear()).ok();
    let deleted = Arc::new(Mutex::new(Vec::<String>::new()));
    let d = deleted.clone();
    let pods = h.pods();
    let watcher = tokio::spawn(async move {
        let mut uids: BTreeMap<String, String> = BTreeMap::new();
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let uid = p.uid().unwrap_or_default();
                    if let Some(old) = uids.insert(p.name_any(), uid.clone())
                        && old != uid
                    {
                        d.lock().map(|mut v| v.push(p.name_any())).ok();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.patch("app", json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})).await?;
    let s2 = h
        .wait_status("app", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.updated_replicas == Some(2)
                    && st.ready_replicas == Some(3)
                    && st.observed_generation == s.metadata.generation
            })
        })
        .await?;
    let st = s2.status.clone().unwrap_or_default();
    let rev2 = st.update_revision.clone().context("rev2")?;
    assert_ne!(rev1, rev2);
    // Partitioned: current revision stays rev1 (app-0 is below the partition).
    assert_eq!(st.current_revision.as_deref(), Some(rev1.as_str()));
    let pods = h.live_pods().await?;
    let images: Vec<String> = pods.iter().map(image_of).collect();
    assert_eq!(images, ["img:1", "img:2", "img:2"]);
    assert_eq!(pods[0].labels().get(REVISION_LABEL), Some(&rev1));
    assert_eq!(pods[2].labels().get(REVISION_LABEL), Some(&rev2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deleted.lock().map(|v| v.clone()).unwrap_or_default(), ["app-2", "app-1"]);

    // Partition 0 finishes the rollout: current = update.
    h.patch("app", json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})).await?;
    h.wait_status("app", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.current_revision.as_deref() == Some(rev2.as_str()) && st.current_replicas == Some(3))
    })
    .await?;
    watcher.abort();
    assert_eq!(h.live_pods().await?.iter().map(image_of).collect::<Vec<_>>(), ["img:2", "img:2", "img:2"]);

    // Rollback as `kubectl rollout undo` does it: apply revision 1's data as a strategic merge patch.
    let revs = h.revisions().list(&ListParams::default()).await?.items;
    assert_eq!(revs.len(), 2);
    let r1 = revs.iter().find(|r| r.name_any() == rev1).context("revision 1")?;
    assert_eq!(r1.revision, 1);
    let data = r1.data.as_ref().map(|d| d.0.clone()).context("data")?;
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    h.patch("app", data).await?;
    h.wait_status("app", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.current_revision.as_deref() == Some(rev1.as_str())
                && st.update_revision.as_deref() == Some(rev1.as_str())
                && st.current_replicas == Some(3)
        })
    })
    .await?;
    assert_eq!(h.live_pods().await?.iter().map(image_of).collect::<Vec<_>>(), ["img:1", "img:1", "img:1"]);
    // The old revision was re-numbered to 3 rather than copied.
    let revs = h.revisions().list(&ListParams::default()).await?.items;
    assert_eq!(revs.len(), 2);
    let mut numbers: Vec<(i64, String)> = revs.iter().map(|r| (r.revision, r.name_any())).collect();
    numbers.sort();
    assert_eq!(numbers, [(2, rev2), (3, rev1)]);
    Ok(())
}

#[tokio::test]
async fn on_delete_waits_for_manual_deletion_and_history_is_truncated() -> Result<()> {
    let h = Harness::start(false).await?;
    let extra = json!({"updateStrategy": {"type": "OnDelete"}, "revisionHistoryLimit": 1});
    h.create(sts("od", 2, "img:1", extra)).await?;
    h.wait_status("od", |s| s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(2))).await?;
    for v in 2..=4 {
        h.patch(
            "od",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": format!("img:{v}")}]}}}}),
        )
        .await?;
        h.wait_status("od", |s| s.status.as_ref().is_some_and(|st| st.observed_generation == s.metadata.generation))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nothing replaced.
    assert_eq!(h.live_pods().await?.iter().map(image_of).collect::<Vec<_>>(), ["img:1", "img:1"]);
    // Revisions: current (img:1, live), update (img:4), and one more (limit 1).
    let revs = h.revisions().list(&ListParams::default()).await?.items;
    assert_eq!(revs.len(), 3, "{:?}", revs.iter().map(|r| r.revision).collect::<Vec<_>>());
    // Deleting a pod recreates it from the update revision.
    h.pods().delete("od-1", &DeleteParams::default()).await?;
    eventually("od-1 updated", || async {
        let p = h.pods().get_opt("od-1").await?;
        Ok(p.filter(|p| image_of(p) == "img:4" && p.metadata.deletion_timestamp.is_none()).map(|_| ()))
    })
    .await?;
    Ok(())
}
