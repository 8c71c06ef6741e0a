//! CustomResourceDefinition defaulting, strategy preparation and validation (upstream's
//! apiextensions `v1` defaults, CRD strategy and `validation.ValidateCustomResourceDefinition`),
//! with upstream's field paths and messages.
//!
//! As upstream's v1 → internal conversion does, when every version carries the same schema
//! (or subresources, or printer columns) errors in it are reported under the top-level
//! `spec.validation`, `spec.subresources` and `spec.additionalPrinterColumns` paths.
//! Generic ObjectMeta checks are `validation::validate_create`'s; this adds the name rule.

use serde_json::{Value, json};

use super::structural::validate_schema;
use crate::status::FieldError;
use crate::validation::{is_dns1035_label, is_dns1123_subdomain};

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// Upstream's v1 defaults: `names.singular` = lower-case kind, `names.listKind` = kind+`List`,
/// `conversion.strategy` = `None`, webhook service port 443, and `status.storedVersions` =
/// the storage version when empty.
pub fn default_crd(crd: &mut Value) {
    let kind = s(crd, "/spec/names/kind").to_string();
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        if names.get("singular").and_then(Value::as_str).is_none_or(str::is_empty) {
            names.insert("singular".into(), Value::from(kind.to_lowercase()));
        }
        if names.get("listKind").and_then(Value::as_str).is_none_or(str::is_empty) && !kind.is_empty() {
            names.insert("listKind".into(), Value::from(format!("{kind}List")));
        }
    }
    let conversion = spec.entry("conversion").or_insert_with(|| json!({"strategy": "None"}));
    if conversion.is_null() {
        *conversion = json!({"strategy": "None"});
    }
    if let Some(port) = conversion.pointer_mut("/webhook/clientConfig/service")
        && let Some(svc) = port.as_object_mut()
    {
        svc.entry("port").or_insert(Value::from(443));
    }
    let storage = super::storage_version(crd).map(str::to_string);
    let Some(obj) = crd.as_object_mut() else { return };
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if let Some(st) = status.as_object_mut() {
        let empty = st.get("storedVersions").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if empty && let Some(v) = storage {
            st.insert("storedVersions".into(), json!([v]));
        }
    }
}

/// The CRD strategy on create: status starts empty except `storedVersions` (the storage
/// version), `metadata.generation` is 1.
pub fn prepare_for_create(crd: &mut Value) {
    let storage = super::storage_version(crd).map(str::to_string);
    if let Some(obj) = crd.as_object_mut() {
        let stored: Vec<Value> = storage.into_iter().map(Value::from).collect();
        obj.insert(
            "status".into(),
            json!({"storedVersions": stored, "conditions": [], "acceptedNames": {"plural": "", "kind": ""}}),
        );
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("generation".into(), Value::from(1));
        }
    }
}

/// The CRD strategy on update: the status is kept from `old`, the new storage version is
/// added to `storedVersions`, and `generation` is bumped when the spec changed.
pub fn prepare_for_update(new: &mut Value, old: &Value) {
    let spec_changed = new.get("spec") != old.get("spec");
    let storage = super::storage_version(new).map(str::to_string);
    let old_gen = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    let Some(obj) = new.as_object_mut() else { return };
    let mut status = old.get("status").cloned().unwrap_or_else(|| json!({}));
    if let (Some(st), Some(v)) = (status.as_object_mut(), storage) {
        let stored = st.entry("storedVersions").or_insert_with(|| json!([]));
        if let Some(a) = stored.as_array_mut()
            && !a.iter().any(|x| x.as_str() == Some(v.as_str()))
        {
            a.push(Value::from(v));
        }
    }
    obj.insert("status".into(), status);
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let g = if spec_changed { old_gen + 1 } else { old_gen };
        m.insert("generation".into(), Value::from(g));
    }
}

