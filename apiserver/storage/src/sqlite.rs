//! The embedded, durable storage backend: an etcd-shaped key space in one SQLite file.
//!
//! This module owns [`SqliteStore`]. Only it touches the database file.
//!
//! # Data model
//!
//! * `log(rev INTEGER PRIMARY KEY, key BLOB, value BLOB, create_rev, prev_rev, deleted)`: one row per
//!   revision, append-only (compaction deletes superseded rows). Keys are stored as BLOBs so that
//!   ordering and prefix bounds are plain byte comparisons. A tombstone row (`deleted = 1`) keeps the
//!   deleted value, its `create_rev`, and in `prev_rev` its last mod revision, so a delete event is
//!   self-contained. `prev_rev` of a put is the mod revision it replaced (0 for a create).
//!   Indexed by `(key, rev)`.
//! * `current(key BLOB PRIMARY KEY, rev)`: the live keys and the log row holding their value.
//! * `meta(name, value)`: `rev` (the revision counter, so it survives restart), `compacted` (oldest
//!   readable revision) and `purged` (how far compaction has actually deleted rows).
//!
//! # Durability
//!
//! The file runs in WAL mode with `synchronous=FULL`: every commit appends to the WAL and fsyncs it
//! before returning, so an acknowledged write survives both `kill -9` of the process (the WAL is in
//! the file system) and a power cut (the WAL is on the disk). `NORMAL` would only survive the first.
//! The directory is fsync'd once after the database and its WAL are created.
//!
//! # Group commit
//!
//! One writer thread owns the only write connection. Callers put their write on a channel; the
//! writer takes everything pending (up to [`MAX_BATCH`]), applies it in ONE `BEGIN IMMEDIATE`
//! transaction, checking each write's compare-and-swap in order against the state left by the
//! writes before it, commits (one fsync for the batch), publishes the batch's events to the live
//! watch broadcast, and then answers every caller. If the batch fails (I/O error, corrupt row) the
//! transaction is rolled back, every caller in it gets [`StoreError::Backend`], and the writer goes
//! on with the next batch.
//!
//! # Reads and watches
//!
//! Reads run on a small pool of separate connections inside `spawn_blocking`; WAL lets them read a
//! consistent snapshot while the writer commits. A watch subscribes to the broadcast first, then
//! replays history from the log in revision chunks, then streams live events, skipping any event it
//! already replayed: no gap, no duplicate. A watcher that falls behind the broadcast re-reads the
//! missed revisions from the log (or ends with `Compacted` if they are gone).
//!
//! # Compaction
//!
//! `compact(rev)` first records `compacted = rev` (so reads below it fail from now on), then deletes,
//! in chunks of [`COMPACT_CHUNK`] revisions each run as one short writer operation, every row below
//! `rev` that is a tombstone or superseded by a row at or before `rev`. For every key the newest row
//! at or before `rev` survives unless it is a tombstone older than `rev`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, oneshot};

use crate::{Event, KeyValue, RangeRequest, RangeResult, Result, Revision, Store, StoreError};

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Revisions purged per compaction step (one short write transaction each).
pub const COMPACT_CHUNK: i64 = 1000;
/// Revisions replayed per history read of a watch.
const WATCH_CHUNK: i64 = 1000;
/// Committed batches the live broadcast retains for slow watchers.
const BROADCAST_BATCHES: usize = 1024;
/// Events buffered between a watch task and its consumer.
const WATCH_BUFFER: usize = 1024;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
CREATE TABLE IF NOT EXISTS current (key BLOB PRIMARY KEY, rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('rev', 0), ('compacted', 0), ('purged', 0);
";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Exclusive upper bound of every key starting with `prefix`. Keys are UTF-8, whose bytes never
/// reach 0xFF, so incrementing the last byte cannot overflow and `[0xFF]` bounds every key.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.split_last() {
        None => vec![0xFF],
        Some((last, head)) => {
            let mut end = head.to_vec();
            end.push(last.saturating_add(1));
            end
        }
    }
}

fn key_string(raw: Vec<u8>) -> Result<String> {
    String::from_utf8(raw).map_err(|_| StoreError::Backend("corrupt row: key is not UTF-8".into()))
}

