//! Pure Deployment arithmetic (upstream's `pkg/controller/deployment/util`): surge and
//! unavailability fenceposts, revisions and the annotations carried by ReplicaSets,
//! finding the new and old ReplicaSets, proportional scaling, status calculation and
//! the progress predicates. No I/O here; `sync` does the API calls.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_controller_common::conditions::{self, CONDITION_FALSE, CONDITION_TRUE};
use rkube_controller_common::hash::DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY;
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
pub const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream's default `--max-revision-history-length-in-chars`... (a constant there: 2000).
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

pub const DEPLOYMENT_AVAILABLE: &str = "Available";
pub const DEPLOYMENT_PROGRESSING: &str = "Progressing";
pub const DEPLOYMENT_REPLICA_FAILURE: &str = "ReplicaFailure";

pub const MIN_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const PAUSED_DEPLOY_REASON: &str = "DeploymentPaused";
pub const RESUMED_DEPLOY_REASON: &str = "DeploymentResumed";

/// Annotations of a Deployment that are never copied onto its ReplicaSets.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    LAST_APPLIED_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
];

// ---- accessors with upstream's defaults ----

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

pub fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// RollingUpdate unless the strategy says Recreate (the apiserver defaults RollingUpdate).
pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) != Some("Recreate")
}

pub fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).filter(|s| *s != i32::MAX)
}

pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline_seconds(d).is_some()
}

pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.revision_history_limit).filter(|l| *l != i32::MAX)
}

// ---- surge / unavailable ----

/// An int-or-percent scaled against `total`: percents round up or down as asked.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(num) = s.strip_suffix('%') else {
                return Err(format!("invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"));
            };
            let p: i64 = num.parse().map_err(|_| format!("invalid value {s:?}: not a valid percentage"))?;
            let prod = p * i64::from(total);
            let v = if round_up { (prod + 99).div_euclid(100) } else { prod.div_euclid(100) };
            i32::try_from(v).map_err(|_| format!("invalid value {s:?}: out of range"))
        }
    }
}

/// Upstream's ResolveFenceposts: (maxSurge, maxUnavailable); both zero becomes unavailable 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".into());
    let surge = ru.map(|r| r.max_surge.as_ref()).unwrap_or(Some(&default));
    let unavailable = ru.map(|r| r.max_unavailable.as_ref()).unwrap_or(Some(&default));
    resolve_fenceposts(surge, unavailable, replicas(d)).unwrap_or((0, 0))
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

// ---- revisions ----

pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    annotation(&rs.metadata, REVISION_ANNOTATION).and_then(|v| v.parse().ok())
}

pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().filter_map(revision).max().unwrap_or(0)
}

// ---- templates ----

fn strip_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
            meta.annotations = None;
        }
    }
    t
}

/// Template equality ignoring the `pod-template-hash` label (upstream's EqualIgnoreHash).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    strip_hash(a) == strip_hash(b)
}

/// The ReplicaSet template a Deployment stamps out: its template plus the hash label.
pub fn new_rs_template(d: &Deployment, hash: &str) -> PodTemplateSpec {
    let mut t = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let meta = t.metadata.get_or_insert_with(Default::default);
    meta.labels.get_or_insert_with(Default::default).insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), hash.into());
    t
}

// ---- sorting / finding ----

fn created_cmp(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ta.cmp(&tb).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Oldest first (upstream's ReplicaSetsByCreationTimestamp).
pub fn sort_by_creation(rss: &mut [ReplicaSet]) {
    rss.sort_by(created_cmp);
}

/// Largest first, ties oldest first (ReplicaSetsBySizeOlder).
pub fn sort_by_size_older(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| created_cmp(a, b)));
}

/// Largest first, ties newest first (ReplicaSetsBySizeNewer).
pub fn sort_by_size_newer(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| created_cmp(b, a)));
}

/// Lowest revision first, ties oldest first (ReplicaSetsByRevision).
pub fn sort_by_revision(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| revision(a).unwrap_or(0).cmp(&revision(b).unwrap_or(0)).then_with(|| created_cmp(a, b)));
}

/// The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash label).
pub fn find_new_rs(d: &Deployment, rs_list: &[ReplicaSet]) -> Option<ReplicaSet> {
    let template = &d.spec.as_ref()?.template;
    let mut sorted = rs_list.to_vec();
    sort_by_creation(&mut sorted);
    sorted
        .into_iter()
        .find(|rs| rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, template)))
}

