//! One ReplicaSet sync (upstream's `syncReplicaSet`): claim pods (adopt orphans, release pods that
//! no longer match), create or delete pods towards `spec.replicas` when the expectations are
//! satisfied, then write the status if it changed.

use crate::rank::pods_to_delete;
use crate::status::{calculate_status, desired_replicas, min_ready_seconds, status_changed};
use crate::{Config, Error};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::expectations::{ControllerExpectations, EXPECTATIONS_TIMEOUT};
use rkube_controller_common::owner::{CanAdopt, ControllerRefManager, controller_of, controller_ref};
use rkube_controller_common::pod::{available_in, is_pod_active, pod_from_template};
use rkube_controller_common::slow_start::{SLOW_START_INITIAL_BATCH_SIZE, slow_start_batch};
use rkube_controller_common::{has_status_cause, is_conflict, is_not_found, key_of};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;

/// Shared state of the controller's workers.
pub struct Ctx {
    pub client: kube::Client,
    pub pods: Store<Pod>,
    pub replicasets: Store<ReplicaSet>,
    pub expectations: ControllerExpectations,
    pub events: EventPublisher,
    pub config: Config,
    /// Consecutive failures per ReplicaSet key (for the retry backoff).
    pub failures: Mutex<HashMap<String, u32>>,
}

