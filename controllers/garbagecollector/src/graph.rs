//! The dependency graph (upstream's GraphBuilder state): one node per object
//! uid seen by a monitor, edges owner → dependents from ownerReferences, and
//! "virtual" nodes for owners referenced but not (yet) observed. Pure state:
//! every change returns the work it triggers (attempt-to-delete or
//! attempt-to-orphan a uid); the caller enqueues it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{BTreeSet, HashMap, HashSet};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// Which object a node stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// The namespace; for a virtual node, the namespace of the dependent that
    /// referenced it (ignored when the kind turns out cluster-scoped).
    pub namespace: Option<String>,
    pub uid: String,
}

impl Identity {
    fn from_owner_ref(r: &OwnerReference, namespace: Option<&str>) -> Self {
        Self {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: namespace.map(str::to_string),
            uid: r.uid.clone(),
        }
    }

    /// Whether an ownerReference names this object (coordinates only; the
    /// version part of apiVersion may differ).
    pub fn matches_ref(&self, r: &OwnerReference) -> bool {
        let group = |av: &str| crate::discovery::split_api_version(av).0.to_string();
        self.uid == r.uid
            && self.kind == r.kind
            && self.name == r.name
            && group(&self.api_version) == group(&r.api_version)
    }
}

/// Work the graph asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// attemptToDelete: check whether this object is garbage (or a foreground
    /// owner whose dependents are gone).
    Delete(String),
    /// attemptToOrphan: strip this owner from its dependents, then drop its
    /// `orphan` finalizer.
    Orphan(String),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub identity: Identity,
    /// The monitor (resource key) that observed it; None while virtual.
    pub resource: Option<String>,
    pub owners: Vec<OwnerReference>,
    pub dependents: BTreeSet<String>,
    pub being_deleted: bool,
    pub deleting_dependents: bool,
    pub orphaning: bool,
    pub virtual_: bool,
}

/// What a worker needs to know about a node, copied out of the graph.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub identity: Identity,
    pub virtual_: bool,
    pub being_deleted: bool,
    pub deleting_dependents: bool,
    /// Every dependent: (uid, identity, whether it is itself deleting its dependents).
    pub dependents: Vec<(String, Identity, bool)>,
    /// Dependents whose reference to this node has blockOwnerDeletion=true.
    pub blocking: Vec<(String, bool)>,
}

