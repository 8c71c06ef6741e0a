//! The pod worker: one pod's lifecycle on this node, driven level-triggered by `sync`.
//!
//! Owns the decisions upstream's kubelet makes in `SyncPod`/`computePodActions` and the status
//! manager: start init containers in order, then app containers; restart exited containers per
//! `restartPolicy` with CrashLoopBackOff back-off; stop everything on deletion (Killing) within the
//! grace period and then ask for the pod object to be removed; derive phase, conditions and
//! container statuses (upstream's `getPhase` and condition generators). It talks to a
//! [`Runtime`](crate::runtime::Runtime) only; the pool does all API I/O.
//!
//! In the sim, readiness/liveness/startup probes (exec/http/tcp) are treated as passing:
//! a running container is started and ready unless the pod carries `sim.rkube.io/ready: "false"`.

use crate::backoff::Backoff;
use crate::runtime::{ContainerObservation, ContainerRef, Runtime, sim::READY};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::time::{Duration, Instant};

/// Settings the pool passes to every worker.
#[derive(Clone, Debug)]
pub struct PodSettings {
    pub crash_loop_base: Duration,
    pub crash_loop_max: Duration,
    pub start_delay: Duration,
}

/// An event the worker wants recorded about its pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    pub field_path: String,
}

/// What one sync asks of the pool.
#[derive(Debug, Default)]
pub struct SyncResult {
    pub events: Vec<PodEvent>,
    /// When to sync again (None: only on a new pod/node update).
    pub wake: Option<Instant>,
    /// Everything is stopped: delete the pod object (grace 0, UID precondition).
    pub delete: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Stage {
    /// Waiting for the network (podCIDR) or the start delay.
    Pending,
    Running,
    Terminating,
    /// All containers exited for good; phase is Succeeded or Failed.
    Finished,
}

#[derive(Clone, Debug)]
struct Terminated {
    exit_code: i32,
    reason: String,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    id: String,
}

impl Terminated {
    fn json(&self) -> Value {
        json!({"terminated": {
            "exitCode": self.exit_code, "reason": self.reason,
            "startedAt": ts(self.started), "finishedAt": ts(self.finished),
            "containerID": format!("sim://{}", self.id),
        }})
    }
}

#[derive(Clone, Debug)]
struct CState {
    name: String,
    image: String,
    init: bool,
    /// An init container with restartPolicy Always (a sidecar): runs alongside the app containers.
    sidecar: bool,
    id: Option<String>,
    running_since: Option<DateTime<Utc>>,
    restarts: u32,
    term: Option<Terminated>,
    last: Option<Terminated>,
    crash_loop: Option<String>,
    wait_until: Option<Instant>,
    backoff: Backoff,
    /// Init container completed / app container exited and will not restart.
    done: bool,
    ever_started: bool,
}

impl CState {
    fn new(c: &Container, init: bool) -> Self {
        Self {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            init,
            sidecar: init && c.restart_policy.as_deref() == Some("Always"),
            id: None,
            running_since: None,
            restarts: 0,
            term: None,
            last: None,
            crash_loop: None,
            wait_until: None,
            backoff: Backoff::default(),
            done: false,
            ever_started: false,
        }
    }

    fn field_path(&self) -> String {
        if self.init {
            format!("spec.initContainers{{{}}}", self.name)
        } else {
            format!("spec.containers{{{}}}", self.name)
        }
    }
}

pub struct PodWorker {
    pub pod: Pod,
    stage: Stage,
    first_seen: Instant,
    start_time: Option<DateTime<Utc>>,
    /// The pod IP, set by the pool from the node's podCIDR (or the node IP for hostNetwork pods).
    pub ip: Option<String>,
    pub host_ip: Option<String>,
    init: Vec<CState>,
    main: Vec<CState>,
    /// Per kubelet-owned condition: (status, lastTransitionTime).
    transitions: HashMap<&'static str, (bool, DateTime<Utc>)>,
    failed_init: bool,
    /// The last status the pool wrote (or found on the server at adoption).
    pub last_written: Option<WrittenStatus>,
}

/// A pod status as last written, kept as its JSON bytes (sorted keys, from a `Value`):
/// a tenth of the memory of a parsed tree, and as good for "did it change?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenStatus(Box<[u8]>);

impl WrittenStatus {
    pub fn of(status: &Value) -> Self {
        Self(serde_json::to_vec(status).unwrap_or_default().into_boxed_slice())
    }
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn terminal_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).filter(|p| *p == "Succeeded" || *p == "Failed")
}

