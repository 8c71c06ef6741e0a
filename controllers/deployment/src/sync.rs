//! One reconcile of one Deployment (upstream's syncDeployment and the rolling, recreate,
//! scale, cleanup and progress paths). Every write carries the resourceVersion it was
//! computed from, so a stale view ends in a 409 and the Deployment is simply re-synced.

use crate::util::*;
use crate::{Context, Error};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::{Api, ResourceExt};
use rkube_controller_common::conditions::{self, CONDITION_FALSE, CONDITION_TRUE, CONDITION_UNKNOWN};
use rkube_controller_common::hash::{DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, compute_hash};
use rkube_controller_common::owner::{CanAdopt, ControllerRefManager, controller_of, controller_ref};
use rkube_controller_common::{is_conflict, is_not_found};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// Syncs one Deployment; returns when it wants to be looked at again without any change
/// (the progress-deadline check).
pub async fn sync_deployment(ctx: &Context, d: &Deployment) -> Result<Option<Duration>, Error> {
    let mut d = d.clone();
    let Some(spec) = d.spec.as_ref() else {
        return Ok(None);
    };
    let selector_empty = spec.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && spec.selector.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if selector_empty {
        ctx.events
            .warning(
                &d,
                "SelectingAll",
                "Sync",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            )
            .await;
        let observed = d.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
        if observed < d.metadata.generation.unwrap_or(0) {
            d.status.get_or_insert_with(Default::default).observed_generation = d.metadata.generation;
            update_status(ctx, &mut d).await?;
        }
        return Ok(None);
    }
    let selector = Selector::try_from(spec.selector.clone()).map_err(|e| Error::Invalid(e.to_string()))?;

    let rs_list = replicasets_for_deployment(ctx, &d, &selector).await?;

    if d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old_rss) = all_rss_and_sync_revision(ctx, &mut d, &rs_list, false).await?;
        sync_deployment_status(ctx, &mut d, &old_rss, new_rs.as_ref()).await?;
        return Ok(None);
    }

    check_paused_conditions(ctx, &mut d).await?;

    if paused(&d) || is_scaling_event(ctx, &mut d, &rs_list).await? {
        sync(ctx, &mut d, &rs_list).await?;
        return Ok(None);
    }

    if is_rolling_update(&d) {
        rollout_rolling(ctx, &mut d, &rs_list).await
    } else {
        rollout_recreate(ctx, &mut d, &rs_list, &selector).await
    }
}

fn ns_of(d: &Deployment) -> String {
    d.metadata.namespace.clone().unwrap_or_default()
}

fn rs_api(ctx: &Context, d: &Deployment) -> Api<ReplicaSet> {
    Api::namespaced(ctx.client.clone(), &ns_of(d))
}

fn deploy_api(ctx: &Context, d: &Deployment) -> Api<Deployment> {
    Api::namespaced(ctx.client.clone(), &ns_of(d))
}

/// Lists the namespace's ReplicaSets and claims them (adopt orphans that match, release
/// ours that no longer do), as upstream's getReplicaSetsForDeployment.
async fn replicasets_for_deployment(
    ctx: &Context,
    d: &Deployment,
    selector: &Selector,
) -> Result<Vec<ReplicaSet>, Error> {
    let api = rs_api(ctx, d);
    let all = api.list(&ListParams::default()).await?.items;
    let can_adopt = CanAdopt::recheck_deletion_timestamp(deploy_api(ctx, d), d.name_any(), d.uid().unwrap_or_default());
    let manager = ControllerRefManager::new(api, d, can_adopt);
    let claimed = manager
        .claim(all, |rs: &ReplicaSet| selector.matches(rs.metadata.labels.as_ref().unwrap_or(&Default::default())))
        .await?;
    Ok(claimed)
}

/// Pods selected by the Deployment, grouped by the UID of the ReplicaSet controlling them.
async fn pod_map(
    ctx: &Context,
    d: &Deployment,
    selector: &Selector,
    rs_list: &[ReplicaSet],
) -> Result<HashMap<String, Vec<Pod>>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns_of(d));
    let pods = api.list(&ListParams::default().labels_from(selector)).await?.items;
    let mut map: HashMap<String, Vec<Pod>> =
        rs_list.iter().filter_map(|rs| rs.metadata.uid.clone()).map(|u| (u, Vec::new())).collect();
    for pod in pods {
        if let Some(owner) = controller_of(&pod.metadata)
            && let Some(list) = map.get_mut(&owner.uid)
        {
            list.push(pod);
        }
    }
    Ok(map)
}

