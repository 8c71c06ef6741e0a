//! One DaemonSet sync (upstream's `syncDaemonSet`): construct the revision history and find the
//! current hash, claim pods, then — when the expectations allow — create / delete pods per node
//! (`manage`), run the RollingUpdate step, clean up old revisions, and write the status.

use crate::history::{matches, max_revision, new_revision, revision_hash, revisions_to_delete};
use crate::placement::{CONTROLLER_REVISION_HASH_LABEL, pin_to_node, pod_template, target_node_name};
use crate::plan::{NodePods, compute_status, manage_plan, rolling_update_plan};
use crate::{Config, Error};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::expectations::{ControllerExpectations, EXPECTATIONS_TIMEOUT};
use rkube_controller_common::owner::{CanAdopt, ControllerRefManager, controller_of, controller_ref};
use rkube_controller_common::pod::pod_from_template;
use rkube_controller_common::slow_start::{SLOW_START_INITIAL_BATCH_SIZE, slow_start_batch};
use rkube_controller_common::{has_status_cause, is_conflict, is_not_found, is_status, key_of};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 250;
/// Upstream's failed-pod backoff: 1 s doubling up to 15 minutes.
const FAILED_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Shared state of the controller's workers.
pub struct Ctx {
    pub client: kube::Client,
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    pub expectations: ControllerExpectations,
    pub events: EventPublisher,
    pub config: Config,
    /// Consecutive failures per DaemonSet key (retry backoff).
    pub failures: Mutex<HashMap<String, u32>>,
    /// Failed-pod deletion backoff per `uid/observedGeneration/node`: (last deletion, delay).
    pub failed_backoff: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl Ctx {
    /// Upstream's `IsInBackOffSinceUpdate` + `Next`: `Ok(())` when a failed pod may be deleted now
    /// (and the next delay is armed), `Err(remaining)` while in backoff.
    fn failed_pod_backoff(&self, key: &str) -> Result<(), Duration> {
        let mut map = self.failed_backoff.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (at, _)| now.duration_since(*at) < 2 * FAILED_BACKOFF_MAX);
        match map.get_mut(key) {
            Some((at, delay)) if now.duration_since(*at) < *delay => Err(*delay - now.duration_since(*at)),
            Some((at, delay)) => {
                *at = now;
                *delay = (*delay * 2).min(FAILED_BACKOFF_MAX);
                Ok(())
            }
            None => {
                map.insert(key.to_string(), (now, FAILED_BACKOFF_INITIAL));
                Ok(())
            }
        }
    }
}

/// The message of an apiserver error as upstream prints it (the Status message).
fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

fn selects_everything(ds: &DaemonSet) -> bool {
    ds.spec.as_ref().is_some_and(|s| {
        s.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.selector.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    })
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .is_none_or(|u| u.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate")
}

/// Groups pods by target node, leaving out pods that are terminal and being deleted unless asked.
pub fn group_by_node(pods: &[Pod], include_deleted_terminal: bool) -> NodePods {
    let mut out = NodePods::new();
    for p in pods {
        let terminal = matches!(rkube_controller_common::pod::phase(p), "Succeeded" | "Failed");
        if !include_deleted_terminal && terminal && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node_name(p) {
            out.entry(node).or_default().push(p.clone());
        }
    }
    out
}

/// Syncs one DaemonSet.
pub async fn reconcile(ds: std::sync::Arc<DaemonSet>, ctx: std::sync::Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods.wait_until_ready().await.map_err(|e| Error::Cache(e.to_string()))?;
    ctx.nodes.wait_until_ready().await.map_err(|e| Error::Cache(e.to_string()))?;
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let key = key_of(Some(&ns), &name);
    let result = sync(&ctx, &ds, &ns, &key).await;
    if result.is_ok()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.remove(&key);
    }
    result
}

