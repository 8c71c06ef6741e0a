//! CustomResourceDefinitions with kube-rs, as operator authors use them: a
//! `#[derive(CustomResource)]` type with a schema, status and scale
//! subresources, defaults and a CEL rule; then a multi-version CRD.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{conditions, wait::await_condition};
use kube::{CustomResource, CustomResourceExt};
use rkube_apiserver::testenv::TestEnv;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "demo.rkube.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    printcolumn = r#"{"name":"Size","type":"string","jsonPath":".spec.size"}"#,
    validation = "self.spec.replicas <= self.spec.maxReplicas"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    pub size: String,
    #[serde(default = "one")]
    #[schemars(default = "one")]
    pub replicas: i32,
    #[serde(default = "ten")]
    #[schemars(default = "ten")]
    pub max_replicas: i32,
}

fn one() -> i32 {
    1
}
fn ten() -> i32 {
    10
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    pub replicas: i32,
    pub phase: Option<String>,
}

fn status_of(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_crd_full_lifecycle() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Widget::crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(&name, &PatchParams::apply("widget-operator").force(), &Patch::Apply(&crd)).await.unwrap();
    let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(10), established).await.expect("Established within 10 s").unwrap();

    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let mut events = widgets.watch(&WatchParams::default(), "0").await.unwrap().boxed();

    // create: defaults come from the schema
    let w = Widget::new("w1", WidgetSpec { size: "small".into(), replicas: 1, max_replicas: 10 });
    let mut raw = serde_json::to_value(&w).unwrap();
    raw["spec"].as_object_mut().unwrap().remove("replicas");
    raw["spec"].as_object_mut().unwrap().remove("maxReplicas");
    let created: Widget =
        widgets.create(&PostParams::default(), &serde_json::from_value(raw).unwrap_or(w)).await.unwrap();
    assert_eq!((created.spec.replicas, created.spec.max_replicas), (1, 10));
    assert_eq!(created.metadata.generation, Some(1));
    match tokio::time::timeout(Duration::from_secs(5), events.try_next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("w1")),
        other => panic!("{other:?}"),
    }

    // the CEL rule
    let too_many = Widget::new("w2", WidgetSpec { size: "big".into(), replicas: 20, max_replicas: 10 });
    let (code, msg) = status_of(widgets.create(&PostParams::default(), &too_many).await.unwrap_err());
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("failed rule: self.spec.replicas <= self.spec.maxReplicas"), "{msg}");
    // a schema type error
    let bad =
        json!({"apiVersion": "demo.rkube.io/v1", "kind": "Widget", "metadata": {"name": "w3"}, "spec": {"size": 5}});
    let (code, msg) = status_of(
        widgets.create(&PostParams::default(), &serde_json::from_value(bad).unwrap_or(too_many)).await.unwrap_err(),
    );
    assert_eq!(code, 422, "{msg}");

    // status subresource: spec is ignored there, status is ignored on the main resource
    let st = json!({"status": {"replicas": 1, "phase": "Ready"}, "spec": {"size": "huge"}});
    let w = widgets.patch_status("w1", &PatchParams::default(), &Patch::Merge(&st)).await.unwrap();
    assert_eq!(w.status.as_ref().unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(w.spec.size, "small");
    // scale subresource maps to the spec path
    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    widgets.patch_scale("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await.unwrap();
    let w = widgets.get("w1").await.unwrap();
    assert_eq!(w.spec.replicas, 4);
    assert_eq!(w.metadata.generation, Some(2));
    assert_eq!(widgets.get_scale("w1").await.unwrap().status.unwrap().replicas, 1);

    // server-side apply with the schema's merge rules
    let applied = json!({"apiVersion": "demo.rkube.io/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": "medium"}});
    let w = widgets.patch("w1", &PatchParams::apply("tuner").force(), &Patch::Apply(&applied)).await.unwrap();
    assert_eq!((w.spec.size.as_str(), w.spec.replicas), ("medium", 4));

    // list, delete_collection
    for i in 0..3 {
        widgets
            .create(
                &PostParams::default(),
                &Widget::new(&format!("c{i}"), WidgetSpec { size: "s".into(), replicas: 1, max_replicas: 2 }),
            )
            .await
            .unwrap();
    }
    assert_eq!(widgets.list(&ListParams::default()).await.unwrap().items.len(), 4);
    widgets.delete_collection(&DeleteParams::default(), &ListParams::default()).await.unwrap();
    assert!(widgets.list(&ListParams::default()).await.unwrap().items.is_empty());

    // deleting the CRD deletes its resources, then stops serving
    widgets
        .create(
            &PostParams::default(),
            &Widget::new("last", WidgetSpec { size: "s".into(), replicas: 1, max_replicas: 2 }),
        )
        .await
        .unwrap();
    crds.delete(&name, &DeleteParams::default()).await.unwrap();
    let gone = async {
        loop {
            if crds.get_opt(&name).await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone).await.expect("CRD deleted after its resources");
    let (code, _) = status_of(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
    let left = env
        .server
        .store()
        .range(rkube_storage::RangeRequest { prefix: "/registry/demo.rkube.io/".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(left.kvs.is_empty(), "custom resources were deleted with their CRD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_version_crd_stores_in_the_storage_version() {
    let env = TestEnv::start().await.unwrap();
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.demo.rkube.io"},
        "spec": {"group": "demo.rkube.io", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {"name": "v1", "served": true, "storage": false, "deprecated": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}},
                {"name": "v2", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}
            ]}
    }))
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(crds, "gadgets.demo.rkube.io", conditions::is_crd_established()),
    )
    .await
    .unwrap()
    .unwrap();
    let ar1 = kube::api::ApiResource {
        group: "demo.rkube.io".into(),
        version: "v1".into(),
        api_version: "demo.rkube.io/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    };
    let ar2 = kube::api::ApiResource { version: "v2".into(), api_version: "demo.rkube.io/v2".into(), ..ar1.clone() };
    let v1: Api<kube::api::DynamicObject> = Api::default_namespaced_with(env.client(), &ar1);
    let v2: Api<kube::api::DynamicObject> = Api::default_namespaced_with(env.client(), &ar2);
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "demo.rkube.io/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"color": "red"}})).unwrap();
    v1.create(&PostParams::default(), &obj).await.unwrap();
    let read = v2.get("g").await.unwrap();
    assert_eq!(read.types.as_ref().unwrap().api_version, "demo.rkube.io/v2");
    assert_eq!(read.data["spec"]["color"], "red");
    let stored = env.server.store().get("/registry/demo.rkube.io/gadgets/default/g").await.unwrap().unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(stored["apiVersion"], "demo.rkube.io/v2", "stored in the storage version");
    // the deprecated version warns
    let req = http::Request::get("/apis/demo.rkube.io/v1/namespaces/default/gadgets")
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = env.client().send(req).await.unwrap();
    let warning = resp.headers().get("warning").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(warning.contains("demo.rkube.io/v1 Gadget is deprecated"), "{warning}");
}
