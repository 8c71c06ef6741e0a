//! rkube-kubelet: the node agent. Registers Nodes, keeps their status and kube-node-lease Lease
//! fresh, and runs the pods bound to them through a swappable [`runtime::Runtime`] (the simulated
//! runtime now; CRI/containerd later).
//!
//! One process can run a whole pool of nodes (`rkube server --sim-nodes N`): a pool shares one pod
//! watch, one node watch, one timer heap and one runtime, so 1,000 nodes cost no more tasks than
//! one. [`run`] runs a pool of the configured nodes; [`start`] also returns a [`PoolHandle`] that
//! can pause a node's heartbeat (tests of node lifecycle). Only the API is touched, never storage.
//!
//! Declarative sim configuration (sim.rkube.io CRDs from rkube-crds): [`run_nodepools`] runs a
//! dynamic pool whose nodes follow the NodePools ([`nodepool`]); every pool applies PodBehaviors to
//! its pods ([`behavior`]).

pub mod backoff;
pub mod behavior;
pub mod events;
pub mod identity;
pub mod ipam;
pub mod node;
pub mod nodepool;
pub mod pod;
mod pool;
pub mod runtime;

pub use identity::NodeClients;
pub use nodepool::run_nodepools;
pub use pool::{PoolHandle, start, start_dynamic};

use k8s_openapi::api::core::v1::Taint;
use std::collections::BTreeMap;
use std::time::Duration;

/// One node of the pool (kubelet flags in upstream's spelling where they exist).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `--hostname-override` / `--node-name`.
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub ephemeral_storage: String,
    /// `kubernetes.io/arch` and nodeInfo.architecture.
    pub arch: String,
    /// `--node-labels`.
    pub labels: BTreeMap<String, String>,
    /// `--register-with-taints`.
    pub taints: Vec<Taint>,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Time from a pod's arrival to its containers running.
    pub start_delay: Duration,
    /// `--node-ip`; None picks a unique 172.16.0.0/12 address for the pool's n-th node.
    pub address: Option<String>,
}

impl NodeConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
            ephemeral_storage: "100Gi".into(),
            arch: std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            zone: None,
            start_delay: Duration::ZERO,
            address: None,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self::new("rkube-node")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub nodes: Vec<NodeConfig>,
    /// `--node-status-update-frequency` (how often status is computed; written only when changed).
    pub node_status_update_frequency: Duration,
    /// `nodeStatusReportFrequency`: write status at least this often even if unchanged.
    pub node_status_report_frequency: Duration,
    /// `--node-lease-duration-seconds`; the lease is renewed every quarter of it.
    pub node_lease_duration_seconds: i32,
    /// CrashLoopBackOff initial delay (upstream 10 s) and cap (5 min).
    pub crash_loop_base: Duration,
    pub crash_loop_max: Duration,
    /// Sim: how long app containers of Job-owned pods run.
    pub job_exit_after: Duration,
    /// Sim: the longest a stopping container takes (caps the grace period).
    pub termination_grace_cap: Duration,
    /// Record Events (Pulled, Created, Started, Killing, BackOff).
    pub events: bool,
    /// Concurrent API requests the pool may have in flight.
    pub max_in_flight: usize,
    /// Watch PodBehaviors (sim.rkube.io) and apply them to the pool's pods.
    pub pod_behaviors: bool,
    /// Each node's own client (`system:node:<name>`) for its writes: registration, node status,
    /// lease, pod status, pod deletes, events. None: the pool's client does everything. The
    /// shared watches (pods, nodes, PodBehaviors, Namespaces) always use the pool's client.
    pub node_clients: Option<NodeClients>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nodes: vec![NodeConfig::default()],
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            node_lease_duration_seconds: 40,
            crash_loop_base: Duration::from_secs(10),
            crash_loop_max: Duration::from_secs(300),
            job_exit_after: Duration::from_secs(1),
            termination_grace_cap: Duration::from_secs(2),
            events: true,
            max_in_flight: 64,
            pod_behaviors: true,
            node_clients: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no nodes configured")]
    NoNodes,
    #[error("duplicate node name {0:?}")]
    DuplicateNode(String),
    #[error("kubelet pool stopped: {0}")]
    Stopped(String),
    #[error("nodes can only be added to or removed from a pool started with start_dynamic")]
    NotDynamic,
    #[error("waiting for the {0} cache to sync failed")]
    CacheSync(&'static str),
}

/// Runs the configured nodes until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let (_handle, join) = start(client, config)?;
    match join.await {
        Ok(r) => r,
        Err(e) => Err(Error::Stopped(e.to_string())),
    }
}

/// Runs a pool of nodes with default pool settings.
pub async fn run_pool(client: kube::Client, nodes: Vec<NodeConfig>) -> Result<(), Error> {
    run(client, Config { nodes, ..Config::default() }).await
}
