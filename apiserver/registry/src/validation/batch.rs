//! `batch/v1`: Job (counts, completion mode, generated selector, immutable template and
//! selector) and CronJob (schedule syntax, concurrency policy, its job template).

use serde_json::Value;

use super::pod::validate_pod_template;
use super::{
    IMMUTABLE, at, enum_field, go_label_selector, go_string_map, immutable, int_at, invalid_go, nonnegative,
    selector_matches, str_at, validate_label_selector,
};
use crate::status::FieldError;

pub(super) fn validate(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match kind {
        "Job" => {
            let spec = obj.get("spec").unwrap_or(&Value::Null);
            validate_job_spec(spec, "spec", true, errs);
            if old.is_none() {
                validate_generated_selector(obj, errs);
            }
            if let Some(old) = old {
                let ospec = old.get("spec").unwrap_or(&Value::Null);
                immutable(spec, ospec, &["completions"], "spec.completions", errs);
                if at(spec, &["selector"]) != at(ospec, &["selector"]) {
                    errs.push(invalid_go("spec.selector", &go_label_selector(at(spec, &["selector"])), IMMUTABLE));
                }
                if at(spec, &["template"]) != at(ospec, &["template"]) {
                    errs.push(invalid_go("spec.template", "core.PodTemplateSpec{...}", IMMUTABLE));
                }
                immutable(spec, ospec, &["completionMode"], "spec.completionMode", errs);
                immutable(spec, ospec, &["podFailurePolicy"], "spec.podFailurePolicy", errs);
                immutable(spec, ospec, &["backoffLimitPerIndex"], "spec.backoffLimitPerIndex", errs);
                immutable(spec, ospec, &["managedBy"], "spec.managedBy", errs);
            }
        }
        "CronJob" => validate_cronjob(obj, errs),
        _ => {}
    }
}

/// `validateJobSpec`; `selector_required` is false inside a CronJob's jobTemplate.
fn validate_job_spec(spec: &Value, path: &str, selector_required: bool, errs: &mut Vec<FieldError>) {
    for key in ["parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"] {
        nonnegative(spec, &[key], &format!("{path}.{key}"), errs);
    }
    let mode_path = format!("{path}.completionMode");
    enum_field(spec.get("completionMode"), &mode_path, &["NonIndexed", "Indexed"], false, errs);
    if str_at(spec, &["completionMode"]) == "Indexed" && int_at(spec, &["completions"]).is_none() {
        errs.push(FieldError::required(format!("{path}.completions"), "when completion mode is Indexed"));
    }
    enum_field(
        spec.get("podReplacementPolicy"),
        &format!("{path}.podReplacementPolicy"),
        &["Failed", "TerminatingOrFailed"],
        false,
        errs,
    );
    let selector = spec.get("selector").filter(|s| s.is_object());
    match selector {
        None if selector_required => errs.push(FieldError::required(format!("{path}.selector"), "")),
        None => {}
        Some(sel) => validate_label_selector(sel, &format!("{path}.selector"), errs),
    }
    let tmpl = spec.get("template").unwrap_or(&Value::Null);
    if let Some(sel) = selector {
        let labels = at(tmpl, &["metadata", "labels"]);
        if !selector_matches(sel, labels) {
            errs.push(invalid_go(
                format!("{path}.template.metadata.labels"),
                &go_string_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    validate_pod_template(tmpl, &format!("{path}.template"), errs);
    let rp = str_at(tmpl, &["spec", "restartPolicy"]);
    if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            format!("{path}.template.spec.restartPolicy"),
            Value::from(rp),
            &["OnFailure", "Never"],
        ));
    }
}

/// Without `manualSelector: true` the selector must be the generated one (controller-uid = uid).
fn validate_generated_selector(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let Some(sel) = spec.get("selector").filter(|s| s.is_object()) else {
        return;
    };
    let uid = str_at(obj, &["metadata", "uid"]);
    if uid.is_empty() {
        // The apiserver has not assigned a uid yet, so the selector could not be generated.
        return;
    }
    for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
        let v = str_at(spec, &["template", "metadata", "labels", key]);
        if !v.is_empty() && v != uid {
            errs.push(FieldError::invalid(
                format!("spec.template.metadata.labels[{key}]"),
                Value::from(v),
                format!("must be '{uid}'"),
            ));
        }
    }
    let expected = serde_json::json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    if sel != &expected {
        errs.push(invalid_go("spec.selector", &go_label_selector(Some(sel)), "`selector` not auto-generated"));
    }
}

pub(super) fn validate_job_status(status: &Value, errs: &mut Vec<FieldError>) {
    for key in ["active", "succeeded", "failed", "ready", "terminating"] {
        nonnegative(status, &[key], &format!("status.{key}"), errs);
    }
}

