//! Wiring of the components: the controller manager (every controller
//! crate), the scheduler and the kubelet, each an API client only. `rkube
//! server` runs them in-process over in-process clients; the standalone
//! subcommands run them against any apiserver through a kubeconfig.

use anyhow::{Context, Result};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A kube::Client from a kubeconfig file (the standalone subcommands).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Run a component forever: if it returns (an error, or a watch that gave
/// up), log it and start it again after a pause, as a supervisor would.
pub fn supervise<F, Fut, E>(name: &'static str, mut start: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(200);
        loop {
            match start().await {
                Ok(()) => tracing::warn!(component = name, "stopped; restarting"),
                Err(e) => tracing::error!(component = name, "failed: {e}; restarting"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    })
}

/// What the controller manager needs to know (upstream's flag names).
#[derive(Clone, Debug)]
pub struct ControllerManagerConfig {
    /// `--controllers`: names to run, `*` for all, `-name` to disable one.
    pub controllers: Vec<String>,
    pub cluster_cidr: String,
    pub node_cidr_mask_size: u8,
    pub node_monitor_period: Duration,
    pub node_monitor_grace_period: Duration,
    pub node_startup_grace_period: Duration,
    /// The cluster CA (PEM), published as kube-root-ca.crt in every namespace.
    pub root_ca_pem: String,
    pub hpa_sync_period: Duration,
    pub hpa_downscale_stabilization: Duration,
    pub hpa_tolerance: f64,
    /// Where the local-path provisioner keeps volumes (`<root>/storage/<claim-uid>`).
    pub local_path_root: std::path::PathBuf,
    /// The CA (certificate, key) that signs approved client CSRs.
    pub cluster_signing: Option<(String, String)>,
}

impl Default for ControllerManagerConfig {
    fn default() -> Self {
        Self {
            controllers: vec!["*".into()],
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            root_ca_pem: String::new(),
            hpa_sync_period: Duration::from_secs(15),
            hpa_downscale_stabilization: Duration::from_secs(300),
            hpa_tolerance: 0.1,
            local_path_root: std::path::PathBuf::from("/var/lib/rkube"),
            cluster_signing: None,
        }
    }
}

fn enabled(list: &[String], name: &str) -> bool {
    let short = name.trim_end_matches("-controller");
    if list.iter().any(|c| c == &format!("-{name}") || c == &format!("-{short}")) {
        return false;
    }
    list.iter().any(|c| c == "*" || c == name || c == short)
}

/// Start the enabled controllers. `client_for(name)` gives each its client
/// (in-process: its own identity; standalone: the kubeconfig's).
pub fn start_controllers(
    cfg: &ControllerManagerConfig,
    client_for: impl Fn(&str) -> kube::Client,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let on = |n: &str| enabled(&cfg.controllers, n);
    if on("replicaset-controller") {
        let c = client_for("replicaset-controller");
        tasks.push(supervise("replicaset-controller", move || {
            rkube_controller_replicaset::run(c.clone(), Default::default())
        }));
    }
    if on("deployment-controller") {
        let c = client_for("deployment-controller");
        tasks.push(supervise("deployment-controller", move || {
            rkube_controller_deployment::run(c.clone(), Default::default())
        }));
    }
    if on("garbage-collector-controller") {
        let c = client_for("generic-garbage-collector");
        tasks.push(supervise("garbage-collector-controller", move || {
            rkube_controller_garbagecollector::run(c.clone(), Default::default())
        }));
    }
    if on("namespace-controller") {
        let c = client_for("namespace-controller");
        tasks.push(supervise("namespace-controller", move || {
            rkube_controller_namespace::run(c.clone(), Default::default())
        }));
    }
    if on("serviceaccount-controller") || on("root-ca-certificate-publisher-controller") {
        let c = client_for("service-account-controller");
        let sa_cfg = rkube_controller_serviceaccount::Config { root_ca_pem: cfg.root_ca_pem.clone() };
        tasks.push(supervise("serviceaccount-controller", move || {
            rkube_controller_serviceaccount::run(c.clone(), sa_cfg.clone())
        }));
    }
    if on("node-lifecycle-controller") {
        let c = client_for("node-controller");
        let nl = rkube_controller_nodelifecycle::Config {
            node_monitor_period: cfg.node_monitor_period,
            node_monitor_grace_period: cfg.node_monitor_grace_period,
            node_startup_grace_period: cfg.node_startup_grace_period,
            ..Default::default()
        };
        tasks.push(supervise("node-lifecycle-controller", move || {
            rkube_controller_nodelifecycle::run(c.clone(), nl.clone())
        }));
    }
    if on("disruption-controller") {
        let c = client_for("disruption-controller");
        tasks.push(supervise("disruption-controller", move || {
            rkube_controller_disruption::run(c.clone(), Default::default())
        }));
    }
    if on("horizontal-pod-autoscaler-controller") {
        let c = client_for("horizontal-pod-autoscaler");
        let hpa = rkube_controller_horizontalpodautoscaler::Config {
            sync_period: cfg.hpa_sync_period,
            downscale_stabilization: cfg.hpa_downscale_stabilization,
            tolerance: cfg.hpa_tolerance,
            ..Default::default()
        };
        tasks.push(supervise("horizontal-pod-autoscaler-controller", move || {
            rkube_controller_horizontalpodautoscaler::run(c.clone(), hpa.clone())
        }));
    }
    if on("statefulset-controller") {
        let c = client_for("statefulset-controller");
        tasks.push(supervise("statefulset-controller", move || {
            rkube_controller_statefulset::run(c.clone(), Default::default())
        }));
    }
    if on("daemonset-controller") {
        let c = client_for("daemon-set-controller");
        tasks.push(supervise("daemonset-controller", move || {
            rkube_controller_daemonset::run(c.clone(), Default::default())
        }));
    }
    if on("job-controller") {
        let c = client_for("job-controller");
        tasks.push(supervise("job-controller", move || rkube_controller_job::run(c.clone(), Default::default())));
    }
    if on("cronjob-controller") {
        let c = client_for("cronjob-controller");
        tasks.push(supervise("cronjob-controller", move || {
            rkube_controller_cronjob::run(c.clone(), Default::default())
        }));
    }
    if on("ttl-after-finished-controller") {
        let c = client_for("ttl-after-finished-controller");
        tasks.push(supervise("ttl-after-finished-controller", move || {
            rkube_controller_ttlafterfinished::run(c.clone(), Default::default())
        }));
    }
    if on("local-path-provisioner") {
        let c = client_for("local-path-provisioner");
        let lp = rkube_controller_localpath::Config { root: cfg.local_path_root.clone(), ..Default::default() };
        tasks.push(supervise("local-path-provisioner", move || rkube_controller_localpath::run(c.clone(), lp.clone())));
    }
    if on("resourcequota-controller") {
        let c = client_for("resourcequota-controller");
        tasks.push(supervise("resourcequota-controller", move || {
            rkube_controller_resourcequota::run(c.clone(), Default::default())
        }));
    }
    if on("csrsigning-controller")
        && let Some((cert, key)) = &cfg.cluster_signing
    {
        let c = client_for("certificate-controller");
        let csr = rkube_controller_csrsigning::Config {
            ca_cert_pem: cert.clone(),
            ca_key_pem: key.clone(),
            ..Default::default()
        };
        tasks
            .push(supervise("csrsigning-controller", move || rkube_controller_csrsigning::run(c.clone(), csr.clone())));
    }
    if on("node-ipam-controller") {
        let c = client_for("node-ipam-controller");
        let ipam = rkube_controller_nodeipam::Config {
            cluster_cidr: cfg.cluster_cidr.clone(),
            node_cidr_mask_size: cfg.node_cidr_mask_size,
        };
        tasks.push(supervise("node-ipam-controller", move || rkube_controller_nodeipam::run(c.clone(), ipam.clone())));
    }
    tasks
}

/// Start the scheduler.
pub fn start_scheduler(client: kube::Client) -> JoinHandle<()> {
    supervise("scheduler", move || rkube_scheduler::run(client.clone(), Default::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_selection_follows_upstream_flag() {
        let all = vec!["*".to_string()];
        assert!(enabled(&all, "deployment-controller"));
        let some = vec!["*".to_string(), "-deployment".to_string()];
        assert!(!enabled(&some, "deployment-controller"));
        assert!(enabled(&some, "replicaset-controller"));
        let only = vec!["replicaset".to_string()];
        assert!(enabled(&only, "replicaset-controller"));
        assert!(!enabled(&only, "namespace-controller"));
    }
}
