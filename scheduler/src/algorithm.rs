//! One scheduling decision, as upstream's default profile makes it: PreFilter state, the
//! Filter plugins in upstream's order (NodeUnschedulable, NodeName, TaintToleration,
//! NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity), the
//! adaptive `percentageOfNodesToScore` sample, the Score plugins with upstream's weights and
//! normalisation, and the `FitError` message (`0/3 nodes are available: 3 Insufficient cpu.
//! preemption: ...`). Pure: reads the [`Cache`], never writes it.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Taint, Toleration};
use rand::Rng;

use crate::cache::{Cache, NodeInfo, PodInfo};
use crate::selectors::{Labels, Selector, first_untolerated, pod_matches_node, term_matches, tolerated};

pub const MAX_NODE_SCORE: i64 = 100;
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_NO_NODES: &str = "no nodes available to schedule pods";
const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Why one node was rejected: the first failing plugin's reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub reasons: Vec<String>,
    /// `UnschedulableAndUnresolvable`: removing pods from the node would not help.
    pub unresolvable: bool,
}

impl NodeStatus {
    fn unresolvable(reason: impl Into<String>) -> Self {
        NodeStatus { reasons: vec![reason.into()], unresolvable: true }
    }
    fn unschedulable(reason: impl Into<String>) -> Self {
        NodeStatus { reasons: vec![reason.into()], unresolvable: false }
    }
}

/// No node fits: per-node statuses, summarised as upstream's `FitError.Error()`.
#[derive(Clone, Debug)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub statuses: Vec<NodeStatus>,
}

fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_insert(0) += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl FitError {
    /// `0/N nodes are available: <sorted reason counts>. preemption: 0/N nodes are available:
    /// <what preemption would have said>.` rkube does not preempt; the preemption part is what
    /// upstream's DefaultPreemption reports when no lower-priority victims exist.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            return ERR_NO_NODES.to_string();
        }
        let n = self.num_all_nodes;
        let mut msg = format!("0/{n} nodes are available:");
        let filter = histogram(self.statuses.iter().flat_map(|s| s.reasons.iter().map(String::as_str)));
        if !filter.is_empty() {
            msg.push_str(&format!(" {filter}."));
        }
        let post =
            histogram(self.statuses.iter().map(|s| if s.unresolvable { PREEMPTION_NOT_HELPFUL } else { NO_VICTIMS }));
        msg.push_str(&format!(" preemption: 0/{n} nodes are available: {post}."));
        msg
    }
}

/// The chosen node.
#[derive(Clone, Debug)]
pub struct Decision {
    pub node: String,
    pub evaluated: usize,
    pub feasible: usize,
}

/// Upstream's `numFeasibleNodesToFind`.
pub fn num_feasible_nodes_to_find(num_all: usize, percentage: Option<u32>) -> usize {
    if num_all < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all;
    }
    let pct = match percentage {
        Some(p) if p >= 100 => return num_all,
        Some(p) if p > 0 => p as usize,
        _ => (50usize.saturating_sub(num_all / 125)).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
    };
    (num_all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

// ---------------------------------------------------------------------------------------------
// PodTopologySpread

struct SpreadConstraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: i64,
    honor_node_affinity: bool,
    honor_node_taints: bool,
}

fn spread_constraints(pod: &PodInfo, when: &str) -> Vec<SpreadConstraint> {
    let Some(spec) = &pod.pod.spec else { return Vec::new() };
    let mut out = Vec::new();
    for c in spec.topology_spread_constraints.iter().flatten() {
        if c.when_unsatisfiable != when {
            continue;
        }
        let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod.labels.get(key) {
                selector = selector.with_equal(key, v);
            }
        }
        out.push(SpreadConstraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        });
    }
    out
}

fn has_all_keys(labels: &Labels, cs: &[SpreadConstraint]) -> bool {
    cs.iter().all(|c| labels.contains_key(&c.topology_key))
}

fn node_included(pod: &PodInfo, node: &NodeInfo, c: &SpreadConstraint) -> bool {
    if c.honor_node_affinity && !pod_matches_node(&pod.pod, &node.name, &node.labels) {
        return false;
    }
    if c.honor_node_taints && first_untolerated(&node.taints, pod.tolerations(), &["NoSchedule", "NoExecute"]).is_some()
    {
        return false;
    }
    true
}

fn count_matching(node: &NodeInfo, selector: &Selector, ns: &str) -> i64 {
    node.pods.values().filter(|p| !p.terminating && p.namespace == ns && selector.matches(&p.labels)).count() as i64
}

struct SpreadFilter {
    constraints: Vec<SpreadConstraint>,
    counts: Vec<HashMap<String, i64>>,
    self_match: Vec<bool>,
}

