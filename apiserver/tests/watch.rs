//! Watch semantics on the wire: initial events, resume from a revision,
//! selector transitions, bookmarks, sendInitialEvents, timeoutSeconds, tables.

use futures::StreamExt;
use http::Request;
use http_body_util::BodyExt;
use rkube_apiserver::testenv::TestEnv;
use serde_json::{Value, json};
use std::time::Duration;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// Open a watch and return a stream of decoded events.
async fn watch(env: &TestEnv, query: &str, accept: &str) -> futures::stream::BoxStream<'static, Value> {
    let req = Request::builder()
        .uri(format!("{CMS}?watch=true&{query}"))
        .header("accept", accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = env.client().send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().into_data_stream();
    let mut buf = Vec::<u8>::new();
    body.flat_map(move |chunk| {
        buf.extend_from_slice(&chunk.unwrap_or_default());
        let mut out = Vec::new();
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            out.push(serde_json::from_slice::<Value>(&line).unwrap());
        }
        futures::stream::iter(out)
    })
    .boxed()
}

async fn next(s: &mut futures::stream::BoxStream<'static, Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("an event within 5 s").expect("stream open")
}

async fn put(env: &TestEnv, name: &str, labels: Value) -> Value {
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::default_namespaced_with(
        env.client(),
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}});
    let pp = kube::api::PatchParams::default();
    match api.get_opt(name).await.unwrap() {
        Some(_) => {
            let patch = json!({"metadata": {"labels": labels}});
            serde_json::to_value(api.patch(name, &pp, &kube::api::Patch::Merge(patch)).await.unwrap()).unwrap()
        }
        None => {
            serde_json::to_value(api.create(&Default::default(), &serde_json::from_value(obj).unwrap()).await.unwrap())
                .unwrap()
        }
    }
}

#[tokio::test]
async fn initial_events_then_live_changes() {
    let env = TestEnv::start().await.unwrap();
    put(&env, "a", json!({"x": "1"})).await;
    let mut w = watch(&env, "", "application/json").await;
    let ev = next(&mut w).await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("a")));
    put(&env, "b", json!({})).await;
    let ev = next(&mut w).await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("b")));
    put(&env, "b", json!({"y": "2"})).await;
    assert_eq!(next(&mut w).await["type"], "MODIFIED");
}

#[tokio::test]
async fn resume_from_revision_and_selector_transitions() {
    let env = TestEnv::start().await.unwrap();
    let a = put(&env, "a", json!({"tier": "web"})).await;
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    put(&env, "b", json!({"tier": "web"})).await;
    let mut w = watch(&env, &format!("resourceVersion={rv}&labelSelector=tier%3Dweb"), "application/json").await;
    let ev = next(&mut w).await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("b")));
    // stops matching: DELETED; matches again: ADDED
    put(&env, "a", json!({"tier": "db"})).await;
    let ev = next(&mut w).await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("a")));
    put(&env, "a", json!({"tier": "web"})).await;
    let ev = next(&mut w).await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("a")));
    // a real delete carries the deletion revision
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::default_namespaced(env.client());
    cms.delete("b", &Default::default()).await.unwrap();
    let ev = next(&mut w).await;
    assert_eq!(ev["type"], "DELETED");
    let del_rv: i64 = ev["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(del_rv > rv.parse::<i64>().unwrap());
}

#[tokio::test]
async fn send_initial_events_ends_with_a_bookmark() {
    let env = TestEnv::start().await.unwrap();
    put(&env, "a", json!({})).await;
    put(&env, "b", json!({})).await;
    let mut w = watch(
        &env,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=",
        "application/json",
    )
    .await;
    assert_eq!(next(&mut w).await["type"], "ADDED");
    assert_eq!(next(&mut w).await["type"], "ADDED");
    let bm = next(&mut w).await;
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(bm["object"]["kind"], "ConfigMap");
    // without resourceVersionMatch=NotOlderThan it is refused
    let req = Request::builder()
        .uri(format!("{CMS}?watch=true&sendInitialEvents=true"))
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = env.client().send(req).await.unwrap();
    assert_eq!(resp.status(), 422);
}

#[tokio::test]
async fn timeout_ends_the_stream_and_tables_have_rows() {
    let env = TestEnv::start().await.unwrap();
    put(&env, "a", json!({})).await;
    let t0 = std::time::Instant::now();
    let mut w = watch(&env, "timeoutSeconds=1", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").await;
    let ev = next(&mut w).await;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "a");
    assert_eq!(ev["object"]["columnDefinitions"][0]["name"], "Name");
    let end = tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap();
    assert!(end.is_none(), "stream ends after timeoutSeconds");
    assert!(t0.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn watch_of_one_name_and_many_watchers() {
    let env = TestEnv::start().await.unwrap();
    let mut one = watch(&env, "fieldSelector=metadata.name%3Db&resourceVersion=0", "application/json").await;
    let mut many = Vec::new();
    for _ in 0..50 {
        many.push(watch(&env, "resourceVersion=0", "application/json").await);
    }
    put(&env, "a", json!({})).await;
    put(&env, "b", json!({})).await;
    let ev = next(&mut one).await;
    assert_eq!(ev["object"]["metadata"]["name"], "b", "only b passes the field selector");
    for w in many.iter_mut() {
        assert_eq!(next(w).await["object"]["metadata"]["name"], "a");
        assert_eq!(next(w).await["object"]["metadata"]["name"], "b");
    }
}
