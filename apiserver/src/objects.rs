//! Small helpers on Kubernetes objects as JSON: metadata access, the fields the
//! apiserver owns (uid, timestamps, resourceVersion, generation) and storage keys.

use rkube_registry::resources::ResourceInfo;
use serde_json::{Map, Value, json};

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created if missing (or replaced if it is not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// RFC 3339 with seconds, as metav1.Time serialises.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn set_resource_version(obj: &mut Value, rev: i64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

/// The bytes we store: the object without `metadata.resourceVersion`, which
/// is the store's mod revision and set again on every read.
pub fn encode_for_storage(obj: &Value) -> Vec<u8> {
    match meta(obj).and_then(|m| m.get("resourceVersion")) {
        Some(_) => {
            let mut o = obj.clone();
            meta_mut(&mut o).remove("resourceVersion");
            serde_json::to_vec(&o).unwrap_or_default()
        }
        None => serde_json::to_vec(obj).unwrap_or_default(),
    }
}

/// The storage key prefix of a resource, optionally within a namespace.
pub fn prefix(info: &ResourceInfo, namespace: Option<&str>) -> String {
    let mut p = info.storage_prefix();
    if let (true, Some(ns)) = (info.namespaced, namespace) {
        p.push_str(ns);
        p.push('/');
    }
    p
}

pub fn key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    let mut k = prefix(info, namespace);
    k.push_str(name);
    k
}

/// Kinds whose objects carry `metadata.generation`, bumped by spec changes
/// (custom resources always do).
pub fn tracks_generation(info: &ResourceInfo) -> bool {
    let custom = rkube_registry::resources::lookup(info.group, info.version, info.resource).is_none();
    custom
        || matches!(
            info.storage_resource,
            "deployments"
                | "replicasets"
                | "statefulsets"
                | "daemonsets"
                | "jobs"
                | "cronjobs"
                | "replicationcontrollers"
                | "horizontalpodautoscalers"
                | "poddisruptionbudgets"
                | "networkpolicies"
                | "ingresses"
                | "pods"
                | "validatingwebhookconfigurations"
                | "mutatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "customresourcedefinitions"
        )
}

/// Whether anything outside metadata and status differs (a "spec" change).
pub fn spec_changed(new: &Value, old: &Value) -> bool {
    let (Some(n), Some(o)) = (new.as_object(), old.as_object()) else {
        return new != old;
    };
    let skip = |k: &String| k != "metadata" && k != "status";
    let nk: Vec<_> = n.iter().filter(|(k, _)| skip(k)).collect();
    let ok: Vec<_> = o.iter().filter(|(k, _)| skip(k)).collect();
    nk != ok
}

const GENERATE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + five random characters, as upstream's name generator.
pub fn generate_name(base: &str) -> String {
    use rand::Rng;
    let mut base = base.to_string();
    // upstream truncates the base so the whole name fits in 63 characters
    if base.len() > 58 {
        base.truncate(58);
    }
    let mut rng = rand::rng();
    for _ in 0..5 {
        base.push(GENERATE_CHARS[rng.random_range(0..GENERATE_CHARS.len())] as char);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_bytes_have_no_resource_version() {
        let o = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let v: Value = serde_json::from_slice(&encode_for_storage(&o)).unwrap();
        assert!(v["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn spec_change_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let b = json!({"metadata": {}, "spec": {"replicas": 1}, "status": {"x": 2}});
        assert!(!spec_changed(&a, &b));
        let c = json!({"metadata": {}, "spec": {"replicas": 2}});
        assert!(spec_changed(&c, &b));
    }

    #[test]
    fn generated_names_use_upstream_alphabet() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|c| GENERATE_CHARS.contains(&c)));
    }
}
