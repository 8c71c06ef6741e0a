//! Server-side apply and `metadata.managedFields` (upstream's fieldmanager on
//! top of structured-merge-diff), as pure functions on JSON objects.
//!
//! * [`apply`]: an `application/apply-patch+yaml` request: merge the applied
//!   configuration into the live object by the kind's schema, detect conflicts
//!   with other managers (409 `FieldManagerConflict` causes unless `force`),
//!   prune what the manager applied before and no longer applies, and record
//!   the manager's `Apply` entry.
//! * [`track_update`]: every other write (create, update, patch): the fields
//!   that changed become owned by the writer's `Update` entry and are taken
//!   from everybody else.
//! * [`manager_from_user_agent`]: the default manager name.
//!
//! Schemas come from [`schema_for`] (built-in kinds), [`schema_from_openapi_v3`]
//! (CRDs) or [`deduced`]. Time is passed in (`now`, RFC 3339).

mod fieldpath;
mod schema;
mod typed;

pub use fieldpath::{PathElement, Set, path_string};
pub use schema::{TypeRef, deduced, schema_for, schema_for_definition, schema_from_openapi_v3};

use crate::status::{ApiError, Reason};
use serde_json::{Map, Value, json};

/// Upstream's cap on `Update` entries per object (older ones merge into `ancient-changes`).
pub const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";
/// kubectl's client-side apply annotation, kept in sync when `kubectl` applies server-side.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Who writes, and how: shared by [`apply`] and [`track_update`].
#[derive(Clone, Copy, Debug)]
pub struct Operation<'a> {
    /// The `fieldManager` (or [`manager_from_user_agent`]); empty becomes `unknown`.
    pub manager: &'a str,
    /// The group/version of the request (`apps/v1`, `v1`).
    pub api_version: &'a str,
    /// `Some("status")` for writes through a subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time recorded in the entry.
    pub now: &'a str,
    /// Dotted field paths this endpoint resets and therefore never owns
    /// (upstream's `ResetFieldsStrategy`), e.g. `["status"]` for the main
    /// resource of a kind with a status subresource, `["spec", "metadata"]`
    /// for its status subresource.
    pub reset_fields: &'a [&'a str],
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    apply: bool,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: Set,
}

impl Entry {
    fn is(&self, manager: &str, apply: bool, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.apply == apply
            && self.subresource == subresource
            && (apply || self.api_version == api_version)
    }

    /// How upstream names a manager in conflict messages.
    fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if !self.apply {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn seconds(&self) -> i64 {
        self.time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    }
}

fn decode_entries(v: Option<&Value>) -> Result<Vec<Entry>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(vec![]) };
    let Value::Array(items) = v else { return Err("managedFields must be a list".into()) };
    let mut out: Vec<Entry> = Vec::with_capacity(items.len());
    for item in items {
        let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let apply = match s("operation").as_str() {
            "Apply" => true,
            "Update" => false,
            other => return Err(format!("unknown operation {other:?}")),
        };
        let fields_type = s("fieldsType");
        if fields_type != "FieldsV1" {
            return Err(format!("format {fields_type:?} is unknown, only FieldsV1 is supported"));
        }
        let set = match item.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(f) => Set::from_fields_v1(f)?,
        };
        let entry = Entry {
            manager: s("manager"),
            apply,
            api_version: s("apiVersion"),
            subresource: s("subresource"),
            time: item.get("time").and_then(Value::as_str).map(String::from),
            set,
        };
        // A later entry with the same identity replaces an earlier one, as upstream's map does.
        out.retain(|e| !e.is(&entry.manager, entry.apply, &entry.api_version, &entry.subresource));
        out.push(entry);
    }
    Ok(out)
}

fn encode_entries(mut entries: Vec<Entry>) -> Value {
    entries.sort_by(|p, q| {
        (!p.apply)
            .cmp(&!q.apply)
            .then_with(|| p.seconds().cmp(&q.seconds()))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    Value::Array(
        entries
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(if e.apply { "Apply" } else { "Update" }));
                m.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = e.time {
                    m.insert("time".into(), json!(t));
                }
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

fn set_managed_fields(obj: &mut Value, entries: Vec<Entry>) {
    let Some(meta) = obj.as_object_mut().map(|o| o.entry("metadata").or_insert_with(|| json!({}))) else { return };
    let Some(meta) = meta.as_object_mut() else { return };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), encode_entries(entries));
    }
}

