//! Kubelet identities: the Node authorizer (`--authorization-mode=Node`, upstream's
//! `plugin/pkg/auth/authorizer/node`) and the NodeRestriction admission check (upstream's
//! `plugin/pkg/admission/noderestriction`).
//!
//! A kubelet is the user `system:node:<nodeName>` in the group `system:nodes`. The authorizer lets
//! it read the secrets, configmaps, PVCs, PVs and service-account tokens only of pods bound to its
//! node (worked out on demand from the watch cache: no graph is kept), its own Node and Lease, pods
//! bound to it (lists need `spec.nodeName=<node>`), and what upstream's static node rules grant;
//! anything else is NoOpinion, left to the next authorizer (RBAC). NodeRestriction then limits the
//! writes the authorizer lets through to the node's own objects ([`node_restriction`], pure; the
//! server's [`Server::admit_node_restriction`] looks up the objects it needs first).

use crate::server::Server;
use rkube_registry::ApiError;
use rkube_registry::admission::{AdmissionRequest, Operation};
use rkube_registry::rbac::{Attributes, Decision};
use rkube_registry::status::qualified;
use serde_json::Value;
use std::collections::HashMap;

/// The group every kubelet is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of a kubelet.
pub const NODE_USER_PREFIX: &str = "system:node:";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Upstream's NodeIdentifier: `Some(name)` for a node user (`name` may be empty when the user is
/// in `system:nodes` but named only `system:node:`), None for anyone else.
pub fn node_identity<'a>(user: &'a str, groups: &[String]) -> Option<&'a str> {
    let name = user.strip_prefix(NODE_USER_PREFIX)?;
    groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

// ---------------------------------------------------------------------------------------------
// The authorizer
// ---------------------------------------------------------------------------------------------

/// An object the decision depends on: is it related to the node?
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Related {
    /// A namespaced object referenced by a pod bound to the node: `secrets`, `configmaps`,
    /// `persistentvolumeclaims`, `serviceaccounts`, or the pod itself (`pods`).
    Namespaced { resource: &'static str, namespace: String, name: String },
    /// A PersistentVolume bound to a claim used by a pod on the node.
    PersistentVolume(String),
    /// A VolumeAttachment whose `spec.nodeName` is the node.
    VolumeAttachment(String),
    /// A ResourceSlice whose `spec.nodeName` is the node.
    ResourceSlice(String),
}

/// The first half of the Node authorizer's answer: decided already, or decided by whether an
/// object is related to the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Done(Decision),
    IfRelated(Related),
}

fn no_opinion(reason: impl Into<String>) -> Step {
    Step::Done(Decision::NoOpinion(reason.into()))
}

fn allow() -> Step {
    Step::Done(Decision::Allow(String::new()))
}

/// The message upstream gives when no relationship is found.
pub fn no_relationship(node: &str) -> String {
    format!("no relationship found between node '{node}' and this object")
}

/// Upstream's static NodeRules (1.33): (verbs, group, resources incl. subresources).
const NODE_RULES: &[(&[&str], &str, &[&str])] = &[
    (&["create"], "authentication.k8s.io", &["tokenreviews"]),
    (&["create"], "authorization.k8s.io", &["subjectaccessreviews", "localsubjectaccessreviews"]),
    (&["get", "list", "watch"], "", &["services"]),
    (&["create", "get", "list", "watch"], "", &["nodes"]),
    (&["update", "patch"], "", &["nodes/status"]),
    (&["update", "patch"], "", &["nodes"]),
    (&["create", "update", "patch"], "", &["events"]),
    (&["get", "list", "watch"], "", &["pods"]),
    (&["create", "delete"], "", &["pods"]),
    (&["update", "patch"], "", &["pods/status"]),
    (&["create"], "", &["pods/eviction"]),
    (&["get", "list", "watch"], "", &["secrets", "configmaps"]),
    (&["get"], "", &["persistentvolumeclaims", "persistentvolumes"]),
    (&["get"], "", &["endpoints"]),
    (&["create", "get", "list", "watch"], "certificates.k8s.io", &["certificatesigningrequests"]),
    (&["get", "create", "update", "patch", "delete"], "coordination.k8s.io", &["leases"]),
    (&["get"], "storage.k8s.io", &["volumeattachments"]),
    (&["get", "update", "patch"], "", &["persistentvolumeclaims/status"]),
    (&["create"], "", &["serviceaccounts/token"]),
    (&["get", "watch", "list"], "storage.k8s.io", &["csidrivers"]),
    (&["get", "create", "update", "patch", "delete"], "storage.k8s.io", &["csinodes"]),
    (&["get", "list", "watch"], "node.k8s.io", &["runtimeclasses"]),
];

fn node_rules_allow(a: &Attributes) -> bool {
    if !a.resource_request {
        return false;
    }
    let resource = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    NODE_RULES.iter().any(|(verbs, group, resources)| {
        verbs.contains(&a.verb.as_str()) && *group == a.api_group && resources.contains(&resource.as_str())
    })
}

/// `field=value` requirements of a field selector (`!=` and set forms are skipped).
fn field_equals<'a>(selector: Option<&'a str>, field: &str) -> Vec<&'a str> {
    let Some(sel) = selector else { return Vec::new() };
    sel.split(',')
        .filter_map(|req| {
            if req.contains("!=") {
                return None;
            }
            let (k, v) = req.split_once("==").or_else(|| req.split_once('='))?;
            (k.trim() == field).then(|| v.trim())
        })
        .collect()
}

fn sub(a: &Attributes) -> &str {
    a.subresource.as_deref().unwrap_or("")
}

fn name(a: &Attributes) -> &str {
    a.name.as_deref().unwrap_or("")
}

fn ns(a: &Attributes) -> &str {
    a.namespace.as_deref().unwrap_or("")
}

fn related(resource: &'static str, a: &Attributes) -> Step {
    if name(a).is_empty() {
        return no_opinion("No Object name found");
    }
    Step::IfRelated(Related::Namespaced { resource, namespace: ns(a).to_string(), name: name(a).to_string() })
}

