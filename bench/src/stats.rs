//! Small statistics over latency samples: nearest-rank percentiles, medians
//! and rates, as printed in the harness's table.

use std::time::Duration;

/// Latency samples in nanoseconds, sorted once and queried many times.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<u64>,
}

impl Samples {
    /// Take ownership of unsorted samples (nanoseconds).
    pub fn new(mut ns: Vec<u64>) -> Self {
        ns.sort_unstable();
        Samples { sorted: ns }
    }

    pub fn from_durations(ds: &[Duration]) -> Self {
        Self::new(ds.iter().map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).collect())
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100): the smallest sample such that at
    /// least p% of the samples are at or below it. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let idx = rank.clamp(1, n) - 1;
        Some(Duration::from_nanos(self.sorted[idx]))
    }

    /// The median as the mean of the two middle samples for an even count.
    pub fn median(&self) -> Option<Duration> {
        let n = self.sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(Duration::from_nanos(self.sorted[n / 2])),
            _ => Some(Duration::from_nanos((self.sorted[n / 2 - 1] / 2) + (self.sorted[n / 2] / 2))),
        }
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().map(|&v| Duration::from_nanos(v))
    }

    pub fn min(&self) -> Option<Duration> {
        self.sorted.first().map(|&v| Duration::from_nanos(v))
    }
}

/// Operations per second over a wall-clock interval (0 for an empty interval).
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s <= 0.0 { 0.0 } else { count as f64 / s }
}

/// Milliseconds as a float, for tables and JSON.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        // 1..=100 ms, shuffled order must not matter.
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        v.reverse();
        let s = Samples::new(v);
        assert_eq!(s.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(s.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(s.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(s.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(s.max(), Some(Duration::from_millis(100)));
        assert_eq!(s.min(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn p99_of_small_sets_is_the_max() {
        let s = Samples::new(vec![5, 1, 3]);
        assert_eq!(s.percentile(99.0), Some(Duration::from_nanos(5)));
        assert_eq!(s.percentile(50.0), Some(Duration::from_nanos(3)));
    }

    #[test]
    fn medians() {
        assert_eq!(Samples::new(vec![]).median(), None);
        assert_eq!(Samples::new(vec![9, 1, 5]).median(), Some(Duration::from_nanos(5)));
        assert_eq!(Samples::new(vec![4, 2, 8, 6]).median(), Some(Duration::from_nanos(5)));
        assert!(Samples::new(vec![]).percentile(50.0).is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(rate(2000, Duration::from_secs(2)), 1000.0);
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }
}
