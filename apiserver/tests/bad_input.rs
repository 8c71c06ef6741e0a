//! Bad input gets a clear 4xx Status with upstream's code and reason, and the
//! server keeps serving.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use rkube_apiserver::testenv::TestEnv;
use serde_json::{Value, json};

async fn call(env: &TestEnv, method: Method, path: &str, ct: &str, body: impl Into<Bytes>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(kube::client::Body::from(body.into().to_vec()))
        .unwrap();
    let resp = env.client().send(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let v = text.lines().next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(json!({ "raw": text }));
    (status, v)
}

fn assert_status(got: (u16, Value), code: u16, reason: &str) -> Value {
    assert_eq!(got.0, code, "{}", got.1);
    assert_eq!(got.1["kind"], "Status", "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert_eq!(got.1["reason"], reason, "{}", got.1);
    got.1
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn malformed_bodies() {
    let env = TestEnv::start().await.unwrap();
    assert_status(call(&env, Method::POST, CMS, "application/json", "{\"kind\": ").await, 400, "BadRequest");
    assert_status(call(&env, Method::POST, CMS, "application/yaml", "kind: [ConfigMap").await, 400, "BadRequest");
    assert_status(call(&env, Method::POST, CMS, "application/json", "[1,2]").await, 400, "BadRequest");
    assert_status(call(&env, Method::POST, CMS, "text/plain", "{}").await, 415, "UnsupportedMediaType");
    // YAML that is fine is accepted
    let (code, v) = call(
        &env,
        Method::POST,
        CMS,
        "application/yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n",
    )
    .await;
    assert_eq!(code, 201, "{v}");
}

#[tokio::test]
async fn kind_and_namespace_mismatches() {
    let env = TestEnv::start().await.unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}).to_string();
    let s = assert_status(call(&env, Method::POST, CMS, "application/json", pod).await, 400, "BadRequest");
    assert!(s["message"].as_str().unwrap().contains("kind"), "{s}");
    let dep = json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string();
    let s = assert_status(call(&env, Method::POST, CMS, "application/json", dep).await, 400, "BadRequest");
    assert!(s["message"].as_str().unwrap().contains("does not match the expected API version"), "{s}");
    let other_ns =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}});
    assert_status(call(&env, Method::POST, CMS, "application/json", other_ns.to_string()).await, 400, "BadRequest");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string();
    let s = assert_status(
        call(&env, Method::POST, "/api/v1/namespaces/missing/configmaps", "application/json", cm).await,
        404,
        "NotFound",
    );
    assert_eq!(s["message"], "namespaces \"missing\" not found");
}

#[tokio::test]
async fn invalid_names_and_fields() {
    let env = TestEnv::start().await.unwrap();
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}).to_string();
    let s = assert_status(call(&env, Method::POST, CMS, "application/json", bad).await, 422, "Invalid");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    assert!(
        s["message"].as_str().unwrap().starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value")
    );
    let noname = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}).to_string();
    let s = assert_status(call(&env, Method::POST, CMS, "application/json", noname).await, 422, "Invalid");
    assert!(s["message"].as_str().unwrap().contains("name or generateName is required"), "{s}");
    let generated = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}).to_string();
    let (code, v) = call(&env, Method::POST, CMS, "application/json", generated).await;
    assert_eq!(code, 201);
    assert!(v["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
}

#[tokio::test]
async fn too_large_unknown_and_unsupported() {
    let env = TestEnv::start().await.unwrap();
    let big = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"a\":\"{}\"}}}}",
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    assert_status(call(&env, Method::POST, CMS, "application/json", big).await, 413, "RequestEntityTooLarge");
    assert_status(call(&env, Method::GET, "/api/v1/namespaces/default/widgets", "", "").await, 404, "NotFound");
    assert_status(call(&env, Method::GET, "/apis/nope.example.com/v1/things", "", "").await, 404, "NotFound");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}).to_string();
    call(&env, Method::POST, CMS, "application/json", cm).await;
    assert_status(
        call(&env, Method::PATCH, &format!("{CMS}/p"), "application/x-unknown-patch", "{}").await,
        415,
        "UnsupportedMediaType",
    );
    assert_status(
        call(&env, Method::PATCH, &format!("{CMS}/missing"), "application/merge-patch+json", "{}").await,
        404,
        "NotFound",
    );
    // and the server still answers
    let (code, _) = call(&env, Method::GET, CMS, "", "").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn watch_from_compacted_revision_is_gone() {
    let env = TestEnv::start().await.unwrap();
    for i in 0..5 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}}).to_string();
        call(&env, Method::POST, CMS, "application/json", cm).await;
    }
    let store = env.server.store();
    let rev = store.current_revision().await.unwrap();
    store.compact(rev).await.unwrap();
    // a list at a compacted exact revision and a watch from it are both 410
    let (code, v) =
        call(&env, Method::GET, &format!("{CMS}?resourceVersion=2&resourceVersionMatch=Exact"), "", "").await;
    assert_eq!((code, v["reason"].as_str()), (410, Some("Expired")), "{v}");
    let (code, v) = call(&env, Method::GET, &format!("{CMS}?watch=true&resourceVersion=2"), "", "").await;
    assert_eq!(code, 200);
    assert_eq!(v["type"], "ERROR", "{v}");
    assert_eq!(v["object"]["code"], 410, "{v}");
    assert_eq!(v["object"]["reason"], "Expired", "{v}");
}

#[tokio::test]
async fn continue_token_expires_with_compaction() {
    let env = TestEnv::start().await.unwrap();
    for i in 0..6 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("p{i}")}}).to_string();
        call(&env, Method::POST, CMS, "application/json", cm).await;
    }
    let (code, page) = call(&env, Method::GET, &format!("{CMS}?limit=2"), "", "").await;
    assert_eq!(code, 200);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    // a later write, then compaction past the token's revision
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}).to_string();
    call(&env, Method::POST, CMS, "application/json", cm).await;
    let store = env.server.store();
    store.compact(store.current_revision().await.unwrap()).await.unwrap();
    let (code, v) = call(&env, Method::GET, &format!("{CMS}?limit=2&continue={token}"), "", "").await;
    assert_eq!((code, v["reason"].as_str()), (410, Some("Expired")), "{v}");
    let (code, v) = call(&env, Method::GET, &format!("{CMS}?limit=2&continue=garbage"), "", "").await;
    assert_eq!(code, 400, "{v}");
}
