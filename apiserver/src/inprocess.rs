//! In-process clients: a `kube::Client` whose requests go straight into the
//! request handler — no TCP, no TLS — carrying a component's identity. This
//! is how `rkube server` wires the scheduler, controllers and kubelets to the
//! apiserver they share a process with; tests use it through `testenv`.

use crate::server::{Server, User};
use std::sync::Arc;

/// A `kube::Client` whose requests go straight into `server`, as `user`.
pub fn in_process_client(server: Arc<Server>, user: User) -> kube::Client {
    let svc = tower::service_fn(move |req: ::http::Request<kube::client::Body>| {
        let server = server.clone();
        let user = user.clone();
        async move { Ok::<_, std::convert::Infallible>(server.handle(req, Some(user)).await) }
    });
    kube::Client::new(svc, "default")
}

/// The identity of an rkube component, named as upstream names its own
/// (`system:kube-scheduler`, `system:serviceaccount:kube-system:<controller>`,
/// `system:node:<name>` in group `system:nodes`).
pub fn component_user(name: &str) -> User {
    let mut groups = vec!["system:authenticated".to_string()];
    if name.starts_with("system:node:") {
        groups.insert(0, "system:nodes".into());
    } else if name.starts_with("system:serviceaccount:") {
        groups.insert(0, "system:serviceaccounts".into());
        groups.insert(1, "system:serviceaccounts:kube-system".into());
    }
    User { name: name.to_string(), groups }
}
