//! The NodePool controller: runs the nodes of every NodePool (sim.rkube.io/v1alpha1) in a dynamic
//! kubelet pool of this process, and writes the pools' status.
//!
//! Level-triggered: on any NodePool or pool-node change (and every few seconds) each pool's desired
//! node names `<namePrefix>-<i>`, `i < spec.replicas`, are compared with the nodes it runs here.
//! Missing ones are added to the kubelet pool (they register as usual, labelled
//! `sim.rkube.io/nodepool=<pool>`); surplus ones (the highest indexes on scale-down, all of them when
//! the NodePool is gone or renamed its prefix) are stopped and their Node objects deleted, without a
//! drain: their pods are left to the node lifecycle controller and pod GC, as for a vanished node.
//! Labelled Nodes no pool wants (left by an earlier run) are deleted too. Only the API is touched.

use crate::pool::start_dynamic;
use crate::{Config, Error, NodeConfig, PoolHandle};
use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rkube_crds::{NODEPOOL_LABEL, NodePool};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Duration;

/// The most nodes one NodePool may ask for (a typo guard: each node costs memory and API traffic).
pub const MAX_REPLICAS: i32 = 5000;

/// How often pools are re-checked without any event.
const RESYNC: Duration = Duration::from_secs(5);

/// Runs the kubelet pool (its static `config.nodes`, possibly none, plus every NodePool's nodes)
/// and the NodePool controller, until the process ends. `defaults` is the template of NodePool
/// nodes (capacity, arch, start delay, …; name and address are ignored).
pub async fn run_nodepools(client: kube::Client, config: Config, defaults: NodeConfig) -> Result<(), Error> {
    let (handle, join) = start_dynamic(client.clone(), config)?;
    let controller = run_controller(client, handle, defaults);
    tokio::select! {
        r = join => match r {
            Ok(r) => r,
            Err(e) => Err(Error::Stopped(e.to_string())),
        },
        r = controller => r,
    }
}

