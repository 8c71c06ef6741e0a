//! `PodBehavior` (sim.rkube.io/v1alpha1, cluster-scoped): how simulated pods behave, declaratively.
//!
//! Pods bound to sim nodes that match `selector` (and whose namespace matches `namespaceSelector`)
//! behave as if they carried the `sim.rkube.io/*` annotations the fields stand for; annotations on
//! the pod itself win. When several PodBehaviors match, each field comes from the first one, in
//! name order, that sets it.
//!
//! Cluster-scoped, like kwok's Stage: the behaviour of simulated workloads is a property of the
//! simulated cluster, set once by whoever runs it for pods in every namespace (including the ones
//! Helm charts and tests create on the fly); `namespaceSelector` narrows it when needed, as for
//! admission webhooks. A namespaced kind would force one copy per namespace.
//!
//! [`Behaviors`] is the matching logic (pure), shared by the sim kubelet (exit, readiness, start
//! delay) and anything else that needs a pod's effective behaviour (e.g. metrics usage).

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

use crate::quantity::{Quantity, duration_schema};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use kube::core::{Selector, SelectorExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The pod annotations the sim reads (the sim kubelet's runtime; the apiserver's metrics read the
/// usage ones). A PodBehavior field stands for the annotation of the same meaning.
pub const START_DELAY: &str = "sim.rkube.io/start-delay";
pub const EXIT_AFTER: &str = "sim.rkube.io/exit-after";
pub const EXIT_CODE: &str = "sim.rkube.io/exit-code";
pub const READY: &str = "sim.rkube.io/ready";
pub const RESTARTABLE: &str = "sim.rkube.io/restartable";
pub const CPU_USAGE: &str = "sim.rkube.io/cpu-usage";
pub const MEMORY_USAGE: &str = "sim.rkube.io/memory-usage";

/// Simulated behaviour for the pods a selector picks.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sim.rkube.io",
    version = "v1alpha1",
    kind = "PodBehavior",
    plural = "podbehaviors",
    singular = "podbehavior",
    shortname = "pb",
    category = "sim",
    printcolumn(name = "Exit-After", type_ = "string", json_path = ".spec.exitAfter"),
    printcolumn(name = "Exit-Code", type_ = "integer", json_path = ".spec.exitCode"),
    printcolumn(name = "Ready", type_ = "boolean", json_path = ".spec.ready"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "Simulated behaviour of the pods a label selector picks (rkube sim kubelet)."
)]
#[serde(rename_all = "camelCase")]
pub struct PodBehaviorSpec {
    /// The pods this applies to. An empty selector selects every pod.
    pub selector: LabelSelector,
    /// The namespaces whose pods this applies to; unset means all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Time from the pod's arrival on its node to its containers running (Go duration, e.g. "3s").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub start_delay: Option<String>,
    /// App containers exit this long after each start (Go duration). Unset: they run until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub exit_after: Option<String>,
    /// The exit code of those exits (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 255))]
    pub exit_code: Option<i32>,
    /// Whether running containers report ready (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// True: only a container's first run exits per exitAfter; once restarted (per restartPolicy)
    /// it keeps running, like a transient crash. False/unset: every run exits the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restartable: Option<bool>,
    /// CPU each container reports using (for metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usage: Option<Quantity>,
    /// Memory each container reports using (for metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<Quantity>,
}

/// The label upstream puts on every namespace: its name (so a namespaceSelector can name one).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The annotations a behavior's spec stands for, in a fixed order.
pub fn annotations_of(spec: &PodBehaviorSpec) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(d) = &spec.start_delay {
        out.push((START_DELAY, d.clone()));
    }
    if let Some(d) = &spec.exit_after {
        out.push((EXIT_AFTER, d.clone()));
    }
    if let Some(c) = spec.exit_code {
        out.push((EXIT_CODE, c.to_string()));
    }
    if let Some(r) = spec.ready {
        out.push((READY, r.to_string()));
    }
    if let Some(r) = spec.restartable {
        out.push((RESTARTABLE, r.to_string()));
    }
    if let Some(q) = &spec.cpu_usage {
        out.push((CPU_USAGE, q.0.clone()));
    }
    if let Some(q) = &spec.memory_usage {
        out.push((MEMORY_USAGE, q.0.clone()));
    }
    out
}

