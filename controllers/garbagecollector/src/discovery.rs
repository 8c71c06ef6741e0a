//! Resource discovery for the garbage collector: which resources to monitor
//! (preferred version of every group, verbs list+watch+delete, minus ignored
//! resources) and a REST mapper from an ownerReference's apiVersion/kind to a
//! resource and its scope (every served version, so owner references written
//! against a non-preferred version still resolve).

use kube::Client;
use kube::discovery::ApiResource;
use std::collections::{BTreeMap, HashMap};

/// One discovered top-level resource at one group-version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Whether this group-version is the group's preferred one.
    pub preferred: bool,
}

impl Resource {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `group/version/resource`, the key of a monitor.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.ar.group, self.ar.version, self.ar.plural)
    }
}

/// Everything discovery found, and the group-versions that failed.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub resources: Vec<Resource>,
    pub failed: BTreeMap<String, String>,
    by_gvk: HashMap<(String, String, String), usize>,
    by_gk: HashMap<(String, String), usize>,
}

/// Split an apiVersion into group and version ("v1" is the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

impl Catalog {
    pub fn new(resources: Vec<Resource>, failed: BTreeMap<String, String>) -> Self {
        let mut by_gvk = HashMap::new();
        let mut by_gk = HashMap::new();
        for (i, r) in resources.iter().enumerate() {
            by_gvk.entry((r.ar.group.clone(), r.ar.version.clone(), r.ar.kind.clone())).or_insert(i);
            let gk = (r.ar.group.clone(), r.ar.kind.clone());
            if r.preferred || !by_gk.contains_key(&gk) {
                by_gk.insert(gk, i);
            }
        }
        Self { resources, failed, by_gvk, by_gk }
    }

    /// The resource an object of `api_version`/`kind` lives in: the exact
    /// version when served, else the group's preferred version of the kind.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = split_api_version(api_version);
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .or_else(|| self.by_gk.get(&(group.to_string(), kind.to_string())))
            .and_then(|i| self.resources.get(*i))
    }

    /// Resources the garbage collector watches: preferred versions that can be
    /// listed, watched and deleted, except `ignored` (group, resource) pairs.
    pub fn monitorable(&self, ignored: &[(String, String)]) -> Vec<Resource> {
        self.resources
            .iter()
            .filter(|r| r.preferred && r.supports("list") && r.supports("watch") && r.supports("delete"))
            .filter(|r| !ignored.iter().any(|(g, res)| *g == r.ar.group && *res == r.ar.plural))
            .cloned()
            .collect()
    }
}

/// Discover every group-version the server serves. A group-version that fails
/// is recorded in `failed`; only failing to list the groups at all is an error.
pub async fn discover(client: &Client) -> Result<Catalog, kube::Error> {
    let mut gvs: Vec<(String, String, bool)> = Vec::new();
    let core = client.list_core_api_versions().await?;
    for (i, v) in core.versions.iter().enumerate() {
        gvs.push((String::new(), v.clone(), i == 0));
    }
    let groups = client.list_api_groups().await?;
    for g in groups.groups {
        let preferred = g.preferred_version.as_ref().map(|p| p.version.clone());
        for (i, v) in g.versions.iter().enumerate() {
            let is_pref = match &preferred {
                Some(p) => *p == v.version,
                None => i == 0,
            };
            gvs.push((g.name.clone(), v.version.clone(), is_pref));
        }
    }
    let mut resources = Vec::new();
    let mut failed = BTreeMap::new();
    for (group, version, preferred) in gvs {
        let gv = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
        let list = if group.is_empty() {
            client.list_core_api_resources(&version).await
        } else {
            client.list_api_group_resources(&gv).await
        };
        match list {
            Ok(list) => {
                for r in list.resources {
                    if r.name.contains('/') {
                        continue; // subresource
                    }
                    let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &r.kind);
                    resources.push(Resource {
                        ar: ApiResource::from_gvk_with_plural(&gvk, &r.name),
                        namespaced: r.namespaced,
                        verbs: r.verbs,
                        preferred,
                    });
                }
            }
            Err(e) => {
                failed.insert(gv, e.to_string());
            }
        }
    }
    Ok(Catalog::new(resources, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, version: &str, kind: &str, plural: &str, preferred: bool, verbs: &[&str]) -> Resource {
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        Resource {
            ar: ApiResource::from_gvk_with_plural(&gvk, plural),
            namespaced: true,
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            preferred,
        }
    }

    const ALL: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

    #[test]
    fn resolve_exact_version_then_preferred() {
        let c = Catalog::new(
            vec![
                res("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, ALL),
                res("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", false, ALL),
                res("", "v1", "ConfigMap", "configmaps", true, ALL),
            ],
            BTreeMap::new(),
        );
        assert_eq!(c.resolve("autoscaling/v1", "HorizontalPodAutoscaler").map(|r| r.ar.version.as_str()), Some("v1"));
        assert_eq!(
            c.resolve("autoscaling/v2beta2", "HorizontalPodAutoscaler").map(|r| r.ar.version.as_str()),
            Some("v2")
        );
        assert_eq!(c.resolve("v1", "ConfigMap").map(|r| r.ar.plural.as_str()), Some("configmaps"));
        assert!(c.resolve("v1", "Nope").is_none());
        assert!(c.resolve("apps/v1", "ConfigMap").is_none());
    }

    #[test]
    fn monitorable_needs_verbs_preference_and_not_ignored() {
        let c = Catalog::new(
            vec![
                res("", "v1", "ConfigMap", "configmaps", true, ALL),
                res("", "v1", "Event", "events", true, ALL),
                res("", "v1", "Binding", "bindings", true, &["create"]),
                res("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", false, ALL),
            ],
            BTreeMap::new(),
        );
        let m = c.monitorable(&[(String::new(), "events".into())]);
        let names: Vec<_> = m.iter().map(|r| r.key()).collect();
        assert_eq!(names, vec!["/v1/configmaps".to_string()]);
    }

    #[test]
    fn split_versions() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
    }
}