async fn update_status(ctx: &Context, d: &mut Deployment) -> Result<(), Error> {
    let updated = deploy_api(ctx, d).replace_status(&d.name_any(), &PostParams::default(), d).await?;
    *d = updated;
    Ok(())
}

/// Sets the Deployment's revision annotation (a metadata patch guarded by resourceVersion).
async fn set_deployment_revision(ctx: &Context, d: &mut Deployment, revision: &str) -> Result<(), Error> {
    if annotation(&d.metadata, REVISION_ANNOTATION) == Some(revision) {
        return Ok(());
    }
    let patch = json!({"metadata": {
        "resourceVersion": d.metadata.resource_version,
        "annotations": {REVISION_ANNOTATION: revision},
    }});
    let status = d.status.clone();
    let updated = deploy_api(ctx, d).patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    *d = updated;
    // Keep any status changes made locally but not yet written.
    d.status = status;
    Ok(())
}

fn set_condition(d: &mut Deployment, c: DeploymentCondition) -> bool {
    let status = d.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conditions::set(conds, c)
}

/// Progressing=Unknown DeploymentPaused / DeploymentResumed, so a long pause never reads as
/// a missed deadline.
async fn check_paused_conditions(ctx: &Context, d: &mut Deployment) -> Result<(), Error> {
    if !has_progress_deadline(d) {
        return Ok(());
    }
    let cond = get_condition(d.status.as_ref(), DEPLOYMENT_PROGRESSING);
    if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT_REASON)) {
        return Ok(());
    }
    let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED_DEPLOY_REASON));
    let c = if paused(d) && !paused_cond {
        conditions::new_deployment_condition(
            DEPLOYMENT_PROGRESSING,
            CONDITION_UNKNOWN,
            PAUSED_DEPLOY_REASON,
            "Deployment is paused",
        )
    } else if !paused(d) && paused_cond {
        conditions::new_deployment_condition(
            DEPLOYMENT_PROGRESSING,
            CONDITION_UNKNOWN,
            RESUMED_DEPLOY_REASON,
            "Deployment is resumed",
        )
    } else {
        return Ok(());
    };
    set_condition(d, c);
    update_status(ctx, d).await
}

/// The new ReplicaSet (created when `create`) and all old ones, with revisions synced.
async fn all_rss_and_sync_revision(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &[ReplicaSet],
    create: bool,
) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
    let existing = find_new_rs(d, rs_list);
    let old = find_old_rss(rs_list, existing.as_ref());
    let new_rs = new_replicaset(ctx, d, existing, &old, create).await?;
    Ok((new_rs, old))
}

