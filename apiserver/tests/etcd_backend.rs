//! The apiserver on a real etcd: two apiservers over one etcd cluster see the
//! same objects, watch each other's writes, and share the Service allocators.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rkube_apiserver::testenv::TestEnv;
use rkube_e2e::EtcdCluster;
use rkube_storage::etcd::EtcdStore;
use serde_json::json;
use std::time::Duration;

async fn apiserver(etcd: &EtcdCluster) -> TestEnv {
    let store = EtcdStore::connect(&etcd.endpoints()).await.unwrap_or_else(|e| panic!("etcd: {e}\n{}", etcd.logs()));
    TestEnv::with_store(store).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apiservers_share_one_etcd() {
    let etcd = EtcdCluster::start(3);
    let a = apiserver(&etcd).await;
    let b = apiserver(&etcd).await;
    let cms_a: Api<ConfigMap> = Api::default_namespaced(a.client());
    let cms_b: Api<ConfigMap> = Api::default_namespaced(b.client());

    // a watch on B sees a write through A
    let rv = cms_b.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut events = cms_b.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "shared"}, "data": {"a": "1"}})).unwrap();
    let created = cms_a.create(&PostParams::default(), &cm).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await.unwrap().unwrap().unwrap();
    match ev {
        WatchEvent::Added(c) => assert_eq!(c.metadata.uid, created.metadata.uid),
        other => panic!("{other:?}"),
    }
    // a consistent list on B right after a write on A includes it
    let listed = cms_b.list(&ListParams::default()).await.unwrap();
    assert!(listed.items.iter().any(|c| c.metadata.name.as_deref() == Some("shared")));

    // optimistic concurrency holds across apiservers
    let mut stale = cms_b.get("shared").await.unwrap();
    let mut fresh = cms_a.get("shared").await.unwrap();
    fresh.data = Some([("a".to_string(), "2".to_string())].into());
    cms_a.replace("shared", &PostParams::default(), &fresh).await.unwrap();
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let err = cms_b.replace("shared", &PostParams::default(), &stale).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err}");

    // the ClusterIP allocator is shared: an address taken through A is refused on B
    let svcs_a: Api<Service> = Api::default_namespaced(a.client());
    let svcs_b: Api<Service> = Api::default_namespaced(b.client());
    let svc = |name: &str, ip: &str| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}))
            .unwrap()
    };
    svcs_a.create(&PostParams::default(), &svc("one", "10.96.5.5")).await.unwrap();
    let err = svcs_b.create(&PostParams::default(), &svc("two", "10.96.5.5")).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err}");
    // and the kubernetes Service was bootstrapped once, not twice
    let k_a = svcs_a.get("kubernetes").await.unwrap();
    let k_b = svcs_b.get("kubernetes").await.unwrap();
    assert_eq!(k_a.metadata.uid, k_b.metadata.uid);
}
