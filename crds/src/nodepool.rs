//! `NodePool` (sim.rkube.io/v1alpha1, cluster-scoped): a declarative group of simulated nodes.
//!
//! The sim kubelet (rkube-kubelet's `nodepool` module) runs `spec.replicas` nodes named
//! `<namePrefix>-<i>` and writes `status`. `scale` and `status` subresources are on, so
//! `kubectl scale nodepool x --replicas=5` and an HPA work as for a Deployment.

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label every node of a pool carries: its NodePool's name.
pub const NODEPOOL_LABEL: &str = "sim.rkube.io/nodepool";

/// The desired state of a pool of simulated nodes.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sim.rkube.io",
    version = "v1alpha1",
    kind = "NodePool",
    plural = "nodepools",
    singular = "nodepool",
    shortname = "np",
    category = "sim",
    status = "NodePoolStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas", description = "Desired nodes"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas", description = "Ready nodes"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "A pool of simulated nodes run by the rkube sim kubelet."
)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolSpec {
    /// How many nodes the pool runs. Scaling down removes the highest-numbered nodes.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Node names are `<namePrefix>-<index>`; defaults to the pool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Capacity (and allocatable) of each node; unset fields keep the sim defaults
    /// (cpu 4, memory 16Gi, pods 110, ephemeralStorage 100Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<NodeCapacity>,
    /// Labels added to every node (as `--node-labels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints every node registers with (as `--register-with-taints`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// `topology.kubernetes.io/zone` values, given to nodes round robin by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
}

fn default_replicas() -> i32 {
    1
}

/// Per-node capacity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pods: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<Quantity>,
}

/// The observed state of a pool.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    /// Nodes the pool is running.
    #[serde(default)]
    pub replicas: i32,
    /// Nodes whose Ready condition is True.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Names of the nodes, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The label selector of the pool's nodes, in string form (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: all desired nodes are registered and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl NodePool {
    /// The prefix of the pool's node names.
    pub fn name_prefix(&self) -> String {
        match &self.spec.name_prefix {
            Some(p) if !p.is_empty() => p.clone(),
            _ => self.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The name of the pool's `index`-th node.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{index}", self.name_prefix())
    }

    /// The zone of the `index`-th node (round robin over `spec.zones`).
    pub fn zone(&self, index: usize) -> Option<String> {
        let zones = &self.spec.zones;
        (!zones.is_empty()).then(|| zones[index % zones.len()].clone())
    }

    /// `sim.rkube.io/nodepool=<name>`.
    pub fn selector(&self) -> String {
        format!("{NODEPOOL_LABEL}={}", self.metadata.name.as_deref().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn crd_is_cluster_scoped_with_scale_status_and_columns() {
        let crd = serde_json::to_value(NodePool::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "nodepools.sim.rkube.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["np"]));
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert_eq!(v["subresources"]["status"], json!({}));
        assert_eq!(v["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
        assert_eq!(v["subresources"]["scale"]["statusReplicasPath"], ".status.replicas");
        let cols: Vec<&str> =
            v["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(cols, ["Replicas", "Ready", "Age"]);
        let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["replicas"]["default"], 1);
        assert_eq!(spec["properties"]["replicas"]["minimum"], 0.0);
        let cpu = &spec["properties"]["capacity"]["properties"]["cpu"];
        assert_eq!(cpu["x-kubernetes-int-or-string"], true);
    }

    #[test]
    fn names_and_zones() {
        let mut p = NodePool::new("pool", NodePoolSpec { replicas: 3, ..Default::default() });
        assert_eq!(p.node_name(2), "pool-2");
        assert_eq!(p.zone(0), None);
        p.spec.name_prefix = Some("sim".into());
        p.spec.zones = vec!["a".into(), "b".into()];
        assert_eq!(p.node_name(0), "sim-0");
        assert_eq!(p.zone(0).as_deref(), Some("a"));
        assert_eq!(p.zone(1).as_deref(), Some("b"));
        assert_eq!(p.zone(2).as_deref(), Some("a"));
        assert_eq!(p.selector(), "sim.rkube.io/nodepool=pool");
        // Integers are accepted for quantities; replicas defaults to 1.
        let spec: NodePoolSpec = serde_json::from_value(json!({"capacity": {"cpu": 8, "memory": "32Gi"}})).unwrap();
        assert_eq!(spec.replicas, 1);
        assert_eq!(spec.capacity.and_then(|c| c.cpu), Some(Quantity::new("8")));
    }
}
