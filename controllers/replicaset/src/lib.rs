//! rkube-controller-replicaset: the ReplicaSet controller (upstream's pkg/controller/replicaset).
//!
//! Watches ReplicaSets and pods and keeps `spec.replicas` active pods for every ReplicaSet:
//! creates pods from the template (`generateName: <rs>-`, the template's labels and annotations,
//! a controller ownerReference) in slow-start batches, deletes the lowest-ranked pods when there
//! are too many, adopts matching orphans and releases pods that stop matching, and reports
//! replicas / fullyLabeledReplicas / readyReplicas / availableReplicas / observedGeneration and the
//! ReplicaFailure condition. Expectations keep it from overshooting while its pod cache lags.
//!
//! It is an API client only (reflectors over `kube::Client`), never touching storage.

pub mod rank;
pub mod status;
pub mod sync;
pub mod triggers;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::expectations::ControllerExpectations;
use rkube_controller_common::key_of;
use std::sync::Arc;

/// The reporting component of this controller's events.
pub const COMPONENT: &str = "replicaset-controller";

/// Controller settings (upstream's kube-controller-manager flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--concurrent-replicaset-syncs`: ReplicaSets synced at the same time.
    pub concurrent_syncs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 5 }
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Common(#[from] rkube_controller_common::Error),
    #[error("{0}")]
    Sync(String),
    #[error("pod cache: {0}")]
    Cache(String),
}

fn rs_key(rs: &ReplicaSet) -> String {
    key_of(rs.meta().namespace.as_deref(), &rs.name_any())
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, ctx: Arc<sync::Ctx>) -> Action {
    let key = rs_key(&rs);
    let failures = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    tracing::warn!(replicaset = %key, error = %err, failures, "sync failed; retrying");
    Action::requeue(sync::backoff(failures))
}

/// Runs the ReplicaSet controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let expectations = ControllerExpectations::new();
    let (rs_reader, rs_writer) = reflector::store::<ReplicaSet>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();

    let rs_exp = expectations.clone();
    let rs_stream =
        rkube_controller_common::watch::trimmed(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
            .reflect(rs_writer)
            .inspect(move |ev| {
                if let Ok(watcher::Event::Delete(rs)) = ev {
                    rs_exp.delete(&rs_key(rs));
                }
            })
            .applied_objects();

    let mut tracker = triggers::PodTracker::new(rs_reader.clone(), expectations.clone());
    let pod_triggers =
        rkube_controller_common::watch::trimmed(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .reflect(pod_writer)
            .flat_map(move |ev| {
                let refs: Vec<ObjectRef<ReplicaSet>> = match ev {
                    Ok(ev) => tracker.handle(ev),
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch failed");
                        Vec::new()
                    }
                };
                futures::stream::iter(refs)
            });

    let ctx = Arc::new(sync::Ctx {
        client: client.clone(),
        pods: pod_reader,
        replicasets: rs_reader.clone(),
        expectations,
        events: EventPublisher::new(client, COMPONENT),
        config: config.clone(),
        failures: Default::default(),
    });
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    Controller::for_stream(rs_stream, rs_reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(pod_triggers)
        .run(sync::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "replicaset controller");
            }
        })
        .await;
    Ok(())
}
