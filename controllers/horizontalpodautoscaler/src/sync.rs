//! One reconcile of one HPA (upstream's reconcileAutoscaler): scale target through discovery and
//! `/scale`, metrics → proposal, normalization, rescale, status and events.

use crate::behavior::{self, History, Normalized};
use crate::metrics::{self, MetricsSource};
use crate::replicas::Calculator;
use crate::{Config, Error, Histories};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rkube_controller_common::events::EventPublisher;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

pub const ABLE_TO_SCALE: &str = "AbleToScale";
pub const SCALING_ACTIVE: &str = "ScalingActive";
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// The HPA controller's state: clients, settings and per-HPA history.
pub struct Controller {
    client: Client,
    config: Config,
    calculator: Calculator,
    metrics: Arc<dyn MetricsSource>,
    events: EventPublisher,
    histories: Histories,
}

/// A metric's proposal.
struct Proposal {
    replicas: i32,
    name: String,
    status: MetricStatus,
}

/// A metric that could not be evaluated: ScalingActive=False with `reason`.
struct MetricFailure {
    reason: &'static str,
    /// The inner error (event note, condition message).
    detail: String,
    /// The error as computeReplicasForMetric wraps it.
    wrapped: String,
}

impl Controller {
    pub fn new(client: Client, config: Config, metrics: Arc<dyn MetricsSource>) -> Self {
        let calculator = Calculator {
            tolerance: config.tolerance,
            cpu_initialization_period: config.cpu_initialization_period,
            delay_of_initial_readiness_status: config.initial_readiness_delay,
        };
        let events = EventPublisher::new(client.clone(), crate::COMPONENT);
        Self { client, config, calculator, metrics, events, histories: Default::default() }
    }

