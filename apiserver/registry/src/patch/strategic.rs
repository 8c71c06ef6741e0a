//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! Owns the application side of upstream's `strategicpatch` package, driven by the OpenAPI
//! definitions instead of Go struct tags: `x-kubernetes-patch-strategy` (`merge`, `replace`,
//! `retainKeys`) and `x-kubernetes-patch-merge-key` on a field say how its value merges.
//! Directives: `$patch` (`replace` / `delete` on maps and list elements), `$retainKeys`,
//! `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`. Fields with no schema merge
//! maps recursively and replace lists, like a merge patch.
//!
//! Values taken whole from the patch (new members, new list elements, replaced values) lose
//! their null members and directive keys here; upstream gets the same effect when it decodes
//! the result into a typed object.

use super::go_json_type;
use crate::openapi::definitions;
use crate::status::ApiError;
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a patch could not be applied; becomes the `ApiError` upstream's handler would return.
#[derive(Debug, PartialEq)]
enum SmpError {
    /// 400 BadRequest with this message.
    BadRequest(String),
    /// 422 Invalid with upstream's generic message (the detail is only for logs and tests).
    Unprocessable(String),
}

impl From<SmpError> for ApiError {
    fn from(e: SmpError) -> Self {
        match e {
            SmpError::BadRequest(m) => ApiError::bad_request(m),
            SmpError::Unprocessable(_) => super::unprocessable(),
        }
    }
}

type Result<T> = std::result::Result<T, SmpError>;

fn bad(msg: impl Into<String>) -> SmpError {
    SmpError::BadRequest(msg.into())
}

fn err_retain_keys() -> SmpError {
    bad("invalid patch format of retainKeys")
}

fn err_set_element_order() -> SmpError {
    bad("invalid patch format of setElementOrder list")
}

fn err_primitive_list() -> SmpError {
    bad("invalid patch format of primitive list")
}

fn err_no_merge_key(m: &Map<String, Value>, key: &str) -> SmpError {
    bad(format!("map: {} does not contain declared merge key: {key}", go_fmt_map(m)))
}

fn err_bad_patch_type(directive: &Value, m: &Map<String, Value>) -> SmpError {
    bad(format!("unknown patch type: {} in map: {}", go_fmt(directive), go_fmt_map(m)))
}

fn err_bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    bad(format!("expected a {expected}, but received a {}", go_type_name(actual)))
}

const GO_MAP: &str = "map[string]interface {}";
const GO_SLICE: &str = "[]interface {}";

/// The Go type a decoded JSON value has (for messages).
fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => GO_SLICE,
        Value::Object(_) => GO_MAP,
    }
}

/// A value printed the way Go's `%v` prints decoded JSON (`map[name:web]`).
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => go_fmt_map(m),
        other => other.to_string(),
    }
}

fn go_fmt_map(m: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    format!("map[{}]", entries.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect::<Vec<_>>().join(" "))
}

