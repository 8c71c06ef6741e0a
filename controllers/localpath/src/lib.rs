//! rkube-controller-localpath: the local-path provisioner k3s ships, plus the binding half of
//! upstream's PersistentVolume controller for the volumes it provisions.
//!
//! - At start it creates the StorageClass `local-path` (default class, provisioner
//!   `rancher.io/local-path`, `volumeBindingMode: WaitForFirstConsumer`, `reclaimPolicy: Delete`)
//!   unless it exists.
//! - A claim of that class — or with no `storageClassName` at all, taken as the default class since
//!   the apiserver does not run the DefaultStorageClass admission — is provisioned once it has a
//!   node: the `volume.kubernetes.io/selected-node` annotation, else the `nodeName` of a pod that
//!   mounts it (rkube's scheduler does no volume binding, so pods with unbound claims are placed
//!   anyway and the volume follows the pod: this is how WaitForFirstConsumer is honoured). A class
//!   with `Immediate` binding uses the first node by name.
//! - Provisioning creates the directory `<root>/storage/<claim-uid>` and a PersistentVolume
//!   `pvc-<claim-uid>` (hostPath `DirectoryOrCreate`, node affinity to that node, the claim's size
//!   and access modes, `claimRef` to the claim), then binds: the claim gets `spec.volumeName` and
//!   the bind annotations, both objects get phase `Bound`.
//! - When the claim is gone, its volume becomes `Released`; with reclaim policy `Delete` the
//!   directory and the PersistentVolume are deleted.
//!
//! It is an API client only (reflectors over `kube::Client`); the only local state it touches is
//! the storage directory.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeSpec, Pod, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::watch::{KeepSpec, slim_pod};
use rkube_controller_common::{is_conflict, is_not_found};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The default StorageClass name.
pub const STORAGE_CLASS: &str = "local-path";
/// The provisioner name (k3s's, so charts written for k3s find it).
pub const PROVISIONER: &str = "rancher.io/local-path";
/// Marks the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// The node a WaitForFirstConsumer claim is to be provisioned on (set by a scheduler).
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
/// Which provisioner made a PersistentVolume.
pub const PROVISIONED_BY_ANNOTATION: &str = "pv.kubernetes.io/provisioned-by";
/// Which provisioner a claim waits for.
pub const STORAGE_PROVISIONER_ANNOTATION: &str = "volume.kubernetes.io/storage-provisioner";
/// The same, under its older beta key.
pub const BETA_STORAGE_PROVISIONER_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Binding finished (on the claim).
pub const BIND_COMPLETED_ANNOTATION: &str = "pv.kubernetes.io/bind-completed";
/// The binding was made by a controller, not by the user (on the claim).
pub const BOUND_BY_CONTROLLER_ANNOTATION: &str = "pv.kubernetes.io/bound-by-controller";

/// Provisioner settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory: volumes live in `<root>/storage/<claim-uid>`.
    pub root: PathBuf,
    /// Create the `local-path` StorageClass (as the default class) at start if absent.
    pub create_storage_class: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { root: PathBuf::from("/var/lib/rkube"), create_storage_class: true }
    }
}

/// Errors of a sync or of the provisioner.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
}

/// The StorageClass created at start.
pub fn default_storage_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(BTreeMap::from([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

/// Whether the claim is ours: class `local-path`, or no class at all (the default class).
/// An explicit empty class means "no class" and is not ours.
pub fn is_our_claim(pvc: &PersistentVolumeClaim) -> bool {
    match pvc.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()) {
        None => true,
        Some(c) => c == STORAGE_CLASS,
    }
}

/// The PersistentVolume name for a claim (as upstream's external provisioners: `pvc-<uid>`).
pub fn volume_name(pvc: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", pvc.metadata.uid.as_deref().unwrap_or_default())
}

/// The directory of a claim's volume.
pub fn volume_dir(root: &Path, pvc: &PersistentVolumeClaim) -> PathBuf {
    root.join("storage").join(pvc.metadata.uid.as_deref().unwrap_or_default())
}

/// The node the claim is wanted on: the selected-node annotation, else the node of a pod in the
/// claim's namespace that mounts it.
pub fn wanted_node<'a>(pvc: &'a PersistentVolumeClaim, pods: impl IntoIterator<Item = &'a Pod>) -> Option<String> {
    if let Some(n) = pvc.annotations().get(SELECTED_NODE_ANNOTATION).filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let name = pvc.name_any();
    let ns = pvc.namespace();
    pods.into_iter()
        .filter(|p| p.namespace() == ns && p.metadata.deletion_timestamp.is_none())
        .filter(|p| claims_of(p).any(|c| c == name))
        .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()))
}

fn claims_of(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()))
}

