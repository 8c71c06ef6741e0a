//! The TTL-after-finished controller against an in-process apiserver (TestEnv) with a fake clock.

use anyhow::{Result, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_ttlafterfinished::{Config, run};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NS: &str = "default";

async fn create_finished(client: &Client, name: &str, ttl: Option<i32>) -> Result<()> {
    let mut spec =
        json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}});
    if let Some(t) = ttl {
        spec["ttlSecondsAfterFinished"] = json!(t);
    }
    let job: Job = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS}, "spec": spec}))?;
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &job).await?;
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now}
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

/// Deleted, or being deleted (foreground deletion waits for the garbage collector).
async fn deleted(api: &Api<Job>, name: &str) -> Result<bool> {
    Ok(match api.get_opt(name).await? {
        None => true,
        Some(j) => j.metadata.deletion_timestamp.is_some(),
    })
}

#[tokio::test]
async fn finished_jobs_are_deleted_after_their_ttl() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    // A little ahead of the jobs' finish times (written just below).
    let clock = Arc::new(Mutex::new(Timestamp::now() + SignedDuration::from_secs(5)));
    let c = clock.clone();
    let config = Config { now: Arc::new(move || *c.lock().unwrap_or_else(|p| p.into_inner())), ..Config::default() };
    let cl = client.clone();
    let task = tokio::spawn(async move {
        let _ = run(cl, config).await;
    });
    create_finished(&client, "short", Some(0)).await?;
    create_finished(&client, "long", Some(100)).await?;
    create_finished(&client, "never", None).await?;
    let api: Api<Job> = Api::namespaced(client.clone(), NS);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !deleted(&api, "short").await? {
        if Instant::now() > deadline {
            task.abort();
            bail!("job with ttl 0 not deleted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!deleted(&api, "long").await?, "ttl 100 must wait");

    // 101 s later (fake clock); the controller requeued itself for ~100 s of real time, so nudge
    // it with a harmless change.
    if let Ok(mut t) = clock.lock() {
        *t += SignedDuration::from_secs(101);
    }
    api.patch("long", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"nudge": "1"}}}))).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !deleted(&api, "long").await? {
        if Instant::now() > deadline {
            task.abort();
            bail!("job with ttl 100 not deleted after the clock moved");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!deleted(&api, "never").await?, "jobs without a ttl stay");
    task.abort();
    Ok(())
}
