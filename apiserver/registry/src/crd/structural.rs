//! Checks of a CRD version's `openAPIV3Schema`, with upstream's messages: the structural
//! schema rules (`schema.ValidateStructural`: a type everywhere, metadata restrictions,
//! embedded-resource rules, nested value validations), the OpenAPI rules of apiextensions'
//! validation (supported keywords, `additionalProperties` vs `properties`, the
//! `x-kubernetes-*` extensions) and that every `default` validates and is pruned.

use serde_json::{Map, Value};

use super::value::{pattern_matches, validate_at};
use crate::status::{FieldError, FieldErrorType};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn ty(s: &Value) -> &str {
    s.get("type").and_then(Value::as_str).unwrap_or("")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}.properties[{k}]")
}

/// Validates `schema` (at field path `path`, e.g. `spec.versions[0].schema.openAPIV3Schema`).
pub(crate) fn validate_schema(schema: &Value, path: &str, status_enabled: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(root) = schema.as_object() else {
        return errs;
    };
    if status_enabled {
        status_root_rules(root, path, &mut errs);
    }
    if flag(schema, "nullable") {
        errs.push(FieldError::forbidden(format!("{path}.nullable"), "nullable cannot be true at the root"));
    }
    let mut structural = Vec::new();
    invariants(schema, Level::Root, path, &mut structural);
    structural.sort_by_key(ToString::to_string);
    let structural_ok = structural.is_empty();
    errs.extend(structural);
    if structural_ok {
        defaults(schema, path, true, &mut errs);
    }
    openapi_rules(schema, path, true, false, None, &mut errs);
    errs
}

fn status_root_rules(root: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    const ALLOWED: &[&str] = &[
        "description",
        "type",
        "format",
        "title",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "required",
        "items",
        "properties",
        "externalDocs",
        "example",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
    ];
    if let Some(t) = root.get("type").and_then(Value::as_str)
        && t != "object"
    {
        errs.push(FieldError::invalid(
            format!("{path}.type"),
            Value::from(t),
            r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
        ));
        return;
    }
    let is_zero = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    };
    if root.iter().any(|(k, v)| !ALLOWED.contains(&k.as_str()) && !is_zero(v)) {
        let names = "[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations]";
        errs.push(FieldError::invalid(
            path,
            Value::Object(root.clone()),
            format!("only {names} fields are allowed at the root of the schema if the status subresource is enabled"),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Structural invariants.

fn invariants(s: &Value, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    let t = ty(s);
    if t == "array" && s.get("items").is_none() {
        errs.push(FieldError::required(format!("{path}.items"), "must be specified"));
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        invariants(items, Level::Item, &format!("{path}.items"), errs);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            invariants(p, Level::Field, &key(path, k), errs);
        }
    }
    let additional = s.get("additionalProperties").filter(|a| !a.is_null());
    if let Some(a) = additional {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(format!("{path}.additionalProperties"), "must not be used at the root"));
        }
        if a.is_object() {
            invariants(a, Level::Field, &format!("{path}.additionalProperties"), errs);
        }
    }
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-embedded-resource"),
            Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    value_validation(s, int_or_string, path, errs);
    if embedded && t != "object" {
        if t.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                Value::from(t),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if t.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(format!("{path}.type"), detail));
    }
    if embedded && additional.is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !t.is_empty() && t != "object" {
        errs.push(FieldError::invalid(format!("{path}.type"), Value::from(t), "must be object at the root"));
    }
    let check_meta = lvl == Level::Root || embedded;
    let props = s.get("properties").and_then(Value::as_object);
    if check_meta {
        for name in ["kind", "apiVersion"] {
            if let Some(p) = props.and_then(|p| p.get(name))
                && ty(p) != "string"
            {
                errs.push(FieldError::invalid(
                    format!("{}.type", key(path, name)),
                    Value::from(ty(p)),
                    "must be string",
                ));
            }
        }
    }
    if let Some(meta) = props.and_then(|p| p.get("metadata")) {
        let mp = key(path, "metadata");
        if check_meta && ty(meta) != "object" {
            errs.push(FieldError::invalid(format!("{mp}.type"), Value::from(ty(meta)), "must be object"));
        }
        if lvl == Level::Root && !metadata_only_names(meta) {
            errs.push(FieldError::forbidden(
                mp,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && props.is_none_or(Map::is_empty) {
        errs.push(FieldError::required(
            format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root `metadata` schema may only say `type`, `default` and restrict `name`/`generateName`.
fn metadata_only_names(meta: &Value) -> bool {
    let Some(m) = meta.as_object() else { return true };
    m.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v.as_object().is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => v.is_null(),
    })
}

fn is_int_or_string_any_of(v: Option<&Value>) -> bool {
    v.and_then(Value::as_array).is_some_and(|a| {
        a.len() == 2
            && a[0].as_object().is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("integer")))
            && a[1].as_object().is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("string")))
    })
}

/// allOf / anyOf / oneOf / not: only value validations, no structure.
fn value_validation(s: &Value, int_or_string: bool, path: &str, errs: &mut Vec<FieldError>) {
    let skip_any_of = int_or_string && is_int_or_string_any_of(s.get("anyOf"));
    let skip_first_all_of = int_or_string
        && s.get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .is_some_and(|f| is_int_or_string_any_of(f.get("anyOf")));
    for (kw, skip) in [("anyOf", skip_any_of), ("allOf", false), ("oneOf", false)] {
        if skip {
            continue;
        }
        if let Some(list) = s.get(kw).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                let nested_skip = kw == "allOf" && i == 0 && skip_first_all_of;
                nested(sub, nested_skip, &format!("{path}.{kw}[{i}]"), errs);
            }
        }
    }
    if let Some(not) = s.get("not").filter(|n| n.is_object()) {
        nested(not, false, &format!("{path}.not"), errs);
    }
}

