//! The storage conformance suite: the properties every [`Store`] backend must have, run by each
//! backend's tests (`tests/sqlite.rs`, `tests/etcd.rs`).
//!
//! This is test support, not production code: properties fail by panicking with a message. Every
//! property works under its own fresh key prefix, so the suite can run on a store that already
//! holds data. It assumes nobody else writes to the store while it runs (revision arithmetic is
//! exact), and [`compaction`] compacts the whole store, so it runs last in [`run_all`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::{Event, KeyValue, RangeRequest, Revision, Store, StoreError};

/// How long a property waits for a watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

static RUN: AtomicU64 = AtomicU64::new(0);

/// A key prefix no earlier run used.
pub fn fresh_base() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("/conformance/{nanos}-{}/", RUN.fetch_add(1, Ordering::Relaxed))
}

/// Every property, in an order where only the last one compacts.
pub async fn run_all(store: Arc<dyn Store>) {
    let base = fresh_base();
    crud_cas(&store, &format!("{base}crud/")).await;
    revisions_increase_by_one(&store, &format!("{base}revs/")).await;
    range_prefix_sorted_paginated(&store, &format!("{base}range/")).await;
    range_at_past_revision_under_concurrent_writes(&store, &format!("{base}past/")).await;
    count(&store, &format!("{base}count/")).await;
    watch_replays_then_streams(&store, &format!("{base}watch/")).await;
    concurrent_writers(&store, &format!("{base}concurrent/")).await;
    compaction(&store, &format!("{base}compact/")).await;
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn must<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

async fn next_event(w: &mut BoxStream<'static, crate::Result<Event>>, what: &str) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("{what}: watch error {e:?}"),
        Ok(None) => panic!("{what}: watch ended"),
        Err(_) => panic!("{what}: no event within {EVENT_TIMEOUT:?}"),
    }
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

/// create/get/update/delete with compare-and-swap semantics.
pub async fn crud_cas(store: &Arc<dyn Store>, p: &str) {
    let a = format!("{p}a");
    assert_eq!(must(store.get(&a).await, "get missing"), None, "missing key reads as None");

    let r1 = must(store.create(&a, b("v1")).await, "create");
    let kv = must(store.get(&a).await, "get").expect("created key is readable");
    assert_eq!(kv, KeyValue { key: a.clone(), value: b("v1"), create_revision: r1, mod_revision: r1 });

    match store.create(&a, b("again")).await {
        Err(StoreError::AlreadyExists(k)) => assert_eq!(k, a),
        other => panic!("create of an existing key must be AlreadyExists, got {other:?}"),
    }

    // Update with the right expected revision.
    let r2 = must(store.update(&a, b("v2"), r1).await, "update with current revision");
    assert!(r2 > r1);
    let kv = must(store.get(&a).await, "get").expect("updated key");
    assert_eq!((kv.value, kv.create_revision, kv.mod_revision), (b("v2"), r1, r2), "update keeps create_revision");

    // Stale expected revision: Conflict carrying the current value, nothing written.
    match store.update(&a, b("stale"), r1).await {
        Err(StoreError::Conflict { key, current }) => {
            assert_eq!(key, a);
            assert_eq!(*current, KeyValue { key: a.clone(), value: b("v2"), create_revision: r1, mod_revision: r2 });
        }
        other => panic!("stale update must conflict, got {other:?}"),
    }
    assert_eq!(must(store.get(&a).await, "get").map(|kv| kv.value), Some(b("v2")), "conflict wrote nothing");

    // expected = 0 updates whatever is there.
    let r3 = must(store.update(&a, b("v3"), 0).await, "update with expected=0");
    assert!(r3 > r2);
    assert_eq!(must(store.get(&a).await, "get").map(|kv| kv.mod_revision), Some(r3));

    // Update / delete of a missing key.
    let missing = format!("{p}missing");
    assert!(
        matches!(store.update(&missing, b("x"), 0).await, Err(StoreError::NotFound(ref k)) if *k == missing),
        "update of a missing key with expected=0 must be NotFound"
    );
    assert!(
        matches!(store.update(&missing, b("x"), r1).await, Err(StoreError::NotFound(_))),
        "update of a missing key must be NotFound"
    );
    assert!(
        matches!(store.delete(&missing, 0).await, Err(StoreError::NotFound(_))),
        "delete of a missing key must be NotFound"
    );

    // Delete with a stale revision conflicts; with the current one succeeds and returns the last value.
    match store.delete(&a, r2).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current.mod_revision, r3),
        other => panic!("stale delete must conflict, got {other:?}"),
    }
    let (r4, last) = must(store.delete(&a, r3).await, "delete with current revision");
    assert!(r4 > r3);
    assert_eq!(last, KeyValue { key: a.clone(), value: b("v3"), create_revision: r1, mod_revision: r3 });
    assert_eq!(must(store.get(&a).await, "get deleted").map(|kv| kv.key), None);

    // Re-create: a new life with a new create_revision; delete with expected = 0.
    let r5 = must(store.create(&a, b("v5")).await, "re-create");
    let kv = must(store.get(&a).await, "get").expect("re-created key");
    assert_eq!((kv.create_revision, kv.mod_revision), (r5, r5));
    let (r6, last) = must(store.delete(&a, 0).await, "delete with expected=0");
    assert!(r6 > r5);
    assert_eq!(last.value, b("v5"));

    // Values are opaque bytes, including empty and non-UTF-8 ones.
    let bin = format!("{p}bin");
    let raw = Bytes::from_static(&[0, 159, 146, 150, 255]);
    must(store.create(&bin, raw.clone()).await, "create binary");
    assert_eq!(must(store.get(&bin).await, "get").map(|kv| kv.value), Some(raw));
    let empty = format!("{p}empty");
    must(store.create(&empty, Bytes::new()).await, "create empty");
    assert_eq!(must(store.get(&empty).await, "get").map(|kv| kv.value), Some(Bytes::new()));
}