fn take_managed_fields(obj: &mut Value) -> Option<Value> {
    obj.get_mut("metadata").and_then(Value::as_object_mut).and_then(|m| m.remove("managedFields"))
}

/// Paths never recorded as owned (upstream's stripMeta manager).
fn strip_set() -> Set {
    let mut s = Set::new();
    let f = |n: &str| PathElement::Field(n.to_string());
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for n in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(n)]);
    }
    s
}

fn reset_set(paths: &[&str]) -> Set {
    let mut s = Set::new();
    for p in paths {
        let path: Vec<PathElement> =
            p.split('.').filter(|x| !x.is_empty()).map(|x| PathElement::Field(x.into())).collect();
        s.insert(&path);
    }
    s
}

/// What an object looks like before it exists: built-in kinds are Go structs
/// whose `metadata`, `spec` and `status` are always present.
fn empty_object(t: &TypeRef) -> Value {
    let mut m = Map::new();
    if t.go_struct
        && let Some(root) = t.atom(t.root).map.as_ref()
    {
        for f in ["metadata", "spec", "status"] {
            if root.fields.contains_key(f) {
                m.insert(f.into(), json!({}));
            }
        }
    }
    Value::Object(m)
}

fn object_id(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    let av = s("/apiVersion");
    let (g, v) = av.rsplit_once('/').unwrap_or(("", av));
    format!("{}/{}; {g}/{v}, Kind={}", s("/metadata/namespace"), s("/metadata/name"), s("/kind"))
}

fn validation_message(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => {
            let mut lines = vec!["errors:".to_string()];
            lines.extend(many.iter().map(|e| format!("  {e}")));
            lines.join("\n")
        }
    }
}

/// Remove everything the applier applied last time and no longer applies,
/// unless another manager (or the new configuration) owns it (SMD's prune).
fn prune(t: &TypeRef, merged: Value, entries: &[Entry], last: Option<&Set>) -> Value {
    let Some(last) = last.filter(|s| !s.is_empty()) else { return merged };
    let ensure = |s: &Set| typed::ensure_named_fields_are_members(t, s);
    let set_of = |v: &Value| ensure(&typed::field_set(t, v, false).unwrap_or_default());
    let last = ensure(last);
    let merged_set = set_of(&merged);
    let pruned = typed::remove_items(t, &merged, &last, true);
    let mut managed = Set::new();
    for e in entries {
        managed.union_with(&e.set);
    }
    let managed = ensure(&managed);
    let keep = set_of(&pruned).union(&managed);
    let pruned = typed::remove_items(t, &merged, &merged_set.difference(&keep), true);
    let dangling = merged_set.difference(&set_of(&pruned)).intersection(&last);
    typed::remove_items(t, &merged, &dangling, false)
}

fn conflict_error(conflicts: &[(String, Vec<Vec<PathElement>>)]) -> ApiError {
    let total: usize = conflicts.iter().map(|(_, p)| p.len()).sum();
    let mut causes = Vec::new();
    for (mgr, paths) in conflicts {
        for p in paths {
            causes.push(json!({"reason": "FieldManagerConflict", "message": format!("conflict with {mgr}"), "field": path_string(p)}));
        }
    }
    let message = match conflicts {
        [(mgr, paths)] if paths.len() == 1 => {
            format!("Apply failed with 1 conflict: conflict with {mgr}: {}", path_string(&paths[0]))
        }
        _ => {
            let mut s = format!("Apply failed with {total} conflicts: ");
            let mut sorted: Vec<&(String, Vec<Vec<PathElement>>)> = conflicts.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (mgr, paths) in sorted {
                s.push_str(&format!("\nconflicts with {mgr}"));
                for p in paths {
                    s.push_str(&format!("\n- {}", path_string(p)));
                }
            }
            s
        }
    };
    let mut e = ApiError::new(409, Reason::Conflict, message);
    e.causes = causes;
    e
}

