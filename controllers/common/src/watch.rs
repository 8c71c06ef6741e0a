//! The watch every controller starts from: all objects of a kind, retried
//! with kube-runtime's default backoff, with `managedFields` dropped so the
//! controller's cache does not hold field-ownership records it never reads.

use futures::Stream;
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// `watcher(api, config)` with default backoff and `metadata.managedFields` removed.
pub fn trimmed<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config).default_backoff().modify(|o| o.meta_mut().managed_fields = None)
}
