//! Patches on JSON objects: RFC 6902 JSON patch, RFC 7386 merge patch and Kubernetes'
//! strategic merge patch (in `patch/strategic.rs`), plus the kind → OpenAPI definition index
//! strategic merge patch needs.
//!
//! The semantics follow what the upstream apiserver does for `PATCH` (the json-patch v4 library
//! for JSON and merge patches, `apimachinery/pkg/util/strategicpatch` for strategic ones), and
//! errors carry upstream's codes: an undecodable patch is 400, a JSON patch that does not apply
//! is 422 with upstream's generic message, too many operations is 413.
//!
//! This module only transforms values; it never validates the result as an object of its kind
//! (the caller decodes, defaults and validates the patched object afterwards).

// The API-facing error type is `ApiError` by design, large as it is.

mod strategic;

use crate::status::{ApiError, FieldError, Reason};
use serde_json::{Map, Value};

pub use strategic::strategic_merge_patch;

/// Upstream's limit on the number of operations in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The 422 upstream returns when a patch is well-formed but cannot be applied
/// (`NewGenericServerResponse(422, ...)`: the detail is not passed to the client).
pub(crate) fn unprocessable() -> ApiError {
    ApiError::new(422, Reason::Invalid, "the server rejected our request due to an error in our request")
}

/// How Go's `encoding/json` names a JSON value's type in unmarshal errors.
pub(crate) fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// RFC 6902 (`application/json-patch+json`), with the json-patch v4 semantics the upstream
/// apiserver uses (negative array indices, `test` of a missing member against `null` passes,
/// `replace` of a missing object member adds it).
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops: &[Value] = match patch {
        // Go decodes `null` into an empty patch.
        Value::Null => &[],
        Value::Array(ops) => ops,
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                go_json_type(other)
            )));
        }
    };
    if let Some(bad) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            go_json_type(bad)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut out = doc.clone();
    apply_json_patch(&mut out, ops).map_err(|_detail| unprocessable())?;
    Ok(out)
}