impl PodWorker {
    pub fn new(pod: Pod, now: Instant) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec.init_containers.unwrap_or_default().iter().map(|c| CState::new(c, true)).collect();
        let main = spec.containers.iter().map(|c| CState::new(c, false)).collect();
        let stage = if terminal_phase(&pod).is_some() { Stage::Finished } else { Stage::Pending };
        Self {
            pod,
            stage,
            first_seen: now,
            start_time: None,
            ip: None,
            host_ip: None,
            init,
            main,
            transitions: HashMap::new(),
            failed_init: false,
            last_written: None,
        }
    }

    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// Whether the pool should give this pod an address from the node's podCIDR.
    pub fn needs_ip(&self) -> bool {
        self.ip.is_none() && !host_network(&self.pod) && matches!(self.stage, Stage::Pending | Stage::Running)
    }

    /// True once the pod no longer holds its IP (finished or stopping).
    pub fn ip_releasable(&self) -> bool {
        matches!(self.stage, Stage::Finished | Stage::Terminating)
    }

    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// Adopts a pod the kubelet finds already started (kubelet restart): keeps its IP, start time,
    /// restart counts and the start times of running containers.
    pub fn adopt(&mut self, rt: &mut dyn Runtime, now: Instant, wall: DateTime<Utc>) {
        let Some(status) = self.pod.status.clone() else { return };
        if self.stage != Stage::Pending || status.container_statuses.as_ref().is_none_or(|c| c.is_empty()) {
            return;
        }
        self.ip = status.pod_ip.clone().filter(|i| !i.is_empty());
        self.start_time = status.start_time.as_ref().and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
        let pod = self.pod.clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let inits = spec.init_containers.clone().unwrap_or_default();
        let lists = [
            (&mut self.init, status.init_container_statuses.unwrap_or_default(), &inits),
            (&mut self.main, status.container_statuses.unwrap_or_default(), &spec.containers),
        ];
        for (states, statuses, specs) in lists {
            for (cs, c) in states.iter_mut().zip(specs.iter()) {
                let Some(st) = statuses.iter().find(|s| s.name == cs.name) else { continue };
                cs.restarts = st.restart_count.max(0) as u32;
                cs.ever_started = true;
                let state = st.state.clone().unwrap_or_default();
                if let Some(r) = state.running {
                    let started = r.started_at.and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
                    let cref =
                        ContainerRef { pod: &pod, container: c, init: cs.init && !cs.sidecar, attempt: cs.restarts };
                    if let Ok(id) = rt.start_container(cref, now, wall, Some(started.unwrap_or(wall))) {
                        cs.id = Some(id);
                        cs.running_since = started.or(Some(wall));
                    }
                    if cs.sidecar {
                        cs.done = true;
                    }
                } else if let Some(t) = state.terminated
                    && cs.init
                    && t.exit_code == 0
                {
                    cs.done = true;
                }
            }
        }
        self.stage = Stage::Running;
        self.last_written = serde_json::to_value(&self.pod.status).ok().map(|v| WrittenStatus::of(&v));
    }

    /// Replaces the pod object with a newer one from the watch.
    pub fn update(&mut self, pod: Pod) {
        self.pod = pod;
    }

    /// Advances the pod as far as it can go at `now`.
    pub fn sync(
        &mut self,
        rt: &mut dyn Runtime,
        settings: &PodSettings,
        network_ready: bool,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> SyncResult {
        let mut out = SyncResult::default();
        if self.pod.metadata.deletion_timestamp.is_some() && self.stage != Stage::Terminating {
            self.begin_termination(rt, now, &mut out);
        }
        match self.stage {
            Stage::Terminating => {
                self.observe_all(rt, now, wall, &mut out);
                if self.all_stopped() {
                    for c in self.init.iter_mut().chain(self.main.iter_mut()) {
                        if let Some(id) = c.id.take() {
                            rt.remove_container(&id);
                        }
                    }
                    out.delete = true;
                }
                return out;
            }
            Stage::Finished => return out,
            Stage::Pending => {
                if !(network_ready || host_network(&self.pod)) || (self.ip.is_none() && !host_network(&self.pod)) {
                    return out;
                }
                if self.start_time.is_none() {
                    self.start_time = Some(wall);
                }
                let at = self.first_seen + settings.start_delay;
                if now < at {
                    out.wake = Some(at);
                    return out;
                }
                self.stage = Stage::Running;
            }
            Stage::Running => {}
        }
        self.run_containers(rt, settings, now, wall, &mut out);
        out
    }

    fn begin_termination(&mut self, rt: &mut dyn Runtime, now: Instant, out: &mut SyncResult) {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0) as u64;
        for c in self.main.iter().chain(self.init.iter()) {
            if let Some(id) = &c.id {
                rt.stop_container(id, Duration::from_secs(grace), now);
                out.events.push(PodEvent {
                    warning: false,
                    reason: "Killing",
                    message: format!("Stopping container {}", c.name),
                    field_path: c.field_path(),
                });
            }
        }
        self.stage = Stage::Terminating;
    }

    fn all_stopped(&self) -> bool {
        self.init.iter().chain(self.main.iter()).all(|c| c.id.is_none() || c.running_since.is_none())
    }

    /// Terminating: record exits, wake at the next stop.
    fn observe_all(&mut self, rt: &mut dyn Runtime, now: Instant, _wall: DateTime<Utc>, out: &mut SyncResult) {
        for c in self.init.iter_mut().chain(self.main.iter_mut()) {
            let Some(id) = c.id.clone() else { continue };
            match rt.container_state(&id, now) {
                Some(ContainerObservation::Exited { started, finished, exit_code, reason }) => {
                    c.term = Some(Terminated { exit_code, reason, started, finished, id: id.clone() });
                    c.running_since = None;
                    c.done = true;
                }
                Some(ContainerObservation::Running { .. }) => {
                    out.wake = earliest(out.wake, rt.next_change(&id, now));
                }
                None => c.running_since = None,
            }
        }
    }

    fn start(
        &mut self,
        which: (bool, usize),
        rt: &mut dyn Runtime,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut SyncResult,
    ) {
        let pod = &self.pod;
        let spec = pod.spec.as_ref();
        let (init, idx) = which;
        let c = if init { &mut self.init[idx] } else { &mut self.main[idx] };
        let container = spec.and_then(|s| {
            if init { s.init_containers.as_ref().and_then(|v| v.get(idx)) } else { s.containers.get(idx) }
        });
        let Some(container) = container else { return };
        let cref = ContainerRef { pod, container, init: init && !c.sidecar, attempt: c.restarts };
        let path = c.field_path();
        match rt.start_container(cref, now, wall, None) {
            Ok(id) => {
                out.events.push(PodEvent {
                    warning: false,
                    reason: "Pulled",
                    message: format!("Container image \"{}\" already present on machine", c.image),
                    field_path: path.clone(),
                });
                out.events.push(PodEvent {
                    warning: false,
                    reason: "Created",
                    message: format!("Created container: {}", c.name),
                    field_path: path.clone(),
                });
                out.events.push(PodEvent {
                    warning: false,
                    reason: "Started",
                    message: format!("Started container {}", c.name),
                    field_path: path,
                });
                c.id = Some(id);
                c.running_since = Some(wall);
                c.ever_started = true;
                c.crash_loop = None;
                c.wait_until = None;
            }
            Err(e) => out.events.push(PodEvent {
                warning: true,
                reason: "Failed",
                message: format!("Error: {e}"),
                field_path: path,
            }),
        }
    }

    /// One container: start it if due, observe it, handle its exit. Returns true when it is running.
    fn drive(
        &mut self,
        which: (bool, usize),
        rt: &mut dyn Runtime,
        settings: &PodSettings,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut SyncResult,
    ) {
        let policy = restart_policy(&self.pod).to_string();
        let pod_ref = format!(
            "{}_{}({})",
            self.pod.metadata.name.as_deref().unwrap_or_default(),
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.uid()
        );
        for _ in 0..4 {
            let c = if which.0 { &mut self.init[which.1] } else { &mut self.main[which.1] };
            if c.done && !c.sidecar {
                return;
            }
            let Some(id) = c.id.clone() else {
                // Not running: first start, or a restart that is due.
                if let Some(until) = c.wait_until {
                    if until > now {
                        out.wake = earliest(out.wake, Some(until));
                        return;
                    }
                    c.backoff.next(now, settings.crash_loop_base, settings.crash_loop_max);
                }
                if c.term.is_some() {
                    c.last = c.term.take();
                    c.restarts += 1;
                }
                self.start(which, rt, now, wall, out);
                continue;
            };
            match rt.container_state(&id, now) {
                Some(ContainerObservation::Running { started }) => {
                    c.running_since = Some(started);
                    out.wake = earliest(out.wake, rt.next_change(&id, now));
                    return;
                }
                None => {
                    c.id = None;
                    c.running_since = None;
                    return;
                }
                Some(ContainerObservation::Exited { started, finished, exit_code, reason }) => {
                    rt.remove_container(&id);
                    c.id = None;
                    c.running_since = None;
                    let ago = (wall - finished).to_std().unwrap_or_default();
                    let finished_at = now.checked_sub(ago).unwrap_or(now);
                    c.term = Some(Terminated { exit_code, reason, started, finished, id });
                    if c.init && !c.sidecar && exit_code == 0 {
                        c.done = true;
                        return;
                    }
                    let restart = c.sidecar
                        || match policy.as_str() {
                            "Never" => false,
                            "OnFailure" => exit_code != 0,
                            _ => true,
                        };
                    if !restart {
                        c.done = true;
                        if c.init {
                            self.failed_init = true;
                        }
                        return;
                    }
                    if let Some(d) = c.backoff.in_backoff(finished_at, now, settings.crash_loop_max) {
                        let until = finished_at + d;
                        c.wait_until = Some(until);
                        c.crash_loop = Some(format!(
                            "back-off {} restarting failed container={} pod={pod_ref}",
                            go_dur(d),
                            c.name
                        ));
                        out.events.push(PodEvent {
                            warning: true,
                            reason: "BackOff",
                            message: format!("Back-off restarting failed container {} in pod {pod_ref}", c.name),
                            field_path: c.field_path(),
                        });
                        out.wake = earliest(out.wake, Some(until));
                        return;
                    }
                    c.backoff.next(now, settings.crash_loop_base, settings.crash_loop_max);
                    // Restart at once (loop again: id is None, term is set).
                }
            }
        }
    }

    fn run_containers(
        &mut self,
        rt: &mut dyn Runtime,
        settings: &PodSettings,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut SyncResult,
    ) {
        // Init containers strictly in order; sidecars count as done once started.
        let mut initialized = true;
        for i in 0..self.init.len() {
            self.drive((true, i), rt, settings, now, wall, out);
            if self.failed_init {
                break;
            }
            let c = &mut self.init[i];
            if c.sidecar && c.id.is_some() {
                c.done = true;
            }
            if !c.done {
                initialized = false;
                break;
            }
        }
        if self.failed_init {
            self.finish(rt);
            return;
        }
        if !initialized {
            return;
        }
        for i in 0..self.main.len() {
            self.drive((false, i), rt, settings, now, wall, out);
        }
        if !self.main.is_empty() && self.main.iter().all(|c| c.done) {
            self.finish(rt);
        }
    }

    /// Every app container is done for good: stop sidecars, the pod is terminal.
    fn finish(&mut self, rt: &mut dyn Runtime) {
        for c in self.init.iter_mut() {
            if let Some(id) = c.id.take() {
                rt.remove_container(&id);
                c.running_since = None;
            }
        }
        self.stage = Stage::Finished;
    }

    fn phase(&self) -> &'static str {
        match self.stage {
            Stage::Pending => return "Pending",
            Stage::Finished | Stage::Terminating if self.failed_init => return "Failed",
            _ => {}
        }
        if self.init.iter().any(|c| !c.done) {
            return "Pending";
        }
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for c in &self.main {
            if c.running_since.is_some() && c.id.is_some() {
                running += 1;
            } else if let Some(t) = &c.term {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            } else if c.last.is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        }
        if waiting > 0 {
            return "Pending";
        }
        if running > 0 {
            return "Running";
        }
        if stopped > 0 {
            if self.stage != Stage::Finished && restart_policy(&self.pod) == "Always" {
                return "Running";
            }
            if stopped == succeeded {
                return "Succeeded";
            }
            if self.stage == Stage::Finished || restart_policy(&self.pod) == "Never" {
                return "Failed";
            }
            return "Running";
        }
        "Pending"
    }

    fn container_ready(&self, c: &CState) -> bool {
        let unready = self.pod.metadata.annotations.as_ref().and_then(|a| a.get(READY)).is_some_and(|v| v == "false");
        c.id.is_some() && c.running_since.is_some() && !unready && self.stage == Stage::Running
    }

    fn container_status(&self, c: &CState, rt: &dyn Runtime) -> Value {
        let running = c.id.is_some() && c.running_since.is_some();
        let state = if running {
            json!({"running": {"startedAt": c.running_since.map(ts)}})
        } else if let Some(msg) = &c.crash_loop {
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}})
        } else if let Some(t) = &c.term {
            t.json()
        } else {
            let reason =
                if !c.init && self.init.iter().any(|i| !i.done) { "PodInitializing" } else { "ContainerCreating" };
            let reason = if c.init { "PodInitializing" } else { reason };
            json!({"waiting": {"reason": reason}})
        };
        let ready = running && self.container_ready(c);
        let mut v = json!({
            "name": c.name,
            "image": c.image,
            "imageID": if c.ever_started { rt.image_id(&c.image) } else { String::new() },
            "ready": ready,
            "started": running,
            "restartCount": c.restarts,
            "state": state,
            "lastState": c.last.as_ref().map(Terminated::json).unwrap_or_else(|| json!({})),
        });
        let id =
            c.id.clone()
                .or_else(|| c.term.as_ref().map(|t| t.id.clone()))
                .or_else(|| c.last.as_ref().map(|t| t.id.clone()));
        if let Some(id) = id {
            v["containerID"] = json!(format!("sim://{id}"));
        }
        v
    }

    fn condition(
        &mut self,
        kind: &'static str,
        ok: bool,
        reason: Option<&str>,
        message: Option<String>,
        wall: DateTime<Utc>,
    ) -> Value {
        let t = match self.transitions.get(kind) {
            Some((prev, t)) if *prev == ok => *t,
            _ => {
                self.transitions.insert(kind, (ok, wall));
                wall
            }
        };
        let mut v = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": ts(t)});
        if let Some(r) = reason {
            v["reason"] = json!(r);
        }
        if let Some(m) = message {
            v["message"] = json!(m);
        }
        v
    }

    /// The status the pod should have now; None before the kubelet has anything to say.
    pub fn desired_status(&mut self, rt: &dyn Runtime, wall: DateTime<Utc>) -> Option<Value> {
        if self.stage == Stage::Pending
            || (self.stage == Stage::Finished && self.last_written.is_none() && self.start_time.is_none())
        {
            return None;
        }
        let phase = self.phase();
        let terminal = phase == "Succeeded" || phase == "Failed";
        let sandbox = self.stage == Stage::Running;
        let pending_init: Vec<String> = self.init.iter().filter(|c| !c.done).map(|c| c.name.clone()).collect();
        let unready: Vec<String> =
            self.main.iter().filter(|c| !self.container_ready(c)).map(|c| c.name.clone()).collect();
        let mut conds = Vec::new();
        conds.push(self.condition("PodReadyToStartContainers", sandbox, None, None, wall));
        let init_ok = pending_init.is_empty();
        let (ir, im) = if init_ok {
            (None, None)
        } else {
            (
                Some("ContainersNotInitialized"),
                Some(format!("containers with incomplete status: [{}]", pending_init.join(" "))),
            )
        };
        let init_ok = init_ok || (terminal && !self.failed_init && self.init.is_empty());
        conds.push(self.condition("Initialized", init_ok, ir, im, wall));
        let (ok, reason, msg) = if terminal {
            (false, Some("PodCompleted"), None)
        } else if unready.is_empty() {
            (true, None, None)
        } else {
            (
                false,
                Some("ContainersNotReady"),
                Some(format!("containers with unready status: [{}]", unready.join(" "))),
            )
        };
        // Readiness gates: Ready also needs each gate's condition True.
        let existing = self.pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        let gates: Vec<String> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.condition_type)
            .collect();
        let missing_gate = gates.iter().find(|g| !existing.iter().any(|c| &c.type_ == *g && c.status == "True"));
        conds.push(self.condition("ContainersReady", ok, reason, msg.clone(), wall));
        let (rok, rreason, rmsg) = match (ok, missing_gate) {
            (true, Some(g)) => {
                let exists = existing.iter().any(|c| &c.type_ == g);
                let m = if exists {
                    format!("the status of pod readiness gate \"{g}\" is not \"True\", but False")
                } else {
                    format!("corresponding condition of pod readiness gate \"{g}\" does not exist.")
                };
                (false, Some("ReadinessGatesNotReady"), Some(m))
            }
            _ => (ok, reason, msg),
        };
        conds.push(self.condition("Ready", rok, rreason, rmsg, wall));
        const OURS: [&str; 4] = ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"];
        let mut all: Vec<Value> = existing
            .iter()
            .filter(|c| !OURS.contains(&c.type_.as_str()))
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        all.extend(conds);
        let ip = if host_network(&self.pod) { self.host_ip.clone() } else { self.ip.clone() };
        let mut status = json!({
            "phase": phase,
            "conditions": all,
            "hostIP": self.host_ip,
            "hostIPs": self.host_ip.as_ref().map(|i| json!([{"ip": i}])),
            "podIP": ip,
            "podIPs": ip.as_ref().map(|i| json!([{"ip": i}])),
            "startTime": self.start_time.map(ts),
            "containerStatuses": self.main.iter().map(|c| self.container_status(c, rt)).collect::<Vec<_>>(),
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] =
                json!(self.init.iter().map(|c| self.container_status(c, rt)).collect::<Vec<_>>());
        }
        Some(status)
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Go's `time.Duration.String()` for whole-ish durations: "10s", "1m20s", "5m0s", "500ms".
pub fn go_dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor() as u64;
    let m = ((secs - h as f64 * 3600.0) / 60.0).floor() as u64;
    let s = secs - h as f64 * 3600.0 - m as f64 * 60.0;
    let s = if (s - s.round()).abs() < 1e-9 { format!("{}", s.round() as u64) } else { format!("{s}") };
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

