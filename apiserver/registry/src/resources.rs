//! The table of every built-in resource rkube serves: group, version, plural,
//! kind, scope, short names, categories, discovery verbs, subresources and where
//! its objects live in storage.
//!
//! The table itself (`resources/generated.rs`) is written by
//! `tools/gen-resources.py` from upstream 1.33's OpenAPI document plus the facts
//! OpenAPI lacks (short names, categories, shared storage). This module only
//! adds lookups. Resources added at run time (CRDs) are not here: discovery and
//! OpenAPI take the resources to describe as an argument.

#[rustfmt::skip]
mod generated;

use std::cmp::Ordering;

/// One resource served in one group/version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name, e.g. `"deployments"`.
    pub resource: &'static str,
    pub kind: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Upstream's discovery verbs for the main resource, sorted.
    pub verbs: &'static [&'static str],
    pub subresources: &'static [SubresourceInfo],
    /// Where objects live in storage: group and resource of the storage key
    /// (`/registry/<group/><resource>/...`) and the version they are stored in.
    /// All three are empty for resources without storage of their own
    /// (bindings, componentstatuses, the authentication/authorization reviews).
    pub storage_group: &'static str,
    pub storage_resource: &'static str,
    pub storage_version: &'static str,
}

/// A subresource of a [`ResourceInfo`] (`status`, `scale`, `log`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceInfo {
    pub name: &'static str,
    /// Group/version/kind of the object the subresource takes and returns
    /// (`autoscaling`/`v1`/`Scale` for `scale`; the parent's own for `status`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

impl ResourceInfo {
    /// `"v1"` for the core group, `"<group>/<version>"` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresource(name).is_some()
    }

    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether objects of this resource are persisted (false for virtual
    /// resources such as reviews, bindings and componentstatuses).
    pub fn is_stored(&self) -> bool {
        !self.storage_resource.is_empty()
    }

    /// Whether a DELETE that removes the object at once answers with the deleted
    /// object (upstream's `ReturnDeletedObject`: pods, services, PVs, ...) rather
    /// than a `Status`. Deletions that only mark the object (finalizers, grace
    /// period) answer with the object for every resource.
    pub fn delete_returns_object(&self) -> bool {
        generated::DELETE_RETURNS_OBJECT
            .iter()
            .any(|(g, v, r)| *g == self.group && *v == self.version && *r == self.resource)
    }

    /// Storage key prefix with a trailing slash: `/registry/pods/`,
    /// `/registry/apps/deployments/`.
    pub fn storage_prefix(&self) -> String {
        if self.storage_group.is_empty() {
            format!("/registry/{}/", self.storage_resource)
        } else {
            format!("/registry/{}/{}/", self.storage_group, self.storage_resource)
        }
    }
}

/// Every built-in resource, core first, then groups in discovery order; within a
/// group/version sorted by resource name.
pub fn all() -> &'static [ResourceInfo] {
    generated::TABLE
}

/// The resource served at `group`/`version` under the plural name `resource`.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    all().iter().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The resource whose main kind is `kind` in `group`/`version`.
pub fn by_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    all().iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Find a resource by any name kubectl accepts in a group (plural, singular,
/// short name or lower-cased kind), preferring the group's preferred version.
pub fn resolve(group: &str, name: &str) -> Option<&'static ResourceInfo> {
    let name = name.to_ascii_lowercase();
    let mut found: Vec<&'static ResourceInfo> = all()
        .iter()
        .filter(|r| {
            r.group == group
                && (r.resource == name
                    || r.singular == name
                    || r.short_names.contains(&name.as_str())
                    || r.kind.eq_ignore_ascii_case(&name))
        })
        .collect();
    found.sort_by(|a, b| compare_versions(a.version, b.version));
    found.first().copied()
}

/// Groups with their versions, preferred version first, in upstream's
/// discovery order (core group `""` first).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let refs: Vec<&'static ResourceInfo> = all().iter().collect();
    groups_of(&refs)
}

/// The groups and versions of `resources`, ordered as upstream's discovery
/// orders them: by the group priority upstream assigns to built-in groups
/// (groups it does not know come after, by name), versions by Kubernetes
/// version priority (GA > beta > alpha, higher numbers first).
pub fn groups_of<'a>(resources: &[&'a ResourceInfo]) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut out: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
    for r in resources {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    for (_, versions) in out.iter_mut() {
        versions.sort_by(|a, b| compare_versions(a, b));
    }
    out.sort_by(|(a, _), (b, _)| {
        group_priority(b).cmp(&group_priority(a)).then_with(|| group_sort_name(a).cmp(&group_sort_name(b)))
    });
    out
}