/// The latest committed state shared between the writer and the readers.
struct Shared {
    revision: AtomicI64,
    compacted: AtomicI64,
    purged: AtomicI64,
}

/// A pool of read connections.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn open_conn(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(backend)?;
        Ok(conn)
    }

    /// Run `f` on a pooled connection in a blocking thread, inside one read transaction (one snapshot).
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = this.idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match pooled {
                Some(c) => c,
                None => this.open_conn()?,
            };
            let out = (|| {
                let tx = conn.transaction().map_err(backend)?;
                let out = f(&tx)?;
                tx.finish().map_err(backend)?;
                Ok(out)
            })();
            if let Ok(mut idle) = this.idle.lock()
                && idle.len() < MAX_IDLE_READERS
            {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(backend)?
    }
}

fn meta(tx: &Connection, name: &str) -> Result<i64> {
    tx.prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .and_then(|mut st| st.query_row([name], |r| r.get::<_, i64>(0)).optional())
        .map_err(backend)
        .map(|v| v.unwrap_or(0))
}

fn set_meta(tx: &Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?.execute(params![name, value])?;
    Ok(())
}

/// The current value of `key` (reads through `current`), keeping SQLite's error type.
fn current_row(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    let row = conn
        .prepare_cached(
            "SELECT l.value, l.create_rev, l.rev FROM current c JOIN log l ON l.rev = c.rev WHERE c.key = ?1",
        )?
        .query_row([key.as_bytes()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
        .optional()?;
    Ok(row.map(|(value, create_revision, mod_revision)| KeyValue {
        key: key.to_string(),
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    }))
}

/// The current value of `key`.
fn current_kv(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    current_row(conn, key).map_err(backend)
}

/// One write or compaction step, queued for the writer thread.
enum Op {
    Create {
        key: String,
        value: Bytes,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Delete {
        key: String,
        expected: Revision,
        reply: oneshot::Sender<Result<(Revision, KeyValue)>>,
    },
    /// Record a new compacted revision (before any row is purged).
    SetCompacted {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Purge superseded rows with `lo <= rev < hi`, for a compaction at `at`.
    Purge {
        lo: Revision,
        hi: Revision,
        at: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// A computed answer waiting for the batch's commit.
enum Reply {
    Rev(oneshot::Sender<Result<Revision>>, Result<Revision>),
    Del(oneshot::Sender<Result<(Revision, KeyValue)>>, Result<(Revision, KeyValue)>),
    Unit(oneshot::Sender<Result<()>>, Result<()>),
}

impl Reply {
    fn send(self) {
        // A caller that gave up (dropped its future) is not an error.
        match self {
            Reply::Rev(tx, r) => drop(tx.send(r)),
            Reply::Del(tx, r) => drop(tx.send(r)),
            Reply::Unit(tx, r) => drop(tx.send(r)),
        }
    }
    fn fail(self, err: StoreError) {
        match self {
            Reply::Rev(tx, _) => drop(tx.send(Err(err))),
            Reply::Del(tx, _) => drop(tx.send(Err(err))),
            Reply::Unit(tx, _) => drop(tx.send(Err(err))),
        }
    }
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

/// The state of one batch while it is applied.
struct Batch {
    rev: Revision,
    compacted: Revision,
    purged: Revision,
    events: Vec<Event>,
    replies: Vec<Reply>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.apply_batch(ops);
        }
    }

    fn apply_batch(&mut self, ops: Vec<Op>) {
        let mut batch = Batch {
            rev: self.shared.revision.load(Ordering::SeqCst),
            compacted: self.shared.compacted.load(Ordering::SeqCst),
            purged: self.shared.purged.load(Ordering::SeqCst),
            events: Vec::new(),
            replies: Vec::with_capacity(ops.len()),
        };
        let start_rev = batch.rev;
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for op in ops {
                apply_op(&tx, &mut batch, op)?;
            }
            if batch.rev != start_rev {
                set_meta(&tx, "rev", batch.rev)?;
            }
            tx.commit()
        })();
        match outcome {
            Ok(()) => {
                self.shared.revision.store(batch.rev, Ordering::SeqCst);
                self.shared.compacted.store(batch.compacted, Ordering::SeqCst);
                self.shared.purged.store(batch.purged, Ordering::SeqCst);
                if !batch.events.is_empty() {
                    // No receiver is fine: nobody watches.
                    let _ = self.events.send(Arc::new(batch.events));
                }
                for r in batch.replies {
                    r.send();
                }
            }
            Err(e) => {
                // The transaction was rolled back when dropped; nothing of this batch is visible.
                tracing::error!(error = %e, "sqlite write batch failed");
                let err = backend(format!("sqlite write failed: {e}"));
                for r in batch.replies {
                    r.fail(err.clone());
                }
            }
        }
    }
}

fn insert_log(
    conn: &Connection,
    rev: Revision,
    key: &str,
    value: &[u8],
    create_rev: Revision,
    prev_rev: Revision,
    deleted: bool,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO log (rev, key, value, create_rev, prev_rev, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![rev, key.as_bytes(), value, create_rev, prev_rev, deleted as i64])?;
    Ok(())
}

/// Apply one op inside the batch's transaction. A CAS failure is an answer, not an error; only
/// SQLite errors abort the batch.
fn apply_op(conn: &Connection, b: &mut Batch, op: Op) -> rusqlite::Result<()> {
    match op {
        Op::Create { key, value, reply } => {
            if let Some(cur) = current_row(conn, &key)? {
                b.replies.push(Reply::Rev(reply, Err(StoreError::AlreadyExists(cur.key))));
                return Ok(());
            }
            let rev = b.rev + 1;
            insert_log(conn, rev, &key, &value, rev, 0, false)?;
            conn.prepare_cached("INSERT OR REPLACE INTO current (key, rev) VALUES (?1, ?2)")?
                .execute(params![key.as_bytes(), rev])?;
            b.rev = rev;
            let kv = KeyValue { key, value, create_revision: rev, mod_revision: rev };
            b.events.push(Event::Put { kv, prev: None });
            b.replies.push(Reply::Rev(reply, Ok(rev)));
        }
        Op::Update { key, value, expected, reply } => {
            let Some(cur) = current_row(conn, &key)? else {
                b.replies.push(Reply::Rev(reply, Err(StoreError::NotFound(key))));
                return Ok(());
            };
            if expected != 0 && expected != cur.mod_revision {
                let err = StoreError::Conflict { key, current: Box::new(cur) };
                b.replies.push(Reply::Rev(reply, Err(err)));
                return Ok(());
            }
            let rev = b.rev + 1;
            insert_log(conn, rev, &key, &value, cur.create_revision, cur.mod_revision, false)?;
            conn.prepare_cached("UPDATE current SET rev = ?2 WHERE key = ?1")?.execute(params![key.as_bytes(), rev])?;
            b.rev = rev;
            let kv = KeyValue { key, value, create_revision: cur.create_revision, mod_revision: rev };
            b.events.push(Event::Put { kv, prev: Some(cur) });
            b.replies.push(Reply::Rev(reply, Ok(rev)));
        }
        Op::Delete { key, expected, reply } => {
            let Some(cur) = current_row(conn, &key)? else {
                b.replies.push(Reply::Del(reply, Err(StoreError::NotFound(key))));
                return Ok(());
            };
            if expected != 0 && expected != cur.mod_revision {
                let err = StoreError::Conflict { key, current: Box::new(cur) };
                b.replies.push(Reply::Del(reply, Err(err)));
                return Ok(());
            }
            let rev = b.rev + 1;
            insert_log(conn, rev, &key, &cur.value, cur.create_revision, cur.mod_revision, true)?;
            conn.prepare_cached("DELETE FROM current WHERE key = ?1")?.execute([key.as_bytes()])?;
            b.rev = rev;
            b.events.push(Event::Delete { key, revision: rev, prev: cur.clone() });
            b.replies.push(Reply::Del(reply, Ok((rev, cur))));
        }
        Op::SetCompacted { revision, reply } => {
            let result = if revision > b.rev {
                Err(StoreError::FutureRevision(revision))
            } else {
                if revision > b.compacted {
                    set_meta(conn, "compacted", revision)?;
                    b.compacted = revision;
                }
                Ok(())
            };
            b.replies.push(Reply::Unit(reply, result));
        }
        Op::Purge { lo, hi, at, reply } => {
            conn.prepare_cached(
                "DELETE FROM log WHERE rev IN (
                    SELECT l.rev FROM log l WHERE l.rev >= ?1 AND l.rev < ?2 AND (
                        l.deleted = 1 OR EXISTS (
                            SELECT 1 FROM log n WHERE n.key = l.key AND n.rev > l.rev AND n.rev <= ?3)))",
            )?
            .execute(params![lo, hi.min(at), at])?;
            if hi > b.purged {
                set_meta(conn, "purged", hi)?;
                b.purged = hi;
            }
            b.replies.push(Reply::Unit(reply, Ok(())));
        }
    }
    Ok(())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The embedded SQLite store. See the module documentation.
pub struct SqliteStore {
    writer_tx: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
    /// Removed on drop (stores from `open_in_memory`).
    temp_dir: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.readers.path).finish()
    }
}

impl SqliteStore {
    /// Open (or create) the durable store at `path`.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        Self::open_with(path, true, None)
    }

    /// A throw-away store for tests and the in-process envtest: a fresh file in a private temporary
    /// directory (removed on drop), without fsync.
    pub fn open_in_memory() -> Result<Arc<Self>> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("rkube-sqlite-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(backend)?;
        let path = dir.join("state.db");
        match Self::open_with(&path, false, Some(dir.clone())) {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn open_with(path: &Path, durable: bool, temp_dir: Option<PathBuf>) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(backend)?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(backend)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("sqlite: cannot enable WAL mode (got {mode})")));
        }
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" }).map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        if durable {
            // Make the creation of the database and WAL files themselves durable.
            if let Some(parent) = path.parent() {
                let dir = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
                if let Ok(d) = std::fs::File::open(dir) {
                    d.sync_all().map_err(backend)?;
                }
            }
        }
        let shared = Arc::new(Shared {
            revision: AtomicI64::new(meta(&conn, "rev")?),
            compacted: AtomicI64::new(meta(&conn, "compacted")?),
            purged: AtomicI64::new(meta(&conn, "purged")?),
        });
        let (events, _) = broadcast::channel(BROADCAST_BATCHES);
        let (writer_tx, rx) = mpsc::channel();
        let writer = Writer { conn, shared: shared.clone(), events: events.clone() };
        let handle = std::thread::Builder::new()
            .name("rkube-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(backend)?;
        let readers = Arc::new(Readers { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) });
        Ok(Arc::new(SqliteStore {
            writer_tx: Some(writer_tx),
            writer: Some(handle),
            readers,
            shared,
            events,
            temp_dir,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.readers.path
    }

    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let sender = self.writer_tx.as_ref().ok_or_else(|| backend("sqlite store is closed"))?;
        sender.send(make(tx)).map_err(|_| backend("sqlite writer stopped"))?;
        rx.await.map_err(|_| backend("sqlite writer stopped"))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel stops the writer after its current batch; wait so that the file is
        // released before anyone reopens it.
        self.writer_tx.take();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.clear();
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

type KvRow = (Vec<u8>, Vec<u8>, i64, i64);

fn kv_from_row(row: KvRow) -> Result<KeyValue> {
    let (key, value, create_revision, mod_revision) = row;
    Ok(KeyValue { key: key_string(key)?, value: Bytes::from(value), create_revision, mod_revision })
}

fn range_tx(tx: &Connection, req: &RangeRequest) -> Result<RangeResult> {
    let current = meta(tx, "rev")?;
    let compacted = meta(tx, "compacted")?;
    let at = if req.revision <= 0 { current } else { req.revision };
    if at > current {
        return Err(StoreError::FutureRevision(at));
    }
    if at < compacted {
        return Err(StoreError::Compacted { requested: at, compacted });
    }
    let lo = match &req.start {
        Some(s) if s.as_str() > req.prefix.as_str() => s.as_bytes().to_vec(),
        _ => req.prefix.as_bytes().to_vec(),
    };
    let hi = prefix_end(req.prefix.as_bytes());
    // One extra row tells whether there is more.
    let limit: i64 = if req.limit == 0 { -1 } else { i64::try_from(req.limit).unwrap_or(i64::MAX - 1) + 1 };
    let sql = if at == current {
        "SELECT l.key, l.value, l.create_rev, l.rev FROM current c JOIN log l ON l.rev = c.rev
         WHERE c.key >= ?1 AND c.key < ?2 ORDER BY c.key LIMIT ?3"
    } else {
        // SQLite takes the bare columns of an aggregate query from the row holding max(rev).
        "SELECT key, value, create_rev, rev FROM (
             SELECT key, value, create_rev, max(rev) AS rev, deleted FROM log
             WHERE key >= ?1 AND key < ?2 AND rev <= ?4 GROUP BY key)
         WHERE deleted = 0 ORDER BY key LIMIT ?3"
    };
    let mut st = tx.prepare_cached(sql).map_err(backend)?;
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<KvRow> { Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)) };
    let rows: Vec<KvRow> = if at == current {
        st.query_map(params![lo, hi, limit], map)
    } else {
        st.query_map(params![lo, hi, limit, at], map)
    }
    .and_then(|rows| rows.collect())
    .map_err(backend)?;
    let mut kvs = rows.into_iter().map(kv_from_row).collect::<Result<Vec<_>>>()?;
    let more = req.limit != 0 && kvs.len() > req.limit;
    kvs.truncate(if req.limit == 0 { kvs.len() } else { req.limit });
    Ok(RangeResult { kvs, revision: at, more })
}