fn nested(v: &Value, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else { return };
    if !skip_any_of {
        value_validation(v, false, path, errs);
    } else {
        value_validation(
            &Value::Object(m.iter().filter(|(k, _)| *k != "anyOf").map(|(k, v)| (k.clone(), v.clone())).collect()),
            false,
            path,
            errs,
        );
    }
    if let Some(items) = m.get("items") {
        nested(items, false, &format!("{path}.items"), errs);
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            nested(p, false, &key(path, k), errs);
        }
        if props.contains_key("metadata") {
            errs.push(FieldError::forbidden(key(path, "metadata"), "must not be specified in a nested context"));
        }
    }
    let rules: &[(&str, &str)] = &[
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
        ("x-kubernetes-map-type", "must be undefined to be structural"),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    for (k, detail) in rules {
        let set = match m.get(*k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty() || *k == "x-kubernetes-list-type" || *k == "x-kubernetes-map-type",
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            errs.push(FieldError::forbidden(format!("{path}.{k}"), *detail));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults: each must validate against its schema and survive pruning.

fn defaults(s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let pp = key(path, k);
            // Defaults below the root's metadata are forbidden elsewhere; skip validating them.
            if root && (k == "metadata" || k == "apiVersion" || k == "kind") {
                continue;
            }
            check_default(p, &pp, errs);
            defaults(p, &pp, false, errs);
        }
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        let ip = format!("{path}.items");
        check_default(items, &ip, errs);
        defaults(items, &ip, false, errs);
    }
    if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
        let ap = format!("{path}.additionalProperties");
        check_default(a, &ap, errs);
        defaults(a, &ap, false, errs);
    }
}