/// Owners known not to exist (uid + coordinates), so repeated checks skip the GET.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AbsentKey {
    pub uid: String,
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl AbsentKey {
    pub fn of(r: &OwnerReference, namespace: Option<&str>) -> Self {
        Self {
            uid: r.uid.clone(),
            group: crate::discovery::split_api_version(&r.api_version).0.to_string(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: namespace.map(str::to_string),
        }
    }

    fn of_identity(id: &Identity) -> Self {
        Self {
            uid: id.uid.clone(),
            group: crate::discovery::split_api_version(&id.api_version).0.to_string(),
            kind: id.kind.clone(),
            name: id.name.clone(),
            namespace: id.namespace.clone(),
        }
    }
}

const ABSENT_CACHE_MAX: usize = 10_000;

#[derive(Default, Debug)]
pub struct Graph {
    pub nodes: HashMap<String, Node>,
    absent: HashSet<AbsentKey>,
}

fn has(finalizers: &Option<Vec<String>>, f: &str) -> bool {
    finalizers.as_ref().is_some_and(|v| v.iter().any(|x| x == f))
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

impl Graph {
    pub fn is_absent(&self, key: &AbsentKey) -> bool {
        self.absent.contains(key)
    }

    pub fn mark_absent(&mut self, key: AbsentKey) {
        if self.absent.len() >= ABSENT_CACHE_MAX {
            self.absent.clear();
        }
        self.absent.insert(key);
    }

    /// An object seen by the monitor `resource` (add or update).
    pub fn observe(&mut self, resource: &str, api_version: &str, kind: &str, meta: &ObjectMeta) -> Vec<Work> {
        let mut work = Vec::new();
        let Some(uid) = meta.uid.clone().filter(|u| !u.is_empty()) else { return work };
        let identity = Identity {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            uid: uid.clone(),
        };
        let owners = meta.owner_references.clone().unwrap_or_default();
        let being_deleted = meta.deletion_timestamp.is_some();
        let deleting_dependents = being_deleted && has(&meta.finalizers, FOREGROUND);
        let orphaning = being_deleted && has(&meta.finalizers, ORPHAN);

        let (old_owners, old_deleting, old_orphaning) = match self.nodes.get_mut(&uid) {
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: identity.clone(),
                        resource: Some(resource.to_string()),
                        owners: owners.clone(),
                        dependents: BTreeSet::new(),
                        being_deleted,
                        deleting_dependents,
                        orphaning,
                        virtual_: false,
                    },
                );
                (Vec::new(), false, false)
            }
            Some(node) => {
                if node.virtual_ {
                    node.virtual_ = false;
                    // Dependents that referenced this uid with other coordinates
                    // point at something that does not exist: let them be checked.
                    if node.identity != identity {
                        work.extend(node.dependents.iter().cloned().map(Work::Delete));
                    }
                }
                node.identity = identity.clone();
                node.resource = Some(resource.to_string());
                let old =
                    (std::mem::replace(&mut node.owners, owners.clone()), node.deleting_dependents, node.orphaning);
                node.being_deleted = being_deleted;
                node.deleting_dependents = deleting_dependents;
                node.orphaning = orphaning;
                old
            }
        };

        // Owner edges: added, removed, changed.
        for r in &owners {
            match old_owners.iter().find(|o| o.uid == r.uid) {
                None => self.add_dependent_to_owner(r, &uid, identity.namespace.as_deref(), &mut work),
                Some(o) => {
                    if blocks(o) && !blocks(r) {
                        self.enqueue_if_deleting_dependents(&r.uid, &mut work);
                    }
                }
            }
        }
        for o in &old_owners {
            if !owners.iter().any(|r| r.uid == o.uid) {
                if let Some(owner) = self.nodes.get_mut(&o.uid) {
                    owner.dependents.remove(&uid);
                }
                if blocks(o) {
                    self.enqueue_if_deleting_dependents(&o.uid, &mut work);
                }
            }
        }

        // Transitions (upstream's processTransitions).
        if orphaning && !old_orphaning {
            work.push(Work::Orphan(uid.clone()));
        } else if deleting_dependents && !old_deleting {
            if let Some(node) = self.nodes.get(&uid) {
                work.extend(node.dependents.iter().cloned().map(Work::Delete));
            }
            work.push(Work::Delete(uid.clone()));
        }
        work
    }

    fn enqueue_if_deleting_dependents(&self, uid: &str, work: &mut Vec<Work>) {
        if self.nodes.get(uid).is_some_and(|n| n.deleting_dependents) {
            work.push(Work::Delete(uid.to_string()));
        }
    }

    fn add_dependent_to_owner(&mut self, r: &OwnerReference, dep: &str, dep_ns: Option<&str>, work: &mut Vec<Work>) {
        match self.nodes.get_mut(&r.uid) {
            Some(owner) => {
                owner.dependents.insert(dep.to_string());
                // An observed owner whose coordinates differ from the reference
                // (another namespace, kind or name): the dependent's owner is
                // really absent; let attemptToDelete verify it.
                let ns_mismatch = owner.identity.namespace.is_some() && owner.identity.namespace.as_deref() != dep_ns;
                if !owner.virtual_ && (ns_mismatch || !owner.identity.matches_ref(r)) {
                    work.push(Work::Delete(dep.to_string()));
                }
            }
            None => {
                let mut dependents = BTreeSet::new();
                dependents.insert(dep.to_string());
                self.nodes.insert(
                    r.uid.clone(),
                    Node {
                        identity: Identity::from_owner_ref(r, dep_ns),
                        resource: None,
                        owners: Vec::new(),
                        dependents,
                        being_deleted: false,
                        deleting_dependents: false,
                        orphaning: false,
                        virtual_: true,
                    },
                );
                work.push(Work::Delete(r.uid.clone()));
            }
        }
    }

    /// An object's deletion was observed (or a virtual owner was verified absent
    /// with the same coordinates): drop it; its dependents and its waiting
    /// foreground owners get another look.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let mut work = Vec::new();
        let Some(node) = self.nodes.remove(uid) else { return work };
        for o in &node.owners {
            if let Some(owner) = self.nodes.get_mut(&o.uid) {
                owner.dependents.remove(uid);
                if owner.deleting_dependents {
                    work.push(Work::Delete(o.uid.clone()));
                }
            }
        }
        if !node.dependents.is_empty() {
            self.mark_absent(AbsentKey::of_identity(&node.identity));
        }
        work.extend(node.dependents.iter().cloned().map(Work::Delete));
        work
    }

    /// A live lookup found no object with `deleted`'s coordinates and uid
    /// (upstream's virtual delete event).
    pub fn virtual_delete(&mut self, deleted: &Identity) -> Vec<Work> {
        let Some(node) = self.nodes.get(&deleted.uid) else { return Vec::new() };
        if node.virtual_ {
            // Dependents may disagree on the coordinates of a virtual owner:
            // only those that match the verified-absent ones are settled.
            let (matching, other): (Vec<String>, Vec<String>) =
                node.dependents.iter().cloned().partition(|d| self.dependent_refers_with(d, deleted));
            if other.is_empty() {
                return self.remove(&deleted.uid);
            }
            self.mark_absent(AbsentKey::of_identity(deleted));
            // Keep the node, re-pointed at coordinates still unverified.
            let next = other.first().and_then(|d| self.reference_from(d, &deleted.uid));
            if let (Some(n), Some(id)) = (self.nodes.get_mut(&deleted.uid), next) {
                n.identity = id;
            }
            let mut work: Vec<Work> = matching.into_iter().map(Work::Delete).collect();
            work.push(Work::Delete(deleted.uid.clone()));
            return work;
        }
        if node.identity == *deleted {
            return self.remove(&deleted.uid);
        }
        // The observed object disagrees with the verified-absent coordinates:
        // keep it, and let the dependents that used those coordinates go.
        let matching: Vec<String> =
            node.dependents.iter().filter(|d| self.dependent_refers_with(d, deleted)).cloned().collect();
        if !matching.is_empty() {
            self.mark_absent(AbsentKey::of_identity(deleted));
        }
        matching.into_iter().map(Work::Delete).collect()
    }

    fn dependent_refers_with(&self, dep: &str, owner: &Identity) -> bool {
        self.nodes.get(dep).is_some_and(|d| {
            d.owners.iter().any(|r| owner.matches_ref(r))
                && (owner.namespace.is_none() || d.identity.namespace == owner.namespace)
        })
    }

    fn reference_from(&self, dep: &str, owner_uid: &str) -> Option<Identity> {
        let d = self.nodes.get(dep)?;
        let r = d.owners.iter().find(|r| r.uid == owner_uid)?;
        Some(Identity::from_owner_ref(r, d.identity.namespace.as_deref()))
    }

    /// Nodes observed through `resource` whose uid is not in `present`
    /// (deleted while a watch was down): removed as if deleted.
    pub fn prune(&mut self, resource: &str, present: &HashSet<String>) -> Vec<Work> {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, n)| n.resource.as_deref() == Some(resource) && !present.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().flat_map(|uid| self.remove(uid)).collect()
    }

    pub fn snapshot(&self, uid: &str) -> Option<Snapshot> {
        let n = self.nodes.get(uid)?;
        let mut dependents = Vec::new();
        let mut blocking = Vec::new();
        for d in &n.dependents {
            let Some(dn) = self.nodes.get(d) else { continue };
            dependents.push((d.clone(), dn.identity.clone(), dn.deleting_dependents));
            if dn.owners.iter().any(|r| r.uid == uid && blocks(r)) {
                blocking.push((d.clone(), dn.deleting_dependents));
            }
        }
        Some(Snapshot {
            identity: n.identity.clone(),
            virtual_: n.virtual_,
            being_deleted: n.being_deleted,
            deleting_dependents: n.deleting_dependents,
            dependents,
            blocking,
        })
    }

    pub fn is_observed(&self, uid: &str) -> Option<bool> {
        self.nodes.get(uid).map(|n| !n.virtual_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn oref(name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn meta(name: &str, uid: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..Default::default()
        }
    }

    fn deleting(mut m: ObjectMeta, finalizer: &str) -> ObjectMeta {
        m.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        m.finalizers = Some(vec![finalizer.to_string()]);
        m
    }

    const R: &str = "/v1/configmaps";

    #[test]
    fn dependent_before_owner_creates_virtual_owner_then_observes_it() {
        let mut g = Graph::default();
        let w = g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", false)]));
        assert_eq!(w, vec![Work::Delete("ua".into())]);
        assert_eq!(g.is_observed("ua"), Some(false));
        assert!(g.nodes["ua"].dependents.contains("ub"));
        let w = g.observe(R, "v1", "ConfigMap", &meta("a", "ua", vec![]));
        assert!(w.is_empty());
        assert_eq!(g.is_observed("ua"), Some(true));
    }

    #[test]
    fn owner_deletion_enqueues_dependents_and_marks_absent() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &meta("a", "ua", vec![]));
        g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", false)]));
        g.observe(R, "v1", "ConfigMap", &meta("c", "uc", vec![oref("a", "ua", false)]));
        let mut w = g.remove("ua");
        w.sort();
        assert_eq!(w, vec![Work::Delete("ub".into()), Work::Delete("uc".into())]);
        assert!(g.is_absent(&AbsentKey::of(&oref("a", "ua", false), Some("ns"))));
        assert!(!g.nodes.contains_key("ua"));
    }

    #[test]
    fn foreground_transition_enqueues_dependents_and_self_once() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &meta("a", "ua", vec![]));
        g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", true)]));
        let w = g.observe(R, "v1", "ConfigMap", &deleting(meta("a", "ua", vec![]), FOREGROUND));
        assert_eq!(w, vec![Work::Delete("ub".into()), Work::Delete("ua".into())]);
        let s = g.snapshot("ua").expect("node");
        assert!(s.deleting_dependents);
        assert_eq!(s.blocking, vec![("ub".to_string(), false)]);
        // Same state again: no new transition.
        let w = g.observe(R, "v1", "ConfigMap", &deleting(meta("a", "ua", vec![]), FOREGROUND));
        assert!(w.is_empty());
        // The blocking dependent goes: the owner is looked at again.
        assert_eq!(g.remove("ub"), vec![Work::Delete("ua".into())]);
        assert!(g.snapshot("ua").expect("node").blocking.is_empty());
    }

    #[test]
    fn orphan_transition_enqueues_orphan() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &meta("a", "ua", vec![]));
        let w = g.observe(R, "v1", "ConfigMap", &deleting(meta("a", "ua", vec![]), ORPHAN));
        assert_eq!(w, vec![Work::Orphan("ua".into())]);
        // Seen first in that state (e.g. after a restart): still enqueued.
        let mut g = Graph::default();
        let w = g.observe(R, "v1", "ConfigMap", &deleting(meta("a", "ua", vec![]), ORPHAN));
        assert_eq!(w, vec![Work::Orphan("ua".into())]);
    }

    #[test]
    fn unblocking_or_dropping_a_reference_requeues_a_waiting_owner() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &deleting(meta("a", "ua", vec![]), FOREGROUND));
        g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", true)]));
        let w = g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", false)]));
        assert_eq!(w, vec![Work::Delete("ua".into())]);
        g.observe(R, "v1", "ConfigMap", &meta("c", "uc", vec![oref("a", "ua", true)]));
        let w = g.observe(R, "v1", "ConfigMap", &meta("c", "uc", vec![]));
        assert_eq!(w, vec![Work::Delete("ua".into())]);
        assert_eq!(g.nodes["ua"].dependents.iter().cloned().collect::<Vec<_>>(), vec!["ub".to_string()]);
    }

    #[test]
    fn virtual_delete_removes_virtual_owner_and_enqueues_dependents() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", false)]));
        let id = g.nodes["ua"].identity.clone();
        assert_eq!(g.virtual_delete(&id), vec![Work::Delete("ub".into())]);
        assert!(!g.nodes.contains_key("ua"));
    }

    #[test]
    fn virtual_delete_with_other_coordinates_keeps_observed_node() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &meta("a", "ua", vec![]));
        // A dependent claiming owner uid "ua" but under another name.
        let w = g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("wrong", "ua", false)]));
        assert_eq!(w, vec![Work::Delete("ub".into())]);
        let wrong = Identity::from_owner_ref(&oref("wrong", "ua", false), Some("ns"));
        assert_eq!(g.virtual_delete(&wrong), vec![Work::Delete("ub".into())]);
        assert!(g.nodes.contains_key("ua"));
    }

    #[test]
    fn prune_removes_unlisted_nodes_of_that_resource_only() {
        let mut g = Graph::default();
        g.observe(R, "v1", "ConfigMap", &meta("a", "ua", vec![]));
        g.observe(R, "v1", "ConfigMap", &meta("b", "ub", vec![oref("a", "ua", false)]));
        g.observe("/v1/secrets", "v1", "Secret", &meta("s", "us", vec![]));
        let present: HashSet<String> = ["ub".to_string()].into();
        let w = g.prune(R, &present);
        assert_eq!(w, vec![Work::Delete("ub".into())]);
        assert!(g.nodes.contains_key("us"));
        assert!(!g.nodes.contains_key("ua"));
    }
}