/// Every ReplicaSet but the new one.
pub fn find_old_rss(rs_list: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Vec<ReplicaSet> {
    let new_uid = new_rs.and_then(|r| r.metadata.uid.clone());
    rs_list.iter().filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid).cloned().collect()
}

pub fn filter_active(rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    rss.iter().filter(|rs| rs_replicas(rs) > 0).cloned().collect()
}

pub fn replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_replicas).sum()
}

pub fn actual_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_status_replicas).sum()
}

pub fn ready_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_ready).sum()
}

pub fn available_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_available).sum()
}

/// Available pods as a scale-down decision may count them: never more than an RS's
/// desired size, so a status that has not caught up with a scale-down yet cannot
/// justify a second scale-down (keeps availability ≥ replicas - maxUnavailable).
pub fn available_for_scale_down<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(|rs| rs_available(rs).min(rs_replicas(rs))).sum()
}

/// The single active ReplicaSet, or the newest when none is active; None with several active.
pub fn find_active_or_latest(new_rs: Option<&ReplicaSet>, old_rss: &[ReplicaSet]) -> Option<ReplicaSet> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut old = old_rss.to_vec();
    old.sort_by(|a, b| created_cmp(b, a));
    let mut all = old.clone();
    all.extend(new_rs.cloned());
    let active = filter_active(&all);
    match active.len() {
        0 => new_rs.cloned().or_else(|| old.first().cloned()),
        1 => active.into_iter().next(),
        _ => None,
    }
}

// ---- replicas annotations ----

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION).and_then(|v| v.parse().ok())
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION).and_then(|v| v.parse().ok())
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    if !replicas_annotations_need_update(rs, desired, max) {
        return false;
    }
    let anns = rs.metadata.annotations.get_or_insert_with(Default::default);
    anns.insert(DESIRED_REPLICAS_ANNOTATION.into(), desired.to_string());
    anns.insert(MAX_REPLICAS_ANNOTATION.into(), max.to_string());
    true
}

/// Copies the Deployment's annotations (but the skipped ones) onto the ReplicaSet.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let Some(src) = d.metadata.annotations.as_ref() else {
        return false;
    };
    let dst = rs.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in src {
        if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) || dst.get(k) == Some(v) {
            continue;
        }
        dst.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Upstream's SetNewReplicaSetAnnotations: copy annotations, raise the revision (recording
