//! rkube-controller-cronjob: the CronJob controller (upstream's pkg/controller/cronjob, v2).
//!
//! For each CronJob: keeps `status.active` in line with its running Jobs (recording
//! `lastSuccessfulTime`), creates a Job `<cronjob>-<scheduled time in minutes>` at each scheduled
//! time (annotated `batch.kubernetes.io/cronjob-scheduled-timestamp`), honouring `timeZone`,
//! `suspend`, `startingDeadlineSeconds` (missed schedules, "too many missed start times") and
//! `concurrencyPolicy` (Allow / Forbid / Replace), and deletes the oldest finished Jobs beyond
//! `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`. The clock is injectable for tests.
//! It is an API client only.

pub mod schedule;

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::owner::{controller_of, controller_ref};
use rkube_controller_common::{is_not_found, is_status};
use schedule::Schedule;
use std::sync::Arc;
use std::time::Duration;

/// The reporting component of this controller's events.
pub const COMPONENT: &str = "cronjob-controller";
/// The annotation on created Jobs holding their scheduled time (RFC 3339, in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed schedules than this raise the "too many missed start times" warning.
const MAX_MISSED: usize = 100;

/// Controller settings.
#[derive(Clone)]
pub struct Config {
    /// `--concurrent-cron-job-syncs`.
    pub concurrent_syncs: usize,
    /// The clock.
    pub now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// Longest wait between syncs of a CronJob (`None`: sleep until the next scheduled time, as
    /// upstream does). Tests with a fake clock set a short period so that advancing the clock is
    /// noticed.
    pub max_requeue: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 5, now: Arc::new(Utc::now), max_requeue: None }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("concurrent_syncs", &self.concurrent_syncs)
            .field("max_requeue", &self.max_requeue)
            .finish_non_exhaustive()
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    events: EventPublisher,
    config: Config,
}

fn ts(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn chrono_of(t: &Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.0.as_second(), 0).single().unwrap_or_default()
}

/// Upstream's `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp().div_euclid(60))
}

/// The outcome of looking for the schedule to run now (upstream's `mostRecentScheduleTime`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The latest scheduled time in `(earliest, now]`, if any.
    pub most_recent: Option<DateTime<Utc>>,
    /// How many scheduled times were missed in that window.
    pub missed: usize,
    /// The next scheduled time after `now`.
    pub next: Option<DateTime<Utc>>,
}

/// Scheduled times between the CronJob's last schedule (or creation; no earlier than
/// `now - startingDeadlineSeconds`) and `now`.
pub fn due(cj: &CronJob, sched: &Schedule, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Due {
    let created = cj.metadata.creation_timestamp.as_ref().map(chrono_of).unwrap_or(now);
    let mut earliest = cj.status.as_ref().and_then(|s| s.last_schedule_time.as_ref()).map(chrono_of).unwrap_or(created);
    if let Some(d) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds) {
        let window_start = now - chrono::Duration::seconds(d);
        if window_start > earliest {
            earliest = window_start;
        }
    }
    let mut most_recent = None;
    let mut missed = 0;
    let mut t = earliest;
    let next = loop {
        match sched.next(t, tz) {
            Some(n) if n <= now => {
                most_recent = Some(n);
                missed += 1;
                t = n;
                if missed > MAX_MISSED * 1000 {
                    // Pathological windows: stop counting; the latest is close enough to now.
                    break sched.next(now, tz);
                }
            }
            other => break other,
        }
    };
    Due { most_recent, missed, next }
}

fn job_finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    for c in conds {
        if c.status == "True" && c.type_ == "Complete" {
            return Some("Complete");
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Some("Failed");
        }
    }
    None
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

