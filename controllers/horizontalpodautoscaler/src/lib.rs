//! rkube-controller-horizontalpodautoscaler: upstream's HorizontalPodAutoscaler controller
//! (pkg/controller/podautoscaler, autoscaling/v2) as an API client.
//!
//! Every sync period each HPA is reconciled once: read the target's `/scale` (any kind with a
//! scale subresource, found through discovery), compute a size from its Resource /
//! ContainerResource metrics ([`replicas`]), normalize it ([`behavior`]: stabilization, rate
//! policies, min/max), write `/scale`, and record status (currentReplicas, desiredReplicas,
//! currentMetrics, lastScaleTime, observedGeneration, conditions AbleToScale / ScalingActive /
//! ScalingLimited) and upstream's events. Metrics come from a [`metrics::MetricsSource`]
//! (`metrics.k8s.io` in [`run`]). It never touches storage.

pub mod behavior;
pub mod metrics;
pub mod replicas;
mod sync;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use metrics::{ApiMetrics, MetricsSource};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use sync::Controller;

/// Upstream's reporting component for HPA events.
pub const COMPONENT: &str = "horizontal-pod-autoscaler";

/// Controller settings (kube-controller-manager's `--horizontal-pod-autoscaler-*` flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--horizontal-pod-autoscaler-sync-period` (15 s).
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (5 min): the scale-down window
    /// without `behavior`, and behavior.scaleDown's default.
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period` (5 min).
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay` (30 s).
    pub initial_readiness_delay: Duration,
    /// `--concurrent-horizontal-pod-autoscaler-syncs` (5).
    pub concurrent_syncs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(5 * 60),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(5 * 60),
            initial_readiness_delay: Duration::from_secs(30),
            concurrent_syncs: 5,
        }
    }
}

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The metrics API failed or answered something unusable.
    #[error("{0}")]
    Metrics(String),
    /// A reconcile failed (the message is upstream's).
    #[error("{0}")]
    Sync(String),
}

/// Runs the controller with metrics from `metrics.k8s.io/v1beta1`, until the process ends.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    let metrics = Arc::new(ApiMetrics::new(client.clone()));
    run_with_metrics(client, config, metrics).await
}

/// Runs the controller with the given metrics source.
pub async fn run_with_metrics(client: Client, config: Config, metrics: Arc<dyn MetricsSource>) -> Result<(), Error> {
    let controller = Arc::new(Controller::new(client.clone(), config.clone(), metrics));
    let hpas: Api<HorizontalPodAutoscaler> = Api::all(client);
    // Upstream queues every HPA with a one-sync-period delay: the first sync of an HPA happens a
    // period after it is seen, then one per period.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + config.sync_period, config.sync_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        ticker.tick().await;
        let list = match hpas.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                tracing::warn!(error = %e, "listing HorizontalPodAutoscalers failed");
                continue;
            }
        };
        let keys: HashSet<String> = list.iter().map(key_of).collect();
        controller.forget_except(&keys);
        let work: Vec<HorizontalPodAutoscaler> = {
            let mut busy = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            list.into_iter().filter(|h| busy.insert(key_of(h))).collect()
        };
        let controller = controller.clone();
        let in_flight = in_flight.clone();
        let workers = config.concurrent_syncs.max(1);
        // Syncs run beside the ticker, so one slow HPA does not delay the next period; an HPA
        // still syncing is skipped for this period.
        tokio::spawn(async move {
            futures::stream::iter(work)
                .for_each_concurrent(workers, |hpa| {
                    let controller = controller.clone();
                    let in_flight = in_flight.clone();
                    async move {
                        let key = key_of(&hpa);
                        if let Err(e) = controller.reconcile(&hpa).await {
                            tracing::info!(hpa = %key, error = %e, "HPA sync failed");
                        }
                        in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    }
                })
                .await;
        });
    }
}

fn key_of(hpa: &HorizontalPodAutoscaler) -> String {
    rkube_controller_common::key_of(hpa.namespace().as_deref(), &hpa.name_any())
}

/// Per-HPA memory, keyed by `namespace/name`.
pub(crate) type Histories = Mutex<HashMap<String, behavior::History>>;
