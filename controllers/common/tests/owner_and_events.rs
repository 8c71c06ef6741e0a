//! ControllerRefManager and EventPublisher against an in-process apiserver.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::{Client, ResourceExt};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_common::Error;
use rkube_controller_common::events::EventPublisher;
use rkube_controller_common::owner::{CanAdopt, ControllerRefManager, controller_of, controller_ref};
use serde_json::json;

const NS: &str = "default";

async fn make_rs(client: &Client, name: &str, finalizer: bool) -> Result<ReplicaSet> {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name, "finalizers": if finalizer { json!(["example.com/hold"]) } else { json!(null) }},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "a"}},
                 "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))?;
    Ok(Api::<ReplicaSet>::namespaced(client.clone(), NS).create(&PostParams::default(), &rs).await?)
}

async fn make_pod(client: &Client, name: &str, app: &str, owner: Option<&ReplicaSet>) -> Result<Pod> {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))?;
    if let Some(o) = owner {
        pod.metadata.owner_references = Some(vec![controller_ref(o)]);
    }
    Ok(Api::<Pod>::namespaced(client.clone(), NS).create(&PostParams::default(), &pod).await?)
}

fn selects_app_a(p: &Pod) -> bool {
    let sel: Selector = [("app", "a")].into_iter().collect();
    sel.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default()))
}

fn manager(client: &Client, rs: &ReplicaSet) -> ControllerRefManager<Pod> {
    let can = CanAdopt::recheck_deletion_timestamp(
        Api::<ReplicaSet>::namespaced(client.clone(), NS),
        rs.name_any(),
        rs.uid().unwrap_or_default(),
    );
    ControllerRefManager::new(Api::namespaced(client.clone(), NS), rs, can)
}

#[tokio::test]
async fn claim_adopts_keeps_releases_and_ignores() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let rs = make_rs(&client, "owner", false).await?;
    let other = make_rs(&client, "other", false).await?;
    let pods = vec![
        make_pod(&client, "orphan-match", "a", None).await?,
        make_pod(&client, "orphan-nomatch", "b", None).await?,
        make_pod(&client, "mine-match", "a", Some(&rs)).await?,
        make_pod(&client, "mine-nomatch", "b", Some(&rs)).await?,
        make_pod(&client, "theirs", "a", Some(&other)).await?,
    ];
    let claimed = manager(&client, &rs).claim(pods, selects_app_a).await?;
    let mut names: Vec<String> = claimed.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(names, ["mine-match", "orphan-match"]);

    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let uid = rs.uid().context("uid")?;
    let adopted = api.get("orphan-match").await?;
    let r = controller_of(&adopted.metadata).context("adopted")?;
    assert_eq!((r.uid.as_str(), r.controller, r.block_owner_deletion), (uid.as_str(), Some(true), Some(true)));
    let released = api.get("mine-nomatch").await?;
    assert!(released.metadata.owner_references.unwrap_or_default().is_empty(), "released");
    assert!(api.get("orphan-nomatch").await?.metadata.owner_references.is_none_or(|r| r.is_empty()));
    let theirs = api.get("theirs").await?;
    assert_eq!(controller_of(&theirs.metadata).map(|r| r.uid.clone()), other.uid());
    Ok(())
}

#[tokio::test]
async fn adoption_rechecks_the_owner_uncached() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    // A cached copy of an owner that has since started deleting (held by a finalizer).
    let stale = make_rs(&client, "doomed", true).await?;
    rs_api.delete("doomed", &DeleteParams::default()).await?;
    let orphan = make_pod(&client, "lonely", "a", None).await?;
    let err = manager(&client, &stale).claim(vec![orphan.clone()], selects_app_a).await;
    assert!(matches!(err, Err(Error::CannotAdopt(_))), "{err:?}");
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(api.get("lonely").await?.metadata.owner_references.is_none_or(|r| r.is_empty()));

    // An owner that was replaced by a namesake (other UID) may not adopt either.
    let old = make_rs(&client, "phoenix", false).await?;
    rs_api.delete("phoenix", &DeleteParams::default()).await?;
    make_rs(&client, "phoenix", false).await?;
    let err = manager(&client, &old).claim(vec![orphan], selects_app_a).await;
    let msg = format!("{err:?}");
    assert!(matches!(err, Err(Error::CannotAdopt(_))) && msg.contains("is gone"), "{msg}");

    // The live owner being deleted: no adoption and no release, no API call needed.
    rs_api.patch("doomed", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))).await?;
    let live = rs_api.get("doomed").await?;
    assert!(live.metadata.deletion_timestamp.is_some());
    let mine = make_pod(&client, "kept", "b", Some(&live)).await?;
    let claimed = manager(&client, &live).claim(vec![mine], selects_app_a).await?;
    assert!(claimed.is_empty());
    assert_eq!(controller_of(&api.get("kept").await?.metadata).map(|r| r.uid.clone()), live.uid());
    Ok(())
}

#[tokio::test]
async fn release_of_a_recreated_child_does_not_touch_the_new_one() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let rs = make_rs(&client, "owner", false).await?;
    let old = make_pod(&client, "same-name", "b", Some(&rs)).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    api.delete("same-name", &DeleteParams::default()).await?;
    make_pod(&client, "same-name", "b", Some(&rs)).await?;
    // Claiming the stale copy wants to release it; the UID precondition protects the new pod.
    let claimed = manager(&client, &rs).claim(vec![old], selects_app_a).await;
    assert!(claimed.is_ok() || matches!(claimed, Err(Error::Kube(kube::Error::Api(ref s))) if s.code == 409));
    let now = api.get("same-name").await?;
    assert_eq!(controller_of(&now.metadata).map(|r| r.uid.clone()), rs.uid());
    Ok(())
}

#[tokio::test]
async fn events_are_published_and_identical_ones_form_a_series() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let rs = make_rs(&client, "noisy", false).await?;
    let events = EventPublisher::new(client.clone(), "replicaset-controller");
    events.normal(&rs, "SuccessfulCreate", "Create", "Created pod: a".into()).await;
    events.normal(&rs, "SuccessfulCreate", "Create", "Created pod: b".into()).await;
    events.warning(&rs, "FailedCreate", "Create", "Error creating: quota".into()).await;
    events.warning(&rs, "FailedCreate", "Create", "Error creating: quota".into()).await;
    let list = Api::<Event>::namespaced(client.clone(), NS).list(&ListParams::default()).await?.items;
    let mine: Vec<&Event> =
        list.iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("noisy")).collect();
    let mut notes: Vec<String> = mine.iter().filter_map(|e| e.note.clone()).collect();
    notes.sort();
    assert_eq!(notes, ["Created pod: a", "Created pod: b", "Error creating: quota"]);
    let failed = mine.iter().find(|e| e.reason.as_deref() == Some("FailedCreate")).context("failed event")?;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(failed.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(failed.reporting_controller.as_deref(), Some("replicaset-controller"));
    let regarding = failed.regarding.as_ref().context("regarding")?;
    assert_eq!((regarding.kind.as_deref(), regarding.uid.clone()), (Some("ReplicaSet"), rs.uid()));
    Ok(())
}
