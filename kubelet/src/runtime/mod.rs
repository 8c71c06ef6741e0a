//! The container runtime seam of the kubelet.
//!
//! The pod lifecycle (what to start, when to restart, back-off, termination, status) lives in the
//! kubelet's pod worker; a [`Runtime`] only runs containers and reports what they are doing.
//! The interface is command + observation, non-blocking: commands return at once and the worker
//! reads container state back (like upstream's PLEG cache). The simulated runtime ([`sim`]) decides
//! when its "processes" exit from pod annotations; a CRI runtime (containerd) would implement the
//! same trait over a cache fed by background CRI calls.

pub mod sim;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::{Duration, Instant};

/// What the worker asks a runtime to start.
pub struct ContainerRef<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// True for an init container (runs to completion before the app containers).
    pub init: bool,
    /// 0 for the first run, then the restart count.
    pub attempt: u32,
}

/// What a runtime reports about one container.
#[derive(Clone, Debug, PartialEq)]
pub enum ContainerObservation {
    Running { started: DateTime<Utc> },
    Exited { started: DateTime<Utc>, finished: DateTime<Utc>, exit_code: i32, reason: String },
}

pub trait Runtime: Send + 'static {
    /// `status.nodeInfo.containerRuntimeVersion`, e.g. "sim://0.1".
    fn version(&self) -> String;
    /// The imageID reported for `image`.
    fn image_id(&self, image: &str) -> String;
    /// Starts a container; returns its ID (without the runtime scheme prefix). `resumed` is the
    /// start time of a container found running when the kubelet (re)started: the runtime adopts it.
    fn start_container(
        &mut self,
        c: ContainerRef<'_>,
        now: Instant,
        wall: DateTime<Utc>,
        resumed: Option<DateTime<Utc>>,
    ) -> Result<String, String>;
    /// Asks a container to stop within `grace` (SIGTERM, then SIGKILL at the deadline).
    fn stop_container(&mut self, id: &str, grace: Duration, now: Instant);
    /// The container's state at `now`, None when unknown.
    fn container_state(&self, id: &str, now: Instant) -> Option<ContainerObservation>;
    /// When this container's state will next change by itself (the kubelet wakes then).
    fn next_change(&self, id: &str, now: Instant) -> Option<Instant>;
    /// Forgets a container.
    fn remove_container(&mut self, id: &str);
}