/// Every successful write bumps the global revision by exactly one; failed writes do not.
pub async fn revisions_increase_by_one(store: &Arc<dyn Store>, p: &str) {
    let mut rev = must(store.current_revision().await, "current_revision");
    for i in 0..5 {
        let k = format!("{p}{i}");
        let r = must(store.create(&k, b("x")).await, "create");
        assert_eq!(r, rev + 1, "create bumps the revision by one");
        rev = r;
        let r = must(store.update(&k, b("y"), rev).await, "update");
        assert_eq!(r, rev + 1, "update bumps the revision by one");
        rev = r;
        assert!(store.create(&k, b("z")).await.is_err());
        assert!(store.update(&k, b("z"), rev - 1).await.is_err());
        assert_eq!(must(store.current_revision().await, "current_revision"), rev, "failed writes keep the revision");
        if i % 2 == 0 {
            let (r, _) = must(store.delete(&k, 0).await, "delete");
            assert_eq!(r, rev + 1, "delete bumps the revision by one");
            rev = r;
        }
    }
    assert_eq!(must(store.current_revision().await, "current_revision"), rev);
}

/// Range by prefix is sorted by key; limit/more and start paginate; reads at current report the
/// current revision; a future revision is refused.
pub async fn range_prefix_sorted_paginated(store: &Arc<dyn Store>, p: &str) {
    let names = ["m", "b", "a", "c/x", "c", "a0", "z\u{e9}", "B"];
    for n in names {
        must(store.create(&format!("{p}{n}"), b(n)).await, "create");
    }
    // Neighbours that share a string prefix with `p` without being under it.
    let outside = format!("{}x", p.trim_end_matches('/'));
    must(store.create(&outside, b("out")).await, "create outside");

    let mut expected: Vec<String> = names.iter().map(|n| format!("{p}{n}")).collect();
    expected.sort();
    let all = must(store.range(RangeRequest { prefix: p.to_string(), ..Default::default() }).await, "range");
    assert_eq!(keys(&all.kvs), expected.iter().map(String::as_str).collect::<Vec<_>>(), "sorted by key, prefix only");
    assert!(!all.more);
    assert_eq!(all.revision, must(store.current_revision().await, "current_revision"));
    for kv in &all.kvs {
        assert_eq!(kv.value, b(&kv.key[p.len()..]), "value belongs to its key");
    }

    // Pages of 3 with `start`.
    let mut got = Vec::new();
    let mut start: Option<String> = None;
    let mut pages = 0;
    loop {
        let req = RangeRequest { prefix: p.to_string(), start: start.clone(), revision: all.revision, limit: 3 };
        let page = must(store.range(req).await, "range page");
        assert!(page.kvs.len() <= 3);
        assert_eq!(page.revision, all.revision);
        pages += 1;
        got.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        let last = page.kvs.last().map(|kv| kv.key.clone()).expect("a page with more has keys");
        start = Some(format!("{last}\0"));
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(got, expected);
    assert_eq!(pages, 3, "8 keys in pages of 3");

    // A limit equal to the number of keys: everything, more = false.
    let exact = must(
        store.range(RangeRequest { prefix: p.to_string(), limit: expected.len(), ..Default::default() }).await,
        "range exact limit",
    );
    assert_eq!(exact.kvs.len(), expected.len());
    assert!(!exact.more, "more is false when nothing was cut");

    // start inside the prefix.
    let from_c = must(
        store.range(RangeRequest { prefix: p.to_string(), start: Some(format!("{p}c")), ..Default::default() }).await,
        "range from start",
    );
    let want: Vec<&str> = expected.iter().map(String::as_str).filter(|k| *k >= format!("{p}c").as_str()).collect();
    assert_eq!(keys(&from_c.kvs), want);

    // A sub-prefix and an empty prefix range.
    let sub = must(store.range(RangeRequest { prefix: format!("{p}c/"), ..Default::default() }).await, "range sub");
    assert_eq!(keys(&sub.kvs), vec![format!("{p}c/x").as_str()]);
    let none = must(store.range(RangeRequest { prefix: format!("{p}nothing/"), ..Default::default() }).await, "empty");
    assert!(none.kvs.is_empty() && !none.more);

    // A future revision.
    let future = all.revision + 1000;
    match store.range(RangeRequest { prefix: p.to_string(), revision: future, ..Default::default() }).await {
        Err(StoreError::FutureRevision(r)) => assert_eq!(r, future),
        other => panic!("range at a future revision must be FutureRevision, got {other:?}"),
    }
}

/// A paginated read at revision R returns exactly the keys (and values) that existed at R, while
/// other tasks update, delete and create keys in the same prefix.
pub async fn range_at_past_revision_under_concurrent_writes(store: &Arc<dyn Store>, p: &str) {
    let mut at_r: BTreeMap<String, (Bytes, Revision)> = BTreeMap::new();
    for i in 0..40 {
        let k = format!("{p}k{i:02}");
        let r = must(store.create(&k, b(&format!("v0-{i}"))).await, "create");
        at_r.insert(k, (b(&format!("v0-{i}")), r));
    }
    let (gone, _) = must(store.delete(&format!("{p}k05"), 0).await, "delete");
    at_r.remove(&format!("{p}k05"));
    let r = must(store.current_revision().await, "current_revision");
    assert_eq!(r, gone);

    let writer = {
        let store = store.clone();
        let p = p.to_string();
        tokio::spawn(async move {
            for i in 0..40 {
                let k = format!("{p}k{i:02}");
                match i % 3 {
                    0 => drop(store.update(&k, b("changed"), 0).await),
                    1 => drop(store.delete(&k, 0).await),
                    _ => drop(store.create(&format!("{k}-new"), b("new")).await),
                }
                tokio::task::yield_now().await;
            }
            must(store.create(&format!("{p}k05"), b("back")).await, "re-create");
        })
    };

    let mut got: BTreeMap<String, (Bytes, Revision)> = BTreeMap::new();
    let mut start: Option<String> = None;
    for _ in 0..100 {
        let req = RangeRequest { prefix: p.to_string(), start: start.clone(), revision: r, limit: 7 };
        let page = must(store.range(req).await, "range page at R");
        assert_eq!(page.revision, r, "a read at R reports R");
        for kv in &page.kvs {
            assert!(got.insert(kv.key.clone(), (kv.value.clone(), kv.mod_revision)).is_none(), "duplicate {}", kv.key);
        }
        if !page.more {
            break;
        }
        start = page.kvs.last().map(|kv| format!("{}\0", kv.key));
        tokio::task::yield_now().await;
    }
    must(writer.await, "writer task");
    assert_eq!(got, at_r, "paginated read at R returns exactly the state at R");

    // Once the writes are done, R still reads the same, and current reads differ.
    let again = must(store.range(RangeRequest { prefix: p.to_string(), revision: r, ..Default::default() }).await, "R");
    let again: BTreeMap<_, _> = again.kvs.into_iter().map(|kv| (kv.key, (kv.value, kv.mod_revision))).collect();
    assert_eq!(again, at_r);
    let now = must(store.range(RangeRequest { prefix: p.to_string(), ..Default::default() }).await, "now");
    assert!(now.kvs.iter().any(|kv| kv.value == b("new")), "current read sees the new keys");
    assert!(!now.kvs.iter().any(|kv| kv.key == format!("{p}k01")), "current read misses deleted keys");
}

/// count counts the live keys under a prefix.
pub async fn count(store: &Arc<dyn Store>, p: &str) {
    assert_eq!(must(store.count(p).await, "count empty"), 0);
    for i in 0..7 {
        must(store.create(&format!("{p}{i}"), b("x")).await, "create");
    }
    must(store.create(&format!("{p}sub/a"), b("x")).await, "create");
    must(store.create(&format!("{}x", p.trim_end_matches('/')), b("x")).await, "create outside");
    assert_eq!(must(store.count(p).await, "count"), 8);
    assert_eq!(must(store.count(&format!("{p}sub/")).await, "count sub"), 1);
    must(store.delete(&format!("{p}3"), 0).await, "delete");
    must(store.update(&format!("{p}4"), b("y"), 0).await, "update");
    assert_eq!(must(store.count(p).await, "count after delete"), 7);
}

fn expect_put(ev: &Event, key: &str, value: &str, create: Revision, rev: Revision, prev: Option<(&str, Revision)>) {
    let Event::Put { kv, prev: got_prev } = ev else { panic!("expected a put of {key} at {rev}, got {ev:?}") };
    assert_eq!((kv.key.as_str(), &kv.value, kv.create_revision, kv.mod_revision), (key, &b(value), create, rev));
    match (prev, got_prev) {
        (None, Some(p)) => panic!("a create carries no prev, got {p:?}"),
        (Some((v, r)), Some(p)) => {
            assert_eq!((p.key.as_str(), &p.value, p.mod_revision), (key, &b(v), r), "put prev value")
        }
        // prev on a put is optional for a backend.
        (_, None) => {}
    }
}

fn expect_delete(ev: &Event, key: &str, rev: Revision, prev_value: &str, prev_rev: Revision, create: Revision) {
    let Event::Delete { key: k, revision, prev } = ev else {
        panic!("expected a delete of {key} at {rev}, got {ev:?}")
    };
    assert_eq!((k.as_str(), *revision), (key, rev));
    assert_eq!(
        prev,
        &KeyValue { key: key.to_string(), value: b(prev_value), create_revision: create, mod_revision: prev_rev },
        "a delete carries the last value"
    );
}

/// A watch from a past revision replays the history after it, then streams live writes, in
/// revision order, only for its prefix, with deletes carrying their last value.
pub async fn watch_replays_then_streams(store: &Arc<dyn Store>, p: &str) {
    let outside = format!("{}x/o", p.trim_end_matches('/'));
    let (a, bk, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let r0 = must(store.current_revision().await, "current_revision");
    let r1 = must(store.create(&a, b("a1")).await, "create a");
    let r2 = must(store.create(&bk, b("b1")).await, "create b");
    let r3 = must(store.create(&outside, b("o")).await, "create outside");
    let r4 = must(store.update(&a, b("a2"), r1).await, "update a");
    let (r5, _) = must(store.delete(&bk, r2).await, "delete b");
    assert!(r3 > r2);

    let mut w = must(store.watch(p, r0).await, "watch from r0");
    expect_put(&next_event(&mut w, "replay 1").await, &a, "a1", r1, r1, None);
    expect_put(&next_event(&mut w, "replay 2").await, &bk, "b1", r2, r2, None);
    expect_put(&next_event(&mut w, "replay 3").await, &a, "a2", r1, r4, Some(("a1", r1)));
    expect_delete(&next_event(&mut w, "replay 4").await, &bk, r5, "b1", r2, r2);

    // A watch from the middle starts strictly after its revision.
    let mut mid = must(store.watch(p, r2).await, "watch from r2");
    expect_put(&next_event(&mut mid, "mid 1").await, &a, "a2", r1, r4, Some(("a1", r1)));
    // A watch from now sees only what comes next.
    let now = must(store.current_revision().await, "current_revision");
    let mut fresh = must(store.watch(p, now).await, "watch from now");

    // Live.
    let r6 = must(store.create(&c, b("c1")).await, "create c");
    must(store.update(&outside, b("o2"), 0).await, "update outside");
    let (r8, _) = must(store.delete(&a, 0).await, "delete a");
    let r9 = must(store.create(&bk, b("b2")).await, "re-create b");

    expect_put(&next_event(&mut w, "live 1").await, &c, "c1", r6, r6, None);
    expect_delete(&next_event(&mut w, "live 2").await, &a, r8, "a2", r4, r1);
    expect_put(&next_event(&mut w, "live 3").await, &bk, "b2", r9, r9, None);

    expect_delete(&next_event(&mut mid, "mid 2").await, &bk, r5, "b1", r2, r2);
    expect_put(&next_event(&mut mid, "mid 3").await, &c, "c1", r6, r6, None);

    expect_put(&next_event(&mut fresh, "fresh 1").await, &c, "c1", r6, r6, None);
    expect_delete(&next_event(&mut fresh, "fresh 2").await, &a, r8, "a2", r4, r1);

    // A burst of writes arrives complete and in order, interleaved with a live watcher.
    let burst_start = must(store.current_revision().await, "current_revision");
    let mut burst = must(store.watch(&format!("{p}burst/"), burst_start).await, "watch burst");
    let writer = {
        let store = store.clone();
        let p = p.to_string();
        tokio::spawn(async move {
            for i in 0..200 {
                must(store.create(&format!("{p}burst/{i:03}"), b("x")).await, "burst create");
            }
        })
    };
    let mut last = burst_start;
    for i in 0..200 {
        let ev = next_event(&mut burst, "burst").await;
        assert_eq!(ev.key(), format!("{p}burst/{i:03}"));
        assert!(ev.revision() > last, "events in revision order");
        last = ev.revision();
    }
    must(writer.await, "burst writer");
}

/// Many concurrent writers: every write acknowledged once, with distinct revisions forming one
/// contiguous block, and all visible afterwards.
pub async fn concurrent_writers(store: &Arc<dyn Store>, p: &str) {
    const TASKS: usize = 32;
    const PER_TASK: usize = 100;
    let before = must(store.current_revision().await, "current_revision");
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let p = p.to_string();
        handles.push(tokio::spawn(async move {
            let mut revs = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                revs.push(must(store.create(&format!("{p}{t:02}/{i:03}"), b("x")).await, "concurrent create"));
            }
            revs
        }));
    }
    let mut revs = Vec::new();
    for h in handles {
        revs.extend(must(h.await, "writer task"));
    }
    revs.sort_unstable();
    let n = TASKS * PER_TASK;
    let want: Vec<Revision> = (before + 1..=before + n as i64).collect();
    assert_eq!(revs, want, "acknowledged revisions are distinct and contiguous");
    assert_eq!(must(store.count(p).await, "count"), n as i64);
    let all = must(store.range(RangeRequest { prefix: p.to_string(), ..Default::default() }).await, "range");
    assert_eq!(all.kvs.len(), n);
    assert_eq!(all.revision, before + n as i64);
}

