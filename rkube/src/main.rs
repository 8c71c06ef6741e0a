//! `rkube`: one binary for the whole cluster.
//!
//! `rkube server` runs the control plane (apiserver, controller manager,
//! scheduler) and, with `--sim-nodes N`, simulated nodes. Each component
//! also runs alone against any apiserver, as upstream's do:
//! `rkube controller-manager`, `rkube scheduler`, `rkube kubelet`.

mod components;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "rkube", version, about = "Kubernetes in one small Rust binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: apiserver, controller manager, scheduler (and simulated nodes).
    Server(Box<ServerArgs>),
    /// Run the controllers against an apiserver.
    ControllerManager(ControllerManagerArgs),
    /// Run the scheduler against an apiserver.
    Scheduler(KubeconfigArgs),
    /// Run a node agent against an apiserver.
    Kubelet(KubeletArgs),
}

#[derive(clap::Args)]
struct KubeletArgs {
    #[command(flatten)]
    kube: KubeconfigArgs,
    /// Container runtime: `sim` (simulated containers).
    #[arg(long, default_value = "sim")]
    runtime: String,
    /// Name of the Node to register.
    #[arg(long)]
    node_name: String,
    /// Labels to register the node with (`k=v,...`).
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Taints to register the node with (`key=value:Effect,...`).
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    /// IP address of the node.
    #[arg(long)]
    node_ip: Option<String>,
    #[command(flatten)]
    sim: SimNodeFlags,
}

/// Capacity of simulated nodes.
#[derive(clap::Args, Clone)]
struct SimNodeFlags {
    /// CPU capacity of a simulated node.
    #[arg(long = "sim-cpu", alias = "sim-node-cpu", default_value = "4")]
    cpu: String,
    /// Memory capacity of a simulated node.
    #[arg(long = "sim-memory", alias = "sim-node-memory", default_value = "16Gi")]
    memory: String,
    /// Pods a simulated node can hold (`--max-pods`).
    #[arg(long = "max-pods", alias = "sim-node-pods", default_value_t = 110)]
    pods: u32,
}

impl SimNodeFlags {
    fn node(&self, name: &str) -> rkube_kubelet::NodeConfig {
        let mut n = rkube_kubelet::NodeConfig::new(name);
        n.cpu = self.cpu.clone();
        n.memory = self.memory.clone();
        n.pods = self.pods;
        n
    }
}

/// `key=value:Effect` or `key:Effect`, as the kubelet's `--register-with-taints`.
fn parse_taint(s: &str) -> Result<k8s_openapi::api::core::v1::Taint> {
    let (kv, effect) = s.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("taint {s:?} lacks :Effect"))?;
    anyhow::ensure!(
        matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute"),
        "taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
    );
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    Ok(k8s_openapi::api::core::v1::Taint { key: key.to_string(), value, effect: effect.to_string(), time_added: None })
}

#[derive(clap::Args)]
struct KubeconfigArgs {
    /// kubeconfig of the apiserver to talk to.
    #[arg(long)]
    kubeconfig: PathBuf,
}

/// Controller manager flags, shared by `server` and `controller-manager`.
#[derive(clap::Args, Clone)]
struct ControllerFlags {
    /// Controllers to run: `*` for all, `name` to enable, `-name` to disable.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// Range node podCIDRs come from.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Size of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may go without a heartbeat before it is NotReady/Unknown.
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How long a new node may take to post its first status.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// How often HorizontalPodAutoscalers are evaluated.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_sync_period: Duration,
    /// How long an autoscaler waits before scaling down (the default scale-down window).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// Minimum change of the metric ratio that triggers scaling.
    #[arg(long, default_value_t = 0.1)]
    horizontal_pod_autoscaler_tolerance: f64,
    /// Where the local-path provisioner keeps volumes (`server` uses its data dir).
    #[arg(long)]
    local_path_root: Option<PathBuf>,
    /// CA certificate that signs approved client CSRs (`server` uses its own CA).
    #[arg(long)]
    cluster_signing_cert_file: Option<PathBuf>,
    /// Key of that CA.
    #[arg(long)]
    cluster_signing_key_file: Option<PathBuf>,
}

