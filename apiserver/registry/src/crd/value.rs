//! Validation of a custom resource against a version's `openAPIV3Schema`, as upstream's
//! kube-openapi schema validator plus apiextensions' embedded-resource (`objectmeta`) and
//! `x-kubernetes-list-type` (`listtype`) passes, with upstream's messages
//! (`spec.replicas in body must be of type integer: "string"`).
//!
//! Field paths follow kube-openapi: `spec.items[0].name`, map keys as `spec.labels.key`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::{Map, Value};

use crate::status::{FieldError, FieldErrorType};

/// `in body`: kube-openapi's location of every error of a custom resource.
const IN: &str = "in body";

/// Validates `obj` (a whole custom resource) against `schema` (`openAPIV3Schema` of its
/// version): types, required, enum, pattern, formats, bounds, lengths, item and property
/// counts, nullable, int-or-string, embedded resources and list-type set/map uniqueness.
/// ObjectMeta of the resource itself is checked by [`super::validate_cr_metadata`].
pub fn validate_cr(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_at(schema, obj, "", &mut errs);
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" || k == "metadata" {
                continue;
            }
            if let Some(sub) = prop_schema(schema, k) {
                embedded_walk(sub, v, k, &mut errs);
            }
        }
    }
    list_types_walk(schema, obj, "", &mut errs);
    errs
}

/// Validates `value` against `schema`, reporting paths below `path` (empty for the root).
/// Used for `status` on status updates (`path = "status"`) and for schema defaults.
pub fn validate_at(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    node(schema, value, path, errs);
}

pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The schema of property `k` of an object schema: `properties[k]`, else `additionalProperties`.
pub(crate) fn prop_schema<'a>(s: &'a Value, k: &str) -> Option<&'a Value> {
    if let Some(p) = s.get("properties").and_then(|p| p.get(k)) {
        return Some(p);
    }
    s.get("additionalProperties").filter(|a| a.is_object())
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Go's `%v` of a float64 (`10`, `0.5`).
pub(crate) fn go_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 { format!("{}", f as i64) } else { format!("{f}") }
}

/// The JSON type kube-openapi infers for a decoded value.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integral(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.is_finite()),
        _ => false,
    }
}

fn type_error(path: &str, expected: &str, got: &str) -> FieldError {
    FieldError::new(
        FieldErrorType::TypeInvalid,
        path,
        Some(Value::from(got)),
        format!("{path} {IN} must be of type {expected}: {got:?}"),
    )
}

fn invalid(path: &str, value: Value, detail: String) -> FieldError {
    FieldError::new(FieldErrorType::Invalid, path, Some(value), detail)
}

/// Whether `v` has the schema's type; `Err(expected)` otherwise.
fn check_type(s: &Value, v: &Value) -> Result<(), String> {
    let got = type_of(v);
    if flag(s, "x-kubernetes-int-or-string") {
        return if got == "string" || is_integral(v) { Ok(()) } else { Err("integer,string".into()) };
    }
    let Some(want) = s.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let ok = match want {
        "integer" => is_integral(v),
        "number" => matches!(v, Value::Number(_)),
        other => other == got,
    };
    if ok { Ok(()) } else { Err(want.to_string()) }
}

fn node(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    if v.is_null() {
        let typed = flag(s, "x-kubernetes-int-or-string")
            || s.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
        if typed && !flag(s, "nullable") {
            let want = if flag(s, "x-kubernetes-int-or-string") {
                "integer,string"
            } else {
                s.get("type").and_then(Value::as_str).unwrap_or("")
            };
            errs.push(type_error(path, want, "null"));
        }
        return;
    }
    if let Err(want) = check_type(s, v) {
        errs.push(type_error(path, &want, type_of(v)));
        return;
    }
    junctors(s, v, path, errs);
    match v {
        Value::String(st) => string_checks(s, st, path, errs),
        Value::Number(_) => number_checks(s, v, path, errs),
        Value::Array(items) => array_checks(s, items, path, errs),
        Value::Object(m) => object_checks(s, m, path, errs),
        _ => {}
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_eq(a, v))
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, v.clone(), &refs));
    }
}

/// JSON equality with numbers compared by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

