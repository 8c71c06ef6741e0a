//! Discovery documents as JSON values: `/api` (`APIVersions`), `/apis`
//! (`APIGroupList`), `/apis/<group>` (`APIGroup`), `/api/v1` and
//! `/apis/<group>/<version>` (`APIResourceList`), and aggregated discovery
//! (`APIGroupDiscoveryList`, apidiscovery.k8s.io v2 and v2beta1) for `/api` and
//! `/apis`.
//!
//! Every builder takes the resources to describe (`&[&ResourceInfo]`) so that
//! resources added at run time (CRDs) appear next to the built-in table.
//! Ordering follows upstream: groups by upstream's group priority, versions by
//! preference, resources (and subresources) by name.

use crate::resources::{ResourceInfo, groups_of};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Which aggregated discovery API version to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedVersion {
    /// `apidiscovery.k8s.io/v2` (kubectl 1.30+).
    V2,
    /// `apidiscovery.k8s.io/v2beta1` (kubectl 1.27–1.29).
    V2Beta1,
}

impl AggregatedVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "apidiscovery.k8s.io/v2",
            AggregatedVersion::V2Beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }
}

/// `/api`: the legacy core group's versions and the address clients should use.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| gv(v)).unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group (the core group is not listed) with its versions,
/// preferred version first.
pub fn api_group_list(resources: &[&ResourceInfo]) -> Value {
    let groups: Vec<Value> =
        groups_of(resources).into_iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group_json(g, &vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`: one group, or `None` when no resource is served in it.
pub fn api_group(resources: &[&ResourceInfo], group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let (g, vs) = groups_of(resources).into_iter().find(|(g, _)| *g == group)?;
    let mut v = group_json(g, &vs);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("kind".into(), json!("APIGroup"));
        obj.insert("apiVersion".into(), json!("v1"));
    }
    Some(v)
}

fn selected<'a>(resources: &[&'a ResourceInfo], group: &str, version: &str) -> Vec<&'a ResourceInfo> {
    let mut out: Vec<&'a ResourceInfo> =
        resources.iter().copied().filter(|r| r.group == group && r.version == version).collect();
    out.sort_by(|a, b| a.resource.cmp(b.resource));
    out
}

fn strings(xs: &[&str]) -> Value {
    Value::Array(xs.iter().map(|s| Value::String((*s).to_string())).collect())
}

/// `shortNames` and `categories` of a resource entry, each only when there are any.
fn insert_short_names_and_categories(m: &mut Map<String, Value>, r: &ResourceInfo) {
    if !r.short_names.is_empty() {
        m.insert("shortNames".into(), strings(r.short_names));
    }
    if !r.categories.is_empty() {
        m.insert("categories".into(), strings(r.categories));
    }
}

/// The upstream storage version hash of a group/version/kind: base64 of the
/// first 8 bytes of SHA-256 over `group/version/kind`.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = sha256(format!("{group}/{version}/{kind}").as_bytes());
    BASE64.encode(&digest[..8])
}

/// The storage version hash discovery shows for `r`, if it has storage.
fn resource_storage_hash(r: &ResourceInfo) -> Option<String> {
    if !r.is_stored() {
        return None;
    }
    Some(storage_version_hash(r.storage_group, r.storage_version, r.kind))
}

/// `/api/v1` or `/apis/<group>/<version>`: an `APIResourceList` with one entry
/// per resource and one per subresource (`pods/status`, `deployments/scale`),
/// sorted by name as upstream does. `None` when nothing is served there.
pub fn api_resource_list(resources: &[&ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let rs = selected(resources, group, version);
    if rs.is_empty() {
        return None;
    }
    let mut entries: Vec<(String, Value)> = Vec::new();
    for r in rs {
        let mut m = Map::new();
        m.insert("name".into(), json!(r.resource));
        m.insert("singularName".into(), json!(r.singular));
        m.insert("namespaced".into(), json!(r.namespaced));
        m.insert("kind".into(), json!(r.kind));
        m.insert("verbs".into(), strings(r.verbs));
        insert_short_names_and_categories(&mut m, r);
        if let Some(h) = resource_storage_hash(r) {
            m.insert("storageVersionHash".into(), json!(h));
        }
        entries.push((r.resource.to_string(), Value::Object(m)));
        for s in r.subresources {
            let name = format!("{}/{}", r.resource, s.name);
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            m.insert("singularName".into(), json!(""));
            m.insert("namespaced".into(), json!(r.namespaced));
            if s.group != r.group || s.version != r.version {
                m.insert("group".into(), json!(s.group));
                m.insert("version".into(), json!(s.version));
            }
            m.insert("kind".into(), json!(s.kind));
            m.insert("verbs".into(), strings(s.verbs));
            entries.push((name, Value::Object(m)));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    }))
}

fn gvk_json(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn resource_discovery(r: &ResourceInfo) -> Value {
    let mut m = Map::new();
    m.insert("resource".into(), json!(r.resource));
    // Upstream derives responseKind from the APIResource entry, whose group and
    // version are only set when they differ from the serving group/version.
    m.insert("responseKind".into(), gvk_json("", "", r.kind));
    m.insert("scope".into(), json!(if r.namespaced { "Namespaced" } else { "Cluster" }));
    m.insert("singularResource".into(), json!(r.singular));
    m.insert("verbs".into(), strings(r.verbs));
    insert_short_names_and_categories(&mut m, r);
    if !r.subresources.is_empty() {
        let mut subs: Vec<_> = r.subresources.iter().collect();
        subs.sort_by(|a, b| a.name.cmp(b.name));
        let subs: Vec<Value> = subs
            .into_iter()
            .map(|s| {
                let kind = if s.group != r.group || s.version != r.version {
                    gvk_json(s.group, s.version, s.kind)
                } else {
                    gvk_json("", "", s.kind)
                };
                json!({"subresource": s.name, "responseKind": kind, "verbs": strings(s.verbs)})
            })
            .collect();
        m.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(m)
}

fn group_discovery(resources: &[&ResourceInfo], group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let rs: Vec<Value> = selected(resources, group, v).into_iter().map(resource_discovery).collect();
            json!({"version": v, "resources": rs, "freshness": "Current"})
        })
        .collect();
    let mut meta = Map::new();
    if !group.is_empty() {
        meta.insert("name".into(), json!(group));
    }
    meta.insert("creationTimestamp".into(), Value::Null);
    json!({"metadata": meta, "versions": versions})
}

fn discovery_list(resources: &[&ResourceInfo], core: bool, version: AggregatedVersion) -> Value {
    let items: Vec<Value> = groups_of(resources)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| group_discovery(resources, g, &vs))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": version.api_version(),
        "metadata": {},
        "items": items,
    })
}

/// Aggregated discovery for `/api`: the core group only.
pub fn aggregated_api(resources: &[&ResourceInfo], version: AggregatedVersion) -> Value {
    discovery_list(resources, true, version)
}

/// Aggregated discovery for `/apis`: every named group.
pub fn aggregated_apis(resources: &[&ResourceInfo], version: AggregatedVersion) -> Value {
    discovery_list(resources, false, version)
}

/// SHA-256 of `data`: used for storage version hashes and OpenAPI document hashes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::all;

    fn table() -> Vec<&'static ResourceInfo> {
        all().iter().collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha256(long)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }

    #[test]
    fn storage_version_hashes_match_upstream() {
        // Values a stock 1.33 kube-apiserver reports in discovery.
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(storage_version_hash("apps", "v1", "Deployment"), "8aSe+NMegvE=");
    }

    #[test]
    fn apps_v1_lists_scale_with_autoscaling_kind() {
        let doc = api_resource_list(&table(), "apps", "v1").unwrap_or(Value::Null);
        assert_eq!(doc["groupVersion"], "apps/v1");
        let resources = doc["resources"].as_array().cloned().unwrap_or_default();
        let scale = resources.iter().find(|r| r["name"] == "deployments/scale").cloned().unwrap_or(Value::Null);
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["namespaced"], true);
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        let status = resources.iter().find(|r| r["name"] == "deployments/status").cloned().unwrap_or(Value::Null);
        assert_eq!(status["kind"], "Deployment");
        assert!(status.get("group").is_none());
        let deploy = resources.iter().find(|r| r["name"] == "deployments").cloned().unwrap_or(Value::Null);
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        assert_eq!(deploy["singularName"], "deployment");
        assert_eq!(deploy["storageVersionHash"], "8aSe+NMegvE=");
        let names: Vec<&str> = resources.iter().filter_map(|r| r["name"].as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn core_v1_resource_list() {
        let doc = api_resource_list(&table(), "", "v1").unwrap_or(Value::Null);
        assert_eq!(doc["groupVersion"], "v1");
        let resources = doc["resources"].as_array().cloned().unwrap_or_default();
        let find = |n: &str| resources.iter().find(|r| r["name"] == n).cloned().unwrap_or(Value::Null);
        assert_eq!(find("pods")["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert_eq!(find("pods/eviction")["group"], "policy");
        assert_eq!(find("pods/log")["kind"], "Pod");
        assert_eq!(find("bindings")["verbs"], json!(["create"]));
        assert!(find("bindings").get("storageVersionHash").is_none());
        assert!(find("componentstatuses").get("storageVersionHash").is_none());
        assert_eq!(find("nodes")["namespaced"], false);
        assert!(api_resource_list(&table(), "apps", "v1beta1").is_none());
    }

    #[test]
    fn shared_storage_shares_hash() {
        let t = table();
        let hash_of = |g: &str, v: &str, r: &str| {
            api_resource_list(&t, g, v)
                .and_then(|d| d["resources"].as_array().and_then(|rs| rs.iter().find(|x| x["name"] == r).cloned()))
        };
        let v1 = hash_of("autoscaling", "v1", "horizontalpodautoscalers").unwrap_or(Value::Null);
        let v2 = hash_of("autoscaling", "v2", "horizontalpodautoscalers").unwrap_or(Value::Null);
        assert_eq!(v1["storageVersionHash"], v2["storageVersionHash"]);
        assert_eq!(
            v1["storageVersionHash"],
            json!(storage_version_hash("autoscaling", "v2", "HorizontalPodAutoscaler"))
        );
    }

    #[test]
    fn group_list_and_group() {
        let doc = api_group_list(&table());
        let groups = doc["groups"].as_array().cloned().unwrap_or_default();
        assert_eq!(groups[0]["name"], "apps");
        assert!(groups.iter().all(|g| g["name"] != ""));
        let autoscaling = groups.iter().find(|g| g["name"] == "autoscaling").cloned().unwrap_or(Value::Null);
        assert_eq!(autoscaling["preferredVersion"]["groupVersion"], "autoscaling/v2");
        assert_eq!(autoscaling["versions"][1]["version"], "v1");
        let g = api_group(&table(), "batch").unwrap_or(Value::Null);
        assert_eq!(g["kind"], "APIGroup");
        assert_eq!(g["preferredVersion"]["version"], "v1");
        assert!(api_group(&table(), "nosuch.example.com").is_none());
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(v["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.1:6443");
    }

    #[test]
    fn aggregated_discovery() {
        let t = table();
        let core = aggregated_api(&t, AggregatedVersion::V2);
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        let items = core["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = v1["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "pods").cloned())
            .unwrap_or(Value::Null);
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["responseKind"]["kind"], "Pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let eviction = pods["subresources"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["subresource"] == "eviction").cloned())
            .unwrap_or(Value::Null);
        assert_eq!(eviction["responseKind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
        assert_eq!(eviction["verbs"], json!(["create"]));

        let apis = aggregated_apis(&t, AggregatedVersion::V2Beta1);
        assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let items = apis["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items[0]["metadata"]["name"], "apps");
        let autoscaling = items.iter().find(|i| i["metadata"]["name"] == "autoscaling").cloned().unwrap_or(Value::Null);
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
        let nodes_scope = v1["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "nodes").cloned())
            .unwrap_or(Value::Null);
        assert_eq!(nodes_scope["scope"], "Cluster");
        let deploy = items[0]["versions"][0]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "deployments").cloned())
            .unwrap_or(Value::Null);
        let scale = deploy["subresources"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["subresource"] == "scale").cloned())
            .unwrap_or(Value::Null);
        assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
    }
}
