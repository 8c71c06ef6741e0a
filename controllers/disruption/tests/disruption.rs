//! The disruption controller against an in-process apiserver (TestEnv). No other controller runs:
//! the tests create the workloads and their pods themselves (with controller ownerReferences) and
//! play the kubelet by patching pod readiness through the status subresource.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_disruption::{Config, run};
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(15);

struct Harness {
    _env: TestEnv,
    client: Client,
    controller: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

async fn start() -> Result<Harness> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let c = client.clone();
    let controller = tokio::spawn(async move {
        if let Err(e) = run(c, Config::default()).await {
            eprintln!("controller stopped: {e}");
        }
    });
    Ok(Harness { _env: env, client, controller })
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pdbs(client: &Client) -> Api<PodDisruptionBudget> {
    Api::namespaced(client.clone(), NS)
}

async fn create_pdb(client: &Client, name: &str, app: &str, budget: Value) -> Result<PodDisruptionBudget> {
    let mut spec = json!({"selector": {"matchLabels": {"app": app}}});
    if let (Some(s), Some(b)) = (spec.as_object_mut(), budget.as_object()) {
        s.extend(b.clone());
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec
    }))?;
    Ok(pdbs(client).create(&PostParams::default(), &pdb).await?)
}

/// Counts the test expects: (expected, desired, current, allowed).
type Counts = (i32, i32, i32, i32);

fn counts(st: &PodDisruptionBudgetStatus) -> Counts {
    (st.expected_pods, st.desired_healthy, st.current_healthy, st.disruptions_allowed)
}

fn allowed_condition(st: &PodDisruptionBudgetStatus) -> Option<Condition> {
    st.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed").cloned()
}

/// Waits until the budget's status, for its current generation, has these counts.
async fn wait_status(
    client: &Client,
    name: &str,
    want: Counts,
) -> Result<(PodDisruptionBudget, PodDisruptionBudgetStatus)> {
    let res = eventually(&format!("{name} status {want:?}"), || async {
        let pdb = pdbs(client).get(name).await?;
        let st = pdb.status.clone().unwrap_or_default();
        let current = st.observed_generation.is_some() && st.observed_generation == pdb.metadata.generation;
        Ok((current && counts(&st) == want).then_some((pdb, st)))
    })
    .await;
    match res {
        Ok(v) => Ok(v),
        Err(e) => {
            let last = pdbs(client).get(name).await.ok().and_then(|p| p.status);
            Err(e.context(format!("last status: {last:?}")))
        }
    }
}

async fn create_pod(client: &Client, name: &str, app: &str, owner: Option<Value>) -> Result<Pod> {
    let mut meta = json!({"name": name, "namespace": NS, "labels": {"app": app}});
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([o]);
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), NS).create(&PostParams::default(), &pod).await?)
}

async fn set_ready(client: &Client, pod: &str, ready: bool) -> Result<()> {
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now}
    ]}});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "name": owner.meta().name,
        "uid": owner.meta().uid,
        "controller": true
    })
}

async fn create_replicaset(
    client: &Client,
    name: &str,
    app: &str,
    replicas: i32,
    owner: Option<Value>,
) -> Result<ReplicaSet> {
    let mut meta = json!({"name": name, "namespace": NS});
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([o]);
    }
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    }))?;
    Ok(Api::<ReplicaSet>::namespaced(client.clone(), NS).create(&PostParams::default(), &rs).await?)
}

async fn events_for(client: &Client, name: &str, reason: &str) -> Result<Vec<Event>> {
    Ok(Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

#[tokio::test]
async fn min_available_int_counts_ready_pods_and_follows_unready() -> Result<()> {
    let h = start().await?;
    for p in ["a-1", "a-2", "a-3"] {
        create_pod(&h.client, p, "a", None).await?;
        set_ready(&h.client, p, true).await?;
    }
    create_pod(&h.client, "other", "b", None).await?;
    create_pdb(&h.client, "a", "a", json!({"minAvailable": 2})).await?;
    let (pdb, st) = wait_status(&h.client, "a", (3, 2, 3, 1)).await?;
    assert_eq!(st.observed_generation, pdb.metadata.generation);
    let c = allowed_condition(&st).context("condition")?;
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "SufficientPods"));
    assert_eq!(c.observed_generation, pdb.metadata.generation);

    // A pod going unready lowers the healthy count and forbids disruptions.
    set_ready(&h.client, "a-2", false).await?;
    let (_, st) = wait_status(&h.client, "a", (3, 2, 2, 0)).await?;
    let c = allowed_condition(&st).context("condition")?;
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InsufficientPods"));

    // Ready again: allowed again.
    set_ready(&h.client, "a-2", true).await?;
    wait_status(&h.client, "a", (3, 2, 3, 1)).await?;

    // A terminating pod is not healthy (but still selected).
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.patch("a-3", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["test/hold"]}})))
        .await?;
    pods.delete("a-3", &Default::default()).await?;
    wait_status(&h.client, "a", (3, 2, 2, 0)).await?;
    pods.patch("a-3", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
    wait_status(&h.client, "a", (2, 2, 2, 0)).await?;
    Ok(())
}