/// Server-side apply `applied` (the request body, already decoded from YAML)
/// onto `live` (`None`: the object is being created). Returns the new object
/// with `metadata.managedFields` set; the caller then defaults, validates and
/// stores it as for any update (and checks kind/name against the URL, and
/// that `fieldManager` was given).
pub fn apply(
    t: &TypeRef,
    live: Option<&Value>,
    applied: &Value,
    op: &Operation,
    force: bool,
) -> Result<Value, ApiError> {
    if !applied.is_object() {
        return Err(ApiError::bad_request("the apply configuration must be an object"));
    }
    let version = applied.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if version != op.api_version {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            op.api_version
        )));
    }
    if applied.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let manager = if op.manager.is_empty() { "unknown" } else { op.manager };
    let subresource = op.subresource.unwrap_or("");

    let mut live_obj = live.cloned().unwrap_or_else(|| empty_object(t));
    let mut entries = decode_entries(take_managed_fields(&mut live_obj).as_ref())
        .map_err(|e| ApiError::internal(format!("failed to decode managed fields: {e}")))?;

    let applied_set = typed::field_set(t, applied, true).map_err(|errs| {
        ApiError::new(
            500,
            Reason::InternalError,
            format!("failed to create typed patch object ({}): {}", object_id(applied), validation_message(&errs)),
        )
    })?;
    let ignored = reset_set(op.reset_fields);
    let applied_set = applied_set.recursive_difference(&ignored);

    let me = match entries.iter().position(|e| e.is(manager, true, "", subresource)) {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.to_string(),
                apply: true,
                api_version: String::new(),
                subresource: subresource.to_string(),
                time: None,
                set: Set::new(),
            });
            entries.len() - 1
        }
    };
    let last = std::mem::replace(&mut entries[me].set, applied_set).recursive_difference(&ignored);
    entries[me].api_version = op.api_version.to_string();

    let mut merged = typed::merge(t, &live_obj, applied);
    if t.go_struct {
        typed::drop_nulls(&mut merged);
    }
    let new_obj = prune(t, merged, &entries, Some(&last));

    let cmp = typed::compare(t, &live_obj, &new_obj);
    let changed = cmp.modified.union(&cmp.added).recursive_difference(&ignored);
    let removed = cmp.removed.recursive_difference(&ignored);
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if i == me {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((i, c));
        }
    }
    // Upstream's lastAppliedManager: `kubectl apply --server-side` over an object
    // made with client-side apply may take the fields the last-applied annotation
    // holds at their live values (nobody changed them since), as if forced.
    let force = force
        || (manager == "kubectl"
            && !conflicts.is_empty()
            && allowed_by_last_applied(t, &live_obj)
                .is_some_and(|allowed| conflicts.iter().all(|(_, c)| c.difference(&allowed).is_empty())));
    if !force && !conflicts.is_empty() {
        let list: Vec<(String, Vec<Vec<PathElement>>)> =
            conflicts.iter().map(|(i, c)| (entries[*i].display(), c.paths())).collect();
        return Err(conflict_error(&list));
    }
    for (i, c) in &conflicts {
        entries[*i].set = entries[*i].set.difference(c);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if i != me && !removed.is_empty() {
            e.set = e.set.difference(&removed);
        }
    }
    entries[me].set = entries[me].set.difference(&strip_set());
    if new_obj != live_obj {
        entries[me].time = Some(op.now.to_string());
    }
    entries.retain(|e| !e.set.is_empty());

    let mut out = new_obj;
    set_managed_fields(&mut out, entries);
    if manager == "kubectl"
        && let Some(live) = live
        && live.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED_ANNOTATION)).is_some()
    {
        sync_last_applied(&mut out, applied);
    }
    Ok(out)
}

/// The fields of the client-side apply annotation whose values the live object still has.
fn allowed_by_last_applied(t: &TypeRef, live: &Value) -> Option<Set> {
    let text = live.pointer("/metadata/annotations")?.get(LAST_APPLIED_ANNOTATION)?.as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    let set = typed::field_set(t, &last, false).ok()?;
    let cmp = typed::compare(t, &last, live);
    Some(set.difference(&cmp.modified))
}

/// Upstream's lastAppliedUpdater: when `kubectl` applies server-side an object
/// that has the client-side apply annotation, the annotation follows the new
/// configuration (without the annotation itself).
fn sync_last_applied(out: &mut Value, applied: &Value) {
    let mut cfg = applied.clone();
    if let Some(ann) = cfg.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        ann.remove(LAST_APPLIED_ANNOTATION);
    }
    let text = format!("{cfg}\n");
    if let Some(ann) = out.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        ann.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(text));
    }
}