/// Compaction: history at or after the compacted revision stays readable and current values stay;
/// older reads and watches get Compacted.
pub async fn compaction(store: &Arc<dyn Store>, p: &str) {
    let (a, bk, c, d) = (format!("{p}a"), format!("{p}b"), format!("{p}c"), format!("{p}d"));
    let r_a1 = must(store.create(&a, b("a1")).await, "create a");
    must(store.create(&bk, b("b1")).await, "create b");
    must(store.create(&c, b("c1")).await, "create c");
    let r_a2 = must(store.update(&a, b("a2"), 0).await, "update a");
    must(store.delete(&bk, 0).await, "delete b");
    let at = must(store.current_revision().await, "current_revision");
    let snapshot = must(store.range(RangeRequest { prefix: p.to_string(), ..Default::default() }).await, "snapshot");
    let r_a3 = must(store.update(&a, b("a3"), 0).await, "update a");
    let r_d = must(store.create(&d, b("d1")).await, "create d");
    let (r_del_c, _) = must(store.delete(&c, 0).await, "delete c");

    must(store.compact(at).await, "compact");
    assert!(must(store.compacted_revision().await, "compacted_revision") >= at);

    // The compacted revision itself is still readable and unchanged.
    let at_c =
        must(store.range(RangeRequest { prefix: p.to_string(), revision: at, ..Default::default() }).await, "at");
    assert_eq!(at_c.kvs, snapshot.kvs, "the state at the compacted revision survives compaction");
    // Current values survive.
    let now = must(store.range(RangeRequest { prefix: p.to_string(), ..Default::default() }).await, "now");
    assert_eq!(keys(&now.kvs), vec![a.as_str(), d.as_str()]);
    assert_eq!(now.kvs[0].value, b("a3"));
    assert_eq!(must(store.get(&a).await, "get").map(|kv| kv.value), Some(b("a3")));

    // Older revisions are gone, for range and for watch.
    match store.range(RangeRequest { prefix: p.to_string(), revision: at - 1, ..Default::default() }).await {
        Err(StoreError::Compacted { .. }) => {}
        other => panic!("range below the compacted revision must be Compacted, got {other:?}"),
    }
    match store.watch(p, at - 2).await {
        Err(StoreError::Compacted { .. }) => {}
        Ok(mut w) => match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
            Ok(Some(Err(StoreError::Compacted { .. }))) => {}
            other => panic!("watch below the compacted revision must end with Compacted, got {other:?}"),
        },
        Err(e) => panic!("watch below the compacted revision must be Compacted, got {e:?}"),
    }

    // Watching from the compacted revision replays everything after it.
    let mut w = must(store.watch(p, at).await, "watch from the compacted revision");
    expect_put(&next_event(&mut w, "after compaction 1").await, &a, "a3", r_a1, r_a3, Some(("a2", r_a2)));
    expect_put(&next_event(&mut w, "after compaction 2").await, &d, "d1", r_d, r_d, None);
    let ev = next_event(&mut w, "after compaction 3").await;
    assert!(
        matches!(&ev, Event::Delete { key, revision, prev } if *key == c && *revision == r_del_c && prev.value == b("c1"))
    );

    // Compacting again to the same revision is harmless; a future revision is refused.
    match store.compact(at).await {
        Ok(()) | Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("re-compacting must be Ok or Compacted, got {e:?}"),
    }
    let cur = must(store.current_revision().await, "current_revision");
    assert!(
        matches!(store.compact(cur + 100).await, Err(StoreError::FutureRevision(_))),
        "compacting a future revision is FutureRevision"
    );
    // Writes go on after compaction.
    let r = must(store.update(&a, b("a4"), r_a3).await, "update after compaction");
    assert_eq!(r, cur + 1);
}