async fn sync(ctx: &Ctx, ds: &DaemonSet, ns: &str, key: &str) -> Result<Action, Error> {
    let Some(spec) = ds.spec.as_ref() else { return Ok(Action::await_change()) };
    if selects_everything(ds) {
        let note = "This daemon set is selecting all pods. A non-empty selector is required.".to_string();
        ctx.events.warning(ds, "SelectingAll", "Sync", note).await;
        return Ok(Action::await_change());
    }
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let selector = match Selector::try_from(spec.selector.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(daemonset = %key, error = %e, "invalid selector; not syncing");
            return Ok(Action::await_change());
        }
    };

    let (cur, old) = construct_history(ctx, ds, ns, &selector).await?;
    let hash = revision_hash(&cur).unwrap_or_default().to_string();
    let pods = claim_pods(ctx, ds, ns, &selector).await?;
    let nodes_state = ctx.nodes.state();
    let nodes: Vec<&Node> = nodes_state.iter().map(|n| n.as_ref()).collect();
    let node_pods = group_by_node(&pods, false);

    if !ctx.expectations.satisfied(key) {
        tracing::debug!(daemonset = %key, pending = ?ctx.expectations.get(key), "expectations not satisfied");
        update_status(ctx, ds, &nodes, &node_pods, &hash, false).await?;
        return Ok(Action::requeue(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)));
    }

    // manage
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let observed = ds.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
    let mut retry_failed: Option<Duration> = None;
    let plan = manage_plan(ds, &nodes, &node_pods, &hash, Timestamp::now(), &mut |node| match ctx
        .failed_pod_backoff(&format!("{uid}/{observed}/{node}"))
    {
        Ok(()) => true,
        Err(wait) => {
            retry_failed = Some(retry_failed.map_or(wait, |w| w.min(wait)));
            false
        }
    });
    tracing::debug!(daemonset = %key, hash = %hash, create = ?plan.create_on, delete = ?plan.delete, "manage");
    for (pod, node) in &plan.failed {
        let note = format!("Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it");
        ctx.events.warning(ds, "FailedDaemonPod", "Delete", note).await;
    }
    for (pod, node) in &plan.succeeded {
        let note = format!("Found succeeded daemon pod {ns}/{pod} on node {node}, will try to delete it");
        ctx.events.normal(ds, "SucceededDaemonPod", "Delete", note).await;
    }
    sync_nodes(ctx, ds, ns, key, &plan.delete, &plan.create_on, &hash).await?;

    // rolling update
    // Like upstream, the rolling update reads the cache again: when manage's writes were observed
    // already, it must see them (a pod just deleted must not be deleted again).
    let pods = refresh(ctx, &pods);
    let node_pods = group_by_node(&pods, false);
    if ctx.expectations.satisfied(key) && is_rolling_update(ds) {
        let update = rolling_update_plan(ds, &nodes, &node_pods, &hash, Timestamp::now()).map_err(Error::Invalid)?;
        tracing::debug!(daemonset = %key, create = ?update.create_on, delete = ?update.delete, "rolling update");
        sync_nodes(ctx, ds, ns, key, &update.delete, &update.create_on, &hash).await?;
    }

    cleanup_history(ctx, ds, ns, &old, &pods).await?;
    let counts = update_status(ctx, ds, &nodes, &node_pods, &hash, true).await?;

    let mrs = spec.min_ready_seconds.unwrap_or(0);
    let mut after: Option<Duration> = retry_failed;
    if mrs > 0 && counts.number_ready != counts.number_available {
        let d = Duration::from_secs(mrs as u64);
        after = Some(after.map_or(d, |a| a.min(d)));
    }
    Ok(match after {
        Some(d) => Action::requeue(d),
        None if !ctx.expectations.satisfied(key) => Action::requeue(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

/// The claimed pods as the cache holds them now (pods gone from the cache are dropped).
fn refresh(ctx: &Ctx, pods: &[Pod]) -> Vec<Pod> {
    pods.iter()
        .filter_map(|p| {
            let r = kube::runtime::reflector::ObjectRef::<Pod>::new(&p.name_any())
                .within(&p.namespace().unwrap_or_default());
            ctx.pods.get(&r).filter(|c| c.metadata.uid == p.metadata.uid).map(|c| c.as_ref().clone())
        })
        .collect()
}

/// Claims the DaemonSet's pods from the cache: its own (terminating ones included) and matching
/// orphans (adopted).
async fn claim_pods(ctx: &Ctx, ds: &DaemonSet, ns: &str, selector: &Selector) -> Result<Vec<Pod>, Error> {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let empty = Default::default();
    let candidates: Vec<Pod> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| match controller_of(&p.metadata) {
            Some(r) => r.uid == uid,
            None => selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)),
        })
        .map(|p| p.as_ref().clone())
        .collect();
    let can_adopt =
        CanAdopt::recheck_deletion_timestamp(Api::<DaemonSet>::namespaced(ctx.client.clone(), ns), ds.name_any(), uid);
    let manager = ControllerRefManager::new(Api::<Pod>::namespaced(ctx.client.clone(), ns), ds, can_adopt);
    Ok(manager.claim(candidates, |p: &Pod| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty))).await?)
}

