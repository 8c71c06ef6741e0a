//! OpenAPI definitions of a CRD version, as upstream's CRD OpenAPI builder publishes them:
//! the version's schema plus `apiVersion`, `kind` and `metadata` (an ObjectMeta `$ref`),
//! embedded resources likewise, `x-kubernetes-group-version-kind`, and the `<Kind>List`.
//! Definition names are upstream's (`com.example.stable.v1.CronTab`).

use serde_json::{Map, Value, json};

use super::{names, version_schema};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// Upstream's model name of a group/version/kind: the group's DNS labels reversed.
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').filter(|p| !p.is_empty()).collect();
    parts.reverse();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

fn builtin_prop(def: &str, prop: &str) -> Value {
    crate::openapi::definitions()
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(|p| p.get(prop))
        .cloned()
        .unwrap_or_else(|| json!({"type": "string"}))
}

fn reference(target: &str, v2: bool, description: &str) -> Value {
    if v2 {
        json!({"$ref": format!("#/definitions/{target}"), "description": description})
    } else {
        json!({"allOf": [{"$ref": format!("#/components/schemas/{target}")}], "description": description, "default": {}})
    }
}

fn metadata_ref(v2: bool) -> Value {
    let desc = builtin_prop("io.k8s.api.core.v1.Pod", "metadata");
    reference(OBJECT_META, v2, desc.get("description").and_then(Value::as_str).unwrap_or(""))
}

/// The OpenAPI v3 schema of `version` of `crd` (for `/openapi/v3/apis/<group>/<version>`).
pub fn openapi_schema(crd: &Value, version: &str) -> Value {
    build(crd, version, false)
}

/// The OpenAPI v2 schema of `version` of `crd` (for `/openapi/v2`): no `nullable`, no
/// `anyOf`/`oneOf`/`not`, and a bare `object` when unknown fields are preserved at the root
/// (so that kubectl does not reject them).
pub fn openapi_schema_v2(crd: &Value, version: &str) -> Value {
    build(crd, version, true)
}

/// Both definitions of a version, named: the kind and its list, for v3 (`v2 = false`) or v2.
pub fn openapi_definitions(crd: &Value, version: &str, v2: bool) -> Vec<(String, Value)> {
    let n = names(crd);
    let kind_name = definition_name(&n.group, version, &n.kind);
    let list_name = definition_name(&n.group, version, &n.list_kind);
    let item_ref = if v2 {
        json!({"$ref": format!("#/definitions/{kind_name}")})
    } else {
        json!({"$ref": format!("#/components/schemas/{kind_name}")})
    };
    let list_meta_desc = builtin_prop("io.k8s.api.core.v1.PodList", "metadata");
    let list = json!({
        "type": "object",
        "description": format!("{} is a list of {}", n.list_kind, n.kind),
        "required": ["items"],
        "properties": {
            "apiVersion": builtin_prop("io.k8s.api.core.v1.Pod", "apiVersion"),
            "kind": builtin_prop("io.k8s.api.core.v1.Pod", "kind"),
            "items": {"type": "array", "items": item_ref, "description": format!(
                "List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                n.plural)},
            "metadata": reference(LIST_META, v2, list_meta_desc.get("description").and_then(Value::as_str).unwrap_or("")),
        },
        "x-kubernetes-group-version-kind": [{"group": n.group, "version": version, "kind": n.list_kind}],
    });
    vec![(kind_name, build(crd, version, v2)), (list_name, list)]
}

fn build(crd: &Value, version: &str, v2: bool) -> Value {
    let n = names(crd);
    let schema = version_schema(crd, version);
    let preserve_root =
        schema.and_then(|s| s.get("x-kubernetes-preserve-unknown-fields")).and_then(Value::as_bool).unwrap_or(false)
            || crd.pointer("/spec/preserveUnknownFields").and_then(Value::as_bool).unwrap_or(false);
    let mut out = match schema {
        None => json!({"type": "object"}),
        Some(_) if v2 && preserve_root => json!({"type": "object"}),
        Some(s) => {
            let mut s = s.clone();
            if v2 {
                strip_v2(&mut s);
            }
            add_embedded(&mut s, v2);
            if let Some(m) = s.as_object_mut() {
                let props = m.entry("properties").or_insert_with(|| json!({}));
                if let Some(p) = props.as_object_mut() {
                    p.insert("metadata".into(), metadata_ref(v2));
                    p.insert("apiVersion".into(), builtin_prop("io.k8s.api.core.v1.Pod", "apiVersion"));
                    p.insert("kind".into(), builtin_prop("io.k8s.api.core.v1.Pod", "kind"));
                }
            }
            s
        }
    };
    if let Some(m) = out.as_object_mut() {
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": n.group, "version": version, "kind": n.kind}]),
        );
    }
    out
}

/// Removes what OpenAPI v2 cannot say.
fn strip_v2(s: &mut Value) {
    let Some(m) = s.as_object_mut() else { return };
    for k in ["nullable", "anyOf", "oneOf", "not", "allOf", "x-kubernetes-validations"] {
        m.remove(k);
    }
    if m.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        m.remove("type");
        m.remove("format");
    }
    for_children(m, strip_v2);
}

