//! Which budgets to sync when a pod or a workload changes (upstream's addPod / updatePod /
//! deletePod handlers, which enqueue the budgets selecting the pod).
//!
//! A pod event syncs every budget of its namespace selecting the pod now or selecting it before
//! (a relabelled pod leaves one budget and joins another). A workload (Deployment, ReplicaSet,
//! StatefulSet, ReplicationController) event syncs the budgets selecting its pod template, since
//! its scale is the expected pod count of `maxUnavailable` and percentage budgets (upstream only
//! notices that through its pod events; this is faster and costs only a cache read).
//!
//! Budget selectors follow policy/v1: a missing selector selects nothing, an empty one selects
//! every pod of the namespace.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// Whether the budget's selector selects these labels (policy/v1 semantics). An invalid selector
/// selects nothing.
pub fn selects(pdb: &PodDisruptionBudget, labels: &Labels) -> bool {
    match pdb.spec.as_ref().and_then(|s| s.selector.clone()) {
        None => false,
        Some(sel) => Selector::try_from(sel).is_ok_and(|s| s.matches(labels)),
    }
}

/// The budgets in `namespace` selecting any of the label sets.
pub fn budgets_selecting(
    budgets: &Store<PodDisruptionBudget>,
    namespace: &str,
    label_sets: &[&Labels],
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    budgets
        .state()
        .iter()
        .filter(|b| b.metadata.namespace.as_deref() == Some(namespace))
        .filter(|b| label_sets.iter().any(|l| selects(b, l)))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Pod-event handler state: the labels last seen of every pod (to notice relabelling and
/// deletions missed during a relist).
pub struct PodTracker {
    budgets: Store<PodDisruptionBudget>,
    pods: HashMap<String, (String, Labels)>,
    listing: Option<HashSet<String>>,
}

impl PodTracker {
    pub fn new(budgets: Store<PodDisruptionBudget>) -> Self {
        Self { budgets, pods: HashMap::new(), listing: None }
    }

    /// Handles one watcher event; returns the budgets to sync.
    pub fn handle(&mut self, event: watcher::Event<Pod>) -> Vec<ObjectRef<PodDisruptionBudget>> {
        let mut out = Vec::new();
        match event {
            watcher::Event::Init => self.listing = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                let k = self.apply(&pod, &mut out);
                self.listing.get_or_insert_with(HashSet::new).insert(k);
            }
            watcher::Event::InitDone => {
                let seen = self.listing.take().unwrap_or_default();
                let gone: Vec<String> = self.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for k in gone {
                    if let Some((ns, labels)) = self.pods.remove(&k) {
                        out.extend(budgets_selecting(&self.budgets, &ns, &[&labels]));
                    }
                }
            }
            watcher::Event::Apply(pod) => {
                self.apply(&pod, &mut out);
            }
            watcher::Event::Delete(pod) => {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let k = key(&ns, pod.metadata.name.as_deref().unwrap_or_default());
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let old = self.pods.remove(&k).map(|(_, l)| l);
                let mut sets = vec![&labels];
                if let Some(old) = old.as_ref() {
                    sets.push(old);
                }
                out.extend(budgets_selecting(&self.budgets, &ns, &sets));
            }
        }
        dedup(out)
    }

    fn apply(&mut self, pod: &Pod, out: &mut Vec<ObjectRef<PodDisruptionBudget>>) -> String {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let k = key(&ns, pod.metadata.name.as_deref().unwrap_or_default());
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let old = self.pods.insert(k.clone(), (ns.clone(), labels.clone())).map(|(_, l)| l);
        let mut sets = vec![&labels];
        if let Some(old) = old.as_ref().filter(|o| **o != labels) {
            sets.push(old);
        }
        out.extend(budgets_selecting(&self.budgets, &ns, &sets));
        k
    }
}

/// Removes repeated references, keeping the first.
pub fn dedup(refs: Vec<ObjectRef<PodDisruptionBudget>>) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let mut seen = HashSet::new();
    refs.into_iter().filter(|r| seen.insert(r.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::{Value, json};

    fn pdb(name: &str, selector: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"minAvailable": 1, "selector": selector}
        }))
        .unwrap_or_default()
    }

    fn pod(name: &str, app: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": app}}}))
            .unwrap_or_default()
    }

    fn names(refs: Vec<ObjectRef<PodDisruptionBudget>>) -> Vec<String> {
        let mut v: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        v.sort();
        v
    }

    fn store() -> Store<PodDisruptionBudget> {
        let (reader, mut writer) = reflector::store::<PodDisruptionBudget>();
        writer.apply_watcher_event(&Event::Apply(pdb("web", json!({"matchLabels": {"app": "web"}}))));
        writer.apply_watcher_event(&Event::Apply(pdb("db", json!({"matchLabels": {"app": "db"}}))));
        writer.apply_watcher_event(&Event::Apply(pdb("all", json!({}))));
        let mut none = pdb("none", json!({}));
        if let Some(s) = none.spec.as_mut() {
            s.selector = None;
        }
        writer.apply_watcher_event(&Event::Apply(none));
        reader
    }

    #[test]
    fn pod_events_map_to_selecting_budgets_old_and_new() {
        let mut t = PodTracker::new(store());
        assert_eq!(names(t.handle(Event::Apply(pod("p", "web")))), vec!["all", "web"]);
        // Relabelled: both the budget it left and the one it joined.
        assert_eq!(names(t.handle(Event::Apply(pod("p", "db")))), vec!["all", "db", "web"]);
        assert_eq!(names(t.handle(Event::Delete(pod("p", "db")))), vec!["all", "db"]);
        assert_eq!(names(t.handle(Event::Apply(pod("q", "other")))), vec!["all"]);
    }

    #[test]
    fn relist_reports_pods_that_vanished() {
        let mut t = PodTracker::new(store());
        t.handle(Event::Apply(pod("gone", "db")));
        t.handle(Event::Apply(pod("kept", "web")));
        assert!(t.handle(Event::Init).is_empty());
        assert_eq!(names(t.handle(Event::InitApply(pod("kept", "web")))), vec!["all", "web"]);
        assert_eq!(names(t.handle(Event::InitDone)), vec!["all", "db"]);
    }
}