/// allOf / anyOf / oneOf / not.
fn junctors(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            node(sub, v, path, errs);
        }
    }
    let passes = |sub: &Value| {
        let mut e = Vec::new();
        node(sub, v, path, &mut e);
        e.is_empty()
    };
    let name = if path.is_empty() { "." } else { path };
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(passes)
    {
        errs.push(invalid(path, Value::from(""), format!("{name} {IN} must validate at least one schema (anyOf)")));
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        errs.push(invalid(path, Value::from(""), format!("{name} {IN} must validate one and only one schema (oneOf)")));
    }
    if let Some(not) = s.get("not").filter(|n| n.is_object())
        && passes(not)
    {
        errs.push(invalid(path, Value::from(""), format!("{name} {IN} must not validate the schema (not)")));
    }
}

fn string_checks(s: &Value, st: &str, path: &str, errs: &mut Vec<FieldError>) {
    let len = st.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errs.push(invalid(path, Value::from(st), format!("{path} {IN} should be at least {min} chars long")));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && !p.is_empty()
        && pattern_matches(p, st) == Some(false)
    {
        errs.push(invalid(path, Value::from(st), format!("{path} {IN} should match '{p}'")));
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(f) = s.get("format").and_then(Value::as_str)
        && (ty.is_empty() || ty == "string")
        && !super::formats::valid(f, st)
    {
        errs.push(FieldError::new(
            FieldErrorType::TypeInvalid,
            path,
            Some(Value::from(st)),
            format!("{path} {IN} must be of type {f}: {st:?}"),
        ));
    }
}

static PATTERNS: LazyLock<Mutex<HashMap<String, Option<Regex>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether `s` matches the (unanchored, RE2) pattern `p`; `None` if `p` does not compile.
pub(crate) fn pattern_matches(p: &str, s: &str) -> Option<bool> {
    let mut cache = PATTERNS.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() > 4096 {
        cache.clear();
    }
    let re = cache.entry(p.to_string()).or_insert_with(|| Regex::new(p).ok());
    re.as_ref().map(|re| re.is_match(s))
}

fn number_checks(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(x) = v.as_f64() else { return };
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
    {
        let q = x / m;
        if (q - q.round()).abs() > 1e-9 {
            errs.push(invalid(path, v.clone(), format!("{path} {IN} should be a multiple of {}", go_num(m))));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let excl = flag(s, "exclusiveMaximum");
        if (excl && x >= max) || (!excl && x > max) {
            let op = if excl { "less than" } else { "less than or equal to" };
            errs.push(invalid(path, v.clone(), format!("{path} {IN} should be {op} {}", go_num(max))));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let excl = flag(s, "exclusiveMinimum");
        if (excl && x <= min) || (!excl && x < min) {
            let op = if excl { "greater than" } else { "greater than or equal to" };
            errs.push(invalid(path, v.clone(), format!("{path} {IN} should be {op} {}", go_num(min))));
        }
    }
}

fn array_checks(s: &Value, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if let Some(item_schema) = s.get("items").filter(|i| i.is_object()) {
        for (i, it) in items.iter().enumerate() {
            node(item_schema, it, &index(path, i), errs);
        }
    }
    let n = items.len() as u64;
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        errs.push(invalid(path, Value::from(n), format!("{path} {IN} should have at least {min} items")));
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        errs.push(FieldError::new(
            FieldErrorType::TooMany,
            path,
            Some(Value::from(n)),
            format!("must have at most {max} {unit}"),
        ));
    }
    if flag(s, "uniqueItems") {
        let dup = items.iter().enumerate().any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)));
        if dup {
            errs.push(invalid(path, Value::from(""), format!("{path} {IN} shouldn't contain duplicates")));
        }
    }
}