/// The PersistentVolume provisioned for a claim on a node.
pub fn new_volume(pvc: &PersistentVolumeClaim, node: &str, dir: &Path, reclaim: &str) -> PersistentVolume {
    let spec = pvc.spec.clone().unwrap_or_default();
    let capacity = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name(pvc)),
            annotations: Some(BTreeMap::from([(PROVISIONED_BY_ANNOTATION.to_string(), PROVISIONER.to_string())])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: capacity.map(|c| BTreeMap::from([("storage".to_string(), c)])),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                name: pvc.metadata.name.clone(),
                namespace: pvc.metadata.namespace.clone(),
                uid: pvc.metadata.uid.clone(),
                resource_version: pvc.metadata.resource_version.clone(),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path: dir.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(reclaim.to_string()),
            storage_class_name: Some(STORAGE_CLASS.into()),
            volume_mode: spec.volume_mode.clone().or_else(|| Some("Filesystem".into())),
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether `dir` is a volume directory of ours (directly under `<root>/storage`): only those are
/// ever removed.
pub fn is_our_dir(root: &Path, dir: &Path) -> bool {
    dir.parent() == Some(root.join("storage").as_path())
        && dir.file_name().is_some_and(|n| !n.is_empty() && n != "." && n != "..")
}

struct Ctx {
    client: Client,
    config: Config,
    pods: Store<Pod>,
    events: EventPublisher,
}

/// Runs the provisioner until the process ends.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    let create_class = config.create_storage_class;
    let (pvc_reader, pvc_writer) = reflector::store::<PersistentVolumeClaim>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let (pv_reader, pv_writer) = reflector::store::<PersistentVolume>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        config,
        pods: pod_reader,
        events: EventPublisher::new(client.clone(), PROVISIONER),
    });

    let claims = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.metadata.managed_fields = None)
        .reflect(pvc_writer)
        .applied_objects();
    // Claims need a pod's node and its claim volumes only.
    let pod_triggers = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| slim_pod(o, KeepSpec { claim_volumes: true, ..Default::default() }))
        .reflect(pod_writer)
        .applied_objects()
        .filter_map(|res| async move {
            let pod = res.ok()?;
            pod.spec.as_ref().and_then(|s| s.node_name.as_ref())?;
            let ns = pod.namespace()?;
            let refs: Vec<ObjectRef<PersistentVolumeClaim>> =
                claims_of(&pod).map(|c| ObjectRef::new(c).within(&ns)).collect();
            Some(futures::stream::iter(refs))
        })
        .flatten();
    let claim_controller = Controller::for_stream(claims, pvc_reader)
        .with_config(controller::Config::default().concurrency(4))
        .reconcile_on(pod_triggers)
        .run(reconcile_claim, error_policy, ctx.clone())
        .for_each(|_| async {});

    let volumes = watcher(Api::<PersistentVolume>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.metadata.managed_fields = None)
        .reflect(pv_writer)
        .applied_objects();
    let claim_deletions = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(watcher::Event::Delete(pvc)) => {
                    let mut refs = vec![ObjectRef::<PersistentVolume>::new(&volume_name(&pvc))];
                    if let Some(v) = pvc.spec.as_ref().and_then(|s| s.volume_name.as_ref()) {
                        refs.push(ObjectRef::new(v));
                    }
                    Some(futures::stream::iter(refs))
                }
                _ => None,
            }
        })
        .flatten();
    let volume_controller = Controller::for_stream(volumes, pv_reader)
        .with_config(controller::Config::default().concurrency(4))
        .reconcile_on(claim_deletions)
        .run(reconcile_volume, error_policy, ctx)
        .for_each(|_| async {});
    let class = async {
        if create_class {
            ensure_storage_class(&client).await;
        }
    };
    tokio::join!(class, claim_controller, volume_controller);
    Ok(())
}

