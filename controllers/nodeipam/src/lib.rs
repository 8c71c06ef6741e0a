//! rkube-controller-nodeipam: the node IPAM range allocator (upstream's `RangeAllocator`).
//!
//! Owns handing every Node without `spec.podCIDR` one subnet of `--cluster-cidr` (a /24 by default,
//! `--node-cidr-mask-size`), writing `spec.podCIDR` and `spec.podCIDRs` once and never changing them.
//! On start (and on every watch re-list) it rebuilds its in-memory set of used subnets from the
//! existing Nodes; a deleted Node gives its subnet back. When the range is exhausted it records the
//! upstream node event `CIDRNotAvailable`; a failed write records `CIDRAssignmentFailed`.
//! It is an API client only and never touches storage.

pub mod cidrset;

use cidrset::CidrSet;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Upstream's event source component for the range allocator.
pub const COMPONENT: &str = "cidrAllocator";

/// Settings, named after kube-controller-manager's flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--cluster-cidr`.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size` (upstream's IPv4 default is 24).
    pub node_cidr_mask_size: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self { cluster_cidr: "10.244.0.0/16".to_string(), node_cidr_mask_size: 24 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --cluster-cidr/--node-cidr-mask-size: {0}")]
    Config(String),
    #[error("watching nodes: {0}")]
    Watch(#[from] watcher::Error),
}

/// The allocator's state: the subnet set plus which node holds which subnet.
struct Allocator {
    set: CidrSet,
    /// Node name → the subnet this controller (or a previous owner) gave it.
    assigned: HashMap<String, String>,
}

impl Allocator {
    /// Forget everything and mark the subnets of `nodes` as used (start and re-list).
    fn rebuild(&mut self, nodes: &[Node]) {
        self.set.clear();
        self.assigned.clear();
        for node in nodes {
            if let Some(cidr) = pod_cidr(node) {
                self.occupy(node_name(node), &cidr);
            }
        }
    }

    fn occupy(&mut self, name: &str, cidr: &str) {
        // Subnets outside the cluster range (set by someone else) are simply not ours to track.
        if self.set.occupy(cidr) {
            self.assigned.insert(name.to_string(), cidr.to_string());
        }
    }

    fn release(&mut self, name: &str) {
        if let Some(cidr) = self.assigned.remove(name) {
            self.set.release(&cidr);
        }
    }

    /// The subnet `node` should get: the one already promised to it, or a fresh one (None when full).
    fn subnet_for(&mut self, name: &str) -> Option<String> {
        if let Some(c) = self.assigned.get(name) {
            return Some(c.clone());
        }
        let c = self.set.allocate()?;
        self.assigned.insert(name.to_string(), c.clone());
        Some(c)
    }
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

fn pod_cidr(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr.clone().filter(|c| !c.is_empty()).or_else(|| spec.pod_cidrs.as_ref().and_then(|v| v.first().cloned()))
}

/// Runs the range allocator until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let set = CidrSet::new(&config.cluster_cidr, config.node_cidr_mask_size).map_err(Error::Config)?;
    let mut alloc = Allocator { set, assigned: HashMap::new() };
    let nodes: Api<Node> = Api::all(client.clone());
    let mut stream = watcher(nodes.clone(), watcher::Config::default()).boxed();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<String>();
    let mut listing: Vec<Node> = Vec::new();
    let mut known: HashMap<String, Node> = HashMap::new();
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Ok(watcher::Event::Init) => listing.clear(),
                    Ok(watcher::Event::InitApply(n)) => listing.push(n),
                    Ok(watcher::Event::InitDone) => {
                        alloc.rebuild(&listing);
                        known = listing.drain(..).map(|n| (node_name(&n).to_string(), n)).collect();
                        let todo: Vec<Node> = known.values().filter(|n| pod_cidr(n).is_none()).cloned().collect();
                        for n in todo {
                            sync_node(&client, &nodes, &mut alloc, &n, &retry_tx).await;
                        }
                    }
                    Ok(watcher::Event::Apply(n)) => {
                        known.insert(node_name(&n).to_string(), n.clone());
                        sync_node(&client, &nodes, &mut alloc, &n, &retry_tx).await;
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        known.remove(node_name(&n));
                        alloc.release(node_name(&n));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "node watch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            Some(name) = retry_rx.recv() => {
                if let Some(n) = known.get(&name).cloned() {
                    sync_node(&client, &nodes, &mut alloc, &n, &retry_tx).await;
                }
            }
        }
    }
}