fn object_checks(s: &Value, m: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                errs.push(FieldError::required(child(path, r), ""));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    for (k, v) in m {
        if let Some(p) = props.and_then(|p| p.get(k)) {
            node(p, v, &child(path, k), errs);
        } else if let Some(a) = additional.filter(|a| a.is_object()) {
            node(a, v, &child(path, k), errs);
        } else if additional == Some(&Value::Bool(false)) {
            let name = if path.is_empty() { "." } else { path };
            errs.push(invalid(
                &child(path, k),
                Value::from(k.as_str()),
                format!("{name}.{k} {IN} is a forbidden property"),
            ));
        }
    }
    let n = m.len() as u64;
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        errs.push(invalid(path, Value::from(min), format!("{path} {IN} should have at least {min} properties")));
    }
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        errs.push(FieldError::new(
            FieldErrorType::TooMany,
            path,
            Some(Value::from(n)),
            format!("must have at most {max} {unit}"),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Embedded resources (apiextensions' objectmeta.Validate).

fn embedded_walk(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Object(m) => {
            if flag(s, "x-kubernetes-embedded-resource") {
                embedded_resource(m, path, errs);
            }
            for (k, sub) in m {
                if let Some(p) = s.get("properties").and_then(|p| p.get(k)) {
                    embedded_walk(p, sub, &child(path, k), errs);
                } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    embedded_walk(a, sub, &format!("{path}[{k}]"), errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    embedded_walk(is, it, &index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(m: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if !m.contains_key("apiVersion") {
        errs.push(FieldError::required(child(path, "apiVersion"), ""));
    }
    if !m.contains_key("kind") {
        errs.push(FieldError::required(child(path, "kind"), ""));
    }
    if let Some(av) = m.get("apiVersion") {
        let f = child(path, "apiVersion");
        match av.as_str() {
            None => errs.push(invalid(&f, av.clone(), "must be a string".into())),
            Some("") => errs.push(invalid(&f, Value::from(""), "must not be empty".into())),
            Some(s) if s.matches('/').count() > 1 => {
                errs.push(invalid(&f, Value::from(s), format!("unexpected GroupVersion string: {s}")))
            }
            Some(_) => {}
        }
    }
    if let Some(kind) = m.get("kind") {
        let f = child(path, "kind");
        match kind.as_str() {
            None => errs.push(invalid(&f, kind.clone(), "must be a string".into())),
            Some("") => errs.push(invalid(&f, Value::from(""), "must not be empty".into())),
            Some(k) => {
                let e = crate::validation::is_dns1035_label(&k.to_lowercase());
                if !e.is_empty() {
                    errs.push(invalid(
                        &f,
                        Value::from(k),
                        format!("may have mixed case, but should otherwise match: {}", e.join(",")),
                    ));
                }
            }
        }
    }
    if let Some(meta) = m.get("metadata") {
        let f = child(path, "metadata");
        let Some(mm) = meta.as_object() else {
            errs.push(invalid(&f, meta.clone(), "must be an object".into()));
            return;
        };
        for key in ["name", "generateName"] {
            if let Some(n) = mm.get(key).and_then(Value::as_str).filter(|n| !n.is_empty()) {
                for msg in path_segment_errors(n, key == "generateName") {
                    errs.push(invalid(&child(&f, key), Value::from(n), msg));
                }
            }
        }
        if let Some(ns) = mm.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            for msg in crate::validation::is_dns1123_label(ns) {
                errs.push(invalid(&child(&f, "namespace"), Value::from(ns), msg));
            }
        }
        crate::validation::validate_labels(mm.get("labels"), &child(&f, "labels"), errs);
    }
}

/// Upstream's `IsValidPathSegmentName` (and the prefix variant for generateName).
fn path_segment_errors(name: &str, prefix: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !prefix && (name == "." || name == "..") {
        out.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// x-kubernetes-list-type set / map uniqueness (apiextensions' listtype validation).

fn list_types_walk(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Object(m) => {
            for (k, sub) in m {
                if let Some(p) = s.get("properties").and_then(|p| p.get(k)) {
                    list_types_walk(p, sub, &child(path, k), errs);
                } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    list_types_walk(a, sub, &format!("{path}[{k}]"), errs);
                }
            }
        }
        Value::Array(items) => {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for i in duplicates(items.iter().collect()) {
                        errs.push(FieldError::duplicate(index(path, i), items[i].clone()));
                    }
                }
                Some("map") => list_map(s, items, path, errs),
                _ => {}
            }
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    list_types_walk(is, it, &index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

/// Indices of the second occurrence of each repeated value.
fn duplicates(values: Vec<&Value>) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let earlier = values[..i].iter().filter(|w| json_eq(v, w)).count();
        if earlier == 1 {
            out.push(i);
        }
    }
    out
}

fn list_map(s: &Value, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, it) in items.iter().enumerate() {
        if !it.is_null() && !it.is_object() {
            errs.push(invalid(&index(path, i), it.clone(), "must be an object for an array of list-type map".into()));
            return;
        }
    }
    let keys: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let key_values: Vec<Value> = items
        .iter()
        .map(|it| {
            let mut key = Map::new();
            for k in &keys {
                if let Some(v) = it.get(*k) {
                    key.insert((*k).to_string(), v.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in duplicates(key_values.iter().collect()) {
        errs.push(FieldError::duplicate(index(path, i), key_values[i].clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                        "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1.5},
                        "size": {"type": "string", "enum": ["small", "large"]},
                        "when": {"type": "string", "format": "date-time"},
                        "id": {"type": "string", "format": "uuid"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "opt": {"type": "string", "nullable": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2,
                                 "x-kubernetes-list-type": "set"},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["name"],
                                  "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    fn msgs(obj: Value) -> Vec<String> {
        validate_cr(&schema(), &obj).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_object_has_no_errors() {
        let errs = msgs(json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"name": "abc", "replicas": 3, "ratio": 1.0, "size": "small", "port": "http",
                     "when": "2024-01-02T03:04:05Z", "id": "123e4567-e89b-12d3-a456-426614174000",
                     "opt": null, "tags": ["a", "b"], "labels": {"a": "b"},
                     "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}}));
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn type_errors_use_upstream_wording() {
        let errs = msgs(json!({"spec": {"name": "abc", "replicas": "3"}}));
        assert_eq!(
            errs,
            vec![r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#]
        );
        let errs = msgs(json!({"spec": {"name": null}}));
        assert_eq!(errs, vec![r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#]);
        let errs = msgs(json!({"spec": {"name": "abc", "port": 1.5}}));
        assert_eq!(
            errs,
            vec![r#"spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number""#]
        );
        // 2.0 decodes as a float but is an integer value: accepted.
        assert!(msgs(json!({"spec": {"name": "abc", "replicas": 2.0}})).is_empty());
    }

    #[test]
    fn required_enum_and_bounds() {
        assert_eq!(msgs(json!({"spec": {}})), vec!["spec.name: Required value"]);
        assert_eq!(
            msgs(json!({"spec": {"name": "abc", "size": "huge"}})),
            vec![r#"spec.size: Unsupported value: "huge": supported values: "small", "large""#]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "abc", "replicas": 11}})),
            vec!["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "abc", "replicas": -1}})),
            vec!["spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "abc", "ratio": 1.5}})),
            vec!["spec.ratio: Invalid value: 1.5: spec.ratio in body should be less than 1.5"]
        );
    }

    #[test]
    fn strings_lengths_patterns_formats() {
        assert_eq!(
            msgs(json!({"spec": {"name": "a"}})),
            vec![r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "abcdef"}})),
            vec!["spec.name: Too long: may not be more than 5 bytes"]
        );
        // Unicode characters count once each.
        assert!(msgs(json!({"spec": {"name": "ab", "labels": {}}})).is_empty());
        let s = json!({"type": "object", "properties": {"n": {"type": "string", "maxLength": 3}}});
        assert!(validate_cr(&s, &json!({"n": "äöü"})).is_empty());
        assert_eq!(
            msgs(json!({"spec": {"name": "AB"}})),
            vec![r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "ab", "when": "yesterday"}})),
            vec![r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#]
        );
        assert_eq!(msgs(json!({"spec": {"name": "ab", "id": "nope"}})).len(), 1);
    }

    #[test]
    fn arrays_sets_and_maps() {
        assert_eq!(
            msgs(json!({"spec": {"name": "ab", "tags": ["a", "b", "c"]}})),
            vec!["spec.tags: Too many: must have at most 2 items"]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "ab", "tags": ["a", "a"]}})),
            vec![r#"spec.tags[1]: Duplicate value: "a""#]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "ab", "ports": [{"name": "x"}, {"name": "y"}, {"name": "x"}]}})),
            vec![r#"spec.ports[2]: Duplicate value: {"name":"x"}"#]
        );
        assert_eq!(
            msgs(json!({"spec": {"name": "ab", "tags": [1]}})),
            vec![r#"spec.tags[0]: Invalid value: "integer": spec.tags[0] in body must be of type string: "integer""#]
        );
    }

    #[test]
    fn embedded_resources_need_type_meta() {
        let errs = msgs(json!({"spec": {"name": "ab", "template": {"metadata": {"name": "a/b"}}}}));
        assert_eq!(
            errs,
            vec![
                "spec.template.apiVersion: Required value",
                "spec.template.kind: Required value",
                r#"spec.template.metadata.name: Invalid value: "a/b": may not contain '/'"#,
            ]
        );
    }

    #[test]
    fn any_of_int_or_string_pattern() {
        let s = json!({"type": "object", "properties": {"p": {
            "anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true}}});
        assert!(validate_cr(&s, &json!({"p": 3})).is_empty());
        assert!(validate_cr(&s, &json!({"p": "3"})).is_empty());
        assert_eq!(validate_cr(&s, &json!({"p": true})).len(), 1);
    }
}