/// the replaced one in `revision-history`), and on creation stamp desired/max replicas.
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let old_revision = annotation(&rs.metadata, REVISION_ANNOTATION).map(str::to_string);
    let old_revision_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_revision_int < new_revision {
        let anns = rs.metadata.annotations.get_or_insert_with(Default::default);
        anns.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old_revision.filter(|o| !o.is_empty()) {
            let mut history: Vec<String> = anns
                .get(REVISION_HISTORY_ANNOTATION)
                .map(|h| h.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            history.push(old);
            let mut joined = history.join(",");
            while joined.len() > MAX_REV_HISTORY_LENGTH_IN_CHARS && history.len() > 1 {
                history.remove(0);
                joined = history.join(",");
            }
            anns.insert(REVISION_HISTORY_ANNOTATION.into(), joined);
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

// ---- sizes ----

/// Pods the ReplicaSets may have that are not terminating: each one's size, or its
/// `status.replicas` while that is larger. A scale-down takes effect only once the ReplicaSet
/// controller has deleted the pods; until then its status still counts them (it is written from
/// the controller's pod cache, which can only lag behind deletions), so this never counts fewer
/// pods than exist.
pub fn surge_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(|rs| rs_replicas(rs).max(rs_status_replicas(rs))).sum()
}

/// How many replicas the new RS may have now (upstream's NewRSNewReplicas). The pods counted
/// against `replicas + maxSurge` include those of a scaled-down ReplicaSet that its controller
/// has not deleted yet ([`surge_replica_count`]): sizes alone would let the new ReplicaSet grow
/// while the old pods it replaces still run, more than maxSurge above `replicas`.
pub fn new_rs_new_replicas(d: &Deployment, all_rss: &[ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) {
        return desired;
    }
    let current = surge_replica_count(all_rss);
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let scale_up = (max_total - current).min(desired - rs_replicas(new_rs));
    rs_replicas(new_rs) + scale_up
}

/// Whether the new RS alone runs the whole Deployment, fully available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let desired = replicas(d);
    desired_replicas_annotation(rs) == Some(desired) && rs_replicas(rs) == desired && rs_available(rs) == desired
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let desired = replicas(d);
    if desired == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = desired + max_surge(d);
    let annotated =
        max_replicas_annotation(rs).unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let new_size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    new_size.round() as i32 - rs_replicas(rs)
}

/// The share of `to_add` this RS gets in a proportional scale (upstream's GetProportion).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

/// New sizes for a proportional scale of the active ReplicaSets (upstream's `scale`, rolling case).
/// Returns (name, new size) for each RS in `active`, plus the scaling direction.
pub fn proportional_sizes(d: &Deployment, active: &[ReplicaSet]) -> (Vec<(ReplicaSet, i32)>, &'static str) {
    let mut rss = active.to_vec();
    let desired = replicas(d);
    let allowed = if desired > 0 { desired + max_surge(d) } else { 0 };
    let to_add = allowed - replica_count(&rss);
    let op = match to_add.cmp(&0) {
        Ordering::Greater => {
            sort_by_size_newer(&mut rss);
            "up"
        }
        Ordering::Less => {
            sort_by_size_older(&mut rss);
            "down"
        }
        Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(rss.len());
    for rs in &rss {
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            sizes.push(rs_replicas(rs) + p);
            added += p;
        } else {
            sizes.push(rs_replicas(rs));
        }
    }
    if to_add != 0 && !sizes.is_empty() {
        let leftover = to_add - added;
        sizes[0] = (sizes[0] + leftover).max(0);
    }
    (rss.into_iter().zip(sizes).collect(), op)
}

// ---- status ----

fn conditions_of(s: &DeploymentStatus) -> &[DeploymentCondition] {
    s.conditions.as_deref().unwrap_or(&[])
}

pub fn get_condition<'a>(s: Option<&'a DeploymentStatus>, type_: &str) -> Option<&'a DeploymentCondition> {
    s.and_then(|s| conditions::get(conditions_of(s), type_))
}