/// The Node authorizer's decision for a request, as far as it can be made without looking at
/// other objects. `field_selector` is the request's `fieldSelector` (lists and watches).
pub fn decide(a: &Attributes, field_selector: Option<&str>) -> Step {
    let Some(node) = node_identity(&a.user, &a.groups) else { return no_opinion("") };
    if node.is_empty() {
        return no_opinion(format!("unknown node for user {:?}", a.user));
    }
    if a.resource_request {
        let verb = a.verb.as_str();
        match (a.api_group.as_str(), a.resource.as_str()) {
            ("", "secrets") | ("", "configmaps") => {
                if !matches!(verb, "get" | "list" | "watch") {
                    return no_opinion("can only read resources of this type");
                }
                if !sub(a).is_empty() {
                    return no_opinion("cannot read subresource");
                }
                if ns(a).is_empty() {
                    return no_opinion("can only read namespaced object of this type");
                }
                return related(if a.resource == "secrets" { "secrets" } else { "configmaps" }, a);
            }
            ("", "persistentvolumeclaims") => {
                if sub(a) == "status" {
                    if !matches!(verb, "update" | "patch") {
                        return no_opinion("can only get/update/patch this type");
                    }
                    return related("persistentvolumeclaims", a);
                }
                return get_only(a, |a| related("persistentvolumeclaims", a));
            }
            ("", "persistentvolumes") => {
                return get_only(a, |a| match name(a) {
                    "" => no_opinion("No Object name found"),
                    n => Step::IfRelated(Related::PersistentVolume(n.to_string())),
                });
            }
            ("storage.k8s.io", "volumeattachments") => {
                return get_only(a, |a| match name(a) {
                    "" => no_opinion("No Object name found"),
                    n => Step::IfRelated(Related::VolumeAttachment(n.to_string())),
                });
            }
            ("resource.k8s.io", "resourceclaims") => {
                // Pods' resource claims are not followed: never related.
                return get_only(a, |a| match name(a) {
                    "" => no_opinion("No Object name found"),
                    _ => no_opinion(no_relationship(node)),
                });
            }
            ("", "serviceaccounts") => {
                if verb != "create" || name(a).is_empty() {
                    return no_opinion("can only create tokens for individual service accounts");
                }
                if sub(a) != "token" {
                    return no_opinion("can only create token subresource of serviceaccount");
                }
                return related("serviceaccounts", a);
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
                    return no_opinion("can only get, create, update, patch, or delete a node lease");
                }
                if ns(a) != NODE_LEASE_NAMESPACE {
                    return no_opinion(format!(
                        "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
                    ));
                }
                if verb != "create" && name(a) != node {
                    return no_opinion("can only access node lease with the same name as the requesting node");
                }
                return allow();
            }
            ("storage.k8s.io", "csinodes") => {
                if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
                    return no_opinion("can only get, create, update, patch, or delete a CSINode");
                }
                if !sub(a).is_empty() {
                    return no_opinion("cannot authorize CSINode subresources");
                }
                if verb != "create" && name(a) != node {
                    return no_opinion("can only access CSINode with the same name as the requesting node");
                }
                return allow();
            }
            ("resource.k8s.io", "resourceslices") => {
                if !sub(a).is_empty() {
                    return no_opinion("cannot authorize ResourceSlice subresources");
                }
                return match verb {
                    "create" => allow(),
                    "get" | "update" | "patch" | "delete" => match name(a) {
                        "" => no_opinion("No Object name found"),
                        n => Step::IfRelated(Related::ResourceSlice(n.to_string())),
                    },
                    "watch" | "list" | "deletecollection" => {
                        if field_equals(field_selector, "spec.nodeName").contains(&node)
                            || field_equals(field_selector, "nodeName").contains(&node)
                        {
                            allow()
                        } else {
                            no_opinion(
                                "can only list/watch/deletecollection resourceslices with nodeName field selector",
                            )
                        }
                    }
                    _ => no_opinion(
                        "only the following verbs are allowed for a ResourceSlice: get, watch, list, create, update, patch, delete, deletecollection",
                    ),
                };
            }
            ("", "nodes") => return decide_node(node, a, field_selector),
            ("", "pods") => return decide_pod(node, a, field_selector),
            _ => {}
        }
    }
    if node_rules_allow(a) { allow() } else { no_opinion("") }
}

fn get_only(a: &Attributes, then: impl FnOnce(&Attributes) -> Step) -> Step {
    if a.verb != "get" {
        return no_opinion("can only get individual resources of this type");
    }
    if !sub(a).is_empty() {
        return no_opinion("cannot get subresource");
    }
    then(a)
}

fn decide_node(node: &str, a: &Attributes, field_selector: Option<&str>) -> Step {
    match (sub(a), a.verb.as_str()) {
        // NodeRestriction limits these to the node's own object.
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") => {
            // A list or watch of one node names it with `metadata.name=`, as upstream's request info.
            let by_field = field_equals(field_selector, "metadata.name");
            let requested = match name(a) {
                "" => by_field.first().copied().unwrap_or(""),
                n => n,
            };
            if requested == node {
                allow()
            } else if requested.is_empty() {
                no_opinion(format!("node '{node}' cannot read all nodes, only its own Node object"))
            } else {
                no_opinion(format!("node '{node}' cannot read '{requested}', only its own Node object"))
            }
        }
        _ => no_opinion(""),
    }
}

fn decide_pod(node: &str, a: &Attributes, field_selector: Option<&str>) -> Step {
    match (sub(a), a.verb.as_str()) {
        ("", "get") => related("pods", a),
        ("", "list" | "watch") => {
            if field_equals(field_selector, "spec.nodeName").contains(&node) {
                return allow();
            }
            let by_name = field_equals(field_selector, "metadata.name");
            let single = match name(a) {
                "" => by_name.first().copied().unwrap_or(""),
                n => n,
            };
            if !single.is_empty() {
                return Step::IfRelated(Related::Namespaced {
                    resource: "pods",
                    namespace: ns(a).to_string(),
                    name: single.to_string(),
                });
            }
            no_opinion("can only list/watch pods with spec.nodeName field selector")
        }
        // NodeRestriction limits these to mirror pods / pods bound to the node.
        ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => allow(),
        _ => no_opinion(""),
    }
}

// ---------------------------------------------------------------------------------------------
// What a pod references
// ---------------------------------------------------------------------------------------------

/// The objects a pod references (upstream's VisitPodSecretNames / VisitPodConfigmapNames, its
/// claims, and its service account).
#[derive(Debug, Default, PartialEq)]
pub struct PodRefs {
    pub secrets: Vec<String>,
    pub configmaps: Vec<String>,
    pub claims: Vec<String>,
    pub service_account: Option<String>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str).filter(|x| !x.is_empty())
}

fn arr<'a>(v: &'a Value, ptr: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(ptr).and_then(Value::as_array).into_iter().flatten()
}

/// Everything `pod` references.
pub fn pod_refs(pod: &Value) -> PodRefs {
    let mut r = PodRefs::default();
    let push = |list: &mut Vec<String>, n: Option<&str>| {
        if let Some(n) = n
            && !list.iter().any(|x| x == n)
        {
            list.push(n.to_string());
        }
    };
    for p in arr(pod, "/spec/imagePullSecrets") {
        push(&mut r.secrets, s(p, "/name"));
    }
    for kind in ["initContainers", "containers", "ephemeralContainers"] {
        for c in arr(pod, &format!("/spec/{kind}")) {
            for e in arr(c, "/env") {
                push(&mut r.secrets, s(e, "/valueFrom/secretKeyRef/name"));
                push(&mut r.configmaps, s(e, "/valueFrom/configMapKeyRef/name"));
            }
            for e in arr(c, "/envFrom") {
                push(&mut r.secrets, s(e, "/secretRef/name"));
                push(&mut r.configmaps, s(e, "/configMapRef/name"));
            }
        }
    }
    let pod_name = s(pod, "/metadata/name").unwrap_or("");
    for v in arr(pod, "/spec/volumes") {
        push(&mut r.secrets, s(v, "/secret/secretName"));
        push(&mut r.configmaps, s(v, "/configMap/name"));
        for src in arr(v, "/projected/sources") {
            push(&mut r.secrets, s(src, "/secret/name"));
            push(&mut r.configmaps, s(src, "/configMap/name"));
        }
        push(&mut r.secrets, s(v, "/azureFile/secretName"));
        for ptr in [
            "/cephfs/secretRef/name",
            "/cinder/secretRef/name",
            "/flexVolume/secretRef/name",
            "/iscsi/secretRef/name",
            "/rbd/secretRef/name",
            "/scaleIO/secretRef/name",
            "/storageos/secretRef/name",
            "/csi/nodePublishSecretRef/name",
        ] {
            push(&mut r.secrets, s(v, ptr));
        }
        push(&mut r.claims, s(v, "/persistentVolumeClaim/claimName"));
        if v.get("ephemeral").is_some()
            && let Some(vn) = s(v, "/name")
        {
            push(&mut r.claims, Some(&format!("{pod_name}-{vn}")));
        }
    }
    r.service_account = s(pod, "/spec/serviceAccountName").map(str::to_string);
    r
}

fn bound_to(pod: &Value, node: &str) -> bool {
    s(pod, "/spec/nodeName") == Some(node)
}

/// Whether a pod bound to `node` among `pods` references the namespaced object (`pods`: is the
/// pod itself).
pub fn pods_reference(pods: &[&Value], node: &str, resource: &str, namespace: &str, name: &str) -> bool {
    pods.iter().filter(|p| bound_to(p, node) && s(p, "/metadata/namespace").unwrap_or("") == namespace).any(|p| {
        if resource == "pods" {
            return s(p, "/metadata/name") == Some(name);
        }
        let r = pod_refs(p);
        match resource {
            "secrets" => r.secrets.iter().any(|x| x == name),
            "configmaps" => r.configmaps.iter().any(|x| x == name),
            "persistentvolumeclaims" => r.claims.iter().any(|x| x == name),
            "serviceaccounts" => r.service_account.as_deref() == Some(name),
            _ => false,
        }
    })
}

