//! One sync of a StatefulSet (upstream's `StatefulSetControl.UpdateStatefulSet`):
//!
//! 1. claim pods (selector + `<set>-<ordinal>` name) and ControllerRevisions (selector);
//! 2. find or create the update revision (re-numbering an equal older revision on rollback,
//!    bumping `collisionCount` on a hash collision) and the current revision;
//! 3. walk the ordinals: create missing claims and pods, replace failed / succeeded pods, and —
//!    under `OrderedReady` — stop at the first pod that is not Running, Ready and available;
//! 4. delete condemned pods (ordinals out of range) highest first, one at a time under
//!    `OrderedReady`, after pointing their claims' ownerReferences per the retention policy;
//! 5. RollingUpdate: delete the highest-ordinal pod at or above the partition that is not at the
//!    update revision, once all higher ones are healthy (OnDelete: leave pods alone);
//! 6. write status and delete surplus revisions.

use crate::identity::*;
use crate::revision::*;
use crate::{Config, Error};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::owner::{CanAdopt, ControllerRefManager};
use rkube_controller_common::pod::{available_in, phase};
use rkube_controller_common::{is_conflict, is_not_found, key_of};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared state of the reconcilers.
pub struct Ctx {
    pub client: kube::Client,
    pub pods: Store<Pod>,
    pub events: EventPublisher,
    pub config: Config,
    /// Consecutive failures per set key (for the retry backoff).
    pub failures: Mutex<HashMap<String, u32>>,
}

fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Retry delay after `failures` consecutive failures (5 ms doubling, capped at 1000 s).
pub fn backoff(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(30));
    Duration::from_millis(ms).min(Duration::from_secs(1000))
}

/// The reconciler.
pub async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = key_of(set.metadata.namespace.as_deref(), &set.name_any());
    let out = sync(&set, &ctx).await;
    if out.is_ok()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.remove(&key);
    }
    out
}