/// Whether every version has the same, present value at `key` (upstream then moves it to the
/// top level, which changes the reported field paths).
fn identical(vs: &[Value], key: &str) -> bool {
    let first = vs.first().and_then(|v| v.get(key));
    !vs.is_empty() && vs.iter().all(|v| v.get(key) == first)
}

fn has_status(sub: Option<&Value>) -> bool {
    sub.and_then(|s| s.get("status")).is_some_and(|s| !s.is_null())
}

/// Validates a CRD on create (`old == None`) or update, after [`default_crd`] and the strategy.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    if old.is_none() {
        let name = s(crd, "/metadata/name");
        if !name.is_empty() && name != format!("{plural}.{group}") {
            errs.push(FieldError::invalid(
                "metadata.name",
                Value::from(name),
                r#"must be spec.names.plural+"."+spec.group"#,
            ));
        }
    }
    spec_errors(crd, &mut errs);
    names_errors(crd.pointer("/status/acceptedNames"), "status.acceptedNames", &mut errs);
    stored_versions(crd, &mut errs);
    api_approval(crd, old, &mut errs);
    let puf = crd.pointer("/spec/preserveUnknownFields").and_then(Value::as_bool).unwrap_or(false);
    let old_puf = old.and_then(|o| o.pointer("/spec/preserveUnknownFields")).and_then(Value::as_bool).unwrap_or(false);
    if puf && !old_puf {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            Value::Bool(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    if let Some(old) = old {
        let established = old
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
        let mut immutable = |ptr: &str, field: &str| {
            let (n, o) = (crd.pointer(ptr).unwrap_or(&Value::Null), old.pointer(ptr).unwrap_or(&Value::Null));
            if n != o {
                errs.push(FieldError::invalid(field, n.clone(), crate::validation::IMMUTABLE));
            }
        };
        if established {
            immutable("/spec/scope", "spec.scope");
            immutable("/spec/names/kind", "spec.names.kind");
        }
        immutable("/spec/group", "spec.group");
        immutable("/spec/names/plural", "spec.names.plural");
    }
    errs
}

/// Status updates: only the accepted names are checked.
pub fn validate_crd_status(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    names_errors(crd.pointer("/status/acceptedNames"), "status.acceptedNames", &mut errs);
    errs
}

fn spec_errors(crd: &Value, errs: &mut Vec<FieldError>) {
    let group = s(crd, "/spec/group");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if let m @ [_, ..] = is_dns1123_subdomain(group).as_slice() {
        errs.push(FieldError::invalid("spec.group", Value::from(group), m.join(",")));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid("spec.group", Value::from(group), "should be a domain with at least one dot"));
    }
    crate::validation::enum_field(crd.pointer("/spec/scope"), "spec.scope", &["Cluster", "Namespaced"], true, errs);

    let vs = versions(crd);
    let top_schema = identical(vs, "schema") && vs.first().and_then(|v| v.get("schema")).is_some();
    let top_sub = identical(vs, "subresources");
    let top_cols = identical(vs, "additionalPrinterColumns");
    let any_status = vs.iter().any(|v| has_status(v.get("subresources")));
    for (i, v) in vs.iter().enumerate() {
        let vp = format!("spec.versions[{i}]");
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        if let m @ [_, ..] = is_dns1035_label(name).as_slice() {
            errs.push(FieldError::invalid(format!("{vp}.name"), Value::from(name), m.join(",")));
        }
        if v.pointer("/schema/openAPIV3Schema").is_none_or(Value::is_null) {
            errs.push(FieldError::required(format!("{vp}.schema.openAPIV3Schema"), ""));
        }
        deprecation_warning(v, &vp, errs);
        if !top_schema && let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            let status = has_status(v.get("subresources"));
            errs.extend(validate_schema(schema, &format!("{vp}.schema.openAPIV3Schema"), status));
        }
        if !top_sub {
            subresources(v.get("subresources"), &format!("{vp}.subresources"), errs);
        }
        if !top_cols {
            columns(v.get("additionalPrinterColumns"), &format!("{vp}.additionalPrinterColumns"), errs);
        }
    }
    let names: Vec<&str> = vs.iter().map(|v| v.get("name").and_then(Value::as_str).unwrap_or("")).collect();
    if names.iter().enumerate().any(|(i, n)| names[..i].contains(n)) {
        errs.push(FieldError::invalid("spec.versions", Value::Array(vs.to_vec()), "must contain unique version names"));
    }
    if vs.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count() != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Array(vs.to_vec()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (ptr, field) in [
        ("/spec/names/plural", "spec.names.plural"),
        ("/spec/names/singular", "spec.names.singular"),
        ("/spec/names/kind", "spec.names.kind"),
        ("/spec/names/listKind", "spec.names.listKind"),
    ] {
        if s(crd, ptr).is_empty() {
            errs.push(FieldError::required(field, ""));
        }
    }
    names_errors(crd.pointer("/spec/names"), "spec.names", errs);
    if top_schema && let Some(schema) = vs.first().and_then(|v| v.pointer("/schema/openAPIV3Schema")) {
        errs.extend(validate_schema(schema, "spec.validation.openAPIV3Schema", any_status));
    }
    if top_sub {
        subresources(vs.first().and_then(|v| v.get("subresources")), "spec.subresources", errs);
    }
    if top_cols {
        columns(vs.first().and_then(|v| v.get("additionalPrinterColumns")), "spec.additionalPrinterColumns", errs);
    }
    conversion(crd, errs);
}

