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
        ("", "pods") => {
            default_toleration_seconds(obj);
            service_account(obj);
        }
        _ => {}
    }
}

/// Upstream's ServiceAccount admission: a pod runs as `default` unless it
/// names a ServiceAccount, and gets the projected `kube-api-access-*` volume
/// (a bound token, the cluster CA, the namespace) mounted where client
/// libraries look, unless `automountServiceAccountToken: false`.
pub fn service_account(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(sa));
    spec.insert("serviceAccount".into(), json!(sa));
    if spec.get("automountServiceAccountToken") == Some(&json!(false)) {
        return;
    }
    const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let already = |c: &Value| {
        c.get("volumeMounts").and_then(Value::as_array).is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT))
    };
    let name = format!("kube-api-access-{}", &crate::objects::generate_name("")[..5]);
    let mut mounted = false;
    for key in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter(|c| !already(c)) {
                let m = json!({"name": name, "readOnly": true, "mountPath": MOUNT});
                match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                    Some(list) => list.push(m),
                    None => c["volumeMounts"] = json!([m]),
                }
                mounted = true;
            }
        }
    }
    if !mounted {
        return;
    }
    let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}});
    match spec.get_mut("volumes").and_then(Value::as_array_mut) {
        Some(v) => v.push(volume),
        None => {
            spec.insert("volumes".into(), json!([volume]));
        }
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
    fn pods_get_the_service_account_volume() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}});
        service_account(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let vol = pod["spec"]["volumes"][0]["name"].as_str().unwrap().to_string();
        assert!(vol.starts_with("kube-api-access-"));
        assert_eq!(pod["spec"]["containers"][1]["volumeMounts"][1]["name"], vol);
        let mut off = json!({"spec": {"automountServiceAccountToken": false, "serviceAccountName": "web", "containers": [{"name": "a"}]}});
        service_account(&mut off);
        assert!(off["spec"].get("volumes").is_none());
        assert_eq!(off["spec"]["serviceAccount"], "web");
    }

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
