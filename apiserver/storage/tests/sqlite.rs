//! SqliteStore: the conformance suite (file-backed and in-memory), durability across a clean
//! restart, and durability of every acknowledged write across `kill -9` of the writing process.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_storage::sqlite::SqliteStore;
use rkube_storage::{RangeRequest, Store, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_file_backed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    conformance::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().unwrap();
    conformance::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_history_and_revision_counter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/state.db");
    let (rev, compacted) = {
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..50 {
            store.create(&format!("/registry/pods/ns/p{i:02}"), Bytes::from(format!("v{i}"))).await.unwrap();
        }
        store.update("/registry/pods/ns/p00", Bytes::from_static(b"changed"), 0).await.unwrap();
        store.delete("/registry/pods/ns/p01", 0).await.unwrap();
        store.compact(10).await.unwrap();
        (store.current_revision().await.unwrap(), store.compacted_revision().await.unwrap())
    };
    assert_eq!((rev, compacted), (52, 10));

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), rev, "the revision counter survives restart");
    assert_eq!(store.compacted_revision().await.unwrap(), compacted, "the compacted revision survives restart");
    let all = store.range(RangeRequest { prefix: "/registry/pods/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.kvs.len(), 49);
    assert_eq!(all.kvs[0].value, Bytes::from_static(b"changed"));
    assert_eq!(all.kvs[0].create_revision, 1);
    // History after the compacted revision is still there.
    let at20 = store
        .range(RangeRequest { prefix: "/registry/pods/".into(), revision: 20, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(at20.kvs.len(), 20);
    assert!(store.range(RangeRequest { revision: 9, ..Default::default() }).await.is_err());
    // New writes continue the sequence.
    assert_eq!(store.create("/registry/pods/ns/new", Bytes::new()).await.unwrap(), rev + 1);
}

const CHILD_ENV: &str = "RKUBE_SQLITE_KILL_CHILD_DB";

/// Not a test on its own: when `CHILD_ENV` is set, this is the child process of
/// `kill_9_keeps_every_acknowledged_write`. It writes from 16 concurrent tasks forever and prints
/// every acknowledged key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_child_writer() {
    let Ok(db) = std::env::var(CHILD_ENV) else { return };
    let store = SqliteStore::open(Path::new(&db)).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/registry/k/{t:02}-{i:07}");
                let rev = store.create(&key, Bytes::from(vec![b'x'; 200])).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {key} {rev}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "kill_9_child_writer", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Let it acknowledge a good number of writes, then SIGKILL it mid-stream.
    let mut acked: Vec<(String, i64)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.len() < 3000 {
        let line = lines_rx.recv_timeout(Duration::from_secs(30)).expect("the child stopped acknowledging writes");
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (key, rev) = rest.split_once(' ').unwrap();
            acked.push((key.to_string(), rev.parse().unwrap()));
        }
        assert!(std::time::Instant::now() < deadline, "the child is too slow");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    // Acknowledgements printed before the kill but not read yet.
    while let Ok(line) = lines_rx.try_recv() {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (key, rev) = rest.split_once(' ').unwrap();
            acked.push((key.to_string(), rev.parse().unwrap()));
        }
    }

    let store = SqliteStore::open(&db).unwrap();
    let all = store.range(RangeRequest { prefix: "/registry/k/".into(), ..Default::default() }).await.unwrap();
    let present: BTreeSet<(String, i64)> = all.kvs.iter().map(|kv| (kv.key.clone(), kv.mod_revision)).collect();
    let missing: Vec<_> = acked.iter().filter(|a| !present.contains(*a)).collect();
    assert!(missing.is_empty(), "{} acknowledged writes lost after kill -9, e.g. {:?}", missing.len(), &missing[..1]);
    let max_acked = acked.iter().map(|a| a.1).max().unwrap();
    assert!(store.current_revision().await.unwrap() >= max_acked);
    // The revision sequence has no holes: every revision up to the current one is a key.
    let cur = store.current_revision().await.unwrap();
    assert_eq!(all.kvs.len() as i64, cur);
    // And the reopened store keeps working.
    let store: Arc<dyn Store> = store;
    assert_eq!(store.create("/registry/k/after", Bytes::new()).await.unwrap(), cur + 1);
}