async fn new_replicaset(
    ctx: &Context,
    d: &mut Deployment,
    existing: Option<ReplicaSet>,
    old_rss: &[ReplicaSet],
    create: bool,
) -> Result<Option<ReplicaSet>, Error> {
    let new_revision = max_revision(old_rss) + 1;
    let api = rs_api(ctx, d);

    if let Some(existing) = existing {
        let mut copy = existing.clone();
        let annotations_updated = set_new_rs_annotations(d, &mut copy, new_revision, true);
        let spec = copy.spec.get_or_insert_with(Default::default);
        let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready_seconds(d);
        if annotations_updated || min_ready_changed {
            spec.min_ready_seconds = Some(min_ready_seconds(d));
            let updated = api.replace(&copy.name_any(), &PostParams::default(), &copy).await?;
            return Ok(Some(updated));
        }
        let revision = annotation(&copy.metadata, REVISION_ANNOTATION).unwrap_or_default().to_string();
        set_deployment_revision(ctx, d, &revision).await?;
        if has_progress_deadline(d) && get_condition(d.status.as_ref(), DEPLOYMENT_PROGRESSING).is_none() {
            let msg = format!("Found new replica set {:?}", copy.name_any());
            set_condition(
                d,
                conditions::new_deployment_condition(DEPLOYMENT_PROGRESSING, CONDITION_TRUE, FOUND_NEW_RS_REASON, msg),
            );
            update_status(ctx, d).await?;
        }
        return Ok(Some(copy));
    }
    if !create {
        return Ok(None);
    }

    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let hash = compute_hash(&template, collision_count);
    let rs_template = new_rs_template(d, &hash);
    let mut selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), hash.clone());
    let name = format!("{}-{}", d.name_any(), hash);
    let mut new_rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: d.metadata.namespace.clone(),
            owner_references: Some(vec![controller_ref(d)]),
            labels: rs_template.metadata.as_ref().and_then(|m| m.labels.clone()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: Some(min_ready_seconds(d)),
            selector,
            template: Some(rs_template),
        }),
        status: None,
    };
    let mut all: Vec<ReplicaSet> = old_rss.to_vec();
    all.push(new_rs.clone());
    let new_replicas = new_rs_new_replicas(d, &all, &new_rs);
    if let Some(s) = new_rs.spec.as_mut() {
        s.replicas = Some(new_replicas);
    }
    set_new_rs_annotations(d, &mut new_rs, new_revision, false);

    let (created, already_exists) = match api.create(&PostParams::default(), &new_rs).await {
        Ok(rs) => (rs, false),
        Err(e) if is_conflict(&e) => {
            // Either our own earlier create (stale view) or a hash collision.
            let rs = api.get(&name).await?;
            let ours = controller_of(&rs.metadata).is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref());
            let same =
                rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &template));
            if ours && same {
                (rs, true)
            } else {
                let status = d.status.get_or_insert_with(Default::default);
                status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
                update_status(ctx, d).await?;
                return Err(Error::HashCollision(format!(
                    "found a hash collision for deployment {:?} - bumping collisionCount to resolve it",
                    d.name_any()
                )));
            }
        }
        Err(e) => {
            let msg = format!("Failed to create new replica set {name:?}: {e}");
            if has_progress_deadline(d) {
                set_condition(
                    d,
                    conditions::new_deployment_condition(
                        DEPLOYMENT_PROGRESSING,
                        CONDITION_FALSE,
                        FAILED_RS_CREATE_REASON,
                        msg.clone(),
                    ),
                );
                // Best effort: the create error is what gets reported.
                let _ = update_status(ctx, d).await;
            }
            ctx.events.warning(d, FAILED_RS_CREATE_REASON, "Create", msg).await;
            return Err(e.into());
        }
    };
    if !already_exists && new_replicas > 0 {
        ctx.events
            .normal(
                d,
                "ScalingReplicaSet",
                "Scale",
                format!("Scaled up replica set {} to {new_replicas} from 0", created.name_any()),
            )
            .await;
    }
    set_deployment_revision(ctx, d, &new_revision.to_string()).await?;
    if !already_exists && has_progress_deadline(d) {
        let msg = format!("Created new replica set {:?}", created.name_any());
        set_condition(
            d,
            conditions::new_deployment_condition(DEPLOYMENT_PROGRESSING, CONDITION_TRUE, NEW_RS_REASON, msg),
        );
        update_status(ctx, d).await?;
    }
    Ok(Some(created))
}

/// Whether `spec.replicas` differs from what an active ReplicaSet was sized for.
async fn is_scaling_event(ctx: &Context, d: &mut Deployment, rs_list: &[ReplicaSet]) -> Result<bool, Error> {
    let (new_rs, old) = all_rss_and_sync_revision(ctx, d, rs_list, false).await?;
    let mut all = old;
    all.extend(new_rs);
    Ok(filter_active(&all).iter().any(|rs| desired_replicas_annotation(rs).is_some_and(|v| v != replicas(d))))
}

/// Scaling events and paused Deployments: proportional scaling, no rollout.
async fn sync(ctx: &Context, d: &mut Deployment, rs_list: &[ReplicaSet]) -> Result<(), Error> {
    let (new_rs, old_rss) = all_rss_and_sync_revision(ctx, d, rs_list, false).await?;
    scale(ctx, d, new_rs.as_ref(), &old_rss).await?;
    // Re-read sizes after scaling for the status.
    let (new_rs, old_rss) = refresh(ctx, d, new_rs, old_rss).await?;
    if paused(d) {
        cleanup_deployment(ctx, d, &old_rss).await?;
    }
    sync_deployment_status(ctx, d, &old_rss, new_rs.as_ref()).await
}

