//! From a metric-based recommendation to the size the controller sets: upstream's
//! normalization (horizontal.go). Without `spec.behavior`: the downscale stabilization window
//! (highest recommendation of the window) and the fixed scale-up limit max(2×current, 4). With
//! `behavior`: scaleUp / scaleDown stabilization windows and rate policies (Pods / Percent per
//! period, selectPolicy Max / Min / Disabled) against the scale events this controller made,
//! with upstream's defaults for unset fields. Then min/max replicas. Each step reports the
//! condition reason and message upstream sets (AbleToScale, ScalingLimited).

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use std::time::{Duration, Instant};

/// A recommendation made at some instant.
#[derive(Clone, Copy, Debug)]
pub struct Recommendation {
    pub replicas: i32,
    pub at: Instant,
}

/// A rescale this controller made (replica change, always positive).
#[derive(Clone, Copy, Debug)]
pub struct ScaleEvent {
    pub change: i32,
    pub at: Instant,
}

/// What the controller remembers about one HPA between syncs.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub recommendations: Vec<Recommendation>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyType {
    Pods,
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub type_: PolicyType,
    pub value: i32,
    pub period: Duration,
}

/// One direction's scaling rules with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub stabilization_window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

fn secs(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

fn resolve(rules: Option<&HPAScalingRules>, window: i32, default_policies: Vec<Policy>) -> Rules {
    let stabilization_window = secs(rules.and_then(|r| r.stabilization_window_seconds).unwrap_or(window));
    let select = match rules.and_then(|r| r.select_policy.as_deref()) {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let policies: Vec<Policy> = rules
        .and_then(|r| r.policies.as_ref())
        .map(|ps| {
            ps.iter()
                .map(|p| Policy {
                    type_: if p.type_ == "Percent" { PolicyType::Percent } else { PolicyType::Pods },
                    value: p.value,
                    period: secs(p.period_seconds),
                })
                .collect()
        })
        .unwrap_or_default();
    Rules { stabilization_window, select, policies: if policies.is_empty() { default_policies } else { policies } }
}

/// scaleUp with upstream's defaults: window 0, Max of (4 pods, 100%) per 15 s.
pub fn scale_up_rules(behavior: &HorizontalPodAutoscalerBehavior) -> Rules {
    let defaults = vec![
        Policy { type_: PolicyType::Pods, value: 4, period: Duration::from_secs(15) },
        Policy { type_: PolicyType::Percent, value: 100, period: Duration::from_secs(15) },
    ];
    resolve(behavior.scale_up.as_ref(), 0, defaults)
}

/// scaleDown with upstream's defaults: window `default_window` (the controller's
/// downscale-stabilization flag, 300 s), Max of 100% per 15 s.
pub fn scale_down_rules(behavior: &HorizontalPodAutoscalerBehavior, default_window: Duration) -> Rules {
    let defaults = vec![Policy { type_: PolicyType::Percent, value: 100, period: Duration::from_secs(15) }];
    let window = i32::try_from(default_window.as_secs()).unwrap_or(i32::MAX);
    resolve(behavior.scale_down.as_ref(), window, defaults)
}

/// A condition to set: (reason, message).
pub type Reason = (&'static str, &'static str);

pub const READY_FOR_NEW_SCALE: Reason = ("ReadyForNewScale", "recommended size matches current size");
pub const SCALE_DOWN_STABILIZED: Reason = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
pub const SCALE_UP_STABILIZED: Reason = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
pub const SCALE_UP_LIMIT: Reason =
    ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate");
pub const SCALE_DOWN_LIMIT: Reason =
    ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate");
pub const TOO_MANY_REPLICAS: Reason =
    ("TooManyReplicas", "the desired replica count is more than the maximum replica count");
pub const TOO_FEW_REPLICAS: Reason =
    ("TooFewReplicas", "the desired replica count is less than the minimum replica count");
pub const DESIRED_WITHIN_RANGE: Reason = ("DesiredWithinRange", "the desired count is within the acceptable range");

/// The outcome of normalization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: i32,
    /// AbleToScale=True with this reason.
    pub able_to_scale: Reason,
    /// ScalingLimited: status (true when the limit changed the stabilized recommendation) and reason.
    pub limited: bool,
    pub limited_reason: Reason,
}

fn older_than(at: Instant, now: Instant, d: Duration) -> bool {
    now.saturating_duration_since(at) > d
}

fn newer_than(at: Instant, now: Instant, d: Duration) -> bool {
    now.saturating_duration_since(at) < d
}

/// The legacy path (no `behavior`): upstream's normalizeDesiredReplicas.
pub fn normalize(
    history: &mut History,
    now: Instant,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    downscale_window: Duration,
) -> Normalized {
    // Highest recommendation within the window; replace one old sample (or append).
    let mut stabilized = desired;
    let mut old = None;
    for (i, r) in history.recommendations.iter().enumerate() {
        if older_than(r.at, now, downscale_window) {
            old = Some(i);
        } else if r.replicas > stabilized {
            stabilized = r.replicas;
        }
    }
    record(history, old, Recommendation { replicas: desired, at: now });
    let able_to_scale = if stabilized != desired { SCALE_DOWN_STABILIZED } else { READY_FOR_NEW_SCALE };
    let scale_up_limit = ((2.0 * f64::from(current)).max(4.0)) as i32;
    let (max_allowed, mut reason) =
        if max > scale_up_limit { (scale_up_limit, SCALE_UP_LIMIT) } else { (max, TOO_MANY_REPLICAS) };
    let replicas = if stabilized < min {
        reason = TOO_FEW_REPLICAS;
        min
    } else if stabilized > max_allowed {
        max_allowed
    } else {
        reason = DESIRED_WITHIN_RANGE;
        stabilized
    };
    Normalized { replicas, able_to_scale, limited: replicas != stabilized, limited_reason: reason }
}

fn record(history: &mut History, old: Option<usize>, rec: Recommendation) {
    match old.and_then(|i| history.recommendations.get_mut(i)) {
        Some(slot) => *slot = rec,
        None => history.recommendations.push(rec),
    }
}

/// With `behavior`: upstream's normalizeDesiredReplicasWithBehaviors.
#[allow(clippy::too_many_arguments)]
pub fn normalize_with_behavior(
    history: &mut History,
    now: Instant,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up: &Rules,
    down: &Rules,
) -> Normalized {
    // Stabilize: lowest recommendation within the scale-up window, highest within the scale-down one.
    let mut up_rec = desired;
    let mut down_rec = desired;
    let mut old = None;
    for (i, r) in history.recommendations.iter().enumerate() {
        if newer_than(r.at, now, up.stabilization_window) {
            up_rec = up_rec.min(r.replicas);
        }
        if newer_than(r.at, now, down.stabilization_window) {
            down_rec = down_rec.max(r.replicas);
        }
        if older_than(r.at, now, up.stabilization_window) && older_than(r.at, now, down.stabilization_window) {
            old = Some(i);
        }
    }
    let stabilized = current.max(up_rec).min(down_rec);
    record(history, old, Recommendation { replicas: desired, at: now });
    let able_to_scale = if stabilized == desired {
        READY_FOR_NEW_SCALE
    } else if desired >= current {
        SCALE_UP_STABILIZED
    } else {
        SCALE_DOWN_STABILIZED
    };

    // Rate limits.
    let mut replicas = stabilized;
    let mut reason = DESIRED_WITHIN_RANGE;
    if stabilized > current {
        let limit = scale_up_limit(current, history, up, now).max(current);
        let (max_allowed, r) = if max > limit { (limit, SCALE_UP_LIMIT) } else { (max, TOO_MANY_REPLICAS) };
        if stabilized > max_allowed {
            replicas = max_allowed;
            reason = r;
        }
    } else if stabilized < current {
        let limit = scale_down_limit(current, history, down, now).min(current);
        let (min_allowed, r) = if min < limit { (limit, SCALE_DOWN_LIMIT) } else { (min, TOO_FEW_REPLICAS) };
        if stabilized < min_allowed {
            replicas = min_allowed;
            reason = r;
        }
    }
    Normalized { replicas, able_to_scale, limited: replicas != stabilized, limited_reason: reason }
}

fn change_in_period(events: &[ScaleEvent], period: Duration, now: Instant) -> i32 {
    events.iter().filter(|e| newer_than(e.at, now, period)).map(|e| e.change).sum()
}

/// The highest size the scale-up policies allow now.
pub fn scale_up_limit(current: i32, history: &History, rules: &Rules, now: Instant) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut result: Option<i32> = None;
    for p in &rules.policies {
        let added = change_in_period(&history.scale_up_events, p.period, now);
        let removed = change_in_period(&history.scale_down_events, p.period, now);
        let start = current - added + removed;
        let proposed = match p.type_ {
            PolicyType::Pods => start.saturating_add(p.value),
            PolicyType::Percent => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            (Some(r), Select::Min) => r.min(proposed),
            (Some(r), _) => r.max(proposed),
        });
    }
    result.unwrap_or(current)
}

