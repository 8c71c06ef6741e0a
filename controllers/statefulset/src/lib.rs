//! rkube-controller-statefulset: the StatefulSet controller (upstream's pkg/controller/statefulset).
//!
//! Keeps pods `<set>-<start>…<set>-<start+replicas-1>` with stable identity (hostname = pod name,
//! subdomain = serviceName, the `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//! and `controller-revision-hash` labels) and one PersistentVolumeClaim per volumeClaimTemplate and
//! ordinal, created before the pod. `OrderedReady` creates in ordinal order, each pod waiting for
//! the previous to be Running, Ready and available, and removes in reverse order one at a time;
//! `Parallel` does not wait. Template history lives in ControllerRevisions (`<set>-<hash>`) whose
//! data is the patch `kubectl rollout undo` re-applies; RollingUpdate replaces pods highest ordinal
//! first down to the partition, OnDelete leaves that to the user. Claims get the ownerReferences the
//! `persistentVolumeClaimRetentionPolicy` asks for (the garbage collector deletes them).
//!
//! It is an API client only (a pod reflector plus direct reads of revisions and claims), never
//! touching storage.

pub mod identity;
pub mod revision;
pub mod sync;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::key_of;
use rkube_controller_common::owner::controller_of;
use std::sync::Arc;

/// The reporting component of this controller's events.
pub const COMPONENT: &str = "statefulset-controller";

/// Controller settings (upstream's kube-controller-manager flags and feature gates).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--concurrent-statefulset-syncs`: StatefulSets synced at the same time.
    pub concurrent_syncs: usize,
    /// The `MaxUnavailableStatefulSet` feature gate (alpha and off by default in 1.33): honour
    /// `rollingUpdate.maxUnavailable`.
    pub max_unavailable_statefulset: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 5, max_unavailable_statefulset: false }
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
}

fn error_policy(set: Arc<StatefulSet>, err: &Error, ctx: Arc<sync::Ctx>) -> Action {
    let key = key_of(set.meta().namespace.as_deref(), &set.name_any());
    let failures = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    tracing::debug!(statefulset = %key, error = %err, failures, "sync failed; retrying");
    Action::requeue(sync::backoff(failures))
}

/// The set a pod event concerns: its controller, when that is a StatefulSet.
fn owner_of(pod: &Pod) -> Option<ObjectRef<StatefulSet>> {
    let cref = controller_of(&pod.metadata).filter(|r| sync::set_kind_matches(r))?;
    let ns = pod.metadata.namespace.as_deref()?;
    Some(ObjectRef::new(&cref.name).within(ns))
}

/// Runs the StatefulSet controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let (set_reader, set_writer) = reflector::store::<StatefulSet>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let sets = watcher(Api::<StatefulSet>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|s| s.metadata.managed_fields = None)
        .reflect(set_writer)
        .applied_objects();
    let pod_triggers = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|p| rkube_controller_common::watch::slim_foreign_pod(p, "StatefulSet"))
        .reflect(pod_writer)
        .touched_objects()
        .filter_map(|res| async move {
            match res {
                Ok(pod) => owner_of(&pod),
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch failed");
                    None
                }
            }
        });
    let ctx = Arc::new(sync::Ctx {
        client: client.clone(),
        pods: pod_reader,
        events: EventPublisher::new(client, COMPONENT),
        config: config.clone(),
        failures: Default::default(),
    });
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    Controller::for_stream(sets, set_reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(pod_triggers)
        .run(sync::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "statefulset controller");
            }
        })
        .await;
    Ok(())
}