/// The NodePool controller over an already running dynamic pool (see [`crate::start_dynamic`]).
pub async fn run_controller(client: kube::Client, handle: PoolHandle, defaults: NodeConfig) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    let pools: Api<NodePool> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let (pool_store, pool_writer) = reflector::store();
    let (node_store, node_writer) = reflector::store();
    let n = notify.clone();
    let pool_task = tokio::spawn(async move {
        let mut s = watcher(pools, watcher::Config::default()).default_backoff().reflect(pool_writer).boxed();
        while let Some(ev) = s.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "nodepool watch error");
            }
            n.notify_one();
        }
    });
    let n = notify.clone();
    let node_task = tokio::spawn(async move {
        let wc = watcher::Config::default().labels(NODEPOOL_LABEL);
        let mut s = watcher(nodes, wc).default_backoff().reflect(node_writer).boxed();
        while let Some(ev) = s.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "node watch error");
            }
            n.notify_one();
        }
    });
    let _guard = AbortOnDrop(vec![pool_task, node_task]);
    pool_store.wait_until_ready().await.map_err(|_| Error::CacheSync("nodepool"))?;
    node_store.wait_until_ready().await.map_err(|_| Error::CacheSync("node"))?;
    let mut ctl = Controller { client, handle, defaults, running: BTreeMap::new(), applied: HashMap::new() };
    loop {
        ctl.reconcile_all(&pool_store, &node_store).await;
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
        // Coalesce a burst of events into one pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The node configuration of a pool's `index`-th node.
pub fn node_config(defaults: &NodeConfig, pool: &NodePool, index: usize) -> NodeConfig {
    let mut n = defaults.clone();
    n.name = pool.node_name(index);
    n.address = None;
    if let Some(c) = &pool.spec.capacity {
        if let Some(q) = &c.cpu {
            n.cpu = q.0.clone();
        }
        if let Some(q) = &c.memory {
            n.memory = q.0.clone();
        }
        if let Some(p) = c.pods {
            n.pods = p.max(0) as u32;
        }
        if let Some(q) = &c.ephemeral_storage {
            n.ephemeral_storage = q.0.clone();
        }
    }
    n.labels.extend(pool.spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    n.labels.insert(NODEPOOL_LABEL.to_string(), pool.metadata.name.clone().unwrap_or_default());
    if !pool.spec.taints.is_empty() {
        n.taints = pool.spec.taints.clone();
    }
    if let Some(z) = pool.zone(index) {
        n.zone = Some(z);
    }
    n
}

fn capacity_of(n: &NodeConfig) -> (String, String, u32, String) {
    (n.cpu.clone(), n.memory.clone(), n.pods, n.ephemeral_storage.clone())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The status a pool should have, given the nodes it runs and which of them are Ready.
pub fn desired_status(
    pool: &NodePool,
    running: &[String],
    ready: usize,
    problem: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> serde_json::Value {
    let want = pool.spec.replicas.clamp(0, MAX_REPLICAS) as usize;
    let all_ready = problem.is_none() && running.len() == want && ready == want;
    let (status, reason, message) = match problem {
        Some(p) => ("False", "NodesFailed", p.to_string()),
        None if all_ready => ("True", "NodesReady", format!("{ready}/{want} nodes are Ready")),
        None => ("False", "NodesNotReady", format!("{ready}/{want} nodes are Ready")),
    };
    let old = pool.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let transition = match old {
        Some(c) if c.status == status => serde_json::to_value(&c.last_transition_time).unwrap_or_default(),
        _ => json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    json!({
        "replicas": running.len(),
        "readyReplicas": ready,
        "nodes": running,
        "selector": pool.selector(),
        "observedGeneration": pool.metadata.generation,
        "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": transition, "observedGeneration": pool.metadata.generation,
        }],
    })
}

struct Controller {
    client: kube::Client,
    handle: PoolHandle,
    defaults: NodeConfig,
    /// Pool name → index → node name, for the nodes this process runs.
    running: BTreeMap<String, BTreeMap<usize, String>>,
    /// Node name → the configuration it runs with.
    applied: HashMap<String, NodeConfig>,
}

impl Controller {
    async fn stop_node(&mut self, name: &str) {
        if let Err(e) = self.handle.remove_node(name).await {
            tracing::warn!(node = %name, error = %e, "stopping node failed");
        }
        self.applied.remove(name);
        delete_node(&self.client, name).await;
    }

    async fn reconcile_all(&mut self, pools: &Store<NodePool>, nodes: &Store<Node>) {
        let mut wanted: HashSet<String> = HashSet::new();
        let mut seen_pools = HashSet::new();
        for pool in pools.state() {
            let Some(name) = pool.metadata.name.clone() else { continue };
            seen_pools.insert(name.clone());
            let names = self.reconcile_pool(&pool, nodes).await;
            wanted.extend(names);
        }
        // NodePools that are gone: stop and delete their nodes.
        let gone: Vec<String> = self.running.keys().filter(|p| !seen_pools.contains(*p)).cloned().collect();
        for p in gone {
            let nodes_of = self.running.remove(&p).unwrap_or_default();
            for (_, n) in nodes_of.into_iter().rev() {
                tracing::info!(nodepool = %p, node = %n, "removing node of deleted NodePool");
                self.stop_node(&n).await;
            }
        }
        // Labelled nodes no pool wants (left by an earlier run).
        for node in nodes.state() {
            let Some(n) = node.metadata.name.as_deref() else { continue };
            if !wanted.contains(n) && node.metadata.deletion_timestamp.is_none() {
                tracing::info!(node = %n, "deleting node no NodePool wants");
                delete_node(&self.client, n).await;
            }
        }
    }

    /// Brings one pool to its desired nodes; returns the names it runs.
    async fn reconcile_pool(&mut self, pool: &NodePool, nodes: &Store<Node>) -> Vec<String> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let replicas = if pool.metadata.deletion_timestamp.is_some() {
            0
        } else {
            pool.spec.replicas.clamp(0, MAX_REPLICAS) as usize
        };
        let mut problem = None;
        if pool.spec.replicas > MAX_REPLICAS {
            problem = Some(format!("spec.replicas {} exceeds the limit of {MAX_REPLICAS}", pool.spec.replicas));
        }
        let desired: BTreeMap<usize, NodeConfig> =
            (0..replicas).map(|i| (i, node_config(&self.defaults, pool, i))).collect();
        let mut running = self.running.remove(&name).unwrap_or_default();
        // Scale down (highest index first) and drop nodes whose name no longer fits.
        let surplus: Vec<(usize, String)> = running
            .iter()
            .rev()
            .filter(|(i, n)| desired.get(i).map(|c| &c.name) != Some(*n))
            .map(|(i, n)| (*i, n.clone()))
            .collect();
        for (i, n) in surplus {
            tracing::info!(nodepool = %name, node = %n, "scaling down: removing node");
            self.stop_node(&n).await;
            running.remove(&i);
        }
        for (i, cfg) in desired {
            if running.contains_key(&i) {
                let changed = self.applied.get(&cfg.name).is_none_or(|old| capacity_of(old) != capacity_of(&cfg));
                if changed {
                    match self.handle.update_node(cfg.clone()).await {
                        Ok(_) => {
                            self.applied.insert(cfg.name.clone(), cfg);
                        }
                        Err(e) => tracing::warn!(node = %cfg.name, error = %e, "updating node failed"),
                    }
                }
                continue;
            }
            match self.handle.add_node(cfg.clone()).await {
                Ok(()) => {
                    tracing::info!(nodepool = %name, node = %cfg.name, "scaling up: added node");
                    running.insert(i, cfg.name.clone());
                    self.applied.insert(cfg.name.clone(), cfg);
                }
                Err(Error::DuplicateNode(n)) => {
                    problem.get_or_insert(format!("node name {n:?} is already used by another node of this process"));
                }
                Err(e) => {
                    problem.get_or_insert(format!("adding node {}: {e}", cfg.name));
                }
            }
        }
        let names: Vec<String> = running.values().cloned().collect();
        let ready = names.iter().filter(|n| nodes.get(&ObjectRef::new(n)).is_some_and(|n| node_ready(&n))).count();
        self.running.insert(name.clone(), running);
        let status = desired_status(pool, &names, ready, problem.as_deref(), Utc::now());
        if status_differs(pool, &status) {
            let api: Api<NodePool> = Api::all(self.client.clone());
            let body = json!({"status": status});
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await {
                tracing::debug!(nodepool = %name, error = %e, "status update failed (retried on the next pass)");
            }
        }
        names
    }
}

/// Whether the server's status differs from `want` (the condition's times aside).
fn status_differs(pool: &NodePool, want: &serde_json::Value) -> bool {
    let have = match &pool.status {
        Some(s) => serde_json::to_value(s).unwrap_or_default(),
        None => return true,
    };
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("lastTransitionTime");
                }
            }
        }
        if let Some(m) = v.as_object_mut() {
            m.retain(|_, x| !x.is_null() && x.as_array().is_none_or(|a| !a.is_empty()));
        }
        v
    };
    strip(&have) != strip(want)
}

