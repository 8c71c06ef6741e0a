//! The REST verbs on one resource: get, list, create, update, patch, delete,
//! deletecollection (watch is in [`crate::watch`], subresources in
//! [`crate::subresources`]). Objects are JSON values; kind knowledge comes
//! from rkube-registry, storage from the watch cache and the store.
//!
//! Reads of single objects and every write go to the store; lists without
//! pagination are served by the watch cache once it has caught up with the
//! store's current revision (a consistent read, as upstream's
//! ConsistentListFromCache).

use crate::http::{self, Body, Representation};
use crate::objects::{self, meta, meta_mut, meta_str};
use crate::request::{Query, ResourcePath, Verb};
use crate::server::{Server, User, store_error};
use ::http::{Response, StatusCode, request::Parts};
use base64::Engine;
use bytes::Bytes;
use rkube_registry::fieldvalidation::{self, Directive};
use rkube_registry::resources::ResourceInfo;
use rkube_registry::selectors::{FieldSelector, LabelSelector};
use rkube_registry::ssa;
use rkube_registry::{ApiError, FieldError, convert, defaults, printers, validation};
use rkube_storage::{KeyValue, RangeRequest, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;

/// One resource request, parsed.
pub struct Req {
    pub info: &'static ResourceInfo,
    pub path: ResourcePath,
    pub query: Query,
    pub parts: Parts,
    pub body: Bytes,
    pub user: User,
    pub verb: Verb,
}

impl Req {
    pub fn ns(&self) -> Option<&str> {
        if self.info.namespaced { self.path.namespace.as_deref() } else { None }
    }
    pub fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }
}

pub async fn dispatch(server: Arc<Server>, req: Req) -> Result<Response<Body>, ApiError> {
    // A deprecated version of a custom resource warns on every request.
    let deprecated = server.custom(req.info).and_then(|cr| cr.deprecation_warning.clone());
    let resp = dispatch_verb(server, req).await;
    match deprecated {
        Some(w) => resp.map(|r| with_warnings(r, vec![w])),
        None => resp,
    }
}

async fn dispatch_verb(server: Arc<Server>, req: Req) -> Result<Response<Body>, ApiError> {
    if req.info.group == crate::metrics::GROUP {
        return server.metrics(&req).await;
    }
    if matches!(req.info.group, "authentication.k8s.io" | "authorization.k8s.io") {
        return server.review(&req).await;
    }
    if req.path.subresource.is_some() {
        return crate::subresources::dispatch(server, req).await;
    }
    let repr = http::negotiate(&req.parts.headers)?;
    match req.verb {
        Verb::Get => {
            let obj = server.get_object(req.info, &req.path, req.ns(), req.name(), &req.query).await?;
            Ok(respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query))
        }
        Verb::List => server.list(&req, repr).await,
        Verb::Watch => crate::watch::watch(server, &req, repr).await,
        Verb::Create if req.info.group.is_empty() && req.info.resource == "bindings" => {
            crate::subresources::bind(&server, &req, "", req.query.dry_run()?).await
        }
        Verb::Create => {
            let mut opts = WriteOptions::from_req(&req, "CreateOptions")?;
            opts.body_problems = decode_problems(&req);
            let obj = decode_body(&req)?;
            let obj = server.create_object(req.info, &req.path, req.ns(), obj, &opts).await?;
            let resp = respond_object(&server, req.info, StatusCode::CREATED, &obj, repr, &req.query);
            Ok(with_warnings(resp, opts.take_warnings()))
        }
        Verb::Update => {
            let mut opts = WriteOptions::from_req(&req, "UpdateOptions")?;
            opts.body_problems = decode_problems(&req);
            let obj = decode_body(&req)?;
            let obj =
                server.update_object(req.info, &req.path, req.ns(), req.name(), Change::Replace(obj), &opts).await?;
            let resp = respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query);
            Ok(with_warnings(resp, opts.take_warnings()))
        }
        Verb::Patch => {
            let mut opts = WriteOptions::from_req(&req, "PatchOptions")?;
            let patch = parse_patch(&req, &mut opts)?;
            let (obj, created) = server.patch_object(req.info, &req.path, req.ns(), req.name(), patch, &opts).await?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            let resp = respond_object(&server, req.info, code, &obj, repr, &req.query);
            Ok(with_warnings(resp, opts.take_warnings()))
        }
        Verb::Delete => {
            let opts = DeleteOptions::parse(&req)?;
            let (obj, gone) = server.delete_object(req.info, &req.path, req.ns(), req.name(), &opts).await?;
            if gone && !req.info.delete_returns_object() {
                // upstream answers most immediate deletes with a Status
                let details = json!({
                    "name": req.name(),
                    "group": req.info.group,
                    "kind": req.info.resource,
                    "uid": meta_str(&obj, "uid").unwrap_or(""),
                });
                return Ok(http::json(StatusCode::OK, &rkube_registry::status::success_status(Some(details))));
            }
            Ok(respond_object(&server, req.info, StatusCode::OK, &obj, repr, &req.query))
        }
        Verb::DeleteCollection => server.delete_collection(&req).await,
    }
}

pub(crate) fn decode_body(req: &Req) -> Result<Value, ApiError> {
    let ct = http::content_type(&req.parts.headers);
    http::decode_object(&ct, &req.body)
}

/// How an update changes the stored object.
pub enum Change {
    /// PUT: the whole new object.
    Replace(Value),
    /// PATCH: applied to the current object on every try.
    JsonPatch(Value),
    MergePatch(Value),
    StrategicMergePatch(Value),
    /// Server-side apply: the applied configuration, and `force`.
    Apply(Value, bool),
}

pub(crate) fn parse_patch(req: &Req, opts: &mut WriteOptions) -> Result<Change, ApiError> {
    let ct = http::content_type(&req.parts.headers);
    let accepted = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let parse = |b: &[u8]| -> Result<Value, ApiError> { serde_json::from_slice(b).map_err(|e| http::json_error(&e)) };
    let force = req.query.opt_bool("force")?;
    if force.is_some() && ct != "application/apply-patch+yaml" {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[FieldError::forbidden("force", "may not be specified for non-apply patch")],
        ));
    }
    let duplicates = |b: &[u8]| -> Vec<String> {
        fieldvalidation::duplicate_fields_json(b).iter().map(|p| fieldvalidation::duplicate_message(p)).collect()
    };
    match ct.as_str() {
        "application/json-patch+json" => {
            let p = parse(&req.body)?;
            if !p.is_array() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                ));
            }
            opts.body_problems = fieldvalidation::json_patch_strict_errors(&req.body);
            Ok(Change::JsonPatch(p))
        }
        "application/merge-patch+json" => {
            opts.body_problems = duplicates(&req.body);
            Ok(Change::MergePatch(parse(&req.body)?))
        }
        "application/strategic-merge-patch+json" => {
            opts.body_problems = duplicates(&req.body);
            Ok(Change::StrategicMergePatch(parse(&req.body)?))
        }
        "application/apply-patch+yaml" => {
            if req.query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            opts.warn(fieldvalidation::check_apply(opts.validation, &req.body)?);
            let y: serde_yaml::Value = serde_yaml::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let v = serde_json::to_value(y).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::bad_request("the apply configuration must be an object"));
            }
            Ok(Change::Apply(v, force.unwrap_or(false)))
        }
        other => Err(http::unsupported_media(other, &accepted)),
    }
}

