//! `spec.podFailurePolicy` matching (upstream's `matchPodFailurePolicy`): the first rule whose
//! `onExitCodes` or `onPodConditions` requirement a Failed pod meets decides what its failure means.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// What a failed pod's failure means for the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `FailJob`: the whole Job fails, with this condition message.
    FailJob(String),
    /// `FailIndex`: the pod's index fails at once (backoffLimitPerIndex).
    FailIndex,
    /// `Ignore`: the failure is not counted against any limit.
    Ignore,
    /// `Count`, or no rule matched: counted as usual.
    Count,
}

/// Matches a pod against the policy. Only pods in phase Failed are matched; others count.
pub fn match_pod(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Outcome {
    let Some(policy) = policy else { return Outcome::Count };
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) != Some("Failed") {
        return Outcome::Count;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut message = None;
        if let Some(req) = &rule.on_exit_codes {
            let init = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or(&[]);
            let regular = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or(&[]);
            if let Some((container, code)) = matching_container(req, regular).or_else(|| matching_container(req, init))
            {
                message = Some(format!(
                    "Container {container} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                    rule.action
                ));
            }
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
            for p in patterns {
                let want = if p.status.is_empty() { "True" } else { p.status.as_str() };
                if conditions.iter().any(|c| c.type_ == p.type_ && c.status == want) {
                    message = Some(format!(
                        "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                        p.type_, rule.action
                    ));
                    break;
                }
            }
        }
        if let Some(message) = message {
            return match rule.action.as_str() {
                "FailJob" => Outcome::FailJob(message),
                "FailIndex" => Outcome::FailIndex,
                "Ignore" => Outcome::Ignore,
                _ => Outcome::Count,
            };
        }
    }
    Outcome::Count
}

/// The first terminated container (with a non-zero exit code) the requirement matches.
fn matching_container(
    req: &PodFailurePolicyOnExitCodesRequirement,
    statuses: &[ContainerStatus],
) -> Option<(String, i32)> {
    for cs in statuses {
        if req.container_name.as_deref().is_some_and(|n| n != cs.name) {
            continue;
        }
        let Some(code) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code) else { continue };
        if code == 0 {
            continue;
        }
        let listed = req.values.contains(&code);
        let hit = match req.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        if hit {
            return Some((cs.name.clone(), code));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn failed_pod(exit_codes: &[(&str, i32)], conditions: serde_json::Value) -> Pod {
        let statuses: Vec<_> = exit_codes
            .iter()
            .map(|(n, c)| {
                json!({"name": n, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": c}}})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "containerStatuses": statuses, "conditions": conditions}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn exit_code_rules_match_in_order() {
        let p = policy(json!({"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        ]}));
        assert_eq!(match_pod(Some(&p), &failed_pod(&[("main", 3)], json!([]))), Outcome::Ignore);
        assert_eq!(
            match_pod(Some(&p), &failed_pod(&[("main", 42)], json!([]))),
            Outcome::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into()
            )
        );
        // Container name filter.
        assert_eq!(match_pod(Some(&p), &failed_pod(&[("side", 42)], json!([]))), Outcome::Count);
        assert_eq!(match_pod(None, &failed_pod(&[("main", 42)], json!([]))), Outcome::Count);
    }

    #[test]
    fn not_in_skips_zero_exit_codes() {
        let p =
            policy(json!({"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "NotIn", "values": [1]}}]}));
        assert_eq!(match_pod(Some(&p), &failed_pod(&[("a", 0)], json!([]))), Outcome::Count);
        assert_eq!(match_pod(Some(&p), &failed_pod(&[("a", 1)], json!([]))), Outcome::Count);
        assert_eq!(match_pod(Some(&p), &failed_pod(&[("a", 0), ("b", 7)], json!([]))), Outcome::FailIndex);
    }

    #[test]
    fn pod_condition_rules() {
        let p = policy(
            json!({"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}),
        );
        let hit = failed_pod(&[("a", 1)], json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(match_pod(Some(&p), &hit), Outcome::Ignore);
        let miss = failed_pod(&[("a", 1)], json!([{"type": "DisruptionTarget", "status": "False"}]));
        assert_eq!(match_pod(Some(&p), &miss), Outcome::Count);
    }

    #[test]
    fn only_failed_pods_match() {
        let p = policy(json!({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]}));
        let mut pod = failed_pod(&[("a", 1)], json!([]));
        if let Some(s) = pod.status.as_mut() {
            s.phase = Some("Running".into());
        }
        assert_eq!(match_pod(Some(&p), &pod), Outcome::Count);
    }
}