async fn sync(set: &StatefulSet, ctx: &Ctx) -> Result<Action, Error> {
    let ns = set.namespace().unwrap_or_default();
    let Some(spec) = set.spec.as_ref() else { return Ok(Action::await_change()) };
    let selector = match Selector::try_from(spec.selector.clone()) {
        Ok(s) => s,
        Err(e) => {
            let note = format!("invalid selector: {e}");
            ctx.events.warning(set, "InvalidSelector", "Sync", note).await;
            return Ok(Action::await_change());
        }
    };
    if selector.selects_all() {
        // Upstream: a set with an empty selector selects nothing.
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let revs_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let sets_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let can_adopt =
        || CanAdopt::recheck_deletion_timestamp(sets_api.clone(), set.name_any(), set.uid().unwrap_or_default());

    // 1. Claim pods and revisions.
    let candidates: Vec<Pod> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .map(|p| (**p).clone())
        .collect();
    let pod_mgr = ControllerRefManager::new(pods_api.clone(), set, can_adopt());
    let pods = pod_mgr
        .claim(candidates, |p: &Pod| {
            selector.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default())) && is_member_of(set, p)
        })
        .await?;
    let listed = revs_api.list(&ListParams::default().labels(&selector.to_string())).await?.items;
    let rev_mgr = ControllerRefManager::new(revs_api.clone(), set, can_adopt());
    let mut revisions = rev_mgr
        .claim(listed, |r: &ControllerRevision| {
            selector.matches(r.metadata.labels.as_ref().unwrap_or(&Default::default()))
        })
        .await?;
    sort_revisions(&mut revisions);

    // 2. Revisions.
    let (current, update, collision_count) = get_revisions(set, &revs_api, &mut revisions).await?;

    // 3–5. Pods.
    let mut requeue: Option<Duration> = None;
    let status = update_pods(set, ctx, &pods, &current, &update, collision_count, &mut requeue).await?;

    // 6. Status and history.
    let mut status = status;
    complete_rolling_update(set, &mut status);
    if status_differs(set.status.as_ref(), &status) {
        let patch = json!({"status": status});
        match sets_api.patch_status(&set.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    let mut live: HashSet<String> = pods.iter().map(|p| pod_revision(p).to_string()).collect();
    live.insert(current.name_any());
    live.insert(update.name_any());
    let limit = spec.revision_history_limit.unwrap_or(10);
    for r in to_truncate(&revisions, &live, limit) {
        match revs_api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Upstream's `getStatefulSetRevisions`: (current, update, collisionCount).
async fn get_revisions(
    set: &StatefulSet,
    api: &Api<ControllerRevision>,
    revisions: &mut Vec<ControllerRevision>,
) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
    let mut collision_count = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let candidate = new_revision(set, next_revision(revisions), collision_count);
    let equal: Vec<ControllerRevision> = equal_revisions(revisions, &candidate).into_iter().cloned().collect();
    let update = match equal.last() {
        Some(eq) if revisions.last().is_some_and(|l| l.name_any() == eq.name_any()) => eq.clone(),
        Some(eq) => {
            // A rollback to an older template: that revision becomes the newest.
            let patch = json!({"revision": candidate.revision});
            let updated = api.patch(&eq.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
            if let Some(slot) = revisions.iter_mut().find(|r| r.name_any() == updated.name_any()) {
                *slot = updated.clone();
            }
            sort_revisions(revisions);
            updated
        }
        None => loop {
            let cr = new_revision(set, candidate.revision, collision_count);
            match api.create(&PostParams::default(), &cr).await {
                Ok(created) => {
                    revisions.push(created.clone());
                    break created;
                }
                Err(e) if is_conflict(&e) => {
                    let existing = api.get(&cr.name_any()).await?;
                    if data_of(&existing) == data_of(&cr) {
                        break existing;
                    }
                    collision_count = collision_count.saturating_add(1);
                }
                Err(e) => return Err(e.into()),
            }
        },
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone()).unwrap_or_default();
    let current = revisions.iter().find(|r| r.name_any() == current_name).cloned().unwrap_or_else(|| update.clone());
    Ok((current, update, collision_count))
}

/// A replica slot: the pod, and whether it exists in the API.
struct Slot {
    pod: Pod,
    created: bool,
}

#[allow(clippy::too_many_arguments)]
async fn update_pods(
    set: &StatefulSet,
    ctx: &Ctx,
    pods: &[Pod],
    current: &ControllerRevision,
    update: &ControllerRevision,
    collision_count: i32,
    requeue: &mut Option<Duration>,
) -> Result<StatefulSetStatus, Error> {
    let spec = set.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let current_set = apply_revision(set, current);
    let update_set = apply_revision(set, update);
    let (current_name, update_name) = (current.name_any(), update.name_any());

    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current_name.clone()),
        update_revision: Some(update_name.clone()),
        collision_count: Some(collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut replicas_n, mut ready, mut available, mut cur_n, mut upd_n) = (0, 0, 0, 0, 0);
    for p in pods {
        if is_created(p) {
            replicas_n += 1;
        }
        if is_running_and_ready(p) {
            ready += 1;
            if is_running_and_available(p, min_ready, now) {
                available += 1;
            }
        }
        if is_created(p) && !is_terminating(p) {
            let rev = pod_revision(p);
            if rev == current_name {
                cur_n += 1;
            }
            if rev == update_name {
                upd_n += 1;
            }
        }
        if let Some(d) = available_in(p, min_ready, now) {
            note_requeue(requeue, d + Duration::from_millis(100));
        }
    }

    let start = start_ordinal(set);
    let count = usize::try_from(replicas(set)).unwrap_or(0);
    let mut slots: Vec<Option<Slot>> = (0..count).map(|_| None).collect();
    let mut condemned: Vec<Pod> = Vec::new();
    for p in pods {
        let o = ordinal(p);
        if o < 0 {
            continue;
        }
        if o >= start && o < start.saturating_add(count as i32) {
            let i = (o - start) as usize;
            slots[i] = Some(Slot { pod: p.clone(), created: true });
        } else {
            condemned.push(p.clone());
        }
    }
    let mut slots: Vec<Slot> = slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.unwrap_or_else(|| Slot {
                pod: new_versioned_pod(&current_set, &update_set, &current_name, &update_name, start + i as i32),
                created: false,
            })
        })
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let first_unhealthy: Option<String> = slots
        .iter()
        .find(|s| !s.created || !is_healthy(&s.pod))
        .map(|s| s.pod.name_any())
        .or_else(|| condemned.iter().find(|p| !is_healthy(p)).map(|p| p.name_any()));

    let finish = |status: &mut StatefulSetStatus, r: i32, rd: i32, av: i32, c: i32, u: i32| {
        status.replicas = r;
        status.ready_replicas = Some(rd);
        status.available_replicas = Some(av);
        status.current_replicas = Some(c);
        status.updated_replicas = Some(u);
    };
    if set.metadata.deletion_timestamp.is_some() {
        finish(&mut status, replicas_n, ready, available, cur_n, upd_n);
        return Ok(status);
    }
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let ns = set.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);

    // Replicas in range, in ordinal order.
    let mut blocked = false;
    for slot in slots.iter_mut() {
        let pod = &slot.pod;
        if slot.created && matches!(phase(pod), "Failed" | "Succeeded") {
            if !is_terminating(pod) {
                let verb = if phase(pod) == "Failed" { "failed" } else { "succeeded" };
                tracing::info!(pod = %pod.name_any(), "StatefulSet pod {verb}; recreating");
                delete_pod(ctx, set, &pods_api, pod).await?;
                let rev = pod_revision(pod);
                if rev == current_name {
                    cur_n -= 1;
                }
                if rev == update_name {
                    upd_n -= 1;
                }
            }
            if monotonic {
                blocked = true;
                break;
            }
            continue;
        }
        if !slot.created {
            ensure_claims(ctx, set, &claims_api, pod).await?;
            let created = create_pod(ctx, set, &pods_api, pod).await?;
            replicas_n += 1;
            let rev = pod_revision(pod);
            if rev == current_name {
                cur_n += 1;
            }
            if rev == update_name {
                upd_n += 1;
            }
            slot.pod = created;
            slot.created = true;
            if monotonic {
                blocked = true;
                break;
            }
            continue;
        }
        if phase(pod) == "Pending" {
            ensure_claims(ctx, set, &claims_api, pod).await?;
        }
        if is_terminating(pod) && monotonic {
            blocked = true;
            break;
        }
        if !is_running_and_ready(pod) && monotonic {
            blocked = true;
            break;
        }
        if !is_running_and_available(pod, min_ready, now) && monotonic {
            blocked = true;
            break;
        }
        if is_terminating(pod) {
            continue;
        }
        if !identity_matches(set, pod) {
            let patch = json!({"metadata": {"labels": identity_labels(pod)}});
            pods_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
        if !storage_matches(set, pod) {
            ensure_claims(ctx, set, &claims_api, pod).await?;
        }
        fix_claim_refs(set, &claims_api, pod).await?;
    }

    if !blocked {
        // Point the claims of condemned pods at their new owners before deleting anything.
        for p in &condemned {
            fix_claim_refs(set, &claims_api, p).await?;
        }
        for p in &condemned {
            if is_terminating(p) {
                if monotonic {
                    blocked = true;
                    break;
                }
                continue;
            }
            let first = first_unhealthy.as_deref() == Some(p.name_any().as_str());
            if monotonic && !first && !is_running_and_available(p, min_ready, now) {
                blocked = true;
                break;
            }
            delete_pod(ctx, set, &pods_api, p).await?;
            let rev = pod_revision(p);
            if rev == current_name {
                cur_n -= 1;
            }
            if rev == update_name {
                upd_n -= 1;
            }
            if monotonic {
                blocked = true;
                break;
            }
        }
    }

    let on_delete = spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    if !blocked && !on_delete {
        let partition = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .max(0);
        let update_min = usize::try_from(partition).unwrap_or(0);
        let max_unavailable = if ctx.config.max_unavailable_statefulset { max_unavailable_of(&spec, count) } else { 1 };
        if max_unavailable <= 1 {
            for slot in slots.iter().skip(update_min).rev() {
                let pod = &slot.pod;
                if pod_revision(pod) != update_name && !is_terminating(pod) && slot.created {
                    tracing::info!(pod = %pod.name_any(), "StatefulSet pod terminating for update");
                    delete_pod(ctx, set, &pods_api, pod).await?;
                    if pod_revision(pod) == current_name {
                        cur_n -= 1;
                    }
                    break;
                }
                if !slot.created || !is_healthy(pod) || !is_running_and_available(pod, min_ready, now) {
                    break;
                }
            }
        } else {
            // MaxUnavailableStatefulSet: up to maxUnavailable pods at or above the partition may be
            // down at once; outdated pods are deleted highest ordinal first.
            let targets: Vec<&Slot> = slots.iter().skip(update_min).collect();
            let unavailable = targets
                .iter()
                .filter(|s| !s.created || !is_healthy(&s.pod) || !is_running_and_available(&s.pod, min_ready, now))
                .count();
            let mut budget = max_unavailable.saturating_sub(unavailable);
            for slot in targets.iter().rev() {
                if budget == 0 {
                    break;
                }
                let pod = &slot.pod;
                let healthy = slot.created && is_healthy(pod) && is_running_and_available(pod, min_ready, now);
                if healthy && pod_revision(pod) != update_name {
                    delete_pod(ctx, set, &pods_api, pod).await?;
                    if pod_revision(pod) == current_name {
                        cur_n -= 1;
                    }
                    budget -= 1;
                }
            }
        }
    }

    finish(&mut status, replicas_n, ready, available, cur_n.max(0), upd_n.max(0));
    Ok(status)
}