/// Upstream's APIService group priority (`groupPriorityMinimum`) of a built-in
/// group; 0 for groups it does not know (CRD groups, which get 1000 upstream,
/// still sort after every built-in).
fn group_priority(group: &str) -> u32 {
    match group {
        "" => 18000,
        "apiregistration.k8s.io" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "apiextensions.k8s.io" | "admissionregistration.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        _ => 1000,
    }
}

/// Upstream breaks priority ties by APIService name (`v1.<group>`); the core
/// group sorts before everything.
fn group_sort_name(group: &str) -> (bool, &str) {
    (!group.is_empty(), group)
}

/// Kubernetes version ordering: `v2`, `v1`, `v1beta2`, `v1beta1`, `v1alpha1`,
/// then anything that is not a Kubernetes-style version (by name).
/// Returns `Less` when `a` is preferred over `b`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// (stability, major, minor) with stability 2 = GA, 1 = beta, 0 = alpha.
fn parse_version(v: &str) -> Option<(u8, u64, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let major: u64 = rest[..digits].parse().ok()?;
    if major == 0 {
        return None;
    }
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, num) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        return None;
    };
    let minor: u64 = num.parse().ok()?;
    Some((stability, major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(g: &str, v: &str, r: &str) -> &'static ResourceInfo {
        match lookup(g, v, r) {
            Some(r) => r,
            None => panic!("missing {g}/{v}/{r}"),
        }
    }

    #[test]
    fn short_names_match_upstream() {
        let cases = [
            ("", "pods", "po"),
            ("", "services", "svc"),
            ("", "configmaps", "cm"),
            ("", "namespaces", "ns"),
            ("", "nodes", "no"),
            ("", "persistentvolumes", "pv"),
            ("", "persistentvolumeclaims", "pvc"),
            ("", "serviceaccounts", "sa"),
            ("", "endpoints", "ep"),
            ("", "events", "ev"),
            ("", "replicationcontrollers", "rc"),
            ("", "resourcequotas", "quota"),
            ("", "limitranges", "limits"),
            ("", "componentstatuses", "cs"),
            ("apps", "deployments", "deploy"),
            ("apps", "daemonsets", "ds"),
            ("apps", "replicasets", "rs"),
            ("apps", "statefulsets", "sts"),
            ("batch", "cronjobs", "cj"),
            ("certificates.k8s.io", "certificatesigningrequests", "csr"),
            ("networking.k8s.io", "ingresses", "ing"),
            ("networking.k8s.io", "networkpolicies", "netpol"),
            ("policy", "poddisruptionbudgets", "pdb"),
            ("scheduling.k8s.io", "priorityclasses", "pc"),
            ("storage.k8s.io", "storageclasses", "sc"),
        ];
        for (g, r, short) in cases {
            let info = get(g, if g == "autoscaling" { "v2" } else { "v1" }, r);
            assert_eq!(info.short_names, &[short], "{g}/{r}");
        }
        assert_eq!(get("autoscaling", "v2", "horizontalpodautoscalers").short_names, &["hpa"]);
        assert!(get("", "v1", "secrets").short_names.is_empty());
    }

    #[test]
    fn kinds_scope_and_verbs() {
        let pods = get("", "v1", "pods");
        assert_eq!(pods.kind, "Pod");
        assert_eq!(pods.singular, "pod");
        assert!(pods.namespaced);
        assert_eq!(pods.verbs, &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]);
        assert_eq!(pods.categories, &["all"]);
        assert!(!get("", "v1", "nodes").namespaced);
        assert!(!get("", "v1", "namespaces").namespaced);
        assert_eq!(get("", "v1", "bindings").verbs, &["create"]);
        assert_eq!(get("", "v1", "componentstatuses").verbs, &["get", "list"]);
        assert_eq!(get("authorization.k8s.io", "v1", "selfsubjectaccessreviews").verbs, &["create"]);
        assert!(get("authorization.k8s.io", "v1", "localsubjectaccessreviews").namespaced);
        assert_eq!(get("", "v1", "endpoints").singular, "endpoints");
        assert_eq!(by_kind("apps", "v1", "Deployment").map(|r| r.resource), Some("deployments"));
        assert_eq!(by_kind("apps", "v1", "Pod"), None);
        assert_eq!(lookup("apps", "v1beta1", "deployments"), None);
    }

    #[test]
    fn subresources() {
        let deploy = get("apps", "v1", "deployments");
        let scale = deploy.subresource("scale").map(|s| (s.group, s.version, s.kind, s.verbs));
        assert_eq!(scale, Some(("autoscaling", "v1", "Scale", &["get", "patch", "update"][..])));
        assert!(deploy.has_subresource("status"));
        assert!(!deploy.has_subresource("log"));
        let pods = get("", "v1", "pods");
        for s in [
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ] {
            assert!(pods.has_subresource(s), "pods/{s}");
        }
        assert_eq!(pods.subresource("exec").map(|s| s.verbs), Some(&["create", "get"][..]));
        assert_eq!(pods.subresource("eviction").map(|s| s.group), Some("policy"));
        assert_eq!(
            get("", "v1", "serviceaccounts").subresource("token").map(|s| (s.group, s.kind)),
            Some(("authentication.k8s.io", "TokenRequest"))
        );
        assert_eq!(get("", "v1", "namespaces").subresource("finalize").map(|s| s.verbs), Some(&["update"][..]));
        assert!(get("certificates.k8s.io", "v1", "certificatesigningrequests").has_subresource("approval"));
    }

    #[test]
    fn storage_locations() {
        assert_eq!(get("", "v1", "pods").storage_prefix(), "/registry/pods/");
        assert_eq!(get("apps", "v1", "deployments").storage_prefix(), "/registry/apps/deployments/");
        let core_ev = get("", "v1", "events");
        let ev = get("events.k8s.io", "v1", "events");
        assert_eq!(ev.storage_prefix(), core_ev.storage_prefix());
        assert_eq!(ev.storage_version, "v1");
        let v1 = get("autoscaling", "v1", "horizontalpodautoscalers");
        let v2 = get("autoscaling", "v2", "horizontalpodautoscalers");
        assert_eq!(v1.storage_prefix(), v2.storage_prefix());
        assert_eq!(v1.storage_version, "v2");
        assert!(!get("authentication.k8s.io", "v1", "tokenreviews").is_stored());
        assert!(get("", "v1", "secrets").is_stored());
        assert!(get("", "v1", "pods").delete_returns_object());
        assert!(!get("apps", "v1", "deployments").delete_returns_object());
    }

    #[test]
    fn groups_in_discovery_order() {
        let gs = groups();
        let names: Vec<&str> = gs.iter().map(|(g, _)| *g).collect();
        assert_eq!(
            names,
            vec![
                "",
                "apps",
                "events.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "autoscaling",
                "batch",
                "certificates.k8s.io",
                "networking.k8s.io",
                "policy",
                "rbac.authorization.k8s.io",
                "storage.k8s.io",
                "admissionregistration.k8s.io",
                "apiextensions.k8s.io",
                "scheduling.k8s.io",
                "coordination.k8s.io",
                "node.k8s.io",
                "discovery.k8s.io",
            ]
        );
        let autoscaling = gs.iter().find(|(g, _)| *g == "autoscaling").map(|(_, v)| v.clone());
        assert_eq!(autoscaling, Some(vec!["v2", "v1"]));
    }

    #[test]
    fn version_priority() {
        let mut vs = vec!["v1alpha1", "v1", "foo", "v2beta1", "v1beta2", "v2", "v1beta1", "v10"];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(vs, vec!["v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn resolve_names() {
        assert_eq!(resolve("", "po").map(|r| r.resource), Some("pods"));
        assert_eq!(resolve("apps", "Deployment").map(|r| r.resource), Some("deployments"));
        assert_eq!(resolve("autoscaling", "hpa").map(|r| r.version), Some("v2"));
        assert_eq!(resolve("", "nosuch"), None);
    }

    #[test]
    fn table_is_consistent() {
        for r in all() {
            assert!(!r.verbs.is_empty(), "{}/{}", r.api_version(), r.resource);
            let mut sorted = r.verbs.to_vec();
            sorted.sort();
            assert_eq!(sorted, r.verbs, "verbs sorted for {}", r.resource);
            assert_eq!(r.singular, r.kind.to_ascii_lowercase());
            // exactly one entry per group/version/resource
            let n = all()
                .iter()
                .filter(|o| o.group == r.group && o.version == r.version && o.resource == r.resource)
                .count();
            assert_eq!(n, 1);
        }
        assert_eq!(all().len(), 58);
    }
}
