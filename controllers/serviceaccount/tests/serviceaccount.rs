//! The serviceaccount controller against an in-process apiserver: the default ServiceAccount and the
//! kube-root-ca.crt ConfigMap appear in new namespaces, come back after deletion, and edits are undone.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_serviceaccount::{Config, DESCRIPTION, run};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBtestCA\n-----END CERTIFICATE-----\n";

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn default_sa_and_root_ca_in_every_namespace() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    tokio::spawn(run(client.clone(), Config { root_ca_pem: PEM.into() }));

    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "team-a"}}))?;
    nss.create(&PostParams::default(), &ns).await?;

    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    let sa = eventually("default SA", || async { sas.get_opt("default").await.ok().flatten() }).await;
    let cm = eventually("root CA configmap", || async { cms.get_opt("kube-root-ca.crt").await.ok().flatten() }).await;
    assert_eq!(cm.data.as_ref().and_then(|d| d.get("ca.crt")).map(String::as_str), Some(PEM));
    assert_eq!(
        cm.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/description")).map(String::as_str),
        Some(DESCRIPTION)
    );

    // Also in namespaces that existed before (the bootstrap ones).
    let default_sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    eventually("default SA in default", || async { default_sas.get_opt("default").await.ok().flatten() }).await;

    // Deleted: recreated (a new object, new uid).
    let old_uid = sa.metadata.uid.clone();
    sas.delete("default", &DeleteParams::default()).await?;
    eventually("recreated SA", || async {
        sas.get_opt("default").await.ok().flatten().filter(|s| s.metadata.uid != old_uid)
    })
    .await;
    let old_uid = cm.metadata.uid.clone();
    cms.delete("kube-root-ca.crt", &DeleteParams::default()).await?;
    eventually("recreated configmap", || async {
        cms.get_opt("kube-root-ca.crt").await.ok().flatten().filter(|c| c.metadata.uid != old_uid)
    })
    .await;

    // Edited: corrected.
    let patch = serde_json::json!({"data": {"ca.crt": "tampered", "other": "x"}});
    cms.patch("kube-root-ca.crt", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    eventually("corrected configmap", || async {
        cms.get_opt("kube-root-ca.crt").await.ok().flatten().filter(|c| {
            c.data.as_ref().is_some_and(|d| d.len() == 1 && d.get("ca.crt").map(String::as_str) == Some(PEM))
        })
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn terminating_namespace_gets_nothing_new() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    // A finalizer keeps the namespace in Terminating.
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "going", "finalizers": ["example.com/hold"]}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    nss.delete("going", &DeleteParams::default()).await?;
    tokio::spawn(run(client.clone(), Config { root_ca_pem: PEM.into() }));
    // Wait until the controller has handled an active namespace created afterwards...
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "live"}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    let live: Api<ServiceAccount> = Api::namespaced(client.clone(), "live");
    eventually("default SA in live", || async { live.get_opt("default").await.ok().flatten() }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...while the terminating one got nothing.
    let going: Api<ServiceAccount> = Api::namespaced(client.clone(), "going");
    assert!(going.get_opt("default").await?.is_none());
    Ok(())
}
