//! Emptying a terminating namespace (upstream's namespacedResourcesDeleter):
//! mark it Terminating, delete every namespaced resource in it (pods first,
//! deletecollection where supported, else list + delete), report what remains
//! in status conditions, and once nothing remains remove our token from
//! `spec.finalizers` through the `finalize` subresource.

use crate::Error;
use crate::conditions::{ConditionUpdater, Totals};
use crate::discovery::{self, Resource};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, PropagationPolicy};
use std::collections::BTreeMap;
use tracing::{debug, warn};

/// Seconds to wait for objects held by finalizers (upstream's finalizerEstimateSeconds).
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing (more) to do for this namespace.
    Done,
    /// Content remains; look again in about this many seconds.
    Remaining(i64),
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[derive(Default, Debug)]
struct GvrDeletion {
    estimate: i64,
    remaining: usize,
    finalizers: BTreeMap<String, usize>,
}

pub struct Deleter {
    client: Client,
    finalizer_token: String,
}

impl Deleter {
    pub fn new(client: Client, finalizer_token: String) -> Self {
        Self { client, finalizer_token }
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// Upstream's Delete: keep calling until it returns Done.
    pub async fn delete(&self, name: &str) -> Result<Outcome, Error> {
        let Some(ns) = self.namespaces().get_opt(name).await? else { return Ok(Outcome::Done) };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Outcome::Done);
        }
        let ns = match self.retry_on_conflict(ns, |ns| self.mark_terminating(ns)).await {
            Ok(ns) => ns,
            Err(Error::Kube(e)) if code(&e) == Some(404) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Outcome::Done);
        }
        if ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_none_or(|f| f.is_empty()) {
            return Ok(Outcome::Done);
        }
        let (estimate, errors) = self.delete_all_content(ns.clone()).await;
        if !errors.is_empty() {
            return Err(Error::Content(errors.join(", ")));
        }
        if estimate > 0 {
            return Ok(Outcome::Remaining(estimate));
        }
        match self.retry_on_conflict(ns, |ns| self.finalize(ns)).await {
            Ok(_) => Ok(Outcome::Done),
            Err(Error::Kube(e)) if code(&e) == Some(404) => Ok(Outcome::Done),
            Err(e) => Err(e),
        }
    }

    /// Run `f` against the namespace, re-reading it after each conflict
    /// (the uid must not change across retries).
    async fn retry_on_conflict<'a, F, Fut>(&'a self, mut ns: Namespace, f: F) -> Result<Namespace, Error>
    where
        F: Fn(Namespace) -> Fut,
        Fut: std::future::Future<Output = Result<Namespace, kube::Error>> + 'a,
    {
        loop {
            match f(ns.clone()).await {
                Ok(n) => return Ok(n),
                Err(e) if code(&e) == Some(409) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    let latest = self.namespaces().get(&name).await?;
                    if latest.metadata.uid != ns.metadata.uid {
                        return Err(Error::UidChanged);
                    }
                    ns = latest;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn mark_terminating(&self, mut ns: Namespace) -> Result<Namespace, kube::Error> {
        let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
        if ns.metadata.deletion_timestamp.is_none() || phase == Some("Terminating") {
            return Ok(ns);
        }
        ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        let name = ns.metadata.name.clone().unwrap_or_default();
        self.namespaces().replace_status(&name, &PostParams::default(), &ns).await
    }

    async fn finalize(&self, mut ns: Namespace) -> Result<Namespace, kube::Error> {
        let spec = ns.spec.get_or_insert_with(Default::default);
        let mut kept: Vec<String> =
            spec.finalizers.iter().flatten().filter(|f| **f != self.finalizer_token).cloned().collect();
        kept.sort();
        kept.dedup();
        spec.finalizers = Some(kept);
        let name = ns.metadata.name.clone().unwrap_or_default();
        match self.namespaces().replace_subresource("finalize", &name, &PostParams::default(), &ns).await {
            Err(e) if code(&e) == Some(404) => Ok(ns),
            other => other,
        }
    }

    /// Delete everything in the namespace; the longest wait estimate and the
    /// errors met. Status conditions are updated on the way.
    async fn delete_all_content(&self, mut ns: Namespace) -> (i64, Vec<String>) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let deleted_at = ns.metadata.deletion_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
        let mut updater = ConditionUpdater::default();
        let mut errors = Vec::new();
        let (resources, derr) = discovery::preferred_namespaced(&self.client).await;
        if let Some(e) = derr {
            errors.push(e.to_string());
            updater.discovery_failed(e.condition_message());
        }
        let deletable: Vec<Resource> = resources.into_iter().filter(|r| r.supports("delete")).collect();
        let mut estimate = 0;
        let mut totals = Totals::default();
        // OrderedNamespaceDeletion (on by default in 1.33): pods go first, and
        // nothing else is touched while pods remain.
        let (pods, rest): (Vec<Resource>, Vec<Resource>) = deletable.into_iter().partition(Resource::is_pods);
        let mut pods_remain = false;
        for r in &pods {
            let (d, err) = self.delete_gvr(r, &name, deleted_at).await;
            if let Some(e) = err {
                errors.push(e.clone());
                updater.content_deletion_failed(e);
            }
            estimate = estimate.max(d.estimate);
            totals.add(&r.gvr(), d.remaining, &d.finalizers);
            pods_remain |= d.remaining > 0;
        }
        if !pods_remain {
            for r in &rest {
                let (d, err) = self.delete_gvr(r, &name, deleted_at).await;
                if let Some(e) = err {
                    errors.push(e.clone());
                    updater.content_deletion_failed(e);
                }
                estimate = estimate.max(d.estimate);
                totals.add(&r.gvr(), d.remaining, &d.finalizers);
            }
        }
        updater.content_totals(&totals);
        if updater.update(ns.status.get_or_insert_with(Default::default))
            && let Err(e) = self.namespaces().replace_status(&name, &PostParams::default(), &ns).await
        {
            warn!(namespace = %name, error = %e, "couldn't update status condition for namespace");
        }
        debug!(namespace = %name, estimate, ?errors, "namespace controller: deleteAllContent");
        (estimate, errors)
    }

    /// Upstream's deleteAllContentForGroupVersionResource.
    async fn delete_gvr(&self, r: &Resource, ns: &str, deleted_at: i64) -> (GvrDeletion, Option<String>) {
        let estimate = if r.is_pods() {
            match self.estimate_pods(ns, deleted_at).await {
                Ok(e) => e,
                Err(e) => return (GvrDeletion::default(), Some(e.to_string())),
            }
        } else {
            0
        };
        let partial = GvrDeletion { estimate, ..Default::default() };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r.ar);
        let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        let mut collection_done = false;
        if r.supports("deletecollection") {
            match api.delete_collection(&background, &ListParams::default()).await {
                Ok(_) => collection_done = true,
                Err(e) if matches!(code(&e), Some(404 | 405)) => {}
                Err(e) => return (partial, Some(e.to_string())),
            }
        }
        if !collection_done && r.supports("list") {
            match api.list_metadata(&ListParams::default()).await {
                Ok(list) => {
                    for item in list.items {
                        let name = item.metadata.name.unwrap_or_default();
                        match api.delete(&name, &background).await {
                            Ok(_) => {}
                            Err(e) if matches!(code(&e), Some(404 | 405)) => {}
                            Err(e) => return (partial, Some(e.to_string())),
                        }
                    }
                }
                Err(e) if matches!(code(&e), Some(404 | 405)) => {}
                Err(e) => return (partial, Some(e.to_string())),
            }
        }
        if !r.supports("list") {
            return (partial, None);
        }
        let items = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if matches!(code(&e), Some(404 | 405)) => return (partial, None),
            Err(e) => return (partial, Some(e.to_string())),
        };
        if items.is_empty() {
            return (GvrDeletion::default(), None);
        }
        let mut finalizers = BTreeMap::new();
        for item in &items {
            for f in item.metadata.finalizers.iter().flatten() {
                *finalizers.entry(f.clone()).or_insert(0) += 1;
            }
        }
        let remaining = items.len();
        if estimate != 0 {
            return (GvrDeletion { estimate, remaining, finalizers }, None);
        }
        if !finalizers.is_empty() {
            return (GvrDeletion { estimate: FINALIZER_ESTIMATE_SECONDS, remaining, finalizers }, None);
        }
        let err = format!(
            "unexpected items still remain in namespace: {ns} for gvr: {}/{}, Resource={}",
            r.ar.group, r.ar.version, r.ar.plural
        );
        (GvrDeletion { estimate, remaining, finalizers }, Some(err))
    }

    /// The longest termination grace period of the namespace's non-terminal
    /// pods, or 0 once that long has passed since the namespace's deletion.
    async fn estimate_pods(&self, ns: &str, deleted_at: i64) -> Result<i64, kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut estimate = 0;
        for pod in pods.list(&ListParams::default()).await? {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            if let Some(g) = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds) {
                estimate = estimate.max(g);
            }
        }
        let elapsed = k8s_openapi::jiff::Timestamp::now().as_second() - deleted_at;
        Ok(if elapsed >= estimate { 0 } else { estimate })
    }
}
