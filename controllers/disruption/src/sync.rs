//! One budget sync (upstream's `sync` / `trySync`): select the pods, find the expected pod count
//! from their controllers' scale when the budget needs it, prune `disruptedPods`, count the healthy
//! pods, and write the status when it changed; when that fails for any reason but a conflict,
//! write the fail-safe status (no disruptions, `SyncFailed`).

use crate::budget::{
    Counts, build_disrupted_pods, count_healthy, expected_and_desired, fail_safe_status, needs_controller_scale,
    next_status,
};
use crate::{Config, Error};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::owner::controller_of;
use rkube_controller_common::{conditions, is_conflict, is_not_found, key_of};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared state of the controller's workers.
pub struct Ctx {
    pub client: kube::Client,
    pub pods: Store<Pod>,
    pub replicasets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
    pub replicationcontrollers: Store<ReplicationController>,
    pub events: EventPublisher,
    pub config: Config,
    /// Consecutive failures per budget key (for the retry backoff).
    pub failures: Mutex<HashMap<String, u32>>,
}

/// Why a sync failed (the message becomes the SyncFailed condition's).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

/// The message of an apiserver error as upstream prints it (the Status message).
fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

impl SyncError {
    fn text(&self) -> String {
        match self {
            SyncError::Kube(e) => message(e),
            SyncError::Other(s) => s.clone(),
        }
    }
}

/// Retry delay after `failures` consecutive failures: 5 ms doubling, at most 1000 s (upstream's
/// default controller rate limiter).
pub fn backoff(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(30));
    Duration::from_millis(ms).min(Duration::from_secs(1000))
}

/// Syncs one budget.
pub async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = key_of(pdb.metadata.namespace.as_deref(), &pdb.name_any());
    match try_sync(&pdb, &ctx).await {
        Ok(action) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&key);
            }
            Ok(action)
        }
        // A conflict only means our copy is stale: retry without the fail-safe.
        Err(SyncError::Kube(e)) if is_conflict(&e) => Err(Error::Kube(e)),
        // The only request left that can answer 404 is the status write: the budget is gone.
        Err(SyncError::Kube(e)) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => {
            tracing::warn!(budget = %key, error = %e, "sync failed");
            let now = conditions::now();
            if let Some(status) = fail_safe_status(&pdb, &e.text(), &now) {
                write_status(&ctx.client, &pdb, status).await?;
            }
            Err(Error::Sync(e.text()))
        }
    }
}

async fn try_sync(pdb: &PodDisruptionBudget, ctx: &Ctx) -> Result<Action, SyncError> {
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods = match pods_for(pdb, &ctx.pods) {
        Ok(p) => p,
        Err(e) => {
            ctx.events.warning(pdb, "NoPods", "Sync", format!("Failed to get pods: {e}")).await;
            return Err(SyncError::Other(e));
        }
    };
    if pods.is_empty() {
        ctx.events.normal(pdb, "NoPods", "Sync", "No matching pods found".to_string()).await;
    }
    let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let selected = i32::try_from(pods.len()).unwrap_or(i32::MAX);

    let expected = async {
        let scale = if needs_controller_scale(&spec) {
            let (sum, unmanaged) = expected_scale(ctx, &ns, &pod_refs).await?;
            if !unmanaged.is_empty() {
                tracing::debug!(budget = %pdb.name_any(), pods = ?unmanaged, "unmanaged pods");
                let selector = spec.selector.as_ref().map(|s| format!("{s:?}")).unwrap_or_default();
                ctx.events
                    .warning(
                        pdb,
                        "UnmanagedPods",
                        "Sync",
                        format!(
                            "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be \
                             unmanaged. As a result, the status of the PDB cannot be calculated correctly, which \
                             may result in undefined behavior. To account for these pods please set \
                             \".spec.minAvailable\" field of the PDB to an integer value."
                        ),
                    )
                    .await;
            }
            Some(sum)
        } else {
            None
        };
        expected_and_desired(&spec, selected, scale).map_err(SyncError::Other)
    };
    let (expected_pods, desired_healthy) = match expected.await {
        Ok(v) => v,
        Err(e) => {
            ctx.events
                .warning(
                    pdb,
                    "CalculateExpectedPodCountFailed",
                    "Sync",
                    format!("Failed to calculate the number of expected pods: {}", e.text()),
                )
                .await;
            return Err(e);
        }
    };

    let now = Timestamp::now();
    let timeout = ctx.config.deletion_timeout;
    let existing = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
    let disrupted = build_disrupted_pods(existing, &pod_refs, now, timeout);
    for name in &disrupted.expired {
        if let Some(pod) = pod_refs.iter().find(|p| p.metadata.name.as_deref() == Some(name.as_str())) {
            let note = format!("Pod was expected by PDB {ns}/{} to be deleted but it wasn't", pdb.name_any());
            ctx.events.warning(*pod, "NotDeleted", "Sync", note).await;
        }
    }
    let current_healthy = count_healthy(&pod_refs, &disrupted.pods, now, timeout);
    let counts = Counts { current_healthy, desired_healthy, expected_pods, disrupted_pods: disrupted.pods };
    if let Some(status) = next_status(pdb, counts, &conditions::now()) {
        write_status(&ctx.client, pdb, status).await?;
    }
    Ok(match disrupted.recheck_at {
        Some(at) => {
            let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
            Action::requeue(wait + Duration::from_millis(100))
        }
        None => Action::await_change(),
    })
}

