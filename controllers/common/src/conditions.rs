//! Status conditions of workload objects (Deployment, ReplicaSet, ...), with
//! upstream's update rules (`deploymentutil.SetDeploymentCondition` and friends):
//!
//! - setting a condition whose status *and* reason equal the current one is a no-op
//!   (timestamps untouched, so a level-triggered controller does not churn status);
//! - otherwise the condition is replaced, keeping the old `lastTransitionTime` when the
//!   status did not flip (only a status change moves the transition time);
//! - `lastUpdateTime` (where the type has one) is the time of this change.

use k8s_openapi::api::apps::v1::{DaemonSetCondition, DeploymentCondition, ReplicaSetCondition, StatefulSetCondition};
use k8s_openapi::api::core::v1::ReplicationControllerCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const CONDITION_TRUE: &str = "True";
pub const CONDITION_FALSE: &str = "False";
pub const CONDITION_UNKNOWN: &str = "Unknown";

/// Now, truncated to whole seconds (what the API round-trips), so locally built
/// conditions compare equal to the same conditions read back from the server.
pub fn now() -> Time {
    let ts = k8s_openapi::jiff::Timestamp::now();
    let secs = k8s_openapi::jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts);
    Time(secs)
}

/// A status condition: the accessors the update rules need.
pub trait Condition: Clone {
    fn type_(&self) -> &str;
    fn status(&self) -> &str;
    fn reason(&self) -> Option<&str>;
    fn last_transition_time(&self) -> Option<&Time>;
    fn set_last_transition_time(&mut self, t: Option<Time>);
}

macro_rules! impl_condition {
    ($($t:ty),*) => {$(
        impl Condition for $t {
            fn type_(&self) -> &str {
                &self.type_
            }
            fn status(&self) -> &str {
                &self.status
            }
            fn reason(&self) -> Option<&str> {
                self.reason.as_deref()
            }
            fn last_transition_time(&self) -> Option<&Time> {
                self.last_transition_time.as_ref()
            }
            fn set_last_transition_time(&mut self, t: Option<Time>) {
                self.last_transition_time = t;
            }
        }
    )*};
}

impl_condition!(
    DeploymentCondition,
    ReplicaSetCondition,
    StatefulSetCondition,
    DaemonSetCondition,
    ReplicationControllerCondition
);

/// The condition of the given type, if present.
pub fn get<'a, C: Condition>(conditions: &'a [C], type_: &str) -> Option<&'a C> {
    conditions.iter().find(|c| c.type_() == type_)
}

/// Sets `condition` following upstream's rules; returns whether anything changed.
pub fn set<C: Condition>(conditions: &mut Vec<C>, mut condition: C) -> bool {
    if let Some(current) = get(conditions, condition.type_()) {
        if current.status() == condition.status() && current.reason() == condition.reason() {
            return false;
        }
        if current.status() == condition.status() {
            condition.set_last_transition_time(current.last_transition_time().cloned());
        }
    }
    let type_ = condition.type_().to_string();
    conditions.retain(|c| c.type_() != type_);
    conditions.push(condition);
    true
}

/// Removes the condition of the given type; returns whether it was there.
pub fn remove<C: Condition>(conditions: &mut Vec<C>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_() != type_);
    conditions.len() != before
}

/// A Deployment condition stamped now (both lastUpdateTime and lastTransitionTime).
pub fn new_deployment_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
) -> DeploymentCondition {
    let t = now();
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.into()),
        last_update_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

/// A ReplicaSet condition stamped now.
pub fn new_replicaset_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
) -> ReplicaSetCondition {
    ReplicaSetCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.into()),
        last_transition_time: Some(now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
    }

    fn cond(type_: &str, status: &str, reason: &str, t: i64) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(format!("{reason} message")),
            last_update_time: Some(at(t)),
            last_transition_time: Some(at(t)),
        }
    }

    #[test]
    fn set_adds_missing_condition() {
        let mut cs = vec![];
        assert!(set(&mut cs, cond("Available", CONDITION_TRUE, "MinimumReplicasAvailable", 10)));
        assert_eq!(cs.len(), 1);
        assert_eq!(get(&cs, "Available").and_then(|c| c.reason.as_deref()), Some("MinimumReplicasAvailable"));
    }

    #[test]
    fn same_status_and_reason_is_a_no_op() {
        let mut cs = vec![cond("Progressing", CONDITION_TRUE, "ReplicaSetUpdated", 10)];
        assert!(!set(&mut cs, cond("Progressing", CONDITION_TRUE, "ReplicaSetUpdated", 20)));
        assert_eq!(cs[0].last_update_time, Some(at(10)));
    }

    #[test]
    fn reason_change_keeps_transition_time_but_updates_update_time() {
        let mut cs = vec![cond("Progressing", CONDITION_TRUE, "ReplicaSetUpdated", 10)];
        assert!(set(&mut cs, cond("Progressing", CONDITION_TRUE, "NewReplicaSetAvailable", 20)));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(cs[0].last_transition_time, Some(at(10)));
        assert_eq!(cs[0].last_update_time, Some(at(20)));
    }

    #[test]
    fn status_flip_moves_transition_time() {
        let mut cs = vec![
            cond("Available", CONDITION_TRUE, "MinimumReplicasAvailable", 5),
            cond("Progressing", CONDITION_TRUE, "ReplicaSetUpdated", 10),
        ];
        assert!(set(&mut cs, cond("Progressing", CONDITION_FALSE, "ProgressDeadlineExceeded", 30)));
        let p = get(&cs, "Progressing").cloned();
        assert_eq!(p.as_ref().and_then(|c| c.last_transition_time.clone()), Some(at(30)));
        assert_eq!(cs.len(), 2);
        assert_eq!(get(&cs, "Available").and_then(|c| c.last_transition_time.clone()), Some(at(5)));
    }

    #[test]
    fn remove_reports_presence() {
        let mut cs = vec![cond("ReplicaFailure", CONDITION_TRUE, "FailedCreate", 1)];
        assert!(!remove(&mut cs, "Available"));
        assert!(remove(&mut cs, "ReplicaFailure"));
        assert!(cs.is_empty());
    }

    #[test]
    fn works_for_replicaset_conditions() {
        let mut cs: Vec<ReplicaSetCondition> = vec![];
        assert!(set(&mut cs, new_replicaset_condition("ReplicaFailure", CONDITION_TRUE, "FailedCreate", "quota")));
        assert!(!set(&mut cs, new_replicaset_condition("ReplicaFailure", CONDITION_TRUE, "FailedCreate", "again")));
        assert!(get(&cs, "ReplicaFailure").is_some());
    }

    #[test]
    fn now_is_whole_seconds() {
        let t = now();
        assert_eq!(t.0.subsec_nanosecond(), 0);
    }
}