/// Re-reads the given ReplicaSets (after writes) so status is computed from current objects.
async fn refresh(
    ctx: &Context,
    d: &Deployment,
    new_rs: Option<ReplicaSet>,
    old_rss: Vec<ReplicaSet>,
) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
    let api = rs_api(ctx, d);
    let mut fresh_old = Vec::with_capacity(old_rss.len());
    for rs in old_rss {
        match api.get_opt(&rs.name_any()).await? {
            Some(f) if f.metadata.uid == rs.metadata.uid => fresh_old.push(f),
            _ => {}
        }
    }
    let fresh_new = match new_rs {
        Some(rs) => api.get_opt(&rs.name_any()).await?.filter(|f| f.metadata.uid == rs.metadata.uid),
        None => None,
    };
    Ok((fresh_new, fresh_old))
}

async fn scale(
    ctx: &Context,
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
) -> Result<(), Error> {
    if let Some(active) = find_active_or_latest(new_rs, old_rss) {
        if rs_replicas(&active) == replicas(d) {
            return Ok(());
        }
        scale_rs_and_record(ctx, d, &active, replicas(d)).await?;
        return Ok(());
    }
    if is_saturated(d, new_rs) {
        for old in filter_active(old_rss) {
            scale_rs_and_record(ctx, d, &old, 0).await?;
        }
        return Ok(());
    }
    if is_rolling_update(d) {
        let mut all = old_rss.to_vec();
        all.extend(new_rs.cloned());
        let active = filter_active(&all);
        let (sizes, op) = proportional_sizes(d, &active);
        for (rs, size) in sizes {
            scale_rs(ctx, d, &rs, size, op).await?;
        }
    }
    Ok(())
}

/// Scales when the size differs; returns the (possibly updated) RS and whether it was scaled.
async fn scale_rs_and_record(
    ctx: &Context,
    d: &Deployment,
    rs: &ReplicaSet,
    new_scale: i32,
) -> Result<(bool, ReplicaSet), Error> {
    let current = rs_replicas(rs);
    if current == new_scale {
        return Ok((false, rs.clone()));
    }
    let op = if current < new_scale { "up" } else { "down" };
    scale_rs(ctx, d, rs, new_scale, op).await
}

/// Sets size and the desired/max replicas annotations; records ScalingReplicaSet.
async fn scale_rs(
    ctx: &Context,
    d: &Deployment,
    rs: &ReplicaSet,
    new_scale: i32,
    op: &str,
) -> Result<(bool, ReplicaSet), Error> {
    let old_scale = rs_replicas(rs);
    let size_changed = old_scale != new_scale;
    let desired = replicas(d);
    let max = desired + max_surge(d);
    if !size_changed && !replicas_annotations_need_update(rs, desired, max) {
        return Ok((false, rs.clone()));
    }
    let mut copy = rs.clone();
    copy.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
    set_replicas_annotations(&mut copy, desired, max);
    let updated = rs_api(ctx, d).replace(&copy.name_any(), &PostParams::default(), &copy).await?;
    if size_changed {
        ctx.events
            .normal(
                d,
                "ScalingReplicaSet",
                "Scale",
                format!("Scaled {op} replica set {} to {new_scale} from {old_scale}", rs.name_any()),
            )
            .await;
    }
    Ok((size_changed, updated))
}

