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
pub mod audit;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod crds;
pub mod dynamic_admission;
pub mod encrypted_store;
pub mod encryption;
pub mod http;
pub mod inprocess;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod objects;
pub mod request;
pub mod rest;
pub mod reviews;
pub mod server;
pub mod services;
pub mod subresources;
pub mod testenv;
pub mod tls;
pub mod watch;
pub mod webhook;

use anyhow::{Context, Result};
use rkube_storage::Store;
use rkube_storage::cache::WatchCache;
use server::{Server, Settings};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The audit view of a request: who, what, on which object.
pub(crate) fn audit_attrs(
    parts: &::http::request::Parts,
    route: &request::Route,
    user: Option<&server::User>,
) -> audit::RequestAttrs {
    let mut a = audit::RequestAttrs {
        audit_id: parts
            .headers
            .get("audit-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        request_uri: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        verb: parts.method.as_str().to_ascii_lowercase(),
        user_agent: parts
            .headers
            .get(::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        received: chrono::Utc::now(),
        ..Default::default()
    };
    match user {
        Some(u) => {
            a.user.username = u.name.clone();
            a.user.groups = u.groups.clone();
        }
        None => {
            a.user.username = "system:anonymous".into();
            a.user.groups = vec!["system:unauthenticated".into()];
        }
    }
    if let request::Route::Resource(rp) = route {
        let q = request::Query::parse(parts.uri.query());
        let watch = q.watch().unwrap_or(false) || rp.legacy_watch;
        a.resource_request = true;
        a.verb = request::Verb::from_request(&parts.method, rp.name.is_some(), watch)
            .map(|v| v.as_str().to_string())
            .unwrap_or(a.verb);
        a.api_group = rp.group.clone();
        a.api_version = rp.version.clone();
        a.resource = rp.resource.clone();
        a.subresource = rp.subresource.clone().unwrap_or_default();
        a.namespace = rp.namespace.clone().unwrap_or_default();
        a.name = rp.name.clone().unwrap_or_default();
    }
    a
}

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
    /// `--encryption-provider-config`: encrypt these resources at rest.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--audit-log-path` (`-` for stdout) and `--audit-policy-file`.
    pub audit_log_path: Option<String>,
    pub audit_policy_file: Option<PathBuf>,
    pub audit_log_maxsize: u64,
    pub audit_log_maxbackup: usize,
    pub audit_log_maxage: u64,
    /// `--token-auth-file`: static bearer tokens (upstream's CSV).
    pub token_auth_file: Option<PathBuf>,
    /// `--authorization-mode`: a comma list of `AlwaysAllow` (default, as upstream), `AlwaysDeny`,
    /// `Node`, `RBAC`, tried in order (`Node,RBAC` as upstream clusters run).
    pub authorization_mode: String,
    /// `--anonymous-auth`: unauthenticated requests may read health, version
    /// and the OIDC discovery paths (everything else is 401 either way).
    pub anonymous_auth: bool,
    /// `--service-account-issuer` (the first signs, all are accepted; empty:
    /// `https://kubernetes.default.svc.cluster.local`).
    pub service_account_issuers: Vec<String>,
    /// `--api-audiences` (empty: the issuers).
    pub api_audiences: Vec<String>,
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
            encryption_provider_config: None,
            audit_log_path: None,
            audit_policy_file: None,
            audit_log_maxsize: 100,
            audit_log_maxbackup: 0,
            audit_log_maxage: 0,
            token_auth_file: None,
            authorization_mode: "AlwaysAllow".into(),
            anonymous_auth: true,
            service_account_issuers: Vec::new(),
            api_audiences: Vec::new(),
        }
    }
}

/// A running apiserver.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    /// The cluster CA certificate (PEM), for the kube-root-ca.crt ConfigMaps.
    pub ca_pem: String,
    /// The cluster CA key (PEM), for the CSR signer.
    pub ca_key_pem: String,
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

/// Open the configured store, encrypted at rest when configured.
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn Store>> {
    let store = open_raw_store(cfg).await?;
    match &cfg.encryption_provider_config {
        Some(path) => {
            let t = encryption::Transformers::load(path)
                .map_err(|e| anyhow::anyhow!("--encryption-provider-config: {e}"))?;
            Ok(encrypted_store::EncryptedStore::wrap(store, t))
        }
        None => Ok(store),
    }
}

async fn open_raw_store(cfg: &Config) -> Result<Arc<dyn Store>> {
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
    server.start_dynamic_admission();
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

    if let Some(path) = &cfg.audit_log_path {
        let policy = match &cfg.audit_policy_file {
            Some(p) => audit::Policy::load(p).map_err(|e| anyhow::anyhow!("--audit-policy-file: {e}"))?,
            None => audit::Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
                .map_err(|e| anyhow::anyhow!("default audit policy: {e}"))?,
        };
        let log = audit::AuditLog::open(path, cfg.audit_log_maxsize, cfg.audit_log_maxbackup, cfg.audit_log_maxage)
            .map_err(|e| anyhow::anyhow!("--audit-log-path: {e}"))?;
        server.set_audit(policy, log);
    }
    let mut signer =
        authn::Signer::load_or_create(&pki_dir).map_err(|e| anyhow::anyhow!("service account key: {e}"))?;
    if !cfg.service_account_issuers.is_empty() {
        signer = signer.with_issuers(cfg.service_account_issuers.clone());
    }
    if !cfg.api_audiences.is_empty() {
        signer = signer.with_api_audiences(cfg.api_audiences.clone());
    }
    server.set_anonymous_auth(cfg.anonymous_auth);
    let file = match &cfg.token_auth_file {
        Some(p) => Some(authn::TokenFile::load(p).map_err(|e| anyhow::anyhow!("--token-auth-file: {e}"))?),
        None => None,
    };
    server.set_tokens(server::Tokens { file, signer: Some(signer) });
    let token_controller = server.spawn_token_controller(pki.ca_cert_pem.clone());
    match authz::parse_authorization_modes(&cfg.authorization_mode) {
        Err(e) => anyhow::bail!("--authorization-mode: {e}"),
        Ok(modes) if modes == [authz::AuthzMode::AlwaysAllow] => {}
        Ok(modes) => {
            let rbac = modes.contains(&authz::AuthzMode::Rbac);
            server.set_authorization_modes(modes);
            if rbac {
                server.start_rbac().await?;
            }
        }
    }
    let mut tasks = vec![tokio::spawn(listener::serve(listener, tls_config, server.clone())), token_controller];
    if !cfg.etcd_compaction_interval.is_zero() {
        tasks.push(rkube_storage::compactor::spawn(store, cfg.etcd_compaction_interval));
    }
    Ok(Running { addr, kubeconfig, ca_pem: pki.ca_cert_pem.clone(), ca_key_pem: pki.ca_key_pem.clone(), server, tasks })
}
