//! Upstream's replica calculator for resource metrics (pkg/controller/podautoscaler/
//! replica_calculator.go), as pure functions: grouping pods into ready / unready / missing /
//! ignored, utilization against container requests, the tolerance band, and the conservative
//! treatment of missing and unready pods (missing pods count as 100% of request on a scale-down
//! and 0% on a scale-up; unready pods count as 0% on a scale-up and are otherwise left out; a
//! recalculation that would flip the direction keeps the current size).

use crate::metrics::{PodMetric, PodMetricsInfo};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Tunables of the calculation (upstream's controller-manager flags).
#[derive(Clone, Debug)]
pub struct Calculator {
    /// `--horizontal-pod-autoscaler-tolerance`: ratios within 1 ± tolerance keep the size.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub delay_of_initial_readiness_status: Duration,
}

impl Default for Calculator {
    fn default() -> Self {
        Self {
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(5 * 60),
            delay_of_initial_readiness_status: Duration::from_secs(30),
        }
    }
}

/// Pods sorted for a calculation.
#[derive(Debug, Default, PartialEq)]
pub struct PodGroups {
    pub ready: usize,
    pub unready: BTreeSet<String>,
    pub missing: BTreeSet<String>,
    pub ignored: BTreeSet<String>,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl Calculator {
    fn within_tolerance(&self, ratio: f64) -> bool {
        (1.0 - self.tolerance) <= ratio && ratio <= (1.0 + self.tolerance)
    }

    /// Upstream's groupPods.
    pub fn group_pods(&self, pods: &[Pod], metrics: &PodMetricsInfo, resource: &str, now: Timestamp) -> PodGroups {
        let mut g = PodGroups::default();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = pod.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
            if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" {
                g.ignored.insert(name);
                continue;
            }
            if phase == "Pending" {
                g.unready.insert(name);
                continue;
            }
            let Some(metric) = metrics.get(&name) else {
                g.missing.insert(name);
                continue;
            };
            if resource == "cpu" {
                let condition = rkube_controller_common::pod::ready_condition(pod);
                let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
                let unready = match (condition, start) {
                    (Some(c), Some(start)) => {
                        let transition = c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(start);
                        if start + signed(self.cpu_initialization_period) > now {
                            // Still initializing: unready, or no full window sampled since it became ready.
                            c.status == "False" || metric.timestamp < transition + signed(metric.window)
                        } else {
                            // Unready and never ready since starting.
                            c.status == "False" && start + signed(self.delay_of_initial_readiness_status) > transition
                        }
                    }
                    _ => true,
                };
                if unready {
                    g.unready.insert(name);
                    continue;
                }
            }
            g.ready += 1;
        }
        g
    }

    /// Utilization target (percent of request): upstream's GetResourceReplicas. Returns
    /// (replicas, utilization percent, raw average value in milli-units).
    #[allow(clippy::too_many_arguments)]
    pub fn resource_replicas(
        &self,
        current_replicas: i32,
        target_utilization: i32,
        resource: &str,
        container: Option<&str>,
        pods: &[Pod],
        metrics: &PodMetricsInfo,
        now: Timestamp,
    ) -> Result<(i32, i32, i64), String> {
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let mut metrics = metrics.clone();
        let groups = self.group_pods(pods, &metrics, resource, now);
        for n in groups.ignored.iter().chain(groups.unready.iter()) {
            metrics.remove(n);
        }
        let requests = pod_requests(pods, container, resource)?;
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target_utilization)?;

        let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok((current_replicas, utilization, raw));
            }
            return Ok((ceil_i32(ratio * groups.ready as f64), utilization, raw));
        }
        if !groups.missing.is_empty() {
            let fallback = i64::from(target_utilization.max(100));
            for n in &groups.missing {
                let value =
                    if ratio < 1.0 { requests.get(n).copied().unwrap_or(0).saturating_mul(fallback) / 100 } else { 0 };
                // ratio == 1.0 upstream leaves missing pods out of the recount.
                if ratio != 1.0 {
                    metrics.insert(n.clone(), zero_metric(value));
                }
            }
        }
        if scale_up_with_unready {
            for n in &groups.unready {
                metrics.insert(n.clone(), zero_metric(0));
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
        Ok((self.finish(current_replicas, ratio, new_ratio, metrics.len()), utilization, raw))
    }

    /// AverageValue target (milli-units per pod): upstream's GetRawResourceReplicas /
    /// calcPlainMetricReplicas. Returns (replicas, average usage in milli-units).
    pub fn plain_replicas(
        &self,
        current_replicas: i32,
        target_usage: i64,
        resource: &str,
        pods: &[Pod],
        metrics: &PodMetricsInfo,
        now: Timestamp,
    ) -> Result<(i32, i64), String> {
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let mut metrics = metrics.clone();
        let groups = self.group_pods(pods, &metrics, resource, now);
        for n in groups.ignored.iter().chain(groups.unready.iter()) {
            metrics.remove(n);
        }
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, usage) = usage_ratio(&metrics, target_usage);
        let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok((current_replicas, usage));
            }
            return Ok((ceil_i32(ratio * groups.ready as f64), usage));
        }
        for n in &groups.missing {
            // On a scale-down a missing pod uses exactly the target, otherwise nothing.
            let value = if ratio < 1.0 { target_usage } else { 0 };
            metrics.insert(n.clone(), zero_metric(value));
        }
        if scale_up_with_unready {
            for n in &groups.unready {
                metrics.insert(n.clone(), zero_metric(0));
            }
        }
        let (new_ratio, _) = usage_ratio(&metrics, target_usage);
        Ok((self.finish(current_replicas, ratio, new_ratio, metrics.len()), usage))
    }

    /// The end of both calculations, once missing / unready pods are filled in.
    fn finish(&self, current: i32, ratio: f64, new_ratio: f64, counted: usize) -> i32 {
        if self.within_tolerance(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
            return current;
        }
        let proposed = ceil_i32(new_ratio * counted as f64);
        if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
            return current;
        }
        proposed
    }
}

