//! rkube-controller-nodelifecycle: node health from leases and conditions, node-controller taints,
//! taint-based eviction and the pod garbage collection that depends on node health.
//!
//! What it owns (upstream kube-controller-manager 1.33: `node-lifecycle-controller`,
//! `taint-eviction-controller`, and the node-related half of `pod-garbage-collector`):
//! - every `--node-monitor-period` it reads each node's Ready condition heartbeat and its Lease in
//!   `kube-node-lease`; with no signal for `--node-monitor-grace-period` (`--node-startup-grace-period`
//!   for nodes that never reported) the node's conditions become Unknown ([`health`]);
//! - NoSchedule taints mirroring node conditions and `spec.unschedulable`; NoExecute
//!   `not-ready` / `unreachable` taints for not-ready nodes, added through a per-zone rate limiter and
//!   withheld when every zone is fully disrupted ([`zones`]); removed when the node is Ready again;
//! - pods on a node that stops being Ready get Ready=False;
//! - the taint manager deletes pods that do not tolerate a NoExecute taint of their node, at once or
//!   after their `tolerationSeconds` counted from the taint's `timeAdded` ([`taints`]);
//! - pods bound to a node that no longer exists, and terminating pods past their grace period on a node
//!   that is not Ready and tainted NoExecute by this controller (or `out-of-service`), are force-deleted.
//!
//! It is an API client only: informers (reflectors) for Nodes, Leases and Pods, writes through the API.

pub mod health;
pub mod taints;
pub mod zones;

mod controller;

use std::time::Duration;

/// Configuration, named after upstream's flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: silence after which a node is marked Unknown (50 s since 1.32).
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted a Ready condition.
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate`: nodes per second tainted NoExecute in a healthy zone.
    pub node_eviction_rate: f64,
    /// `--secondary-node-eviction-rate`: the same in a partially disrupted large zone.
    pub secondary_node_eviction_rate: f64,
    /// `--large-cluster-size-threshold`: zone size above which the secondary rate applies.
    pub large_cluster_size_threshold: usize,
    /// `--unhealthy-zone-threshold`: fraction of not-ready nodes making a zone partially disrupted.
    pub unhealthy_zone_threshold: f64,
    /// Pod GC: how long a pod's node must be missing before the pod is deleted (upstream's quarantine).
    pub orphaned_pod_quarantine: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
            orphaned_pod_quarantine: Duration::from_secs(40),
        }
    }
}

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("informer stopped: {0}")]
    Informer(String),
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    controller::run(client, config).await
}
