//! The running collector: monitors (one metadata watch per deletable
//! resource) feeding the [`Graph`], periodic re-discovery, and the
//! attemptToDelete / attemptToOrphan workers that act through the API.

use crate::discovery::{self, Catalog, Resource};
use crate::graph::{AbsentKey, FOREGROUND, Graph, Identity, ORPHAN, Snapshot, Work};
use crate::queue::WorkQueue;
use crate::{Config, Error};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

struct Monitor {
    handle: JoinHandle<()>,
    synced: Arc<AtomicBool>,
    started: Instant,
}

pub(crate) struct Shared {
    client: Client,
    graph: Mutex<Graph>,
    catalog: RwLock<Arc<Catalog>>,
    monitors: Mutex<HashMap<String, Monitor>>,
    discovered: AtomicBool,
    delete_q: Arc<WorkQueue<String>>,
    orphan_q: Arc<WorkQueue<String>>,
    config: Config,
}

/// What a worker does with a key after processing it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Forget,
    Requeue,
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Shared {
    pub(crate) fn new(client: Client, config: Config) -> Arc<Self> {
        Arc::new(Self {
            client,
            graph: Mutex::new(Graph::default()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            monitors: Mutex::new(HashMap::new()),
            discovered: AtomicBool::new(false),
            delete_q: WorkQueue::new(Duration::from_millis(5), Duration::from_secs(300)),
            orphan_q: WorkQueue::new(Duration::from_millis(5), Duration::from_secs(300)),
            config,
        })
    }

    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            match w {
                Work::Delete(uid) => self.delete_q.add(uid),
                Work::Orphan(uid) => self.orphan_q.add(uid),
            }
        }
    }

    /// Every monitor has listed once (or has been trying longer than the sync
    /// timeout): the graph is complete enough to act on.
    fn synced(&self) -> bool {
        if !self.discovered.load(Ordering::SeqCst) {
            return false;
        }
        let monitors = self.monitors.lock().unwrap_or_else(|p| p.into_inner());
        monitors.values().all(|m| m.synced.load(Ordering::SeqCst) || m.started.elapsed() > self.config.sync_timeout)
    }

    fn api(&self, res: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace.filter(|_| res.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &res.ar),
            None => Api::all_with(self.client.clone(), &res.ar),
        }
    }

    fn resolve(&self, api_version: &str, kind: &str) -> Result<Resource, Error> {
        self.catalog()
            .resolve(api_version, kind)
            .cloned()
            .ok_or_else(|| Error::NoMapping { api_version: api_version.to_string(), kind: kind.to_string() })
    }

    /// Discover resources and start/stop monitors to match (upstream's
    /// GarbageCollector.Sync, run every `discovery_period`).
    pub(crate) async fn sync_monitors(self: &Arc<Self>) -> Result<(), Error> {
        let catalog = discovery::discover(&self.client).await?;
        for (gv, err) in &catalog.failed {
            warn!(group_version = %gv, error = %err, "garbage collector: discovery failed for group version");
        }
        let wanted = catalog.monitorable(&self.config.ignored_resources);
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        let mut monitors = self.monitors.lock().unwrap_or_else(|p| p.into_inner());
        let keys: HashSet<String> = wanted.iter().map(Resource::key).collect();
        monitors.retain(|k, m| {
            let keep = keys.contains(k) && !m.handle.is_finished();
            if !keep {
                info!(resource = %k, "garbage collector: stopping monitor");
                m.handle.abort();
            }
            keep
        });
        for res in wanted {
            let key = res.key();
            if monitors.contains_key(&key) {
                continue;
            }
            debug!(resource = %key, "garbage collector: starting monitor");
            let synced = Arc::new(AtomicBool::new(false));
            let handle = tokio::spawn(monitor(self.clone(), res, synced.clone()));
            monitors.insert(key, Monitor { handle, synced, started: Instant::now() });
        }
        self.discovered.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn stop_monitors(&self) {
        let mut monitors = self.monitors.lock().unwrap_or_else(|p| p.into_inner());
        for (_, m) in monitors.drain() {
            m.handle.abort();
        }
    }

    pub(crate) async fn delete_worker(self: Arc<Self>) {
        loop {
            let uid = self.delete_q.get().await;
            if !self.synced() {
                self.delete_q.done(&uid);
                self.delete_q.add_after(uid, Duration::from_millis(100));
                continue;
            }
            let result = self.attempt_to_delete(&uid).await;
            self.delete_q.done(&uid);
            match result {
                Ok(Outcome::Forget) => self.delete_q.forget(&uid),
                Ok(Outcome::Requeue) => self.delete_q.add_rate_limited(uid),
                Err(e) => {
                    debug!(uid = %uid, error = %e, "garbage collector: attemptToDelete failed, will retry");
                    self.delete_q.add_rate_limited(uid);
                }
            }
        }
    }

    pub(crate) async fn orphan_worker(self: Arc<Self>) {
        loop {
            let uid = self.orphan_q.get().await;
            if !self.synced() {
                self.orphan_q.done(&uid);
                self.orphan_q.add_after(uid, Duration::from_millis(100));
                continue;
            }
            let result = self.attempt_to_orphan(&uid).await;
            self.orphan_q.done(&uid);
            match result {
                Ok(()) => self.orphan_q.forget(&uid),
                Err(e) => {
                    debug!(uid = %uid, error = %e, "garbage collector: attemptToOrphan failed, will retry");
                    self.orphan_q.add_rate_limited(uid);
                }
            }
        }
    }

    fn virtual_delete(&self, identity: &Identity) {
        let work = self.graph().virtual_delete(identity);
        self.enqueue(work);
    }

    async fn attempt_to_delete(&self, uid: &str) -> Result<Outcome, Error> {
        let outcome = self.attempt_to_delete_item(uid).await?;
        // A virtual node that exists but has not been observed yet: keep checking.
        if outcome == Outcome::Forget && self.graph().is_observed(uid) == Some(false) {
            return Ok(Outcome::Requeue);
        }
        Ok(outcome)
    }

    /// Upstream's attemptToDeleteItem.
    async fn attempt_to_delete_item(&self, uid: &str) -> Result<Outcome, Error> {
        let Some(item) = self.graph().snapshot(uid) else { return Ok(Outcome::Forget) };
        if item.being_deleted && !item.deleting_dependents {
            return Ok(Outcome::Forget);
        }
        let id = &item.identity;
        let res = self.resolve(&id.api_version, &id.kind)?;
        if res.namespaced && id.namespace.is_none() {
            // A namespaced kind referenced from a cluster-scoped object: it cannot exist there.
            self.virtual_delete(id);
            return Ok(Outcome::Forget);
        }
        let api = self.api(&res, id.namespace.as_deref());
        let latest = match api.get_metadata_opt(&id.name).await? {
            Some(m) if m.metadata.uid.as_deref() == Some(uid) => m.metadata,
            _ => {
                self.virtual_delete(id);
                return Ok(Outcome::Forget);
            }
        };
        if item.deleting_dependents {
            return self.process_deleting_dependents(&api, &item).await;
        }
        let refs = latest.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(Outcome::Forget);
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for r in &refs {
            match self.classify(r, id.namespace.as_deref()).await {
                Ok(Class::Dangling) => dangling.push(r.uid.clone()),
                Ok(Class::Waiting) => waiting.push(r.uid.clone()),
                Ok(Class::Solid) => solid.push(r.uid.clone()),
                Err(Error::NamespacedOwnerOfClusterScoped { .. }) => {
                    warn!(
                        object = %id.name, owner_kind = %r.kind, owner = %r.name,
                        "OwnerRefInvalidNamespace: ownerRef [{}/{}, namespace: , name: {}, uid: {}] does not exist in namespace \"\"",
                        r.api_version, r.kind, r.name, r.uid
                    );
                    return Ok(Outcome::Forget);
                }
                Err(e) => return Err(e),
            }
        }
        debug!(object = %id.name, ?solid, ?dangling, ?waiting, "garbage collector: classified owner references");
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Outcome::Forget);
            }
            // Keep the object (it has a live owner) but drop the references to
            // owners that are gone or are waiting for their dependents.
            let drop: HashSet<String> = dangling.into_iter().chain(waiting).collect();
            patch_owner_refs(&api, &id.name, uid, |refs| {
                let kept: Vec<_> = refs.iter().filter(|r| !drop.contains(&r.uid)).cloned().collect();
                (kept.len() != refs.len()).then_some(kept)
            })
            .await?;
            return Ok(Outcome::Forget);
        }
        if !waiting.is_empty() && !item.dependents.is_empty() {
            if item.dependents.iter().any(|(_, _, deleting)| *deleting) {
                // A dependent is itself waiting on its dependents: possibly a
                // cycle; stop blocking our owners so that it cannot deadlock.
                patch_owner_refs(&api, &id.name, uid, |refs| {
                    if !refs.iter().any(|r| r.block_owner_deletion == Some(true)) {
                        return None;
                    }
                    Some(
                        refs.iter()
                            .cloned()
                            .map(|mut r| {
                                if r.block_owner_deletion == Some(true) {
                                    r.block_owner_deletion = Some(false);
                                }
                                r
                            })
                            .collect(),
                    )
                })
                .await?;
            }
            delete_object(&api, &id.name, uid, &latest, PropagationPolicy::Foreground).await?;
            return Ok(Outcome::Forget);
        }
        let finalizers = latest.finalizers.clone().unwrap_or_default();
        let policy = if finalizers.iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if finalizers.iter().any(|f| f == FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        debug!(object = %id.name, ?policy, "garbage collector: deleting object");
        delete_object(&api, &id.name, uid, &latest, policy).await?;
        Ok(Outcome::Forget)
    }

    async fn process_deleting_dependents(&self, api: &Api<DynamicObject>, item: &Snapshot) -> Result<Outcome, Error> {
        if item.blocking.is_empty() {
            remove_finalizer(api, &item.identity.name, &item.identity.uid, FOREGROUND).await?;
            return Ok(Outcome::Forget);
        }
        for (dep, deleting) in &item.blocking {
            if !deleting {
                self.delete_q.add(dep.clone());
            }
        }
        Ok(Outcome::Forget)
    }

    /// Upstream's isDangling + classifyReferences for one reference.
    async fn classify(&self, r: &OwnerReference, item_ns: Option<&str>) -> Result<Class, Error> {
        {
            let g = self.graph();
            if g.is_absent(&AbsentKey::of(r, None)) || g.is_absent(&AbsentKey::of(r, item_ns)) {
                return Ok(Class::Dangling);
            }
        }
        let res = self.resolve(&r.api_version, &r.kind)?;
        if res.namespaced && item_ns.is_none() {
            return Err(Error::NamespacedOwnerOfClusterScoped { kind: r.kind.clone(), name: r.name.clone() });
        }
        let key_ns = if res.namespaced { item_ns } else { None };
        let owner = self.api(&res, key_ns).get_metadata_opt(&r.name).await?;
        match owner {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let fins = o.metadata.finalizers.unwrap_or_default();
                if o.metadata.deletion_timestamp.is_some() && fins.iter().any(|f| f == FOREGROUND) {
                    Ok(Class::Waiting)
                } else {
                    Ok(Class::Solid)
                }
            }
            _ => {
                self.graph().mark_absent(AbsentKey::of(r, key_ns));
                Ok(Class::Dangling)
            }
        }
    }

    /// Upstream's attemptToOrphan: strip the owner from every dependent, then
    /// remove its `orphan` finalizer.
    async fn attempt_to_orphan(&self, uid: &str) -> Result<(), Error> {
        let Some(owner) = self.graph().snapshot(uid) else { return Ok(()) };
        let mut failures = Vec::new();
        for (dep_uid, dep, _) in &owner.dependents {
            let res = match self.resolve(&dep.api_version, &dep.kind) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let api = self.api(&res, dep.namespace.as_deref());
            let owner_uid = uid.to_string();
            let r = patch_owner_refs(&api, &dep.name, dep_uid, |refs| {
                let kept: Vec<_> = refs.iter().filter(|r| r.uid != owner_uid).cloned().collect();
                (kept.len() != refs.len()).then_some(kept)
            })
            .await;
            if let Err(e) = r {
                failures.push(format!("orphaning {}/{}: {e}", dep.kind, dep.name));
            }
        }
        if !failures.is_empty() {
            return Err(Error::Orphan(failures.join("; ")));
        }
        let id = &owner.identity;
        let res = self.resolve(&id.api_version, &id.kind)?;
        remove_finalizer(&self.api(&res, id.namespace.as_deref()), &id.name, uid, ORPHAN).await
    }
}

