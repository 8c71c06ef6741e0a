//! Which pods a ReplicaSet deletes first when scaling down: upstream's `ActivePodsWithRanks`
//! ordering (with the PodDeletionCost and LogarithmicScaleDown features, both on by default in
//! 1.33). Earlier in the order = deleted first:
//!
//! 1. unassigned (no `spec.nodeName`) before assigned;
//! 2. Pending before Unknown before Running;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` before higher;
//! 5. more related pods on the same node ("doubled up") before fewer;
//! 6. (both ready) ready more recently before ready longer, compared in log2 buckets of age;
//! 7. more container restarts before fewer;
//! 8. created more recently before older, compared in log2 buckets of age (ties: by UID).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use rkube_controller_common::pod::{is_pod_active, is_pod_ready, max_container_restarts, phase, ready_since};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Annotation carrying a pod's deletion cost (upstream's `PodDeletionCost`).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        // Upstream: any other phase ranks before Pending.
        _ => 0,
    }
}

/// The pod's deletion cost; 0 when absent or not a valid int32.
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0)
}

/// floor(log2(age in nanoseconds)), or -1 for a timestamp not in the past (upstream's
/// `logarithmicRankDiff` operands).
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.duration_since(t).as_nanos();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// "t1 sorts before t2": the more recent (or a missing) time first, in log2 buckets.
fn time_order(t1: Option<Timestamp>, t2: Option<Timestamp>, now: Timestamp, uid1: &str, uid2: &str) -> Ordering {
    match (t1, t2) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) if a == b => Ordering::Equal,
        (Some(a), Some(b)) => {
            let diff = log_rank(a, now) - log_rank(b, now);
            match diff.cmp(&0) {
                Ordering::Equal => uid1.cmp(uid2),
                other => other,
            }
        }
    }
}

/// Upstream's `ActivePodsWithRanks.Less` as an ordering (Less = delete first).
pub fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    let uid_a = a.metadata.uid.as_deref().unwrap_or("");
    let uid_b = b.metadata.uid.as_deref().unwrap_or("");
    // 1. Unassigned < assigned.
    let assigned = |p: &Pod| !node_name(p).is_empty();
    if assigned(a) != assigned(b) {
        return assigned(a).cmp(&assigned(b));
    }
    // 2. Pending < Unknown < Running.
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a).cmp(&phase_ordinal(b));
    }
    // 3. Not ready < ready.
    if is_pod_ready(a) != is_pod_ready(b) {
        return is_pod_ready(a).cmp(&is_pod_ready(b));
    }
    // 4. Lower deletion cost < higher.
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a).cmp(&deletion_cost(b));
    }
    // 5. Doubled up < not: more related pods on the node first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Both ready: ready more recently first.
    if is_pod_ready(a) && is_pod_ready(b) {
        let ord = time_order(ready_since(a), ready_since(b), now, uid_a, uid_b);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    // 7. More restarts first.
    let (ra, rb) = (max_container_restarts(a), max_container_restarts(b));
    if ra != rb {
        return rb.cmp(&ra);
    }
    // 8. Newer first.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    time_order(created(a), created(b), now, uid_a, uid_b)
}