fn zero_metric(value: i64) -> PodMetric {
    PodMetric { value, timestamp: Timestamp::UNIX_EPOCH, window: Duration::ZERO }
}

fn ceil_i32(v: f64) -> i32 {
    let c = v.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else if c <= 0.0 {
        0
    } else {
        c as i32
    }
}

/// Per pod: the sum of the requests of `resource` over its containers (and restartable init
/// containers), or only `container`'s. A container without that request is an error.
pub fn pod_requests(pods: &[Pod], container: Option<&str>, resource: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut sum = 0i64;
        if let Some(spec) = pod.spec.as_ref() {
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                if container.is_some_and(|want| want != c.name) {
                    continue;
                }
                let request = c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource));
                match request.and_then(|q| crate::metrics::milli_value(&q.0)) {
                    Some(v) => sum = sum.saturating_add(v),
                    None => {
                        return Err(format!("missing request for {resource} in container {} of Pod {name}", c.name));
                    }
                }
            }
        }
        out.insert(name, sum);
    }
    Ok(out)
}

/// Upstream's GetResourceUtilizationRatio: (ratio to target, utilization percent, raw average).
pub fn utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &BTreeMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let mut usage = 0i64;
    let mut requested = 0i64;
    let mut entries = 0i64;
    for (name, m) in metrics {
        let Some(r) = requests.get(name) else { continue };
        usage = usage.saturating_add(m.value);
        requested = requested.saturating_add(*r);
        entries += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (usage.saturating_mul(100) / requested).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    let target = f64::from(target_utilization.max(1));
    Ok((f64::from(utilization) / target, utilization, usage / entries.max(1)))
}

