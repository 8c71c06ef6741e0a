//! The DaemonSet controller's decisions (pure functions, no I/O), as upstream's `manage` /
//! `podsShouldBeOnNode`, `rollingUpdate` and `updateDaemonSetStatus`:
//!
//! - [`manage_plan`]: which nodes need a daemon pod and which pods must go (node no longer
//!   eligible, failed or succeeded pods, extra pods on a node, pods for nodes that are gone);
//! - [`rolling_update_plan`]: which old pods to replace now, under `maxUnavailable` (delete first)
//!   or `maxSurge` (new pod first, old one deleted once the new one is available);
//! - [`compute_status`]: the status counters.
//!
//! Pods are grouped by target node ([`NodePods`]); callers leave out pods that are both terminal and
//! being deleted, as upstream does.

use crate::placement::{CONTROLLER_REVISION_HASH_LABEL, by_creation_and_phase, node_should_run};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use rkube_controller_common::pod::{is_pod_available, is_pod_ready, phase};
use std::collections::{BTreeMap, HashMap};

/// A DaemonSet's pods by target node name.
pub type NodePods = BTreeMap<String, Vec<Pod>>;

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn node_name(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or("")
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn is_deleting(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// Upstream's `IsPodUpdated`: the pod carries the current revision's hash. (Upstream also
/// compares `pod-template-generation`, but formats a pointer there, so that branch never matches.)
pub fn is_pod_updated(pod: &Pod, hash: &str) -> bool {
    !hash.is_empty()
        && pod.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL)).map(String::as_str)
            == Some(hash)
}

/// An int-or-percent scaled against `total`, percents rounded up (upstream's
/// `GetScaledValueFromIntOrPercent(v, total, true)`).
pub fn scaled_value(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value for percent {s:?}"))?;
            let v = (pct * i64::from(total) + 99).div_euclid(100);
            i32::try_from(v).map_err(|_| format!("invalid value {s:?}: out of range"))
        }
    }
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// Upstream's `SurgeCount`: 0 unless a RollingUpdate sets maxSurge.
pub fn surge_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, String> {
    match rolling(ds).and_then(|r| r.max_surge.as_ref()) {
        Some(v) => scaled_value(v, number_to_schedule),
        None => Ok(0),
    }
}

/// Upstream's `UnavailableCount`: 0 unless a RollingUpdate sets maxUnavailable.
pub fn unavailable_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, String> {
    match rolling(ds).and_then(|r| r.max_unavailable.as_ref()) {
        Some(v) => scaled_value(v, number_to_schedule),
        None => Ok(0),
    }
}

/// Upstream's `AllowsSurge`: more than one pod per node is allowed during an update.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|s| s > 0)
}

/// What [`manage_plan`] decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ManagePlan {
    /// Nodes that need a daemon pod.
    pub create_on: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Failed pods being deleted (pod, node), reported as `FailedDaemonPod`.
    pub failed: Vec<(String, String)>,
    /// Succeeded pods being deleted (pod, node), reported as `SucceededDaemonPod`.
    pub succeeded: Vec<(String, String)>,
}

