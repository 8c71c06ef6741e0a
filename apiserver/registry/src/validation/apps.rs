//! `apps/v1`: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision — selectors
//! that must match their templates, strategies, and the immutable selector on update.

use serde_json::Value;

use super::pod::validate_workload_template;
use super::{
    IMMUTABLE, arr_at, at, enum_field, go_label_selector, int_at, int_or_percent_value, invalid_go, nonnegative,
    not_more_than_100_percent, selector_is_empty, selector_matches, str_at, validate_label_selector,
    validate_positive_int_or_percent,
};
use crate::status::FieldError;

pub(super) fn validate(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match kind {
        "Deployment" => {
            workload_common(spec, "deployment", true, errs);
            validate_deployment_strategy(spec, errs);
            nonnegative(spec, &["revisionHistoryLimit"], "spec.revisionHistoryLimit", errs);
            if let Some(pds) = int_at(spec, &["progressDeadlineSeconds"]) {
                if pds < 0 {
                    errs.push(FieldError::invalid(
                        "spec.progressDeadlineSeconds",
                        Value::from(pds),
                        super::IS_NEGATIVE,
                    ));
                }
                if pds <= int_at(spec, &["minReadySeconds"]).unwrap_or(0) {
                    errs.push(FieldError::invalid(
                        "spec.progressDeadlineSeconds",
                        Value::from(pds),
                        "must be greater than minReadySeconds",
                    ));
                }
            }
        }
        "ReplicaSet" => workload_common(spec, "replicaset", true, errs),
        "StatefulSet" => {
            workload_common(spec, "statefulset", true, errs);
            validate_statefulset_spec(spec, errs);
        }
        "DaemonSet" => {
            workload_common(spec, "daemonset", false, errs);
            validate_daemonset_strategy(spec, errs);
            nonnegative(spec, &["revisionHistoryLimit"], "spec.revisionHistoryLimit", errs);
        }
        "ControllerRevision" => {
            nonnegative(obj, &["revision"], "revision", errs);
        }
        _ => {}
    }
    if let Some(old) = old {
        let ospec = old.get("spec").unwrap_or(&Value::Null);
        match kind {
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet"
                if at(spec, &["selector"]) != at(ospec, &["selector"]) =>
            {
                errs.push(invalid_go("spec.selector", &go_label_selector(at(spec, &["selector"])), IMMUTABLE));
            }
            "ControllerRevision" if at(obj, &["data"]) != at(old, &["data"]) => {
                errs.push(FieldError::invalid("data", Value::Null, IMMUTABLE));
            }
            _ => {}
        }
        if kind == "StatefulSet" {
            validate_statefulset_update(spec, ospec, errs);
        }
    }
}

