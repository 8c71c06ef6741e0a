//! Encryption at rest as a storage decorator: values of the resources an
//! EncryptionConfiguration covers are encrypted on the way into the store and
//! decrypted on the way out, so the SQLite file or etcd never holds them in
//! clear. Everything above (watch cache, handlers) sees plain values.

use crate::encryption::Transformers;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use rkube_storage::{Event, KeyValue, RangeRequest, RangeResult, Result, Revision, Store, StoreError};
use std::sync::Arc;

pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    transformers: Arc<Transformers>,
}

impl EncryptedStore {
    pub fn wrap(inner: Arc<dyn Store>, transformers: Transformers) -> Arc<dyn Store> {
        Arc::new(Self { inner, transformers: Arc::new(transformers) })
    }
}

fn plain(t: &Transformers, mut kv: KeyValue) -> Result<KeyValue> {
    let (value, _stale) =
        t.decrypt(&kv.key, &kv.value).map_err(|e| StoreError::Backend(format!("decrypting {}: {e}", kv.key)))?;
    kv.value = Bytes::from(value);
    Ok(kv)
}

fn plain_event(t: &Transformers, ev: Event) -> Result<Event> {
    Ok(match ev {
        Event::Put { kv, prev } => Event::Put { kv: plain(t, kv)?, prev: prev.map(|p| plain(t, p)).transpose()? },
        Event::Delete { key, revision, prev } => Event::Delete { key, revision, prev: plain(t, prev)? },
    })
}

fn conflict(t: &Transformers, e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { key, current } => match plain(t, *current) {
            Ok(kv) => StoreError::Conflict { key, current: Box::new(kv) },
            Err(e) => e,
        },
        other => other,
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await?.map(|kv| plain(&self.transformers, kv)).transpose()
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        let mut res = self.inner.range(req).await?;
        res.kvs = res.kvs.into_iter().map(|kv| plain(&self.transformers, kv)).collect::<Result<_>>()?;
        Ok(res)
    }
    async fn count(&self, prefix: &str) -> Result<i64> {
        self.inner.count(prefix).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let v = Bytes::from(self.transformers.encrypt(key, &value));
        self.inner.create(key, v).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let v = Bytes::from(self.transformers.encrypt(key, &value));
        self.inner.update(key, v, expected).await.map_err(|e| conflict(&self.transformers, e))
    }
    async fn delete(&self, key: &str, expected: Revision) -> Result<(Revision, KeyValue)> {
        let (rev, kv) = self.inner.delete(key, expected).await.map_err(|e| conflict(&self.transformers, e))?;
        Ok((rev, plain(&self.transformers, kv)?))
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<BoxStream<'static, Result<Event>>> {
        let t = self.transformers.clone();
        let s = self.inner.watch(prefix, after).await?;
        Ok(s.map(move |ev| ev.and_then(|ev| plain_event(&t, ev))).boxed())
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_encrypted_in_the_store_and_plain_above_it() {
        let cfg = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: k1\n        secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=\n  - identity: {}\n";
        let raw = rkube_storage::sqlite::SqliteStore::open_in_memory().unwrap();
        let store = EncryptedStore::wrap(raw.clone(), Transformers::parse(cfg).unwrap());
        let key = "/registry/secrets/default/s";
        store.create(key, Bytes::from_static(b"{\"data\":\"topsecret\"}")).await.unwrap();
        let stored = raw.get(key).await.unwrap().unwrap();
        assert!(stored.value.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        assert!(!stored.value.windows(9).any(|w| w == b"topsecret"));
        assert_eq!(store.get(key).await.unwrap().unwrap().value, Bytes::from_static(b"{\"data\":\"topsecret\"}"));
        // other resources are untouched
        store.create("/registry/configmaps/default/c", Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(raw.get("/registry/configmaps/default/c").await.unwrap().unwrap().value, Bytes::from_static(b"{}"));
    }
}
