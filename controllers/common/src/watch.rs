//! The watch every controller starts from: all objects of a kind, retried
//! with kube-runtime's default backoff, with `managedFields` dropped so the
//! controller's cache does not hold field-ownership records it never reads;
//! and [`slim_pod`], for pod caches that read only a pod's metadata, status
//! and a few spec fields.

use futures::Stream;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// `watcher(api, config)` with default backoff and `metadata.managedFields` removed.
pub fn trimmed<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config).default_backoff().modify(|o| o.meta_mut().managed_fields = None)
}

/// The parts of a pod's spec [`slim_pod`] keeps besides `nodeName`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeepSpec {
    /// `spec.tolerations`.
    pub tolerations: bool,
    /// The `spec.volumes` that are persistentVolumeClaims.
    pub claim_volumes: bool,
}

/// Cut a pod down for a cache that reads only its metadata, its status, `spec.nodeName`
/// and the `keep` parts of its spec: `managedFields`, containers, the other volumes,
/// affinity... are dropped (a pod's spec is most of its size). Never write such a pod back.
pub fn slim_pod(pod: &mut Pod, keep: KeepSpec) {
    pod.metadata.managed_fields = None;
    let Some(spec) = pod.spec.take() else { return };
    let volumes = spec
        .volumes
        .filter(|_| keep.claim_volumes)
        .map(|vs| vs.into_iter().filter(|v| v.persistent_volume_claim.is_some()).collect::<Vec<_>>());
    pod.spec = Some(PodSpec {
        node_name: spec.node_name,
        tolerations: spec.tolerations.filter(|_| keep.tolerations),
        volumes: volumes.filter(|v| !v.is_empty()),
        ..Default::default()
    });
}

/// For the pod cache of a controller that manages only the pods it controls and adopts
/// orphans (`kind` = its kind, e.g. "StatefulSet"): a pod some other kind controls is never
/// read beyond its metadata, so only that stays (without `managedFields`); other pods keep
/// everything but `managedFields`. A pod released by its controller arrives again whole.
pub fn slim_foreign_pod(pod: &mut Pod, kind: &str) {
    pod.metadata.managed_fields = None;
    if crate::owner::controller_of(&pod.metadata).is_some_and(|c| c.kind != kind) {
        pod.spec = None;
        pod.status = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                "managedFields": [{"manager": "m", "operation": "Update"}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
                    {"name": "tmp", "emptyDir": {}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a valid pod")
    }

    #[test]
    fn slim_pod_keeps_what_the_cache_reads_and_drops_the_rest() {
        let full = pod();
        let mut p = full.clone();
        slim_pod(&mut p, KeepSpec::default());
        assert_eq!(p.metadata.managed_fields, None);
        assert_eq!(
            (p.metadata.labels.clone(), p.metadata.owner_references.clone()),
            (full.metadata.labels.clone(), full.metadata.owner_references.clone())
        );
        assert_eq!(p.status, full.status);
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.containers.is_empty() && spec.tolerations.is_none() && spec.volumes.is_none());

        let mut p = full.clone();
        slim_pod(&mut p, KeepSpec { tolerations: true, claim_volumes: true });
        let spec = p.spec.unwrap_or_default();
        assert_eq!(spec.tolerations, full.spec.as_ref().and_then(|s| s.tolerations.clone()));
        let vols: Vec<String> = spec.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect();
        assert_eq!(vols, ["data"]);

        let mut controlled: Pod = full.clone();
        if let Some(o) = controlled.metadata.owner_references.as_mut().and_then(|o| o.first_mut()) {
            o.controller = Some(true);
        }
        let mut foreign = controlled.clone();
        slim_foreign_pod(&mut foreign, "StatefulSet");
        assert_eq!((foreign.spec.is_none(), foreign.status.is_none()), (true, true));
        assert_eq!(foreign.metadata.managed_fields, None);
        assert_eq!(foreign.metadata.owner_references, controlled.metadata.owner_references);
        let mut own = controlled.clone();
        slim_foreign_pod(&mut own, "ReplicaSet");
        assert_eq!((own.spec, own.status), (full.spec.clone(), full.status.clone()));
        let mut orphan = full.clone();
        orphan.metadata.owner_references = None;
        slim_foreign_pod(&mut orphan, "StatefulSet");
        assert_eq!((orphan.spec, orphan.status), (full.spec.clone(), full.status.clone()));

        let mut no_spec = Pod::default();
        slim_pod(&mut no_spec, KeepSpec::default());
        assert_eq!(no_spec.spec, None);
    }
}
