//! Authorization: `--authorization-mode=AlwaysAllow` (upstream's default) or
//! `RBAC`. With RBAC the roles and bindings in the store decide, through
//! rkube-registry's evaluator; the policy is rebuilt from the watch cache
//! when an RBAC object changes, upstream's bootstrap policy is created at
//! start, aggregated ClusterRoles are kept filled, and writes of roles and
//! bindings are checked for privilege escalation.

use crate::rest::{Change, WriteOptions};
use crate::server::{Server, User};
use rkube_registry::ApiError;
use rkube_registry::rbac::{self, Attributes, Decision, Policy};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// The RBAC authorizer's state.
pub struct Rbac {
    policy: RwLock<Arc<Policy>>,
    dirty: AtomicBool,
}

impl Rbac {
    pub fn new() -> Self {
        Self { policy: RwLock::new(Arc::new(Policy::new(&[], &[], &[], &[]))), dirty: AtomicBool::new(true) }
    }
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
            Ok((objs, _)) => objs.iter().map(|o| (*o.object).clone()).collect(),
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

    /// May `user` do this? (Always, without RBAC.)
    pub(crate) async fn authorize(&self, a: &Attributes) -> Result<(), ApiError> {
        let Some(policy) = self.rbac_policy().await else { return Ok(()) };
        match policy.authorize(a) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(r) | Decision::NoOpinion(r) => Err(rbac::forbidden_error(a, &r)),
        }
    }

    /// The access-review answer: (allowed, reason).
    pub(crate) async fn review_access(&self, a: &Attributes) -> (bool, String) {
        match self.rbac_policy().await {
            None => (true, "AlwaysAllow".into()),
            Some(p) => match p.authorize(a) {
                Decision::Allow(r) => (true, r),
                Decision::Deny(r) | Decision::NoOpinion(r) => (false, r),
            },
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
                match self.create_object(info, &Default::default(), ns.as_deref(), o, &w).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => anyhow::bail!("bootstrap {resource}: {}", e.message),
                }
            }
        }
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

/// What rkube's own components need beyond upstream's bootstrap policy: each
/// controller here watches with its own identity (upstream's share informers
/// under the controller manager's), the deployment controller patches the
/// revision annotation, and the simulated node pool reconciles NodePools and
/// PodBehaviors.
fn rkube_policy() -> (Vec<Value>, Vec<Value>) {
    use serde_json::json;
    let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels}, "rules": rules})
    };
    let binding = |name: &str, role: &str, subjects: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding", "metadata": {"name": name, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": subjects})
    };
    let roles = vec![
        role(
            "system:rkube:controller-informers",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]),
        ),
        role(
            "system:rkube:controller-writes",
            json!([
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update", "patch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["persistentvolumes", "persistentvolumeclaims"], "verbs": ["create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["persistentvolumeclaims/status", "persistentvolumes/status"], "verbs": ["update", "patch"]},
            ]),
        ),
        role(
            "system:rkube:sim-node-pool",
            json!([
                {"apiGroups": ["sim.rkube.io"], "resources": ["nodepools", "podbehaviors"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["sim.rkube.io"], "resources": ["nodepools/status"], "verbs": ["get", "update", "patch"]},
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]},
            ]),
        ),
    ];
    let sa_group = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts:kube-system"}]);
    let bindings = vec![
        binding("system:rkube:controller-informers", "system:rkube:controller-informers", sa_group.clone()),
        binding("system:rkube:controller-writes", "system:rkube:controller-writes", sa_group),
        binding(
            "system:rkube:sim-node-pool",
            "system:rkube:sim-node-pool",
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:node:sim-pool"}]),
        ),
    ];
    (roles, bindings)
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