/// The object in the representation the client asked for.
pub(crate) fn respond_object(
    server: &Server,
    info: &ResourceInfo,
    status: StatusCode,
    obj: &Value,
    repr: Representation,
    query: &Query,
) -> Response<Body> {
    match repr {
        Representation::Object => http::json(status, obj),
        Representation::Table(v) => {
            let mut t = server.table(info, &[obj], include_object(query));
            t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
            http::json(status, &t)
        }
        Representation::PartialMetadata(v) => http::json(status, &partial_metadata(obj, v)),
    }
}

pub(crate) fn include_object(q: &Query) -> printers::IncludeObject {
    match q.get("includeObject") {
        Some("None") => printers::IncludeObject::None,
        Some("Object") => printers::IncludeObject::Object,
        _ => printers::IncludeObject::Metadata,
    }
}

pub(crate) fn partial_metadata(obj: &Value, v: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{v}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Options of a delete, from the query string and an optional DeleteOptions body.
#[derive(Clone, Default, Debug)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
    /// Who deletes (None: the apiserver itself); used by admission.
    pub user: Option<User>,
}

impl DeleteOptions {
    pub fn parse(req: &Req) -> Result<Self, ApiError> {
        let q = &req.query;
        let mut o = DeleteOptions {
            grace_period: q.i64("gracePeriodSeconds")?,
            propagation: q.get("propagationPolicy").filter(|s| !s.is_empty()).map(str::to_string),
            orphan_dependents: q.opt_bool("orphanDependents")?,
            dry_run: q.dry_run()?,
            user: Some(req.user.clone()),
            ..Default::default()
        };
        if !req.body.iter().all(u8::is_ascii_whitespace) {
            let b = decode_body(req)?;
            if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period = Some(g);
            }
            if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if let Some(p) = b.get("orphanDependents").and_then(Value::as_bool) {
                o.orphan_dependents = Some(p);
            }
            if let Some(pre) = b.get("preconditions") {
                o.precondition_uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
                o.precondition_rv = pre.get("resourceVersion").and_then(Value::as_str).map(str::to_string);
            }
            if let Some(d) = b.get("dryRun").and_then(Value::as_array) {
                o.dry_run |= d.iter().any(|x| x == "All");
            }
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    "",
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        json!(p),
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ));
            }
            if o.orphan_dependents.is_some() {
                return Err(ApiError::invalid(
                    "",
                    "DeleteOptions",
                    "",
                    &[FieldError::invalid(
                        "propagationPolicy",
                        json!(p),
                        "orphanDependents and deletionPropagation cannot be both set",
                    )],
                ));
            }
        }
        if let Some(g) = o.grace_period
            && g < 0
        {
            o.grace_period = Some(1);
        }
        Ok(o)
    }
}

/// How a write was asked for, beyond its body: dry run, the field manager that
/// will own what it changes, how unknown fields are treated, and the warnings it
/// collects for the response's `Warning` headers.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// `fieldManager`, or the manager named by the User-Agent.
    pub manager: String,
    pub validation: Directive,
    /// Problems found in the raw body (duplicate fields) before it was decoded.
    pub body_problems: Vec<String>,
    pub warnings: Arc<Mutex<Vec<String>>>,
    /// Who writes (None: the apiserver itself); RBAC writes are checked for escalation.
    pub user: Option<User>,
}

impl WriteOptions {
    /// Writes the apiserver makes itself (bootstrap, CRD status).
    pub fn internal(manager: &str) -> Self {
        Self {
            dry_run: false,
            manager: manager.to_string(),
            validation: Directive::Ignore,
            body_problems: Vec::new(),
            warnings: Default::default(),
            user: None,
        }
    }

    /// From a request's query (`dryRun`, `fieldManager`, `fieldValidation`) and User-Agent.
    pub fn from_req(req: &Req, options_kind: &str) -> Result<Self, ApiError> {
        let q = &req.query;
        let manager = match q.get("fieldManager") {
            Some(m) => {
                if m.chars().count() > 128 || m.chars().any(|c| c.is_control()) {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        options_kind,
                        "",
                        &[FieldError::invalid(
                            "fieldManager",
                            json!(m),
                            "must be less than 128 characters long and consist only of printable characters",
                        )],
                    ));
                }
                m.to_string()
            }
            None => {
                let ua = req.parts.headers.get(::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
                rkube_registry::ssa::manager_from_user_agent(ua)
            }
        };
        Ok(Self {
            dry_run: q.dry_run()?,
            manager,
            validation: Directive::parse_for(q.get("fieldValidation"), options_kind)?,
            body_problems: Vec::new(),
            warnings: Default::default(),
            user: Some(req.user.clone()),
        })
    }

    pub fn warn(&self, w: impl IntoIterator<Item = String>) {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).extend(w);
    }

    /// The warnings collected so far (taken: a second call returns none).
    pub fn warnings(&self) -> Vec<String> {
        self.take_warnings()
    }

    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Add `Warning: 299 - "..."` headers, as upstream's warning recorder does.
pub(crate) fn with_warnings(mut resp: Response<Body>, warnings: Vec<String>) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(&w).unwrap_or_default());
        if let Ok(v) = ::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(::http::header::WARNING, v);
        }
    }
    resp
}

/// Unknown and duplicate fields of a create or update body (JSON or YAML).
fn decode_problems(req: &Req) -> Vec<String> {
    let info = req.info;
    let ct = http::content_type(&req.parts.headers);
    match ct.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let mut errs: Vec<String> = fieldvalidation::yaml_strict_error(&req.body).into_iter().collect();
            if let Ok(v) = serde_yaml::from_slice::<serde_yaml::Value>(&req.body)
                && let Ok(v) = serde_json::to_value(v)
            {
                errs.extend(
                    fieldvalidation::unknown_fields(info.group, info.version, info.kind, &v)
                        .iter()
                        .map(|p| fieldvalidation::unknown_message(p)),
                );
            }
            errs
        }
        "application/json" | "" => fieldvalidation::strict_errors_json(info.group, info.version, info.kind, &req.body),
        _ => Vec::new(),
    }
}

