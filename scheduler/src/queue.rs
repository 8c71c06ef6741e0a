//! The scheduling queue, as upstream's PriorityQueue: `activeQ` ordered by priority then
//! arrival (PrioritySort), `backoffQ` for pods whose last attempt failed (1 s doubling per
//! attempt up to 10 s), and `unschedulablePods` parked until a cluster event (node added or
//! changed, an assigned pod deleted or changed) or 5 minutes pass. Pure data: callers pass `now`.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Upstream's `podMaxInUnschedulablePodsDuration`.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Active,
    Backoff,
    Unschedulable,
    /// Popped, being scheduled (or its binding is in flight).
    InFlight,
}

#[derive(Debug)]
struct Entry {
    priority: i32,
    seq: u64,
    attempts: u32,
    state: State,
    /// Set when the last failure happened; backoff expires `backoff(attempts)` after it.
    failed_at: Option<Instant>,
    /// A cluster event arrived while the pod was in flight: a failure goes to backoff, not unschedulable.
    moved_during_flight: bool,
    /// Bumped on every state change, so stale backoff-heap entries are skipped.
    generation: u64,
}

#[derive(Default, Debug)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BTreeSet<(Reverse<i32>, u64, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
}

pub fn backoff_duration(attempts: u32) -> Duration {
    let mut d = INITIAL_BACKOFF;
    for _ in 1..attempts {
        d *= 2;
        if d >= MAX_BACKOFF {
            return MAX_BACKOFF;
        }
    }
    d
}