impl SpreadFilter {
    fn build(cache: &Cache, pod: &PodInfo) -> Option<Self> {
        let constraints = spread_constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return None;
        }
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        for name in &cache.node_order {
            let Some(node) = cache.node(name) else { continue };
            if !has_all_keys(&node.labels, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !node_included(pod, node, c) {
                    continue;
                }
                let Some(value) = node.labels.get(&c.topology_key) else { continue };
                *counts[i].entry(value.clone()).or_insert(0) += count_matching(node, &c.selector, &pod.namespace);
            }
        }
        let self_match = constraints.iter().map(|c| c.selector.matches(&pod.labels)).collect();
        Some(SpreadFilter { constraints, counts, self_match })
    }

    fn filter(&self, node: &NodeInfo) -> Option<NodeStatus> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Some(NodeStatus::unresolvable(ERR_SPREAD_LABEL));
            };
            let domains = &self.counts[i];
            let min =
                if (domains.len() as i64) < c.min_domains { 0 } else { domains.values().copied().min().unwrap_or(0) };
            let matched = domains.get(value).copied().unwrap_or(0);
            let skew = matched + i64::from(self.self_match[i]) - min;
            if skew > c.max_skew {
                return Some(NodeStatus::unschedulable(ERR_SPREAD));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// InterPodAffinity

type TopoCounts = HashMap<(String, String), i64>;

struct AffinityFilter {
    /// (topologyKey, value) pairs forbidden by existing pods' required anti-affinity.
    existing_anti: TopoCounts,
    /// Per required affinity term: domains holding pods matching all terms.
    affinity: TopoCounts,
    anti: TopoCounts,
    has_affinity_terms: bool,
    has_anti_terms: bool,
    affinity_topology_keys: Vec<String>,
    anti_topology_keys: Vec<String>,
    self_matches_all: bool,
}

impl AffinityFilter {
    fn build(cache: &Cache, pod: &PodInfo) -> Option<Self> {
        let own_ns = cache.ns_labels(&pod.namespace);
        let mut existing_anti = TopoCounts::new();
        for key in &cache.with_affinity {
            let Some(ep) = cache.pods.get(key) else { continue };
            let Some(info) = &ep.affinity else { continue };
            let Some(node) = cache.node(&ep.node_name) else { continue };
            for term in &info.required_anti_affinity {
                if term.matches(pod, own_ns)
                    && let Some(v) = node.labels.get(&term.topology_key)
                {
                    *existing_anti.entry((term.topology_key.clone(), v.clone())).or_insert(0) += 1;
                }
            }
        }
        let (req_aff, req_anti) = match &pod.affinity {
            Some(a) => (a.required_affinity.as_slice(), a.required_anti_affinity.as_slice()),
            None => (&[][..], &[][..]),
        };
        if existing_anti.is_empty() && req_aff.is_empty() && req_anti.is_empty() {
            return None;
        }
        let mut affinity = TopoCounts::new();
        let mut anti = TopoCounts::new();
        if !req_aff.is_empty() || !req_anti.is_empty() {
            for ep in cache.pods.values() {
                let Some(node) = cache.node(&ep.node_name) else { continue };
                if node.node.is_none() {
                    continue;
                }
                let ns = cache.ns_labels(&ep.namespace);
                if !req_aff.is_empty() && req_aff.iter().all(|t| t.matches(ep, ns)) {
                    for t in req_aff {
                        if let Some(v) = node.labels.get(&t.topology_key) {
                            *affinity.entry((t.topology_key.clone(), v.clone())).or_insert(0) += 1;
                        }
                    }
                }
                for t in req_anti {
                    if t.matches(ep, ns)
                        && let Some(v) = node.labels.get(&t.topology_key)
                    {
                        *anti.entry((t.topology_key.clone(), v.clone())).or_insert(0) += 1;
                    }
                }
            }
        }
        let self_matches_all = !req_aff.is_empty() && req_aff.iter().all(|t| t.matches(pod, own_ns));
        Some(AffinityFilter {
            existing_anti,
            affinity,
            anti,
            has_affinity_terms: !req_aff.is_empty(),
            has_anti_terms: !req_anti.is_empty(),
            affinity_topology_keys: req_aff.iter().map(|t| t.topology_key.clone()).collect(),
            anti_topology_keys: req_anti.iter().map(|t| t.topology_key.clone()).collect(),
            self_matches_all,
        })
    }

    fn count(m: &TopoCounts, key: &str, labels: &Labels) -> i64 {
        match labels.get(key) {
            Some(v) => m.get(&(key.to_string(), v.clone())).copied().unwrap_or(0),
            None => 0,
        }
    }

    fn filter(&self, node: &NodeInfo) -> Option<NodeStatus> {
        if self.has_affinity_terms {
            let pods_exist =
                self.affinity_topology_keys.iter().all(|k| Self::count(&self.affinity, k, &node.labels) > 0);
            if !pods_exist {
                // The first pod of a self-affine group may go anywhere that has the keys.
                let first_of_group = self.affinity.is_empty()
                    && self.self_matches_all
                    && self.affinity_topology_keys.iter().all(|k| node.labels.contains_key(k));
                if !first_of_group {
                    return Some(NodeStatus::unresolvable(ERR_AFFINITY));
                }
            }
        }
        if self.has_anti_terms && self.anti_topology_keys.iter().any(|k| Self::count(&self.anti, k, &node.labels) > 0) {
            return Some(NodeStatus::unschedulable(ERR_ANTI_AFFINITY));
        }
        if !self.existing_anti.is_empty()
            && node.labels.iter().any(|(k, v)| self.existing_anti.contains_key(&(k.clone(), v.clone())))
        {
            return Some(NodeStatus::unschedulable(ERR_EXISTING_ANTI_AFFINITY));
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Filters

const UNSCHEDULABLE_TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

struct Cycle<'a> {
    pod: &'a PodInfo,
    tolerations: &'a [Toleration],
    node_name: &'a str,
    tolerates_unschedulable: bool,
    has_node_affinity: bool,
    spread: Option<SpreadFilter>,
    affinity: Option<AffinityFilter>,
}

impl<'a> Cycle<'a> {
    fn new(cache: &Cache, pod: &'a PodInfo) -> Self {
        let tolerations = pod.tolerations();
        let spec = pod.pod.spec.as_ref();
        let unsched =
            Taint { key: UNSCHEDULABLE_TAINT_KEY.into(), value: None, effect: "NoSchedule".into(), time_added: None };
        let has_node_affinity = spec.is_some_and(|s| {
            s.node_selector.as_ref().is_some_and(|m| !m.is_empty())
                || s.affinity
                    .as_ref()
                    .and_then(|a| a.node_affinity.as_ref())
                    .is_some_and(|na| na.required_during_scheduling_ignored_during_execution.is_some())
        });
        Cycle {
            pod,
            tolerations,
            node_name: spec.and_then(|s| s.node_name.as_deref()).unwrap_or(""),
            tolerates_unschedulable: tolerated(tolerations, &unsched),
            has_node_affinity,
            spread: SpreadFilter::build(cache, pod),
            affinity: AffinityFilter::build(cache, pod),
        }
    }

    fn filter(&self, node: &NodeInfo) -> Option<NodeStatus> {
        if node.unschedulable && !self.tolerates_unschedulable {
            return Some(NodeStatus::unresolvable(ERR_UNSCHEDULABLE));
        }
        if !self.node_name.is_empty() && self.node_name != node.name {
            return Some(NodeStatus::unresolvable(ERR_NODE_NAME));
        }
        if let Some(t) = first_untolerated(&node.taints, self.tolerations, &["NoSchedule", "NoExecute"]) {
            return Some(NodeStatus::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )));
        }
        if self.has_node_affinity && !pod_matches_node(&self.pod.pod, &node.name, &node.labels) {
            return Some(NodeStatus::unresolvable(ERR_NODE_AFFINITY));
        }
        if !self.pod.ports.is_empty()
            && self.pod.ports.iter().any(|want| node.used_ports.iter().any(|used| used.conflicts(want)))
        {
            return Some(NodeStatus::unschedulable(ERR_NODE_PORTS));
        }
        if let Some(s) = fit_resources(self.pod, node) {
            return Some(s);
        }
        if let Some(s) = self.spread.as_ref().and_then(|sp| sp.filter(node)) {
            return Some(s);
        }
        if let Some(s) = self.affinity.as_ref().and_then(|a| a.filter(node)) {
            return Some(s);
        }
        None
    }
}

/// NodeResourcesFit's Filter: pod count, then cpu, memory, ephemeral-storage, extended resources.
pub fn fit_resources(pod: &PodInfo, node: &NodeInfo) -> Option<NodeStatus> {
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let req = &pod.requests;
    if !req.is_zero() {
        let alloc = &node.allocatable;
        let used = &node.requested;
        let mut check = |name: &str, want: i64, have: i64, used: i64| {
            if want > 0 && want > have - used {
                reasons.push(format!("Insufficient {name}"));
                unresolvable |= want > have;
            }
        };
        check("cpu", req.milli_cpu, alloc.milli_cpu, used.milli_cpu);
        check("memory", req.memory, alloc.memory, used.memory);
        check("ephemeral-storage", req.ephemeral_storage, alloc.ephemeral_storage, used.ephemeral_storage);
        for (name, want) in &req.scalar {
            let have = alloc.scalar.get(name).copied().unwrap_or(0);
            let u = used.scalar.get(name).copied().unwrap_or(0);
            check(name, *want, have, u);
        }
    }
    if reasons.is_empty() { None } else { Some(NodeStatus { reasons, unresolvable }) }
}

// ---------------------------------------------------------------------------------------------
// Scores

fn least_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// NodeResourcesFit (LeastAllocated, cpu and memory weighted 1 each), on non-zero requests.
pub fn score_least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let cpu = least_allocated(node.non_zero_cpu + pod.non_zero_cpu, node.allocatable.milli_cpu);
    let mem = least_allocated(node.non_zero_memory + pod.non_zero_memory, node.allocatable.memory);
    (cpu + mem) / 2
}