impl Server {
    async fn cached(&self, group: &str, resource: &str, ns: Option<&str>, name: &str, rev: i64) -> Option<Value> {
        let info = rkube_registry::resources::lookup(group, "v1", resource)?;
        let key = crate::objects::key(info, ns, name);
        self.cache.get(&key, rev).await.ok().flatten().map(|c| c.object())
    }

    async fn cached_pods(&self, ns: Option<&str>, rev: i64) -> Vec<std::sync::Arc<rkube_storage::cache::CachedObject>> {
        let Some(info) = rkube_registry::resources::lookup("", "v1", "pods") else { return Vec::new() };
        let prefix = crate::objects::prefix(info, ns);
        self.cache.list(&prefix, rev).await.map(|(objs, _)| objs).unwrap_or_default()
    }

    /// Is `rel` related to `node`, by the objects in the watch cache (read at the store's
    /// current revision, so that a pod written just before is seen).
    pub(crate) async fn node_related(&self, node: &str, rel: &Related) -> bool {
        let rev = self.store.current_revision().await.unwrap_or(0);
        match rel {
            Related::Namespaced { resource: "pods", namespace, name } => {
                self.cached("", "pods", Some(namespace), name, rev).await.is_some_and(|p| bound_to(&p, node))
            }
            Related::Namespaced { resource, namespace, name } => {
                let pods = self.cached_pods(Some(namespace), rev).await;
                // Only the pods bound to the node are parsed (the projection has spec.nodeName).
                let bound: Vec<Value> =
                    pods.iter().filter(|c| bound_to(&c.selectable(), node)).map(|c| c.object()).collect();
                let refs: Vec<&Value> = bound.iter().collect();
                pods_reference(&refs, node, resource, namespace, name)
            }
            Related::PersistentVolume(pv) => {
                let pods = self.cached_pods(None, rev).await;
                for p in pods.iter().filter(|c| bound_to(&c.selectable(), node)).map(|c| c.object()) {
                    let p = &p;
                    let ns = s(p, "/metadata/namespace").unwrap_or("");
                    for claim in pod_refs(p).claims {
                        if let Some(pvc) = self.cached("", "persistentvolumeclaims", Some(ns), &claim, rev).await
                            && s(&pvc, "/spec/volumeName") == Some(pv.as_str())
                        {
                            return true;
                        }
                    }
                }
                false
            }
            Related::VolumeAttachment(n) => self
                .cached("storage.k8s.io", "volumeattachments", None, n, rev)
                .await
                .is_some_and(|va| s(&va, "/spec/nodeName") == Some(node)),
            Related::ResourceSlice(n) => {
                let mut slice = None;
                for v in ["v1beta1", "v1beta2", "v1"] {
                    if let Some(info) = rkube_registry::resources::lookup("resource.k8s.io", v, "resourceslices") {
                        let key = crate::objects::key(info, None, n);
                        slice = self.cache.get(&key, rev).await.ok().flatten().map(|c| c.object());
                        break;
                    }
                }
                slice.is_some_and(|sl| s(&sl, "/spec/nodeName") == Some(node))
            }
        }
    }

    /// The Node authorizer: NoOpinion for anyone not a node.
    pub async fn node_authorize(&self, a: &Attributes, field_selector: Option<&str>) -> Decision {
        match decide(a, field_selector) {
            Step::Done(d) => d,
            Step::IfRelated(rel) => {
                let node = node_identity(&a.user, &a.groups).unwrap_or("");
                if self.node_related(node, &rel).await {
                    Decision::Allow(String::new())
                } else {
                    Decision::NoOpinion(no_relationship(node))
                }
            }
        }
    }

