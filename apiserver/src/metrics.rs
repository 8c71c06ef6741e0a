//! `metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics, what metrics-server
//! serves upstream and `kubectl top` and the HorizontalPodAutoscaler read.
//!
//! Usage comes from the running pods: a simulated container's usage is what
//! its pod's `sim.rkube.io/cpu-usage` / `sim.rkube.io/memory-usage`
//! annotations say (each container of the pod uses that much; none: zero),
//! and a node's usage is the sum over the pods running on it. Computed from
//! the watch cache on every request, nothing is stored.

use crate::http::{self, Body};
use crate::rest::{Req, Selectors};
use crate::server::{Server, not_found_path, store_error};
use ::http::{Response, StatusCode};
use rkube_registry::ApiError;
use rkube_registry::quantity::{Quantity, parse_quantity};
use rkube_registry::resources::ResourceInfo;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const GROUP: &str = "metrics.k8s.io";
pub const CPU_ANNOTATION: &str = "sim.rkube.io/cpu-usage";
pub const MEMORY_ANNOTATION: &str = "sim.rkube.io/memory-usage";
const VERBS: &[&str] = &["get", "list"];

/// A read-only metrics resource (no storage of its own).
const fn metrics_resource(resource: &'static str, kind: &'static str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        group: GROUP,
        version: "v1beta1",
        resource,
        kind,
        singular: "",
        namespaced,
        short_names: &[],
        categories: &[],
        verbs: VERBS,
        subresources: &[],
        storage_group: "",
        storage_resource: "",
        storage_version: "",
    }
}

static NODES: ResourceInfo = metrics_resource("nodes", "NodeMetrics", false);
static PODS: ResourceInfo = metrics_resource("pods", "PodMetrics", true);

/// The resources of the metrics API, for discovery and routing.
pub fn resources() -> [&'static ResourceInfo; 2] {
    [&NODES, &PODS]
}

pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    resources().into_iter().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// A pod's usage: one entry per running container. `anns` are the pod's
/// effective simulation annotations (its own, or from a PodBehavior).
fn pod_usage(pod: &Value, anns: &BTreeMap<String, String>) -> Vec<(String, Quantity, Quantity)> {
    let q = |k: &str| anns.get(k).and_then(|s| parse_quantity(s)).unwrap_or_else(Quantity::zero);
    let (cpu, mem) = (q(CPU_ANNOTATION), q(MEMORY_ANNOTATION));
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(|n| (n.to_string(), cpu, mem)).collect()
        })
        .unwrap_or_default()
}

fn running(pod: &Value) -> bool {
    pod.pointer("/status/phase") == Some(&json!("Running"))
        && pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty())
}

fn now() -> String {
    crate::objects::now_rfc3339()
}

fn pod_metrics(pod: &Value, anns: &BTreeMap<String, String>) -> Value {
    let containers: Vec<Value> = pod_usage(pod, anns)
        .into_iter()
        .map(|(name, cpu, mem)| json!({"name": name, "usage": {"cpu": cpu.to_string(), "memory": mem.to_string()}}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": pod.pointer("/metadata/name"),
            "namespace": pod.pointer("/metadata/namespace"),
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            "creationTimestamp": now(),
        },
        "timestamp": now(),
        "window": "10s",
        "containers": containers,
    })
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// A pod's simulation annotations: its own win over PodBehaviors'.
fn effective_annotations(behaviors: &rkube_crds::Behaviors, pod: &Value) -> BTreeMap<String, String> {
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let labels = string_map(pod.pointer("/metadata/labels"));
    let own = string_map(pod.pointer("/metadata/annotations"));
    let mut out = behaviors.annotations_for_parts(ns, &labels, &own);
    for (k, v) in own {
        out.entry(k).or_insert(v);
    }
    out
}

impl Server {
    /// The stored PodBehaviors (and namespace labels, for their namespaceSelectors).
    async fn pod_behaviors(&self, rev: i64) -> rkube_crds::Behaviors {
        let mut b = rkube_crds::Behaviors::new();
        if let Ok((items, _)) = self.cache.list("/registry/sim.rkube.io/podbehaviors/", rev).await {
            let all: Vec<rkube_crds::PodBehavior> =
                items.iter().filter_map(|o| serde_json::from_slice(&o.json).ok()).collect();
            b.reset(&all);
        }
        if let Ok((nss, _)) = self.cache.list("/registry/namespaces/", rev).await {
            for n in nss {
                b.set_namespace(n.name(), string_map(n.selectable().pointer("/metadata/labels")));
            }
        }
        b
    }