/// NodeResourcesBalancedAllocation: 100 × (1 − std-dev of the cpu and memory fractions).
pub fn score_balanced(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let frac = |req: i64, cap: i64| if cap <= 0 { 0.0 } else { (req as f64 / cap as f64).min(1.0) };
    let cpu = frac(node.requested.milli_cpu + pod.requests.milli_cpu, node.allocatable.milli_cpu);
    let mem = frac(node.requested.memory + pod.requests.memory, node.allocatable.memory);
    let std = ((cpu - mem) / 2.0).abs();
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

fn normalize_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

fn node_affinity_scores(pod: &PodInfo, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
    let prefs = pod
        .pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()?;
    if prefs.is_empty() {
        return None;
    }
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|n| {
            prefs
                .iter()
                .filter(|p| p.weight != 0 && term_matches(&p.preference, &n.name, &n.labels))
                .map(|p| i64::from(p.weight))
                .sum()
        })
        .collect();
    normalize_max(&mut scores, false);
    Some(scores)
}

fn taint_scores(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let tols: Vec<Toleration> = pod
        .tolerations()
        .iter()
        .filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "PreferNoSchedule"))
        .cloned()
        .collect();
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|n| n.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tols, t)).count() as i64)
        .collect();
    normalize_max(&mut scores, true);
    scores
}

