//! The pure arithmetic of a PodDisruptionBudget's status (upstream's `getExpectedPodCount`,
//! `countHealthyPods`, `buildDisruptedPodMap`, `updatePdbStatus`, `failSafe` and the
//! `poddisruptionbudget` helpers of component-helpers): no I/O, so every rule is unit tested.
//!
//! - `desiredHealthy` is `minAvailable` (an integer: `expectedPods` is the number of selected pods;
//!   a percentage: of the controllers' scale, rounded up), or `expected - maxUnavailable` (of the
//!   controllers' scale, percentages rounded up), never below 0.
//! - `currentHealthy` counts selected pods that are Ready, not terminating and not in the
//!   `disruptedPods` map (evictions the apiserver granted but whose deletion is not seen yet).
//! - `disruptionsAllowed` is `currentHealthy - desiredHealthy`, and 0 when negative or when no pod
//!   is expected (a budget selecting nothing must be safe when its first pods appear).
//! - The `DisruptionAllowed` condition is True/`SufficientPods` when disruptions are allowed,
//!   False/`InsufficientPods` otherwise, False/`SyncFailed` (with the error) when a sync failed.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rkube_controller_common::pod::is_pod_ready;
use std::collections::BTreeMap;
use std::time::Duration;

/// Upstream's `DeletionTimeout`: how long an entry of `status.disruptedPods` keeps its pod out of
/// the healthy count while the pod is not seen terminating.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The condition type this controller maintains.
pub const DISRUPTION_ALLOWED_CONDITION: &str = "DisruptionAllowed";
/// Reason: the sync failed; disruptionsAllowed was forced to 0.
pub const SYNC_FAILED_REASON: &str = "SyncFailed";
/// Reason: enough healthy pods to allow a disruption.
pub const SUFFICIENT_PODS_REASON: &str = "SufficientPods";
/// Reason: not enough healthy pods to allow a disruption.
pub const INSUFFICIENT_PODS_REASON: &str = "InsufficientPods";

/// Upstream's `intstr.GetScaledValueFromIntOrPercent`: an integer as is, or `N%` of `total`
/// (rounded up or down). Errors carry upstream's messages.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(digits) = s.strip_suffix('%') else {
                return Err("invalid value for IntOrString: invalid type: string is not a percentage".to_string());
            };
            let percent: i64 = digits
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: parsing {digits:?}: {e}"))?;
            let product = percent.saturating_mul(i64::from(total));
            let scaled = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(scaled).unwrap_or(if scaled < 0 { i32::MIN } else { i32::MAX }))
        }
    }
}

/// Whether the expected pod count comes from the pods' controllers' scale (`maxUnavailable`, or a
/// percentage `minAvailable`) rather than from the number of selected pods.
pub fn needs_controller_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// Upstream's `getExpectedPodCount`: `(expectedPods, desiredHealthy)` given the number of selected
/// pods and, when [`needs_controller_scale`], the summed scale of their controllers.
pub fn expected_and_desired(
    spec: &PodDisruptionBudgetSpec,
    selected_pods: i32,
    controller_scale: Option<i32>,
) -> Result<(i32, i32), String> {
    if let Some(max_unavailable) = &spec.max_unavailable {
        let expected = controller_scale.ok_or("the controllers' scale is unknown")?;
        let max = scaled_value(max_unavailable, expected, true)?;
        return Ok((expected, expected.saturating_sub(max).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(min)) => Ok((selected_pods, *min)),
        Some(min @ IntOrString::String(_)) => {
            let expected = controller_scale.ok_or("the controllers' scale is unknown")?;
            Ok((expected, scaled_value(min, expected, true)?))
        }
        None => Ok((0, 0)),
    }
}

/// What [`build_disrupted_pods`] keeps and what it drops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DisruptedPods {
    /// Entries still pending: pod present, not terminating, eviction younger than the timeout.
    pub pods: BTreeMap<String, Time>,
    /// When the oldest kept entry expires (the budget must be synced again then).
    pub recheck_at: Option<Timestamp>,
    /// Pods whose eviction expired without the pod being deleted (upstream warns `NotDeleted`).
    pub expired: Vec<String>,
}

fn after(t: &Time, d: Duration) -> Timestamp {
    t.0.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
}

