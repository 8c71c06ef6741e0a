//! The node pool: one event loop for all nodes of a process.
//!
//! Owns the API I/O of the kubelet: node registration, status and lease heartbeats, the shared pod
//! and node watches, the timer heap that wakes pod workers, and the status/delete/event writes
//! (spawned, bounded by a semaphore, one write in flight per pod). Pod logic is in [`crate::pod`].
//!
//! A pool started with [`start_dynamic`] may start with no nodes and gains/loses nodes at run time
//! through its [`PoolHandle`] (the NodePool controller, [`crate::nodepool`]). The pool also watches
//! PodBehaviors (and Namespaces) and gives each pod the `sim.rkube.io/*` annotations they stand for
//! ([`crate::behavior`]) before its worker sees it.

use crate::behavior::{Behaviors, strip};
use crate::events::pod_event;
use crate::ipam::PodIpPool;
use crate::node::{lease_object, micro, node_object, node_status, server_fingerprint, status_fingerprint};
use crate::pod::{PodSettings, PodWorker, WrittenStatus, host_network};
use crate::runtime::Runtime;
use crate::runtime::sim::{START_DELAY, SimConfig, SimRuntime, annotation, parse_go_duration};
use crate::{Config, Error, NodeConfig};
use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use rkube_crds::PodBehavior;
use serde_json::{Value, json};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

/// Control over a running pool.
#[derive(Clone)]
pub struct PoolHandle {
    paused: Arc<Mutex<HashSet<String>>>,
    tx: mpsc::UnboundedSender<Msg>,
    dynamic: bool,
}

impl PoolHandle {
    /// Stops (false) or resumes (true) one node's lease renewals and status updates; its pods keep running.
    pub fn set_heartbeat(&self, node: &str, on: bool) {
        if let Ok(mut p) = self.paused.lock() {
            if on {
                p.remove(node);
            } else {
                p.insert(node.to_string());
            }
        }
    }

    fn send<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<oneshot::Receiver<T>, Error> {
        if !self.dynamic {
            return Err(Error::NotDynamic);
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| Error::Stopped("pool ended".into()))?;
        Ok(rx)
    }

    /// Starts running (registering, heartbeating) one more node. Dynamic pools only.
    pub async fn add_node(&self, node: NodeConfig) -> Result<(), Error> {
        let rx = self.send(|tx| Msg::AddNode(Box::new(node), tx))?;
        rx.await.map_err(|_| Error::Stopped("pool ended".into()))?
    }

    /// Stops running a node: its heartbeats stop and its pods are forgotten (not deleted). Returns
    /// false when the pool does not run it. The Node object is left to the caller.
    pub async fn remove_node(&self, name: &str) -> Result<bool, Error> {
        let rx = self.send(|tx| Msg::RemoveNode(name.to_string(), tx))?;
        rx.await.map_err(|_| Error::Stopped("pool ended".into()))
    }

    /// Replaces a running node's configuration (capacity shows in its next status update; labels,
    /// taints and address stay as registered). Returns false when the pool does not run it.
    pub async fn update_node(&self, node: NodeConfig) -> Result<bool, Error> {
        let rx = self.send(|tx| Msg::UpdateNode(Box::new(node), tx))?;
        rx.await.map_err(|_| Error::Stopped("pool ended".into()))
    }
}

/// Starts a pool of the configured nodes in the background.
pub fn start(client: kube::Client, config: Config) -> Result<(PoolHandle, JoinHandle<Result<(), Error>>), Error> {
    if config.nodes.is_empty() {
        return Err(Error::NoNodes);
    }
    start_inner(client, config, false)
}

/// Starts a pool whose nodes can be added and removed through the handle; it may start empty.
pub fn start_dynamic(
    client: kube::Client,
    config: Config,
) -> Result<(PoolHandle, JoinHandle<Result<(), Error>>), Error> {
    start_inner(client, config, true)
}

