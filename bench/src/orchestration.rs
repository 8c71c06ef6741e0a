//! The orchestration workloads: scheduling throughput of `rkube scheduler` alone against an
//! apiserver with 1,000 simulated nodes, a 10,000-replica Deployment rolled out by the whole
//! control plane in one process, and create → Running latency of standalone pods at a steady
//! rate. Each section starts its own `rkube server` (and scheduler), watches pods through HTTPS
//! like any client, and kills what it started. Every wait is bounded in count and in time.

use crate::procs::{self, Component, Mem, Server};
use crate::stats::Samples;
use crate::workloads;
use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Sizes and limits of the orchestration sections.
#[derive(Debug, Clone)]
pub struct Options {
    pub sched_nodes: usize,
    pub sched_pods: usize,
    pub clients: usize,
    pub deploy_nodes: usize,
    pub deploy_replicas: usize,
    pub latency_nodes: usize,
    pub latency_rate: u32,
    pub latency_secs: u64,
    /// Limit of every wait (nodes registering, creates, binding, rollout).
    pub limit: Duration,
}

/// A small pod whose requests fit many times on a 4-CPU / 16 GiB simulated node.
pub fn small_pod_spec() -> PodSpec {
    let requests: BTreeMap<String, Quantity> =
        [("cpu".to_string(), Quantity("10m".into())), ("memory".to_string(), Quantity("16Mi".into()))].into();
    PodSpec {
        containers: vec![Container {
            name: "c".into(),
            image: Some("busybox:1.36".into()),
            resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
            ..Default::default()
        }],
        termination_grace_period_seconds: Some(0),
        ..Default::default()
    }
}

pub fn small_pod(i: usize) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("p-{i}")),
            labels: Some([("app".to_string(), "bench-orch".to_string())].into()),
            ..Default::default()
        },
        spec: Some(small_pod_spec()),
        ..Default::default()
    }
}

pub fn deployment(name: &str, replicas: usize) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Deployment {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(small_pod_spec()),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn get(path: &str) -> Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

fn since(t0: Instant, at: Instant) -> Duration {
    at.saturating_duration_since(t0)
}

// ---------------------------------------------------------------------------------------------
// Watching pods
// ---------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct EventLine {
    #[serde(rename = "type")]
    ty: String,
    object: PodLine,
}

#[derive(serde::Deserialize, Default)]
struct PodLine {
    #[serde(default)]
    metadata: MetaLine,
    #[serde(default)]
    spec: Option<SpecLine>,
    #[serde(default)]
    status: Option<StatusLine>,
    /// Set on an ERROR event's Status object.
    #[serde(default)]
    message: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct MetaLine {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

#[derive(serde::Deserialize, Default)]
struct SpecLine {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct StatusLine {
    #[serde(default)]
    phase: Option<String>,
}

/// What one pod watch event said, as far as the harness cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSeen {
    /// ADDED, MODIFIED or DELETED.
    pub ty: String,
    pub name: String,
    pub bound: bool,
    pub running: bool,
}

/// A decoded watch line: a pod event, a bookmark (carrying only a resourceVersion) or an error.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Pod(PodSeen, String),
    Bookmark(String),
    Error(String),
}

fn parse_line(line: &str) -> Option<Line> {
    let ev: EventLine = serde_json::from_str(line).ok()?;
    let rv = ev.object.metadata.resource_version;
    match ev.ty.as_str() {
        "BOOKMARK" => Some(Line::Bookmark(rv)),
        "ERROR" => Some(Line::Error(ev.object.message.unwrap_or_else(|| "watch ERROR event".into()))),
        "ADDED" | "MODIFIED" | "DELETED" => Some(Line::Pod(
            PodSeen {
                ty: ev.ty,
                name: ev.object.metadata.name,
                bound: ev.object.spec.and_then(|s| s.node_name).is_some_and(|n| !n.is_empty()),
                running: ev.object.status.and_then(|s| s.phase).as_deref() == Some("Running"),
            },
            rv,
        )),
        _ => None,
    }
}

/// A pod watch on one namespace, running in its own task; events arrive on `rx` stamped with the
/// instant their line was read. The watch is re-opened from the last resourceVersion when the
/// server ends it (at most 20 times); it stops at its deadline or when `rx` is dropped.
pub struct PodWatch {
    pub rx: mpsc::UnboundedReceiver<(PodSeen, Instant)>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl PodWatch {
    /// Open the watch from `rv` (its response headers are in when this returns).
    pub async fn open(client: Client, ns: &str, rv: String, limit: Duration) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + limit;
        let ns = ns.to_string();
        let path = move |rv: &str| {
            format!(
                "/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=900"
            )
        };
        let first = client.request_stream(get(&path(&rv))?).await.context("opening the pod watch")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut rv = rv;
            let mut stream = Some(first);
            for _ in 0..20 {
                let s = match stream.take() {
                    Some(s) => s,
                    None => client.request_stream(get(&path(&rv))?).await.context("re-opening the pod watch")?,
                };
                let mut lines = Box::pin(s).lines();
                loop {
                    let line = match tokio::time::timeout_at(deadline, lines.next()).await {
                        Err(_) => return Ok(()),
                        Ok(None) | Ok(Some(Err(_))) => break,
                        Ok(Some(Ok(l))) => l,
                    };
                    let at = Instant::now();
                    match parse_line(&line) {
                        Some(Line::Pod(seen, new_rv)) => {
                            rv = new_rv;
                            if tx.send((seen, at)).is_err() {
                                return Ok(());
                            }
                        }
                        Some(Line::Bookmark(new_rv)) => rv = new_rv,
                        Some(Line::Error(m)) => bail!("pod watch: {m}"),
                        None => {}
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(());
                }
            }
            bail!("pod watch ended 20 times")
        });
        Ok(PodWatch { rx, task })
    }

