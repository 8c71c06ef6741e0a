//! Object lifecycle as upstream: finalizers and deletionTimestamp, graceful
//! pod deletion, preconditions, propagation policies, terminating namespaces,
//! status and scale subresources, pod binding, field selectors.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use rkube_apiserver::testenv::TestEnv;
use serde_json::json;

fn status_of(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other}"),
    }
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut v = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(n) = node {
        v["spec"]["nodeName"] = json!(n);
    }
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn finalizers_hold_objects_until_removed() {
    let env = TestEnv::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/wait"]}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let got = cms.get("held").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    assert_eq!(got.metadata.deletion_grace_period_seconds, Some(0));
    // removing the last finalizer deletes it
    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert_eq!(status_of(cms.get("held").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn propagation_policies_are_recorded_for_the_garbage_collector() {
    let env = TestEnv::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    for (name, policy, finalizer) in
        [("orphan", PropagationPolicy::Orphan, "orphan"), ("fg", PropagationPolicy::Foreground, "foregroundDeletion")]
    {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let dp = DeleteParams { propagation_policy: Some(policy), ..Default::default() };
        cms.delete(name, &dp).await.unwrap();
        let got = cms.get(name).await.unwrap();
        assert_eq!(got.metadata.finalizers, Some(vec![finalizer.to_string()]));
        assert!(got.metadata.deletion_timestamp.is_some());
    }
    // Background (the default) deletes at once
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "bg"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("bg", &DeleteParams::background()).await.unwrap();
    assert_eq!(status_of(cms.get("bg").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn preconditions_and_graceful_pod_deletion() {
    let env = TestEnv::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(env.client());
    let p = pods.create(&PostParams::default(), &pod("bound", Some("node-1"))).await.unwrap();
    assert_eq!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
    let wrong = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("not-the-uid".into()), resource_version: None }),
        ..Default::default()
    };
    let (code, reason, msg) = status_of(pods.delete("bound", &wrong).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("Precondition failed: UID in precondition"), "{msg}");
    // a pod on a node waits for its kubelet: deletionTimestamp + grace period
    pods.delete("bound", &DeleteParams { grace_period_seconds: Some(20), ..Default::default() }).await.unwrap();
    let got = pods.get("bound").await.unwrap();
    assert_eq!(got.metadata.deletion_grace_period_seconds, Some(20));
    // grace period 0 removes it (what a kubelet does once containers are gone)
    pods.delete("bound", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap_or_else(|_| panic!("second delete"));
    // an unscheduled pod goes at once
    pods.create(&PostParams::default(), &pod("free", None)).await.unwrap();
    pods.delete("free", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(pods.get("free").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn terminating_namespace_refuses_new_content() {
    let env = TestEnv::start().await.unwrap();
    let nss: Api<Namespace> = Api::all(env.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "going"}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.spec.unwrap().finalizers, Some(vec!["kubernetes".to_string()]));
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    nss.delete("going", &DeleteParams::default()).await.unwrap();
    let got = nss.get("going").await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Terminating"));
    let cms: Api<ConfigMap> = Api::namespaced(env.client(), "going");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    let (code, reason, msg) = status_of(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert!(msg.contains("because it is being terminated"), "{msg}");
}

#[tokio::test]
async fn status_and_scale_subresources() {
    let env = TestEnv::start().await.unwrap();
    let deps: Api<Deployment> = Api::default_namespaced(env.client());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "nginx"}]}}},
        "status": {"replicas": 99},
    }))
    .unwrap();
    let d = deps.create(&PostParams::default(), &d).await.unwrap();
    assert!(d.status.is_none_or(|s| s.replicas.is_none()), "status set on create is dropped");
    // status writes change only status; spec writes cannot change status
    let d = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2}, "spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().replicas, Some(2));
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    let d =
        deps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"status": {"replicas": 5}}))).await.unwrap();
    assert_eq!(d.status.unwrap().replicas, Some(2));
    // scale
    let s = deps.get_scale("web").await.unwrap();
    assert_eq!(s.status.unwrap().selector.as_deref(), Some("app=web"));
    deps.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await.unwrap();
    assert_eq!(deps.get("web").await.unwrap().spec.unwrap().replicas, Some(4));
    let (code, _, msg) = status_of(
        deps.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": -1}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422, "{msg}");
}

#[tokio::test]
async fn binding_and_field_selectors() {
    let env = TestEnv::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(env.client());
    pods.create(&PostParams::default(), &pod("p1", None)).await.unwrap();
    pods.create(&PostParams::default(), &pod("p2", None)).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"}, "target": {"kind": "Node", "name": "n1"}});
    let req = http::Request::post("/api/v1/namespaces/default/pods/p1/binding")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(binding.to_string().into_bytes()))
        .unwrap();
    let resp = env.client().send(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    let p1 = pods.get("p1").await.unwrap();
    assert_eq!(p1.spec.unwrap().node_name.as_deref(), Some("n1"));
    let cond = p1.status.unwrap().conditions.unwrap();
    assert!(cond.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    // binding twice conflicts
    let req = http::Request::post("/api/v1/namespaces/default/pods/p1/binding")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(binding.to_string().into_bytes()))
        .unwrap();
    assert_eq!(env.client().send(req).await.unwrap().status(), 409);
    // field selectors upstream supports on pods
    let on_n1 = pods.list(&ListParams::default().fields("spec.nodeName=n1")).await.unwrap();
    assert_eq!(on_n1.items.len(), 1);
    let unbound = pods.list(&ListParams::default().fields("spec.nodeName=")).await.unwrap();
    assert_eq!(unbound.items[0].metadata.name.as_deref(), Some("p2"));
    let pending = pods.list(&ListParams::default().fields("status.phase=Pending,metadata.name!=p1")).await.unwrap();
    assert_eq!(pending.items.len(), 1);
    let (code, reason, msg) = status_of(pods.list(&ListParams::default().fields("spec.image=x")).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (400, "BadRequest"), "{msg}");
    // secrets by type
    let secrets: Api<Secret> = Api::default_namespaced(env.client());
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""}}))
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let o: Secret = serde_json::from_value(json!({"metadata": {"name": "plain"}, "stringData": {"a": "b"}})).unwrap();
    let plain = secrets.create(&PostParams::default(), &o).await.unwrap();
    assert_eq!(plain.type_.as_deref(), Some("Opaque"));
    let tls = secrets.list(&ListParams::default().fields("type=kubernetes.io/tls")).await.unwrap();
    assert_eq!(tls.items.len(), 1);
}