fn spread_scores(cache: &Cache, pod: &PodInfo, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
    let constraints = spread_constraints(pod, "ScheduleAnyway");
    if constraints.is_empty() {
        return None;
    }
    const HOSTNAME: &str = "kubernetes.io/hostname";
    let ignored: Vec<bool> = nodes.iter().map(|n| !has_all_keys(&n.labels, &constraints)).collect();
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    let mut weights = vec![0f64; constraints.len()];
    for (i, c) in constraints.iter().enumerate() {
        let size = if c.topology_key == HOSTNAME {
            ignored.iter().filter(|x| !**x).count()
        } else {
            for (n, ign) in nodes.iter().zip(&ignored) {
                if !*ign && let Some(v) = n.labels.get(&c.topology_key) {
                    counts[i].entry(v.clone()).or_insert(0);
                }
            }
            counts[i].len()
        };
        weights[i] = ((size + 2) as f64).ln();
    }
    for name in &cache.node_order {
        let Some(node) = cache.node(name) else { continue };
        if !has_all_keys(&node.labels, &constraints) {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME || !node_included(pod, node, c) {
                continue;
            }
            let Some(v) = node.labels.get(&c.topology_key) else { continue };
            if let Some(slot) = counts[i].get_mut(v) {
                *slot += count_matching(node, &c.selector, &pod.namespace);
            }
        }
    }
    let raw: Vec<i64> = nodes
        .iter()
        .map(|n| {
            let mut s = 0f64;
            for (i, c) in constraints.iter().enumerate() {
                let Some(v) = n.labels.get(&c.topology_key) else { continue };
                let cnt = if c.topology_key == HOSTNAME {
                    count_matching(n, &c.selector, &pod.namespace)
                } else {
                    counts[i].get(v).copied().unwrap_or(0)
                };
                s += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
            }
            s.round() as i64
        })
        .collect();
    let mut min = i64::MAX;
    let mut max = 0i64;
    for (s, ign) in raw.iter().zip(&ignored) {
        if !*ign {
            min = min.min(*s);
            max = max.max(*s);
        }
    }
    Some(
        raw.iter()
            .zip(&ignored)
            .map(|(s, ign)| {
                if *ign {
                    0
                } else if max == 0 {
                    MAX_NODE_SCORE
                } else {
                    MAX_NODE_SCORE * (max + min - s) / max
                }
            })
            .collect(),
    )
}

