//! Where resource usage comes from: the [`MetricsSource`] trait (pod metrics as the
//! `metrics.k8s.io/v1beta1` PodMetrics API serves them), its implementation over that API
//! ([`ApiMetrics`], what `run` uses), a test implementation reading the simulated kubelet's
//! usage annotations straight from the pods ([`AnnotationMetrics`]), and the per-pod sums
//! upstream's REST metrics client derives from them (milli-units, per pod or per container).

use crate::Error;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The simulated kubelet's annotation: CPU usage of EACH container of the pod (a quantity, `250m`).
pub const CPU_USAGE_ANNOTATION: &str = "sim.rkube.io/cpu-usage";
/// The simulated kubelet's annotation: memory usage of EACH container of the pod (`64Mi`).
pub const MEMORY_USAGE_ANNOTATION: &str = "sim.rkube.io/memory-usage";

/// One container's usage: resource name → quantity string (`cpu: 250m`, `memory: 64Mi`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    pub usage: BTreeMap<String, String>,
}

/// One pod's metrics sample, as `metrics.k8s.io/v1beta1` PodMetrics.
#[derive(Clone, Debug, PartialEq)]
pub struct PodMetrics {
    pub name: String,
    pub namespace: String,
    /// When the sample was taken (end of the window).
    pub timestamp: Timestamp,
    /// Over how long the usage was averaged.
    pub window: Duration,
    pub containers: Vec<ContainerUsage>,
}

/// A source of pod resource metrics.
#[async_trait::async_trait]
pub trait MetricsSource: Send + Sync {
    /// Metrics of the pods in `namespace` matching `selector` (a label selector query string).
    async fn pod_metrics(&self, namespace: &str, selector: &str) -> Result<Vec<PodMetrics>, Error>;
}

/// Reads `/apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods?labelSelector=...`.
#[derive(Clone)]
pub struct ApiMetrics {
    client: Client,
}

impl ApiMetrics {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[derive(Deserialize)]
struct RawList {
    #[serde(default)]
    items: Vec<RawPodMetrics>,
}

#[derive(Deserialize)]
struct RawPodMetrics {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    containers: Vec<RawContainer>,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize)]
struct RawContainer {
    #[serde(default)]
    name: String,
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

/// Parses a PodMetricsList JSON document.
pub fn parse_pod_metrics_list(body: &[u8]) -> Result<Vec<PodMetrics>, Error> {
    let list: RawList =
        serde_json::from_slice(body).map_err(|e| Error::Metrics(format!("decoding PodMetricsList: {e}")))?;
    Ok(list
        .items
        .into_iter()
        .map(|m| PodMetrics {
            name: m.metadata.name,
            namespace: m.metadata.namespace,
            timestamp: m.timestamp.as_deref().and_then(|t| t.parse().ok()).unwrap_or_else(Timestamp::now),
            window: m.window.as_deref().and_then(parse_go_duration).unwrap_or(Duration::ZERO),
            containers: m.containers.into_iter().map(|c| ContainerUsage { name: c.name, usage: c.usage }).collect(),
        })
        .collect())
}

/// Parses a Go duration as metav1.Duration prints it (`30s`, `1m0s`, `15.032s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[async_trait::async_trait]
impl MetricsSource for ApiMetrics {
    async fn pod_metrics(&self, namespace: &str, selector: &str) -> Result<Vec<PodMetrics>, Error> {
        let mut path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods");
        if !selector.is_empty() {
            path.push_str("?labelSelector=");
            path.push_str(&encode_query(selector));
        }
        let req = http_get(&path)?;
        let body = self.client.request_text(req).await.map_err(|e| Error::Metrics(e.to_string()))?;
        parse_pod_metrics_list(body.as_bytes())
    }
}

fn http_get(path: &str) -> Result<http::Request<Vec<u8>>, Error> {
    http::Request::get(path).body(Vec::new()).map_err(|e| Error::Metrics(e.to_string()))
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Test source: computes metrics from the pods themselves, as the simulated kubelet reports them.
/// Only Running pods have metrics (like metrics-server); each container's usage is the pod's
/// `sim.rkube.io/cpu-usage` / `sim.rkube.io/memory-usage` annotation (absent: zero), as the
/// apiserver's `metrics.k8s.io` computes it (which also requires the pod to be bound to a node;
/// this source does not, so tests need no scheduler).
#[derive(Clone)]
pub struct AnnotationMetrics {
    client: Client,
    /// The window reported with each sample.
    pub window: Duration,
}

impl AnnotationMetrics {
    pub fn new(client: Client) -> Self {
        Self { client, window: Duration::ZERO }
    }

    /// A sample window other than zero.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
}

/// The metrics the simulated kubelet would report for a pod (None: not running).
pub fn pod_metrics_from_annotations(pod: &Pod, now: Timestamp, window: Duration) -> Option<PodMetrics> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Running") {
        return None;
    }
    let ann = pod.annotations();
    let mut usage = BTreeMap::new();
    for (resource, key) in [("cpu", CPU_USAGE_ANNOTATION), ("memory", MEMORY_USAGE_ANNOTATION)] {
        usage.insert(resource.to_string(), ann.get(key).cloned().unwrap_or_else(|| "0".to_string()));
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| ContainerUsage { name: c.name.clone(), usage: usage.clone() }).collect())
        .unwrap_or_default();
    Some(PodMetrics {
        name: pod.name_any(),
        namespace: pod.namespace().unwrap_or_default(),
        timestamp: now,
        window,
        containers,
    })
}

