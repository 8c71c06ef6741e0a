//! Turns pod watch events into ReplicaSets to sync, and records observed creations / deletions in
//! the expectations — upstream's addPod / updatePod / deletePod handlers:
//!
//! - a pod with a controller reference to a known ReplicaSet (same UID) triggers that ReplicaSet;
//!   its first appearance is an observed creation;
//! - a pod that gets a `deletionTimestamp`, or disappears, is an observed deletion;
//! - when a pod's controller reference changes, the former controller is synced too;
//! - an orphan that appears or whose labels change triggers every ReplicaSet in its namespace whose
//!   selector matches it (they may adopt it).
//!
//! The tracker keeps a small snapshot of each pod (UID, labels, controller, resourceVersion) to
//! compare against, since a watch event carries only the new state. Events of an initial (re)list
//! are held until the list is complete, so that syncs see the new cache; pods missing from a relist
//! count as deleted.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use rkube_controller_common::expectations::ControllerExpectations;
use rkube_controller_common::key_of;
use rkube_controller_common::owner::controller_of;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    uid: String,
    resource_version: Option<String>,
    labels: BTreeMap<String, String>,
    controller: Option<OwnerReference>,
    deleting: bool,
}

impl Snapshot {
    fn of(pod: &Pod) -> Self {
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            resource_version: pod.metadata.resource_version.clone(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            controller: controller_of(&pod.metadata).cloned(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Pod-event handler state.
pub struct PodTracker {
    replicasets: Store<ReplicaSet>,
    expectations: ControllerExpectations,
    /// Pods by `namespace/name`.
    pods: HashMap<String, (String, Snapshot)>,
    /// Pods of an initial list in progress.
    listing: Option<Vec<Pod>>,
}

type Triggers = Vec<ObjectRef<ReplicaSet>>;

impl PodTracker {
    pub fn new(replicasets: Store<ReplicaSet>, expectations: ControllerExpectations) -> Self {
        Self { replicasets, expectations, pods: HashMap::new(), listing: None }
    }

    /// Handles one watcher event (already applied to the pod cache); returns the ReplicaSets to sync.
    pub fn handle(&mut self, event: watcher::Event<Pod>) -> Triggers {
        match event {
            watcher::Event::Init => {
                self.listing = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(pod) => {
                match self.listing.as_mut() {
                    Some(list) => list.push(pod),
                    None => self.listing = Some(vec![pod]),
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let mut out = Vec::new();
                let seen: HashSet<String> = listed.iter().map(pod_key).collect();
                let gone: Vec<(String, String, Snapshot)> = self
                    .pods
                    .iter()
                    .filter(|(k, _)| !seen.contains(*k))
                    .map(|(k, (ns, s))| (k.clone(), ns.clone(), s.clone()))
                    .collect();
                for (key, ns, snap) in gone {
                    self.pods.remove(&key);
                    out.extend(self.deleted(&ns, &key, &snap));
                }
                for pod in listed {
                    out.extend(self.applied(&pod));
                }
                dedup(out)
            }
            watcher::Event::Apply(pod) => self.applied(&pod),
            watcher::Event::Delete(pod) => {
                let key = pod_key(&pod);
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let snap = self.pods.remove(&key).map(|(_, s)| s).unwrap_or_else(|| Snapshot::of(&pod));
                // The final state is the freshest view of the controller reference.
                let last = Snapshot::of(&pod);
                let mut out = self.deleted(&ns, &key, &last);
                if snap.controller != last.controller {
                    out.extend(self.deleted(&ns, &key, &snap));
                }
                dedup(out)
            }
        }
    }

    fn applied(&mut self, pod: &Pod) -> Triggers {
        let key = pod_key(pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let cur = Snapshot::of(pod);
        let old = self.pods.insert(key.clone(), (ns.clone(), cur.clone())).map(|(_, s)| s);
        match old {
            None => self.added(&ns, &key, &cur),
            Some(old) if old.uid != cur.uid => {
                // Deleted and re-created under the same name between two events.
                let mut out = self.deleted(&ns, &key, &old);
                out.extend(self.added(&ns, &key, &cur));
                dedup(out)
            }
            Some(old) => self.updated(&ns, &key, &old, &cur),
        }
    }

    fn added(&self, ns: &str, key: &str, cur: &Snapshot) -> Triggers {
        if cur.deleting {
            // A pod seen for the first time already terminating (e.g. after a restart).
            return self.deleted(ns, key, cur);
        }
        match &cur.controller {
            Some(cref) => match self.resolve(ns, cref) {
                Some(rs) => {
                    self.expectations.creation_observed(&key_of(Some(ns), &rs.name));
                    vec![rs]
                }
                None => Vec::new(),
            },
            None => self.matching(ns, &cur.labels),
        }
    }

    fn updated(&self, ns: &str, key: &str, old: &Snapshot, cur: &Snapshot) -> Triggers {
        if old.resource_version.is_some() && old.resource_version == cur.resource_version {
            return Vec::new();
        }
        let labels_changed = old.labels != cur.labels;
        if cur.deleting {
            let mut out = self.deleted(ns, key, cur);
            if labels_changed || old.controller != cur.controller {
                out.extend(self.deleted(ns, key, old));
            }
            return dedup(out);
        }
        let mut out = Vec::new();
        let controller_changed = old.controller != cur.controller;
        if controller_changed && let Some(old_ref) = &old.controller {
            out.extend(self.resolve(ns, old_ref));
        }
        match &cur.controller {
            Some(cref) => out.extend(self.resolve(ns, cref)),
            None => {
                if labels_changed || controller_changed {
                    out.extend(self.matching(ns, &cur.labels));
                }
            }
        }
        dedup(out)
    }

    fn deleted(&self, ns: &str, key: &str, snap: &Snapshot) -> Triggers {
        let Some(cref) = &snap.controller else { return Vec::new() };
        match self.resolve(ns, cref) {
            Some(rs) => {
                self.expectations.deletion_observed_of(&key_of(Some(ns), &rs.name), key);
                vec![rs]
            }
            None => Vec::new(),
        }
    }

    /// Upstream's `resolveControllerRef`: a ReplicaSet of that name whose UID matches.
    fn resolve(&self, ns: &str, cref: &OwnerReference) -> Option<ObjectRef<ReplicaSet>> {
        if cref.kind != "ReplicaSet" || !cref.api_version.starts_with("apps/") {
            return None;
        }
        let oref = ObjectRef::new(&cref.name).within(ns);
        let rs = self.replicasets.get(&oref)?;
        (rs.metadata.uid.as_deref() == Some(cref.uid.as_str())).then_some(oref)
    }

    /// Upstream's `getPodReplicaSets`: ReplicaSets in the namespace whose (non-empty) selector
    /// matches the labels.
    fn matching(&self, ns: &str, labels: &BTreeMap<String, String>) -> Triggers {
        self.replicasets
            .state()
            .iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns))
            .filter(|rs| {
                let Some(sel) = rs.spec.as_ref().map(|s| s.selector.clone()) else { return false };
                match Selector::try_from(sel) {
                    Ok(sel) => !sel.selects_all() && sel.matches(labels),
                    Err(_) => false,
                }
            })
            .filter_map(|rs| rs.metadata.name.as_ref().map(|n| ObjectRef::new(n).within(ns)))
            .collect()
    }
}

fn pod_key(pod: &Pod) -> String {
    key_of(pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref().unwrap_or(""))
}

fn dedup(mut refs: Triggers) -> Triggers {
    let mut seen = HashSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;
    use kube::runtime::reflector;

    fn rs(name: &str, uid: &str, app: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), app.into())])),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, rv: &str, app: &str, owner: Option<(&str, &str)>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some(rv.into()),
                labels: Some(BTreeMap::from([("app".into(), app.into())])),
                owner_references: owner.map(|(n, u)| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: n.into(),
                        uid: u.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn tracker(sets: Vec<ReplicaSet>) -> (PodTracker, ControllerExpectations) {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for s in sets {
            writer.apply_watcher_event(&watcher::Event::InitApply(s));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let exp = ControllerExpectations::new();
        (PodTracker::new(reader, exp.clone()), exp)
    }

    fn names(t: Triggers) -> Vec<String> {
        let mut v: Vec<String> = t.into_iter().map(|r| r.name).collect();
        v.sort();
        v
    }

    #[test]
    fn owned_pod_creation_is_observed() {
        let (mut t, exp) = tracker(vec![rs("web", "u1", "web")]);
        exp.expect_creations("ns/web", 2);
        let out = t.handle(watcher::Event::Apply(pod("a", "1", "web", Some(("web", "u1")))));
        assert_eq!(names(out), ["web"]);
        assert_eq!(exp.get("ns/web"), Some((1, 0)));
        // An update is not a second creation.
        let out = t.handle(watcher::Event::Apply(pod("a", "2", "web", Some(("web", "u1")))));
        assert_eq!(names(out), ["web"]);
        assert_eq!(exp.get("ns/web"), Some((1, 0)));
        // Same resourceVersion again (resync): nothing.
        assert!(t.handle(watcher::Event::Apply(pod("a", "2", "web", Some(("web", "u1"))))).is_empty());
    }

    #[test]
    fn stale_owner_uid_does_not_resolve() {
        let (mut t, exp) = tracker(vec![rs("web", "u1", "web")]);
        exp.expect_creations("ns/web", 1);
        let out = t.handle(watcher::Event::Apply(pod("a", "1", "web", Some(("web", "old-uid")))));
        assert!(out.is_empty());
        assert_eq!(exp.get("ns/web"), Some((1, 0)));
    }

    #[test]
    fn graceful_then_final_delete_counts_once() {
        let (mut t, exp) = tracker(vec![rs("web", "u1", "web")]);
        t.handle(watcher::Event::Apply(pod("a", "1", "web", Some(("web", "u1")))));
        exp.expect_deletions_of("ns/web", ["ns/a".to_string()]);
        let mut terminating = pod("a", "2", "web", Some(("web", "u1")));
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert_eq!(names(t.handle(watcher::Event::Apply(terminating.clone()))), ["web"]);
        assert!(exp.satisfied("ns/web"));
        assert_eq!(names(t.handle(watcher::Event::Delete(terminating))), ["web"]);
        assert_eq!(exp.get("ns/web"), Some((0, 0)));
    }

    #[test]
    fn orphans_trigger_matching_replicasets() {
        let (mut t, _) = tracker(vec![rs("web", "u1", "web"), rs("db", "u2", "db")]);
        assert_eq!(names(t.handle(watcher::Event::Apply(pod("o", "1", "web", None)))), ["web"]);
        // Relabelled to db: db may adopt it.
        assert_eq!(names(t.handle(watcher::Event::Apply(pod("o", "2", "db", None)))), ["db"]);
        // Unrelated update of an orphan (same labels): nothing.
        assert!(t.handle(watcher::Event::Apply(pod("o", "3", "db", None))).is_empty());
        // Orphan deletion: nothing to do.
        assert!(t.handle(watcher::Event::Delete(pod("o", "4", "db", None))).is_empty());
    }

    #[test]
    fn released_pods_sync_the_former_owner() {
        let (mut t, _) = tracker(vec![rs("web", "u1", "web"), rs("db", "u2", "db")]);
        t.handle(watcher::Event::Apply(pod("a", "1", "web", Some(("web", "u1")))));
        // Released (controller ref removed) and relabelled to db.
        let out = t.handle(watcher::Event::Apply(pod("a", "2", "db", None)));
        assert_eq!(names(out), ["db", "web"]);
    }

    #[test]
    fn relists_hold_triggers_and_detect_missed_deletions() {
        let (mut t, exp) = tracker(vec![rs("web", "u1", "web")]);
        t.handle(watcher::Event::Apply(pod("a", "1", "web", Some(("web", "u1")))));
        t.handle(watcher::Event::Apply(pod("b", "1", "web", Some(("web", "u1")))));
        exp.expect_deletions_of("ns/web", ["ns/b".to_string()]);
        assert!(t.handle(watcher::Event::Init).is_empty());
        assert!(t.handle(watcher::Event::InitApply(pod("a", "1", "web", Some(("web", "u1"))))).is_empty());
        let out = t.handle(watcher::Event::InitDone);
        assert_eq!(names(out), ["web"]);
        assert!(exp.satisfied("ns/web"));
    }
}
