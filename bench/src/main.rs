//! `rkube-bench`: the performance harness. It starts `rkube server` itself, on
//! the embedded SQLite store and on a private etcd, and measures start-to-ready,
//! idle memory, concurrent ConfigMap creates, a full LIST of many pods and watch
//! fan-out latency, all through HTTPS `kube::Client`s. It prints one table (or
//! JSON). The orchestration suite (`--suite orchestration`) measures scheduling
//! throughput, a large Deployment's rollout and pod create → Running latency with
//! simulated nodes. It never asserts, tunes or touches anything but its own processes.

mod orchestration;
mod procs;
mod report;
mod stats;
mod workloads;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec};
use kube::api::{Api, ObjectMeta};
use report::{BackendReport, ListReport, OrchReport, RunInfo, Startup, Throughput, WatchReport};
use stats::Samples;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Embedded,
    Etcd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
    Apiserver,
    Orchestration,
    All,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Scheduling,
    Deployment,
    Latency,
}

#[derive(Parser, Debug)]
#[command(name = "rkube-bench", about = "Measure rkube on this machine: embedded SQLite and etcd side by side")]
struct Args {
    /// The rkube binary (default: `rkube` next to this executable).
    #[arg(long)]
    rkube: Option<PathBuf>,
    /// The etcd binary used for the etcd backend.
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Backends to measure, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Embedded, Backend::Etcd])]
    backends: Vec<Backend>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Server starts timed for start-to-ready.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// ConfigMaps created in the throughput test.
    #[arg(long, default_value_t = 10_000)]
    creates: usize,
    /// Concurrent clients for the creates.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Pods created before the LIST test.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Timed LISTs of all pods.
    #[arg(long, default_value_t = 5)]
    list_runs: usize,
    /// Concurrent watchers in the fan-out test.
    #[arg(long, default_value_t = 500)]
    watchers: usize,
    /// Objects written while the watchers listen.
    #[arg(long, default_value_t = 200)]
    watch_events: usize,
    /// Milliseconds between two watched writes.
    #[arg(long, default_value_t = 10)]
    watch_pace_ms: u64,
    /// Time limit of each create batch, in seconds.
    #[arg(long, default_value_t = 180)]
    batch_limit_secs: u64,
    /// Which suite to run.
    #[arg(long, value_enum, default_value_t = Suite::All)]
    suite: Suite,
    /// Backends the orchestration suite runs on, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Backend::Embedded])]
    orch_backends: Vec<Backend>,
    /// Orchestration sections to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Section::Scheduling, Section::Deployment, Section::Latency])]
    sections: Vec<Section>,
    /// Simulated nodes for the scheduling throughput test.
    #[arg(long, default_value_t = 1000)]
    sched_nodes: usize,
    /// Pending pods the scheduler binds.
    #[arg(long, default_value_t = 10_000)]
    sched_pods: usize,
    /// Simulated nodes for the Deployment rollout.
    #[arg(long, default_value_t = 1000)]
    deploy_nodes: usize,
    /// Replicas of the rolled-out Deployment.
    #[arg(long, default_value_t = 10_000)]
    deploy_replicas: usize,
    /// Simulated nodes for the create → Running latency test.
    #[arg(long, default_value_t = 100)]
    latency_nodes: usize,
    /// Pods created per second in the latency test.
    #[arg(long, default_value_t = 100)]
    latency_rate: u32,
    /// Seconds the latency test creates pods for.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// Also roll the Deployment out with the controller manager and the scheduler as separate
    /// processes, to report each component's CPU time and memory.
    #[arg(long)]
    deploy_split: bool,
    /// Time limit of each orchestration wait (nodes, binding, rollout), in seconds.
    #[arg(long, default_value_t = 180)]
    orch_limit_secs: u64,
}

fn rkube_path(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.rkube {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().context("locating rkube-bench")?;
    Ok(me.with_file_name("rkube"))
}

fn configmap(i: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(format!("cm-{i}")), ..Default::default() },
        data: Some([("key".to_string(), format!("value-{i}"))].into()),
        ..Default::default()
    }
}

