//! WatchCache in front of a real etcd (started by the test; `etcd` must be on PATH:
//! without it these tests fail, they never skip).

use rkube_e2e::EtcdCluster;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_storage::cache::{CacheWatcher, CachedEvent, EventType, WatchCache};
use rkube_storage::etcd::EtcdStore;
use rkube_storage::{Store, StoreError};
use serde_json::{Value, json};

async fn setup(history: usize) -> (EtcdCluster, Arc<EtcdStore>, Arc<WatchCache>) {
    let etcd = EtcdCluster::start(1);
    let store = EtcdStore::connect(&etcd.endpoints()).await.expect("etcd became healthy");
    let cache = WatchCache::start(store.clone(), "/registry/", history).await.expect("cache started");
    (etcd, store, cache)
}

fn obj(kind: &str, ns: &str, name: &str, v: i64) -> Bytes {
    let value =
        json!({"kind": kind, "apiVersion": "v1", "metadata": {"name": name, "namespace": ns}, "data": {"v": v}});
    Bytes::from(serde_json::to_vec(&value).expect("json"))
}

fn rv(o: &rkube_storage::cache::CachedObject) -> String {
    o.object()["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string()
}

async fn next(w: &mut CacheWatcher) -> Arc<CachedEvent> {
    tokio::time::timeout(Duration::from_secs(10), w.next()).await.expect("event in time").expect("watcher open")
}

#[tokio::test]
async fn reads_are_consistent_with_the_store_after_writes() {
    let (_etcd, store, cache) = setup(1000).await;
    store.create("/registry/configmaps/a/one", obj("ConfigMap", "a", "one", 1)).await.unwrap();
    let r2 = store.create("/registry/configmaps/b/two", obj("ConfigMap", "b", "two", 1)).await.unwrap();
    let r3 = store.update("/registry/configmaps/a/one", obj("ConfigMap", "a", "one", 2), 0).await.unwrap();
    store.create("/registry/secrets/a/s", obj("Secret", "a", "s", 1)).await.unwrap();

    // Consistent read: the store's current revision, then wait for the cache.
    let current = store.current_revision().await.unwrap();
    cache.wait_for(current, Duration::from_secs(10)).await.unwrap();
    assert_eq!(cache.revision(), current);

    let (cms, rev) = cache.list("/registry/configmaps/", current).await.unwrap();
    assert_eq!(rev, current);
    let got: Vec<(String, String, i64)> =
        cms.iter().map(|o| (o.key.clone(), rv(o), o.object()["data"]["v"].as_i64().unwrap_or(-1))).collect();
    assert_eq!(
        got,
        [
            ("/registry/configmaps/a/one".to_string(), r3.to_string(), 2),
            ("/registry/configmaps/b/two".to_string(), r2.to_string(), 1),
        ]
    );
    // Namespace-scoped prefix.
    let (in_a, _) = cache.list("/registry/configmaps/a/", 0).await.unwrap();
    assert_eq!(in_a.len(), 1);
    // The shared JSON is the object, resourceVersion included.
    let one = cache.get("/registry/configmaps/a/one", current).await.unwrap().unwrap();
    let parsed: Value = serde_json::from_slice(&one.json).unwrap();
    assert_eq!(parsed["metadata"]["resourceVersion"], json!(r3.to_string()));
    // The same state as a store range at that revision.
    let kv = store.get("/registry/configmaps/a/one").await.unwrap().unwrap();
    assert_eq!((one.create_revision, one.mod_revision), (kv.create_revision, kv.mod_revision));

    // A revision the store has not reached: the wait times out.
    assert_eq!(
        cache.wait_for(current + 10, Duration::from_millis(200)).await,
        Err(StoreError::FutureRevision(current + 10))
    );
}

#[tokio::test]
async fn watches_are_ordered_filtered_and_carry_the_deletion_revision() {
    let (_etcd, store, cache) = setup(1000).await;
    let start = cache.revision();
    let mut pods = cache.watch("/registry/pods/", start).unwrap();
    let mut ns_a = cache.watch("/registry/pods/a/", start).unwrap();

    let r1 = store.create("/registry/pods/a/p", obj("Pod", "a", "p", 1)).await.unwrap();
    let r2 = store.create("/registry/pods/b/q", obj("Pod", "b", "q", 1)).await.unwrap();
    store.create("/registry/services/a/p", obj("Service", "a", "p", 1)).await.unwrap();
    let r4 = store.update("/registry/pods/a/p", obj("Pod", "a", "p", 2), r1).await.unwrap();
    let (r5, _) = store.delete("/registry/pods/a/p", r4).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = next(&mut pods).await;
        seen.push((e.kind, e.revision, e.object.key.clone(), rv(&e.object)));
    }
    assert_eq!(
        seen,
        [
            (EventType::Added, r1, "/registry/pods/a/p".into(), r1.to_string()),
            (EventType::Added, r2, "/registry/pods/b/q".into(), r2.to_string()),
            (EventType::Modified, r4, "/registry/pods/a/p".into(), r4.to_string()),
            (EventType::Deleted, r5, "/registry/pods/a/p".into(), r5.to_string()),
        ]
    );
    let revs: Vec<i64> =
        [next(&mut ns_a).await, next(&mut ns_a).await, next(&mut ns_a).await].iter().map(|e| e.revision).collect();
    assert_eq!(revs, [r1, r4, r5]);

    // A watch resuming from a past revision replays the window.
    let mut late = cache.watch("/registry/pods/", r2).unwrap();
    assert_eq!(next(&mut late).await.revision, r4);
    let deleted = next(&mut late).await;
    assert_eq!((deleted.kind, deleted.object.object()["data"]["v"].clone()), (EventType::Deleted, json!(2)));
    assert_eq!(deleted.prev.as_ref().map(|p| rv(p)), Some(r4.to_string()));
}

