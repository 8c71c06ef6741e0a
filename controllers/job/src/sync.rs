//! One Job sync (upstream's `syncJob` + `manageJob` + `trackJobStatusAndRemoveFinalizers`).
//!
//! Order of a sync: read the Job and its pods; count terminated pods that still carry the tracking
//! finalizer into `status.uncountedTerminatedPods` and write that (the safe point); remove their
//! finalizers; move them into `succeeded` / `failed`; decide conditions (FailureTarget / Failed,
//! SuccessCriteriaMet / Complete, Suspended), create or delete pods, and write the final status.

use crate::indexes::{self, COMPLETION_INDEX_ANNOTATION, INDEX_FAILURE_COUNT_ANNOTATION};
use crate::policy::{self, Outcome};
use crate::{Config, Error, JOB_TRACKING_FINALIZER, MANAGED_BY, job_key};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::owner::{CanAdopt, ControllerRefManager, controller_of, controller_ref};
use rkube_controller_common::pod::{is_pod_ready, phase, pod_from_template};
use rkube_controller_common::slow_start::{SLOW_START_INITIAL_BATCH_SIZE, slow_start_batch};
use rkube_controller_common::{is_conflict, is_not_found};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upstream's limit of pods created or deleted in one sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
pub const MSG_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_MAX_FAILED_INDEXES: &str = "MaxFailedIndexesExceeded";
pub const MSG_MAX_FAILED_INDEXES: &str = "Job has exceeded the specified maximal number of failed indexes";
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
pub const MSG_FAILED_INDEXES: &str = "Job has failed indexes";
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const MSG_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";
pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";

/// Per-Job memory of recent failures for the re-creation back-off (upstream's backoffRecord).
#[derive(Debug, Clone, Copy)]
struct BackoffRecord {
    failures_after_success: u32,
    last_failure: Timestamp,
}

/// Shared state of the controller's syncs.
pub struct Ctx {
    pub client: kube::Client,
    pub events: EventPublisher,
    pub config: Config,
    /// Consecutive sync failures per Job key (for the retry delay).
    pub failures: Mutex<HashMap<String, u32>>,
    backoff: Mutex<HashMap<String, BackoffRecord>>,
}

impl Ctx {
    pub fn new(client: kube::Client, events: EventPublisher, config: Config) -> Self {
        Self { client, events, config, failures: Mutex::default(), backoff: Mutex::default() }
    }
}

/// The re-creation delay after `failures` consecutive failures: base · 2^(failures−1), capped.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

fn is_true(job: &Job, type_: &str) -> bool {
    conditions(job).iter().any(|c| c.type_ == type_ && c.status == "True")
}

fn conditions(job: &Job) -> &[JobCondition] {
    job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[])
}

/// Upstream's `IsJobFinished`: a Complete or Failed condition is True.
pub fn is_finished(job: &Job) -> bool {
    is_true(job, "Complete") || is_true(job, "Failed")
}

fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition: a status change moves the transition time; the same status with another
/// reason or message updates them (and the probe time); an identical condition is left alone.
pub fn set_condition(conds: &mut Vec<JobCondition>, c: JobCondition) -> bool {
    if let Some(cur) = conds.iter_mut().find(|x| x.type_ == c.type_) {
        if cur.status == c.status {
            if cur.reason == c.reason && cur.message == c.message {
                return false;
            }
            cur.reason = c.reason;
            cur.message = c.message;
            cur.last_probe_time = c.last_probe_time;
            return true;
        }
        *cur = c;
        return true;
    }
    conds.push(c);
    true
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|x| x == JOB_TRACKING_FINALIZER))
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Upstream's `isPodFailed`: phase Failed, or (unless only Failed pods are replaced) being deleted
/// without having succeeded.
fn is_pod_failed(pod: &Pod, only_replace_failed: bool) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    !only_replace_failed && pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// When the pod finished (latest container finishedAt), for the back-off clock.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let s = pod.status.as_ref()?;
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
        .max()
}