    /// Drops the history of HPAs that no longer exist.
    pub fn forget_except(&self, keys: &HashSet<String>) {
        self.histories.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| keys.contains(k));
    }

    fn with_history<T>(&self, key: &str, f: impl FnOnce(&mut History) -> T) -> T {
        let mut all = self.histories.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(key.to_string()).or_default())
    }

    async fn warn(&self, hpa: &HorizontalPodAutoscaler, reason: &str, note: String) {
        self.events.warning(hpa, reason, reason, note).await;
    }

    /// Reconciles one HPA.
    pub async fn reconcile(&self, hpa: &HorizontalPodAutoscaler) -> Result<(), Error> {
        let Some(spec) = hpa.spec.clone() else { return Ok(()) };
        let ns = hpa.namespace().unwrap_or_default();
        let key = rkube_controller_common::key_of(Some(&ns), &hpa.name_any());
        let original = hpa.status.clone();
        let mut status = original.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        let reference = format!("{}/{}/{}", target.kind, ns, target.name);

        // The target's scale.
        let (scale_api, mut scale) = match self.get_scale(&ns, target).await {
            Ok(v) => v,
            Err(e) => {
                self.warn(hpa, "FailedGetScale", e.clone()).await;
                set_condition(
                    &mut status,
                    ABLE_TO_SCALE,
                    false,
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                );
                self.update_status(hpa, &original, status).await?;
                return Err(Error::Sync(format!("failed to query scale subresource for {reference}: {e}")));
            }
        };
        set_condition(
            &mut status,
            ABLE_TO_SCALE,
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let now = Instant::now();
        self.with_history(&key, |h| {
            if h.recommendations.is_empty() {
                h.recommendations.push(behavior::Recommendation { replicas: current, at: now });
            }
        });

        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let mut metric_statuses: Option<Vec<MetricStatus>> = None;
        let mut ret: Result<(), Error> = Ok(());
        let mut rescale_reason = String::new();
        let desired;
        let mut rescale = true;
        if current == 0 && min != 0 {
            desired = 0;
            rescale = false;
            set_condition(
                &mut status,
                SCALING_ACTIVE,
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
        } else if current > max {
            rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            let specs = metric_specs(&spec.metrics);
            let (proposal, statuses, err) = self.compute_for_metrics(hpa, &ns, &scale, &specs, &mut status).await;
            metric_statuses = Some(statuses);
            let (proposed, metric_name) = match proposal {
                Some(p) => p,
                None => {
                    let msg = err.unwrap_or_default();
                    status.current_replicas = Some(current);
                    status.current_metrics = metric_statuses.filter(|m| !m.is_empty());
                    self.update_status(hpa, &original, status).await?;
                    self.warn(hpa, "FailedComputeMetricsReplicas", msg.clone()).await;
                    return Err(Error::Sync(format!(
                        "failed to compute desired number of replicas based on listed metrics for {reference}: {msg}"
                    )));
                }
            };
            if let Some(e) = err {
                ret = Err(Error::Sync(e));
            }
            let mut want = 0;
            let mut rescale_metric = String::new();
            if proposed > want {
                want = proposed;
                rescale_metric = metric_name;
            }
            if want > current {
                rescale_reason = format!("{rescale_metric} above target");
            }
            if want < current {
                rescale_reason = "All metrics below target".into();
            }
            let n = self.normalize(hpa, &key, current, want, min, max, now);
            set_condition(&mut status, ABLE_TO_SCALE, true, n.able_to_scale.0, n.able_to_scale.1.into());
            set_condition(&mut status, SCALING_LIMITED, n.limited, n.limited_reason.0, n.limited_reason.1.into());
            desired = n.replicas;
            rescale = desired != current;
        }

        let mut final_desired = desired;
        if rescale {
            if let Some(s) = scale.spec.as_mut() {
                s.replicas = Some(desired);
            } else {
                scale.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(desired) });
            }
            if let Err(e) = scale_api.replace_scale(&target.name, &PostParams::default(), &scale).await {
                self.warn(hpa, "FailedRescale", format!("New size: {desired}; reason: {rescale_reason}; error: {e}"))
                    .await;
                set_condition(
                    &mut status,
                    ABLE_TO_SCALE,
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
                status.current_replicas = Some(current);
                status.current_metrics = metric_statuses.filter(|m| !m.is_empty());
                self.update_status(hpa, &original, status).await?;
                return Err(Error::Sync(format!("failed to rescale {reference}: {e}")));
            }
            set_condition(
                &mut status,
                ABLE_TO_SCALE,
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            self.events
                .normal(
                    hpa,
                    "SuccessfulRescale",
                    "SuccessfulRescale",
                    format!("New size: {desired}; reason: {rescale_reason}"),
                )
                .await;
            if let Some(b) = spec.behavior.as_ref() {
                let up = behavior::scale_up_rules(b);
                let down = behavior::scale_down_rules(b, self.config.downscale_stabilization);
                self.with_history(&key, |h| behavior::record_scale_event(h, &up, &down, current, desired, now));
            }
            tracing::info!(hpa = %key, old = current, new = desired, reason = %rescale_reason, "successful rescale");
        } else {
            final_desired = current;
        }

        status.current_replicas = Some(current);
        status.desired_replicas = final_desired;
        status.current_metrics = metric_statuses.filter(|m| !m.is_empty());
        status.observed_generation = hpa.metadata.generation;
        if rescale {
            status.last_scale_time = Some(rkube_controller_common::conditions::now());
        }
        self.update_status(hpa, &original, status).await?;
        ret
    }

    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &self,
        hpa: &HorizontalPodAutoscaler,
        key: &str,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
        now: Instant,
    ) -> Normalized {
        let b = hpa.spec.as_ref().and_then(|s| s.behavior.as_ref());
        let window = self.config.downscale_stabilization;
        self.with_history(key, |h| match b {
            None => behavior::normalize(h, now, current, desired, min, max, window),
            Some(b) => {
                let up = behavior::scale_up_rules(b);
                let down = behavior::scale_down_rules(b, window);
                behavior::normalize_with_behavior(h, now, current, desired, min, max, &up, &down)
            }
        })
    }

    /// Resolves the target through discovery and reads its scale.
    async fn get_scale(
        &self,
        ns: &str,
        target: &k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference,
    ) -> Result<(Api<DynamicObject>, Scale), String> {
        let api_version = target.api_version.clone().unwrap_or_default();
        let (group, version) = parse_group_version(&api_version)?;
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let (ar, _caps): (ApiResource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| format!("unable to determine resource for scale target reference: {e}"))?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let scale = api.get_scale(&target.name).await.map_err(|e| e.to_string())?;
        Ok((api, scale))
    }

    /// Upstream's computeReplicasForMetrics: the highest proposal among valid metrics. Returns
    /// (Some((replicas, metric name)) unless the metrics do not allow scaling, statuses, error).
    async fn compute_for_metrics(
        &self,
        hpa: &HorizontalPodAutoscaler,
        ns: &str,
        scale: &Scale,
        specs: &[MetricSpec],
        status: &mut HorizontalPodAutoscalerStatus,
    ) -> (Option<(i32, String)>, Vec<MetricStatus>, Option<String>) {
        let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        if selector.is_empty() {
            let e = "selector is required".to_string();
            self.warn(hpa, "SelectorRequired", e.clone()).await;
            set_condition(
                status,
                SCALING_ACTIVE,
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
            );
            return (None, Vec::new(), Some(e));
        }
        let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod_list = pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items);
        let mut statuses = vec![MetricStatus::default(); specs.len()];
        let mut best: Option<(i32, String)> = None;
        let mut first_failure: Option<MetricFailure> = None;
        let mut invalid = 0usize;
        for (i, spec) in specs.iter().enumerate() {
            match self.compute_for_metric(ns, &selector, spec_replicas, spec, &pod_list).await {
                Ok(p) => {
                    statuses[i] = p.status;
                    if best.as_ref().is_none_or(|(r, _)| *r == 0 || p.replicas > *r) {
                        best = Some((p.replicas, p.name));
                    }
                }
                Err(f) => {
                    self.warn(hpa, f.reason, f.detail.clone()).await;
                    invalid += 1;
                    if first_failure.is_none() {
                        first_failure = Some(f);
                    }
                }
            }
        }
        let err = first_failure.as_ref().map(|f| {
            format!("invalid metrics ({invalid} invalid out of {}), first error is: {}", specs.len(), f.wrapped)
        });
        let replicas = best.as_ref().map(|b| b.0).unwrap_or(0);
        if invalid >= specs.len() || (invalid > 0 && replicas < spec_replicas) {
            if let Some(f) = first_failure {
                set_condition(
                    status,
                    SCALING_ACTIVE,
                    false,
                    f.reason,
                    format!("the HPA was unable to compute the replica count: {}", f.detail),
                );
            }
            return (None, statuses, err);
        }
        let name = best.as_ref().map(|b| b.1.clone()).unwrap_or_default();
        set_condition(
            status,
            SCALING_ACTIVE,
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {name}"),
        );
        (best, statuses, err)
    }

    async fn compute_for_metric(
        &self,
        ns: &str,
        selector: &str,
        current: i32,
        spec: &MetricSpec,
        pods: &Result<Vec<Pod>, kube::Error>,
    ) -> Result<Proposal, MetricFailure> {
        let (resource, container, target, reason, type_) = match spec.type_.as_str() {
            "Resource" => match spec.resource.as_ref() {
                Some(r) => (r.name.clone(), None, r.target.clone(), "FailedGetResourceMetric", "Resource"),
                None => return Err(invalid_source("Resource")),
            },
            "ContainerResource" => match spec.container_resource.as_ref() {
                Some(r) => (
                    r.name.clone(),
                    Some(r.container.clone()),
                    r.target.clone(),
                    "FailedGetContainerResourceMetric",
                    "ContainerResource",
                ),
                None => return Err(invalid_source("ContainerResource")),
            },
            other => return Err(unsupported(other)),
        };
        match self.resource_proposal(ns, selector, current, &resource, container.as_deref(), &target, pods).await {
            Ok((replicas, name, value)) => {
                let status = match container {
                    None => MetricStatus {
                        type_: type_.into(),
                        resource: Some(ResourceMetricStatus { name: resource, current: value }),
                        ..Default::default()
                    },
                    Some(container) => MetricStatus {
                        type_: type_.into(),
                        container_resource: Some(ContainerResourceMetricStatus {
                            name: resource,
                            container,
                            current: value,
                        }),
                        ..Default::default()
                    },
                };
                Ok(Proposal { replicas, name, status })
            }
            Err(detail) => {
                let what = if type_ == "Resource" { "resource" } else { "container resource" };
                let wrapped = format!("failed to get {resource} {what} metric value: {detail}");
                Err(MetricFailure { reason, detail, wrapped })
            }
        }
    }

    /// Upstream's computeStatusForResourceMetricGeneric.
    #[allow(clippy::too_many_arguments)]
    async fn resource_proposal(
        &self,
        ns: &str,
        selector: &str,
        current: i32,
        resource: &str,
        container: Option<&str>,
        target: &MetricTarget,
        pods: &Result<Vec<Pod>, kube::Error>,
    ) -> Result<(i32, String, MetricValueStatus), String> {
        let average_value = target.average_value.as_ref().map(|q| metrics::milli_value(&q.0));
        if average_value.is_none() && target.average_utilization.is_none() {
            return Err("invalid resource metric source: neither an average utilization target nor an average value \
                 (usage) target was set"
                .into());
        }
        let kind = if average_value.is_some() { "usage" } else { "utilization" };
        let fail = |e: String| format!("failed to get {resource} {kind}: {e}");
        let samples = self
            .metrics
            .pod_metrics(ns, selector)
            .await
            .map_err(|e| fail(format!("unable to get metrics for resource {resource}: {e}")))?;
        let (metric_info, _ts) = metrics::resource_metric(&samples, resource, container)
            .map_err(|e| fail(format!("unable to get metrics for resource {resource}: {e}")))?;
        let pods = match pods {
            Ok(p) => p,
            Err(e) => return Err(fail(format!("unable to get pods while calculating replica count: {e}"))),
        };
        let now = Timestamp::now();
        match average_value {
            Some(target_usage) => {
                let Some(target_usage) = target_usage else {
                    return Err(fail("invalid average value target".into()));
                };
                let (replicas, usage) = self
                    .calculator
                    .plain_replicas(current, target_usage, resource, pods, &metric_info, now)
                    .map_err(fail)?;
                let value = MetricValueStatus { average_value: Some(milli_quantity(usage)), ..Default::default() };
                Ok((replicas, format!("{resource} resource"), value))
            }
            None => {
                let target_utilization = target.average_utilization.unwrap_or(0);
                let (replicas, utilization, raw) = self
                    .calculator
                    .resource_replicas(current, target_utilization, resource, container, pods, &metric_info, now)
                    .map_err(fail)?;
                let name = match container {
                    None => format!("{resource} resource utilization (percentage of request)"),
                    Some(_) => format!("{resource} container resource utilization (percentage of request)"),
                };
                let value = MetricValueStatus {
                    average_utilization: Some(utilization),
                    average_value: Some(milli_quantity(raw)),
                    value: None,
                };
                Ok((replicas, name, value))
            }
        }
    }

    /// Upstream's updateStatusIfNeeded: writes status only when it changed.
    async fn update_status(
        &self,
        hpa: &HorizontalPodAutoscaler,
        original: &Option<HorizontalPodAutoscalerStatus>,
        status: HorizontalPodAutoscalerStatus,
    ) -> Result<(), Error> {
        if original.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut copy = hpa.clone();
        copy.status = Some(status);
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &hpa.namespace().unwrap_or_default());
        api.replace_status(&hpa.name_any(), &PostParams::default(), &copy).await?;
        Ok(())
    }
}

