//! Authorization: `--authorization-mode`, upstream's comma list of `AlwaysAllow`
//! (the default), `AlwaysDeny`, `Node` and `RBAC`, tried in order (the first
//! Allow or Deny wins; the NoOpinion reasons are joined). The Node authorizer
//! is in [`crate::node`]. With RBAC the roles and bindings in the store decide,
//! through rkube-registry's evaluator; the policy is rebuilt from the watch cache
//! when an RBAC object changes, upstream's bootstrap policy is created at
//! start, aggregated ClusterRoles are kept filled, and writes of roles and
//! bindings are checked for privilege escalation.

use crate::rest::{Change, WriteOptions};
use crate::server::{Server, User};
use rkube_registry::ApiError;
use rkube_registry::rbac::{self, Attributes, Decision, Policy};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// The RBAC authorizer's state, and the authorizer chain it is part of.
pub struct Rbac {
    policy: RwLock<Arc<Policy>>,
    dirty: AtomicBool,
    /// `--authorization-mode`; unset means `RBAC` alone.
    modes: OnceLock<Vec<AuthzMode>>,
}

impl Rbac {
    pub fn new() -> Self {
        Self {
            policy: RwLock::new(Arc::new(Policy::new(&[], &[], &[], &[]))),
            dirty: AtomicBool::new(true),
            modes: OnceLock::new(),
        }
    }

    fn modes(&self) -> &[AuthzMode] {
        self.modes.get().map(Vec::as_slice).unwrap_or(&[AuthzMode::Rbac])
    }
}

/// One `--authorization-mode` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthzMode {
    AlwaysAllow,
    AlwaysDeny,
    Node,
    Rbac,
}

/// Parses `--authorization-mode` (`Node,RBAC`, `RBAC`, `AlwaysAllow`, ...), with upstream's
/// validation messages.
pub fn parse_authorization_modes(s: &str) -> Result<Vec<AuthzMode>, String> {
    let mut modes = Vec::new();
    for m in s.split(',').map(str::trim) {
        let mode = match m {
            "AlwaysAllow" => AuthzMode::AlwaysAllow,
            "AlwaysDeny" => AuthzMode::AlwaysDeny,
            "Node" => AuthzMode::Node,
            "RBAC" => AuthzMode::Rbac,
            "ABAC" | "Webhook" => return Err(format!("authorization-mode {m:?} is not supported by rkube")),
            _ => return Err(format!("authorization-mode {m:?} is not a valid mode")),
        };
        if modes.contains(&mode) {
            return Err(format!("authorization-mode {m:?} has mode specified more than once"));
        }
        modes.push(mode);
    }
    Ok(modes)
}

impl Default for Rbac {
    fn default() -> Self {
        Self::new()
    }
}

fn attributes(user: &User, verb: &str) -> Attributes {
    let groups: Vec<&str> = user.groups.iter().map(String::as_str).collect();
    let mut a = Attributes::non_resource(&user.name, &groups, verb, "");
    a.resource_request = true;
    a
}

