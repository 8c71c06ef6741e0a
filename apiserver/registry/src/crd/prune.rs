//! Pruning and defaulting of custom resources against a structural schema, as upstream's
//! `schema/pruning` and `schema/defaulting`: unknown fields are dropped unless
//! `x-kubernetes-preserve-unknown-fields` holds at that level, embedded resources (and the
//! root) keep `apiVersion`/`kind`/`metadata`; `default`s are applied top-down, so defaults
//! inside defaults apply too, and nulls of non-nullable fields are defaulted or dropped.

use serde_json::Value;

use super::value::child;

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn additional(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|a| a.is_object())
}

/// Drops the fields of `obj` (a whole custom resource) that `schema` does not specify and
/// returns their paths, sorted (`spec.foo`, `spec.items[0].bar`), for `unknown field` warnings
/// and `fieldValidation=Strict` errors.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut root = schema.clone();
    if let Some(m) = root.as_object_mut() {
        m.insert("x-kubernetes-embedded-resource".into(), Value::Bool(true));
    }
    prune_node(obj, Some(&root), "", &mut unknown);
    unknown.sort();
    unknown
}

/// Prunes a value that is not a resource root (a `default`, the `status` of a status update).
pub fn prune_value(schema: &Value, value: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_node(value, Some(schema), "", &mut unknown);
    unknown.sort();
    unknown
}

fn prune_node(x: &mut Value, s: Option<&Value>, path: &str, unknown: &mut Vec<String>) {
    if let Some(s) = s
        && flag(s, "x-kubernetes-preserve-unknown-fields")
    {
        skip_prune(x, s, path, unknown);
        return;
    }
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    unknown.push(child(path, k));
                }
                m.clear();
                return;
            };
            let embedded = flag(s, "x-kubernetes-embedded-resource");
            let props = s.get("properties");
            m.retain(|k, v| {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    return true;
                }
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    prune_node(v, Some(p), &child(path, k), unknown);
                    true
                } else if let Some(a) = additional(s) {
                    prune_node(v, Some(a), &child(path, k), unknown);
                    true
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                        unknown.push(child(path, k));
                    }
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.get("items"));
            for (i, it) in items.iter_mut().enumerate() {
                prune_node(it, item_schema, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

fn skip_prune(x: &mut Value, s: &Value, path: &str, unknown: &mut Vec<String>) {
    match x {
        Value::Object(m) => {
            let embedded = flag(s, "x-kubernetes-embedded-resource");
            for (k, v) in m.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(p) = s.get("properties").and_then(|p| p.get(k)) {
                    prune_node(v, Some(p), &child(path, k), unknown);
                } else if let Some(a) = additional(s) {
                    prune_node(v, Some(a), &child(path, k), unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    skip_prune(it, is, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(x: &Value, s: Option<&Value>) -> bool {
    x.is_null() && s.is_some_and(|s| !flag(s, "nullable"))
}

/// Applies the schema's `default`s to `obj`: a missing field (or a null one that is not
/// nullable) gets its default, then defaulting descends into every field, list item and map
/// value, so defaults inside defaults apply as well. Finally nulls of non-nullable fields
/// without a default are dropped, as upstream does after defaulting.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_node(obj, schema);
    prune_nulls(obj, Some(schema));
}

fn default_node(x: &mut Value, s: &Value) {
    match x {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, p) in props {
                    let Some(d) = p.get("default") else { continue };
                    let missing = match m.get(k) {
                        None => true,
                        Some(v) => is_non_nullable_null(v, Some(p)),
                    };
                    if missing {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let props = s.get("properties");
            for (k, v) in m.iter_mut() {
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    default_node(v, p);
                } else if let Some(a) = additional(s) {
                    if is_non_nullable_null(v, Some(a))
                        && let Some(d) = a.get("default")
                    {
                        *v = d.clone();
                    }
                    default_node(v, a);
                }
            }
        }
        Value::Array(items) => {
            let Some(is) = s.get("items").filter(|i| i.is_object()) else { return };
            for it in items.iter_mut() {
                if is_non_nullable_null(it, Some(is))
                    && let Some(d) = is.get("default")
                {
                    *it = d.clone();
                }
                default_node(it, is);
            }
        }
        _ => {}
    }
}

fn field_schema<'a>(s: Option<&'a Value>, k: &str) -> Option<&'a Value> {
    let s = s?;
    s.get("properties").and_then(|p| p.get(k)).or_else(|| additional(s))
}

fn prune_nulls(x: &mut Value, s: Option<&Value>) {
    match x {
        Value::Object(m) => {
            m.retain(|k, v| {
                let fs = field_schema(s, k);
                let drop = v.is_null() && fs.is_some_and(|f| !flag(f, "nullable") && f.get("default").is_none());
                if !drop {
                    prune_nulls(v, fs);
                }
                !drop
            });
        }
        Value::Array(items) => {
            let is = s.and_then(|s| s.get("items"));
            for it in items.iter_mut() {
                prune_nulls(it, is);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prune_drops_unknown_fields_and_reports_paths() {
        let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "a": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "pod": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
        }}}});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "junk": 1,
            "spec": {"a": "x", "b": 2, "items": [{"x": "1", "y": 2}], "free": {"any": {"thing": 1}},
                     "map": {"m": {"k": "v", "z": 1}},
                     "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1}}});
        let unknown = prune(&s, &mut obj);
        assert_eq!(unknown, vec!["junk", "spec.b", "spec.items[0].y", "spec.map.m.z", "spec.pod.extra"]);
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
            "spec": {"a": "x", "items": [{"x": "1"}], "free": {"any": {"thing": 1}}, "map": {"m": {"k": "v"}},
                     "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}})
        );
    }

    #[test]
    fn preserve_unknown_fields_still_prunes_specified_children() {
        let s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let mut obj = json!({"other": 1, "spec": {"a": "x", "b": 1}});
        assert_eq!(prune(&s, &mut obj), vec!["spec.b"]);
        assert_eq!(obj, json!({"other": 1, "spec": {"a": "x"}}));
    }

    #[test]
    fn defaults_apply_top_down_and_handle_nulls() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "default": {},
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "opt": {"type": "string", "nullable": true, "default": "d"},
            "gone": {"type": "string"},
            "nested": {"type": "object", "default": {"inner": {}}, "properties": {
                "inner": {"type": "object", "properties": {"v": {"type": "string", "default": "deep"}}}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {
                "p": {"type": "integer", "default": 80}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "q": {"type": "boolean", "default": true}}}}
        }}}});
        let mut obj = json!({"metadata": {"name": "a"}});
        apply_defaults(&s, &mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 1, "opt": "d", "nested": {"inner": {"v": "deep"}}}})
        );
        let mut obj =
            json!({"spec": {"replicas": null, "opt": null, "gone": null, "list": [{}, {"p": 1}], "map": {"a": {}}}});
        apply_defaults(&s, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 1, "opt": null, "nested": {"inner": {"v": "deep"}},
                "list": [{"p": 80}, {"p": 1}], "map": {"a": {"q": true}}}})
        );
    }
}