enum Class {
    Solid,
    Dangling,
    Waiting,
}

async fn monitor(shared: Arc<Shared>, res: Resource, synced: Arc<AtomicBool>) {
    let key = res.key();
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(shared.client.clone(), &res.ar);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listed: Option<HashSet<String>> = None;
    let observe = |meta: &ObjectMeta| shared.graph().observe(&key, &res.ar.api_version, &res.ar.kind, meta);
    while let Some(event) = stream.next().await {
        let work = match event {
            Ok(Event::Apply(o)) => observe(&o.metadata),
            Ok(Event::Delete(o)) => match o.metadata.uid.as_deref() {
                Some(uid) => shared.graph().remove(uid),
                None => Vec::new(),
            },
            Ok(Event::Init) => {
                listed = Some(HashSet::new());
                Vec::new()
            }
            Ok(Event::InitApply(o)) => {
                if let (Some(set), Some(uid)) = (listed.as_mut(), o.metadata.uid.clone()) {
                    set.insert(uid);
                }
                observe(&o.metadata)
            }
            Ok(Event::InitDone) => {
                let work = match listed.take() {
                    Some(set) => shared.graph().prune(&key, &set),
                    None => Vec::new(),
                };
                synced.store(true, Ordering::SeqCst);
                work
            }
            Err(e) => {
                debug!(resource = %key, error = %e, "garbage collector: watch error");
                Vec::new()
            }
        };
        shared.enqueue(work);
    }
}

