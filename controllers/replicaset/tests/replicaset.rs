//! The ReplicaSet controller against an in-process apiserver (TestEnv), with a fake "kubelet" in
//! the test marking pods Running + Ready through the status subresource.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_common::owner::controller_of;
use rkube_controller_replicaset::{Config, run};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(15);

struct Harness {
    _env: TestEnv,
    client: Client,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
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
    Ok(Harness { _env: env, client, tasks: vec![controller] })
}

fn replicaset(name: &str, app: &str, replicas: i32, min_ready: i32) -> Result<ReplicaSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "extra": "x"}, "annotations": {"note": "from-template"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))?)
}

fn orphan(name: &str, app: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))?)
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

/// Active pods controlled by the ReplicaSet with this UID.
async fn owned_pods(client: &Client, uid: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    Ok(pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| controller_of(&p.metadata).is_some_and(|r| r.uid == uid))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

async fn wait_owned(client: &Client, uid: &str, n: usize) -> Result<Vec<Pod>> {
    eventually(&format!("{n} owned pods"), || async {
        let pods = owned_pods(client, uid).await?;
        Ok((pods.len() == n).then_some(pods))
    })
    .await
}

async fn get_rs(client: &Client, name: &str) -> Result<ReplicaSet> {
    Ok(Api::<ReplicaSet>::namespaced(client.clone(), NS).get(name).await?)
}

async fn create_rs(client: &Client, rs: &ReplicaSet) -> Result<ReplicaSet> {
    Ok(Api::<ReplicaSet>::namespaced(client.clone(), NS).create(&PostParams::default(), rs).await?)
}

async fn scale(client: &Client, name: &str, replicas: i32) -> Result<()> {
    Api::<ReplicaSet>::namespaced(client.clone(), NS)
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await?;
    Ok(())
}

async fn mark_ready(client: &Client, pod: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(status)).await?;
    Ok(())
}

/// A fake kubelet: every pod of the namespace becomes Running + Ready; terminating pods are
/// removed (grace period 0).
fn fake_kubelet(client: Client) -> JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for p in list.items {
                    let name = p.name_any();
                    if p.metadata.deletion_timestamp.is_some() {
                        let _ = pods
                            .delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                            .await;
                    } else if !rkube_controller_common::pod::is_pod_ready(&p) {
                        let _ = mark_ready(&client, &name).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test]
async fn scales_up_and_down_with_template_metadata_status_and_events() -> Result<()> {
    let mut h = start().await?;
    h.tasks.push(fake_kubelet(h.client.clone()));
    let rs = create_rs(&h.client, &replicaset("web", "web", 3, 0)?).await?;
    let uid = rs.uid().context("uid")?;
    let pods = wait_owned(&h.client, &uid, 3).await?;
    for p in &pods {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get("extra").map(String::as_str), Some("x"));
        assert_eq!(p.annotations().get("note").map(String::as_str), Some("from-template"));
        let r = controller_of(&p.metadata).context("controller ref")?;
        assert_eq!((r.kind.as_str(), r.name.as_str(), r.block_owner_deletion), ("ReplicaSet", "web", Some(true)));
    }
    let st = eventually("3 ready replicas", || async {
        let rs = get_rs(&h.client, "web").await?;
        let st = rs.status.clone().unwrap_or_default();
        Ok((st.ready_replicas == Some(3) && st.available_replicas == Some(3)).then_some((rs, st)))
    })
    .await?;
    assert_eq!(st.1.replicas, 3);
    assert_eq!(st.1.fully_labeled_replicas, Some(3));
    assert_eq!(st.1.observed_generation, st.0.metadata.generation);

    // Events: one SuccessfulCreate per pod, naming it.
    let events: Api<Event> = Api::namespaced(h.client.clone(), NS);
    let created = eventually("SuccessfulCreate events", || async {
        let evs: Vec<Event> = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web"))
            .collect();
        Ok((evs.len() == 3).then_some(evs))
    })
    .await?;
    for e in &created {
        assert_eq!(e.reporting_controller.as_deref(), Some("replicaset-controller"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        let note = e.note.clone().unwrap_or_default();
        assert!(pods.iter().any(|p| note == format!("Created pod: {}", p.name_any())), "{note}");
    }

    scale(&h.client, "web", 1).await?;
    wait_owned(&h.client, &uid, 1).await?;
    let st = eventually("status after scale down", || async {
        let rs = get_rs(&h.client, "web").await?;
        let st = rs.status.clone().unwrap_or_default();
        Ok((st.replicas == 1 && st.observed_generation == rs.metadata.generation).then_some(st))
    })
    .await?;
    assert_eq!(st.ready_replicas, Some(1));
    let deleted = eventually("SuccessfulDelete events", || async {
        let n = events
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
            .count();
        Ok((n == 2).then_some(n))
    })
    .await?;
    assert_eq!(deleted, 2);

    scale(&h.client, "web", 0).await?;
    wait_owned(&h.client, &uid, 0).await?;
    Ok(())
}

/// Tracks the active pods (not terminating) with a label under a watch, recording the extremes.
struct Census {
    max: usize,
    min_after_reset: usize,
    current: usize,
}

fn census(client: Client, app: &str) -> (Arc<Mutex<Census>>, JoinHandle<()>) {
    let state = Arc::new(Mutex::new(Census { max: 0, min_after_reset: usize::MAX, current: 0 }));
    let s = state.clone();
    let api: Api<Pod> = Api::namespaced(client, NS);
    let cfg = watcher::Config::default().labels(&format!("app={app}"));
    let task = tokio::spawn(async move {
        let mut active: HashMap<String, bool> = HashMap::new();
        let mut stream = watcher(api, cfg).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                    active.insert(p.name_any(), p.metadata.deletion_timestamp.is_none());
                }
                Ok(watcher::Event::Delete(p)) => {
                    active.remove(&p.name_any());
                }
                _ => {}
            }
            let n = active.values().filter(|a| **a).count();
            if let Ok(mut c) = s.lock() {
                c.current = n;
                c.max = c.max.max(n);
                c.min_after_reset = c.min_after_reset.min(n);
            }
        }
    });
    (state, task)
}

