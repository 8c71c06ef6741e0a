//! `rkube-bench`: the performance harness. It starts `rkube server` itself, on
//! the embedded SQLite store and on a private etcd, and measures start-to-ready,
//! idle memory, concurrent ConfigMap creates, a full LIST of many pods and watch
//! fan-out latency, all through HTTPS `kube::Client`s. It prints one table (or
//! JSON); it never asserts, tunes or touches anything but its own processes.

mod procs;
mod report;
mod stats;
mod workloads;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec};
use kube::api::{Api, ObjectMeta};
use report::{BackendReport, ListReport, RunInfo, Startup, Throughput, WatchReport};
use stats::Samples;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Embedded,
    Etcd,
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
    let name = match backend {
        Backend::Embedded => "embedded",
        Backend::Etcd => "etcd",
    };
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
    };
    let mut reports = Vec::new();
    for &b in &args.backends {
        reports.push(run_backend(&args, &bin, b).await);
    }
    if args.json {
        println!("{}", report::render_json(&info, &reports));
    } else {
        print!("{}", report::render_table(&info, &reports));
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
    fn objects_are_valid_shapes() {
        let p = serde_json::to_value(pod(7)).unwrap();
        assert_eq!(p["metadata"]["name"], "p-7");
        assert_eq!(p["spec"]["containers"][0]["image"], "busybox:1.36");
        let c = serde_json::to_value(configmap(3)).unwrap();
        assert_eq!(c["data"]["key"], "value-3");
    }
}