/// Apply the operations in order; the error is the library's description of the failing operation.
fn apply_json_patch(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
        match kind {
            "add" => {
                let path = op_path(op, "path").ok_or("add operation failed to decode path")?;
                let (parent, key) = find_parent(doc, path)
                    .ok_or_else(|| format!("add operation does not apply: doc is missing path: {path:?}"))?;
                container_add(parent, &key, op_value(op))
                    .map_err(|e| format!("error in add for path: '{path}': {e}"))?;
            }
            "remove" => {
                let path = op_path(op, "path").ok_or("remove operation failed to decode path")?;
                let (parent, key) = find_parent(doc, path)
                    .ok_or_else(|| format!("remove operation does not apply: doc is missing path: {path:?}"))?;
                container_remove(parent, &key).map_err(|e| format!("error in remove for path: '{path}': {e}"))?;
            }
            "replace" => {
                let path = op_path(op, "path").ok_or("replace operation failed to decode path")?;
                if path.is_empty() {
                    let value = op_value(op);
                    if !value.is_object() && !value.is_array() {
                        return Err("replace operation value must be object or array".into());
                    }
                    *doc = value;
                    continue;
                }
                let (parent, key) = find_parent(doc, path)
                    .ok_or_else(|| format!("replace operation does not apply: doc is missing path: {path}"))?;
                container_get(parent, &key)
                    .map_err(|_| format!("replace operation does not apply: doc is missing key: {path}"))?;
                container_set(parent, &key, op_value(op))
                    .map_err(|e| format!("error in remove for path: '{path}': {e}"))?;
            }
            "move" => {
                let from = op_path(op, "from").ok_or("move operation failed to decode from")?;
                let (parent, key) = find_parent(doc, from)
                    .ok_or_else(|| format!("move operation does not apply: doc is missing from path: {from}"))?;
                let value = container_get(parent, &key)
                    .map_err(|e| format!("error in move for path: '{key}': {e}"))?
                    .cloned()
                    .unwrap_or(Value::Null);
                container_remove(parent, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
                let path = op_path(op, "path").ok_or("move operation failed to decode path")?;
                let (parent, key) = find_parent(doc, path)
                    .ok_or_else(|| format!("move operation does not apply: doc is missing destination path: {path}"))?;
                container_add(parent, &key, value).map_err(|e| format!("error in move for path: '{path}': {e}"))?;
            }
            "copy" => {
                let from = op_path(op, "from").ok_or("copy operation failed to decode from")?;
                let (parent, key) = find_parent(doc, from)
                    .ok_or_else(|| format!("copy operation does not apply: doc is missing from path: {from}"))?;
                let value = container_get(parent, &key)
                    .map_err(|e| format!("error in copy for from: '{from}': {e}"))?
                    .cloned()
                    .unwrap_or(Value::Null);
                let path = op_path(op, "path").ok_or("copy operation failed to decode path")?;
                let (parent, key) = find_parent(doc, path)
                    .ok_or_else(|| format!("copy operation does not apply: doc is missing destination path: {path}"))?;
                container_add(parent, &key, value).map_err(|e| format!("error while adding value during copy: {e}"))?;
            }
            "test" => {
                let path = op_path(op, "path").ok_or("test operation failed to decode path")?;
                let expected = op_value(op);
                let failed = || format!("testing value {path} failed: test failed");
                if path.is_empty() {
                    if *doc != expected {
                        return Err(failed());
                    }
                    continue;
                }
                let (parent, key) = find_parent(doc, path)
                    .ok_or_else(|| format!("test operation does not apply: is missing path: {path}"))?;
                let actual =
                    container_get(parent, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))?;
                // A missing member and a JSON null are the same to the Go library.
                let matches = match actual {
                    None | Some(Value::Null) => expected.is_null(),
                    Some(v) => *v == expected,
                };
                if !matches {
                    return Err(failed());
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

fn op_path<'a>(op: &'a Value, field: &str) -> Option<&'a str> {
    op.get(field).and_then(Value::as_str)
}

/// A missing `value` and `"value": null` both mean JSON null.
fn op_value(op: &Value) -> Value {
    op.get("value").cloned().unwrap_or(Value::Null)
}

/// RFC 6901 token decoding.
fn decode_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The container holding the member a pointer names, and the member's (decoded) key.
/// Like the Go library, the first token (before the first `/`) is not looked at, and the
/// empty pointer has no parent.
fn find_parent<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let tokens: Vec<&str> = path.split('/').collect();
    if tokens.len() < 2 {
        return None;
    }
    let mut cur = doc;
    for token in &tokens[1..tokens.len() - 1] {
        let key = decode_token(token);
        cur = match cur {
            Value::Object(m) => m.get_mut(&key)?,
            Value::Array(a) => {
                let idx = array_index(&key, a.len()).ok()?;
                a.get_mut(idx)?
            }
            _ => return None,
        };
        if !cur.is_object() && !cur.is_array() {
            return None;
        }
    }
    let key = decode_token(tokens[tokens.len() - 1]);
    if cur.is_object() || cur.is_array() { Some((cur, key)) } else { None }
}

/// An existing element's index; negative indices count from the end.
fn array_index(key: &str, len: usize) -> Result<usize, String> {
    let idx: i64 = key.parse().map_err(|_| format!("strconv.Atoi: parsing {key:?}: invalid syntax"))?;
    let len = len as i64;
    let idx = if idx < 0 { idx + len } else { idx };
    if idx < 0 || idx >= len {
        return Err(format!("Unable to access invalid index: {key}: invalid index referenced"));
    }
    Ok(idx as usize)
}

fn container_get<'a>(con: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) => Ok(a.get(array_index(key, a.len())?)),
        _ => Err("not a container".into()),
    }
}

