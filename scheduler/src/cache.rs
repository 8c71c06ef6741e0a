//! The scheduler's view of the cluster: nodes with per-node aggregates (requested resources,
//! non-zero requests, used host ports, the pods on them), bound and *assumed* pods (a pod
//! counts on its node as soon as its binding is sent, as upstream's assume cache), and
//! namespace labels (for affinity `namespaceSelector`). Pure data; the informers feed it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint, Toleration};

use crate::resources::{Resources, node_allocatable, pod_requests};
use crate::selectors::{Labels, Selector};

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
}

/// One host port a pod asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream's `HostPortInfo.CheckConflict`: 0.0.0.0 conflicts with every IP.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A compiled pod (anti-)affinity term.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    pub selector: Selector,
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<Selector>,
    pub topology_key: String,
}

impl AffinityTerm {
    fn compile(owner_ns: &str, t: &PodAffinityTerm) -> Self {
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        let namespace_selector = t.namespace_selector.as_ref().map(|s| Selector::from_label_selector(Some(s)));
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(owner_ns.to_string());
        }
        // matchLabelKeys / mismatchLabelKeys are merged into labelSelector by the apiserver
        // (beta in 1.33); the scheduler uses the term's labelSelector as stored.
        let selector = Selector::from_label_selector(t.label_selector.as_ref());
        AffinityTerm { selector, namespaces, namespace_selector, topology_key: t.topology_key.clone() }
    }

    /// Whether `pod` (in a namespace labelled `ns_labels`) is selected by this term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| s.matches(ns_labels.unwrap_or(&Labels::new())));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

#[derive(Clone, Debug, Default)]
pub struct PodAffinityInfo {
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i64, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i64, AffinityTerm)>,
}

impl PodAffinityInfo {
    fn from_pod(pod: &Pod) -> Option<Self> {
        let aff = pod.spec.as_ref()?.affinity.as_ref()?;
        if aff.pod_affinity.is_none() && aff.pod_anti_affinity.is_none() {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let mut info = PodAffinityInfo::default();
        if let Some(pa) = &aff.pod_affinity {
            for t in pa.required_during_scheduling_ignored_during_execution.iter().flatten() {
                info.required_affinity.push(AffinityTerm::compile(ns, t));
            }
            for w in pa.preferred_during_scheduling_ignored_during_execution.iter().flatten() {
                info.preferred_affinity.push((i64::from(w.weight), AffinityTerm::compile(ns, &w.pod_affinity_term)));
            }
        }
        if let Some(pa) = &aff.pod_anti_affinity {
            for t in pa.required_during_scheduling_ignored_during_execution.iter().flatten() {
                info.required_anti_affinity.push(AffinityTerm::compile(ns, t));
            }
            for w in pa.preferred_during_scheduling_ignored_during_execution.iter().flatten() {
                info.preferred_anti_affinity
                    .push((i64::from(w.weight), AffinityTerm::compile(ns, &w.pod_affinity_term)));
            }
        }
        Some(info)
    }
}

/// What the scheduler keeps about a pod, computed once per pod version.
#[derive(Debug)]
pub struct PodInfo {
    pub key: String,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub node_name: String,
    pub priority: i32,
    pub requests: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub ports: Vec<HostPort>,
    pub terminating: bool,
    pub affinity: Option<PodAffinityInfo>,
    pub pod: Arc<Pod>,
}

impl PodInfo {
    pub fn new(pod: Pod) -> Self {
        let requests = pod_requests(&pod, false);
        let nz = pod_requests(&pod, true);
        let mut ports = Vec::new();
        if let Some(spec) = &pod.spec {
            for c in &spec.containers {
                for p in c.ports.iter().flatten() {
                    if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                        ports.push(HostPort {
                            ip: p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into()),
                            protocol: p.protocol.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "TCP".into()),
                            port: hp,
                        });
                    }
                }
            }
        }
        PodInfo {
            key: pod_key(&pod),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            requests,
            non_zero_cpu: nz.milli_cpu,
            non_zero_memory: nz.memory,
            ports,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            affinity: PodAffinityInfo::from_pod(&pod),
            pod: Arc::new(pod),
        }
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[])
    }

    pub fn has_required_anti_affinity(&self) -> bool {
        self.affinity.as_ref().is_some_and(|a| !a.required_anti_affinity.is_empty())
    }
}

