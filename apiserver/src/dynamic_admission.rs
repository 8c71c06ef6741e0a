//! Dynamic admission control: the steps configured through the API rather
//! than built in — MutatingWebhookConfigurations, ValidatingAdmissionPolicies
//! (+ bindings) and ValidatingWebhookConfigurations — and NodeRestriction,
//! which needs the same admission request.
//!
//! The configurations are read from the watch cache and kept as a snapshot
//! rebuilt when anything under `admissionregistration.k8s.io` changes, so a
//! write with nothing configured pays one atomic load. Mutating webhooks run
//! after the built-in mutations (defaults, ServiceAccount, LimitRanger are
//! applied before); policies and validating webhooks after validation, as
//! upstream orders its admission chain.

use crate::rest::{DeleteOptions, WriteOptions};
use crate::server::{Server, User};
use futures::FutureExt;
use rkube_registry::ApiError;
use rkube_registry::admission::policy::{ParamQuery, ParamResult, PolicySet};
use rkube_registry::admission::{AdmissionRequest, Operation, UserInfo};
use rkube_registry::resources::ResourceInfo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

const PREFIX: &str = "/registry/admissionregistration.k8s.io/";

/// The configured webhooks and policies.
#[derive(Default)]
pub struct Snapshot {
    mutating: Vec<Value>,
    validating: Vec<Value>,
    policies: Option<PolicySet>,
}

impl Snapshot {
    fn is_empty(&self) -> bool {
        self.mutating.is_empty() && self.validating.is_empty() && self.policies.is_none()
    }
}

/// Dynamic admission state held by the server.
pub struct DynamicAdmission {
    snapshot: RwLock<Arc<Snapshot>>,
    dirty: AtomicBool,
    /// Nothing configured: skip building admission requests at all.
    empty: AtomicBool,
    dispatcher: crate::webhook::Dispatcher,
    /// `--enable-admission-plugins` includes NodeRestriction (on by default).
    pub node_restriction: AtomicBool,
}

impl Default for DynamicAdmission {
    fn default() -> Self {
        Self {
            snapshot: RwLock::default(),
            dirty: AtomicBool::new(true),
            empty: AtomicBool::new(true),
            dispatcher: crate::webhook::Dispatcher::new(),
            node_restriction: AtomicBool::new(true),
        }
    }
}

/// What is being admitted, before the request is built.
pub(crate) struct Target<'a> {
    pub info: &'a ResourceInfo,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub operation: Operation,
}

fn user_info(u: &User) -> UserInfo {
    UserInfo { username: u.name.clone(), groups: u.groups.clone(), ..Default::default() }
}

fn options(kind: &str, dry_run: bool, manager: Option<&str>) -> Value {
    let mut o = json!({ "kind": kind, "apiVersion": "meta.k8s.io/v1" });
    if dry_run {
        o["dryRun"] = json!(["All"]);
    }
    if let Some(m) = manager.filter(|m| !m.is_empty()) {
        o["fieldManager"] = json!(m);
    }
    o
}

impl Server {
    /// Follow changes of webhook and policy configurations.
    pub(crate) fn start_dynamic_admission(self: &Arc<Self>) {
        let server = Arc::downgrade(self);
        let watcher = self.cache.watch(PREFIX, self.cache.revision());
        tokio::spawn(async move {
            let Ok(mut w) = watcher else { return };
            loop {
                let Some(s) = server.upgrade() else { return };
                s.dynamic.dirty.store(true, Ordering::SeqCst);
                drop(s);
                if w.next().await.is_none() {
                    return;
                }
            }
        });
    }

