//! rkube-controller-deployment: upstream's Deployment controller (kube-controller-manager's
//! `deployment-controller`), as an API client only.
//!
//! It owns the ReplicaSets named `<deployment>-<pod-template-hash>`: creates the new one for
//! the current template, scales new and old ones by the RollingUpdate (maxSurge /
//! maxUnavailable, counting *available* replicas) or Recreate strategy, scales proportionally
//! when `spec.replicas` changes mid-rollout, keeps revisions (`deployment.kubernetes.io/revision`,
//! `revision-history`), cleans up beyond `revisionHistoryLimit`, honours `paused`, and reports
//! status and the Available / Progressing / ReplicaFailure conditions (progress deadline
//! included). Pods are the ReplicaSet controller's business; this controller only reads them
//! (Recreate waits for old pods to be gone).
//!
//! - [`util`]: pure arithmetic (fenceposts, revisions, proportions, status);
//! - [`sync`]: one reconcile of one Deployment (API reads and writes).

pub mod sync;
pub mod util;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::owner::controller_of;
use std::sync::Arc;
use std::time::Duration;

/// Upstream's reporting component name.
pub const COMPONENT: &str = "deployment-controller";

/// Flag-like settings (kube-controller-manager's names).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--concurrent-deployment-syncs`: Deployments reconciled in parallel.
    pub concurrent_syncs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 5 }
    }
}

/// Errors of one sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Common(#[from] rkube_controller_common::Error),
    /// The Deployment itself is unusable (bad selector, bad intstr).
    #[error("{0}")]
    Invalid(String),
    /// A ReplicaSet with the new name exists but is not ours: collisionCount was raised.
    #[error("{0}")]
    HashCollision(String),
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: kube::Client,
    pub events: EventPublisher,
}

/// Runs the Deployment controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let replicasets: Api<ReplicaSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let ctx = Arc::new(Context { client: client.clone(), events: EventPublisher::new(client, COMPONENT) });

    let controller = Controller::new(deployments, watcher::Config::default())
        .with_config(controller::Config::default().concurrency(config.concurrent_syncs.max(1) as u16));
    let store = controller.store();
    let rs_store = store.clone();
    let pod_store = store.clone();
    controller
        .watches(replicasets, watcher::Config::default(), move |rs: ReplicaSet| deployments_for_rs(&rs_store, &rs))
        .watches(pods, watcher::Config::default(), move |pod: Pod| recreate_deployments_for_pod(&pod_store, &pod))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "deployment reconcile failed");
            }
        })
        .await;
    Ok(())
}

/// A ReplicaSet wakes its controlling Deployment; an orphan wakes every Deployment in its
/// namespace that selects it (so it can be adopted).
fn deployments_for_rs(store: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        if owner.kind == "Deployment" && owner.api_version.starts_with("apps/") {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return vec![];
    }
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|d| d.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|d| selects(d, &labels))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// A pod change wakes the Recreate Deployments selecting it: they wait for old pods to be gone.
fn recreate_deployments_for_pod(store: &Store<Deployment>, pod: &Pod) -> Vec<ObjectRef<Deployment>> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|d| d.metadata.namespace.as_deref() == Some(ns.as_str()) && !util::is_rolling_update(d))
        .filter(|d| selects(d, &labels))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

fn selects(d: &Deployment, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let Some(spec) = d.spec.as_ref() else {
        return false;
    };
    let empty = spec.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && spec.selector.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if empty {
        return false;
    }
    Selector::try_from(spec.selector.clone()).is_ok_and(|s| s.matches(labels))
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    match sync::sync_deployment(&ctx, &d).await? {
        Some(after) => Ok(Action::requeue(after)),
        None => Ok(Action::await_change()),
    }
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    let conflict = matches!(err, Error::Kube(e) if rkube_controller_common::is_conflict(e));
    if !conflict {
        tracing::info!(deployment = ?d.metadata.name, error = %err, "error syncing deployment");
    }
    Action::requeue(if conflict { Duration::from_millis(50) } else { Duration::from_millis(500) })
}