/// Per-node aggregates. `node` is `None` for a "ghost": a deleted node whose pods are still known.
#[derive(Debug)]
pub struct NodeInfo {
    pub name: String,
    pub node: Option<Arc<Node>>,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub requested: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: Vec<HostPort>,
    pub pods: HashMap<String, Arc<PodInfo>>,
}

impl NodeInfo {
    fn empty(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            node: None,
            labels: Labels::new(),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resources::default(),
            allowed_pods: 0,
            requested: Resources::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            used_ports: Vec::new(),
            pods: HashMap::new(),
        }
    }

    fn set_node(&mut self, node: Node) {
        let (alloc, pods) = node_allocatable(&node);
        self.allocatable = alloc;
        self.allowed_pods = pods;
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        self.node = Some(Arc::new(node));
    }

    fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_cpu += p.non_zero_cpu;
        self.non_zero_memory += p.non_zero_memory;
        self.used_ports.extend(p.ports.iter().cloned());
        self.pods.insert(p.key.clone(), p);
    }

    fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let p = self.pods.remove(key)?;
        self.requested.sub(&p.requests);
        self.non_zero_cpu -= p.non_zero_cpu;
        self.non_zero_memory -= p.non_zero_memory;
        for hp in &p.ports {
            if let Some(i) = self.used_ports.iter().position(|x| x == hp) {
                self.used_ports.swap_remove(i);
            }
        }
        Some(p)
    }
}

/// What a pod event meant for the cache (drives the queue's cluster-event moves).
#[derive(Debug, PartialEq, Eq)]
pub enum PodChange {
    /// Nothing that frees or changes placement constraints.
    None,
    /// An assumed pod was confirmed by its bound version.
    Confirmed,
    /// A bound pod appeared, went away or changed labels/node.
    Changed,
}

#[derive(Default, Debug)]
pub struct Cache {
    pub nodes: HashMap<String, NodeInfo>,
    /// Names of real (non-ghost) nodes, sorted: the order nodes are evaluated in.
    pub node_order: Vec<String>,
    /// Bound and assumed pods by key.
    pub pods: HashMap<String, Arc<PodInfo>>,
    pub assumed: HashSet<String>,
    /// Keys of bound/assumed pods with any pod (anti-)affinity.
    pub with_affinity: HashSet<String>,
    pub namespaces: HashMap<String, Labels>,
}

impl Cache {
    fn rebuild_order(&mut self) {
        let mut names: Vec<String> = self.nodes.values().filter(|n| n.node.is_some()).map(|n| n.name.clone()).collect();
        names.sort();
        self.node_order = names;
    }

    /// Add or update a node; returns true when something the filters look at changed
    /// (allocatable, labels, taints, unschedulable) or the node is new.
    pub fn upsert_node(&mut self, node: Node) -> bool {
        let Some(name) = node.metadata.name.clone() else { return false };
        let info = self.nodes.entry(name.clone()).or_insert_with(|| NodeInfo::empty(&name));
        let was_real = info.node.is_some();
        let before =
            (info.allocatable.clone(), info.allowed_pods, info.labels.clone(), info.taints.clone(), info.unschedulable);
        info.set_node(node);
        let after =
            (info.allocatable.clone(), info.allowed_pods, info.labels.clone(), info.taints.clone(), info.unschedulable);
        if !was_real {
            self.rebuild_order();
            return true;
        }
        before != after
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.node = None;
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
        self.rebuild_order();
    }

    /// Drop nodes not in `keep` (after a re-list).
    pub fn retain_nodes(&mut self, keep: &HashSet<String>) {
        let gone: Vec<String> = self.node_order.iter().filter(|n| !keep.contains(*n)).cloned().collect();
        for n in gone {
            self.remove_node(&n);
        }
    }

    fn insert_pod(&mut self, p: Arc<PodInfo>) {
        let node = self.nodes.entry(p.node_name.clone()).or_insert_with(|| NodeInfo::empty(&p.node_name));
        node.add_pod(p.clone());
        if p.affinity.is_some() {
            self.with_affinity.insert(p.key.clone());
        } else {
            self.with_affinity.remove(&p.key);
        }
        self.pods.insert(p.key.clone(), p);
    }

