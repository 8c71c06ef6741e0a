//! Schema-aware walks over JSON objects (structured-merge-diff's `typed`):
//! the field set of an object, the comparison of two objects (added, modified
//! and removed paths), the merge of an applied configuration into a live
//! object, and the removal of a set of paths.

use super::fieldpath::{PathElement, Set, path_string};
use super::schema::{Atom, DEDUCED, ListDef, ListKind, MapDef, ScalarKind, TyId, TypeRef};
use serde_json::{Map, Value};

/// How a value is walked under its type.
enum Node<'a> {
    /// Scalars, atomic maps and lists, nulls and type mismatches.
    Leaf,
    List(&'a ListDef),
    Map(&'a MapDef),
}

fn node<'a>(atom: &'a Atom, v: &Value) -> Node<'a> {
    match v {
        Value::Object(_) => match &atom.map {
            Some(m) if !m.atomic => Node::Map(m),
            _ => Node::Leaf,
        },
        Value::Array(_) => match &atom.list {
            Some(l) if l.kind != ListKind::Atomic => Node::List(l),
            _ => Node::Leaf,
        },
        _ => Node::Leaf,
    }
}

fn field_type(m: &MapDef, key: &str) -> Option<TyId> {
    m.fields.get(key).map(|f| f.ty).or(m.elem)
}

