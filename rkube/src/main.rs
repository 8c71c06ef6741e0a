//! `rkube`: one binary for the whole cluster.
//!
//! `rkube server` runs the control plane (today: the apiserver on its
//! embedded store, or on etcd). Each component will also run alone, as
//! upstream's do, under its own subcommand.

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
    /// Run the control plane: a kube-apiserver-compatible HTTPS server.
    Server(ServerArgs),
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
            let mut cfg = rkube_apiserver::Config::new(a.data_dir);
            cfg.bind_address = a.bind_address;
            cfg.secure_port = a.secure_port;
            cfg.etcd_servers = a.etcd_servers;
            cfg.service_cluster_ip_range = a.service_cluster_ip_range;
            cfg.service_node_port_range = a.service_node_port_range;
            cfg.advertise_address = a.advertise_address;
            cfg.etcd_compaction_interval = a.etcd_compaction_interval;
            let started = std::time::Instant::now();
            let running = rkube_apiserver::start(cfg).await?;
            tracing::info!(url = %running.url(), elapsed_ms = started.elapsed().as_millis() as u64, "apiserver ready");
            println!("export KUBECONFIG={}", running.kubeconfig.display());
            tokio::signal::ctrl_c().await?;
            tracing::info!("shutting down");
            running.shutdown();
        }
    }
    Ok(())
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