    /// Remove a bound/assumed pod; returns it when it was known.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let p = self.pods.remove(key)?;
        self.assumed.remove(key);
        self.with_affinity.remove(key);
        if let Some(node) = self.nodes.get_mut(&p.node_name) {
            node.remove_pod(key);
            if node.node.is_none() && node.pods.is_empty() {
                self.nodes.remove(&p.node_name);
            }
        }
        Some(p)
    }

    /// Count `pod` on `node` now, before its binding is confirmed.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) -> Arc<PodInfo> {
        let mut p = PodInfo::new((*pod.pod).clone());
        p.node_name = node.to_string();
        let p = Arc::new(p);
        self.remove_pod(&pod.key);
        self.insert_pod(p.clone());
        self.assumed.insert(pod.key.clone());
        p
    }

    /// Undo an assumption (binding failed). Only removes the pod if it is still assumed.
    pub fn forget(&mut self, key: &str, uid: &str) {
        if self.assumed.contains(key) && self.pods.get(key).is_some_and(|p| p.uid == uid) {
            self.remove_pod(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// A bound, non-terminal pod was seen (add or update).
    pub fn upsert_bound_pod(&mut self, p: Arc<PodInfo>) -> PodChange {
        let prev = self.pods.get(&p.key).cloned();
        let was_assumed = self.assumed.remove(&p.key);
        let change = match &prev {
            Some(old) if old.uid == p.uid && old.node_name == p.node_name => {
                if was_assumed {
                    PodChange::Confirmed
                } else if old.labels != p.labels || old.terminating != p.terminating {
                    PodChange::Changed
                } else {
                    PodChange::None
                }
            }
            _ => PodChange::Changed,
        };
        self.remove_pod(&p.key);
        self.insert_pod(p);
        change
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub fn ns_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, NodeStatus, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn node(name: &str, cpu: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.status = Some(NodeStatus {
            allocatable: Some(
                [("cpu".to_string(), Quantity(cpu.into())), ("pods".to_string(), Quantity("110".into()))].into(),
            ),
            ..Default::default()
        });
        n
    }

    fn pod(name: &str, node: &str, cpu: &str) -> PodInfo {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.spec = Some(PodSpec {
            node_name: Some(node.into()).filter(|s: &String| !s.is_empty()),
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        PodInfo::new(p)
    }

    #[test]
    fn assume_confirm_forget() {
        let mut c = Cache::default();
        assert!(c.upsert_node(node("n1", "2")));
        assert!(!c.upsert_node(node("n1", "2")));
        assert!(c.upsert_node(node("n1", "4")));
        let p = pod("a", "", "500m");
        c.assume(&p, "n1");
        assert_eq!(c.nodes["n1"].requested.milli_cpu, 500);
        assert!(c.is_assumed("default/a"));
        // The bound version arrives: confirmed, still counted once.
        let bound = Arc::new(pod("a", "n1", "500m"));
        assert_eq!(c.upsert_bound_pod(bound), PodChange::Confirmed);
        assert_eq!(c.nodes["n1"].requested.milli_cpu, 500);
        assert!(!c.is_assumed("default/a"));
        // forget does nothing for a confirmed pod
        c.forget("default/a", "uid-a");
        assert_eq!(c.nodes["n1"].requested.milli_cpu, 500);
        let q = pod("b", "", "1");
        c.assume(&q, "n1");
        assert_eq!(c.nodes["n1"].requested.milli_cpu, 1500);
        c.forget("default/b", "uid-b");
        assert_eq!(c.nodes["n1"].requested.milli_cpu, 500);
        c.remove_pod("default/a");
        assert_eq!(c.nodes["n1"].requested.milli_cpu, 0);
        assert!(c.nodes["n1"].pods.is_empty());
    }

    #[test]
    fn ghost_nodes_keep_pods_until_gone() {
        let mut c = Cache::default();
        c.upsert_node(node("n1", "2"));
        c.upsert_bound_pod(Arc::new(pod("a", "n1", "1")));
        c.remove_node("n1");
        assert!(c.node_order.is_empty());
        assert!(c.nodes.contains_key("n1"));
        c.remove_pod("default/a");
        assert!(!c.nodes.contains_key("n1"));
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |ip: &str, port| HostPort { ip: ip.into(), protocol: "TCP".into(), port };
        assert!(hp("0.0.0.0", 80).conflicts(&hp("10.0.0.1", 80)));
        assert!(!hp("10.0.0.2", 80).conflicts(&hp("10.0.0.1", 80)));
        assert!(!hp("0.0.0.0", 81).conflicts(&hp("0.0.0.0", 80)));
        let udp = HostPort { ip: "0.0.0.0".into(), protocol: "UDP".into(), port: 80 };
        assert!(!udp.conflicts(&hp("0.0.0.0", 80)));
    }
}