type EventRow = (i64, Vec<u8>, Vec<u8>, i64, i64, bool, Option<Vec<u8>>, Option<i64>);

fn event_from_row(row: EventRow) -> Result<Event> {
    let (rev, key, value, create_rev, prev_rev, deleted, prev_value, prev_create) = row;
    let key = key_string(key)?;
    if deleted {
        let prev = KeyValue {
            key: key.clone(),
            value: Bytes::from(value),
            create_revision: create_rev,
            mod_revision: prev_rev,
        };
        return Ok(Event::Delete { key, revision: rev, prev });
    }
    let prev = match (prev_value, prev_create) {
        (Some(v), Some(c)) if prev_rev > 0 => {
            Some(KeyValue { key: key.clone(), value: Bytes::from(v), create_revision: c, mod_revision: prev_rev })
        }
        _ => None,
    };
    Ok(Event::Put {
        kv: KeyValue { key, value: Bytes::from(value), create_revision: create_rev, mod_revision: rev },
        prev,
    })
}

/// One chunk of watch history: events under `prefix` with `after < rev <= min(after + WATCH_CHUNK,
/// current)`, plus the revision read up to.
fn history_chunk(tx: &Connection, prefix: &str, after: Revision) -> Result<(Vec<Event>, Revision)> {
    let current = meta(tx, "rev")?;
    let compacted = meta(tx, "compacted")?;
    if after.saturating_add(1) < compacted {
        return Err(StoreError::Compacted { requested: after.saturating_add(1), compacted });
    }
    let upto = current.min(after.saturating_add(WATCH_CHUNK));
    if upto <= after {
        return Ok((Vec::new(), after.max(current)));
    }
    let mut st = tx
        .prepare_cached(
            "SELECT l.rev, l.key, l.value, l.create_rev, l.prev_rev, l.deleted, p.value, p.create_rev
             FROM log l LEFT JOIN log p ON l.deleted = 0 AND l.prev_rev > 0 AND p.rev = l.prev_rev
             WHERE l.rev > ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4 ORDER BY l.rev",
        )
        .map_err(backend)?;
    let rows: Vec<EventRow> = st
        .query_map(params![after, upto, prefix.as_bytes(), prefix_end(prefix.as_bytes())], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(backend)?;
    let events = rows.into_iter().map(event_from_row).collect::<Result<Vec<_>>>()?;
    Ok((events, upto))
}

/// Drive one watch: replay history after `last`, then live events, into `out`.
async fn run_watch(
    readers: Arc<Readers>,
    mut live: broadcast::Receiver<Arc<Vec<Event>>>,
    prefix: String,
    mut last: Revision,
    out: tokio::sync::mpsc::Sender<Result<Event>>,
) {
    loop {
        // Catch up from the log until it has nothing newer than `last`.
        loop {
            let p = prefix.clone();
            let chunk = readers.read(move |tx| history_chunk(tx, &p, last)).await;
            match chunk {
                Ok((events, upto)) => {
                    for ev in events {
                        if out.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    if upto <= last {
                        break;
                    }
                    last = upto;
                }
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            }
        }
        // Live, until the broadcast drops events we have not seen (then catch up again).
        loop {
            let batch = tokio::select! {
                _ = out.closed() => return,
                b = live.recv() => b,
            };
            match batch {
                Ok(events) => {
                    for ev in events.iter() {
                        if ev.revision() <= last {
                            continue;
                        }
                        last = ev.revision();
                        if ev.key().starts_with(prefix.as_str()) && out.send(Ok(ev.clone())).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.readers.read(move |tx| current_kv(tx, &key)).await
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        self.readers.read(move |tx| range_tx(tx, &req)).await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let lo = prefix.as_bytes().to_vec();
        let hi = prefix_end(&lo);
        self.readers
            .read(move |tx| {
                tx.prepare_cached("SELECT count(*) FROM current WHERE key >= ?1 AND key < ?2")
                    .and_then(|mut st| st.query_row(params![lo, hi], |r| r.get::<_, i64>(0)))
                    .map_err(backend)
            })
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let key = key.to_string();
        self.submit(|reply| Op::Create { key, value, reply }).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let key = key.to_string();
        self.submit(|reply| Op::Update { key, value, expected, reply }).await
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<(Revision, KeyValue)> {
        let key = key.to_string();
        self.submit(|reply| Op::Delete { key, expected, reply }).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::SeqCst))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::SeqCst))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<BoxStream<'static, Result<Event>>> {
        // Subscribe before reading any history: every commit after this point reaches `live`.
        let live = self.events.subscribe();
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        let after = after.max(0);
        if after.saturating_add(1) < compacted {
            return Err(StoreError::Compacted { requested: after.saturating_add(1), compacted });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        tokio::spawn(run_watch(self.readers.clone(), live, prefix.to_string(), after, tx));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.shared.revision.load(Ordering::SeqCst);
        if revision > current {
            return Err(StoreError::FutureRevision(revision));
        }
        if revision <= self.shared.compacted.load(Ordering::SeqCst)
            && revision <= self.shared.purged.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        self.submit(|reply| Op::SetCompacted { revision, reply }).await?;
        // Purge from where the last compaction stopped, in short steps between write batches.
        let mut lo = self.shared.purged.load(Ordering::SeqCst);
        while lo < revision {
            let hi = (lo + COMPACT_CHUNK).min(revision);
            self.submit(|reply| Op::Purge { lo, hi, at: revision, reply }).await?;
            lo = hi;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn prefix_end_bounds_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b""), vec![0xFF]);
        let end = prefix_end("/é".as_bytes());
        assert!("/é/x".as_bytes() < end.as_slice());
        assert!("/ê".as_bytes() >= end.as_slice());
    }

    async fn log_rows(s: &SqliteStore) -> Vec<(i64, String, bool)> {
        s.readers
            .read(|tx| {
                let mut st = tx.prepare("SELECT rev, key, deleted FROM log ORDER BY rev").map_err(backend)?;
                let rows: Vec<(i64, Vec<u8>, bool)> = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .and_then(|r| r.collect())
                    .map_err(backend)?;
                rows.into_iter().map(|(r, k, d)| Ok((r, key_string(k)?, d))).collect()
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn compaction_purges_superseded_rows_and_tombstones_only() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.create("/k/a", b("1")).await.unwrap(); // 1
        s.update("/k/a", b("2"), 0).await.unwrap(); // 2
        s.create("/k/b", b("1")).await.unwrap(); // 3
        s.delete("/k/b", 0).await.unwrap(); // 4
        s.create("/k/c", b("1")).await.unwrap(); // 5
        s.update("/k/a", b("3"), 0).await.unwrap(); // 6
        s.compact(5).await.unwrap();
        let rows = log_rows(&s).await;
        let revs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        // 1 superseded by 2; 3 superseded by the tombstone 4, itself purged; 2 kept (newest <= 5 for a).
        assert_eq!(revs, vec![2, 5, 6]);
        assert_eq!(s.compacted_revision().await.unwrap(), 5);
        let at5 = s.range(RangeRequest { prefix: "/k/".into(), revision: 5, ..Default::default() }).await.unwrap();
        let keys: Vec<_> = at5.kvs.iter().map(|kv| (kv.key.as_str(), kv.value.clone())).collect();
        assert_eq!(keys, vec![("/k/a", b("2")), ("/k/c", b("1"))]);
        // The compacted revision is persisted with the purge progress.
        let purged = s.readers.read(|tx| meta(tx, "purged")).await.unwrap();
        assert_eq!(purged, 5);
    }

    #[tokio::test]
    async fn put_events_carry_prev_from_log() {
        let s = SqliteStore::open_in_memory().unwrap();
        let r1 = s.create("/p/a", b("1")).await.unwrap();
        let r2 = s.update("/p/a", b("2"), r1).await.unwrap();
        let mut w = s.watch("/p/", 0).await.unwrap();
        let first = w.next().await.unwrap().unwrap();
        assert_eq!(
            first,
            Event::Put {
                kv: KeyValue { key: "/p/a".into(), value: b("1"), create_revision: r1, mod_revision: r1 },
                prev: None
            }
        );
        let second = w.next().await.unwrap().unwrap();
        let Event::Put { kv, prev: Some(prev) } = second else { panic!("expected put with prev: {second:?}") };
        assert_eq!((kv.mod_revision, kv.create_revision, prev.mod_revision, prev.value), (r2, r1, r1, b("1")));
    }

    #[tokio::test]
    async fn lagging_watcher_catches_up_from_log() {
        let s = SqliteStore::open_in_memory().unwrap();
        let mut w = s.watch("/lag/", 0).await.unwrap();
        // More batches than the broadcast retains, sent before the watcher reads anything.
        for i in 0..(BROADCAST_BATCHES + 200) {
            s.create(&format!("/lag/{i:05}"), b("v")).await.unwrap();
        }
        let mut last = 0;
        for _ in 0..(BROADCAST_BATCHES + 200) {
            let ev = tokio::time::timeout(Duration::from_secs(10), w.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(ev.revision(), last + 1);
            last = ev.revision();
        }
    }

    #[tokio::test]
    async fn failed_batch_answers_callers_and_writer_survives() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.create("/f/a", b("1")).await.unwrap();
        // Corrupt the log behind the writer: a row whose rev collides with the next revision.
        let path = s.path().to_path_buf();
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO log (rev, key, value, create_rev, prev_rev, deleted) VALUES (2, x'00', x'', 2, 0, 0)",
            [],
        )
        .unwrap();
        let err = s.create("/f/b", b("1")).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert_eq!(s.current_revision().await.unwrap(), 1);
        c.execute("DELETE FROM log WHERE rev = 2", []).unwrap();
        assert_eq!(s.create("/f/b", b("1")).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn corrupt_key_is_a_backend_error() {
        let s = SqliteStore::open_in_memory().unwrap();
        let c = Connection::open(s.path()).unwrap();
        c.execute(
            "INSERT INTO log (rev, key, value, create_rev, prev_rev, deleted) VALUES (1, x'2f78ff', x'', 1, 0, 0)",
            [],
        )
        .unwrap();
        c.execute("INSERT INTO current (key, rev) VALUES (x'2f78ff', 1)", []).unwrap();
        c.execute("UPDATE meta SET value = 1 WHERE name = 'rev'", []).unwrap();
        let err = s.range(RangeRequest { prefix: "/x".into(), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }
}
