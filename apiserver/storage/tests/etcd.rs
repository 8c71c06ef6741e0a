//! EtcdStore against a real etcd started by the test (loopback, temp data dir, free
//! ports). `etcd` must be on PATH: without it these tests fail, they never skip.

use rkube_e2e::EtcdCluster;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rkube_storage::etcd::EtcdStore;
use rkube_storage::{Event, RangeRequest, Store, StoreError};

async fn connect(etcd: &EtcdCluster) -> Arc<EtcdStore> {
    match EtcdStore::connect(&etcd.endpoints()).await {
        Ok(s) => s,
        Err(e) => panic!("etcd did not become healthy: {e}\n{}", etcd.logs()),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn crud_follows_etcd_compare_and_swap() {
    let etcd = EtcdCluster::start(1);
    let s = connect(&etcd).await;
    let r0 = s.current_revision().await.unwrap();

    let r1 = s.create("/registry/pods/default/a", b("1")).await.unwrap();
    assert_eq!(r1, r0 + 1);
    assert_eq!(s.current_revision().await.unwrap(), r1);
    assert_eq!(
        s.create("/registry/pods/default/a", b("x")).await,
        Err(StoreError::AlreadyExists("/registry/pods/default/a".into()))
    );
    let kv = s.get("/registry/pods/default/a").await.unwrap().unwrap();
    assert_eq!((kv.value.as_ref(), kv.create_revision, kv.mod_revision), (&b"1"[..], r1, r1));
    assert_eq!(s.get("/registry/pods/default/missing").await.unwrap(), None);

    // Update with a stale revision: Conflict carrying the current value.
    let r2 = s.update("/registry/pods/default/a", b("2"), r1).await.unwrap();
    assert_eq!(r2, r1 + 1);
    match s.update("/registry/pods/default/a", b("3"), r1).await {
        Err(StoreError::Conflict { key, current }) => {
            assert_eq!(key, "/registry/pods/default/a");
            assert_eq!((current.value.as_ref(), current.mod_revision, current.create_revision), (&b"2"[..], r2, r1));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // expected = 0: any existing value.
    let r3 = s.update("/registry/pods/default/a", b("3"), 0).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(
        s.update("/registry/pods/default/nope", b("x"), 0).await,
        Err(StoreError::NotFound("/registry/pods/default/nope".into()))
    );
    assert_eq!(
        s.update("/registry/pods/default/nope", b("x"), 5).await,
        Err(StoreError::NotFound("/registry/pods/default/nope".into()))
    );

    // Delete: stale revision conflicts, right one returns the last value.
    assert!(matches!(s.delete("/registry/pods/default/a", r2).await, Err(StoreError::Conflict { .. })));
    let (rd, prev) = s.delete("/registry/pods/default/a", r3).await.unwrap();
    assert_eq!(rd, r3 + 1);
    assert_eq!((prev.value.as_ref(), prev.mod_revision), (&b"3"[..], r3));
    assert_eq!(
        s.delete("/registry/pods/default/a", 0).await,
        Err(StoreError::NotFound("/registry/pods/default/a".into()))
    );
    // Recreated key has a fresh create revision.
    let r5 = s.create("/registry/pods/default/a", b("new")).await.unwrap();
    assert_eq!(s.get("/registry/pods/default/a").await.unwrap().unwrap().create_revision, r5);
    let (_, prev) = s.delete("/registry/pods/default/a", 0).await.unwrap();
    assert_eq!(prev.value.as_ref(), b"new");
}

#[tokio::test]
async fn range_pages_counts_and_reads_the_past() {
    let etcd = EtcdCluster::start(1);
    let s = connect(&etcd).await;
    for name in ["c", "a", "b", "d"] {
        s.create(&format!("/registry/pods/ns1/{name}"), b(name)).await.unwrap();
    }
    s.create("/registry/pods/ns10/x", b("x")).await.unwrap();
    s.create("/registry/services/ns1/a", b("svc")).await.unwrap();
    let before = s.current_revision().await.unwrap();
    s.update("/registry/pods/ns1/a", b("a2"), 0).await.unwrap();

    let all = s.range(RangeRequest { prefix: "/registry/pods/ns1/".into(), ..Default::default() }).await.unwrap();
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/ns1/a", "/registry/pods/ns1/b", "/registry/pods/ns1/c", "/registry/pods/ns1/d"]);
    assert_eq!(all.revision, before + 1);
    assert!(!all.more);
    assert_eq!(s.count("/registry/pods/").await.unwrap(), 5);
    assert_eq!(s.count("/registry/pods/ns1/").await.unwrap(), 4);
    assert_eq!(s.count("/registry/").await.unwrap(), 6);

    // Pagination: limit, more, resume at a start key, at a fixed revision.
    let p1 =
        s.range(RangeRequest { prefix: "/registry/pods/ns1/".into(), limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(p1.kvs.len(), 2);
    assert!(p1.more);
    let p2 = s
        .range(RangeRequest {
            prefix: "/registry/pods/ns1/".into(),
            start: Some(format!("{}\0", p1.kvs[1].key)),
            revision: p1.revision,
            limit: 2,
        })
        .await
        .unwrap();
    let keys: Vec<&str> = p2.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/ns1/c", "/registry/pods/ns1/d"]);
    assert!(!p2.more);
    assert_eq!(p2.revision, p1.revision);

    // A past revision shows the old value.
    let old = s
        .range(RangeRequest { prefix: "/registry/pods/ns1/a".into(), revision: before, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value.as_ref(), b"a");
    assert_eq!(old.revision, before);
    // The future is an error.
    let future = before + 100;
    assert_eq!(
        s.range(RangeRequest { prefix: "/registry/".into(), revision: future, ..Default::default() }).await.err(),
        Some(StoreError::FutureRevision(future))
    );
}

async fn next_event(stream: &mut futures::stream::BoxStream<'static, rkube_storage::Result<Event>>) -> Event {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(ev))) => ev,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_replays_history_then_live_with_prev_values() {
    let etcd = EtcdCluster::start(1);
    let s = connect(&etcd).await;
    let r1 = s.create("/registry/pods/ns/a", b("1")).await.unwrap();
    let r2 = s.update("/registry/pods/ns/a", b("2"), r1).await.unwrap();
    s.create("/registry/services/ns/a", b("other prefix")).await.unwrap();

    // From r1: the update is history.
    let mut w = s.watch("/registry/pods/", r1).await.unwrap();
    match next_event(&mut w).await {
        Event::Put { kv, prev } => {
            assert_eq!((kv.mod_revision, kv.value.as_ref()), (r2, &b"2"[..]));
            assert_eq!(prev.map(|p| p.value), Some(b("1")));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Live: create (no prev), delete (prev = last value).
    let r4 = s.create("/registry/pods/ns/b", b("b")).await.unwrap();
    let (r5, _) = s.delete("/registry/pods/ns/a", 0).await.unwrap();
    match next_event(&mut w).await {
        Event::Put { kv, prev: None } => assert_eq!((kv.key.as_str(), kv.create_revision), ("/registry/pods/ns/b", r4)),
        other => panic!("unexpected {other:?}"),
    }
    match next_event(&mut w).await {
        Event::Delete { key, revision, prev } => {
            assert_eq!((key.as_str(), revision, prev.value.as_ref()), ("/registry/pods/ns/a", r5, &b"2"[..]));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The services write never showed up: nothing more is pending.
    assert!(tokio::time::timeout(Duration::from_millis(300), w.next()).await.is_err());
}

#[tokio::test]
async fn compaction_is_tracked_and_reported() {
    let etcd = EtcdCluster::start(1);
    let s = connect(&etcd).await;
    assert_eq!(s.compacted_revision().await.unwrap(), 0);
    let mut last = s.create("/registry/x", b("0")).await.unwrap();
    for i in 1..10 {
        last = s.update("/registry/x", b(&i.to_string()), 0).await.unwrap();
    }
    let target = last - 3;
    s.compact(target).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), target);
    // Compacting backwards is a no-op; to the future is an error.
    s.compact(target - 2).await.unwrap();
    assert_eq!(s.compact(last + 50).await, Err(StoreError::FutureRevision(last + 50)));

    // Reads below the compacted revision fail; at it they work.
    let old = RangeRequest { prefix: "/registry/".into(), revision: target - 1, ..Default::default() };
    match s.range(old).await {
        Err(StoreError::Compacted { requested, compacted }) => {
            assert_eq!(requested, target - 1);
            assert_eq!(compacted, target);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let at = RangeRequest { prefix: "/registry/".into(), revision: target, ..Default::default() };
    assert!(s.range(at).await.is_ok());

    // Watch: after + 1 must still exist.
    assert!(matches!(s.watch("/registry/", target - 2).await, Err(StoreError::Compacted { .. })));
    let mut w = s.watch("/registry/", target - 1).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), target);

    // A second client learns the compacted revision without having compacted.
    let other = connect(&etcd).await;
    assert_eq!(other.compacted_revision().await.unwrap(), target);
    // And notices further compaction by someone else.
    s.compact(last).await.unwrap();
    assert_eq!(other.compacted_revision().await.unwrap(), last);
}

#[tokio::test]
async fn watch_of_compacted_revision_reports_compacted_from_the_stream() {
    let etcd = EtcdCluster::start(1);
    let s = connect(&etcd).await;
    let r1 = s.create("/registry/k", b("0")).await.unwrap();
    for i in 1..6 {
        s.update("/registry/k", b(&i.to_string()), 0).await.unwrap();
    }
    let last = s.current_revision().await.unwrap();
    // Another client compacts: `s` does not know, so the error comes from etcd's watch.
    let other = connect(&etcd).await;
    other.compact(last).await.unwrap();
    let mut w = s.watch("/registry/", r1).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(StoreError::Compacted { requested, compacted }))) => {
            assert_eq!((requested, compacted), (r1, last));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn watch_survives_an_etcd_restart() {
    let mut etcd = EtcdCluster::start(1);
    let s = connect(&etcd).await;
    let r1 = s.create("/registry/k", b("before")).await.unwrap();
    let mut w = s.watch("/registry/", r1).await.unwrap();

    etcd.restart(0);
    // Writes work again once the member is back (the channel reconnects).
    let mut r2 = None;
    for _ in 0..100 {
        match s.update("/registry/k", b("after"), r1).await {
            Ok(r) => {
                r2 = Some(r);
                break;
            }
            Err(StoreError::Backend(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let r2 = r2.expect("etcd came back");
    match next_event(&mut w).await {
        Event::Put { kv, .. } => assert_eq!((kv.mod_revision, kv.value.as_ref()), (r2, &b"after"[..])),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn three_member_cluster_keeps_serving_without_one_member() {
    let mut etcd = EtcdCluster::start(3);
    let s = connect(&etcd).await;
    let r1 = s.create("/registry/a", b("1")).await.unwrap();
    assert_eq!(s.get("/registry/a").await.unwrap().unwrap().mod_revision, r1);
    let mut w = s.watch("/registry/", r1).await.unwrap();

    etcd.kill(2);
    // Quorum (2 of 3) remains: writes succeed, through whichever endpoint answers.
    let mut r2 = None;
    for _ in 0..100 {
        match s.update("/registry/a", b("2"), r1).await {
            Ok(r) => {
                r2 = Some(r);
                break;
            }
            Err(StoreError::Conflict { current, .. }) => {
                // An earlier attempt went through but its answer was lost.
                r2 = Some(current.mod_revision);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let r2 = r2.expect("the cluster kept quorum");
    assert_eq!(s.get("/registry/a").await.unwrap().unwrap().value.as_ref(), b"2");
    assert_eq!(next_event(&mut w).await.revision(), r2);
}

#[tokio::test]
async fn conformance_suite() {
    let etcd = EtcdCluster::start(1);
    let store: Arc<dyn Store> = connect(&etcd).await;
    rkube_storage::conformance::run_all(store).await;
}
