//! The running scheduler: informers feeding the [`Cache`] and [`Queue`], the single
//! scheduling loop (one decision at a time, as upstream), concurrent bindings, and the
//! Unschedulable status/event path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WEvent};
use kube::{Client, Resource};
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tracing::{Instrument, debug, warn};

use crate::algorithm::{self, FitError};
use crate::cache::{Cache, PodChange, PodInfo, pod_key};
use crate::queue::Queue;
use crate::{Config, Error};

const COMPONENT: &str = "default-scheduler";

#[derive(Default)]
struct Shared {
    cache: Cache,
    queue: Queue,
    /// Pending pods this scheduler is responsible for, by key.
    pending: HashMap<String, Arc<PodInfo>>,
    next_start: usize,
    pods_synced: bool,
    nodes_synced: bool,
}

struct Scheduler {
    client: Client,
    config: Config,
    state: Mutex<Shared>,
    wake: Notify,
    failed_recorder: Recorder,
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn responsible(&self, pod: &Pod) -> bool {
        let Some(spec) = &pod.spec else { return false };
        spec.scheduler_name.as_deref().unwrap_or("default-scheduler") == self.config.scheduler_name
            && pod.metadata.deletion_timestamp.is_none()
            && spec.scheduling_gates.as_ref().is_none_or(|g| g.is_empty())
    }

    // ----- informer handlers (called with the lock held) -----

    fn on_pod(&self, st: &mut Shared, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            self.on_pod_deleted(st, &key, now);
            return;
        }
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
        if !node_name.is_empty() {
            st.pending.remove(&key);
            st.queue.remove(&key);
            let change = st.cache.upsert_bound_pod(Arc::new(PodInfo::new(pod)));
            if change == PodChange::Changed {
                st.queue.move_all(now);
                self.wake.notify_one();
            }
            return;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(known) = st.cache.pods.get(&key) {
            if known.uid == uid && st.cache.is_assumed(&key) {
                return; // our binding is in flight
            }
            // A different pod under the same name, or a stale bound entry.
            st.cache.remove_pod(&key);
        }
        if !self.responsible(&pod) {
            st.pending.remove(&key);
            st.queue.remove(&key);
            return;
        }
        let info = PodInfo::new(pod);
        let (changed, recreated) = match st.pending.get(&key) {
            None => (true, false),
            Some(old) if old.uid != info.uid => (true, true),
            Some(old) => (
                old.pod.spec != info.pod.spec
                    || old.labels != info.labels
                    || old.pod.metadata.annotations != info.pod.metadata.annotations,
                false,
            ),
        };
        let priority = info.priority;
        st.pending.insert(key.clone(), Arc::new(info));
        if recreated {
            st.queue.remove(&key);
        }
        if changed {
            st.queue.add_or_update(&key, priority, now);
            self.wake.notify_one();
        }
    }

    fn on_pod_deleted(&self, st: &mut Shared, key: &str, now: Instant) {
        st.pending.remove(key);
        st.queue.remove(key);
        let was_assumed = st.cache.is_assumed(key);
        if st.cache.remove_pod(key).is_some() && !was_assumed {
            st.queue.move_all(now);
            self.wake.notify_one();
        }
    }

    fn on_node(&self, st: &mut Shared, node: Node, now: Instant) {
        if st.cache.upsert_node(node) {
            st.queue.move_all(now);
            self.wake.notify_one();
        }
    }

    // ----- informers -----

