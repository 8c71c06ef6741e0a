//! CustomResourceDefinitions: the dynamic part of the resource table.
//!
//! A CRD is stored like any object. This module turns the stored CRDs into
//! served resources: it checks their names against each other and the
//! built-in resources (NamesAccepted), marks them Established, builds a
//! `ResourceInfo` per served version (leaked once per distinct definition, so
//! the rest of the server keeps `&'static` resource handles), and, when a CRD
//! is deleted, deletes its custom resources before releasing the CRD's
//! finalizer. It runs inside the apiserver, as upstream's apiextensions
//! controllers do, driven by the watch cache.

use crate::objects;
use crate::request::ResourcePath;
use crate::rest::{Change, WriteOptions};
use crate::server::Server;
use rkube_registry::FieldError;
use rkube_registry::resources::{ResourceInfo, SubresourceInfo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// The finalizer that holds a CRD until its custom resources are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// The field manager of the CRD controllers' writes.
const MANAGER: &str = "kube-apiserver";
const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// One served version of a CRD.
#[derive(Debug)]
pub struct CustomResource {
    pub info: &'static ResourceInfo,
    /// `metadata.name` of the CRD.
    pub crd_name: String,
    /// The version's `openAPIV3Schema` (None: anything goes).
    pub schema: Option<Value>,
    pub status_subresource: bool,
    /// `subresources.scale`: specReplicasPath, statusReplicasPath, labelSelectorPath.
    pub scale: Option<Value>,
    pub printer_columns: Vec<Value>,
    /// `deprecationWarning` (or upstream's default text) when the version is deprecated.
    pub deprecation_warning: Option<String>,
    /// The whole CRD (for its OpenAPI schema).
    pub crd: Arc<Value>,
    ssa: OnceLock<rkube_registry::ssa::TypeRef>,
    cel: OnceLock<Option<Arc<rkube_registry::crd::cel::CompiledRules>>>,
}

impl CustomResource {
    /// The merge schema server-side apply uses for this version.
    pub fn ssa_schema(&self) -> rkube_registry::ssa::TypeRef {
        self.ssa
            .get_or_init(|| match &self.schema {
                Some(s) => rkube_registry::ssa::schema_from_openapi_v3(s),
                None => rkube_registry::ssa::deduced(),
            })
            .clone()
    }

    /// The version's compiled `x-kubernetes-validations` (None: none, or they did not compile).
    pub fn cel_rules(&self) -> Option<Arc<rkube_registry::crd::cel::CompiledRules>> {
        self.cel
            .get_or_init(|| {
                let schema = self.schema.as_ref()?;
                rkube_registry::crd::cel::compile_rules(schema).ok().filter(|r| !r.is_empty()).map(Arc::new)
            })
            .clone()
    }

    /// Prune, default and validate a custom resource as upstream's
    /// customresource strategy does; the pruned fields are returned (they
    /// are "unknown fields" for field validation).
    pub fn admit(&self, obj: &mut Value, old: Option<&Value>, status_only: bool) -> (Vec<String>, Vec<FieldError>) {
        let info = self.info;
        let mut pruned = Vec::new();
        let mut errs = Vec::new();
        if let Some(schema) = &self.schema {
            pruned = rkube_registry::crd::prune(schema, obj);
            rkube_registry::crd::apply_defaults(schema, obj);
            if status_only {
                if let (Some(st), Some(v)) = (rkube_registry::crd::status_schema(schema), obj.get("status")) {
                    rkube_registry::crd::validate_at(st, v, "status", &mut errs);
                }
            } else {
                errs.extend(rkube_registry::crd::validate_cr(schema, obj));
            }
        }
        if !status_only {
            errs.extend(rkube_registry::crd::validate_cr_type_meta(obj, info.group, info.version, info.kind));
            errs.extend(rkube_registry::crd::validate_cr_metadata(obj, info.namespaced));
            if let Some(scale) = &self.scale {
                errs.extend(rkube_registry::crd::validate_cr_scale(obj, scale));
            }
        }
        if errs.is_empty()
            && let Some(rules) = self.cel_rules()
        {
            errs.extend(rkube_registry::crd::cel::validate(&rules, obj, old));
        }
        (pruned, errs)
    }
}

/// The served custom resources, rebuilt whenever a CRD changes.
#[derive(Debug, Default)]
pub struct CrdTable {
    by_path: HashMap<(String, String, String), Arc<CustomResource>>,
    infos: Vec<&'static ResourceInfo>,
    /// Revision of the cache this table was built at.
    pub revision: i64,
}

impl CrdTable {
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<CustomResource>> {
        self.by_path.get(&(group.to_string(), version.to_string(), plural.to_string()))
    }
    pub fn infos(&self) -> &[&'static ResourceInfo] {
        &self.infos
    }
    pub fn by_info(&self, info: &ResourceInfo) -> Option<&Arc<CustomResource>> {
        self.get(info.group, info.version, info.resource)
    }
}

/// Leaked resource descriptions, reused when a CRD is rebuilt unchanged.
static LEAKED: Mutex<BTreeMap<String, &'static ResourceInfo>> = Mutex::new(BTreeMap::new());

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_list(v: Option<&Value>) -> &'static [&'static str] {
    let items: Vec<&'static str> =
        v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(leak).collect()).unwrap_or_default();
    Box::leak(items.into_boxed_slice())
}

