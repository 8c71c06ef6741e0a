//! Namespaced resources at each group's preferred version (upstream's
//! ServerPreferredNamespacedResources), with partial failures reported the way
//! client-go's ErrGroupDiscoveryFailed is.

use kube::Client;
use kube::discovery::ApiResource;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub ar: ApiResource,
    pub verbs: Vec<String>,
}

impl Resource {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn gvr(&self) -> (String, String, String) {
        (self.ar.group.clone(), self.ar.version.clone(), self.ar.plural.clone())
    }

    pub fn is_pods(&self) -> bool {
        self.ar.group.is_empty() && self.ar.plural == "pods"
    }
}

/// Discovery failed for some group-versions (gv → error text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsFailed(pub BTreeMap<String, String>);

impl std::fmt::Display for GroupsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(gv, e)| format!("{gv}: {e}")).collect();
        write!(f, "unable to retrieve the complete list of server APIs: {}", parts.join(", "))
    }
}

impl GroupsFailed {
    /// The NamespaceDeletionDiscoveryFailure message.
    pub fn condition_message(&self) -> String {
        format!("Discovery failed for some groups, {} failing: {}", self.0.len(), self)
    }
}

/// Failure of the whole discovery, or of some groups (with what was found).
#[derive(Debug)]
pub enum DiscoveryError {
    All(kube::Error),
    Partial(GroupsFailed),
}

impl DiscoveryError {
    pub fn condition_message(&self) -> String {
        match self {
            DiscoveryError::All(e) => e.to_string(),
            DiscoveryError::Partial(g) => g.condition_message(),
        }
    }
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::All(e) => write!(f, "{e}"),
            DiscoveryError::Partial(g) => write!(f, "{g}"),
        }
    }
}

/// Every namespaced top-level resource at its group's preferred version.
pub async fn preferred_namespaced(client: &Client) -> (Vec<Resource>, Option<DiscoveryError>) {
    let mut gvs: Vec<(String, String)> = Vec::new();
    match client.list_core_api_versions().await {
        Ok(core) => {
            if let Some(v) = core.versions.first() {
                gvs.push((String::new(), v.clone()));
            }
        }
        Err(e) => return (Vec::new(), Some(DiscoveryError::All(e))),
    }
    match client.list_api_groups().await {
        Ok(groups) => {
            for g in groups.groups {
                let v =
                    g.preferred_version.map(|p| p.version).or_else(|| g.versions.first().map(|v| v.version.clone()));
                if let Some(v) = v {
                    gvs.push((g.name, v));
                }
            }
        }
        Err(e) => return (Vec::new(), Some(DiscoveryError::All(e))),
    }
    let mut out = Vec::new();
    let mut failed = BTreeMap::new();
    for (group, version) in gvs {
        let gv = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
        let list = if group.is_empty() {
            client.list_core_api_resources(&version).await
        } else {
            client.list_api_group_resources(&gv).await
        };
        match list {
            Ok(list) => {
                for r in list.resources.into_iter().filter(|r| r.namespaced && !r.name.contains('/')) {
                    let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &r.kind);
                    out.push(Resource { ar: ApiResource::from_gvk_with_plural(&gvk, &r.name), verbs: r.verbs });
                }
            }
            Err(e) => {
                failed.insert(gv, e.to_string());
            }
        }
    }
    let err = (!failed.is_empty()).then(|| DiscoveryError::Partial(GroupsFailed(failed)));
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_failure_message_matches_client_go() {
        let g = GroupsFailed(
            [
                (
                    "metrics.k8s.io/v1beta1".to_string(),
                    "the server is currently unable to handle the request".to_string(),
                ),
                ("a.io/v1".to_string(), "boom".to_string()),
            ]
            .into(),
        );
        assert_eq!(
            g.condition_message(),
            "Discovery failed for some groups, 2 failing: unable to retrieve the complete list of server APIs: \
             a.io/v1: boom, metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
    }
}