/// The `count` pods to delete among `pods` (the ReplicaSet's active pods), ranking pods that share
/// a node with many `related` pods (active pods of ReplicaSets with the same controller) first.
pub fn pods_to_delete<'a, P: Borrow<Pod>>(
    pods: &'a [P],
    related: &[impl Borrow<Pod>],
    count: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if count >= pods.len() {
        return pods.iter().map(Borrow::borrow).collect();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().map(Borrow::borrow).filter(|p| is_pod_active(p)) {
        *on_node.entry(node_name(p)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> =
        pods.iter().map(Borrow::borrow).map(|p| (p, on_node.get(node_name(p)).copied().unwrap_or(0))).collect();
    ranked.sort_by(|(a, ra), (b, rb)| compare(a, *ra, b, *rb, now));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::SignedDuration;
    use std::collections::BTreeMap;

    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_ago: Option<i64>,
        created_ago: i64,
        restarts: i32,
        cost: Option<&'static str>,
    }

    impl Default for P {
        fn default() -> Self {
            P {
                name: "p",
                node: "n1",
                phase: "Running",
                ready_ago: Some(1000),
                created_ago: 2000,
                restarts: 0,
                cost: None,
            }
        }
    }

    fn mk(p: P, now: Timestamp) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(p.name.into()),
                uid: Some(format!("uid-{}", p.name)),
                creation_timestamp: Some(Time(now - SignedDuration::from_secs(p.created_ago))),
                annotations: p.cost.map(|c| BTreeMap::from([(POD_DELETION_COST.to_string(), c.to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: (!p.node.is_empty()).then(|| p.node.to_string()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(p.phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if p.ready_ago.is_some() { "True" } else { "False" }.into(),
                    last_transition_time: p.ready_ago.map(|s| Time(now - SignedDuration::from_secs(s))),
                    ..Default::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    restart_count: p.restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn first(pods: Vec<P>, related: &[Pod], now: Timestamp) -> &'static str {
        let names: Vec<&'static str> = pods.iter().map(|p| p.name).collect();
        let pods: Vec<Pod> = pods.into_iter().map(|p| mk(p, now)).collect();
        let chosen = pods_to_delete(&pods, related, 1, now);
        let name = chosen.first().and_then(|p| p.metadata.name.clone()).unwrap_or_default();
        names.into_iter().find(|n| *n == name).unwrap_or("none")
    }

    #[test]
    fn unassigned_goes_first() {
        let now = Timestamp::now();
        let pods =
            vec![P { name: "assigned", ..Default::default() }, P { name: "free", node: "", ..Default::default() }];
        assert_eq!(first(pods, &[], now), "free");
    }

    #[test]
    fn pending_before_unknown_before_running() {
        let now = Timestamp::now();
        let pods = vec![
            P { name: "running", ..Default::default() },
            P { name: "unknown", phase: "Unknown", ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "unknown");
        let pods = vec![
            P { name: "unknown", phase: "Unknown", ..Default::default() },
            P { name: "pending", phase: "Pending", ready_ago: None, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "pending");
    }

    #[test]
    fn not_ready_before_ready() {
        let now = Timestamp::now();
        let pods = vec![
            P { name: "ready", ..Default::default() },
            P { name: "unready", ready_ago: None, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "unready");
    }

    #[test]
    fn lower_deletion_cost_first_and_invalid_cost_is_zero() {
        let now = Timestamp::now();
        let pods = vec![
            P { name: "cheap", cost: Some("-5"), created_ago: 10_000, ..Default::default() },
            P { name: "zero", ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "cheap");
        let pods = vec![
            P { name: "dear", cost: Some("100"), ..Default::default() },
            P { name: "garbage", cost: Some("abc"), created_ago: 10_000, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "garbage");
    }

    #[test]
    fn doubled_up_pods_first() {
        let now = Timestamp::now();
        let related = vec![
            mk(P { name: "r1", node: "busy", ..Default::default() }, now),
            mk(P { name: "r2", node: "busy", ..Default::default() }, now),
            mk(P { name: "r3", node: "quiet", ..Default::default() }, now),
        ];
        let pods = vec![
            P { name: "lonely", node: "quiet", created_ago: 5, ready_ago: Some(1), ..Default::default() },
            P { name: "crowded", node: "busy", ..Default::default() },
        ];
        assert_eq!(first(pods, &related, now), "crowded");
    }

    #[test]
    fn recently_ready_first_in_log_buckets() {
        let now = Timestamp::now();
        let pods = vec![
            P { name: "old", ready_ago: Some(10_000), ..Default::default() },
            P { name: "new", ready_ago: Some(10), ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "new");
        // Same log2 bucket of ready age but different times: upstream decides by UID right there
        // (restarts are not consulted).
        let pods = vec![
            P { name: "b", ready_ago: Some(1000), restarts: 3, ..Default::default() },
            P { name: "a", ready_ago: Some(1001), restarts: 0, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "a");
        // Identical ready times fall through to restarts.
        let pods = vec![
            P { name: "a", ready_ago: Some(1000), restarts: 0, ..Default::default() },
            P { name: "b", ready_ago: Some(1000), restarts: 3, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "b");
    }

    #[test]
    fn more_restarts_first_then_newer_first() {
        let now = Timestamp::now();
        let pods = vec![
            P { name: "stable", created_ago: 10, ..Default::default() },
            P { name: "crashy", restarts: 5, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "crashy");
        let pods = vec![
            P { name: "older", created_ago: 100_000, ready_ago: None, ..Default::default() },
            P { name: "newer", created_ago: 10, ready_ago: None, ..Default::default() },
        ];
        assert_eq!(first(pods, &[], now), "newer");
    }

    #[test]
    fn everything_when_count_covers_all() {
        let now = Timestamp::now();
        let pods = vec![mk(P { name: "a", ..Default::default() }, now), mk(P { name: "b", ..Default::default() }, now)];
        assert_eq!(pods_to_delete(&pods, &[] as &[Pod], 2, now).len(), 2);
        assert_eq!(pods_to_delete(&pods, &[] as &[Pod], 5, now).len(), 2);
        assert_eq!(pods_to_delete(&pods, &[] as &[Pod], 0, now).len(), 0);
    }
}