/// `rollingUpdate.maxUnavailable` resolved against the replica count (at least 1).
fn max_unavailable_of(spec: &k8s_openapi::api::apps::v1::StatefulSetSpec, replicas: usize) -> usize {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let v =
        spec.update_strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_unavailable.clone());
    let n = match v {
        None => 1,
        Some(IntOrString::Int(i)) => usize::try_from(i).unwrap_or(1),
        Some(IntOrString::String(s)) => {
            let pct = s.trim_end_matches('%').parse::<usize>().unwrap_or(0);
            // Percentages round down (upstream: GetScaledValueFromIntOrPercent with roundUp=false).
            replicas.saturating_mul(pct) / 100
        }
    };
    n.max(1)
}

fn note_requeue(requeue: &mut Option<Duration>, d: Duration) {
    *requeue = Some(requeue.map_or(d, |r| r.min(d)));
}

/// Upstream's `completeRollingUpdate`.
fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .is_none_or(|s| s.type_.as_deref().is_none_or(|t| t == "RollingUpdate"));
    let want = replicas(set);
    if rolling
        && status.updated_replicas == Some(want)
        && status.ready_replicas == Some(want)
        && status.replicas == want
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

fn status_differs(old: Option<&StatefulSetStatus>, new: &StatefulSetStatus) -> bool {
    let Some(old) = old else { return true };
    let z = |v: Option<i32>| v.unwrap_or(0);
    old.observed_generation != new.observed_generation
        || old.replicas != new.replicas
        || z(old.ready_replicas) != z(new.ready_replicas)
        || z(old.available_replicas) != z(new.available_replicas)
        || z(old.current_replicas) != z(new.current_replicas)
        || z(old.updated_replicas) != z(new.updated_replicas)
        || old.current_revision != new.current_revision
        || old.update_revision != new.update_revision
        || z(old.collision_count) != z(new.collision_count)
}

