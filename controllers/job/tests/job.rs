//! The Job controller against an in-process apiserver (TestEnv), with a fake "kubelet" in the test
//! that ends pods (Succeeded / Failed with container exit codes) through the status subresource.

use anyhow::{Result, bail};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_job::{Config, JOB_TRACKING_FINALIZER, run};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(15);
const INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// What the fake kubelet does with a running pod: `None` keeps it running, `Some(code)` ends it
/// with that exit code (0: Succeeded, else Failed).
type Decide = Arc<dyn Fn(&Pod) -> Option<i32> + Send + Sync>;

struct Harness {
    _env: TestEnv,
    client: Client,
    tasks: Vec<JoinHandle<()>>,
    max_active: Arc<AtomicUsize>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn start(decide: Decide) -> Result<Harness> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let c = client.clone();
    let config = Config { pod_backoff_base: Duration::from_millis(50), ..Config::default() };
    let controller = tokio::spawn(async move {
        if let Err(e) = run(c, config).await {
            eprintln!("controller stopped: {e}");
        }
    });
    let max_active = Arc::new(AtomicUsize::new(0));
    let kubelet = fake_kubelet(client.clone(), decide, max_active.clone());
    Ok(Harness { _env: env, client, tasks: vec![controller, kubelet], max_active })
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Every 100 ms: records how many pods are active, ends running pods as `decide` says, and kills
/// pods being deleted (Failed, exit 137; then removed once the controller dropped its finalizer).
fn fake_kubelet(client: Client, decide: Decide, max_active: Arc<AtomicUsize>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let seen_running: Mutex<std::collections::HashSet<String>> = Mutex::default();
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                let active = list
                    .items
                    .iter()
                    .filter(|p| !matches!(phase(p), "Succeeded" | "Failed") && p.metadata.deletion_timestamp.is_none())
                    .count();
                max_active.fetch_max(active, Ordering::SeqCst);
                for p in list.items {
                    let name = p.name_any();
                    let terminal = matches!(phase(&p), "Succeeded" | "Failed");
                    if p.metadata.deletion_timestamp.is_some() {
                        if !terminal {
                            let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(ended(137))).await;
                        } else {
                            let _ = pods
                                .delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                                .await;
                        }
                        continue;
                    }
                    if terminal {
                        continue;
                    }
                    // Running first (one round), then the outcome.
                    let first = seen_running.lock().map(|mut s| s.insert(name.clone())).unwrap_or(false);
                    if first {
                        let running = json!({"status": {"phase": "Running"}});
                        let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(running)).await;
                        continue;
                    }
                    if let Some(code) = decide(&p) {
                        let _ = pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(ended(code))).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn ended(code: i32) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({"status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "finishedAt": now}}}]
    }})
}

fn job(name: &str, spec: Value) -> Result<Job> {
    let mut s =
        json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}});
    if let (Some(base), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    Ok(serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS}, "spec": s}))?)
}

async fn create(client: &Client, j: &Job) -> Result<Job> {
    Ok(Api::<Job>::namespaced(client.clone(), NS).create(&PostParams::default(), j).await?)
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

fn condition<'a>(j: &'a Job, t: &str) -> Option<&'a JobCondition> {
    j.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == t && c.status == "True")
}

async fn wait_condition(client: &Client, name: &str, t: &str) -> Result<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    eventually(&format!("{name} {t}"), || async {
        let j = api.get(name).await?;
        Ok(condition(&j, t).is_some().then_some(j))
    })
    .await
}