fn pod(i: usize) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("p-{i}")),
            labels: Some([("app".to_string(), "bench".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some("busybox:1.36".into()), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn progress(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("[rkube-bench] {msg}");
    }
}

async fn run_backend(args: &Args, bin: &std::path::Path, backend: Backend) -> BackendReport {
    let name = backend_name(backend);
    let mut rep = BackendReport { backend: name.into(), ..Default::default() };
    if let Err(e) = measure(args, bin, backend, &mut rep).await {
        rep.errors.push(format!("{e:#}"));
    }
    rep
}

async fn measure(args: &Args, bin: &std::path::Path, backend: Backend, rep: &mut BackendReport) -> Result<()> {
    let name = rep.backend.clone();
    let log = |m: &str| progress(args.json, &format!("{name}: {m}"));

    // Start-to-ready on fresh data dirs (and, for etcd, a fresh etcd each time,
    // started before the clock runs). The last server stays up for the workloads.
    let (mut lines, mut readies) = (Vec::new(), Vec::new());
    let mut kept = None;
    for i in 0..args.starts.max(1) {
        let etcd = match backend {
            Backend::Etcd => Some(procs::Etcd::start(&args.etcd)?),
            Backend::Embedded => None,
        };
        let server = procs::Server::start(bin, etcd.as_ref().map(|e| e.client_url.as_str()))?;
        let client = workloads::client(&server.kubeconfig).await?;
        workloads::wait_readyz(&client, Duration::from_secs(30))
            .await
            .with_context(|| format!("server log tail:\n{}", server.log_tail(20)))?;
        let ready = server.spawned_at.elapsed();
        lines.push(server.until_line);
        readies.push(ready);
        log(&format!("start {}: line {:?}, /readyz {:?}", i + 1, server.until_line, ready));
        if i + 1 == args.starts.max(1) {
            kept = Some((server, etcd, client));
        }
    }
    rep.startup = Some(Startup::from_samples(&Samples::from_durations(&lines), &Samples::from_durations(&readies)));
    let (server, etcd, admin) = kept.context("no server kept")?;

    // Idle memory once the fresh server settled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(pid) = server.pid() {
        rep.idle_mem = procs::read_mem(pid).ok();
    }
    if let Some(pid) = etcd.as_ref().and_then(procs::Etcd::pid) {
        rep.etcd_mem = procs::read_mem(pid).ok();
    }

    let limit = Duration::from_secs(args.batch_limit_secs);
    let clients = workloads::clients(&server.kubeconfig, args.clients).await?;

    // ConfigMap creates from N concurrent clients.
    let section = async {
        workloads::ensure_namespace(&admin, "bench-cm").await?;
        log(&format!("{} ConfigMap creates, {} clients", args.creates, args.clients));
        let apis: Vec<Api<ConfigMap>> = clients.iter().map(|c| Api::namespaced(c.clone(), "bench-cm")).collect();
        let c = workloads::create_many(&apis, args.creates, args.clients, limit, configmap).await;
        anyhow::Ok(Throughput::from(&c))
    };
    match section.await {
        Ok(t) => rep.configmap_creates = Some(t),
        Err(e) => rep.errors.push(format!("configmap creates: {e:#}")),
    }

    // Pods for the LIST, then the timed LISTs.
    let section = async {
        workloads::ensure_namespace(&admin, "bench-list").await?;
        log(&format!("{} Pod creates", args.pods));
        let apis: Vec<Api<Pod>> = clients.iter().map(|c| Api::namespaced(c.clone(), "bench-list")).collect();
        let c = workloads::create_many(&apis, args.pods, args.clients, limit, pod).await;
        rep.pod_creates = Some(Throughput::from(&c));
        log(&format!("{} LISTs of pods", args.list_runs));
        let l = workloads::time_list(&admin, "/api/v1/namespaces/bench-list/pods", args.list_runs).await?;
        anyhow::Ok(ListReport::from(&l))
    };
    match section.await {
        Ok(l) => rep.list_pods = Some(l),
        Err(e) => rep.errors.push(format!("list pods: {e:#}")),
    }

    // Watch fan-out.
    let section = async {
        workloads::ensure_namespace(&admin, "bench-watch").await?;
        log(&format!("{} watchers, {} writes", args.watchers, args.watch_events));
        let w = workloads::watch_fanout(
            &clients,
            "bench-watch",
            args.watchers,
            args.watch_events,
            Duration::from_millis(args.watch_pace_ms),
        )
        .await?;
        anyhow::Ok(WatchReport::from(&w))
    };
    match section.await {
        Ok(w) => rep.watch = Some(w),
        Err(e) => rep.errors.push(format!("watch fan-out: {e:#}")),
    }

    if let Some(pid) = server.pid() {
        rep.mem_after = procs::read_mem(pid).ok();
    }
    drop(clients);
    drop(admin);
    drop(server);
    drop(etcd);
    Ok(())
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Embedded => "embedded",
        Backend::Etcd => "etcd",
    }
}