/// Rewrite an object's ownerReferences with `edit` (None = nothing to do),
/// guarded by uid and resourceVersion, retrying on conflicts.
async fn patch_owner_refs(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    edit: impl Fn(&[OwnerReference]) -> Option<Vec<OwnerReference>>,
) -> Result<(), Error> {
    for _ in 0..5 {
        let Some(m) = api.get_metadata_opt(name).await? else { return Ok(()) };
        if m.metadata.uid.as_deref() != Some(uid) {
            return Ok(());
        }
        let refs = m.metadata.owner_references.clone().unwrap_or_default();
        let Some(new) = edit(&refs) else { return Ok(()) };
        let new_refs = if new.is_empty() { Value::Null } else { json!(new) };
        let body = json!({"metadata": {"ownerReferences": new_refs, "resourceVersion": m.resource_version()}});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => return Ok(()),
            Err(e) if code(&e) == Some(404) => return Ok(()),
            Err(e) if code(&e) == Some(409) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!("ownerReferences of {name} kept changing")))
}

/// Remove `finalizer` from an object, guarded by uid and resourceVersion.
async fn remove_finalizer(api: &Api<DynamicObject>, name: &str, uid: &str, finalizer: &str) -> Result<(), Error> {
    for _ in 0..5 {
        let Some(m) = api.get_metadata_opt(name).await? else { return Ok(()) };
        if m.metadata.uid.as_deref() != Some(uid) {
            return Ok(());
        }
        let fins = m.metadata.finalizers.clone().unwrap_or_default();
        if !fins.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let kept: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
        let body = json!({"metadata": {"finalizers": kept, "resourceVersion": m.resource_version()}});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => return Ok(()),
            Err(e) if code(&e) == Some(404) => return Ok(()),
            Err(e) if code(&e) == Some(409) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!("finalizers of {name} kept changing")))
}

/// Delete with uid and resourceVersion preconditions; when only the
/// resourceVersion moved and the ownerReferences are unchanged, delete with
/// the uid precondition alone (upstream's deleteObject).
async fn delete_object(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    seen: &ObjectMeta,
    policy: PropagationPolicy,
) -> Result<(), Error> {
    let params = |rv: Option<String>| DeleteParams {
        propagation_policy: Some(policy.clone()),
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: rv }),
        ..Default::default()
    };
    match api.delete(name, &params(seen.resource_version.clone())).await {
        Ok(_) => return Ok(()),
        Err(e) if code(&e) == Some(404) => return Ok(()),
        Err(e) if code(&e) == Some(409) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(latest) = api.get_metadata_opt(name).await? else { return Ok(()) };
    if latest.metadata.uid.as_deref() != Some(uid) {
        return Ok(());
    }
    if latest.metadata.owner_references != seen.owner_references {
        return Err(Error::Conflict(format!("ownerReferences of {name} changed; re-checking")));
    }
    match api.delete(name, &params(None)).await {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some(404) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