fn deprecation_warning(v: &Value, vp: &str, errs: &mut Vec<FieldError>) {
    let deprecated = v.get("deprecated").and_then(Value::as_bool).unwrap_or(false);
    let Some(w) = v.get("deprecationWarning").and_then(Value::as_str) else { return };
    let f = format!("{vp}.deprecationWarning");
    if !deprecated {
        errs.push(FieldError::invalid(&f, Value::from(w), "can only be set for deprecated versions"));
        return;
    }
    if w.len() > 256 {
        errs.push(FieldError::invalid(&f, Value::from(w), "must be <= 256 characters long"));
    }
    if w.is_empty() {
        errs.push(FieldError::invalid(&f, Value::from(w), "must not be an empty string"));
    }
    if let Some((i, _)) = w.char_indices().find(|(_, c)| c.is_control()) {
        errs.push(FieldError::invalid(
            &f,
            Value::from(w),
            format!("must only contain printable UTF-8 characters; control character found at index {i}"),
        ));
    }
}

fn names_errors(names: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(n) = names else { return };
    let get = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("");
    for k in ["plural", "singular"] {
        let v = get(k);
        if let m @ [_, ..] = is_dns1035_label(v).as_slice()
            && !v.is_empty()
        {
            errs.push(FieldError::invalid(format!("{path}.{k}"), Value::from(v), m.join(",")));
        }
    }
    for k in ["kind", "listKind"] {
        let v = get(k);
        if let m @ [_, ..] = is_dns1035_label(&v.to_lowercase()).as_slice()
            && !v.is_empty()
        {
            errs.push(FieldError::invalid(
                format!("{path}.{k}"),
                Value::from(v),
                format!("may have mixed case, but should otherwise match: {}", m.join(",")),
            ));
        }
    }
    for (list, field) in [("shortNames", "shortNames"), ("categories", "categories")] {
        let items = n.get(list).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        if list == "categories" && !get("kind").is_empty() && get("kind") == get("listKind") {
            errs.push(FieldError::invalid(
                format!("{path}.listKind"),
                Value::from(get("listKind")),
                "kind and listKind may not be the same",
            ));
        }
        for (i, it) in items.iter().enumerate() {
            let v = it.as_str().unwrap_or("");
            if let m @ [_, ..] = is_dns1035_label(v).as_slice() {
                errs.push(FieldError::invalid(format!("{path}.{field}[{i}]"), Value::from(v), m.join(",")));
            }
        }
    }
}