    /// NodeRestriction for one admission request: looks up the objects the check needs (the pod
    /// evicted, the pod a token is bound to, the node a mirror pod names) in the watch cache,
    /// then runs [`node_restriction`]. Ok for anyone not a node.
    pub async fn admit_node_restriction(&self, req: &AdmissionRequest) -> Result<(), ApiError> {
        if node_identity(&req.user.username, &req.user.groups).is_none() {
            return Ok(());
        }
        let mut found: HashMap<(String, String, String), Value> = HashMap::new();
        for (resource, ns, name) in lookups_needed(req) {
            let ns_opt = (!ns.is_empty()).then_some(ns.as_str());
            if let Some(v) = self.cached("", &resource, ns_opt, &name, 0).await {
                found.insert((resource, ns, name), v);
            }
        }
        node_restriction(req, &|resource: &str, ns: &str, name: &str| {
            found.get(&(resource.to_string(), ns.to_string(), name.to_string())).cloned()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// NodeRestriction
// ---------------------------------------------------------------------------------------------

/// The fields of an object [`node_restriction`] reads for writes of `group`/`resource`/`subresource`
/// (JSON pointers), or None when it may read anything (the whole object is needed). Every node
/// write passes NodeRestriction, so it is given a copy of these fields only, not of the object.
pub fn restriction_fields(group: &str, resource: &str, subresource: &str) -> Option<&'static [&'static str]> {
    const NAME: &[&str] = &["/metadata/name", "/metadata/generateName"];
    const NODE: &[&str] =
        &["/metadata/name", "/metadata/generateName", "/metadata/labels", "/spec/configSource", "/spec/taints"];
    const POD_STATUS: &[&str] = &[
        "/metadata/name",
        "/metadata/generateName",
        "/metadata/labels",
        "/spec/nodeName",
        "/status/resourceClaimStatuses",
    ];
    match (group, resource, subresource) {
        ("", "nodes", _) => Some(NODE),
        ("", "pods", "status") => Some(POD_STATUS),
        ("coordination.k8s.io", "leases", _) | ("storage.k8s.io", "csinodes", _) => Some(NAME),
        _ => None,
    }
}

/// A copy of `fields` (JSON pointers of object members) of `obj`.
pub fn project(obj: &Value, fields: &[&str]) -> Value {
    let mut out = Value::Object(Default::default());
    for f in fields {
        let Some(v) = obj.pointer(f) else { continue };
        let mut at = &mut out;
        let mut parts = f.split('/').skip(1).peekable();
        while let Some(p) = parts.next() {
            let Some(m) = at.as_object_mut() else { break };
            if parts.peek().is_none() {
                m.insert(p.to_string(), v.clone());
                break;
            }
            at = m.entry(p.to_string()).or_insert_with(|| Value::Object(Default::default()));
        }
    }
    out
}

/// Objects [`node_restriction`] will ask its lookup for: (resource, namespace, name), core group.
pub fn lookups_needed(req: &AdmissionRequest) -> Vec<(String, String, String)> {
    let Some(node) = node_identity(&req.user.username, &req.user.groups) else { return Vec::new() };
    let mut out = Vec::new();
    match (req.group.as_str(), req.resource.as_str(), req.subresource.as_str(), req.operation) {
        ("", "pods", "eviction", Operation::Create) => {
            let name = if req.name.is_empty() {
                req.object.as_ref().and_then(|o| s(o, "/metadata/name")).unwrap_or("").to_string()
            } else {
                req.name.clone()
            };
            out.push(("pods".into(), req.namespace.clone(), name));
        }
        ("", "pods", "", Operation::Create) => out.push(("nodes".into(), String::new(), node.to_string())),
        ("", "serviceaccounts", "token", Operation::Create) => {
            if let Some(n) = req.object.as_ref().and_then(|o| s(o, "/spec/boundObjectRef/name")) {
                out.push(("pods".into(), req.namespace.clone(), n.to_string()));
            }
        }
        _ => {}
    }
    out
}

/// The resource (without subresource) as upstream names it in messages.
fn forbidden(req: &AdmissionRequest, msg: impl std::fmt::Display) -> ApiError {
    let mut name = req.name.clone();
    if name.is_empty() {
        let obj = req.object.as_ref();
        name = obj
            .and_then(|o| s(o, "/metadata/name").or_else(|| s(o, "/metadata/generateName")))
            .unwrap_or("Unknown")
            .to_string();
    }
    let resource = qualified(&req.resource, &req.group);
    let mut e = ApiError::forbidden(format!("{resource} {name:?} is forbidden: {msg}"));
    e.group = Some(req.group.clone());
    e.kind = Some(req.resource.clone());
    e.name = Some(name);
    e
}

fn not_found(resource: &str, name: &str) -> ApiError {
    ApiError::not_found("", resource, name)
}

/// A lookup of current objects: (resource, namespace, name) → object, core group.
pub type Lookup<'a> = dyn Fn(&str, &str, &str) -> Option<Value> + 'a;

/// Upstream's NodeRestriction admission plugin for CREATE, UPDATE and DELETE (subresources
/// included). `lookup` answers for the objects [`lookups_needed`] lists. Ok for anyone not a node.
pub fn node_restriction(req: &AdmissionRequest, lookup: &Lookup<'_>) -> Result<(), ApiError> {
    let Some(node) = node_identity(&req.user.username, &req.user.groups) else { return Ok(()) };
    if !matches!(req.operation, Operation::Create | Operation::Update | Operation::Delete) {
        return Ok(());
    }
    if node.is_empty() {
        return Err(forbidden(req, format!("could not determine node from user {:?}", req.user.username)));
    }
    match (req.group.as_str(), req.resource.as_str()) {
        ("", "pods") => match req.subresource.as_str() {
            "" => admit_pod(node, req, lookup),
            "status" => admit_pod_status(node, req),
            "eviction" => admit_eviction(node, req, lookup),
            other => Err(forbidden(
                req,
                format!("unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed"),
            )),
        },
        ("", "nodes") => admit_node(node, req),
        ("", "persistentvolumeclaims") => match req.subresource.as_str() {
            "status" => admit_pvc_status(node, req),
            _ => Err(forbidden(req, "may only update PVC status")),
        },
        ("", "serviceaccounts") => admit_token(node, req, lookup),
        ("coordination.k8s.io", "leases") => {
            if req.namespace != NODE_LEASE_NAMESPACE {
                return Err(forbidden(
                    req,
                    format!("can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"),
                ));
            }
            own_name(node, req, "can only access node lease with the same name as the requesting node")
        }
        ("storage.k8s.io", "csinodes") => {
            own_name(node, req, "can only access CSINode with the same name as the requesting node")
        }
        _ => Ok(()),
    }
}

fn own_name(node: &str, req: &AdmissionRequest, msg: &str) -> Result<(), ApiError> {
    let name = if req.operation == Operation::Create {
        req.object.as_ref().and_then(|o| s(o, "/metadata/name")).unwrap_or("")
    } else {
        req.name.as_str()
    };
    if name != node {
        return Err(forbidden(req, msg));
    }
    Ok(())
}

fn op_name(op: Operation) -> &'static str {
    op.as_str()
}

fn admit_pod(node: &str, req: &AdmissionRequest, lookup: &Lookup<'_>) -> Result<(), ApiError> {
    match req.operation {
        Operation::Create => admit_mirror_pod(node, req, lookup),
        Operation::Delete => {
            let Some(pod) = req.old_object.as_ref() else { return Err(not_found("pods", &req.name)) };
            if !bound_to(pod, node) {
                return Err(forbidden(
                    req,
                    format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        op => Err(forbidden(
            req,
            format!("unexpected operation {:?}, node {node:?} can only create and delete mirror pods", op_name(op)),
        )),
    }
}

fn admit_mirror_pod(node: &str, req: &AdmissionRequest, lookup: &Lookup<'_>) -> Result<(), ApiError> {
    let Some(pod) = req.object.as_ref() else { return Err(forbidden(req, "unexpected type <nil>")) };
    const MIRROR: &str = "kubernetes.io/config.mirror";
    if pod.pointer("/metadata/annotations").and_then(|a| a.get(MIRROR)).is_none() {
        return Err(forbidden(
            req,
            format!("pod does not have {MIRROR:?} annotation, node {node:?} can only create mirror pods"),
        ));
    }
    if !bound_to(pod, node) {
        return Err(forbidden(req, format!("node {node:?} can only create pods with spec.nodeName set to itself")));
    }
    let owners: Vec<&Value> = arr(pod, "/metadata/ownerReferences").collect();
    if owners.len() > 1 {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with a single owner reference set to itself"),
        ));
    }
    let Some(owner) = owners.first() else {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with an owner reference set to itself"),
        ));
    };
    if s(owner, "/apiVersion") != Some("v1") || s(owner, "/kind") != Some("Node") || s(owner, "/name") != Some(node) {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with an owner reference set to itself"),
        ));
    }
    if owner.get("controller").and_then(Value::as_bool) != Some(true) {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with a controller owner reference set to itself"),
        ));
    }
    if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
        return Err(forbidden(req, format!("node {node:?} must not set blockOwnerDeletion on an owner reference")));
    }
    let Some(node_obj) = lookup("nodes", "", node) else { return Err(not_found("nodes", node)) };
    let uid = s(&node_obj, "/metadata/uid").unwrap_or("");
    let owner_uid = s(owner, "/uid").unwrap_or("");
    if owner_uid != uid {
        return Err(forbidden(req, format!("node {node} UID mismatch: expected {owner_uid} got {uid}")));
    }
    let refs = pod_refs(pod);
    if refs.service_account.is_some() {
        return Err(forbidden(req, format!("node {node:?} can not create pods that reference a service account")));
    }
    if !refs.secrets.is_empty() {
        return Err(forbidden(req, format!("node {node:?} can not create pods that reference secrets")));
    }
    if !refs.configmaps.is_empty() {
        return Err(forbidden(req, format!("node {node:?} can not create pods that reference configmaps")));
    }
    let volumes: Vec<&Value> = arr(pod, "/spec/volumes").collect();
    if volumes.iter().any(|v| arr(v, "/projected/sources").any(|src| src.get("clusterTrustBundle").is_some())) {
        return Err(forbidden(req, format!("node {node:?} can not create pods that reference clustertrustbundles")));
    }
    if volumes.iter().any(|v| v.get("persistentVolumeClaim").is_some()) {
        return Err(forbidden(req, format!("node {node:?} can not create pods that reference persistentvolumeclaims")));
    }
    Ok(())
}

fn admit_pod_status(node: &str, req: &AdmissionRequest) -> Result<(), ApiError> {
    if req.operation != Operation::Update {
        return Err(forbidden(req, format!("unexpected operation {:?}", op_name(req.operation))));
    }
    let (Some(old), Some(new)) = (req.old_object.as_ref(), req.object.as_ref()) else {
        return Err(forbidden(req, "unexpected type <nil>"));
    };
    if !bound_to(old, node) {
        return Err(forbidden(
            req,
            format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"),
        ));
    }
    let labels =
        |p: &Value| p.pointer("/metadata/labels").cloned().filter(|l| l.as_object().is_some_and(|m| !m.is_empty()));
    if labels(old) != labels(new) {
        return Err(forbidden(req, format!("node {node:?} cannot update labels through pod status")));
    }
    let claims = |p: &Value| {
        arr(p, "/status/resourceClaimStatuses")
            .map(|c| (s(c, "/name").map(str::to_string), s(c, "/resourceClaimName").map(str::to_string)))
            .collect::<Vec<_>>()
    };
    if claims(old) != claims(new) {
        return Err(forbidden(req, format!("node {node:?} cannot update resource claim statues")));
    }
    Ok(())
}

fn admit_eviction(node: &str, req: &AdmissionRequest, lookup: &Lookup<'_>) -> Result<(), ApiError> {
    if req.operation != Operation::Create {
        return Err(forbidden(req, format!("unexpected operation {}", op_name(req.operation))));
    }
    let mut name = req.name.as_str();
    if name.is_empty() {
        name = req.object.as_ref().and_then(|o| s(o, "/metadata/name")).unwrap_or("");
        if name.is_empty() {
            return Err(forbidden(req, "could not determine pod from request data"));
        }
    }
    let Some(pod) = lookup("pods", &req.namespace, name) else { return Err(not_found("pods", name)) };
    if !bound_to(&pod, node) {
        return Err(forbidden(req, format!("node {node} can only evict pods with spec.nodeName set to itself")));
    }
    Ok(())
}

