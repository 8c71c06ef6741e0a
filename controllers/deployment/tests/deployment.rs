//! The Deployment controller against an in-process apiserver, with a stand-in
//! ReplicaSet controller and kubelet (see `common`).

mod common;

use anyhow::Result;
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use rkube_controller_deployment::util::*;
use serde_json::json;

fn owned_by<'a>(rss: &'a [ReplicaSet], d: &Deployment) -> Vec<&'a ReplicaSet> {
    rss.iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter().any(|o| Some(&o.uid) == d.metadata.uid.as_ref() && o.controller == Some(true))
            })
        })
        .collect()
}

async fn list_rs(h: &Harness) -> Result<Vec<ReplicaSet>> {
    Ok(h.replicasets().list(&ListParams::default()).await?.items)
}

fn rs_for_image<'a>(rss: &'a [ReplicaSet], image: &str) -> Option<&'a ReplicaSet> {
    rss.iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            == Some(image)
    })
}

async fn set_image(h: &Harness, name: &str, image: &str) -> Result<()> {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    patch_deploy(h, name, Patch::Strategic(patch)).await?;
    Ok(())
}

/// Patches a Deployment, retrying on 409: rkube's apiserver currently answers a patch that
/// races with a concurrent write (here: the controller's) with a Conflict instead of
/// re-applying it server-side as upstream does.
async fn patch_deploy(h: &Harness, name: &str, patch: Patch<serde_json::Value>) -> Result<Deployment> {
    let mut attempts = 0;
    loop {
        match h.deployments().patch(name, &PatchParams::default(), &patch).await {
            Err(kube::Error::Api(s)) if s.code == 409 && attempts < 20 => attempts += 1,
            other => return Ok(other?),
        }
    }
}