fn simple_json_path(p: &str, field: &str, errs: &mut Vec<FieldError>) -> bool {
    if p.is_empty() {
        errs.push(FieldError::invalid(field, Value::from(p), "must not be empty"));
        false
    } else if !p.starts_with('.') {
        errs.push(FieldError::invalid(field, Value::from(p), "must be a simple json path starting with ."));
        false
    } else {
        true
    }
}

fn subresources(sub: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(scale) = sub.and_then(|s| s.get("scale")).filter(|s| s.is_object()) else { return };
    for (key, prefix, what) in [
        ("specReplicasPath", ".spec.", "should be a json path under .spec"),
        ("statusReplicasPath", ".status.", "should be a json path under .status"),
    ] {
        let f = format!("{path}.scale.{key}");
        let p = scale.get(key).and_then(Value::as_str).unwrap_or("");
        if p.is_empty() {
            errs.push(FieldError::required(f, ""));
        } else if simple_json_path(p, &f, errs) && !p.starts_with(prefix) {
            errs.push(FieldError::invalid(f, Value::from(p), what));
        }
    }
    if let Some(p) = scale.get("labelSelectorPath").and_then(Value::as_str).filter(|p| !p.is_empty()) {
        let f = format!("{path}.scale.labelSelectorPath");
        if simple_json_path(p, &f, errs) && !p.starts_with(".spec.") && !p.starts_with(".status.") {
            errs.push(FieldError::invalid(f, Value::from(p), "should be a json path under either .spec or .status"));
        }
    }
}

fn columns(cols: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    const TYPES: &str = "boolean,date,integer,number,string";
    const FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
    let Some(cols) = cols.and_then(Value::as_array) else { return };
    for (i, c) in cols.iter().enumerate() {
        let cp = format!("{path}[{i}]");
        let get = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        if get("name").is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        }
        let t = get("type");
        if t.is_empty() {
            errs.push(FieldError::required(format!("{cp}.type"), format!("must be one of {TYPES}")));
        } else if !TYPES.split(',').any(|x| x == t) {
            errs.push(FieldError::invalid(format!("{cp}.type"), Value::from(t), format!("must be one of {TYPES}")));
        }
        let f = get("format");
        if !f.is_empty() && !FORMATS.split(',').any(|x| x == f) {
            errs.push(FieldError::invalid(format!("{cp}.format"), Value::from(f), format!("must be one of {FORMATS}")));
        }
        let jp = get("jsonPath");
        let jf = format!("{cp}.JSONPath");
        if jp.is_empty() {
            errs.push(FieldError::required(jf, ""));
        } else if simple_json_path(jp, &jf, errs)
            && let Err(e) = super::jsonpath::JsonPath::parse(jp)
        {
            errs.push(FieldError::invalid(jf, Value::from(jp), format!("is an invalid path: {e}")));
        }
    }
}

