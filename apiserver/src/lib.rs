//! rkube-apiserver: the Kubernetes-compatible API server.
//!
//! It is the one entry point for every resource operation and the only part of
//! rkube that touches storage. A request travels:
//! [`listener`] (TLS, client certificate → user) → [`server::Server::handle`]
//! (route: discovery, OpenAPI, health, or a resource) → [`rest`] (the verb;
//! [`watch`] and [`subresources`] for those) → rkube-registry (defaults,
//! validation, patches, tables) → rkube-storage (watch cache and store).
//!
//! Start a whole server with [`start`]; tests can get one in-process with an
//! in-memory store and a ready `kube::Client` from [`testenv::TestEnv`].

pub mod admission;
pub mod bootstrap;
pub mod crds;
pub mod http;
pub mod inprocess;
pub mod listener;
pub mod metrics;
pub mod objects;
pub mod request;
pub mod rest;
pub mod server;
pub mod services;
pub mod subresources;
pub mod testenv;
pub mod tls;
pub mod watch;

use anyhow::{Context, Result};
use rkube_storage::Store;
use rkube_storage::cache::WatchCache;
use server::{Server, Settings};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything `rkube server` can be told about the apiserver.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the store, certificates and kubeconfig live.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub secure_port: u16,
    /// Empty: the embedded SQLite store. Otherwise etcd v3 endpoints.
    pub etcd_servers: Vec<String>,
    pub service_cluster_ip_range: String,
    pub service_node_port_range: String,
    pub advertise_address: Option<IpAddr>,
    pub etcd_compaction_interval: Duration,
    /// Keep the store in memory (tests); no durability.
    pub in_memory: bool,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secure_port: 6443,
            etcd_servers: Vec::new(),
            service_cluster_ip_range: "10.96.0.0/12".into(),
            service_node_port_range: "30000-32767".into(),
            advertise_address: None,
            etcd_compaction_interval: Duration::from_secs(300),
            in_memory: false,
        }
    }
}

/// A running apiserver.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    /// The cluster CA certificate (PEM), for the kube-root-ca.crt ConfigMaps.
    pub ca_pem: String,
    pub server: Arc<Server>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// The `https://host:port` clients use.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').context("--service-node-port-range must look like 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a <= b, "--service-node-port-range: {a} > {b}");
    Ok((a, b))
}

/// Open the configured store.
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn Store>> {
    if !cfg.etcd_servers.is_empty() {
        let s = rkube_storage::etcd::EtcdStore::connect(&cfg.etcd_servers).await.context("connecting to etcd")?;
        return Ok(s);
    }
    if cfg.in_memory {
        return Ok(rkube_storage::sqlite::SqliteStore::open_in_memory().context("opening in-memory store")?);
    }
    let dir = cfg.data_dir.join("db");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(rkube_storage::sqlite::SqliteStore::open(&dir.join("state.db")).context("opening the SQLite store")?)
}

/// Events the watch cache keeps for watches that resume from a revision.
/// Each holds the object version it carried, so this bounds memory; a client
/// further behind gets 410 and re-lists, as with upstream's watch cache.
const CACHE_HISTORY: usize = 20_000;

/// Build the request handler on a store: watch cache, allocators, bootstrap objects.
///
/// The cache follows the whole key space so that its revision keeps up with
/// the store's even when a write lands outside `/registry/` (allocations, the
/// compactor's bookkeeping); only `/registry/` values become objects.
pub async fn build(store: Arc<dyn Store>, settings: Settings) -> Result<Arc<Server>> {
    let cache = WatchCache::start(store.clone(), "", CACHE_HISTORY).await.context("starting the watch cache")?;
    let server = Server::new(store, cache, settings);
    server.bootstrap().await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    server.sync_crds().await;
    server.spawn_crd_controller();
    server.set_ready();
    Ok(server)
}

/// Start the apiserver: store, PKI, HTTPS listener; writes `admin.kubeconfig`.
pub async fn start(cfg: Config) -> Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let cidr = services::Cidr::parse(&cfg.service_cluster_ip_range)
        .with_context(|| format!("invalid --service-cluster-ip-range {}", cfg.service_cluster_ip_range))?;
    let node_port_range = parse_port_range(&cfg.service_node_port_range)?;
    let listener = tokio::net::TcpListener::bind((cfg.bind_address, cfg.secure_port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.bind_address, cfg.secure_port))?;
    let addr = listener.local_addr()?;
    let advertise = cfg.advertise_address.unwrap_or(if cfg.bind_address.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        cfg.bind_address
    });
    let pki_dir = cfg.data_dir.join("pki");
    let sans = tls::serving_sans(&cfg.bind_address.to_string(), Some(IpAddr::V4(cidr.first())));
    let pki = tls::Pki::load_or_create(&pki_dir, &sans)?;
    let tls_config = pki.server_config()?;

    let store = open_store(&cfg).await?;
    let settings =
        Settings { advertise_address: advertise, secure_port: addr.port(), service_cidr: cidr, node_port_range };
    let server = build(store.clone(), settings).await?;

    let host = if cfg.bind_address.is_unspecified() { "127.0.0.1".to_string() } else { cfg.bind_address.to_string() };
    let url_host = if host.contains(':') { format!("[{host}]") } else { host };
    let url = format!("https://{url_host}:{}", addr.port());
    let kubeconfig = cfg.data_dir.join("admin.kubeconfig");
    std::fs::write(&kubeconfig, pki.kubeconfig(&url, "admin", &pki.admin_cert_pem, &pki.admin_key_pem))
        .with_context(|| format!("writing {}", kubeconfig.display()))?;

    let mut tasks = vec![tokio::spawn(listener::serve(listener, tls_config, server.clone()))];
    if !cfg.etcd_compaction_interval.is_zero() {
        tasks.push(rkube_storage::compactor::spawn(store, cfg.etcd_compaction_interval));
    }
    Ok(Running { addr, kubeconfig, ca_pem: pki.ca_cert_pem.clone(), server, tasks })
}
