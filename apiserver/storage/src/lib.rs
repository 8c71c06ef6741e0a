//! rkube-storage: the apiserver's storage, shaped like etcd v3.
//!
//! * [`Store`] is the contract: a key space of byte values, one global revision
//!   that every write bumps, compare-and-swap on a key's mod revision, range reads
//!   at a past revision, watches that resume from a revision, and compaction.
//! * [`sqlite::SqliteStore`] is the embedded default (WAL, fsync'd group commit).
//! * [`etcd::EtcdStore`] talks to a real etcd v3 cluster.
//! * [`cache::WatchCache`] sits in front of a store: one store watch feeds every
//!   API watcher, and lists can be served from memory.
//!
//! Only the apiserver uses this crate. Keys look like upstream's:
//! `/registry/<group/><resource>/<namespace>/<name>`.

pub mod cache;
pub mod compactor;
#[doc(hidden)]
pub mod conformance;
pub mod etcd;
pub mod sqlite;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A revision of the whole key space (etcd's `revision`). Revisions start at 1
/// and grow by one with every successful write.
pub type Revision = i64;

/// One key and its value at some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key was created or updated: `kv` is the new value, `prev` the one before
    /// (None for a create).
    Put { kv: KeyValue, prev: Option<KeyValue> },
    /// The key was deleted at `revision`; `prev` is its last value.
    Delete { key: String, revision: Revision, prev: KeyValue },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }
}

/// The answer of a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// The revision the read was made at.
    pub revision: Revision,
    /// True when `limit` cut the result short.
    pub more: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// `update`/`delete` of a key that does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's mod revision is not the expected one; carries the current value.
    #[error("key {key} was modified")]
    Conflict { key: String, current: Box<KeyValue> },
    /// The requested revision has been compacted away.
    #[error("required revision {requested} has been compacted (compacted to {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// The requested revision is newer than the store's.
    #[error("required revision {0} is a future revision")]
    FutureRevision(Revision),
    /// The backend failed (I/O, connection, corruption).
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What to read in a range.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    /// Every key starting with this prefix.
    pub prefix: String,
    /// Start at this key (inclusive) instead of the beginning of the prefix:
    /// pagination resumes here. Must start with `prefix`.
    pub start: Option<String>,
    /// Read at this revision (0 = current).
    pub revision: Revision,
    /// At most this many keys (0 = no limit).
    pub limit: usize,
}

/// The storage contract, modelled on etcd v3's KV and Watch services.
///
/// Implementations must make every acknowledged write durable, keep revisions
/// strictly increasing with no gaps visible to watchers, and deliver watch
/// events in revision order.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys under a prefix, sorted by key, at the current or a past revision.
    async fn range(&self, req: RangeRequest) -> Result<RangeResult>;

    /// Number of keys under a prefix now.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Create a key that must not exist. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replace a key's value if its mod revision is `expected` (0 = any existing
    /// value). Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision>;

    /// Delete a key if its mod revision is `expected` (0 = any). Returns the
    /// deletion revision and the last value.
    async fn delete(&self, key: &str, expected: Revision) -> Result<(Revision, KeyValue)>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// The oldest revision still readable (everything before was compacted).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Events for keys under `prefix` with revision strictly greater than
    /// `after`, first the stored history, then live. `Compacted` if
    /// `after + 1` is no longer available.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<BoxStream<'static, Result<Event>>>;

    /// Forget history before `revision` (values superseded at or before it).
    async fn compact(&self, revision: Revision) -> Result<()>;
}
