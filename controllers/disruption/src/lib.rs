//! rkube-controller-disruption: the disruption controller (upstream's pkg/controller/disruption).
//!
//! Keeps the status of every PodDisruptionBudget: `expectedPods`, `desiredHealthy`,
//! `currentHealthy`, `disruptionsAllowed`, `disruptedPods` (pruned of evictions older than two
//! minutes), the `DisruptionAllowed` condition and `observedGeneration`, written only when they
//! change. The expected count of `maxUnavailable` and percentage budgets is the scale of the
//! selected pods' controllers (Deployments, ReplicaSets, StatefulSets, ReplicationControllers from
//! caches, any other kind through its scale subresource). A failed sync forces
//! `disruptionsAllowed` to 0 with a `SyncFailed` condition. [`eviction`] holds the pure budget check
//! of the eviction subresource (with `unhealthyPodEvictionPolicy`) for the apiserver.
//!
//! Not done (upstream does it): resetting stale `DisruptionTarget` pod conditions.
//!
//! It is an API client only (reflectors over `kube::Client`), never touching storage.

pub mod budget;
pub mod eviction;
pub mod sync;
pub mod triggers;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::key_of;
use rkube_controller_common::watch::{KeepSpec, slim_pod};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// The reporting component of this controller's events (upstream's disruption controller records
/// its events as `controllermanager`).
pub const COMPONENT: &str = "controllermanager";

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Budgets synced at the same time (upstream runs one worker).
    pub concurrent_syncs: usize,
    /// Upstream's `DeletionTimeout`: how long an eviction recorded in `status.disruptedPods` keeps
    /// its pod out of the healthy count while the pod is not seen terminating.
    pub deletion_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 1, deletion_timeout: budget::DELETION_TIMEOUT }
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
    #[error("cache: {0}")]
    Cache(String),
}

impl From<sync::SyncError> for Error {
    fn from(e: sync::SyncError) -> Self {
        match e {
            sync::SyncError::Kube(k) => Error::Kube(k),
            sync::SyncError::Other(s) => Error::Sync(s),
        }
    }
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, err: &Error, ctx: Arc<sync::Ctx>) -> Action {
    let key = key_of(pdb.metadata.namespace.as_deref(), &pdb.name_any());
    let failures = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    tracing::debug!(budget = %key, error = %err, failures, "sync failed; retrying");
    Action::requeue(sync::backoff(failures))
}

type Triggers = mpsc::UnboundedSender<ObjectRef<PodDisruptionBudget>>;

/// A reflector over a workload kind that asks to sync the budgets selecting its pod template.
fn workload<K>(
    client: &kube::Client,
    writer: reflector::store::Writer<K>,
    budgets: Store<PodDisruptionBudget>,
    tx: Triggers,
    template: fn(&K) -> Option<&PodTemplateSpec>,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects();
    drain(stream, move |obj: K| {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        let labels =
            template(&obj).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
        for r in triggers::budgets_selecting(&budgets, &ns, &[&labels]) {
            let _ = tx.unbounded_send(r);
        }
    })
}

async fn drain<K, S, F>(stream: S, mut f: F)
where
    S: Stream<Item = Result<K, watcher::Error>>,
    F: FnMut(K),
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(obj) => f(obj),
            Err(e) => tracing::warn!(error = %e, "watch failed"),
        }
    }
}

/// Runs the disruption controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let (pdb_reader, pdb_writer) = reflector::store::<PodDisruptionBudget>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let (rs_reader, rs_writer) = reflector::store::<ReplicaSet>();
    let (d_reader, d_writer) = reflector::store::<Deployment>();
    let (ss_reader, ss_writer) = reflector::store::<StatefulSet>();
    let (rc_reader, rc_writer) = reflector::store::<ReplicationController>();
    let (tx, rx) = mpsc::unbounded::<ObjectRef<PodDisruptionBudget>>();

    let mut tracker = triggers::PodTracker::new(pdb_reader.clone());
    let pod_tx = tx.clone();
    // Budgets read a pod's metadata and status only.
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|p| slim_pod(p, KeepSpec::default()))
        .reflect(pod_writer)
        .for_each(move |ev| {
            match ev {
                Ok(ev) => {
                    for r in tracker.handle(ev) {
                        let _ = pod_tx.unbounded_send(r);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "pod watch failed"),
            }
            futures::future::ready(())
        });
    let replicasets = workload(&client, rs_writer, pdb_reader.clone(), tx.clone(), |o: &ReplicaSet| {
        o.spec.as_ref().and_then(|s| s.template.as_ref())
    });
    let deployments = workload(&client, d_writer, pdb_reader.clone(), tx.clone(), |o: &Deployment| {
        o.spec.as_ref().map(|s| &s.template)
    });
    let statefulsets = workload(&client, ss_writer, pdb_reader.clone(), tx.clone(), |o: &StatefulSet| {
        o.spec.as_ref().map(|s| &s.template)
    });
    let rcs = workload(&client, rc_writer, pdb_reader.clone(), tx, |o: &ReplicationController| {
        o.spec.as_ref().and_then(|s| s.template.as_ref())
    });

    let ctx = Arc::new(sync::Ctx {
        client: client.clone(),
        pods: pod_reader,
        replicasets: rs_reader,
        deployments: d_reader,
        statefulsets: ss_reader,
        replicationcontrollers: rc_reader,
        events: EventPublisher::new(client.clone(), COMPONENT),
        config: config.clone(),
        failures: Default::default(),
    });
    let budgets = watcher(Api::<PodDisruptionBudget>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(|b| b.metadata.managed_fields = None)
        .reflect(pdb_writer)
        .applied_objects();
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    let controller = async move {
        // Like upstream's WaitForCacheSync: no budget is synced from half-filled caches.
        let ready = futures::future::try_join4(
            ctx.pods.wait_until_ready(),
            ctx.replicasets.wait_until_ready(),
            ctx.deployments.wait_until_ready(),
            futures::future::try_join(
                ctx.statefulsets.wait_until_ready(),
                ctx.replicationcontrollers.wait_until_ready(),
            ),
        )
        .await;
        if let Err(e) = ready {
            return Err(Error::Cache(e.to_string()));
        }
        Controller::for_stream(budgets, pdb_reader)
            .with_config(controller::Config::default().concurrency(concurrency))
            .reconcile_on(rx)
            .run(sync::reconcile, error_policy, ctx)
            .for_each(|res| async move {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "disruption controller");
                }
            })
            .await;
        Ok(())
    };
    let (res, (), (), (), (), ()) = tokio::join!(controller, pods, replicasets, deployments, statefulsets, rcs);
    res
}
