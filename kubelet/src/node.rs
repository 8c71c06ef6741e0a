//! The Node object this kubelet registers and keeps fresh, and its Lease.
//!
//! Owns what upstream's `kubelet_node_status.go` and the node lease controller put on the wire:
//! labels (hostname, os, arch, zone), capacity/allocatable, addresses, nodeInfo, the four
//! conditions, and the kube-node-lease Lease owned by the Node. Pure builders; the pool does I/O.

use crate::NodeConfig;
use crate::pod::ts;
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

pub const KUBELET_VERSION: &str = "v1.33.0";

/// The Node object to create at registration.
pub fn node_object(cfg: &NodeConfig, ip: &str) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(cfg.name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!(cfg.arch));
    labels.insert("beta.kubernetes.io/os".into(), json!("linux"));
    labels.insert("beta.kubernetes.io/arch".into(), json!(cfg.arch));
    if let Some(z) = &cfg.zone {
        labels.insert("topology.kubernetes.io/zone".into(), json!(z));
    }
    for (k, v) in &cfg.labels {
        labels.insert(k.clone(), json!(v));
    }
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": cfg.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
        "status": {"addresses": addresses(cfg, ip)},
    });
    if !cfg.taints.is_empty() {
        node["spec"]["taints"] = serde_json::to_value(&cfg.taints).unwrap_or(Value::Null);
    }
    node
}

fn addresses(cfg: &NodeConfig, ip: &str) -> Value {
    json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": cfg.name}])
}

/// (type, reason, message) of the four conditions a healthy sim node reports, in upstream's order.
const CONDITIONS: [(&str, &str, &str, &str); 4] = [
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
];

/// The part of node status that is compared to decide whether a write is due (no heartbeat times).
pub fn status_fingerprint(status: &Value) -> Value {
    let conds: Vec<Value> = status["conditions"]
        .as_array()
        .map(|cs| cs.iter().map(|c| json!([c["type"], c["status"], c["reason"], c["message"]])).collect())
        .unwrap_or_default();
    json!({
        "conditions": conds,
        "capacity": status["capacity"],
        "allocatable": status["allocatable"],
        "addresses": status["addresses"],
        "nodeInfo": status["nodeInfo"],
    })
}

/// The status to write: conditions keep the server's lastTransitionTime while unchanged.
pub fn node_status(
    cfg: &NodeConfig,
    ip: &str,
    runtime_version: &str,
    current: Option<&Node>,
    now: DateTime<Utc>,
) -> Value {
    let existing = current.and_then(|n| n.status.as_ref()).and_then(|s| s.conditions.clone()).unwrap_or_default();
    let conditions: Vec<Value> = CONDITIONS
        .iter()
        .map(|(t, st, reason, msg)| {
            let transition = existing
                .iter()
                .find(|c| c.type_ == *t && c.status == *st)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| ts(now));
            json!({
                "type": t, "status": st, "reason": reason, "message": msg,
                "lastHeartbeatTime": ts(now), "lastTransitionTime": transition,
            })
        })
        .collect();
    let resources = json!({
        "cpu": cfg.cpu, "memory": cfg.memory, "pods": cfg.pods.to_string(),
        "ephemeral-storage": cfg.ephemeral_storage, "hugepages-1Gi": "0", "hugepages-2Mi": "0",
    });
    let machine = fake_id(&cfg.name);
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": addresses(cfg, ip),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": machine,
            "systemUUID": format!("{}-{}-{}-{}-{}", &machine[0..8], &machine[8..12], &machine[12..16], &machine[16..20], &machine[20..32]),
            "bootID": fake_id(&format!("boot/{}", cfg.name)),
            "kernelVersion": "6.1.0-sim",
            "osImage": "rkube sim node",
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": cfg.arch,
        },
    })
}

/// The fingerprint of a Node as the server has it.
pub fn server_fingerprint(node: &Node) -> Value {
    serde_json::to_value(&node.status).map(|s| status_fingerprint(&s)).unwrap_or(Value::Null)
}

/// A 32-hex-digit stable identifier derived from a name.
fn fake_id(name: &str) -> String {
    let mut a: u64 = 0xcbf29ce484222325;
    let mut b: u64 = 0x84222325cbf29ce4;
    for byte in name.bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x100000001b3);
        b = (b ^ u64::from(byte)).wrapping_mul(0x1000193);
    }
    format!("{a:016x}{b:016x}")
}

pub fn micro(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The Lease the kubelet creates in kube-node-lease.
pub fn lease_object(node: &str, node_uid: Option<&str>, duration_seconds: i32, now: DateTime<Utc>) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": duration_seconds, "renewTime": micro(now)},
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]);
    }
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_carries_upstream_labels_and_conditions() {
        let cfg = NodeConfig { zone: Some("z1".into()), ..NodeConfig::new("n1") };
        let obj = node_object(&cfg, "172.16.0.2");
        assert_eq!(obj["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(obj["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(obj["metadata"]["labels"]["topology.kubernetes.io/zone"], "z1");
        let now = Utc::now();
        let st = node_status(&cfg, "172.16.0.2", "sim://0.1", None, now);
        assert_eq!(st["conditions"][3]["type"], "Ready");
        assert_eq!(st["conditions"][3]["reason"], "KubeletReady");
        assert_eq!(st["capacity"]["pods"], "110");
        assert_eq!(st["nodeInfo"]["containerRuntimeVersion"], "sim://0.1");
        assert_eq!(st["addresses"][0]["address"], "172.16.0.2");
        // Only heartbeat times differ between two builds: the fingerprints match.
        let later = node_status(&cfg, "172.16.0.2", "sim://0.1", None, now + chrono::Duration::seconds(10));
        assert_eq!(status_fingerprint(&st), status_fingerprint(&later));
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": st})).unwrap();
        assert_eq!(server_fingerprint(&node), status_fingerprint(&st));
        // A server that says Unknown is different.
        let mut unknown = st.clone();
        unknown["conditions"][3]["status"] = json!("Unknown");
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": unknown})).unwrap();
        assert_ne!(server_fingerprint(&node), status_fingerprint(&st));
    }

    #[test]
    fn lease_is_owned_by_the_node() {
        let l = lease_object("n1", Some("uid-1"), 40, Utc::now());
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    }
}