/// A continue token: the revision of the first page and where to resume.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let t = ContinueToken { v: "meta.k8s.io/v1".into(), rv, start: start.to_string() };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.rv <= 0 || t.start.contains("..") || t.start.starts_with('/') {
        return Err(bad());
    }
    Ok(t)
}

/// Parse `resourceVersion` as a revision; "" and "0" have their own meanings.
pub(crate) fn parse_rv(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid value: {s:?}: invalid resource version")))
}

pub(crate) struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(req: &Req) -> Result<Self, ApiError> {
        let mut fields = req.query.str_or_empty("fieldSelector").to_string();
        // GET /pods/x?watch=1 and the legacy /watch/.../x paths select one name.
        if let Some(n) = &req.path.name {
            if !fields.is_empty() {
                fields.push(',');
            }
            fields.push_str(&format!("metadata.name={n}"));
        }
        Ok(Self {
            labels: LabelSelector::parse(req.query.str_or_empty("labelSelector"))?,
            fields: FieldSelector::parse(&fields, req.info.group, req.info.resource)?,
        })
    }
    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches_object(obj))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
    /// [`Self::matches`] for a watch-cache object: its selectable projection is parsed
    /// only when there is a selector.
    pub fn matches_cached(&self, obj: &rkube_storage::cache::CachedObject) -> bool {
        self.is_empty() || self.matches(&obj.selectable())
    }
}

/// Convert a stored object to the version a request is served in.
pub(crate) fn to_served(info: &ResourceInfo, obj: Value) -> Result<Value, ApiError> {
    if info.storage_group == info.group && info.storage_version == info.version {
        return Ok(obj);
    }
    convert::convert(obj, info.kind, info.storage_group, info.storage_version, info.group, info.version)
}

fn to_storage(info: &ResourceInfo, obj: Value) -> Result<Value, ApiError> {
    if info.storage_group == info.group && info.storage_version == info.version {
        return Ok(obj);
    }
    convert::convert(obj, info.kind, info.group, info.version, info.storage_group, info.storage_version)
}

/// Decode a stored value and set its resourceVersion.
pub(crate) fn decode_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object at {} is not valid JSON: {e}", kv.key)))?;
    objects::set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

fn namespace_path_info() -> &'static ResourceInfo {
    rkube_registry::resources::lookup("", "v1", "namespaces").expect("namespaces is a built-in resource")
}

impl Server {
    /// Current object from the store, in the served version.
    pub(crate) async fn get_object(
        &self,
        info: &'static ResourceInfo,
        _path: &ResourcePath,
        ns: Option<&str>,
        name: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let key = objects::key(info, ns, name);
        let obj = if query.get("resourceVersion") == Some("0") {
            self.cache.get(&key, 0).await.map_err(store_error)?.map(|c| c.object())
        } else {
            self.store.get(&key).await.map_err(store_error)?.map(|kv| decode_stored(&kv)).transpose()?
        };
        match obj {
            Some(o) => to_served(info, o),
            None => Err(ApiError::not_found(info.group, info.resource, name)),
        }
    }

    async fn list(&self, req: &Req, repr: Representation) -> Result<Response<Body>, ApiError> {
        let q = &req.query;
        let sel = Selectors::parse(req)?;
        let rv = q.str_or_empty("resourceVersion");
        let rv_match = q.str_or_empty("resourceVersionMatch");
        let limit = q.i64("limit")?.unwrap_or(0).max(0) as usize;
        let cont = q.str_or_empty("continue");
        if !rv_match.is_empty() && rv.is_empty() {
            return Err(ApiError::bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided"));
        }
        if !rv_match.is_empty() && !matches!(rv_match, "Exact" | "NotOlderThan") {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {rv_match:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if !cont.is_empty() && !rv.is_empty() && rv != "0" {
            return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
        }
        let prefix = objects::prefix(req.info, req.ns());
        let (items, revision, next) = if limit > 0 || !cont.is_empty() || rv_match == "Exact" {
            self.list_from_store(&prefix, &sel, rv, rv_match, limit, cont).await?
        } else {
            let min_rev = match rv {
                "" => self.store.current_revision().await.map_err(store_error)?,
                r => parse_rv(r)?,
            };
            let (objs, revision) = self.cache.list(&prefix, min_rev).await.map_err(store_error)?;
            let items: Vec<ListItem> =
                objs.into_iter().filter(|c| sel.matches_cached(c)).map(ListItem::Cached).collect();
            (items, revision, None)
        };
        self.write_list(req, repr, items, revision, next)
    }

    #[allow(clippy::too_many_arguments)]
    async fn list_from_store(
        &self,
        prefix: &str,
        sel: &Selectors,
        rv: &str,
        rv_match: &str,
        limit: usize,
        cont: &str,
    ) -> Result<(Vec<ListItem>, i64, Option<String>), ApiError> {
        let (mut revision, mut start) = if !cont.is_empty() {
            let t = decode_continue(cont)?;
            (t.rv, Some(format!("{prefix}{}", t.start)))
        } else if rv_match == "Exact" {
            (parse_rv(rv)?, None)
        } else {
            (0, None)
        };
        let batch = if limit == 0 { 0 } else { limit.max(if sel.is_empty() { limit } else { 100 }) };
        let mut items = Vec::new();
        loop {
            let res = self
                .store
                .range(RangeRequest { prefix: prefix.to_string(), start: start.clone(), revision, limit: batch })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if !cont.is_empty() => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                    other => store_error(other),
                })?;
            revision = res.revision;
            let n = res.kvs.len();
            for (i, kv) in res.kvs.into_iter().enumerate() {
                let obj = decode_stored(&kv)?;
                if sel.matches(&obj) {
                    items.push(ListItem::Owned(obj));
                    if limit > 0 && items.len() == limit {
                        let more = res.more || i + 1 < n;
                        let next =
                            more.then(|| encode_continue(revision, &format!("{}\u{0}", &kv.key[prefix.len()..])));
                        return Ok((items, revision, next));
                    }
                }
                start = Some(format!("{}\u{0}", kv.key));
            }
            if !res.more {
                return Ok((items, revision, None));
            }
        }
    }

    fn write_list(
        &self,
        req: &Req,
        repr: Representation,
        items: Vec<ListItem>,
        revision: i64,
        next: Option<String>,
    ) -> Result<Response<Body>, ApiError> {
        let info = req.info;
        let mut list_meta = json!({ "resourceVersion": revision.to_string() });
        if let Some(c) = &next {
            list_meta["continue"] = json!(c);
        }
        let same_version = info.storage_group == info.group && info.storage_version == info.version;
        match repr {
            Representation::Object if same_version => {
                // Splice the cached bytes: no object is serialised again.
                let mut out = Vec::with_capacity(items.iter().map(ListItem::len_hint).sum::<usize>() + 256);
                out.extend_from_slice(b"{\"apiVersion\":");
                out.extend_from_slice(&serde_json::to_vec(&info.api_version()).unwrap_or_default());
                out.extend_from_slice(b",\"items\":[");
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    it.write(&mut out);
                }
                out.extend_from_slice(b"],\"kind\":");
                out.extend_from_slice(&serde_json::to_vec(&format!("{}List", info.kind)).unwrap_or_default());
                out.extend_from_slice(b",\"metadata\":");
                out.extend_from_slice(&serde_json::to_vec(&list_meta).unwrap_or_default());
                out.push(b'}');
                Ok(http::json_bytes(StatusCode::OK, out))
            }
            Representation::Object => {
                let items: Vec<Value> =
                    items.into_iter().map(|i| to_served(info, i.into_value())).collect::<Result<_, _>>()?;
                Ok(http::json(
                    StatusCode::OK,
                    &json!({"apiVersion": info.api_version(), "kind": format!("{}List", info.kind), "metadata": list_meta, "items": items}),
                ))
            }
            Representation::Table(v) => {
                let values: Vec<Value> =
                    items.into_iter().map(|i| to_served(info, i.into_value())).collect::<Result<_, _>>()?;
                let refs: Vec<&Value> = values.iter().collect();
                let mut t = self.table(info, &refs, include_object(&req.query));
                t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
                t["metadata"] = list_meta;
                Ok(http::json(StatusCode::OK, &t))
            }
            Representation::PartialMetadata(v) => {
                let items: Vec<Value> = items.iter().map(|i| partial_metadata(&i.value(), v)).collect();
                Ok(http::json(
                    StatusCode::OK,
                    &json!({"apiVersion": format!("meta.k8s.io/{v}"), "kind": "PartialObjectMetadataList", "metadata": list_meta, "items": items}),
                ))
            }
        }
    }

