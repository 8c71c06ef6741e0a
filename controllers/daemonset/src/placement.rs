//! Where daemon pods belong (pure functions, no I/O), as upstream's `NodeShouldRunDaemonPod` and
//! the daemon utilities:
//!
//! - the tolerations every daemon pod gets (not-ready / unreachable NoExecute without
//!   tolerationSeconds, disk- / memory- / pid-pressure and unschedulable NoSchedule,
//!   network-unavailable NoSchedule for hostNetwork pods);
//! - whether a node should run the daemon pod, and whether an existing one may keep running;
//! - the pod template stamped with `controller-revision-hash` and pinned to one node by a required
//!   node affinity on `metadata.name` (the scheduler binds it);
//! - the target node of a daemon pod, and upstream's pod order (scheduled first, then oldest).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    PodTemplateSpec, Toleration,
};
use rkube_scheduler::selectors::{Labels, first_untolerated, pod_matches_node};
use std::cmp::Ordering;

/// The label carrying the hash of the ControllerRevision a pod was made from.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The deprecated label carrying the DaemonSet's template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The deprecated annotation the apiserver keeps the template generation in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some(effect.to_string()),
        value: None,
        toleration_seconds: None,
    }
}

/// Upstream's `AddOrUpdateTolerationInPodSpec`: a toleration with the same key, operator, value
/// and effect is replaced (e.g. one with tolerationSeconds), otherwise the toleration is appended.
pub fn add_or_update_toleration(spec: &mut PodSpec, toleration: Toleration) {
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.operator == toleration.operator
            && t.value == toleration.value
            && t.effect == toleration.effect
    };
    let mut updated = false;
    for t in list.iter_mut() {
        if same(t) {
            *t = toleration.clone();
            updated = true;
        }
    }
    if !updated {
        list.push(toleration);
    }
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_or_update_toleration(spec, exists(NOT_READY, "NoExecute"));
    add_or_update_toleration(spec, exists(UNREACHABLE, "NoExecute"));
    add_or_update_toleration(spec, exists(DISK_PRESSURE, "NoSchedule"));
    add_or_update_toleration(spec, exists(MEMORY_PRESSURE, "NoSchedule"));
    add_or_update_toleration(spec, exists(PID_PRESSURE, "NoSchedule"));
    add_or_update_toleration(spec, exists(UNSCHEDULABLE, "NoSchedule"));
    if spec.host_network == Some(true) {
        add_or_update_toleration(spec, exists(NETWORK_UNAVAILABLE, "NoSchedule"));
    }
}

/// The DaemonSet's template (a default one when the spec is missing).
pub fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

/// Upstream's `NewPod`: the template's pod with the daemon tolerations, on `node_name`.
pub fn new_pod(ds: &DaemonSet, node_name: &str) -> Pod {
    let t = template(ds);
    let mut spec = t.spec.unwrap_or_default();
    spec.node_name = Some(node_name.to_string());
    add_daemon_tolerations(&mut spec);
    let mut metadata = t.metadata.unwrap_or_default();
    metadata.namespace = ds.metadata.namespace.clone();
    Pod { metadata, spec: Some(spec), status: None }
}

/// Whether the DaemonSet wants a pod on the node, and whether a pod already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    /// A daemon pod should run here (upstream's `shouldRun`).
    pub should_run: bool,
    /// An existing daemon pod may keep running here (`shouldContinueRunning`).
    pub should_continue_running: bool,
}

/// Upstream's `NodeShouldRunDaemonPod`: node name, required node affinity (nodeSelector included)
/// and taints. A node whose untolerated taints are all NoSchedule keeps its existing pod.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> Eligibility {
    let no = Eligibility { should_run: false, should_continue_running: false };
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    let pod = new_pod(ds, node_name);
    let template_node = template(ds).spec.and_then(|s| s.node_name).unwrap_or_default();
    if !template_node.is_empty() && template_node != node_name {
        return no;
    }
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if !pod_matches_node(&pod, node_name, labels) {
        return no;
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    if first_untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]).is_some() {
        let keeps = first_untolerated(taints, tolerations, &["NoExecute"]).is_none();
        return Eligibility { should_run: false, should_continue_running: keeps };
    }
    Eligibility { should_run: true, should_continue_running: true }
}