/// The resolved schema of the object type being merged, or `None` where nothing is known.
#[derive(Clone, Copy)]
struct Schema(Option<&'static Value>);

/// What a field's schema says about patching it.
#[derive(Default)]
struct FieldMeta {
    /// The field's own schema (may be a `$ref`).
    prop: Option<&'static Value>,
    /// The patch strategy other than `retainKeys`: `merge`, `replace` or empty.
    strategy: &'static str,
    merge_key: &'static str,
}

fn resolve(v: &'static Value) -> Option<&'static Value> {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => definitions().get(r.strip_prefix("#/definitions/").unwrap_or(r)),
        None => Some(v),
    }
}

impl Schema {
    fn root(definition: &str) -> Self {
        Schema(definitions().get(definition))
    }

    fn field(self, key: &str) -> Result<FieldMeta> {
        let Some(schema) = self.0 else {
            return Ok(FieldMeta::default());
        };
        let prop = schema
            .get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
        let Some(prop) = prop else {
            return Ok(FieldMeta::default());
        };
        let strategies: Vec<&'static str> = prop
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        let strategy = match strategies.as_slice() {
            [] => "",
            ["retainKeys"] => "",
            [one] => one,
            ["retainKeys", other] | [other, "retainKeys"] => other,
            _ => return Err(bad(format!("unexpected patch strategy: [{}]", strategies.join(" ")))),
        };
        let merge_key = prop.get("x-kubernetes-patch-merge-key").and_then(Value::as_str).unwrap_or("");
        Ok(FieldMeta { prop: Some(prop), strategy, merge_key })
    }
}

impl FieldMeta {
    fn object_schema(&self) -> Schema {
        Schema(self.prop.and_then(resolve))
    }

    /// The schema of a list's elements (a field that is a pointer to a struct but patched as
    /// a list uses the struct itself, as upstream does).
    fn element_schema(&self) -> Schema {
        Schema(self.prop.and_then(|p| resolve(p.get("items").unwrap_or(p))))
    }
}

/// Apply a strategic merge patch to `doc`, an object of the type named by `definition`
/// (e.g. `io.k8s.api.apps.v1.Deployment`). An unknown definition patches without schema.
pub fn strategic_merge_patch(doc: &Value, patch: &Value, definition: &str) -> std::result::Result<Value, ApiError> {
    let patch = match patch {
        // Go decodes `null` into a nil map: nothing to do.
        Value::Null => return Ok(doc.clone()),
        Value::Object(m) => m.clone(),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type {GO_MAP}",
                go_json_type(other)
            )));
        }
    };
    let Value::Object(original) = doc else {
        return Err(ApiError::bad_request("invalid JSON document"));
    };
    Ok(Value::Object(merge_map(original.clone(), patch, Schema::root(definition))?))
}

/// Remove a key keeping the order of the others (whatever the map's backing).
fn remove_key(m: &mut Map<String, Value>, key: &str) {
    if m.contains_key(key) {
        m.retain(|k, _| k != key);
    }
}

fn is_directive_key(k: &str) -> bool {
    k == RETAIN_KEYS
        || k.starts_with(&format!("{SET_ELEMENT_ORDER}/"))
        || k.starts_with(&format!("{DELETE_FROM_PRIMITIVE_LIST}/"))
}

/// A patch value taken whole: drop null members and directives; `None` if the value is itself
/// a `$patch` directive (upstream's `discardNullValuesFromPatch` + `removeDirectives`).
fn clean(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(clean_map(m)))
        }
        Value::Array(a) => Some(Value::Array(clean_list(a))),
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && k != DIRECTIVE && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(a: Vec<Value>) -> Vec<Value> {
    a.into_iter().filter_map(clean).collect()
}

/// `$setElementOrder/x` → `x`; the prefix must be exactly `prefix`.
fn extract_key<'a>(key: &'a str, prefix: &str) -> Result<&'a str> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(err_primitive_list()),
        _ => Err(err_set_element_order()),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => Ok(clean_map(patch)),
            Some("delete") => Ok(Map::new()),
            _ => Err(err_bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;

    for (raw_key, patch_value) in patch {
        let (key, delete_list) = if raw_key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&raw_key, DELETE_FROM_PRIMITIVE_LIST)?.to_string(), true)
        } else {
            (raw_key, false)
        };
        if patch_value.is_null() {
            remove_key(&mut original, &key);
            continue;
        }
        let Some(slot) = original.get_mut(&key) else {
            if !delete_list && let Some(v) = clean(patch_value) {
                original.insert(key, v);
            }
            continue;
        };
        let current = std::mem::take(slot);
        let merged = match (current, patch_value) {
            (Value::Object(cur), Value::Object(p)) => {
                let meta = schema.field(&key)?;
                if meta.strategy == "replace" {
                    Some(Value::Object(clean_map(p)))
                } else {
                    Some(Value::Object(merge_map(cur, p, meta.object_schema())?))
                }
            }
            (Value::Array(cur), Value::Array(p)) => {
                let meta = schema.field(&key)?;
                Some(Value::Array(merge_slice_handler(cur, p, &meta, delete_list)?))
            }
            // A deletion list only applies to a list.
            (current, _) if delete_list => Some(current),
            (_, p) => clean(p),
        };
        match merged {
            Some(v) => *slot = v,
            None => remove_key(&mut original, &key),
        }
    }
    Ok(original)
}

