//! Pod predicates as upstream's podutil / controller utilities define them, and building a pod from
//! a controller's template (upstream's `GetPodFromTemplate`).

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// The longest DNS-1123 subdomain, hence the longest pod name.
const MAX_NAME_LEN: usize = 253;

/// The pod's `Ready` condition, if any.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// Upstream's `IsPodReady`: the `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became ready (the Ready condition's lastTransitionTime), if it is ready.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod).filter(|c| c.status == "True").and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0)
}

/// Upstream's `IsPodAvailable`: ready, and (with `min_ready_seconds > 0`) ready for strictly longer
/// than `min_ready_seconds` at `now`. A ready pod without a transition time is available only when
/// `min_ready_seconds` is 0.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match ready_since(pod) {
        Some(since) => since + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now,
        None => false,
    }
}

/// For a pod that is ready but not yet available: how long until it becomes available.
/// `None` for pods that are not ready, already available, or have no ready transition time.
pub fn available_in(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 || is_pod_available(pod, min_ready_seconds, now) {
        return None;
    }
    let since = ready_since(pod)?;
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds));
    let left = at.duration_since(now);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// The pod's phase (`""` when unset).
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Whether the pod is being deleted (`deletionTimestamp` set).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `IsPodActive` (the filter of `FilterActivePods`): not Succeeded, not Failed, and
/// not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !is_terminating(pod)
}

/// The highest restart count among the pod's containers (and restartable init containers).
pub fn max_container_restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else { return 0 };
    let regular = status.container_statuses.iter().flatten();
    let init = status.init_container_statuses.iter().flatten();
    regular.chain(init).map(|c| c.restart_count).max().unwrap_or(0)
}

/// Upstream's `getPodsPrefix`: `<name>-`, or `<name>` when the dash would make it too long.
pub fn generate_name_prefix(controller_name: &str) -> String {
    if controller_name.len() < MAX_NAME_LEN { format!("{controller_name}-") } else { controller_name.to_string() }
}

/// Upstream's `GetPodFromTemplate`: a pod with the template's labels, annotations, finalizers and
/// spec, `generateName` from the controller's name, in `namespace`, owned by `controller_ref`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    controller_name: &str,
    namespace: &str,
    controller_ref: Option<OwnerReference>,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name_prefix(controller_name)),
            namespace: Some(namespace.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: controller_ref.map(|r| vec![r]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    fn pod_ready_at(status: &str, at: Option<Timestamp>, phase: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_transition_time: at.map(Time),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn readiness_follows_the_ready_condition() {
        let now = Timestamp::now();
        assert!(is_pod_ready(&pod_ready_at("True", Some(now), "Running")));
        assert!(!is_pod_ready(&pod_ready_at("False", Some(now), "Running")));
        assert!(!is_pod_ready(&Pod::default()));
        assert_eq!(ready_since(&pod_ready_at("True", Some(now), "Running")), Some(now));
        assert_eq!(ready_since(&pod_ready_at("False", Some(now), "Running")), None);
    }

    #[test]
    fn availability_needs_min_ready_seconds_strictly_elapsed() {
        let now = Timestamp::now();
        let ten_ago = now - SignedDuration::from_secs(10);
        let p = pod_ready_at("True", Some(ten_ago), "Running");
        assert!(is_pod_available(&p, 0, now));
        assert!(is_pod_available(&p, 9, now));
        // Exactly minReadySeconds ago is not yet available (upstream uses Before, strict).
        assert!(!is_pod_available(&p, 10, now));
        assert!(!is_pod_available(&p, 30, now));
        assert!(!is_pod_available(&pod_ready_at("False", Some(ten_ago), "Running"), 0, now));
        // No transition time: available only without minReadySeconds.
        let no_time = pod_ready_at("True", None, "Running");
        assert!(is_pod_available(&no_time, 0, now));
        assert!(!is_pod_available(&no_time, 1, now));
    }

    #[test]
    fn available_in_reports_the_remaining_time() {
        let now = Timestamp::now();
        let p = pod_ready_at("True", Some(now - SignedDuration::from_secs(10)), "Running");
        assert_eq!(available_in(&p, 30, now), Some(Duration::from_secs(20)));
        assert_eq!(available_in(&p, 5, now), None);
        assert_eq!(available_in(&p, 0, now), None);
        assert_eq!(available_in(&pod_ready_at("False", Some(now), "Running"), 30, now), None);
    }

    #[test]
    fn active_excludes_terminal_and_terminating_pods() {
        let now = Timestamp::now();
        assert!(is_pod_active(&pod_ready_at("True", Some(now), "Running")));
        assert!(is_pod_active(&pod_ready_at("False", None, "Pending")));
        assert!(is_pod_active(&Pod::default()));
        assert!(!is_pod_active(&pod_ready_at("False", None, "Succeeded")));
        assert!(!is_pod_active(&pod_ready_at("False", None, "Failed")));
        let mut deleting = pod_ready_at("True", Some(now), "Running");
        deleting.metadata.deletion_timestamp = Some(Time(now));
        assert!(!is_pod_active(&deleting));
    }

    #[test]
    fn restarts_take_the_maximum() {
        let mut p = Pod::default();
        assert_eq!(max_container_restarts(&p), 0);
        p.status = Some(PodStatus {
            container_statuses: Some(vec![
                ContainerStatus { name: "a".into(), restart_count: 2, ..Default::default() },
                ContainerStatus { name: "b".into(), restart_count: 7, ..Default::default() },
            ]),
            ..Default::default()
        });
        assert_eq!(max_container_restarts(&p), 7);
    }

    #[test]
    fn pods_from_templates_copy_metadata_and_spec() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                name: Some("ignored".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
                finalizers: Some(vec!["example.com/f".into()]),
                ..Default::default()
            }),
            spec: Some(PodSpec { hostname: Some("h".into()), ..Default::default() }),
        };
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let pod = pod_from_template(&template, "web", "ns1", Some(owner.clone()));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns1"));
        assert_eq!(pod.metadata.labels, template.metadata.as_ref().and_then(|m| m.labels.clone()));
        assert_eq!(pod.metadata.annotations, template.metadata.as_ref().and_then(|m| m.annotations.clone()));
        assert_eq!(pod.metadata.finalizers, Some(vec!["example.com/f".to_string()]));
        assert_eq!(pod.metadata.owner_references, Some(vec![owner]));
        assert_eq!(pod.spec, template.spec);
    }

    #[test]
    fn long_names_drop_the_dash() {
        assert_eq!(generate_name_prefix("web"), "web-");
        let long = "a".repeat(253);
        assert_eq!(generate_name_prefix(&long), long);
        let fits = "a".repeat(252);
        assert_eq!(generate_name_prefix(&fits), format!("{fits}-"));
    }
}