/// The message of an apiserver error as upstream prints it (the Status message).
fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Syncs one ReplicaSet.
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods.wait_until_ready().await.map_err(|e| Error::Cache(e.to_string()))?;
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let key = key_of(Some(&ns), &name);
    let Some(spec) = rs.spec.as_ref() else { return Ok(Action::await_change()) };
    let selector = match Selector::try_from(spec.selector.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(replicaset = %key, error = %e, "invalid selector; not syncing");
            return Ok(Action::await_change());
        }
    };
    let needs_sync = ctx.expectations.satisfied(&key);
    let uid = rs.metadata.uid.clone().unwrap_or_default();

    // Candidates: active pods of the namespace that are ours or orphans matching the selector
    // (everything else would be ignored by the claim anyway). Ours that still match are claimed
    // as they are (the claim would keep them without a call): they stay shared with the cache,
    // only the others (to adopt or release) are copied for the claim.
    let no_labels = Default::default();
    let matches = |p: &Pod| selector.matches(p.metadata.labels.as_ref().unwrap_or(&no_labels));
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    let mut candidates: Vec<Pod> = Vec::new();
    for p in ctx.pods.state() {
        if p.metadata.namespace.as_deref() != Some(ns.as_str()) || !is_pod_active(&p) {
            continue;
        }
        match controller_of(&p.metadata) {
            Some(r) if r.uid == uid && matches(&p) => owned.push(p),
            Some(r) if r.uid == uid => candidates.push(p.as_ref().clone()),
            Some(_) => {}
            None if matches(&p) => candidates.push(p.as_ref().clone()),
            None => {}
        }
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let can_adopt = CanAdopt::recheck_deletion_timestamp(
        Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns),
        name.clone(),
        uid.clone(),
    );
    let manager = ControllerRefManager::new(pods_api.clone(), rs.as_ref(), can_adopt);
    let mut pods = owned;
    pods.extend(manager.claim(candidates, matches).await?.into_iter().map(Arc::new));

    let mut manage_err = None;
    if needs_sync && rs.metadata.deletion_timestamp.is_none() {
        manage_err = manage_replicas(&ctx, &rs, &key, &pods, &pods_api).await.err();
    }

    let now = Timestamp::now();
    let mut new_status = calculate_status(&rs, &pods, manage_err.as_ref().map(|e| e.to_string()).as_deref(), now);
    if status_changed(&rs, &new_status) {
        new_status.observed_generation = rs.metadata.generation;
        update_status(&ctx, &rs, new_status).await?;
    }
    if let Some(e) = manage_err {
        return Err(e);
    }
    if let Ok(mut f) = ctx.failures.lock() {
        f.remove(&key);
    }

    // Ready pods become available after minReadySeconds: come back then to count them.
    let min_ready = min_ready_seconds(&rs);
    let next_available = pods.iter().filter_map(|p| available_in(p, min_ready, now)).min();
    if let Some(wait) = next_available {
        // A little skew so that the pod is strictly past minReadySeconds.
        return Ok(Action::requeue(wait + Duration::from_millis(500)));
    }
    if !ctx.expectations.satisfied(&key) {
        // If a watch event is lost the expectations expire; sync again then.
        return Ok(Action::requeue(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

/// Creates or deletes pods so that `pods` (the ReplicaSet's active pods) approach `spec.replicas`.
async fn manage_replicas(
    ctx: &Ctx,
    rs: &ReplicaSet,
    key: &str,
    pods: &[Arc<Pod>],
    pods_api: &Api<Pod>,
) -> Result<(), Error> {
    let diff = pods.len() as i64 - i64::from(desired_replicas(rs));
    if diff < 0 {
        let count = ((-diff) as usize).min(BURST_REPLICAS);
        // Expect before creating: the watch may deliver the pods before the calls return.
        ctx.expectations.expect_creations(key, count);
        tracing::debug!(replicaset = %key, need = count, "too few replicas, creating");
        let (created, err) =
            slow_start_batch(count, SLOW_START_INITIAL_BATCH_SIZE, |_| create_pod(ctx, rs, pods_api)).await;
        // Pods never created will never be observed.
        for _ in created..count {
            ctx.expectations.creation_observed(key);
        }
        if let Some(e) = err {
            return Err(e);
        }
    } else if diff > 0 {
        let count = (diff as usize).min(BURST_REPLICAS);
        tracing::debug!(replicaset = %key, excess = count, "too many replicas, deleting");
        let related = related_pods(ctx, rs);
        let victims = pods_to_delete(pods, &related, count, Timestamp::now());
        let victim_keys: Vec<String> = victims
            .iter()
            .map(|p| key_of(p.metadata.namespace.as_deref(), p.metadata.name.as_deref().unwrap_or("")))
            .collect();
        ctx.expectations.expect_deletions_of(key, victim_keys.clone());
        let results = futures::future::join_all(victims.iter().map(|p| delete_pod(ctx, rs, pods_api, p))).await;
        let mut first_err = None;
        for (res, pod_key) in results.into_iter().zip(victim_keys) {
            if let Err(e) = res {
                // The deletion will not be observed.
                ctx.expectations.deletion_observed_of(key, &pod_key);
                if !matches!(&e, Error::Kube(k) if is_not_found(k)) && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(())
}

async fn create_pod(ctx: &Ctx, rs: &ReplicaSet, pods_api: &Api<Pod>) -> Result<(), Error> {
    let ns = rs.namespace().unwrap_or_default();
    let Some(template) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
        return Err(Error::Sync("unable to create pods, no template".into()));
    };
    let pod = pod_from_template(template, &rs.name_any(), &ns, Some(controller_ref(rs)));
    if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        return Err(Error::Sync("unable to create pods, no labels".into()));
    }
    match pods_api.create(&PostParams::default(), &pod).await {
        Ok(created) => {
            let note = format!("Created pod: {}", created.name_any());
            ctx.events.normal(rs, "SuccessfulCreate", "Create", note).await;
            Ok(())
        }
        // Creating into a terminating namespace fails forever; nothing to report.
        Err(e) if has_status_cause(&e, "NamespaceTerminating") => Ok(()),
        Err(e) => {
            let msg = message(&e);
            ctx.events.warning(rs, "FailedCreate", "Create", format!("Error creating: {msg}")).await;
            Err(Error::Sync(msg))
        }
    }
}

async fn delete_pod(ctx: &Ctx, rs: &ReplicaSet, pods_api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let name = pod.name_any();
    match pods_api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.events.normal(rs, "SuccessfulDelete", "Delete", format!("Deleted pod: {name}")).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Err(Error::Kube(e)),
        Err(e) => {
            let msg = message(&e);
            ctx.events.warning(rs, "FailedDelete", "Delete", format!("Error deleting: {msg}")).await;
            Err(Error::Sync(format!("unable to delete pods: {msg}")))
        }
    }
}

/// Upstream's `getIndirectlyRelatedPods`: pods selected by any ReplicaSet with the same controller
/// as `rs` (e.g. all ReplicaSets of one Deployment). Empty when `rs` has no controller.
fn related_pods(ctx: &Ctx, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
    let Some(cref) = controller_of(&rs.metadata) else { return Vec::new() };
    let ns = rs.metadata.namespace.clone();
    let selectors: Vec<Selector> = ctx
        .replicasets
        .state()
        .iter()
        .filter(|other| other.metadata.namespace == ns)
        .filter(|other| controller_of(&other.metadata).is_some_and(|r| r.uid == cref.uid))
        .filter_map(|other| other.spec.as_ref().and_then(|s| Selector::try_from(s.selector.clone()).ok()))
        .collect();
    let mut seen = HashSet::new();
    ctx.pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace == ns)
        .filter(|p| {
            let no_labels = Default::default();
            let labels = p.metadata.labels.as_ref().unwrap_or(&no_labels);
            selectors.iter().any(|s| s.matches(labels))
        })
        .filter(|p| seen.insert(p.metadata.uid.clone()))
        .collect()
}

/// Writes the status (PUT /status), retrying once on a conflict with a fresh read, like
/// upstream's `updateReplicaSetStatus`.
async fn update_status(
    ctx: &Ctx,
    rs: &ReplicaSet,
    status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
) -> Result<(), Error> {
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut current = rs.clone();
    for attempt in 0..2 {
        current.status = Some(status.clone());
        // Absent managedFields leave the server's as they are (an empty list would reset them).
        current.metadata.managed_fields = None;
        match api.replace_status(&current.name_any(), &PostParams::default(), &current).await {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt == 0 => {
                let fresh = api.get(&rs.name_any()).await?;
                if fresh.meta().uid != rs.meta().uid {
                    return Ok(());
                }
                // Same status (observedGeneration included); a newer spec is synced next time.
                current = fresh;
            }
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Sync(format!("could not update status of {}", rs.name_any())))
}

/// Retry delay after `failures` consecutive failures (upstream's per-item exponential backoff,
/// 5 ms doubling, capped at 1000 s).
pub fn backoff(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(30));
    Duration::from_millis(ms).min(Duration::from_secs(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(10), Duration::from_millis(5 * 1024));
        assert_eq!(backoff(40), Duration::from_secs(1000));
    }
}