/// `$retainKeys`: drop every member of `original` not listed; the patch may only set listed keys.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(err_retain_keys());
    };
    let listed = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !listed(k) {
            return Err(err_retain_keys());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<list>`: merge the list now, then order it as the directive says, keeping
/// items only the server has where they were relative to the others.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema,
) -> Result<()> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else { continue };
        let Value::Array(order) = order else {
            return Err(err_bad_arg_type(GO_SLICE, &order));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER)?.to_string();
        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(err_bad_arg_type(GO_SLICE, other)),
        };
        let patch_list = match patch.remove(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a),
            Some(other) => return Err(err_bad_arg_type(GO_SLICE, &other)),
        };
        let meta = schema.field(&field)?;
        validate_patch_with_set_order(patch_list.as_deref().unwrap_or(&[]), &order, meta.merge_key)?;

        let original_items = original_list.clone().unwrap_or_default();
        let kind = element_kind(&[&original_items, patch_list.as_deref().unwrap_or(&[])])?;
        let patch_items_for_order = patch_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => clean_list(p),
            (Some(o), Some(p)) => merge_slice_handler(o, p, &meta, false)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) = partition(merged, &order, meta.merge_key)?;
        let ordered = match kind {
            Some(kind) => {
                let server_order = if kind == Kind::Map && meta.strategy == "merge" {
                    live_order_after_merge(&original_items, &patch_items_for_order, meta.merge_key)
                } else {
                    original_items
                };
                normalize_element_order(patch_items, server_only, &order, &server_order, meta.merge_key, kind)?
            }
            None => patch_items.into_iter().chain(server_only).collect(),
        };
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// The live order the `$setElementOrder` step compares server-only items against.
///
/// Upstream merges the list in place: deleting an element shifts the rest left inside the
/// live list's storage, and the first appended elements land in the slots freed at its end,
/// which the ordering step then reads as the live order. Reproduce that view so that
/// server-only items keep upstream's position relative to added ones.
fn live_order_after_merge(original: &[Value], patch: &[Value], merge_key: &str) -> Vec<Value> {
    let mut view = original.to_vec();
    let mut len = view.len();
    let key_of = |v: &Value| v.get(merge_key).cloned();
    let mut replace = false;
    for p in patch {
        match p.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                let Some(target) = p.get(merge_key) else { continue };
                while let Some(i) = view[..len].iter().position(|v| v.get(merge_key) == Some(target)) {
                    // Shift left; the slot past the new end keeps the old last element.
                    for j in i..len - 1 {
                        view[j] = view[j + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if replace {
        return view;
    }
    let mut logical: Vec<Option<Value>> = view[..len].iter().map(key_of).collect();
    for p in patch.iter().filter(|p| p.get(DIRECTIVE).is_none()) {
        let key = key_of(p);
        if logical.contains(&key) {
            continue;
        }
        if logical.len() < view.len() {
            view[logical.len()] = p.clone();
        }
        logical.push(key);
    }
    view
}

/// The items of the patch list (deletions aside) must appear in the `$setElementOrder` list,
/// in the same relative order.
fn validate_patch_with_set_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<Value> =
        if merge_key.is_empty() { patch_list.to_vec() } else { split_deletions(patch_list.to_vec())?.0 };
    let (mut p, mut o) = (0, 0);
    while p < non_delete.len() && o < order.len() {
        if non_delete[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(&non_delete[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < non_delete.len() && o >= order.len() {
        return Err(bad(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let Value::Object(l) = left else {
        return Err(err_bad_arg_type(GO_MAP, left));
    };
    let Value::Object(r) = right else {
        return Err(err_bad_arg_type(GO_MAP, right));
    };
    let lv = l.get(merge_key).ok_or_else(|| err_no_merge_key(l, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| err_no_merge_key(r, merge_key))?;
    Ok(lv == rv)
}

/// Items to keep and items carrying `$patch: delete`.
fn split_deletions(list: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in list {
        if !v.is_object() {
            return Err(err_bad_arg_type(GO_MAP, &v));
        }
        if v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if meta.strategy == "merge" || delete_list {
        merge_slice(original, patch, meta.element_schema(), meta.merge_key, delete_list)
    } else {
        Ok(clean_list(patch))
    }
}

/// The kind of a list's elements, for choosing between merge-by-key and set semantics.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Map,
    String,
    Number,
    Bool,
    Null,
}

/// All elements of all the lists must have one type, and lists of lists are not supported.
/// `None` when there are no elements at all.
fn element_kind(lists: &[&[Value]]) -> Result<Option<Kind>> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = match v {
            Value::Array(_) if kind.is_none() => {
                return Err(SmpError::Unprocessable("lists of lists are not supported".into()));
            }
            Value::Array(_) => None,
            Value::Object(_) => Some(Kind::Map),
            Value::String(_) => Some(Kind::String),
            Value::Number(_) => Some(Kind::Number),
            Value::Bool(_) => Some(Kind::Bool),
            Value::Null => Some(Kind::Null),
        };
        match (kind, k) {
            (None, Some(k)) => kind = Some(k),
            (Some(prev), Some(k)) if prev == k => {}
            _ => {
                let lists: Vec<String> = lists.iter().map(|l| go_fmt(&Value::Array(l.to_vec()))).collect();
                return Err(bad(format!("list element types are not identical: [{}]", lists.join(" "))));
            }
        }
    }
    Ok(kind)
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    merge_key: &str,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = element_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    let (server_order, patch_order, merged) = if kind != Kind::Map {
        if delete_list {
            return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        if merge_key.is_empty() {
            return Err(bad("cannot merge lists without merge key for struct"));
        }
        let (original, patch) = apply_list_directives(original, patch, merge_key)?;
        let merged = merge_by_key(original.clone(), &patch, merge_key, schema)?;
        (original, patch, merged)
    };
    let key = if kind == Kind::Map { merge_key } else { "" };
    let (patch_items, server_only) = partition(merged, &patch_order, key)?;
    normalize_element_order(patch_items, server_only, &patch_order, &server_order, key, kind)
}

/// Handle list elements carrying `$patch`: `delete` removes the matching element from
/// `original`, `replace` makes the patch's other elements the whole list.
/// Returns the new original and the patch elements left to merge.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(err_bad_arg_type(GO_MAP, &v));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            rest.push(v);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = m.get(merge_key).ok_or_else(|| err_no_merge_key(m, merge_key))?;
                let mut kept = Vec::with_capacity(original.len());
                for (i, item) in original.into_iter().enumerate() {
                    let Value::Object(im) = &item else {
                        return Err(bad(format!("value for key {i} is not a map")));
                    };
                    if im.get(merge_key) != Some(value) {
                        kept.push(item);
                    }
                }
                original = kept;
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(bad("merging lists cannot yet be specified in the patch")),
            _ => return Err(err_bad_patch_type(directive, m)),
        }
    }
    if replace { Ok((clean_list(rest), Vec::new())) } else { Ok((original, rest)) }
}

/// Merge each patch element into the original element with the same merge key, or append it.
fn merge_by_key(mut original: Vec<Value>, patch: &[Value], merge_key: &str, schema: Schema) -> Result<Vec<Value>> {
    for v in patch {
        let Value::Object(m) = v else {
            return Err(err_bad_arg_type(GO_MAP, v));
        };
        let value = m.get(merge_key).ok_or_else(|| err_no_merge_key(m, merge_key))?;
        match find_by_merge_key(&original, merge_key, value)? {
            Some(i) => {
                let Value::Object(current) = std::mem::take(&mut original[i]) else {
                    continue;
                };
                original[i] = Value::Object(merge_map(current, m.clone(), schema)?);
            }
            None => {
                if let Some(c) = clean(v.clone()) {
                    original.push(c);
                }
            }
        }
    }
    Ok(original)
}

/// The first map of `list` whose `merge_key` is `value`; a non-map met before it is an error.
fn find_by_merge_key(list: &[Value], merge_key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(im) = item else {
            return Err(bad(format!("value for key {i} is not a map")));
        };
        if im.get(merge_key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Split `list` into items present in `by` (by merge key, or by value for primitives) and the rest.
fn partition(list: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for v in list {
        let found = if merge_key.is_empty() {
            by.contains(&v)
        } else {
            let Value::Object(m) = &v else {
                return Err(err_bad_arg_type(GO_MAP, &v));
            };
            let value = m.get(merge_key).ok_or_else(|| err_no_merge_key(m, merge_key))?;
            find_by_merge_key(by, merge_key, value)?.is_some()
        };
        if found { present.push(v) } else { absent.push(v) }
    }
    Ok((present, absent))
}

/// Where `item` sits in `list`: by merge key for maps, by value otherwise.
fn index_of(list: &[Value], item: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    if kind == Kind::Map {
        let key = item.get(merge_key);
        list.iter().position(|v| v.get(merge_key) == key)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// Sort the patch items by the patch's order and the server-only items by the live order,
/// then interleave them, keeping server-only items before patch items they preceded live.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (index_of(server_order, l, merge_key, kind), index_of(server_order, r, merge_key, kind)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Stable-sort `items` by their position in `order` (unknown items last); deletions go last.
fn normalize_slice_order(items: Vec<Value>, order: &[Value], merge_key: &str, kind: Kind) -> Result<Vec<Value>> {
    let (mut items, deletions) = if kind == Kind::Map {
        for v in items.iter().chain(order.iter()) {
            let Value::Object(m) = v else {
                return Err(err_bad_arg_type(GO_MAP, v));
            };
            if !m.contains_key(merge_key) {
                return Err(err_no_merge_key(m, merge_key));
            }
        }
        split_deletions(items)?
    } else {
        (items, Vec::new())
    };
    items.sort_by_key(|v| index_of(order, v, merge_key, kind).unwrap_or(usize::MAX));
    items.extend(deletions);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Reason;
    use serde_json::json;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
    const POD: &str = "io.k8s.api.core.v1.Pod";

    fn smp(doc: &Value, patch: Value, def: &str) -> Value {
        strategic_merge_patch(doc, &patch, def).unwrap()
    }

    fn containers(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]["containers"]
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.24", "imagePullPolicy": "IfNotPresent",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "x", "operator": "Exists"}]
                }}
            }
        })
    }

    #[test]
    fn kubectl_apply_three_way_patch_deletes_and_updates_containers() {
        // What `kubectl apply` sends after the sidecar was dropped from the manifest and the image changed.
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"image": "nginx:1.25", "name": "web"}, {"$patch": "delete", "name": "sidecar"}]
            }}}
        });
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(names(containers(&out)), ["web"]);
        let web = &containers(&out)[0];
        assert_eq!(web["image"], "nginx:1.25");
        // Fields the patch does not mention (server defaults, env, ports) survive.
        assert_eq!(web["imagePullPolicy"], "IfNotPresent");
        assert_eq!(web["env"].as_array().unwrap().len(), 2);
        assert_eq!(out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"], "{}");
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn set_element_order_orders_new_items_and_keeps_server_only_ones() {
        // Apply adds "log" in front of "web"; "sidecar" is not the applier's (server-only).
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "log"}, {"name": "web"}],
            "containers": [{"name": "log", "image": "fluentbit"}]
        }}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(names(containers(&out)), ["log", "web", "sidecar"]);

        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}],
            "containers": [{"name": "new", "image": "x"}]
        }}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(names(containers(&out)), ["web", "new", "sidecar"]);

        // Reordering only.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]
        }}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(names(containers(&out)), ["sidecar", "web"]);
    }

    #[test]
    fn added_items_take_the_slots_freed_by_deleted_ones() {
        // Upstream merges in place, so "gamma" (server-only) ends up before the added "delta".
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "alpha"}, {"name": "beta", "image": "b"}, {"name": "gamma", "image": "g"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "beta"}, {"name": "delta"}],
            "containers": [{"name": "delta"}, {"name": "alpha", "$patch": "delete"}]
        }}}});
        let out = smp(&live, patch, DEPLOYMENT);
        assert_eq!(names(containers(&out)), ["beta", "gamma", "delta"]);
    }

    #[test]
    fn set_element_order_must_match_patch_list() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "other", "image": "x"}]
        }}}});
        let err = strategic_merge_patch(&live_deployment(), &patch, DEPLOYMENT).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("The order in patch list:"), "{}", err.message);
    }

    #[test]
    fn env_merges_by_name() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [
            {"name": "B", "value": "2b"}, {"name": "C", "value": "3"}, {"name": "A", "$patch": "delete"}
        ]}]}}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(containers(&out)[0]["env"], json!([{"name": "B", "value": "2b"}, {"name": "C", "value": "3"}]));
        // Nulls inside a merged element delete fields; the untouched container is kept.
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "A", "value": null}], "imagePullPolicy": null}
        ]}}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(containers(&out)[0]["env"], json!([{"name": "A"}, {"name": "B", "value": "2"}]));
        assert!(containers(&out)[0].get("imagePullPolicy").is_none());
        assert_eq!(names(containers(&out)), ["web", "sidecar"]);
    }

    #[test]
    fn ports_merge_by_container_port() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 80, "name": "http"}, {"containerPort": 443}
        ]}]}}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(
            containers(&out)[0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn lists_without_merge_strategy_are_replaced() {
        let patch = json!({"spec": {"template": {"spec": {
            "tolerations": [{"key": "y", "operator": "Exists", "effect": null}],
            "containers": [{"name": "sidecar", "args": ["sleep", "10"]}]
        }}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(out["spec"]["template"]["spec"]["tolerations"], json!([{"key": "y", "operator": "Exists"}]));
        assert_eq!(containers(&out)[1]["args"], json!(["sleep", "10"]));
    }

    #[test]
    fn labels_annotations_and_replicas_merge_like_merge_patch() {
        let patch = json!({"metadata": {"labels": {"app": null, "env": "prod"}, "annotations": {"a": "1", "b": null}},
                           "spec": {"replicas": 5}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(out["metadata"]["labels"], json!({"env": "prod"}));
        assert_eq!(out["metadata"]["annotations"], json!({"a": "1"}));
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(out["spec"]["strategy"]["type"], "RollingUpdate");
    }

    #[test]
    fn retain_keys_on_deployment_strategy() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // Without the directive the old rollingUpdate would stay.
        let out = smp(&live_deployment(), json!({"spec": {"strategy": {"type": "Recreate"}}}), DEPLOYMENT);
        assert!(out["spec"]["strategy"].get("rollingUpdate").is_some());
        // A key set by the patch must be listed.
        let bad_patch =
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}});
        let err = strategic_merge_patch(&live_deployment(), &bad_patch, DEPLOYMENT).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "invalid patch format of retainKeys"));
    }

    #[test]
    fn volume_source_replaced_through_retain_keys() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/volumes": [{"name": "data"}],
            "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "name": "data"}]
        }}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(out["spec"]["template"]["spec"]["volumes"], json!([{"name": "data", "configMap": {"name": "cm"}}]));
    }

    #[test]
    fn primitive_merge_lists_are_sets() {
        let patch = json!({"metadata": {"finalizers": ["c", "a"]}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        // Items new to the list go in front, as upstream orders them.
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
        let err = strategic_merge_patch(
            &live_deployment(),
            &json!({"metadata": {"$deleteFromPrimitiveList": []}}),
            DEPLOYMENT,
        )
        .unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "invalid patch format of primitive list"));
    }

    #[test]
    fn patch_directives_on_maps_and_lists() {
        // $patch: replace on a list keeps only the patch's elements.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        assert_eq!(*containers(&out), json!([{"name": "only", "image": "x"}]));
        // $patch: replace on a map.
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}});
        assert_eq!(smp(&live_deployment(), patch, DEPLOYMENT)["metadata"]["labels"], json!({"new": "1"}));
        // $patch: delete on a map empties it.
        let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
        assert_eq!(smp(&live_deployment(), patch, DEPLOYMENT)["spec"]["strategy"], json!({}));
        // Directives never leak into the stored object.
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "new", "image": "x", "$setElementOrder/env": [{"name": "A"}], "env": [{"name": "A", "value": null}]}
        ]}}}});
        let out = smp(&live_deployment(), patch, DEPLOYMENT);
        // Without $setElementOrder a new element goes first, as upstream puts it.
        assert_eq!(names(containers(&out)), ["new", "web", "sidecar"]);
        assert_eq!(containers(&out)[0], json!({"name": "new", "image": "x", "env": [{"name": "A"}]}));
        // $patch: merge is rejected as upstream does.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "web"}]}}}});
        let err = strategic_merge_patch(&live_deployment(), &patch, DEPLOYMENT).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "merging lists cannot yet be specified in the patch"));
        let err =
            strategic_merge_patch(&live_deployment(), &json!({"spec": {"$patch": "merge"}}), DEPLOYMENT).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("unknown patch type: merge in map:"), "{}", err.message);
    }

    #[test]
    fn pod_conditions_merge_by_type() {
        let pod = json!({"kind": "Pod", "status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}
        ]}});
        let out = smp(&pod, json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}), POD);
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
        );
    }

    #[test]
    fn unknown_definition_merges_maps_and_replaces_lists() {
        let doc = json!({"spec": {"items": [{"name": "a", "x": 1}], "m": {"a": 1, "b": 2}}});
        let out =
            smp(&doc, json!({"spec": {"items": [{"name": "b"}], "m": {"a": null, "c": 3}}}), "com.example.v1.Widget");
        assert_eq!(out, json!({"spec": {"items": [{"name": "b"}], "m": {"b": 2, "c": 3}}}));
    }

    #[test]
    fn malformed_patches_get_upstream_codes() {
        let err = strategic_merge_patch(&live_deployment(), &json!([1]), DEPLOYMENT).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "json: cannot unmarshal array into Go value of type map[string]interface {}");
        // Missing merge key in a merged list element.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = strategic_merge_patch(&live_deployment(), &patch, DEPLOYMENT).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "map: map[image:x] does not contain declared merge key: name")
        );
        // Lists of lists are 422 Invalid.
        let doc = json!({"metadata": {"finalizers": []}});
        let err = strategic_merge_patch(&doc, &json!({"metadata": {"finalizers": [["x"]]}}), DEPLOYMENT).unwrap_err();
        assert_eq!((err.code, err.reason), (422, Reason::Invalid));
        assert_eq!(
            element_kind(&[&[json!(["x"])]]).unwrap_err(),
            SmpError::Unprocessable("lists of lists are not supported".into())
        );
        // A null patch changes nothing.
        assert_eq!(strategic_merge_patch(&live_deployment(), &Value::Null, DEPLOYMENT).unwrap(), live_deployment());
    }
}