/// Deletes the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit.
async fn cleanup_deployment(ctx: &Context, d: &Deployment, old_rss: &[ReplicaSet]) -> Result<(), Error> {
    let Some(limit) = revision_history_limit(d) else {
        return Ok(());
    };
    let mut cleanable: Vec<ReplicaSet> =
        old_rss.iter().filter(|rs| rs.metadata.deletion_timestamp.is_none()).cloned().collect();
    let diff = cleanable.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return Ok(());
    }
    sort_by_revision(&mut cleanable);
    let api = rs_api(ctx, d);
    for rs in cleanable.iter().take(diff as usize) {
        let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
        if rs_status_replicas(rs) != 0 || rs_replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
            continue;
        }
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: rs.metadata.uid.clone(),
                resource_version: rs.metadata.resource_version.clone(),
            }),
            ..Default::default()
        };
        match api.delete(&rs.name_any(), &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn sync_deployment_status(
    ctx: &Context,
    d: &mut Deployment,
    old_rss: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Result<(), Error> {
    let mut all = old_rss.to_vec();
    all.extend(new_rs.cloned());
    let status = calculate_status(&all, new_rs, d);
    if d.status.as_ref() == Some(&status) {
        return Ok(());
    }
    d.status = Some(status);
    update_status(ctx, d).await
}

async fn rollout_rolling(ctx: &Context, d: &mut Deployment, rs_list: &[ReplicaSet]) -> Result<Option<Duration>, Error> {
    let (new_rs, old_rss) = all_rss_and_sync_revision(ctx, d, rs_list, true).await?;
    let Some(new_rs) = new_rs else {
        return Ok(None);
    };
    let mut all = old_rss.clone();
    all.push(new_rs.clone());

    if reconcile_new_rs(ctx, d, &all, &new_rs).await? {
        let (new_rs, old_rss) = refresh(ctx, d, Some(new_rs), old_rss).await?;
        return sync_rollout_status(ctx, d, &old_rss, new_rs.as_ref()).await;
    }
    if reconcile_old_rss(ctx, d, &all, &filter_active(&old_rss), &new_rs).await? {
        let (new_rs, old_rss) = refresh(ctx, d, Some(new_rs), old_rss).await?;
        return sync_rollout_status(ctx, d, &old_rss, new_rs.as_ref()).await;
    }
    if deployment_complete(d, &calculate_status(&all, Some(&new_rs), d)) {
        cleanup_deployment(ctx, d, &old_rss).await?;
    }
    sync_rollout_status(ctx, d, &old_rss, Some(&new_rs)).await
}

async fn reconcile_new_rs(
    ctx: &Context,
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<bool, Error> {
    let desired = replicas(d);
    let current = rs_replicas(new_rs);
    if current == desired {
        return Ok(false);
    }
    if current > desired {
        return Ok(scale_rs_and_record(ctx, d, new_rs, desired).await?.0);
    }
    let target = new_rs_new_replicas(d, all, new_rs);
    Ok(scale_rs_and_record(ctx, d, new_rs, target).await?.0)
}

async fn reconcile_old_rss(
    ctx: &Context,
    d: &Deployment,
    all: &[ReplicaSet],
    old_rss: &[ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<bool, Error> {
    if replica_count(old_rss) == 0 {
        return Ok(false);
    }
    let all_pods = replica_count(all);
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs).min(rs_replicas(new_rs));
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    let (old_rss, cleaned) = cleanup_unhealthy_replicas(ctx, d, old_rss, max_scaled_down).await?;
    let mut all = old_rss.clone();
    all.push(new_rs.clone());
    let scaled = scale_down_old_rss_for_rolling_update(ctx, d, &all, &old_rss).await?;
    Ok(cleaned + scaled > 0)
}

/// Scales old ReplicaSets down by their unavailable replicas first (they cost no availability).
async fn cleanup_unhealthy_replicas(
    ctx: &Context,
    d: &Deployment,
    old_rss: &[ReplicaSet],
    max_cleanup: i32,
) -> Result<(Vec<ReplicaSet>, i32), Error> {
    let mut old = old_rss.to_vec();
    sort_by_creation(&mut old);
    let mut total = 0;
    for rs in old.iter_mut() {
        if total >= max_cleanup {
            break;
        }
        let size = rs_replicas(rs);
        let available = rs_available(rs);
        if size == 0 || size <= available {
            continue;
        }
        let count = (max_cleanup - total).min(size - available);
        let (_, updated) = scale_rs_and_record(ctx, d, rs, size - count).await?;
        *rs = updated;
        total += count;
    }
    Ok((old, total))
}

/// Scales old ReplicaSets down while availability stays ≥ replicas - maxUnavailable.
async fn scale_down_old_rss_for_rolling_update(
    ctx: &Context,
    d: &Deployment,
    all: &[ReplicaSet],
    old_rss: &[ReplicaSet],
) -> Result<i32, Error> {
    let min_available = replicas(d) - max_unavailable(d);
    let available = available_for_scale_down(all);
    if available <= min_available {
        return Ok(0);
    }
    let mut old = old_rss.to_vec();
    sort_by_creation(&mut old);
    let to_scale_down = available - min_available;
    let mut total = 0;
    for rs in &old {
        if total >= to_scale_down {
            break;
        }
        let size = rs_replicas(rs);
        if size == 0 {
            continue;
        }
        let count = size.min(to_scale_down - total);
        scale_rs_and_record(ctx, d, rs, size - count).await?;
        total += count;
    }
    Ok(total)
}

async fn rollout_recreate(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &[ReplicaSet],
    selector: &Selector,
) -> Result<Option<Duration>, Error> {
    let (mut new_rs, old_rss) = all_rss_and_sync_revision(ctx, d, rs_list, false).await?;
    let mut scaled_down = false;
    for rs in filter_active(&old_rss) {
        if scale_rs_and_record(ctx, d, &rs, 0).await?.0 {
            scaled_down = true;
        }
    }
    if scaled_down {
        let (new_rs, old_rss) = refresh(ctx, d, new_rs, old_rss).await?;
        return sync_rollout_status(ctx, d, &old_rss, new_rs.as_ref()).await;
    }
    let pods = pod_map(ctx, d, selector, rs_list).await?;
    if old_pods_running(new_rs.as_ref(), &old_rss, &pods) {
        return sync_rollout_status(ctx, d, &old_rss, new_rs.as_ref()).await;
    }
    if new_rs.is_none() {
        let (created, _) = all_rss_and_sync_revision(ctx, d, rs_list, true).await?;
        new_rs = created;
    }
    if let Some(rs) = new_rs.as_ref() {
        let (_, updated) = scale_rs_and_record(ctx, d, rs, replicas(d)).await?;
        new_rs = Some(updated);
    }
    let status = d.status.clone().unwrap_or_default();
    if deployment_complete(d, &status) {
        cleanup_deployment(ctx, d, &old_rss).await?;
    }
    sync_rollout_status(ctx, d, &old_rss, new_rs.as_ref()).await
}

/// Whether pods of old ReplicaSets may still be running (upstream's oldPodsRunning).
fn old_pods_running(new_rs: Option<&ReplicaSet>, old_rss: &[ReplicaSet], pods: &HashMap<String, Vec<Pod>>) -> bool {
    if actual_replica_count(old_rss) > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|r| r.metadata.uid.clone());
    pods.iter().filter(|(uid, _)| Some(*uid) != new_uid.as_ref()).any(|(_, list)| {
        list.iter().any(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Failed") | Some("Succeeded"))
        })
    })
}

/// Status during a rollout, with the Progressing condition (upstream's syncRolloutStatus).
async fn sync_rollout_status(
    ctx: &Context,
    d: &mut Deployment,
    old_rss: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let mut all = old_rss.to_vec();
    all.extend(new_rs.cloned());
    let mut status = calculate_status(&all, new_rs, d);
    let mut conds = status.conditions.take().unwrap_or_default();
    if !has_progress_deadline(d) {
        conditions::remove(&mut conds, DEPLOYMENT_PROGRESSING);
    }
    status.conditions = Some(conds.clone());
    let current = get_condition(d.status.as_ref(), DEPLOYMENT_PROGRESSING).cloned();
    let is_complete = n(status.replicas) == n(status.updated_replicas)
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
    let now = conditions::now().0.as_second();
    if has_progress_deadline(d) && !is_complete {
        let rs_name = new_rs.map(|r| r.name_any());
        if deployment_complete(d, &status) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                None => format!("Deployment {:?} has successfully progressed.", d.name_any()),
            };
            conditions::set(
                &mut conds,
                conditions::new_deployment_condition(
                    DEPLOYMENT_PROGRESSING,
                    CONDITION_TRUE,
                    NEW_RS_AVAILABLE_REASON,
                    msg,
                ),
            );
        } else if deployment_progressing(d, &status) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?} is progressing."),
                None => format!("Deployment {:?} is progressing.", d.name_any()),
            };
            let mut c =
                conditions::new_deployment_condition(DEPLOYMENT_PROGRESSING, CONDITION_TRUE, RS_UPDATED_REASON, msg);
            if let Some(cur) = &current {
                if cur.status == CONDITION_TRUE {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                conditions::remove(&mut conds, DEPLOYMENT_PROGRESSING);
            }
            conditions::set(&mut conds, c);
        } else if deployment_timed_out(d, &status, now) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                None => format!("Deployment {:?} has timed out progressing.", d.name_any()),
            };
            conditions::set(
                &mut conds,
                conditions::new_deployment_condition(DEPLOYMENT_PROGRESSING, CONDITION_FALSE, TIMED_OUT_REASON, msg),
            );
        }
    }
    match replica_failure(&all, new_rs) {
        Some(c) => {
            conditions::set(&mut conds, c);
        }
        None => {
            conditions::remove(&mut conds, DEPLOYMENT_REPLICA_FAILURE);
        }
    }
    status.conditions = Some(conds);

    if d.status.as_ref() == Some(&status) {
        return Ok(requeue_stuck(d, &status, now));
    }
    d.status = Some(status);
    update_status(ctx, d).await?;
    // The status write is itself a change: the next sync decides about requeueing.
    Ok(None)
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// When to look again for a missed progress deadline (upstream's requeueStuckDeployment).
fn requeue_stuck(d: &Deployment, status: &k8s_openapi::api::apps::v1::DeploymentStatus, now: i64) -> Option<Duration> {
    let deadline = progress_deadline_seconds(d)?;
    let current = get_condition(d.status.as_ref(), DEPLOYMENT_PROGRESSING)?;
    if deployment_complete(d, status) || current.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let last = current.last_update_time.as_ref()?.0.as_second();
    let after = last + i64::from(deadline) - now;
    if after < 1 {
        return Some(Duration::from_secs(1));
    }
    Some(Duration::from_secs(after as u64 + 1))
}