fn check_default(s: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(d) = s.get("default") else { return };
    let dp = format!("{path}.default");
    if d.is_null() && !flag(s, "nullable") {
        errs.push(FieldError::invalid(dp, Value::Null, "must not be null for non-nullable schema"));
        return;
    }
    let mut schema_errs = Vec::new();
    validate_at(s, d, &dp, &mut schema_errs);
    errs.extend(schema_errs);
    let mut pruned = d.clone();
    if !super::prune::prune_value(s, &mut pruned).is_empty() {
        errs.push(FieldError::invalid(dp, d.clone(), "must not have unknown fields"));
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAPI / extension rules (apiextensions' ValidateCustomResourceDefinitionOpenAPISchema).

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

fn openapi_rules(
    s: &Value,
    path: &str,
    is_root: bool,
    inside_meta: bool,
    no_defaults: Option<&str>,
    errs: &mut Vec<FieldError>,
) {
    let Some(m) = s.as_object() else { return };
    let t = ty(s);
    if !t.is_empty() && !TYPES.contains(&t) {
        if t == "null" {
            errs.push(FieldError::forbidden(
                format!("{path}.type"),
                "type cannot be set to null, use nullable as an alternative",
            ));
        } else {
            errs.push(FieldError::not_supported(format!("{path}.type"), Value::from(t), TYPES));
        }
    }
    if let (Some(_), Some(why)) = (m.get("default"), no_defaults) {
        errs.push(FieldError::forbidden(format!("{path}.default"), format!("must not be set {why}")));
    }
    for (kw, msg) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if m.get(kw).is_some_and(|v| !v.is_null() && v != "") {
            errs.push(FieldError::forbidden(format!("{path}.{kw}"), msg));
        }
    }
    if m.get("items").is_some_and(Value::is_array) {
        errs.push(FieldError::forbidden(format!("{path}.items"), "items must be a schema object and not an array"));
    }
    if inside_meta && flag(s, "x-kubernetes-embedded-resource") {
        errs.push(FieldError::forbidden(
            format!("{path}.x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    if flag(s, "uniqueItems") {
        errs.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let has_props = m.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty());
    if let Some(a) = m.get("additionalProperties").filter(|a| !a.is_null()) {
        if has_props && *a != Value::Bool(true) {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if a.is_object() {
            let why =
                if inside_meta { Some("inside additionalProperties applying to object metadata") } else { no_defaults };
            openapi_rules(a, &format!("{path}.additionalProperties"), false, inside_meta, why, errs);
        }
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        let embedded = flag(s, "x-kubernetes-embedded-resource");
        for (k, p) in props {
            let meta_field = (is_root || embedded) && matches!(k.as_str(), "metadata" | "kind" | "apiVersion");
            let pp = key(path, k);
            let top = format!("in top-level {k}");
            let why = if meta_field && is_root { Some(top.as_str()) } else { no_defaults };
            openapi_rules(p, &pp, false, inside_meta || meta_field, why, errs);
        }
    }
    for kw in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = m.get(kw).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                openapi_rules(sub, &format!("{path}.{kw}[{i}]"), false, inside_meta, no_defaults, errs);
            }
        }
    }
    if let Some(not) = m.get("not").filter(|n| n.is_object()) {
        openapi_rules(not, &format!("{path}.not"), false, inside_meta, no_defaults, errs);
    }
    if let Some(items) = m.get("items").filter(|i| i.is_object()) {
        openapi_rules(items, &format!("{path}.items"), false, inside_meta, no_defaults, errs);
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            Value::Bool(false),
            "must be true or undefined",
        ));
    }
    extensions(m, t, path, errs);
    if let Some(p) = m.get("pattern").and_then(Value::as_str)
        && pattern_matches(p, "").is_none()
    {
        errs.push(FieldError::invalid(
            format!("{path}.pattern"),
            Value::from(p),
            format!("must be a valid regular expression, but isn't: error parsing regexp: {p}"),
        ));
    }
    if let Some(rules) = m.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{path}.x-kubernetes-validations[{i}]");
            let rule = r.get("rule").and_then(Value::as_str).unwrap_or("");
            if rule.is_empty() {
                errs.push(FieldError::required(format!("{rp}.rule"), "rule is not specified"));
            }
            if let Some(msg) = r.get("message").and_then(Value::as_str) {
                if msg.trim().is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{rp}.message"),
                        Value::from(msg),
                        "must be non-empty if specified",
                    ));
                } else if msg.contains(['\n', '\r']) {
                    errs.push(FieldError::invalid(
                        format!("{rp}.message"),
                        Value::from(msg),
                        "must not contain line breaks",
                    ));
                }
            } else if rule.contains(['\n', '\r']) {
                errs.push(FieldError::required(
                    format!("{rp}.message"),
                    "message must be specified if rule contains line breaks",
                ));
            }
            if let Some(reason) = r.get("reason").and_then(Value::as_str)
                && !["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"]
                    .contains(&reason)
            {
                errs.push(FieldError::not_supported(
                    format!("{rp}.reason"),
                    Value::from(reason),
                    &["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"],
                ));
            }
        }
    }
}

