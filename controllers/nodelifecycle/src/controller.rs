//! The running controller: informers for Nodes, Leases (kube-node-lease) and Pods, and one loop that
//! runs the health monitor every `node_monitor_period` and, on every change and deadline, the
//! NoSchedule / NoExecute tainting, the marking of pods NotReady, the taint manager and the pod GC.
//! All decisions come from the informer caches; writes carry a resourceVersion precondition, and a
//! conflict is simply re-evaluated on a later pass.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::health::{NodeHealth, assess, ready_condition};
use crate::taints::{
    self, EvictionDecision, NO_EXECUTE, TAINT_NOT_READY, TAINT_OUT_OF_SERVICE, TAINT_UNREACHABLE, template,
};
use crate::zones::{TaintQueue, ZoneState, compute_zone_state, excluded_from_disruption, zone_key};
use crate::{Config, Error};
use rkube_controller_common::watch::{KeepSpec, slim_pod};

const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's NodeEvictionPeriod: how often the tainting queues are looked at.
const TAINTING_PERIOD: Duration = Duration::from_millis(100);
/// Shortest time between two passes of the loop.
const COALESCE: Duration = Duration::from_millis(100);
/// Longest sleep of the loop (pod GC deadlines are checked at least this often).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long a pod we deleted is not acted upon again while the cache catches up.
const DELETE_MEMORY: Duration = Duration::from_secs(30);

type PodKey = (String, String);

struct Scheduled {
    created_at: Timestamp,
    fire_at: Timestamp,
}

pub(crate) struct Controller {
    client: Client,
    cfg: Config,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    node_recorder: Recorder,
    taint_recorder: Recorder,
    health: HashMap<String, NodeHealth>,
    known: HashMap<String, Option<String>>,
    zone_states: HashMap<String, ZoneState>,
    tainters: HashMap<String, TaintQueue>,
    nodes_to_retry: HashSet<String>,
    pods_seen: HashSet<String>,
    evictions: HashMap<PodKey, Scheduled>,
    recently_deleted: HashMap<String, Instant>,
    force_deleted: HashMap<String, Instant>,
    missing_nodes: HashMap<String, Instant>,
}

/// A reflector of `api`'s objects, each passed through `trim` before it is cached.
fn spawn_informer<K>(api: Api<K>, notify: Arc<Notify>, trim: fn(&mut K)) -> Store<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let watch = watcher::watcher(api, watcher::Config::default()).modify(trim);
    let stream = reflector::reflector(writer, watch).default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::debug!(error = %e, "nodelifecycle informer"),
            }
        }
    });
    reader
}

pub(crate) async fn run(client: Client, cfg: Config) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    // managedFields are never read here; of a pod's spec only nodeName and tolerations are.
    let nodes = spawn_informer(Api::<Node>::all(client.clone()), notify.clone(), |n| n.metadata.managed_fields = None);
    let leases = spawn_informer(Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE), notify.clone(), |l| {
        l.metadata.managed_fields = None
    });
    let pods = spawn_informer(Api::<Pod>::all(client.clone()), notify.clone(), |p| {
        slim_pod(p, KeepSpec { tolerations: true, ..Default::default() })
    });
    for ready in [nodes.wait_until_ready().await, leases.wait_until_ready().await, pods.wait_until_ready().await] {
        ready.map_err(|e| Error::Informer(e.to_string()))?;
    }
    let reporter = |name: &str| Reporter { controller: name.to_string(), instance: None };
    let mut c = Controller {
        node_recorder: Recorder::new(client.clone(), reporter("node-controller")),
        taint_recorder: Recorder::new(client.clone(), reporter("taint-eviction-controller")),
        client,
        cfg,
        nodes,
        leases,
        pods,
        health: HashMap::new(),
        known: HashMap::new(),
        zone_states: HashMap::new(),
        tainters: HashMap::new(),
        nodes_to_retry: HashSet::new(),
        pods_seen: HashSet::new(),
        evictions: HashMap::new(),
        recently_deleted: HashMap::new(),
        force_deleted: HashMap::new(),
        missing_nodes: HashMap::new(),
    };
    tracing::info!(controller = "node-lifecycle-controller", "Starting controller");
    let mut next_monitor = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_monitor {
            c.monitor_node_health().await;
            next_monitor = now + c.cfg.node_monitor_period;
        }
        c.no_execute_tainting_pass().await;
        c.no_schedule_tainting_pass().await;
        c.process_new_pod_assignments().await;
        let next_eviction = c.taint_manager_pass().await;
        c.pod_gc_pass().await;

        let now = Instant::now();
        let mut wake = next_monitor.min(now + MAX_SLEEP);
        if let Some(at) = next_eviction {
            wake = wake.min(at);
        }
        if c.tainters.values().any(|q| !q.is_empty()) {
            wake = wake.min(now + TAINTING_PERIOD);
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        // Passes walk every node and pod: a burst of events (a rollout's pod writes)
        // is coalesced into one pass per COALESCE instead of one per event.
        tokio::time::sleep_until((now + COALESCE).into()).await;
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..Default::default()
    }
}