/// The ReplicaFailure condition of the new RS (or else of any RS), as a Deployment condition.
fn replica_failure(all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let to_deploy = |rs: &ReplicaSet| {
        rs.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|cs| {
            cs.iter().find(|c| c.type_ == DEPLOYMENT_REPLICA_FAILURE).map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
        })
    };
    new_rs.and_then(to_deploy).or_else(|| all.iter().find_map(to_deploy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use k8s_openapi::api::core::v1::PodStatus;

    fn rs(uid: &str, status_replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta { uid: Some(uid.into()), name: Some(uid.into()), ..Default::default() },
            spec: Some(ReplicaSetSpec { replicas: Some(0), ..Default::default() }),
            status: Some(ReplicaSetStatus { replicas: status_replicas, ..Default::default() }),
        }
    }

    fn pod(phase: &str) -> Pod {
        Pod { status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }), ..Default::default() }
    }

    #[test]
    fn old_pods_running_checks_status_and_pods() {
        let new = rs("new", 0);
        assert!(old_pods_running(Some(&new), &[rs("old", 1)], &HashMap::new()));
        let mut pods = HashMap::new();
        pods.insert("old".to_string(), vec![pod("Succeeded"), pod("Failed")]);
        pods.insert("new".to_string(), vec![pod("Running")]);
        assert!(!old_pods_running(Some(&new), &[rs("old", 0)], &pods));
        pods.insert("old".to_string(), vec![pod("Running")]);
        assert!(old_pods_running(Some(&new), &[rs("old", 0)], &pods));
        pods.insert("old".to_string(), vec![pod("Unknown")]);
        assert!(old_pods_running(Some(&new), &[rs("old", 0)], &pods));
    }

    #[test]
    fn replica_failure_prefers_new_rs() {
        let mut old = rs("old", 0);
        let mut new = rs("new", 0);
        let failure = |msg: &str| {
            Some(vec![conditions::new_replicaset_condition(
                DEPLOYMENT_REPLICA_FAILURE,
                CONDITION_TRUE,
                "FailedCreate",
                msg,
            )])
        };
        if let Some(s) = old.status.as_mut() {
            s.conditions = failure("old");
        }
        assert_eq!(
            replica_failure(&[old.clone(), new.clone()], Some(&new)).and_then(|c| c.message),
            Some("old".into())
        );
        if let Some(s) = new.status.as_mut() {
            s.conditions = failure("new");
        }
        assert_eq!(replica_failure(&[old, new.clone()], Some(&new)).and_then(|c| c.message), Some("new".into()));
    }

    #[test]
    fn requeue_for_progress_check() {
        let mut d = Deployment {
            spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
                replicas: Some(3),
                progress_deadline_seconds: Some(60),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c =
            conditions::new_deployment_condition(DEPLOYMENT_PROGRESSING, CONDITION_TRUE, RS_UPDATED_REASON, "x");
        c.last_update_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1000).unwrap_or_default(),
        ));
        d.status =
            Some(k8s_openapi::api::apps::v1::DeploymentStatus { conditions: Some(vec![c]), ..Default::default() });
        let s = d.status.clone().unwrap_or_default();
        assert_eq!(requeue_stuck(&d, &s, 1030), Some(Duration::from_secs(31)));
        assert_eq!(requeue_stuck(&d, &s, 1100), Some(Duration::from_secs(1)));
        if let Some(s) = d.spec.as_mut() {
            s.progress_deadline_seconds = None;
        }
        assert_eq!(requeue_stuck(&d, &s, 1030), None);
    }
}
