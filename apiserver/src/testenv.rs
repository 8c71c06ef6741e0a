//! An apiserver inside the test process: an in-memory store, no TLS, no port,
//! and a `kube::Client` wired straight to the request handler. Ready in
//! milliseconds, with nothing to download — envtest without binaries.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let env = rkube_apiserver::testenv::TestEnv::start().await?;
//! let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(env.client());
//! # Ok(()) }
//! ```

use crate::inprocess::in_process_client;
use crate::server::{Server, Settings, User};
use anyhow::Result;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub struct TestEnv {
    pub server: Arc<Server>,
    client: kube::Client,
}

impl TestEnv {
    /// A fresh apiserver on an in-memory store.
    pub async fn start() -> Result<Self> {
        let store = rkube_storage::sqlite::SqliteStore::open_in_memory()?;
        Self::with_store(store).await
    }

    /// An apiserver on a given store (e.g. a temp-dir SQLite file or etcd).
    pub async fn with_store(store: Arc<dyn rkube_storage::Store>) -> Result<Self> {
        let settings = Settings {
            advertise_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secure_port: 6443,
            service_cidr: crate::services::Cidr::parse("10.96.0.0/12").expect("valid default CIDR"),
            node_port_range: (30000, 32767),
        };
        let server = crate::build(store, settings).await?;
        let client = in_process_client(server.clone(), User::admin());
        Ok(Self { server, client })
    }

    /// A client acting as the admin user (system:masters).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A client acting as someone else.
    pub fn client_as(&self, user: User) -> kube::Client {
        in_process_client(self.server.clone(), user)
    }
}