/// The path element identifying a list item.
pub(crate) fn item_element(t: &TypeRef, l: &ListDef, item: &Value, index: usize) -> Result<PathElement, String> {
    match &l.kind {
        ListKind::Map(keys) => {
            let Value::Object(m) = item else {
                return Err(if item.is_null() {
                    "associative list with keys may not have a null element".into()
                } else {
                    "associative list with keys may not have non-map elements".into()
                });
            };
            let elem = t.atom(l.elem).map.as_ref();
            let mut fields: Vec<(String, Value)> = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = m.get(k) {
                    fields.push((k.clone(), v.clone()));
                } else if let Some(d) = elem.and_then(|e| e.fields.get(k)).and_then(|f| f.default.clone()) {
                    fields.push((k.clone(), d));
                }
            }
            if fields.is_empty() {
                return Err(format!(
                    "associative list with keys has an element that omits all key fields {keys:?} (and doesn't have default values for any key fields)"
                ));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
        ListKind::Set => match item {
            Value::Object(_) => Err("associative list without keys has an element that's a map type".into()),
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            other => Ok(PathElement::Value(other.clone())),
        },
        ListKind::Atomic => Ok(PathElement::Index(index)),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "numeric",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// Whether `v` fits `atom`, as SMD's validation: the error text when it does not.
fn check_type(atom: &Atom, v: &Value) -> Option<String> {
    let ok = match v {
        Value::Null => true,
        Value::Object(_) => atom.map.is_some(),
        Value::Array(_) => atom.list.is_some(),
        scalar => match atom.scalar {
            None => false,
            Some(ScalarKind::Untyped) => true,
            Some(ScalarKind::Numeric) => scalar.is_number(),
            Some(ScalarKind::String) => scalar.is_string(),
            Some(ScalarKind::Boolean) => scalar.is_boolean(),
        },
    };
    if ok {
        return None;
    }
    let expected = match (atom.scalar, &atom.list, &atom.map) {
        (Some(ScalarKind::Numeric), ..) => "numeric (int or float)",
        (Some(ScalarKind::String), ..) => "string",
        (Some(ScalarKind::Boolean), ..) => "boolean",
        (Some(ScalarKind::Untyped), ..) => "scalar",
        (None, Some(_), _) => "list",
        _ => "map",
    };
    Some(format!("expected {expected}, got {}", type_name(v)))
}

/// The set of paths an object sets (upstream's `ToFieldSet`). With `strict`,
/// undeclared fields, type mismatches, bad or duplicate list keys are errors
/// (`.spec.foo: field not declared in schema`), as for an applied configuration.
pub(crate) fn field_set(t: &TypeRef, v: &Value, strict: bool) -> Result<Set, Vec<String>> {
    let mut errs = Vec::new();
    let mut path = Vec::new();
    let set = fs_walk(t, t.root, v, strict, &mut path, &mut errs);
    if errs.is_empty() { Ok(set) } else { Err(errs) }
}

fn fs_walk(t: &TypeRef, ty: TyId, v: &Value, strict: bool, path: &mut Vec<PathElement>, errs: &mut Vec<String>) -> Set {
    let atom = t.atom(ty);
    let mut out = Set::new();
    if strict && let Some(e) = check_type(atom, v) {
        errs.push(format!("{}: {e}", path_string(path)));
        return out;
    }
    match node(atom, v) {
        Node::Leaf => {}
        Node::Map(m) => {
            let Value::Object(obj) = v else { return out };
            for (k, child) in obj {
                let declared = m.fields.contains_key(k);
                let pe = PathElement::Field(k.clone());
                let cty = match field_type(m, k) {
                    Some(ty) => ty,
                    None => {
                        if strict {
                            errs.push(format!("{}.{k}: field not declared in schema", path_string(path)));
                            continue;
                        }
                        DEDUCED
                    }
                };
                path.push(pe.clone());
                let sub = fs_walk(t, cty, child, strict, path, errs);
                path.pop();
                let leaf = matches!(node(t.atom(cty), child), Node::Leaf);
                let empty_map = child.as_object().is_some_and(Map::is_empty);
                if leaf || child.is_null() || empty_map || !declared {
                    out.insert_member(pe.clone());
                }
                if !sub.is_empty() {
                    out.child_mut(pe).union_with(&sub);
                }
            }
        }
        Node::List(l) => {
            let Value::Array(items) = v else { return out };
            let mut seen = Set::new();
            for (i, item) in items.iter().enumerate() {
                let pe = match item_element(t, l, item, i) {
                    Ok(pe) => pe,
                    Err(e) => {
                        if strict {
                            errs.push(format!("{}: element {i}: {e}", path_string(path)));
                        }
                        continue;
                    }
                };
                if strict {
                    if seen.has_member(&pe) {
                        errs.push(format!("{}: duplicate entries for key {pe}", path_string(path)));
                        continue;
                    }
                    seen.insert_member(pe.clone());
                }
                path.push(pe.clone());
                let sub = fs_walk(t, l.elem, item, strict, path, errs);
                path.pop();
                out.insert_member(pe.clone());
                if !sub.is_empty() {
                    out.child_mut(pe).union_with(&sub);
                }
            }
        }
    }
    out
}

/// Paths added, modified and removed going from one object to another.
#[derive(Default, Debug)]
pub(crate) struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// The fields added, modified and removed from `lhs` to `rhs`. `metadata.managedFields` is not
/// compared (it is bookkeeping, never an owned field), so that callers need not copy an object
/// to take it out.
pub(crate) fn compare(t: &TypeRef, lhs: &Value, rhs: &Value) -> Comparison {
    let mut c = Comparison::default();
    cmp_walk(t, t.root, Some(lhs), Some(rhs), &mut Vec::new(), &mut c);
    c
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn cmp_walk(
    t: &TypeRef,
    ty: TyId,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    let atom = t.atom(ty);
    let ln = lhs.map(|v| node(atom, v));
    let rn = rhs.map(|v| node(atom, v));
    let leaf = match (&ln, &rn) {
        (Some(Node::Map(_)), Some(Node::Map(_))) | (Some(Node::List(_)), Some(Node::List(_))) => {
            is_empty_container(lhs) && is_empty_container(rhs)
        }
        (Some(Node::Map(_)), None) | (None, Some(Node::Map(_))) => false,
        (Some(Node::List(_)), None) | (None, Some(Node::List(_))) => false,
        _ => true,
    };
    if leaf || (is_empty_container(lhs) && is_empty_container(rhs)) {
        match (lhs, rhs) {
            (None, Some(_)) => c.added.insert(path),
            (Some(_), None) => c.removed.insert(path),
            (Some(l), Some(r)) if l != r => c.modified.insert(path),
            _ => {}
        }
        return;
    }
    match ln.as_ref().or(rn.as_ref()) {
        Some(Node::Map(m)) => {
            let lo = lhs.and_then(Value::as_object);
            let ro = rhs.and_then(Value::as_object);
            let in_metadata = matches!(path.as_slice(), [PathElement::Field(f)] if f == "metadata");
            let skip = |k: &str| in_metadata && k == "managedFields";
            if let Some(lo) = lo {
                for (k, lv) in lo {
                    if skip(k) {
                        continue;
                    }
                    let cty = field_type(m, k).unwrap_or(DEDUCED);
                    path.push(PathElement::Field(k.clone()));
                    cmp_walk(t, cty, Some(lv), ro.and_then(|r| r.get(k)), path, c);
                    path.pop();
                }
            }
            if let Some(ro) = ro {
                for (k, rv) in ro {
                    if skip(k) || lo.is_some_and(|l| l.contains_key(k)) {
                        continue;
                    }
                    let cty = field_type(m, k).unwrap_or(DEDUCED);
                    path.push(PathElement::Field(k.clone()));
                    cmp_walk(t, cty, None, Some(rv), path, c);
                    path.pop();
                }
            }
        }
        Some(Node::List(l)) => {
            let li = index_items(t, l, lhs);
            let ri = index_items(t, l, rhs);
            for (pe, lvals) in &li {
                let rvals = ri.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
                path.push(pe.clone());
                match rvals {
                    Some(rv) if lvals.len() == 1 && rv.len() == 1 => {
                        cmp_walk(t, l.elem, Some(lvals[0]), Some(rv[0]), path, c)
                    }
                    Some(rv) => {
                        if lvals != rv {
                            c.modified.insert(path);
                        }
                    }
                    None if lvals.len() == 1 => cmp_walk(t, l.elem, Some(lvals[0]), None, path, c),
                    None => c.removed.insert(path),
                }
                path.pop();
            }
            for (pe, rvals) in &ri {
                if li.iter().any(|(p, _)| p == pe) {
                    continue;
                }
                path.push(pe.clone());
                if rvals.len() == 1 {
                    cmp_walk(t, l.elem, None, Some(rvals[0]), path, c);
                } else {
                    c.added.insert(path);
                }
                path.pop();
            }
        }
        _ => {}
    }
    if lhs.is_none() {
        c.added.insert(path);
    } else if rhs.is_none() {
        c.removed.insert(path);
    }
}

/// List items grouped by path element, in first-seen order.
fn index_items<'v>(t: &TypeRef, l: &ListDef, v: Option<&'v Value>) -> Vec<(PathElement, Vec<&'v Value>)> {
    let mut out: Vec<(PathElement, Vec<&'v Value>)> = Vec::new();
    let Some(Value::Array(items)) = v else { return out };
    let mut pos = std::collections::BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let Ok(pe) = item_element(t, l, item, i) else { continue };
        match pos.get(&pe) {
            Some(&j) => {
                let entry: &mut (PathElement, Vec<&Value>) = &mut out[j];
                entry.1.push(item);
            }
            None => {
                pos.insert(pe.clone(), out.len());
                out.push((pe, vec![item]));
            }
        }
    }
    out
}

/// Merge `rhs` (an applied configuration) into `lhs` (the live object):
/// granular maps merge key by key, associative lists merge item by item
/// (live order kept, new items placed as upstream does), everything else
/// is replaced by `rhs`.
pub(crate) fn merge(t: &TypeRef, lhs: &Value, rhs: &Value) -> Value {
    merge_walk(t, t.root, Some(lhs), Some(rhs)).unwrap_or_else(|| Value::Object(Map::new()))
}

fn merge_walk(t: &TypeRef, ty: TyId, lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    let (l, r) = match (lhs, rhs) {
        (None, None) => return None,
        (Some(l), None) => return Some(l.clone()),
        (None, Some(r)) => return Some(r.clone()),
        (Some(l), Some(r)) => (l, r),
    };
    let atom = t.atom(ty);
    match (node(atom, l), node(atom, r)) {
        (Node::Map(m), Node::Map(_)) => {
            let (Value::Object(lo), Value::Object(ro)) = (l, r) else { return Some(r.clone()) };
            if lo.is_empty() && ro.is_empty() {
                return Some(r.clone());
            }
            let mut out = Map::new();
            for (k, lv) in lo {
                let cty = field_type(m, k).unwrap_or(DEDUCED);
                if let Some(v) = merge_walk(t, cty, Some(lv), ro.get(k)) {
                    out.insert(k.clone(), v);
                }
            }
            for (k, rv) in ro {
                if !lo.contains_key(k) {
                    out.insert(k.clone(), rv.clone());
                }
            }
            if out.is_empty() { None } else { Some(Value::Object(out)) }
        }
        // Upstream treats a null map/list in the configuration as "nothing to merge".
        (Node::Map(_), Node::Leaf) | (Node::List(_), Node::Leaf) if r.is_null() && !is_empty_container(Some(l)) => {
            Some(l.clone())
        }
        (Node::List(ld), Node::List(_)) => {
            let (Value::Array(la), Value::Array(ra)) = (l, r) else { return Some(r.clone()) };
            if la.is_empty() && ra.is_empty() {
                return Some(r.clone());
            }
            let out = merge_list(t, ld, la, ra);
            if out.is_empty() { None } else { Some(Value::Array(out)) }
        }
        _ => Some(r.clone()),
    }
}

fn merge_list(t: &TypeRef, l: &ListDef, la: &[Value], ra: &[Value]) -> Vec<Value> {
    let pes = |a: &[Value]| -> Vec<(PathElement, usize)> {
        a.iter().enumerate().filter_map(|(i, v)| item_element(t, l, v, i).ok().map(|pe| (pe, i))).collect()
    };
    let lpes = pes(la);
    let rpes = pes(ra);
    let find = |v: &[(PathElement, usize)], pe: &PathElement| v.iter().find(|(p, _)| p == pe).map(|(_, i)| *i);
    let mut shared: std::collections::VecDeque<&PathElement> =
        rpes.iter().filter(|(pe, _)| find(&lpes, pe).is_some()).map(|(pe, _)| pe).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: Vec<&PathElement> = Vec::new();
    let mut out = Vec::with_capacity(la.len().max(ra.len()));
    let (mut li, mut ri) = (0, 0);
    let item = |pe: &PathElement, li: Option<usize>, ri: Option<usize>| {
        let _ = pe;
        merge_walk(t, l.elem, li.map(|i| &la[i]), ri.map(|i| &ra[i]))
    };
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li].0;
            if *pe == rpes[ri].0 {
                merged_rhs.push(pe);
                out.extend(item(pe, Some(lpes[li].1), Some(rpes[ri].1)));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if find(&rpes, pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li].0;
            if find(&rpes, pe).is_none() {
                out.push(la[lpes[li].1].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(&pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri].0;
            merged_rhs.push(pe);
            out.extend(item(pe, find(&lpes, pe), Some(rpes[ri].1)));
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// `v` without the paths in `set` (each removed with everything below it).
/// Containers left empty by the removal become `null` (`keep_null`, as
/// upstream's intermediate results) or disappear.
pub(crate) fn remove_items(t: &TypeRef, v: &Value, set: &Set, keep_null: bool) -> Value {
    remove_walk(t, t.root, v, set, keep_null).unwrap_or_else(|| Value::Object(Map::new()))
}

fn remove_walk(t: &TypeRef, ty: TyId, v: &Value, set: &Set, keep_null: bool) -> Option<Value> {
    let emptied = || if keep_null { Some(Value::Null) } else { None };
    match (node(t.atom(ty), v), v) {
        (Node::Map(m), Value::Object(obj)) => {
            let mut out = Map::new();
            for (k, child) in obj {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        let cty = field_type(m, k).unwrap_or(DEDUCED);
                        if let Some(c) = remove_walk(t, cty, child, sub, keep_null) {
                            out.insert(k.clone(), c);
                        }
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            if out.is_empty() && !obj.is_empty() { emptied() } else { Some(Value::Object(out)) }
        }
        (Node::List(l), Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = item_element(t, l, item, i) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => out.extend(remove_walk(t, l.elem, item, sub, keep_null)),
                    None => out.push(item.clone()),
                }
            }
            if out.is_empty() && !items.is_empty() { emptied() } else { Some(Value::Array(out)) }
        }
        _ => Some(v.clone()),
    }
}

/// `set` plus every declared struct field that has descendants in it
/// (upstream's `EnsureNamedFieldsAreMembers`).
pub(crate) fn ensure_named_fields_are_members(t: &TypeRef, set: &Set) -> Set {
    ensure_walk(t, Some(t.root), set)
}

fn ensure_walk(t: &TypeRef, ty: Option<TyId>, set: &Set) -> Set {
    let mut out = Set::new();
    let atom = ty.map(|ty| t.atom(ty));
    for pe in set.members() {
        out.insert_member(pe.clone());
    }
    for (pe, child) in set.children() {
        let mut child_ty = None;
        if let Some(a) = atom {
            if let (PathElement::Field(name), Some(m)) = (pe, &a.map) {
                if let Some(f) = m.fields.get(name) {
                    out.insert_member(pe.clone());
                    child_ty = Some(f.ty);
                } else {
                    child_ty = m.elem;
                }
            } else if let Some(l) = &a.list {
                child_ty = Some(l.elem);
            }
        }
        let c = ensure_walk(t, child_ty, child);
        if !c.is_empty() {
            out.child_mut(pe.clone()).union_with(&c);
        }
    }
    out
}

/// Drop `null` values from maps, as decoding into Go structs does.
pub(crate) fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssa::schema::{deduced, schema_for};
    use serde_json::json;

    #[test]
    fn field_set_of_a_deployment() {
        let t = schema_for("apps", "v1", "Deployment");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "args": ["x"]}]}}}});
        let s = field_set(&t, &d, true).unwrap();
        let v1 = s.to_fields_v1();
        assert_eq!(v1["f:spec"]["f:selector"], json!({}), "atomic map is a leaf");
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:ports"],
            json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}),
            "missing key field takes its default"
        );
        assert_eq!(v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:args"], json!({}));
        assert_eq!(v1["f:metadata"]["f:labels"], json!({"f:a": {}}));
    }

    #[test]
    fn strict_errors() {
        let t = schema_for("apps", "v1", "Deployment");
        let bad = json!({"spec": {"replicas": "two", "foo": 1,
            "template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let errs = field_set(&t, &bad, true).unwrap_err();
        assert!(errs.contains(&".spec.foo: field not declared in schema".to_string()), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with(".spec.replicas: expected numeric")), "{errs:?}");
        assert!(
            errs.contains(&r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#.to_string()),
            "{errs:?}"
        );
        assert!(field_set(&deduced(), &json!({"anything": {"x": [1, 1]}}), true).is_ok());
    }

    #[test]
    fn compare_marks_new_subtrees() {
        let t = schema_for("", "v1", "ConfigMap");
        let c = compare(
            &t,
            &json!({"data": {"a": "1", "b": "2"}}),
            &json!({"data": {"a": "9"}, "metadata": {"labels": {"x": "y"}}}),
        );
        let p = |s: &[&str]| s.iter().map(|x| PathElement::Field(x.to_string())).collect::<Vec<_>>();
        assert!(c.modified.has(&p(&["data", "a"])));
        assert!(c.removed.has(&p(&["data", "b"])));
        assert!(c.added.has(&p(&["metadata", "labels"])) && c.added.has(&p(&["metadata", "labels", "x"])));
    }

    #[test]
    fn compare_leaves_out_managed_fields() {
        let t = schema_for("", "v1", "ConfigMap");
        let mf = json!([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]);
        let old = json!({"metadata": {"name": "a", "managedFields": mf}, "data": {"a": "1"}});
        assert!(compare(&t, &old, &json!({"metadata": {"name": "a"}, "data": {"a": "1"}})).is_same());
        let c = compare(&t, &json!({"metadata": {"managedFields": mf}}), &json!({"metadata": {"labels": {"x": "y"}}}));
        let p = |s: &[&str]| s.iter().map(|x| PathElement::Field(x.to_string())).collect::<Vec<_>>();
        assert!(c.removed.is_empty() && c.modified.is_empty());
        assert!(c.added.has(&p(&["metadata", "labels", "x"])));
        // Elsewhere a field of that name is compared as any other.
        let c = compare(&t, &json!({"data": {"managedFields": "1"}}), &json!({"data": {}}));
        assert!(c.removed.has(&p(&["data", "managedFields"])));
    }

    #[test]
    fn merge_list_map_keeps_live_order_and_appends() {
        let t = schema_for("", "v1", "Pod");
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let cfg = json!({"spec": {"containers": [{"name": "c", "image": "3"}, {"name": "a", "image": "9"}]}});
        let m = merge(&t, &live, &cfg);
        let names: Vec<&str> =
            m["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        // Upstream places the new item before the shared one that follows it in the config.
        assert_eq!(names, ["c", "a", "b"]);
        assert_eq!(m["spec"]["containers"][1]["image"], "9");
        // Atomic list replaced, set union.
        let live = json!({"metadata": {"finalizers": ["x", "y"]}, "spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}});
        let cfg =
            json!({"metadata": {"finalizers": ["z", "x"]}, "spec": {"containers": [{"name": "a", "args": ["3"]}]}});
        let m = merge(&t, &live, &cfg);
        assert_eq!(m["spec"]["containers"][0]["args"], json!(["3"]));
        assert_eq!(m["metadata"]["finalizers"], json!(["z", "x", "y"]));
    }

    #[test]
    fn remove_items_drops_subtrees_and_empty_parents() {
        let t = schema_for("", "v1", "ConfigMap");
        let mut s = Set::new();
        s.insert(&[PathElement::Field("data".into()), PathElement::Field("a".into())]);
        let obj = json!({"data": {"a": "1"}, "metadata": {"name": "x"}});
        assert_eq!(remove_items(&t, &obj, &s, false), json!({"metadata": {"name": "x"}}));
        assert_eq!(remove_items(&t, &obj, &s, true), json!({"data": null, "metadata": {"name": "x"}}));
    }
}