fn conversion(crd: &Value, errs: &mut Vec<FieldError>) {
    let Some(conv) = crd.pointer("/spec/conversion").filter(|c| c.is_object()) else { return };
    let strategy = conv.get("strategy");
    crate::validation::enum_field(strategy, "spec.conversion.strategy", &["None", "Webhook"], true, errs);
    let webhook = conv.get("webhook").filter(|w| !w.is_null());
    if strategy.and_then(Value::as_str) == Some("Webhook") {
        let cc = webhook.and_then(|w| w.get("clientConfig")).filter(|c| !c.is_null());
        match cc {
            None => errs.push(FieldError::required(
                "spec.conversion.webhookClientConfig",
                "required when strategy is set to Webhook",
            )),
            Some(cc) => {
                let has_url = cc.get("url").is_some_and(|u| !u.is_null());
                let has_svc = cc.get("service").is_some_and(|u| !u.is_null());
                if has_url == has_svc {
                    errs.push(FieldError::required(
                        "spec.conversion.webhookClientConfig",
                        "exactly one of url or service is required",
                    ));
                }
            }
        }
        let review: Vec<&str> = webhook
            .and_then(|w| w.get("conversionReviewVersions"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let f = "spec.conversion.conversionReviewVersions";
        if review.is_empty() {
            errs.push(FieldError::required(f, ""));
        } else if !review.iter().any(|v| *v == "v1" || *v == "v1beta1") {
            errs.push(FieldError::invalid(f, json!(review), "must include at least one of v1, v1beta1"));
        }
    } else if let Some(w) = webhook {
        if w.get("clientConfig").is_some_and(|c| !c.is_null()) {
            errs.push(FieldError::forbidden(
                "spec.conversion.webhookClientConfig",
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if w.get("conversionReviewVersions").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            errs.push(FieldError::forbidden(
                "spec.conversion.conversionReviewVersions",
                "should not be set when strategy is not set to Webhook",
            ));
        }
    }
}

fn stored_versions(crd: &Value, errs: &mut Vec<FieldError>) {
    let f = "status.storedVersions";
    let stored: Vec<&str> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if stored.is_empty() {
        errs.push(FieldError::invalid(f, json!([]), "must have at least one stored version"));
        return;
    }
    let vs = versions(crd);
    for v in vs {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        if v.get("storage").and_then(Value::as_bool) == Some(true) && !stored.contains(&name) {
            errs.push(FieldError::invalid(f, json!(stored), format!("must have the storage version {name}")));
        }
    }
    for (i, sv) in stored.iter().enumerate() {
        if !vs.iter().any(|v| v.get("name").and_then(Value::as_str) == Some(sv)) {
            errs.push(FieldError::invalid(
                format!("{f}[{i}]"),
                Value::from(*sv),
                format!("missing from spec.versions; {sv} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {sv} and removes {sv} from status.storedVersions"),
            ));
        }
    }
}

/// Groups `*.k8s.io` / `*.kubernetes.io` need the `api-approved.kubernetes.io` annotation.
fn api_approval(crd: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    const ANN: &str = "api-approved.kubernetes.io";
    let group = s(crd, "/spec/group");
    let protected =
        |g: &str| g == "k8s.io" || g == "kubernetes.io" || g.ends_with(".k8s.io") || g.ends_with(".kubernetes.io");
    if !protected(group) {
        return;
    }
    let state = |c: &Value| -> u8 {
        match c.pointer("/metadata/annotations").and_then(|a| a.get(ANN)).and_then(Value::as_str) {
            None | Some("") => 0,
            Some(v) if v.starts_with("unapproved") => 1,
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => 2,
            Some(_) => 3,
        }
    };
    if let Some(o) = old
        && state(o) == state(crd)
    {
        return;
    }
    let f = format!("metadata.annotations[{ANN}]");
    let reason = format!(
        "protected groups must have approval annotation {ANN:?}, see https://github.com/kubernetes/enhancements/pull/1111"
    );
    match state(crd) {
        0 => errs.push(FieldError::required(f, reason)),
        3 => {
            let v = crd.pointer("/metadata/annotations").and_then(|a| a.get(ANN)).cloned().unwrap_or(Value::Null);
            errs.push(FieldError::invalid(f, v, reason));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]}]}})
    }

    fn msgs(c: &Value, old: Option<&Value>) -> Vec<String> {
        validate_crd(c, old).iter().map(ToString::to_string).collect()
    }

    fn defaulted(mut c: Value) -> Value {
        default_crd(&mut c);
        c
    }

    #[test]
    fn defaults_fill_names_conversion_and_stored_versions() {
        let c = defaulted(crd());
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(c["spec"]["conversion"], json!({"strategy": "None"}));
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert!(msgs(&c, None).is_empty(), "{:?}", msgs(&c, None));
    }

    #[test]
    fn name_group_scope_and_versions() {
        let mut c = defaulted(crd());
        c["metadata"]["name"] = json!("other.stable.example.com");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["versions"][0]["storage"] = json!(false);
        let errs = msgs(&c, None);
        assert!(errs.contains(&r#"metadata.name: Invalid value: "other.stable.example.com": must be spec.names.plural+"."+spec.group"#.to_string()));
        assert!(errs.contains(
            &r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#.to_string()
        ));
        assert!(errs.iter().any(|e| e.starts_with("spec.versions: Invalid value: ")
            && e.ends_with("must have exactly one version marked as storage version")));
        let mut c = defaulted(crd());
        c["spec"]["group"] = json!("example");
        c["metadata"]["name"] = json!("crontabs.example");
        assert_eq!(
            msgs(&c, None),
            vec![r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#]
        );
    }

    #[test]
    fn schema_subresource_and_column_errors_use_top_level_paths_for_single_version() {
        let mut c = defaulted(crd());
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["x"] = json!({});
        c["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] = json!(".status.replicas");
        c["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("float");
        let errs = msgs(&c, None);
        assert_eq!(
            errs,
            vec![
                "spec.validation.openAPIV3Schema.properties[spec].properties[x].type: Required value: must not be empty for specified object fields",
                r#"spec.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec"#,
                r#"spec.additionalPrinterColumns[0].type: Invalid value: "float": must be one of boolean,date,integer,number,string"#,
            ]
        );
    }

    #[test]
    fn per_version_paths_when_versions_differ() {
        let mut c = defaulted(crd());
        let mut v2 = c["spec"]["versions"][0].clone();
        v2["name"] = json!("v2");
        v2["storage"] = json!(false);
        v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["y"] = json!({});
        if let Some(a) = c["spec"]["versions"].as_array_mut() {
            a.push(v2);
        }
        assert_eq!(
            msgs(&c, None),
            vec![
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[y].type: Required value: must not be empty for specified object fields"
            ]
        );
    }

    #[test]
    fn names_and_missing_schema() {
        let mut c = defaulted(crd());
        c["spec"]["names"]["shortNames"] = json!(["Bad"]);
        c["spec"]["names"]["listKind"] = json!("CronTab");
        if let Some(v) = c["spec"]["versions"][0].as_object_mut() {
            v.remove("schema");
        }
        let errs = msgs(&c, None);
        assert!(errs.contains(&"spec.versions[0].schema.openAPIV3Schema: Required value".to_string()));
        assert!(errs.contains(
            &r#"spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same"#.to_string()
        ));
        assert!(
            errs.iter().any(|e| e.starts_with(r#"spec.names.shortNames[0]: Invalid value: "Bad": a DNS-1035 label"#))
        );
    }

    #[test]
    fn update_rules_and_stored_versions() {
        let old = defaulted(crd());
        let mut new = old.clone();
        new["spec"]["group"] = json!("other.example.com");
        let errs = msgs(&new, Some(&old));
        assert!(errs.contains(&r#"spec.group: Invalid value: "other.example.com": field is immutable"#.to_string()));
        // Renaming the only version leaves v1 in storedVersions without a version.
        let mut new = old.clone();
        new["spec"]["versions"][0]["name"] = json!("v2");
        prepare_for_update(&mut new, &old);
        assert_eq!(new["status"]["storedVersions"], json!(["v1", "v2"]));
        let errs = msgs(&new, Some(&old));
        assert_eq!(
            errs,
            vec![
                "status.storedVersions[0]: Invalid value: \"v1\": missing from spec.versions; v1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1 and removes v1 from status.storedVersions"
            ]
        );
        assert_eq!(new["metadata"]["generation"], 1);
    }

    #[test]
    fn conversion_and_protected_groups() {
        let mut c = defaulted(crd());
        c["spec"]["conversion"] = json!({"strategy": "Webhook"});
        let errs = msgs(&c, None);
        assert_eq!(
            errs,
            vec![
                "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.conversionReviewVersions: Required value",
            ]
        );
        let mut c = defaulted(crd());
        c["spec"]["group"] = json!("x.k8s.io");
        c["metadata"]["name"] = json!("crontabs.x.k8s.io");
        assert!(msgs(&c, None)[0].starts_with("metadata.annotations[api-approved.kubernetes.io]: Required value"));
    }
}