const VERBS: &[&str] = &["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// The `ResourceInfo` of one served version (interned by its description).
fn resource_info(crd: &Value, version: &Value, storage_version: &str) -> &'static ResourceInfo {
    let spec = &crd["spec"];
    let names = crd.pointer("/status/acceptedNames").filter(|n| n.get("plural").is_some()).unwrap_or(&spec["names"]);
    let group = spec["group"].as_str().unwrap_or("");
    let vname = version["name"].as_str().unwrap_or("");
    let kind = names["kind"].as_str().unwrap_or("");
    let plural = names["plural"].as_str().unwrap_or("");
    let singular = names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_ascii_lowercase());
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let subs = version.get("subresources");
    let fingerprint = json!([
        group,
        vname,
        kind,
        plural,
        singular,
        namespaced,
        names.get("shortNames"),
        names.get("categories"),
        subs.and_then(|s| s.get("status")).is_some(),
        subs.and_then(|s| s.get("scale")).is_some(),
        storage_version
    ]);
    let key = fingerprint.to_string();
    let mut leaked = LEAKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(info) = leaked.get(&key) {
        return info;
    }
    let mut subresources = Vec::new();
    if subs.and_then(|s| s.get("status")).is_some() {
        subresources.push(SubresourceInfo {
            name: "status",
            group: leak(group),
            version: leak(vname),
            kind: leak(kind),
            verbs: SUB_VERBS,
        });
    }
    if subs.and_then(|s| s.get("scale")).is_some() {
        subresources.push(SubresourceInfo {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: SUB_VERBS,
        });
    }
    let group = leak(group);
    let plural = leak(plural);
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group,
        version: leak(vname),
        resource: plural,
        kind: leak(kind),
        singular: leak(&singular),
        namespaced,
        short_names: leak_list(names.get("shortNames")),
        categories: leak_list(names.get("categories")),
        verbs: VERBS,
        subresources: Box::leak(subresources.into_boxed_slice()),
        storage_group: group,
        storage_resource: plural,
        storage_version: leak(storage_version),
    }));
    leaked.insert(key, info);
    info
}

