//! The CronJob controller against an in-process apiserver (TestEnv) with a fake clock that the
//! test advances minute by minute. No Job controller runs: the test finishes Jobs itself.

use anyhow::{Result, bail};
use chrono::{DateTime, Duration as CDuration, Timelike, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_cronjob::{Config, SCHEDULED_TIMESTAMP_ANNOTATION, job_name, run};
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Harness {
    _env: TestEnv,
    client: Client,
    clock: Arc<Mutex<DateTime<Utc>>>,
    task: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Harness {
    /// Moves the clock to `second` seconds past the next minute.
    fn next_minute(&self) -> DateTime<Utc> {
        let mut c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let base = c.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(*c);
        *c = base + CDuration::seconds(61);
        base + CDuration::seconds(60)
    }
}

async fn start() -> Result<Harness> {
    let env = TestEnv::start().await?;
    let client = env.client();
    // Start a little in the future so the CronJobs' creation times are behind the clock.
    let clock = Arc::new(Mutex::new(Utc::now() + CDuration::seconds(2)));
    let c = clock.clone();
    let config = Config {
        now: Arc::new(move || *c.lock().unwrap_or_else(|p| p.into_inner())),
        max_requeue: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let cl = client.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = run(cl, config).await {
            eprintln!("controller stopped: {e}");
        }
    });
    Ok(Harness { _env: env, client, clock, task })
}

async fn create_cronjob(client: &Client, name: &str, policy: &str, extra: serde_json::Value) -> Result<CronJob> {
    let mut spec = json!({
        "schedule": "* * * * *",
        "concurrencyPolicy": policy,
        "jobTemplate": {"metadata": {"labels": {"from": name}}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let cj: CronJob = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": NS}, "spec": spec}))?;
    Ok(Api::<CronJob>::namespaced(client.clone(), NS).create(&PostParams::default(), &cj).await?)
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn jobs_of(client: &Client, cj: &str) -> Result<Vec<Job>> {
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut jobs: Vec<Job> = api
        .list(&ListParams::default().labels(&format!("from={cj}")))
        .await?
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();
    jobs.sort_by_key(|j| j.name_any());
    Ok(jobs)
}

async fn wait_jobs(client: &Client, cj: &str, n: usize) -> Result<Vec<Job>> {
    eventually(&format!("{n} jobs of {cj}"), || async {
        let jobs = jobs_of(client, cj).await?;
        Ok((jobs.len() == n).then_some(jobs))
    })
    .await
}

/// Finishes a Job as the Job controller would (status Complete).
async fn complete(client: &Client, name: &str) -> Result<()> {
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now}
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

async fn get_cj(client: &Client, name: &str) -> Result<CronJob> {
    Ok(Api::<CronJob>::namespaced(client.clone(), NS).get(name).await?)
}

fn active_names(cj: &CronJob) -> Vec<String> {
    cj.status.as_ref().and_then(|s| s.active.clone()).unwrap_or_default().into_iter().filter_map(|r| r.name).collect()
}

#[tokio::test]
async fn forbid_skips_a_run_while_the_previous_is_active() -> Result<()> {
    let h = start().await?;
    create_cronjob(&h.client, "fb", "Forbid", json!({"startingDeadlineSeconds": 10})).await?;
    // Nothing before the first scheduled minute.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(jobs_of(&h.client, "fb").await?.is_empty());

    let t1 = h.next_minute();
    let jobs = wait_jobs(&h.client, "fb", 1).await?;
    assert_eq!(jobs[0].name_any(), job_name("fb", t1));
    assert_eq!(
        jobs[0].annotations().get(SCHEDULED_TIMESTAMP_ANNOTATION).cloned(),
        Some(t1.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    let cj = eventually("active job in status", || async {
        let cj = get_cj(&h.client, "fb").await?;
        Ok((active_names(&cj).len() == 1).then_some(cj))
    })
    .await?;
    assert_eq!(
        cj.status.as_ref().and_then(|s| s.last_schedule_time.as_ref()).map(|t| t.0.as_second()),
        Some(t1.timestamp())
    );

    // Second minute: the first job still runs, so nothing is started.
    h.next_minute();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(jobs_of(&h.client, "fb").await?.len(), 1);

    // The first job completes after the second run's starting deadline; the next minute starts
    // a new one.
    if let Ok(mut c) = h.clock.lock() {
        *c += CDuration::seconds(30);
    }
    complete(&h.client, &jobs[0].name_any()).await?;
    eventually("active list emptied", || async {
        let cj = get_cj(&h.client, "fb").await?;
        let done =
            active_names(&cj).is_empty() && cj.status.as_ref().and_then(|s| s.last_successful_time.clone()).is_some();
        Ok(done.then_some(()))
    })
    .await?;
    // The skipped run is past its starting deadline by now: it is missed, not run late.
    assert_eq!(jobs_of(&h.client, "fb").await?.len(), 1);
    let t3 = h.next_minute();
    let jobs = wait_jobs(&h.client, "fb", 2).await?;
    assert!(jobs.iter().any(|j| j.name_any() == job_name("fb", t3)));
    Ok(())
}

#[tokio::test]
async fn replace_deletes_the_running_job() -> Result<()> {
    let h = start().await?;
    create_cronjob(&h.client, "rp", "Replace", json!({})).await?;
    let t1 = h.next_minute();
    wait_jobs(&h.client, "rp", 1).await?;
    let t2 = h.next_minute();
    let jobs = eventually("replacement", || async {
        let jobs = jobs_of(&h.client, "rp").await?;
        Ok((jobs.len() == 1 && jobs[0].name_any() == job_name("rp", t2)).then_some(jobs))
    })
    .await?;
    assert_ne!(jobs[0].name_any(), job_name("rp", t1));
    eventually("active is the new job", || async {
        let cj = get_cj(&h.client, "rp").await?;
        Ok((active_names(&cj) == vec![job_name("rp", t2)]).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn history_limits_delete_the_oldest_finished_jobs() -> Result<()> {
    let h = start().await?;
    create_cronjob(&h.client, "hl", "Allow", json!({"successfulJobsHistoryLimit": 1})).await?;
    let mut names = Vec::new();
    for i in 0..3 {
        let t = h.next_minute();
        let name = job_name("hl", t);
        eventually(&format!("job {i}"), || async {
            Ok(jobs_of(&h.client, "hl").await?.iter().any(|j| j.name_any() == name).then_some(()))
        })
        .await?;
        complete(&h.client, &name).await?;
        names.push(name);
        // Let the controller see it finished before the next run.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let jobs = eventually("history trimmed to 1", || async {
        let jobs = jobs_of(&h.client, "hl").await?;
        Ok((jobs.len() == 1).then_some(jobs))
    })
    .await?;
    assert_eq!(jobs[0].name_any(), names[2], "the newest finished job is kept");
    Ok(())
}

#[tokio::test]
async fn suspended_cronjobs_do_not_run() -> Result<()> {
    let h = start().await?;
    create_cronjob(&h.client, "su", "Allow", json!({"suspend": true})).await?;
    h.next_minute();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(jobs_of(&h.client, "su").await?.is_empty());
    Ok(())
}
