//! rkube-controller-garbagecollector: the garbage collector of kube-controller-manager
//! (upstream pkg/controller/garbagecollector), as an API client.
//!
//! It discovers every resource that can be listed, watched and deleted,
//! watches them as metadata only, and keeps an owner → dependents graph from
//! ownerReferences ([`graph`]). Workers then act as upstream does:
//! - **Background**: a dependent whose owners are all gone is deleted
//!   (owners verified by a live GET, absent owners cached);
//! - **Foreground**: an owner being deleted with the `foregroundDeletion`
//!   finalizer gets its dependents deleted (recursively, in foreground when
//!   they have dependents of their own); once no dependent with
//!   `blockOwnerDeletion: true` remains, the finalizer is removed;
//! - **Orphan**: an owner being deleted with the `orphan` finalizer is removed
//!   from its dependents' ownerReferences, then the finalizer is removed.
//!
//! Resources are re-discovered every `discovery_period` (30 s) so new kinds
//! (CRDs) get monitors. It never touches storage.

mod collector;
pub mod discovery;
pub mod graph;
mod queue;

use std::time::Duration;

/// Settings (upstream flags: `--concurrent-gc-syncs`; the 30 s resync of
/// monitors is upstream's fixed period).
#[derive(Clone, Debug)]
pub struct Config {
    /// Workers for each of the attemptToDelete and attemptToOrphan queues.
    pub concurrent_gc_syncs: usize,
    /// How often resources are re-discovered.
    pub discovery_period: Duration,
    /// (group, resource) pairs never monitored (upstream: events).
    pub ignored_resources: Vec<(String, String)>,
    /// Workers wait for every monitor's first list, at most this long per monitor.
    pub sync_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrent_gc_syncs: 20,
            discovery_period: Duration::from_secs(30),
            ignored_resources: vec![(String::new(), "events".into()), ("events.k8s.io".into(), "events".into())],
            sync_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("unable to get REST mapping for {api_version}, Kind={kind}")]
    NoMapping { api_version: String, kind: String },
    #[error("cluster-scoped object references namespaced owner {kind} {name}")]
    NamespacedOwnerOfClusterScoped { kind: String, name: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("failed to orphan dependents: {0}")]
    Orphan(String),
}

/// Run the garbage collector until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let period = config.discovery_period;
    let workers = config.concurrent_gc_syncs.max(1);
    let shared = collector::Shared::new(client, config);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        tasks.push(tokio::spawn(shared.clone().delete_worker()));
        tasks.push(tokio::spawn(shared.clone().orphan_worker()));
    }
    struct Abort(Vec<tokio::task::JoinHandle<()>>, std::sync::Arc<collector::Shared>);
    impl Drop for Abort {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
            self.1.stop_monitors();
        }
    }
    let _guard = Abort(tasks, shared.clone());
    let mut first = true;
    loop {
        match shared.sync_monitors().await {
            Ok(()) => first = false,
            Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
        }
        // Until the first discovery works, retry quickly.
        tokio::time::sleep(if first { Duration::from_secs(1) } else { period }).await;
    }
}