/// The status the Deployment should report for these ReplicaSets (upstream's calculateStatus).
pub fn calculate_status(all_rss: &[ReplicaSet], new_rs: Option<&ReplicaSet>, d: &Deployment) -> DeploymentStatus {
    let available = available_replica_count(all_rss);
    let total = replica_count(all_rss);
    let unavailable = (total - available).max(0);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(actual_replica_count(all_rss)),
        updated_replicas: Some(new_rs.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: Some(ready_replica_count(all_rss)),
        available_replicas: Some(available),
        unavailable_replicas: Some(unavailable),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    let mut conds = status.conditions.take().unwrap_or_default();
    let cond = if available >= replicas(d) - max_unavailable(d) {
        conditions::new_deployment_condition(
            DEPLOYMENT_AVAILABLE,
            CONDITION_TRUE,
            MIN_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
        )
    } else {
        conditions::new_deployment_condition(
            DEPLOYMENT_AVAILABLE,
            CONDITION_FALSE,
            MIN_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
        )
    };
    conditions::set(&mut conds, cond);
    status.conditions = Some(conds);
    status
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every replica updated and available, and the current generation observed.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let desired = replicas(d);
    n(s.updated_replicas) == desired
        && n(s.replicas) == desired
        && n(s.available_replicas) == desired
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the new status shows progress over the Deployment's current status.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Whether the Progressing condition is older than the progress deadline (at `now`, epoch seconds).
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: i64) -> bool {
    let Some(deadline) = progress_deadline_seconds(d) else {
        return false;
    };
    let Some(cond) = conditions::get(conditions_of(new), DEPLOYMENT_PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => false,
        Some(TIMED_OUT_REASON) => true,
        _ => cond.last_update_time.as_ref().is_some_and(|t| t.0.as_second() + i64::from(deadline) < now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn tmpl(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    fn deploy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            metadata: ObjectMeta { name: Some("web".into()), generation: Some(1), ..Default::default() },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                template: tmpl("nginx:1"),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                progress_deadline_seconds: Some(600),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::from_second(created).unwrap_or_default())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                template: Some(tmpl("nginx:1")),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    fn with_ann(mut rs: ReplicaSet, k: &str, v: &str) -> ReplicaSet {
        rs.metadata.annotations.get_or_insert_with(Default::default).insert(k.into(), v.into());
        rs
    }

    #[test]
    fn percent_rounding_like_upstream() {
        let p = IntOrString::String("25%".into());
        assert_eq!(scaled_value(&p, 10, true), Ok(3));
        assert_eq!(scaled_value(&p, 10, false), Ok(2));
        assert_eq!(scaled_value(&IntOrString::Int(4), 10, true), Ok(4));
        assert!(scaled_value(&IntOrString::String("25".into()), 10, true).is_err());
        assert!(scaled_value(&IntOrString::String("x%".into()), 10, true).is_err());
    }

    #[test]
    fn fenceposts_never_both_zero() {
        let zero = IntOrString::String("0%".into());
        assert_eq!(resolve_fenceposts(Some(&zero), Some(&zero), 10), Ok((0, 1)));
        // 10% of 1 rounds up to 1 for surge and down to 0 for unavailable.
        let ten = IntOrString::String("10%".into());
        assert_eq!(resolve_fenceposts(Some(&ten), Some(&ten), 1), Ok((1, 0)));
    }

    #[test]
    fn max_unavailable_capped_and_recreate_zero() {
        let d = deploy(2, IntOrString::Int(1), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
        let mut r = d.clone();
        if let Some(s) = r.spec.as_mut() {
            s.strategy = Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
        }
        assert_eq!(max_unavailable(&r), 0);
        assert_eq!(max_surge(&r), 0);
        // Default strategy (25%/25%) when none is set.
        let mut def = d.clone();
        if let Some(s) = def.spec.as_mut() {
            s.strategy = None;
            s.replicas = Some(10);
        }
        assert_eq!((max_surge(&def), max_unavailable(&def)), (3, 2));
    }

    #[test]
    fn new_rs_replicas_respect_surge() {
        let d = deploy(10, IntOrString::Int(3), IntOrString::Int(2));
        let old = rs("old", 1, 10, 10);
        let new = rs("new", 2, 0, 0);
        assert_eq!(new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new), 3);
        let old8 = rs("old", 1, 8, 8);
        let new3 = rs("new", 2, 3, 0);
        assert_eq!(new_rs_new_replicas(&d, &[old8, new3.clone()], &new3), 5);
        let old_full = rs("old", 1, 10, 10);
        assert_eq!(new_rs_new_replicas(&d, &[old_full, new3.clone()], &new3), 3);
    }

    #[test]
    fn new_rs_waits_for_old_pods_to_be_deleted() {
        let d = deploy(10, IntOrString::Int(3), IntOrString::Int(2));
        let new3 = rs("new", 2, 3, 0);
        // Old RS scaled 10 -> 8, but its controller has not deleted the 2 pods yet: 10 + 3 run.
        let mut old = rs("old", 1, 8, 8);
        if let Some(s) = old.status.as_mut() {
            s.replicas = 10;
        }
        assert_eq!(surge_replica_count([&old, &new3]), 13);
        assert_eq!(new_rs_new_replicas(&d, &[old.clone(), new3.clone()], &new3), 3);
        // One of the two is gone: one more new pod fits.
        if let Some(s) = old.status.as_mut() {
            s.replicas = 9;
        }
        assert_eq!(new_rs_new_replicas(&d, &[old.clone(), new3.clone()], &new3), 4);
        // Both gone (terminating pods are not in status.replicas).
        if let Some(s) = old.status.as_mut() {
            s.replicas = 8;
        }
        assert_eq!(new_rs_new_replicas(&d, &[old, new3.clone()], &new3), 5);
        // A new RS whose status lags behind its size counts by its size.
        let mut new5 = rs("new", 2, 5, 0);
        if let Some(s) = new5.status.as_mut() {
            s.replicas = 2;
        }
        assert_eq!(new_rs_new_replicas(&d, &[rs("old", 1, 8, 8), new5.clone()], &new5), 5);
    }

    #[test]
    fn equal_ignore_hash_ignores_only_the_hash_label() {
        let a = tmpl("nginx:1");
        let mut b = a.clone();
        if let Some(m) = b.metadata.as_mut() {
            m.labels
                .get_or_insert_with(Default::default)
                .insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), "abc".into());
        }
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &tmpl("nginx:2")));
    }

    #[test]
    fn find_new_rs_prefers_oldest_match() {
        let d = deploy(3, IntOrString::Int(1), IntOrString::Int(0));
        let mut other = rs("other", 0, 1, 1);
        if let Some(s) = other.spec.as_mut() {
            s.template = Some(tmpl("nginx:0"));
        }
        let found = find_new_rs(&d, &[rs("b", 5, 1, 1), rs("a", 3, 1, 1), other]);
        assert_eq!(found.and_then(|r| r.metadata.name), Some("a".to_string()));
    }

    #[test]
    fn revisions_and_history() {
        let d = deploy(3, IntOrString::Int(1), IntOrString::Int(0));
        let mut r = with_ann(rs("a", 1, 1, 1), REVISION_ANNOTATION, "1");
        assert!(set_new_rs_annotations(&d, &mut r, 3, true));
        assert_eq!(annotation(&r.metadata, REVISION_ANNOTATION), Some("3"));
        assert_eq!(annotation(&r.metadata, REVISION_HISTORY_ANNOTATION), Some("1"));
        assert!(set_new_rs_annotations(&d, &mut r, 5, true));
        assert_eq!(annotation(&r.metadata, REVISION_HISTORY_ANNOTATION), Some("1,3"));
        // Not raised when already at least that revision; existing RS gets no replicas annotations.
        assert!(!set_new_rs_annotations(&d, &mut r, 4, true));
        assert_eq!(annotation(&r.metadata, DESIRED_REPLICAS_ANNOTATION), None);
        let mut fresh = rs("b", 1, 0, 0);
        assert!(set_new_rs_annotations(&d, &mut fresh, 1, false));
        assert_eq!(annotation(&fresh.metadata, REVISION_HISTORY_ANNOTATION), None);
        assert_eq!(annotation(&fresh.metadata, DESIRED_REPLICAS_ANNOTATION), Some("3"));
        assert_eq!(annotation(&fresh.metadata, MAX_REPLICAS_ANNOTATION), Some("4"));
        assert_eq!(max_revision(&[r, fresh]), 5);
    }

    #[test]
    fn deployment_annotations_copied_except_skipped() {
        let mut d = deploy(1, IntOrString::Int(1), IntOrString::Int(0));
        d.metadata.annotations = Some(BTreeMap::from([
            ("team".into(), "a".into()),
            (REVISION_ANNOTATION.into(), "9".into()),
            (LAST_APPLIED_ANNOTATION.into(), "{}".into()),
        ]));
        let mut r = rs("a", 1, 1, 1);
        set_new_rs_annotations(&d, &mut r, 1, true);
        assert_eq!(annotation(&r.metadata, "team"), Some("a"));
        assert_eq!(annotation(&r.metadata, REVISION_ANNOTATION), Some("1"));
        assert_eq!(annotation(&r.metadata, LAST_APPLIED_ANNOTATION), None);
    }

    #[test]
    fn proportional_scaling_mid_rollout() {
        // Upstream's example: 10 replicas, surge 3, mid-rollout old=8 new=5, scaled to 15.
        let mut d = deploy(15, IntOrString::Int(3), IntOrString::Int(2));
        d.status = Some(DeploymentStatus { replicas: Some(13), ..Default::default() });
        let old = with_ann(rs("old", 1, 8, 8), MAX_REPLICAS_ANNOTATION, "13");
        let new = with_ann(rs("new", 2, 5, 0), MAX_REPLICAS_ANNOTATION, "13");
        let (sizes, op) = proportional_sizes(&d, &[old, new]);
        assert_eq!(op, "up");
        let total: i32 = sizes.iter().map(|(_, s)| *s).sum();
        assert_eq!(total, 18);
        let get = |n: &str| sizes.iter().find(|(r, _)| r.metadata.name.as_deref() == Some(n)).map(|(_, s)| *s);
        // old: round(8*18/13)=11, new: round(5*18/13)=7.
        assert_eq!(get("old"), Some(11));
        assert_eq!(get("new"), Some(7));
    }

    #[test]
    fn proportional_scale_down_to_zero() {
        let mut d = deploy(0, IntOrString::Int(3), IntOrString::Int(2));
        d.status = Some(DeploymentStatus { replicas: Some(13), ..Default::default() });
        let (sizes, op) = proportional_sizes(&d, &[rs("old", 1, 8, 8), rs("new", 2, 5, 0)]);
        assert_eq!(op, "down");
        assert!(sizes.iter().all(|(_, s)| *s == 0));
    }

    #[test]
    fn active_or_latest() {
        let a = rs("a", 1, 0, 0);
        let b = rs("b", 2, 0, 0);
        assert_eq!(
            find_active_or_latest(None, &[a.clone(), b.clone()]).and_then(|r| r.metadata.name),
            Some("b".into())
        );
        let c = rs("c", 3, 2, 2);
        assert_eq!(
            find_active_or_latest(Some(&c), &[a.clone(), b.clone()]).and_then(|r| r.metadata.name),
            Some("c".into())
        );
        let d = rs("d", 4, 1, 1);
        assert!(find_active_or_latest(Some(&c), &[d]).is_none());
    }

    #[test]
    fn status_and_available_condition() {
        let d = deploy(10, IntOrString::Int(3), IntOrString::Int(2));
        let old = rs("old", 1, 8, 8);
        let new = rs("new", 2, 5, 0);
        let s = calculate_status(&[old.clone(), new.clone()], Some(&new), &d);
        assert_eq!(s.replicas, Some(13));
        assert_eq!(s.updated_replicas, Some(5));
        assert_eq!(s.available_replicas, Some(8));
        assert_eq!(s.unavailable_replicas, Some(5));
        assert_eq!(s.observed_generation, Some(1));
        let avail = get_condition(Some(&s), DEPLOYMENT_AVAILABLE).cloned();
        assert_eq!(avail.as_ref().map(|c| c.status.as_str()), Some("True"));
        let s2 = calculate_status(&[rs("old", 1, 7, 7), new.clone()], Some(&new), &d);
        let avail = get_condition(Some(&s2), DEPLOYMENT_AVAILABLE).cloned();
        assert_eq!(avail.and_then(|c| c.reason), Some(MIN_REPLICAS_UNAVAILABLE.to_string()));
    }

    #[test]
    fn complete_progressing_timed_out() {
        let mut d = deploy(3, IntOrString::Int(1), IntOrString::Int(0));
        let done = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(3),
            available_replicas: Some(3),
            observed_generation: Some(1),
            ..Default::default()
        };
        assert!(deployment_complete(&d, &done));
        d.metadata.generation = Some(2);
        assert!(!deployment_complete(&d, &done));

        d.status = Some(DeploymentStatus { replicas: Some(4), updated_replicas: Some(1), ..Default::default() });
        let more = DeploymentStatus { replicas: Some(4), updated_replicas: Some(2), ..Default::default() };
        assert!(deployment_progressing(&d, &more));
        let same = DeploymentStatus { replicas: Some(4), updated_replicas: Some(1), ..Default::default() };
        assert!(!deployment_progressing(&d, &same));

        let mut stuck = same.clone();
        let mut c =
            conditions::new_deployment_condition(DEPLOYMENT_PROGRESSING, CONDITION_TRUE, RS_UPDATED_REASON, "x");
        c.last_update_time = Some(Time(k8s_openapi::jiff::Timestamp::from_second(1000).unwrap_or_default()));
        stuck.conditions = Some(vec![c]);
        assert!(!deployment_timed_out(&d, &stuck, 1500));
        assert!(deployment_timed_out(&d, &stuck, 1601));
    }

    #[test]
    fn saturation_requires_annotation_and_availability() {
        let d = deploy(3, IntOrString::Int(1), IntOrString::Int(0));
        let r = with_ann(rs("a", 1, 3, 3), DESIRED_REPLICAS_ANNOTATION, "3");
        assert!(is_saturated(&d, Some(&r)));
        assert!(!is_saturated(&d, Some(&with_ann(rs("a", 1, 3, 2), DESIRED_REPLICAS_ANNOTATION, "3"))));
        assert!(!is_saturated(&d, Some(&rs("a", 1, 3, 3))));
        assert!(!is_saturated(&d, None));
    }

    #[test]
    fn scale_down_availability_is_capped_by_spec() {
        // Old RS just scaled 10 -> 8 while its status still says 10 available.
        let mut stale = rs("old", 1, 8, 10);
        if let Some(s) = stale.status.as_mut() {
            s.replicas = 10;
        }
        assert_eq!(available_for_scale_down([&stale]), 8);
        assert_eq!(available_replica_count([&stale]), 10);
    }
}