fn invalid_source(type_: &str) -> MetricFailure {
    let detail = format!("invalid metric source: {type_} metric source is missing its {type_} field");
    MetricFailure { reason: "InvalidMetricSourceType", wrapped: detail.clone(), detail }
}

/// Pods, Object and External metrics need the custom / external metrics APIs, which rkube does
/// not serve; unknown types are invalid.
fn unsupported(type_: &str) -> MetricFailure {
    let (reason, detail) = match type_ {
        "Pods" => ("FailedGetPodsMetric", "unable to get pods metric: the custom metrics API is not available"),
        "Object" => ("FailedGetObjectMetric", "unable to get object metric: the custom metrics API is not available"),
        "External" => {
            ("FailedGetExternalMetric", "unable to get external metric: the external metrics API is not available")
        }
        other => {
            let detail = format!("unknown metric source type \"{other}\"");
            return MetricFailure { reason: "InvalidMetricSourceType", wrapped: detail.clone(), detail };
        }
    };
    MetricFailure { reason, detail: detail.into(), wrapped: detail.into() }
}

/// `spec.metrics`, or upstream's default (CPU at 80% utilization) when empty.
fn metric_specs(metrics: &Option<Vec<MetricSpec>>) -> Vec<MetricSpec> {
    match metrics {
        Some(m) if !m.is_empty() => m.clone(),
        _ => vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }],
    }
}