fn progressing(d: &Deployment) -> Option<(String, String)> {
    get_condition(d.status.as_ref(), DEPLOYMENT_PROGRESSING)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn create_makes_hashed_replicaset_revision_1_and_completes() -> Result<()> {
    let h = Harness::start().await?;
    let d = h.deployments().create(&PostParams::default(), &deployment("web", 3, "nginx:1")).await?;
    let done = wait_rollout(&h, "web", 15).await?;
    let rss = list_rs(&h).await?;
    let ours = owned_by(&rss, &d);
    assert_eq!(ours.len(), 1);
    let rs = ours[0];
    let hash = rs.labels().get("pod-template-hash").cloned().unwrap_or_default();
    assert!(!hash.is_empty());
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    let sel = rs.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    assert_eq!(sel.get("pod-template-hash"), Some(&hash));
    assert_eq!(sel.get("app").map(String::as_str), Some("web"));
    assert_eq!(annotation(&rs.metadata, REVISION_ANNOTATION), Some("1"));
    assert_eq!(annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION), Some("3"));
    assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("4"));
    assert_eq!(annotation(&done.metadata, REVISION_ANNOTATION), Some("1"));
    // Status as kubectl rollout status reads it, and the conditions.
    let s = done.status.clone().unwrap_or_default();
    assert_eq!(
        (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(s.unavailable_replicas.unwrap_or(0), 0);
    let d2 = eventually(10, "NewReplicaSetAvailable", || {
        let api = h.deployments();
        async move {
            let d = api.get("web").await?;
            Ok((progressing(&d) == Some(("True".into(), NEW_RS_AVAILABLE_REASON.into()))).then_some(d))
        }
    })
    .await?;
    let avail = get_condition(d2.status.as_ref(), DEPLOYMENT_AVAILABLE).cloned();
    assert_eq!(avail.map(|c| (c.status, c.reason)), Some(("True".into(), Some(MIN_REPLICAS_AVAILABLE.into()))));
    // Upstream's event wording.
    let events: Api<Event> = Api::namespaced(h.client.clone(), NS);
    let want = format!("Scaled up replica set {} to 3 from 0", rs.name_any());
    eventually(10, "ScalingReplicaSet event", || {
        let events = events.clone();
        let want = want.clone();
        async move {
            let list = events.list(&ListParams::default()).await?.items;
            Ok(list
                .iter()
                .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet") && e.note.as_deref() == Some(want.as_str()))
                .then_some(()))
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn rolling_update_respects_surge_and_unavailability() -> Result<()> {
    let h = Harness::start().await?;
    let mut d = deployment("web", 10, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = serde_json::from_value(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}),
        )?;
    }
    let d = h.deployments().create(&PostParams::default(), &d).await?;
    wait_rollout(&h, "web", 20).await?;
    let watch = PodWatch::start(h.client.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    set_image(&h, "web", "nginx:2").await?;
    let done = wait_rollout(&h, "web", 30).await?;
    assert_eq!(annotation(&done.metadata, REVISION_ANNOTATION), Some("2"));
    let samples = watch.samples();
    assert!(samples.len() > 20, "watcher saw the rollout ({} samples)", samples.len());
    for s in &samples {
        let total: usize = s.values().map(|v| v.0).sum();
        let available: usize = s.values().map(|v| v.1).sum();
        assert!(total <= 13, "more than replicas+maxSurge pods: {total} in {s:?}");
        assert!(available >= 8, "fewer than replicas-maxUnavailable available: {available} in {s:?}");
    }
    let rss = list_rs(&h).await?;
    let ours = owned_by(&rss, &d);
    assert_eq!(ours.len(), 2);
    let old = rs_for_image(&rss, "nginx:1").map(rs_replicas);
    let new = rs_for_image(&rss, "nginx:2").cloned();
    assert_eq!(old, Some(0));
    assert_eq!(new.as_ref().map(rs_replicas), Some(10));
    assert_eq!(
        new.as_ref().and_then(|r| annotation(&r.metadata, REVISION_ANNOTATION).map(str::to_string)),
        Some("2".into())
    );
    Ok(())
}

#[tokio::test]
async fn recreate_never_mixes_old_and_new_pods() -> Result<()> {
    let h = Harness::start().await?;
    let mut d = deployment("web", 3, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = serde_json::from_value(json!({"type": "Recreate"}))?;
    }
    h.deployments().create(&PostParams::default(), &d).await?;
    wait_rollout(&h, "web", 15).await?;
    let old_uid = list_rs(&h).await?.first().and_then(|r| r.uid()).unwrap_or_default();
    let watch = PodWatch::start(h.client.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    set_image(&h, "web", "nginx:2").await?;
    wait_rollout(&h, "web", 20).await?;
    let samples = watch.samples();
    let mut saw_new = false;
    for s in &samples {
        let old = s.get(&old_uid).map(|v| v.0).unwrap_or(0);
        let new: usize = s.iter().filter(|(k, _)| **k != old_uid).map(|(_, v)| v.0).sum();
        saw_new |= new > 0;
        assert!(old == 0 || new == 0, "old and new pods at once: {s:?}");
    }
    assert!(saw_new);
    Ok(())
}

#[tokio::test]
async fn paused_deployment_scales_but_does_not_roll_out_until_resumed() -> Result<()> {
    let h = Harness::start().await?;
    let d = h.deployments().create(&PostParams::default(), &deployment("web", 2, "nginx:1")).await?;
    wait_rollout(&h, "web", 15).await?;
    patch_deploy(&h, "web", Patch::Merge(json!({"spec": {"paused": true}}))).await?;
    set_image(&h, "web", "nginx:2").await?;
    patch_deploy(&h, "web", Patch::Merge(json!({"spec": {"replicas": 4}}))).await?;
    eventually(10, "paused condition and scaled RS", || {
        let h = &h;
        async move {
            let d = h.deployments().get("web").await?;
            let rss = list_rs(h).await?;
            let old = rs_for_image(&rss, "nginx:1").map(rs_replicas);
            Ok((progressing(&d) == Some(("Unknown".into(), PAUSED_DEPLOY_REASON.into())) && old == Some(4))
                .then_some(()))
        }
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rss = list_rs(&h).await?;
    assert_eq!(owned_by(&rss, &d).len(), 1, "no new ReplicaSet while paused");
    patch_deploy(&h, "web", Patch::Merge(json!({"spec": {"paused": false}}))).await?;
    let done = wait_rollout(&h, "web", 20).await?;
    assert_eq!(annotation(&done.metadata, REVISION_ANNOTATION), Some("2"));
    let rss = list_rs(&h).await?;
    assert_eq!(rs_for_image(&rss, "nginx:2").map(rs_replicas), Some(4));
    assert_eq!(rs_for_image(&rss, "nginx:1").map(rs_replicas), Some(0));
    Ok(())
}

#[tokio::test]
async fn rollback_reuses_old_replicaset_and_bumps_its_revision() -> Result<()> {
    let h = Harness::start().await?;
    h.deployments().create(&PostParams::default(), &deployment("web", 2, "nginx:1")).await?;
    wait_rollout(&h, "web", 15).await?;
    set_image(&h, "web", "nginx:2").await?;
    wait_rollout(&h, "web", 15).await?;
    let rss = list_rs(&h).await?;
    let v1 = rs_for_image(&rss, "nginx:1").cloned().ok_or_else(|| anyhow::anyhow!("v1 RS"))?;
    // What `kubectl rollout undo` does: copy the RS template (minus the hash label) into the Deployment.
    let mut template = v1.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    if let Some(l) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove("pod-template-hash");
    }
    let patch = json!({"spec": {"template": template}});
    patch_deploy(&h, "web", Patch::Merge(patch)).await?;
    let done = eventually(15, "rollback", || {
        let api = h.deployments();
        async move {
            let d = api.get("web").await?;
            Ok((rollout_done(&d) && annotation(&d.metadata, REVISION_ANNOTATION) == Some("3")).then_some(d))
        }
    })
    .await?;
    let rss = list_rs(&h).await?;
    assert_eq!(owned_by(&rss, &done).len(), 2, "no third ReplicaSet");
    let reused = rs_for_image(&rss, "nginx:1").cloned().ok_or_else(|| anyhow::anyhow!("v1 RS"))?;
    assert_eq!(reused.uid(), v1.uid());
    assert_eq!(annotation(&reused.metadata, REVISION_ANNOTATION), Some("3"));
    assert_eq!(annotation(&reused.metadata, REVISION_HISTORY_ANNOTATION), Some("1"));
    assert_eq!(rs_replicas(&reused), 2);
    assert_eq!(rs_for_image(&rss, "nginx:2").map(rs_replicas), Some(0));
    Ok(())
}

#[tokio::test]
async fn revision_history_limit_deletes_oldest_scaled_down_replicasets() -> Result<()> {
    let h = Harness::start().await?;
    let mut d = deployment("web", 1, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.revision_history_limit = Some(1);
    }
    h.deployments().create(&PostParams::default(), &d).await?;
    wait_rollout(&h, "web", 15).await?;
    for image in ["nginx:2", "nginx:3", "nginx:4"] {
        set_image(&h, "web", image).await?;
        eventually(15, "rollout", || {
            let api = h.deployments();
            async move {
                let d = api.get("web").await?;
                let img = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone());
                Ok((rollout_done(&d) && img.as_deref() == Some(image)).then_some(()))
            }
        })
        .await?;
    }
    let rss = eventually(10, "old ReplicaSets cleaned up", || {
        let h = &h;
        async move {
            let rss = list_rs(h).await?;
            Ok((rss.len() == 2).then_some(rss))
        }
    })
    .await?;
    assert!(rs_for_image(&rss, "nginx:4").is_some());
    assert!(rs_for_image(&rss, "nginx:3").is_some());
    Ok(())
}

#[tokio::test]
async fn progress_deadline_exceeded_when_pods_never_ready() -> Result<()> {
    let h = Harness::start().await?;
    let mut d = deployment("web", 2, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.progress_deadline_seconds = Some(2);
    }
    h.deployments().create(&PostParams::default(), &d).await?;
    wait_rollout(&h, "web", 15).await?;
    set_image(&h, "web", NEVER_READY).await?;
    let d = eventually(15, "ProgressDeadlineExceeded", || {
        let api = h.deployments();
        async move {
            let d = api.get("web").await?;
            Ok((progressing(&d) == Some(("False".into(), TIMED_OUT_REASON.into()))).then_some(d))
        }
    })
    .await?;
    let c = get_condition(d.status.as_ref(), DEPLOYMENT_PROGRESSING).cloned();
    let msg = c.and_then(|c| c.message).unwrap_or_default();
    assert!(msg.starts_with("ReplicaSet \"web-") && msg.ends_with("has timed out progressing."), "{msg}");
    // The old pods keep the Deployment available (maxUnavailable 25% of 2 rounds down to 0).
    let avail = get_condition(d.status.as_ref(), DEPLOYMENT_AVAILABLE).map(|c| c.status.clone());
    assert_eq!(avail.as_deref(), Some("True"));
    Ok(())
}

#[tokio::test]
async fn scaling_mid_rollout_is_proportional() -> Result<()> {
    let h = Harness::start().await?;
    let mut d = deployment("web", 10, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = serde_json::from_value(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}),
        )?;
    }
    h.deployments().create(&PostParams::default(), &d).await?;
    wait_rollout(&h, "web", 20).await?;
    set_image(&h, "web", NEVER_READY).await?;
    // Stuck rollout: old 8, new 5 (surge 3 + 2 unavailable), the new pods never ready.
    eventually(15, "stuck rollout 8/5", || {
        let h = &h;
        async move {
            let rss = list_rs(h).await?;
            let old = rs_for_image(&rss, "nginx:1").map(rs_replicas);
            let new = rs_for_image(&rss, NEVER_READY).map(rs_replicas);
            Ok((old == Some(8) && new == Some(5)).then_some(()))
        }
    })
    .await?;
    patch_deploy(&h, "web", Patch::Merge(json!({"spec": {"replicas": 15}}))).await?;
    let (old, new) = eventually(15, "proportional scale to 15", || {
        let h = &h;
        async move {
            let rss = list_rs(h).await?;
            let old = rs_for_image(&rss, "nginx:1").cloned();
            let new = rs_for_image(&rss, NEVER_READY).cloned();
            let done = [&old, &new]
                .iter()
                .all(|r| r.as_ref().and_then(|r| annotation(&r.metadata, DESIRED_REPLICAS_ANNOTATION)) == Some("15"));
            Ok(done.then_some((old, new)))
        }
    })
    .await?;
    // 15 + surge 3 = 18 spread over 8:5 -> 11:7 (upstream's rounding).
    assert_eq!(old.as_ref().map(rs_replicas), Some(11));
    assert_eq!(new.as_ref().map(rs_replicas), Some(7));
    assert_eq!(
        old.as_ref().and_then(|r| annotation(&r.metadata, MAX_REPLICAS_ANNOTATION).map(str::to_string)),
        Some("18".into())
    );
    Ok(())
}

/// The ReplicaSet controller deletes a scaled-down ReplicaSet's pods late (a loaded machine):
/// the new ReplicaSet must not grow before they are gone, or more than replicas + maxSurge pods
/// run at once (what the orchestration e2e saw under load: 14 pods for 10 + 3).
#[tokio::test]
async fn rolling_update_surge_counts_pods_not_yet_deleted() -> Result<()> {
    let h = Harness::start_with_deletion_delay(std::time::Duration::from_millis(300)).await?;
    let mut d = deployment("web", 10, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = serde_json::from_value(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}),
        )?;
    }
    h.deployments().create(&PostParams::default(), &d).await?;
    wait_rollout(&h, "web", 20).await?;
    let watch = PodWatch::start(h.client.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    set_image(&h, "web", "nginx:2").await?;
    wait_rollout(&h, "web", 60).await?;
    let samples = watch.samples();
    assert!(samples.len() > 20, "watcher saw the rollout ({} samples)", samples.len());
    let max_total = samples.iter().map(|s| s.values().map(|v| v.0).sum::<usize>()).max().unwrap_or(0);
    let min_available = samples.iter().map(|s| s.values().map(|v| v.1).sum::<usize>()).min().unwrap_or(0);
    assert!(max_total <= 13, "more than replicas+maxSurge pods at once: {max_total}");
    assert!(max_total > 10, "the rollout surged ({max_total})");
    assert!(min_available >= 8, "fewer than replicas-maxUnavailable available: {min_available}");
    Ok(())
}

#[tokio::test]
async fn rolling_update_with_the_real_replicaset_controller() -> Result<()> {
    let h = Harness::start_with_replicaset_controller().await?;
    // Defaults: RollingUpdate 25%/25% of 8 -> maxSurge 2, maxUnavailable 2.
    h.deployments().create(&PostParams::default(), &deployment("web", 8, "nginx:1")).await?;
    wait_rollout(&h, "web", 20).await?;
    let watch = PodWatch::start(h.client.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    set_image(&h, "web", "nginx:2").await?;
    let done = wait_rollout(&h, "web", 30).await?;
    assert_eq!(annotation(&done.metadata, REVISION_ANNOTATION), Some("2"));
    for s in &watch.samples() {
        let total: usize = s.values().map(|v| v.0).sum();
        let available: usize = s.values().map(|v| v.1).sum();
        assert!(total <= 10, "more than replicas+maxSurge pods: {total} in {s:?}");
        assert!(available >= 6, "fewer than replicas-maxUnavailable available: {available} in {s:?}");
    }
    let rss = list_rs(&h).await?;
    assert_eq!(rs_for_image(&rss, "nginx:1").map(rs_replicas), Some(0));
    assert_eq!(rs_for_image(&rss, "nginx:2").map(rs_replicas), Some(8));
    Ok(())
}

#[tokio::test]
async fn hash_collision_bumps_collision_count() -> Result<()> {
    let h = Harness::start().await?;
    let mut d = deployment("web", 1, "nginx:1");
    if let Some(s) = d.spec.as_mut() {
        s.paused = Some(true);
    }
    h.deployments().create(&PostParams::default(), &d).await?;
    // The name the new ReplicaSet would get, taken by someone else's ReplicaSet.
    let stored = h.deployments().get("web").await?;
    let template = stored.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let taken = format!("web-{}", rkube_controller_common::hash::compute_hash(&template, None));
    let squatter: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": taken, "namespace": NS},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        }
    }))?;
    h.replicasets().create(&PostParams::default(), &squatter).await?;
    patch_deploy(&h, "web", Patch::Merge(json!({"spec": {"paused": false}}))).await?;
    let done = wait_rollout(&h, "web", 15).await?;
    assert_eq!(done.status.as_ref().and_then(|s| s.collision_count), Some(1));
    let rss = list_rs(&h).await?;
    let ours = owned_by(&rss, &done);
    assert_eq!(ours.len(), 1);
    let expected = format!("web-{}", rkube_controller_common::hash::compute_hash(&template, Some(1)));
    assert_eq!(ours[0].name_any(), expected);
    Ok(())
}