#[tokio::test]
async fn history_window_bounds_resumable_revisions() {
    let (_etcd, store, cache) = setup(5).await;
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(store.create(&format!("/registry/leases/ns/l{i}"), obj("Lease", "ns", "l", i)).await.unwrap());
    }
    cache.wait_for(revs[9], Duration::from_secs(10)).await.unwrap();
    // The last 5 events (revs[5..]) are kept: resuming after revs[4] works, after revs[3] is too old.
    let mut w = cache.watch("/registry/leases/", revs[4]).unwrap();
    assert_eq!(next(&mut w).await.revision, revs[5]);
    assert!(matches!(cache.watch("/registry/leases/", revs[3]), Err(StoreError::Compacted { .. })));
}

#[tokio::test]
async fn list_and_watch_has_no_gap_under_concurrent_writes() {
    let (_etcd, store, cache) = setup(10_000).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                store.create(&format!("/registry/events/ns/e{i:03}"), obj("Event", "ns", "e", i)).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (initial, rev, mut w) = cache.list_and_watch("/registry/events/").unwrap();
    assert!(initial.iter().all(|o| o.mod_revision <= rev));
    let mut keys: Vec<String> = initial.iter().map(|o| o.key.clone()).collect();
    let mut last = rev;
    while keys.len() < 200 {
        let e = next(&mut w).await;
        assert!(e.revision > last, "events strictly after the list, in order");
        last = e.revision;
        keys.push(e.object.key.clone());
    }
    writer.await.unwrap();
    let expected: Vec<String> = (0..200).map(|i| format!("/registry/events/ns/e{i:03}")).collect();
    keys.sort();
    assert_eq!(keys, expected, "every object exactly once");
}

#[tokio::test]
async fn five_hundred_watchers_all_receive_an_event() {
    let (_etcd, store, cache) = setup(100).await;
    let mut watchers: Vec<CacheWatcher> = (0..500).map(|_| cache.watch("/registry/pods/", 0).unwrap()).collect();
    let r = store.create("/registry/pods/ns/p", obj("Pod", "ns", "p", 1)).await.unwrap();
    let first = next(&mut watchers[0]).await;
    for w in watchers.iter_mut().skip(1) {
        let e = next(w).await;
        assert_eq!((e.revision, e.kind), (r, EventType::Added));
        // One shared event, not a copy per watcher.
        assert!(Arc::ptr_eq(&e, &first));
    }
}

/// The same cache over the embedded backend: writes, deletes and a resumed watch.
#[tokio::test]
async fn works_over_the_sqlite_store() {
    let store = rkube_storage::sqlite::SqliteStore::open_in_memory().expect("sqlite");
    let r0 = store.create("/registry/pods/ns/pre", obj("Pod", "ns", "pre", 0)).await.unwrap();
    let cache = WatchCache::start(store.clone(), "/registry/", 100).await.unwrap();
    assert_eq!(cache.revision(), r0);
    let mut w = cache.watch("/registry/pods/", r0).unwrap();
    let r1 = store.create("/registry/pods/ns/a", obj("Pod", "ns", "a", 1)).await.unwrap();
    let (r2, _) = store.delete("/registry/pods/ns/pre", r0).await.unwrap();
    let current = store.current_revision().await.unwrap();
    cache.wait_for(current, Duration::from_secs(10)).await.unwrap();
    let (pods, rev) = cache.list("/registry/pods/", current).await.unwrap();
    assert_eq!(rev, current);
    assert_eq!(pods.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["/registry/pods/ns/a"]);
    let e1 = next(&mut w).await;
    assert_eq!((e1.kind, e1.revision), (EventType::Added, r1));
    let e2 = next(&mut w).await;
    assert_eq!((e2.kind, e2.revision, rv(&e2.object)), (EventType::Deleted, r2, r2.to_string()));
}

/// A watcher is drained only once it has returned every event applied so far:
/// what the apiserver checks before it sends a BOOKMARK at the cache's revision.
#[tokio::test]
async fn a_watcher_is_drained_only_after_reading_its_events() {
    let (_etcd, store, cache) = setup(100).await;
    let mut w = cache.watch("/registry/configmaps/", cache.revision()).unwrap();
    assert!(w.is_drained());
    let rev = store.create("/registry/configmaps/a/one", obj("ConfigMap", "a", "one", 1)).await.unwrap();
    cache.wait_for(rev, Duration::from_secs(5)).await.unwrap();
    assert!(!w.is_drained(), "an applied event is still queued for the watcher");
    assert_eq!(next(&mut w).await.revision, rev);
    assert!(w.is_drained());
}
