//! The budget check of the eviction subresource (`POST pods/<name>/eviction`, upstream's
//! `EvictionREST`), as pure functions for the apiserver to call: which budgets cover a pod, whether
//! the pod may skip them, and whether one budget allows evicting it — honouring
//! `spec.unhealthyPodEvictionPolicy` — with the status to write when it does.
//!
//! The caller does the I/O: list the namespace's budgets, call [`budgets_for_pod`]; more than one
//! is upstream's 500 [`MULTIPLE_BUDGETS_MESSAGE`]; with one, call [`can_evict`] and either delete
//! the pod right away ([`Eviction::WithoutBudget`], with a resourceVersion precondition on the pod)
//! or first write the returned budget status (`updateStatus` at the budget's resourceVersion,
//! retried on conflict by re-reading the budget), then delete.

use crate::budget::update_disruption_allowed_condition;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::{Selector, SelectorExt};
use rkube_controller_common::pod::{is_pod_ready, phase};

/// Upstream's `MaxDisruptedPodSize`: more pending evictions than this are refused.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// The `details.causes[].type` of a refusal because of a budget.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// The message of a 429 refusal.
pub const TOO_MANY_REQUESTS_MESSAGE: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
/// The message of the 500 answer when several budgets cover the pod.
pub const MULTIPLE_BUDGETS_MESSAGE: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";
/// `spec.unhealthyPodEvictionPolicy` letting not-ready pods go regardless of the budget.
pub const ALWAYS_ALLOW: &str = "AlwaysAllow";

/// Upstream's `canIgnorePDB`: terminal, pending and terminating pods are deleted without looking
/// at budgets.
pub fn can_ignore_pdb(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `shouldEnforceResourceVersion`: deletions of pods that are neither terminal nor
/// terminating carry a resourceVersion precondition (the pod must not have become ready since).
pub fn should_enforce_resource_version(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// The budgets of the pod's namespace whose selector selects it. An invalid selector selects
/// nothing, and so does a missing or empty one (upstream's eviction handler refuses to let an
/// empty selector cover every pod).
pub fn budgets_for_pod<'a>(
    pod: &Pod,
    budgets: impl IntoIterator<Item = &'a PodDisruptionBudget>,
) -> Vec<&'a PodDisruptionBudget> {
    let empty = Default::default();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    budgets
        .into_iter()
        .filter(|b| b.metadata.namespace == pod.metadata.namespace)
        .filter(|b| {
            let Some(sel) = b.spec.as_ref().and_then(|s| s.selector.clone()) else { return false };
            match Selector::try_from(sel) {
                Ok(s) => !s.selects_all() && s.matches(labels),
                Err(_) => false,
            }
        })
        .collect()
}

/// What the eviction may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Eviction {
    /// Delete the pod without touching the budget (it is not ready and the policy lets it go);
    /// the deletion must carry the pod's resourceVersion as a precondition, and a conflict on it
    /// becomes the 429 of [`EvictionDenied::still_processing`].
    WithoutBudget,
    /// Write this budget status first (one disruption fewer, the pod recorded in
    /// `disruptedPods` — skip the write on a dry run), then delete the pod.
    Budget(PodDisruptionBudgetStatus),
}

/// Why an eviction is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum EvictionDenied {
    /// 429 TooManyRequests with [`TOO_MANY_REQUESTS_MESSAGE`], a `Retry-After` and one
    /// [`DISRUPTION_BUDGET_CAUSE`] cause carrying `cause`.
    TooManyRequests { retry_after_seconds: u64, cause: String },
    /// 403 Forbidden on `poddisruptionbudget.policy "<name>"` with this reason.
    Forbidden { name: String, reason: String },
}

impl EvictionDenied {
    /// The 429 for a budget whose status is older than its spec (or a lost race on the pod).
    pub fn still_processing(budget_name: &str) -> Self {
        EvictionDenied::TooManyRequests {
            retry_after_seconds: 10,
            cause: format!("The disruption budget {budget_name} is still being processed by the server."),
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            EvictionDenied::TooManyRequests { .. } => 429,
            EvictionDenied::Forbidden { .. } => 403,
        }
    }

    /// The Status message as upstream writes it.
    pub fn message(&self) -> String {
        match self {
            EvictionDenied::TooManyRequests { .. } => TOO_MANY_REQUESTS_MESSAGE.to_string(),
            EvictionDenied::Forbidden { name, reason } => {
                format!("poddisruptionbudget.policy \"{name}\" is forbidden: {reason}")
            }
        }
    }
}

