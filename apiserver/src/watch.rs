//! Watch: a stream of `{"type": ..., "object": ...}` lines from the watch cache.
//!
//! Semantics as upstream: `resourceVersion` "" or "0" starts with synthetic
//! ADDED events for what exists; a revision N streams what happened after N
//! (410 Expired as an ERROR event when N left the cache's window);
//! `sendInitialEvents=true` ends the initial events with a BOOKMARK carrying
//! `k8s.io/initial-events-end`; selectors filter, and an object that stops
//! matching is sent as DELETED; `allowWatchBookmarks` adds periodic
//! BOOKMARKs; `timeoutSeconds` ends the stream.
//!
//! Each object's JSON was serialised once by the cache; a frame here is that
//! byte slice wrapped in the event envelope, so N watchers cost N copies, not
//! N serialisations.

use crate::http::{Body, Representation};
use crate::rest::{Req, Selectors, include_object, parse_rv, partial_metadata, to_served};
use crate::server::{Server, store_error};
use ::http::{HeaderValue, Response, StatusCode, header};
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use rkube_registry::resources::ResourceInfo;
use rkube_registry::{ApiError, printers};
use rkube_storage::StoreError;
use rkube_storage::cache::{CacheWatcher, CachedEvent, CachedObject, EventType};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

pub async fn watch(server: Arc<Server>, req: &Req, repr: Representation) -> Result<Response<Body>, ApiError> {
    let q = &req.query;
    let sel = Selectors::parse(req)?;
    let rv = q.str_or_empty("resourceVersion").to_string();
    let send_initial = q.opt_bool("sendInitialEvents")?;
    let bookmarks = q.bool("allowWatchBookmarks")?;
    if send_initial.is_some() {
        let m = q.str_or_empty("resourceVersionMatch");
        if m != "NotOlderThan" {
            return Err(ApiError::invalid(
                "",
                "ListOptions",
                "",
                &[rkube_registry::FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )],
            ));
        }
    }
    let timeout = match q.i64("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        // upstream: a random time between 30 and 60 minutes
        _ => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let prefix = crate::objects::prefix(req.info, req.ns());
    let cache = &server.cache;

    // What to send first, and the watcher that follows it.
    let initial_wanted = match (send_initial, rv.as_str()) {
        (Some(b), _) => b,
        (None, "" | "0") => true,
        (None, _) => false,
    };
    let setup: Result<(Vec<Arc<CachedObject>>, i64, CacheWatcher), StoreError> = if initial_wanted {
        if !rv.is_empty() && rv != "0" {
            let min = parse_rv(&rv)?;
            let _ = cache.wait_for(min, Duration::from_secs(3)).await;
        }
        cache.list_and_watch(&prefix)
    } else {
        let after = parse_rv(&rv)?;
        // History the store has compacted away is gone, even if the cache still remembers it.
        let compacted = server.store.compacted_revision().await.map_err(store_error)?;
        if after < compacted {
            Err(StoreError::Compacted { requested: after, compacted })
        } else {
            cache.watch(&prefix, after).map(|w| (Vec::new(), after, w))
        }
    };

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = StreamBody::new(futures::StreamExt::map(stream, |b| Ok::<_, Infallible>(Frame::data(b))));
    let mut resp = Response::new(BodyExt::boxed(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));

    let info = req.info;
    let table_opts = (include_object(q), repr);
    let (initial, start_rev, mut watcher) = match setup {
        Ok(s) => s,
        Err(e) => {
            let err = match e {
                StoreError::Compacted { requested, compacted } => {
                    ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
                }
                other => store_error(other),
            };
            let frame = frame_error(&err);
            tokio::spawn(async move {
                let _ = tx.send(frame).await;
            });
            return Ok(resp);
        }
    };

    tokio::spawn(async move {
        let enc = Encoder { server: server.clone(), info, repr: table_opts.1, include: table_opts.0 };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for obj in initial.iter().filter(|o| sel.matches_cached(o)) {
            if tx.send(enc.frame("ADDED", obj)).await.is_err() {
                return;
            }
        }
        let mut last_rev = start_rev;
        if send_initial == Some(true) && bookmarks {
            let f = enc.bookmark(last_rev, true);
            if tx.send(f).await.is_err() {
                return;
            }
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    // The cache's revision only once every event up to it was sent: a
                    // client resuming from the bookmark must not skip queued events.
                    let current = server.cache.revision();
                    if watcher.is_drained() {
                        last_rev = last_rev.max(current);
                    }
                    if tx.send(enc.bookmark(last_rev, false)).await.is_err() { return; }
                }
                ev = watcher.next() => {
                    let Some(ev) = ev else {
                        // lagged or cache restarted: tell the client to re-list
                        if watcher.lagged() {
                            let _ = tx.send(frame_error(&ApiError::expired("the watch fell behind and was closed; please re-list"))).await;
                        }
                        return;
                    };
                    last_rev = ev.revision;
                    if let Some(f) = enc.event(&ev, &sel)
                        && tx.send(f).await.is_err() { return; }
                }
            }
        }
    });
    Ok(resp)
}

struct Encoder {
    server: Arc<Server>,
    info: &'static ResourceInfo,
    repr: Representation,
    include: printers::IncludeObject,
}

impl Encoder {
    /// The frame for one selector-filtered event, with upstream's transitions.
    fn event(&self, ev: &CachedEvent, sel: &Selectors) -> Option<Bytes> {
        let now = sel.matches_cached(&ev.object);
        let before = ev.prev.as_ref().map(|p| sel.matches_cached(p));
        let kind = match (ev.kind, now, before) {
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Deleted, false, _) => return None,
            (EventType::Added, true, _) => "ADDED",
            (EventType::Modified, true, Some(true)) => "MODIFIED",
            (EventType::Modified, true, _) => "ADDED",
            (EventType::Modified, false, Some(true)) => "DELETED",
            _ => return None,
        };
        Some(self.frame(kind, &ev.object))
    }

    fn frame(&self, kind: &str, obj: &CachedObject) -> Bytes {
        let same_version = self.info.storage_group == self.info.group && self.info.storage_version == self.info.version;
        if self.repr == Representation::Object && same_version {
            let mut b = BytesMut::with_capacity(obj.json.len() + 32);
            b.put_slice(b"{\"type\":\"");
            b.put_slice(kind.as_bytes());
            b.put_slice(b"\",\"object\":");
            b.put_slice(&obj.json);
            b.put_slice(b"}\n");
            return b.freeze();
        }
        let served = to_served(self.info, obj.object()).unwrap_or_else(|_| obj.object());
        let out = match self.repr {
            Representation::Object => served,
            Representation::Table(v) => {
                let mut t = self.server.table(self.info, &[&served], self.include);
                t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
                t["metadata"] = json!({"resourceVersion": obj.mod_revision.to_string()});
                t
            }
            Representation::PartialMetadata(v) => partial_metadata(&served, v),
        };
        line(&json!({"type": kind, "object": out}))
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = match self.repr {
            Representation::Table(v) => {
                json!({"kind": "Table", "apiVersion": format!("meta.k8s.io/{v}"), "metadata": meta, "columnDefinitions": null, "rows": null})
            }
            Representation::PartialMetadata(v) => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{v}"), "metadata": meta})
            }
            Representation::Object => {
                json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta})
            }
        };
        line(&json!({"type": "BOOKMARK", "object": object}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn frame_error(e: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": e.to_status()}))
}