fn container_set(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = array_index(key, a.len())?;
            a[idx] = value;
            Ok(())
        }
        _ => Err("not a container".into()),
    }
}

fn container_add(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let idx: i64 =
                key.parse().map_err(|_| format!("value was not a proper array index: '{key}': invalid syntax"))?;
            // Inserting may address one past the end.
            let size = a.len() as i64 + 1;
            let idx = if idx < 0 { idx + size } else { idx };
            if idx < 0 || idx >= size {
                return Err(format!("Unable to access invalid index: {key}: invalid index referenced"));
            }
            a.insert(idx as usize, value);
            Ok(())
        }
        _ => Err("not a container".into()),
    }
}

fn container_remove(con: &mut Value, key: &str) -> Result<(), String> {
    match con {
        Value::Object(m) => match m.remove(key) {
            Some(_) => Ok(()),
            None => Err(format!("Unable to remove nonexistent key: {key}: missing value")),
        },
        Value::Array(a) => {
            let idx = array_index(key, a.len())?;
            a.remove(idx);
            Ok(())
        }
        _ => Err("not a container".into()),
    }
}

/// RFC 7386 (`application/merge-patch+json`): objects merge recursively, `null` removes a
/// member, anything else replaces. Nulls inside values that are taken whole (new members,
/// replaced arrays) are dropped, as the upstream library and typed decoding do.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    match patch {
        Value::Null => Err(ApiError::bad_request("Invalid JSON Patch")),
        Value::Object(_) => {
            let mut out = doc.clone();
            merge_into(&mut out, patch);
            Ok(out)
        }
        // Upstream takes the patch as the new document, which then fails to decode as an object.
        other => Err(ApiError::invalid(
            "",
            "",
            "",
            &[FieldError::invalid(
                "patch",
                Value::String(other.to_string()),
                format!(
                    "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                    go_json_type(other)
                ),
            )],
        )),
    }
}

fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = prune_nulls(patch.clone());
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_into(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Drop null members of objects, recursively (array elements that are null stay).
pub(crate) fn prune_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, prune_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(prune_nulls).collect()),
        other => other,
    }
}