impl PodWorker {
    /// Forgets every runtime container of this pod (the pod object is gone).
    pub fn teardown(&mut self, rt: &mut dyn Runtime) {
        for c in self.init.iter_mut().chain(self.main.iter_mut()) {
            if let Some(id) = c.id.take() {
                rt.remove_container(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::sim::{SimConfig, SimRuntime};

    fn settings() -> PodSettings {
        PodSettings {
            crash_loop_base: Duration::from_secs(10),
            crash_loop_max: Duration::from_secs(300),
            start_delay: Duration::ZERO,
        }
    }

    fn pod(annotations: Value, policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "annotations": annotations},
            "spec": {"restartPolicy": policy, "nodeName": "n",
                     "initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "a", "image": "nginx"}]}
        }))
        .unwrap()
    }

    fn run(w: &mut PodWorker, rt: &mut SimRuntime, now: Instant, wall: DateTime<Utc>) -> (SyncResult, Value) {
        w.ip = Some("10.244.0.2".into());
        w.host_ip = Some("172.16.0.2".into());
        let r = w.sync(rt, &settings(), true, now, wall);
        let st = w.desired_status(rt, wall).unwrap_or(Value::Null);
        (r, st)
    }

    #[test]
    fn on_failure_restarts_failures_with_back_off_and_succeeds_on_zero() {
        let mut rt = SimRuntime::new(SimConfig::default());
        let t0 = Instant::now();
        let w0 = Utc::now();
        let mut w = PodWorker::new(
            pod(json!({"sim.rkube.io/exit-after": "1s", "sim.rkube.io/exit-code": "3"}), "OnFailure"),
            t0,
        );
        let (r, st) = run(&mut w, &mut rt, t0, w0);
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(r.events.iter().filter(|e| e.reason == "Started").count(), 2);
        assert_eq!(r.wake, Some(t0 + Duration::from_secs(1)));
        // First failure: restarted at once (back-off armed).
        let t1 = t0 + Duration::from_secs(1);
        let (_, st) = run(&mut w, &mut rt, t1, w0 + chrono::Duration::seconds(1));
        assert_eq!(st["containerStatuses"][0]["restartCount"], 1);
        assert_eq!(st["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 3);
        assert!(st["containerStatuses"][0]["state"]["running"].is_object());
        // Second failure: CrashLoopBackOff for 10 s, phase stays Running, not ready.
        let t2 = t1 + Duration::from_secs(1);
        let (r, st) = run(&mut w, &mut rt, t2, w0 + chrono::Duration::seconds(2));
        assert_eq!(st["containerStatuses"][0]["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            st["containerStatuses"][0]["state"]["waiting"]["message"],
            "back-off 10s restarting failed container=a pod=p_ns(u-1)"
        );
        assert_eq!(st["phase"], "Running");
        assert_eq!(r.wake, Some(t2 + Duration::from_secs(10)));
        assert!(r.events.iter().any(|e| e.reason == "BackOff" && e.warning));
        let ready = st["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").cloned().unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        // Still waiting before the back-off ends; restarted after.
        let (_, st) = run(&mut w, &mut rt, t2 + Duration::from_secs(5), w0);
        assert_eq!(st["containerStatuses"][0]["restartCount"], 1);
        let (_, st) = run(&mut w, &mut rt, t2 + Duration::from_secs(10), w0);
        assert_eq!(st["containerStatuses"][0]["restartCount"], 2);
        // A clean exit under OnFailure ends the pod: Succeeded.
        let mut ok = PodWorker::new(pod(json!({"sim.rkube.io/exit-after": "1s"}), "OnFailure"), t0);
        run(&mut ok, &mut rt, t0, w0);
        let (_, st) = run(&mut ok, &mut rt, t1, w0);
        assert_eq!(st["phase"], "Succeeded");
        assert!(ok.ip_releasable());
    }

    #[test]
    fn ready_annotation_and_termination() {
        let mut rt =
            SimRuntime::new(SimConfig { job_exit_after: Duration::from_secs(1), stop_time: Duration::from_secs(60) });
        let t0 = Instant::now();
        let w0 = Utc::now();
        let mut w = PodWorker::new(pod(json!({"sim.rkube.io/ready": "false"}), "Always"), t0);
        let (_, st) = run(&mut w, &mut rt, t0, w0);
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["containerStatuses"][0]["ready"], false);
        assert_eq!(st["containerStatuses"][0]["started"], true);
        // Deletion with a 5 s grace: Killing, then delete once the container is gone.
        let mut p = w.pod.clone();
        p.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        p.metadata.deletion_grace_period_seconds = Some(5);
        w.update(p);
        let (r, _) = run(&mut w, &mut rt, t0, w0);
        assert!(r.events.iter().any(|e| e.reason == "Killing" && e.message == "Stopping container a"));
        assert!(!r.delete);
        assert_eq!(r.wake, Some(t0 + Duration::from_secs(5)));
        let (r, _) = run(&mut w, &mut rt, t0 + Duration::from_secs(5), w0);
        assert!(r.delete);
        assert!(rt.is_empty());
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(go_dur(Duration::from_secs(10)), "10s");
        assert_eq!(go_dur(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_dur(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_dur(Duration::from_millis(800)), "800ms");
    }
}
