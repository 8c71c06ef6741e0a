//! Taints and tolerations: the node-controller's taint keys, the NoSchedule taints implied by node
//! conditions, toleration matching (upstream's `ToleratesTaint` / `GetMatchingTolerations`) and the
//! taint-eviction decision for one pod. Pure functions, no I/O.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint, Toleration};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

/// A taint with only key and effect set (upstream's taint templates).
pub fn template(key: &str, effect: &str) -> Taint {
    Taint { key: key.into(), effect: effect.into(), value: None, time_added: None }
}

/// Upstream's `MatchTaint`: same key and effect.
pub fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

pub fn has_taint(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| same_taint(x, t))
}

pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node_taints(node).iter().filter(|t| t.effect == NO_EXECUTE).cloned().collect()
}

/// Condition (type, status) → taint key, upstream's `nodeConditionToTaintKeyStatusMap`.
fn condition_taint_key(c: &NodeCondition) -> Option<&'static str> {
    match (c.type_.as_str(), c.status.as_str()) {
        ("Ready", "False") => Some(TAINT_NOT_READY),
        ("Ready", "Unknown") => Some(TAINT_UNREACHABLE),
        ("MemoryPressure", "True") => Some(TAINT_MEMORY_PRESSURE),
        ("DiskPressure", "True") => Some(TAINT_DISK_PRESSURE),
        ("NetworkUnavailable", "True") => Some(TAINT_NETWORK_UNAVAILABLE),
        ("PIDPressure", "True") => Some(TAINT_PID_PRESSURE),
        _ => None,
    }
}

/// Taint keys the node controller owns with effect NoSchedule.
fn is_controller_no_schedule_key(key: &str) -> bool {
    matches!(
        key,
        TAINT_NOT_READY
            | TAINT_UNREACHABLE
            | TAINT_MEMORY_PRESSURE
            | TAINT_DISK_PRESSURE
            | TAINT_NETWORK_UNAVAILABLE
            | TAINT_PID_PRESSURE
            | TAINT_UNSCHEDULABLE
    )
}

/// The NoSchedule taints the node's conditions and `spec.unschedulable` call for, and which of the
/// controller-owned NoSchedule taints it has: returns (to add, to remove), compared by key and effect
/// (upstream's `doNoScheduleTaintingPass`).
pub fn no_schedule_diff(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut want: Vec<Taint> = Vec::new();
    for c in node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]) {
        if let Some(key) = condition_taint_key(c) {
            let t = template(key, NO_SCHEDULE);
            if !has_taint(&want, &t) {
                want.push(t);
            }
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        want.push(template(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    let have: Vec<&Taint> =
        node_taints(node).iter().filter(|t| t.effect == NO_SCHEDULE && is_controller_no_schedule_key(&t.key)).collect();
    let add = want.iter().filter(|w| !have.iter().any(|h| same_taint(h, w))).cloned().collect();
    let del = have.iter().filter(|h| !want.iter().any(|w| same_taint(h, w))).map(|t| (*t).clone()).collect();
    (add, del)
}

/// The node's taints after adding `add` (stamped with `now` as timeAdded; an existing taint with the
/// same key and effect is replaced) and removing `del` (by key and effect). `None` if nothing changes.
pub fn apply_taints(
    current: &[Taint],
    add: &[Taint],
    del: &[Taint],
    now: k8s_openapi::jiff::Timestamp,
) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = Vec::with_capacity(current.len() + add.len());
    let mut changed = false;
    for t in current {
        if has_taint(del, t) && !has_taint(add, t) {
            changed = true;
            continue;
        }
        if let Some(a) = add.iter().find(|a| same_taint(a, t)) {
            // Already there with the same value: keep it (and its timeAdded).
            if a.value != t.value {
                let mut n = a.clone();
                n.time_added = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
                out.push(n);
                changed = true;
                continue;
            }
        }
        out.push(t.clone());
    }
    for a in add {
        if !has_taint(current, a) {
            let mut n = a.clone();
            n.time_added = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            out.push(n);
            changed = true;
        }
    }
    changed.then_some(out)
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = tol.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Upstream's `GetMatchingTolerations`: whether every taint is tolerated, and for each taint the first
/// toleration that tolerates it.
pub fn matching_tolerations<'a>(taints: &[Taint], tolerations: &'a [Toleration]) -> (bool, Vec<&'a Toleration>) {
    let mut used = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return (false, Vec::new()),
        }
    }
    (true, used)
}

/// What the taint manager does with a pod on a node with NoExecute taints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvictionDecision {
    /// No NoExecute taints, or tolerated forever: no eviction (cancel any scheduled one).
    Keep,
    /// Delete now: some taint is not tolerated, or a toleration has tolerationSeconds <= 0.
    EvictNow,
    /// Delete once the shortest tolerationSeconds has elapsed.
    EvictAfter(Duration),
}