impl Server {
    async fn objects(&self, resource: &str) -> Vec<Value> {
        let prefix = format!("{RBAC_PREFIX}{resource}/");
        // A consistent read: the policy must include every role written so far.
        let rev = self.store.current_revision().await.unwrap_or(0);
        match self.cache.list(&prefix, rev).await {
            Ok((objs, _)) => objs.iter().map(|o| o.object()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The current policy (rebuilt if an RBAC object changed).
    pub(crate) async fn rbac_policy(&self) -> Option<Arc<Policy>> {
        let rbac = self.rbac()?;
        if rbac.dirty.swap(false, Ordering::SeqCst) {
            let p = Policy::new(
                &self.objects("roles").await,
                &self.objects("clusterroles").await,
                &self.objects("rolebindings").await,
                &self.objects("clusterrolebindings").await,
            );
            *rbac.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
        }
        Some(rbac.policy.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Authorize with these `--authorization-mode` entries, in order, from now on.
    pub fn set_authorization_modes(&self, modes: Vec<AuthzMode>) {
        self.enable_rbac();
        if let Some(r) = self.rbac() {
            let _ = r.modes.set(modes);
        }
    }

    /// The authorizer chain's decision (None: no authorization configured, everything allowed).
    /// `field_selector` is the request's `fieldSelector` (the Node authorizer lets a kubelet list
    /// and watch only its own pods and node).
    async fn decide(&self, a: &Attributes, field_selector: Option<&str>) -> Option<Decision> {
        let modes = self.rbac()?.modes();
        let mut reasons: Vec<String> = Vec::new();
        for mode in modes {
            let d = match mode {
                AuthzMode::AlwaysAllow => Decision::Allow(String::new()),
                AuthzMode::AlwaysDeny => Decision::Deny(String::new()),
                AuthzMode::Node => self.node_authorize(a, field_selector).await,
                AuthzMode::Rbac => match self.rbac_policy().await {
                    Some(p) => p.authorize(a),
                    None => Decision::NoOpinion(String::new()),
                },
            };
            match d {
                Decision::NoOpinion(r) => {
                    if !r.is_empty() {
                        reasons.push(r);
                    }
                }
                decided => return Some(decided),
            }
        }
        Some(Decision::NoOpinion(reasons.join("\n")))
    }

    /// May `user` do this? (Always, without authorization configured.)
    pub(crate) async fn authorize(&self, a: &Attributes) -> Result<(), ApiError> {
        self.authorize_request(a, None).await
    }

    /// As [`Server::authorize`], for a request with a `fieldSelector` (lists and watches).
    pub async fn authorize_request(&self, a: &Attributes, field_selector: Option<&str>) -> Result<(), ApiError> {
        match self.decide(a, field_selector).await {
            None | Some(Decision::Allow(_)) => Ok(()),
            Some(Decision::Deny(r) | Decision::NoOpinion(r)) => Err(rbac::forbidden_error(a, &r)),
        }
    }

    /// The access-review answer: (allowed, reason).
    pub(crate) async fn review_access(&self, a: &Attributes) -> (bool, String) {
        match self.decide(a, None).await {
            None => (true, "AlwaysAllow".into()),
            Some(Decision::Allow(r)) => (true, r),
            Some(Decision::Deny(r) | Decision::NoOpinion(r)) => (false, r),
        }
    }

    /// Escalation prevention on writes of roles and bindings.
    pub(crate) async fn check_rbac_write(
        &self,
        user: &User,
        namespace: Option<&str>,
        obj: &Value,
        kind: &str,
    ) -> Result<(), ApiError> {
        let Some(policy) = self.rbac_policy().await else { return Ok(()) };
        policy.check_escalation_error(&user.name, &user.groups, namespace, obj, kind)
    }

    /// Create upstream's bootstrap roles and bindings, follow RBAC changes
    /// (policy rebuilds, ClusterRole aggregation).
    pub async fn start_rbac(self: &Arc<Self>) -> anyhow::Result<()> {
        let (mut cluster_roles, mut cluster_bindings, roles, bindings) = rbac::bootstrap_policy();
        let (extra_roles, extra_bindings) = rkube_policy();
        cluster_roles.extend(extra_roles);
        cluster_bindings.extend(extra_bindings);
        let w = WriteOptions::internal("kube-apiserver");
        for (resource, objs) in [
            ("clusterroles", cluster_roles),
            ("clusterrolebindings", cluster_bindings),
            ("roles", roles),
            ("rolebindings", bindings),
        ] {
            let info = rkube_registry::resources::lookup("rbac.authorization.k8s.io", "v1", resource)
                .ok_or_else(|| anyhow::anyhow!("{resource} missing from the resource table"))?;
            for o in objs {
                let ns = o.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
                match self.create_object(info, &Default::default(), ns.as_deref(), o.clone(), &w).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => self.reconcile_bootstrap(info, ns.as_deref(), o, &w).await?,
                    Err(e) => anyhow::bail!("bootstrap {resource}: {}", e.message),
                }
            }
        }
        // Broad roles of earlier rkube versions, replaced by per-component ones.
        let crbs = rkube_registry::resources::lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
            .ok_or_else(|| anyhow::anyhow!("clusterrolebindings missing from the resource table"))?;
        for stale in ["system:rkube:controller-informers", "system:rkube:controller-writes"] {
            let _ = self.delete_object(crbs, &Default::default(), None, stale, &Default::default()).await;
        }
        // Build the policy now, from every bootstrap object: requests that arrive while a later
        // rebuild runs are decided by the previous policy, which must never be the empty one.
        if let Some(r) = self.rbac() {
            r.dirty.store(true, Ordering::SeqCst);
        }
        self.rbac_policy().await;
        let server = Arc::downgrade(self);
        let watcher = self.cache.watch(RBAC_PREFIX, self.cache.revision());
        tokio::spawn(async move {
            let Ok(mut w) = watcher else { return };
            loop {
                let Some(s) = server.upgrade() else { return };
                if let Some(r) = s.rbac() {
                    r.dirty.store(true, Ordering::SeqCst);
                }
                s.aggregate_cluster_roles().await;
                drop(s);
                if w.next().await.is_none() {
                    return;
                }
            }
        });
        Ok(())
    }

    /// A bootstrap object that already exists is brought back to the
    /// bootstrap version unless it is annotated
    /// `rbac.authorization.kubernetes.io/autoupdate: "false"` (upstream
    /// reconciles its bootstrap policy at every start too; aggregated roles
    /// keep the rules their aggregation filled in).
    async fn reconcile_bootstrap(
        &self,
        info: &'static rkube_registry::resources::ResourceInfo,
        ns: Option<&str>,
        want: Value,
        w: &WriteOptions,
    ) -> anyhow::Result<()> {
        let name = crate::objects::name(&want).to_string();
        let key = crate::objects::key(info, ns, &name);
        let Some(have) = self.cache.get(&key, 0).await.ok().flatten() else { return Ok(()) };
        let have = &have.object();
        let auto = have.pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate");
        if auto.and_then(Value::as_str) == Some("false") {
            return Ok(());
        }
        let aggregated = want.get("aggregationRule").is_some();
        let same = ["roleRef", "subjects", "aggregationRule"].iter().all(|f| want.get(*f) == have.get(*f))
            && (aggregated || want.get("rules") == have.get("rules"));
        if same {
            return Ok(());
        }
        let mut new = want;
        if aggregated && let Some(rules) = have.get("rules") {
            new["rules"] = rules.clone();
        }
        match self.update_object(info, &Default::default(), ns, &name, Change::Replace(new), w).await {
            Ok(_) => Ok(()),
            Err(e) => anyhow::bail!("reconciling bootstrap {} {name}: {}", info.resource, e.message),
        }
    }

    async fn aggregate_cluster_roles(&self) {
        let all = self.objects("clusterroles").await;
        let Some(info) = rkube_registry::resources::lookup("rbac.authorization.k8s.io", "v1", "clusterroles") else {
            return;
        };
        for role in &all {
            if let Some(updated) = rbac::aggregate_cluster_role(role, &all) {
                let name = crate::objects::name(role).to_string();
                let w = WriteOptions::internal("clusterrole-aggregation-controller");
                let _ = self.update_object(info, &Default::default(), None, &name, Change::Replace(updated), &w).await;
            }
        }
    }
}

/// What rkube's own components need beyond upstream's bootstrap policy, one
/// narrow ClusterRole per component, bound to exactly that component's identity.
///
/// Upstream's controllers read through informers shared under
/// `system:kube-controller-manager` (list/watch on everything); each rkube
/// controller watches under its own ServiceAccount, so a controller's role
/// here adds only the reads its own watches need that its upstream
/// `system:controller:<name>` role lacks, plus the few writes where rkube's
/// controller uses a verb upstream's does not (a patch where upstream
/// updates). Components upstream's roles already cover (replicaset, daemonset,
/// job, cronjob, ttl-after-finished, garbage collector, namespace, HPA,
/// certificate, node-ipam, the scheduler) get nothing here.
fn rkube_policy() -> (Vec<Value>, Vec<Value>) {
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    for (component, rules) in rkube_component_rules() {
        let name = format!("system:rkube:{component}");
        roles.push(rkube_cluster_role(&name, rules));
        bindings.push(rkube_cluster_binding(&name, rkube_subject(component)));
    }
    (roles, bindings)
}

/// One RBAC rule (the bootstrap tables' shape).
fn rkube_rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    serde_json::json!({"verbs": verbs, "apiGroups": [group], "resources": resources})
}

/// Per component (`controller:<serviceaccount>` or `sim-node-pool`): the rules rkube adds.
fn rkube_component_rules() -> Vec<(&'static str, Vec<Value>)> {
    const READ: &[&str] = &["get", "list", "watch"];
    vec![
        // Patches the revision annotation onto the Deployment (upstream: update).
        ("controller:deployment-controller", vec![rkube_rule(&["patch"], "apps", &["deployments"])]),
        // Watches the pods it guards (upstream reads them through the shared informer).
        ("controller:disruption-controller", vec![rkube_rule(READ, "", &["pods"])]),
        // Patches its status and the claims' ownerReferences (upstream: update).
        (
            "controller:statefulset-controller",
            vec![
                rkube_rule(&["patch"], "apps", &["statefulsets/status"]),
                rkube_rule(&["patch"], "", &["persistentvolumeclaims"]),
            ],
        ),
        // Watches node Leases (upstream: the shared informer).
        ("controller:node-controller", vec![rkube_rule(READ, "coordination.k8s.io", &["leases"])]),
        // Patches quota status (upstream: update).
        ("controller:resourcequota-controller", vec![rkube_rule(&["patch"], "", &["resourcequotas/status"])]),
        // Upstream's serviceaccounts-controller and root-ca-cert-publisher in one: it watches
        // namespaces, the `default` ServiceAccounts and the `kube-root-ca.crt` ConfigMaps, and
        // writes the ConfigMaps (upstream grants that to root-ca-cert-publisher).
        (
            "controller:service-account-controller",
            vec![
                rkube_rule(&["list", "watch"], "", &["namespaces"]),
                rkube_rule(READ, "", &["serviceaccounts"]),
                rkube_rule(&["get", "list", "watch", "create", "update"], "", &["configmaps"]),
            ],
        ),
        // Creates its default StorageClass at start and marks volumes Bound/Released.
        (
            "controller:local-path-provisioner",
            vec![
                rkube_rule(&["create"], "storage.k8s.io", &["storageclasses"]),
                rkube_rule(&["patch"], "", &["persistentvolumes/status"]),
            ],
        ),
        // The simulated kubelets' pool (not in `system:nodes`; each node writes as itself): the
        // shared watches of pods, nodes, PodBehaviors and the namespaces pods behave in, the
        // NodePools it reconciles, and removal of the nodes of a shrunk NodePool.
        (
            "sim-node-pool",
            vec![
                rkube_rule(READ, "", &["pods", "namespaces"]),
                rkube_rule(&["get", "list", "watch", "delete"], "", &["nodes"]),
                rkube_rule(READ, "sim.rkube.io", &["nodepools", "podbehaviors"]),
                rkube_rule(&["get", "update", "patch"], "sim.rkube.io", &["nodepools/status"]),
            ],
        ),
    ]
}

/// Who a component is: `controller:<sa>` is ServiceAccount kube-system/<sa>; the node pool is
/// the user `system:node:sim-pool`.
fn rkube_subject(component: &str) -> Value {
    match component.strip_prefix("controller:") {
        Some(sa) => serde_json::json!({"kind": "ServiceAccount", "name": sa, "namespace": "kube-system"}),
        None => {
            serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:node:sim-pool"})
        }
    }
}

fn rkube_metadata(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn rkube_cluster_role(name: &str, rules: Vec<Value>) -> Value {
    serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": rkube_metadata(name), "rules": rules})
}

fn rkube_cluster_binding(name: &str, subject: Value) -> Value {
    serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": rkube_metadata(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [subject]})
}

/// Attributes of a resource request.
pub(crate) fn resource_attributes(
    user: &User,
    verb: &str,
    namespace: Option<&str>,
    group: &str,
    resource: &str,
    subresource: Option<&str>,
    name: Option<&str>,
) -> Attributes {
    let mut a = attributes(user, verb);
    a.namespace = namespace.map(str::to_string);
    a.api_group = group.to_string();
    a.resource = resource.to_string();
    a.subresource = subresource.map(str::to_string);
    a.name = name.map(str::to_string);
    a
}

/// Attributes of a non-resource request (`/api`, `/version`, ...).
pub(crate) fn path_attributes(user: &User, verb: &str, path: &str) -> Attributes {
    let groups: Vec<&str> = user.groups.iter().map(String::as_str).collect();
    Attributes::non_resource(&user.name, &groups, verb, path)
}

#[cfg(test)]
mod rkube_policy_tests {
    use super::*;
    use crate::inprocess::component_user;

    fn policy() -> Policy {
        let (mut cluster_roles, mut cluster_bindings, roles, bindings) = rbac::bootstrap_policy();
        let (extra_roles, extra_bindings) = rkube_policy();
        cluster_roles.extend(extra_roles);
        cluster_bindings.extend(extra_bindings);
        Policy::new(&roles, &cluster_roles, &bindings, &cluster_bindings)
    }

    /// May `who` (a controller's ServiceAccount name, or a full user name) do `verb` on
    /// `resource[/sub]` of `group` in namespace `ns`?
    fn can(p: &Policy, who: &str, verb: &str, ns: Option<&str>, group: &str, resource: &str) -> bool {
        let name = if who.starts_with("system:") {
            who.to_string()
        } else {
            format!("system:serviceaccount:kube-system:{who}")
        };
        let (res, sub) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (resource, None),
        };
        // The node pool runs outside `system:nodes` (main.rs); everyone else as `component_user`.
        let user = match name.as_str() {
            "system:node:sim-pool" => User { name, groups: vec!["system:authenticated".into()] },
            _ => component_user(&name),
        };
        let a = resource_attributes(&user, verb, ns, group, res, sub, None);
        matches!(p.authorize(&a), Decision::Allow(_))
    }

    #[test]
    fn every_binding_names_one_component_never_a_group() {
        let (roles, bindings) = rkube_policy();
        assert_eq!(roles.len(), bindings.len());
        for b in &bindings {
            let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
            assert_eq!(subjects.len(), 1, "{b}");
            assert_ne!(subjects[0]["kind"], "Group", "{b}");
        }
        for r in &roles {
            for rule in r["rules"].as_array().cloned().unwrap_or_default() {
                assert!(!rule["resources"].as_array().is_some_and(|v| v.iter().any(|x| x == "*")), "{r}");
                assert!(!rule["apiGroups"].as_array().is_some_and(|v| v.iter().any(|x| x == "*")), "{r}");
            }
        }
    }

    /// What each component's watches and writes need (read from the controller crates).
    #[test]
    fn each_component_may_do_what_it_does() {
        let p = policy();
        let all = None;
        let ns = Some("default");
        let needs: &[(&str, &str, Option<&str>, &str, &str)] = &[
            ("replicaset-controller", "watch", all, "apps", "replicasets"),
            ("replicaset-controller", "list", all, "", "pods"),
            ("replicaset-controller", "create", ns, "", "pods"),
            ("replicaset-controller", "update", ns, "apps", "replicasets/status"),
            ("deployment-controller", "watch", all, "apps", "deployments"),
            ("deployment-controller", "patch", ns, "apps", "deployments"),
            ("deployment-controller", "create", ns, "apps", "replicasets"),
            ("deployment-controller", "list", ns, "", "pods"),
            ("disruption-controller", "watch", all, "", "pods"),
            ("disruption-controller", "list", all, "apps", "statefulsets"),
            ("disruption-controller", "get", ns, "apps", "deployments/scale"),
            ("disruption-controller", "update", ns, "policy", "poddisruptionbudgets/status"),
            ("statefulset-controller", "patch", ns, "apps", "statefulsets/status"),
            ("statefulset-controller", "patch", ns, "", "persistentvolumeclaims"),
            ("statefulset-controller", "create", ns, "apps", "controllerrevisions"),
            ("daemon-set-controller", "watch", all, "", "nodes"),
            ("daemon-set-controller", "patch", ns, "", "pods"),
            ("job-controller", "patch", ns, "", "pods"),
            ("cronjob-controller", "create", ns, "batch", "jobs"),
            ("ttl-after-finished-controller", "delete", ns, "batch", "jobs"),
            ("node-controller", "watch", Some("kube-node-lease"), "coordination.k8s.io", "leases"),
            ("node-controller", "patch", all, "", "nodes/status"),
            ("node-controller", "delete", ns, "", "pods"),
            ("resourcequota-controller", "watch", all, "", "secrets"),
            ("resourcequota-controller", "patch", ns, "", "resourcequotas/status"),
            ("service-account-controller", "watch", all, "", "namespaces"),
            ("service-account-controller", "get", ns, "", "serviceaccounts"),
            ("service-account-controller", "create", ns, "", "serviceaccounts"),
            ("service-account-controller", "update", ns, "", "configmaps"),
            ("local-path-provisioner", "create", all, "storage.k8s.io", "storageclasses"),
            ("local-path-provisioner", "patch", all, "", "persistentvolumes/status"),
            ("local-path-provisioner", "patch", ns, "", "persistentvolumeclaims/status"),
            ("generic-garbage-collector", "delete", ns, "apps", "replicasets"),
            ("namespace-controller", "deletecollection", ns, "", "configmaps"),
            ("horizontal-pod-autoscaler", "update", ns, "apps", "deployments/scale"),
            ("certificate-controller", "update", all, "certificates.k8s.io", "certificatesigningrequests/status"),
            ("node-ipam-controller", "patch", all, "", "nodes"),
            ("system:kube-scheduler", "create", ns, "", "pods/binding"),
            ("system:node:sim-pool", "watch", all, "sim.rkube.io", "nodepools"),
            ("system:node:sim-pool", "list", None, "", "pods"),
            ("system:node:sim-pool", "watch", None, "", "nodes"),
            ("system:node:sim-pool", "delete", None, "", "nodes"),
            ("system:node:sim-pool", "update", None, "sim.rkube.io", "nodepools/status"),
        ];
        // Kubelets get nothing from RBAC (the Node authorizer decides for them).
        assert!(!can(&p, "system:node:sim-0", "update", ns, "", "pods/status"));
        for (who, verb, ns, group, resource) in needs {
            assert!(can(&p, who, verb, *ns, group, resource), "{who} cannot {verb} {group}/{resource} in {ns:?}");
        }
    }

    #[test]
    fn components_get_no_more_than_they_need() {
        let p = policy();
        let ns = Some("default");
        let denied: &[(&str, &str, Option<&str>, &str, &str)] = &[
            ("replicaset-controller", "list", None, "", "secrets"),
            ("replicaset-controller", "get", ns, "", "configmaps"),
            ("deployment-controller", "create", ns, "", "pods"),
            ("deployment-controller", "list", None, "", "nodes"),
            ("disruption-controller", "delete", ns, "", "pods"),
            ("service-account-controller", "list", None, "", "secrets"),
            ("service-account-controller", "delete", ns, "", "configmaps"),
            ("node-controller", "update", Some("kube-node-lease"), "coordination.k8s.io", "leases"),
            ("local-path-provisioner", "delete", None, "storage.k8s.io", "storageclasses"),
            ("local-path-provisioner", "get", ns, "", "secrets"),
            ("job-controller", "list", None, "apps", "deployments"),
            ("system:kube-scheduler", "delete", ns, "apps", "deployments"),
            ("system:node:sim-pool", "list", None, "rbac.authorization.k8s.io", "clusterroles"),
            ("system:node:sim-pool", "update", ns, "", "pods/status"),
            ("system:node:sim-pool", "list", None, "", "secrets"),
        ];
        for (who, verb, ns, group, resource) in denied {
            assert!(!can(&p, who, verb, *ns, group, resource), "{who} may {verb} {group}/{resource} in {ns:?}");
        }
    }
}