fn admit_pvc_status(node: &str, req: &AdmissionRequest) -> Result<(), ApiError> {
    if req.operation != Operation::Update {
        return Err(forbidden(req, format!("unexpected operation {:?}", op_name(req.operation))));
    }
    let (Some(old), Some(new)) = (req.old_object.as_ref(), req.object.as_ref()) else {
        return Err(forbidden(req, "unexpected type <nil>"));
    };
    let scrub = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        if let Some(st) = v.get_mut("status").and_then(Value::as_object_mut) {
            for f in ["capacity", "conditions", "allocatedResourceStatuses", "allocatedResources"] {
                st.remove(f);
            }
            if st.is_empty() {
                v.as_object_mut().map(|o| o.remove("status"));
            }
        }
        v
    };
    let (o, n) = (scrub(old), scrub(new));
    if o != n {
        let changed = differing_paths(&o, &n, "");
        return Err(forbidden(
            req,
            format!(
                "node {node:?} is not allowed to update fields other than status.capacity and status.conditions: {}",
                changed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Dotted paths where two JSON values differ (a short stand-in for upstream's cmp.Diff).
fn differing_paths(a: &Value, b: &Value, at: &str) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let p = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                    differing_paths(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &p)
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![at.to_string()],
    }
}

const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "kubernetes.io/os",
    "kubernetes.io/arch",
];
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(p, _)| p).unwrap_or("")
}

fn in_domain(ns: &str, domain: &str) -> bool {
    ns == domain || ns.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
}

/// Labels a kubelet may set on its own Node (upstream's `kubeletapis.IsKubeletLabel`).
pub fn is_kubelet_label(key: &str) -> bool {
    KUBELET_LABELS.contains(&key) || KUBELET_LABEL_NAMESPACES.iter().any(|d| in_domain(label_namespace(key), d))
}

