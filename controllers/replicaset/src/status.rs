//! ReplicaSet status from its active pods (upstream's `calculateStatus`): replicas,
//! fullyLabeledReplicas, readyReplicas, availableReplicas, and the `ReplicaFailure` condition
//! (set with reason FailedCreate / FailedDelete while creating or deleting pods fails, removed
//! once a sync succeeds).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_controller_common::pod::{is_pod_available, is_pod_ready};
use std::borrow::Borrow;

/// The condition type set while pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Desired replicas (`spec.replicas`, default 1).
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.minReadySeconds` (default 0).
pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

/// The new status for `rs` owning the active `pods`; `manage_err` is the message of a failed
/// create/delete in this sync, if any. `observedGeneration` is left as it was.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[impl Borrow<Pod>],
    manage_err: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        let pod: &Pod = pod.borrow();
        let labels = pod.metadata.labels.as_ref();
        if template_labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)) {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);

    let has_failure = status.conditions.iter().flatten().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_err {
        Some(msg) if !has_failure => {
            let diff = pods.len() as i64 - i64::from(desired_replicas(rs));
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            status.conditions.get_or_insert_with(Vec::new).push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(msg.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => {
            if let Some(conds) = status.conditions.as_mut() {
                conds.retain(|c| c.type_ != REPLICA_FAILURE);
            }
        }
        _ => {}
    }
    status
}

/// Whether writing `new` is needed (upstream's `updateReplicaSetStatus` short-circuit): any count
/// or condition changed, or the generation was not yet observed.
pub fn status_changed(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let norm = |v: Option<i32>| v.unwrap_or(0);
    let conds = |s: &ReplicaSetStatus| s.conditions.clone().unwrap_or_default();
    old.replicas != new.replicas
        || norm(old.fully_labeled_replicas) != norm(new.fully_labeled_replicas)
        || norm(old.ready_replicas) != norm(new.ready_replicas)
        || norm(old.available_replicas) != norm(new.available_replicas)
        || rs.metadata.generation != old.observed_generation
        || conds(&old) != conds(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::SignedDuration;
    use std::collections::BTreeMap;

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta { name: Some("web".into()), generation: Some(3), ..Default::default() },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".into(), "web".into()), ("tier".into(), "fe".into())])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(labels: &[(&str, &str)], ready_ago: Option<i64>, now: Timestamp) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: ready_ago.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(now - SignedDuration::from_secs(s))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn counts_labels_readiness_and_availability() {
        let now = Timestamp::now();
        let full = [("app", "web"), ("tier", "fe")];
        let partial = [("app", "web")];
        let pods = vec![
            pod(&full, Some(100), now), // ready, available
            pod(&full, Some(2), now),   // ready, not yet available (minReadySeconds 10)
            pod(&partial, None, now),   // not ready, not fully labeled
        ];
        let s = calculate_status(&rs(3, 10), &pods, None, now);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert!(s.conditions.is_none());
        // Without minReadySeconds every ready pod is available.
        let s = calculate_status(&rs(3, 0), &pods, None, now);
        assert_eq!(s.available_replicas, Some(2));
    }

    #[test]
    fn replica_failure_is_set_once_and_cleared_on_success() {
        let now = Timestamp::now();
        let mut r = rs(3, 0);
        let s = calculate_status(&r, &[] as &[Pod], Some("quota exceeded"), now);
        let conds = s.conditions.clone().unwrap_or_default();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].type_, REPLICA_FAILURE);
        assert_eq!(conds[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(conds[0].message.as_deref(), Some("quota exceeded"));
        r.status = Some(s);
        // A second failure keeps the first condition (no churn).
        let again = calculate_status(&r, &[] as &[Pod], Some("other"), now + SignedDuration::from_secs(5));
        assert_eq!(again.conditions, r.status.as_ref().and_then(|s| s.conditions.clone()));
        // Success removes it.
        let ok = calculate_status(&r, &[] as &[Pod], None, now);
        assert_eq!(ok.conditions, Some(vec![]));
        // Too many pods: FailedDelete.
        let pods = vec![pod(&[("app", "web")], None, now); 4];
        let s = calculate_status(&rs(1, 0), &pods, Some("forbidden"), now);
        assert_eq!(s.conditions.unwrap_or_default()[0].reason.as_deref(), Some("FailedDelete"));
    }

    #[test]
    fn unchanged_status_needs_no_write_unless_generation_is_new() {
        let now = Timestamp::now();
        let mut r = rs(0, 0);
        let mut s = calculate_status(&r, &[] as &[Pod], None, now);
        assert!(status_changed(&r, &s));
        s.observed_generation = Some(3);
        r.status = Some(s.clone());
        assert!(!status_changed(&r, &calculate_status(&r, &[] as &[Pod], None, now)));
        r.metadata.generation = Some(4);
        assert!(status_changed(&r, &calculate_status(&r, &[] as &[Pod], None, now)));
    }
}