fn extensions(m: &Map<String, Value>, t: &str, path: &str, errs: &mut Vec<FieldError>) {
    let type_rule = |errs: &mut Vec<FieldError>, want: &str, ext: &str| {
        if t.is_empty() {
            errs.push(FieldError::required(format!("{path}.type"), format!("must be {want} if {ext} is specified")));
        } else if t != want {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                Value::from(t),
                format!("must be {want} if {ext} is specified"),
            ));
        }
    };
    if let Some(mt) = m.get("x-kubernetes-map-type").and_then(Value::as_str) {
        type_rule(errs, "object", "x-kubernetes-map-type");
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-map-type"),
                Value::from(mt),
                &["atomic", "granular"],
            ));
        }
    }
    let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    let items = m.get("items").filter(|i| i.is_object());
    if let Some(lt) = list_type {
        type_rule(errs, "array", "x-kubernetes-list-type");
        match lt {
            "set" => {
                if let Some(is) = items {
                    if is.get("x-kubernetes-list-type").and_then(Value::as_str).is_some_and(|x| x != "atomic") {
                        errs.push(FieldError::invalid(
                            format!("{path}.items.x-kubernetes-list-type"),
                            is["x-kubernetes-list-type"].clone(),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                    if is.get("x-kubernetes-map-type").and_then(Value::as_str).is_some_and(|x| x != "atomic") {
                        errs.push(FieldError::invalid(
                            format!("{path}.items.x-kubernetes-map-type"),
                            is["x-kubernetes-map-type"].clone(),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                }
            }
            "atomic" | "map" => {}
            other => errs.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-list-type"),
                Value::from(other),
                &["atomic", "set", "map"],
            )),
        }
    }
    let keys: Vec<&str> = m
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !keys.is_empty() {
        match list_type {
            None => errs.push(FieldError::required(
                format!("{path}.x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some("map") => {}
            Some(other) => errs.push(FieldError::invalid(
                format!("{path}.x-kubernetes-list-type"),
                Value::from(other),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
    if list_type == Some("map") {
        if keys.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match items {
            None => errs.push(FieldError::required(
                format!("{path}.items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(is) if ty(is) != "object" => errs.push(FieldError::invalid(
                format!("{path}.items.type"),
                Value::from(ty(is)),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(is) => {
                let props = is.get("properties").and_then(Value::as_object);
                let mut seen = Vec::new();
                for k in &keys {
                    match props.and_then(|p| p.get(*k)) {
                        None => {
                            errs.push(FieldError::invalid(
                                format!("{path}.x-kubernetes-list-map-keys"),
                                m["x-kubernetes-list-map-keys"].clone(),
                                "entries must all be names of item properties",
                            ));
                            break;
                        }
                        Some(p) if !matches!(ty(p), "string" | "integer" | "number" | "boolean") => {
                            errs.push(FieldError::invalid(
                                format!("{path}.items.properties[{k}].type"),
                                Value::from(ty(p)),
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            ));
                        }
                        Some(_) => {}
                    }
                    if seen.contains(k) {
                        errs.push(FieldError::invalid(
                            format!("{path}.x-kubernetes-list-map-keys"),
                            m["x-kubernetes-list-map-keys"].clone(),
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(k);
                }
            }
        }
    }
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, items) {
        if flag(is, "nullable") {
            errs.push(FieldError::forbidden(
                format!("{path}.items.nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let required: Vec<&str> = is
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for k in &keys {
                let Some(p) = is.get("properties").and_then(|p| p.get(*k)) else { continue };
                if !required.contains(k) && p.get("default").is_none() {
                    errs.push(FieldError::new(
                        FieldErrorType::Required,
                        format!("{path}.items.properties[{k}].default"),
                        None,
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if flag(p, "nullable") {
                    errs.push(FieldError::forbidden(
                        format!("{path}.items.properties[{k}].nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "spec.validation.openAPIV3Schema";

    fn msgs(schema: Value, status: bool) -> Vec<String> {
        validate_schema(&schema, P, status).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn structural_requires_types() {
        let errs = msgs(json!({"type": "object", "properties": {"spec": {"properties": {"a": {}}}}}), false);
        assert_eq!(
            errs,
            vec![
                format!(
                    "{P}.properties[spec].properties[a].type: Required value: must not be empty for specified object fields"
                ),
                format!("{P}.properties[spec].type: Required value: must not be empty for specified object fields"),
            ]
        );
        assert_eq!(
            msgs(json!({"properties": {}}), false),
            vec![format!("{P}.type: Required value: must not be empty at the root")]
        );
        assert_eq!(
            msgs(json!({"type": "object", "properties": {"l": {"type": "array"}}}), false),
            vec![format!("{P}.properties[l].items: Required value: must be specified")]
        );
        assert!(
            msgs(
                json!({"type": "object", "properties": {"x": {"x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]}, "y": {"x-kubernetes-preserve-unknown-fields": true}}}),
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn metadata_and_root_rules() {
        let errs = msgs(
            json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}}),
            false,
        );
        assert_eq!(
            errs,
            vec![format!(
                "{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )]
        );
        assert!(
            msgs(
                json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"name": {"type": "string", "maxLength": 10}}}}}),
                false
            )
            .is_empty()
        );
        assert_eq!(
            msgs(json!({"type": "object", "additionalProperties": {"type": "string"}}), false),
            vec![format!("{P}.additionalProperties: Forbidden: must not be used at the root")]
        );
        assert_eq!(
            msgs(json!({"type": "object", "nullable": true}), false),
            vec![format!("{P}.nullable: Forbidden: nullable cannot be true at the root")]
        );
        let errs = msgs(json!({"type": "object", "minProperties": 1}), true);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("fields are allowed at the root of the schema if the status subresource is enabled"));
    }

    #[test]
    fn openapi_and_extension_rules() {
        assert_eq!(
            msgs(
                json!({"type": "object", "properties": {"m": {"type": "object",
                "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}),
                false
            ),
            vec![format!(
                "{P}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            )]
        );
        assert_eq!(
            msgs(json!({"type": "object", "properties": {"t": {"type": "foo"}}}), false),
            vec![format!(
                r#"{P}.properties[t].type: Unsupported value: "foo": supported values: "array", "boolean", "integer", "number", "object", "string""#
            )]
        );
        let errs = msgs(
            json!({"type": "object", "properties": {"ports": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
            "items": {"type": "object", "properties": {"port": {"type": "integer"}}}}}}),
            false,
        );
        assert_eq!(
            errs,
            vec![format!(
                "{P}.properties[ports].items.properties[port].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
            )]
        );
        assert_eq!(
            msgs(
                json!({"type": "object", "properties": {"s": {"type": "string", "x-kubernetes-list-type": "set"}}}),
                false
            ),
            vec![format!(
                r#"{P}.properties[s].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified"#
            )]
        );
        let errs =
            msgs(json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "(unclosed"}}}), false);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with(&format!(
            "{P}.properties[s].pattern: Invalid value: \"(unclosed\": must be a valid regular expression"
        )));
    }

    #[test]
    fn nested_value_validations_must_not_carry_structure() {
        let errs = msgs(
            json!({"type": "object", "properties": {"a": {"type": "string",
            "anyOf": [{"type": "string", "description": "x"}]}}}),
            false,
        );
        assert_eq!(
            errs,
            vec![
                format!("{P}.properties[a].anyOf[0].description: Forbidden: must be empty to be structural"),
                format!("{P}.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"),
            ]
        );
    }

    #[test]
    fn defaults_must_validate_and_be_pruned() {
        let errs = msgs(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "r": {"type": "integer", "default": "x"},
            "o": {"type": "object", "default": {"unknown": 1}, "properties": {"k": {"type": "string"}}}}}}}),
            false,
        );
        assert_eq!(
            errs,
            vec![
                format!(
                    r#"{P}.properties[spec].properties[o].default: Invalid value: {{"unknown":1}}: must not have unknown fields"#
                ),
                format!(
                    r#"{P}.properties[spec].properties[r].default: Invalid value: "string": {P}.properties[spec].properties[r].default in body must be of type integer: "string""#
                ),
            ]
        );
        let errs =
            msgs(json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}}), false);
        assert_eq!(
            errs,
            vec![format!("{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata")]
        );
        let errs = msgs(json!({"type": "object", "properties": {"kind": {"type": "string", "default": "X"}}}), false);
        assert_eq!(errs, vec![format!("{P}.properties[kind].default: Forbidden: must not be set in top-level kind")]);
    }
}
