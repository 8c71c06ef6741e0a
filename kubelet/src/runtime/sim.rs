//! The simulated runtime: containers are timers, not processes.
//!
//! Behaviour comes from pod annotations:
//! - `sim.rkube.io/exit-after: <Go duration>` and `sim.rkube.io/exit-code: <n>` (default 0): every app
//!   container exits that long after each start, with that code;
//! - without them, app containers of a pod owned by a Job exit 0 after [`SimConfig::job_exit_after`];
//!   other app containers run until stopped;
//! - init containers exit 0 as soon as they start;
//! - `sim.rkube.io/restartable: "true"`: only a container's first run exits per exit-after; restarted
//!   runs keep going (a transient crash);
//! - `sim.rkube.io/start-delay` (read by the pool) delays the pod's start; `sim.rkube.io/cpu-usage` and
//!   `sim.rkube.io/memory-usage` are the usage the sim will report to metrics.
//!
//! The same keys are what a matching `PodBehavior` stands for (see [`crate::behavior`]).
//!
//! A stop request ends the container after `min(grace, SimConfig::stop_time)`: exit code 0
//! ("Completed") when that is before the grace deadline (the process honoured SIGTERM), else 137
//! ("Error", killed).

use super::{ContainerObservation, ContainerRef, Runtime};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tokio::time::{Duration, Instant};

pub use rkube_crds::podbehavior::{CPU_USAGE, EXIT_AFTER, EXIT_CODE, MEMORY_USAGE, READY, RESTARTABLE, START_DELAY};

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How long app containers of Job-owned pods run without annotations (kwok-like).
    pub job_exit_after: Duration,
    /// Longest time a stopping container takes (the sim speed-up cap on the grace period).
    pub stop_time: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { job_exit_after: Duration::from_secs(1), stop_time: Duration::from_secs(2) }
    }
}

struct SimContainer {
    started_wall: DateTime<Utc>,
    started_at: Instant,
    /// When the process exits by itself, and with which code.
    exit: Option<(Instant, i32)>,
    /// A stop request: when it ends and with which code.
    stop: Option<(Instant, i32)>,
}

impl SimContainer {
    fn end(&self) -> Option<(Instant, i32)> {
        match (self.exit, self.stop) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

pub struct SimRuntime {
    config: SimConfig,
    containers: HashMap<String, SimContainer>,
    seq: u64,
}

impl SimRuntime {
    pub fn new(config: SimConfig) -> Self {
        Self { config, containers: HashMap::new(), seq: 0 }
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }
}

/// Parses a Go `time.ParseDuration` string ("1.5s", "2m30s", "500ms", "1h"); None if malformed.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

pub fn annotation<'a>(pod: &'a k8s_openapi::api::core::v1::Pod, key: &str) -> Option<&'a str> {
    pod.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

fn owned_by_job(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.kind == "Job"))
}

/// How long an app container of `pod` runs and its exit code; None = until stopped.
pub fn planned_exit(pod: &k8s_openapi::api::core::v1::Pod, config: &SimConfig) -> Option<(Duration, i32)> {
    let code = annotation(pod, EXIT_CODE).and_then(|c| c.trim().parse::<i32>().ok()).unwrap_or(0);
    if let Some(d) = annotation(pod, EXIT_AFTER).and_then(parse_go_duration) {
        return Some((d, code));
    }
    owned_by_job(pod).then_some((config.job_exit_after, 0))
}

/// [`planned_exit`] for the `attempt`-th run of a container (0 = first): with
/// `sim.rkube.io/restartable: "true"`, runs after the first do not exit by themselves.
pub fn planned_exit_attempt(
    pod: &k8s_openapi::api::core::v1::Pod,
    config: &SimConfig,
    attempt: u32,
) -> Option<(Duration, i32)> {
    if attempt > 0 && annotation(pod, RESTARTABLE).is_some_and(|v| v.trim() == "true") {
        return None;
    }
    planned_exit(pod, config)
}

fn wall_at(c: &SimContainer, at: Instant) -> DateTime<Utc> {
    let d = at.saturating_duration_since(c.started_at);
    c.started_wall + chrono::Duration::from_std(d).unwrap_or_default()
}

impl Runtime for SimRuntime {
    fn version(&self) -> String {
        "sim://0.1".to_string()
    }

    fn image_id(&self, image: &str) -> String {
        // A stable fake digest of the image name (FNV-1a, widened to 64 hex digits).
        let mut h: u64 = 0xcbf29ce484222325;
        for b in image.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        let name = image.split('@').next().unwrap_or(image);
        format!("sim://{name}@sha256:{h:016x}{:016x}{h:016x}{:016x}", h.rotate_left(17), h.rotate_left(31))
    }

    fn start_container(
        &mut self,
        c: ContainerRef<'_>,
        now: Instant,
        wall: DateTime<Utc>,
        resumed: Option<DateTime<Utc>>,
    ) -> Result<String, String> {
        self.seq += 1;
        let uid = c.pod.metadata.uid.as_deref().unwrap_or("pod");
        let id =
            format!("{}{:08x}{:08x}", uid.replace('-', "").chars().take(16).collect::<String>(), self.seq, c.attempt);
        let (started_wall, started_at) = match resumed {
            Some(s) => {
                let ago = (wall - s).to_std().unwrap_or_default();
                (s, now.checked_sub(ago).unwrap_or(now))
            }
            None => (wall, now),
        };
        let exit = if c.init {
            Some((started_at, 0))
        } else {
            planned_exit_attempt(c.pod, &self.config, c.attempt).map(|(d, code)| (started_at + d, code))
        };
        self.containers.insert(id.clone(), SimContainer { started_wall, started_at, exit, stop: None });
        Ok(id)
    }

