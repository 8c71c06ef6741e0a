//! Container restart back-off (upstream's `flowcontrol.Backoff` as the kubelet uses it for
//! CrashLoopBackOff): the first restart is immediate and arms `base`; a container that exits again
//! while armed waits `backoff` since its exit, and each restart doubles it up to `max`. An entry
//! untouched for 2 × max (the container ran that long) starts over.

use tokio::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct Backoff {
    entry: Option<(Duration, Instant)>,
}

impl Backoff {
    /// The current back-off period if a container that finished at `finished` is still in it at `now`.
    pub fn in_backoff(&self, finished: Instant, now: Instant, max: Duration) -> Option<Duration> {
        let (d, last) = self.entry?;
        if finished.saturating_duration_since(last) > max * 2 {
            return None;
        }
        (now.saturating_duration_since(finished) < d).then_some(d)
    }

    /// Records a restart at `now`.
    pub fn next(&mut self, now: Instant, base: Duration, max: Duration) {
        self.entry = match self.entry {
            Some((d, last)) if now.saturating_duration_since(last) <= max * 2 => Some(((d * 2).min(max), now)),
            _ => Some((base.min(max), now)),
        };
    }

    /// The back-off period currently armed.
    pub fn current(&self) -> Option<Duration> {
        self.entry.map(|(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(300);
        let t0 = Instant::now();
        let mut b = Backoff::default();
        // First exit: not in back-off, restart right away.
        assert_eq!(b.in_backoff(t0, t0, max), None);
        b.next(t0, base, max);
        // Second exit 1 s later: wait 10 s.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.in_backoff(t1, t1, max), Some(base));
        assert_eq!(b.in_backoff(t1, t1 + base, max), None);
        b.next(t1 + base, base, max);
        assert_eq!(b.current(), Some(Duration::from_secs(20)));
        for _ in 0..10 {
            b.next(t1 + base, base, max);
        }
        assert_eq!(b.current(), Some(max));
        // Running for more than 2 × max resets to the base.
        let late = t1 + base + max * 2 + Duration::from_secs(1);
        assert_eq!(b.in_backoff(late, late, max), None);
        b.next(late, base, max);
        assert_eq!(b.current(), Some(base));
    }
}
