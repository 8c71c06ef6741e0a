//! [`WatchCache`]: the apiserver's in-memory view of the whole `/registry/` key space.
//!
//! One cache sits in front of a [`Store`]: it range-reads every key under its prefix
//! once, then follows ONE store watch from that revision. Every API watch and every
//! cached list/get is served from here, so the store sees one watch however many
//! clients watch.
//!
//! * Objects are Kubernetes JSON. The stored bytes carry no `metadata.resourceVersion`:
//!   the cache sets it (the mod revision; for a deleted object, the deletion revision)
//!   and serialises each object once; readers and watchers share the `Arc`s.
//! * To stay small with tens of thousands of objects (and their recent versions in the
//!   history), an object is held as its JSON bytes plus a small [`CachedObject::selectable`]
//!   projection (name, namespace, labels and the fields field selectors read); the full
//!   tree is parsed on demand by [`CachedObject::object`].
//! * A bounded history of recent events lets watches resume from a past revision;
//!   older than the window is [`StoreError::Compacted`] (the apiserver's 410).
//! * Fan-out is a tokio broadcast of `Arc<CachedEvent>`: a watcher is a cursor into a
//!   shared ring and filters by key prefix. A watcher that falls more than
//!   [`LIVE_BUFFER`] events behind is closed (its `next()` answers `None`); it never
//!   slows the cache or other watchers.
//! * If the store watch breaks, the cache re-watches from its last revision. If that
//!   revision was compacted meanwhile, it re-lists and emits synthesized
//!   Added/Modified/Deleted events (at the list's revision) for the differences, so
//!   open watchers stay correct; the history is reset to start at that revision.
//!
//! The cache only learns revisions from events under its prefix: a store write outside
//! the prefix moves the store's revision but not the cache's, so `wait_for` such a
//! revision waits for the next write under the prefix (both backends write nothing
//! outside the caller's keys, and the apiserver keeps everything under `/registry/`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::{Event, KeyValue, RangeRequest, Result, Revision, Store, StoreError};

/// Events a watcher may fall behind the newest before it is closed.
pub const LIVE_BUFFER: usize = 8_192; // a power of two: tokio's broadcast rounds up
/// How long `get`/`list` wait for the cache to reach their `min_rev`.
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys read per page while (re-)listing the store.
const LIST_PAGE: usize = 5_000;

/// One object as the cache holds it.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    /// The object, with `metadata.resourceVersion` set, serialised once.
    pub json: Bytes,
    /// `metadata.name` and `metadata.namespace`.
    name: Box<str>,
    namespace: Option<Box<str>>,
    /// The JSON of [`selectable`]`(object)`: a few hundred bytes, where a parsed tree
    /// would take kilobytes (every small `serde_json::Map` is a whole B-tree node).
    selectable: Box<[u8]>,
    pub create_revision: Revision,
    /// For a deleted object (in a `Deleted` event): the deletion revision.
    pub mod_revision: Revision,
}

