//! install() against an in-process apiserver: both CRDs become Established, the kinds are served
//! with their schemas (defaults, int-or-string quantities, patterns) and the scale subresource.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_crds::{NodePool, PodBehavior};
use serde_json::json;

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
}

#[tokio::test]
async fn install_establishes_both_crds_and_serves_them() -> anyhow::Result<()> {
    let env = rkube_apiserver::testenv::TestEnv::start().await?;
    let client = env.client();
    rkube_crds::install(client.clone()).await?;
    // Idempotent: a second apply changes nothing and succeeds.
    rkube_crds::install(client.clone()).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ["nodepools.sim.rkube.io", "podbehaviors.sim.rkube.io"] {
        let crd = crds.get(name).await?;
        assert!(established(&crd), "{name} not Established");
        let managers: Vec<String> =
            crd.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
        assert!(managers.iter().any(|m| m == "rkube"), "{name} managers: {managers:?}");
    }

    // Defaults from the schema: replicas 1; an integer cpu is kept (int-or-string).
    let pools: Api<NodePool> = Api::all(client.clone());
    let np: NodePool = serde_json::from_value(json!({
        "apiVersion": "sim.rkube.io/v1alpha1", "kind": "NodePool",
        "metadata": {"name": "p"}, "spec": {"capacity": {"cpu": 8}}
    }))?;
    let created = pools.create(&PostParams::default(), &np).await?;
    assert_eq!(created.spec.replicas, 1);
    assert_eq!(created.spec.capacity.and_then(|c| c.cpu).map(|q| q.0), Some("8".to_string()));

    // Scale subresource: spec.replicas through /scale.
    let scale = pools.get_scale("p").await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));
    pools.patch_scale("p", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await?;
    assert_eq!(pools.get("p").await?.spec.replicas, 5);

    // Schema validation: a bad quantity and a bad duration are rejected (422).
    let bad: NodePool = serde_json::from_value(json!({
        "apiVersion": "sim.rkube.io/v1alpha1", "kind": "NodePool",
        "metadata": {"name": "bad"}, "spec": {"capacity": {"memory": "lots"}}
    }))?;
    match pools.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("bad quantity accepted: {other:?}"),
    }
    let behaviors: Api<PodBehavior> = Api::all(client.clone());
    let pb = |after: &str| -> anyhow::Result<PodBehavior> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "sim.rkube.io/v1alpha1", "kind": "PodBehavior",
            "metadata": {"name": format!("pb-{}", after.len())},
            "spec": {"selector": {"matchLabels": {"app": "crash"}}, "exitAfter": after, "exitCode": 1}
        }))?)
    };
    match behaviors.create(&PostParams::default(), &pb("soon")?).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("bad duration accepted: {other:?}"),
    }
    let ok = behaviors.create(&PostParams::default(), &pb("2s")?).await?;
    assert_eq!(ok.spec.exit_after.as_deref(), Some("2s"));
    Ok(())
}