/// Whether the Indexed Job's successPolicy is met; returns the matching rule's index.
pub fn success_policy_met(spec: &JobSpec, completed: &BTreeSet<i32>, completions: i32) -> Option<usize> {
    let rules = &spec.success_policy.as_ref()?.rules;
    rules.iter().position(|r| match (&r.succeeded_indexes, r.succeeded_count) {
        (Some(ix), count) => {
            let wanted = indexes::parse(Some(ix), completions);
            let done = wanted.intersection(completed).count();
            match count {
                Some(n) => done >= usize::try_from(n).unwrap_or(usize::MAX),
                None => !wanted.is_empty() && done == wanted.len(),
            }
        }
        (None, Some(n)) => completed.len() >= usize::try_from(n).unwrap_or(usize::MAX),
        (None, None) => false,
    })
}

/// Syncs one Job.
pub async fn reconcile(cached: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let key = job_key(&cached);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = match jobs.get(&name).await {
        Ok(j) if j.metadata.uid == cached.metadata.uid => j,
        Ok(_) => return Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => {
            forget(&ctx, &key);
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e.into()),
    };
    if job.spec.as_ref().and_then(|s| s.managed_by.as_deref()).is_some_and(|m| m != MANAGED_BY) {
        return Ok(Action::await_change());
    }
    let action = sync_job(&ctx, &jobs, job, &key).await?;
    if let Ok(mut f) = ctx.failures.lock() {
        f.remove(&key);
    }
    Ok(action)
}

fn forget(ctx: &Ctx, key: &str) {
    if let Ok(mut b) = ctx.backoff.lock() {
        b.remove(key);
    }
}

async fn list_pods(ctx: &Ctx, job: &Job, pods_api: &Api<Pod>) -> Result<Vec<Pod>, Error> {
    let Some(sel) = job.spec.as_ref().and_then(|s| s.selector.clone()) else { return Ok(Vec::new()) };
    let selector = Selector::try_from(sel).map_err(|e| Error::Sync(format!("invalid selector: {e}")))?;
    if selector.selects_all() {
        return Ok(Vec::new());
    }
    let job_uid = job.metadata.uid.clone().unwrap_or_default();
    let listed = pods_api.list(&ListParams::default().labels(&selector.to_string())).await?.items;
    let candidates: Vec<Pod> = listed
        .into_iter()
        .filter(|p| match controller_of(&p.metadata) {
            Some(r) => r.uid == job_uid,
            None => true,
        })
        .collect();
    let can_adopt = CanAdopt::recheck_deletion_timestamp(
        Api::<Job>::namespaced(ctx.client.clone(), job.namespace().as_deref().unwrap_or("")),
        job.name_any(),
        job_uid,
    );
    let manager = ControllerRefManager::new(pods_api.clone(), job, can_adopt);
    // Orphans are only adopted while running; terminal orphans are left alone.
    let finished = is_finished(job) || job.metadata.deletion_timestamp.is_some();
    let pods = manager
        .claim(candidates, |p: &Pod| {
            controller_of(&p.metadata).is_some()
                || (!finished && !is_terminal(p) && p.metadata.deletion_timestamp.is_none())
        })
        .await?;
    Ok(pods)
}

/// Removes the tracking finalizer (optimistic: guarded by the pod's resourceVersion).
async fn remove_finalizer(pods_api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let rest: Vec<String> =
        pod.metadata.finalizers.iter().flatten().filter(|f| *f != JOB_TRACKING_FINALIZER).cloned().collect();
    let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version, "finalizers": rest}});
    match pods_api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_status(jobs: &Api<Job>, job: &Job, status: JobStatus) -> Result<Job, Error> {
    let mut next = job.clone();
    next.status = Some(status);
    next.metadata.managed_fields = None;
    Ok(jobs.replace_status(&job.name_any(), &PostParams::default(), &next).await?)
}

