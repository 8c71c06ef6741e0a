//! CustomResourceDefinitions as a pure library: what the apiserver needs to serve CRDs and
//! their custom resources, following upstream's apiextensions-apiserver 1.33.
//!
//! - `definition`: CRD defaulting and validation on create/update (names, scope, versions,
//!   structural schemas, subresources, printer columns, conversion, stored versions).
//! - `value`: validation of custom resources against a version's `openAPIV3Schema`.
//! - `prune`: pruning of unknown fields and applying schema defaults.
//! - `jsonpath` and `table`: Tables from `additionalPrinterColumns`.
//! - `openapi`: the OpenAPI definitions of a CRD version.
//! - `cel`: `x-kubernetes-validations` rules (owned separately).
//!
//! Everything works on `serde_json::Value` and never does I/O.

pub mod cel;
mod definition;
mod formats;
pub mod jsonpath;
mod openapi;
mod prune;
mod structural;
mod table;
mod value;

use serde_json::Value;

pub use definition::{default_crd, prepare_for_create, prepare_for_update, validate_crd, validate_crd_status};
pub use openapi::{definition_name, openapi_definitions, openapi_schema, openapi_schema_v2};
pub use prune::{apply_defaults, prune, prune_value};
pub use table::{cr_table, effective_columns};
pub use value::{validate_at, validate_cr};

use crate::status::FieldError;

/// The names of a CRD, read from its spec (empty strings when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrdNames {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `spec.scope == "Namespaced"`
    pub namespaced: bool,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// The names of `crd` (`spec.group`, `spec.names.*`, `spec.scope`).
pub fn names(crd: &Value) -> CrdNames {
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    CrdNames {
        group: s("/spec/group"),
        plural: s("/spec/names/plural"),
        singular: s("/spec/names/singular"),
        kind: s("/spec/names/kind"),
        list_kind: s("/spec/names/listKind"),
        short_names: strings(crd.pointer("/spec/names/shortNames")),
        categories: strings(crd.pointer("/spec/names/categories")),
        namespaced: s("/spec/scope") == "Namespaced",
    }
}

fn version_entry<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?.as_array()?.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(version))
}

/// The `openAPIV3Schema` of `version` of `crd`.
pub fn version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    version_entry(crd, version)?.pointer("/schema/openAPIV3Schema").filter(|s| s.is_object())
}

/// The `additionalPrinterColumns` of `version` (empty when none; see [`effective_columns`]).
pub fn version_columns(crd: &Value, version: &str) -> Vec<Value> {
    version_entry(crd, version)
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The `subresources` of `version` (`{"status": {}, "scale": {...}}`), if any.
pub fn version_subresources<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    version_entry(crd, version)?.get("subresources").filter(|s| s.is_object())
}

/// The version whose `storage` is true.
pub fn storage_version(crd: &Value) -> Option<&str> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))?
        .get("name")?
        .as_str()
}

/// The schema of `status` inside a version schema, for status-subresource updates.
pub fn status_schema(schema: &Value) -> Option<&Value> {
    schema.pointer("/properties/status")
}

/// A name no built-in validation matches, so that `validation::validate_create` checks only
/// the generic ObjectMeta rules for custom resources.
const CUSTOM_GROUP: &str = "custom.resources.rkube.invalid";

/// ObjectMeta checks of a custom resource itself, as upstream's customresource strategy:
/// the name (or generateName) a DNS-1123 subdomain, labels, annotations, owner references,
/// finalizers; `metadata.namespace` required when namespaced and forbidden otherwise.
pub fn validate_cr_metadata(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = crate::validation::validate_create(CUSTOM_GROUP, "v1", "CustomResource", "customresources", obj);
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    if namespaced && ns.is_empty() {
        errs.push(FieldError::required("metadata.namespace", ""));
    } else if !namespaced && !ns.is_empty() {
        errs.retain(|e| e.field != "metadata.namespace");
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    errs
}

/// `apiVersion`/`kind` of a custom resource must be the served ones (upstream's ValidateTypeMeta).
pub fn validate_cr_type_meta(obj: &Value, group: &str, version: &str, kind: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let got_kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if got_kind != kind {
        errs.push(FieldError::invalid("kind", Value::from(got_kind), format!("must be {kind}")));
    }
    let want = format!("{group}/{version}");
    let got = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if got != want {
        errs.push(FieldError::invalid("apiVersion", Value::from(got), format!("must be {want}")));
    }
    errs
}

/// Scale subresource checks of a custom resource: the replicas at `specReplicasPath` and
/// `statusReplicasPath` must be non-negative int32s when present (upstream's ValidateScaleSpec/Status).
pub fn validate_cr_scale(obj: &Value, scale: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["specReplicasPath", "statusReplicasPath"] {
        let Some(path) = scale.get(key).and_then(Value::as_str) else { continue };
        let ptr = format!("/{}", path.trim_start_matches('.').replace('.', "/"));
        match obj.pointer(&ptr) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64() {
                None => errs.push(FieldError::invalid(
                    path,
                    Value::from(0),
                    format!(
                        ".{} accessor error: {v} is of the type {}, expected int64",
                        path.trim_start_matches('.'),
                        go_type(v)
                    ),
                )),
                Some(n) if n < 0 => {
                    errs.push(FieldError::invalid(path, Value::from(n), "should be a non-negative integer"))
                }
                Some(n) if n > i64::from(i32::MAX) => errs.push(FieldError::invalid(
                    path,
                    Value::from(n),
                    format!("should be less than or equal to {}", i32::MAX),
                )),
                Some(_) => {}
            },
        }
    }
    errs
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Null => "<nil>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cr_metadata_and_type_meta() {
        let o = json!({"apiVersion": "x.io/v1", "kind": "Foo", "metadata": {"name": "Bad_Name"}});
        let errs: Vec<String> = validate_cr_metadata(&o, true).iter().map(ToString::to_string).collect();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"))
        );
        assert!(errs.contains(&"metadata.namespace: Required value".to_string()));
        let o = json!({"metadata": {"name": "ok", "namespace": "default"}});
        let errs: Vec<String> = validate_cr_metadata(&o, false).iter().map(ToString::to_string).collect();
        assert_eq!(errs, vec!["metadata.namespace: Forbidden: not allowed on this type"]);
        let errs = validate_cr_type_meta(&json!({"apiVersion": "x.io/v2", "kind": "Foo"}), "x.io", "v1", "Foo");
        assert_eq!(errs[0].to_string(), r#"apiVersion: Invalid value: "x.io/v2": must be x.io/v1"#);
    }

    #[test]
    fn scale_replicas_checks() {
        let scale = json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"});
        let errs = validate_cr_scale(&json!({"spec": {"replicas": -1}}), &scale);
        assert_eq!(errs[0].to_string(), ".spec.replicas: Invalid value: -1: should be a non-negative integer");
        assert!(validate_cr_scale(&json!({"spec": {"replicas": 3}, "status": {"replicas": 1}}), &scale).is_empty());
    }
}