    /// Namespace admission: the namespace must exist and not be terminating. Returns the
    /// namespace (Pod Security admission reads its labels).
    async fn check_namespace(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        let nsinfo = namespace_path_info();
        let key = objects::key(nsinfo, None, ns);
        match self.store.get(&key).await.map_err(store_error)? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(kv) => {
                let obj = decode_stored(&kv)?;
                if objects::is_deleting(&obj) || obj.pointer("/status/phase") == Some(&json!("Terminating")) {
                    Err(ApiError::forbidden(format!(
                        "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        rkube_registry::status::qualified(info.resource, info.group)
                    )))
                } else {
                    Ok(obj)
                }
            }
        }
    }

    /// Create an object: type checks, namespace admission, system metadata,
    /// defaults, kind hooks, validation, then the store.
    pub(crate) async fn create_object(
        &self,
        info: &'static ResourceInfo,
        _path: &ResourcePath,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        opts.warn(fieldvalidation::check_decode(opts.validation, info.kind, info.version, opts.body_problems.clone())?);
        self.create_tracked(info, ns, obj, opts, true).await
    }

    /// Create; `track` records the manager's ownership of every field (an
    /// apply has done that itself).
    async fn create_tracked(
        &self,
        info: &'static ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        track: bool,
    ) -> Result<Value, ApiError> {
        let dry_run = opts.dry_run;
        check_type(info, &mut obj)?;
        let m = meta_mut(&mut obj);
        if info.namespaced {
            let ns = ns.ok_or_else(crate::server::not_found_path)?;
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        let mut name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty()
            && let Some(g) = m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty())
        {
            name = objects::generate_name(g);
            m.insert("name".into(), json!(name));
        }
        if m.get("resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        m.remove("resourceVersion");
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(objects::now_rfc3339()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("selfLink");
        if objects::tracks_generation(info) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                info.group,
                info.kind,
                "",
                &[FieldError::required("metadata.name", "name or generateName is required")],
            ));
        }
        let ns_obj = match (info.namespaced, ns) {
            (true, Some(ns)) => Some(self.check_namespace(info, ns, &name).await?),
            _ => None,
        };
        if info.has_subresource("status") && info.resource != "nodes" {
            crate::admission::reset_status_on_create(info, &mut obj);
        }
        let custom = self.custom(info);
        let is_crd = (info.group, info.resource) == ("apiextensions.k8s.io", "customresourcedefinitions");
        match &custom {
            Some(cr) => self.admit_custom(cr, &mut obj, None, false, opts)?,
            None => {
                defaults::apply_defaults(info.group, info.version, info.kind, &mut obj);
                crate::admission::prepare_create(info, &mut obj);
            }
        }
        if is_crd {
            rkube_registry::crd::default_crd(&mut obj);
            rkube_registry::crd::prepare_for_create(&mut obj);
        }
        let target = crate::dynamic_admission::Target {
            info,
            subresource: None,
            namespace: ns,
            name: &name,
            operation: rkube_registry::admission::Operation::Create,
        };
        if self.admit_mutating(&target, &mut obj, None, opts).await? && custom.is_none() {
            defaults::apply_defaults(info.group, info.version, info.kind, &mut obj);
        }
        if track {
            let now = objects::now_rfc3339();
            let api_version = info.api_version();
            let op = operation(opts, &api_version, &now, info, false);
            ssa::track_update(&self.ssa_schema(info), None, &mut obj, &op);
        }
        if info.group == "rbac.authorization.k8s.io"
            && let Some(u) = &opts.user
        {
            self.check_rbac_write(u, ns, &obj, info.kind).await?;
        }
        if let Some(ns) = ns {
            self.pod_security(info, ns, ns_obj.as_ref(), &name, &obj, opts).await?;
            self.limits_and_quota(info, ns, &mut obj, dry_run).await?;
        }
        let mut errs = if custom.is_some() {
            Vec::new()
        } else {
            validation::validate_create(info.group, info.version, info.kind, info.resource, &obj)
        };
        if is_crd {
            errs.extend(rkube_registry::crd::validate_crd(&obj, None));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(info.group, info.kind, &name, &errs));
        }
        self.admit_write(&target, &obj, None, opts).await?;
        let release = crate::services::allocate_on_create(self, info, &mut obj, dry_run).await?;
        let stored = to_storage(info, obj)?;
        if dry_run {
            return to_served(info, stored);
        }
        let key = objects::key(info, ns, &name);
        let bytes = Bytes::from(objects::encode_for_storage(&stored));
        match self.store.create(&key, bytes).await {
            Ok(rev) => {
                let mut out = stored;
                objects::set_resource_version(&mut out, rev);
                to_served(info, out)
            }
            Err(e) => {
                release.release(self).await;
                Err(match e {
                    StoreError::AlreadyExists(_) => ApiError::already_exists(info.group, info.resource, &name),
                    other => store_error(other),
                })
            }
        }
    }

    /// Update an object by replacing or patching it, retrying on concurrent
    /// writes unless the client pinned a resourceVersion.
    pub(crate) async fn update_object(
        &self,
        info: &'static ResourceInfo,
        path: &ResourcePath,
        ns: Option<&str>,
        name: &str,
        change: Change,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let dry_run = opts.dry_run;
        if matches!(change, Change::Replace(_)) {
            let d = opts.validation;
            opts.warn(fieldvalidation::check_decode(d, info.kind, info.version, opts.body_problems.clone())?);
        }
        let status_only = path.subresource.as_deref() == Some("status");
        let schema = self.ssa_schema(info);
        let api_version = info.api_version();
        let key = objects::key(info, ns, name);
        for _attempt in 0..16 {
            let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(info.group, info.resource, name));
            };
            let old = to_served(info, decode_stored(&kv)?)?;
            let now = objects::now_rfc3339();
            let op = operation(opts, &api_version, &now, info, status_only);
            let mut new = match &change {
                Change::Replace(v) => v.clone(),
                Change::Apply(v, force) => {
                    check_apply_target(info, v, name)?;
                    ssa::apply(&schema, Some(&old), v, &op, *force)?
                }
                Change::JsonPatch(p) => rkube_registry::patch::json_patch(&old, p)?,
                Change::MergePatch(p) => rkube_registry::patch::merge_patch(&old, p)?,
                Change::StrategicMergePatch(p) => {
                    let def = rkube_registry::patch::definition_for(info.group, info.version, info.kind).ok_or_else(
                        || {
                            http::unsupported_media(
                                "application/strategic-merge-patch+json",
                                &["application/json-patch+json", "application/merge-patch+json"],
                            )
                        },
                    )?;
                    rkube_registry::patch::strategic_merge_patch(&old, p, def)?
                }
            };
            if matches!(change, Change::JsonPatch(_) | Change::MergePatch(_) | Change::StrategicMergePatch(_)) {
                let mut errs = opts.body_problems.clone();
                errs.extend(
                    fieldvalidation::unknown_fields(info.group, info.version, info.kind, &new)
                        .iter()
                        .map(|p| fieldvalidation::unknown_message(p)),
                );
                if !errs.is_empty() {
                    opts.warn(fieldvalidation::check_patch(opts.validation, &new.to_string(), errs)?);
                }
            }
            if matches!(change, Change::Replace(_)) {
                check_type(info, &mut new)?;
                let body_name = objects::name(&new);
                if body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
            } else if objects::name(&new) != name {
                return Err(ApiError::invalid(
                    info.group,
                    info.kind,
                    name,
                    &[FieldError::invalid("metadata.name", json!(objects::name(&new)), "field is immutable")],
                ));
            }
            // A resourceVersion the client sent is a precondition: in a PUT body, in a
            // merge patch, or set by a JSON patch. Otherwise concurrent writes are retried.
            let current = kv.mod_revision.to_string();
            let pinned = match &change {
                Change::Replace(_) => meta_str(&new, "resourceVersion"),
                Change::MergePatch(p) | Change::StrategicMergePatch(p) => {
                    p.pointer("/metadata/resourceVersion").and_then(Value::as_str)
                }
                Change::JsonPatch(_) => meta_str(&new, "resourceVersion").filter(|rv| *rv != current),
                Change::Apply(v, _) => v.pointer("/metadata/resourceVersion").and_then(Value::as_str),
            }
            .filter(|s| !s.is_empty())
            .map(str::to_string);
            if let Some(rv) = &pinned
                && *rv != current
            {
                return Err(ApiError::stale(info.group, info.resource, name));
            }
            // Without a resourceVersion a PUT updates whatever is stored (built-in kinds
            // allow unconditional updates; custom resources do not, as upstream).
            if pinned.is_none() {
                if self.custom(info).is_some() && matches!(change, Change::Replace(_)) && !status_only {
                    return Err(ApiError::invalid(
                        info.group,
                        info.kind,
                        name,
                        &[FieldError::invalid(
                            "metadata.resourceVersion",
                            json!("0x0"),
                            "must be specified for an update",
                        )],
                    ));
                }
                meta_mut(&mut new).insert("resourceVersion".into(), json!(current));
            }
            prepare_update(info, &mut new, &old, status_only)?;
            let custom = self.custom(info);
            let is_crd = (info.group, info.resource) == ("apiextensions.k8s.io", "customresourcedefinitions");
            match &custom {
                Some(cr) => self.admit_custom(cr, &mut new, Some(&old), status_only, opts)?,
                None if !status_only => defaults::apply_defaults(info.group, info.version, info.kind, &mut new),
                None => {}
            }
            if is_crd && !status_only {
                rkube_registry::crd::default_crd(&mut new);
                rkube_registry::crd::prepare_for_update(&mut new, &old);
            }
            crate::services::keep_allocations(info, &mut new, &old);
            let target = crate::dynamic_admission::Target {
                info,
                subresource: path.subresource.as_deref(),
                namespace: ns,
                name,
                operation: rkube_registry::admission::Operation::Update,
            };
            if self.admit_mutating(&target, &mut new, Some(&old), opts).await? && custom.is_none() && !status_only {
                defaults::apply_defaults(info.group, info.version, info.kind, &mut new);
            }
            if !matches!(change, Change::Apply(..)) {
                ssa::track_update(&schema, Some(&old), &mut new, &op);
            }
            // Roles and bindings whose grants change are checked for escalation.
            let grants_changed = ["rules", "roleRef", "subjects"].iter().any(|f| new.get(*f) != old.get(*f));
            if info.group == "rbac.authorization.k8s.io"
                && grants_changed
                && let Some(u) = &opts.user
            {
                self.check_rbac_write(u, ns, &new, info.kind).await?;
            }
            let mut errs = match (&custom, status_only) {
                (Some(_), _) => Vec::new(),
                (None, true) => {
                    validation::validate_status_update(info.group, info.version, info.kind, info.resource, &new, &old)
                }
                (None, false) => {
                    validation::validate_update(info.group, info.version, info.kind, info.resource, &new, &old)
                }
            };
            if is_crd {
                errs.extend(if status_only {
                    rkube_registry::crd::validate_crd_status(&new)
                } else {
                    rkube_registry::crd::validate_crd(&new, Some(&old))
                });
            }
            if !errs.is_empty() {
                return Err(ApiError::invalid(info.group, info.kind, name, &errs));
            }
            self.admit_write(&target, &new, Some(&old), opts).await?;
            // Last finalizer gone from an object whose deletion waits for nothing else
            // (grace period 0, as upstream's ShouldDeleteDuringUpdate): it goes away now.
            // A pod still in its grace period stays until its kubelet deletes it.
            let old_grace = meta(&old).and_then(|m| m.get("deletionGracePeriodSeconds")).and_then(Value::as_i64);
            if objects::is_deleting(&old)
                && old_grace == Some(0)
                && objects::finalizers(&new).is_empty()
                && !holds_namespace(info, &new)
            {
                if dry_run {
                    return Ok(new);
                }
                return match self.store.delete(&key, kv.mod_revision).await {
                    Ok((rev, _)) => {
                        crate::services::release_on_delete(self, info, &new).await;
                        objects::set_resource_version(&mut new, rev);
                        Ok(new)
                    }
                    Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                    Err(StoreError::Conflict { .. }) => Err(ApiError::stale(info.group, info.resource, name)),
                    Err(StoreError::NotFound(_)) => Err(ApiError::not_found(info.group, info.resource, name)),
                    Err(e) => Err(store_error(e)),
                };
            }
            let release = crate::services::reallocate_on_update(self, info, &mut new, &old, dry_run).await?;
            let mut stored = to_storage(info, new)?;
            if dry_run {
                return to_served(info, stored);
            }
            // Stored without a resourceVersion (each way out below sets it): taken out here, so
            // that encoding need not copy the object to leave it out.
            if let Some(m) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let bytes = Bytes::from(objects::encode_for_storage(&stored));
            if bytes == kv.value {
                // Nothing changed: no write, no new resourceVersion (as upstream's GuaranteedUpdate).
                release.rollback(self).await;
                let mut out = stored;
                objects::set_resource_version(&mut out, kv.mod_revision);
                return to_served(info, out);
            }
            match self.store.update(&key, bytes, kv.mod_revision).await {
                Ok(rev) => {
                    release.commit(self).await;
                    let mut out = stored;
                    objects::set_resource_version(&mut out, rev);
                    return to_served(info, out);
                }
                Err(StoreError::Conflict { .. }) => {
                    release.rollback(self).await;
                    if pinned.is_some() {
                        return Err(ApiError::stale(info.group, info.resource, name));
                    }
                }
                Err(StoreError::NotFound(_)) => {
                    release.rollback(self).await;
                    return Err(ApiError::not_found(info.group, info.resource, name));
                }
                Err(e) => {
                    release.rollback(self).await;
                    return Err(store_error(e));
                }
            }
        }
        Err(ApiError::conflict(info.group, info.resource, name, "too many concurrent updates, please retry"))
    }

    /// PATCH: an update, except that an apply of a missing object creates it.
    /// Returns the object and whether it was created.
    pub(crate) async fn patch_object(
        &self,
        info: &'static ResourceInfo,
        path: &ResourcePath,
        ns: Option<&str>,
        name: &str,
        change: Change,
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        if let Change::Apply(applied, force) = &change {
            let key = objects::key(info, ns, name);
            if path.subresource.is_none() && self.store.get(&key).await.map_err(store_error)?.is_none() {
                check_apply_target(info, applied, name)?;
                let now = objects::now_rfc3339();
                let api_version = info.api_version();
                let op = operation(opts, &api_version, &now, info, false);
                let mut obj = ssa::apply(&self.ssa_schema(info), None, applied, &op, *force)?;
                if let (true, Some(ns)) = (info.namespaced, ns) {
                    objects::meta_mut(&mut obj).insert("namespace".into(), json!(ns));
                }
                return match self.create_tracked(info, ns, obj, opts, false).await {
                    Ok(o) => Ok((o, true)),
                    // Created meanwhile by someone else: apply to it instead.
                    Err(e) if e.code == 409 && e.reason == rkube_registry::Reason::AlreadyExists => {
                        self.update_object(info, path, ns, name, change, opts).await.map(|o| (o, false))
                    }
                    Err(e) => Err(e),
                };
            }
        }
        self.update_object(info, path, ns, name, change, opts).await.map(|o| (o, false))
    }

    /// The merge schema server-side apply and managedFields use for a resource.
    pub(crate) fn ssa_schema(&self, info: &ResourceInfo) -> ssa::TypeRef {
        match self.custom(info) {
            Some(cr) => cr.ssa_schema(),
            None => ssa::schema_for(info.group, info.version, info.kind),
        }
    }

    /// LimitRanger (pod defaults and bounds) and ResourceQuota (403 when a
    /// quota would be exceeded; usage recorded in the quota's status first).
    async fn limits_and_quota(
        &self,
        info: &ResourceInfo,
        ns: &str,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let rev = self.store.current_revision().await.map_err(store_error)?;
        let list = |resource: &'static str| async move {
            self.cache
                .list(&format!("/registry/{resource}/{ns}/"), rev)
                .await
                .map(|(objs, _)| objs.iter().map(|o| o.object()).collect::<Vec<Value>>())
                .unwrap_or_default()
        };
        if info.group.is_empty() && info.resource == "pods" {
            let ranges = list("limitranges").await;
            if !ranges.is_empty() {
                rkube_registry::quota::apply_limit_ranges(&ranges, obj)?;
            }
        }
        let quotas = list("resourcequotas").await;
        if quotas.is_empty() {
            return Ok(());
        }
        let updates = rkube_registry::quota::admit(&quotas, info.group, info.resource, obj, None)?;
        if dry_run {
            return Ok(());
        }
        let rq =
            rkube_registry::resources::lookup("", "v1", "resourcequotas").ok_or_else(crate::server::not_found_path)?;
        let path = ResourcePath { subresource: Some("status".into()), ..Default::default() };
        for (name, used) in updates {
            if let Some(q) = quotas.iter().find(|q| objects::name(q) == name) {
                let mut q = q.clone();
                q["status"]["used"] = rkube_registry::quota::resource_list_to_value(&used);
                let w = WriteOptions::internal("resourcequota-admission");
                // A conflicting write means the quota moved on: the request must be tried again.
                self.update_object(rq, &path, Some(ns), &name, Change::Replace(q), &w).await?;
            }
        }
        Ok(())
    }

    /// Pod Security admission: the namespace's `pod-security.kubernetes.io/*`
    /// labels enforce a level on pods (403) and warn on pods and workloads.
    async fn pod_security(
        &self,
        info: &ResourceInfo,
        ns: &str,
        ns_obj: Option<&Value>,
        name: &str,
        obj: &Value,
        opts: &WriteOptions,
    ) -> Result<(), ApiError> {
        use rkube_registry::podsecurity::{self, Level};
        let is_pod = info.group.is_empty() && info.resource == "pods";
        let (meta, spec) = if is_pod {
            (obj.get("metadata").unwrap_or(&Value::Null), obj.get("spec").unwrap_or(&Value::Null))
        } else {
            match podsecurity::pod_template_spec(obj) {
                Some(t) => t,
                None => return Ok(()),
            }
        };
        let read;
        let nsobj = match ns_obj {
            Some(o) => o,
            None => {
                let Some(kv) = self.store.get(&format!("/registry/namespaces/{ns}")).await.map_err(store_error)? else {
                    return Ok(());
                };
                read = serde_json::from_slice::<Value>(&kv.value).unwrap_or(Value::Null);
                &read
            }
        };
        let policy = podsecurity::policy_from_labels(nsobj.pointer("/metadata/labels").and_then(Value::as_object));
        if policy.enforce != Level::Privileged {
            let failures = podsecurity::check(policy.enforce, meta, spec);
            if !failures.is_empty() {
                if is_pod {
                    return Err(podsecurity::forbidden_error(name, policy.enforce, &policy.enforce_version, &failures));
                }
                opts.warn([podsecurity::warning_message_versioned(policy.enforce, &policy.enforce_version, &failures)]);
            }
        }
        if policy.warn != Level::Privileged && policy.warn != policy.enforce {
            let failures = podsecurity::check(policy.warn, meta, spec);
            if !failures.is_empty() {
                opts.warn([podsecurity::warning_message_versioned(policy.warn, &policy.warn_version, &failures)]);
            }
        }
        Ok(())
    }

    /// A meta.k8s.io Table of objects: upstream's printers for built-in kinds, the
    /// CRD's additionalPrinterColumns for custom resources.
    pub(crate) fn table(&self, info: &ResourceInfo, objects: &[&Value], include: printers::IncludeObject) -> Value {
        let now = chrono::Utc::now();
        match self.custom(info) {
            Some(cr) => rkube_registry::crd::cr_table(&cr.printer_columns, objects, include, now),
            None => printers::table(info.group, info.resource, objects, include, now),
        }
    }

    /// Custom resources: prune, default, validate (schema and CEL); pruned
    /// fields are unknown fields for `fieldValidation`.
    fn admit_custom(
        &self,
        cr: &crate::crds::CustomResource,
        obj: &mut Value,
        old: Option<&Value>,
        status_only: bool,
        opts: &WriteOptions,
    ) -> Result<(), ApiError> {
        let info = cr.info;
        let (pruned, errs) = cr.admit(obj, old, status_only);
        if !pruned.is_empty() {
            let msgs = pruned.iter().map(|p| fieldvalidation::unknown_message(p)).collect();
            opts.warn(fieldvalidation::check_decode(opts.validation, info.kind, info.version, msgs)?);
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(info.group, info.kind, objects::name(obj), &errs));
        }
        Ok(())
    }

    /// Delete an object, honouring preconditions, finalizers, graceful pod
    /// deletion and the propagation policy (recorded as finalizers for the
    /// garbage collector). Returns the object and whether it is gone.
    pub(crate) async fn delete_object(
        &self,
        info: &'static ResourceInfo,
        _path: &ResourcePath,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let key = objects::key(info, ns, name);
        for _attempt in 0..16 {
            let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(info.group, info.resource, name));
            };
            let mut obj = to_served(info, decode_stored(&kv)?)?;
            let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
            if let Some(p) = &opts.precondition_uid
                && *p != uid
            {
                return Err(ApiError::conflict(
                    info.group,
                    info.resource,
                    name,
                    &format!("Precondition failed: UID in precondition: {p}, UID in object meta: {uid}"),
                ));
            }
            if let Some(p) = &opts.precondition_rv
                && *p != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict(
                    info.group,
                    info.resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {p}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            let target = crate::dynamic_admission::Target {
                info,
                subresource: None,
                namespace: ns,
                name,
                operation: rkube_registry::admission::Operation::Delete,
            };
            self.admit_delete(&target, &obj, opts, &|_| {}).await?;
            let was_deleting = objects::is_deleting(&obj);
            let mut finalizers = objects::finalizers(&obj);
            let policy = match (&opts.propagation, opts.orphan_dependents) {
                (Some(p), _) => p.clone(),
                (None, Some(true)) => "Orphan".into(),
                _ => "Background".into(),
            };
            let mut changed = false;
            // A CRD waits for its custom resources to be deleted.
            if !was_deleting
                && (info.group, info.resource) == ("apiextensions.k8s.io", "customresourcedefinitions")
                && !finalizers.iter().any(|f| f == crate::crds::CLEANUP_FINALIZER)
            {
                finalizers.push(crate::crds::CLEANUP_FINALIZER.to_string());
                changed = true;
            }
            if !was_deleting {
                match policy.as_str() {
                    "Orphan" if !finalizers.iter().any(|f| f == "orphan") => {
                        finalizers.push("orphan".into());
                        changed = true;
                    }
                    "Foreground" if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                        finalizers.push("foregroundDeletion".into());
                        changed = true;
                    }
                    _ => {}
                }
            }
            let grace = crate::admission::graceful_period(info, &obj, opts.grace_period);
            let holds = !finalizers.is_empty() || holds_namespace(info, &obj) || grace > 0;
            if holds {
                let now = chrono::Utc::now();
                let current_grace =
                    meta(&obj).and_then(|m| m.get("deletionGracePeriodSeconds")).and_then(Value::as_i64);
                let shortens = was_deleting && current_grace.is_some_and(|g| grace < g);
                if was_deleting && !changed && !shortens {
                    return Ok((obj, false));
                }
                let m = meta_mut(&mut obj);
                m.insert("finalizers".into(), json!(finalizers));
                // A first delete sets the deadline; a second one with a shorter grace period brings it forward.
                if !was_deleting || shortens {
                    let at = now + chrono::Duration::seconds(grace);
                    m.insert("deletionTimestamp".into(), json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                if info.resource == "namespaces" {
                    obj["status"]["phase"] = json!("Terminating");
                }
                if opts.dry_run {
                    return Ok((obj, false));
                }
                let stored = to_storage(info, obj)?;
                match self.store.update(&key, Bytes::from(objects::encode_for_storage(&stored)), kv.mod_revision).await
                {
                    Ok(rev) => {
                        let mut out = stored;
                        objects::set_resource_version(&mut out, rev);
                        return Ok((to_served(info, out)?, false));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(StoreError::NotFound(_)) => return Err(ApiError::not_found(info.group, info.resource, name)),
                    Err(e) => return Err(store_error(e)),
                }
            }
            if opts.dry_run {
                return Ok((obj, true));
            }
            match self.store.delete(&key, kv.mod_revision).await {
                Ok((rev, _)) => {
                    crate::services::release_on_delete(self, info, &obj).await;
                    objects::set_resource_version(&mut obj, rev);
                    return Ok((obj, true));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Err(ApiError::not_found(info.group, info.resource, name)),
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(ApiError::conflict(info.group, info.resource, name, "too many concurrent updates, please retry"))
    }

    async fn delete_collection(&self, req: &Req) -> Result<Response<Body>, ApiError> {
        let sel = Selectors::parse(req)?;
        let opts = DeleteOptions::parse(req)?;
        let prefix = objects::prefix(req.info, req.ns());
        let rev = self.store.current_revision().await.map_err(store_error)?;
        let (objs, revision) = self.cache.list(&prefix, rev).await.map_err(store_error)?;
        let mut items = Vec::new();
        for c in objs.iter().filter(|c| sel.matches_cached(c)) {
            let name = c.name().to_string();
            let ns = c.namespace().map(str::to_string);
            match self.delete_object(req.info, &req.path, ns.as_deref(), &name, &opts).await {
                Ok((o, _)) => items.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({
            "apiVersion": req.info.api_version(),
            "kind": format!("{}List", req.info.kind),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        });
        Ok(http::json(StatusCode::OK, &list))
    }
}

/// The managedFields view of a write: who, in which version, through which endpoint.
fn operation<'a>(
    opts: &'a WriteOptions,
    api_version: &'a str,
    now: &'a str,
    info: &ResourceInfo,
    status_only: bool,
) -> ssa::Operation<'a> {
    ssa::Operation {
        manager: &opts.manager,
        api_version,
        subresource: status_only.then_some("status"),
        now,
        reset_fields: reset_fields(info, status_only),
    }
}

/// Fields a write through this endpoint never owns (upstream's ResetFieldsStrategy).
fn reset_fields(info: &ResourceInfo, status_only: bool) -> &'static [&'static str] {
    match (info.has_subresource("status"), status_only) {
        (true, false) => &["status"],
        (true, true) => &["spec", "metadata"],
        (false, _) => &[],
    }
}

/// An applied configuration names the object of the URL.
fn check_apply_target(info: &ResourceInfo, applied: &Value, name: &str) -> Result<(), ApiError> {
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the applied configuration ({kind}) does not match the expected kind ({})",
            info.kind
        )));
    }
    let applied_name = meta_str(applied, "name").unwrap_or("");
    if applied_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({applied_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// A namespace stays while `spec.finalizers` is not empty.
fn holds_namespace(info: &ResourceInfo, obj: &Value) -> bool {
    info.resource == "namespaces"
        && info.group.is_empty()
        && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// apiVersion and kind must name this endpoint (filled in when absent).
pub(crate) fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let want = info.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want),
        Some(v) if v != want => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(info.kind),
        Some(k) if k != info.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) of {}",
                info.kind,
                rkube_registry::status::qualified(info.resource, info.group)
            )));
        }
        _ => {}
    }
    Ok(())
}