fn start_inner(
    client: kube::Client,
    config: Config,
    dynamic: bool,
) -> Result<(PoolHandle, JoinHandle<Result<(), Error>>), Error> {
    let mut seen = HashSet::new();
    for n in &config.nodes {
        if !seen.insert(n.name.clone()) {
            return Err(Error::DuplicateNode(n.name.clone()));
        }
    }
    let paused = Arc::new(Mutex::new(HashSet::new()));
    let mut pool = Pool::new(client, config, paused.clone());
    pool.dynamic = dynamic;
    let handle = PoolHandle { paused, tx: pool.tx.clone(), dynamic };
    let join = tokio::spawn(async move { pool.run().await });
    Ok((handle, join))
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Pod(String),
    Lease(usize),
    Status(usize),
}

enum Msg {
    Pod(Box<Result<watcher::Event<Pod>, watcher::Error>>),
    Node(Box<Result<watcher::Event<Node>, watcher::Error>>),
    Registered {
        idx: usize,
        uid: Option<String>,
    },
    StatusWritten {
        idx: usize,
        ok: bool,
    },
    PodWritten {
        uid: String,
        sent: Value,
        ok: bool,
    },
    PodDeleted {
        uid: String,
        ok: bool,
    },
    /// A pod listed when a node was added (adopted only if the watch has not brought it).
    PodListed(Box<Pod>),
    Behavior(Box<Result<watcher::Event<PodBehavior>, watcher::Error>>),
    Namespace(Box<Result<watcher::Event<Namespace>, watcher::Error>>),
    AddNode(Box<NodeConfig>, oneshot::Sender<Result<(), Error>>),
    RemoveNode(String, oneshot::Sender<bool>),
    UpdateNode(Box<NodeConfig>, oneshot::Sender<bool>),
}

struct NodeState {
    cfg: NodeConfig,
    ip: String,
    uid: Option<String>,
    registered: bool,
    server: Option<Node>,
    ipam: Option<PodIpPool>,
    last_report: Option<Instant>,
    status_in_flight: bool,
    /// Removed from a dynamic pool: timers for it stop, messages about it are ignored.
    removed: bool,
    /// Cleared on removal (stops a registration retry loop).
    alive: Arc<AtomicBool>,
}

struct PodEntry {
    worker: PodWorker,
    node: usize,
    scheduled: Option<Instant>,
    writing: bool,
    deleting: bool,
    ip_released: bool,
    /// Annotation keys the pod got from PodBehaviors (not its own).
    injected: Vec<String>,
}

struct Pool {
    client: kube::Client,
    cfg: Config,
    settings_base: PodSettings,
    nodes: Vec<NodeState>,
    by_name: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
    rt: SimRuntime,
    tx: mpsc::UnboundedSender<Msg>,
    rx: Option<mpsc::UnboundedReceiver<Msg>>,
    sem: Arc<Semaphore>,
    paused: Arc<Mutex<HashSet<String>>>,
    relist: Option<HashSet<String>>,
    dynamic: bool,
    behaviors: Behaviors,
    behavior_relist: Option<Vec<PodBehavior>>,
}

/// The client `node`'s writes go through (made per write: in-process and impersonating clients
/// are cheap, and a pool of 1,000 nodes keeps no per-node client alive).
fn client_for(clients: &Option<crate::NodeClients>, pool: &kube::Client, node: &str) -> kube::Client {
    match clients {
        Some(f) => f.client(node),
        None => pool.clone(),
    }
}

/// A node address for the pool's i-th node: 172.16.0.2 onwards.
fn default_ip(i: usize) -> String {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 2)).wrapping_add(i as u32)).to_string()
}

