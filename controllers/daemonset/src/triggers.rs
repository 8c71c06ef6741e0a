//! Turns pod and node watch events into DaemonSets to sync (upstream's addPod / updatePod /
//! deletePod and addNode / updateNode handlers), recording observed pod creations and deletions in
//! the expectations.
//!
//! - A pod controlled by a DaemonSet wakes it; its first appearance is an observed creation, its
//!   first `deletionTimestamp` (or its disappearance) an observed deletion. A pod whose controller
//!   changes wakes the former controller too. An orphan that appears or is relabelled wakes every
//!   DaemonSet of its namespace that selects it.
//! - A node that appears or disappears, or whose labels or taints change, wakes every DaemonSet;
//!   other node updates (status heartbeats) wake none.
//!
//! Events of an initial (re)list are held until it is complete; objects missing from a relist
//! count as deleted.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use rkube_controller_common::expectations::ControllerExpectations;
use rkube_controller_common::key_of;
use rkube_controller_common::owner::controller_of;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

type Triggers = Vec<ObjectRef<DaemonSet>>;

#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    uid: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    /// Name of the controlling DaemonSet.
    owner: Option<String>,
    deleting: bool,
}

impl Snapshot {
    fn of(pod: &Pod) -> Self {
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            owner: controller_of(&pod.metadata)
                .filter(|r| r.kind == "DaemonSet" && r.api_version.starts_with("apps/"))
                .map(|r| r.name.clone()),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Pod-event handler state.
pub struct PodTracker {
    daemonsets: Store<DaemonSet>,
    expectations: ControllerExpectations,
    pods: HashMap<String, Snapshot>,
    listing: Option<Vec<Pod>>,
}

impl PodTracker {
    pub fn new(daemonsets: Store<DaemonSet>, expectations: ControllerExpectations) -> Self {
        Self { daemonsets, expectations, pods: HashMap::new(), listing: None }
    }

    /// Handles one watcher event; returns the DaemonSets to sync.
    pub fn handle(&mut self, event: watcher::Event<Pod>) -> Triggers {
        match event {
            watcher::Event::Init => {
                self.listing = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(pod) => {
                self.listing.get_or_insert_with(Vec::new).push(pod);
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let keys: std::collections::HashSet<String> = listed.iter().map(pod_key).collect();
                let gone: Vec<String> = self.pods.keys().filter(|k| !keys.contains(*k)).cloned().collect();
                let mut out = Vec::new();
                for k in gone {
                    out.extend(self.deleted(&k));
                }
                for pod in listed {
                    out.extend(self.applied(&pod));
                }
                out
            }
            watcher::Event::Apply(pod) => self.applied(&pod),
            watcher::Event::Delete(pod) => self.deleted(&pod_key(&pod)),
        }
    }

    fn ds_ref(ns: &str, name: &str) -> ObjectRef<DaemonSet> {
        ObjectRef::new(name).within(ns)
    }

    fn applied(&mut self, pod: &Pod) -> Triggers {
        let key = pod_key(pod);
        let now = Snapshot::of(pod);
        let mut out = Vec::new();
        let before = match self.pods.get(&key) {
            Some(old) if old.uid != now.uid => {
                // Replaced by a pod of the same name: the old one is gone.
                out.extend(self.deleted(&key));
                None
            }
            other => other.cloned(),
        };
        match &before {
            None => {
                if let Some(owner) = &now.owner {
                    let ds_key = key_of(Some(&now.namespace), owner);
                    if now.deleting {
                        self.expectations.deletion_observed(&ds_key);
                    } else {
                        self.expectations.creation_observed(&ds_key);
                    }
                }
            }
            Some(old) => {
                if !old.deleting
                    && now.deleting
                    && let Some(owner) = &now.owner
                {
                    self.expectations.deletion_observed(&key_of(Some(&now.namespace), owner));
                }
                if old.owner != now.owner
                    && let Some(prev) = &old.owner
                {
                    out.push(Self::ds_ref(&old.namespace, prev));
                }
            }
        }
        match &now.owner {
            Some(owner) => out.push(Self::ds_ref(&now.namespace, owner)),
            None => {
                let changed = before.as_ref().is_none_or(|b| b.labels != now.labels || b.owner.is_some());
                if changed && !now.deleting {
                    out.extend(self.selecting(&now.namespace, &now.labels));
                }
            }
        }
        self.pods.insert(key, now);
        out
    }

    fn deleted(&mut self, key: &str) -> Triggers {
        let Some(old) = self.pods.remove(key) else { return Vec::new() };
        let Some(owner) = old.owner else { return Vec::new() };
        if !old.deleting {
            self.expectations.deletion_observed(&key_of(Some(&old.namespace), &owner));
        }
        vec![Self::ds_ref(&old.namespace, &owner)]
    }

    fn selecting(&self, ns: &str, labels: &BTreeMap<String, String>) -> Triggers {
        self.daemonsets
            .state()
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(ns))
            .filter(|d| {
                d.spec.as_ref().is_some_and(|s| {
                    let empty = s.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && s.selector.match_expressions.as_ref().is_none_or(|m| m.is_empty());
                    !empty && Selector::try_from(s.selector.clone()).is_ok_and(|sel| sel.matches(labels))
                })
            })
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect()
    }
}

fn pod_key(pod: &Pod) -> String {
    key_of(pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref().unwrap_or(""))
}

/// What of a node decides DaemonSet placement: its labels and taints.
fn fingerprint(node: &Node) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.metadata.labels.hash(&mut h);
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    serde_json::to_string(&taints).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Node-event handler state.
pub struct NodeTracker {
    daemonsets: Store<DaemonSet>,
    nodes: HashMap<String, u64>,
    listing: Option<HashMap<String, u64>>,
}

impl NodeTracker {
    pub fn new(daemonsets: Store<DaemonSet>) -> Self {
        Self { daemonsets, nodes: HashMap::new(), listing: None }
    }

    fn all(&self) -> Triggers {
        self.daemonsets.state().iter().map(|d| ObjectRef::from_obj(d.as_ref())).collect()
    }

    /// Handles one watcher event; returns the DaemonSets to sync.
    pub fn handle(&mut self, event: watcher::Event<Node>) -> Triggers {
        match event {
            watcher::Event::Init => {
                self.listing = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                self.listing.get_or_insert_with(HashMap::new).insert(name, fingerprint(&node));
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let changed = listed != self.nodes;
                self.nodes = listed;
                if changed { self.all() } else { Vec::new() }
            }
            watcher::Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                let fp = fingerprint(&node);
                if self.nodes.insert(name, fp) == Some(fp) { Vec::new() } else { self.all() }
            }
            watcher::Event::Delete(node) => {
                self.nodes.remove(node.metadata.name.as_deref().unwrap_or(""));
                self.all()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use kube::runtime::reflector;

    fn ds_store(names: &[&str]) -> Store<DaemonSet> {
        let (reader, mut writer) = reflector::store::<DaemonSet>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for n in names {
            let ds: DaemonSet = serde_json::from_value(serde_json::json!({
                "metadata": {"name": n, "namespace": "ns"},
                "spec": {"selector": {"matchLabels": {"app": n}}, "template": {}}
            }))
            .unwrap_or_default();
            writer.apply_watcher_event(&watcher::Event::InitApply(ds));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        reader
    }

    fn pod(name: &str, owner: Option<&str>, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: owner.map(|o| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "DaemonSet".into(),
                        name: o.into(),
                        uid: "x".into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(t: &Triggers) -> Vec<String> {
        t.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn pod_events_observe_expectations_and_wake_owners() {
        let exp = ControllerExpectations::new();
        let mut t = PodTracker::new(ds_store(&["a", "b"]), exp.clone());
        exp.set("ns/a", 1, 1);
        assert_eq!(names(&t.handle(watcher::Event::Apply(pod("p1", Some("a"), "a")))), ["a"]);
        assert_eq!(exp.get("ns/a"), Some((0, 1)));
        // A status update does not count again.
        t.handle(watcher::Event::Apply(pod("p1", Some("a"), "a")));
        assert_eq!(exp.get("ns/a"), Some((0, 1)));
        // Graceful deletion counts once, at the deletionTimestamp.
        let mut deleting = pod("p1", Some("a"), "a");
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        t.handle(watcher::Event::Apply(deleting.clone()));
        assert!(exp.satisfied("ns/a"));
        exp.set("ns/a", 0, 1);
        assert_eq!(names(&t.handle(watcher::Event::Delete(deleting))), ["a"]);
        assert_eq!(exp.get("ns/a"), Some((0, 1)));
        // Orphans wake the DaemonSets selecting them.
        assert_eq!(names(&t.handle(watcher::Event::Apply(pod("o", None, "b")))), ["b"]);
        assert!(t.handle(watcher::Event::Apply(pod("o", None, "b"))).is_empty());
        assert!(t.handle(watcher::Event::Apply(pod("o2", None, "zzz"))).is_empty());
    }

    #[test]
    fn relists_count_missing_pods_as_deleted() {
        let exp = ControllerExpectations::new();
        let mut t = PodTracker::new(ds_store(&["a"]), exp.clone());
        t.handle(watcher::Event::Apply(pod("p1", Some("a"), "a")));
        exp.set("ns/a", 0, 1);
        t.handle(watcher::Event::Init);
        assert!(t.handle(watcher::Event::InitApply(pod("p2", Some("a"), "a"))).is_empty());
        let out = t.handle(watcher::Event::InitDone);
        assert!(names(&out).iter().all(|n| n == "a") && !out.is_empty());
        assert!(exp.satisfied("ns/a"));
    }

    #[test]
    fn only_placement_relevant_node_changes_wake_daemonsets() {
        let mut t = NodeTracker::new(ds_store(&["a", "b"]));
        let mut n =
            Node { metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() }, ..Default::default() };
        assert_eq!(t.handle(watcher::Event::Apply(n.clone())).len(), 2);
        // A heartbeat (status only) wakes nobody.
        n.status = Some(Default::default());
        assert!(t.handle(watcher::Event::Apply(n.clone())).is_empty());
        n.spec = Some(NodeSpec {
            taints: Some(vec![Taint { key: "k".into(), effect: "NoSchedule".into(), ..Default::default() }]),
            ..Default::default()
        });
        assert_eq!(t.handle(watcher::Event::Apply(n.clone())).len(), 2);
        n.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        assert_eq!(t.handle(watcher::Event::Apply(n.clone())).len(), 2);
        assert_eq!(t.handle(watcher::Event::Delete(n)).len(), 2);
    }
}