impl Queue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn state(&self, key: &str) -> Option<State> {
        self.entries.get(key).map(|e| e.state)
    }

    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    fn push_active(&mut self, key: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.state = State::Active;
            e.generation += 1;
            self.active.insert((Reverse(e.priority), e.seq, key.to_string()));
        }
    }

    fn push_backoff(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.state = State::Backoff;
            e.generation += 1;
            let at = e.failed_at.unwrap_or(now) + backoff_duration(e.attempts);
            self.backoff.push(Reverse((at, e.generation, key.to_string())));
        }
    }

    fn backoff_expired(&self, key: &str, now: Instant) -> bool {
        match self.entries.get(key) {
            Some(Entry { failed_at: Some(t), attempts, .. }) => *t + backoff_duration(*attempts) <= now,
            _ => true,
        }
    }

    fn unlink_active(&mut self, key: &str) {
        if let Some(e) = self.entries.get(key)
            && e.state == State::Active
        {
            self.active.remove(&(Reverse(e.priority), e.seq, key.to_string()));
        }
    }

    /// A new pending pod, or a pending pod whose spec/labels changed. An unschedulable pod
    /// that changed is retried (after its backoff).
    pub fn add_or_update(&mut self, key: &str, priority: i32, now: Instant) {
        match self.entries.get(key).map(|e| e.state) {
            None => {
                self.seq += 1;
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        priority,
                        seq: self.seq,
                        attempts: 0,
                        state: State::Active,
                        failed_at: None,
                        moved_during_flight: false,
                        generation: 0,
                    },
                );
                self.push_active(key);
            }
            Some(State::Unschedulable) => {
                if let Some(e) = self.entries.get_mut(key) {
                    e.priority = priority;
                }
                self.requeue(key, now);
            }
            Some(State::InFlight) => {
                if let Some(e) = self.entries.get_mut(key) {
                    e.moved_during_flight = true;
                }
            }
            Some(State::Active) => {
                self.unlink_active(key);
                if let Some(e) = self.entries.get_mut(key) {
                    e.priority = priority;
                }
                self.push_active(key);
            }
            Some(State::Backoff) => {}
        }
    }

    fn requeue(&mut self, key: &str, now: Instant) {
        if self.backoff_expired(key, now) { self.push_active(key) } else { self.push_backoff(key, now) }
    }

    /// The pod is gone, bound by someone else, or no longer ours.
    pub fn remove(&mut self, key: &str) {
        self.unlink_active(key);
        self.entries.remove(key);
    }

    /// Move due backoff pods to activeQ, and pods parked too long in unschedulablePods.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((at, generation, key))) = self.backoff.peek().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop();
            if self.entries.get(&key).is_some_and(|e| e.state == State::Backoff && e.generation == generation) {
                self.push_active(&key);
            }
        }
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.state == State::Unschedulable
                    && e.failed_at.is_some_and(|t| now.duration_since(t) >= MAX_UNSCHEDULABLE)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.push_active(&k);
        }
    }

    /// When the next backoff expires (for the loop's sleep).
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pop the highest-priority, oldest active pod.
    pub fn pop(&mut self) -> Option<String> {
        let (_, _, key) = self.active.pop_first()?;
        if let Some(e) = self.entries.get_mut(&key) {
            e.state = State::InFlight;
            e.attempts += 1;
            e.moved_during_flight = false;
            e.generation += 1;
        }
        Some(key)
    }

    /// The attempt found no node: park in unschedulablePods (or backoffQ if a cluster event
    /// came in meanwhile).
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else { return };
        e.failed_at = Some(now);
        if e.moved_during_flight {
            self.push_backoff(key, now);
        } else {
            e.state = State::Unschedulable;
            e.generation += 1;
        }
    }

    /// The attempt failed for another reason (binding error): retry after backoff.
    pub fn error(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else { return };
        e.failed_at = Some(now);
        self.push_backoff(key, now);
    }

    /// A cluster event that may make parked pods schedulable: move them all to activeQ
    /// (backoff over) or backoffQ; in-flight pods remember it.
    pub fn move_all(&mut self, now: Instant) {
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Unschedulable | State::InFlight))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            match self.entries.get(&k).map(|e| e.state) {
                Some(State::InFlight) => {
                    if let Some(e) = self.entries.get_mut(&k) {
                        e.moved_during_flight = true;
                    }
                }
                _ => self.requeue(&k, now),
            }
        }
    }

    /// The pod was bound (or its binding was sent): forget it.
    pub fn done(&mut self, key: &str) {
        self.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff_duration(1), Duration::from_secs(1));
        assert_eq!(backoff_duration(2), Duration::from_secs(2));
        assert_eq!(backoff_duration(4), Duration::from_secs(8));
        assert_eq!(backoff_duration(5), Duration::from_secs(10));
        assert_eq!(backoff_duration(30), Duration::from_secs(10));
    }

    #[test]
    fn priority_then_fifo() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add_or_update("a", 0, now);
        q.add_or_update("b", 10, now);
        q.add_or_update("c", 0, now);
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert_eq!(q.pop().as_deref(), Some("c"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn unschedulable_waits_for_event_then_backoff() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.add_or_update("p", 0, t0);
        assert_eq!(q.pop().as_deref(), Some("p"));
        q.unschedulable("p", t0);
        assert_eq!(q.state("p"), Some(State::Unschedulable));
        q.flush(t0 + Duration::from_secs(20));
        assert_eq!(q.state("p"), Some(State::Unschedulable), "only a cluster event or 5 min moves it");
        // Event during the 1 s backoff: goes to backoffQ, then active once it expires.
        q.move_all(t0 + Duration::from_millis(500));
        assert_eq!(q.state("p"), Some(State::Backoff));
        q.flush(t0 + Duration::from_millis(900));
        assert_eq!(q.pop(), None);
        q.flush(t0 + Duration::from_millis(1000));
        assert_eq!(q.pop().as_deref(), Some("p"));
        // Second failure; an event after the 2 s backoff goes straight to active.
        let t1 = t0 + Duration::from_secs(2);
        q.unschedulable("p", t1);
        q.move_all(t1 + Duration::from_secs(3));
        assert_eq!(q.state("p"), Some(State::Active));
        // Parked pods are retried after 5 minutes anyway.
        assert_eq!(q.pop().as_deref(), Some("p"));
        q.unschedulable("p", t1);
        q.flush(t1 + MAX_UNSCHEDULABLE);
        assert_eq!(q.state("p"), Some(State::Active));
    }

    #[test]
    fn event_during_flight_sends_failure_to_backoff() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.add_or_update("p", 0, t0);
        q.pop();
        q.move_all(t0);
        q.unschedulable("p", t0);
        assert_eq!(q.state("p"), Some(State::Backoff));
        assert_eq!(q.next_backoff(), Some(t0 + Duration::from_secs(1)));
        q.remove("p");
        q.flush(t0 + Duration::from_secs(5));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
