//! core/v1 Events as the kubelet records them: source {component: kubelet, host: node},
//! reportingComponent "kubelet", reportingInstance the node, involvedObject the Pod with the
//! container's fieldPath.

use crate::pod::{PodEvent, ts};
use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn pod_event(pod: &Pod, node: &str, ev: &PodEvent) -> Value {
    let now = Utc::now();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let nanos = now.timestamp_nanos_opt().unwrap_or_default() as u64;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{:x}", nanos.wrapping_add(seq)), "namespace": pod.metadata.namespace},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": name, "namespace": pod.metadata.namespace,
            "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version, "fieldPath": ev.field_path,
        },
        "reason": ev.reason,
        "message": ev.message,
        "type": if ev.warning { "Warning" } else { "Normal" },
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": ts(now),
        "lastTimestamp": ts(now),
        "count": 1,
    })
}