/// Upstream's GetMetricUsageRatio: (ratio to target, average usage).
pub fn usage_ratio(metrics: &PodMetricsInfo, target_usage: i64) -> (f64, i64) {
    let total: i64 = metrics.values().fold(0i64, |a, m| a.saturating_add(m.value));
    let average = total / (metrics.len().max(1) as i64);
    let target = if target_usage == 0 { 1 } else { target_usage };
    (average as f64 / target as f64, average)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn ts(secs_ago: i64) -> String {
        Timestamp::from_second(NOW - secs_ago).map(|t| t.to_string()).unwrap_or_default()
    }

    /// A running pod with one container requesting `request` CPU, started `started` seconds ago,
    /// Ready=`ready` since `since` seconds ago.
    fn pod(name: &str, request: &str, started: i64, ready: bool, since: i64) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": request, "memory": "100Mi"}}}]},
            "status": {
                "phase": "Running",
                "startTime": ts(started),
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": ts(since)}]
            }
        }))
        .unwrap_or_default()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn metrics(values: &[(&str, i64)]) -> PodMetricsInfo {
        values
            .iter()
            .map(|(n, v)| (n.to_string(), PodMetric { value: *v, timestamp: now(), window: Duration::from_secs(30) }))
            .collect()
    }

    fn old_pods(n: usize) -> Vec<Pod> {
        (0..n).map(|i| pod(&format!("p{i}"), "100m", 3600, true, 3000)).collect()
    }

    #[test]
    fn scales_up_proportionally() {
        let c = Calculator::default();
        let pods = old_pods(2);
        let m = metrics(&[("p0", 100), ("p1", 100)]);
        // 100% against a 50% target: ratio 2 → 4 replicas.
        assert_eq!(c.resource_replicas(2, 50, "cpu", None, &pods, &m, now()), Ok((4, 100, 100)));
    }

    #[test]
    fn tolerance_keeps_current_size() {
        let c = Calculator::default();
        let pods = old_pods(3);
        // 54% against 50%: ratio 1.08 is within 10%.
        let m = metrics(&[("p0", 54), ("p1", 54), ("p2", 54)]);
        assert_eq!(c.resource_replicas(3, 50, "cpu", None, &pods, &m, now()).map(|r| r.0), Ok(3));
        // 56%: ratio 1.12 → ceil(3.36) = 4.
        let m = metrics(&[("p0", 56), ("p1", 56), ("p2", 56)]);
        assert_eq!(c.resource_replicas(3, 50, "cpu", None, &pods, &m, now()).map(|r| r.0), Ok(4));
    }

    #[test]
    fn scales_down() {
        let c = Calculator::default();
        let pods = old_pods(4);
        let m = metrics(&[("p0", 10), ("p1", 10), ("p2", 10), ("p3", 10)]);
        // 10% vs 50%: ceil(0.2 * 4) = 1.
        assert_eq!(c.resource_replicas(4, 50, "cpu", None, &pods, &m, now()), Ok((1, 10, 10)));
    }

    #[test]
    fn missing_pods_count_as_full_on_scale_down() {
        let c = Calculator::default();
        let pods = old_pods(4);
        // Two pods at 10%, two without metrics (count as 100%): (10+10+100+100)/4 = 55% vs 50%
        // is within tolerance → stay at 4 (without the fallback it would be 1).
        let m = metrics(&[("p0", 10), ("p1", 10)]);
        assert_eq!(c.resource_replicas(4, 50, "cpu", None, &pods, &m, now()).map(|r| r.0), Ok(4));
    }

    #[test]
    fn missing_pods_count_as_zero_on_scale_up() {
        let c = Calculator::default();
        let pods = old_pods(4);
        // Two pods at 200% (ratio 4), two missing (0%): (200+200)/4 = 100% → ratio 2 → 8.
        let m = metrics(&[("p0", 200), ("p1", 200)]);
        assert_eq!(c.resource_replicas(4, 50, "cpu", None, &pods, &m, now()).map(|r| r.0), Ok(8));
    }

    #[test]
    fn unready_pods_ignored_or_zero_on_scale_up() {
        let c = Calculator::default();
        let mut pods = old_pods(2);
        // A pod in its initialization period that is not ready.
        pods.push(pod("new", "100m", 10, false, 10));
        let m = metrics(&[("p0", 100), ("p1", 100), ("new", 500)]);
        // Ready pods: 100% vs 50% → ratio 2; the unready one counts as 0: 200/3 = 66% → ratio 1.32
        // → ceil(1.32 * 3) = 4 (its 500m is not believed).
        assert_eq!(c.resource_replicas(3, 50, "cpu", None, &pods, &m, now()).map(|r| r.0), Ok(4));
        let g = c.group_pods(&pods, &m, "cpu", now());
        assert_eq!(g.ready, 2);
        assert!(g.unready.contains("new"));
        // For memory the readiness rules do not apply.
        assert_eq!(c.group_pods(&pods, &m, "memory", now()).ready, 3);
    }

    #[test]
    fn readiness_windows() {
        let c = Calculator::default();
        let window_m = |n: &str| metrics(&[(n, 100)]);
        // Ready 10 s ago within init period, metric window 30 s: not a full window since ready → unready.
        let p = pod("a", "100m", 20, true, 10);
        assert!(c.group_pods(&[p], &window_m("a"), "cpu", now()).unready.contains("a"));
        // Ready 40 s ago: a full window sampled → ready.
        let p = pod("a", "100m", 60, true, 40);
        assert_eq!(c.group_pods(&[p], &window_m("a"), "cpu", now()).ready, 1);
        // After the init period, unready and never ready (transition within 30 s of start) → unready.
        let p = pod("a", "100m", 600, false, 590);
        assert!(c.group_pods(&[p], &window_m("a"), "cpu", now()).unready.contains("a"));
        // After the init period, became unready long after start → its metric counts.
        let p = pod("a", "100m", 600, false, 100);
        assert_eq!(c.group_pods(&[p], &window_m("a"), "cpu", now()).ready, 1);
        // No start time → unready.
        let mut p = pod("a", "100m", 600, true, 500);
        if let Some(s) = p.status.as_mut() {
            s.start_time = None;
        }
        assert!(c.group_pods(&[p], &window_m("a"), "cpu", now()).unready.contains("a"));
    }

    #[test]
    fn pending_failed_and_deleting_pods() {
        let c = Calculator::default();
        let mut pending = pod("pending", "100m", 10, false, 10);
        let mut failed = pod("failed", "100m", 10, false, 10);
        let mut deleting = pod("deleting", "100m", 3600, true, 3000);
        if let Some(s) = pending.status.as_mut() {
            s.phase = Some("Pending".into());
        }
        if let Some(s) = failed.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let g = c.group_pods(&[pending, failed, deleting], &PodMetricsInfo::new(), "cpu", now());
        assert!(g.unready.contains("pending"));
        assert!(g.ignored.contains("failed") && g.ignored.contains("deleting"));
    }

    #[test]
    fn errors() {
        let c = Calculator::default();
        assert!(c.resource_replicas(1, 50, "cpu", None, &[], &PodMetricsInfo::new(), now()).is_err());
        let pods = old_pods(1);
        let e = c.resource_replicas(1, 50, "cpu", None, &pods, &PodMetricsInfo::new(), now());
        assert_eq!(e, Err("did not receive metrics for targeted pods (pods might be unready)".into()));
        let no_request: Pod =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}))
                .unwrap_or_default();
        let e = pod_requests(&[no_request], None, "cpu");
        assert_eq!(e, Err("missing request for cpu in container c of Pod x".into()));
    }

    #[test]
    fn average_value_target() {
        let c = Calculator::default();
        let pods = old_pods(2);
        // 300m average vs 100m target → ratio 3 → 6.
        let m = metrics(&[("p0", 300), ("p1", 300)]);
        assert_eq!(c.plain_replicas(2, 100, "cpu", &pods, &m, now()), Ok((6, 300)));
        // A missing pod on scale-down counts as exactly the target: (20 + 100)/2 = 60 → ratio 0.6 → 2
        // would be ceil(1.2) = 2 → same size.
        let m = metrics(&[("p0", 20)]);
        assert_eq!(c.plain_replicas(2, 100, "cpu", &pods, &m, now()).map(|r| r.0), Ok(2));
    }

    #[test]
    fn container_requests_and_sidecars() -> Result<(), serde_json::Error> {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {
                "initContainers": [
                    {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                    {"name": "init"}
                ],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "0.2"}}}
                ]
            }
        }))?;
        assert_eq!(pod_requests(std::slice::from_ref(&p), None, "cpu").map(|r| r.get("x").copied()), Ok(Some(350)));
        assert_eq!(pod_requests(&[p], Some("b"), "cpu").map(|r| r.get("x").copied()), Ok(Some(200)));
        Ok(())
    }
}
