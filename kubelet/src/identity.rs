//! Per-node API identities for a pool of nodes. Upstream, each kubelet is the user
//! `system:node:<nodeName>` in the group `system:nodes`, and the apiserver's Node authorizer and
//! NodeRestriction admission limit it to its own Node, Lease and pods. A pool running many nodes
//! does each node's writes (registration, node status, lease, pod status, pod deletes, events)
//! with that node's client from a [`NodeClients`] factory; its shared watches keep the pool's
//! own client.

use http::HeaderValue;
use kube::client::Body;
use std::fmt;
use std::sync::Arc;

/// The user name of a node's kubelet.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// The group every kubelet is in.
pub const NODES_GROUP: &str = "system:nodes";

/// Makes the client one node's requests go through.
#[derive(Clone)]
pub struct NodeClients(Arc<dyn Fn(&str) -> kube::Client + Send + Sync>);

impl fmt::Debug for NodeClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeClients(..)")
    }
}

impl NodeClients {
    /// A factory: node name → client acting as that node. Called once per write, so it must be
    /// cheap (an in-process client, or a wrapper over a shared connection).
    pub fn new(f: impl Fn(&str) -> kube::Client + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Clients that share `base`'s connection and impersonate each node
    /// (`Impersonate-User: system:node:<node>`, `Impersonate-Group: system:nodes`). `base`'s
    /// user needs the `impersonate` verb on those users and that group.
    pub fn impersonating(base: kube::Client) -> Self {
        Self::new(move |node| impersonate(base.clone(), node))
    }

    /// The client for `node`.
    pub fn client(&self, node: &str) -> kube::Client {
        (self.0)(node)
    }
}

/// A client over `base`'s connection whose requests impersonate `node`'s kubelet.
pub fn impersonate(base: kube::Client, node: &str) -> kube::Client {
    let user = HeaderValue::from_str(&node_user(node)).ok();
    let ns = base.default_namespace().to_string();
    let svc = tower::service_fn(move |mut req: http::Request<Body>| {
        let base = base.clone();
        let user = user.clone();
        async move {
            // A node name is a DNS subdomain, always a valid header value; never fall back to
            // the base identity if it is not.
            let Some(u) = user else {
                return Err(kube::Error::Service("node name is not a valid header value".into()));
            };
            let h = req.headers_mut();
            h.insert("impersonate-user", u);
            h.append("impersonate-group", HeaderValue::from_static(NODES_GROUP));
            base.send(req).await
        }
    });
    kube::Client::new(svc, ns)
}
