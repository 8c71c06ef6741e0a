//! Server-side apply, managedFields, dry-run and field validation through
//! kube-rs and raw requests against the in-process apiserver.

use http::Request;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use serde_json::{Value, json};

fn deployment(replicas: i32, image: &str, extra_env: bool) -> Value {
    let mut c = json!({"name": "web", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}]});
    if extra_env {
        c["env"] = json!([{"name": "MODE", "value": "fast"}]);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}}},
    })
}

fn managers(d: &Deployment) -> Vec<(String, String)> {
    d.metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn apply_creates_merges_and_tracks_ownership() {
    let env = TestEnv::start().await.unwrap();
    let deps: Api<Deployment> = Api::default_namespaced(env.client());
    let pp = PatchParams::apply("ci-tool");
    let d = deps.patch("web", &pp, &Patch::Apply(deployment(2, "nginx:1", true))).await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(managers(&d), vec![("ci-tool".to_string(), "Apply".to_string())]);
    let fields = serde_json::to_value(&d.metadata.managed_fields.as_ref().unwrap()[0].fields_v1).unwrap();
    assert!(
        fields.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"web\"}/f:image").is_some(),
        "list-map items are keyed by name: {fields}"
    );

    // Another manager (an Update) takes spec.replicas.
    let d = deps
        .patch(
            "web",
            &PatchParams { field_manager: Some("scaler".into()), ..Default::default() },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert!(managers(&d).contains(&("scaler".to_string(), "Update".to_string())));

    // Re-applying a different replicas value conflicts with the scaler...
    let err = deps.patch("web", &pp, &Patch::Apply(deployment(3, "nginx:1", true))).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("Apply failed with 1 conflict: conflict with \"scaler\""), "{}", s.message);
            assert!(s.message.contains(".spec.replicas"), "{}", s.message);
        }
        other => panic!("{other}"),
    }
    // ...unless forced, which takes ownership.
    let d = deps.patch("web", &pp.clone().force(), &Patch::Apply(deployment(3, "nginx:1", true))).await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    assert!(!managers(&d).iter().any(|(m, _)| m == "scaler"), "the scaler lost its only field: {:?}", managers(&d));

    // Dropping a field from the applied config removes it (nobody else owns it).
    let d = deps.patch("web", &pp, &Patch::Apply(deployment(3, "nginx:2", false))).await.unwrap();
    let c = &d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx:2"));
    assert!(c.env.is_none(), "env removed with the applied config");

    // A field owned by two managers stays when one of them stops applying it.
    let other = PatchParams::apply("other-tool");
    let shared =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}});
    deps.patch("web", &other, &Patch::Apply(shared)).await.unwrap();
    let mut without_label = deployment(3, "nginx:2", false);
    without_label["metadata"].as_object_mut().unwrap().remove("labels");
    let d = deps.patch("web", &pp, &Patch::Apply(without_label)).await.unwrap();
    assert_eq!(d.metadata.labels.unwrap()["app"], "web", "still owned by other-tool");
}

#[tokio::test]
async fn dry_run_keeps_nothing() {
    let env = TestEnv::start().await.unwrap();
    let svcs: Api<Service> = Api::default_namespaced(env.client());
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dry"},
        "spec": {"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}});
    let pp = PatchParams { dry_run: true, ..PatchParams::apply("t") };
    let out = svcs.patch("dry", &pp, &Patch::Apply(svc.clone())).await.unwrap();
    assert_eq!(out.spec.unwrap().cluster_ip.as_deref(), Some("10.96.7.7"));
    assert!(svcs.get_opt("dry").await.unwrap().is_none(), "dry-run apply stored nothing");
    // the address was not kept either: a real create may take it
    let created: Service = svcs.create(&PostParams::default(), &serde_json::from_value(svc).unwrap()).await.unwrap();
    assert_eq!(created.spec.unwrap().cluster_ip.as_deref(), Some("10.96.7.7"));
    let dp = DeleteParams { dry_run: true, ..Default::default() };
    svcs.delete("dry", &dp).await.unwrap();
    assert!(svcs.get_opt("dry").await.unwrap().is_some(), "dry-run delete deleted nothing");
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    cms.create(&PostParams { dry_run: true, ..Default::default() }, &cm).await.unwrap();
    assert!(cms.get_opt("c").await.unwrap().is_none());
}

async fn raw(env: &TestEnv, method: &str, path: &str, ct: &str, body: &str) -> (u16, Vec<String>, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = env.client().send(req).await.unwrap();
    let status = resp.status().as_u16();
    let warnings = resp.headers().get_all("warning").iter().map(|v| v.to_str().unwrap_or("").to_string()).collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, warnings, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn field_validation_strict_warn_ignore() {
    let env = TestEnv::start().await.unwrap();
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME","labels":{"a":"b"}},"data":{"k":"v"},"bogus":1,"data":{"k":"w"}}"#;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, _, status) =
        raw(&env, "POST", &format!("{cms}?fieldValidation=Strict"), "application/json", &body.replace("NAME", "s"))
            .await;
    assert_eq!(code, 400, "{status}");
    let msg = status["message"].as_str().unwrap();
    assert!(msg.contains("strict decoding error") && msg.contains(r#"unknown field "bogus""#), "{msg}");
    assert!(msg.contains(r#"duplicate field "data""#), "{msg}");
    let (code, warnings, _) =
        raw(&env, "POST", &format!("{cms}?fieldValidation=Warn"), "application/json", &body.replace("NAME", "w")).await;
    assert_eq!(code, 201);
    assert!(warnings.iter().any(|w| w.contains(r#"unknown field \"bogus\""#)), "{warnings:?}");
    let (code, warnings, _) =
        raw(&env, "POST", &format!("{cms}?fieldValidation=Ignore"), "application/json", &body.replace("NAME", "i"))
            .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty());
    let (code, _, status) =
        raw(&env, "POST", &format!("{cms}?fieldValidation=Sometimes"), "application/json", "{}").await;
    assert_eq!(code, 422, "{status}");
    // patches: unknown fields in the patched object
    let (code, _, status) = raw(
        &env,
        "PATCH",
        &format!("{cms}/w?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"x":1}}"#,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    // apply needs a field manager
    let (code, _, status) = raw(
        &env,
        "PATCH",
        &format!("{cms}/w"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\n",
    )
    .await;
    assert_eq!(code, 400, "{status}");
    // force only goes with apply
    let (code, _, status) =
        raw(&env, "PATCH", &format!("{cms}/w?force=true"), "application/merge-patch+json", "{}").await;
    assert_eq!(code, 422, "{status}");
}

#[tokio::test]
async fn controller_style_apply_with_force() {
    let env = TestEnv::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    // a user creates the object; a controller then owns data.state with force, as kube-runtime controllers do
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "state"}, "data": {"state": "new"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pp = PatchParams::apply("my-controller").force();
    let patch =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "state"}, "data": {"state": "ready"}});
    let out = cms.patch("state", &pp, &Patch::Apply(&patch)).await.unwrap();
    assert_eq!(out.data.unwrap()["state"], "ready");
    let m: Vec<String> = out.metadata.managed_fields.unwrap().into_iter().filter_map(|m| m.manager).collect();
    assert!(m.contains(&"my-controller".to_string()), "{m:?}");
    // idempotent: applying the same again changes nothing
    let rv = cms.get("state").await.unwrap().metadata.resource_version;
    cms.patch("state", &pp, &Patch::Apply(&patch)).await.unwrap();
    assert_eq!(cms.get("state").await.unwrap().metadata.resource_version, rv);
}