/// The taint manager's decision (upstream's `processPodOnNode` + `getMinTolerationTime`).
pub fn eviction_decision(no_execute: &[Taint], tolerations: &[Toleration]) -> EvictionDecision {
    if no_execute.is_empty() {
        return EvictionDecision::Keep;
    }
    let (all, used) = matching_tolerations(no_execute, tolerations);
    if !all {
        return EvictionDecision::EvictNow;
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return EvictionDecision::EvictNow;
            }
            min = Some(min.map_or(s, |m: i64| m.min(s)));
        }
    }
    match min {
        None => EvictionDecision::Keep,
        Some(s) => EvictionDecision::EvictAfter(Duration::from_secs(s.unsigned_abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::jiff::Timestamp;

    fn tol(key: &str, op: &str, value: Option<&str>, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: Some(op.into()),
            value: value.map(str::to_string),
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: secs,
        }
    }

    fn cond(t: &str, s: &str) -> NodeCondition {
        NodeCondition { type_: t.into(), status: s.into(), ..Default::default() }
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let unreachable = template(TAINT_UNREACHABLE, NO_EXECUTE);
        assert!(tolerates(&tol(TAINT_UNREACHABLE, "Exists", None, "NoExecute", None), &unreachable));
        assert!(tolerates(&tol(TAINT_UNREACHABLE, "Exists", None, "", None), &unreachable));
        assert!(!tolerates(&tol(TAINT_UNREACHABLE, "Exists", None, "NoSchedule", None), &unreachable));
        assert!(!tolerates(&tol(TAINT_NOT_READY, "Exists", None, "NoExecute", None), &unreachable));
        // Empty key with Exists tolerates everything.
        assert!(tolerates(&tol("", "Exists", None, "", None), &unreachable));
        let valued = Taint { key: "k".into(), value: Some("v".into()), effect: NO_EXECUTE.into(), time_added: None };
        assert!(tolerates(&tol("k", "Equal", Some("v"), "NoExecute", None), &valued));
        assert!(!tolerates(&tol("k", "Equal", Some("w"), "NoExecute", None), &valued));
        assert!(!tolerates(&tol("k", "Bogus", Some("v"), "NoExecute", None), &valued));
    }

    #[test]
    fn eviction_decisions() {
        let taints = vec![template(TAINT_UNREACHABLE, NO_EXECUTE)];
        assert_eq!(eviction_decision(&taints, &[]), EvictionDecision::EvictNow);
        assert_eq!(eviction_decision(&[], &[]), EvictionDecision::Keep);
        let forever = [tol(TAINT_UNREACHABLE, "Exists", None, "NoExecute", None)];
        assert_eq!(eviction_decision(&taints, &forever), EvictionDecision::Keep);
        let timed = [tol(TAINT_UNREACHABLE, "Exists", None, "NoExecute", Some(300))];
        assert_eq!(eviction_decision(&taints, &timed), EvictionDecision::EvictAfter(Duration::from_secs(300)));
        let zero = [tol(TAINT_UNREACHABLE, "Exists", None, "NoExecute", Some(0))];
        assert_eq!(eviction_decision(&taints, &zero), EvictionDecision::EvictNow);
        // Two taints: the shortest used toleration wins; an untolerated one means now.
        let two = vec![template(TAINT_UNREACHABLE, NO_EXECUTE), template("x", NO_EXECUTE)];
        let tols = [
            tol(TAINT_UNREACHABLE, "Exists", None, "NoExecute", Some(30)),
            tol("x", "Exists", None, "NoExecute", Some(5)),
        ];
        assert_eq!(eviction_decision(&two, &tols), EvictionDecision::EvictAfter(Duration::from_secs(5)));
        assert_eq!(eviction_decision(&two, &tols[..1]), EvictionDecision::EvictNow);
    }

    #[test]
    fn no_schedule_taints_follow_conditions() {
        let mut node = Node {
            spec: Some(NodeSpec {
                unschedulable: Some(true),
                taints: Some(vec![template(TAINT_DISK_PRESSURE, NO_SCHEDULE), template("user", NO_SCHEDULE)]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![cond("Ready", "Unknown"), cond("MemoryPressure", "True")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (add, del) = no_schedule_diff(&node);
        let keys: Vec<_> = add.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, vec![TAINT_UNREACHABLE, TAINT_MEMORY_PRESSURE, TAINT_UNSCHEDULABLE]);
        // The user's taint is not ours to remove; disk-pressure no longer applies.
        assert_eq!(del.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), vec![TAINT_DISK_PRESSURE]);

        node.status = Some(NodeStatus { conditions: Some(vec![cond("Ready", "True")]), ..Default::default() });
        node.spec = Some(NodeSpec::default());
        assert_eq!(no_schedule_diff(&node), (vec![], vec![]));
    }

    #[test]
    fn apply_taints_adds_with_time_and_removes() {
        let now = Timestamp::now();
        let current = vec![template("user", NO_SCHEDULE), template(TAINT_NOT_READY, NO_EXECUTE)];
        let out = apply_taints(
            &current,
            &[template(TAINT_UNREACHABLE, NO_EXECUTE)],
            &[template(TAINT_NOT_READY, NO_EXECUTE)],
            now,
        )
        .expect("changed");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].key, "user");
        assert_eq!(out[1].key, TAINT_UNREACHABLE);
        assert!(out[1].time_added.is_some());
        // Adding what is there already changes nothing.
        assert!(apply_taints(&out, &[template(TAINT_UNREACHABLE, NO_EXECUTE)], &[], now).is_none());
        assert!(apply_taints(&out, &[], &[template("absent", NO_EXECUTE)], now).is_none());
    }
}
