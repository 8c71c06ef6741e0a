//! [`EtcdStore`]: the [`Store`] contract on a real etcd v3 cluster (`--etcd-servers`).
//!
//! The mapping follows upstream's etcd3 storage:
//! * create = `txn(if create_revision(key) == 0 then put)`;
//! * update = `txn(if mod_revision(key) == expected then put else get)`;
//! * delete = `txn(if mod_revision(key) == expected then delete(prev_kv) else get)`;
//! * range = a range read with `range_end` = the prefix's end, at a revision, with a limit;
//! * watch = an etcd watch from `after + 1` with `prev_kv`, resumed transparently after a
//!   broken connection; etcd's compaction answer becomes [`StoreError::Compacted`].
//!
//! etcd cannot be asked for its compacted revision, and this backend deliberately writes
//! nothing outside the caller's keys (so that a watch of `/registry/` sees every revision
//! and the watch cache can wait for any revision the store reports). The compacted
//! revision is therefore tracked: from our own `compact` calls, from compaction errors of
//! reads and watches, and, when the tracked value turns out stale, by a binary search with
//! count-only reads at past revisions (a read below the compacted revision fails).
//!
//! The gRPC channel reconnects by itself; every failure that is not one of the trait's
//! outcomes becomes [`StoreError::Backend`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, GetResponse, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions,
};
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::{Event, KeyValue, RangeRequest, RangeResult, Result, Revision, Store, StoreError};

/// Longest time one unary request may take before it fails with `Backend`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `connect` keeps trying to reach the cluster.
const CONNECT_BUDGET: Duration = Duration::from_secs(10);
/// How long a broken watch keeps trying to re-establish itself before giving up.
const WATCH_RETRY_BUDGET: Duration = Duration::from_secs(15);
/// gRPC message limit for responses (large lists, batched watch events).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// How long one request keeps retrying while members are unreachable.
const RETRY_BUDGET: Duration = Duration::from_secs(5);
/// gRPC's status code `UNAVAILABLE`.
const UNAVAILABLE: i32 = 14;
/// Events buffered between the etcd watch and the consumer of one watch stream.
const WATCH_BUFFER: usize = 1024;

/// A [`Store`] backed by an etcd v3 cluster.
pub struct EtcdStore {
    client: Client,
    /// Highest revision known to be compacted (revisions below it are gone).
    compacted: AtomicI64,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("compacted", &self.compacted.load(Ordering::Relaxed)).finish()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// Whether an etcd error is mvcc's "required revision has been compacted".
fn is_compacted_error(e: &etcd_client::Error) -> bool {
    e.to_string().contains("required revision has been compacted")
}

/// Whether an etcd error is mvcc's "required revision is a future revision".
fn is_future_error(e: &etcd_client::Error) -> bool {
    e.to_string().contains("required revision is a future revision")
}

/// The end of the key range holding every key that starts with `prefix`
/// (etcd's `range_end`): the prefix with its last byte below 0xff incremented.
/// An empty prefix (or one of only 0xff bytes) means "to the end": `"\0"`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn convert_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header.map(|h| h.revision()).ok_or_else(|| backend("response without header"))
}

async fn with_timeout<T>(fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(backend(e)),
        Err(_) => Err(backend(format!("request timed out after {REQUEST_TIMEOUT:?}"))),
    }
}

/// Same as [`with_timeout`] but keeps etcd's error for inspection.
async fn raw_timeout<T>(
    fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> std::result::Result<std::result::Result<T, etcd_client::Error>, StoreError> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| backend(format!("request timed out after {REQUEST_TIMEOUT:?}")))
}

/// Whether a failed request may be sent again. Reads: any "unavailable" answer. Writes:
/// only when the request provably never reached a member that could apply it (no
/// connection, or the member refused it for lack of a leader), so a retry cannot apply it twice.
fn retryable(e: &etcd_client::Error, read: bool) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) if s.code() as i32 == UNAVAILABLE => {
            read || s.message().contains("connect error") || s.message().contains("no leader")
        }
        etcd_client::Error::TransportError(_) => read,
        _ => false,
    }
}