    fn stop_container(&mut self, id: &str, grace: Duration, now: Instant) {
        let stop_time = self.config.stop_time;
        if let Some(c) = self.containers.get_mut(id) {
            if c.stop.is_some() {
                return;
            }
            let (after, code) = if stop_time < grace { (stop_time, 0) } else { (grace, 137) };
            c.stop = Some((now + after, code));
        }
    }

    fn container_state(&self, id: &str, now: Instant) -> Option<ContainerObservation> {
        let c = self.containers.get(id)?;
        match c.end() {
            Some((at, code)) if at <= now => Some(ContainerObservation::Exited {
                started: c.started_wall,
                finished: wall_at(c, at),
                exit_code: code,
                reason: if code == 0 { "Completed".into() } else { "Error".into() },
            }),
            _ => Some(ContainerObservation::Running { started: c.started_wall }),
        }
    }

    fn next_change(&self, id: &str, now: Instant) -> Option<Instant> {
        let (at, _) = self.containers.get(id)?.end()?;
        (at > now).then_some(at)
    }

    fn remove_container(&mut self, id: &str) {
        self.containers.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, Pod};

    fn pod(annotations: serde_json::Value, owner: Option<&str>) -> Pod {
        let owners = owner.map(|k| serde_json::json!([{"apiVersion": "batch/v1", "kind": k, "name": "j", "uid": "u"}]));
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "1234-5678", "annotations": annotations, "ownerReferences": owners},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("2m30s"), Some(Duration::from_secs(150)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("-1s"), None);
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn planned_exits_follow_annotations_and_job_ownership() {
        let cfg = SimConfig::default();
        assert_eq!(planned_exit(&pod(serde_json::json!({}), None), &cfg), None);
        assert_eq!(planned_exit(&pod(serde_json::json!({}), Some("Job")), &cfg), Some((cfg.job_exit_after, 0)));
        assert_eq!(planned_exit(&pod(serde_json::json!({}), Some("ReplicaSet")), &cfg), None);
        let p = pod(serde_json::json!({EXIT_AFTER: "3s", EXIT_CODE: "2"}), None);
        assert_eq!(planned_exit(&p, &cfg), Some((Duration::from_secs(3), 2)));
        let bad = pod(serde_json::json!({EXIT_AFTER: "soon", EXIT_CODE: "x"}), None);
        assert_eq!(planned_exit(&bad, &cfg), None);
        // Restartable: the first run exits, restarts do not; without it every run exits.
        let r = pod(serde_json::json!({EXIT_AFTER: "3s", EXIT_CODE: "1", RESTARTABLE: "true"}), None);
        assert_eq!(planned_exit_attempt(&r, &cfg, 0), Some((Duration::from_secs(3), 1)));
        assert_eq!(planned_exit_attempt(&r, &cfg, 1), None);
        assert_eq!(planned_exit_attempt(&p, &cfg, 4), Some((Duration::from_secs(3), 2)));
    }

    #[tokio::test]
    async fn containers_exit_and_stop_on_schedule() {
        let mut rt =
            SimRuntime::new(SimConfig { job_exit_after: Duration::from_secs(1), stop_time: Duration::from_secs(2) });
        let p = pod(serde_json::json!({EXIT_AFTER: "5s", EXIT_CODE: "3"}), None);
        let c: Container = p.spec.as_ref().unwrap().containers[0].clone();
        let now = Instant::now();
        let wall = Utc::now();
        let id = rt
            .start_container(ContainerRef { pod: &p, container: &c, init: false, attempt: 0 }, now, wall, None)
            .unwrap();
        assert!(matches!(rt.container_state(&id, now), Some(ContainerObservation::Running { .. })));
        assert_eq!(rt.next_change(&id, now), Some(now + Duration::from_secs(5)));
        match rt.container_state(&id, now + Duration::from_secs(5)) {
            Some(ContainerObservation::Exited { exit_code, reason, finished, .. }) => {
                assert_eq!(exit_code, 3);
                assert_eq!(reason, "Error");
                assert_eq!(finished, wall + chrono::Duration::seconds(5));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A stop with a long grace ends after the sim cap, cleanly.
        let plain = pod(serde_json::json!({}), None);
        let id2 = rt
            .start_container(ContainerRef { pod: &plain, container: &c, init: false, attempt: 0 }, now, wall, None)
            .unwrap();
        assert_eq!(rt.next_change(&id2, now), None);
        rt.stop_container(&id2, Duration::from_secs(30), now);
        assert_eq!(rt.next_change(&id2, now), Some(now + Duration::from_secs(2)));
        assert!(matches!(
            rt.container_state(&id2, now + Duration::from_secs(2)),
            Some(ContainerObservation::Exited { exit_code: 0, .. })
        ));
        // A grace shorter than the cap kills at the deadline.
        let id3 = rt
            .start_container(ContainerRef { pod: &plain, container: &c, init: false, attempt: 0 }, now, wall, None)
            .unwrap();
        rt.stop_container(&id3, Duration::from_secs(1), now);
        assert!(matches!(
            rt.container_state(&id3, now + Duration::from_secs(1)),
            Some(ContainerObservation::Exited { exit_code: 137, .. })
        ));
        // Init containers complete at once.
        let id4 = rt
            .start_container(ContainerRef { pod: &plain, container: &c, init: true, attempt: 0 }, now, wall, None)
            .unwrap();
        assert!(matches!(rt.container_state(&id4, now), Some(ContainerObservation::Exited { exit_code: 0, .. })));
        assert!(rt.image_id("nginx").starts_with("sim://nginx@sha256:"));
    }
}
