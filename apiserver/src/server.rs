//! The request pipeline: authentication result in, route, dispatch to
//! discovery, OpenAPI, health, or the REST handlers of a resource.
//!
//! Follow one request: [`crate::listener`] terminates TLS and names the user,
//! [`Server::handle`] routes it, [`crate::rest`] runs the verb against the
//! watch cache or the store, [`crate::http`] writes the answer.

use crate::crds::CrdTable;
use crate::http::{self, Body};
use crate::request::{Query, ResourcePath, Route, Verb, route};
use crate::services::Allocators;
use ::http::{HeaderValue, Request, Response, StatusCode, header, request::Parts};
use bytes::Bytes;
use rkube_registry::ApiError;
use rkube_registry::resources::{self, ResourceInfo};
use rkube_storage::cache::WatchCache;
use rkube_storage::{Store, StoreError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Who is asking (from a client certificate, or the in-process identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn admin() -> Self {
        Self { name: "admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] }
    }
}

/// Settings the handlers need (a subset of the command line).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address and port clients reach the apiserver on (the `kubernetes` Service's endpoint).
    pub advertise_address: std::net::IpAddr,
    pub secure_port: u16,
    pub service_cidr: crate::services::Cidr,
    pub node_port_range: (u16, u16),
}

/// Documents computed once and served as bytes.
#[derive(Default)]
struct Docs {
    core_versions: OnceLock<Bytes>,
    groups: OnceLock<Bytes>,
    group_versions: OnceLock<HashMap<(String, String), Bytes>>,
    aggregated: OnceLock<HashMap<(bool, &'static str), Bytes>>,
    openapi_v2: OnceLock<Bytes>,
    openapi_v2_proto: OnceLock<Bytes>,
    openapi_v3_index: OnceLock<Bytes>,
    openapi_v3: OnceLock<HashMap<String, Bytes>>,
}

pub struct Server {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<WatchCache>,
    pub(crate) settings: Settings,
    pub(crate) alloc: Allocators,
    /// Discovery and OpenAPI documents, rebuilt after a CRD change.
    docs: RwLock<Arc<Docs>>,
    /// Served custom resources.
    crds: RwLock<Arc<CrdTable>>,
    ready: AtomicBool,
    /// The audit policy and log, when `--audit-log-path` is set.
    audit: OnceLock<(crate::audit::Policy, crate::audit::AuditLog)>,
    /// Bearer-token authentication (`--token-auth-file`, ServiceAccount tokens).
    tokens: OnceLock<Tokens>,
    /// Set with `--authorization-mode=RBAC`; without it every authenticated user may do everything.
    rbac: OnceLock<crate::authz::Rbac>,
    /// Webhooks, admission policies and NodeRestriction.
    pub(crate) dynamic: crate::dynamic_admission::DynamicAdmission,
    /// `--anonymous-auth`: unauthenticated requests may read the public paths.
    anonymous_auth: AtomicBool,
}

/// What bearer tokens can authenticate as.
pub struct Tokens {
    pub file: Option<crate::authn::TokenFile>,
    pub signer: Option<crate::authn::Signer>,
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted { requested, compacted } => {
            ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
        }
        StoreError::FutureRevision(r) => ApiError::timeout(format!("Too large resource version: {r}")),
        other => ApiError::internal(other.to_string()),
    }
}

const VERSION_MINOR: &str = "33";
const VERSION_PATCH: &str = "0";

impl Server {
    pub fn new(store: Arc<dyn Store>, cache: Arc<WatchCache>, settings: Settings) -> Arc<Self> {
        let alloc = Allocators::new(&settings);
        Arc::new(Self {
            store,
            cache,
            settings,
            alloc,
            docs: RwLock::default(),
            crds: RwLock::default(),
            ready: AtomicBool::new(false),
            audit: OnceLock::new(),
            tokens: OnceLock::new(),
            rbac: OnceLock::new(),
            dynamic: Default::default(),
            anonymous_auth: AtomicBool::new(true),
        })
    }

    /// Authorize with RBAC from now on.
    pub fn enable_rbac(&self) {
        let _ = self.rbac.set(crate::authz::Rbac::new());
    }

    pub(crate) fn rbac(&self) -> Option<&crate::authz::Rbac> {
        self.rbac.get()
    }

    /// Start writing audit events.
    pub fn set_audit(&self, policy: crate::audit::Policy, log: crate::audit::AuditLog) {
        let _ = self.audit.set((policy, log));
    }

    /// `--anonymous-auth=false`: every path needs credentials, health and version too.
    pub fn set_anonymous_auth(&self, enabled: bool) {
        self.anonymous_auth.store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    /// Accept bearer tokens.
    pub fn set_tokens(&self, tokens: Tokens) {
        let _ = self.tokens.set(tokens);
    }

    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.get()
    }

    /// The user a request impersonates, if its real user may impersonate
    /// that user (and those groups), as upstream's impersonation filter.
    async fn impersonate(&self, real: &User, headers: &::http::HeaderMap) -> Result<User, ApiError> {
        let name = headers.get("impersonate-user").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let groups: Vec<String> =
            headers.get_all("impersonate-group").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
        let sa = name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':'));
        let check = |resource: &str, ns: Option<&str>, n: &str| {
            crate::authz::resource_attributes(real, "impersonate", ns, "", resource, None, Some(n))
        };
        let target = match sa {
            Some((ns, sa_name)) => check("serviceaccounts", Some(ns), sa_name),
            None => check("users", None, &name),
        };
        self.authorize(&target).await?;
        for g in &groups {
            self.authorize(&check("groups", None, g)).await?;
        }
        let mut all = groups;
        if let Some((ns, _)) = sa {
            all.push("system:serviceaccounts".into());
            all.push(format!("system:serviceaccounts:{ns}"));
        }
        if name != "system:anonymous" && !all.iter().any(|g| g == "system:authenticated") {
            all.push("system:authenticated".into());
        }
        Ok(User { name, groups: all })
    }

    /// Who a bearer token names (TokenReview).
    pub(crate) async fn authenticate_bearer(&self, token: &str) -> Option<User> {
        self.authenticate_token(token).await
    }

    /// Who a bearer token names: a static token, or a valid ServiceAccount
    /// token whose ServiceAccount — and the pod, secret or node it is bound
    /// to — still exists with the same uid and is not being deleted for more
    /// than a minute (upstream's grace for in-flight requests of a pod that is
    /// shutting down).
    async fn authenticate_token(&self, token: &str) -> Option<User> {
        let t = self.tokens.get()?;
        if let Some(u) = t.file.as_ref().and_then(|f| f.authenticate(token)) {
            return Some(u);
        }
        let claims = t.signer.as_ref()?.verify(token, &[]).ok()?;
        let ns = &claims.namespace;
        let sa = format!("/registry/serviceaccounts/{ns}/{}", claims.service_account.name);
        self.bound_object_alive(&sa, &claims.service_account.uid).await?;
        if let Some(p) = &claims.pod {
            self.bound_object_alive(&format!("/registry/pods/{ns}/{}", p.name), &p.uid).await?;
        }
        if let Some(s) = &claims.secret {
            self.bound_object_alive(&format!("/registry/secrets/{ns}/{}", s.name), &s.uid).await?;
        }
        if let Some(n) = &claims.node {
            self.bound_object_alive(&format!("/registry/nodes/{}", n.name), &n.uid).await?;
        }
        Some(claims.user())
    }

    /// The object a token is bound to exists, has `uid` (when the claim names
    /// one) and was not marked for deletion more than 60 seconds ago.
    async fn bound_object_alive(&self, key: &str, uid: &str) -> Option<()> {
        let kv = self.store.get(key).await.ok()??;
        let obj: Value = serde_json::from_slice(&kv.value).ok()?;
        if !uid.is_empty() && obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
            return None;
        }
        if let Some(ts) = obj.pointer("/metadata/deletionTimestamp").and_then(Value::as_str)
            && let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts)
            && t < chrono::Utc::now() - chrono::Duration::seconds(60)
        {
            return None;
        }
        Some(())
    }

    fn docs(&self) -> Arc<Docs> {
        self.docs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The served custom resources.
    pub fn crd_table(&self) -> Arc<CrdTable> {
        self.crds.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swap in a new CRD table; discovery and OpenAPI are rebuilt if it serves something else.
    pub(crate) fn set_crd_table(&self, table: CrdTable) {
        let old = self.crd_table();
        let changed = old.infos().len() != table.infos().len()
            || old.infos().iter().zip(table.infos()).any(|(a, b)| !std::ptr::eq(*a, *b))
            || old.infos().iter().any(|i| {
                let (a, b) = (old.by_info(i), table.by_info(i));
                a.map(|c| (&c.schema, &c.printer_columns)) != b.map(|c| (&c.schema, &c.printer_columns))
            });
        *self.crds.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        if changed {
            *self.docs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Docs::default());
        }
    }

    /// A served resource: built-in, or a custom resource of an established CRD.
    pub async fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
        if let Some(i) =
            resources::lookup(group, version, resource).or_else(|| crate::metrics::lookup(group, version, resource))
        {
            return Some(i);
        }
        let table = self.crd_table();
        if let Some(c) = table.get(group, version, resource) {
            return Some(c.info);
        }
        // A CRD created a moment ago may not be in the table yet.
        if self.cache.revision() > table.revision {
            self.sync_crds().await;
            return self.crd_table().get(group, version, resource).map(|c| c.info);
        }
        None
    }

    /// The store behind this server (tests and tools; handlers go through the cache too).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Every served resource: built-in ones, then custom resources.
    pub fn resources(&self) -> Vec<&'static ResourceInfo> {
        let mut all: Vec<&'static ResourceInfo> = resources::all().iter().collect();
        all.extend(self.crd_table().infos().iter().copied());
        all.extend(crate::metrics::resources());
        all
    }

    /// Answer one request. `user` is None for an unauthenticated client.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>, user: Option<User>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display + Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let route = route(&path);
        let public = matches!(&route, Route::NonResource(p) if is_public(p))
            && self.anonymous_auth.load(std::sync::atomic::Ordering::Relaxed);
        let mut user = user;
        if user.is_none()
            && let Some(token) = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        {
            user = self.authenticate_token(token.trim()).await;
        }
        // Impersonation (`kubectl --as`, `--as-group`): allowed by the `impersonate` verb.
        if let Some(u) = &user
            && parts.headers.contains_key("impersonate-user")
        {
            match self.impersonate(u, &parts.headers).await {
                Ok(as_user) => user = Some(as_user),
                Err(e) => return http::error(&e),
            }
        }
        // Credentials we cannot verify fail authentication, even on public paths.
        let bad_credentials = user.is_none() && parts.headers.contains_key(header::AUTHORIZATION);
        let audit = self.audit.get().map(|_| crate::audit_attrs(&parts, &route, user.as_ref()));
        if bad_credentials || (user.is_none() && !public) {
            let resp = http::error(&ApiError::unauthorized());
            self.audit_event(audit, resp.status().as_u16(), None);
            return resp;
        }
        // Discovery, OpenAPI and the other non-resource paths are authorized by path.
        if let (Some(u), false, false) = (&user, public, matches!(route, Route::Resource(_))) {
            let a = crate::authz::path_attributes(u, &parts.method.as_str().to_ascii_lowercase(), &path);
            if let Err(e) = self.authorize(&a).await {
                self.audit_event(audit, e.code, None);
                return http::error(&e);
            }
        }
        let result = match route {
            Route::NonResource(p) => self.non_resource(&p, &parts),
            Route::CoreVersions => self.discovery_root(&parts, true),
            Route::Groups => self.discovery_root(&parts, false),
            Route::Group(g) => self.group_doc(&g),
            Route::GroupVersion(g, v) => self.group_version_doc(&g, &v),
            Route::Resource(rp) => match http::read_body(body).await {
                Ok(bytes) => {
                    let request_obj = audit.as_ref().and_then(|_| serde_json::from_slice::<Value>(&bytes).ok());
                    let resp = self.clone().resource(rp, parts, bytes, user.unwrap_or_else(User::admin)).await;
                    let code = match &resp {
                        Ok(r) => r.status().as_u16(),
                        Err(e) => e.code,
                    };
                    self.audit_event(audit, code, request_obj.as_ref());
                    return resp.unwrap_or_else(|e| http::error(&e));
                }
                Err(e) => Err(e),
            },
        };
        let resp = result.unwrap_or_else(|e| http::error(&e));
        self.audit_event(audit, resp.status().as_u16(), None);
        resp
    }

    /// Write the ResponseComplete event of a request, at the policy's level.
    fn audit_event(&self, attrs: Option<crate::audit::RequestAttrs>, code: u16, request_obj: Option<&Value>) {
        let (Some((policy, log)), Some(attrs)) = (self.audit.get(), attrs) else { return };
        let decision = policy.evaluate(&attrs);
        if decision.level == crate::audit::Level::None || !decision.records(crate::audit::Stage::ResponseComplete) {
            return;
        }
        let req = request_obj
            .map(|o| if decision.omit_managed_fields { crate::audit::omit_managed_fields(o) } else { o.clone() });
        log.log(crate::audit::event(
            decision.level,
            crate::audit::Stage::ResponseComplete,
            &attrs,
            code,
            req.as_ref(),
            None,
        ));
    }

    fn non_resource(&self, path: &str, parts: &Parts) -> Result<Response<Body>, ApiError> {
        let d = self.docs();
        let p = path.trim_end_matches('/');
        match p {
            "/version" => Ok(http::json(StatusCode::OK, &version_info())),
            "/healthz" | "/livez" | "/healthz/ping" | "/livez/ping" | "/readyz/ping" => {
                Ok(http::text(StatusCode::OK, "ok"))
            }
            "/readyz" => {
                if self.ready.load(Ordering::SeqCst) {
                    Ok(http::text(StatusCode::OK, "ok"))
                } else {
                    Ok(http::text(StatusCode::SERVICE_UNAVAILABLE, "[-]bootstrap not finished\nreadyz check failed"))
                }
            }
            "/.well-known/openid-configuration" | "/openid/v1/jwks" => {
                let signer = self.tokens().and_then(|t| t.signer.as_ref()).ok_or_else(not_found_path)?;
                let doc = if p == "/openid/v1/jwks" {
                    crate::authn::jwks(signer)
                } else {
                    let issuer = signer.issuer().to_string();
                    let jwks_uri = crate::authn::discovery::default_jwks_uri(&issuer)
                        .unwrap_or_else(|| format!("{issuer}/openid/v1/jwks"));
                    crate::authn::openid_configuration(&issuer, &jwks_uri, signer)
                };
                Ok(http::json(StatusCode::OK, &doc))
            }
            "/openapi/v2" => {
                if accepts_only_protobuf(parts) {
                    // gnostic's openapi.v2.Document, as client-go's OpenAPISchema asks for it. The reply's
                    // content type is upstream's dotted form: Go's mime parser rejects the '@' of the request's.
                    let b = d.openapi_v2_proto.get_or_init(|| {
                        let doc = self.build_openapi_v2();
                        Bytes::from(rkube_registry::openapi_proto::encode_v2(&doc))
                    });
                    let mut r = http::json_bytes(StatusCode::OK, b.clone());
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
                    );
                    return Ok(r);
                }
                let b = d.openapi_v2.get_or_init(|| to_bytes(&self.build_openapi_v2()));
                Ok(http::json_bytes(StatusCode::OK, b.clone()))
            }
            "/openapi/v3" => {
                let b = d.openapi_v3_index.get_or_init(|| self.build_openapi_v3_index(&d));
                Ok(http::json_bytes(StatusCode::OK, b.clone()))
            }
            _ if p.starts_with("/openapi/v3/") => {
                let gv = &p["/openapi/v3/".len()..];
                let docs = d.openapi_v3.get_or_init(|| self.build_openapi_v3());
                match docs.get(gv) {
                    Some(b) => {
                        let mut r = http::json_bytes(StatusCode::OK, b.clone());
                        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
                        Ok(r)
                    }
                    None => Err(not_found_path()),
                }
            }
            "" | "/" => {
                let paths = json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]});
                Ok(http::json(StatusCode::OK, &paths))
            }
            _ if p.starts_with("/readyz/") || p.starts_with("/livez/") || p.starts_with("/healthz/") => {
                Ok(http::text(StatusCode::OK, "ok"))
            }
            _ => Err(not_found_path()),
        }
    }

    /// Every `/openapi/v3/<group-version>` document; custom resources get
    /// their CRD's schema as the kind's component.
    fn build_openapi_v3(&self) -> HashMap<String, Bytes> {
        let res = self.resources();
        let table = self.crd_table();
        let mut out = HashMap::new();
        for (group, versions) in resources::groups_of(&res) {
            for v in versions {
                let Some(mut doc) = rkube_registry::openapi::v3_group_version(&res, group, v) else { continue };
                for info in table.infos().iter().filter(|i| i.group == group && i.version == v) {
                    if let (Some(cr), Some(schemas)) =
                        (table.by_info(info), doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut))
                    {
                        for (name, schema) in rkube_registry::crd::openapi_definitions(&cr.crd, v, false) {
                            schemas.insert(name, schema);
                        }
                    }
                }
                out.insert(rkube_registry::openapi::v3_path(group, v), to_bytes(&doc));
            }
        }
        out
    }

    /// `/openapi/v3`: each document's URL with a hash of what is served there,
    /// so clients' caches follow CRD changes.
    fn build_openapi_v3_index(&self, d: &Docs) -> Bytes {
        let docs = d.openapi_v3.get_or_init(|| self.build_openapi_v3());
        let mut paths = serde_json::Map::new();
        let mut names: Vec<&String> = docs.keys().collect();
        names.sort();
        for p in names {
            let hash: String = rkube_registry::discovery::sha256(&docs[p]).iter().map(|b| format!("{b:02X}")).collect();
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}));
        }
        to_bytes(&json!({ "paths": paths }))
    }

    /// `/openapi/v2` with the definitions of custom resources added.
    fn build_openapi_v2(&self) -> Value {
        let mut doc = rkube_registry::openapi::v2(&self.resources());
        let table = self.crd_table();
        if let Some(defs) = doc.get_mut("definitions").and_then(Value::as_object_mut) {
            for info in table.infos() {
                if let Some(cr) = table.by_info(info) {
                    for (name, schema) in rkube_registry::crd::openapi_definitions(&cr.crd, info.version, true) {
                        defs.insert(name, schema);
                    }
                }
            }
        }
        doc
    }

    fn discovery_root(&self, parts: &Parts, core: bool) -> Result<Response<Body>, ApiError> {
        let d = self.docs();
        if let Some(ver) = aggregated_version(parts) {
            let docs = d.aggregated.get_or_init(|| {
                let res = self.resources();
                let mut m = HashMap::new();
                use rkube_registry::discovery::{AggregatedVersion, aggregated_api, aggregated_apis};
                for (name, v) in [("v2", AggregatedVersion::V2), ("v2beta1", AggregatedVersion::V2Beta1)] {
                    m.insert((true, name), to_bytes(&aggregated_api(&res, v)));
                    m.insert((false, name), to_bytes(&aggregated_apis(&res, v)));
                }
                m
            });
            let body = docs.get(&(core, ver)).cloned().unwrap_or_default();
            // The ETag changes with what is served (CRDs); a client that has it gets 304.
            let etag: String =
                rkube_registry::discovery::sha256(&body)[..16].iter().map(|b| format!("{b:02x}")).collect();
            let etag = format!("\"{etag}\"");
            let ct = format!("application/json;g=apidiscovery.k8s.io;v={ver};as=APIGroupDiscoveryList");
            let unchanged =
                parts.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
            let mut r = if unchanged {
                let mut r = Response::new(http::full(Bytes::new()));
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r
            } else {
                http::json_bytes(StatusCode::OK, body)
            };
            if let Ok(v) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            return Ok(r);
        }
        let b = if core {
            d.core_versions.get_or_init(|| {
                let addr = format!("{}:{}", self.settings.advertise_address, self.settings.secure_port);
                to_bytes(&rkube_registry::discovery::api_versions(&addr))
            })
        } else {
            d.groups.get_or_init(|| to_bytes(&rkube_registry::discovery::api_group_list(&self.resources())))
        };
        Ok(http::json_bytes(StatusCode::OK, b.clone()))
    }

    fn group_doc(&self, group: &str) -> Result<Response<Body>, ApiError> {
        let list = rkube_registry::discovery::api_group_list(&self.resources());
        let found = list["groups"].as_array().and_then(|gs| gs.iter().find(|g| g["name"] == group)).cloned();
        match found {
            Some(mut g) => {
                g["kind"] = json!("APIGroup");
                g["apiVersion"] = json!("v1");
                Ok(http::json(StatusCode::OK, &g))
            }
            None => Err(not_found_path()),
        }
    }

    fn group_version_doc(&self, group: &str, version: &str) -> Result<Response<Body>, ApiError> {
        let d = self.docs();
        let docs = d.group_versions.get_or_init(|| {
            let res = self.resources();
            let mut m = HashMap::new();
            for (g, versions) in resources::groups_of(&res) {
                for v in versions {
                    if let Some(doc) = rkube_registry::discovery::api_resource_list(&res, g, v) {
                        m.insert((g.to_string(), v.to_string()), to_bytes(&doc));
                    }
                }
            }
            m
        });
        match docs.get(&(group.to_string(), version.to_string())) {
            Some(b) => Ok(http::json_bytes(StatusCode::OK, b.clone())),
            None => Err(not_found_path()),
        }
    }

    async fn resource(
        self: Arc<Self>,
        rp: ResourcePath,
        parts: Parts,
        body: Bytes,
        user: User,
    ) -> Result<Response<Body>, ApiError> {
        let Some(info) = self.lookup(&rp.group, &rp.version, &rp.resource).await else {
            return Err(not_found_path());
        };
        if !info.namespaced && rp.namespace.is_some() {
            return Err(not_found_path());
        }
        let query = Query::parse(parts.uri.query());
        let watch = query.watch()? || rp.legacy_watch;
        let verb = Verb::from_request(&parts.method, rp.name.is_some(), watch).ok_or_else(|| {
            ApiError::method_not_allowed("the server does not allow this method on the requested resource")
        })?;
        // A namespaced object is always addressed within its namespace.
        if info.namespaced && rp.namespace.is_none() && !matches!(verb, Verb::List | Verb::Watch) {
            return Err(not_found_path());
        }
        let a = crate::authz::resource_attributes(
            &user,
            verb.as_str(),
            rp.namespace.as_deref(),
            &rp.group,
            &rp.resource,
            rp.subresource.as_deref(),
            rp.name.as_deref(),
        );
        // The Node authorizer lets a kubelet list and watch what is scoped to its node.
        let field_selector = matches!(verb, Verb::List | Verb::Watch).then(|| query.get("fieldSelector")).flatten();
        self.authorize_request(&a, field_selector).await?;
        let req = crate::rest::Req { info, path: rp, query, parts, body, user, verb };
        if !info.verbs.contains(&verb.as_str()) && req.path.subresource.is_none() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        crate::rest::dispatch(self, req).await
    }
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Paths anyone may read (upstream's `system:public-info-viewer`).
fn is_public(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    matches!(
        p,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/.well-known/openid-configuration" | "/openid/v1/jwks"
    ) || p.starts_with("/healthz/")
        || p.starts_with("/livez/")
        || p.starts_with("/readyz/")
}

pub(crate) fn not_found_path() -> ApiError {
    ApiError::new(404, rkube_registry::Reason::NotFound, "the server could not find the requested resource")
}

fn accepts_only_protobuf(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("protobuf") && !a.contains("json") && !a.contains("*/*"))
}

/// `v2` or `v2beta1` when the client asks for aggregated discovery.
fn aggregated_version(parts: &Parts) -> Option<&'static str> {
    let accept = parts.headers.get(header::ACCEPT)?.to_str().ok()?;
    for range in accept.split(',') {
        if range.contains("as=APIGroupDiscoveryList") && range.contains("g=apidiscovery.k8s.io") {
            if range.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if range.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": VERSION_MINOR,
        "emulationMajor": "1",
        "emulationMinor": VERSION_MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": format!("v1.{VERSION_MINOR}.{VERSION_PATCH}+rkube.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-27T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}