async fn reconcile(cached: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let cj = match api.get(&cached.name_any()).await {
        Ok(c) if c.metadata.uid == cached.metadata.uid => c,
        Ok(_) => return Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let (status, action) = sync(&ctx, &cj, &jobs, &jobs_api).await?;
    if cj.status.as_ref() != Some(&status) {
        let mut next = cj.clone();
        next.status = Some(status);
        next.metadata.managed_fields = None;
        api.replace_status(&cj.name_any(), &PostParams::default(), &next).await?;
    }
    cleanup_finished(&ctx, &cj, &jobs, &jobs_api).await;
    let action = match (action, ctx.config.max_requeue) {
        (Some(d), Some(max)) => Action::requeue(d.min(max)),
        (None, Some(max)) => Action::requeue(max),
        (Some(d), None) => Action::requeue(d),
        (None, None) => Action::await_change(),
    };
    Ok(action)
}

/// One sync; returns the new status and when to come back.
async fn sync(
    ctx: &Ctx,
    cj: &CronJob,
    jobs: &[Job],
    jobs_api: &Api<Job>,
) -> Result<(CronJobStatus, Option<Duration>), Error> {
    let mut status = cj.status.clone().unwrap_or_default();
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    // Running Jobs of ours that the list misses (e.g. status lost) are added back.
    for j in jobs.iter().filter(|j| job_finished(j).is_none() && j.metadata.deletion_timestamp.is_none()) {
        if !active.iter().any(|r| r.uid == j.metadata.uid) {
            active.push(job_ref(j));
        }
    }
    let mut kept = Vec::new();
    for r in active {
        match jobs.iter().find(|j| j.metadata.uid == r.uid) {
            None => {
                // Gone (deleted by someone or the history cleanup).
                let name = r.name.clone().unwrap_or_default();
                tracing::debug!(cronjob = %cj.name_any(), job = %name, "active job went missing");
                if cj.metadata.deletion_timestamp.is_none() {
                    ctx.events.normal(cj, "MissingJob", "Sync", format!("Active job went missing: {name}")).await;
                }
            }
            Some(j) => match job_finished(j) {
                Some(state) => {
                    if state == "Complete" {
                        let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                        if done.is_some()
                            && status.last_successful_time.as_ref().map(|t| t.0) < done.as_ref().map(|t| t.0)
                        {
                            status.last_successful_time = done;
                        }
                    }
                    let note = format!("Saw completed job: {}, status: {state}", j.name_any());
                    ctx.events.normal(cj, "SawCompletedJob", "Sync", note).await;
                }
                None => kept.push(r),
            },
        }
    }
    let mut active = kept;
    let finish = |status: &mut CronJobStatus, active: Vec<ObjectReference>| {
        status.active = (!active.is_empty()).then_some(active);
    };

    let spec = cj.spec.clone().unwrap_or_default();
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        finish(&mut status, active);
        return Ok((status, None));
    }
    let tz = match schedule::time_zone(spec.time_zone.as_deref()) {
        Ok(tz) => tz,
        Err(e) => {
            ctx.events.warning(cj, "UnknownTimeZone", "Sync", e).await;
            finish(&mut status, active);
            return Ok((status, None));
        }
    };
    let sched = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            let note = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            ctx.events.warning(cj, "UnparseableSchedule", "Sync", note).await;
            finish(&mut status, active);
            return Ok((status, None));
        }
    };
    let now = (ctx.config.now)();
    let d = due(cj, &sched, tz, now);
    let wait_next = d.next.map(|n| (n - now).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(100));
    if d.missed > MAX_MISSED {
        let note = format!(
            "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            d.missed
        );
        ctx.events.warning(cj, "TooManyMissedTimes", "Sync", note).await;
    }
    let Some(scheduled) = d.most_recent else {
        finish(&mut status, active);
        return Ok((status, wait_next));
    };
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled + chrono::Duration::seconds(deadline) < now
    {
        let note = format!("Missed scheduled time to start a job: {}", scheduled.with_timezone(&tz).to_rfc2822());
        ctx.events.warning(cj, "MissSchedule", "Sync", note).await;
        finish(&mut status, active);
        return Ok((status, wait_next));
    }
    let name = job_name(&cj.name_any(), scheduled);
    let already = active.iter().any(|r| r.name.as_deref() == Some(name.as_str()))
        || status.last_schedule_time.as_ref().map(chrono_of) == Some(scheduled);
    if already {
        finish(&mut status, active);
        return Ok((status, wait_next));
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            let note = "Not starting job because prior execution is running and concurrency policy is Forbid";
            ctx.events.normal(cj, "JobAlreadyActive", "Sync", note.into()).await;
            finish(&mut status, active);
            return Ok((status, wait_next));
        }
        Some("Replace") => {
            for r in std::mem::take(&mut active) {
                let jname = r.name.clone().unwrap_or_default();
                let params =
                    DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
                match jobs_api.delete(&jname, &params).await {
                    Ok(_) => ctx.events.normal(cj, "SuccessfulDelete", "Delete", format!("Deleted job {jname}")).await,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        ctx.events.warning(cj, "FailedDelete", "Delete", format!("Deleted job: {e}")).await;
                        active.push(r);
                        finish(&mut status, active);
                        return Err(e.into());
                    }
                }
            }
        }
        _ => {}
    }
    let job = new_job(cj, &name, scheduled, tz);
    let created = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            ctx.events.normal(cj, "SuccessfulCreate", "Create", format!("Created job {}", j.name_any())).await;
            j
        }
        Err(e) if is_status(&e, 409) => {
            // Created by an earlier sync whose status write was lost: adopt it only if it is ours.
            match jobs.iter().find(|j| j.metadata.name.as_deref() == Some(name.as_str())) {
                Some(j) => j.clone(),
                None => {
                    finish(&mut status, active);
                    return Ok((status, wait_next));
                }
            }
        }
        Err(e) => {
            ctx.events.warning(cj, "FailedCreate", "Create", format!("Error creating job: {e}")).await;
            return Err(e.into());
        }
    };
    if job_finished(&created).is_none() && !active.iter().any(|r| r.uid == created.metadata.uid) {
        active.push(job_ref(&created));
    }
    status.last_schedule_time = Some(ts(scheduled));
    finish(&mut status, active);
    Ok((status, wait_next))
}

