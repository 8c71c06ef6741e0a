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

/// Fields the server computes on create, once the uid is known.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    match (info.group, info.resource) {
        ("batch", "jobs") => rkube_registry::defaults::job_generate_selector(obj),
        ("", "pods") => default_toleration_seconds(obj),
        _ => {}
    }
}

/// Upstream's DefaultTolerationSeconds admission: pods tolerate a not-ready
/// or unreachable node for 300 s before the node lifecycle controller evicts them.
pub fn default_toleration_seconds(pod: &mut Value) {
    const SECONDS: i64 = 300;
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else { return };
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let covered = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || (k.is_empty() && op == "Exists")) && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS}));
        }
    }
}

/// Seconds a delete waits before the object goes (pods only: their kubelet
/// must stop the containers first). 0 = delete now.
pub fn graceful_period(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if !info.group.is_empty() || info.resource != "pods" {
        return 0;
    }
    let node = obj.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    requested
        .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tolerations_are_added_once() {
        let mut pod = json!({"spec": {"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
        ]}});
        default_toleration_seconds(&mut pod);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 10);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(t[1]["tolerationSeconds"], 300);
        default_toleration_seconds(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn only_bound_running_pods_wait() {
        let pods = rkube_registry::resources::lookup("", "v1", "pods").unwrap();
        let cms = rkube_registry::resources::lookup("", "v1", "configmaps").unwrap();
        let bound =
            json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 12}, "status": {"phase": "Running"}});
        assert_eq!(graceful_period(pods, &bound, None), 12);
        assert_eq!(graceful_period(pods, &bound, Some(0)), 0);
        assert_eq!(graceful_period(pods, &json!({"spec": {}}), None), 0);
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(graceful_period(pods, &done, Some(30)), 0);
        assert_eq!(graceful_period(cms, &bound, Some(30)), 0);
    }
}