/// Level-triggered: a node with a podCIDR is recorded as using it; one without gets a subnet.
async fn sync_node(
    client: &kube::Client,
    nodes: &Api<Node>,
    alloc: &mut Allocator,
    node: &Node,
    retry: &mpsc::UnboundedSender<String>,
) {
    let name = node_name(node).to_string();
    if name.is_empty() || node.metadata.deletion_timestamp.is_some() {
        return;
    }
    if let Some(cidr) = pod_cidr(node) {
        if alloc.assigned.get(&name) != Some(&cidr) {
            alloc.release(&name);
            alloc.occupy(&name, &cidr);
        }
        return;
    }
    let Some(cidr) = alloc.subnet_for(&name) else {
        tracing::warn!(node = %name, "no pod CIDR available in the cluster range");
        node_event(client, node, "CIDRNotAvailable").await;
        schedule_retry(retry, name, Duration::from_secs(5));
        return;
    };
    let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match nodes.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => tracing::info!(node = %name, %cidr, "assigned pod CIDR"),
        Err(kube::Error::Api(s)) if s.code == 404 => alloc.release(&name),
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "failed to set pod CIDR");
            node_event(client, node, "CIDRAssignmentFailed").await;
            schedule_retry(retry, name, Duration::from_secs(1));
        }
    }
}

fn schedule_retry(retry: &mpsc::UnboundedSender<String>, name: String, after: Duration) {
    let tx = retry.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = tx.send(name);
    });
}

/// Upstream's `RecordNodeStatusChange`: a Normal event "Node <n> status is now: <status>" whose
/// involved object is the Node with UID set to the node name, in the default namespace.
async fn node_event(client: &kube::Client, node: &Node, status: &str) {
    let name = node_name(node);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let nanos = now.0.as_nanosecond();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{nanos:x}")),
            namespace: Some("default".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.to_string()),
            uid: Some(name.to_string()),
            ..Default::default()
        },
        reason: Some(status.to_string()),
        message: Some(format!("Node {name} status is now: {status}")),
        type_: Some("Normal".into()),
        source: Some(EventSource { component: Some(COMPONENT.into()), host: None }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(String::new()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    if let Err(e) = events.create(&PostParams::default(), &ev).await {
        tracing::debug!(error = %e, "recording node event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>) -> Node {
        let mut n =
            Node { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
        if let Some(c) = cidr {
            n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
                pod_cidr: Some(c.into()),
                pod_cidrs: Some(vec![c.into()]),
                ..Default::default()
            });
        }
        n
    }

    #[test]
    fn rebuild_marks_existing_and_never_hands_them_out() {
        let mut a = Allocator { set: CidrSet::new("10.244.0.0/22", 24).unwrap(), assigned: HashMap::new() };
        a.rebuild(&[node("a", Some("10.244.0.0/24")), node("b", Some("10.244.2.0/24")), node("c", None)]);
        assert_eq!(a.subnet_for("c").as_deref(), Some("10.244.1.0/24"));
        // Asking again for the same node gives the same subnet, not a second one.
        assert_eq!(a.subnet_for("c").as_deref(), Some("10.244.1.0/24"));
        assert_eq!(a.subnet_for("d").as_deref(), Some("10.244.3.0/24"));
        assert_eq!(a.subnet_for("e"), None);
        a.release("a");
        assert_eq!(a.subnet_for("e").as_deref(), Some("10.244.0.0/24"));
    }
}