async fn job_pods(client: &Client, name: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    Ok(pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"))).await?.items)
}

fn reason(c: Option<&JobCondition>) -> Option<&str> {
    c.and_then(|c| c.reason.as_deref())
}

#[tokio::test]
async fn completions_with_bounded_parallelism() -> Result<()> {
    let h = start(Arc::new(|_| Some(0))).await?;
    create(&h.client, &job("five", json!({"completions": 5, "parallelism": 2}))?).await?;
    let j = wait_condition(&h.client, "five", "Complete").await?;
    let st = j.status.clone().unwrap_or_default();
    assert_eq!(st.succeeded, Some(5));
    assert_eq!(st.failed.unwrap_or(0), 0);
    assert_eq!(st.active.unwrap_or(0), 0);
    assert!(st.completion_time.is_some() && st.start_time.is_some());
    assert_eq!(reason(condition(&j, "SuccessCriteriaMet")), Some("CompletionsReached"));
    assert_eq!(
        condition(&j, "Complete").and_then(|c| c.message.as_deref()),
        Some("Reached expected number of succeeded pods")
    );
    assert!(h.max_active.load(Ordering::SeqCst) <= 2, "more than 2 pods active at once");
    let pods = job_pods(&h.client, "five").await?;
    assert_eq!(pods.len(), 5, "exactly 5 pods, none extra");
    for p in &pods {
        assert!(p.name_any().starts_with("five-"));
        assert!(!p.finalizers().iter().any(|f| f == JOB_TRACKING_FINALIZER), "finalizer left on {}", p.name_any());
    }
    Ok(())
}

#[tokio::test]
async fn indexed_job_with_a_failing_index_and_backoff_limit_per_index() -> Result<()> {
    let decide: Decide = Arc::new(|p: &Pod| {
        let ix = p.annotations().get(INDEX).cloned().unwrap_or_default();
        Some(if ix == "1" { 1 } else { 0 })
    });
    let h = start(decide).await?;
    let spec = json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimitPerIndex": 1});
    create(&h.client, &job("idx", spec)?).await?;
    let j = wait_condition(&h.client, "idx", "Failed").await?;
    let st = j.status.clone().unwrap_or_default();
    assert_eq!(st.completed_indexes.as_deref(), Some("0,2"));
    assert_eq!(st.failed_indexes.as_deref(), Some("1"));
    assert_eq!(st.succeeded, Some(2));
    assert_eq!(st.failed, Some(2), "index 1 ran twice (1 retry)");
    assert_eq!(reason(condition(&j, "Failed")), Some("FailedIndexes"));
    assert!(st.completion_time.is_none());
    let pods = job_pods(&h.client, "idx").await?;
    let one: Vec<&Pod> = pods.iter().filter(|p| p.annotations().get(INDEX).map(String::as_str) == Some("1")).collect();
    assert_eq!(one.len(), 2);
    for p in &one {
        assert!(p.name_any().starts_with("idx-1-"));
        assert_eq!(p.spec.as_ref().and_then(|s| s.hostname.as_deref()), Some("idx-1"));
        let env = p.spec.as_ref().and_then(|s| s.containers[0].env.clone()).unwrap_or_default();
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    }
    let counts: Vec<String> = one
        .iter()
        .filter_map(|p| p.annotations().get("batch.kubernetes.io/job-index-failure-count").cloned())
        .collect();
    assert!(counts.contains(&"0".to_string()) && counts.contains(&"1".to_string()), "{counts:?}");
    Ok(())
}

#[tokio::test]
async fn backoff_limit_exceeded_fails_the_job() -> Result<()> {
    let h = start(Arc::new(|_| Some(3))).await?;
    create(&h.client, &job("boom", json!({"backoffLimit": 1}))?).await?;
    let j = wait_condition(&h.client, "boom", "Failed").await?;
    let st = j.status.clone().unwrap_or_default();
    assert_eq!(st.failed, Some(2));
    assert_eq!(st.succeeded.unwrap_or(0), 0);
    let failed = condition(&j, "Failed");
    assert_eq!(reason(failed), Some("BackoffLimitExceeded"));
    assert_eq!(failed.and_then(|c| c.message.as_deref()), Some("Job has reached the specified backoff limit"));
    assert_eq!(reason(condition(&j, "FailureTarget")), Some("BackoffLimitExceeded"));
    // No third pod.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(job_pods(&h.client, "boom").await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn active_deadline_exceeded_stops_running_pods() -> Result<()> {
    let h = start(Arc::new(|_| None)).await?;
    create(&h.client, &job("slow", json!({"activeDeadlineSeconds": 1, "parallelism": 2, "completions": 4}))?).await?;
    let j = wait_condition(&h.client, "slow", "Failed").await?;
    let failed = condition(&j, "Failed");
    assert_eq!(reason(failed), Some("DeadlineExceeded"));
    assert_eq!(failed.and_then(|c| c.message.as_deref()), Some("Job was active longer than specified deadline"));
    let st = j.status.clone().unwrap_or_default();
    assert_eq!(st.active.unwrap_or(0), 0);
    eventually("pods stopped", || async {
        let pods = job_pods(&h.client, "slow").await?;
        Ok(pods.iter().all(|p| p.metadata.deletion_timestamp.is_some() || phase(p) == "Failed").then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn suspend_and_resume() -> Result<()> {
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = release.clone();
    let h = start(Arc::new(move |_| r.load(Ordering::SeqCst).then_some(0))).await?;
    create(&h.client, &job("sus", json!({"suspend": true, "completions": 2, "parallelism": 2}))?).await?;
    let j = wait_condition(&h.client, "sus", "Suspended").await?;
    assert_eq!(reason(condition(&j, "Suspended")), Some("JobSuspended"));
    assert!(job_pods(&h.client, "sus").await?.is_empty());
    let api: Api<Job> = Api::namespaced(h.client.clone(), NS);
    api.patch("sus", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}}))).await?;
    eventually("2 pods after resume", || async { Ok((job_pods(&h.client, "sus").await?.len() == 2).then_some(())) })
        .await?;
    let j = api.get("sus").await?;
    let c =
        j.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "Suspended"));
    assert_eq!(c.map(|c| (c.status.as_str(), c.reason.as_deref())), Some(("False", Some("JobResumed"))));
    // Suspend again: running pods are deleted.
    api.patch("sus", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}}))).await?;
    wait_condition(&h.client, "sus", "Suspended").await?;
    eventually("pods stopped on suspend", || async {
        let pods = job_pods(&h.client, "sus").await?;
        Ok(pods.iter().all(|p| p.metadata.deletion_timestamp.is_some() || phase(p) == "Failed").then_some(()))
    })
    .await?;
    api.patch("sus", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}}))).await?;
    release.store(true, Ordering::SeqCst);
    let j = wait_condition(&h.client, "sus", "Complete").await?;
    assert_eq!(j.status.as_ref().and_then(|s| s.succeeded), Some(2));
    Ok(())
}