    async fn watch_pods(self: Arc<Self>) -> Error {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            let now = Instant::now();
            match ev {
                Ok(WEvent::Apply(p)) | Ok(WEvent::InitApply(p)) => {
                    seen.insert(pod_key(&p));
                    let mut st = self.lock();
                    self.on_pod(&mut st, p, now);
                }
                Ok(WEvent::Delete(p)) => {
                    let mut st = self.lock();
                    self.on_pod_deleted(&mut st, &pod_key(&p), now);
                }
                Ok(WEvent::Init) => seen.clear(),
                Ok(WEvent::InitDone) => {
                    let mut st = self.lock();
                    let gone: Vec<String> = st
                        .pending
                        .keys()
                        .chain(st.cache.pods.keys())
                        .filter(|k| !seen.contains(*k) && !st.cache.is_assumed(k))
                        .cloned()
                        .collect();
                    for k in gone {
                        self.on_pod_deleted(&mut st, &k, now);
                    }
                    st.pods_synced = true;
                    seen.clear();
                    self.wake.notify_one();
                }
                Err(e) => warn!(error = %e, "pod watch error"),
            }
        }
        Error::InformerStopped("pods")
    }

    async fn watch_nodes(self: Arc<Self>) -> Error {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            let now = Instant::now();
            match ev {
                Ok(WEvent::Apply(n)) | Ok(WEvent::InitApply(n)) => {
                    seen.insert(n.metadata.name.clone().unwrap_or_default());
                    let mut st = self.lock();
                    self.on_node(&mut st, n, now);
                }
                Ok(WEvent::Delete(n)) => {
                    let mut st = self.lock();
                    st.cache.remove_node(n.metadata.name.as_deref().unwrap_or(""));
                }
                Ok(WEvent::Init) => seen.clear(),
                Ok(WEvent::InitDone) => {
                    let mut st = self.lock();
                    st.cache.retain_nodes(&seen);
                    st.nodes_synced = true;
                    seen.clear();
                    self.wake.notify_one();
                }
                Err(e) => warn!(error = %e, "node watch error"),
            }
        }
        Error::InformerStopped("nodes")
    }

    async fn watch_namespaces(self: Arc<Self>) -> Error {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(WEvent::Apply(n)) | Ok(WEvent::InitApply(n)) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    self.lock().cache.namespaces.insert(name, n.metadata.labels.unwrap_or_default());
                }
                Ok(WEvent::Delete(n)) => {
                    self.lock().cache.namespaces.remove(n.metadata.name.as_deref().unwrap_or(""));
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "namespace watch error"),
            }
        }
        Error::InformerStopped("namespaces")
    }

    // ----- the scheduling loop -----

    async fn schedule_loop(self: Arc<Self>) -> Error {
        let permits = Arc::new(Semaphore::new(self.config.parallelism.max(1)));
        let mut rng = rand::rngs::StdRng::from_os_rng();
        loop {
            let popped = {
                let mut st = self.lock();
                if st.pods_synced && st.nodes_synced {
                    st.queue.flush(Instant::now());
                    st.queue.pop().map(|k| (k, None)).or_else(|| Some((String::new(), st.queue.next_backoff())))
                } else {
                    Some((String::new(), None))
                }
            };
            let Some((key, next_backoff)) = popped else { continue };
            if key.is_empty() {
                let wait = next_backoff
                    .map(|t| t.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            // Backpressure: at most `parallelism` API calls in flight.
            let permit = match permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(e) => return Error::Task(e.to_string()),
            };
            let outcome = {
                let mut guard = self.lock();
                let st = &mut *guard;
                let Some(pod) = st.pending.get(&key).cloned() else {
                    st.queue.remove(&key);
                    continue;
                };
                let pct = self.config.percentage_of_nodes_to_score;
                match algorithm::schedule(&st.cache, &pod, &mut st.next_start, pct, &mut rng) {
                    Ok(d) => {
                        st.cache.assume(&pod, &d.node);
                        Ok((pod, d.node))
                    }
                    Err(fit) => {
                        st.queue.unschedulable(&key, Instant::now());
                        Err((pod, fit))
                    }
                }
            };
            let me = self.clone();
            match outcome {
                Ok((pod, node)) => {
                    tokio::spawn(async move {
                        me.bind(pod, node, permit).await;
                    });
                }
                Err((pod, fit)) => {
                    tokio::spawn(async move {
                        me.record_unschedulable(&pod, &fit).await;
                        drop(permit);
                    });
                }
            }
        }
    }

    async fn bind(self: Arc<Self>, pod: Arc<PodInfo>, node: String, permit: tokio::sync::OwnedSemaphorePermit) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
                ..Default::default()
            },
            target: ObjectReference { kind: Some("Node".into()), name: Some(node.clone()), ..Default::default() },
        };
        let res: Result<serde_json::Value, kube::Error> =
            api.create_subresource("binding", &pod.name, &PostParams::default(), &binding).await;
        drop(permit);
        match res {
            Ok(_) => {
                debug!(pod = %pod.key, node = %node, "bound");
                self.lock().queue.done(&pod.key);
                let note = format!("Successfully assigned {}/{} to {}", pod.namespace, pod.name, node);
                let recorder = Recorder::new(self.client.clone(), reporter());
                let ev = Event {
                    type_: EventType::Normal,
                    reason: "Scheduled".into(),
                    note: Some(note),
                    action: "Binding".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, &pod.pod.object_ref(&())).await {
                    debug!(error = %e, "publishing Scheduled event");
                }
            }
            Err(e) => {
                warn!(pod = %pod.key, node = %node, error = %e, "binding failed");
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                {
                    let mut st = self.lock();
                    st.cache.forget(&pod.key, &pod.uid);
                    if gone {
                        st.pending.remove(&pod.key);
                        st.queue.remove(&pod.key);
                    } else {
                        st.queue.error(&pod.key, Instant::now());
                    }
                }
                self.wake.notify_one();
                if !gone {
                    let ev = Event {
                        type_: EventType::Warning,
                        reason: "FailedScheduling".into(),
                        note: Some(format!("Binding rejected: {e}")),
                        action: "Scheduling".into(),
                        secondary: None,
                    };
                    let _ = self.failed_recorder.publish(&ev, &pod.pod.object_ref(&())).await;
                }
            }
        }
    }

    async fn record_unschedulable(&self, pod: &PodInfo, fit: &FitError) {
        let msg = fit.message();
        debug!(pod = %pod.key, "{msg}");
        let current = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(&msg)
        });
        if !unchanged {
            let transition = match current {
                Some(c) if c.status == "False" => c.last_transition_time.as_ref().map(|t| json!(t)),
                _ => None,
            }
            .unwrap_or_else(|| json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": msg,
                "lastProbeTime": null,
                "lastTransitionTime": transition,
            }]}});
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
            if let Err(e) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                debug!(pod = %pod.key, error = %e, "updating PodScheduled condition");
            }
        }
        let ev = Event {
            type_: EventType::Warning,
            reason: "FailedScheduling".into(),
            note: Some(msg),
            action: "Scheduling".into(),
            secondary: None,
        };
        if let Err(e) = self.failed_recorder.publish(&ev, &pod.pod.object_ref(&())).await {
            debug!(error = %e, "publishing FailedScheduling event");
        }
    }
}

fn reporter() -> Reporter {
    Reporter { controller: COMPONENT.into(), instance: None }
}

pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    let sched = Arc::new(Scheduler {
        failed_recorder: Recorder::new(client.clone(), reporter()),
        client,
        config,
        state: Mutex::new(Shared::default()),
        wake: Notify::new(),
    });
    let span = tracing::info_span!("scheduler");
    let pods = tokio::spawn(sched.clone().watch_pods().instrument(span.clone()));
    let nodes = tokio::spawn(sched.clone().watch_nodes().instrument(span.clone()));
    let namespaces = tokio::spawn(sched.clone().watch_namespaces().instrument(span.clone()));
    let lp = tokio::spawn(sched.clone().schedule_loop().instrument(span));
    let res = tokio::select! {
        r = pods => r,
        r = nodes => r,
        r = namespaces => r,
        r = lp => r,
    };
    Err(match res {
        Ok(e) => e,
        Err(join) => Error::Task(join.to_string()),
    })
}
