//! A work queue with upstream workqueue semantics: a key queued twice is
//! processed once, a key is never processed by two workers at once (re-added
//! while processing, it runs again afterwards), delayed adds, and per-key
//! exponential backoff for failures.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

struct Inner<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new(base_delay: Duration, max_delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            notify: Notify::new(),
            base_delay,
            max_delay,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut q = self.lock();
        if !q.dirty.insert(key.clone()) {
            return;
        }
        if !q.processing.contains(&key) {
            q.queue.push_back(key);
            drop(q);
            self.notify.notify_one();
        }
    }

    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.add(key);
        });
    }

    /// Re-add after this key's next backoff delay (5 ms, 10 ms, … capped).
    pub fn add_rate_limited(self: &Arc<Self>, key: K) {
        let delay = {
            let mut q = self.lock();
            let n = q.failures.entry(key.clone()).or_insert(0);
            let d = self.base_delay.saturating_mul(1u32 << (*n).min(30));
            *n = n.saturating_add(1);
            d.min(self.max_delay)
        };
        self.add_after(key, delay);
    }

    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// The next key; the caller must call [`WorkQueue::done`] with it.
    pub async fn get(&self) -> K {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.lock();
                if let Some(k) = q.queue.pop_front() {
                    q.dirty.remove(&k);
                    q.processing.insert(k.clone());
                    let more = !q.queue.is_empty();
                    drop(q);
                    if more {
                        self.notify.notify_one();
                    }
                    return k;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &K) {
        let mut q = self.lock();
        q.processing.remove(key);
        if q.dirty.contains(key) {
            q.queue.push_back(key.clone());
            drop(q);
            self.notify.notify_one();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_never_runs_a_key_twice_concurrently() {
        let q = WorkQueue::<String>::new(Duration::from_millis(5), Duration::from_secs(1));
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        let k = q.get().await;
        assert_eq!(k, "a");
        // Re-added while processing: not handed out until done.
        q.add("a".into());
        assert_eq!(q.get().await, "b");
        assert_eq!(q.len(), 0);
        q.done(&"a".to_string());
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, "a");
    }

    #[tokio::test]
    async fn rate_limited_adds_back_off() {
        let q = WorkQueue::<String>::new(Duration::from_millis(20), Duration::from_millis(50));
        q.add_rate_limited("a".into());
        assert_eq!(q.len(), 0);
        let got = tokio::time::timeout(Duration::from_secs(1), q.get()).await;
        assert_eq!(got.ok().as_deref(), Some("a"));
        q.done(&"a".to_string());
        q.forget(&"a".to_string());
        assert!(q.lock().failures.is_empty());
    }
}