#[tokio::test]
async fn pod_failure_policy_fail_job_on_exit_code() -> Result<()> {
    let h = start(Arc::new(|_| Some(42))).await?;
    let spec = json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}
    ]}});
    create(&h.client, &job("pfp", spec)?).await?;
    let j = wait_condition(&h.client, "pfp", "Failed").await?;
    let failed = condition(&j, "Failed");
    assert_eq!(reason(failed), Some("PodFailurePolicy"));
    let pod = job_pods(&h.client, "pfp").await?.into_iter().next().map(|p| p.name_any()).unwrap_or_default();
    assert_eq!(
        failed.and_then(|c| c.message.clone()),
        Some(format!("Container c for pod {NS}/{pod} failed with exit code 42 matching FailJob rule at index 0"))
    );
    assert_eq!(j.status.as_ref().and_then(|s| s.failed), Some(1));
    Ok(())
}

#[tokio::test]
async fn work_queue_completes_when_one_succeeded_and_the_rest_ended() -> Result<()> {
    let first = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f, r) = (first.clone(), release.clone());
    let decide: Decide =
        Arc::new(move |_| if !f.swap(true, Ordering::SeqCst) || r.load(Ordering::SeqCst) { Some(0) } else { None });
    let h = start(decide).await?;
    create(&h.client, &job("queue", json!({"parallelism": 2}))?).await?;
    let api: Api<Job> = Api::namespaced(h.client.clone(), NS);
    eventually("one success counted", || async {
        Ok((api.get("queue").await?.status.and_then(|s| s.succeeded) == Some(1)).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let j = api.get("queue").await?;
    assert!(condition(&j, "Complete").is_none(), "a pod is still running");
    let pods = job_pods(&h.client, "queue").await?;
    assert_eq!(pods.len(), 2, "no replacement after a success");
    assert!(pods.iter().all(|p| p.metadata.deletion_timestamp.is_none()), "running pods are not deleted");
    release.store(true, Ordering::SeqCst);
    let j = wait_condition(&h.client, "queue", "Complete").await?;
    assert_eq!(j.status.and_then(|s| s.succeeded), Some(2));
    Ok(())
}