#[tokio::test]
async fn min_available_percent_uses_the_replicaset_scale() -> Result<()> {
    let h = start().await?;
    let rs = create_replicaset(&h.client, "web", "web", 4, None).await?;
    for p in ["web-1", "web-2"] {
        create_pod(&h.client, p, "web", Some(controller_ref(&rs))).await?;
        set_ready(&h.client, p, true).await?;
    }
    create_pdb(&h.client, "web", "web", json!({"minAvailable": "50%"})).await?;
    // Expected is the ReplicaSet's scale (4), not the 2 pods; 50% of 4 is 2.
    wait_status(&h.client, "web", (4, 2, 2, 0)).await?;
    create_pod(&h.client, "web-3", "web", Some(controller_ref(&rs))).await?;
    set_ready(&h.client, "web-3", true).await?;
    wait_status(&h.client, "web", (4, 2, 3, 1)).await?;
    // 75% of 4 rounds up to 3.
    pdbs(&h.client)
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"minAvailable": "75%"}})))
        .await?;
    wait_status(&h.client, "web", (4, 3, 3, 0)).await?;
    Ok(())
}

#[tokio::test]
async fn max_unavailable_uses_the_deployment_scale() -> Result<()> {
    let h = start().await?;
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    }))?;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let d = deployments.create(&PostParams::default(), &d).await?;
    // The ReplicaSet says 1 replica: the Deployment's 3 must win.
    let rs = create_replicaset(&h.client, "api-abc", "api", 1, Some(controller_ref(&d))).await?;
    for p in ["api-1", "api-2", "api-3"] {
        create_pod(&h.client, p, "api", Some(controller_ref(&rs))).await?;
        set_ready(&h.client, p, true).await?;
    }
    create_pdb(&h.client, "api", "api", json!({"maxUnavailable": 1})).await?;
    let (_, st) = wait_status(&h.client, "api", (3, 2, 3, 1)).await?;
    assert_eq!(allowed_condition(&st).map(|c| c.status), Some("True".to_string()));

    // Scaling the Deployment up raises the expected count before any pod exists.
    deployments.patch("api", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await?;
    wait_status(&h.client, "api", (5, 4, 3, 0)).await?;
    Ok(())
}

#[tokio::test]
async fn no_matching_pods_gets_a_status_and_an_event() -> Result<()> {
    let h = start().await?;
    let pdb = create_pdb(&h.client, "empty", "nothing", json!({"minAvailable": 1})).await?;
    let (got, st) = wait_status(&h.client, "empty", (0, 1, 0, 0)).await?;
    assert_eq!(st.observed_generation, pdb.metadata.generation);
    assert_eq!(got.metadata.generation, Some(1));
    let c = allowed_condition(&st).context("condition")?;
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InsufficientPods"));
    let ev = eventually("NoPods event", || async {
        let evs = events_for(&h.client, "empty", "NoPods").await?;
        Ok(evs.into_iter().next())
    })
    .await?;
    assert_eq!(ev.note.as_deref(), Some("No matching pods found"));
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.reporting_controller.as_deref(), Some("controllermanager"));

    // maxUnavailable with nothing selected: expected 0, desired 0, nothing to disrupt.
    create_pdb(&h.client, "empty-max", "nothing", json!({"maxUnavailable": "25%"})).await?;
    wait_status(&h.client, "empty-max", (0, 0, 0, 0)).await?;
    Ok(())
}

#[tokio::test]
async fn observed_generation_follows_spec_changes() -> Result<()> {
    let h = start().await?;
    for p in ["g-1", "g-2"] {
        create_pod(&h.client, p, "g", None).await?;
        set_ready(&h.client, p, true).await?;
    }
    create_pdb(&h.client, "g", "g", json!({"minAvailable": 2})).await?;
    let (pdb, _) = wait_status(&h.client, "g", (2, 2, 2, 0)).await?;
    assert_eq!(pdb.metadata.generation, Some(1));
    let rv = pdb.resource_version();
    // A settled budget is not rewritten.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pdbs(&h.client).get("g").await?.resource_version(), rv);

    pdbs(&h.client).patch("g", &PatchParams::default(), &Patch::Merge(json!({"spec": {"minAvailable": 1}}))).await?;
    let (pdb, st) = wait_status(&h.client, "g", (2, 1, 2, 1)).await?;
    assert_eq!(pdb.metadata.generation, Some(2));
    assert_eq!(st.observed_generation, Some(2));
    assert_eq!(allowed_condition(&st).and_then(|c| c.observed_generation), Some(2));
    Ok(())
}

