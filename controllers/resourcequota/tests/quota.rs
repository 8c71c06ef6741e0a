//! The ResourceQuota controller against an in-process apiserver (TestEnv).

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_resourcequota::{Config, run};
use serde_json::json;
use std::time::{Duration, Instant};

const NS: &str = "default";

async fn wait_used(api: &Api<ResourceQuota>, want: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rq = api.get("q").await?;
        let status = rq.status.unwrap_or_default();
        let used = status.used.unwrap_or_default().get("pods").map(|q| q.0.clone());
        let hard = status.hard.unwrap_or_default().get("pods").map(|q| q.0.clone());
        if used.as_deref() == Some(want) && hard.as_deref() == Some("2") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("status.used.pods = {used:?}, hard = {hard:?}; wanted {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn used_follows_pod_creations_and_deletions() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let cl = client.clone();
    let task = tokio::spawn(async move {
        let _ = run(cl, Config { resync_period: Duration::from_secs(60), ..Config::default() }).await;
    });
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), NS);
    let rq: ResourceQuota =
        serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}}))?;
    quotas.create(&PostParams::default(), &rq).await?;
    wait_used(&quotas, "0").await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for name in ["a", "b"] {
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )?;
        pods.create(&PostParams::default(), &p).await?;
    }
    wait_used(&quotas, "2").await?;

    pods.delete("a", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await?;
    wait_used(&quotas, "1").await?;
    task.abort();
    Ok(())
}