/// What the sync found about one terminated pod.
struct Terminated<'a> {
    pod: &'a Pod,
    succeeded: bool,
    outcome: Outcome,
}

async fn sync_job(ctx: &Ctx, jobs: &Api<Job>, mut job: Job, key: &str) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = list_pods(ctx, &job, &pods_api).await?;
    let now = Timestamp::now();
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);

    if is_finished(&job) || job.metadata.deletion_timestamp.is_some() {
        // Nothing more to count: let every remaining pod go.
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(&pods_api, p).await?;
        }
        forget(ctx, key);
        return Ok(Action::await_change());
    }
    let Some(spec) = job.spec.clone() else { return Ok(Action::await_change()) };
    let mut status = job.status.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let comps = completions.unwrap_or(0).max(0);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let per_index = if indexed { spec.backoff_limit_per_index } else { None };
    let only_replace_failed = spec.pod_replacement_policy.as_deref() == Some("Failed");
    let suspended = spec.suspend == Some(true);

    let mut conds = status.conditions.clone().unwrap_or_default();
    let existing = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True").cloned();
    let mut failure_target =
        existing("FailureTarget").map(|c| (c.reason.unwrap_or_default(), c.message.unwrap_or_default()));
    let mut success_met =
        existing("SuccessCriteriaMet").map(|c| (c.reason.unwrap_or_default(), c.message.unwrap_or_default()));
    let finishing = failure_target.is_some() || success_met.is_some();

    // ---- 1. terminated pods not yet counted --------------------------------------------------
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_s: BTreeSet<String> = uncounted.succeeded.unwrap_or_default().into_iter().collect();
    let mut unc_f: BTreeSet<String> = uncounted.failed.unwrap_or_default().into_iter().collect();
    let mut completed =
        if indexed { indexes::parse(status.completed_indexes.as_deref(), comps) } else { BTreeSet::new() };
    let mut failed_ix = if indexed { indexes::parse(status.failed_indexes.as_deref(), comps) } else { BTreeSet::new() };
    let mut release: Vec<&Pod> = Vec::new();
    let mut terminated: Vec<Terminated> = Vec::new();
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let u = uid(p);
        if unc_s.contains(&u) || unc_f.contains(&u) {
            release.push(p);
            continue;
        }
        let succeeded = phase(p) == "Succeeded";
        // When the Job is finishing, every pod that did not succeed counts as failed.
        let failed = !succeeded && (is_pod_failed(p, only_replace_failed) || (finishing && !is_terminal(p)));
        if !succeeded && !failed {
            continue;
        }
        let outcome = if failed { policy::match_pod(spec.pod_failure_policy.as_ref(), p) } else { Outcome::Count };
        terminated.push(Terminated { pod: p, succeeded, outcome });
    }
    let mut new_succeeded = 0u32;
    let mut new_failed = 0u32;
    let mut last_failure: Option<Timestamp> = None;
    for t in &terminated {
        release.push(t.pod);
        let ix = if indexed { indexes::pod_index(t.pod, comps) } else { None };
        if t.succeeded {
            if indexed {
                // Only the first success of an index counts.
                match ix {
                    Some(i) if !completed.contains(&i) && !failed_ix.contains(&i) => {
                        completed.insert(i);
                    }
                    _ => continue,
                }
            }
            unc_s.insert(uid(t.pod));
            new_succeeded += 1;
            continue;
        }
        match &t.outcome {
            Outcome::Ignore => continue,
            Outcome::FailJob(msg) => {
                if failure_target.is_none() && success_met.is_none() {
                    failure_target = Some((REASON_POD_FAILURE_POLICY.into(), msg.clone()));
                }
            }
            Outcome::FailIndex => {
                if let (Some(i), Some(_)) = (ix, per_index) {
                    failed_ix.insert(i);
                }
            }
            Outcome::Count => {
                if let (Some(i), Some(limit)) = (ix, per_index) {
                    let failures = indexes::int_annotation(t.pod, INDEX_FAILURE_COUNT_ANNOTATION) + 1;
                    if failures > limit && !completed.contains(&i) {
                        failed_ix.insert(i);
                    }
                }
            }
        }
        unc_f.insert(uid(t.pod));
        new_failed += 1;
        let at = finish_time(t.pod).unwrap_or(now);
        last_failure = Some(last_failure.map_or(at, |l: Timestamp| l.max(at)));
    }
    // The back-off record (in memory, like upstream's).
    let record = {
        let mut b = ctx.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let rec = b.entry(key.to_string()).or_insert(BackoffRecord { failures_after_success: 0, last_failure: now });
        if new_succeeded > 0 && new_failed == 0 {
            rec.failures_after_success = 0;
        }
        if let Some(at) = last_failure {
            rec.failures_after_success = rec.failures_after_success.saturating_add(new_failed);
            rec.last_failure = at;
        }
        *rec
    };

    let uncounted_status = |s: &BTreeSet<String>, f: &BTreeSet<String>| UncountedTerminatedPods {
        succeeded: (!s.is_empty()).then(|| s.iter().cloned().collect()),
        failed: (!f.is_empty()).then(|| f.iter().cloned().collect()),
    };
    if !terminated.is_empty() {
        // The safe point: the UIDs are recorded before their finalizers go.
        let mut st = status.clone();
        st.uncounted_terminated_pods = Some(uncounted_status(&unc_s, &unc_f));
        if indexed {
            st.completed_indexes = Some(indexes::format(&completed));
            if per_index.is_some() {
                st.failed_indexes = Some(indexes::format(&failed_ix));
            }
        }
        job = write_status(jobs, &job, st).await?;
        status = job.status.clone().unwrap_or_default();
    }

    // ---- 2. finalizers off, counts in --------------------------------------------------------
    let mut released: HashSet<String> = HashSet::new();
    for p in release {
        remove_finalizer(&pods_api, p).await?;
        released.insert(uid(p));
    }
    let still_tracked: HashSet<String> =
        pods.iter().filter(|p| has_finalizer(p) && !released.contains(&uid(p))).map(uid).collect();
    let mut succeeded = status.succeeded.unwrap_or(0);
    let mut failed = status.failed.unwrap_or(0);
    unc_s.retain(|u| {
        let keep = still_tracked.contains(u);
        if !keep {
            succeeded = succeeded.saturating_add(1);
        }
        keep
    });
    unc_f.retain(|u| {
        let keep = still_tracked.contains(u);
        if !keep {
            failed = failed.saturating_add(1);
        }
        keep
    });
    let succeeded_total = succeeded + i32::try_from(unc_s.len()).unwrap_or(i32::MAX);
    let failed_total = failed + i32::try_from(unc_f.len()).unwrap_or(i32::MAX);

    // ---- 3. start / suspend / resume ----------------------------------------------------------
    let mut events: Vec<(bool, &'static str, String)> = Vec::new();
    let mut start_time = status.start_time.clone();
    if suspended && !finishing {
        if set_condition(&mut conds, new_condition("Suspended", "True", "JobSuspended", "Job suspended", now)) {
            events.push((true, "Suspended", "Job suspended".into()));
        }
    } else if !suspended && conds.iter().any(|c| c.type_ == "Suspended" && c.status == "True") {
        set_condition(&mut conds, new_condition("Suspended", "False", "JobResumed", "Job resumed", now));
        events.push((true, "Resumed", "Job resumed".into()));
        // activeDeadlineSeconds counts from the resume.
        start_time = Some(Time(now));
    }
    if start_time.is_none() && !suspended {
        start_time = Some(Time(now));
    }

    // ---- 4. failure / success criteria -------------------------------------------------------
    let active_pods: Vec<&Pod> =
        pods.iter().filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_none()).collect();
    let mut requeue: Option<Duration> = None;
    let mut want = |d: Duration| requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    if failure_target.is_none() && success_met.is_none() {
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let deadline = spec.active_deadline_seconds.filter(|_| !suspended).and_then(|ads| {
            let start = start_time.as_ref()?.0;
            Some(start + SignedDuration::from_secs(ads))
        });
        if per_index.is_none() && failed_total > backoff_limit {
            failure_target = Some((REASON_BACKOFF_LIMIT.into(), MSG_BACKOFF_LIMIT.into()));
        } else if deadline.is_some_and(|d| now >= d) {
            failure_target = Some((REASON_DEADLINE.into(), MSG_DEADLINE.into()));
        } else if per_index.is_some()
            && spec.max_failed_indexes.is_some_and(|m| failed_ix.len() > usize::try_from(m).unwrap_or(usize::MAX))
        {
            failure_target = Some((REASON_MAX_FAILED_INDEXES.into(), MSG_MAX_FAILED_INDEXES.into()));
        } else if indexed && !failed_ix.is_empty() && completed.len() + failed_ix.len() >= comps as usize {
            failure_target = Some((REASON_FAILED_INDEXES.into(), MSG_FAILED_INDEXES.into()));
        } else {
            let done = if indexed {
                completed.len() >= comps as usize
            } else {
                match completions {
                    Some(c) => succeeded_total >= c,
                    None => succeeded_total > 0 && active_pods.is_empty(),
                }
            };
            if done {
                success_met = Some((REASON_COMPLETIONS_REACHED.into(), MSG_COMPLETIONS_REACHED.into()));
            } else if let Some(i) = indexed.then(|| success_policy_met(&spec, &completed, comps)).flatten() {
                success_met = Some((REASON_SUCCESS_POLICY.into(), format!("Matched rules at index {i}")));
            } else if let Some(d) = deadline {
                want(Duration::try_from(d.duration_since(now)).unwrap_or(Duration::ZERO) + Duration::from_millis(50));
            }
        }
        if let Some((r, m)) = &failure_target {
            set_condition(&mut conds, new_condition("FailureTarget", "True", r, m, now));
        }
        if let Some((r, m)) = &success_met {
            set_condition(&mut conds, new_condition("SuccessCriteriaMet", "True", r, m, now));
        }
    }
    let stopping = failure_target.is_some() || success_met.is_some();

    // ---- 5. pods to delete / create ----------------------------------------------------------
    let mut to_delete: Vec<&Pod> = Vec::new();
    let mut to_create: Vec<Option<i32>> = Vec::new();
    if stopping || suspended {
        to_delete.extend(active_pods.iter().copied());
    } else if indexed {
        let mut seen = BTreeSet::new();
        let mut keep: Vec<(i32, &Pod)> = Vec::new();
        for p in &active_pods {
            match indexes::pod_index(p, comps) {
                Some(i) if !completed.contains(&i) && !failed_ix.contains(&i) && seen.insert(i) => keep.push((i, p)),
                _ => to_delete.push(p),
            }
        }
        keep.sort_by_key(|(i, _)| *i);
        while keep.len() > parallelism as usize {
            if let Some((_, p)) = keep.pop() {
                to_delete.push(p);
            }
        }
        let busy: BTreeSet<i32> = keep.iter().map(|(i, _)| *i).collect();
        // Indexes whose pod is still terminating are not replaced yet when only Failed pods may be.
        let terminating_ix: BTreeSet<i32> = if only_replace_failed {
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p))
                .filter_map(|p| indexes::pod_index(p, comps))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut room = (parallelism as usize).saturating_sub(keep.len()).min(MAX_POD_CREATE_DELETE_PER_SYNC);
        for i in 0..comps {
            if room == 0 {
                break;
            }
            if completed.contains(&i) || failed_ix.contains(&i) || busy.contains(&i) || terminating_ix.contains(&i) {
                continue;
            }
            // Per-index back-off: from the index's latest failed pod.
            let last = pods
                .iter()
                .filter(|p| indexes::pod_index(p, comps) == Some(i) && is_pod_failed(p, only_replace_failed))
                .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            if let Some(last) = last {
                let failures =
                    u32::try_from(indexes::int_annotation(last, INDEX_FAILURE_COUNT_ANNOTATION) + 1).unwrap_or(1);
                let delay = backoff_delay(failures, ctx.config.pod_backoff_base, ctx.config.pod_backoff_max);
                let at = finish_time(last).unwrap_or(record.last_failure);
                let ready_at = at + SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO);
                if ready_at > now {
                    want(Duration::try_from(ready_at.duration_since(now)).unwrap_or(Duration::ZERO));
                    continue;
                }
            }
            to_create.push(Some(i));
            room -= 1;
        }
    } else {
        let want_active = match completions {
            Some(c) => parallelism.min((c - succeeded_total).max(0)),
            // A work queue with a success: no new pods, but the running ones may finish.
            None if succeeded_total > 0 => parallelism.min(i32::try_from(active_pods.len()).unwrap_or(i32::MAX)),
            None => parallelism,
        } as usize;
        let terminating = if only_replace_failed {
            pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p)).count()
        } else {
            0
        };
        let have = active_pods.len() + terminating;
        if active_pods.len() > want_active {
            // Not-ready and newest first (upstream's ActivePods ordering).
            let mut victims = active_pods.clone();
            victims.sort_by_key(|p| {
                (is_pod_ready(p), std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)))
            });
            to_delete.extend(victims.into_iter().take(active_pods.len() - want_active));
        } else if have < want_active {
            let delay =
                backoff_delay(record.failures_after_success, ctx.config.pod_backoff_base, ctx.config.pod_backoff_max);
            let ready_at = record.last_failure + SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO);
            if delay > Duration::ZERO && ready_at > Timestamp::now() {
                want(Duration::try_from(ready_at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO));
            } else {
                to_create.extend(std::iter::repeat_n(None, (want_active - have).min(MAX_POD_CREATE_DELETE_PER_SYNC)));
            }
        }
    }
    to_delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);

    let mut deleted = 0i32;
    for p in &to_delete {
        match pods_api.delete(&p.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                deleted += 1;
                events.push((true, "SuccessfulDelete", format!("Deleted pod: {}", p.name_any())));
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                events.push((false, "FailedDelete", format!("Error deleting: {e}")));
            }
        }
    }
    let (created, create_err) = if to_create.is_empty() {
        (0, None)
    } else {
        let template_job = &job;
        let created_names = Mutex::new(Vec::new());
        let (n, err) = slow_start_batch(to_create.len(), SLOW_START_INITIAL_BATCH_SIZE, |k| {
            let index = to_create.get(k).copied().flatten();
            let pods_api = pods_api.clone();
            let pods = &pods;
            let created_names = &created_names;
            async move {
                let pod = new_pod(template_job, index, pods, comps);
                match pods_api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        created_names.lock().map(|mut v| v.push(p.name_any())).ok();
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        })
        .await;
        for n in created_names.into_inner().unwrap_or_default() {
            events.push((true, "SuccessfulCreate", format!("Created pod: {n}")));
        }
        if let Some(e) = &err {
            events.push((false, "FailedCreate", format!("Error creating: {e}")));
        }
        (n, err)
    };

    // ---- 6. final status ---------------------------------------------------------------------
    let active = i32::try_from(active_pods.len() + created).unwrap_or(i32::MAX) - deleted;
    let ready = if stopping || suspended {
        0
    } else {
        i32::try_from(active_pods.iter().filter(|p| is_pod_ready(p)).count()).unwrap_or(0)
    };
    let still_terminating =
        pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p)).count() as i32 + deleted;
    let mut completion_time = status.completion_time.clone();
    if stopping && active <= 0 && still_terminating == 0 && unc_s.is_empty() && unc_f.is_empty() {
        if let Some((r, m)) = &failure_target {
            set_condition(&mut conds, new_condition("Failed", "True", r, m, now));
            events.push((false, leak(r), m.clone()));
        } else if let Some((r, m)) = &success_met {
            set_condition(&mut conds, new_condition("Complete", "True", r, m, now));
            completion_time = Some(Time(now));
            events.push((true, "Completed", "Job completed".into()));
        }
    } else if stopping {
        // Come back when the remaining pods are gone (their events trigger us too).
        want(Duration::from_secs(1));
    }
    let new_status = JobStatus {
        active: Some(active.max(0)),
        ready: Some(ready),
        terminating: Some(still_terminating),
        succeeded: Some(succeeded),
        failed: Some(failed),
        start_time,
        completion_time,
        completed_indexes: if indexed { Some(indexes::format(&completed)) } else { status.completed_indexes.clone() },
        failed_indexes: if per_index.is_some() {
            Some(indexes::format(&failed_ix))
        } else {
            status.failed_indexes.clone()
        },
        uncounted_terminated_pods: Some(uncounted_status(&unc_s, &unc_f)),
        conditions: (!conds.is_empty()).then_some(conds),
    };
    if job.status.as_ref() != Some(&new_status) {
        match write_status(jobs, &job, new_status).await {
            Ok(_) => {}
            Err(Error::Kube(e)) if is_conflict(&e) => return Err(Error::Kube(e)),
            Err(e) => return Err(e),
        }
    }
    for (normal, reason, note) in events {
        let action = reason.trim_start_matches("Successful").trim_start_matches("Failed");
        let action = if action.is_empty() { reason } else { action };
        if normal {
            ctx.events.normal(&job, reason, action, note).await;
        } else {
            ctx.events.warning(&job, reason, action, note).await;
        }
    }
    if let Some(e) = create_err {
        return Err(e.into());
    }
    Ok(requeue.map(Action::requeue).unwrap_or_else(Action::await_change))
}

