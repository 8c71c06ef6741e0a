//! rkube-controller-namespace: the namespace controller of kube-controller-manager
//! (upstream pkg/controller/namespace), as an API client.
//!
//! When a Namespace gets a deletionTimestamp it is emptied ([`deleter`]):
//! every namespaced resource in it is deleted (pods first), the
//! `NamespaceDeletion*` / `NamespaceContentRemaining` /
//! `NamespaceFinalizersRemaining` status conditions report progress with
//! upstream's reasons and messages, and while content remains (pods in their
//! grace period, objects held by finalizers) the namespace is looked at again
//! after `estimate / 2 + 1` seconds. Once empty, "kubernetes" is removed from
//! `spec.finalizers` through `namespaces/<name>/finalize`, and the apiserver
//! deletes the namespace. It never touches storage.

pub mod conditions;
pub mod deleter;
pub mod discovery;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings, named after upstream's flags (`--concurrent-namespace-syncs`,
/// `--namespace-sync-period`).
#[derive(Clone, Debug)]
pub struct Config {
    pub concurrent_namespace_syncs: u16,
    /// Every namespace is looked at again this often.
    pub namespace_sync_period: Duration,
    /// The `spec.finalizers` token this controller owns.
    pub finalizer_token: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrent_namespace_syncs: 10,
            namespace_sync_period: Duration::from_secs(300),
            finalizer_token: "kubernetes".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("namespace uid has changed across retries")]
    UidChanged,
    #[error("{0}")]
    Content(String),
}

struct Ctx {
    deleter: deleter::Deleter,
    config: Config,
    failures: Mutex<HashMap<String, u32>>,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::requeue(ctx.config.namespace_sync_period));
    }
    let outcome = ctx.deleter.delete(&name).await?;
    ctx.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
    Ok(match outcome {
        deleter::Outcome::Done => Action::requeue(ctx.config.namespace_sync_period),
        deleter::Outcome::Remaining(estimate) => {
            tracing::debug!(namespace = %name, estimate, "content remains in the namespace");
            Action::requeue(Duration::from_secs(u64::try_from(estimate / 2 + 1).unwrap_or(1)))
        }
    })
}

/// Exponential per-namespace backoff, 5 ms doubling to 60 s.
fn error_policy(ns: Arc<Namespace>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let name = ns.metadata.name.clone().unwrap_or_default();
    tracing::info!(namespace = %name, error = %err, "namespace deletion failed, will retry");
    let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let n = failures.entry(name).or_insert(0);
    let delay = Duration::from_millis(5).saturating_mul(1u32 << (*n).min(20));
    *n = n.saturating_add(1);
    Action::requeue(delay.min(Duration::from_secs(60)))
}

/// Run the namespace controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ctx = Arc::new(Ctx {
        deleter: deleter::Deleter::new(client, config.finalizer_token.clone()),
        failures: Mutex::new(HashMap::new()),
        config: config.clone(),
    });
    Controller::new(api, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrent_namespace_syncs))
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "namespace controller");
            }
        })
        .await;
    Ok(())
}
