//! rkube-controller-resourcequota: the ResourceQuota controller (upstream's
//! pkg/controller/resourcequota).
//!
//! For every ResourceQuota it writes `status.hard` (= `spec.hard`) and `status.used`: for each hard
//! resource some evaluator tracks, the sum of `rkube_registry::quota::usage` over the namespace's
//! in-scope objects (pods count compute resources only while not Succeeded/Failed). Quotas are
//! recomputed when they change, when a pod, service, configmap, secret or PVC of their namespace
//! changes, and on a periodic full resync (`--resource-quota-sync-period`, 30 s by default here)
//! for the other kinds (`count/<resource>.<group>`). It is an API client only.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rkube_controller_common::is_not_found;
use rkube_registry::quota::{self, ResourceList};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Controller settings (upstream's kube-controller-manager flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--concurrent-resource-quota-syncs`.
    pub concurrent_syncs: usize,
    /// `--resource-quota-sync-period`: full recalculation interval.
    pub resync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrent_syncs: 5, resync_period: Duration::from_secs(30) }
    }
}

/// Errors of a sync or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

struct Ctx {
    client: kube::Client,
    config: Config,
}

/// The API resource for a (group, plural) pair: core kinds directly, others through discovery.
async fn api_resource(client: &kube::Client, group: &str, resource: &str) -> Result<Option<ApiResource>, Error> {
    if group.is_empty() {
        let kind = match resource {
            "pods" => "Pod",
            "services" => "Service",
            "configmaps" => "ConfigMap",
            "secrets" => "Secret",
            "persistentvolumeclaims" => "PersistentVolumeClaim",
            "replicationcontrollers" => "ReplicationController",
            "resourcequotas" => "ResourceQuota",
            _ => "",
        };
        if !kind.is_empty() {
            return Ok(Some(ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: kind.into(),
                plural: resource.into(),
            }));
        }
    }
    let discovered = match kube::discovery::group(client, group).await {
        Ok(g) => g,
        Err(kube::Error::Discovery(_)) => return Ok(None),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(discovered.recommended_resources().into_iter().map(|(ar, _)| ar).find(|ar| ar.plural == resource))
}

/// Upstream's status computation for one quota given the namespace's objects of each tracked kind.
pub fn compute_status(rq: &Value, objects: &[((String, String), Vec<Value>)]) -> (ResourceList, ResourceList) {
    let hard = quota::resource_list(rq.pointer("/spec/hard"));
    let names: Vec<String> = hard.keys().cloned().collect();
    // Keep previously observed values for names nothing here tracks, masked to the hard set.
    let mut used: ResourceList =
        quota::resource_list(rq.pointer("/status/used")).into_iter().filter(|(k, _)| hard.contains_key(k)).collect();
    let mut observed = ResourceList::new();
    for ((g, r), objs) in objects {
        observed = quota::add(&observed, &quota::quota_usage(&names, rq, g, r, objs.iter()));
    }
    used.extend(observed);
    (hard, used)
}

async fn reconcile(rq: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let resync = Action::requeue(ctx.config.resync_period);
    if rq.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rq.namespace().unwrap_or_default();
    let value = serde_json::to_value(rq.as_ref())?;
    let names: Vec<String> = quota::resource_list(value.pointer("/spec/hard")).into_keys().collect();
    let mut objects = Vec::new();
    for (g, r) in quota::tracked_kinds(&names) {
        let Some(ar) = api_resource(&ctx.client, &g, &r).await? else { continue };
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let items = list.items.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?;
        objects.push(((g, r), items));
    }
    let (hard, used) = compute_status(&value, &objects);
    let cur_hard = quota::resource_list(value.pointer("/status/hard"));
    let cur_used = quota::resource_list(value.pointer("/status/used"));
    if cur_hard == hard && cur_used == used && value.pointer("/status/used").is_some() {
        return Ok(resync);
    }
    let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({"status": {
        "hard": quota::resource_list_to_value(&hard),
        "used": quota::resource_list_to_value(&used),
    }});
    // A merge patch replaces the maps' keys we send; drop keys no longer present by sending null.
    let mut body = body;
    for (field, now) in [("hard", &hard), ("used", &used)] {
        let old = if field == "hard" { &cur_hard } else { &cur_used };
        for k in old.keys().filter(|k| !now.contains_key(*k)) {
            body["status"][field][k] = Value::Null;
        }
    }
    match api.patch_status(&rq.name_any(), &PatchParams::default(), &Patch::Merge(body)).await {
        Ok(_) => Ok(resync),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(_rq: Arc<ResourceQuota>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "resource quota sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// All quotas of an object's namespace.
fn quotas_in(store: &Store<ResourceQuota>, ns: Option<String>) -> Vec<ObjectRef<ResourceQuota>> {
    let Some(ns) = ns else { return Vec::new() };
    store
        .state()
        .iter()
        .filter(|q| q.namespace().as_deref() == Some(ns.as_str()))
        .map(|q| ObjectRef::from_obj(q.as_ref()))
        .collect()
}

/// Runs the ResourceQuota controller until the process ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let concurrency = u16::try_from(config.concurrent_syncs.max(1)).unwrap_or(u16::MAX);
    let ctx = Arc::new(Ctx { client: client.clone(), config });
    let ctrl = Controller::new(Api::<ResourceQuota>::all(client.clone()), watcher::Config::default());
    let store = ctrl.store();
    let wc = watcher::Config::default;
    let (s1, s2, s3, s4, s5) = (store.clone(), store.clone(), store.clone(), store.clone(), store);
    ctrl.with_config(controller::Config::default().concurrency(concurrency))
        .watches(Api::<Pod>::all(client.clone()), wc(), move |o| quotas_in(&s1, o.meta().namespace.clone()))
        .watches(Api::<Service>::all(client.clone()), wc(), move |o| quotas_in(&s2, o.meta().namespace.clone()))
        .watches(Api::<ConfigMap>::all(client.clone()), wc(), move |o| quotas_in(&s3, o.meta().namespace.clone()))
        .watches(Api::<Secret>::all(client.clone()), wc(), move |o| quotas_in(&s4, o.meta().namespace.clone()))
        .watches(Api::<PersistentVolumeClaim>::all(client), wc(), move |o| quotas_in(&s5, o.meta().namespace.clone()))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "resource quota controller");
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tracks_hard_and_keeps_untracked_names() {
        let rq = json!({"spec": {"hard": {"pods": "2", "count/widgets.example.com": "3"}},
            "status": {"used": {"count/widgets.example.com": "1", "stale": "4"}}});
        let pods = vec![
            json!({"spec": {"containers": [{"name": "c"}]}}),
            json!({"spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Failed"}}),
        ];
        let (hard, used) = compute_status(&rq, &[(("".into(), "pods".into()), pods)]);
        assert_eq!(hard.len(), 2);
        assert_eq!(used.get("pods").map(|q| q.to_string()).as_deref(), Some("1"));
        assert_eq!(used.get("count/widgets.example.com").map(|q| q.to_string()).as_deref(), Some("1"));
        assert!(!used.contains_key("stale"));
        let (_, empty) = compute_status(&rq, &[(("".into(), "pods".into()), vec![])]);
        assert_eq!(empty.get("pods").map(|q| q.to_string()).as_deref(), Some("0"));
    }
}