/// Upstream's `getPodsForPdb`: the pods of the budget's namespace its selector selects (a missing
/// selector selects nothing, an empty one everything).
fn pods_for(pdb: &PodDisruptionBudget, pods: &Store<Pod>) -> Result<Vec<Arc<Pod>>, String> {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else { return Ok(Vec::new()) };
    let selector = Selector::try_from(sel).map_err(|e| e.0)?;
    let ns = pdb.metadata.namespace.as_deref();
    let empty = Default::default();
    Ok(pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
        .collect())
}

/// Upstream's `getExpectedScale`: the sum of the scales of the pods' controllers, and the names of
/// pods without a controller.
async fn expected_scale(ctx: &Ctx, ns: &str, pods: &[&Pod]) -> Result<(i32, Vec<String>), SyncError> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(cref) = controller_of(&pod.metadata) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&cref.uid) {
            continue;
        }
        match find_controller(ctx, cref, ns).await? {
            Some((uid, scale)) => {
                scales.insert(uid, scale);
            }
            None => return Err(SyncError::Other(format!("found no controllers for pod {:?}", pod.name_any()))),
        }
    }
    let sum = scales.values().fold(0i32, |a, b| a.saturating_add(*b));
    Ok((sum, unmanaged))
}

/// `(group, version)` of an apiVersion; an error for a malformed one.
fn group_version(api_version: &str) -> Result<(&str, &str), SyncError> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [v] if !v.is_empty() => Ok(("", v)),
        [g, v] if !g.is_empty() && !v.is_empty() => Ok((g, v)),
        _ => Err(SyncError::Other(format!("unexpected GroupVersion string: {api_version}"))),
    }
}

fn is_kind(cref: &OwnerReference, kind: &str, groups: &[&str]) -> Result<bool, SyncError> {
    let (group, _) = group_version(&cref.api_version)?;
    Ok(cref.kind == kind && groups.contains(&group))
}

fn cached<K>(store: &Store<K>, ns: &str, name: &str, uid: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(ns)).filter(|o| o.meta().uid.as_deref() == Some(uid))
}

