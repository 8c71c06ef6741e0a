//! rkube-controller-ttlafterfinished: the TTL-after-finished controller (upstream's
//! pkg/controller/ttlafterfinished).
//!
//! A Job with `spec.ttlSecondsAfterFinished` is deleted that many seconds after it finished (the
//! `lastTransitionTime` of its Complete or Failed condition). Before deleting, the Job is read again
//! from the apiserver so that a TTL changed in the meantime is honoured; the delete carries a UID
//! precondition and, like upstream, `propagationPolicy: Foreground` (the garbage collector removes
//! the pods first). It is an API client only.

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rkube_controller_common::is_not_found;
use std::sync::Arc;
use std::time::Duration;

/// Controller settings (upstream's kube-controller-manager flags).
#[derive(Clone)]
pub struct Config {
    /// `--concurrent-ttl-after-finished-syncs`.
    pub concurrent_syncs: usize,
    /// The clock (tests may inject another).
    pub now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 5, now: Arc::new(Timestamp::now) }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("concurrent_syncs", &self.concurrent_syncs).finish_non_exhaustive()
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// When the Job finished: the transition time of its True Complete or Failed condition.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's `needsCleanup` + `timeLeft`: `None` when the Job is not subject to cleanup (no TTL,
/// not finished, already being deleted); otherwise how long until it expires (zero when due).
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = finish_time(job)?;
    let expire = finished + SignedDuration::from_secs(i64::from(ttl.max(0)));
    if expire <= now {
        return Some(Duration::ZERO);
    }
    Some(Duration::try_from(expire.duration_since(now)).unwrap_or(Duration::ZERO))
}

struct Ctx {
    client: kube::Client,
    config: Config,
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let now = (ctx.config.now)();
    match time_left(&job, now) {
        None => return Ok(Action::await_change()),
        Some(left) if !left.is_zero() => return Ok(Action::requeue(left)),
        Some(_) => {}
    }
    let ns = job.namespace().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    // The cached Job may be stale (e.g. the TTL was raised): check again on a fresh read.
    let fresh = match api.get(&job.name_any()).await {
        Ok(j) => j,
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    if fresh.meta().uid != job.meta().uid {
        return Ok(Action::await_change());
    }
    match time_left(&fresh, (ctx.config.now)()) {
        None => return Ok(Action::await_change()),
        Some(left) if !left.is_zero() => return Ok(Action::requeue(left)),
        Some(_) => {}
    }
    tracing::info!(job = %format!("{ns}/{}", fresh.name_any()), "cleaning up finished job (TTL expired)");
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions { uid: fresh.meta().uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&fresh.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(_job: Arc<Job>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "ttl-after-finished sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Runs the TTL-after-finished controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    let ctx = Arc::new(Ctx { client: client.clone(), config });
    Controller::new(Api::<Job>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "ttl-after-finished controller");
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(ttl: Option<i32>, cond: Option<(&str, &str)>, deleting: bool) -> Job {
        let mut v = json!({"metadata": {"name": "j"}, "spec": {"template": {}}});
        if let Some(t) = ttl {
            v["spec"]["ttlSecondsAfterFinished"] = json!(t);
        }
        if let Some((t, s)) = cond {
            v["status"] =
                json!({"conditions": [{"type": t, "status": s, "lastTransitionTime": "2024-01-01T00:00:00Z"}]});
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:05Z");
        }
        serde_json::from_value(v).unwrap_or_default()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn only_finished_jobs_with_a_ttl_expire() {
        let now = at("2024-01-01T00:00:30Z");
        assert_eq!(time_left(&job(None, Some(("Complete", "True")), false), now), None);
        assert_eq!(time_left(&job(Some(60), None, false), now), None);
        assert_eq!(time_left(&job(Some(60), Some(("Complete", "False")), false), now), None);
        assert_eq!(time_left(&job(Some(60), Some(("Complete", "True")), true), now), None);
        assert_eq!(time_left(&job(Some(60), Some(("Complete", "True")), false), now), Some(Duration::from_secs(30)));
        assert_eq!(time_left(&job(Some(10), Some(("Failed", "True")), false), now), Some(Duration::ZERO));
        assert_eq!(
            time_left(&job(Some(0), Some(("Failed", "True")), false), at("2024-01-01T00:00:00Z")),
            Some(Duration::ZERO)
        );
    }
}
