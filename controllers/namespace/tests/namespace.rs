//! The namespace controller against an in-process apiserver: deleting a
//! namespace empties it and removes it; objects with finalizers hold it, with
//! upstream's status conditions meanwhile.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use serde_json::json;
use std::time::{Duration, Instant};

struct Env {
    _env: TestEnv,
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Env {
    let env = TestEnv::start().await.expect("testenv");
    let client = env.client();
    let c = client.clone();
    let task = tokio::spawn(async move {
        let _ = rkube_controller_namespace::run(c, Default::default()).await;
    });
    Env { _env: env, client, task }
}

async fn create<K>(client: &Client, ns: &str, obj: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let obj: K = serde_json::from_value(obj).expect("valid object");
    api.create(&PostParams::default(), &obj).await.expect("create")
}

async fn make_namespace(client: &Client, name: &str) {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    nss.create(&PostParams::default(), &ns).await.expect("create namespace");
}

fn condition(ns: &Namespace, t: &str) -> Option<(String, String, String)> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

async fn wait_gone(nss: &Api<Namespace>, name: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if nss.get_opt(name).await.expect("get namespace").is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn deleting_a_namespace_empties_and_removes_it() {
    let env = start().await;
    let c = &env.client;
    make_namespace(c, "doomed").await;
    make_namespace(c, "bystander").await;
    create::<ConfigMap>(c, "doomed", json!({"metadata": {"name": "cm"}, "data": {"k": "v"}})).await;
    create::<Secret>(c, "doomed", json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}})).await;
    create::<Service>(c, "doomed", json!({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})).await;
    create::<Pod>(
        c,
        "doomed",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    create::<Deployment>(
        c,
        "doomed",
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .await;
    create::<ConfigMap>(c, "bystander", json!({"metadata": {"name": "keep"}})).await;

    let nss: Api<Namespace> = Api::all(c.clone());
    nss.delete("doomed", &DeleteParams::default()).await.expect("delete namespace");
    assert!(wait_gone(&nss, "doomed", 15).await, "namespace was not finalized");

    let lp = ListParams::default();
    assert!(Api::<ConfigMap>::namespaced(c.clone(), "doomed").list(&lp).await.expect("list").items.is_empty());
    assert!(Api::<Secret>::namespaced(c.clone(), "doomed").list(&lp).await.expect("list").items.is_empty());
    assert!(Api::<Service>::namespaced(c.clone(), "doomed").list(&lp).await.expect("list").items.is_empty());
    assert!(Api::<Pod>::namespaced(c.clone(), "doomed").list(&lp).await.expect("list").items.is_empty());
    assert!(Api::<Deployment>::namespaced(c.clone(), "doomed").list(&lp).await.expect("list").items.is_empty());
    // Other namespaces are untouched.
    assert!(Api::<ConfigMap>::namespaced(c.clone(), "bystander").get_opt("keep").await.expect("get").is_some());
    assert!(nss.get_opt("bystander").await.expect("get").is_some());
}

#[tokio::test]
async fn an_object_with_a_finalizer_holds_the_namespace_until_released() {
    let env = start().await;
    let c = &env.client;
    make_namespace(c, "held").await;
    create::<ConfigMap>(c, "held", json!({"metadata": {"name": "pinned", "finalizers": ["example.com/hold"]}})).await;
    create::<Secret>(c, "held", json!({"metadata": {"name": "s"}})).await;
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.delete("held", &DeleteParams::default()).await.expect("delete namespace");

    // Wait for the controller to report the finalizer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ns = nss.get("held").await.expect("namespace");
    while condition(&ns, "NamespaceFinalizersRemaining").is_none_or(|c| c.0 != "True") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ns = nss.get("held").await.expect("namespace is held");
    }
    assert_eq!(
        condition(&ns, "NamespaceFinalizersRemaining"),
        Some((
            "True".into(),
            "SomeFinalizersRemain".into(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances".into()
        ))
    );
    assert_eq!(
        condition(&ns, "NamespaceContentRemaining"),
        Some((
            "True".into(),
            "SomeResourcesRemain".into(),
            "Some resources are remaining: configmaps. has 1 resource instances".into()
        ))
    );
    assert_eq!(
        condition(&ns, "NamespaceDeletionDiscoveryFailure").map(|c| (c.0, c.1)),
        Some(("False".into(), "ResourcesDiscovered".into()))
    );
    assert_eq!(
        condition(&ns, "NamespaceDeletionContentFailure").map(|c| (c.0, c.1)),
        Some(("False".into(), "ContentDeleted".into()))
    );
    assert_eq!(ns.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Terminating"));
    assert_eq!(ns.spec.as_ref().and_then(|s| s.finalizers.clone()), Some(vec!["kubernetes".to_string()]));

    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "held");
    let pinned = cms.get("pinned").await.expect("pinned stays while its finalizer is set");
    assert!(pinned.metadata.deletion_timestamp.is_some());
    assert!(Api::<Secret>::namespaced(c.clone(), "held").get_opt("s").await.expect("get").is_none());

    // Still held a little later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(nss.get_opt("held").await.expect("get").is_some());

    cms.patch("pinned", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("release finalizer");
    assert!(wait_gone(&nss, "held", 15).await, "namespace was not removed after its content went");
}