/// The controller of a pod and its scale (`spec.replicas`), trying upstream's finders in order:
/// ReplicationController, Deployment (through its ReplicaSet), ReplicaSet (not owned by a
/// Deployment), StatefulSet, then any kind through its scale subresource.
async fn find_controller(ctx: &Ctx, cref: &OwnerReference, ns: &str) -> Result<Option<(String, i32)>, SyncError> {
    if is_kind(cref, "ReplicationController", &[""])?
        && let Some(rc) = cached(&ctx.replicationcontrollers, ns, &cref.name, &cref.uid)
    {
        let replicas = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        return Ok(Some((cref.uid.clone(), replicas)));
    }
    if is_kind(cref, "ReplicaSet", &["apps", "extensions"])?
        && let Some(rs) = cached(&ctx.replicasets, ns, &cref.name, &cref.uid)
    {
        match controller_of(&rs.metadata) {
            Some(dref) if dref.kind == "Deployment" => {
                if is_kind(dref, "Deployment", &["apps", "extensions"])?
                    && let Some(d) = cached(&ctx.deployments, ns, &dref.name, &dref.uid)
                {
                    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    return Ok(Some((dref.uid.clone(), replicas)));
                }
            }
            _ => {
                let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((cref.uid.clone(), replicas)));
            }
        }
    }
    if is_kind(cref, "StatefulSet", &["apps"])?
        && let Some(ss) = cached(&ctx.statefulsets, ns, &cref.name, &cref.uid)
    {
        let replicas = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        return Ok(Some((cref.uid.clone(), replicas)));
    }
    scale_controller(&ctx.client, cref, ns).await
}

/// Upstream's `getScaleController`: the scale subresource of any kind that has one.
async fn scale_controller(
    client: &kube::Client,
    cref: &OwnerReference,
    ns: &str,
) -> Result<Option<(String, i32)>, SyncError> {
    let (group, version) = group_version(&cref.api_version)?;
    let gvk = GroupVersionKind::gvk(group, version, &cref.kind);
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.map_err(|e| match e {
        kube::Error::Discovery(_) => {
            SyncError::Other(format!("no matches for kind {:?} in version {:?}", cref.kind, cref.api_version))
        }
        other => SyncError::Kube(other),
    })?;
    if !caps.subresources.iter().any(|(sub, _)| sub.plural == "scale") {
        let gr = if group.is_empty() { ar.plural.clone() } else { format!("{}.{group}", ar.plural) };
        return Err(SyncError::Other(format!("{gr} does not implement the scale subresource")));
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    match api.get_scale(&cref.name).await {
        Ok(scale) => {
            if scale.metadata.uid.as_deref() != Some(cref.uid.as_str()) {
                return Ok(None);
            }
            Ok(Some((cref.uid.clone(), scale.spec.and_then(|s| s.replicas).unwrap_or(0))))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Upstream's `writePdbStatus`: an update of the status subresource at the budget's
/// resourceVersion (a conflict when someone else wrote since).
async fn write_status(
    client: &kube::Client,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<(), SyncError> {
    let ns = pdb.namespace().unwrap_or_default();
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let mut next = pdb.clone();
    next.metadata.managed_fields = None;
    next.status = Some(status);
    api.replace_status(&pdb.name_any(), &PostParams::default(), &next).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_versions_parse_like_upstream() {
        assert_eq!(group_version("v1").ok(), Some(("", "v1")));
        assert_eq!(group_version("apps/v1").ok(), Some(("apps", "v1")));
        assert!(group_version("a/b/c").is_err());
        assert!(group_version("").is_err());
    }

    #[test]
    fn kinds_match_only_in_their_groups() {
        let r = |api: &str, kind: &str| OwnerReference {
            api_version: api.into(),
            kind: kind.into(),
            name: "x".into(),
            uid: "u".into(),
            ..Default::default()
        };
        assert!(is_kind(&r("apps/v1", "ReplicaSet"), "ReplicaSet", &["apps", "extensions"]).unwrap_or(false));
        assert!(
            is_kind(&r("extensions/v1beta1", "ReplicaSet"), "ReplicaSet", &["apps", "extensions"]).unwrap_or(false)
        );
        assert!(!is_kind(&r("example.com/v1", "ReplicaSet"), "ReplicaSet", &["apps", "extensions"]).unwrap_or(true));
        assert!(is_kind(&r("v1", "ReplicationController"), "ReplicationController", &[""]).unwrap_or(false));
        assert!(!is_kind(&r("apps/v1", "StatefulSet"), "ReplicaSet", &["apps"]).unwrap_or(true));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(40));
        assert_eq!(backoff(40), Duration::from_secs(1000));
    }
}