/// Condition reasons are a small fixed set; event reasons need `&'static str`.
fn leak(reason: &str) -> &'static str {
    match reason {
        REASON_BACKOFF_LIMIT => REASON_BACKOFF_LIMIT,
        REASON_DEADLINE => REASON_DEADLINE,
        REASON_POD_FAILURE_POLICY => REASON_POD_FAILURE_POLICY,
        REASON_MAX_FAILED_INDEXES => REASON_MAX_FAILED_INDEXES,
        REASON_FAILED_INDEXES => REASON_FAILED_INDEXES,
        _ => "JobFailed",
    }
}

/// A pod for the Job (with the given completion index in Indexed mode).
pub fn new_pod(job: &Job, index: Option<i32>, existing: &[Pod], completions: i32) -> Pod {
    let name = job.name_any();
    let ns = job.namespace().unwrap_or_default();
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = pod_from_template(&template, &name, &ns, Some(controller_ref(job)));
    pod.metadata.finalizers.get_or_insert_with(Vec::new).push(JOB_TRACKING_FINALIZER.to_string());
    if let Some(i) = index {
        let ix = i.to_string();
        pod.metadata.generate_name = Some(format!("{name}-{ix}-"));
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX_ANNOTATION.into(), ix.clone());
        pod.metadata.labels.get_or_insert_with(Default::default).insert(COMPLETION_INDEX_ANNOTATION.into(), ix.clone());
        if job.spec.as_ref().and_then(|s| s.backoff_limit_per_index).is_some() {
            // Failures of this index so far: the latest failed pod's count plus its own failure.
            let failures = existing
                .iter()
                .filter(|p| indexes::pod_index(p, completions) == Some(i) && phase(p) == "Failed")
                .map(|p| indexes::int_annotation(p, INDEX_FAILURE_COUNT_ANNOTATION) + 1)
                .max()
                .unwrap_or(0);
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(INDEX_FAILURE_COUNT_ANNOTATION.into(), failures.to_string());
        }
        if let Some(spec) = pod.spec.as_mut() {
            if spec.hostname.as_deref().is_none_or(str::is_empty) {
                spec.hostname = Some(format!("{name}-{ix}"));
            }
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"),
                    }),
                    ..Default::default()
                }),
            };
            let containers = spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == env.name) {
                    vars.push(env.clone());
                }
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_from_the_base_and_caps() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(360);
        assert_eq!(backoff_delay(0, base, max), Duration::ZERO);
        assert_eq!(backoff_delay(1, base, max), Duration::from_secs(10));
        assert_eq!(backoff_delay(2, base, max), Duration::from_secs(20));
        assert_eq!(backoff_delay(5, base, max), Duration::from_secs(160));
        assert_eq!(backoff_delay(6, base, max), Duration::from_secs(320));
        assert_eq!(backoff_delay(7, base, max), Duration::from_secs(360));
        assert_eq!(backoff_delay(100, base, max), Duration::from_secs(360));
    }

    #[test]
    fn conditions_move_transition_time_only_on_status_change() {
        let t0 = Timestamp::from_second(100).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(200).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut cs = vec![];
        assert!(set_condition(&mut cs, new_condition("Suspended", "True", "JobSuspended", "Job suspended", t0)));
        assert!(!set_condition(&mut cs, new_condition("Suspended", "True", "JobSuspended", "Job suspended", t1)));
        assert!(set_condition(&mut cs, new_condition("Suspended", "False", "JobResumed", "Job resumed", t1)));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, Some(Time(t1)));
    }

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn success_policy_rules() {
        let j = job(json!({"metadata": {"name": "j"}, "spec": {"template": {}, "successPolicy": {"rules": [
            {"succeededIndexes": "0,2"},
            {"succeededCount": 3},
        ]}}}));
        let spec = j.spec.unwrap_or_default();
        assert_eq!(success_policy_met(&spec, &[0].into_iter().collect(), 5), None);
        assert_eq!(success_policy_met(&spec, &[0, 2].into_iter().collect(), 5), Some(0));
        assert_eq!(success_policy_met(&spec, &[1, 3, 4].into_iter().collect(), 5), Some(1));
    }

    #[test]
    fn indexed_pods_carry_index_hostname_env_and_finalizer() {
        let j = job(json!({"metadata": {"name": "work", "namespace": "ns", "uid": "u1"}, "spec": {
            "completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 1,
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}));
        let failed_before: Pod = serde_json::from_value(json!({"metadata": {"annotations": {
            COMPLETION_INDEX_ANNOTATION: "2", INDEX_FAILURE_COUNT_ANNOTATION: "0"}}, "status": {"phase": "Failed"}}))
        .unwrap_or_default();
        let pod = new_pod(&j, Some(2), &[failed_before], 3);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("work-2-"));
        let ann = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get(COMPLETION_INDEX_ANNOTATION).map(String::as_str), Some("2"));
        assert_eq!(ann.get(INDEX_FAILURE_COUNT_ANNOTATION).map(String::as_str), Some("1"));
        assert_eq!(pod.metadata.finalizers, Some(vec![JOB_TRACKING_FINALIZER.to_string()]));
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("work-2"));
        assert_eq!(spec.containers[0].env.as_ref().map(|e| e[0].name.as_str()), Some("JOB_COMPLETION_INDEX"));
        let plain = new_pod(&j, None, &[], 3);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("work-"));
    }

    #[test]
    fn deleted_pods_count_as_failed_unless_only_failed_are_replaced() {
        let mut p: Pod = serde_json::from_value(json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Running"}}))
        .unwrap_or_default();
        assert!(is_pod_failed(&p, false));
        assert!(!is_pod_failed(&p, true));
        p.status = serde_json::from_value(json!({"phase": "Succeeded"})).ok();
        assert!(!is_pod_failed(&p, false));
    }
}