/// The lowest size the scale-down policies allow now.
pub fn scale_down_limit(current: i32, history: &History, rules: &Rules, now: Instant) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut result: Option<i32> = None;
    for p in &rules.policies {
        let added = change_in_period(&history.scale_up_events, p.period, now);
        let removed = change_in_period(&history.scale_down_events, p.period, now);
        let start = current - added + removed;
        let proposed = match p.type_ {
            PolicyType::Pods => start.saturating_sub(p.value),
            PolicyType::Percent => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            // "Min" change on the way down is the highest floor.
            (Some(r), Select::Min) => r.max(proposed),
            (Some(r), _) => r.min(proposed),
        });
    }
    result.unwrap_or(current)
}

/// Remember a rescale for the rate policies (only HPAs with `behavior` use them), forgetting
/// events older than the longest policy period.
pub fn record_scale_event(history: &mut History, up: &Rules, down: &Rules, from: i32, to: i32, now: Instant) {
    let longest = |r: &Rules| r.policies.iter().map(|p| p.period).max().unwrap_or_default();
    let (events, keep) = if to > from {
        (&mut history.scale_up_events, longest(up))
    } else {
        (&mut history.scale_down_events, longest(down))
    };
    events.retain(|e| !older_than(e.at, now, keep));
    events.push(ScaleEvent { change: (to - from).abs(), at: now });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn behavior(v: serde_json::Value) -> HorizontalPodAutoscalerBehavior {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn ago(now: Instant, s: u64) -> Instant {
        now.checked_sub(Duration::from_secs(s)).unwrap_or(now)
    }

    #[test]
    fn defaults() {
        let b = behavior(json!({}));
        let up = scale_up_rules(&b);
        assert_eq!(up.stabilization_window, Duration::ZERO);
        assert_eq!(up.select, Select::Max);
        assert_eq!(up.policies.len(), 2);
        let down = scale_down_rules(&b, Duration::from_secs(300));
        assert_eq!(down.stabilization_window, Duration::from_secs(300));
        assert_eq!(
            down.policies,
            vec![Policy { type_: PolicyType::Percent, value: 100, period: Duration::from_secs(15) }]
        );
        let b = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 5, "selectPolicy": "Disabled"}}));
        let down = scale_down_rules(&b, Duration::from_secs(300));
        assert_eq!((down.stabilization_window, down.select), (Duration::from_secs(5), Select::Disabled));
    }

    #[test]
    fn legacy_scale_up_limit_and_bounds() {
        let now = Instant::now();
        let mut h = History::default();
        // 1 → 10 wanted, max 20: limited to max(2*1, 4) = 4.
        let n = normalize(&mut h, now, 1, 10, 1, 20, Duration::from_secs(300));
        assert_eq!((n.replicas, n.limited, n.limited_reason), (4, true, SCALE_UP_LIMIT));
        // max 3 below the rate limit: TooManyReplicas.
        let n = normalize(&mut History::default(), now, 1, 10, 1, 3, Duration::from_secs(300));
        assert_eq!((n.replicas, n.limited_reason), (3, TOO_MANY_REPLICAS));
        // Below min.
        let n = normalize(&mut History::default(), now, 3, 1, 2, 10, Duration::from_secs(300));
        assert_eq!((n.replicas, n.limited, n.limited_reason), (2, true, TOO_FEW_REPLICAS));
        let n = normalize(&mut History::default(), now, 3, 5, 2, 10, Duration::from_secs(300));
        assert_eq!(
            (n.replicas, n.limited, n.limited_reason, n.able_to_scale),
            (5, false, DESIRED_WITHIN_RANGE, READY_FOR_NEW_SCALE)
        );
    }

    #[test]
    fn legacy_downscale_stabilization() {
        let now = Instant::now();
        let mut h = History::default();
        h.recommendations.push(Recommendation { replicas: 5, at: ago(now, 100) });
        h.recommendations.push(Recommendation { replicas: 8, at: ago(now, 400) });
        let n = normalize(&mut h, now, 5, 2, 1, 10, Duration::from_secs(300));
        // 8 is outside the window (and replaced by this recommendation); 5 is inside.
        assert_eq!((n.replicas, n.able_to_scale), (5, SCALE_DOWN_STABILIZED));
        assert_eq!(h.recommendations.len(), 2);
        // Once the window has passed, the scale-down happens.
        let later = now + Duration::from_secs(301);
        let n = normalize(&mut h, later, 5, 2, 1, 10, Duration::from_secs(300));
        assert_eq!(n.replicas, 2);
    }

    #[test]
    fn behavior_stabilization_both_ways() {
        let now = Instant::now();
        let b = behavior(json!({"scaleUp": {"stabilizationWindowSeconds": 60}}));
        let (up, down) = (scale_up_rules(&b), scale_down_rules(&b, Duration::from_secs(300)));
        let mut h = History::default();
        h.recommendations.push(Recommendation { replicas: 3, at: ago(now, 30) });
        // Wants 8 from 2, but 3 was recommended 30 s ago (within the 60 s up window): 3.
        let n = normalize_with_behavior(&mut h, now, 2, 8, 1, 10, &up, &down);
        assert_eq!((n.replicas, n.able_to_scale), (3, SCALE_UP_STABILIZED));
        // Scale-down: 8 recommended just now stays the floor for 300 s.
        let n = normalize_with_behavior(&mut h, now + Duration::from_secs(1), 8, 1, 1, 10, &up, &down);
        assert_eq!((n.replicas, n.able_to_scale), (8, SCALE_DOWN_STABILIZED));
    }

    #[test]
    fn pods_and_percent_policies() {
        let now = Instant::now();
        let b = behavior(json!({
            "scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}], "stabilizationWindowSeconds": 0},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
                {"type": "Percent", "value": 50, "periodSeconds": 60},
                {"type": "Pods", "value": 1, "periodSeconds": 60}
            ], "selectPolicy": "Min"}
        }));
        let (up, down) = (scale_up_rules(&b), scale_down_rules(&b, Duration::from_secs(300)));
        let mut h = History::default();
        let n = normalize_with_behavior(&mut h, now, 1, 10, 1, 20, &up, &down);
        assert_eq!((n.replicas, n.limited, n.limited_reason), (3, true, SCALE_UP_LIMIT));
        record_scale_event(&mut h, &up, &down, 1, 3, now);
        // Within the same period, the budget (start 1 + 2) is used up.
        let n = normalize_with_behavior(&mut h, now + Duration::from_secs(5), 3, 10, 1, 20, &up, &down);
        assert_eq!(n.replicas, 3);
        // After the period, 2 more.
        let n = normalize_with_behavior(&mut h, now + Duration::from_secs(61), 3, 10, 1, 20, &up, &down);
        assert_eq!(n.replicas, 5);
        // Scale-down with Min select: the smaller change (1 pod vs 50%) wins: 10 → 9.
        let n = normalize_with_behavior(&mut History::default(), now, 10, 1, 1, 20, &up, &down);
        assert_eq!((n.replicas, n.limited_reason), (9, SCALE_DOWN_LIMIT));
        // Max (default) select would take 50%: 10 → 5.
        let b = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
            {"type": "Percent", "value": 50, "periodSeconds": 60}, {"type": "Pods", "value": 1, "periodSeconds": 60}]}}));
        let down = scale_down_rules(&b, Duration::from_secs(300));
        let n = normalize_with_behavior(&mut History::default(), now, 10, 1, 1, 20, &up, &down);
        assert_eq!(n.replicas, 5);
        // Percent scale-up rounds up.
        let up = Rules {
            stabilization_window: Duration::ZERO,
            select: Select::Max,
            policies: vec![Policy { type_: PolicyType::Percent, value: 10, period: Duration::from_secs(15) }],
        };
        assert_eq!(scale_up_limit(3, &History::default(), &up, now), 4);
    }

    #[test]
    fn disabled_and_bounds_with_behavior() {
        let now = Instant::now();
        let b =
            behavior(json!({"scaleUp": {"selectPolicy": "Disabled"}, "scaleDown": {"stabilizationWindowSeconds": 0}}));
        let (up, down) = (scale_up_rules(&b), scale_down_rules(&b, Duration::from_secs(300)));
        let n = normalize_with_behavior(&mut History::default(), now, 2, 5, 1, 10, &up, &down);
        assert_eq!((n.replicas, n.limited_reason), (2, SCALE_UP_LIMIT));
        // Scale-down to below min: TooFewReplicas (100% policy allows 0).
        let n = normalize_with_behavior(&mut History::default(), now, 4, 1, 2, 10, &up, &down);
        assert_eq!((n.replicas, n.limited, n.limited_reason), (2, true, TOO_FEW_REPLICAS));
        // Scale-up above max (default policies allow 4 → 8).
        let b = behavior(json!({}));
        let up = scale_up_rules(&b);
        let n = normalize_with_behavior(&mut History::default(), now, 4, 7, 1, 6, &up, &down);
        assert_eq!((n.replicas, n.limited_reason), (6, TOO_MANY_REPLICAS));
    }
}