/// Upstream's `syncNodes`: delete `delete` and create a pinned pod on each of `create_on`
/// (both capped at [`BURST_REPLICAS`]), with expectations set first.
async fn sync_nodes(
    ctx: &Ctx,
    ds: &DaemonSet,
    ns: &str,
    key: &str,
    delete: &[String],
    create_on: &[String],
    hash: &str,
) -> Result<(), Error> {
    let create_n = create_on.len().min(BURST_REPLICAS);
    let delete_n = delete.len().min(BURST_REPLICAS);
    ctx.expectations.set(key, create_n as i64, delete_n as i64);
    if create_n == 0 && delete_n == 0 {
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let template = pod_template(ds, hash);
    let failed = AtomicUsize::new(0);
    let (created, err) = slow_start_batch(create_n, SLOW_START_INITIAL_BATCH_SIZE, |i| {
        let template = &template;
        let api = &api;
        let failed = &failed;
        async move {
            let node = create_on.get(i).cloned().unwrap_or_default();
            let res = create_pod(ctx, ds, ns, api, template, &node).await;
            if res.is_err() {
                failed.fetch_add(1, Ordering::SeqCst);
                ctx.expectations.creation_observed(key);
            }
            res
        }
    })
    .await;
    // Pods never attempted will never be observed.
    let skipped = create_n.saturating_sub(created + failed.load(Ordering::SeqCst));
    if skipped > 0 {
        ctx.expectations.lower(key, skipped as i64, 0);
    }
    let mut first_err = err;
    let results = futures::future::join_all(delete[..delete_n].iter().map(|pod| delete_pod(ctx, ds, &api, pod))).await;
    for res in results {
        if let Err(e) = res {
            ctx.expectations.deletion_observed(key);
            if let Some(e) = e
                && first_err.is_none()
            {
                first_err = Some(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn create_pod(
    ctx: &Ctx,
    ds: &DaemonSet,
    ns: &str,
    api: &Api<Pod>,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    node: &str,
) -> Result<(), Error> {
    let mut pod = pod_from_template(template, &ds.name_any(), ns, Some(controller_ref(ds)));
    if let Some(spec) = pod.spec.as_mut() {
        spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    }
    match api.create(&PostParams::default(), &pod).await {
        Ok(created) => {
            ctx.events.normal(ds, "SuccessfulCreate", "Create", format!("Created pod: {}", created.name_any())).await;
            Ok(())
        }
        // Creating into a terminating namespace fails forever; nothing to report.
        Err(e) if has_status_cause(&e, "NamespaceTerminating") => {
            ctx.expectations.creation_observed(&key_of(Some(ns), &ds.name_any()));
            Ok(())
        }
        Err(e) => {
            let msg = message(&e);
            ctx.events.warning(ds, "FailedCreate", "Create", format!("Error creating: {msg}")).await;
            Err(Error::Sync(msg))
        }
    }
}

/// Deletes one pod; `Err(None)` when it was already gone (not an error, but not observed either).
async fn delete_pod(ctx: &Ctx, ds: &DaemonSet, api: &Api<Pod>, pod: &str) -> Result<(), Option<Error>> {
    match api.delete(pod, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.events.normal(ds, "SuccessfulDelete", "Delete", format!("Deleted pod: {pod}")).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Err(None),
        Err(e) => {
            let msg = message(&e);
            ctx.events.warning(ds, "FailedDelete", "Delete", format!("Error deleting: {msg}")).await;
            Err(Some(Error::Sync(format!("unable to delete pods: {msg}"))))
        }
    }
}

/// Upstream's `constructHistory`: claims the DaemonSet's ControllerRevisions, splits them into the
/// current one (creating it, or deduplicating and renumbering it) and the old ones.
async fn construct_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    ns: &str,
    selector: &Selector,
) -> Result<(ControllerRevision, Vec<ControllerRevision>), Error> {
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), ns);
    let listed = api.list(&ListParams::default().labels_from(selector)).await?.items;
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let can_adopt = CanAdopt::recheck_deletion_timestamp(
        Api::<DaemonSet>::namespaced(ctx.client.clone(), ns),
        ds.name_any(),
        uid.clone(),
    );
    let manager = ControllerRefManager::new(api.clone(), ds, can_adopt);
    let empty = Default::default();
    let claimed = manager
        .claim(listed, |r: &ControllerRevision| selector.matches(r.metadata.labels.as_ref().unwrap_or(&empty)))
        .await?;
    let mut current = Vec::new();
    let mut old = Vec::new();
    for mut rev in claimed {
        if revision_hash(&rev).is_none() {
            let name = rev.name_any();
            rev.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(CONTROLLER_REVISION_HASH_LABEL.into(), name);
            rev.metadata.managed_fields = None;
            rev = api.replace(&rev.name_any(), &PostParams::default(), &rev).await?;
        }
        if matches(ds, &rev) { current.push(rev) } else { old.push(rev) }
    }
    let next = max_revision(&old) + 1;
    let cur = if current.is_empty() {
        snapshot(ctx, ds, ns, &api, next).await?
    } else {
        let mut cur = dedup_current(ctx, ds, ns, &api, current).await?;
        if cur.revision < next {
            cur.revision = next;
            cur.metadata.managed_fields = None;
            cur = api.replace(&cur.name_any(), &PostParams::default(), &cur).await?;
        }
        cur
    };
    Ok((cur, old))
}

/// Upstream's `dedupCurHistories`: keeps the highest-numbered current revision, relabels pods of the
/// duplicates to its hash and deletes the duplicates.
async fn dedup_current(
    ctx: &Ctx,
    ds: &DaemonSet,
    ns: &str,
    api: &Api<ControllerRevision>,
    mut current: Vec<ControllerRevision>,
) -> Result<ControllerRevision, Error> {
    current.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let mut rest = current.split_off(1);
    let Some(keep) = current.pop() else { return Err(Error::Sync("no current revision".into())) };
    if rest.is_empty() {
        return Ok(keep);
    }
    let keep_hash = revision_hash(&keep).unwrap_or_default().to_string();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for dup in rest.drain(..) {
        let dup_hash = revision_hash(&dup).unwrap_or_default().to_string();
        for pod in ctx.pods.state().iter().filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && controller_of(&p.metadata).is_some_and(|r| r.uid == uid)
                && p.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL)) == Some(&dup_hash)
        }) {
            let patch = json!({"metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: keep_hash}}});
            match pods_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match api.delete(&dup.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(keep)
}

/// Upstream's `snapshot`: creates the revision of the current template. A revision of that name
/// that is ours and matches is reused; any other is a hash collision: `status.collisionCount` is
/// raised (so the next sync hashes differently) and the sync fails.
async fn snapshot(
    ctx: &Ctx,
    ds: &DaemonSet,
    ns: &str,
    api: &Api<ControllerRevision>,
    revision: i64,
) -> Result<ControllerRevision, Error> {
    let rev = new_revision(ds, revision);
    let name = rev.name_any();
    match api.create(&PostParams::default(), &rev).await {
        Ok(r) => Ok(r),
        Err(e) if is_status(&e, 409) => {
            let existing = api.get(&name).await?;
            let uid = ds.metadata.uid.clone().unwrap_or_default();
            if controller_of(&existing.metadata).is_some_and(|r| r.uid == uid) && matches(ds, &existing) {
                return Ok(existing);
            }
            let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), ns);
            let mut fresh = ds_api.get(&ds.name_any()).await?;
            let seen = ds.status.as_ref().and_then(|s| s.collision_count);
            let now = fresh.status.as_ref().and_then(|s| s.collision_count);
            if seen != now {
                return Err(Error::Sync(format!(
                    "found a stale collision count ({seen:?}, expected {now:?}) of DaemonSet {:?} while processing; \
                     will retry until it is updated",
                    ds.name_any()
                )));
            }
            let status = fresh.status.get_or_insert_with(Default::default);
            status.collision_count = Some(now.unwrap_or(0).saturating_add(1));
            fresh.metadata.managed_fields = None;
            ds_api.replace_status(&ds.name_any(), &PostParams::default(), &fresh).await?;
            Err(Error::HashCollision(format!("controllerrevisions.apps {name:?} already exists")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Upstream's `cleanupHistory`.
async fn cleanup_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    ns: &str,
    old: &[ControllerRevision],
    pods: &[Pod],
) -> Result<(), Error> {
    let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
    let live: HashSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(CONTROLLER_REVISION_HASH_LABEL).cloned())
        .filter(|h| !h.is_empty())
        .collect();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), ns);
    for name in revisions_to_delete(old, limit, &live) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Upstream's `updateDaemonSetStatus` / `storeDaemonSetStatus`: writes the counters (and
/// observedGeneration when `observe`) if anything changed; retries once on a conflict.
async fn update_status(
    ctx: &Ctx,
    ds: &DaemonSet,
    nodes: &[&Node],
    node_pods: &NodePods,
    hash: &str,
    observe: bool,
) -> Result<crate::plan::Counts, Error> {
    let c = compute_status(ds, nodes, node_pods, hash, Timestamp::now());
    let cur = ds.status.clone().unwrap_or_default();
    let generation = ds.metadata.generation.unwrap_or(0);
    let same = cur.desired_number_scheduled == c.desired_number_scheduled
        && cur.current_number_scheduled == c.current_number_scheduled
        && cur.number_misscheduled == c.number_misscheduled
        && cur.number_ready == c.number_ready
        && cur.updated_number_scheduled.unwrap_or(0) == c.updated_number_scheduled
        && cur.number_available.unwrap_or(0) == c.number_available
        && cur.number_unavailable.unwrap_or(0) == c.number_unavailable
        && cur.observed_generation.unwrap_or(0) >= generation;
    if same {
        return Ok(c);
    }
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let mut target = ds.clone();
    for attempt in 0..2 {
        let base = target.status.clone().unwrap_or_default();
        target.status = Some(DaemonSetStatus {
            observed_generation: if observe { ds.metadata.generation } else { base.observed_generation },
            desired_number_scheduled: c.desired_number_scheduled,
            current_number_scheduled: c.current_number_scheduled,
            number_misscheduled: c.number_misscheduled,
            number_ready: c.number_ready,
            updated_number_scheduled: Some(c.updated_number_scheduled),
            number_available: Some(c.number_available),
            number_unavailable: Some(c.number_unavailable),
            ..base
        });
        target.metadata.managed_fields = None;
        match api.replace_status(&target.name_any(), &PostParams::default(), &target).await {
            Ok(_) => return Ok(c),
            Err(e) if is_conflict(&e) && attempt == 0 => {
                let fresh = api.get(&ds.name_any()).await?;
                if fresh.meta().uid != ds.meta().uid {
                    return Ok(c);
                }
                target = fresh;
            }
            Err(e) if is_not_found(&e) => return Ok(c),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Sync(format!("could not update status of {}", ds.name_any())))
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
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    #[test]
    fn grouping_skips_deleted_terminal_pods() {
        let mk = |name: &str, node: &str, phase: &str, deleting: bool| Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                deletion_timestamp: deleting.then(|| Time(Timestamp::now())),
                ..Default::default()
            },
            spec: Some(PodSpec { affinity: Some(pin_to_node(None, node)), ..Default::default() }),
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
        };
        let pods = vec![
            mk("a", "n1", "Running", false),
            mk("b", "n1", "Failed", true),
            mk("c", "n2", "Running", true),
            mk("d", "n2", "Failed", false),
        ];
        let g = group_by_node(&pods, false);
        assert_eq!(g.get("n1").map(Vec::len), Some(1));
        assert_eq!(g.get("n2").map(Vec::len), Some(2));
        assert_eq!(group_by_node(&pods, true).get("n1").map(Vec::len), Some(2));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(40));
        assert_eq!(backoff(40), Duration::from_secs(1000));
    }
}