fn error_policy<K>(_obj: Arc<K>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "local-path sync failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn ensure_storage_class(client: &Client) {
    let api: Api<StorageClass> = Api::all(client.clone());
    let mut delay = Duration::from_millis(100);
    loop {
        match api.create(&PostParams::default(), &default_storage_class()).await {
            Ok(_) => return,
            Err(e) if is_conflict(&e) => return,
            // Rejected (invalid, forbidden): retrying cannot help. Claims are provisioned anyway.
            Err(kube::Error::Api(s)) if (400..500).contains(&s.code) && s.code != 429 => {
                tracing::error!(error = %s.message, "the apiserver rejected the local-path StorageClass");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not create the local-path StorageClass; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The reclaim policy and binding mode of our class (defaults when the class is missing).
async fn class_settings(client: &Client) -> (String, String) {
    let api: Api<StorageClass> = Api::all(client.clone());
    match api.get(STORAGE_CLASS).await {
        Ok(sc) => (
            sc.reclaim_policy.unwrap_or_else(|| "Delete".into()),
            sc.volume_binding_mode.unwrap_or_else(|| "Immediate".into()),
        ),
        Err(_) => ("Delete".into(), "WaitForFirstConsumer".into()),
    }
}

async fn reconcile_claim(pvc: Arc<PersistentVolumeClaim>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !is_our_claim(&pvc) || pvc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let pre_bound = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty());
    if bound && pre_bound.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pvc.namespace().unwrap_or_default();
    let pv_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let name = volume_name(&pvc);
    if let Some(other) = pre_bound.as_ref().filter(|v| **v != name) {
        // Bound (or pre-bound) by someone else to a volume that is not ours.
        tracing::debug!(claim = %pvc.name_any(), volume = %other, "claim names a volume we did not provision");
        return Ok(Action::await_change());
    }
    let pv = match pv_api.get_opt(&name).await? {
        Some(pv) => pv,
        None => {
            let (reclaim, mode) = class_settings(&ctx.client).await;
            let node = match wanted_node(&pvc, ctx.pods.state().iter().map(|p| &**p)) {
                Some(n) => n,
                None if mode == "Immediate" => {
                    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(ctx.client.clone())
                        .list(&ListParams::default())
                        .await?;
                    let mut names: Vec<String> = nodes.items.iter().map(|n| n.name_any()).collect();
                    names.sort();
                    match names.into_iter().next() {
                        Some(n) => n,
                        None => return Ok(Action::requeue(Duration::from_secs(5))),
                    }
                }
                // WaitForFirstConsumer: wait for a pod using the claim to be scheduled.
                None => return Ok(Action::await_change()),
            };
            let dir = volume_dir(&ctx.config.root, &pvc);
            if let Err(e) = create_dir(&dir) {
                // The node's kubelet creates it too (DirectoryOrCreate); a remote node's directory
                // cannot be made from here.
                tracing::warn!(dir = %dir.display(), error = %e, "could not create the volume directory");
            }
            let pv = new_volume(&pvc, &node, &dir, &reclaim);
            match pv_api.create(&PostParams::default(), &pv).await {
                Ok(created) => {
                    let note = format!("Successfully provisioned volume {name}");
                    ctx.events.normal(&*pvc, "ProvisioningSucceeded", "Provision", note).await;
                    created
                }
                Err(e) if is_conflict(&e) => pv_api.get(&name).await?,
                Err(e) => {
                    let note = format!("failed to provision volume with StorageClass \"{STORAGE_CLASS}\": {e}");
                    ctx.events.warning(&*pvc, "ProvisioningFailed", "Provision", note).await;
                    return Err(e.into());
                }
            }
        }
    };
    // The volume must be reserved for this very claim.
    let claim_uid = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).and_then(|c| c.uid.clone());
    if claim_uid != pvc.metadata.uid {
        return Ok(Action::await_change());
    }
    bind(&pv_api, &pvc_api, &pv, &pvc).await?;
    Ok(Action::await_change())
}

/// Binds a volume reserved for the claim: the volume's phase, the claim's volumeName and
/// annotations, the claim's phase, capacity and access modes.
async fn bind(
    pv_api: &Api<PersistentVolume>,
    pvc_api: &Api<PersistentVolumeClaim>,
    pv: &PersistentVolume,
    pvc: &PersistentVolumeClaim,
) -> Result<(), Error> {
    let pv_name = pv.name_any();
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        let patch = json!({"status": {"phase": "Bound"}});
        pv_api.patch_status(&pv_name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    let has_name = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(pv_name.as_str());
    if !has_name || !pvc.annotations().contains_key(BIND_COMPLETED_ANNOTATION) {
        let patch = json!({
            "metadata": {
                "uid": pvc.metadata.uid,
                "annotations": {
                    BIND_COMPLETED_ANNOTATION: "yes",
                    BOUND_BY_CONTROLLER_ANNOTATION: "yes",
                    STORAGE_PROVISIONER_ANNOTATION: PROVISIONER,
                    BETA_STORAGE_PROVISIONER_ANNOTATION: PROVISIONER,
                }
            },
            "spec": {"volumeName": pv_name}
        });
        pvc_api.patch(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    let pv_spec = pv.spec.clone().unwrap_or_default();
    let patch = json!({"status": {
        "phase": "Bound",
        "accessModes": pv_spec.access_modes,
        "capacity": pv_spec.capacity,
    }});
    pvc_api.patch_status(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(())
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    // Any container user may write its volume, as k3s's provisioner does.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pv.annotations().get(PROVISIONED_BY_ANNOTATION).map(String::as_str) != Some(PROVISIONER)
        || pv.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let spec = pv.spec.clone().unwrap_or_default();
    let Some(claim) = spec.claim_ref.as_ref() else { return Ok(Action::await_change()) };
    let pv_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let ns = claim.namespace.clone().unwrap_or_default();
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let current = match claim.name.as_deref() {
        Some(name) => pvc_api.get_opt(name).await?,
        None => None,
    };
    if current.as_ref().is_some_and(|c| c.metadata.uid == claim.uid) {
        return Ok(Action::await_change());
    }
    // The claim is gone: the volume is released.
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released") {
        let patch = json!({"status": {"phase": "Released"}});
        match pv_api.patch_status(&pv.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete") {
        return Ok(Action::await_change());
    }
    if let Some(path) = spec.host_path.as_ref().map(|h| PathBuf::from(&h.path)) {
        if is_our_dir(&ctx.config.root, &path) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Sync(format!("removing {}: {e}", path.display()))),
            }
        } else {
            tracing::warn!(path = %path.display(), "not removing a directory outside the storage root");
        }
    }
    match pv_api.delete(&pv.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc(class: Option<&str>, annotations: serde_json::Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "u-1", "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}
        });
        if let Some(c) = class {
            v["spec"]["storageClassName"] = json!(c);
        }
        serde_json::from_value(v).unwrap_or_default()
    }

    fn pod(name: &str, claim: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]
            }
        }))
        .unwrap_or_default()
    }

    #[test]
    fn class_selection() {
        assert!(is_our_claim(&pvc(None, json!({}))));
        assert!(is_our_claim(&pvc(Some("local-path"), json!({}))));
        assert!(!is_our_claim(&pvc(Some(""), json!({}))));
        assert!(!is_our_claim(&pvc(Some("fast"), json!({}))));
        let sc = default_storage_class();
        assert_eq!(sc.provisioner, PROVISIONER);
        assert_eq!(sc.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
        assert_eq!(sc.annotations().get(DEFAULT_CLASS_ANNOTATION).map(String::as_str), Some("true"));
    }

    #[test]
    fn node_comes_from_annotation_or_a_scheduled_consumer() {
        let claim = pvc(None, json!({}));
        let pods = [pod("a", "other", Some("n1")), pod("b", "data", None), pod("c", "data", Some("n2"))];
        assert_eq!(wanted_node(&claim, pods.iter()), Some("n2".into()));
        assert_eq!(wanted_node(&claim, pods[..2].iter()), None);
        let annotated = pvc(None, json!({SELECTED_NODE_ANNOTATION: "n9"}));
        assert_eq!(wanted_node(&annotated, pods.iter()), Some("n9".into()));
        let mut elsewhere = pod("d", "data", Some("n3"));
        elsewhere.metadata.namespace = Some("other".into());
        assert_eq!(wanted_node(&claim, [elsewhere].iter()), None);
    }

    #[test]
    fn volumes_are_host_paths_pinned_to_the_node() {
        let claim = pvc(Some("local-path"), json!({}));
        let dir = volume_dir(Path::new("/data"), &claim);
        assert_eq!(dir, PathBuf::from("/data/storage/u-1"));
        let pv = new_volume(&claim, "n1", &dir, "Delete");
        assert_eq!(pv.name_any(), "pvc-u-1");
        let spec = pv.spec.clone().unwrap_or_default();
        assert_eq!(spec.host_path.as_ref().map(|h| h.path.as_str()), Some("/data/storage/u-1"));
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(spec.storage_class_name.as_deref(), Some(STORAGE_CLASS));
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        let cap = spec.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.clone());
        assert_eq!(cap.as_deref(), Some("2Gi"));
        let cref = spec.claim_ref.clone().unwrap_or_default();
        assert_eq!(
            (cref.name.as_deref(), cref.namespace.as_deref(), cref.uid.as_deref()),
            (Some("data"), Some("ns"), Some("u-1"))
        );
        let term = spec.node_affinity.and_then(|a| a.required).map(|r| r.node_selector_terms).unwrap_or_default();
        let expr = term.first().and_then(|t| t.match_expressions.clone()).unwrap_or_default();
        assert_eq!(expr[0].key, "kubernetes.io/hostname");
        assert_eq!(expr[0].values, Some(vec!["n1".to_string()]));
        assert_eq!(pv.annotations().get(PROVISIONED_BY_ANNOTATION).map(String::as_str), Some(PROVISIONER));
    }

    #[test]
    fn only_direct_children_of_the_storage_dir_are_removable() {
        let root = Path::new("/data");
        assert!(is_our_dir(root, Path::new("/data/storage/u-1")));
        assert!(!is_our_dir(root, Path::new("/data/storage")));
        assert!(!is_our_dir(root, Path::new("/etc")));
        assert!(!is_our_dir(root, Path::new("/data/storage/u-1/x")));
        assert!(!is_our_dir(root, Path::new("/data/storage/..")));
    }
}