/// Selector (required, non-empty, matching the template), replicas, template and restartPolicy.
fn workload_common(spec: &Value, what: &str, has_replicas: bool, errs: &mut Vec<FieldError>) {
    if has_replicas {
        nonnegative(spec, &["replicas"], "spec.replicas", errs);
    }
    nonnegative(spec, &["minReadySeconds"], "spec.minReadySeconds", errs);
    let selector = spec.get("selector").filter(|s| s.is_object());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            validate_label_selector(sel, "spec.selector", errs);
            if selector_is_empty(sel) {
                errs.push(invalid_go(
                    "spec.selector",
                    &go_label_selector(Some(sel)),
                    &format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
    let selects = |labels: Option<&Value>| {
        selector.filter(|s| !selector_is_empty(s)).is_none_or(|sel| selector_matches(sel, labels))
    };
    let Some(tmpl) = validate_workload_template(spec, selects, errs) else {
        return;
    };
    let rp = str_at(tmpl, &["spec", "restartPolicy"]);
    if !rp.is_empty() && rp != "Always" && ["Always", "OnFailure", "Never"].contains(&rp) {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", Value::from(rp), &["Always"]));
    }
    if at(tmpl, &["spec", "activeDeadlineSeconds"]).is_some() {
        let label = match what {
            "deployment" => "Deployment",
            "replicaset" => "ReplicaSet",
            "statefulset" => "StatefulSet",
            _ => "DaemonSet",
        };
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {label} is not Supported"),
        ));
    }
}

fn validate_deployment_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    let ru = strategy.get("rollingUpdate").filter(|v| v.is_object());
    match str_at(strategy, &["type"]) {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs
                .push(FieldError::required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")),
            Some(ru) => {
                let p = "spec.strategy.rollingUpdate";
                let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                validate_positive_int_or_percent(mu, &format!("{p}.maxUnavailable"), errs);
                validate_positive_int_or_percent(ms, &format!("{p}.maxSurge"), errs);
                if int_or_percent_value(mu).0 == 0 && int_or_percent_value(ms).0 == 0 {
                    errs.push(invalid_go(
                        format!("{p}.maxUnavailable"),
                        &super::go_int_or_string(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(mu, &format!("{p}.maxUnavailable"), errs);
            }
        },
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            Value::from(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn validate_daemonset_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_at(strategy, &["type"]) {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = strategy.get("rollingUpdate").filter(|v| v.is_object()) else {
                errs.push(FieldError::required("spec.updateStrategy.rollingUpdate", ""));
                return;
            };
            let p = "spec.updateStrategy.rollingUpdate";
            let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
            validate_positive_int_or_percent(mu, &format!("{p}.maxUnavailable"), errs);
            validate_positive_int_or_percent(ms, &format!("{p}.maxSurge"), errs);
            not_more_than_100_percent(mu, &format!("{p}.maxUnavailable"), errs);
            not_more_than_100_percent(ms, &format!("{p}.maxSurge"), errs);
            let has_unavailable = int_or_percent_value(mu).0 != 0;
            let has_surge = int_or_percent_value(ms).0 != 0;
            if has_unavailable && has_surge {
                errs.push(invalid_go(
                    format!("{p}.maxSurge"),
                    &super::go_int_or_string(ms),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(format!("{p}.maxUnavailable"), "cannot be 0 when maxSurge is 0"));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            Value::from(other),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

fn validate_statefulset_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    match str_at(spec, &["podManagementPolicy"]) {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            Value::from(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_at(strategy, &["type"]) {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = strategy.get("rollingUpdate").filter(|v| v.is_object()) {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    ru.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            nonnegative(strategy, &["rollingUpdate", "partition"], "spec.updateStrategy.rollingUpdate.partition", errs);
        }
        _ => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            strategy.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    for key in ["whenDeleted", "whenScaled"] {
        enum_field(
            at(spec, &["persistentVolumeClaimRetentionPolicy", key]),
            &format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
            &["Retain", "Delete"],
            false,
            errs,
        );
    }
    nonnegative(spec, &["ordinals", "start"], "spec.ordinals.start", errs);
    nonnegative(spec, &["revisionHistoryLimit"], "spec.revisionHistoryLimit", errs);
    for (i, t) in arr_at(spec, &["volumeClaimTemplates"]).iter().enumerate() {
        let name = str_at(t, &["metadata", "name"]);
        for m in super::is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(
                format!("spec.volumeClaimTemplates[{i}].metadata.name"),
                Value::from(name),
                m,
            ));
        }
    }
}

fn validate_statefulset_update(spec: &Value, ospec: &Value, errs: &mut Vec<FieldError>) {
    const MUTABLE: &[&str] = &[
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "selector",
    ];
    let strip = |s: &Value| {
        let mut s = s.clone();
        if let Some(o) = s.as_object_mut() {
            for k in MUTABLE {
                o.remove(*k);
            }
        }
        s
    };
    if strip(spec) != strip(ospec) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// Replica counts of a Deployment status.
pub(super) fn validate_deployment_status(status: &Value, errs: &mut Vec<FieldError>) {
    validate_replicas_status(status, errs);
    for key in ["updatedReplicas", "unavailableReplicas", "collisionCount"] {
        nonnegative(status, &[key], &format!("status.{key}"), errs);
    }
    let updated = int_at(status, &["updatedReplicas"]).unwrap_or(0);
    if updated > int_at(status, &["replicas"]).unwrap_or(0) {
        errs.push(FieldError::invalid(
            "status.updatedReplicas",
            Value::from(updated),
            "cannot be greater than status.replicas",
        ));
    }
}

/// Counts shared by ReplicaSet, StatefulSet, ReplicationController and Deployment status.
pub(super) fn validate_replicas_status(status: &Value, errs: &mut Vec<FieldError>) {
    for key in ["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"] {
        nonnegative(status, &[key], &format!("status.{key}"), errs);
    }
    let replicas = int_at(status, &["replicas"]).unwrap_or(0);
    let ready = int_at(status, &["readyReplicas"]).unwrap_or(0);
    let available = int_at(status, &["availableReplicas"]).unwrap_or(0);
    // (field, its value, the bound, the bound's name); an absent fullyLabeledReplicas is not checked.
    let bounds = [
        ("status.fullyLabeledReplicas", int_at(status, &["fullyLabeledReplicas"]), replicas, "status.replicas"),
        ("status.readyReplicas", Some(ready), replicas, "status.replicas"),
        ("status.availableReplicas", Some(available), replicas, "status.replicas"),
        ("status.availableReplicas", Some(available), ready, "readyReplicas"),
    ];
    for (field, value, bound, bound_name) in bounds {
        if let Some(v) = value.filter(|v| *v > bound) {
            errs.push(FieldError::invalid(field, Value::from(v), format!("cannot be greater than {bound_name}")));
        }
    }
}

pub(super) fn validate_daemonset_status(status: &Value, errs: &mut Vec<FieldError>) {
    for key in [
        "numberMisscheduled",
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "observedGeneration",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberUnavailable",
        "collisionCount",
    ] {
        nonnegative(status, &[key], &format!("status.{key}"), errs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"metadata":{"name":"web","namespace":"default"},"spec":{
            "replicas":1,"selector":{"matchLabels":{"app":"web"}},
            "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}},
            "revisionHistoryLimit":10,"progressDeadlineSeconds":600,
            "template":{"metadata":{"labels":{"app":"web"}},"spec":{
                "containers":[{"name":"web","image":"nginx","imagePullPolicy":"Always","terminationMessagePolicy":"File"}],
                "restartPolicy":"Always","dnsPolicy":"ClusterFirst"}}}})
    }

    fn run(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate(kind, obj, old, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_deployment() {
        assert!(run("Deployment", &deployment(), None).is_empty());
    }

    #[test]
    fn selector_mismatch() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app":"other"});
        assert_eq!(
            run("Deployment", &d, None),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn immutable_selector() {
        let old = deployment();
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels":{"app":"web2"}});
        new["spec"]["template"]["metadata"]["labels"] = json!({"app":"web2"});
        assert_eq!(
            run("Deployment", &new, Some(&old)),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
    }

    #[test]
    fn both_zero_and_negative_replicas() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge":0,"maxUnavailable":"0%"});
        assert_eq!(
            run("Deployment", &d, None),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0",
            ]
        );
    }

    #[test]
    fn template_restart_policy_must_be_always() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            run("ReplicaSet", &d, None),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
    }

    #[test]
    fn statefulset_update_forbidden_fields() {
        let mut s = deployment();
        s["spec"]["serviceName"] = json!("web");
        s["spec"]["podManagementPolicy"] = json!("OrderedReady");
        s["spec"]["updateStrategy"] = json!({"type":"RollingUpdate","rollingUpdate":{"partition":0}});
        let mut new = s.clone();
        new["spec"]["replicas"] = json!(3);
        assert!(run("StatefulSet", &new, Some(&s)).is_empty());
        new["spec"]["serviceName"] = json!("other");
        assert_eq!(run("StatefulSet", &new, Some(&s)).len(), 1);
    }
}
