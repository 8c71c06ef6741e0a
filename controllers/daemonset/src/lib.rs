//! rkube-controller-daemonset: upstream's DaemonSet controller (kube-controller-manager's
//! `daemonset-controller`, pkg/controller/daemon), as an API client only.
//!
//! It keeps one pod of each DaemonSet on every eligible node (nodeSelector, required node
//! affinity, taints against the template's tolerations plus the daemon tolerations), pinning each
//! pod to its node with a required node affinity on `metadata.name` for the scheduler to bind;
//! removes pods from nodes that stop qualifying or disappear; replaces failed pods (with backoff);
//! records the template history in ControllerRevisions (`<ds>-<hash>`, pods labelled
//! `controller-revision-hash`, `revisionHistoryLimit`, `collisionCount`) so that
//! `kubectl rollout status/history/undo daemonset` work; rolls out template changes with
//! RollingUpdate (maxUnavailable, or maxSurge: new pod first) or OnDelete; and reports status.
//!
//! - [`placement`]: which nodes should run a daemon pod, daemon tolerations, pinning;
//! - [`plan`]: manage / rolling-update decisions and status counters (pure);
//! - [`history`]: ControllerRevision contents and cleanup (pure);
//! - [`triggers`]: watch events to syncs, expectations bookkeeping;
//! - [`sync`]: one reconcile of one DaemonSet (API reads and writes).

pub mod history;
pub mod placement;
pub mod plan;
pub mod sync;
pub mod triggers;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::expectations::ControllerExpectations;
use rkube_controller_common::key_of;
use std::sync::Arc;

/// Upstream's reporting component name.
pub const COMPONENT: &str = "daemonset-controller";

/// Flag-like settings (kube-controller-manager's names).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--concurrent-daemonset-syncs`: DaemonSets reconciled in parallel.
    pub concurrent_syncs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 2 }
    }
}

/// Errors of one sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Common(#[from] rkube_controller_common::Error),
    /// The DaemonSet itself is unusable (bad intstr in the update strategy).
    #[error("{0}")]
    Invalid(String),
    /// A ControllerRevision with the new name exists but is not ours: collisionCount was raised.
    #[error("{0}")]
    HashCollision(String),
    #[error("{0}")]
    Sync(String),
    #[error("cache: {0}")]
    Cache(String),
}

fn ds_key(ds: &DaemonSet) -> String {
    key_of(ds.meta().namespace.as_deref(), &ds.name_any())
}

fn error_policy(ds: Arc<DaemonSet>, err: &Error, ctx: Arc<sync::Ctx>) -> Action {
    let key = ds_key(&ds);
    let failures = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    let conflict = matches!(err, Error::Kube(e) if rkube_controller_common::is_conflict(e));
    if conflict {
        tracing::debug!(daemonset = %key, error = %err, "conflict; resyncing");
    } else {
        tracing::info!(daemonset = %key, error = %err, failures, "error syncing daemon set");
    }
    Action::requeue(sync::backoff(failures))
}

/// Runs the DaemonSet controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let expectations = ControllerExpectations::new();
    let (ds_reader, ds_writer) = reflector::store::<DaemonSet>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let (node_reader, node_writer) = reflector::store::<Node>();

    let ds_exp = expectations.clone();
    let ds_stream =
        rkube_controller_common::watch::trimmed(Api::<DaemonSet>::all(client.clone()), watcher::Config::default())
            .reflect(ds_writer)
            .inspect(move |ev| {
                if let Ok(watcher::Event::Delete(d)) = ev {
                    ds_exp.delete(&ds_key(d));
                }
            })
            .applied_objects();

    let mut pod_tracker = triggers::PodTracker::new(ds_reader.clone(), expectations.clone());
    let pod_triggers =
        rkube_controller_common::watch::trimmed(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .modify(|p| rkube_controller_common::watch::slim_foreign_pod(p, "DaemonSet"))
            .reflect(pod_writer)
            .flat_map(move |ev| {
                let refs: Vec<ObjectRef<DaemonSet>> = match ev {
                    Ok(ev) => pod_tracker.handle(ev),
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch failed");
                        Vec::new()
                    }
                };
                futures::stream::iter(refs)
            });

    let mut node_tracker = triggers::NodeTracker::new(ds_reader.clone());
    let node_triggers =
        rkube_controller_common::watch::trimmed(Api::<Node>::all(client.clone()), watcher::Config::default())
            .reflect(node_writer)
            .flat_map(move |ev| {
                let refs: Vec<ObjectRef<DaemonSet>> = match ev {
                    Ok(ev) => node_tracker.handle(ev),
                    Err(e) => {
                        tracing::warn!(error = %e, "node watch failed");
                        Vec::new()
                    }
                };
                futures::stream::iter(refs)
            });

    let ctx = Arc::new(sync::Ctx {
        client: client.clone(),
        pods: pod_reader,
        nodes: node_reader,
        expectations,
        events: EventPublisher::new(client, COMPONENT),
        config: config.clone(),
        failures: Default::default(),
        failed_backoff: Default::default(),
    });
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    Controller::for_stream(ds_stream, ds_reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(pod_triggers)
        .reconcile_on(node_triggers)
        .run(sync::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "daemonset controller");
            }
        })
        .await;
    Ok(())
}