/// The first `Get` answer of a transaction's else-branch.
fn first_get(resp: &TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(convert_kv),
        _ => None,
    })
}

impl EtcdStore {
    /// Connect to the cluster at `endpoints` (`http://host:port`) and check that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<Arc<Self>> {
        if endpoints.is_empty() {
            return Err(backend("no endpoints given"));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(20))
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(options)).await.map_err(backend)?;
        let store = Arc::new(EtcdStore { client, compacted: AtomicI64::new(0) });
        // The channel connects lazily: probe until the cluster answers.
        let deadline = tokio::time::Instant::now() + CONNECT_BUDGET;
        loop {
            match tokio::time::timeout(Duration::from_secs(2), store.current_revision()).await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(backend(format!("no answer from {endpoints:?}")));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        // Learn the compacted revision once (a few cheap reads).
        store.compacted_revision().await?;
        Ok(store)
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client.kv_client().max_decoding_message_size(MAX_MESSAGE)
    }

    /// Run one unary KV request (built by `f` on a fresh client handle), retrying while
    /// [`retryable`]. The outer error is ours (timeout); the inner one is etcd's answer.
    async fn call<T, F, Fut>(&self, read: bool, mut f: F) -> Result<std::result::Result<T, etcd_client::Error>>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + RETRY_BUDGET;
        let mut backoff = Duration::from_millis(50);
        loop {
            let answer = raw_timeout(f(self.kv())).await?;
            match &answer {
                Err(e) if retryable(e, read) && tokio::time::Instant::now() + backoff < deadline => {
                    tracing::debug!("etcd request failed, retrying: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                _ => return Ok(answer),
            }
        }
    }

    fn note_compacted(&self, rev: Revision) {
        self.compacted.fetch_max(rev, Ordering::SeqCst);
    }

    /// A `Compacted` error for a read at `requested`, with the best known compacted revision.
    fn compacted_error(&self, requested: Revision) -> StoreError {
        self.note_compacted(requested + 1);
        StoreError::Compacted { requested, compacted: self.compacted.load(Ordering::SeqCst) }
    }

    /// Whether a read at `rev` still works (false = compacted away).
    async fn readable_at(&self, rev: Revision) -> Result<bool> {
        let opts = GetOptions::new().with_count_only().with_revision(rev);
        match self
            .call(true, |mut kv| {
                let opts = opts.clone();
                async move { kv.get(vec![0u8], Some(opts)).await }
            })
            .await?
        {
            Ok(_) => Ok(true),
            Err(e) if is_compacted_error(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.call(false, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?
        .map_err(backend)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp: GetResponse =
            self.call(true, |mut kv| async move { kv.get(key, None).await }).await?.map_err(backend)?;
        Ok(resp.kvs().first().map(convert_kv))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        let start = match &req.start {
            Some(s) if !s.starts_with(&req.prefix) => {
                return Err(backend(format!("range start {s:?} is outside prefix {:?}", req.prefix)));
            }
            Some(s) => s.clone(),
            None => req.prefix.clone(),
        };
        let mut opts = GetOptions::new().with_range(prefix_end(req.prefix.as_bytes()));
        if req.revision > 0 {
            opts = opts.with_revision(req.revision);
        }
        if req.limit > 0 {
            opts = opts.with_limit(i64::try_from(req.limit).unwrap_or(i64::MAX));
        }
        let key = if start.is_empty() { vec![0u8] } else { start.into_bytes() };
        let resp = match self
            .call(true, |mut kv| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { kv.get(key, Some(opts)).await }
            })
            .await?
        {
            Ok(r) => r,
            Err(e) if is_compacted_error(&e) => return Err(self.compacted_error(req.revision)),
            Err(e) if is_future_error(&e) => return Err(StoreError::FutureRevision(req.revision)),
            Err(e) => return Err(backend(e)),
        };
        let revision = if req.revision > 0 { req.revision } else { header_revision(resp.header())? };
        Ok(RangeResult { kvs: resp.kvs().iter().map(convert_kv).collect(), revision, more: resp.more() })
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let opts = GetOptions::new().with_range(prefix_end(prefix.as_bytes())).with_count_only();
        let key = if prefix.is_empty() { vec![0u8] } else { prefix.as_bytes().to_vec() };
        let resp = self
            .call(true, |mut kv| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { kv.get(key, Some(opts)).await }
            })
            .await?
            .map_err(backend)?;
        Ok(resp.count())
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let txn = Txn::new().when([Compare::create_revision(key, CompareOp::Equal, 0)]).and_then([TxnOp::put(
            key,
            value.to_vec(),
            None,
        )]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        header_revision(resp.header())
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let cmp = if expected == 0 {
            Compare::create_revision(key, CompareOp::Greater, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected)
        };
        let txn =
            Txn::new().when([cmp]).and_then([TxnOp::put(key, value.to_vec(), None)]).or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        match first_get(&resp) {
            None => Err(StoreError::NotFound(key.to_string())),
            Some(current) => Err(StoreError::Conflict { key: key.to_string(), current: Box::new(current) }),
        }
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<(Revision, KeyValue)> {
        let cmp = if expected == 0 {
            Compare::create_revision(key, CompareOp::Greater, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected)
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return match first_get(&resp) {
                None => Err(StoreError::NotFound(key.to_string())),
                Some(current) => Err(StoreError::Conflict { key: key.to_string(), current: Box::new(current) }),
            };
        }
        let revision = header_revision(resp.header())?;
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().map(convert_kv),
            _ => None,
        });
        match prev {
            Some(prev) => Ok((revision, prev)),
            // The compare guaranteed the key existed inside the same transaction.
            None => Err(backend(format!("delete of {key} returned no previous value"))),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .call(true, |mut kv| {
                let opts = opts.clone();
                async move { kv.get(vec![0u8], Some(opts)).await }
            })
            .await?
            .map_err(backend)?;
        header_revision(resp.header())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let known = self.compacted.load(Ordering::SeqCst);
        // Fast path: nobody compacted past what we know.
        if known > 0 && self.readable_at(known).await? {
            return Ok(known);
        }
        // Binary search the lowest readable revision in [max(known,1), current].
        let current = self.current_revision().await?;
        let mut lo = known.max(1);
        let mut hi = current.max(1);
        if self.readable_at(lo).await? {
            // Nothing compacted (or compacted at exactly `lo`, which reads the same).
            self.note_compacted(known);
            return Ok(known);
        }
        // Invariant: lo unreadable, hi readable (the current revision always is).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.readable_at(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        self.note_compacted(hi);
        Ok(self.compacted.load(Ordering::SeqCst))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<BoxStream<'static, Result<Event>>> {
        let known = self.compacted.load(Ordering::SeqCst);
        if after + 1 < known {
            return Err(StoreError::Compacted { requested: after, compacted: known });
        }
        let watch_client = self.client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        // Establish the first watch here so that setup errors reach the caller directly.
        let stream = open_watch(watch_client.clone(), prefix, after).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let task = WatchTask { client: watch_client, prefix: prefix.to_string(), last: after, tx };
        tokio::spawn(task.run(stream));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= self.compacted.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.call(true, |mut kv| async move { kv.compact(revision, None).await }).await? {
            Ok(_) => {
                self.note_compacted(revision);
                Ok(())
            }
            // Someone compacted further already: nothing left to do.
            Err(e) if is_compacted_error(&e) => {
                self.note_compacted(revision);
                Ok(())
            }
            Err(e) if is_future_error(&e) => Err(StoreError::FutureRevision(revision)),
            Err(e) => Err(backend(e)),
        }
    }
}

async fn open_watch(
    mut client: etcd_client::WatchClient,
    prefix: &str,
    after: Revision,
) -> Result<etcd_client::WatchStream> {
    let key = if prefix.is_empty() { vec![0u8] } else { prefix.as_bytes().to_vec() };
    let opts =
        WatchOptions::new().with_range(prefix_end(prefix.as_bytes())).with_start_revision(after + 1).with_prev_key();
    with_timeout(client.watch(key, Some(opts))).await
}

/// Follows one etcd watch and forwards its events, re-opening it after a broken connection.
struct WatchTask {
    client: etcd_client::WatchClient,
    prefix: String,
    /// Revision of the last event forwarded (or the starting `after`).
    last: Revision,
    tx: mpsc::Sender<Result<Event>>,
}

/// What ended one etcd watch stream.
enum StreamEnd {
    /// The consumer went away or a terminal error was sent: stop.
    Done,
    /// The connection broke: re-open from `last`.
    Broken(String),
}

impl WatchTask {
    async fn run(mut self, first: etcd_client::WatchStream) {
        let mut stream = Some(first);
        let mut broken_since: Option<tokio::time::Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let current = match stream.take() {
                Some(s) => s,
                None => match open_watch(self.client.clone(), &self.prefix, self.last).await {
                    Ok(s) => s,
                    Err(e) => {
                        if !self.wait_retry(&mut broken_since, &mut backoff, &e.to_string()).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            match self.follow(current, &mut broken_since, &mut backoff).await {
                StreamEnd::Done => return,
                StreamEnd::Broken(why) => {
                    tracing::warn!(prefix = %self.prefix, last = self.last, "etcd watch broken: {why}; re-watching");
                    if !self.wait_retry(&mut broken_since, &mut backoff, &why).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleep before a retry; false (after sending a final error) once the retry budget is spent.
    async fn wait_retry(
        &self,
        broken_since: &mut Option<tokio::time::Instant>,
        backoff: &mut Duration,
        why: &str,
    ) -> bool {
        let since = *broken_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() > WATCH_RETRY_BUDGET {
            let _ = self.tx.send(Err(backend(format!("watch lost: {why}")))).await;
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.tx.closed() => return false,
        }
        *backoff = (*backoff * 2).min(Duration::from_secs(1));
        true
    }

    async fn follow(
        &mut self,
        mut stream: etcd_client::WatchStream,
        broken_since: &mut Option<tokio::time::Instant>,
        backoff: &mut Duration,
    ) -> StreamEnd {
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = self.tx.closed() => return StreamEnd::Done,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => return StreamEnd::Broken("stream ended".into()),
                Err(e) if is_compacted_error(&e) => {
                    let _ = self
                        .tx
                        .send(Err(StoreError::Compacted { requested: self.last, compacted: self.last + 1 }))
                        .await;
                    return StreamEnd::Done;
                }
                Err(e) => return StreamEnd::Broken(e.to_string()),
            };
            if resp.compact_revision() > 0 {
                let err = StoreError::Compacted { requested: self.last, compacted: resp.compact_revision() };
                let _ = self.tx.send(Err(err)).await;
                return StreamEnd::Done;
            }
            if resp.canceled() {
                let reason = resp.cancel_reason().to_string();
                return StreamEnd::Broken(format!("watch canceled by server: {reason}"));
            }
            if resp.created() {
                *broken_since = None;
                *backoff = Duration::from_millis(50);
            }
            for ev in resp.events() {
                let event = match convert_event(ev) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return StreamEnd::Done;
                    }
                };
                let rev = event.revision();
                if rev <= self.last {
                    continue; // already forwarded before a re-watch
                }
                if self.tx.send(Ok(event)).await.is_err() {
                    return StreamEnd::Done;
                }
                self.last = rev;
            }
        }
    }
}

fn convert_event(ev: &etcd_client::Event) -> Result<Event> {
    let kv = ev.kv().ok_or_else(|| backend("watch event without kv"))?;
    let prev = ev.prev_kv().map(convert_kv);
    match ev.event_type() {
        EventType::Put => Ok(Event::Put { kv: convert_kv(kv), prev }),
        EventType::Delete => {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match prev {
                Some(prev) => Ok(Event::Delete { key, revision: kv.mod_revision(), prev }),
                None => Err(backend(format!(
                    "delete event of {key} at revision {} without its previous value (compacted)",
                    kv.mod_revision()
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a"), b"b".to_vec());
    }

    #[test]
    fn prefix_end_drops_trailing_ff() {
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), vec![b'b']);
        assert_eq!(prefix_end(&[0xff]), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
