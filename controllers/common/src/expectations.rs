//! Upstream's ControllerExpectations (with its UID-tracking variant for deletions).
//!
//! A controller that creates or deletes N children records "I expect N adds / N deletes" under its
//! own key (`namespace/name`) before issuing the writes. Its watch handlers lower the counts as the
//! corresponding events arrive. Until the counts reach zero — or the record is older than
//! [`EXPECTATIONS_TIMEOUT`] (5 minutes, in case a watch event was lost) — the controller is not
//! "satisfied" and must not create or delete again: its cache does not yet show its own writes, so
//! acting on it would overshoot.
//!
//! Deletions may be tracked per child key ([`ControllerExpectations::expect_deletions_of`] /
//! [`ControllerExpectations::deletion_observed_of`]): a graceful delete is first seen as an update
//! setting `deletionTimestamp` and later as the real delete, and only the first may count.
//!
//! The store is thread safe and cheap to clone (clones share the same records).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a record may stay unfulfilled before the controller syncs anyway (upstream: 5 minutes).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Record {
    add: i64,
    del: i64,
    timestamp: Instant,
    /// Keys of children whose deletion is awaited (UID-tracking expectations).
    deleting: HashSet<String>,
}

impl Record {
    fn fulfilled(&self) -> bool {
        self.add <= 0 && self.del <= 0
    }
}

/// Pending creations / deletions per controller key.
#[derive(Debug, Clone)]
pub struct ControllerExpectations {
    records: Arc<Mutex<HashMap<String, Record>>>,
    ttl: Duration,
}

impl Default for ControllerExpectations {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerExpectations {
    /// Expectations with upstream's 5-minute timeout.
    pub fn new() -> Self {
        Self::with_timeout(EXPECTATIONS_TIMEOUT)
    }

    /// Expectations expiring after `ttl` (tests use a short one).
    pub fn with_timeout(ttl: Duration) -> Self {
        Self { records: Arc::default(), ttl }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        // A panic while holding the lock cannot leave a record half-written (all updates are
        // single assignments), so a poisoned lock is still usable.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending (adds, deletes) of a controller, if it has a record.
    pub fn get(&self, key: &str) -> Option<(i64, i64)> {
        self.lock().get(key).map(|r| (r.add, r.del))
    }

    /// Whether the controller may act: no record, a fulfilled record, or an expired one.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(r) => r.fulfilled() || r.timestamp.elapsed() > self.ttl,
        }
    }

    /// Replaces the controller's record (forgetting earlier expectations).
    pub fn set(&self, key: &str, add: i64, del: i64) {
        self.lock().insert(key.to_string(), Record { add, del, timestamp: Instant::now(), deleting: HashSet::new() });
    }

    /// Expects `adds` creations (replacing the record).
    pub fn expect_creations(&self, key: &str, adds: usize) {
        self.set(key, adds as i64, 0);
    }

    /// Expects `dels` deletions, untracked (replacing the record).
    pub fn expect_deletions(&self, key: &str, dels: usize) {
        self.set(key, 0, dels as i64);
    }

    /// Expects the deletion of exactly these children (replacing the record); see
    /// [`Self::deletion_observed_of`].
    pub fn expect_deletions_of(&self, key: &str, child_keys: impl IntoIterator<Item = String>) {
        let deleting: HashSet<String> = child_keys.into_iter().collect();
        let del = deleting.len() as i64;
        let mut records = self.lock();
        if let Some(existing) = records.get(key).filter(|r| !r.deleting.is_empty()) {
            tracing::debug!(controller = key, pending = existing.deleting.len(), "clobbering pending delete keys");
        }
        records.insert(key.to_string(), Record { add: 0, del, timestamp: Instant::now(), deleting });
    }

    /// Lowers the pending counts (no-op without a record).
    pub fn lower(&self, key: &str, add: i64, del: i64) {
        if let Some(r) = self.lock().get_mut(key) {
            r.add -= add;
            r.del -= del;
        }
    }

    /// Raises the pending counts (no-op without a record).
    pub fn raise(&self, key: &str, add: i64, del: i64) {
        if let Some(r) = self.lock().get_mut(key) {
            r.add += add;
            r.del += del;
        }
    }

    /// One expected creation was observed (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        self.lower(key, 1, 0);
    }

    /// One untracked deletion was observed.
    pub fn deletion_observed(&self, key: &str) {
        self.lower(key, 0, 1);
    }

    /// The deletion of `child_key` was observed: counts only if it was awaited, and only once.
    pub fn deletion_observed_of(&self, key: &str, child_key: &str) {
        if let Some(r) = self.lock().get_mut(key)
            && r.deleting.remove(child_key)
        {
            r.del -= 1;
        }
    }

    /// Forgets the controller (it was deleted).
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_controllers_are_satisfied() {
        let e = ControllerExpectations::new();
        assert!(e.satisfied("ns/rs"));
        assert_eq!(e.get("ns/rs"), None);
        // Lowering without a record creates nothing.
        e.creation_observed("ns/rs");
        assert_eq!(e.get("ns/rs"), None);
    }

    #[test]
    fn creations_must_all_be_observed() {
        let e = ControllerExpectations::new();
        e.expect_creations("ns/rs", 3);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        assert_eq!(e.get("ns/rs"), Some((1, 0)));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        // Over-observation keeps it satisfied.
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        // Other keys are independent.
        e.expect_creations("ns/other", 1);
        assert!(e.satisfied("ns/rs"));
        assert!(!e.satisfied("ns/other"));
    }

    #[test]
    fn tracked_deletions_count_each_child_once() {
        let e = ControllerExpectations::new();
        e.expect_deletions_of("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        assert_eq!(e.get("ns/rs"), Some((0, 2)));
        // Graceful delete: the update setting deletionTimestamp, then the real delete.
        e.deletion_observed_of("ns/rs", "ns/a");
        e.deletion_observed_of("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs"));
        // A child that was not awaited does not count.
        e.deletion_observed_of("ns/rs", "ns/zzz");
        assert_eq!(e.get("ns/rs"), Some((0, 1)));
        e.deletion_observed_of("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn untracked_deletions_and_raise() {
        let e = ControllerExpectations::new();
        e.expect_deletions("k", 1);
        e.raise("k", 1, 0);
        assert_eq!(e.get("k"), Some((1, 1)));
        e.deletion_observed("k");
        assert!(!e.satisfied("k"));
        e.creation_observed("k");
        assert!(e.satisfied("k"));
    }

    #[test]
    fn setting_replaces_the_record() {
        let e = ControllerExpectations::new();
        e.expect_deletions_of("k", ["a".to_string()]);
        e.expect_creations("k", 2);
        assert_eq!(e.get("k"), Some((2, 0)));
        // The old awaited deletion no longer counts.
        e.deletion_observed_of("k", "a");
        assert_eq!(e.get("k"), Some((2, 0)));
    }

    #[test]
    fn records_expire_after_the_timeout() {
        let e = ControllerExpectations::with_timeout(Duration::from_millis(20));
        e.expect_creations("k", 5);
        assert!(!e.satisfied("k"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(e.satisfied("k"));
        // Still there (upstream keeps the record until it is replaced or deleted).
        assert_eq!(e.get("k"), Some((5, 0)));
        e.delete("k");
        assert_eq!(e.get("k"), None);
    }

    #[test]
    fn clones_share_records_across_threads() {
        let e = ControllerExpectations::new();
        e.expect_creations("k", 100);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        e.creation_observed("k");
                    }
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().is_ok());
        }
        assert_eq!(e.get("k"), Some((0, 0)));
        assert!(e.satisfied("k"));
    }
}