/// Touches an annotation (a merge patch without resourceVersion). The apiserver currently answers
/// such patches with 409 when they race a status write, where upstream retries internally; retry
/// here.
async fn poke(api: &Api<ReplicaSet>, name: &str, key: &str, i: i32) -> Result<()> {
    let patch = Patch::Merge(json!({"metadata": {"annotations": {key: i.to_string()}}}));
    for _ in 0..20 {
        match api.patch(name, &PatchParams::default(), &patch).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("patch kept conflicting")
}

#[tokio::test]
async fn never_more_pods_than_replicas_even_when_poked() -> Result<()> {
    let mut h = start().await?;
    let (counts, task) = census(h.client.clone(), "burst");
    h.tasks.push(task);
    let rs = create_rs(&h.client, &replicaset("burst", "burst", 12, 0)?).await?;
    let uid = rs.uid().context("uid")?;
    // Poke the ReplicaSet while it creates: each update triggers a sync that must not create
    // more pods while the earlier creations are not yet observed.
    let rs_api: Api<ReplicaSet> = Api::namespaced(h.client.clone(), NS);
    for i in 0..15 {
        poke(&rs_api, "burst", "poke", i).await?;
    }
    wait_owned(&h.client, &uid, 12).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(owned_pods(&h.client, &uid).await?.len(), 12);
    {
        let c = counts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        assert_eq!(c.max, 12, "at most 12 pods at any moment");
    }

    // Scale down: the count never drops below the new target.
    if let Ok(mut c) = counts.lock() {
        c.min_after_reset = c.current;
    }
    scale(&h.client, "burst", 4).await?;
    for i in 0..10 {
        poke(&rs_api, "burst", "poke2", i).await?;
    }
    wait_owned(&h.client, &uid, 4).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(owned_pods(&h.client, &uid).await?.len(), 4);
    let c = counts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    assert_eq!(c.min_after_reset, 4, "never fewer than 4 while scaling down");
    assert_eq!(c.max, 12);
    Ok(())
}

#[tokio::test]
async fn adopts_matching_orphans_instead_of_creating() -> Result<()> {
    let h = start().await?;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.create(&PostParams::default(), &orphan("stray-1", "adopt")?).await?;
    pods.create(&PostParams::default(), &orphan("stray-2", "adopt")?).await?;
    // An orphan that does not match stays alone.
    pods.create(&PostParams::default(), &orphan("other", "nope")?).await?;
    let rs = create_rs(&h.client, &replicaset("adopter", "adopt", 3, 0)?).await?;
    let uid = rs.uid().context("uid")?;
    let owned = wait_owned(&h.client, &uid, 3).await?;
    let names: Vec<String> = owned.iter().map(|p| p.name_any()).collect();
    assert!(names.contains(&"stray-1".to_string()) && names.contains(&"stray-2".to_string()), "{names:?}");
    let adopted = pods.get("stray-1").await?;
    let r = controller_of(&adopted.metadata).context("adopted controller ref")?;
    assert_eq!((r.name.as_str(), r.uid.as_str(), r.controller), ("adopter", uid.as_str(), Some(true)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Exactly one pod was created.
    let all = pods.list(&ListParams::default().labels("app=adopt")).await?.items;
    assert_eq!(all.len(), 3);
    assert!(pods.get("other").await?.metadata.owner_references.is_none_or(|r| r.is_empty()));
    Ok(())
}

#[tokio::test]
async fn releases_pods_whose_labels_stop_matching() -> Result<()> {
    let h = start().await?;
    let rs = create_rs(&h.client, &replicaset("rel", "rel", 2, 0)?).await?;
    let uid = rs.uid().context("uid")?;
    let owned = wait_owned(&h.client, &uid, 2).await?;
    let victim = owned[0].name_any();
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.patch(&victim, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})))
        .await?;
    eventually("release", || async {
        let p = pods.get(&victim).await?;
        Ok(p.metadata.owner_references.as_ref().is_none_or(|r| r.iter().all(|r| r.uid != uid)).then_some(()))
    })
    .await?;
    // A replacement keeps the ReplicaSet at 2, and the released pod is left alone.
    let now_owned = wait_owned(&h.client, &uid, 2).await?;
    assert!(now_owned.iter().all(|p| p.name_any() != victim));
    assert!(pods.get(&victim).await?.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test]
async fn available_replicas_wait_for_min_ready_seconds() -> Result<()> {
    let mut h = start().await?;
    let rs = create_rs(&h.client, &replicaset("slow", "slow", 2, 2)?).await?;
    let uid = rs.uid().context("uid")?;
    wait_owned(&h.client, &uid, 2).await?;
    h.tasks.push(fake_kubelet(h.client.clone()));
    let ready_at = eventually("2 ready", || async {
        let st = get_rs(&h.client, "slow").await?.status.unwrap_or_default();
        Ok((st.ready_replicas == Some(2)).then_some((Instant::now(), st)))
    })
    .await?;
    assert_eq!(ready_at.1.available_replicas, Some(0), "not available before minReadySeconds");
    eventually("2 available", || async {
        let st = get_rs(&h.client, "slow").await?.status.unwrap_or_default();
        Ok((st.available_replicas == Some(2)).then_some(()))
    })
    .await?;
    let waited = ready_at.0.elapsed();
    assert!(waited >= Duration::from_millis(1500), "available too early: {waited:?}");
    assert!(waited < Duration::from_secs(6), "available too late (no requeue?): {waited:?}");
    Ok(())
}

async fn bind(client: &Client, pod: &str, node: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    pods.create_subresource::<serde_json::Value, serde_json::Value>("binding", pod, &PostParams::default(), &binding)
        .await?;
    Ok(())
}

#[tokio::test]
async fn scale_down_deletes_by_upstream_ranking() -> Result<()> {
    let h = start().await?;
    let rs = create_rs(&h.client, &replicaset("rank", "rank", 3, 0)?).await?;
    let uid = rs.uid().context("uid")?;
    let mut names: Vec<String> = wait_owned(&h.client, &uid, 3).await?.iter().map(|p| p.name_any()).collect();
    names.sort();
    let (a, b) = (names[0].clone(), names[1].clone());
    // a and b run on a node and are ready; c stays unscheduled and pending.
    for p in [&a, &b] {
        bind(&h.client, p, "node-1").await?;
        mark_ready(&h.client, p).await?;
    }
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    // b is cheaper to delete than a.
    pods.patch(
        &b,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-10"}}})),
    )
    .await?;
    eventually("ready replicas", || async {
        let st = get_rs(&h.client, "rank").await?.status.unwrap_or_default();
        Ok((st.ready_replicas == Some(2)).then_some(()))
    })
    .await?;

    scale(&h.client, "rank", 2).await?;
    let left = wait_owned(&h.client, &uid, 2).await?;
    let mut left: Vec<String> = left.iter().map(|p| p.name_any()).collect();
    left.sort();
    assert_eq!(left, vec![a.clone(), b.clone()], "the unassigned pending pod goes first");

    scale(&h.client, "rank", 1).await?;
    let left = wait_owned(&h.client, &uid, 1).await?;
    assert_eq!(left[0].name_any(), a, "the lower deletion cost goes next");
    // b is terminating (it was on a node: graceful), not replaced.
    let b_pod = pods.get(&b).await?;
    assert!(b_pod.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(owned_pods(&h.client, &uid).await?.len(), 1);
    let st = get_rs(&h.client, "rank").await?.status.unwrap_or_default();
    assert_eq!(st.replicas, 1, "terminating pods are not counted");
    Ok(())
}

#[tokio::test]
async fn terminal_pods_are_replaced() -> Result<()> {
    let h = start().await?;
    let rs = create_rs(&h.client, &replicaset("term", "term", 2, 0)?).await?;
    let uid = rs.uid().context("uid")?;
    let owned = wait_owned(&h.client, &uid, 2).await?;
    let done = owned[0].name_any();
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.patch_status(&done, &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Failed"}}))).await?;
    // The failed pod no longer counts: a third pod appears, two are active.
    eventually("replacement", || async {
        let all: Vec<Pod> = owned_pods(&h.client, &uid).await?;
        let active = all.iter().filter(|p| rkube_controller_common::pod::is_pod_active(p)).count();
        Ok((all.len() == 3 && active == 2).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn failed_creations_set_replica_failure_and_recover() -> Result<()> {
    let h = start().await?;
    // Template finalizers are not validated on the ReplicaSet, but a pod with this one is invalid.
    let mut bad = replicaset("broken", "broken", 3, 0)?;
    if let Some(meta) = bad.spec.as_mut().and_then(|s| s.template.as_mut()).and_then(|t| t.metadata.as_mut()) {
        meta.finalizers = Some(vec!["bad finalizer!".into()]);
    }
    let rs = create_rs(&h.client, &bad).await?;
    let uid = rs.uid().context("uid")?;
    let cond = eventually("ReplicaFailure", || async {
        let rs = get_rs(&h.client, "broken").await?;
        let conds = rs.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conds.into_iter().find(|c| c.type_ == "ReplicaFailure"))
    })
    .await?;
    assert_eq!(cond.status, "True");
    assert_eq!(cond.reason.as_deref(), Some("FailedCreate"));
    assert!(cond.message.clone().unwrap_or_default().contains("is invalid"), "{:?}", cond.message);
    let events: Api<Event> = Api::namespaced(h.client.clone(), NS);
    let warning = eventually("FailedCreate event", || async {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedCreate")))
    })
    .await?;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(warning.note.clone().unwrap_or_default().starts_with("Error creating: "), "{:?}", warning.note);
    assert!(owned_pods(&h.client, &uid).await?.is_empty());

    // Fix the template: pods appear and the condition goes away.
    Api::<ReplicaSet>::namespaced(h.client.clone(), NS)
        .patch(
            "broken",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"finalizers": null}}}})),
        )
        .await?;
    wait_owned(&h.client, &uid, 3).await?;
    eventually("condition cleared", || async {
        let rs = get_rs(&h.client, "broken").await?;
        let conds = rs.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conds.iter().all(|c| c.type_ != "ReplicaFailure").then_some(()))
    })
    .await?;
    Ok(())
}