impl Pool {
    fn new(client: kube::Client, cfg: Config, paused: Arc<Mutex<HashSet<String>>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let nodes: Vec<NodeState> = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeState {
                cfg: n.clone(),
                ip: n.address.clone().unwrap_or_else(|| default_ip(i)),
                uid: None,
                registered: false,
                server: None,
                ipam: None,
                last_report: None,
                status_in_flight: false,
                removed: false,
                alive: Arc::new(AtomicBool::new(true)),
            })
            .collect();
        let by_name = nodes.iter().enumerate().map(|(i, n)| (n.cfg.name.clone(), i)).collect();
        let rt =
            SimRuntime::new(SimConfig { job_exit_after: cfg.job_exit_after, stop_time: cfg.termination_grace_cap });
        Self {
            settings_base: PodSettings {
                crash_loop_base: cfg.crash_loop_base,
                crash_loop_max: cfg.crash_loop_max,
                start_delay: Duration::ZERO,
            },
            sem: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            client,
            cfg,
            nodes,
            by_name,
            pods: HashMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            rt,
            tx,
            rx: Some(rx),
            paused,
            relist: None,
            dynamic: false,
            behaviors: Behaviors::new(),
            behavior_relist: None,
        }
    }

    fn schedule(&mut self, at: Instant, t: Timer) {
        self.seq += 1;
        self.timers.push(Reverse((at, self.seq, t)));
    }

    /// The client node `idx`'s writes go through: its own identity when the pool has
    /// [`crate::NodeClients`], else the pool's.
    fn node_client(&self, idx: usize) -> kube::Client {
        client_for(&self.cfg.node_clients, &self.client, &self.nodes[idx].cfg.name)
    }

    fn paused(&self, idx: usize) -> bool {
        self.paused.lock().map(|p| p.contains(&self.nodes[idx].cfg.name)).unwrap_or(false)
    }

    fn spawn_watches(&self) {
        let single = (self.nodes.len() == 1 && !self.dynamic).then(|| self.nodes[0].cfg.name.clone());
        let pod_sel = match &single {
            Some(n) => format!("spec.nodeName={n}"),
            None => "spec.nodeName!=".to_string(),
        };
        let pods: Api<Pod> = Api::all(self.client.clone());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut s = watcher(pods, watcher::Config::default().fields(&pod_sel)).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                if tx.send(Msg::Pod(Box::new(ev))).is_err() {
                    return;
                }
            }
        });
        let nodes: Api<Node> = Api::all(self.client.clone());
        let tx = self.tx.clone();
        let wc = match &single {
            Some(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
            None => watcher::Config::default(),
        };
        tokio::spawn(async move {
            let mut s = watcher(nodes, wc).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                if tx.send(Msg::Node(Box::new(ev))).is_err() {
                    return;
                }
            }
        });
        if !self.cfg.pod_behaviors {
            return;
        }
        let behaviors: Api<PodBehavior> = Api::all(self.client.clone());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut s = watcher(behaviors, watcher::Config::default()).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                if tx.send(Msg::Behavior(Box::new(ev))).is_err() {
                    return;
                }
            }
        });
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut s = watcher(namespaces, watcher::Config::default()).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                if tx.send(Msg::Namespace(Box::new(ev))).is_err() {
                    return;
                }
            }
        });
    }

    fn spawn_register(&self, idx: usize) {
        let n = &self.nodes[idx];
        let body = node_object(&n.cfg, &n.ip);
        let name = n.cfg.name.clone();
        let labels = body["metadata"]["labels"].clone();
        let api: Api<Node> = Api::all(self.node_client(idx));
        let tx = self.tx.clone();
        let sem = self.sem.clone();
        let alive = n.alive.clone();
        tokio::spawn(async move {
            while alive.load(Ordering::Relaxed) {
                let res = {
                    let _permit = sem.acquire().await;
                    register(&api, &name, &body, &labels).await
                };
                match res {
                    Ok(uid) => {
                        let _ = tx.send(Msg::Registered { idx, uid });
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "unable to register node with API server");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }

    async fn run(&mut self) -> Result<(), Error> {
        let Some(mut rx) = self.rx.take() else { return Err(Error::Stopped("pool already running".into())) };
        for i in 0..self.nodes.len() {
            self.spawn_register(i);
        }
        self.spawn_watches();
        loop {
            let next = self.timers.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => self.handle(m),
                    None => return Ok(()),
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if next.is_some() => {
                    self.fire_due();
                }
            }
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, _, t))) = self.timers.pop() else { break };
            match t {
                Timer::Pod(uid) => {
                    let due = match self.pods.get_mut(&uid) {
                        Some(e) if e.scheduled == Some(at) => {
                            e.scheduled = None;
                            true
                        }
                        Some(e) if e.scheduled.is_none() => true,
                        _ => false,
                    };
                    if due {
                        self.sync_pod(&uid);
                    }
                }
                Timer::Lease(idx) => self.renew_lease(idx),
                Timer::Status(idx) => self.update_status(idx),
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Pod(ev) => match *ev {
                Ok(ev) => self.pod_event(ev),
                Err(e) => tracing::warn!(error = %e, "pod watch error"),
            },
            Msg::Node(ev) => match *ev {
                Err(e) => tracing::warn!(error = %e, "node watch error"),
                Ok(ev) => match ev {
                    watcher::Event::Apply(n) | watcher::Event::InitApply(n) => self.node_seen(n),
                    watcher::Event::Delete(n) => {
                        if let Some(&idx) = n.metadata.name.as_ref().and_then(|x| self.by_name.get(x)) {
                            self.nodes[idx].server = None;
                        }
                    }
                    watcher::Event::Init | watcher::Event::InitDone => {}
                },
            },
            Msg::Registered { idx, uid } => {
                let n = &mut self.nodes[idx];
                if n.removed {
                    return;
                }
                n.registered = true;
                if uid.is_some() {
                    n.uid = uid;
                }
                tracing::info!(node = %n.cfg.name, "successfully registered node");
                self.update_status(idx);
                self.renew_lease(idx);
            }
            Msg::StatusWritten { idx, ok } => {
                let n = &mut self.nodes[idx];
                n.status_in_flight = false;
                if ok {
                    n.last_report = Some(Instant::now());
                }
            }
            Msg::PodWritten { uid, sent, ok } => {
                if let Some(e) = self.pods.get_mut(&uid) {
                    e.writing = false;
                    if ok {
                        e.worker.last_written = Some(WrittenStatus::of(&sent));
                        self.sync_pod(&uid);
                    } else {
                        self.schedule(Instant::now() + Duration::from_secs(1), Timer::Pod(uid));
                    }
                }
            }
            Msg::PodDeleted { uid, ok } => {
                if let Some(e) = self.pods.get_mut(&uid)
                    && !ok
                {
                    e.deleting = false;
                    self.schedule(Instant::now() + Duration::from_secs(1), Timer::Pod(uid));
                }
            }
            Msg::PodListed(pod) => {
                if pod.metadata.uid.as_ref().is_some_and(|u| !self.pods.contains_key(u)) {
                    self.pod_applied(*pod);
                }
            }
            Msg::Behavior(ev) => self.behavior_event(*ev),
            Msg::Namespace(ev) => self.namespace_event(*ev),
            Msg::AddNode(cfg, reply) => {
                let _ = reply.send(self.add_node(*cfg));
            }
            Msg::RemoveNode(name, reply) => {
                let _ = reply.send(self.remove_node(&name));
            }
            Msg::UpdateNode(cfg, reply) => {
                let ok = match self.by_name.get(&cfg.name) {
                    Some(&idx) => {
                        self.nodes[idx].cfg = *cfg;
                        true
                    }
                    None => false,
                };
                let _ = reply.send(ok);
            }
        }
    }

    fn add_node(&mut self, cfg: NodeConfig) -> Result<(), Error> {
        if self.by_name.contains_key(&cfg.name) {
            return Err(Error::DuplicateNode(cfg.name));
        }
        let idx = self.nodes.len();
        let name = cfg.name.clone();
        self.nodes.push(NodeState {
            ip: cfg.address.clone().unwrap_or_else(|| default_ip(idx)),
            cfg,
            uid: None,
            registered: false,
            server: None,
            ipam: None,
            last_report: None,
            status_in_flight: false,
            removed: false,
            alive: Arc::new(AtomicBool::new(true)),
        });
        self.by_name.insert(name.clone(), idx);
        self.spawn_register(idx);
        // Pods already bound to this node came through the watch before we ran it: list them.
        let api: Api<Pod> = Api::all(self.client.clone());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let lp = ListParams::default().fields(&format!("spec.nodeName={name}"));
            match api.list(&lp).await {
                Ok(list) => {
                    for p in list.items {
                        if tx.send(Msg::PodListed(Box::new(p))).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "listing the pods of an added node failed"),
            }
        });
        Ok(())
    }

    fn remove_node(&mut self, name: &str) -> bool {
        let Some(idx) = self.by_name.remove(name) else { return false };
        let n = &mut self.nodes[idx];
        n.removed = true;
        n.alive.store(false, Ordering::Relaxed);
        n.server = None;
        let gone: Vec<String> = self.pods.iter().filter(|(_, e)| e.node == idx).map(|(u, _)| u.clone()).collect();
        for uid in gone {
            self.pod_removed(&uid);
        }
        self.nodes[idx].ipam = None;
        if let Ok(mut p) = self.paused.lock() {
            p.remove(name);
        }
        tracing::info!(node = %name, "stopped node");
        true
    }

    fn behavior_event(&mut self, ev: Result<watcher::Event<PodBehavior>, watcher::Error>) {
        match ev {
            Err(e) => {
                tracing::debug!(error = %e, "podbehavior watch error");
                return;
            }
            Ok(watcher::Event::Init) => {
                self.behavior_relist = Some(Vec::new());
                return;
            }
            Ok(watcher::Event::InitApply(b)) => {
                if let Some(l) = self.behavior_relist.as_mut() {
                    l.push(b);
                }
                return;
            }
            Ok(watcher::Event::InitDone) => {
                let all = self.behavior_relist.take().unwrap_or_default();
                self.behaviors.reset(&all);
            }
            Ok(watcher::Event::Apply(b)) => self.behaviors.upsert(&b),
            Ok(watcher::Event::Delete(b)) => {
                if let Some(n) = &b.metadata.name {
                    self.behaviors.remove(n);
                }
            }
        }
        self.reapply_behaviors();
    }

    fn namespace_event(&mut self, ev: Result<watcher::Event<Namespace>, watcher::Error>) {
        match ev {
            Err(e) => tracing::debug!(error = %e, "namespace watch error"),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Ok(watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) => {
                if let Some(name) = ns.metadata.name.clone() {
                    self.behaviors.set_namespace(&name, ns.metadata.labels.unwrap_or_default());
                    if !self.behaviors.is_empty() {
                        self.reapply_behaviors();
                    }
                }
            }
            Ok(watcher::Event::Delete(ns)) => {
                if let Some(name) = &ns.metadata.name {
                    self.behaviors.remove_namespace(name);
                }
            }
        }
    }

    /// Recomputes every pod's behavior annotations; pods whose annotations changed are synced.
    fn reapply_behaviors(&mut self) {
        let mut changed = Vec::new();
        for (uid, e) in self.pods.iter_mut() {
            let before = e.worker.pod.metadata.annotations.clone();
            strip(&mut e.worker.pod, &e.injected);
            e.injected = self.behaviors.inject(&mut e.worker.pod);
            if e.worker.pod.metadata.annotations != before {
                changed.push(uid.clone());
            }
        }
        for uid in changed {
            self.sync_pod(&uid);
        }
    }

    fn node_seen(&mut self, mut node: Node) {
        let Some(&idx) = node.metadata.name.as_ref().and_then(|x| self.by_name.get(x)) else { return };
        // Kept for the whole node's life and never read: field-ownership records.
        node.metadata.managed_fields = None;
        let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()).filter(|c| !c.is_empty());
        let n = &mut self.nodes[idx];
        if n.uid.is_none() {
            n.uid = node.metadata.uid.clone();
        }
        n.server = Some(node);
        let new_pool = match (&n.ipam, cidr) {
            (None, Some(c)) => PodIpPool::new(&c),
            (Some(p), Some(c)) if p.cidr() != c => PodIpPool::new(&c),
            _ => None,
        };
        if let Some(mut pool) = new_pool {
            let mut waiting = Vec::new();
            for (uid, e) in &self.pods {
                if e.node != idx {
                    continue;
                }
                match &e.worker.ip {
                    Some(ip) if !e.ip_released && !host_network(&e.worker.pod) => {
                        pool.reserve(ip);
                    }
                    _ => waiting.push(uid.clone()),
                }
            }
            self.nodes[idx].ipam = Some(pool);
            for uid in waiting {
                self.sync_pod(&uid);
            }
        }
    }

    fn pod_event(&mut self, ev: watcher::Event<Pod>) {
        match ev {
            watcher::Event::Init => self.relist = Some(HashSet::new()),
            watcher::Event::InitApply(p) => {
                if let (Some(seen), Some(uid)) = (self.relist.as_mut(), p.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                self.pod_applied(p);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relist.take() {
                    let gone: Vec<String> = self.pods.keys().filter(|u| !seen.contains(*u)).cloned().collect();
                    for uid in gone {
                        self.pod_removed(&uid);
                    }
                }
            }
            watcher::Event::Apply(p) => self.pod_applied(p),
            watcher::Event::Delete(p) => {
                if let Some(uid) = p.metadata.uid {
                    self.pod_removed(&uid);
                }
            }
        }
    }

    fn pod_applied(&mut self, mut pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else { return };
        // The worker keeps the pod for its whole life; it never reads field-ownership records.
        pod.metadata.managed_fields = None;
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let Some(&idx) = self.by_name.get(&node) else { return };
        let injected = self.behaviors.inject(&mut pod);
        if let Some(e) = self.pods.get_mut(&uid) {
            e.worker.update(pod);
            e.injected = injected;
        } else {
            let now = Instant::now();
            let mut worker = PodWorker::new(pod, now);
            worker.adopt(&mut self.rt, now, Utc::now());
            let mut ip_released = worker.is_finished();
            if let (Some(ip), Some(pool)) = (&worker.ip, self.nodes[idx].ipam.as_mut())
                && !pool.reserve(ip)
            {
                ip_released = true;
            }
            self.pods.insert(
                uid.clone(),
                PodEntry { worker, node: idx, scheduled: None, writing: false, deleting: false, ip_released, injected },
            );
        }
        self.sync_pod(&uid);
    }

    fn pod_removed(&mut self, uid: &str) {
        if let Some(mut e) = self.pods.remove(uid) {
            e.worker.teardown(&mut self.rt);
            if !e.ip_released
                && let (Some(ip), Some(pool)) = (&e.worker.ip, self.nodes[e.node].ipam.as_mut())
            {
                pool.release(ip);
            }
        }
    }

    fn sync_pod(&mut self, uid: &str) {
        let now = Instant::now();
        let wall = Utc::now();
        let Some(e) = self.pods.get_mut(uid) else { return };
        let node = &mut self.nodes[e.node];
        let mut settings = self.settings_base.clone();
        settings.start_delay =
            annotation(&e.worker.pod, START_DELAY).and_then(parse_go_duration).unwrap_or(node.cfg.start_delay);
        e.worker.host_ip = Some(node.ip.clone());
        if e.worker.needs_ip()
            && let Some(pool) = node.ipam.as_mut()
        {
            e.worker.ip = pool.allocate();
            if e.worker.ip.is_none() {
                tracing::warn!(node = %node.cfg.name, "no pod IPs left in {}", pool.cidr());
            }
        }
        let network_ready = node.registered && node.ipam.is_some();
        let res = e.worker.sync(&mut self.rt, &settings, network_ready, now, wall);
        if e.worker.ip_releasable() && !e.ip_released {
            e.ip_released = true;
            if let (Some(ip), Some(pool)) = (&e.worker.ip, node.ipam.as_mut())
                && !host_network(&e.worker.pod)
            {
                pool.release(ip);
            }
        }
        let node_name = node.cfg.name.clone();
        if self.cfg.events && !res.events.is_empty() {
            let bodies: Vec<Value> = res.events.iter().map(|ev| pod_event(&e.worker.pod, &node_name, ev)).collect();
            let ns = e.worker.pod.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Event> = Api::namespaced(client_for(&self.cfg.node_clients, &self.client, &node_name), &ns);
            let sem = self.sem.clone();
            tokio::spawn(async move {
                for b in bodies {
                    let _permit = sem.acquire().await;
                    let ev: Result<Event, _> = serde_json::from_value(b);
                    if let Ok(ev) = ev
                        && let Err(err) = api.create(&PostParams::default(), &ev).await
                    {
                        tracing::debug!(error = %err, "event not recorded");
                    }
                }
            });
        }
        let ns = e.worker.pod.metadata.namespace.clone().unwrap_or_default();
        let name = e.worker.pod.metadata.name.clone().unwrap_or_default();
        if res.delete {
            if !e.deleting {
                e.deleting = true;
                let api: Api<Pod> = Api::namespaced(client_for(&self.cfg.node_clients, &self.client, &node_name), &ns);
                let tx = self.tx.clone();
                let sem = self.sem.clone();
                let uid = uid.to_string();
                tokio::spawn(async move {
                    let _permit = sem.acquire().await;
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                        ..DeleteParams::default()
                    };
                    let ok = match api.delete(&name, &dp).await {
                        Ok(_) => true,
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => true,
                        Err(err) => {
                            tracing::warn!(pod = %name, error = %err, "failed to delete pod");
                            false
                        }
                    };
                    let _ = tx.send(Msg::PodDeleted { uid, ok });
                });
            }
            return;
        }
        if let Some(at) = res.wake
            && e.scheduled.is_none_or(|s| at < s)
        {
            e.scheduled = Some(at);
            self.seq += 1;
            self.timers.push(Reverse((at, self.seq, Timer::Pod(uid.to_string()))));
        }
        // No status writes once the pod is being deleted: the pool's next write is the delete.
        // (Also works around rkube's apiserver removing a gracefully deleting pod on any update.)
        if e.writing || e.deleting || e.worker.pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        let Some(status) = e.worker.desired_status(&self.rt, wall) else { return };
        if e.worker.last_written.as_ref() == Some(&WrittenStatus::of(&status)) {
            return;
        }
        e.writing = true;
        let api: Api<Pod> = Api::namespaced(client_for(&self.cfg.node_clients, &self.client, &node_name), &ns);
        let tx = self.tx.clone();
        let sem = self.sem.clone();
        let uid = uid.to_string();
        tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let body = json!({"metadata": {"uid": uid}, "status": status});
            let ok = match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::debug!(pod = %name, error = %err, "status update failed");
                    false
                }
            };
            let _ = tx.send(Msg::PodWritten { uid, sent: status, ok });
        });
    }

    fn update_status(&mut self, idx: usize) {
        if self.nodes[idx].removed {
            return;
        }
        let freq = self.cfg.node_status_update_frequency;
        self.schedule(Instant::now() + freq, Timer::Status(idx));
        if self.paused(idx) {
            return;
        }
        let n = &mut self.nodes[idx];
        if !n.registered || n.status_in_flight {
            return;
        }
        let wall = Utc::now();
        let status = node_status(&n.cfg, &n.ip, &self.rt.version(), n.server.as_ref(), wall);
        let unchanged = n.server.as_ref().is_some_and(|s| server_fingerprint(s) == status_fingerprint(&status));
        let recent = n.last_report.is_some_and(|t| t.elapsed() < self.cfg.node_status_report_frequency);
        if unchanged && recent {
            return;
        }
        n.status_in_flight = true;
        let api: Api<Node> = Api::all(client_for(&self.cfg.node_clients, &self.client, &n.cfg.name));
        let name = n.cfg.name.clone();
        let tx = self.tx.clone();
        let sem = self.sem.clone();
        tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let body = json!({"status": status});
            let ok = match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "error updating node status");
                    false
                }
            };
            let _ = tx.send(Msg::StatusWritten { idx, ok });
        });
    }

    fn renew_lease(&mut self, idx: usize) {
        if self.nodes[idx].removed {
            return;
        }
        let secs = self.cfg.node_lease_duration_seconds.max(1);
        let interval = Duration::from_millis(secs as u64 * 250);
        self.schedule(Instant::now() + interval, Timer::Lease(idx));
        if self.paused(idx) {
            return;
        }
        let n = &self.nodes[idx];
        if !n.registered {
            return;
        }
        let name = n.cfg.name.clone();
        let uid = n.uid.clone();
        let api: Api<Lease> = Api::namespaced(self.node_client(idx), "kube-node-lease");
        let sem = self.sem.clone();
        tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let now = Utc::now();
            let patch =
                json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": secs, "renewTime": micro(now)}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    let body = lease_object(&name, uid.as_deref(), secs, now);
                    let lease: Result<Lease, _> = serde_json::from_value(body);
                    if let Ok(lease) = lease
                        && let Err(e) = api.create(&PostParams::default(), &lease).await
                    {
                        tracing::warn!(node = %name, error = %e, "failed to create lease");
                    }
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "failed to renew lease"),
            }
        });
    }
}

/// Creates the Node, or adopts an existing one (refreshing our labels). Returns its UID.
async fn register(api: &Api<Node>, name: &str, body: &Value, labels: &Value) -> Result<Option<String>, kube::Error> {
    let node: Node = serde_json::from_value(body.clone()).map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(n) => Ok(n.metadata.uid),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": labels}});
            let n = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            Ok(n.metadata.uid)
        }
        Err(e) => Err(e),
    }
}
