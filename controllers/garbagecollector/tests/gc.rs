//! The garbage collector against an in-process apiserver: background,
//! foreground and orphan propagation over ConfigMaps linked by ownerReferences.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use rkube_apiserver::testenv::TestEnv;
use std::time::{Duration, Instant};

struct Env {
    _env: TestEnv,
    client: Client,
    ns: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(ns: &str) -> Env {
    let env = TestEnv::start().await.expect("testenv");
    let client = env.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let n = Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
    nss.create(&PostParams::default(), &n).await.expect("namespace");
    let c = client.clone();
    let task = tokio::spawn(async move {
        let _ = rkube_controller_garbagecollector::run(c, Default::default()).await;
    });
    Env { _env: env, client, ns: ns.into(), task }
}

fn owner_ref(cm: &ConfigMap, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: cm.metadata.name.clone().unwrap_or_default(),
        uid: cm.metadata.uid.clone().unwrap_or_default(),
        block_owner_deletion: Some(block),
        controller: None,
    }
}

async fn cm(api: &Api<ConfigMap>, name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    let obj = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &obj).await.expect("create configmap")
}

async fn exists(api: &Api<ConfigMap>, name: &str) -> bool {
    api.get_opt(name).await.expect("get").is_some()
}

/// Poll `check` until it returns true or `secs` pass.
async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn policy(p: PropagationPolicy) -> DeleteParams {
    DeleteParams { propagation_policy: Some(p), ..Default::default() }
}

#[tokio::test]
async fn background_deletes_dependents_after_owner_is_gone() {
    let env = start("gc-bg").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let a = cm(&api, "a", vec![]).await;
    cm(&api, "b", vec![owner_ref(&a, false)]).await;
    cm(&api, "c", vec![owner_ref(&a, false)]).await;
    cm(&api, "unrelated", vec![]).await;
    api.delete("a", &policy(PropagationPolicy::Background)).await.expect("delete a");
    assert!(!exists(&api, "a").await, "background: the owner goes at once");
    let gone = eventually(15, || async { !exists(&api, "b").await && !exists(&api, "c").await }).await;
    assert!(gone, "dependents b and c were not collected");
    assert!(exists(&api, "unrelated").await);
}

#[tokio::test]
async fn foreground_keeps_owner_until_dependents_are_gone() {
    let env = start("gc-fg").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let a = cm(&api, "a", vec![]).await;
    cm(&api, "b", vec![owner_ref(&a, true)]).await;
    cm(&api, "c", vec![owner_ref(&a, true)]).await;
    api.delete("a", &policy(PropagationPolicy::Foreground)).await.expect("delete a");
    let held = api.get("a").await.expect("a is held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.finalizers, Some(vec!["foregroundDeletion".to_string()]));
    let mut a_outlived_dependents = true;
    let mut done = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let (a, b, c) = (exists(&api, "a").await, exists(&api, "b").await, exists(&api, "c").await);
        if !a && (b || c) {
            a_outlived_dependents = false;
        }
        if !a && !b && !c {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "foreground deletion did not finish");
    assert!(a_outlived_dependents, "the owner went before its blocking dependents");
}

#[tokio::test]
async fn orphan_removes_owner_references_and_keeps_dependents() {
    let env = start("gc-orphan").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let a = cm(&api, "a", vec![]).await;
    let other = cm(&api, "other", vec![]).await;
    cm(&api, "b", vec![owner_ref(&a, true)]).await;
    cm(&api, "c", vec![owner_ref(&a, false), owner_ref(&other, false)]).await;
    api.delete("a", &policy(PropagationPolicy::Orphan)).await.expect("delete a");
    assert!(eventually(15, || async { !exists(&api, "a").await }).await, "orphaned owner was not released");
    let b = api.get("b").await.expect("b stays");
    assert_eq!(b.metadata.owner_references.unwrap_or_default(), vec![]);
    let c = api.get("c").await.expect("c stays");
    let refs = c.metadata.owner_references.unwrap_or_default();
    assert_eq!(refs.len(), 1, "only the orphaning owner's reference is removed");
    assert_eq!(refs[0].name, "other");
}

#[tokio::test]
async fn foreground_chain_deletes_bottom_up() {
    let env = start("gc-chain").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let a = cm(&api, "a", vec![]).await;
    let b = cm(&api, "b", vec![owner_ref(&a, true)]).await;
    cm(&api, "c", vec![owner_ref(&b, true)]).await;
    api.delete("a", &policy(PropagationPolicy::Foreground)).await.expect("delete a");
    let mut order_ok = true;
    let mut done = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let (a, b, c) = (exists(&api, "a").await, exists(&api, "b").await, exists(&api, "c").await);
        let owner_gone_first = !a && (b || c);
        let middle_gone_first = !b && c;
        if owner_gone_first || middle_gone_first {
            order_ok = false;
        }
        if !a && !b && !c {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "chain was not deleted");
    assert!(order_ok, "an owner went before its dependent");
}

#[tokio::test]
async fn dependent_of_a_never_existing_owner_is_collected_and_live_owner_is_kept() {
    let env = start("gc-virtual").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let ghost = OwnerReference {
        api_version: "v1".into(),
        kind: "Secret".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-000000000001".into(),
        block_owner_deletion: None,
        controller: None,
    };
    cm(&api, "orphaned", vec![ghost.clone()]).await;
    // A live Secret owner whose uid differs from the reference: still absent.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let s = Secret { metadata: ObjectMeta { name: Some("ghost".into()), ..Default::default() }, ..Default::default() };
    secrets.create(&PostParams::default(), &s).await.expect("secret");
    // Two owners, one alive: the object stays and loses only the dangling reference.
    let alive = cm(&api, "alive", vec![]).await;
    cm(&api, "half", vec![ghost, owner_ref(&alive, false)]).await;
    assert!(eventually(15, || async { !exists(&api, "orphaned").await }).await, "dangling dependent kept");
    let kept = eventually(15, || async {
        api.get("half").await.ok().and_then(|h| h.metadata.owner_references).is_some_and(|r| r.len() == 1)
    })
    .await;
    assert!(kept, "the dangling reference was not removed from an object with a live owner");
    let half = api.get("half").await.expect("half stays");
    assert_eq!(half.metadata.owner_references.unwrap_or_default()[0].name, "alive");
    assert!(exists(&api, "alive").await);
}

#[tokio::test]
async fn cluster_scoped_owner_and_non_blocking_foreground_dependents() {
    use k8s_openapi::api::core::v1::Node;
    let env = start("gc-scope").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let nodes: Api<Node> = Api::all(env.client.clone());
    let node = Node { metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() }, ..Default::default() };
    let node = nodes.create(&PostParams::default(), &node).await.expect("node");
    let node_ref = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: "n1".into(),
        uid: node.metadata.uid.clone().unwrap_or_default(),
        block_owner_deletion: None,
        controller: None,
    };
    cm(&api, "on-node", vec![node_ref]).await;
    // A foreground owner whose dependent does not block it: the owner goes at
    // once, the dependent is collected afterwards.
    let a = cm(&api, "a", vec![]).await;
    cm(&api, "loose", vec![owner_ref(&a, false)]).await;
    api.delete("a", &policy(PropagationPolicy::Foreground)).await.expect("delete a");
    nodes.delete("n1", &DeleteParams::default()).await.expect("delete node");
    let done = eventually(15, || async {
        !exists(&api, "a").await && !exists(&api, "loose").await && !exists(&api, "on-node").await
    })
    .await;
    assert!(done, "dependents of a cluster-scoped owner / non-blocking foreground dependents were kept");
}
