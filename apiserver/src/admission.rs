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
    if let ("batch", "jobs") = (info.group, info.resource) {
        rkube_registry::defaults::job_generate_selector(obj);
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