fn validate_cronjob(obj: &Value, errs: &mut Vec<FieldError>) {
    let name = str_at(obj, &["metadata", "name"]);
    if name.len() > 52 {
        errs.push(FieldError::invalid("metadata.name", Value::from(name), "must be no more than 52 characters"));
    }
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let schedule = str_at(spec, &["schedule"]);
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if let Err(e) = parse_cron(schedule) {
            errs.push(FieldError::invalid("spec.schedule", Value::from(schedule), e));
        }
        if schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                Value::from(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str)
        && (tz.is_empty() || tz.contains(' ') || tz.starts_with('/') || tz.contains(".."))
    {
        errs.push(FieldError::invalid("spec.timeZone", Value::from(tz), "unknown time zone"));
    }
    enum_field(spec.get("concurrencyPolicy"), "spec.concurrencyPolicy", &["Allow", "Forbid", "Replace"], true, errs);
    for key in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonnegative(spec, &[key], &format!("spec.{key}"), errs);
    }
    let jt = spec.get("jobTemplate").unwrap_or(&Value::Null);
    let jspec = jt.get("spec").unwrap_or(&Value::Null);
    validate_job_spec(jspec, "spec.jobTemplate.spec", false, errs);
    if let Some(sel) = jspec.get("selector").filter(|s| s.is_object()) {
        errs.push(invalid_go(
            "spec.jobTemplate.spec.selector",
            &go_label_selector(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if jspec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            Value::Bool(true),
            &["nil", "false"],
        ));
    }
}

/// Parse a standard 5-field cron schedule (or a `@descriptor`); errors read like robfig/cron's.
pub(crate) fn parse_cron(s: &str) -> Result<(), String> {
    let s = s.trim();
    let s = if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        s.split_once(' ').map(|(_, rest)| rest.trim()).unwrap_or("")
    } else {
        s
    };
    if let Some(d) = s.strip_prefix('@') {
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            _ if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] =
        [(0, 59, &[], 0), (0, 23, &[], 0), (1, 31, &[], 0), (1, 12, MONTHS, 1), (0, 6, DAYS, 0)];
    for (field, (min, max, names, base)) in fields.iter().zip(bounds) {
        for expr in field.split(',') {
            parse_cron_range(expr, min, max, names, base)?;
        }
    }
    Ok(())
}

fn parse_cron_range(expr: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(), String> {
    let parse = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + base);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax"));
        }
        s.parse::<u32>()
            .map_err(|_| format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: value out of range"))
    };
    let parts: Vec<&str> = expr.split('/').collect();
    if parts.len() > 2 {
        return Err(format!("too many slashes: {expr}"));
    }
    let range: Vec<&str> = parts[0].split('-').collect();
    let (start, end) = match range.as_slice() {
        ["*"] | ["?"] => (min, max),
        [one] => {
            let v = parse(one)?;
            (v, if parts.len() == 2 { max } else { v })
        }
        [a, b] => (parse(a)?, parse(b)?),
        _ => return Err(format!("too many hyphens: {expr}")),
    };
    if parts.len() == 2 {
        let step = parse(parts[1])?;
        if step == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
    }
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({"metadata":{"name":"pi","namespace":"default","uid":"u1"},"spec":{
            "selector":{"matchLabels":{"batch.kubernetes.io/controller-uid":"u1"}},
            "template":{"metadata":{"labels":{"batch.kubernetes.io/controller-uid":"u1","controller-uid":"u1"}},
              "spec":{"containers":[{"name":"pi","image":"perl","imagePullPolicy":"IfNotPresent","terminationMessagePolicy":"File"}],
                "restartPolicy":"Never","dnsPolicy":"ClusterFirst"}}}})
    }

    fn run(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate(kind, obj, old, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn job_restart_policy_and_counts() {
        assert!(run("Job", &job(), None).is_empty());
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        j["spec"]["backoffLimit"] = json!(-1);
        assert_eq!(
            run("Job", &j, None),
            vec![
                "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn job_template_immutable() {
        let old = job();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        assert_eq!(
            run("Job", &new, Some(&old)),
            vec!["spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"]
        );
    }

    #[test]
    fn cron_schedules() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 0 1-15 jan,FEB mon-fri").is_ok());
        assert!(parse_cron("@hourly").is_ok());
        assert_eq!(parse_cron("* * *").unwrap_err(), "expected exactly 5 fields, found 3: [* * *]");
        assert_eq!(parse_cron("61 * * * *").unwrap_err(), "end of range (61) above maximum (59): 61");
        assert!(parse_cron("x * * * *").unwrap_err().starts_with("failed to parse int from x"));
        let cj = json!({"metadata":{"name":"c"},"spec":{"schedule":"bad","concurrencyPolicy":"Allow",
            "jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"i","imagePullPolicy":"Always","terminationMessagePolicy":"File"}],
              "restartPolicy":"OnFailure","dnsPolicy":"ClusterFirst"}}}}}});
        assert_eq!(
            run("CronJob", &cj, None),
            vec!["spec.schedule: Invalid value: \"bad\": expected exactly 5 fields, found 1: [bad]"]
        );
    }
}
