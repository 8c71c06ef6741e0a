//! Completion-index sets of Indexed Jobs in upstream's compressed text form
//! (`status.completedIndexes` / `status.failedIndexes`: `"1,3-5,7"`), plus reading a pod's index.

use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;

/// The annotation (and, since 1.28, label) carrying a pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// How many times pods of this index failed before this pod was created (backoffLimitPerIndex).
pub const INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
/// Failures of this index that a podFailurePolicy `Ignore` rule did not count.
pub const INDEX_IGNORED_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// Parses `"1,3-5"`; indexes outside `0..completions` and malformed parts are skipped (upstream
/// tolerates garbage written by other clients the same way).
pub fn parse(s: Option<&str>, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<i32>(), b.trim().parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else { continue };
        let hi = hi.min(completions.saturating_sub(1));
        for i in lo.max(0)..=hi {
            out.insert(i);
        }
    }
    out
}

/// Formats a set as `"1,3-5"` (ranges of 2+ consecutive indexes collapse, like upstream: `"1-2"`).
pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        // upstream writes two neighbours as "a,b" and longer runs as "a-b"
        parts.push(match end - start {
            0 => start.to_string(),
            1 => format!("{start},{end}"),
            _ => format!("{start}-{end}"),
        });
    }
    parts.join(",")
}

/// The pod's completion index (annotation first, then label), if valid for `completions`.
pub fn pod_index(pod: &Pod, completions: i32) -> Option<i32> {
    let from = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX_ANNOTATION)).and_then(|v| v.parse::<i32>().ok())
    };
    let idx = from(pod.metadata.annotations.as_ref()).or_else(|| from(pod.metadata.labels.as_ref()))?;
    (0..completions).contains(&idx).then_some(idx)
}

/// An integer annotation of the pod (0 when absent or malformed).
pub fn int_annotation(pod: &Pod, key: &str) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    #[test]
    fn round_trips_ranges() {
        let s: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format(&s), "0-2,4,6,7");
        assert_eq!(parse(Some("0-2,4,6,7"), 10), s);
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(format(&[3].into_iter().collect()), "3");
    }

    #[test]
    fn parse_clips_to_completions_and_skips_garbage() {
        assert_eq!(parse(Some("1,x,3-9"), 5), [1, 3, 4].into_iter().collect());
        assert!(parse(None, 5).is_empty());
        assert!(parse(Some(""), 5).is_empty());
    }

    #[test]
    fn pod_index_reads_annotation_then_label() {
        let mut pod = Pod {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(COMPLETION_INDEX_ANNOTATION.to_string(), "2".to_string())])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(pod_index(&pod, 5), Some(2));
        assert_eq!(pod_index(&pod, 2), None);
        pod.metadata.annotations = Some(BTreeMap::from([(COMPLETION_INDEX_ANNOTATION.to_string(), "1".to_string())]));
        assert_eq!(pod_index(&pod, 5), Some(1));
        assert_eq!(int_annotation(&pod, INDEX_FAILURE_COUNT_ANNOTATION), 0);
    }
}