impl CachedObject {
    /// The whole object, parsed from [`Self::json`] (bytes the cache wrote itself, so
    /// parsing does not fail; `Null` if it ever did).
    pub fn object(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The part of the object label and field selectors read (see [`selectable`]):
    /// matching a selector against it answers as against the whole object.
    pub fn selectable(&self) -> Value {
        serde_json::from_slice(&self.selectable).unwrap_or(Value::Null)
    }

    /// `metadata.name` ("" if none).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.namespace`, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

/// `spec` fields some kind's field selector reads (`selectable_field` in the registry's
/// selectors.rs): pods, nodes, services, CSRs / trust bundles, resource slices.
const SPEC_FIELDS: &[&str] = &[
    "nodeName",
    "restartPolicy",
    "schedulerName",
    "serviceAccountName",
    "hostNetwork",
    "unschedulable",
    "clusterIP",
    "type",
    "signerName",
    "driver",
];
/// `status` fields some kind's field selector reads (pods, namespaces, RCs, jobs).
const STATUS_FIELDS: &[&str] = &["phase", "podIP", "nominatedNodeName", "replicas", "succeeded"];
/// Top-level fields of an Event (core/v1 and events.k8s.io/v1) its field selectors read.
const EVENT_FIELDS: &[&str] = &[
    "type",
    "reason",
    "reportingComponent",
    "reportingController",
    "involvedObject",
    "regarding",
    "source",
    "deprecatedSource",
];

/// The projection of `obj` that selectors need: `apiVersion`, `kind`, `type` (Secrets),
/// `metadata.{name,namespace,labels}`, the [`SPEC_FIELDS`] and [`STATUS_FIELDS`] (plus the
/// first `status.podIPs` entry), and for Events the [`EVENT_FIELDS`]. Selecting on the
/// projection answers exactly as on the whole object, for every selectable field.
pub fn selectable(obj: &Value) -> Value {
    let Value::Object(m) = obj else { return Value::Null };
    let mut out = serde_json::Map::new();
    for k in ["apiVersion", "kind"] {
        if let Some(v) = m.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    let is_event = m.get("kind").and_then(Value::as_str) == Some("Event");
    if is_event {
        for k in EVENT_FIELDS {
            if let Some(v) = m.get(*k) {
                out.insert((*k).into(), v.clone());
            }
        }
    } else if let Some(t @ Value::String(_)) = m.get("type") {
        out.insert("type".into(), t.clone());
    }
    if let Some(Value::Object(meta)) = m.get("metadata") {
        let mut pm = serde_json::Map::new();
        for k in ["name", "namespace", "labels"] {
            if let Some(v) = meta.get(k) {
                pm.insert(k.into(), v.clone());
            }
        }
        out.insert("metadata".into(), Value::Object(pm));
    }
    let scalars = |part: &str, fields: &[&str]| -> Option<Value> {
        let Some(Value::Object(src)) = m.get(part) else { return None };
        let mut pm = serde_json::Map::new();
        for k in fields {
            if let Some(v) = src.get(*k).filter(|v| !v.is_object() && !v.is_array()) {
                pm.insert((*k).into(), v.clone());
            }
        }
        Some(Value::Object(pm))
    };
    if let Some(spec) = scalars("spec", SPEC_FIELDS) {
        out.insert("spec".into(), spec);
    }
    if let Some(mut status) = scalars("status", STATUS_FIELDS) {
        if let (Some(first), Value::Object(sm)) = (obj.pointer("/status/podIPs/0"), &mut status) {
            sm.insert("podIPs".into(), Value::Array(vec![first.clone()]));
        }
        out.insert("status".into(), status);
    }
    Value::Object(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, shared by every watcher that sees it.
#[derive(Debug)]
pub struct CachedEvent {
    pub kind: EventType,
    pub revision: Revision,
    /// The new state; for `Deleted` the last state, with resourceVersion = deletion revision.
    pub object: Arc<CachedObject>,
    /// The state before this event (None for `Added`).
    pub prev: Option<Arc<CachedObject>>,
}

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// Last applied revision.
    revision: Revision,
    history: VecDeque<Arc<CachedEvent>>,
    /// Every event with a revision above this one is in `history`.
    history_start: Revision,
}

struct Shared {
    prefix: String,
    capacity: usize,
    state: RwLock<State>,
    events: broadcast::Sender<Arc<CachedEvent>>,
    applied: watch::Sender<Revision>,
}

/// The in-memory cache of everything under one prefix. See the module doc.
pub struct WatchCache {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache").field("prefix", &self.shared.prefix).field("revision", &self.revision()).finish()
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Put `metadata.resourceVersion` = `rev` into a Kubernetes object.
fn set_resource_version(value: &mut Value, rev: Revision) {
    if let Value::Object(map) = value {
        let meta = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(meta) = meta {
            meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
        }
    }
}

fn build_object(key: &str, mut value: Value, create_revision: Revision, mod_revision: Revision) -> Arc<CachedObject> {
    set_resource_version(&mut value, mod_revision);
    // Serialising a Value cannot fail (every map key is a string).
    let mut json = serde_json::to_vec(&value).unwrap_or_default();
    json.shrink_to_fit(); // held for as long as the object is cached: no spare capacity
    let meta = |f: &str| value.get("metadata").and_then(|m| m.get(f)).and_then(Value::as_str).map(Box::from);
    let (name, namespace) = (meta("name").unwrap_or_default(), meta("namespace"));
    let selectable = serde_json::to_vec(&selectable(&value)).unwrap_or_default().into_boxed_slice();
    Arc::new(CachedObject {
        key: key.to_string(),
        json: Bytes::from(json),
        name,
        namespace,
        selectable,
        create_revision,
        mod_revision,
    })
}

/// Keys outside this prefix (allocations, the compactor's key) only move the
/// cache's revision forward; they are never objects.
pub const OBJECT_PREFIX: &str = "/registry/";

fn parse_kv(kv: &KeyValue) -> Option<Arc<CachedObject>> {
    if !kv.key.starts_with(OBJECT_PREFIX) {
        return None;
    }
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(v) => Some(build_object(&kv.key, v, kv.create_revision, kv.mod_revision)),
        Err(e) => {
            tracing::warn!(key = %kv.key, "watch cache: skipping a value that is not JSON: {e}");
            None
        }
    }
}

/// Everything under `prefix` at one revision, read page by page.
async fn list_all(store: &dyn Store, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
    let mut kvs = Vec::new();
    let mut revision = 0;
    let mut start = None;
    loop {
        let page = store
            .range(RangeRequest { prefix: prefix.to_string(), start: start.take(), revision, limit: LIST_PAGE })
            .await?;
        revision = page.revision;
        let next = page.kvs.last().map(|kv| format!("{}\0", kv.key));
        kvs.extend(page.kvs);
        match next {
            Some(n) if page.more => start = Some(n),
            _ => return Ok((kvs, revision)),
        }
    }
}

fn read(lock: &RwLock<State>) -> RwLockReadGuard<'_, State> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write(lock: &RwLock<State>) -> RwLockWriteGuard<'_, State> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Record one event: state, history, broadcast, revision — under the write lock, so
    /// that a watcher subscribing under the read lock sees each event exactly once.
    fn publish(&self, st: &mut State, event: Arc<CachedEvent>) {
        st.revision = st.revision.max(event.revision);
        st.history.push_back(event.clone());
        while st.history.len() > self.capacity {
            if let Some(old) = st.history.pop_front() {
                st.history_start = st.history_start.max(old.revision);
            }
        }
        let _ = self.events.send(event); // Err = nobody is watching right now.
    }

    fn apply(&self, ev: Event) {
        let mut st = write(&self.state);
        let rev = ev.revision();
        if rev < st.revision {
            return; // already applied (a re-watch overlapped)
        }
        let event = match ev {
            Event::Put { kv, .. } => match parse_kv(&kv) {
                Some(obj) => {
                    let prev = st.objects.insert(kv.key.clone(), obj.clone());
                    let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
                    CachedEvent { kind, revision: rev, object: obj, prev }
                }
                None => {
                    // Unreadable value: the key leaves the cache; nobody is told.
                    st.objects.remove(&kv.key);
                    st.revision = rev;
                    self.applied.send_replace(rev);
                    return;
                }
            },
            Event::Delete { key, revision, prev } => {
                let old = st.objects.remove(&key);
                let last = match &old {
                    Some(o) => Some((o.object(), o.create_revision)),
                    None => serde_json::from_slice::<Value>(&prev.value).ok().map(|v| (v, prev.create_revision)),
                };
                match last {
                    Some((value, create_revision)) => {
                        let obj = build_object(&key, value, create_revision, revision);
                        CachedEvent { kind: EventType::Deleted, revision, object: obj, prev: old }
                    }
                    None => {
                        st.revision = rev;
                        self.applied.send_replace(rev);
                        return;
                    }
                }
            }
        };
        self.publish(&mut st, Arc::new(event));
        self.applied.send_replace(st.revision);
    }

    /// Replace the state with a fresh list, emitting events for the differences.
    fn reset(&self, kvs: Vec<KeyValue>, revision: Revision) {
        let mut fresh: BTreeMap<String, Arc<CachedObject>> = BTreeMap::new();
        let mut st = write(&self.state);
        let mut events = Vec::new();
        for kv in &kvs {
            let old = st.objects.get(&kv.key).cloned();
            if let Some(o) = &old
                && o.mod_revision == kv.mod_revision
                && o.create_revision == kv.create_revision
            {
                fresh.insert(kv.key.clone(), o.clone());
                continue;
            }
            if let Some(obj) = parse_kv(kv) {
                let kind = if old.is_some() { EventType::Modified } else { EventType::Added };
                events.push(CachedEvent { kind, revision, object: obj.clone(), prev: old });
                fresh.insert(kv.key.clone(), obj);
            }
        }
        for (key, old) in &st.objects {
            if !fresh.contains_key(key) {
                let obj = build_object(key, old.object(), old.create_revision, revision);
                events.push(CachedEvent { kind: EventType::Deleted, revision, object: obj, prev: Some(old.clone()) });
            }
        }
        events.sort_by(|a, b| a.object.key.cmp(&b.object.key));
        st.objects = fresh;
        st.history.clear();
        for ev in events {
            let _ = self.events.send(Arc::new(ev));
        }
        st.revision = st.revision.max(revision);
        st.history_start = st.revision;
        self.applied.send_replace(st.revision);
    }
}

impl WatchCache {
    /// List everything under `prefix`, then follow the store's watch from that revision.
    /// `history_capacity` events are kept for watches that resume from a past revision.
    pub async fn start(store: Arc<dyn Store>, prefix: &str, history_capacity: usize) -> Result<Arc<Self>> {
        let mut attempts = 0;
        let (kvs, revision, stream) = loop {
            let (kvs, revision) = list_all(store.as_ref(), prefix).await?;
            match store.watch(prefix, revision).await {
                Ok(stream) => break (kvs, revision, stream),
                // Compacted between the list and the watch: list again.
                Err(StoreError::Compacted { .. }) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        let objects = kvs.iter().filter_map(|kv| parse_kv(kv).map(|o| (kv.key.clone(), o))).collect();
        let (events, _) = broadcast::channel(LIVE_BUFFER);
        let (applied, _) = watch::channel(revision);
        let shared = Arc::new(Shared {
            prefix: prefix.to_string(),
            capacity: history_capacity.max(1),
            state: RwLock::new(State { objects, revision, history: VecDeque::new(), history_start: revision }),
            events,
            applied,
        });
        let task = tokio::spawn(follow(shared.clone(), store, stream)).abort_handle();
        Ok(Arc::new(WatchCache { shared, task }))
    }

    /// The prefix this cache covers.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The last applied revision.
    pub fn revision(&self) -> Revision {
        read(&self.shared.state).revision
    }

    /// Wait until the cache has applied `rev`; `FutureRevision(rev)` after `timeout`
    /// (upstream answers "Too large resource version"), `Backend` if the cache stopped.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.applied.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Backend("watch cache stopped".into())),
            Err(_) => Err(StoreError::FutureRevision(rev)),
        }
    }

    /// One object, once the cache has reached `min_rev` (0 = whatever it has).
    pub async fn get(&self, key: &str, min_rev: Revision) -> Result<Option<Arc<CachedObject>>> {
        if min_rev > 0 {
            self.wait_for(min_rev, FRESHNESS_TIMEOUT).await?;
        }
        Ok(read(&self.shared.state).objects.get(key).cloned())
    }

    /// All objects whose key starts with `prefix`, sorted by key, at the cache's
    /// revision (>= `min_rev`); returns that revision too.
    pub async fn list(&self, prefix: &str, min_rev: Revision) -> Result<(Vec<Arc<CachedObject>>, Revision)> {
        if min_rev > 0 {
            self.wait_for(min_rev, FRESHNESS_TIMEOUT).await?;
        }
        let st = read(&self.shared.state);
        Ok((collect(&st, prefix), st.revision))
    }

    fn check_prefix(&self, prefix: &str) -> Result<()> {
        if prefix.starts_with(&self.shared.prefix) || self.shared.prefix.starts_with(prefix) {
            Ok(())
        } else {
            Err(StoreError::Backend(format!("prefix {prefix:?} is outside the watch cache's {:?}", self.shared.prefix)))
        }
    }

    /// Events under `prefix` with revision > `after`: first from the history window,
    /// then live. `after` older than the window is `Compacted`; `after == 0` = from now.
    /// An `after` beyond the cache's revision simply skips events up to it.
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<CacheWatcher> {
        self.check_prefix(prefix)?;
        let st = read(&self.shared.state);
        let (after, backlog) = if after == 0 {
            (st.revision, VecDeque::new())
        } else if after < st.history_start {
            return Err(StoreError::Compacted { requested: after, compacted: st.history_start });
        } else {
            let start = st.history.partition_point(|e| e.revision <= after);
            let backlog = st.history.range(start..).filter(|e| e.object.key.starts_with(prefix)).cloned().collect();
            (after, backlog)
        };
        // Subscribing under the read lock: no event is missed or seen twice.
        let rx = self.shared.events.subscribe();
        drop(st);
        Ok(CacheWatcher { prefix: prefix.to_string(), after, backlog, rx: Some(rx), lagged: false })
    }

    /// Atomically: the objects under `prefix`, their revision, and a watcher starting
    /// right after them (sendInitialEvents / resourceVersion "" and "0" watches).
    pub fn list_and_watch(&self, prefix: &str) -> Result<(Vec<Arc<CachedObject>>, Revision, CacheWatcher)> {
        self.check_prefix(prefix)?;
        let st = read(&self.shared.state);
        let objects = collect(&st, prefix);
        let revision = st.revision;
        let rx = self.shared.events.subscribe();
        drop(st);
        let watcher = CacheWatcher {
            prefix: prefix.to_string(),
            after: revision,
            backlog: VecDeque::new(),
            rx: Some(rx),
            lagged: false,
        };
        Ok((objects, revision, watcher))
    }
}

fn collect(st: &State, prefix: &str) -> Vec<Arc<CachedObject>> {
    st.objects
        .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Follow the store watch for as long as the cache lives.
async fn follow(shared: Arc<Shared>, store: Arc<dyn Store>, first: BoxStream<'static, Result<Event>>) {
    let mut stream = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Some(mut s) = stream.take() {
            while let Some(item) = s.next().await {
                match item {
                    Ok(ev) => {
                        backoff = Duration::from_millis(50);
                        shared.apply(ev);
                    }
                    Err(StoreError::Compacted { .. }) => {
                        relist(&shared, store.as_ref()).await;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(prefix = %shared.prefix, "watch cache: store watch failed: {e}");
                        break;
                    }
                }
            }
            // A stream that keeps ending must not spin.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        let from = read(&shared.state).revision;
        match store.watch(&shared.prefix, from).await {
            Ok(s) => stream = Some(s),
            Err(StoreError::Compacted { .. }) => relist(&shared, store.as_ref()).await,
            Err(e) => {
                tracing::warn!(prefix = %shared.prefix, from, "watch cache: re-watch failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn relist(shared: &Shared, store: &dyn Store) {
    match list_all(store, &shared.prefix).await {
        Ok((kvs, revision)) => {
            tracing::info!(prefix = %shared.prefix, revision, "watch cache: re-listed after compaction");
            shared.reset(kvs, revision);
        }
        Err(e) => tracing::warn!(prefix = %shared.prefix, "watch cache: re-list failed: {e}"),
    }
}

/// One watcher of the cache. `next()` answers `None` once it is closed: it lagged
/// more than [`LIVE_BUFFER`] events behind, or the cache stopped.
#[derive(Debug)]
pub struct CacheWatcher {
    prefix: String,
    after: Revision,
    backlog: VecDeque<Arc<CachedEvent>>,
    rx: Option<broadcast::Receiver<Arc<CachedEvent>>>,
    lagged: bool,
}

impl CacheWatcher {
    /// Nothing is buffered for this watcher: every event up to a revision read
    /// from the cache before this call has already been returned by `next`
    /// (events are broadcast under the same lock that advances the revision).
    pub fn is_drained(&self) -> bool {
        self.backlog.is_empty() && self.rx.as_ref().is_none_or(|rx| rx.is_empty())
    }

    /// The next event under the watcher's prefix; `None` = closed.
    pub async fn next(&mut self) -> Option<Arc<CachedEvent>> {
        if let Some(ev) = self.backlog.pop_front() {
            return Some(ev);
        }
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if ev.revision > self.after && ev.object.key.starts_with(&self.prefix) {
                        return Some(ev);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.lagged = true;
                    self.rx = None;
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.rx = None;
                    return None;
                }
            }
        }
    }

    /// True when the watcher was closed because it fell too far behind.
    pub fn lagged(&self) -> bool {
        self.lagged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::Mutex;
    use tokio::sync::mpsc;

    type Tx = mpsc::UnboundedSender<Result<Event>>;

    /// A minimal in-memory Store whose watches the test can break.
    #[derive(Default)]
    struct Mem {
        inner: Mutex<MemInner>,
    }

    #[derive(Default)]
    struct MemInner {
        kvs: BTreeMap<String, KeyValue>,
        rev: Revision,
        log: Vec<Event>,
        compacted: Revision,
        watchers: Vec<(String, Tx)>,
    }

    impl Mem {
        fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn record(inner: &mut MemInner, ev: Event) {
            inner.watchers.retain(|(p, tx)| !ev.key().starts_with(p.as_str()) || tx.send(Ok(ev.clone())).is_ok());
            inner.log.push(ev);
        }

        fn put(&self, key: &str, value: Value) -> Revision {
            let mut inner = self.lock();
            inner.rev += 1;
            let rev = inner.rev;
            let prev = inner.kvs.get(key).cloned();
            let kv = KeyValue {
                key: key.into(),
                value: Bytes::from(serde_json::to_vec(&value).unwrap()),
                create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                mod_revision: rev,
            };
            inner.kvs.insert(key.into(), kv.clone());
            Self::record(&mut inner, Event::Put { kv, prev });
            rev
        }

        fn del(&self, key: &str) -> Revision {
            let mut inner = self.lock();
            let prev = inner.kvs.remove(key).unwrap();
            inner.rev += 1;
            let revision = inner.rev;
            Self::record(&mut inner, Event::Delete { key: key.into(), revision, prev });
            revision
        }

        /// End every open watch, either quietly or with `Compacted`.
        fn break_watches(&self, compacted: bool) {
            let mut inner = self.lock();
            let c = inner.compacted;
            for (_, tx) in inner.watchers.drain(..) {
                if compacted {
                    let _ = tx.send(Err(StoreError::Compacted { requested: 0, compacted: c }));
                }
            }
        }

        fn watcher_count(&self) -> usize {
            self.lock().watchers.len()
        }
    }

    #[async_trait]
    impl Store for Mem {
        async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
            Ok(self.lock().kvs.get(key).cloned())
        }
        async fn range(&self, req: RangeRequest) -> Result<crate::RangeResult> {
            let inner = self.lock();
            let start = req.start.unwrap_or_else(|| req.prefix.clone());
            let mut kvs: Vec<KeyValue> = inner
                .kvs
                .range(start..)
                .take_while(|(k, _)| k.starts_with(&req.prefix))
                .map(|(_, v)| v.clone())
                .collect();
            let more = req.limit > 0 && kvs.len() > req.limit;
            if more {
                kvs.truncate(req.limit);
            }
            Ok(crate::RangeResult { kvs, revision: inner.rev, more })
        }
        async fn count(&self, prefix: &str) -> Result<i64> {
            Ok(self.lock().kvs.keys().filter(|k| k.starts_with(prefix)).count() as i64)
        }
        async fn create(&self, _: &str, _: Bytes) -> Result<Revision> {
            unimplemented!()
        }
        async fn update(&self, _: &str, _: Bytes, _: Revision) -> Result<Revision> {
            unimplemented!()
        }
        async fn delete(&self, _: &str, _: Revision) -> Result<(Revision, KeyValue)> {
            unimplemented!()
        }
        async fn current_revision(&self) -> Result<Revision> {
            Ok(self.lock().rev)
        }
        async fn compacted_revision(&self) -> Result<Revision> {
            Ok(self.lock().compacted)
        }
        async fn watch(&self, prefix: &str, after: Revision) -> Result<BoxStream<'static, Result<Event>>> {
            let mut inner = self.lock();
            if after + 1 < inner.compacted {
                return Err(StoreError::Compacted { requested: after, compacted: inner.compacted });
            }
            let (tx, rx) = mpsc::unbounded_channel();
            for ev in inner.log.iter().filter(|e| e.revision() > after && e.key().starts_with(prefix)) {
                let _ = tx.send(Ok(ev.clone()));
            }
            inner.watchers.push((prefix.to_string(), tx));
            Ok(Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)))
        }
        async fn compact(&self, revision: Revision) -> Result<()> {
            let mut inner = self.lock();
            inner.compacted = revision;
            inner.log.retain(|e| e.revision() >= revision);
            Ok(())
        }
    }

    fn pod(name: &str, v: i64) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"}, "spec": {"v": v}})
    }

    fn rv(o: &CachedObject) -> String {
        o.object()["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string()
    }

    async fn next(w: &mut CacheWatcher) -> Arc<CachedEvent> {
        tokio::time::timeout(Duration::from_secs(5), w.next()).await.expect("event in time").expect("watcher open")
    }

    #[tokio::test]
    async fn start_lists_objects_with_resource_versions_serialised_once() {
        let mem = Arc::new(Mem::default());
        let r1 = mem.put("/registry/pods/ns/a", pod("a", 1));
        mem.put("/registry/services/ns/a", json!({"kind": "Service", "metadata": {"name": "a"}}));
        let r3 = mem.put("/registry/pods/ns/b", pod("b", 1));
        let cache = WatchCache::start(mem.clone(), "/registry/", 100).await.unwrap();
        assert_eq!(cache.revision(), r3);

        let a = cache.get("/registry/pods/ns/a", 0).await.unwrap().unwrap();
        assert_eq!(rv(&a), r1.to_string());
        assert_eq!((a.create_revision, a.mod_revision), (r1, r1));
        let from_json: Value = serde_json::from_slice(&a.json).unwrap();
        assert_eq!(from_json, a.object());
        assert_eq!(
            a.selectable(),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "ns"}, "spec": {}})
        );
        assert_eq!((a.name(), a.namespace()), ("a", Some("ns")));

        let (pods, rev) = cache.list("/registry/pods/", r3).await.unwrap();
        let keys: Vec<&str> = pods.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["/registry/pods/ns/a", "/registry/pods/ns/b"]);
        assert_eq!(rev, r3);
        // Same Arc for every reader.
        let again = cache.get("/registry/pods/ns/a", 0).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &again));
    }

    #[tokio::test]
    async fn events_carry_kind_prev_and_deletion_revision() {
        let mem = Arc::new(Mem::default());
        let cache = WatchCache::start(mem.clone(), "/registry/", 100).await.unwrap();
        let mut w = cache.watch("/registry/pods/", 0).unwrap();
        let r1 = mem.put("/registry/pods/ns/a", pod("a", 1));
        let r2 = mem.put("/registry/pods/ns/a", pod("a", 2));
        let r3 = mem.del("/registry/pods/ns/a");

        let e1 = next(&mut w).await;
        assert_eq!((e1.kind, e1.revision, rv(&e1.object)), (EventType::Added, r1, r1.to_string()));
        assert!(e1.prev.is_none());
        let e2 = next(&mut w).await;
        assert_eq!((e2.kind, e2.revision), (EventType::Modified, r2));
        assert_eq!(e2.prev.as_ref().map(|p| p.object()["spec"]["v"].clone()), Some(json!(1)));
        let e3 = next(&mut w).await;
        assert_eq!((e3.kind, e3.revision), (EventType::Deleted, r3));
        assert_eq!(rv(&e3.object), r3.to_string());
        assert_eq!(e3.object.object()["spec"]["v"], json!(2));
        assert_eq!(e3.prev.as_ref().map(|p| rv(p)), Some(r2.to_string()));
        cache.wait_for(r3, Duration::from_secs(5)).await.unwrap();
        assert!(cache.get("/registry/pods/ns/a", r3).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn wait_for_times_out_with_future_revision() {
        let mem = Arc::new(Mem::default());
        let cache = WatchCache::start(mem.clone(), "/registry/", 10).await.unwrap();
        let r = mem.put("/registry/x/a", json!({}));
        cache.wait_for(r, Duration::from_secs(5)).await.unwrap();
        assert_eq!(cache.wait_for(r + 5, Duration::from_millis(50)).await, Err(StoreError::FutureRevision(r + 5)));
        assert_eq!(cache.get("/registry/x/a", r + 5).await.err(), Some(StoreError::FutureRevision(r + 5)));
    }

    #[tokio::test]
    async fn history_window_serves_recent_revisions_and_rejects_older() {
        let mem = Arc::new(Mem::default());
        let cache = WatchCache::start(mem.clone(), "/registry/", 3).await.unwrap();
        let revs: Vec<Revision> = (0..5).map(|i| mem.put(&format!("/registry/c/ns/{i}"), json!({"i": i}))).collect();
        cache.wait_for(revs[4], Duration::from_secs(5)).await.unwrap();
        // Window holds the last 3 events: revs[2..]; resuming after revs[1] works.
        let mut w = cache.watch("/registry/", revs[1]).unwrap();
        for r in &revs[2..] {
            assert_eq!(next(&mut w).await.revision, *r);
        }
        match cache.watch("/registry/", revs[0]) {
            Err(StoreError::Compacted { requested, compacted }) => {
                assert_eq!((requested, compacted), (revs[0], revs[1]))
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn relist_after_store_compaction_synthesizes_the_differences() {
        let mem = Arc::new(Mem::default());
        mem.put("/registry/p/ns/keep", json!({"v": 1}));
        mem.put("/registry/p/ns/change", json!({"v": 1}));
        mem.put("/registry/p/ns/gone", json!({"v": 1}));
        let cache = WatchCache::start(mem.clone(), "/registry/", 100).await.unwrap();
        let old = cache.revision();
        let mut w = cache.watch("/registry/p/", 0).unwrap();

        // Changes the cache's store watch never sees, then compacted away; then the
        // store watch reports Compacted.
        let hidden = std::mem::take(&mut mem.lock().watchers);
        let r_change = mem.put("/registry/p/ns/change", json!({"v": 2}));
        mem.del("/registry/p/ns/gone");
        let r_new = mem.put("/registry/p/ns/new", json!({"v": 1}));
        mem.compact(r_new).await.unwrap();
        for (_, tx) in hidden {
            let _ = tx.send(Err(StoreError::Compacted { requested: old, compacted: r_new }));
        }

        let mut seen = Vec::new();
        for _ in 0..3 {
            let e = next(&mut w).await;
            seen.push((e.kind, e.object.key.clone(), e.revision));
        }
        seen.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            seen,
            [
                (EventType::Modified, "/registry/p/ns/change".to_string(), r_new),
                (EventType::Deleted, "/registry/p/ns/gone".to_string(), r_new),
                (EventType::Added, "/registry/p/ns/new".to_string(), r_new),
            ]
        );
        let changed = cache.get("/registry/p/ns/change", r_new).await.unwrap().unwrap();
        assert_eq!(rv(&changed), r_change.to_string());
        assert!(matches!(cache.watch("/registry/", old), Err(StoreError::Compacted { .. })));
        // The cache follows the store again afterwards.
        let r = mem.put("/registry/p/ns/later", json!({}));
        assert_eq!(next(&mut w).await.revision, r);
    }

    #[tokio::test]
    async fn rewatch_after_a_broken_stream_loses_nothing() {
        let mem = Arc::new(Mem::default());
        let cache = WatchCache::start(mem.clone(), "/registry/", 100).await.unwrap();
        let mut w = cache.watch("/registry/", 0).unwrap();
        let r1 = mem.put("/registry/a/x", json!({}));
        assert_eq!(next(&mut w).await.revision, r1);
        mem.break_watches(false);
        // Written while the cache has no store watch: the re-watch from r1 replays it.
        let r2 = mem.put("/registry/a/y", json!({}));
        assert_eq!(next(&mut w).await.revision, r2);
        let r3 = mem.put("/registry/a/z", json!({}));
        assert_eq!(next(&mut w).await.revision, r3);
        assert_eq!(mem.watcher_count(), 1);
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_closed_without_blocking_others() {
        let mem = Arc::new(Mem::default());
        let cache = WatchCache::start(mem.clone(), "/registry/", 10).await.unwrap();
        let mut slow = cache.watch("/registry/", 0).unwrap();
        let mut fast = cache.watch("/registry/", 0).unwrap();
        let mut last = 0;
        for i in 0..(LIVE_BUFFER + 10) {
            last = mem.put("/registry/k/ns/a", json!({"i": i}));
            if i % 100 == 0 {
                // Keep `fast` at the head.
                cache.wait_for(last, Duration::from_secs(5)).await.unwrap();
                while next(&mut fast).await.revision < last {}
            }
        }
        cache.wait_for(last, Duration::from_secs(10)).await.unwrap();
        let mut got = 0;
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), fast.next()).await {
            got = e.revision;
        }
        assert_eq!(got, last);
        assert!(slow.next().await.is_none());
        assert!(slow.lagged());
    }

    /// Every JSON pointer the registry's field and label selectors read.
    const SELECTED: &[&str] = &[
        "/apiVersion",
        "/kind",
        "/type",
        "/reason",
        "/reportingComponent",
        "/reportingController",
        "/source/component",
        "/deprecatedSource/component",
        "/involvedObject/kind",
        "/involvedObject/name",
        "/involvedObject/fieldPath",
        "/regarding/uid",
        "/metadata/name",
        "/metadata/namespace",
        "/metadata/labels",
        "/spec/nodeName",
        "/spec/restartPolicy",
        "/spec/schedulerName",
        "/spec/serviceAccountName",
        "/spec/hostNetwork",
        "/spec/unschedulable",
        "/spec/clusterIP",
        "/spec/type",
        "/spec/signerName",
        "/spec/driver",
        "/status/phase",
        "/status/podIP",
        "/status/podIPs/0/ip",
        "/status/nominatedNodeName",
        "/status/replicas",
        "/status/succeeded",
    ];

    #[test]
    fn the_projection_answers_every_selected_field_and_drops_the_rest() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}, "uid": "u",
                "annotations": {"big": "x"}, "managedFields": [{"manager": "m"}], "ownerReferences": [{"uid": "o"}]},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "serviceAccountName": "default", "hostNetwork": true, "containers": [{"name": "c", "image": "i"}],
                "securityContext": {}, "dnsPolicy": "ClusterFirst"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                "nominatedNodeName": "n2", "conditions": [{"type": "Ready"}], "qosClass": "BestEffort"}
        });
        let event = json!({
            "apiVersion": "v1", "kind": "Event", "type": "Normal", "reason": "Scheduled", "message": "long text",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
            "source": {"component": "kubelet", "host": "n1"}, "reportingComponent": "kubelet"
        });
        let new_event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "type": "Warning", "reason": "R", "note": "text",
            "metadata": {"name": "e2"}, "regarding": {"uid": "u"}, "deprecatedSource": {"component": "c"},
            "reportingController": "ctl"
        });
        let others = [
            json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "s"}, "data": {"k": "dg=="}}),
            json!({"kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": true, "taints": []}}),
            json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.1", "type": "NodePort",
                "ports": [{"port": 80}]}}),
            json!({"kind": "CertificateSigningRequest", "metadata": {"name": "c"},
                "spec": {"signerName": "x/y", "request": "long"}}),
            json!({"kind": "ResourceSlice", "metadata": {"name": "r"}, "spec": {"nodeName": "n", "driver": "d"}}),
            json!({"kind": "ReplicationController", "metadata": {"name": "r"}, "status": {"replicas": 3}}),
            json!({"kind": "Job", "metadata": {"name": "j"}, "status": {"succeeded": 2}}),
            json!({"kind": "Namespace", "metadata": {"name": "n"}, "status": {"phase": "Active"}}),
        ];
        for obj in [&pod, &event, &new_event].into_iter().chain(others.iter()) {
            let p = selectable(obj);
            for ptr in SELECTED {
                assert_eq!(p.pointer(ptr), obj.pointer(ptr), "{ptr} of {obj}");
            }
        }
        let p = selectable(&pod);
        for dropped in [
            "/metadata/uid",
            "/metadata/annotations",
            "/metadata/managedFields",
            "/spec/containers",
            "/status/conditions",
            "/status/podIPs/1",
            "/status/qosClass",
        ] {
            assert_eq!(p.pointer(dropped), None, "{dropped}");
        }
        assert_eq!(selectable(&event).pointer("/message"), None);
        assert_eq!(selectable(&json!([1])), Value::Null);
    }

    #[tokio::test]
    async fn deleted_objects_keep_their_projection_and_parse_back_whole() {
        let mem = Arc::new(Mem::default());
        let cache = WatchCache::start(mem.clone(), "/registry/", 100).await.unwrap();
        let mut w = cache.watch("/registry/pods/", 0).unwrap();
        let mut p = pod("a", 1);
        p["metadata"]["labels"] = json!({"app": "web"});
        p["spec"]["nodeName"] = json!("n1");
        mem.put("/registry/pods/ns/a", p.clone());
        let r = mem.del("/registry/pods/ns/a");
        next(&mut w).await;
        let del = next(&mut w).await;
        assert_eq!(del.kind, EventType::Deleted);
        assert_eq!(del.object.selectable()["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(del.object.selectable()["spec"], json!({"nodeName": "n1"}));
        assert_eq!((del.object.name(), del.object.namespace()), ("a", Some("ns")));
        p["metadata"]["resourceVersion"] = json!(r.to_string());
        assert_eq!(del.object.object(), p);
    }

    #[test]
    fn resource_version_is_set_even_without_metadata() {
        let mut v = json!({"kind": "X"});
        set_resource_version(&mut v, 7);
        assert_eq!(v["metadata"]["resourceVersion"], json!("7"));
        let mut not_object = json!([1]);
        set_resource_version(&mut not_object, 7);
        assert_eq!(not_object, json!([1]));
    }
}