    /// The watch task's error, if it failed (call once the workload is over).
    pub async fn finish(self) -> Option<String> {
        drop(self.rx);
        self.task.abort();
        match self.task.await {
            Ok(Err(e)) => Some(format!("{e:#}")),
            _ => None,
        }
    }
}

/// The collection resourceVersion of a namespace's pods (to watch from).
async fn pods_rv(client: &Client, ns: &str) -> Result<String> {
    let v: serde_json::Value = client.request(get(&format!("/api/v1/namespaces/{ns}/pods?limit=1"))?).await?;
    v["metadata"]["resourceVersion"].as_str().map(str::to_string).context("pod list without resourceVersion")
}

/// Wait until `n` nodes exist (with a spec.podCIDR when `need_cidr`), polling once a second.
pub async fn wait_nodes(client: &Client, n: usize, need_cidr: bool, limit: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    let api: Api<Node> = Api::all(client.clone());
    let mut last = 0;
    while t0.elapsed() < limit {
        // A failed LIST is retried on the next poll.
        if let Ok(list) = api.list(&ListParams::default()).await {
            last = list
                .items
                .iter()
                .filter(|node| {
                    !need_cidr || node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some_and(|c| !c.is_empty())
                })
                .count();
            if last >= n {
                return Ok(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let what = if need_cidr { "nodes with a podCIDR" } else { "nodes" };
    bail!("only {last} of {n} {what} after {limit:?}")
}

/// The default `--cluster-cidr` (10.244.0.0/16) with /24 node ranges holds 256 nodes, as
/// upstream's node-ipam: bigger pools get a /12 (4,096 node ranges, clear of the service range).
pub fn cluster_cidr_flags(nodes: usize) -> Vec<String> {
    if nodes > 256 { vec!["--cluster-cidr".into(), "10.128.0.0/12".into()] } else { Vec::new() }
}

fn cpu(pid: Option<u32>) -> Option<Duration> {
    pid.and_then(|p| procs::read_cpu(p).ok())
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn ms_opt(d: Option<Duration>) -> Option<f64> {
    d.map(crate::stats::ms)
}

// ---------------------------------------------------------------------------------------------
// 1. Scheduling throughput
// ---------------------------------------------------------------------------------------------

/// Scheduling throughput of `rkube scheduler` alone.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct SchedReport {
    pub nodes: usize,
    /// `rkube server` spawn → all nodes registered.
    pub nodes_ready_ms: f64,
    /// The pending pods' creation (setup, before the scheduler starts).
    pub creates: crate::report::Throughput,
    /// Pods to bind (the successful creates).
    pub pods: usize,
    pub bound: usize,
    pub complete: bool,
    /// Scheduler spawn → last pod seen bound.
    pub elapsed_ms: f64,
    /// bound ÷ elapsed.
    pub per_sec: f64,
    /// Scheduler spawn → first pod seen bound (start-up, informer sync).
    pub first_bind_ms: Option<f64>,
    /// (bound − 1) ÷ (last − first bind): the rate once binding runs.
    pub steady_per_sec: Option<f64>,
    /// CPU time of the scheduler process, of the server during the binding phase.
    pub scheduler_cpu_s: Option<f64>,
    pub server_cpu_s: Option<f64>,
    pub scheduler_mem: Option<Mem>,
    /// Server (apiserver + kubelet pool) memory once the nodes registered, after the pending
    /// pods were created, and after they were bound.
    pub server_mem_nodes: Option<Mem>,
    pub server_mem_pods: Option<Mem>,
    pub server_mem_bound: Option<Mem>,
    /// Pods bound after each full second since the scheduler's spawn.
    pub timeline: Vec<usize>,
    /// Why the section is incomplete.
    pub note: Option<String>,
}

pub async fn scheduling(bin: &Path, etcd: Option<&str>, o: &Options, log: &dyn Fn(&str)) -> Result<SchedReport> {
    let mut rep = SchedReport { nodes: o.sched_nodes, ..Default::default() };
    let server =
        Server::start_with(bin, etcd, &["--apiserver-only".into(), "--sim-nodes".into(), o.sched_nodes.to_string()])?;
    let admin = workloads::client(&server.kubeconfig).await?;
    workloads::wait_readyz(&admin, Duration::from_secs(30))
        .await
        .with_context(|| format!("server log tail:\n{}", server.log_tail(20)))?;
    log(&format!("scheduling: waiting for {} nodes", o.sched_nodes));
    wait_nodes(&admin, o.sched_nodes, false, o.limit).await?;
    rep.nodes_ready_ms = crate::stats::ms(server.spawned_at.elapsed());
    let server_mem = || server.pid().and_then(|p| procs::read_mem(p).ok());
    rep.server_mem_nodes = server_mem();

    let ns = "bench-sched";
    workloads::ensure_namespace(&admin, ns).await?;
    log(&format!("scheduling: creating {} pending pods", o.sched_pods));
    let clients = workloads::clients(&server.kubeconfig, o.clients).await?;
    let apis: Vec<Api<Pod>> = clients.iter().map(|c| Api::namespaced(c.clone(), ns)).collect();
    let c = workloads::create_many(&apis, o.sched_pods, o.clients, o.limit, small_pod).await;
    rep.creates = crate::report::Throughput::from(&c);
    drop(apis);
    drop(clients);
    if c.ok == 0 {
        bail!("no pod could be created: {}", c.first_error.unwrap_or_default());
    }
    rep.pods = c.ok;

    rep.server_mem_pods = server_mem();
    let rv = pods_rv(&admin, ns).await?;
    let mut watch = PodWatch::open(workloads::client(&server.kubeconfig).await?, ns, rv, o.limit * 2).await?;
    let server_cpu0 = cpu(server.pid());
    log("scheduling: starting rkube scheduler");
    let sched = Component::start(
        bin,
        &["scheduler".into(), "--kubeconfig".into(), server.kubeconfig.display().to_string()],
        server.dir().join("scheduler.log"),
    )?;
    let t0 = sched.spawned_at;
    let deadline = tokio::time::Instant::from_std(t0 + o.limit);
    let mut bound: HashSet<String> = HashSet::with_capacity(rep.pods);
    let (mut first, mut last) = (None, None);
    while bound.len() < rep.pods {
        match tokio::time::timeout_at(deadline, watch.rx.recv()).await {
            Ok(Some((seen, at))) => {
                if seen.bound && seen.ty != "DELETED" && bound.insert(seen.name) {
                    let d = since(t0, at);
                    first.get_or_insert(d);
                    last = Some(d);
                    let sec = d.as_secs() as usize;
                    if rep.timeline.len() <= sec {
                        let prev = rep.timeline.last().copied().unwrap_or(0);
                        rep.timeline.resize(sec + 1, prev);
                    }
                    if let Some(slot) = rep.timeline.last_mut() {
                        *slot = bound.len();
                    }
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    rep.scheduler_cpu_s = secs(cpu(sched.pid()));
    rep.scheduler_mem = sched.pid().and_then(|p| procs::read_mem(p).ok());
    rep.server_mem_bound = server_mem();
    rep.server_cpu_s = match (server_cpu0, cpu(server.pid())) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let watch_error = watch.finish().await;
    rep.bound = bound.len();
    rep.complete = rep.bound >= rep.pods;
    if let (Some(f), Some(l)) = (first, last) {
        rep.first_bind_ms = Some(crate::stats::ms(f));
        rep.elapsed_ms = crate::stats::ms(l);
        rep.per_sec = crate::stats::rate(rep.bound, l);
        if rep.bound > 1 && l > f {
            rep.steady_per_sec = Some(crate::stats::rate(rep.bound - 1, l - f));
        }
    }
    if !rep.complete {
        let why = watch_error.map(|e| format!(" ({e})")).unwrap_or_default();
        rep.note = Some(format!(
            "only {} of {} pods bound within {:?} of the scheduler's start{why}; scheduler log tail:\n{}",
            rep.bound,
            rep.pods,
            o.limit,
            sched.log_tail(10)
        ));
    }
    drop(sched);
    drop(server);
    Ok(rep)
}

// ---------------------------------------------------------------------------------------------
// 2. Deployment rollout
// ---------------------------------------------------------------------------------------------

/// A large Deployment rolled out by the in-process controllers, scheduler and sim kubelets.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct DeployReport {
    pub nodes: usize,
    pub replicas: usize,
    /// `rkube server` spawn → all nodes registered with a podCIDR.
    pub nodes_ready_ms: f64,
    pub complete: bool,
    /// Deployment create call start → status.availableReplicas == replicas.
    pub available_ms: Option<f64>,
    /// … → the watch has seen every pod ADDED / bound / Running.
    pub all_created_ms: Option<f64>,
    pub all_bound_ms: Option<f64>,
    pub all_running_ms: Option<f64>,
    /// Last observed counts (from the pod watch and the Deployment's status).
    pub created: usize,
    pub bound: usize,
    pub running: usize,
    pub available: i64,
    /// Pod watch events seen (ADDED + MODIFIED): each one is a pod write.
    pub pod_events: usize,
    /// Server memory right after the rollout, and its CPU time (total, and during the rollout).
    pub mem_after: Option<Mem>,
    pub cpu_total_s: Option<f64>,
    pub cpu_rollout_s: Option<f64>,
    /// One sample a second: [seconds, created, bound, running, available].
    pub timeline: Vec<[i64; 5]>,
    /// Split mode only: each separate process's usage (the server then holds the apiserver and
    /// the kubelet pool only).
    pub components: Vec<ComponentUsage>,
    /// Why the section is incomplete.
    pub note: Option<String>,
}

/// CPU time during the rollout and memory afterwards of one process.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct ComponentUsage {
    pub name: String,
    pub cpu_rollout_s: Option<f64>,
    pub mem_after: Option<Mem>,
}

/// Roll out the Deployment on one `rkube server` (controllers, scheduler and kubelets in one
/// process) or, with `split`, on `rkube server --apiserver-only` (apiserver + kubelet pool) next
/// to separate `rkube controller-manager` and `rkube scheduler` processes, to see which
/// component spends the CPU and holds the memory.
pub async fn deployment_rollout(
    bin: &Path,
    etcd: Option<&str>,
    o: &Options,
    split: bool,
    log: &dyn Fn(&str),
) -> Result<DeployReport> {
    let n = o.deploy_replicas;
    let mut rep = DeployReport { nodes: o.deploy_nodes, replicas: n, ..Default::default() };
    let mut flags = vec!["--sim-nodes".into(), o.deploy_nodes.to_string(), "--max-pods".into(), "110".into()];
    if split {
        flags.push("--apiserver-only".into());
    } else {
        flags.extend(cluster_cidr_flags(o.deploy_nodes));
    }
    let mut server = Server::start_with(bin, etcd, &flags)?;
    let admin = workloads::client(&server.kubeconfig).await?;
    workloads::wait_readyz(&admin, Duration::from_secs(30))
        .await
        .with_context(|| format!("server log tail:\n{}", server.log_tail(20)))?;
    let kc = server.kubeconfig.display().to_string();
    let mut parts = Vec::new();
    if split {
        let mut cm = vec!["controller-manager".to_string(), "--kubeconfig".into(), kc.clone()];
        cm.extend(cluster_cidr_flags(o.deploy_nodes));
        parts.push(("controller-manager", Component::start(bin, &cm, server.dir().join("cm.log"))?));
        let sched = vec!["scheduler".to_string(), "--kubeconfig".into(), kc.clone()];
        parts.push(("scheduler", Component::start(bin, &sched, server.dir().join("scheduler.log"))?));
    }
    log(&format!("deployment: waiting for {} nodes with a podCIDR", o.deploy_nodes));
    wait_nodes(&admin, o.deploy_nodes, true, o.limit).await?;
    rep.nodes_ready_ms = crate::stats::ms(server.spawned_at.elapsed());

    let ns = "bench-deploy";
    workloads::ensure_namespace(&admin, ns).await?;
    let rv = pods_rv(&admin, ns).await?;
    let mut watch = PodWatch::open(workloads::client(&server.kubeconfig).await?, ns, rv, o.limit * 2).await?;
    let api: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let cpu0 = cpu(server.pid());
    let parts_cpu0: Vec<Option<Duration>> = parts.iter().map(|(_, c)| cpu(c.pid())).collect();
    log(&format!("deployment: {n} replicas"));
    let t0 = Instant::now();
    api.create(&PostParams::default(), &deployment("big", n)).await.context("creating the Deployment")?;
    let deadline = tokio::time::Instant::from_std(t0 + o.limit);

    let (mut created, mut bound, mut running) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sample = 0u64;
    let mut watch_open = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            ev = watch.rx.recv(), if watch_open => match ev {
                Some((seen, at)) => {
                    if seen.ty == "DELETED" {
                        continue;
                    }
                    rep.pod_events += 1;
                    let d = since(t0, at);
                    if created.insert(seen.name.clone()) && created.len() == n {
                        rep.all_created_ms = Some(crate::stats::ms(d));
                    }
                    if seen.bound && bound.insert(seen.name.clone()) && bound.len() == n {
                        rep.all_bound_ms = Some(crate::stats::ms(d));
                    }
                    if seen.running && running.insert(seen.name) && running.len() == n {
                        rep.all_running_ms = Some(crate::stats::ms(d));
                    }
                }
                None => watch_open = false,
            },
            _ = poll.tick() => {
                if let Some(status) = server.exited() {
                    bail!("rkube server exited during the rollout ({status}); log tail:\n{}", server.log_tail(10));
                }
                // A failed GET is retried on the next tick.
                if let Ok(d) = api.get("big").await {
                    rep.available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0).into();
                }
                let el = t0.elapsed();
                if el.as_secs() >= next_sample {
                    rep.timeline.push([
                        el.as_secs() as i64,
                        created.len() as i64,
                        bound.len() as i64,
                        running.len() as i64,
                        rep.available,
                    ]);
                    next_sample = el.as_secs() + 1;
                }
                if rep.available >= n as i64 {
                    rep.available_ms = Some(crate::stats::ms(el));
                    break;
                }
            }
        }
    }
    rep.mem_after = server.pid().and_then(|p| procs::read_mem(p).ok());
    let cpu1 = cpu(server.pid());
    rep.cpu_total_s = secs(cpu1);
    rep.cpu_rollout_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    for ((name, c), c0) in parts.iter().zip(parts_cpu0) {
        rep.components.push(ComponentUsage {
            name: (*name).into(),
            cpu_rollout_s: match (c0, cpu(c.pid())) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
                _ => None,
            },
            mem_after: c.pid().and_then(|p| procs::read_mem(p).ok()),
        });
    }
    let watch_error = watch.finish().await;
    rep.created = created.len();
    rep.bound = bound.len();
    rep.running = running.len();
    rep.complete = rep.available_ms.is_some();
    if !rep.complete {
        let why = watch_error.map(|e| format!(" ({e})")).unwrap_or_default();
        rep.note = Some(format!(
            "availableReplicas {} of {n} after {:?} (pods seen: {} created, {} bound, {} Running){why}; server log tail:\n{}",
            rep.available,
            o.limit,
            rep.created,
            rep.bound,
            rep.running,
            server.log_tail(10)
        ));
    }
    drop(parts);
    drop(server);
    Ok(rep)
}

// ---------------------------------------------------------------------------------------------
// 3. Pod create → Running latency
// ---------------------------------------------------------------------------------------------

/// Standalone pods created at a steady rate; per pod, create call start → the watch sees Running.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct LatencyReport {
    pub nodes: usize,
    pub rate: u32,
    /// Creates attempted and succeeded; the rate actually achieved.
    pub attempted: usize,
    pub created: usize,
    pub create_errors: usize,
    pub achieved_per_sec: f64,
    pub create_p50_ms: f64,
    pub create_p99_ms: f64,
    /// Pods seen Running within the grace time after the last create.
    pub running: usize,
    pub running_p50_ms: f64,
    pub running_p99_ms: f64,
    pub running_max_ms: f64,
    /// Create call start → the watch sees spec.nodeName.
    pub bound_p50_ms: f64,
    pub bound_p99_ms: f64,
    pub first_error: Option<String>,
}

pub async fn pod_latency(bin: &Path, etcd: Option<&str>, o: &Options, log: &dyn Fn(&str)) -> Result<LatencyReport> {
    let rate = o.latency_rate.max(1);
    let total = (rate as u64 * o.latency_secs.max(1)) as usize;
    let mut rep = LatencyReport { nodes: o.latency_nodes, rate, ..Default::default() };
    let mut flags = vec!["--sim-nodes".into(), o.latency_nodes.to_string()];
    flags.extend(cluster_cidr_flags(o.latency_nodes));
    let server = Server::start_with(bin, etcd, &flags)?;
    let admin = workloads::client(&server.kubeconfig).await?;
    workloads::wait_readyz(&admin, Duration::from_secs(30))
        .await
        .with_context(|| format!("server log tail:\n{}", server.log_tail(20)))?;
    log(&format!("latency: waiting for {} nodes with a podCIDR", o.latency_nodes));
    wait_nodes(&admin, o.latency_nodes, true, o.limit).await?;
    let ns = "bench-latency";
    workloads::ensure_namespace(&admin, ns).await?;
    let rv = pods_rv(&admin, ns).await?;
    let mut watch = PodWatch::open(workloads::client(&server.kubeconfig).await?, ns, rv, o.limit * 2).await?;
    let clients = workloads::clients(&server.kubeconfig, 8).await?;
    let apis: Vec<Api<Pod>> = clients.iter().map(|c| Api::namespaced(c.clone(), ns)).collect();

    log(&format!("latency: {total} pods at {rate}/s"));
    let base = Instant::now();
    let starts: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(u64::MAX)).collect());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(500));
    let hard_deadline = tokio::time::Instant::from_std(base + o.limit);
    let grace = Duration::from_secs(30);
    let mut stop_at = hard_deadline;

    let (mut bound_at, mut running_at): (HashMap<usize, Instant>, HashMap<usize, Instant>) = Default::default();
    let (mut create_lat, mut finished) = (Vec::with_capacity(total), 0usize);
    let mut next = 0usize;
    let mut watch_open = true;
    loop {
        if next >= total && finished >= total && running_at.len() >= rep.created {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(stop_at) => break,
            _ = tick.tick(), if next < total => {
                let i = next;
                next += 1;
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let api = apis[i % apis.len()].clone();
                let starts = starts.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let s = Instant::now();
                    starts[i].store(u64::try_from(since(base, s).as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
                    let r = match tokio::time::timeout(Duration::from_secs(30), api.create(&PostParams::default(), &small_pod(i))).await {
                        Ok(Ok(_)) => Ok(s.elapsed()),
                        Ok(Err(e)) => Err(format!("create p-{i}: {e}")),
                        Err(_) => Err(format!("create p-{i}: timed out")),
                    };
                    let _ = done.send(r);
                });
                if next == total {
                    stop_at = (tokio::time::Instant::now() + grace).min(hard_deadline);
                }
            }
            r = done_rx.recv() => match r {
                Some(Ok(d)) => { finished += 1; rep.created += 1; create_lat.push(d); }
                Some(Err(e)) => { finished += 1; rep.create_errors += 1; rep.first_error.get_or_insert(e); }
                None => {}
            },
            ev = watch.rx.recv(), if watch_open => match ev {
                Some((seen, at)) => {
                    if let Some(i) = seen.name.strip_prefix("p-").and_then(|s| s.parse::<usize>().ok()) && i < total {
                        if seen.bound { bound_at.entry(i).or_insert(at); }
                        if seen.running { running_at.entry(i).or_insert(at); }
                    }
                }
                None => watch_open = false,
            },
        }
    }
    rep.attempted = next;
    let lat = |m: &HashMap<usize, Instant>| {
        let mut v = Vec::with_capacity(m.len());
        for (&i, &at) in m {
            let s = starts[i].load(Ordering::SeqCst);
            if s != u64::MAX {
                v.push(u64::try_from(since(base, at).as_nanos()).unwrap_or(u64::MAX).saturating_sub(s));
            }
        }
        Samples::new(v)
    };
    let (run, bnd) = (lat(&running_at), lat(&bound_at));
    let f = |d: Option<Duration>| ms_opt(d).unwrap_or(f64::NAN);
    rep.running = run.len();
    rep.running_p50_ms = f(run.percentile(50.0));
    rep.running_p99_ms = f(run.percentile(99.0));
    rep.running_max_ms = f(run.max());
    rep.bound_p50_ms = f(bnd.percentile(50.0));
    rep.bound_p99_ms = f(bnd.percentile(99.0));
    let cl = Samples::from_durations(&create_lat);
    rep.create_p50_ms = f(cl.percentile(50.0));
    rep.create_p99_ms = f(cl.percentile(99.0));
    // Achieved rate: creates started over the span between the first and last start.
    let starts_ns: Vec<u64> = starts.iter().map(|a| a.load(Ordering::SeqCst)).filter(|&s| s != u64::MAX).collect();
    if let (Some(&a), Some(&b)) = (starts_ns.iter().min(), starts_ns.iter().max())
        && b > a
    {
        rep.achieved_per_sec = (starts_ns.len() - 1) as f64 / Duration::from_nanos(b - a).as_secs_f64();
    }
    if let Some(e) = watch.finish().await {
        rep.first_error.get_or_insert(e);
    }
    drop(apis);
    drop(clients);
    drop(server);
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_events_say_bound_and_running() {
        let l = r#"{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"p-3","resourceVersion":"77"},"spec":{"nodeName":"sim-4","containers":[]},"status":{"phase":"Running"}}}"#;
        let want = PodSeen { ty: "MODIFIED".into(), name: "p-3".into(), bound: true, running: true };
        assert_eq!(parse_line(l), Some(Line::Pod(want, "77".into())));
        let pending = r#"{"type":"ADDED","object":{"metadata":{"name":"p-1","resourceVersion":"5"},"spec":{"containers":[]},"status":{"phase":"Pending"}}}"#;
        let Some(Line::Pod(p, _)) = parse_line(pending) else { panic!("not a pod event") };
        assert!(!p.bound && !p.running);
        let empty_node = r#"{"type":"ADDED","object":{"metadata":{"name":"p-1"},"spec":{"nodeName":""}}}"#;
        let Some(Line::Pod(p, _)) = parse_line(empty_node) else { panic!("not a pod event") };
        assert!(!p.bound);
    }

    #[test]
    fn bookmarks_errors_and_junk() {
        let b = r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"900"}}}"#;
        assert_eq!(parse_line(b), Some(Line::Bookmark("900".into())));
        let e = r#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}"#;
        assert_eq!(parse_line(e), Some(Line::Error("too old resource version".into())));
        assert_eq!(parse_line("{}"), None);
        assert_eq!(parse_line("nope"), None);
    }

    #[test]
    fn big_pools_get_a_big_cluster_cidr() {
        assert!(cluster_cidr_flags(100).is_empty());
        assert!(cluster_cidr_flags(256).is_empty());
        assert_eq!(cluster_cidr_flags(1000), vec!["--cluster-cidr".to_string(), "10.128.0.0/12".to_string()]);
    }

    #[test]
    fn workload_objects_have_fitting_requests() {
        let p = serde_json::to_value(small_pod(9)).unwrap();
        assert_eq!(p["metadata"]["name"], "p-9");
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"]["cpu"], "10m");
        let d = serde_json::to_value(deployment("big", 10_000)).unwrap();
        assert_eq!(d["spec"]["replicas"], 10_000);
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "big");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "big");
    }
}