    async fn list_prefix(&self, resource: &str) -> Vec<Value> {
        let rev = self.store.current_revision().await.unwrap_or(0);
        match self.cache.list(&format!("{PREFIX}{resource}/"), rev).await {
            Ok((objs, _)) => objs.iter().map(|o| o.object()).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn admission_snapshot(&self) -> Arc<Snapshot> {
        let d = &self.dynamic;
        if d.dirty.swap(false, Ordering::SeqCst) {
            let mut mutating = self.list_prefix("mutatingwebhookconfigurations").await;
            let mut validating = self.list_prefix("validatingwebhookconfigurations").await;
            mutating.sort_by(|a, b| crate::objects::name(a).cmp(crate::objects::name(b)));
            validating.sort_by(|a, b| crate::objects::name(a).cmp(crate::objects::name(b)));
            let policies = self.list_prefix("validatingadmissionpolicies").await;
            let bindings = self.list_prefix("validatingadmissionpolicybindings").await;
            let policies = Some(PolicySet::new(&policies, &bindings)).filter(|p| !p.is_empty());
            let snap = Snapshot { mutating, validating, policies };
            d.empty.store(snap.is_empty(), Ordering::SeqCst);
            *d.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
        }
        d.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Anything to do for this request? (NodeRestriction applies to node users.)
    fn needs_admission(&self, user: Option<&User>) -> bool {
        let Some(u) = user else { return false };
        let node = self.dynamic.node_restriction.load(Ordering::Relaxed)
            && crate::node::node_identity(&u.name, &u.groups).is_some();
        node || self.dynamic.dirty.load(Ordering::Relaxed) || !self.dynamic.empty.load(Ordering::Relaxed)
    }

    fn admission_request(
        &self,
        t: &Target<'_>,
        user: &User,
        object: Option<Value>,
        old_object: Option<Value>,
        options: Value,
        dry_run: bool,
    ) -> AdmissionRequest {
        let (group, version, kind) = match t.subresource.and_then(|s| t.info.subresource(s)) {
            Some(s) => (s.group, s.version, s.kind),
            None => (t.info.group, t.info.version, t.info.kind),
        };
        AdmissionRequest {
            uid: uuid::Uuid::new_v4().to_string(),
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            resource: t.info.resource.into(),
            subresource: t.subresource.unwrap_or("").into(),
            name: t.name.into(),
            namespace: t.namespace.unwrap_or("").into(),
            operation: t.operation,
            user: user_info(user),
            object,
            old_object,
            options: Some(options),
            dry_run,
        }
    }

    /// Resolve webhook service references to an address: a ready endpoint of
    /// the Service (there is no proxy in front of ClusterIPs for the
    /// apiserver), else its ClusterIP.
    async fn resolve_services(&self, configs: &[&Value]) -> HashMap<(String, String, i32), String> {
        let mut out = HashMap::new();
        for c in configs {
            for w in c.get("webhooks").and_then(Value::as_array).into_iter().flatten() {
                let Some(s) = w.pointer("/clientConfig/service") else { continue };
                let ns = s.get("namespace").and_then(Value::as_str).unwrap_or("");
                let name = s.get("name").and_then(Value::as_str).unwrap_or("");
                let port = s.get("port").and_then(Value::as_i64).unwrap_or(443) as i32;
                if let Some(addr) = self.service_address(ns, name, port).await {
                    out.insert((ns.to_string(), name.to_string(), port), addr);
                }
            }
        }
        out
    }

    async fn service_address(&self, ns: &str, name: &str, port: i32) -> Option<String> {
        let kv = self.store.get(&format!("/registry/services/specs/{ns}/{name}")).await.ok()??;
        let svc: Value = serde_json::from_slice(&kv.value).ok()?;
        let sp = svc.pointer("/spec/ports")?.as_array()?.iter().find(|p| p["port"].as_i64() == Some(port as i64))?;
        let port_name = sp.get("name").and_then(Value::as_str).unwrap_or("");
        let rev = self.store.current_revision().await.ok()?;
        let slices = self
            .cache
            .list(&format!("/registry/endpointslices/{ns}/"), rev)
            .await
            .map(|(o, _)| o.iter().map(|o| o.object()).collect::<Vec<_>>())
            .unwrap_or_default();
        for s in &slices {
            if s.pointer("/metadata/labels/kubernetes.io~1service-name").and_then(Value::as_str) != Some(name) {
                continue;
            }
            let Some(p) = s["ports"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name))
            else {
                continue;
            };
            let Some(num) = p["port"].as_i64() else { continue };
            for e in s["endpoints"].as_array().into_iter().flatten() {
                if e.pointer("/conditions/ready") == Some(&json!(false)) {
                    continue;
                }
                if let Some(ip) = e.pointer("/addresses/0").and_then(Value::as_str) {
                    return Some(format_addr(ip, num));
                }
            }
        }
        let ip = svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| *ip != "None")?;
        Some(format_addr(ip, port as i64))
    }

    async fn namespace_object(&self, ns: Option<&str>) -> Option<Value> {
        let ns = ns?;
        let kv = self.store.get(&format!("/registry/namespaces/{ns}")).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Mutating webhooks on a create or update; `obj` is replaced by the
    /// mutated object.
    pub(crate) async fn admit_mutating(
        &self,
        t: &Target<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<bool, ApiError> {
        if !self.needs_admission(opts.user.as_ref()) {
            return Ok(false);
        }
        let snap = self.admission_snapshot().await;
        if snap.mutating.is_empty() {
            return Ok(false);
        }
        let Some(user) = &opts.user else { return Ok(false) };
        let kind = if t.operation == Operation::Create { "CreateOptions" } else { "UpdateOptions" };
        let mut req = self.admission_request(
            t,
            user,
            Some(obj.clone()),
            old.cloned(),
            options(kind, opts.dry_run, Some(&opts.manager)),
            opts.dry_run,
        );
        let ns_obj = self.namespace_object(t.namespace).await;
        let resolved = self.resolve_services(&snap.mutating.iter().collect::<Vec<_>>()).await;
        let resolve = |ns: &str, name: &str, port: i32| resolved.get(&(ns.into(), name.into(), port)).cloned();
        let out = self
            .dynamic
            .dispatcher
            .mutate(&snap.mutating, &mut req, t.info.namespaced, ns_obj.as_ref(), &resolve)
            .await?;
        opts.warn(out.warnings);
        match req.object {
            Some(o) if o != *obj => {
                *obj = o;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// NodeRestriction, ValidatingAdmissionPolicies and validating webhooks.
    pub(crate) async fn admit_validating(
        &self,
        t: &Target<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
        user: Option<&User>,
        options: Value,
        warn: &(dyn Fn(Vec<String>) + Sync),
    ) -> Result<(), ApiError> {
        let dry_run = options.get("dryRun").is_some();
        if !self.needs_admission(user) {
            return Ok(());
        }
        let Some(user) = user else { return Ok(()) };
        let node_restriction = self.dynamic.node_restriction.load(Ordering::Relaxed)
            && crate::node::node_identity(&user.name, &user.groups).is_some();
        let snap = self.admission_snapshot().await;
        if snap.is_empty() {
            // NodeRestriction alone: it gets the fields it reads, not copies of the objects.
            if node_restriction {
                let (group, resource) = (t.info.group, t.info.resource);
                let req = match crate::node::restriction_fields(group, resource, t.subresource.unwrap_or("")) {
                    Some(fields) => {
                        let view = |o: Option<&Value>| o.map(|o| crate::node::project(o, fields));
                        self.admission_request(t, user, view(obj), view(old), options, dry_run)
                    }
                    None => self.admission_request(t, user, obj.cloned(), old.cloned(), options, dry_run),
                };
                self.admit_node_restriction(&req).await?;
            }
            return Ok(());
        }
        let req = self.admission_request(t, user, obj.cloned(), old.cloned(), options, dry_run);
        if node_restriction {
            self.admit_node_restriction(&req).await?;
        }
        let ns_obj = self.namespace_object(t.namespace).await;
        if let Some(set) = &snap.policies {
            let out = set.validate(&req, t.info.namespaced, ns_obj.as_ref(), &|q| self.policy_params(q));
            warn(out.warnings);
            if let Some(e) = out.denied {
                return Err(e);
            }
        }
        if !snap.validating.is_empty() {
            let resolved = self.resolve_services(&snap.validating.iter().collect::<Vec<_>>()).await;
            let resolve = |ns: &str, name: &str, port: i32| resolved.get(&(ns.into(), name.into(), port)).cloned();
            let out = self
                .dynamic
                .dispatcher
                .validate(&snap.validating, &req, t.info.namespaced, ns_obj.as_ref(), &resolve)
                .await?;
            warn(out.warnings);
        }
        Ok(())
    }

    /// Validating admission of a write.
    pub(crate) async fn admit_write(
        &self,
        t: &Target<'_>,
        obj: &Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<(), ApiError> {
        let kind = if t.operation == Operation::Create { "CreateOptions" } else { "UpdateOptions" };
        let o = options(kind, opts.dry_run, Some(&opts.manager));
        self.admit_validating(t, Some(obj), old, opts.user.as_ref(), o, &|w| opts.warn(w)).await
    }

    /// Validating admission of a delete.
    pub(crate) async fn admit_delete(
        &self,
        t: &Target<'_>,
        old: &Value,
        opts: &DeleteOptions,
        warn: &(dyn Fn(Vec<String>) + Sync),
    ) -> Result<(), ApiError> {
        let mut o = options("DeleteOptions", opts.dry_run, None);
        if let Some(p) = &opts.propagation {
            o["propagationPolicy"] = json!(p);
        }
        if let Some(g) = opts.grace_period {
            o["gracePeriodSeconds"] = json!(g);
        }
        self.admit_validating(t, None, Some(old), opts.user.as_ref(), o, warn).await
    }
}

impl Server {
    /// A policy's parameter objects, read from the watch cache as it is now.
    fn policy_params(&self, q: ParamQuery) -> ParamResult {
        let (group, version) = q.api_version.split_once('/').unwrap_or(("", q.api_version.as_str()));
        let crds = self.crd_table();
        let info = rkube_registry::resources::by_kind(group, version, &q.kind).or_else(|| {
            crds.infos().iter().copied().find(|i| i.group == group && i.version == version && i.kind == q.kind)
        });
        let Some(info) = info else { return ParamResult::UnknownKind };
        let prefix = crate::objects::prefix(info, q.namespace.as_deref());
        let objs = match self.cache.list(&prefix, 0).now_or_never() {
            Some(Ok((objs, _))) => objs,
            Some(Err(e)) => return ParamResult::Error(e.to_string()),
            None => return ParamResult::Error("the watch cache is not ready".into()),
        };
        let found: Vec<Value> =
            objs.iter().filter(|o| q.name.as_deref().is_none_or(|n| o.name() == n)).map(|o| o.object()).collect();
        if info.namespaced { ParamResult::Namespaced(found) } else { ParamResult::Cluster(found) }
    }
}

fn format_addr(ip: &str, port: i64) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}
