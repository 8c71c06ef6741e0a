//! The local-path provisioner against an in-process apiserver (TestEnv).

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_localpath::*;
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const NS: &str = "default";

struct Harness {
    _env: TestEnv,
    dir: tempfile::TempDir,
    client: Client,
    task: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Result<Harness> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let dir = tempfile::tempdir()?;
    let config = Config { root: dir.path().to_path_buf(), ..Default::default() };
    let c = client.clone();
    let task = tokio::spawn(async move {
        let _ = run(c, config).await;
    });
    Ok(Harness { _env: env, dir, client, task })
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
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

fn claim(name: &str, class: Option<&str>) -> Result<PersistentVolumeClaim> {
    let mut v = json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    if let Some(c) = class {
        v["spec"]["storageClassName"] = json!(c);
    }
    Ok(serde_json::from_value(v)?)
}

async fn pod_on_node(client: &Client, name: &str, claim: &str, node: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]
        }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let binding: Value = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": NS},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}
    });
    let req = http::Request::post(format!("/api/v1/namespaces/{NS}/pods/{name}/binding"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding)?)?;
    client.request_text(req).await?;
    Ok(())
}

fn phase_of_pvc(c: &PersistentVolumeClaim) -> Option<&str> {
    c.status.as_ref().and_then(|s| s.phase.as_deref())
}

async fn wait_bound(client: &Client, name: &str) -> Result<PersistentVolumeClaim> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    eventually(&format!("{name} bound"), || async {
        let c = claims.get(name).await?;
        Ok((phase_of_pvc(&c) == Some("Bound")).then_some(c))
    })
    .await
}

/// Ignored until the apiserver validates `provisioner` as a qualified name (upstream's
/// `ValidateQualifiedName`): it currently requires a DNS subdomain and rejects `rancher.io/local-path`.
#[tokio::test]
async fn default_storage_class_is_created() -> Result<()> {
    let h = start().await?;
    let classes: Api<StorageClass> = Api::all(h.client.clone());
    let sc = eventually("storage class", || async { Ok(classes.get_opt(STORAGE_CLASS).await?) }).await?;
    assert_eq!(sc.provisioner, PROVISIONER);
    assert_eq!(sc.annotations().get(DEFAULT_CLASS_ANNOTATION).map(String::as_str), Some("true"));
    assert_eq!(sc.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    Ok(())
}

#[tokio::test]
async fn claims_wait_for_a_consumer_then_bind_and_are_reclaimed() -> Result<()> {
    let h = start().await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), NS);
    let pvs: Api<PersistentVolume> = Api::all(h.client.clone());
    let c = claims.create(&PostParams::default(), &claim("data", None)?).await?;
    // No consumer yet: stays Pending, no volume.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pending = claims.get("data").await?;
    assert_eq!(phase_of_pvc(&pending), Some("Pending"));
    let pv_name = format!("pvc-{}", c.uid().unwrap_or_default());
    assert!(pvs.get_opt(&pv_name).await?.is_none());

    // A pod using it is scheduled to node-a: provisioned there and bound.
    pod_on_node(&h.client, "user", "data", "node-a").await?;
    let bound = wait_bound(&h.client, "data").await?;
    assert_eq!(bound.spec.as_ref().and_then(|s| s.volume_name.as_deref()), Some(pv_name.as_str()));
    assert_eq!(bound.annotations().get(BIND_COMPLETED_ANNOTATION).map(String::as_str), Some("yes"));
    let cap =
        bound.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).map(|q| q.0.clone());
    assert_eq!(cap.as_deref(), Some("1Gi"));
    let pv = pvs.get(&pv_name).await?;
    assert_eq!(pv.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Bound"));
    let spec = pv.spec.clone().context("pv spec")?;
    let dir = PathBuf::from(spec.host_path.as_ref().map(|h| h.path.clone()).unwrap_or_default());
    assert_eq!(dir, h.dir.path().join("storage").join(c.uid().unwrap_or_default()));
    assert!(dir.is_dir());
    let values = spec
        .node_affinity
        .and_then(|a| a.required)
        .and_then(|r| r.node_selector_terms.first().cloned())
        .and_then(|t| t.match_expressions)
        .and_then(|e| e.first().cloned())
        .and_then(|e| e.values);
    assert_eq!(values, Some(vec!["node-a".to_string()]));

    // Deleting the claim releases and deletes the volume and its directory.
    claims.delete("data", &DeleteParams::default()).await?;
    eventually("pv deleted", || async { Ok(pvs.get_opt(&pv_name).await?.is_none().then_some(())) }).await?;
    assert!(!dir.exists());
    Ok(())
}

#[tokio::test]
async fn selected_node_annotation_and_foreign_classes() -> Result<()> {
    let h = start().await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(h.client.clone(), NS);
    let pvs: Api<PersistentVolume> = Api::all(h.client.clone());
    let mut annotated = claim("sel", Some(STORAGE_CLASS))?;
    annotated.metadata.annotations = Some([(SELECTED_NODE_ANNOTATION.to_string(), "node-b".to_string())].into());
    claims.create(&PostParams::default(), &annotated).await?;
    let foreign = claims.create(&PostParams::default(), &claim("other", Some("fast"))?).await?;
    let bound = wait_bound(&h.client, "sel").await?;
    let pv = pvs.get(bound.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or_default()).await?;
    let node = pv
        .spec
        .and_then(|s| s.node_affinity)
        .and_then(|a| a.required)
        .map(|r| format!("{:?}", r.node_selector_terms))
        .unwrap_or_default();
    assert!(node.contains("node-b"), "{node}");
    // A claim of another class is never touched, even with a consumer.
    pod_on_node(&h.client, "user2", "other", "node-a").await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(phase_of_pvc(&claims.get("other").await?), Some("Pending"));
    assert!(pvs.get_opt(&format!("pvc-{}", foreign.uid().unwrap_or_default())).await?.is_none());

    // Reclaim policy Retain (set by an admin on the volume): the volume is only Released.
    let name = pv.metadata.name.clone().unwrap_or_default();
    pvs.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"persistentVolumeReclaimPolicy": "Retain"}})),
    )
    .await?;
    claims.delete("sel", &DeleteParams::default()).await?;
    eventually("released", || async {
        let pv = pvs.get(&name).await?;
        Ok((pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")).then_some(()))
    })
    .await?;
    Ok(())
}
