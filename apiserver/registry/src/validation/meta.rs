//! `metadata` checks shared by every kind: name and generateName per the resource's rule,
//! namespace, labels, annotations (keys and the 256 KiB total), owner references,
//! finalizers, and on update the immutable identity fields.

use serde_json::Value;

use super::{
    IMMUTABLE, IS_NEGATIVE, NameRule, at, int_at, is_dns1123_label, is_qualified_name, name_errors, str_at,
    validate_labels,
};
use crate::status::FieldError;

/// Upstream's `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

pub(super) fn validate_object_meta(obj: &Value, rule: NameRule, cluster: Option<bool>, errs: &mut Vec<FieldError>) {
    let m = obj.get("metadata").unwrap_or(&Value::Null);
    let generate = str_at(m, &["generateName"]);
    if !generate.is_empty() {
        for msg in name_errors(rule, generate, true) {
            errs.push(FieldError::invalid("metadata.generateName", Value::from(generate), msg));
        }
    }
    let name = str_at(m, &["name"]);
    if name.is_empty() {
        if rule != NameRule::None {
            errs.push(FieldError::required("metadata.name", "name or generateName is required"));
        }
    } else {
        for msg in name_errors(rule, name, false) {
            errs.push(FieldError::invalid("metadata.name", Value::from(name), msg));
        }
    }
    let ns = str_at(m, &["namespace"]);
    match cluster {
        Some(false) if ns.is_empty() => errs.push(FieldError::required("metadata.namespace", "")),
        Some(true) if !ns.is_empty() => {
            errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"))
        }
        _ if !ns.is_empty() => {
            for msg in is_dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", Value::from(ns), msg));
            }
        }
        _ => {}
    }
    if let Some(g) = int_at(m, &["generation"])
        && g < 0
    {
        errs.push(FieldError::invalid("metadata.generation", Value::from(g), IS_NEGATIVE));
    }
    validate_common(m, errs);
    validate_finalizers(m, errs);
}

/// Labels, annotations and owner references: checked on create and on update.
fn validate_common(m: &Value, errs: &mut Vec<FieldError>) {
    validate_labels(m.get("labels"), "metadata.labels", errs);
    validate_annotations(m.get("annotations"), "metadata.annotations", errs);
    validate_owner_references(m, errs);
}

/// Annotation keys are qualified names (checked lower-cased) and the total must stay under 256 KiB.
pub(crate) fn validate_annotations(v: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) {
    let Some(map) = v.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, val) in map {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(field, Value::from(k.as_str()), msg));
        }
        total += k.len() + val.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_LIMIT {
        errs.push(FieldError::too_long(field, ANNOTATIONS_LIMIT));
    }
}

fn validate_owner_references(m: &Value, errs: &mut Vec<FieldError>) {
    let Some(refs) = m.get("ownerReferences").and_then(Value::as_array) else {
        return;
    };
    let field = "metadata.ownerReferences";
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_at(r, &["apiVersion"]);
        let kind = str_at(r, &["kind"]);
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.apiVersion"),
                Value::from(api_version),
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(format!("{field}.kind"), Value::from(kind), "kind must not be empty"));
        }
        if str_at(r, &["name"]).is_empty() {
            errs.push(FieldError::invalid(format!("{field}.name"), Value::from(""), "name must not be empty"));
        }
        if str_at(r, &["uid"]).is_empty() {
            errs.push(FieldError::invalid(format!("{field}.uid"), Value::from(""), "uid must not be empty"));
        }
        if api_version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(field, r.clone(), "/v1, Kind=Event is disallowed from being an owner"));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let cur = format!("{kind}/{}", str_at(r, &["name"]));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    field,
                    Value::Array(refs.clone()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"
                    ),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
}

fn validate_finalizers(m: &Value, errs: &mut Vec<FieldError>) {
    let Some(fins) = m.get("finalizers").and_then(Value::as_array) else {
        return;
    };
    let field = "metadata.finalizers";
    let names: Vec<&str> = fins.iter().filter_map(Value::as_str).collect();
    for f in &names {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid(field, Value::from(*f), msg));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            field,
            Value::Array(fins.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

pub(super) fn validate_object_meta_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let nm = new.get("metadata").unwrap_or(&Value::Null);
    let om = old.get("metadata").unwrap_or(&Value::Null);
    if at(om, &["deletionTimestamp"]).is_some() {
        let old_f: Vec<&str> =
            om.get("finalizers").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut extra: Vec<&str> = nm
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|s| format!("{s:?}")).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    if str_at(nm, &["resourceVersion"]).is_empty() {
        errs.push(FieldError::invalid("metadata.resourceVersion", Value::from(""), "must be specified for an update"));
    }
    let (ng, og) = (int_at(nm, &["generation"]).unwrap_or(0), int_at(om, &["generation"]).unwrap_or(0));
    if ng < og {
        errs.push(FieldError::invalid("metadata.generation", Value::from(ng), "must not be decremented"));
    }
    for key in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        let (a, b) = (at(nm, &[key]), at(om, &[key]));
        let empty_str = |v: Option<&Value>| v.is_none() || v == Some(&Value::from(""));
        if a != b && !(empty_str(a) && empty_str(b)) {
            errs.push(FieldError::invalid(format!("metadata.{key}"), a.cloned().unwrap_or(Value::from("")), IMMUTABLE));
        }
    }
    validate_common(nm, errs);
    validate_finalizers(nm, errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(obj: Value, rule: NameRule, cluster: Option<bool>) -> Vec<String> {
        let mut errs = Vec::new();
        validate_object_meta(&obj, rule, cluster, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn name_required_and_namespace_rules() {
        assert_eq!(
            create(json!({"metadata":{}}), NameRule::Subdomain, Some(false)),
            vec![
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value"
            ]
        );
        assert_eq!(
            create(json!({"metadata":{"name":"n","namespace":"x"}}), NameRule::Subdomain, Some(true)),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert!(
            create(json!({"metadata":{"generateName":"web-","namespace":"d"}}), NameRule::Subdomain, Some(false))
                .iter()
                .all(|e| !e.starts_with("metadata.generateName"))
        );
    }

    #[test]
    fn annotations_size_and_owner_refs() {
        let big = "x".repeat(300 * 1024);
        let errs = create(
            json!({"metadata":{"name":"n","annotations":{"a": big},
                "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"r","uid":"1","controller":true},
                                   {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"s","uid":"2","controller":true}]}}),
            NameRule::Subdomain,
            None,
        );
        assert_eq!(errs[0], "metadata.annotations: Too long: may not be more than 262144 bytes");
        assert!(errs[1].ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/r and ReplicaSet/s"
        ));
    }

    #[test]
    fn update_keeps_identity() {
        let old = json!({"metadata":{"name":"a","namespace":"d","uid":"1","resourceVersion":"5"}});
        let new = json!({"metadata":{"name":"a","namespace":"d","uid":"2","resourceVersion":"5"}});
        let mut errs = Vec::new();
        validate_object_meta_update(&new, &old, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "metadata.uid: Invalid value: \"2\": field is immutable");
    }
}
