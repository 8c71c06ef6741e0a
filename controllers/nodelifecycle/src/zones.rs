//! Zones and the rate limiting of NoExecute tainting: the zone key of a node, the zone state from the
//! Ready conditions of its nodes (Normal / PartialDisruption / FullDisruption), a token bucket, and the
//! per-zone tainting queue (upstream's `RateLimitedTimedQueue`). Pure data, no I/O.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;

/// Upstream's `nodetopology.GetZoneKey`: region and zone labels (stable, then beta), "" if none.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |a: &str, b: &str| labels.and_then(|l| l.get(a).or_else(|| l.get(b))).cloned().unwrap_or_default();
    let region = get("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region");
    let zone = get("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone");
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// Nodes labelled `node.kubernetes.io/exclude-disruption` do not count towards zone health.
pub fn excluded_from_disruption(node: &Node) -> bool {
    node.metadata.labels.as_ref().is_some_and(|l| l.contains_key("node.kubernetes.io/exclude-disruption"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    FullDisruption,
    PartialDisruption,
}

/// Upstream's `ComputeZoneState` over the Ready statuses ("True", "False", "Unknown", or None when the
/// node has no Ready condition) of a zone's nodes: returns (not ready count, state).
pub fn compute_zone_state(ready: &[Option<&str>], unhealthy_threshold: f64) -> (usize, ZoneState) {
    let ready_nodes = ready.iter().filter(|s| **s == Some("True")).count();
    let not_ready = ready.len() - ready_nodes;
    if ready_nodes == 0 && not_ready > 0 {
        (not_ready, ZoneState::FullDisruption)
    } else if not_ready > 2 && (not_ready as f64) / (ready.len() as f64) >= unhealthy_threshold {
        (not_ready, ZoneState::PartialDisruption)
    } else {
        (not_ready, ZoneState::Normal)
    }
}

/// A token bucket with burst 1 (upstream `flowcontrol.NewTokenBucketRateLimiter(qps, 1)`); qps 0 never
/// admits anything.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(qps: f64, now: Instant) -> Self {
        TokenBucket { qps, tokens: if qps > 0.0 { 1.0 } else { 0.0 }, last: now }
    }

    pub fn qps(&self) -> f64 {
        self.qps
    }

    pub fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.qps).min(1.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Time until a token is available (None when qps is 0).
    pub fn next_token_in(&self, now: Instant) -> Option<Duration> {
        if self.qps <= 0.0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.qps).min(1.0);
        Some(Duration::from_secs_f64(((1.0 - tokens) / self.qps).max(0.0)))
    }
}

/// The nodes of one zone waiting for their NoExecute taint, admitted by the zone's limiter.
/// Like upstream, a node stays in the set after it was processed (so it is not queued twice) until
/// [`TaintQueue::remove`] is called when it becomes reachable again.
#[derive(Debug)]
pub struct TaintQueue {
    queue: VecDeque<(String, Instant)>,
    set: HashSet<String>,
    pub limiter: TokenBucket,
}

impl TaintQueue {
    pub fn new(qps: f64, now: Instant) -> Self {
        TaintQueue { queue: VecDeque::new(), set: HashSet::new(), limiter: TokenBucket::new(qps, now) }
    }

    /// Queue `node`; false if it is already in the set.
    pub fn add(&mut self, node: &str, now: Instant) -> bool {
        if !self.set.insert(node.to_string()) {
            return false;
        }
        self.queue.push_back((node.to_string(), now));
        true
    }

    /// Forget `node` entirely; true if it was known.
    pub fn remove(&mut self, node: &str) -> bool {
        self.queue.retain(|(n, _)| n != node);
        self.set.remove(node)
    }

    /// Swap the limiter to `qps` (a no-op when unchanged, as upstream).
    pub fn swap_limiter(&mut self, qps: f64, now: Instant) {
        if (self.limiter.qps() - qps).abs() > f64::EPSILON {
            self.limiter = TokenBucket::new(qps, now);
        }
    }

    /// The next node whose time has come, if the limiter admits it (it leaves the queue but stays in
    /// the set; see [`TaintQueue::requeue`] to retry it).
    pub fn pop_ready(&mut self, now: Instant) -> Option<String> {
        let (_, at) = self.queue.front()?;
        if *at > now || !self.limiter.try_accept(now) {
            return None;
        }
        self.queue.pop_front().map(|(n, _)| n)
    }

    /// Put `node` back to be tried again at `at`.
    pub fn requeue(&mut self, node: String, at: Instant) {
        if self.set.contains(&node) {
            self.queue.push_back((node, at));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn zone_state_thresholds() {
        let t = Some("True");
        let u = Some("Unknown");
        assert_eq!(compute_zone_state(&[u], 0.55), (1, ZoneState::FullDisruption));
        assert_eq!(compute_zone_state(&[None, Some("False")], 0.55), (2, ZoneState::FullDisruption));
        assert_eq!(compute_zone_state(&[t, u], 0.55), (1, ZoneState::Normal));
        // More than two not ready and at least 55%: partial disruption.
        assert_eq!(compute_zone_state(&[t, t, u, u, u], 0.55), (3, ZoneState::PartialDisruption));
        assert_eq!(compute_zone_state(&[t, t, t, u, u, u], 0.55), (3, ZoneState::Normal));
        assert_eq!(compute_zone_state(&[t, u, u], 0.55), (2, ZoneState::Normal));
    }

    #[test]
    fn zone_key_uses_region_and_zone() {
        let mut n = Node::default();
        assert_eq!(zone_key(&n), "");
        n.metadata.labels = Some(BTreeMap::from([
            ("topology.kubernetes.io/region".to_string(), "r1".to_string()),
            ("failure-domain.beta.kubernetes.io/zone".to_string(), "z1".to_string()),
        ]));
        assert_eq!(zone_key(&n), "r1:\x00:z1");
    }

    #[test]
    fn token_bucket_admits_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.1, t0);
        assert!(b.try_accept(t0));
        assert!(!b.try_accept(t0 + Duration::from_secs(5)));
        assert!(b.try_accept(t0 + Duration::from_secs(11)));
        let mut zero = TokenBucket::new(0.0, t0);
        assert!(!zero.try_accept(t0 + Duration::from_secs(1000)));
        assert_eq!(zero.next_token_in(t0), None);
    }

    #[test]
    fn taint_queue_is_a_set_and_rate_limited() {
        let t0 = Instant::now();
        let mut q = TaintQueue::new(1.0, t0);
        assert!(q.add("a", t0));
        assert!(!q.add("a", t0));
        assert!(q.add("b", t0));
        assert_eq!(q.pop_ready(t0).as_deref(), Some("a"));
        assert_eq!(q.pop_ready(t0), None); // one token only
        assert_eq!(q.pop_ready(t0 + Duration::from_secs(1)).as_deref(), Some("b"));
        q.requeue("b".into(), t0 + Duration::from_secs(5));
        assert_eq!(q.pop_ready(t0 + Duration::from_secs(3)), None); // not yet due
        assert_eq!(q.pop_ready(t0 + Duration::from_secs(6)).as_deref(), Some("b"));
        // Processed nodes stay in the set until removed.
        assert!(!q.add("a", t0));
        assert!(q.remove("a"));
        assert!(q.add("a", t0));
    }
}