    /// GET/LIST of NodeMetrics and PodMetrics.
    pub(crate) async fn metrics(&self, req: &Req) -> Result<Response<Body>, ApiError> {
        use crate::request::Verb;
        if !matches!(req.verb, Verb::Get | Verb::List) {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let pods_info = rkube_registry::resources::lookup("", "v1", "pods").ok_or_else(not_found_path)?;
        let rev = self.store.current_revision().await.map_err(store_error)?;
        let prefix = crate::objects::prefix(pods_info, req.ns());
        let (pods, _) = self.cache.list(&prefix, rev).await.map_err(store_error)?;
        let pods: Vec<Value> = pods.iter().map(|p| p.object()).collect();
        let running: Vec<&Value> = pods.iter().filter(|p| running(p)).collect();
        let behaviors = self.pod_behaviors(rev).await;
        let anns = |p: &Value| effective_annotations(&behaviors, p);
        if req.info.resource == "pods" {
            let sel = Selectors { labels: crate::rest::Selectors::parse(req)?.labels, fields: Default::default() };
            let items: Vec<Value> =
                running.into_iter().filter(|p| sel.matches(p)).map(|p| pod_metrics(p, &anns(p))).collect();
            if let Some(name) = &req.path.name {
                return match items.into_iter().find(|m| m["metadata"]["name"] == name.as_str()) {
                    Some(m) => Ok(http::json(StatusCode::OK, &m)),
                    None => Err(ApiError::not_found(GROUP, "pods", name)),
                };
            }
            let list = json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items});
            return Ok(http::json(StatusCode::OK, &list));
        }
        // Nodes: the sum over their running pods.
        let nodes_info = rkube_registry::resources::lookup("", "v1", "nodes").ok_or_else(not_found_path)?;
        let (nodes, _) = self.cache.list(&crate::objects::prefix(nodes_info, None), rev).await.map_err(store_error)?;
        let mut sums: BTreeMap<String, (Quantity, Quantity)> = BTreeMap::new();
        for p in running {
            let node = p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").to_string();
            let e = sums.entry(node).or_insert_with(|| (Quantity::zero(), Quantity::zero()));
            for (_, cpu, mem) in pod_usage(p, &anns(p)) {
                *e = (e.0.add(&cpu), e.1.add(&mem));
            }
        }
        let labels = crate::rest::Selectors::parse(req)?.labels;
        let nodes: Vec<Value> = nodes.iter().map(|n| n.object()).collect();
        let items: Vec<Value> = nodes
            .iter()
            .filter(|n| labels.is_empty() || labels.matches_object(n))
            .filter(|n| req.path.name.as_deref().is_none_or(|want| crate::objects::name(n) == want))
            .map(|n| {
                let name = crate::objects::name(n);
                let (cpu, mem) = sums.get(name).cloned().unwrap_or_else(|| (Quantity::zero(), Quantity::zero()));
                json!({
                    "kind": "NodeMetrics",
                    "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {"name": name, "labels": n.pointer("/metadata/labels").cloned().unwrap_or(json!({})), "creationTimestamp": now()},
                    "timestamp": now(),
                    "window": "10s",
                    "usage": {"cpu": cpu.to_string(), "memory": mem.to_string()},
                })
            })
            .collect();
        if let Some(name) = &req.path.name {
            return match items.into_iter().next() {
                Some(m) => Ok(http::json(StatusCode::OK, &m)),
                None => Err(ApiError::not_found(GROUP, "nodes", name)),
            };
        }
        let list =
            json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items});
        Ok(http::json(StatusCode::OK, &list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_comes_from_annotations_per_container() {
        let pod = json!({"metadata": {"annotations": {CPU_ANNOTATION: "250m", MEMORY_ANNOTATION: "64Mi"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let u = pod_usage(&pod, &effective_annotations(&rkube_crds::Behaviors::new(), &pod));
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].1.to_string(), "250m");
        let total = u.iter().fold(Quantity::zero(), |acc, (_, c, _)| acc.add(c));
        assert_eq!(total.to_string(), "500m");
    }
}