#[async_trait::async_trait]
impl MetricsSource for AnnotationMetrics {
    async fn pod_metrics(&self, namespace: &str, selector: &str) -> Result<Vec<PodMetrics>, Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        let now = Timestamp::now();
        Ok(list.items.iter().filter_map(|p| pod_metrics_from_annotations(p, now, self.window)).collect())
    }
}

/// A pod's usage of one resource, in milli-units, with its sample time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodMetric {
    pub value: i64,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// Pod name → metric.
pub type PodMetricsInfo = BTreeMap<String, PodMetric>;

/// Parses a quantity string into milli-units (upstream's `MilliValue`).
pub fn milli_value(q: &str) -> Option<i64> {
    rkube_registry::quantity::parse_quantity(q)
        .map(|q| q.milli_value().clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// Per-pod usage of `resource` (upstream's REST metrics client): the sum over the pod's
/// containers, or only `container` when set. A pod with no containers, or a container without
/// that resource, has no metric; a pod lacking the named container is an error. Also returns the
/// first sample's timestamp.
pub fn resource_metric(
    samples: &[PodMetrics],
    resource: &str,
    container: Option<&str>,
) -> Result<(PodMetricsInfo, Timestamp), String> {
    let Some(first) = samples.first() else {
        return Err("no metrics returned from resource metrics API".into());
    };
    let mut out = PodMetricsInfo::new();
    for m in samples {
        let value = match container {
            Some(name) => {
                let Some(c) = m.containers.iter().find(|c| c.name == name) else {
                    return Err(format!(
                        "failed to get container metrics: container {name} not present in metrics for pod {}/{}",
                        m.namespace, m.name
                    ));
                };
                c.usage.get(resource).and_then(|q| milli_value(q))
            }
            None => {
                if m.containers.is_empty() {
                    None
                } else {
                    m.containers.iter().try_fold(0i64, |acc, c| {
                        c.usage.get(resource).and_then(|q| milli_value(q)).map(|v| acc.saturating_add(v))
                    })
                }
            }
        };
        if let Some(value) = value {
            out.insert(m.name.clone(), PodMetric { value, timestamp: m.timestamp, window: m.window });
        }
    }
    Ok((out, first.timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, containers: &[(&str, &[(&str, &str)])]) -> PodMetrics {
        PodMetrics {
            name: name.into(),
            namespace: "ns".into(),
            timestamp: Timestamp::UNIX_EPOCH,
            window: Duration::from_secs(30),
            containers: containers
                .iter()
                .map(|(n, u)| ContainerUsage {
                    name: n.to_string(),
                    usage: u.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("15.5s"), Some(Duration::from_millis(15500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn parses_pod_metrics_list() -> Result<(), Error> {
        let body = br#"{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},
            "items":[{"metadata":{"name":"p1","namespace":"default"},"timestamp":"2024-01-01T00:00:10Z",
            "window":"30s","containers":[{"name":"c","usage":{"cpu":"250m","memory":"64Mi"}}]}]}"#;
        let list = parse_pod_metrics_list(body)?;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "p1");
        assert_eq!(list[0].window, Duration::from_secs(30));
        assert_eq!(list[0].timestamp.as_second(), 1_704_067_210);
        assert_eq!(list[0].containers[0].usage.get("cpu").map(String::as_str), Some("250m"));
        assert!(parse_pod_metrics_list(b"not json").is_err());
        Ok(())
    }

    #[test]
    fn sums_containers_and_skips_pods_missing_the_resource() -> Result<(), String> {
        let samples = vec![
            sample("a", &[("c1", &[("cpu", "100m")]), ("c2", &[("cpu", "0.2")])]),
            sample("b", &[("c1", &[("cpu", "100m")]), ("c2", &[("memory", "1Mi")])]),
            sample("c", &[]),
        ];
        let (m, _) = resource_metric(&samples, "cpu", None)?;
        assert_eq!(m.get("a").map(|m| m.value), Some(300));
        assert!(!m.contains_key("b"), "a container without cpu: no metric for the pod");
        assert!(!m.contains_key("c"));
        assert!(resource_metric(&samples, "memory", Some("c2")).is_err(), "pod c has no c2");
        let (m, _) = resource_metric(&samples[..2], "memory", Some("c2"))?;
        assert_eq!(m.get("b").map(|m| m.value), Some(1024 * 1024 * 1000));
        assert!(!m.contains_key("a"));
        assert!(resource_metric(&samples, "cpu", Some("nope")).is_err());
        assert!(resource_metric(&[], "cpu", None).is_err());
        Ok(())
    }

    #[test]
    fn annotation_metrics_only_for_running_pods() -> Result<(), serde_json::Error> {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "annotations": {CPU_USAGE_ANNOTATION: "250m"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending"}
        }))?;
        assert!(pod_metrics_from_annotations(&pod, Timestamp::UNIX_EPOCH, Duration::ZERO).is_none());
        if let Some(s) = pod.status.as_mut() {
            s.phase = Some("Running".into());
        }
        let m = pod_metrics_from_annotations(&pod, Timestamp::UNIX_EPOCH, Duration::ZERO);
        let m = m.map(|m| resource_metric(&[m], "cpu", None).map(|(i, _)| i.get("p").map(|x| x.value)));
        assert_eq!(m, Some(Ok(Some(500))), "the annotation is each container's usage");
        let m = pod_metrics_from_annotations(&pod, Timestamp::UNIX_EPOCH, Duration::ZERO);
        let m = m.map(|m| resource_metric(&[m], "memory", None).map(|(i, _)| i.get("p").map(|x| x.value)));
        assert_eq!(m, Some(Ok(Some(0))), "no annotation: zero usage");
        Ok(())
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query("app=web,tier in (a,b)"), "app%3Dweb%2Ctier%20in%20%28a%2Cb%29");
    }
}
