//! kube-rs against the in-process apiserver: typed CRUD, pagination, and a
//! kube-runtime watcher and reflector that see every change.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use rkube_apiserver::testenv::TestEnv;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn cm(name: &str, data: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"suite": "kube-rs"}},
        "data": {"v": data},
    }))
    .unwrap()
}

#[tokio::test]
async fn typed_crud() {
    let env = TestEnv::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    let created = cms.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1 = created.metadata.resource_version.clone().unwrap();

    let got = cms.get("a").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["v"], "1");

    let mut upd = got.clone();
    upd.data = Some(BTreeMap::from([("v".to_string(), "2".to_string())]));
    let replaced = cms.replace("a", &PostParams::default(), &upd).await.unwrap();
    assert_ne!(replaced.metadata.resource_version.unwrap(), rv1);

    // the stale copy conflicts
    let err = cms.replace("a", &PostParams::default(), &upd).await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("{other}"),
    }

    let patched = cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"w": "3"}}))).await.unwrap();
    assert_eq!(patched.data.unwrap().len(), 2);

    // create twice: AlreadyExists
    match cms.create(&PostParams::default(), &cm("a", "1")).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("{other}"),
    }

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    match cms.get("a").await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "configmaps \"a\" not found");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn defaults_generation_and_services() {
    let env = TestEnv::start().await.unwrap();
    let deps: Api<Deployment> = Api::default_namespaced(env.client());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    }))
    .unwrap();
    let d = deps.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some("Always"));
    let d = deps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    let d = deps
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2), "metadata changes do not bump generation");
    let scale = deps.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));

    let svcs: Api<Service> = Api::default_namespaced(env.client());
    let mk = |name: &str, extra: serde_json::Value| -> Service {
        let mut v = json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
        if let (Some(spec), Some(e)) = (v["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    };
    let a = svcs.create(&PostParams::default(), &mk("a", json!({}))).await.unwrap();
    let ip = a.spec.unwrap().cluster_ip.unwrap();
    assert!(ip.starts_with("10."));
    // the same IP requested again is refused; a free one is honoured
    let err = svcs.create(&PostParams::default(), &mk("b", json!({"clusterIP": ip}))).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("provided IP is already allocated"), "{}", s.message);
        }
        other => panic!("{other}"),
    }
    let b = svcs.create(&PostParams::default(), &mk("b", json!({"clusterIP": "10.96.0.10"}))).await.unwrap();
    assert_eq!(b.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.10"));
    // node ports: requested, conflicting, released on delete
    let np = svcs
        .create(
            &PostParams::default(),
            &mk("np", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30500}]})),
        )
        .await
        .unwrap();
    assert_eq!(np.spec.unwrap().ports.unwrap()[0].node_port, Some(30500));
    let err = svcs
        .create(
            &PostParams::default(),
            &mk("np2", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30500}]})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err}");
    svcs.delete("np", &DeleteParams::default()).await.unwrap();
    svcs.delete("b", &DeleteParams::default()).await.unwrap();
    svcs.create(
        &PostParams::default(),
        &mk("np2", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30500}]})),
    )
    .await
    .unwrap();
    svcs.create(&PostParams::default(), &mk("c", json!({"clusterIP": "10.96.0.10"}))).await.unwrap();
    // the kubernetes service exists and owns the first address
    let k = svcs.get("kubernetes").await.unwrap();
    assert_eq!(k.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));
    let nss: Api<Namespace> = Api::all(env.client());
    let names: Vec<String> =
        nss.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|n| n.metadata.name).collect();
    assert_eq!(names, vec!["default", "kube-node-lease", "kube-public", "kube-system"]);
}

#[tokio::test]
async fn paginated_list_is_consistent() {
    let env = TestEnv::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    for i in 0..25 {
        cms.create(&PostParams::default(), &cm(&format!("c{i:02}"), "x")).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let token = first.metadata.continue_.clone().unwrap();
    // writes between pages do not show up in later pages
    cms.create(&PostParams::default(), &cm("c99", "late")).await.unwrap();
    cms.delete("c15", &DeleteParams::default()).await.unwrap();
    let mut names: Vec<String> = first.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    let mut cont = Some(token);
    while let Some(c) = cont {
        let page = cms.list(&ListParams::default().limit(10).continue_token(&c)).await.unwrap();
        assert_eq!(page.metadata.resource_version, first.metadata.resource_version);
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        cont = page.metadata.continue_.filter(|s| !s.is_empty());
    }
    let want: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    assert_eq!(names, want);
    let labelled = cms.list(&ListParams::default().labels("suite=kube-rs")).await.unwrap();
    assert_eq!(labelled.items.len(), 25);
    let mut plain = cm("plain", "x");
    plain.metadata.labels = None;
    cms.create(&PostParams::default(), &plain).await.unwrap();
    let others = cms.list(&ListParams::default().labels("suite notin (kube-rs)")).await.unwrap();
    let names: Vec<_> = others.items.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    assert_eq!(names, vec!["plain"]);
}

#[tokio::test]
async fn watcher_and_reflector_see_every_change() {
    let env = TestEnv::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client());
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default())).applied_objects();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(Ok(cm)) = stream.next().await {
            let v = cm.data.as_ref().and_then(|d| d.get("v").cloned()).unwrap_or_default();
            seen2.lock().unwrap().push(format!("{}={v}", cm.metadata.name.unwrap_or_default()));
        }
    });
    reader.wait_until_ready().await.unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("w{i}"), "0")).await.unwrap();
    }
    for i in 0..5 {
        cms.patch(&format!("w{i}"), &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "1"}}))).await.unwrap();
    }
    cms.delete("w0", &DeleteParams::default()).await.unwrap();
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let state = reader.state();
            let done = state.len() == 4 && state.iter().all(|c| c.data.as_ref().is_some_and(|d| d["v"] == "1"));
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "reflector state: {:?}",
        reader.state().iter().map(|c| c.metadata.name.clone()).collect::<Vec<_>>()
    );
    let seen = seen.lock().unwrap().clone();
    for i in 0..5 {
        assert!(seen.contains(&format!("w{i}=0")) && seen.contains(&format!("w{i}=1")), "{seen:?}");
    }
    task.abort();

    // a raw watch from an old revision replays in order
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &cm("later", "x")).await.unwrap();
    let mut events = cms.watch(&kube::api::WatchParams::default(), &rv).await.unwrap().boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.try_next()).await.unwrap().unwrap().unwrap();
    match ev {
        kube::api::WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("later")),
        other => panic!("{other:?}"),
    }
}