/// The template generation from the deprecated annotation, if present and numeric.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata.annotations.as_ref()?.get(TEMPLATE_GENERATION_ANNOTATION)?.parse().ok()
}

/// Upstream's `CreatePodTemplate`: the template with the daemon tolerations and the
/// `controller-revision-hash` (and, when known, `pod-template-generation`) labels.
pub fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = template(ds);
    let spec = t.spec.get_or_insert_with(Default::default);
    add_daemon_tolerations(spec);
    let meta = t.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(Default::default);
    if let Some(generation) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.to_string(), generation.to_string());
    }
    if !hash.is_empty() {
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string());
    }
    t
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the
/// single term `matchFields: metadata.name In [node]` (the node was already checked against the
/// original terms); preferred terms and pod (anti-)affinity are kept.
pub fn pin_to_node(affinity: Option<Affinity>, node_name: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_string(),
                operator: "In".to_string(),
                values: Some(vec![node_name.to_string()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// Upstream's `GetTargetNodeName`: `spec.nodeName`, or for a pod not yet bound the node named by
/// its `matchFields: metadata.name In [node]` requirement.
pub fn target_node_name(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    for term in &required.node_selector_terms {
        for req in term.match_fields.iter().flatten() {
            if req.key == "metadata.name" && req.operator == "In" {
                return match req.values.as_deref() {
                    Some([one]) => Some(one.clone()),
                    _ => None,
                };
            }
        }
    }
    None
}

fn is_scheduled(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty())
}

/// Upstream's `podByCreationTimestampAndPhase`: bound pods first, then oldest, then by name.
pub fn by_creation_and_phase(a: &Pod, b: &Pod) -> Ordering {
    is_scheduled(b)
        .cmp(&is_scheduled(a))
        .then_with(|| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ta.cmp(&tb)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde_json::json;

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec}
            }
        }))
        .unwrap_or_default()
    }

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), value: None, time_added: None }
    }

    fn keys(spec: &PodSpec) -> Vec<(String, String)> {
        spec.tolerations
            .iter()
            .flatten()
            .map(|t| (t.key.clone().unwrap_or_default(), t.effect.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn daemon_tolerations_are_added_and_replace_seconds() {
        let mut spec = PodSpec {
            tolerations: Some(vec![Toleration {
                key: Some(NOT_READY.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            }]),
            ..Default::default()
        };
        add_daemon_tolerations(&mut spec);
        let ts = spec.tolerations.clone().unwrap_or_default();
        assert_eq!(ts.len(), 6);
        // The user's not-ready toleration lost its tolerationSeconds (upstream replaces it).
        assert_eq!(ts[0].key.as_deref(), Some(NOT_READY));
        assert_eq!(ts[0].toleration_seconds, None);
        assert!(!keys(&spec).iter().any(|(k, _)| k == NETWORK_UNAVAILABLE));
        // Idempotent.
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(6));
        // hostNetwork pods also tolerate network-unavailable.
        let mut host = PodSpec { host_network: Some(true), ..Default::default() };
        add_daemon_tolerations(&mut host);
        assert!(keys(&host).contains(&(NETWORK_UNAVAILABLE.to_string(), "NoSchedule".to_string())));
        assert!(keys(&host).contains(&(UNREACHABLE.to_string(), "NoExecute".to_string())));
    }

    #[test]
    fn node_selector_and_affinity_decide_eligibility() {
        let d = ds(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        let yes = node_should_run(&node("a", &[("disk", "ssd")], vec![]), &d);
        assert_eq!(yes, Eligibility { should_run: true, should_continue_running: true });
        let no = node_should_run(&node("b", &[("disk", "hdd")], vec![]), &d);
        assert_eq!(no, Eligibility { should_run: false, should_continue_running: false });
        let d = ds(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]
            }}}}),
        );
        assert!(node_should_run(&node("a", &[("zone", "z1")], vec![]), &d).should_run);
        assert!(!node_should_run(&node("a", &[("zone", "z2")], vec![]), &d).should_run);
        // A template naming another node matches nothing else.
        let d = ds(json!({"containers": [], "nodeName": "a"}));
        assert!(node_should_run(&node("a", &[], vec![]), &d).should_run);
        assert!(!node_should_run(&node("b", &[], vec![]), &d).should_continue_running);
    }

    #[test]
    fn taints_stop_new_pods_and_noexecute_evicts() {
        let d = ds(json!({"containers": []}));
        let e = node_should_run(&node("a", &[], vec![taint("dedicated", "NoSchedule")]), &d);
        assert_eq!(e, Eligibility { should_run: false, should_continue_running: true });
        let e = node_should_run(&node("a", &[], vec![taint("dedicated", "NoExecute")]), &d);
        assert_eq!(e, Eligibility { should_run: false, should_continue_running: false });
        // PreferNoSchedule is ignored.
        assert!(node_should_run(&node("a", &[], vec![taint("x", "PreferNoSchedule")]), &d).should_run);
        // The daemon tolerations cover the node-condition taints.
        let tainted = node("a", &[], vec![taint(NOT_READY, "NoExecute"), taint(UNSCHEDULABLE, "NoSchedule")]);
        assert!(node_should_run(&tainted, &d).should_run);
        // network-unavailable only for hostNetwork pods.
        let net = node("a", &[], vec![taint(NETWORK_UNAVAILABLE, "NoSchedule")]);
        assert!(!node_should_run(&net, &d).should_run);
        assert!(node_should_run(&net, &ds(json!({"containers": [], "hostNetwork": true}))).should_run);
        // A matching toleration in the template lets the pod in.
        let d = ds(json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}));
        assert!(node_should_run(&node("a", &[], vec![taint("dedicated", "NoExecute")]), &d).should_run);
    }

    #[test]
    fn pinning_replaces_required_terms_and_is_read_back() {
        let aff: Affinity = serde_json::from_value(json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}
            ]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}
            ]
        }}))
        .unwrap_or_default();
        let pinned = serde_json::to_value(pin_to_node(Some(aff), "n1")).unwrap_or_default();
        assert_eq!(
            pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]})
        );
        assert_eq!(pinned["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 1);
        let mut pod = Pod {
            spec: Some(PodSpec { affinity: Some(pin_to_node(None, "n2")), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(target_node_name(&pod).as_deref(), Some("n2"));
        if let Some(s) = pod.spec.as_mut() {
            s.node_name = Some("bound".into());
        }
        assert_eq!(target_node_name(&pod).as_deref(), Some("bound"));
        assert_eq!(target_node_name(&Pod::default()), None);
    }

    #[test]
    fn pod_template_carries_hash_and_generation() {
        let mut d = ds(json!({"containers": []}));
        let t = pod_template(&d, "abc");
        let labels = t.metadata.and_then(|m| m.labels).unwrap_or_default();
        assert_eq!(labels.get(CONTROLLER_REVISION_HASH_LABEL).map(String::as_str), Some("abc"));
        assert_eq!(labels.get("app").map(String::as_str), Some("d"));
        assert!(!labels.contains_key(TEMPLATE_GENERATION_LABEL));
        assert_eq!(t.spec.and_then(|s| s.tolerations).map(|t| t.len()), Some(6));
        d.metadata.annotations = Some([(TEMPLATE_GENERATION_ANNOTATION.to_string(), "3".to_string())].into());
        let labels = pod_template(&d, "abc").metadata.and_then(|m| m.labels).unwrap_or_default();
        assert_eq!(labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str), Some("3"));
    }

    #[test]
    fn order_puts_bound_then_oldest_first() {
        let now = k8s_openapi::jiff::Timestamp::now();
        let mk = |name: &str, secs: i64, bound: bool| Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(now + k8s_openapi::jiff::SignedDuration::from_secs(secs))),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: bound.then(|| "n".to_string()), ..Default::default() }),
            status: None,
        };
        let mut pods = [mk("new", 10, true), mk("unbound-old", 0, false), mk("old", 5, true), mk("b", 5, true)];
        pods.sort_by(by_creation_and_phase);
        let names: Vec<_> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        assert_eq!(names, ["b", "old", "new", "unbound-old"]);
    }
}