fn pod_ref(ns: &str, name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.into()),
        namespace: Some(ns.into()),
        uid,
        ..Default::default()
    }
}

fn emit(recorder: &Recorder, reference: ObjectReference, type_: EventType, reason: &str, note: String) {
    let recorder = recorder.clone();
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, "publishing event");
        }
    });
}

fn remembered(map: &mut HashMap<String, Instant>, pod: &Pod) -> bool {
    let now = Instant::now();
    map.retain(|_, at| now.duration_since(*at) < DELETE_MEMORY);
    pod.uid().is_some_and(|u| map.contains_key(&u))
}

fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

fn pod_key(pod: &Pod) -> PodKey {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded") | Some("Failed"))
}

fn ts_after(ts: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| ts.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// The instant corresponding to wall-clock `ts` (now if it is in the past).
fn instant_at(ts: Timestamp) -> Instant {
    let now = Timestamp::now();
    let ahead = ts.duration_since(now);
    match Duration::try_from(ahead) {
        Ok(d) => Instant::now() + d.min(Duration::from_secs(3600)),
        Err(_) => Instant::now(),
    }
}

/// The pod's conditions with `cond` set (upstream's UpdatePodCondition: the transition time changes
/// only with the status); None when nothing changes.
fn with_pod_condition(pod: &Pod, mut cond: PodCondition, now: Timestamp) -> Option<Vec<PodCondition>> {
    let mut conds = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    match conds.iter_mut().find(|c| c.type_ == cond.type_) {
        None => {
            cond.last_transition_time = Some(Time(now));
            conds.push(cond);
        }
        Some(c) => {
            if c.status == cond.status && c.reason == cond.reason && c.message == cond.message {
                return None;
            }
            cond.last_transition_time =
                if c.status != cond.status { Some(Time(now)) } else { c.last_transition_time.clone() };
            cond.last_probe_time = c.last_probe_time.clone();
            *c = cond;
        }
    }
    Some(conds)
}

impl Controller {
    fn lease_for(&self, node: &str) -> Option<Arc<Lease>> {
        self.leases.get(&ObjectRef::new(node).within(LEASE_NAMESPACE))
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods.state().into_iter().filter(|p| pod_node(p) == Some(node)).collect()
    }

    fn ensure_zone(&mut self, zone: &str) {
        if !self.zone_states.contains_key(zone) {
            self.zone_states.insert(zone.to_string(), ZoneState::Initial);
            self.tainters.insert(zone.to_string(), TaintQueue::new(self.cfg.node_eviction_rate, Instant::now()));
        }
    }

    // ---- health monitor ---------------------------------------------------------------------------

    async fn monitor_node_health(&mut self) {
        let nodes = self.nodes.state();
        let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        for node in &nodes {
            let name = node.name_any();
            let zone = zone_key(node);
            if !self.known.contains_key(&name) {
                tracing::info!(node = %name, "Controller observed a new Node");
                emit(
                    &self.node_recorder,
                    node_ref(node),
                    EventType::Normal,
                    "RegisteredNode",
                    format!("Node {name} event: Registered Node {name} in Controller"),
                );
                self.known.insert(name.clone(), node.metadata.uid.clone());
                self.ensure_zone(&zone);
                self.mark_node_as_reachable(node).await;
            } else {
                self.ensure_zone(&zone);
            }
        }
        let gone: Vec<(String, Option<String>)> =
            self.known.iter().filter(|(n, _)| !names.contains(*n)).map(|(n, u)| (n.clone(), u.clone())).collect();
        for (name, uid) in gone {
            tracing::info!(node = %name, "Controller observed a Node deletion");
            let r = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(name.clone()),
                uid,
                ..Default::default()
            };
            emit(
                &self.node_recorder,
                r,
                EventType::Normal,
                "RemovingNode",
                format!("Node {name} event: Removing Node {name} from Controller"),
            );
            self.known.remove(&name);
            self.health.remove(&name);
            self.nodes_to_retry.remove(&name);
        }

        let mut zone_ready: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for node in &nodes {
            let name = node.name_any();
            let Some((node_now, observed, current)) = self.update_node_health(node).await else {
                continue;
            };
            if !excluded_from_disruption(&node_now) {
                zone_ready.entry(zone_key(&node_now)).or_default().push(current.as_ref().map(|c| c.status.clone()));
            }
            if let Some(cur) = current {
                self.process_taint_based_eviction(&node_now, &observed.status).await;
                let needs_retry = self.nodes_to_retry.contains(&name);
                let went_not_ready = cur.status != "True" && observed.status == "True";
                if went_not_ready {
                    emit(
                        &self.node_recorder,
                        node_ref(&node_now),
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                }
                if went_not_ready || (needs_retry && observed.status != "True") {
                    let pods = self.pods_on(&name);
                    if let Err(e) = self.mark_pods_not_ready(&pods, &name).await {
                        tracing::warn!(node = %name, error = %e, "unable to mark all pods NotReady; will retry");
                        self.nodes_to_retry.insert(name);
                        continue;
                    }
                }
            }
            self.nodes_to_retry.remove(&name);
        }
        self.handle_disruption(zone_ready, &nodes).await;
    }

    /// Assess one node and write the Unknown conditions if needed. Returns the node as it now is, the
    /// observed Ready condition and the current one.
    async fn update_node_health(
        &mut self,
        node: &Node,
    ) -> Option<(Node, k8s_openapi::api::core::v1::NodeCondition, Option<k8s_openapi::api::core::v1::NodeCondition>)>
    {
        let name = node.name_any();
        let api: Api<Node> = Api::all(self.client.clone());
        let mut node = node.clone();
        for _attempt in 0..3 {
            let lease = self.lease_for(&name);
            let a = assess(
                &node,
                lease.as_deref(),
                self.health.get(&name),
                Timestamp::now(),
                self.cfg.node_monitor_grace_period,
                self.cfg.node_startup_grace_period,
            );
            let Some(status) = a.new_status else {
                self.health.insert(name.clone(), a.health);
                return Some((node, a.observed_ready, a.current_ready));
            };
            let patch = json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "status": {"conditions": status.conditions},
            });
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(updated) => {
                    tracing::info!(node = %name, "node stopped reporting; conditions set to Unknown");
                    self.health.insert(name.clone(), a.health);
                    return Some((updated, a.observed_ready, a.current_ready));
                }
                Err(e) if is_conflict(&e) => match api.get_opt(&name).await {
                    Ok(Some(fresh)) => node = fresh,
                    _ => return None,
                },
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "updating node health");
                    return None;
                }
            }
        }
        None
    }

    async fn process_taint_based_eviction(&mut self, node: &Node, observed: &str) {
        let taints = taints::node_taints(node);
        let unreachable = template(TAINT_UNREACHABLE, NO_EXECUTE);
        let not_ready = template(TAINT_NOT_READY, NO_EXECUTE);
        match observed {
            "False" => {
                if taints::has_taint(taints, &unreachable) {
                    self.swap_taints(&node.name_any(), &[not_ready], &[unreachable]).await;
                } else {
                    self.mark_node_for_tainting(node, "False");
                }
            }
            "Unknown" => {
                if taints::has_taint(taints, &not_ready) {
                    self.swap_taints(&node.name_any(), &[unreachable], &[not_ready]).await;
                } else {
                    self.mark_node_for_tainting(node, "Unknown");
                }
            }
            "True" => {
                self.mark_node_as_reachable(node).await;
            }
            _ => {}
        }
    }

    fn mark_node_for_tainting(&mut self, node: &Node, status: &str) {
        let zone = zone_key(node);
        self.ensure_zone(&zone);
        let name = node.name_any();
        let key = if status == "False" { TAINT_NOT_READY } else { TAINT_UNREACHABLE };
        if let Some(q) = self.tainters.get_mut(&zone) {
            if !taints::has_taint(taints::node_taints(node), &template(key, NO_EXECUTE)) {
                q.remove(&name);
            }
            q.add(&name, Instant::now());
        }
    }

    /// Remove both NoExecute node-controller taints and forget any pending tainting.
    async fn mark_node_as_reachable(&mut self, node: &Node) -> bool {
        let name = node.name_any();
        let del = [template(TAINT_UNREACHABLE, NO_EXECUTE), template(TAINT_NOT_READY, NO_EXECUTE)];
        let tainted = del.iter().any(|t| taints::has_taint(taints::node_taints(node), t));
        let ok = !tainted || self.swap_taints(&name, &[], &del).await;
        if let Some(q) = self.tainters.get_mut(&zone_key(node)) {
            q.remove(&name);
        }
        ok
    }

    /// Add and remove taints on the node as it is in the API (re-read on conflict). True on success
    /// (including when nothing had to change).
    async fn swap_taints(&self, name: &str, add: &[Taint], del: &[Taint]) -> bool {
        let api: Api<Node> = Api::all(self.client.clone());
        for _attempt in 0..5 {
            let node = match api.get_opt(name).await {
                Ok(Some(n)) => n,
                Ok(None) => return true,
                Err(e) => {
                    tracing::warn!(node = name, error = %e, "reading node to update taints");
                    return false;
                }
            };
            let Some(new) = taints::apply_taints(taints::node_taints(&node), add, del, Timestamp::now()) else {
                return true;
            };
            let patch = json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "spec": {"taints": new},
            });
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    tracing::info!(node = name, add = ?add.iter().map(|t| &t.key).collect::<Vec<_>>(),
                        remove = ?del.iter().map(|t| &t.key).collect::<Vec<_>>(), "updated node taints");
                    return true;
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => {
                    tracing::warn!(node = name, error = %e, "updating node taints");
                    return false;
                }
            }
        }
        false
    }

    async fn handle_disruption(&mut self, zone_ready: HashMap<String, Vec<Option<String>>>, nodes: &[Arc<Node>]) {
        let threshold = self.cfg.unhealthy_zone_threshold;
        let mut new_states: HashMap<String, (usize, ZoneState)> = HashMap::new();
        let mut all_fully = true;
        for (zone, statuses) in &zone_ready {
            let s: Vec<Option<&str>> = statuses.iter().map(|s| s.as_deref()).collect();
            let (_, state) = compute_zone_state(&s, threshold);
            if state != ZoneState::FullDisruption {
                all_fully = false;
            }
            new_states.insert(zone.clone(), (statuses.len(), state));
            self.ensure_zone(zone);
        }
        self.zone_states.retain(|z, _| zone_ready.contains_key(z));
        let all_were_fully = self.zone_states.values().all(|s| *s == ZoneState::FullDisruption);
        if all_fully && all_were_fully {
            return;
        }
        let now = Instant::now();
        if all_fully {
            tracing::info!("Controller detected that all Nodes are not-Ready. Entering master disruption mode");
            for node in nodes {
                self.mark_node_as_reachable(node).await;
            }
            for q in self.tainters.values_mut() {
                q.swap_limiter(0.0, now);
            }
            for s in self.zone_states.values_mut() {
                *s = ZoneState::FullDisruption;
            }
            return;
        }
        if all_were_fully {
            tracing::info!("Controller detected that some Nodes are Ready. Exiting master disruption mode");
            let ts = Timestamp::now();
            for h in self.health.values_mut() {
                h.probe_timestamp = ts;
                h.ready_transition_timestamp = ts;
            }
        }
        let zones: Vec<String> = self.zone_states.keys().cloned().collect();
        for zone in zones {
            let Some((size, state)) = new_states.get(&zone).copied() else { continue };
            if !all_were_fully && self.zone_states.get(&zone) == Some(&state) {
                continue;
            }
            let qps = match state {
                ZoneState::Normal | ZoneState::FullDisruption | ZoneState::Initial => self.cfg.node_eviction_rate,
                ZoneState::PartialDisruption => {
                    if size > self.cfg.large_cluster_size_threshold {
                        self.cfg.secondary_node_eviction_rate
                    } else {
                        0.0
                    }
                }
            };
            tracing::info!(zone = %zone.replace('\0', ""), ?state, "zone is now in new state");
            if let Some(q) = self.tainters.get_mut(&zone) {
                q.swap_limiter(qps, now);
            }
            self.zone_states.insert(zone, state);
        }
    }

    async fn no_execute_tainting_pass(&mut self) {
        let zones: Vec<String> = self.tainters.keys().cloned().collect();
        for zone in zones {
            loop {
                let now = Instant::now();
                let Some(name) = self.tainters.get_mut(&zone).and_then(|q| q.pop_ready(now)) else { break };
                let Some(node) = self.nodes.get(&ObjectRef::new(&name)) else {
                    continue;
                };
                let status = ready_condition(node.status.as_ref()).map(|c| c.status.clone());
                let (add, opposite) = match status.as_deref() {
                    None => {
                        if let Some(q) = self.tainters.get_mut(&zone) {
                            q.requeue(name, now + Duration::from_millis(50));
                        }
                        continue;
                    }
                    Some("False") => (TAINT_NOT_READY, TAINT_UNREACHABLE),
                    Some("Unknown") => (TAINT_UNREACHABLE, TAINT_NOT_READY),
                    Some(_) => continue,
                };
                let ok = self.swap_taints(&name, &[template(add, NO_EXECUTE)], &[template(opposite, NO_EXECUTE)]).await;
                if !ok && let Some(q) = self.tainters.get_mut(&zone) {
                    q.requeue(name, now + TAINTING_PERIOD);
                }
            }
        }
    }

    async fn no_schedule_tainting_pass(&mut self) {
        for node in self.nodes.state() {
            let (add, del) = taints::no_schedule_diff(&node);
            if add.is_empty() && del.is_empty() {
                continue;
            }
            self.swap_taints(&node.name_any(), &add, &del).await;
        }
    }

    // ---- pods ---------------------------------------------------------------------------------------

    /// Upstream's MarkPodsNotReady: Ready=False on each pod of the node that is Ready.
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], node: &str) -> Result<(), kube::Error> {
        let mut first_err = None;
        for pod in pods {
            if pod_node(pod) != Some(node) {
                continue;
            }
            let Some(ready) = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready").cloned())
            else {
                continue;
            };
            let cond = PodCondition { status: "False".into(), ..ready };
            let Some(conds) = with_pod_condition(pod, cond, Timestamp::now()) else { continue };
            let (ns, name) = pod_key(pod);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let patch = json!({
                "metadata": {"resourceVersion": pod.resource_version()},
                "status": {"conditions": conds},
            });
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => emit(
                    &self.node_recorder,
                    pod_ref(&ns, &name, pod.uid()),
                    EventType::Warning,
                    "NodeNotReady",
                    "Node is not ready".into(),
                ),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::info!(pod = %format!("{ns}/{name}"), error = %e, "failed to update pod status");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Pods newly bound to a node that is not Ready are marked NotReady too (upstream's processPod).
    async fn process_new_pod_assignments(&mut self) {
        let pods = self.pods.state();
        let mut live = HashSet::with_capacity(pods.len());
        for pod in &pods {
            let (Some(uid), Some(node)) = (pod.uid(), pod_node(pod)) else { continue };
            let key = format!("{uid}/{node}");
            live.insert(key.clone());
            if self.pods_seen.contains(&key) {
                continue;
            }
            let not_ready = self.health.get(node).and_then(|h| h.ready_status()).is_some_and(|s| s != "True");
            if not_ready
                && self.nodes.get(&ObjectRef::new(node)).is_some()
                && self.mark_pods_not_ready(std::slice::from_ref(pod), node).await.is_err()
            {
                continue; // retried on a later pass
            }
            self.pods_seen.insert(key);
        }
        self.pods_seen.retain(|k| live.contains(k));
    }

    /// Whether the taint manager deleted this pod moments ago (the cache may not show it yet).
    fn recently_deleted(&mut self, pod: &Pod) -> bool {
        remembered(&mut self.recently_deleted, pod)
    }

    /// Whether pod GC force-deleted this pod moments ago.
    fn recently_force_deleted(&mut self, pod: &Pod) -> bool {
        remembered(&mut self.force_deleted, pod)
    }

    /// The taint manager. Returns when the next scheduled eviction is due.
    async fn taint_manager_pass(&mut self) -> Option<Instant> {
        let now = Timestamp::now();
        let mut tainted: HashMap<String, Vec<Taint>> = HashMap::new();
        for node in self.nodes.state() {
            let t = taints::no_execute_taints(&node);
            if !t.is_empty() {
                tainted.insert(node.name_any(), t);
            }
        }
        let pods = self.pods.state();
        let mut present: HashSet<PodKey> = HashSet::with_capacity(pods.len());
        let mut to_fire: Vec<Arc<Pod>> = Vec::new();
        for pod in &pods {
            let key = pod_key(pod);
            present.insert(key.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                // Already going; nothing to schedule.
                self.evictions.remove(&key);
                continue;
            }
            let Some(node_taints) = pod_node(pod).and_then(|n| tainted.get(n)) else {
                self.cancel_eviction(&key, pod.uid());
                continue;
            };
            let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
            match taints::eviction_decision(node_taints, tolerations) {
                EvictionDecision::Keep => self.cancel_eviction(&key, pod.uid()),
                EvictionDecision::EvictNow => {
                    self.evictions.remove(&key);
                    to_fire.push(pod.clone());
                }
                EvictionDecision::EvictAfter(d) => {
                    let created_at = match self.evictions.get(&key) {
                        Some(s) => s.created_at,
                        None => node_taints
                            .iter()
                            .filter_map(|t| t.time_added.as_ref().map(|t| t.0))
                            .min()
                            .map_or(now, |t| t.min(now)),
                    };
                    let fire_at = ts_after(created_at, d);
                    if fire_at <= now {
                        self.evictions.remove(&key);
                        to_fire.push(pod.clone());
                    } else {
                        self.evictions.insert(key, Scheduled { created_at, fire_at });
                    }
                }
            }
        }
        let vanished: Vec<PodKey> = self.evictions.keys().filter(|k| !present.contains(*k)).cloned().collect();
        for key in vanished {
            self.cancel_eviction(&key, None);
        }
        for pod in to_fire {
            if self.recently_deleted(&pod) {
                continue;
            }
            self.evict(&pod).await;
        }
        self.evictions.values().map(|s| s.fire_at).min().map(instant_at)
    }

    fn cancel_eviction(&mut self, key: &PodKey, uid: Option<String>) {
        if self.evictions.remove(key).is_some() {
            let (ns, name) = key;
            emit(
                &self.taint_recorder,
                pod_ref(ns, name, uid),
                EventType::Normal,
                "TaintManagerEviction",
                format!("Cancelling deletion of Pod {ns}/{name}"),
            );
        }
    }

    /// Delete a pod for a NoExecute taint: event, DisruptionTarget condition, then a graceful delete.
    async fn evict(&mut self, pod: &Pod) {
        let (ns, name) = pod_key(pod);
        tracing::info!(controller = "taint-eviction-controller", pod = %format!("{ns}/{name}"), "Deleting pod");
        emit(
            &self.taint_recorder,
            pod_ref(&ns, &name, pod.uid()),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let cond = PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
            ..Default::default()
        };
        if let Some(conds) = with_pod_condition(pod, cond, Timestamp::now()) {
            let patch = json!({"status": {"conditions": conds}});
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await
                && !is_not_found(&e)
            {
                tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "adding DisruptionTarget condition");
            }
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {
                if let Some(uid) = pod.uid() {
                    self.recently_deleted.insert(uid, Instant::now());
                }
            }
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "evicting pod"),
        }
    }

    // ---- pod GC -------------------------------------------------------------------------------------

    async fn pod_gc_pass(&mut self) {
        let now = Instant::now();
        let now_ts = Timestamp::now();
        let nodes: HashMap<String, Arc<Node>> = self.nodes.state().into_iter().map(|n| (n.name_any(), n)).collect();
        let pods = self.pods.state();
        let mut verified_missing: HashMap<String, bool> = HashMap::new();
        let mut still_missing: HashSet<String> = HashSet::new();
        for pod in &pods {
            let Some(node_name) = pod_node(pod) else { continue };
            match nodes.get(node_name) {
                None => {
                    still_missing.insert(node_name.to_string());
                    let since = *self.missing_nodes.entry(node_name.to_string()).or_insert(now);
                    if now.duration_since(since) < self.cfg.orphaned_pod_quarantine || self.recently_force_deleted(pod)
                    {
                        continue;
                    }
                    let missing = match verified_missing.get(node_name) {
                        Some(m) => *m,
                        None => {
                            let m = matches!(Api::<Node>::all(self.client.clone()).get_opt(node_name).await, Ok(None));
                            verified_missing.insert(node_name.to_string(), m);
                            m
                        }
                    };
                    if missing {
                        let cond = PodCondition {
                            type_: "DisruptionTarget".into(),
                            status: "True".into(),
                            reason: Some("DeletionByPodGC".into()),
                            message: Some("PodGC: node no longer exists".into()),
                            ..Default::default()
                        };
                        tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
                            node = node_name, "Found orphaned Pod assigned to the Node, deleting");
                        self.force_delete(pod, Some(cond)).await;
                    }
                }
                Some(node) => {
                    let Some(deleting_at) = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0) else { continue };
                    let ready = ready_condition(node.status.as_ref()).map(|c| c.status.as_str());
                    if ready == Some("True") || self.recently_force_deleted(pod) {
                        continue;
                    }
                    let nt = taints::node_taints(node);
                    let out_of_service = nt.iter().any(|t| t.key == TAINT_OUT_OF_SERVICE && t.effect == NO_EXECUTE);
                    let down = taints::has_taint(nt, &template(TAINT_UNREACHABLE, NO_EXECUTE))
                        || taints::has_taint(nt, &template(TAINT_NOT_READY, NO_EXECUTE));
                    if out_of_service || (down && deleting_at <= now_ts) {
                        tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
                            node = node_name, "Garbage collecting terminating Pod on a Node that is down");
                        self.force_delete(pod, None).await;
                    }
                }
            }
        }
        self.missing_nodes.retain(|n, _| still_missing.contains(n));
    }

    /// Upstream's markFailedAndDeletePodWithCondition: phase Failed (unless terminal), the condition,
    /// then a delete with grace period 0.
    async fn force_delete(&mut self, pod: &Pod, cond: Option<PodCondition>) {
        let (ns, name) = pod_key(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let mut status = serde_json::Map::new();
        if !is_terminal(pod) {
            status.insert("phase".into(), json!("Failed"));
        }
        if let Some(c) = cond
            && let Some(conds) = with_pod_condition(pod, c, Timestamp::now())
        {
            status.insert("conditions".into(), json!(conds));
        }
        if !status.is_empty() {
            let patch = json!({ "status": status });
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                if is_not_found(&e) {
                    return;
                }
                tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "marking pod Failed");
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {
                if let Some(uid) = pod.uid() {
                    self.force_deleted.insert(uid, Instant::now());
                }
            }
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "force-deleting pod"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_condition_update_sets_transition_only_on_status_change() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(1_700_000_100).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut pod = Pod {
            status: Some(k8s_openapi::api::core::v1::PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(t0)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let not_ready = PodCondition { type_: "Ready".into(), status: "False".into(), ..Default::default() };
        let conds = with_pod_condition(&pod, not_ready.clone(), t1).expect("changed");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].status, "False");
        assert_eq!(conds[0].last_transition_time, Some(Time(t1)));
        // Applying the same again is a no-op.
        if let Some(s) = pod.status.as_mut() {
            s.conditions = Some(conds);
        }
        assert!(with_pod_condition(&pod, not_ready, t1).is_none());
        // A new condition type is appended.
        let dt = PodCondition { type_: "DisruptionTarget".into(), status: "True".into(), ..Default::default() };
        assert_eq!(with_pod_condition(&pod, dt, t1).map(|c| c.len()), Some(2));
    }
}