fn for_children(m: &mut Map<String, Value>, f: fn(&mut Value)) {
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        props.values_mut().for_each(f);
    }
    if let Some(items) = m.get_mut("items") {
        f(items);
    }
    if let Some(a) = m.get_mut("additionalProperties").filter(|a| a.is_object()) {
        f(a);
    }
}

fn add_embedded(s: &mut Value, v2: bool) {
    let Some(m) = s.as_object_mut() else { return };
    let walk: fn(&mut Value) = if v2 { |c| add_embedded(c, true) } else { |c| add_embedded(c, false) };
    for_children(m, walk);
    let flag = |k: &str| m.get(k).and_then(Value::as_bool) == Some(true);
    if v2 && flag("x-kubernetes-preserve-unknown-fields") {
        return;
    }
    if !flag("x-kubernetes-embedded-resource") {
        return;
    }
    let props = m.entry("properties").or_insert_with(|| json!({}));
    if let Some(p) = props.as_object_mut() {
        p.insert("apiVersion".into(), builtin_prop("io.k8s.api.core.v1.Pod", "apiVersion"));
        p.insert("kind".into(), builtin_prop("io.k8s.api.core.v1.Pod", "kind"));
        p.insert("metadata".into(), metadata_ref(v2));
    }
    let req = m.entry("required").or_insert_with(|| json!([]));
    if let Some(r) = req.as_array_mut() {
        for k in ["kind", "apiVersion"] {
            if !r.iter().any(|x| x == k) {
                r.push(Value::from(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "crontabs.stable.example.com"}, "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "description": "A cron tab.",
                "properties": {"spec": {"type": "object", "properties": {
                    "cronSpec": {"type": "string", "description": "when", "nullable": true},
                    "tpl": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}})
    }

    #[test]
    fn v3_schema_has_type_meta_metadata_and_gvk() {
        let s = openapi_schema(&crd(), "v1");
        assert_eq!(s["description"], "A cron tab.");
        assert_eq!(s["properties"]["spec"]["properties"]["cronSpec"]["description"], "when");
        assert_eq!(s["properties"]["spec"]["properties"]["cronSpec"]["nullable"], true);
        assert_eq!(s["properties"]["apiVersion"]["type"], "string");
        assert_eq!(
            s["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            s["x-kubernetes-group-version-kind"],
            json!([{"group": "stable.example.com", "version": "v1", "kind": "CronTab"}])
        );
        let tpl = &s["properties"]["spec"]["properties"]["tpl"];
        assert_eq!(tpl["required"], json!(["kind", "apiVersion"]));
        assert!(tpl["properties"]["metadata"].is_object());
    }

    #[test]
    fn v2_schema_and_list_definition() {
        let defs = openapi_definitions(&crd(), "v1", true);
        assert_eq!(defs[0].0, "com.example.stable.v1.CronTab");
        assert_eq!(defs[1].0, "com.example.stable.v1.CronTabList");
        let s = &defs[0].1;
        assert!(s["properties"]["spec"]["properties"]["cronSpec"].get("nullable").is_none());
        assert_eq!(
            s["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // Preserve-unknown embedded resources get no meta properties in v2.
        assert!(s["properties"]["spec"]["properties"]["tpl"].get("required").is_none());
        assert_eq!(defs[1].1["properties"]["items"]["items"]["$ref"], "#/definitions/com.example.stable.v1.CronTab");
        assert_eq!(defs[1].1["x-kubernetes-group-version-kind"][0]["kind"], "CronTabList");
    }
}