/// The fields of an update that the server keeps from the stored object.
fn prepare_update(info: &ResourceInfo, new: &mut Value, old: &Value, status_only: bool) -> Result<(), ApiError> {
    if status_only {
        let status = new.as_object_mut().and_then(|o| o.remove("status"));
        let mut merged = old.clone();
        // Deployments' status writers also set the revision annotations (upstream's
        // deploymentStatusStrategy keeps the new annotations).
        if (info.group, info.resource) == ("apps", "deployments") {
            match new.pointer("/metadata/annotations") {
                Some(a) => {
                    meta_mut(&mut merged).insert("annotations".into(), a.clone());
                }
                None => {
                    meta_mut(&mut merged).remove("annotations");
                }
            }
        }
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        if let Some(rv) = meta_str(new, "resourceVersion") {
            let rv = rv.to_string();
            meta_mut(&mut merged).insert("resourceVersion".into(), json!(rv));
        }
        *new = merged;
        return Ok(());
    }
    let no_meta = serde_json::Map::new();
    let old_meta = meta(old).unwrap_or(&no_meta);
    let new_uid = meta_str(new, "uid").map(str::to_string);
    if let (Some(nu), Some(ou)) = (&new_uid, old_meta.get("uid").and_then(Value::as_str))
        && !nu.is_empty()
        && nu != ou
    {
        return Err(ApiError::conflict(
            info.group,
            info.resource,
            objects::name(old),
            &format!("Precondition failed: UID in precondition: {nu}, UID in object meta: {ou}"),
        ));
    }
    // Deployments also bump on annotation changes: they are copied to ReplicaSets.
    let changed = objects::spec_changed(new, old)
        || ((info.group, info.resource) == ("apps", "deployments")
            && new.pointer("/metadata/annotations") != old.pointer("/metadata/annotations"));
    let m = meta_mut(new);
    for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"] {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    m.remove("selfLink");
    if objects::tracks_generation(info) {
        let g = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
        m.insert("generation".into(), json!(if changed { g + 1 } else { g }));
    } else {
        m.remove("generation");
    }
    if info.has_subresource("status") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    Ok(())
}

/// A list item: cached (bytes ready) or decoded from the store.
pub(crate) enum ListItem {
    Cached(Arc<rkube_storage::cache::CachedObject>),
    Owned(Value),
}

impl ListItem {
    fn len_hint(&self) -> usize {
        match self {
            ListItem::Cached(c) => c.json.len() + 1,
            ListItem::Owned(_) => 512,
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            ListItem::Cached(c) => out.extend_from_slice(&c.json),
            ListItem::Owned(v) => {
                let _ = serde_json::to_writer(&mut *out, v);
            }
        }
    }
    fn value(&self) -> std::borrow::Cow<'_, Value> {
        match self {
            ListItem::Cached(c) => std::borrow::Cow::Owned(c.object()),
            ListItem::Owned(v) => std::borrow::Cow::Borrowed(v),
        }
    }
    fn into_value(self) -> Value {
        match self {
            ListItem::Cached(c) => c.object(),
            ListItem::Owned(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "default/web\u{0}");
        let d = decode_continue(&t).unwrap();
        assert_eq!((d.rv, d.start.as_str()), (42, "default/web\u{0}"));
        assert_eq!(decode_continue("not-a-token").unwrap_err().code, 400);
    }
}