#[tokio::test]
async fn unknown_controller_fails_safe() -> Result<()> {
    let h = start().await?;
    let ghost = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": "no-such-uid", "controller": true});
    create_pod(&h.client, "lost-1", "lost", Some(ghost)).await?;
    set_ready(&h.client, "lost-1", true).await?;
    create_pdb(&h.client, "lost", "lost", json!({"maxUnavailable": 1})).await?;
    let c = eventually("SyncFailed condition", || async {
        let st = pdbs(&h.client).get("lost").await?.status.unwrap_or_default();
        Ok(allowed_condition(&st).filter(|c| c.reason == "SyncFailed").map(|c| (c, st.disruptions_allowed)))
    })
    .await?;
    assert_eq!(c.0.status, "False");
    assert_eq!(c.0.message, "found no controllers for pod \"lost-1\"");
    assert_eq!(c.1, 0);
    let ev = eventually("CalculateExpectedPodCountFailed event", || async {
        Ok(events_for(&h.client, "lost", "CalculateExpectedPodCountFailed").await?.into_iter().next())
    })
    .await?;
    assert_eq!(
        ev.note.as_deref(),
        Some("Failed to calculate the number of expected pods: found no controllers for pod \"lost-1\"")
    );
    assert_eq!(ev.type_.as_deref(), Some("Warning"));

    // Switching to an integer minAvailable needs no controller: the budget recovers.
    pdbs(&h.client)
        .patch(
            "lost",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maxUnavailable": null, "minAvailable": 1}})),
        )
        .await?;
    let (_, st) = wait_status(&h.client, "lost", (1, 1, 1, 0)).await?;
    assert_eq!(allowed_condition(&st).map(|c| c.reason), Some("InsufficientPods".to_string()));
    Ok(())
}

#[tokio::test]
async fn disrupted_pods_are_not_healthy_until_they_expire() -> Result<()> {
    let h = start().await?;
    for p in ["d-1", "d-2", "d-3"] {
        create_pod(&h.client, p, "d", None).await?;
        set_ready(&h.client, p, true).await?;
    }
    create_pdb(&h.client, "d", "d", json!({"minAvailable": 1})).await?;
    wait_status(&h.client, "d", (3, 1, 3, 2)).await?;
    // As the eviction handler would: record d-1 as just evicted, d-2 as evicted 3 minutes ago
    // (past the 2-minute timeout, so pruned), and a pod that does not exist (pruned).
    let now = Timestamp::now();
    let old = now - SignedDuration::from_secs(180);
    let fresh = Timestamp::from_second(now.as_second())?.to_string();
    let patch = json!({"status": {"disruptedPods": {"d-1": fresh, "d-2": old.to_string(), "ghost": fresh}}});
    pdbs(&h.client).patch_status("d", &PatchParams::default(), &Patch::Merge(patch)).await?;
    let (_, st) = wait_status(&h.client, "d", (3, 1, 2, 1)).await?;
    let disrupted = st.disrupted_pods.unwrap_or_default();
    assert_eq!(disrupted.keys().cloned().collect::<Vec<_>>(), vec!["d-1".to_string()]);
    let ev = eventually("NotDeleted event", || async {
        Ok(events_for(&h.client, "d-2", "NotDeleted").await?.into_iter().next())
    })
    .await?;
    assert_eq!(ev.note.as_deref(), Some("Pod was expected by PDB default/d to be deleted but it wasn't"));
    Ok(())
}

#[tokio::test]
async fn controllers_without_scale_are_reported_and_others_use_the_scale_subresource() -> Result<()> {
    let h = start().await?;
    // A DaemonSet has no scale subresource: upstream's error, through discovery.
    let ds =
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds-uid", "controller": true});
    create_pod(&h.client, "agent-1", "agent", Some(ds)).await?;
    create_pdb(&h.client, "agent", "agent", json!({"maxUnavailable": 1})).await?;
    let c = eventually("SyncFailed condition", || async {
        let st = pdbs(&h.client).get("agent").await?.status.unwrap_or_default();
        Ok(allowed_condition(&st).filter(|c| c.reason == "SyncFailed"))
    })
    .await?;
    assert_eq!(c.message, "daemonsets.apps does not implement the scale subresource");

    // A ReplicaSet whose Deployment is gone: neither cached finder applies, so its own scale
    // subresource gives the count.
    let orphaned_by =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone", "uid": "gone-uid", "controller": true});
    let rs = create_replicaset(&h.client, "batch-x", "batch", 2, Some(orphaned_by)).await?;
    create_pod(&h.client, "batch-1", "batch", Some(controller_ref(&rs))).await?;
    set_ready(&h.client, "batch-1", true).await?;
    create_pdb(&h.client, "batch", "batch", json!({"minAvailable": "50%"})).await?;
    wait_status(&h.client, "batch", (2, 1, 1, 0)).await?;
    Ok(())
}