/// Upstream's `buildDisruptedPodMap`: prunes `status.disruptedPods` of pods that are gone, are
/// already terminating, or whose eviction is older than `timeout`.
pub fn build_disrupted_pods(
    existing: Option<&BTreeMap<String, Time>>,
    pods: &[&Pod],
    now: Timestamp,
    timeout: Duration,
) -> DisruptedPods {
    let mut out = DisruptedPods::default();
    let Some(existing) = existing else { return out };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(at) = existing.get(name) else { continue };
        let expires = after(at, timeout);
        if expires < now {
            out.expired.push(name.to_string());
        } else {
            if out.recheck_at.is_none_or(|r| expires < r) {
                out.recheck_at = Some(expires);
            }
            out.pods.insert(name.to_string(), at.clone());
        }
    }
    out
}

/// Upstream's `countHealthyPods`: Ready pods that are neither terminating nor pending eviction.
pub fn count_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>, now: Timestamp, timeout: Duration) -> i32 {
    let n = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            disrupted.get(name).is_none_or(|at| after(at, timeout) <= now)
        })
        .filter(|p| is_pod_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Upstream's `apimeta.SetStatusCondition`: adds or updates the condition of that type; the
/// transition time moves only when the status flips (or the condition is new). Returns whether
/// anything changed.
pub fn set_status_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            new.last_transition_time = now.clone();
            conditions.push(new);
            true
        }
        Some(cur) => {
            let mut changed = false;
            if cur.status != new.status {
                cur.status = new.status;
                cur.last_transition_time = now.clone();
                changed = true;
            }
            if cur.reason != new.reason {
                cur.reason = new.reason;
                changed = true;
            }
            if cur.message != new.message {
                cur.message = new.message;
                changed = true;
            }
            if cur.observed_generation != new.observed_generation {
                cur.observed_generation = new.observed_generation;
                changed = true;
            }
            changed
        }
    }
}

fn condition(status: &str, reason: &str, message: String, observed_generation: Option<i64>) -> Condition {
    Condition {
        type_: DISRUPTION_ALLOWED_CONDITION.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Upstream's `UpdateDisruptionAllowedCondition`: the DisruptionAllowed condition from
/// `disruptionsAllowed` (stamped with `status.observedGeneration`).
pub fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: &Time) {
    let cond = if status.disruptions_allowed > 0 {
        condition("True", SUFFICIENT_PODS_REASON, String::new(), status.observed_generation)
    } else {
        condition("False", INSUFFICIENT_PODS_REASON, String::new(), status.observed_generation)
    };
    set_status_condition(status.conditions.get_or_insert_with(Vec::new), cond, now);
}

/// Upstream's `ConditionsAreUpToDate`: the condition exists, the status is of the current
/// generation, and the condition agrees with `disruptionsAllowed`.
pub fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = pdb.status.as_ref() else { return false };
    let Some(cond) = status.conditions.iter().flatten().find(|c| c.type_ == DISRUPTION_ALLOWED_CONDITION) else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        cond.status == "True" && cond.reason == SUFFICIENT_PODS_REASON
    } else {
        cond.status == "False" && cond.reason == INSUFFICIENT_PODS_REASON
    }
}

/// The counts a sync computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
    pub disrupted_pods: BTreeMap<String, Time>,
}

/// Upstream's `updatePdbStatus`: the status to write, or `None` when the current one already says
/// the same (so a level-triggered sync writes nothing).
pub fn next_status(pdb: &PodDisruptionBudget, counts: Counts, now: &Time) -> Option<PodDisruptionBudgetStatus> {
    let mut disruptions_allowed = counts.current_healthy.saturating_sub(counts.desired_healthy);
    if counts.expected_pods <= 0 || disruptions_allowed <= 0 {
        disruptions_allowed = 0;
    }
    let current = pdb.status.clone().unwrap_or_default();
    let current_disrupted = current.disrupted_pods.clone().unwrap_or_default();
    if pdb.status.is_some()
        && current.current_healthy == counts.current_healthy
        && current.desired_healthy == counts.desired_healthy
        && current.expected_pods == counts.expected_pods
        && current.disruptions_allowed == disruptions_allowed
        && current_disrupted == counts.disrupted_pods
        && current.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: counts.current_healthy,
        desired_healthy: counts.desired_healthy,
        expected_pods: counts.expected_pods,
        disruptions_allowed,
        disrupted_pods: (!counts.disrupted_pods.is_empty()).then_some(counts.disrupted_pods),
        observed_generation: pdb.metadata.generation,
        conditions: current.conditions,
    };
    update_disruption_allowed_condition(&mut status, now);
    Some(status)
}

