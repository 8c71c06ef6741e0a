//! rkube-controller-job: the Job controller (upstream's pkg/controller/job, 1.33).
//!
//! Runs pods from a Job's template until `completions` succeed (or, without completions, until one
//! succeeds and the rest end), at most `parallelism` at a time. Failures are retried with an
//! exponential back-off (10 s doubling, capped at 6 min) until `backoffLimit`; `activeDeadlineSeconds`,
//! `suspend`, `Indexed` completion mode (per-index pods, `backoffLimitPerIndex`, `maxFailedIndexes`),
//! `podFailurePolicy` and `successPolicy` follow upstream. Pods carry the
//! `batch.kubernetes.io/job-tracking` finalizer until the controller has counted them, using
//! `status.uncountedTerminatedPods` as upstream does so that no pod is counted twice or lost.
//!
//! Each sync reads the Job and its pods from the apiserver (a consistent read), so the counts never
//! rest on a lagging cache; watches only trigger syncs. It is an API client only.

pub mod indexes;
pub mod policy;
pub mod sync;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::key_of;
use std::sync::Arc;
use std::time::Duration;

/// The reporting component of this controller's events.
pub const COMPONENT: &str = "job-controller";
/// The finalizer that keeps a Job's pods until the controller has counted them.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// `spec.managedBy` value of Jobs this controller manages (also when unset).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

/// Controller settings (upstream's kube-controller-manager flags and constants).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--concurrent-job-syncs`.
    pub concurrent_syncs: usize,
    /// First delay before re-creating a failed pod (upstream: 10 s); doubles with each failure.
    pub pod_backoff_base: Duration,
    /// Longest re-creation delay (upstream: 6 min).
    pub pod_backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrent_syncs: 5,
            pod_backoff_base: Duration::from_secs(10),
            pod_backoff_max: Duration::from_secs(360),
        }
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Common(#[from] rkube_controller_common::Error),
    #[error("{0}")]
    Sync(String),
}

fn job_key(job: &Job) -> String {
    key_of(job.meta().namespace.as_deref(), &job.name_any())
}

fn error_policy(job: Arc<Job>, err: &Error, ctx: Arc<sync::Ctx>) -> Action {
    let key = job_key(&job);
    let failures = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    tracing::debug!(job = %key, error = %err, failures, "sync failed; retrying");
    // Upstream's job queue: 5 ms doubling, capped (shorter cap than the pod back-off).
    let ms = 5u64.saturating_mul(1u64 << failures.min(20));
    Action::requeue(Duration::from_millis(ms).min(Duration::from_secs(60)))
}

/// Runs the Job controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let ctx = Arc::new(sync::Ctx::new(client.clone(), EventPublisher::new(client.clone(), COMPONENT), config.clone()));
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(concurrency))
        .run(sync::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "job controller");
            }
        })
        .await;
    Ok(())
}