/// `group/version` or `version` (core).
fn parse_group_version(s: &str) -> Result<(&str, &str), String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [v] if !v.is_empty() => Ok(("", v)),
        [g, v] if !g.is_empty() && !v.is_empty() => Ok((g, v)),
        _ => Err(format!("unexpected GroupVersion string: {s}")),
    }
}

fn milli_quantity(milli: i64) -> Quantity {
    let q = rkube_registry::quantity::Quantity::from_milli(milli, rkube_registry::quantity::Format::DecimalSI);
    Quantity(q.to_string())
}

/// Upstream's setCondition: replaces the condition of that type; the transition time moves only
/// when the status flips.
pub fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: String,
) {
    let value = if value { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Some(rkube_controller_common::conditions::now());
            }
            c.status = value.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
        }
        None => conditions.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(rkube_controller_common::conditions::now()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_versions() {
        assert_eq!(parse_group_version("apps/v1"), Ok(("apps", "v1")));
        assert_eq!(parse_group_version("v1"), Ok(("", "v1")));
        assert!(parse_group_version("").is_err());
        assert!(parse_group_version("a/b/c").is_err());
    }

    #[test]
    fn conditions_move_transition_time_only_on_flip() {
        let mut s = HorizontalPodAutoscalerStatus::default();
        set_condition(&mut s, ABLE_TO_SCALE, true, "SucceededGetScale", "m".into());
        let old = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH));
        if let Some(c) = s.conditions.as_mut().and_then(|c| c.first_mut()) {
            c.last_transition_time = old.clone();
        }
        set_condition(&mut s, ABLE_TO_SCALE, true, "SucceededRescale", "m2".into());
        let c = s.conditions.clone().unwrap_or_default();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].reason.as_deref(), c[0].last_transition_time.clone()),
            (Some("SucceededRescale"), old.clone())
        );
        set_condition(&mut s, ABLE_TO_SCALE, false, "FailedGetScale", "m3".into());
        let c = s.conditions.clone().unwrap_or_default();
        assert_ne!(c[0].last_transition_time, old);
        assert_eq!(c[0].status, "False");
    }

    #[test]
    fn default_metric_is_cpu_80() {
        let m = metric_specs(&None);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].resource.as_ref().map(|r| (r.name.as_str(), r.target.average_utilization)),
            Some(("cpu", Some(80)))
        );
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(milli_quantity(250).0, "250m");
        assert_eq!(milli_quantity(2000).0, "2");
    }
}