fn condition_true(crd: &Value, kind: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// Build the served table from every stored CRD (only Established ones serve).
pub fn build_table(crds: &[Arc<Value>], revision: i64) -> CrdTable {
    let mut table = CrdTable { revision, ..Default::default() };
    for crd in crds {
        if !condition_true(crd, "Established") || objects::is_deleting(crd) && !condition_true(crd, "Established") {
            continue;
        }
        let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
        let storage =
            versions.iter().find(|v| v["storage"] == true).and_then(|v| v["name"].as_str()).unwrap_or("").to_string();
        for v in versions.iter().filter(|v| v["served"] == true) {
            let info = resource_info(crd, v, &storage);
            let deprecation_warning = (v["deprecated"] == true).then(|| {
                v["deprecationWarning"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}/{} {} is deprecated", info.group, info.version, info.kind))
            });
            let cr = CustomResource {
                info,
                crd_name: objects::name(crd).to_string(),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                status_subresource: v.pointer("/subresources/status").is_some(),
                scale: v.pointer("/subresources/scale").cloned(),
                printer_columns: v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default(),
                deprecation_warning,
                crd: crd.clone(),
                ssa: OnceLock::new(),
                cel: OnceLock::new(),
            };
            table
                .by_path
                .insert((info.group.to_string(), info.version.to_string(), info.resource.to_string()), Arc::new(cr));
            table.infos.push(info);
        }
    }
    table
}

/// The conditions and accepted names a CRD should have, given the others.
fn desired_status(crd: &Value, all: &[Arc<Value>]) -> Value {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let me = objects::name(crd);
    let mut taken_plurals: HashSet<String> = HashSet::new();
    let mut taken_kinds: HashSet<String> = HashSet::new();
    let mut taken_short: HashSet<String> = HashSet::new();
    for r in rkube_registry::resources::all().iter().filter(|r| r.group == group) {
        taken_plurals.insert(r.resource.to_string());
        taken_kinds.insert(r.kind.to_string());
        taken_short.extend(r.short_names.iter().map(|s| s.to_string()));
    }
    for other in all.iter().filter(|o| objects::name(o) != me && o["spec"]["group"] == group) {
        // Only names another CRD already had accepted block this one.
        let Some(acc) = other.pointer("/status/acceptedNames").filter(|a| a.get("plural").is_some()) else { continue };
        taken_plurals.extend(acc["plural"].as_str().map(str::to_string));
        taken_plurals.extend(acc["singular"].as_str().map(str::to_string));
        taken_kinds.extend(acc["kind"].as_str().map(str::to_string));
        taken_kinds.extend(acc["listKind"].as_str().map(str::to_string));
        if let Some(s) = acc["shortNames"].as_array() {
            taken_short.extend(s.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    let plural = names["plural"].as_str().unwrap_or("");
    let kind = names["kind"].as_str().unwrap_or("");
    let mut problem: Option<(&str, String)> = None;
    if taken_plurals.contains(plural) {
        problem = Some(("PluralConflict", format!("{plural:?} is already in use")));
    } else if names["singular"].as_str().is_some_and(|s| taken_plurals.contains(s)) {
        problem =
            Some(("SingularConflict", format!("{:?} is already in use", names["singular"].as_str().unwrap_or(""))));
    } else if taken_kinds.contains(kind) {
        problem = Some(("KindConflict", format!("{kind:?} is already in use")));
    } else if let Some(s) = names["shortNames"].as_array().and_then(|a| {
        a.iter().filter_map(Value::as_str).find(|s| taken_short.contains(*s) || taken_plurals.contains(*s))
    }) {
        problem = Some(("ShortNamesConflict", format!("{s:?} is already in use")));
    }
    let now = objects::now_rfc3339();
    let old_conds = crd.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let cond = |t: &str, status: &str, reason: &str, msg: &str| -> Value {
        let since = old_conds
            .iter()
            .find(|c| c["type"] == t && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone());
        json!({"type": t, "status": status, "reason": reason, "message": msg, "lastTransitionTime": since})
    };
    let mut conditions = Vec::new();
    let mut accepted = crd.pointer("/status/acceptedNames").cloned().unwrap_or(json!({}));
    match &problem {
        Some((reason, msg)) => {
            conditions.push(cond("NamesAccepted", "False", reason, msg));
            if !condition_true(crd, "Established") {
                conditions.push(cond("Established", "False", "NotAccepted", "not all names are accepted"));
            } else {
                conditions.push(cond(
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                ));
            }
        }
        None => {
            let mut acc = names.clone();
            if acc.get("singular").is_none() {
                acc["singular"] = json!(kind.to_ascii_lowercase());
            }
            if acc.get("listKind").is_none() {
                acc["listKind"] = json!(format!("{kind}List"));
            }
            accepted = acc;
            conditions.push(cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"));
            conditions.push(cond(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
        }
    }
    if objects::is_deleting(crd) {
        conditions.push(cond(
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    let mut stored: Vec<Value> =
        crd.pointer("/status/storedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(sv) = spec["versions"].as_array().and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        && !stored.contains(&sv["name"])
    {
        stored.push(sv["name"].clone());
    }
    json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored})
}

fn crd_info() -> &'static ResourceInfo {
    rkube_registry::resources::lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("customresourcedefinitions is a built-in resource")
}

fn same_status(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

impl Server {
    /// The custom resource behind a served resource, if it is one.
    pub fn custom(&self, info: &ResourceInfo) -> Option<Arc<CustomResource>> {
        if rkube_registry::resources::lookup(info.group, info.version, info.resource).is_some() {
            return None;
        }
        self.crd_table().by_info(info).cloned()
    }

    /// Bring every CRD's status up to date, rebuild the served table, and
    /// clean up deleted CRDs. Idempotent; called on every CRD change.
    pub async fn sync_crds(&self) {
        let rev = self.cache.revision();
        let Ok((objs, _)) = self.cache.list(CRD_PREFIX, 0).await else { return };
        let crds: Vec<Arc<Value>> = objs.iter().map(|o| Arc::new(o.object())).collect();
        let info = crd_info();
        let path = ResourcePath { subresource: Some("status".into()), ..Default::default() };
        // Serve what the new statuses say before writing them: a client that sees a CRD
        // Established must find its resources served (as upstream, which marks it only then).
        let mut next = Vec::with_capacity(crds.len());
        let mut writes = Vec::new();
        for crd in &crds {
            let want = desired_status(crd, &crds);
            if same_status(crd.get("status").unwrap_or(&Value::Null), &want) {
                next.push(crd.clone());
            } else {
                let mut new = (**crd).clone();
                new["status"] = want;
                let new = Arc::new(new);
                writes.push(new.clone());
                next.push(new);
            }
        }
        self.set_crd_table(build_table(&next, rev));
        for new in writes {
            let name = objects::name(&new).to_string();
            let change = Change::Replace((*new).clone());
            if let Err(e) = self.update_object(info, &path, None, &name, change, &WriteOptions::internal(MANAGER)).await
            {
                tracing::debug!(crd = %name, "CRD status update: {}", e.message);
            }
        }
        for crd in &crds {
            if objects::is_deleting(crd) {
                self.cleanup_crd(crd).await;
            }
        }
    }

    /// Delete a CRD's custom resources; release its finalizer once none are left.
    async fn cleanup_crd(&self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or("");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
        if group.is_empty() || plural.is_empty() {
            return;
        }
        let prefix = format!("/registry/{group}/{plural}/");
        let remaining = match self.cache.list(&prefix, 0).await {
            Ok((objs, _)) => objs,
            Err(_) => return,
        };
        let table = self.crd_table();
        let info = table.infos().iter().find(|i| i.group == group && i.resource == plural).copied();
        if let Some(info) = info {
            for o in &remaining {
                let ns = o.namespace().map(str::to_string);
                let name = o.name().to_string();
                let _ =
                    self.delete_object(info, &ResourcePath::default(), ns.as_deref(), &name, &Default::default()).await;
            }
        }
        let left = self.cache.list(&prefix, 0).await.map(|(o, _)| o.len()).unwrap_or(1);
        if left == 0 && objects::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
            let mut new = crd.clone();
            let fins: Vec<String> = objects::finalizers(crd).into_iter().filter(|f| f != CLEANUP_FINALIZER).collect();
            new["metadata"]["finalizers"] = json!(fins);
            let name = objects::name(crd).to_string();
            let _ = self
                .update_object(
                    crd_info(),
                    &ResourcePath::default(),
                    None,
                    &name,
                    Change::Replace(new),
                    &WriteOptions::internal(MANAGER),
                )
                .await;
        }
    }

    /// Follow CRD changes for as long as the server lives.
    pub fn spawn_crd_controller(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let server = Arc::downgrade(self);
        let watcher = self.cache.watch(CRD_PREFIX, self.cache.revision());
        tokio::spawn(async move {
            let Ok(mut w) = watcher else { return };
            loop {
                let Some(s) = server.upgrade() else { return };
                s.sync_crds().await;
                drop(s);
                // Periodic resync too: cleanup of deleted CRDs waits on their resources.
                match tokio::time::timeout(std::time::Duration::from_secs(2), w.next()).await {
                    Ok(Some(_)) | Err(_) => {}
                    Ok(None) => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str) -> Value {
        json!({"metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": plural, "singular": name, "kind": kind, "shortNames": ["fo"]},
                "versions": [{"name": "v1", "served": true, "storage": true}]}})
    }

    #[test]
    fn names_are_accepted_then_conflicts_reported() {
        let mut a = crd("foo", "foos", "Foo");
        a["status"] = desired_status(&a, &[]);
        assert_eq!(a["status"]["conditions"][0]["reason"], "NoConflicts");
        assert_eq!(a["status"]["acceptedNames"]["listKind"], "FooList");
        assert_eq!(a["status"]["storedVersions"], json!(["v1"]));
        let b = crd("bar", "bars", "Foo");
        let s = desired_status(&b, &[Arc::new(a.clone())]);
        assert_eq!(s["conditions"][0]["reason"], "KindConflict");
        assert_eq!(s["conditions"][0]["message"], "\"Foo\" is already in use");
        assert_eq!(s["conditions"][1]["status"], "False");
        let table = build_table(&[Arc::new(a)], 1);
        let cr = table.get("example.com", "v1", "foos").unwrap();
        assert_eq!(cr.info.kind, "Foo");
        assert!(cr.info.namespaced);
        assert!(table.get("example.com", "v1", "bars").is_none());
    }
}