/// Upstream's `manage`: for every node, `podsShouldBeOnNode`; then pods whose node is gone.
///
/// `may_delete_failed(node)` is asked before deleting a failed pod on a node (upstream's per-node
/// backoff); when it refuses, the failed pod is left alone for now.
///
/// Unlike upstream, pods already bound to a node that no longer exists are deleted too (upstream
/// leaves those to the PodGC controller, which rkube does not have).
pub fn manage_plan(
    ds: &DaemonSet,
    nodes: &[&Node],
    node_pods: &NodePods,
    hash: &str,
    now: Timestamp,
    may_delete_failed: &mut dyn FnMut(&str) -> bool,
) -> ManagePlan {
    let mut plan = ManagePlan::default();
    let surge = allows_surge(ds);
    for node in nodes {
        let nname = node_name(node);
        let e = node_should_run(node, ds);
        let pods = node_pods.get(nname);
        match pods {
            None if e.should_run => plan.create_on.push(nname.to_string()),
            Some(pods) if e.should_continue_running => {
                let mut running: Vec<&Pod> = Vec::new();
                for p in pods.iter().filter(|p| !is_deleting(p)) {
                    match phase(p) {
                        "Failed" => {
                            if may_delete_failed(nname) {
                                plan.failed.push((name(p), nname.to_string()));
                                plan.delete.push(name(p));
                            }
                        }
                        "Succeeded" => {
                            plan.succeeded.push((name(p), nname.to_string()));
                            plan.delete.push(name(p));
                        }
                        _ => running.push(p),
                    }
                }
                running.sort_by(|a, b| by_creation_and_phase(a, b));
                if !surge {
                    // One pod per node: keep the oldest.
                    plan.delete.extend(running.iter().skip(1).map(|p| name(p)));
                    continue;
                }
                if running.is_empty() {
                    if e.should_run {
                        plan.create_on.push(nname.to_string());
                    }
                    continue;
                }
                if running.len() == 1 {
                    continue;
                }
                // Surging: keep the oldest new pod and the oldest old pod, the latter only while it is
                // ready and the new one is not yet available.
                let (mut oldest_new, mut oldest_old): (Option<&Pod>, Option<&Pod>) = (None, None);
                for p in &running {
                    let slot = if is_pod_updated(p, hash) { &mut oldest_new } else { &mut oldest_old };
                    if slot.is_none() {
                        *slot = Some(p);
                    } else {
                        plan.delete.push(name(p));
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                    && (!is_pod_ready(old) || is_pod_available(new, min_ready_seconds(ds), now))
                {
                    plan.delete.push(name(old));
                }
            }
            Some(pods) if !e.should_continue_running => {
                plan.delete.extend(pods.iter().filter(|p| !is_deleting(p)).map(name));
            }
            _ => {}
        }
    }
    // Pods whose node is gone.
    let known: std::collections::HashSet<&str> = nodes.iter().map(|n| node_name(n)).collect();
    for (nname, pods) in node_pods {
        if !known.contains(nname.as_str()) {
            plan.delete.extend(pods.iter().filter(|p| !is_deleting(p)).map(name));
        }
    }
    plan
}

/// Upstream's `findUpdatedPodsOnNode`: the (new, old) non-deleted pods of a node, or `None` when
/// there is more than one of either (the manage loop prunes those first).
pub fn updated_pods_on_node<'a>(pods: &'a [Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().filter(|p| !is_deleting(p)) {
        let slot = if is_pod_updated(p, hash) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

/// What [`rolling_update_plan`] decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpdatePlan {
    /// Old pods to delete now.
    pub delete: Vec<String>,
    /// Nodes that get a new pod now (surge).
    pub create_on: Vec<String>,
}

/// Upstream's `rollingUpdate` (with `updatedDesiredNodeCounts`).
pub fn rolling_update_plan(
    ds: &DaemonSet,
    nodes: &[&Node],
    node_pods: &NodePods,
    hash: &str,
    now: Timestamp,
) -> Result<UpdatePlan, String> {
    let mut node_pods = node_pods.clone();
    let by_name: HashMap<&str, &Node> = nodes.iter().map(|n| (node_name(n), *n)).collect();
    let mut desired = 0i32;
    for node in nodes {
        if node_should_run(node, ds).should_run {
            desired += 1;
            node_pods.entry(node_name(node).to_string()).or_default();
        }
    }
    let mut max_unavailable = unavailable_count(ds, desired)?;
    let max_surge = surge_count(ds, desired)?;
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let mrs = min_ready_seconds(ds);
    let available = |p: &Pod| is_pod_available(p, mrs, now);
    let should_run = |n: &str| by_name.get(n).is_some_and(|node| node_should_run(node, ds).should_run);

    if max_surge == 0 {
        let mut num_unavailable = 0;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in node_pods.values() {
            match updated_pods_on_node(pods, hash) {
                None => num_unavailable += 1,
                Some((None, None)) | Some((Some(_), Some(_))) => num_unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        num_unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replacements.push(name(old));
                        num_unavailable += 1;
                    } else if num_unavailable < max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let remaining = (max_unavailable - num_unavailable).max(0) as usize;
        replacements.extend(candidates.into_iter().take(remaining));
        return Ok(UpdatePlan { delete: replacements, create_on: Vec::new() });
    }

    let mut delete = Vec::new();
    let mut should_not_run = Vec::new();
    let mut candidates = Vec::new();
    let mut allowed = Vec::new();
    let mut num_surge = 0;
    let mut num_available = 0;
    for (nname, pods) in &node_pods {
        let Some((new, old)) = updated_pods_on_node(pods, hash) else {
            num_surge += 1;
            continue;
        };
        match (old, new) {
            (Some(o), _) if available(o) => num_available += 1,
            (None, Some(n)) if available(n) => num_available += 1,
            _ => {}
        }
        match (old, new) {
            (None, _) => {}
            (Some(o), None) => {
                if !available(o) {
                    if !should_run(nname) {
                        delete.push(name(o));
                        continue;
                    }
                    allowed.push(nname.clone());
                } else {
                    if !should_run(nname) {
                        should_not_run.push(name(o));
                        continue;
                    }
                    if num_surge >= max_surge {
                        continue;
                    }
                    candidates.push(nname.clone());
                }
            }
            (Some(o), Some(n)) => {
                if !available(n) {
                    num_surge += 1;
                    continue;
                }
                delete.push(name(o));
            }
        }
    }
    // Keep full availability when placement moves: old pods on nodes that no longer qualify go only
    // as other nodes' pods become available.
    let deletable = (num_available - desired).max(0) as usize;
    delete.extend(should_not_run.into_iter().take(deletable));
    let remaining = (max_surge - num_surge).max(0) as usize;
    allowed.extend(candidates.into_iter().take(remaining));
    Ok(UpdatePlan { delete, create_on: allowed })
}

/// The status counters of upstream's `updateDaemonSetStatus`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub desired_number_scheduled: i32,
    pub current_number_scheduled: i32,
    pub number_misscheduled: i32,
    pub number_ready: i32,
    pub updated_number_scheduled: i32,
    pub number_available: i32,
    pub number_unavailable: i32,
}

/// Counts nodes: desired (eligible), current (eligible with a pod), misscheduled (a pod on a node
/// that should not run one), and — judging each eligible node by its oldest pod — ready,
/// available and updated.
pub fn compute_status(ds: &DaemonSet, nodes: &[&Node], node_pods: &NodePods, hash: &str, now: Timestamp) -> Counts {
    let mut c = Counts::default();
    let mrs = min_ready_seconds(ds);
    for node in nodes {
        let pods = node_pods.get(node_name(node)).filter(|p| !p.is_empty());
        if !node_should_run(node, ds).should_run {
            if pods.is_some() {
                c.number_misscheduled += 1;
            }
            continue;
        }
        c.desired_number_scheduled += 1;
        let Some(pods) = pods else { continue };
        c.current_number_scheduled += 1;
        let Some(oldest) = pods.iter().min_by(|a, b| by_creation_and_phase(a, b)) else { continue };
        if is_pod_ready(oldest) {
            c.number_ready += 1;
            if is_pod_available(oldest, mrs, now) {
                c.number_available += 1;
            }
        }
        if is_pod_updated(oldest, hash) {
            c.updated_number_scheduled += 1;
        }
    }
    c.number_unavailable = c.desired_number_scheduled - c.number_available;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, PodCondition, PodSpec, PodStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::SignedDuration;
    use serde_json::json;

    fn ds(strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "updateStrategy": strategy,
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": []}}
            }
        }))
        .unwrap_or_default()
    }

    fn node(name: &str, taint: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec {
                taints: taint.map(|e| vec![Taint { key: "k".into(), effect: e.into(), ..Default::default() }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A pod on `node` with revision `hash`, created `age` seconds ago, ready or not.
    fn pod(name: &str, node: &str, hash: &str, age: i64, ready: bool) -> Pod {
        let now = Timestamp::now();
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string())].into()),
                creation_timestamp: Some(Time(now - SignedDuration::from_secs(age))),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some(node.into()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(now - SignedDuration::from_secs(age))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn group(pods: Vec<Pod>) -> NodePods {
        let mut m = NodePods::new();
        for p in pods {
            let n = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            m.entry(n).or_default().push(p);
        }
        m
    }

    fn manage(d: &DaemonSet, nodes: &[Node], pods: Vec<Pod>) -> ManagePlan {
        let refs: Vec<&Node> = nodes.iter().collect();
        manage_plan(d, &refs, &group(pods), "new", Timestamp::now(), &mut |_| true)
    }

    #[test]
    fn scaled_values_round_percentages_up() {
        assert_eq!(scaled_value(&IntOrString::Int(2), 10), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("10%".into()), 15), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("100%".into()), 3), Ok(3));
        assert!(scaled_value(&IntOrString::String("ten".into()), 3).is_err());
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}));
        assert!(allows_surge(&d));
        assert!(!allows_surge(&ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}))));
        assert!(!allows_surge(&ds(json!({"type": "OnDelete", "rollingUpdate": {"maxSurge": 1}}))));
    }

    #[test]
    fn manage_creates_on_eligible_nodes_and_removes_elsewhere() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let nodes = [node("a", None), node("b", None), node("c", Some("NoExecute")), node("e", Some("NoSchedule"))];
        let pods = vec![
            pod("pa", "a", "new", 10, true),
            pod("pc", "c", "new", 10, true),
            pod("pe", "e", "new", 10, true),
            pod("gone", "x", "new", 10, true),
        ];
        let plan = manage(&d, &nodes, pods);
        assert_eq!(plan.create_on, ["b"]);
        // NoExecute evicts; NoSchedule keeps the running pod; the pod of a vanished node goes.
        assert_eq!(plan.delete, ["pc", "gone"]);
    }

    #[test]
    fn manage_keeps_the_oldest_pod_and_replaces_failed_ones() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let nodes = [node("a", None), node("b", None)];
        let mut failed = pod("failed", "b", "new", 10, false);
        if let Some(s) = failed.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        let plan =
            manage(&d, &nodes, vec![pod("young", "a", "new", 1, true), pod("old", "a", "new", 50, true), failed]);
        assert_eq!(plan.delete, ["young", "failed"]);
        assert_eq!(plan.failed, [("failed".to_string(), "b".to_string())]);
        // The failed pod keeps the node occupied until it is gone: nothing is created yet.
        assert!(plan.create_on.is_empty());
        // In backoff the failed pod is left alone.
        let mut failed = pod("failed", "b", "new", 10, false);
        if let Some(s) = failed.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        let refs: Vec<&Node> = nodes.iter().collect();
        let plan = manage_plan(&d, &refs, &group(vec![failed]), "new", Timestamp::now(), &mut |_| false);
        assert!(plan.delete.is_empty() && plan.failed.is_empty());
    }

    #[test]
    fn surge_keeps_old_pod_until_new_is_available() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}));
        let nodes = [node("a", None)];
        let plan = manage(&d, &nodes, vec![pod("old", "a", "old", 50, true), pod("new", "a", "new", 1, false)]);
        assert!(plan.delete.is_empty());
        let plan = manage(&d, &nodes, vec![pod("old", "a", "old", 50, true), pod("new", "a", "new", 1, true)]);
        assert_eq!(plan.delete, ["old"]);
        // An old pod that is not ready goes at once.
        let plan = manage(&d, &nodes, vec![pod("old", "a", "old", 50, false), pod("new", "a", "new", 1, false)]);
        assert_eq!(plan.delete, ["old"]);
        // Only terminating pods: surge creates a new one at once.
        let mut dying = pod("old", "a", "old", 50, true);
        dying.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert_eq!(manage(&d, &nodes, vec![dying.clone()]).create_on, ["a"]);
        // Without surge, a terminating pod still holds the node.
        let d1 = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        assert!(manage(&d1, &nodes, vec![dying]).create_on.is_empty());
    }

    #[test]
    fn max_unavailable_limits_deletions() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let nodes = [node("a", None), node("b", None), node("c", None)];
        let refs: Vec<&Node> = nodes.iter().collect();
        let now = Timestamp::now();
        let all_old =
            group(vec![pod("pa", "a", "old", 9, true), pod("pb", "b", "old", 9, true), pod("pc", "c", "old", 9, true)]);
        let plan = rolling_update_plan(&d, &refs, &all_old, "new", now).unwrap_or_default();
        assert_eq!(plan.delete.len(), 1);
        assert!(plan.create_on.is_empty());
        // A node whose new pod is not yet available uses up the budget.
        let mid = group(vec![
            pod("pa", "a", "new", 1, false),
            pod("pb", "b", "old", 9, true),
            pod("pc", "c", "old", 9, true),
        ]);
        assert!(rolling_update_plan(&d, &refs, &mid, "new", now).unwrap_or_default().delete.is_empty());
        // An unavailable old pod is always replaced.
        let broken = group(vec![pod("pa", "a", "old", 9, false), pod("pb", "b", "old", 9, true)]);
        let plan = rolling_update_plan(&d, &refs, &broken, "new", now).unwrap_or_default();
        // Node c has no pod (unavailable), pa is unavailable: no budget left for pb.
        assert_eq!(plan.delete, ["pa"]);
        // maxUnavailable 2 of 3.
        let d2 = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}));
        assert_eq!(rolling_update_plan(&d2, &refs, &all_old, "new", now).unwrap_or_default().delete.len(), 2);
    }

    #[test]
    fn max_surge_creates_before_deleting() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}));
        let nodes = [node("a", None), node("b", None)];
        let refs: Vec<&Node> = nodes.iter().collect();
        let now = Timestamp::now();
        let all_old = group(vec![pod("pa", "a", "old", 9, true), pod("pb", "b", "old", 9, true)]);
        let plan = rolling_update_plan(&d, &refs, &all_old, "new", now).unwrap_or_default();
        assert_eq!(plan.create_on.len(), 1);
        assert!(plan.delete.is_empty());
        // A surged node whose new pod is available: delete its old pod, surge onto the next node.
        let surged =
            group(vec![pod("pa", "a", "old", 9, true), pod("na", "a", "new", 1, true), pod("pb", "b", "old", 9, true)]);
        let plan = rolling_update_plan(&d, &refs, &surged, "new", now).unwrap_or_default();
        assert_eq!(plan.delete, ["pa"]);
        assert_eq!(plan.create_on, ["b"]);
        // Still waiting for the new pod: no more surge.
        let waiting = group(vec![
            pod("pa", "a", "old", 9, true),
            pod("na", "a", "new", 1, false),
            pod("pb", "b", "old", 9, true),
        ]);
        assert_eq!(rolling_update_plan(&d, &refs, &waiting, "new", now).unwrap_or_default(), UpdatePlan::default());
    }

    #[test]
    fn status_counts_oldest_pod_per_node() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let nodes = [node("a", None), node("b", None), node("c", None), node("x", Some("NoSchedule"))];
        let refs: Vec<&Node> = nodes.iter().collect();
        let pods = group(vec![
            pod("pa", "a", "new", 9, true),
            pod("pb-old", "b", "old", 20, true),
            pod("pb-new", "b", "new", 1, false),
            pod("px", "x", "new", 9, true),
        ]);
        let c = compute_status(&d, &refs, &pods, "new", Timestamp::now());
        assert_eq!(
            c,
            Counts {
                desired_number_scheduled: 3,
                current_number_scheduled: 2,
                number_misscheduled: 1,
                number_ready: 2,
                updated_number_scheduled: 1,
                number_available: 2,
                number_unavailable: 1,
            }
        );
    }
}