impl ControllerFlags {
    fn config(&self, root_ca_pem: String) -> components::ControllerManagerConfig {
        components::ControllerManagerConfig {
            controllers: self.controllers.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            root_ca_pem,
            hpa_sync_period: self.horizontal_pod_autoscaler_sync_period,
            hpa_downscale_stabilization: self.horizontal_pod_autoscaler_downscale_stabilization,
            hpa_tolerance: self.horizontal_pod_autoscaler_tolerance,
            local_path_root: self.local_path_root.clone().unwrap_or_else(|| PathBuf::from("/var/lib/rkube")),
            cluster_signing: match (&self.cluster_signing_cert_file, &self.cluster_signing_key_file) {
                (Some(c), Some(k)) => std::fs::read_to_string(c).ok().zip(std::fs::read_to_string(k).ok()),
                _ => None,
            },
        }
    }
}

#[derive(clap::Args)]
struct ControllerManagerArgs {
    #[command(flatten)]
    kube: KubeconfigArgs,
    #[command(flatten)]
    flags: ControllerFlags,
    /// The cluster CA to publish as kube-root-ca.crt (default: the kubeconfig's).
    #[arg(long)]
    root_ca_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the store, certificates and admin.kubeconfig are kept.
    #[arg(long, default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// etcd v3 endpoints (comma-separated); without it the embedded SQLite store is used.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Range Services' ClusterIPs come from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// Range NodePorts come from.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Address published in the `kubernetes` Service's endpoints.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// How often old revisions are compacted (e.g. 5m, 30s; 0 disables).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    etcd_compaction_interval: Duration,
    /// EncryptionConfiguration: encrypt these resources (e.g. secrets) at rest.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Write audit events here as JSON lines (`-` for stdout).
    #[arg(long)]
    audit_log_path: Option<String>,
    /// Audit policy (default: everything at Metadata level).
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Rotate the audit log at this size (MB).
    #[arg(long, default_value_t = 100)]
    audit_log_maxsize: u64,
    /// Rotated audit logs to keep (0: all).
    #[arg(long, default_value_t = 0)]
    audit_log_maxbackup: usize,
    /// Days to keep rotated audit logs (0: forever).
    #[arg(long, default_value_t = 0)]
    audit_log_maxage: u64,
    /// Static bearer tokens (CSV: token,user,uid,"group1,group2").
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Authorizers tried in order: `Node` (kubelets reach only what their pods
    /// use), `RBAC`, `AlwaysAllow` (every authenticated user may do
    /// everything), `AlwaysDeny`. The default is what upstream clusters run
    /// (kube-apiserver's own flag defaults to AlwaysAllow).
    #[arg(long, default_value = "Node,RBAC")]
    authorization_mode: String,
    /// Let unauthenticated requests read /healthz, /livez, /readyz, /version
    /// and the OIDC discovery paths (`--anonymous-auth=false`: 401 there too).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// ServiceAccount token issuer; repeat to accept more (the first signs).
    #[arg(long = "service-account-issuer")]
    service_account_issuer: Vec<String>,
    /// Audiences the API accepts in ServiceAccount tokens (comma-separated; default: the issuers).
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// Run only the apiserver: no controllers, no scheduler.
    #[arg(long)]
    apiserver_only: bool,
    /// Simulated nodes to run in this process (named sim-0, sim-1, ...).
    #[arg(long, default_value_t = 0)]
    sim_nodes: usize,
    /// Zones to spread simulated nodes over (topology.kubernetes.io/zone), round robin.
    #[arg(long, value_delimiter = ',')]
    sim_zones: Vec<String>,
    #[command(flatten)]
    sim: SimNodeFlags,
    #[command(flatten)]
    controller_flags: ControllerFlags,
}

/// Go-style durations: `300ms`, `30s`, `5m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,hyper=warn,h2=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Server(a) => {
            let data_dir = a.data_dir.clone();
            let mut cfg = rkube_apiserver::Config::new(a.data_dir);
            cfg.bind_address = a.bind_address;
            cfg.secure_port = a.secure_port;
            cfg.etcd_servers = a.etcd_servers;
            cfg.service_cluster_ip_range = a.service_cluster_ip_range;
            cfg.service_node_port_range = a.service_node_port_range;
            cfg.advertise_address = a.advertise_address;
            cfg.etcd_compaction_interval = a.etcd_compaction_interval;
            cfg.encryption_provider_config = a.encryption_provider_config;
            cfg.audit_log_path = a.audit_log_path;
            cfg.audit_policy_file = a.audit_policy_file;
            cfg.audit_log_maxsize = a.audit_log_maxsize;
            cfg.audit_log_maxbackup = a.audit_log_maxbackup;
            cfg.audit_log_maxage = a.audit_log_maxage;
            cfg.token_auth_file = a.token_auth_file;
            cfg.authorization_mode = a.authorization_mode;
            cfg.anonymous_auth = a.anonymous_auth;
            cfg.service_account_issuers = a.service_account_issuer;
            cfg.api_audiences = a.api_audiences;
            let started = std::time::Instant::now();
            let running = rkube_apiserver::start(cfg).await?;
            tracing::info!(url = %running.url(), elapsed_ms = started.elapsed().as_millis() as u64, "apiserver ready");
            let mut tasks = Vec::new();
            if !a.apiserver_only {
                use rkube_apiserver::inprocess::{component_user, in_process_client};
                let server = running.server.clone();
                let client_for = |controller: &str| {
                    let user = component_user(&format!("system:serviceaccount:kube-system:{controller}"));
                    in_process_client(server.clone(), user)
                };
                let mut cm = a.controller_flags.config(running.ca_pem.clone());
                if a.controller_flags.local_path_root.is_none() {
                    cm.local_path_root = data_dir.clone();
                }
                cm.cluster_signing = Some((running.ca_pem.clone(), running.ca_key_pem.clone()));
                tasks.extend(components::start_controllers(&cm, client_for));
                let sched = in_process_client(server.clone(), component_user("system:kube-scheduler"));
                tasks.push(components::start_scheduler(sched));
            }
            if !a.apiserver_only {
                // rkube's own CRDs (NodePool, PodBehavior) and the simulated node pool that
                // reconciles them, with the --sim-nodes nodes.
                use rkube_apiserver::inprocess::in_process_client;
                let admin = in_process_client(running.server.clone(), rkube_apiserver::server::User::admin());
                rkube_crds::install(admin).await?;
                let nodes = (0..a.sim_nodes)
                    .map(|i| {
                        let mut n = a.sim.node(&format!("sim-{i}"));
                        if !a.sim_zones.is_empty() {
                            n.zone = Some(a.sim_zones[i % a.sim_zones.len()].clone());
                        }
                        n
                    })
                    .collect();
                let (client, node_clients) = sim_pool_clients(&running.server);
                let cfg = rkube_kubelet::Config { nodes, node_clients: Some(node_clients), ..Default::default() };
                let template = a.sim.node("template");
                tasks.push(components::supervise("kubelet-sim-pool", move || {
                    rkube_kubelet::run_nodepools(client.clone(), cfg.clone(), template.clone())
                }));
            } else if a.sim_nodes > 0 {
                let nodes = (0..a.sim_nodes)
                    .map(|i| {
                        let mut n = a.sim.node(&format!("sim-{i}"));
                        if !a.sim_zones.is_empty() {
                            n.zone = Some(a.sim_zones[i % a.sim_zones.len()].clone());
                        }
                        n
                    })
                    .collect();
                let (client, node_clients) = sim_pool_clients(&running.server);
                let cfg = rkube_kubelet::Config { nodes, node_clients: Some(node_clients), ..Default::default() };
                tasks.push(components::supervise("kubelet-sim-pool", move || {
                    rkube_kubelet::run(client.clone(), cfg.clone())
                }));
            }
            println!("export KUBECONFIG={}", running.kubeconfig.display());
            shutdown_signal().await;
            tracing::info!("shutting down");
            for t in tasks {
                t.abort();
            }
            running.shutdown();
        }
        Command::ControllerManager(a) => {
            let client = components::client_from_kubeconfig(&a.kube.kubeconfig).await?;
            let ca = match &a.root_ca_file {
                Some(f) => std::fs::read_to_string(f)?,
                None => root_ca_from_kubeconfig(&a.kube.kubeconfig)?,
            };
            let tasks = components::start_controllers(&a.flags.config(ca), |_| client.clone());
            shutdown_signal().await;
            for t in tasks {
                t.abort();
            }
        }
        Command::Kubelet(a) => {
            anyhow::ensure!(a.runtime == "sim", "--runtime {}: only the `sim` runtime is available", a.runtime);
            let client = components::client_from_kubeconfig(&a.kube.kubeconfig).await?;
            let mut node = a.sim.node(&a.node_name);
            for l in &a.node_labels {
                let (k, v) = l.split_once('=').ok_or_else(|| anyhow::anyhow!("--node-labels: {l:?} is not k=v"))?;
                node.labels.insert(k.to_string(), v.to_string());
            }
            node.taints = a.register_with_taints.iter().map(|t| parse_taint(t)).collect::<Result<_>>()?;
            node.address = a.node_ip.clone();
            let cfg = rkube_kubelet::Config { nodes: vec![node], ..Default::default() };
            let t = components::supervise("kubelet", move || rkube_kubelet::run(client.clone(), cfg.clone()));
            shutdown_signal().await;
            t.abort();
        }
        Command::Scheduler(a) => {
            let client = components::client_from_kubeconfig(&a.kubeconfig).await?;
            let t = components::start_scheduler(client);
            shutdown_signal().await;
            t.abort();
        }
    }
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The CA of a kubeconfig's current cluster, as PEM.
fn root_ca_from_kubeconfig(path: &std::path::Path) -> Result<String> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let ctx_name = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let cluster = kc.clusters.iter().find(|c| c.name == cluster_name).and_then(|c| c.cluster.as_ref());
    if let Some(data) = cluster.and_then(|c| c.certificate_authority_data.as_ref()) {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim())?;
        return Ok(String::from_utf8(bytes)?);
    }
    if let Some(file) = cluster.and_then(|c| c.certificate_authority.as_ref()) {
        return Ok(std::fs::read_to_string(file)?);
    }
    Ok(String::new())
}

/// The clients of an in-process sim kubelet pool. The pool's shared watches and
/// NodePool work run as `system:node:sim-pool`, outside `system:nodes` (not a
/// node: no Node authorizer or NodeRestriction limits); each node's writes run
/// as that node, `system:node:<name>` in `system:nodes`.
fn sim_pool_clients(
    server: &std::sync::Arc<rkube_apiserver::server::Server>,
) -> (kube::Client, rkube_kubelet::NodeClients) {
    use rkube_apiserver::inprocess::{component_user, in_process_client};
    let pool_user = rkube_apiserver::server::User {
        name: "system:node:sim-pool".into(),
        groups: vec!["system:authenticated".into()],
    };
    let client = in_process_client(server.clone(), pool_user);
    let server = server.clone();
    let node_clients = rkube_kubelet::NodeClients::new(move |n| {
        in_process_client(server.clone(), component_user(&rkube_kubelet::identity::node_user(n)))
    });
    (client, node_clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5x").is_err());
    }
}