/// The three orchestration sections on one backend, each on its own fresh server (and etcd).
async fn run_orchestration(args: &Args, bin: &std::path::Path, backend: Backend) -> OrchReport {
    let name = backend_name(backend);
    let mut rep = OrchReport { backend: name.into(), ..Default::default() };
    let log = |m: &str| progress(args.json, &format!("{name}: {m}"));
    let o = orchestration::Options {
        sched_nodes: args.sched_nodes,
        sched_pods: args.sched_pods,
        clients: args.clients,
        deploy_nodes: args.deploy_nodes,
        deploy_replicas: args.deploy_replicas,
        latency_nodes: args.latency_nodes,
        latency_rate: args.latency_rate,
        latency_secs: args.latency_secs,
        limit: Duration::from_secs(args.orch_limit_secs),
    };
    let etcd = || -> Result<Option<procs::Etcd>> {
        Ok(match backend {
            Backend::Etcd => Some(procs::Etcd::start(&args.etcd)?),
            Backend::Embedded => None,
        })
    };
    let url = |e: &Option<procs::Etcd>| e.as_ref().map(|e| e.client_url.clone());

    let on = |s: Section| args.sections.contains(&s);
    let r = async {
        let e = etcd()?;
        orchestration::scheduling(bin, url(&e).as_deref(), &o, &log).await
    };
    match if on(Section::Scheduling) { Some(r.await) } else { None } {
        None => {}
        Some(r) => match r {
            Ok(s) => {
                if let Some(n) = &s.note {
                    rep.errors.push(format!("scheduling: {n}"));
                }
                log(&format!("scheduling: {:.0} pods/s", s.per_sec));
                rep.scheduling = Some(s);
            }
            Err(e) => rep.errors.push(format!("scheduling: {e:#}")),
        },
    }
    let r = async {
        let e = etcd()?;
        orchestration::deployment_rollout(bin, url(&e).as_deref(), &o, false, &log).await
    };
    match if on(Section::Deployment) { Some(r.await) } else { None } {
        None => {}
        Some(r) => match r {
            Ok(d) => {
                if let Some(n) = &d.note {
                    rep.errors.push(format!("deployment: {n}"));
                }
                log(&format!("deployment: available after {:?} ms", d.available_ms));
                rep.deployment = Some(d);
            }
            Err(e) => rep.errors.push(format!("deployment: {e:#}")),
        },
    }
    if args.deploy_split && on(Section::Deployment) {
        let r = async {
            let e = etcd()?;
            orchestration::deployment_rollout(bin, url(&e).as_deref(), &o, true, &log).await
        };
        match r.await {
            Ok(d) => {
                if let Some(n) = &d.note {
                    rep.errors.push(format!("deployment (split): {n}"));
                }
                log(&format!("deployment (split): available after {:?} ms", d.available_ms));
                rep.deployment_split = Some(d);
            }
            Err(e) => rep.errors.push(format!("deployment (split): {e:#}")),
        }
    }
    let r = async {
        let e = etcd()?;
        orchestration::pod_latency(bin, url(&e).as_deref(), &o, &log).await
    };
    match if on(Section::Latency) { Some(r.await) } else { None } {
        None => {}
        Some(r) => match r {
            Ok(l) => {
                if l.running < l.created {
                    rep.errors.push(format!(
                        "latency: {} of {} created pods not seen Running within 30 s of the last create",
                        l.created - l.running,
                        l.created
                    ));
                }
                if let Some(e) = &l.first_error {
                    rep.errors.push(format!("latency: {e}"));
                }
                log(&format!("latency: p99 {:.0} ms", l.running_p99_ms));
                rep.latency = Some(l);
            }
            Err(e) => rep.errors.push(format!("latency: {e:#}")),
        },
    }
    rep
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = rkube_path(&args)?;
    if !bin.exists() {
        anyhow::bail!("no rkube binary at {} (pass --rkube)", bin.display());
    }
    if bin.components().any(|c| c.as_os_str() == "debug") {
        progress(args.json, "warning: this looks like a debug build; figures are only meaningful in release");
    }
    let info = RunInfo {
        rkube: bin.display().to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        starts: args.starts,
        creates: args.creates,
        clients: args.clients,
        pods: args.pods,
        list_runs: args.list_runs,
        watchers: args.watchers,
        watch_events: args.watch_events,
        watch_pace_ms: args.watch_pace_ms,
        suite: format!("{:?}", args.suite).to_lowercase(),
        sched_nodes: args.sched_nodes,
        sched_pods: args.sched_pods,
        deploy_nodes: args.deploy_nodes,
        deploy_replicas: args.deploy_replicas,
        latency_nodes: args.latency_nodes,
        latency_rate: args.latency_rate,
        latency_secs: args.latency_secs,
    };
    let mut reports = Vec::new();
    if matches!(args.suite, Suite::Apiserver | Suite::All) {
        for &b in &args.backends {
            reports.push(run_backend(&args, &bin, b).await);
        }
    }
    let mut orch = Vec::new();
    if matches!(args.suite, Suite::Orchestration | Suite::All) {
        for &b in &args.orch_backends {
            orch.push(run_orchestration(&args, &bin, b).await);
        }
    }
    if args.json {
        println!("{}", report::render_json(&info, &reports, &orch));
    } else {
        if !reports.is_empty() {
            print!("{}", report::render_table(&info, &reports));
        }
        if !orch.is_empty() {
            if !reports.is_empty() {
                println!();
            }
            print!("{}", report::render_orchestration(&info, &orch));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_brief() {
        let a = Args::try_parse_from(["rkube-bench"]).unwrap();
        assert_eq!(a.backends, vec![Backend::Embedded, Backend::Etcd]);
        assert_eq!((a.starts, a.creates, a.clients, a.pods, a.watchers), (5, 10_000, 32, 10_000, 500));
        let a = Args::try_parse_from(["rkube-bench", "--backends", "etcd", "--json", "--watchers", "10"]).unwrap();
        assert_eq!(a.backends, vec![Backend::Etcd]);
        assert!(a.json);
        assert_eq!(a.watchers, 10);
        assert!(Args::try_parse_from(["rkube-bench", "--backends", "mysql"]).is_err());
    }

    #[test]
    fn suites_and_orchestration_defaults() {
        let a = Args::try_parse_from(["rkube-bench"]).unwrap();
        assert_eq!(a.suite, Suite::All);
        assert_eq!(a.orch_backends, vec![Backend::Embedded]);
        assert_eq!((a.sched_nodes, a.sched_pods, a.deploy_nodes, a.deploy_replicas), (1000, 10_000, 1000, 10_000));
        assert_eq!((a.latency_nodes, a.latency_rate, a.latency_secs, a.orch_limit_secs), (100, 100, 20, 180));
        assert!(!a.deploy_split);
        assert_eq!(a.sections, vec![Section::Scheduling, Section::Deployment, Section::Latency]);
        let a = Args::try_parse_from(["rkube-bench", "--sections", "deployment"]).unwrap();
        assert_eq!(a.sections, vec![Section::Deployment]);
        let a = Args::try_parse_from(["rkube-bench", "--suite", "orchestration", "--orch-backends", "embedded,etcd"])
            .unwrap();
        assert_eq!(a.suite, Suite::Orchestration);
        assert_eq!(a.orch_backends, vec![Backend::Embedded, Backend::Etcd]);
        assert!(Args::try_parse_from(["rkube-bench", "--suite", "everything"]).is_err());
    }

    #[test]
    fn objects_are_valid_shapes() {
        let p = serde_json::to_value(pod(7)).unwrap();
        assert_eq!(p["metadata"]["name"], "p-7");
        assert_eq!(p["spec"]["containers"][0]["image"], "busybox:1.36");
        let c = serde_json::to_value(configmap(3)).unwrap();
        assert_eq!(c["data"]["key"], "value-3");
    }
}