/// Upstream's `failSafe`: after a failed sync, at least forbid disruptions: `disruptionsAllowed`
/// 0 and DisruptionAllowed False/SyncFailed with the error. `None` when already so.
pub fn fail_safe_status(pdb: &PodDisruptionBudget, message: &str, now: &Time) -> Option<PodDisruptionBudgetStatus> {
    let current = pdb.status.clone().unwrap_or_default();
    let mut status = current.clone();
    status.disruptions_allowed = 0;
    let cond = condition("False", SYNC_FAILED_REASON, message.to_string(), status.observed_generation);
    set_status_condition(status.conditions.get_or_insert_with(Vec::new), cond, now);
    (pdb.status.is_none() || status != current).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool, deleting: bool) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns"},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]}
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap_or_default()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn spec(v: serde_json::Value) -> PodDisruptionBudgetSpec {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn scaled_values_round_up_and_reject_bad_strings() {
        let p = |s: &str| IntOrString::String(s.to_string());
        assert_eq!(scaled_value(&IntOrString::Int(3), 10, true), Ok(3));
        assert_eq!(scaled_value(&p("50%"), 3, true), Ok(2));
        assert_eq!(scaled_value(&p("50%"), 3, false), Ok(1));
        assert_eq!(scaled_value(&p("100%"), 7, true), Ok(7));
        assert_eq!(scaled_value(&p("0%"), 7, true), Ok(0));
        assert_eq!(scaled_value(&p("34%"), 0, true), Ok(0));
        let e = scaled_value(&p("5"), 3, true).unwrap_err();
        assert!(e.contains("string is not a percentage"), "{e}");
        let e = scaled_value(&p("x%"), 3, true).unwrap_err();
        assert!(e.starts_with("invalid value for IntOrString: invalid value \"x%\""), "{e}");
    }

    #[test]
    fn expected_and_desired_follow_min_and_max() {
        // minAvailable int: expected is the number of selected pods, scale is not consulted.
        let s = spec(json!({"minAvailable": 2}));
        assert!(!needs_controller_scale(&s));
        assert_eq!(expected_and_desired(&s, 5, None), Ok((5, 2)));
        // minAvailable percent: of the controllers' scale, rounded up.
        let s = spec(json!({"minAvailable": "50%"}));
        assert!(needs_controller_scale(&s));
        assert_eq!(expected_and_desired(&s, 2, Some(5)), Ok((5, 3)));
        // maxUnavailable: expected - max (percent rounded up), never negative.
        let s = spec(json!({"maxUnavailable": 1}));
        assert_eq!(expected_and_desired(&s, 3, Some(3)), Ok((3, 2)));
        let s = spec(json!({"maxUnavailable": "30%"}));
        assert_eq!(expected_and_desired(&s, 3, Some(4)), Ok((4, 2)));
        let s = spec(json!({"maxUnavailable": 5}));
        assert_eq!(expected_and_desired(&s, 3, Some(3)), Ok((3, 0)));
        assert!(expected_and_desired(&s, 3, None).is_err());
        // Neither set.
        assert_eq!(expected_and_desired(&spec(json!({})), 4, None), Ok((0, 0)));
    }

    #[test]
    fn disrupted_pods_are_pruned_and_recheck_is_the_earliest_expiry() {
        let now = ts("2024-01-01T00:10:00Z");
        let mut existing = BTreeMap::new();
        existing.insert("fresh".to_string(), Time(ts("2024-01-01T00:09:30Z")));
        existing.insert("fresher".to_string(), Time(ts("2024-01-01T00:09:50Z")));
        existing.insert("old".to_string(), Time(ts("2024-01-01T00:07:00Z")));
        existing.insert("deleting".to_string(), Time(ts("2024-01-01T00:09:59Z")));
        existing.insert("gone".to_string(), Time(ts("2024-01-01T00:09:59Z")));
        let pods = [
            pod("fresh", true, false),
            pod("fresher", true, false),
            pod("old", true, false),
            pod("deleting", true, true),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = build_disrupted_pods(Some(&existing), &refs, now, DELETION_TIMEOUT);
        assert_eq!(d.pods.keys().cloned().collect::<Vec<_>>(), vec!["fresh", "fresher"]);
        assert_eq!(d.expired, vec!["old".to_string()]);
        assert_eq!(d.recheck_at, Some(ts("2024-01-01T00:11:30Z")));
        assert_eq!(build_disrupted_pods(None, &refs, now, DELETION_TIMEOUT), DisruptedPods::default());
    }

    #[test]
    fn healthy_pods_exclude_unready_terminating_and_disrupted() {
        let now = ts("2024-01-01T00:10:00Z");
        let pods = [
            pod("a", true, false),
            pod("b", false, false),
            pod("c", true, true),
            pod("d", true, false),
            pod("e", true, false),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut disrupted = BTreeMap::new();
        disrupted.insert("d".to_string(), Time(ts("2024-01-01T00:09:00Z")));
        // An expired entry no longer hides its pod.
        disrupted.insert("e".to_string(), Time(ts("2024-01-01T00:01:00Z")));
        assert_eq!(count_healthy(&refs, &disrupted, now, DELETION_TIMEOUT), 2);
        assert_eq!(count_healthy(&refs, &BTreeMap::new(), now, DELETION_TIMEOUT), 3);
    }

    fn pdb(generation: i64, status: Option<PodDisruptionBudgetStatus>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: None,
            status,
        }
    }

    fn counts(current: i32, desired: i32, expected: i32) -> Counts {
        Counts { current_healthy: current, desired_healthy: desired, expected_pods: expected, ..Default::default() }
    }

    #[test]
    fn next_status_computes_allowed_and_conditions_and_is_none_when_unchanged() {
        let now = Time(ts("2024-01-01T00:00:00Z"));
        let st = next_status(&pdb(3, None), counts(3, 2, 3), &now).unwrap_or_default();
        assert_eq!(st.disruptions_allowed, 1);
        assert_eq!(st.observed_generation, Some(3));
        let c = st.conditions.clone().unwrap_or_default();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].status.as_str(), c[0].reason.as_str()), ("True", SUFFICIENT_PODS_REASON));
        assert_eq!(c[0].observed_generation, Some(3));
        assert_eq!(c[0].last_transition_time, now);
        // Same inputs again: nothing to write.
        let p = pdb(3, Some(st.clone()));
        assert!(conditions_up_to_date(&p));
        assert_eq!(next_status(&p, counts(3, 2, 3), &now), None);
        // A new generation must be observed even when the counts are equal.
        let p = pdb(4, Some(st.clone()));
        assert!(!conditions_up_to_date(&p));
        let st4 = next_status(&p, counts(3, 2, 3), &now).unwrap_or_default();
        assert_eq!(st4.observed_generation, Some(4));
        // Fewer healthy pods: no disruptions, condition flips with a new transition time.
        let later = Time(ts("2024-01-01T00:05:00Z"));
        let st2 = next_status(&pdb(4, Some(st4)), counts(2, 2, 3), &later).unwrap_or_default();
        assert_eq!(st2.disruptions_allowed, 0);
        let c = st2.conditions.unwrap_or_default();
        assert_eq!((c[0].status.as_str(), c[0].reason.as_str()), ("False", INSUFFICIENT_PODS_REASON));
        assert_eq!(c[0].last_transition_time, later);
    }

    #[test]
    fn no_expected_pods_means_no_disruptions() {
        let now = Time(ts("2024-01-01T00:00:00Z"));
        // maxUnavailable 1 over a scale of 0 gives desired 0; healthy 0 - 0 = 0 anyway, but with
        // stray healthy pods and no expected pods nothing may be disrupted either.
        let st = next_status(&pdb(1, None), counts(2, 0, 0), &now).unwrap_or_default();
        assert_eq!(st.disruptions_allowed, 0);
        assert_eq!(st.expected_pods, 0);
        assert_eq!(st.observed_generation, Some(1));
    }

    #[test]
    fn empty_and_missing_disrupted_maps_are_equal() {
        let now = Time(ts("2024-01-01T00:00:00Z"));
        let st = next_status(&pdb(1, None), counts(1, 1, 1), &now).unwrap_or_default();
        assert_eq!(st.disrupted_pods, None);
        let mut st_empty = st.clone();
        st_empty.disrupted_pods = Some(BTreeMap::new());
        assert_eq!(next_status(&pdb(1, Some(st_empty)), counts(1, 1, 1), &now), None);
    }

    #[test]
    fn fail_safe_zeroes_allowed_and_keeps_observed_generation() {
        let now = Time(ts("2024-01-01T00:00:00Z"));
        let st = next_status(&pdb(1, None), counts(3, 1, 3), &now).unwrap_or_default();
        let p = pdb(2, Some(st));
        let fs = fail_safe_status(&p, "found no controllers for pod \"x\"", &now).unwrap_or_default();
        assert_eq!(fs.disruptions_allowed, 0);
        assert_eq!(fs.observed_generation, Some(1));
        let c = fs.conditions.clone().unwrap_or_default();
        assert_eq!((c[0].status.as_str(), c[0].reason.as_str()), ("False", SYNC_FAILED_REASON));
        assert_eq!(c[0].message, "found no controllers for pod \"x\"");
        // Repeating the same failure writes nothing.
        assert_eq!(fail_safe_status(&pdb(2, Some(fs)), "found no controllers for pod \"x\"", &now), None);
    }
}
