//! The range allocator against an in-process apiserver.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_controller_nodeipam::{Config, run};
use std::time::Duration;

async fn wait_cidr(nodes: &Api<Node>, name: &str) -> anyhow::Result<String> {
    for _ in 0..200 {
        let n = nodes.get(name).await?;
        if let Some(c) = n.spec.and_then(|s| s.pod_cidr) {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("node {name} got no podCIDR")
}

fn node(name: &str) -> Node {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
async fn assigns_distinct_cidrs_keeps_existing_and_reuses_released() -> anyhow::Result<()> {
    let env = rkube_apiserver::testenv::TestEnv::start().await?;
    let client = env.client();
    let nodes: Api<Node> = Api::all(client.clone());
    // A node that already has a subnet before the controller starts.
    let mut pre = node("pre");
    pre.spec =
        Some(serde_json::from_value(serde_json::json!({"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}))?);
    nodes.create(&PostParams::default(), &pre).await?;
    let cfg = Config { cluster_cidr: "10.244.0.0/22".into(), node_cidr_mask_size: 24 };
    let task = tokio::spawn(run(client.clone(), cfg));
    for n in ["a", "b", "c"] {
        nodes.create(&PostParams::default(), &node(n)).await?;
    }
    let mut got = vec![];
    for n in ["a", "b", "c"] {
        let c = wait_cidr(&nodes, n).await?;
        let spec = nodes.get(n).await?.spec.unwrap_or_default();
        assert_eq!(spec.pod_cidrs, Some(vec![c.clone()]));
        got.push(c);
    }
    got.sort();
    assert_eq!(got, vec!["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
    // Full: a fifth node waits and gets a CIDRNotAvailable event.
    nodes.create(&PostParams::default(), &node("d")).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(nodes.get("d").await?.spec.and_then(|s| s.pod_cidr).is_none());
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let evs = events.list(&Default::default()).await?;
    assert!(
        evs.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("CIDRNotAvailable") && e.involved_object.name.as_deref() == Some("d"))
    );
    // Deleting a node releases its subnet; the waiting node gets it.
    nodes.delete("pre", &DeleteParams::default()).await?;
    assert_eq!(wait_cidr(&nodes, "d").await?, "10.244.0.0/24");
    task.abort();
    Ok(())
}