/// Whether `budget` (the single budget covering `pod`) lets the pod be evicted now. `now` stamps
/// the `disruptedPods` entry. Call only for pods that [`can_ignore_pdb`] does not let through.
pub fn can_evict(budget: &PodDisruptionBudget, pod: &Pod, now: &Time) -> Result<Eviction, EvictionDenied> {
    let name = budget.metadata.name.clone().unwrap_or_default();
    let status = budget.status.clone().unwrap_or_default();
    if !is_pod_ready(pod) {
        let policy = budget.spec.as_ref().and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
        if policy == Some(ALWAYS_ALLOW) {
            return Ok(Eviction::WithoutBudget);
        }
        // IfHealthyBudget (the default): an unready pod may go only while the budget is met.
        if status.current_healthy >= status.desired_healthy && status.desired_healthy > 0 {
            return Ok(Eviction::WithoutBudget);
        }
    }
    if status.observed_generation.unwrap_or(0) < budget.metadata.generation.unwrap_or(0) {
        return Err(EvictionDenied::still_processing(&name));
    }
    if status.disruptions_allowed < 0 {
        return Err(EvictionDenied::Forbidden { name, reason: "pdb disruptions allowed is negative".to_string() });
    }
    if status.disrupted_pods.as_ref().map_or(0, |d| d.len()) > MAX_DISRUPTED_POD_SIZE {
        return Err(EvictionDenied::Forbidden {
            name,
            reason: "DisruptedPods map too big - too many evictions not confirmed by PDB controller".to_string(),
        });
    }
    if status.disruptions_allowed == 0 {
        return Err(EvictionDenied::TooManyRequests {
            retry_after_seconds: 0,
            cause: format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
        });
    }
    let mut next = status;
    next.disruptions_allowed -= 1;
    if next.disruptions_allowed == 0 {
        update_disruption_allowed_condition(&mut next, now);
    }
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    next.disrupted_pods.get_or_insert_with(Default::default).insert(pod_name, now.clone());
    Ok(Eviction::Budget(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{INSUFFICIENT_PODS_REASON, SUFFICIENT_PODS_REASON};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::{Value, json};

    fn pod(ready: bool, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p1", "namespace": "ns", "labels": {"app": "web"}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap_or_default()
    }

    fn budget(spec: Value, generation: i64, status: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "pdb", "namespace": "ns", "generation": generation},
            "spec": spec,
            "status": status
        }))
        .unwrap_or_default()
    }

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn st(allowed: i32, current: i32, desired: i32) -> Value {
        json!({"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
               "expectedPods": 3, "observedGeneration": 1,
               "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": SUFFICIENT_PODS_REASON,
                               "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]})
    }

    #[test]
    fn ready_pod_decrements_and_is_recorded() {
        let b = budget(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}), 1, st(1, 3, 2));
        let Ok(Eviction::Budget(next)) = can_evict(&b, &pod(true, "Running"), &now()) else {
            panic!("expected a budget decrement");
        };
        assert_eq!(next.disruptions_allowed, 0);
        assert_eq!(next.disrupted_pods.unwrap_or_default().get("p1"), Some(&now()));
        let c = next.conditions.unwrap_or_default();
        assert_eq!((c[0].status.as_str(), c[0].reason.as_str()), ("False", INSUFFICIENT_PODS_REASON));
    }

    #[test]
    fn exhausted_budget_refuses_with_429_and_cause() {
        let b = budget(json!({"minAvailable": 3}), 1, st(0, 3, 3));
        let err = can_evict(&b, &pod(true, "Running"), &now()).unwrap_err();
        assert_eq!(err.code(), 429);
        assert_eq!(err.message(), TOO_MANY_REQUESTS_MESSAGE);
        assert_eq!(
            err,
            EvictionDenied::TooManyRequests {
                retry_after_seconds: 0,
                cause: "The disruption budget pdb needs 3 healthy pods and has 3 currently".into()
            }
        );
    }

    #[test]
    fn stale_generation_and_negative_allowed_are_refused() {
        let b = budget(json!({"minAvailable": 1}), 2, st(1, 3, 1));
        assert_eq!(can_evict(&b, &pod(true, "Running"), &now()), Err(EvictionDenied::still_processing("pdb")));
        let b = budget(json!({"minAvailable": 1}), 1, st(-1, 3, 1));
        let err = can_evict(&b, &pod(true, "Running"), &now()).unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "poddisruptionbudget.policy \"pdb\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn unhealthy_pod_policy() {
        // IfHealthyBudget (default): an unready pod goes while the budget is met...
        let met = budget(json!({"minAvailable": 2}), 1, st(0, 2, 2));
        assert_eq!(can_evict(&met, &pod(false, "Running"), &now()), Ok(Eviction::WithoutBudget));
        // ...but not while it is not met.
        let unmet = budget(json!({"minAvailable": 2}), 1, st(0, 1, 2));
        assert!(can_evict(&unmet, &pod(false, "Running"), &now()).is_err());
        let explicit =
            budget(json!({"minAvailable": 2, "unhealthyPodEvictionPolicy": "IfHealthyBudget"}), 1, st(0, 1, 2));
        assert!(can_evict(&explicit, &pod(false, "Running"), &now()).is_err());
        // AlwaysAllow: an unready pod always goes, a ready one still needs the budget.
        let always = budget(json!({"minAvailable": 2, "unhealthyPodEvictionPolicy": "AlwaysAllow"}), 1, st(0, 1, 2));
        assert_eq!(can_evict(&always, &pod(false, "Running"), &now()), Ok(Eviction::WithoutBudget));
        assert!(can_evict(&always, &pod(true, "Running"), &now()).is_err());
    }

    #[test]
    fn ignorable_pods_and_budget_matching() {
        assert!(can_ignore_pdb(&pod(true, "Succeeded")));
        assert!(can_ignore_pdb(&pod(false, "Pending")));
        assert!(!can_ignore_pdb(&pod(true, "Running")));
        assert!(!should_enforce_resource_version(&pod(true, "Failed")));
        assert!(should_enforce_resource_version(&pod(false, "Pending")));
        let a = budget(json!({"selector": {"matchLabels": {"app": "web"}}}), 1, json!({}));
        let b = budget(json!({"selector": {"matchLabels": {"app": "db"}}}), 1, json!({}));
        let empty = budget(json!({"selector": {}}), 1, json!({}));
        let none = budget(json!({}), 1, json!({}));
        let found = budgets_for_pod(&pod(true, "Running"), [&a, &b, &empty, &none]);
        assert_eq!(found.len(), 1);
        assert!(std::ptr::eq(found[0], &a));
    }
}
