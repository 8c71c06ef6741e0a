//! Upstream's slowStartBatch: run `count` calls in batches of growing size (1, 2, 4, … by default),
//! each batch in parallel, and stop after the first batch that had a failure. A controller that
//! creates many pods and hits a systematic error (quota, admission, a bad template) thus makes one
//! or a few failing calls instead of hundreds.

use std::future::Future;

/// Upstream's `SlowStartInitialBatchSize`.
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

/// Runs `f(i)` for `i in 0..count` in doubling batches starting at `initial_batch_size`.
/// Returns how many calls succeeded and the first error (if any batch failed, the remaining calls
/// are not attempted).
pub async fn slow_start_batch<F, Fut, E>(count: usize, initial_batch_size: usize, f: F) -> (usize, Option<E>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut next = 0;
    let mut batch = remaining.min(initial_batch_size.max(1));
    while batch > 0 {
        let results = futures::future::join_all((next..next + batch).map(&f)).await;
        next += batch;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => successes += 1,
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if first_err.is_some() {
            return (successes, first_err);
        }
        remaining -= batch;
        batch = remaining.min(batch * 2);
    }
    (successes, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn batches_double_and_cover_everything() {
        let calls = Mutex::new(Vec::new());
        let (ok, err) = slow_start_batch(10, 1, |i| {
            calls.lock().map(|mut c| c.push(i)).ok();
            async { Ok::<(), String>(()) }
        })
        .await;
        assert_eq!(ok, 10);
        assert!(err.is_none());
        let mut seen = calls.into_inner().unwrap_or_default();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn stops_after_the_failing_batch() {
        // Batches: [0], [1,2], [3..7), [7..15) ... ; index 4 fails in the third batch.
        let calls = Mutex::new(0usize);
        let (ok, err) = slow_start_batch(20, 1, |i| {
            calls.lock().map(|mut c| *c += 1).ok();
            async move { if i == 4 { Err(format!("boom {i}")) } else { Ok(()) } }
        })
        .await;
        assert_eq!(err.as_deref(), Some("boom 4"));
        // 1 + 2 + 4 attempted, one failed.
        assert_eq!(calls.into_inner().unwrap_or_default(), 7);
        assert_eq!(ok, 6);
    }

    #[tokio::test]
    async fn zero_count_does_nothing() {
        let (ok, err) = slow_start_batch(0, 1, |_| async { Err::<(), _>("never") }).await;
        assert_eq!((ok, err), (0, None));
    }

    #[tokio::test]
    async fn first_failure_stops_immediately() {
        let (ok, err) = slow_start_batch(500, 1, |_| async { Err::<(), _>("quota") }).await;
        assert_eq!((ok, err), (0, Some("quota")));
    }
}