/// The OpenAPI definition name of a built-in kind, e.g. `("apps", "v1", "Deployment")` →
/// `io.k8s.api.apps.v1.Deployment`, from the `x-kubernetes-group-version-kind` extension.
pub fn definition_for(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    crate::openapi::definition_name(group, version, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "replicas": 1,
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.24"}]}}
            }
        })
    }

    #[test]
    fn json_patch_add_remove_replace_test() {
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/env", "value": "prod"},
            {"op": "remove", "path": "/metadata/labels/tier"},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "side", "image": "busybox"}},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.25"}
        ]);
        let out = json_patch(&deployment(), &patch).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "env": "prod"}));
        let containers = out["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0]["image"], "nginx:1.25");
        assert_eq!(containers[1]["name"], "side");
    }

    #[test]
    fn json_patch_failed_test_is_422_invalid() {
        let patch = json!([{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 5}]);
        let err = json_patch(&deployment(), &patch).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(err.reason, Reason::Invalid);
        assert_eq!(err.message, "the server rejected our request due to an error in our request");
        let mut doc = deployment();
        assert_eq!(
            apply_json_patch(&mut doc, patch.as_array().unwrap()).unwrap_err(),
            "testing value /spec/replicas failed: test failed"
        );
    }

    #[test]
    fn json_patch_missing_paths_fail() {
        for op in [
            json!({"op": "remove", "path": "/metadata/annotations/x"}),
            json!({"op": "remove", "path": "/metadata/labels/nope"}),
            json!({"op": "add", "path": "/metadata/annotations/x", "value": "y"}),
            json!({"op": "add", "path": "/spec/template/spec/containers/5", "value": {}}),
            json!({"op": "replace", "path": "/spec/template/spec/containers/1", "value": {}}),
            json!({"op": "move", "from": "/nope", "path": "/x"}),
            json!({"op": "frobnicate", "path": "/x"}),
            json!({"op": "add", "value": 1}),
        ] {
            let err = json_patch(&deployment(), &json!([op])).unwrap_err();
            assert_eq!(err.code, 422, "{op}");
        }
    }

    #[test]
    fn json_patch_go_library_quirks() {
        let doc = json!({"a": [1, 2, 3], "b": null});
        // Negative indices count from the end; add with -1 appends.
        let out =
            json_patch(&doc, &json!([{"op": "remove", "path": "/a/-1"}, {"op": "add", "path": "/a/-1", "value": 9}]))
                .unwrap();
        assert_eq!(out["a"], json!([1, 2, 9]));
        // test against null passes for a missing member and for a null one.
        json_patch(&doc, &json!([{"op": "test", "path": "/zzz", "value": null}, {"op": "test", "path": "/b"}]))
            .unwrap();
        // replace of a missing object member adds it.
        let out = json_patch(&doc, &json!([{"op": "replace", "path": "/c", "value": 1}])).unwrap();
        assert_eq!(out["c"], 1);
        // move and copy, with ~1 escapes.
        let doc = json!({"metadata": {"annotations": {"a/b": "x"}}});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "copy", "from": "/metadata/annotations/a~1b", "path": "/metadata/annotations/c"},
                {"op": "move", "from": "/metadata/annotations/a~1b", "path": "/metadata/annotations/d"}
            ]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["annotations"], json!({"c": "x", "d": "x"}));
        // Whole-document replace and test.
        let out = json_patch(
            &doc,
            &json!([{"op": "replace", "path": "", "value": {"x": 1}}, {"op": "test", "path": "", "value": {"x": 1}}]),
        )
        .unwrap();
        assert_eq!(out, json!({"x": 1}));
    }

    #[test]
    fn json_patch_malformed_is_400_and_too_many_is_413() {
        let err = json_patch(&deployment(), &json!({"op": "add"})).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        );
        let err = json_patch(&deployment(), &json!(["add"])).unwrap_err();
        assert_eq!(err.code, 400);
        let many: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/kind", "value": "Deployment"}))
            .collect();
        let err = json_patch(&deployment(), &Value::Array(many)).unwrap_err();
        assert_eq!(err.code, 413);
        assert_eq!(err.message, "The allowed maximum operations in a JSON patch is 10000, got 10001");
        assert_eq!(json_patch(&deployment(), &Value::Null).unwrap(), deployment());
    }

    #[test]
    fn merge_patch_labels_and_replicas() {
        let out = merge_patch(
            &deployment(),
            &json!({"metadata": {"labels": {"tier": null, "env": "prod"}, "annotations": {"a": "b", "gone": null}}, "spec": {"replicas": 5}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "env": "prod"}));
        assert_eq!(out["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(out["spec"]["replicas"], 5);
        // Lists are replaced whole, nulls inside them dropped.
        let out = merge_patch(
            &deployment(),
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "x", "image": null}]}}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "x"}]));
    }

    #[test]
    fn merge_patch_rejects_non_objects() {
        assert_eq!(merge_patch(&deployment(), &Value::Null).unwrap_err().code, 400);
        let err = merge_patch(&deployment(), &json!([1])).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.starts_with(" \"\" is invalid: patch: Invalid value:"), "{}", err.message);
    }

    #[test]
    fn definitions_are_found_by_gvk() {
        assert_eq!(definition_for("apps", "v1", "Deployment"), Some("io.k8s.api.apps.v1.Deployment"));
        assert_eq!(definition_for("", "v1", "Pod"), Some("io.k8s.api.core.v1.Pod"));
        assert_eq!(definition_for("", "v1", "Nope"), None);
        assert_eq!(definition_for("apps", "v2", "Deployment"), None);
    }
}