/// Upstream's `getJobFromTemplate2`.
fn new_job(cj: &CronJob, name: &str, scheduled: DateTime<Utc>, tz: chrono_tz::Tz) -> Job {
    let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        scheduled.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletes the oldest finished Jobs beyond the history limits (upstream's `cleanupFinishedJobs`).
async fn cleanup_finished(ctx: &Ctx, cj: &CronJob, jobs: &[Job], jobs_api: &Api<Job>) {
    let Some(spec) = cj.spec.as_ref() else { return };
    if cj.metadata.deletion_timestamp.is_some() {
        return;
    }
    for (state, limit) in [("Complete", spec.successful_jobs_history_limit), ("Failed", spec.failed_jobs_history_limit)]
    {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Job> =
            jobs.iter().filter(|j| job_finished(j) == Some(state) && j.metadata.deletion_timestamp.is_none()).collect();
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        if finished.len() <= limit {
            continue;
        }
        // Oldest first: by start time, then creation time.
        finished.sort_by_key(|j| {
            (
                j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0),
                j.metadata.creation_timestamp.as_ref().map(|t| t.0),
                j.name_any(),
            )
        });
        let excess = finished.len() - limit;
        for j in finished.into_iter().take(excess) {
            let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
            match jobs_api.delete(&j.name_any(), &params).await {
                Ok(_) => {
                    ctx.events.normal(cj, "SuccessfulDelete", "Delete", format!("Deleted job {}", j.name_any())).await
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => ctx.events.warning(cj, "FailedDelete", "Delete", format!("Deleted job: {e}")).await,
            }
        }
    }
}

fn error_policy(_cj: Arc<CronJob>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "cronjob sync failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the CronJob controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    let ctx = Arc::new(Ctx { client: client.clone(), events: EventPublisher::new(client.clone(), COMPONENT), config });
    Controller::new(Api::<CronJob>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Job>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "cronjob controller");
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn cj(created: &str, last: Option<&str>, deadline: Option<i64>) -> CronJob {
        let mut v = json!({"metadata": {"name": "c", "creationTimestamp": created},
            "spec": {"schedule": "* * * * *", "jobTemplate": {}}});
        if let Some(l) = last {
            v["status"] = json!({"lastScheduleTime": l});
        }
        if let Some(d) = deadline {
            v["spec"]["startingDeadlineSeconds"] = json!(d);
        }
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn job_names_count_minutes() {
        assert_eq!(job_name("hello", utc("2024-01-01T00:01:00Z")), "hello-28401121");
    }

    #[test]
    fn most_recent_schedule_and_missed_count() {
        let s = Schedule::parse("* * * * *").unwrap_or_else(|_| unreachable!());
        let now = utc("2024-01-01T00:05:30Z");
        let d = due(&cj("2024-01-01T00:00:10Z", None, None), &s, chrono_tz::Tz::UTC, now);
        assert_eq!(d.most_recent, Some(utc("2024-01-01T00:05:00Z")));
        assert_eq!(d.missed, 5);
        assert_eq!(d.next, Some(utc("2024-01-01T00:06:00Z")));
        // Already scheduled at 00:05: nothing new.
        let d = due(&cj("2024-01-01T00:00:10Z", Some("2024-01-01T00:05:00Z"), None), &s, chrono_tz::Tz::UTC, now);
        assert_eq!(d.most_recent, None);
        // A starting deadline narrows the window: only 00:05 counts.
        let d = due(&cj("2023-12-01T00:00:00Z", None, Some(60)), &s, chrono_tz::Tz::UTC, now);
        assert_eq!((d.most_recent, d.missed), (Some(utc("2024-01-01T00:05:00Z")), 1));
        // A long outage is "too many missed start times".
        let d = due(&cj("2023-12-01T00:00:00Z", None, None), &s, chrono_tz::Tz::UTC, now);
        assert!(d.missed > MAX_MISSED);
    }

    #[test]
    fn jobs_from_template_are_annotated_and_owned() {
        let mut c = cj("2024-01-01T00:00:00Z", None, None);
        c.metadata.uid = Some("u".into());
        let j = new_job(&c, "c-1", utc("2024-01-01T00:01:00Z"), chrono_tz::Tz::UTC);
        let ann = j.metadata.annotations.unwrap_or_default();
        assert_eq!(ann.get(SCHEDULED_TIMESTAMP_ANNOTATION).map(String::as_str), Some("2024-01-01T00:01:00Z"));
        assert_eq!(j.metadata.owner_references.map(|o| o[0].kind.clone()), Some("CronJob".into()));
    }
}
