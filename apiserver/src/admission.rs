//! Kind-specific steps the apiserver takes on writes, beyond defaults and
//! validation (upstream's strategies' PrepareForCreate and graceful deletion).

use rkube_registry::resources::ResourceInfo;
use serde_json::{Value, json};

/// Status set by clients on create is dropped, as upstream's strategies do;
/// some kinds start in a phase.
pub fn reset_status_on_create(info: &ResourceInfo, obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    let phase = match (info.group, info.resource) {
        ("", "pods") => Some("Pending"),
        ("", "namespaces") => Some("Active"),
        ("", "persistentvolumes") => Some("Pending"),
        ("", "persistentvolumeclaims") => Some("Pending"),
        _ => None,
    };
    if let Some(p) = phase {
        obj["status"] = json!({ "phase": p });
    }
}

/// Fields the server computes on create.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    match (info.group, info.resource) {
        ("", "pods") => {
            let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
            obj["status"]["qosClass"] = json!(qos);
        }
        ("batch", "jobs") => rkube_registry::defaults::job_generate_selector(obj),
        _ => {}
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let rq = req.and_then(|m| m.get(r));
            let lm = lim.and_then(|m| m.get(r));
            if rq.is_some() || lm.is_some() {
                any = true;
            }
            match (rq, lm) {
                (Some(a), Some(b)) if a == b => {}
                (None, Some(_)) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Seconds a delete waits before the object goes (pods only: their kubelet
/// must stop the containers first). 0 = delete now.
pub fn graceful_period(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if info.group != "" || info.resource != "pods" {
        return 0;
    }
    let node = obj.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    requested
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }
}