struct Compiled {
    /// None: the selector is invalid and selects nothing.
    selector: Option<Selector>,
    /// None: all namespaces; Some(None): invalid, selects nothing.
    namespaces: Option<Option<Selector>>,
    annotations: Vec<(&'static str, String)>,
}

fn compile(sel: &LabelSelector, what: &str, name: &str) -> Option<Selector> {
    match Selector::try_from(sel.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(podbehavior = %name, error = %e, "invalid {what}; the PodBehavior selects nothing");
            None
        }
    }
}

/// The PodBehaviors and namespace labels the pool knows.
#[derive(Default)]
pub struct Behaviors {
    by_name: BTreeMap<String, Compiled>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
}

impl Behaviors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Adds or replaces a behavior.
    pub fn upsert(&mut self, b: &PodBehavior) {
        let Some(name) = b.metadata.name.clone() else { return };
        let compiled = Compiled {
            selector: compile(&b.spec.selector, "selector", &name),
            namespaces: b.spec.namespace_selector.as_ref().map(|s| compile(s, "namespaceSelector", &name)),
            annotations: annotations_of(&b.spec),
        };
        self.by_name.insert(name, compiled);
    }

    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    /// Replaces every behavior (a relist).
    pub fn reset(&mut self, all: &[PodBehavior]) {
        self.by_name.clear();
        for b in all {
            self.upsert(b);
        }
    }

    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_string(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self.namespaces.get(ns).cloned().unwrap_or_default();
        labels.entry(NAMESPACE_NAME_LABEL.to_string()).or_insert_with(|| ns.to_string());
        labels
    }

    /// The annotations matching behaviors give `pod` (keys the pod sets itself are left out).
    pub fn annotations_for(&self, pod: &Pod) -> BTreeMap<String, String> {
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let own = pod.metadata.annotations.as_ref().unwrap_or(&empty);
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        self.annotations_for_parts(ns, labels, own)
    }

    /// [`Self::annotations_for`] from a pod's namespace, labels and own annotations.
    pub fn annotations_for_parts(
        &self,
        ns: &str,
        labels: &BTreeMap<String, String>,
        own: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut ns_labels = None;
        for c in self.by_name.values() {
            if !c.selector.as_ref().is_some_and(|s| s.matches(labels)) {
                continue;
            }
            match &c.namespaces {
                None => {}
                Some(None) => continue,
                Some(Some(sel)) => {
                    let nl = ns_labels.get_or_insert_with(|| self.namespace_labels(ns));
                    if !sel.matches(nl) {
                        continue;
                    }
                }
            }
            for (k, v) in &c.annotations {
                if !own.contains_key(*k) {
                    out.entry(k.to_string()).or_insert_with(|| v.clone());
                }
            }
        }
        out
    }

    /// Adds [`Self::annotations_for`] to the pod; returns the keys added.
    pub fn inject(&self, pod: &mut Pod) -> Vec<String> {
        let add = self.annotations_for(pod);
        if add.is_empty() {
            return Vec::new();
        }
        let keys = add.keys().cloned().collect();
        pod.metadata.annotations.get_or_insert_with(BTreeMap::new).extend(add);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn crd_is_cluster_scoped_with_selector_schema() {
        let crd = serde_json::to_value(PodBehavior::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "podbehaviors.sim.rkube.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        let v = &crd["spec"]["versions"][0];
        let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], json!(["selector"]));
        let sel = &spec["properties"]["selector"]["properties"];
        assert!(sel["matchLabels"].is_object());
        assert!(sel["matchExpressions"].is_object());
        assert_eq!(spec["properties"]["exitAfter"]["type"], "string");
        assert!(spec["properties"]["exitAfter"]["pattern"].is_string());
        assert_eq!(spec["properties"]["exitCode"]["maximum"], 255.0);
        assert_eq!(spec["properties"]["memoryUsage"]["x-kubernetes-int-or-string"], true);
        // Not a status-bearing kind.
        assert!(v["subresources"].get("status").is_none());
    }

    #[test]
    fn spec_round_trips_in_camel_case() {
        let spec: PodBehaviorSpec = serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "crash"}},
            "exitAfter": "2s", "exitCode": 1, "ready": false, "cpuUsage": "250m", "memoryUsage": 1048576,
        }))
        .unwrap();
        assert_eq!(spec.exit_after.as_deref(), Some("2s"));
        assert_eq!(spec.memory_usage, Some(Quantity::new("1048576")));
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["cpuUsage"], "250m");
        assert!(back.get("startDelay").is_none());
    }

    fn behavior(name: &str, spec: serde_json::Value) -> PodBehavior {
        serde_json::from_value(json!({
            "apiVersion": "sim.rkube.io/v1alpha1", "kind": "PodBehavior", "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    }

    fn pod(ns: &str, labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": ns, "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))
        .unwrap()
    }

    #[test]
    fn selected_pods_get_annotations_and_own_annotations_win() {
        let mut b = Behaviors::new();
        b.upsert(&behavior(
            "crash",
            json!({"selector": {"matchLabels": {"app": "crash"}}, "exitAfter": "2s", "exitCode": 1, "ready": false,
                   "restartable": true, "startDelay": "1s", "cpuUsage": "250m", "memoryUsage": 1024}),
        ));
        let mut p = pod("default", json!({"app": "crash"}), json!({EXIT_CODE: "7"}));
        let keys = b.inject(&mut p);
        let a = p.metadata.annotations.clone().unwrap();
        assert_eq!(a[EXIT_AFTER], "2s");
        assert_eq!(a[EXIT_CODE], "7", "the pod's own annotation wins");
        assert_eq!(a[READY], "false");
        assert_eq!(a[RESTARTABLE], "true");
        assert_eq!(a[START_DELAY], "1s");
        assert_eq!(a[CPU_USAGE], "250m");
        assert_eq!(a[MEMORY_USAGE], "1024");
        assert!(!keys.contains(&EXIT_CODE.to_string()));
        let own = p.metadata.annotations.as_mut().unwrap();
        keys.iter().for_each(|k| {
            own.remove(k);
        });
        assert_eq!(p.metadata.annotations.unwrap().len(), 1);
        // Not selected.
        let other = pod("default", json!({"app": "web"}), json!({}));
        assert!(b.annotations_for(&other).is_empty());
        b.remove("crash");
        assert!(b.annotations_for(&pod("default", json!({"app": "crash"}), json!({}))).is_empty());
    }

    #[test]
    fn expressions_empty_selector_and_name_order() {
        let mut b = Behaviors::new();
        b.upsert(&behavior("b-all", json!({"selector": {}, "exitAfter": "9s", "ready": true})));
        b.upsert(&behavior(
            "a-batch",
            json!({"selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}]},
                   "exitAfter": "1s"}),
        ));
        let batch = b.annotations_for(&pod("x", json!({"tier": "batch"}), json!({})));
        assert_eq!(batch[EXIT_AFTER], "1s", "a-batch sorts first");
        assert_eq!(batch[READY], "true", "other keys still come from b-all");
        let web = b.annotations_for(&pod("x", json!({"tier": "web"}), json!({})));
        assert_eq!(web[EXIT_AFTER], "9s");
        // An invalid selector selects nothing.
        b.reset(&[behavior(
            "bad",
            json!({"selector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}, "exitAfter": "1s"}),
        )]);
        assert!(b.annotations_for(&pod("x", json!({"k": "v"}), json!({}))).is_empty());
    }

    #[test]
    fn namespace_selector_uses_namespace_labels_and_metadata_name() {
        let mut b = Behaviors::new();
        b.upsert(&behavior(
            "team",
            json!({"selector": {}, "namespaceSelector": {"matchLabels": {"team": "a"}}, "exitAfter": "3s"}),
        ));
        b.upsert(&behavior(
            "byname",
            json!({"selector": {}, "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "special"}},
                   "exitCode": 4}),
        ));
        assert!(b.annotations_for(&pod("ns1", json!({}), json!({}))).is_empty());
        b.set_namespace("ns1", BTreeMap::from([("team".to_string(), "a".to_string())]));
        assert_eq!(b.annotations_for(&pod("ns1", json!({}), json!({})))[EXIT_AFTER], "3s");
        b.remove_namespace("ns1");
        assert!(b.annotations_for(&pod("ns1", json!({}), json!({}))).is_empty());
        // The name label is implied even for namespaces not yet seen.
        assert_eq!(b.annotations_for(&pod("special", json!({}), json!({})))[EXIT_CODE], "4");
    }
}