/// Creates the pod's missing claims (upstream's `createPersistentVolumeClaims`), with the
/// retention-policy ownerReferences.
async fn ensure_claims(ctx: &Ctx, set: &StatefulSet, api: &Api<PersistentVolumeClaim>, pod: &Pod) -> Result<(), Error> {
    for (_, mut claim) in claims_for(set, ordinal(pod)) {
        let name = claim.name_any();
        match api.get(&name).await {
            Ok(existing) => {
                if existing.metadata.deletion_timestamp.is_some() {
                    return Err(Error::Sync(format!(
                        "pod {}: pvc {name} is being deleted, will not create pod",
                        pod.name_any()
                    )));
                }
            }
            Err(e) if is_not_found(&e) => {
                let refs = desired_claim_refs(&claim, set, pod);
                claim.metadata.owner_references = (!refs.is_empty()).then_some(refs);
                match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {
                        let note = format!(
                            "create Claim {name} Pod {} in StatefulSet {} success",
                            pod.name_any(),
                            set.name_any()
                        );
                        ctx.events.normal(set, "SuccessfulCreate", "Create", note).await;
                    }
                    Err(e) if is_conflict(&e) => {}
                    Err(e) => {
                        let note = format!(
                            "create Claim {name} for Pod {} in StatefulSet {} failed error: {}",
                            pod.name_any(),
                            set.name_any(),
                            message(&e)
                        );
                        ctx.events.warning(set, "FailedCreate", "Create", note).await;
                        return Err(e.into());
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Updates the ownerReferences of the pod's existing claims to match the retention policy.
async fn fix_claim_refs(set: &StatefulSet, api: &Api<PersistentVolumeClaim>, pod: &Pod) -> Result<(), Error> {
    if pod.metadata.uid.is_none() {
        return Ok(());
    }
    for (_, claim) in claims_for(set, ordinal(pod)) {
        let name = claim.name_any();
        let existing = match api.get(&name).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        if existing.metadata.deletion_timestamp.is_some() || claim_refs_match(&existing, set, pod) {
            continue;
        }
        let refs = desired_claim_refs(&existing, set, pod);
        // A merge patch replaces the whole list; the resourceVersion makes it a compare-and-swap.
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": existing.metadata.resource_version,
        }});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    Ok(())
}

async fn create_pod(ctx: &Ctx, set: &StatefulSet, api: &Api<Pod>, pod: &Pod) -> Result<Pod, Error> {
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            let note = format!("create Pod {} in StatefulSet {} successful", pod.name_any(), set.name_any());
            ctx.events.normal(set, "SuccessfulCreate", "Create", note).await;
            Ok(created)
        }
        Err(e) if is_conflict(&e) => {
            // Our cache lags behind: the pod exists already.
            Err(Error::Sync(format!("pod {} already exists", pod.name_any())))
        }
        Err(e) => {
            let note = format!(
                "create Pod {} in StatefulSet {} failed error: {}",
                pod.name_any(),
                set.name_any(),
                message(&e)
            );
            ctx.events.warning(set, "FailedCreate", "Create", note).await;
            Err(e.into())
        }
    }
}

async fn delete_pod(ctx: &Ctx, set: &StatefulSet, api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let name = pod.name_any();
    let params = DeleteParams {
        preconditions: pod
            .metadata
            .uid
            .clone()
            .map(|uid| kube::api::Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            let note = format!("delete Pod {name} in StatefulSet {} successful", set.name_any());
            ctx.events.normal(set, "SuccessfulDelete", "Delete", note).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => {
            let note = format!("delete Pod {name} in StatefulSet {} failed error: {}", set.name_any(), message(&e));
            ctx.events.warning(set, "FailedDelete", "Delete", note).await;
            Err(e.into())
        }
    }
}

/// Whether an owner reference points at a StatefulSet (`apps/*`).
pub fn set_kind_matches(r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference) -> bool {
    r.kind == StatefulSet::kind(&()) && r.api_version.starts_with("apps/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(strategy: serde_json::Value, replicas: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}}, "serviceName": "s",
                     "template": {"metadata": {"labels": {"a": "b"}}}, "updateStrategy": strategy}
        }))
        .unwrap_or_default()
    }

    fn status(replicas: i32, ready: i32, updated: i32) -> StatefulSetStatus {
        StatefulSetStatus {
            replicas,
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            current_replicas: Some(0),
            current_revision: Some("web-old".into()),
            update_revision: Some("web-new".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rolling_update_completes_only_when_all_updated_and_ready() {
        let s = set(json!({"type": "RollingUpdate"}), 3);
        let mut st = status(3, 3, 3);
        complete_rolling_update(&s, &mut st);
        assert_eq!(st.current_revision.as_deref(), Some("web-new"));
        assert_eq!(st.current_replicas, Some(3));
        let mut st = status(3, 2, 3);
        complete_rolling_update(&s, &mut st);
        assert_eq!(st.current_revision.as_deref(), Some("web-old"));
        // OnDelete never completes on its own.
        let s = set(json!({"type": "OnDelete"}), 3);
        let mut st = status(3, 3, 3);
        complete_rolling_update(&s, &mut st);
        assert_eq!(st.current_revision.as_deref(), Some("web-old"));
    }

    #[test]
    fn status_comparison_treats_missing_counts_as_zero() {
        let mut a = status(3, 0, 0);
        a.ready_replicas = None;
        let b = status(3, 0, 0);
        assert!(!status_differs(Some(&a), &b));
        assert!(status_differs(Some(&a), &status(3, 1, 0)));
        assert!(status_differs(None, &b));
    }

    #[test]
    fn max_unavailable_resolution() {
        let s = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}), 5);
        assert_eq!(max_unavailable_of(s.spec.as_ref().unwrap_or(&Default::default()), 5), 2);
        let s = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 3}}), 5);
        assert_eq!(max_unavailable_of(s.spec.as_ref().unwrap_or(&Default::default()), 5), 3);
        let s = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}), 5);
        assert_eq!(max_unavailable_of(s.spec.as_ref().unwrap_or(&Default::default()), 5), 1);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(40), Duration::from_secs(1000));
    }
}
