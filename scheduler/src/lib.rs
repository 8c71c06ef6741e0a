//! rkube-scheduler: binds pending pods to nodes, as kube-scheduler 1.33's default profile.
//!
//! - Watches all pods (one informer: pending pods feed the queue, bound pods the cache),
//!   nodes and namespaces. Pods are ours when `spec.nodeName` is empty, `schedulerName` is
//!   [`Config::scheduler_name`], they are not terminating or terminal and have no scheduling gates.
//! - Queue ([`queue`]): activeQ by priority then age, backoffQ (1 s doubling to 10 s),
//!   unschedulablePods moved on cluster events (node added/changed, assigned pod deleted or
//!   relabelled) or after 5 minutes. Upstream's per-plugin queueing hints are approximated by
//!   "any such event may help".
//! - Decisions ([`algorithm`]): Filters NodeUnschedulable, NodeName, TaintToleration,
//!   NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread (DoNotSchedule),
//!   InterPodAffinity; Scores NodeResourcesFit LeastAllocated (1), BalancedAllocation (1),
//!   TaintToleration (3), NodeAffinity (2), PodTopologySpread ScheduleAnyway (2),
//!   InterPodAffinity (2); adaptive `percentageOfNodesToScore`; random tie-break.
//!   Not implemented: preemption (the FailedScheduling message still carries upstream's
//!   `preemption: ...` part as DefaultPreemption reports it when no victims exist), volume
//!   plugins, ImageLocality, DRA, the PodTopologySpread system-default constraints.
//! - Binding: the pod is *assumed* on its node at once (counted by the next decisions), the
//!   `pods/binding` call runs concurrently (up to [`Config::parallelism`] in flight); a failed
//!   binding forgets the assumption and retries after backoff. Event `Scheduled` on success;
//!   on failure PodScheduled=False/Unschedulable with the FitError message and a
//!   `FailedScheduling` Warning event.
//!
//! Never touches storage: an API client only.

pub mod algorithm;
pub mod cache;
pub mod queue;
pub mod resources;
mod runtime;
pub mod selectors;

/// Scheduler settings (names follow KubeSchedulerConfiguration).
#[derive(Clone, Debug)]
pub struct Config {
    /// Pods whose `spec.schedulerName` equals this are scheduled (`default-scheduler`).
    pub scheduler_name: String,
    /// Bindings (and status updates) in flight at once (16, upstream's `parallelism`).
    pub parallelism: usize,
    /// `percentageOfNodesToScore`; `None` or 0 = adaptive (50% − nodes/125, at least 5%).
    pub percentage_of_nodes_to_score: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config { scheduler_name: "default-scheduler".into(), parallelism: 16, percentage_of_nodes_to_score: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("scheduler informer for {0} stopped")]
    InformerStopped(&'static str),
    #[error("scheduler task failed: {0}")]
    Task(String),
}

/// Run the scheduler until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    runtime::run(client, config).await
}
