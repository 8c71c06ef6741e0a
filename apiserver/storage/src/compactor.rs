//! Periodic compaction of any [`Store`], with upstream kube-apiserver's policy.
//!
//! Upstream compacts every `--etcd-compaction-interval` (default 5m; 0 disables) to the revision
//! it saw one interval earlier, so watchers always have at least one interval of history. Several
//! apiservers sharing one store coordinate through the key [`COMPACT_REV_KEY`]: on every tick each
//! one tries a compare-and-swap of that key against the version it last saw. The winner writes the
//! revision it will compact to and compacts to the revision it recorded on the previous tick; the
//! losers only learn the new version, so one interval passes between compactions whoever wins.
//! Here the key's mod revision plays the part of etcd's per-key version. The first win only
//! records a revision (nothing is compacted at bootstrap).

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;

use crate::{Revision, Store, StoreError};

/// The coordination key (upstream's name; outside `/registry/`, so no API watch sees it).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// Start the compaction loop for `store`. Returns immediately; the loop ticks every `interval`
/// (nothing runs when it is zero) and ends once every other reference to the store is dropped.
pub fn spawn(store: Arc<dyn Store>, interval: Duration) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(&store);
    drop(store);
    tokio::spawn(run(weak, interval))
}

async fn run(store: Weak<dyn Store>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let mut state = Compactor::default();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(store) = store.upgrade() else { return };
        if let Err(e) = state.tick(store.as_ref()).await {
            tracing::warn!(error = %e, "storage compaction failed");
        }
    }
}

/// What one compaction loop remembers between ticks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Compactor {
    /// Mod revision of [`COMPACT_REV_KEY`] last seen (0: absent).
    seen: Revision,
    /// The revision to compact to when this loop next wins (0: none yet).
    pending: Revision,
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// Another loop wrote the coordination key since our last tick.
    Lost,
    /// We won; `compacted` is the revision compacted to (None at bootstrap).
    Won { compacted: Option<Revision> },
}

impl Compactor {
    /// One tick of the policy.
    pub async fn tick(&mut self, store: &dyn Store) -> crate::Result<TickOutcome> {
        let value = Bytes::from(self.pending.to_string());
        let written = if self.seen == 0 {
            store.create(COMPACT_REV_KEY, value).await
        } else {
            store.update(COMPACT_REV_KEY, value, self.seen).await
        };
        let new_rev = match written {
            Ok(rev) => rev,
            Err(StoreError::Conflict { current, .. }) => return self.lost(store, current.mod_revision).await,
            Err(StoreError::AlreadyExists(_)) => {
                let seen = store.get(COMPACT_REV_KEY).await?.map(|kv| kv.mod_revision).unwrap_or(0);
                return self.lost(store, seen).await;
            }
            Err(StoreError::NotFound(_)) => return self.lost(store, 0).await,
            Err(e) => return Err(e),
        };
        self.seen = new_rev;
        let target = std::mem::replace(&mut self.pending, new_rev);
        if target == 0 {
            return Ok(TickOutcome::Won { compacted: None });
        }
        match store.compact(target).await {
            // Someone compacted further already: nothing left to do.
            Ok(()) | Err(StoreError::Compacted { .. }) => Ok(TickOutcome::Won { compacted: Some(target) }),
            Err(e) => Err(e),
        }
    }

    async fn lost(&mut self, store: &dyn Store, seen: Revision) -> crate::Result<TickOutcome> {
        self.seen = seen;
        self.pending = store.current_revision().await?;
        Ok(TickOutcome::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RangeRequest;
    use crate::sqlite::SqliteStore;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn winner_compacts_to_previous_tick_and_losers_wait() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.create("/registry/a", b("1")).await.unwrap(); // 1
        let (mut one, mut two) = (Compactor::default(), Compactor::default());

        // Bootstrap: the first loop records a revision, compacts nothing.
        assert_eq!(one.tick(store.as_ref()).await.unwrap(), TickOutcome::Won { compacted: None }); // key at 2
        assert_eq!(store.compacted_revision().await.unwrap(), 0);
        // The second loop finds the key already written and backs off.
        assert_eq!(two.tick(store.as_ref()).await.unwrap(), TickOutcome::Lost);

        store.update("/registry/a", b("2"), 0).await.unwrap(); // 3
        // Next interval: the first loop wins again and compacts to what it saw one interval ago.
        assert_eq!(one.tick(store.as_ref()).await.unwrap(), TickOutcome::Won { compacted: Some(2) }); // key at 4
        assert_eq!(store.compacted_revision().await.unwrap(), 2);
        // The second loop's view of the key is stale: it loses again, no double compaction.
        assert_eq!(two.tick(store.as_ref()).await.unwrap(), TickOutcome::Lost);
        assert_eq!(store.compacted_revision().await.unwrap(), 2);

        // If the first loop stops, the second takes over on its next tick.
        assert_eq!(two.tick(store.as_ref()).await.unwrap(), TickOutcome::Won { compacted: Some(4) });
        assert_eq!(store.compacted_revision().await.unwrap(), 4);
        let kv = store.get(COMPACT_REV_KEY).await.unwrap().unwrap();
        assert_eq!((kv.value, kv.mod_revision), (b("4"), 5), "the winner records the revision it compacts to");
        // Current data survives.
        let all = store.range(RangeRequest { prefix: "/registry/".into(), ..Default::default() }).await.unwrap();
        assert_eq!(all.kvs[0].value, b("2"));
    }

    #[tokio::test]
    async fn spawned_loop_compacts_with_one_interval_of_history_and_stops_with_the_store() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.create("/registry/x", b("1")).await.unwrap();
        let handle = spawn(store.clone(), Duration::from_millis(50));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.compacted_revision().await.unwrap() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the loop never compacted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Compaction trails the current revision: the last interval stays readable.
        let compacted = store.compacted_revision().await.unwrap();
        assert!(compacted < store.current_revision().await.unwrap());
        drop(store);
        tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn zero_interval_disables() {
        let store = SqliteStore::open_in_memory().unwrap();
        let handle = spawn(store.clone(), Duration::ZERO);
        handle.await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 0, "nothing written");
    }
}