/// Record a non-apply write (create: `old` is `None`; update; patch) in
/// `new`'s `metadata.managedFields`. The fields that differ between `old` and
/// `new` become owned by the writer's `Update` entry (one per manager,
/// apiVersion and subresource) and are removed from every other entry;
/// entries left empty disappear; at most [`MAX_UPDATE_MANAGERS`] `Update`
/// entries are kept (the oldest merge into `ancient-changes`).
///
/// `managedFields` sent in `new` replace the old ones (not through a
/// subresource); `[{}]` clears them; an empty or absent list keeps the old
/// ones, as upstream.
pub fn track_update(t: &TypeRef, old: Option<&Value>, new: &mut Value, op: &Operation) {
    let manager = if op.manager.is_empty() { "unknown" } else { op.manager };
    let subresource = op.subresource.unwrap_or("");
    let empty;
    let old_obj = match old {
        Some(o) => o,
        None => {
            empty = empty_object(t);
            &empty
        }
    };
    let old_entries = decode_entries(old_obj.pointer("/metadata/managedFields")).unwrap_or_default();
    let sent = take_managed_fields(new);
    let mut entries = match (op.subresource, sent) {
        (None, Some(Value::Array(a))) if a.len() == 1 && a[0] == json!({}) => vec![],
        (None, Some(v)) => match decode_entries(Some(&v)) {
            Ok(e) if !e.is_empty() => e,
            _ => old_entries,
        },
        _ => old_entries,
    };
    if !new.is_object() {
        return;
    }

    let ignored = reset_set(op.reset_fields);
    let cmp = typed::compare(t, old_obj, new);
    let changed = cmp.modified.union(&cmp.added);
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    entries.retain(|e| !e.set.is_empty());
    if !cmp.is_same() {
        let mine = changed.difference(&cmp.removed).recursive_difference(&ignored).difference(&strip_set());
        if !mine.is_empty() {
            match entries.iter_mut().find(|e| e.is(manager, false, op.api_version, subresource)) {
                Some(e) => {
                    e.set.union_with(&mine);
                    e.time = Some(op.now.to_string());
                }
                None => entries.push(Entry {
                    manager: manager.to_string(),
                    apply: false,
                    api_version: op.api_version.to_string(),
                    subresource: subresource.to_string(),
                    time: Some(op.now.to_string()),
                    set: mine,
                }),
            }
        }
    }
    cap_update_managers(&mut entries);
    set_managed_fields(new, entries);
}

/// Merge the oldest `Update` entries into per-version `ancient-changes`
/// entries until at most [`MAX_UPDATE_MANAGERS`] remain.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = (0..entries.len()).filter(|&i| !entries[i].apply).collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let (p, q) = (&entries[a], &entries[b]);
        p.seconds().cmp(&q.seconds()).then_with(|| identity(p).cmp(&identity(q)))
    });
    let mut length = updaters.len();
    let mut first_of_version: Vec<(String, usize)> = Vec::new();
    let mut dropped = vec![false; entries.len()];
    for &i in &updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        match first_of_version.iter().find(|(v, _)| *v == version).map(|(_, j)| *j) {
            Some(first) => {
                // The first one of this version becomes the bucket.
                let set = std::mem::take(&mut entries[i].set);
                let time = entries[i].time.clone();
                let bucket = &mut entries[first];
                bucket.manager = ANCIENT_CHANGES.to_string();
                bucket.subresource = String::new();
                bucket.set.union_with(&set);
                bucket.time = time;
                dropped[i] = true;
                length -= 1;
            }
            None => first_of_version.push((version, i)),
        }
    }
    let mut k = 0;
    entries.retain(|_| {
        k += 1;
        !dropped[k - 1]
    });
}

/// Upstream's manager identifier (JSON of manager, operation, apiVersion for
/// updates, subresource), used to order entries of equal time.
fn identity(e: &Entry) -> String {
    let mut m = Map::new();
    m.insert("manager".into(), json!(e.manager));
    m.insert("operation".into(), json!(if e.apply { "Apply" } else { "Update" }));
    if !e.apply {
        m.insert("apiVersion".into(), json!(e.api_version));
    }
    if !e.subresource.is_empty() {
        m.insert("subresource".into(), json!(e.subresource));
    }
    Value::Object(m).to_string()
}

/// The default field manager of a request without `fieldManager`: the
/// User-Agent up to its first `/`, without non-printable characters, at most
/// 128 bytes (upstream's `prefixFromUserAgent`).
pub fn manager_from_user_agent(ua: &str) -> String {
    let head = ua.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in head.chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            continue;
        }
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