/// Of the labels that differ between `new` and `old`, those a node may not add, remove or change.
pub fn forbidden_node_labels(new: Option<&Value>, old: Option<&Value>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let a = new.and_then(Value::as_object).unwrap_or(&empty);
    let b = old.and_then(Value::as_object).unwrap_or(&empty);
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .chain(b.iter().filter(|(k, v)| a.get(*k) != Some(v)))
        .map(|(k, _)| k.clone())
        .filter(|k| {
            let ns = label_namespace(k);
            let restricted = in_domain(ns, "node-restriction.kubernetes.io");
            let kube = in_domain(ns, "kubernetes.io") || in_domain(ns, "k8s.io");
            restricted || (kube && !is_kubelet_label(k))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn admit_node(node: &str, req: &AdmissionRequest) -> Result<(), ApiError> {
    let requested = if req.name.is_empty() && req.operation == Operation::Create {
        req.object.as_ref().and_then(|o| s(o, "/metadata/name")).unwrap_or("")
    } else {
        req.name.as_str()
    };
    if requested != node {
        return Err(forbidden(req, format!("node {node:?} is not allowed to modify node {requested:?}")));
    }
    let new = req.object.as_ref();
    match req.operation {
        Operation::Create => {
            let Some(n) = new else { return Err(forbidden(req, "unexpected type <nil>")) };
            if n.pointer("/spec/configSource").is_some_and(|c| !c.is_null()) {
                return Err(forbidden(
                    req,
                    format!("node {node:?} is not allowed to create pods with a non-nil configSource"),
                ));
            }
            let bad = forbidden_node_labels(n.pointer("/metadata/labels"), None);
            if !bad.is_empty() {
                return Err(forbidden(
                    req,
                    format!("node {node:?} is not allowed to set the following labels: {}", bad.join(", ")),
                ));
            }
        }
        Operation::Update => {
            let (Some(n), Some(o)) = (new, req.old_object.as_ref()) else {
                return Err(forbidden(req, "unexpected type <nil>"));
            };
            let cs = n.pointer("/spec/configSource").filter(|c| !c.is_null());
            if cs.is_some() && cs != o.pointer("/spec/configSource") {
                return Err(forbidden(
                    req,
                    format!("node {node:?} is not allowed to update configSource to a new non-nil configSource"),
                ));
            }
            let taints =
                |v: &Value| v.pointer("/spec/taints").cloned().filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
            if taints(n) != taints(o) {
                return Err(forbidden(req, format!("node {node:?} is not allowed to modify taints")));
            }
            let bad = forbidden_node_labels(n.pointer("/metadata/labels"), o.pointer("/metadata/labels"));
            if !bad.is_empty() {
                return Err(forbidden(req, format!("is not allowed to modify labels: {}", bad.join(", "))));
            }
        }
        _ => {}
    }
    Ok(())
}

fn admit_token(node: &str, req: &AdmissionRequest, lookup: &Lookup<'_>) -> Result<(), ApiError> {
    if req.operation != Operation::Create || req.subresource != "token" {
        return Ok(());
    }
    let Some(tr) = req.object.as_ref() else { return Err(forbidden(req, "unexpected type <nil>")) };
    let r = tr.pointer("/spec/boundObjectRef");
    let bound =
        r.filter(|r| s(r, "/apiVersion") == Some("v1") && s(r, "/kind") == Some("Pod") && s(r, "/name").is_some());
    let Some(r) = bound else { return Err(forbidden(req, "node requested token not bound to a pod")) };
    let Some(uid) = s(r, "/uid") else {
        return Err(forbidden(req, "node requested token with a pod binding without a uid"));
    };
    let pod_name = s(r, "/name").unwrap_or("");
    let Some(pod) = lookup("pods", &req.namespace, pod_name) else { return Err(not_found("pods", pod_name)) };
    if s(&pod, "/metadata/uid") != Some(uid) {
        return Err(forbidden(
            req,
            format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    if !bound_to(&pod, node) {
        return Err(forbidden(req, "node requested token bound to a pod scheduled on a different node"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_registry::admission::UserInfo;
    use serde_json::json;

    fn node_attrs(node: &str, verb: &str, ns: Option<&str>, group: &str, resource: &str) -> Attributes {
        let user = format!("system:node:{node}");
        Attributes::resource(&user, &["system:nodes", "system:authenticated"], verb, ns, group, resource)
    }

    fn done(s: Step) -> Decision {
        match s {
            Step::Done(d) => d,
            Step::IfRelated(r) => panic!("expected a decision, got {r:?}"),
        }
    }

    #[test]
    fn authorization_modes_parse_as_upstream() {
        use crate::authz::{AuthzMode, parse_authorization_modes};
        assert_eq!(parse_authorization_modes("Node,RBAC"), Ok(vec![AuthzMode::Node, AuthzMode::Rbac]));
        assert_eq!(parse_authorization_modes("RBAC"), Ok(vec![AuthzMode::Rbac]));
        assert_eq!(parse_authorization_modes("AlwaysAllow"), Ok(vec![AuthzMode::AlwaysAllow]));
        assert_eq!(
            parse_authorization_modes("RBAC,Foo"),
            Err("authorization-mode \"Foo\" is not a valid mode".to_string())
        );
        assert!(parse_authorization_modes("RBAC,RBAC").is_err());
        assert!(parse_authorization_modes("").is_err());
    }

    #[test]
    fn identity_needs_group_and_prefix() {
        let nodes = vec!["system:nodes".to_string()];
        assert_eq!(node_identity("system:node:n1", &nodes), Some("n1"));
        assert_eq!(node_identity("system:node:n1", &[]), None);
        assert_eq!(node_identity("alice", &nodes), None);
        assert_eq!(node_identity("system:node:", &nodes), Some(""));
    }

    #[test]
    fn decision_table() {
        // Not a node: no opinion, nothing to look up.
        let a = Attributes::resource("alice", &["system:nodes"], "get", Some("d"), "", "secrets").with_name("s");
        assert_eq!(decide(&a, None), Step::Done(Decision::NoOpinion(String::new())));
        // Unidentifiable node.
        let a = Attributes::resource("system:node:", &["system:nodes"], "get", None, "", "nodes");
        assert_eq!(done(decide(&a, None)).reason(), "unknown node for user \"system:node:\"");
        // Secrets: reads of one named object, decided by relationship.
        let a = node_attrs("n1", "get", Some("d"), "", "secrets").with_name("s");
        assert_eq!(
            decide(&a, None),
            Step::IfRelated(Related::Namespaced { resource: "secrets", namespace: "d".into(), name: "s".into() })
        );
        let a = node_attrs("n1", "update", Some("d"), "", "secrets").with_name("s");
        assert_eq!(done(decide(&a, None)).reason(), "can only read resources of this type");
        let a = node_attrs("n1", "list", Some("d"), "", "configmaps");
        assert_eq!(done(decide(&a, None)).reason(), "No Object name found");
        let a = node_attrs("n1", "get", None, "", "configmaps").with_name("c");
        assert_eq!(done(decide(&a, None)).reason(), "can only read namespaced object of this type");
        // PVs through claims; PVC status updates.
        let a = node_attrs("n1", "get", None, "", "persistentvolumes").with_name("pv1");
        assert_eq!(decide(&a, None), Step::IfRelated(Related::PersistentVolume("pv1".into())));
        let a = node_attrs("n1", "list", None, "", "persistentvolumes");
        assert_eq!(done(decide(&a, None)).reason(), "can only get individual resources of this type");
        let a =
            node_attrs("n1", "get", Some("d"), "", "persistentvolumeclaims").with_name("c").with_subresource("status");
        assert_eq!(done(decide(&a, None)).reason(), "can only get/update/patch this type");
        // Tokens.
        let a = node_attrs("n1", "create", Some("d"), "", "serviceaccounts").with_name("default");
        assert_eq!(done(decide(&a, None)).reason(), "can only create token subresource of serviceaccount");
        let a = a.with_subresource("token");
        assert!(matches!(decide(&a, None), Step::IfRelated(Related::Namespaced { resource: "serviceaccounts", .. })));
        // Leases: its own, in kube-node-lease.
        let a = node_attrs("n1", "update", Some("kube-node-lease"), "coordination.k8s.io", "leases").with_name("n1");
        assert!(done(decide(&a, None)).is_allowed());
        let a = node_attrs("n1", "update", Some("kube-node-lease"), "coordination.k8s.io", "leases").with_name("n2");
        assert_eq!(
            done(decide(&a, None)).reason(),
            "can only access node lease with the same name as the requesting node"
        );
        let a = node_attrs("n1", "get", Some("default"), "coordination.k8s.io", "leases").with_name("n1");
        assert_eq!(
            done(decide(&a, None)).reason(),
            "can only access leases in the \"kube-node-lease\" system namespace"
        );
        // Nodes: read only its own; writes left to NodeRestriction.
        let a = node_attrs("n1", "get", None, "", "nodes").with_name("n2");
        assert_eq!(done(decide(&a, None)).reason(), "node 'n1' cannot read 'n2', only its own Node object");
        let a = node_attrs("n1", "list", None, "", "nodes");
        assert_eq!(done(decide(&a, None)).reason(), "node 'n1' cannot read all nodes, only its own Node object");
        assert!(done(decide(&a, Some("metadata.name=n1"))).is_allowed());
        let a = node_attrs("n1", "patch", None, "", "nodes").with_name("n2").with_subresource("status");
        assert!(done(decide(&a, None)).is_allowed());
        let a = node_attrs("n1", "delete", None, "", "nodes").with_name("n1");
        assert_eq!(done(decide(&a, None)), Decision::NoOpinion(String::new()));
        // Pods: lists only with spec.nodeName=<itself>.
        let a = node_attrs("n1", "watch", None, "", "pods");
        assert_eq!(done(decide(&a, None)).reason(), "can only list/watch pods with spec.nodeName field selector");
        assert_eq!(
            done(decide(&a, Some("spec.nodeName=n2"))).reason(),
            "can only list/watch pods with spec.nodeName field selector"
        );
        assert!(done(decide(&a, Some("status.phase!=Succeeded,spec.nodeName=n1"))).is_allowed());
        let a = node_attrs("n1", "get", Some("d"), "", "pods").with_name("p");
        assert!(matches!(decide(&a, None), Step::IfRelated(Related::Namespaced { resource: "pods", .. })));
        for (verb, sub) in [("create", ""), ("delete", ""), ("patch", "status"), ("create", "eviction")] {
            let a = node_attrs("n1", verb, Some("d"), "", "pods").with_name("p").with_subresource(sub);
            assert!(done(decide(&a, None)).is_allowed(), "{verb} pods/{sub}");
        }
        let a = node_attrs("n1", "update", Some("d"), "", "pods").with_name("p");
        assert!(!done(decide(&a, None)).is_allowed());
        // Static rules; anything else falls through.
        assert!(done(decide(&node_attrs("n1", "create", Some("d"), "", "events"), None)).is_allowed());
        assert!(done(decide(&node_attrs("n1", "watch", None, "", "services"), None)).is_allowed());
        let a = node_attrs("n1", "create", None, "authentication.k8s.io", "tokenreviews");
        assert!(done(decide(&a, None)).is_allowed());
        assert_eq!(
            done(decide(&node_attrs("n1", "list", None, "apps", "deployments"), None)),
            Decision::NoOpinion("".into())
        );
    }

    fn pod(name: &str, node: &str, spec: Value) -> Value {
        let mut spec = spec;
        spec["nodeName"] = json!(node);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}")}, "spec": spec})
    }

    #[test]
    fn pod_references_follow_every_source() {
        let p = pod(
            "web",
            "n1",
            json!({
                "serviceAccountName": "sa",
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-c", "key": "k"}}}],
                    "envFrom": [{"configMapRef": {"name": "from-c"}}]}],
                "volumes": [
                    {"name": "v1", "secret": {"secretName": "vol-s"}},
                    {"name": "v2", "configMap": {"name": "vol-c"}},
                    {"name": "v3", "projected": {"sources": [{"secret": {"name": "proj-s"}}, {"configMap": {"name": "proj-c"}}]}},
                    {"name": "v4", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "v6", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-s"}}}
                ]
            }),
        );
        let r = pod_refs(&p);
        assert_eq!(r.secrets, ["pull", "init-env", "env-s", "vol-s", "proj-s", "csi-s"]);
        assert_eq!(r.configmaps, ["env-c", "from-c", "vol-c", "proj-c"]);
        assert_eq!(r.claims, ["data", "web-scratch"]);
        assert_eq!(r.service_account.as_deref(), Some("sa"));
        let other = pod("db", "n2", json!({"volumes": [{"name": "v", "secret": {"secretName": "db-s"}}]}));
        let pods = [&p, &other];
        assert!(pods_reference(&pods, "n1", "secrets", "d", "vol-s"));
        assert!(!pods_reference(&pods, "n1", "secrets", "d", "db-s"));
        assert!(pods_reference(&pods, "n2", "secrets", "d", "db-s"));
        assert!(!pods_reference(&pods, "n1", "secrets", "other-ns", "vol-s"));
        assert!(pods_reference(&pods, "n1", "pods", "d", "web"));
        assert!(!pods_reference(&pods, "n1", "pods", "d", "db"));
    }

    fn req(
        node: &str,
        op: Operation,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> AdmissionRequest {
        AdmissionRequest {
            uid: "u".into(),
            group: group.into(),
            version: "v1".into(),
            kind: String::new(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: ns.into(),
            operation: op,
            user: UserInfo {
                username: format!("system:node:{node}"),
                groups: vec!["system:nodes".into(), "system:authenticated".into()],
                ..Default::default()
            },
            object: None,
            old_object: None,
            options: None,
            dry_run: false,
        }
    }

    fn none(_: &str, _: &str, _: &str) -> Option<Value> {
        None
    }

    fn refused(r: Result<(), ApiError>) -> String {
        match r {
            Err(e) => {
                assert_eq!(e.code, 403, "{}", e.message);
                e.message
            }
            Ok(()) => panic!("expected 403"),
        }
    }

    #[test]
    fn restriction_of_nodes() {
        let node = |name: &str, labels: Value, taints: Value| json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}});
        // Creating its own node with kubelet labels: fine; another node's: refused.
        let mut r = req("n1", Operation::Create, "", "nodes", "", "", "");
        r.object = Some(node(
            "n1",
            json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/x": "y", "team": "a"}),
            json!([]),
        ));
        assert!(node_restriction(&r, &none).is_ok());
        r.object = Some(node("n2", json!({}), json!([])));
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#
        );
        r.object = Some(node(
            "n1",
            json!({"node-restriction.kubernetes.io/a": "1", "node-role.kubernetes.io/master": "", "example.k8s.io/b": "2"}),
            json!([]),
        ));
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: example.k8s.io/b, node-restriction.kubernetes.io/a, node-role.kubernetes.io/master"#
        );
        // Status updates of its own node; not taints or restricted labels.
        let old = node("n1", json!({"a": "1"}), json!([{"key": "k", "effect": "NoSchedule"}]));
        let mut r = req("n1", Operation::Update, "", "nodes", "status", "", "n1");
        r.old_object = Some(old.clone());
        r.object = Some(old.clone());
        assert!(node_restriction(&r, &none).is_ok());
        r.object = Some(node("n1", json!({"a": "1"}), json!([])));
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"nodes "n1" is forbidden: node "n1" is not allowed to modify taints"#
        );
        r.object = Some(node("n1", json!({"a": "1", "kubernetes.io/foo": "x"}), old["spec"]["taints"].clone()));
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"nodes "n1" is forbidden: is not allowed to modify labels: kubernetes.io/foo"#
        );
        let mut r2 = req("n1", Operation::Update, "", "nodes", "status", "", "n2");
        r2.old_object = Some(old.clone());
        r2.object = Some(old);
        refused(node_restriction(&r2, &none));
        // Deleting only itself.
        assert!(node_restriction(&req("n1", Operation::Delete, "", "nodes", "", "", "n1"), &none).is_ok());
        refused(node_restriction(&req("n1", Operation::Delete, "", "nodes", "", "", "n2"), &none));
        // Not a node: untouched.
        let mut r = req("n1", Operation::Delete, "", "nodes", "", "", "n2");
        r.user.groups.clear();
        assert!(node_restriction(&r, &none).is_ok());
    }

    /// NodeRestriction given only [`restriction_fields`] decides as it does given the objects.
    #[test]
    fn restriction_on_projected_fields_decides_as_on_objects() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {"a": "1"}, "uid": "u1", "resourceVersion": "7"},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.0.0.0/24"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "images": [{"names": ["x"]}]},
        });
        let pod = json!({
            "metadata": {"name": "web", "namespace": "d", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "resourceClaimStatuses": [{"name": "a", "resourceClaimName": "x"}]},
        });
        let edit = |v: &Value, ptr: &str, to: Value| {
            let mut v = v.clone();
            if let Some(slot) = v.pointer_mut(ptr) {
                *slot = to;
            }
            v
        };
        let cases: Vec<(AdmissionRequest, Value, Value)> = vec![
            (req("n1", Operation::Update, "", "nodes", "status", "", "n1"), node.clone(), node.clone()),
            (
                req("n1", Operation::Update, "", "nodes", "", "", "n1"),
                node.clone(),
                edit(&node, "/spec/taints", json!([])),
            ),
            (
                req("n1", Operation::Update, "", "nodes", "status", "", "n1"),
                node.clone(),
                edit(&node, "/metadata/labels", json!({"a": "1", "kubernetes.io/foo": "x"})),
            ),
            (req("n2", Operation::Update, "", "nodes", "status", "", "n1"), node.clone(), node.clone()),
            (
                req("n1", Operation::Update, "", "pods", "status", "d", "web"),
                pod.clone(),
                edit(&pod, "/status/phase", json!("Succeeded")),
            ),
            (req("n2", Operation::Update, "", "pods", "status", "d", "web"), pod.clone(), pod.clone()),
            (
                req("n1", Operation::Update, "", "pods", "status", "d", "web"),
                pod.clone(),
                edit(&pod, "/metadata/labels", json!({"app": "other"})),
            ),
            (
                req("n1", Operation::Update, "", "pods", "status", "d", "web"),
                pod.clone(),
                edit(&pod, "/status/resourceClaimStatuses", json!([])),
            ),
        ];
        for (r, old, new) in cases {
            let mut full = r.clone();
            full.old_object = Some(old.clone());
            full.object = Some(new.clone());
            let fields = restriction_fields(&r.group, &r.resource, &r.subresource).unwrap_or_default();
            assert!(!fields.is_empty());
            let mut projected = r;
            projected.old_object = Some(project(&old, fields));
            projected.object = Some(project(&new, fields));
            let (a, b) = (node_restriction(&full, &none), node_restriction(&projected, &none));
            assert_eq!(a.as_ref().err().map(|e| &e.message), b.as_ref().err().map(|e| &e.message));
        }
        assert!(restriction_fields("", "pods", "").is_none());
        assert_eq!(
            project(&pod, &["/spec/nodeName", "/metadata/labels"]),
            json!({"spec": {"nodeName": "n1"}, "metadata": {"labels": {"app": "web"}}})
        );
    }

    #[test]
    fn restriction_of_pods_leases_and_tokens() {
        let mine = pod("web", "n1", json!({"containers": []}));
        let theirs = pod("db", "n2", json!({"containers": []}));
        // pod status
        let mut r = req("n1", Operation::Update, "", "pods", "status", "d", "web");
        r.old_object = Some(mine.clone());
        let mut updated = mine.clone();
        updated["status"] = json!({"phase": "Running"});
        r.object = Some(updated.clone());
        assert!(node_restriction(&r, &none).is_ok());
        updated["metadata"]["labels"] = json!({"x": "y"});
        r.object = Some(updated);
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"pods "web" is forbidden: node "n1" cannot update labels through pod status"#
        );
        let mut r = req("n1", Operation::Update, "", "pods", "status", "d", "db");
        r.old_object = Some(theirs.clone());
        r.object = Some(theirs.clone());
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"pods "db" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        );
        // delete
        let mut r = req("n1", Operation::Delete, "", "pods", "", "d", "db");
        r.old_object = Some(theirs.clone());
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"pods "db" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#
        );
        r.old_object = Some(mine.clone());
        assert!(node_restriction(&r, &none).is_ok());
        // update of a pod (not status)
        let mut r = req("n1", Operation::Update, "", "pods", "", "d", "web");
        r.old_object = Some(mine.clone());
        r.object = Some(mine.clone());
        refused(node_restriction(&r, &none));
        // eviction
        let lookup = |res: &str, ns: &str, name: &str| -> Option<Value> {
            match (res, ns, name) {
                ("pods", "d", "web") => Some(pod("web", "n1", json!({}))),
                ("pods", "d", "db") => Some(pod("db", "n2", json!({}))),
                ("nodes", "", "n1") => Some(json!({"metadata": {"name": "n1", "uid": "node-uid"}})),
                _ => None,
            }
        };
        let mut r = req("n1", Operation::Create, "", "pods", "eviction", "d", "db");
        assert_eq!(lookups_needed(&r), vec![("pods".to_string(), "d".to_string(), "db".to_string())]);
        assert_eq!(
            refused(node_restriction(&r, &lookup)),
            r#"pods "db" is forbidden: node n1 can only evict pods with spec.nodeName set to itself"#
        );
        r.name = "web".into();
        assert!(node_restriction(&r, &lookup).is_ok());
        r.name = "gone".into();
        assert_eq!(node_restriction(&r, &lookup).map_err(|e| e.code), Err(404));
        // mirror pods
        let mut r = req("n1", Operation::Create, "", "pods", "", "d", "");
        let mut mirror = json!({"metadata": {"name": "static-web-n1", "namespace": "d",
            "annotations": {"kubernetes.io/config.mirror": "hash"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}});
        r.object = Some(mirror.clone());
        assert!(node_restriction(&r, &lookup).is_ok());
        mirror["spec"]["serviceAccountName"] = json!("default");
        r.object = Some(mirror.clone());
        assert_eq!(
            refused(node_restriction(&r, &lookup)),
            r#"pods "static-web-n1" is forbidden: node "n1" can not create pods that reference a service account"#
        );
        mirror["metadata"]["annotations"] = json!({});
        r.object = Some(mirror);
        assert!(refused(node_restriction(&r, &lookup)).contains("can only create mirror pods"));
        // leases
        let mut r = req("n1", Operation::Create, "coordination.k8s.io", "leases", "", "kube-node-lease", "");
        r.object = Some(json!({"metadata": {"name": "n2"}}));
        assert_eq!(
            refused(node_restriction(&r, &none)),
            r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
        );
        r.object = Some(json!({"metadata": {"name": "n1"}}));
        assert!(node_restriction(&r, &none).is_ok());
        let r = req("n1", Operation::Update, "coordination.k8s.io", "leases", "", "default", "n1");
        refused(node_restriction(&r, &none));
        // tokens
        let mut r = req("n1", Operation::Create, "", "serviceaccounts", "token", "d", "default");
        r.object = Some(json!({"spec": {"audiences": ["x"]}}));
        assert_eq!(
            refused(node_restriction(&r, &lookup)),
            r#"serviceaccounts "default" is forbidden: node requested token not bound to a pod"#
        );
        r.object = Some(
            json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "db", "uid": "uid-db"}}}),
        );
        assert_eq!(
            refused(node_restriction(&r, &lookup)),
            r#"serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a different node"#
        );
        r.object = Some(
            json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web"}}}),
        );
        assert!(node_restriction(&r, &lookup).is_ok());
        // PVC status: only capacity and conditions
        let pvc = json!({"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"}, "spec": {"volumeName": "pv"}, "status": {"phase": "Bound"}});
        let mut r = req("n1", Operation::Update, "", "persistentvolumeclaims", "status", "d", "c");
        r.old_object = Some(pvc.clone());
        let mut new = pvc.clone();
        new["metadata"]["resourceVersion"] = json!("2");
        new["status"]["capacity"] = json!({"storage": "2Gi"});
        r.object = Some(new.clone());
        assert!(node_restriction(&r, &none).is_ok());
        new["status"]["phase"] = json!("Lost");
        r.object = Some(new);
        assert!(refused(node_restriction(&r, &none)).contains("status.phase"));
        refused(node_restriction(&req("n1", Operation::Delete, "", "persistentvolumeclaims", "", "d", "c"), &none));
    }

    /// The Node,RBAC chain on a real in-process apiserver: reads follow pods, lists need the
    /// node's field selector, writes of its own objects go through.
    #[tokio::test]
    async fn node_authorizer_on_a_server() {
        use crate::authz::AuthzMode;
        use crate::inprocess::component_user;
        use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
        use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

        let env = crate::testenv::TestEnv::start().await.unwrap();
        env.server.set_authorization_modes(vec![AuthzMode::Node, AuthzMode::Rbac]);
        env.server.start_rbac().await.unwrap();
        let admin = env.client();
        // Upstream binds the system:node role to no one: the Node authorizer decides for kubelets.
        let crb: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
        let _ = crb.delete("system:node", &Default::default()).await;

        let nodes: Api<Node> = Api::all(admin.clone());
        for n in ["n1", "n2"] {
            let node: Node = serde_json::from_value(json!({"metadata": {"name": n}})).unwrap();
            nodes.create(&PostParams::default(), &node).await.unwrap();
        }
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
        for s in ["used", "unused"] {
            let secret: Secret =
                serde_json::from_value(json!({"metadata": {"name": s}, "stringData": {"k": "v"}})).unwrap();
            secrets.create(&PostParams::default(), &secret).await.unwrap();
        }
        let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "theirs"}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
        for (name, node, vol) in [
            ("web", "n1", json!({"secret": {"secretName": "used"}})),
            ("db", "n2", json!({"configMap": {"name": "theirs"}})),
        ] {
            let mut v = vol;
            v["name"] = json!("v");
            let p: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"nodeName": node,
                "containers": [{"name": "c", "image": "nginx"}], "volumes": [v]}}))
            .unwrap();
            pods.create(&PostParams::default(), &p).await.unwrap();
        }

        let n1 = env.client_as(component_user("system:node:n1"));
        let n1_secrets: Api<Secret> = Api::namespaced(n1.clone(), "default");
        let n1_cms: Api<ConfigMap> = Api::namespaced(n1.clone(), "default");
        let n1_pods: Api<Pod> = Api::namespaced(n1.clone(), "default");
        let n1_nodes: Api<Node> = Api::all(n1.clone());
        let code = |e: kube::Error| match e {
            kube::Error::Api(s) => (s.code, s.message),
            other => (0, other.to_string()),
        };
        // The binding's removal reaches the policy through the RBAC watch: wait for it.
        let mut denied = None;
        for _ in 0..100 {
            match n1_secrets.get("unused").await {
                Err(e) => {
                    denied = Some(code(e));
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        let (status, msg) = denied.expect("a node may not read a secret no pod of it uses");
        assert_eq!(status, 403);
        assert_eq!(
            msg,
            "secrets \"unused\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
        );
        assert!(n1_secrets.get("used").await.is_ok(), "a secret its pod mounts");
        assert_eq!(code(n1_cms.get("theirs").await.unwrap_err()).0, 403, "another node's pod's configmap");
        assert!(n1_pods.get("web").await.is_ok());
        assert_eq!(code(n1_pods.get("db").await.unwrap_err()).0, 403);
        assert!(n1_nodes.get("n1").await.is_ok());
        assert_eq!(code(n1_nodes.get("n2").await.unwrap_err()).0, 403);
        // Lists: pods only with its spec.nodeName selector (authorized with the request's selector).
        let a =
            crate::authz::resource_attributes(&component_user("system:node:n1"), "list", None, "", "pods", None, None);
        assert_eq!(env.server.authorize_request(&a, None).await.map_err(|e| e.code), Err(403));
        assert!(env.server.authorize_request(&a, Some("spec.nodeName=n1")).await.is_ok());
        assert_eq!(env.server.authorize_request(&a, Some("spec.nodeName=n2")).await.map_err(|e| e.code), Err(403));
        // Its own status writes.
        let st = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        n1_nodes.patch_status("n1", &PatchParams::default(), &Patch::Merge(&st)).await.unwrap();
        n1_pods
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&json!({"status": {"phase": "Running"}})))
            .await
            .unwrap();
        // The writes the authorizer lets through for any node are NodeRestriction's to refuse.
        let db = pods.get("db").await.unwrap();
        let mut r = req("n1", Operation::Update, "", "pods", "status", "default", "db");
        r.old_object = Some(serde_json::to_value(&db).unwrap());
        r.object = r.old_object.clone();
        assert_eq!(env.server.admit_node_restriction(&r).await.map_err(|e| e.code), Err(403));
        let mut r = req("n1", Operation::Create, "", "pods", "eviction", "default", "db");
        r.object = Some(json!({"metadata": {"name": "db"}}));
        assert_eq!(env.server.admit_node_restriction(&r).await.map_err(|e| e.code), Err(403));
        r.name = "web".into();
        assert!(env.server.admit_node_restriction(&r).await.is_ok());
        // Leases: its own only.
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(n1.clone(), "kube-node-lease");
        assert_eq!(code(leases.get("n2").await.unwrap_err()).0, 403);
        // Someone else is untouched by the Node authorizer: RBAC decides.
        let jane =
            env.client_as(crate::server::User { name: "jane".into(), groups: vec!["system:authenticated".into()] });
        let jane_secrets: Api<Secret> = Api::namespaced(jane, "default");
        let (status, msg) = code(jane_secrets.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(status, 403);
        assert!(!msg.contains("node"), "{msg}");
    }
}