async fn delete_node(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(node = %name, error = %e, "deleting node failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_crds::NodePoolSpec;

    fn pool(spec: serde_json::Value) -> NodePool {
        serde_json::from_value(json!({
            "apiVersion": "sim.rkube.io/v1alpha1", "kind": "NodePool",
            "metadata": {"name": "workers", "generation": 3}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn node_config_applies_capacity_labels_taints_and_zones() {
        let p = pool(json!({
            "replicas": 3, "namePrefix": "w", "capacity": {"cpu": 8, "pods": 20},
            "labels": {"tier": "batch"}, "zones": ["a", "b"],
            "taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]
        }));
        let d = NodeConfig { address: Some("1.2.3.4".into()), ..NodeConfig::new("ignored") };
        let n = node_config(&d, &p, 2);
        assert_eq!(n.name, "w-2");
        assert_eq!(n.address, None);
        assert_eq!(n.cpu, "8");
        assert_eq!(n.pods, 20);
        assert_eq!(n.memory, "16Gi", "unset capacity keeps the default");
        assert_eq!(n.labels.get("tier").map(String::as_str), Some("batch"));
        assert_eq!(n.labels.get(NODEPOOL_LABEL).map(String::as_str), Some("workers"));
        assert_eq!(n.zone.as_deref(), Some("a"));
        assert_eq!(node_config(&d, &p, 1).zone.as_deref(), Some("b"));
        assert_eq!(n.taints[0].key, "dedicated");
        // Default prefix: the pool's name.
        let plain = NodePool::new("workers", NodePoolSpec { replicas: 1, ..Default::default() });
        assert_eq!(node_config(&d, &plain, 0).name, "workers-0");
    }

    #[test]
    fn status_reports_counts_and_ready_condition() {
        let p = pool(json!({"replicas": 2}));
        let now = Utc::now();
        let names = vec!["workers-0".to_string(), "workers-1".to_string()];
        let s = desired_status(&p, &names, 1, None, now);
        assert_eq!(s["replicas"], 2);
        assert_eq!(s["readyReplicas"], 1);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["selector"], "sim.rkube.io/nodepool=workers");
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "NodesNotReady");
        let s = desired_status(&p, &names, 2, None, now);
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][0]["message"], "2/2 nodes are Ready");
        let s = desired_status(&p, &names[..1], 1, Some("boom"), now);
        assert_eq!(s["conditions"][0]["reason"], "NodesFailed");
        // The same status on the server (times aside) is not rewritten; a changed count is.
        let mut on_server = p.clone();
        on_server.status = serde_json::from_value(desired_status(&p, &names, 2, None, now)).unwrap();
        let later = desired_status(&on_server, &names, 2, None, now + chrono::Duration::seconds(30));
        assert!(!status_differs(&on_server, &later));
        assert_eq!(
            later["conditions"][0]["lastTransitionTime"],
            json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "transition time kept while the status holds"
        );
        assert!(status_differs(&on_server, &desired_status(&on_server, &names, 1, None, now)));
        // Scaled to zero: the empty node list still differs from a non-empty one.
        assert!(status_differs(&on_server, &desired_status(&on_server, &[], 0, None, now)));
    }
}