fn inter_pod_affinity_scores(cache: &Cache, pod: &PodInfo, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
    let own_ns = cache.ns_labels(&pod.namespace);
    let has_pref = pod
        .affinity
        .as_ref()
        .is_some_and(|a| !a.preferred_affinity.is_empty() || !a.preferred_anti_affinity.is_empty());
    if !has_pref && cache.with_affinity.is_empty() {
        return None;
    }
    let mut topo: HashMap<String, HashMap<String, i64>> = HashMap::new();
    let mut add = |node: &NodeInfo, key: &str, w: i64| {
        if let Some(v) = node.labels.get(key) {
            *topo.entry(key.to_string()).or_default().entry(v.clone()).or_insert(0) += w;
        }
    };
    let mut visit = |ep: &PodInfo| {
        let Some(node) = cache.node(&ep.node_name) else { return };
        if node.node.is_none() {
            return;
        }
        if let Some(a) = &pod.affinity {
            let ns = cache.ns_labels(&ep.namespace);
            for (w, t) in &a.preferred_affinity {
                if t.matches(ep, ns) {
                    add(node, &t.topology_key, *w);
                }
            }
            for (w, t) in &a.preferred_anti_affinity {
                if t.matches(ep, ns) {
                    add(node, &t.topology_key, -*w);
                }
            }
        }
        if let Some(ea) = &ep.affinity {
            for t in &ea.required_affinity {
                if t.matches(pod, own_ns) {
                    add(node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            for (w, t) in &ea.preferred_affinity {
                if t.matches(pod, own_ns) {
                    add(node, &t.topology_key, *w);
                }
            }
            for (w, t) in &ea.preferred_anti_affinity {
                if t.matches(pod, own_ns) {
                    add(node, &t.topology_key, -*w);
                }
            }
        }
    };
    if has_pref {
        cache.pods.values().for_each(|p| visit(p));
    } else {
        for key in &cache.with_affinity {
            if let Some(p) = cache.pods.get(key) {
                visit(p);
            }
        }
    }
    if topo.is_empty() {
        return None;
    }
    let raw: Vec<i64> = nodes
        .iter()
        .map(|n| topo.iter().map(|(k, m)| n.labels.get(k).and_then(|v| m.get(v)).copied().unwrap_or(0)).sum::<i64>())
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    let diff = max - min;
    Some(
        raw.iter()
            .map(|s| if diff > 0 { (MAX_NODE_SCORE as f64 * ((s - min) as f64 / diff as f64)) as i64 } else { 0 })
            .collect(),
    )
}

/// Weighted total per feasible node (upstream default profile weights).
pub fn score_nodes(cache: &Cache, pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total: Vec<i64> = nodes.iter().map(|n| score_least_allocated(pod, n)).collect();
    if !pod.requests.is_zero() {
        for (t, n) in total.iter_mut().zip(nodes) {
            *t += score_balanced(pod, n);
        }
    }
    let mut add = |scores: Option<Vec<i64>>, weight: i64| {
        if let Some(s) = scores {
            for (t, v) in total.iter_mut().zip(s) {
                *t += v * weight;
            }
        }
    };
    add(Some(taint_scores(pod, nodes)), 3);
    add(node_affinity_scores(pod, nodes), 2);
    add(spread_scores(cache, pod, nodes), 2);
    add(inter_pod_affinity_scores(cache, pod, nodes), 2);
    total
}

/// Schedule one pod: filter from `*next_start` (advanced round-robin as upstream), stop after
/// enough feasible nodes, score them and pick the best (ties broken at random).
pub fn schedule(
    cache: &Cache,
    pod: &PodInfo,
    next_start: &mut usize,
    percentage: Option<u32>,
    rng: &mut impl Rng,
) -> Result<Decision, FitError> {
    let all = cache.node_order.len();
    if all == 0 {
        return Err(FitError { num_all_nodes: 0, statuses: Vec::new() });
    }
    let want = num_feasible_nodes_to_find(all, percentage);
    let cycle = Cycle::new(cache, pod);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(all));
    let mut statuses = Vec::new();
    let start = *next_start % all;
    let mut processed = 0;
    for i in 0..all {
        if feasible.len() >= want {
            break;
        }
        processed += 1;
        let Some(node) = cache.node(&cache.node_order[(start + i) % all]) else { continue };
        match cycle.filter(node) {
            None => feasible.push(node),
            Some(s) => statuses.push(s),
        }
    }
    *next_start = (start + processed) % all;
    if feasible.is_empty() {
        return Err(FitError { num_all_nodes: all, statuses });
    }
    let evaluated = processed;
    if feasible.len() == 1 {
        return Ok(Decision { node: feasible[0].name.clone(), evaluated, feasible: 1 });
    }
    let scores = score_nodes(cache, pod, &feasible);
    let mut best = 0usize;
    let mut best_score = i64::MIN;
    let mut ties = 0u32;
    for (i, s) in scores.iter().enumerate() {
        if *s > best_score {
            best_score = *s;
            best = i;
            ties = 1;
        } else if *s == best_score {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    Ok(Decision { node: feasible[best].name.clone(), evaluated, feasible: feasible.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, Container, ContainerPort, Node, NodeSpec, NodeStatus, Pod, PodAffinity, PodAffinityTerm,
        PodAntiAffinity, PodSpec, PreferredSchedulingTerm, ResourceRequirements, TopologySpreadConstraint,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use rand::SeedableRng;
    use std::sync::Arc;

    fn node(name: &str, cpu: &str, mem: &str, labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        let mut l: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert("kubernetes.io/hostname".into(), name.into());
        n.metadata.labels = Some(l);
        n.status = Some(NodeStatus {
            allocatable: Some(
                [
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(mem.into())),
                    ("pods".to_string(), Quantity("110".into())),
                ]
                .into(),
            ),
            ..Default::default()
        });
        n
    }

    fn pod(name: &str, cpu: &str, labels: &[(&str, &str)]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        p.spec = Some(PodSpec {
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
        p
    }

    fn spec(p: &mut Pod) -> &mut PodSpec {
        p.spec.get_or_insert_with(Default::default)
    }

    fn bind(c: &mut Cache, mut p: Pod, node: &str) {
        spec(&mut p).node_name = Some(node.into());
        c.upsert_bound_pod(Arc::new(PodInfo::new(p)));
    }

    fn run(c: &Cache, p: Pod) -> Result<String, String> {
        let info = PodInfo::new(p);
        let mut start = 0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        schedule(c, &info, &mut start, None, &mut rng).map(|d| d.node).map_err(|e| e.message())
    }

    fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            match_expressions: None,
        }
    }

    #[test]
    fn fit_error_message_shape() {
        let mut c = Cache::default();
        for i in 0..3 {
            c.upsert_node(node(&format!("n{i}"), "1", "1Gi", &[]));
        }
        assert_eq!(
            run(&c, pod("big", "2", &[])).unwrap_err(),
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
             3 Preemption is not helpful for scheduling."
        );
        bind(&mut c, pod("x", "800m", &[]), "n0");
        assert!(run(&c, pod("p", "500m", &[])).map(|n| n != "n0").unwrap());
        let mut tainted = node("n1", "1", "1Gi", &[]);
        tainted.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "node-role.kubernetes.io/control-plane".into(),
                value: None,
                effect: "NoSchedule".into(),
                time_added: None,
            }]),
            ..Default::default()
        });
        c.upsert_node(tainted);
        let mut sel_pod = pod("s", "500m", &[]);
        spec(&mut sel_pod).node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        c.upsert_node(node("n2", "1", "1Gi", &[("disk", "ssd")]));
        bind(&mut c, pod("y", "800m", &[]), "n2");
        assert_eq!(
            run(&c, sel_pod).unwrap_err(),
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are \
             available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
        );
        assert_eq!(FitError { num_all_nodes: 0, statuses: vec![] }.message(), ERR_NO_NODES);
    }

    #[test]
    fn resources_pods_and_extended() {
        let mut c = Cache::default();
        let mut n = node("n0", "4", "4Gi", &[]);
        if let Some(a) = n.status.as_mut().and_then(|s| s.allocatable.as_mut()) {
            a.insert("pods".into(), Quantity("1".into()));
            a.insert("example.com/gpu".into(), Quantity("1".into()));
        }
        c.upsert_node(n);
        let mut gpu = pod("g", "100m", &[]);
        if let Some(r) = spec(&mut gpu).containers[0].resources.as_mut().and_then(|r| r.requests.as_mut()) {
            r.insert("example.com/gpu".into(), Quantity("2".into()));
        }
        let err = run(&c, gpu).unwrap_err();
        assert!(err.starts_with("0/1 nodes are available: 1 Insufficient example.com/gpu."), "{err}");
        bind(&mut c, pod("a", "100m", &[]), "n0");
        let err = run(&c, pod("b", "100m", &[])).unwrap_err();
        assert!(err.contains("1 Too many pods"), "{err}");
        assert!(err.contains("1 No preemption victims found"), "{err}");
    }

    #[test]
    fn unschedulable_node_and_toleration() {
        let mut c = Cache::default();
        let mut n = node("n0", "4", "4Gi", &[]);
        n.spec = Some(NodeSpec { unschedulable: Some(true), ..Default::default() });
        c.upsert_node(n);
        assert!(run(&c, pod("a", "1", &[])).unwrap_err().contains("1 node(s) were unschedulable"));
        let mut p = pod("b", "1", &[]);
        spec(&mut p).tolerations = Some(vec![Toleration {
            key: Some(UNSCHEDULABLE_TAINT_KEY.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert_eq!(run(&c, p).unwrap(), "n0");
    }

    #[test]
    fn host_ports_conflict() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "4", "4Gi", &[]));
        c.upsert_node(node("n1", "4", "4Gi", &[]));
        let with_port = |name: &str| {
            let mut p = pod(name, "100m", &[]);
            spec(&mut p).containers[0].ports =
                Some(vec![ContainerPort { container_port: 80, host_port: Some(8080), ..Default::default() }]);
            p
        };
        bind(&mut c, with_port("a"), "n0");
        for _ in 0..5 {
            assert_eq!(run(&c, with_port("b")).unwrap(), "n1");
        }
        bind(&mut c, with_port("c"), "n1");
        assert!(
            run(&c, with_port("d"))
                .unwrap_err()
                .contains("2 node(s) didn't have free ports for the requested pod ports")
        );
    }

    #[test]
    fn least_allocated_and_balanced_prefer_emptier_node() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "4", "4Gi", &[]));
        c.upsert_node(node("n1", "4", "4Gi", &[]));
        bind(&mut c, pod("a", "2", &[]), "n0");
        for _ in 0..5 {
            assert_eq!(run(&c, pod("b", "500m", &[])).unwrap(), "n1");
        }
        let n = c.node("n1").map(|n| score_least_allocated(&PodInfo::new(pod("x", "1", &[])), n));
        // cpu: (4000-1000)*100/4000 = 75; memory: (4Gi-200Mi)*100/4Gi = 95 → (75+95)/2 = 85
        assert_eq!(n, Some(85));
        let bal = c.node("n1").map(|n| score_balanced(&PodInfo::new(pod("x", "2", &[])), n));
        // cpu fraction 0.5, memory 0 → std 0.25 → 75
        assert_eq!(bal, Some(75));
    }

    #[test]
    fn node_affinity_required_and_preferred() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "4", "4Gi", &[("zone", "a")]));
        c.upsert_node(node("n1", "4", "4Gi", &[("zone", "b")]));
        c.upsert_node(node("n2", "4", "4Gi", &[("zone", "c")]));
        let mut p = pod("p", "100m", &[]);
        spec(&mut p).affinity = Some(Affinity {
            node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(k8s_openapi::api::core::v1::NodeSelector {
                    node_selector_terms: vec![k8s_openapi::api::core::v1::NodeSelectorTerm {
                        match_expressions: Some(vec![k8s_openapi::api::core::v1::NodeSelectorRequirement {
                            key: "zone".into(),
                            operator: "NotIn".into(),
                            values: Some(vec!["c".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: Some(vec![PreferredSchedulingTerm {
                    weight: 50,
                    preference: k8s_openapi::api::core::v1::NodeSelectorTerm {
                        match_expressions: Some(vec![k8s_openapi::api::core::v1::NodeSelectorRequirement {
                            key: "zone".into(),
                            operator: "In".into(),
                            values: Some(vec!["b".into()]),
                        }]),
                        match_fields: None,
                    },
                }]),
            }),
            ..Default::default()
        });
        for _ in 0..5 {
            assert_eq!(run(&c, p.clone()).unwrap(), "n1");
        }
        if let Some(s) = spec(&mut p).affinity.as_mut().and_then(|a| a.node_affinity.as_mut()) {
            s.preferred_during_scheduling_ignored_during_execution = None;
        }
        bind(&mut c, pod("x", "3", &[]), "n1");
        assert_eq!(run(&c, p).unwrap(), "n0");
    }

    #[test]
    fn prefer_no_schedule_taint_scores_lower() {
        let mut c = Cache::default();
        let mut n0 = node("n0", "4", "4Gi", &[]);
        n0.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "k".into(),
                value: None,
                effect: "PreferNoSchedule".into(),
                time_added: None,
            }]),
            ..Default::default()
        });
        c.upsert_node(n0);
        c.upsert_node(node("n1", "4", "4Gi", &[]));
        // n1 is busier, but the taint weighs 3 × 100.
        bind(&mut c, pod("a", "2", &[]), "n1");
        assert_eq!(run(&c, pod("p", "100m", &[])).unwrap(), "n1");
    }

    fn term(labels: &[(&str, &str)], key: &str) -> PodAffinityTerm {
        PodAffinityTerm { label_selector: Some(sel(labels)), topology_key: key.into(), ..Default::default() }
    }

    #[test]
    fn inter_pod_affinity_and_anti_affinity() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "4", "4Gi", &[("zone", "a")]));
        c.upsert_node(node("n1", "4", "4Gi", &[("zone", "a")]));
        c.upsert_node(node("n2", "4", "4Gi", &[("zone", "b")]));
        // First pod of a self-affine group may go anywhere.
        let mut web = pod("web", "100m", &[("app", "web")]);
        spec(&mut web).affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term(&[("app", "web")], "zone")]),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(run(&c, web.clone()).is_ok());
        bind(&mut c, pod("w1", "100m", &[("app", "web")]), "n2");
        for _ in 0..5 {
            assert_eq!(run(&c, web.clone()).unwrap(), "n2");
        }
        // Anti-affinity by zone: away from zone b.
        let mut lonely = pod("l", "100m", &[]);
        spec(&mut lonely).affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term(&[("app", "web")], "zone")]),
                ..Default::default()
            }),
            ..Default::default()
        });
        for _ in 0..5 {
            assert_ne!(run(&c, lonely.clone()).unwrap(), "n2");
        }
        // An existing pod's anti-affinity keeps web pods off its hostname.
        let mut guard = pod("guard", "100m", &[]);
        spec(&mut guard).affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term(
                    &[("app", "web")],
                    "kubernetes.io/hostname",
                )]),
                ..Default::default()
            }),
            ..Default::default()
        });
        bind(&mut c, guard, "n2");
        let err = run(&c, web).unwrap_err();
        assert!(err.contains("1 node(s) didn't satisfy existing pods anti-affinity rules"), "{err}");
        assert!(err.contains("2 node(s) didn't match pod affinity rules"), "{err}");
    }

    #[test]
    fn preferred_pod_affinity_scores() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "4", "4Gi", &[]));
        c.upsert_node(node("n1", "4", "4Gi", &[]));
        bind(&mut c, pod("db", "1", &[("app", "db")]), "n1");
        let mut p = pod("p", "100m", &[]);
        spec(&mut p).affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    k8s_openapi::api::core::v1::WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: term(&[("app", "db")], "kubernetes.io/hostname"),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        });
        for _ in 0..5 {
            assert_eq!(run(&c, p.clone()).unwrap(), "n1");
        }
    }

    fn spread(p: &mut Pod, key: &str, skew: i32, when: &str) {
        spec(p).topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.into(),
            when_unsatisfiable: when.into(),
            label_selector: Some(sel(&[("app", "s")])),
            ..Default::default()
        }]);
    }

    #[test]
    fn topology_spread_do_not_schedule() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "8", "8Gi", &[("zone", "a")]));
        c.upsert_node(node("n1", "8", "8Gi", &[("zone", "b")]));
        c.upsert_node(node("n2", "8", "8Gi", &[]));
        bind(&mut c, pod("s1", "100m", &[("app", "s")]), "n0");
        bind(&mut c, pod("s2", "100m", &[("app", "s")]), "n0");
        let mut p = pod("p", "2", &[("app", "s")]);
        spread(&mut p, "zone", 1, "DoNotSchedule");
        for _ in 0..5 {
            assert_eq!(run(&c, p.clone()).unwrap(), "n1");
        }
        bind(&mut c, pod("big", "7", &[]), "n1");
        let err = run(&c, p.clone()).unwrap_err();
        assert!(err.contains("1 Insufficient cpu"), "{err}");
        assert!(err.contains("1 node(s) didn't match pod topology spread constraints,"), "{err}");
        assert!(
            err.contains("1 node(s) didn't match pod topology spread constraints (missing required label)"),
            "{err}"
        );
        // minDomains 3 with only 2 domains: the global minimum counts as 0.
        let mut q = pod("q", "100m", &[("app", "s")]);
        spread(&mut q, "zone", 2, "DoNotSchedule");
        assert_eq!(run(&c, q.clone()).unwrap(), "n1");
        if let Some(tsc) = spec(&mut q).topology_spread_constraints.as_mut() {
            tsc[0].min_domains = Some(3);
        }
        bind(&mut c, pod("s3", "100m", &[("app", "s")]), "n1");
        // counts a=2, b=1; with min 0 zone a has skew 3 > 2, zone b skew 2 ok.
        assert_eq!(run(&c, q).unwrap(), "n1");
    }

    #[test]
    fn topology_spread_schedule_anyway_prefers_emptier_domain() {
        let mut c = Cache::default();
        c.upsert_node(node("n0", "8", "8Gi", &[("zone", "a")]));
        c.upsert_node(node("n1", "8", "8Gi", &[("zone", "b")]));
        bind(&mut c, pod("s1", "100m", &[("app", "s")]), "n1");
        bind(&mut c, pod("s2", "100m", &[("app", "s")]), "n1");
        // n0 busier by resources, but spreading (weight 2) wins.
        bind(&mut c, pod("big", "1", &[]), "n0");
        let mut p = pod("p", "100m", &[("app", "s")]);
        spread(&mut p, "zone", 1, "ScheduleAnyway");
        assert_eq!(run(&c, p).unwrap(), "n0");
    }

    #[test]
    fn sampling_numbers() {
        assert_eq!(num_feasible_nodes_to_find(50, None), 50);
        assert_eq!(num_feasible_nodes_to_find(1000, None), 420);
        assert_eq!(num_feasible_nodes_to_find(5000, None), 500);
        assert_eq!(num_feasible_nodes_to_find(200, Some(10)), 100);
        assert_eq!(num_feasible_nodes_to_find(1000, Some(100)), 1000);
    }

    #[test]
    fn round_robin_start_advances() {
        let mut c = Cache::default();
        for i in 0..200 {
            c.upsert_node(node(&format!("n{i:03}"), "4", "4Gi", &[]));
        }
        let info = PodInfo::new(pod("p", "100m", &[]));
        let mut start = 0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = schedule(&c, &info, &mut start, None, &mut rng).map(|d| d.evaluated).unwrap_or(0);
        assert_eq!(d, 100);
        assert_eq!(start, 100);
    }

    /// Prints the cost of one decision at the bench shape (1,000 nodes, 10,000 bound pods).
    #[test]
    #[ignore]
    fn decision_cost_print() {
        let mut c = Cache::default();
        for i in 0..1000 {
            c.upsert_node(node(&format!("n{i:04}"), "32", "128Gi", &[]));
        }
        for i in 0..10_000 {
            bind(&mut c, pod(&format!("b{i}"), "100m", &[]), &format!("n{:04}", i % 1000));
        }
        let info = PodInfo::new(pod("p", "100m", &[]));
        let mut start = 0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            let d = schedule(&c, &info, &mut start, None, &mut rng);
            assert!(d.is_ok());
        }
        println!("decision: {:?} per pod", t.elapsed() / 1000);
    }
}
