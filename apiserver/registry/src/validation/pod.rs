//! Pod specs, pod templates and the Pod kind itself: containers, ports, env, probes,
//! resources, volumes and mounts, policies, tolerations; pod update rules (only images,
//! activeDeadlineSeconds, added tolerations and a negative grace period may change).

use std::collections::HashSet;

use serde_json::Value;

use super::meta::validate_annotations;
use super::{
    IS_NEGATIVE, arr_at, at, enum_field, go_string_map, inclusive_range_error, int_at, invalid_go, is_config_map_key,
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip, is_valid_port_name, is_valid_port_num,
    obj_at, str_at, unique_label_name, validate_labels,
};
use crate::quantity::{QUANTITY_FORMAT_ERROR, parse_quantity_value};
use crate::status::FieldError;

/// The members of `VolumeSource`: a volume names exactly one of them.
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `spec.template` of a workload (ReplicationController, apps kinds): required, its labels
/// satisfying the workload's selector (`selects` sees the template labels), and a valid pod
/// template. Returns the template when present.
pub(crate) fn validate_workload_template<'a>(
    spec: &'a Value,
    selects: impl FnOnce(Option<&Value>) -> bool,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Value> {
    let Some(tmpl) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required("spec.template", ""));
        return None;
    };
    let labels = at(tmpl, &["metadata", "labels"]);
    if !selects(labels) {
        errs.push(invalid_go(
            "spec.template.metadata.labels",
            &go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    validate_pod_template(tmpl, "spec.template", errs);
    Some(tmpl)
}

/// `ValidatePodTemplateSpec`: labels, annotations and spec of a template at `path` (`spec.template`).
pub(crate) fn validate_pod_template(tmpl: &Value, path: &str, errs: &mut Vec<FieldError>) {
    // Upstream reports template labels at `<path>.labels` (not `.metadata.labels`).
    validate_labels(at(tmpl, &["metadata", "labels"]), &format!("{path}.labels"), errs);
    validate_annotations(at(tmpl, &["metadata", "annotations"]), &format!("{path}.annotations"), errs);
    let spec = tmpl.get("spec").unwrap_or(&Value::Null);
    validate_pod_spec(spec, &format!("{path}.spec"), errs);
    if !arr_at(spec, &["ephemeralContainers"]).is_empty() {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `ValidatePodSpec` at `path` (`spec`, `spec.template.spec`, ...).
pub(crate) fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let volumes = validate_volumes(spec, path, errs);
    let mut names = HashSet::new();
    let containers = arr_at(spec, &["containers"]);
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    for (i, c) in arr_at(spec, &["initContainers"]).iter().enumerate() {
        validate_container(c, &format!("{path}.initContainers[{i}]"), true, &volumes, &mut names, errs);
    }
    for (i, c) in containers.iter().enumerate() {
        validate_container(c, &format!("{path}.containers[{i}]"), false, &volumes, &mut names, errs);
    }
    enum_field(
        spec.get("restartPolicy"),
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
        true,
        errs,
    );
    enum_field(
        spec.get("dnsPolicy"),
        &format!("{path}.dnsPolicy"),
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        true,
        errs,
    );
    if str_at(spec, &["dnsPolicy"]) == "None" && at(spec, &["dnsConfig"]).is_none() {
        errs.push(FieldError::required(
            format!("{path}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    validate_labels(spec.get("nodeSelector"), &format!("{path}.nodeSelector"), errs);
    for (key, rule) in [("serviceAccountName", true), ("nodeName", true), ("hostname", false), ("subdomain", false)] {
        let v = str_at(spec, &[key]);
        if v.is_empty() {
            continue;
        }
        let msgs = if rule { is_dns1123_subdomain(v) } else { is_dns1123_label(v) };
        for m in msgs {
            errs.push(FieldError::invalid(format!("{path}.{key}"), Value::from(v), m));
        }
    }
    if let Some(ads) = int_at(spec, &["activeDeadlineSeconds"])
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            Value::from(ads),
            inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    validate_tolerations(spec, path, errs);
    for (i, s) in arr_at(spec, &["imagePullSecrets"]).iter().enumerate() {
        if str_at(s, &["name"]).is_empty() {
            errs.push(FieldError::required(format!("{path}.imagePullSecrets[{i}].name"), ""));
        }
    }
}

/// Exactly one of the `members` of a union (volume sources, probe handlers) set in `v` at
/// `path`: none is `Required`, each after the first `Forbidden`.
fn exactly_one_of(v: &Value, members: &[&str], path: &str, what: &str, errs: &mut Vec<FieldError>) {
    let set: Vec<&str> = members.iter().copied().filter(|m| at(v, &[m]).is_some()).collect();
    match set.as_slice() {
        [] => errs.push(FieldError::required(path, format!("must specify a {what}"))),
        [_] => {}
        [_, rest @ ..] => {
            for m in rest {
                errs.push(FieldError::forbidden(format!("{path}.{m}"), format!("may not specify more than 1 {what}")));
            }
        }
    }
}

/// Volumes: names required, DNS labels, unique; exactly one source. Returns the names.
fn validate_volumes(spec: &Value, path: &str, errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in arr_at(spec, &["volumes"]).iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        unique_label_name(str_at(v, &["name"]), &format!("{p}.name"), true, &mut names, errs);
        exactly_one_of(v, VOLUME_SOURCES, &p, "volume type", errs);
        // The field each of these sources cannot do without.
        for (src, field) in [
            ("secret", "secretName"),
            ("configMap", "name"),
            ("persistentVolumeClaim", "claimName"),
            ("hostPath", "path"),
        ] {
            if let Some(s) = v.get(src).filter(|s| s.is_object())
                && str_at(s, &[field]).is_empty()
            {
                errs.push(FieldError::required(format!("{p}.{src}.{field}"), ""));
            }
        }
        for src in ["secret", "configMap", "downwardAPI", "projected"] {
            if let Some(mode) = int_at(v, &[src, "defaultMode"])
                && !(0..=0o777).contains(&mode)
            {
                errs.push(FieldError::invalid(
                    format!("{p}.{src}.defaultMode"),
                    Value::from(mode),
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
    }
    names
}

fn validate_container(
    c: &Value,
    p: &str,
    init: bool,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    unique_label_name(str_at(c, &["name"]), &format!("{p}.name"), true, names, errs);
    let image = str_at(c, &["image"]);
    if image.is_empty() {
        errs.push(FieldError::required(format!("{p}.image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            format!("{p}.image"),
            Value::from(image),
            "must not have leading or trailing whitespace",
        ));
    }
    let sidecar = init && str_at(c, &["restartPolicy"]) == "Always";
    if init {
        if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str)
            && rp != "Always"
        {
            errs.push(FieldError::not_supported(format!("{p}.restartPolicy"), Value::from(rp), &["Always"]));
        }
    } else if c.get("restartPolicy").and_then(Value::as_str).is_some() {
        errs.push(FieldError::forbidden(format!("{p}.restartPolicy"), "may not be set for non-init containers"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(pr) = c.get(probe).filter(|v| v.is_object()) else {
            continue;
        };
        let pp = format!("{p}.{probe}");
        if init && !sidecar {
            errs.push(FieldError::forbidden(
                pp.clone(),
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(pr, &pp, probe != "readinessProbe", errs);
    }
    if init && !sidecar && at(c, &["lifecycle"]).is_some() {
        errs.push(FieldError::forbidden(
            format!("{p}.lifecycle"),
            "may not be set for init containers without restartPolicy=Always",
        ));
    }
    validate_container_ports(c, p, errs);
    validate_env(c, p, errs);
    let mut mount_paths = HashSet::new();
    for (i, m) in arr_at(c, &["volumeMounts"]).iter().enumerate() {
        let mp = format!("{p}.volumeMounts[{i}]");
        let vname = str_at(m, &["name"]);
        if vname.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(vname) {
            errs.push(FieldError::not_found(format!("{mp}.name"), Value::from(vname)));
        }
        let path = str_at(m, &["mountPath"]);
        if path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        } else if !mount_paths.insert(path.to_string()) {
            errs.push(FieldError::invalid(format!("{mp}.mountPath"), Value::from(path), "must be unique"));
        }
    }
    validate_resources(c.get("resources").unwrap_or(&Value::Null), &format!("{p}.resources"), errs);
    enum_field(
        c.get("imagePullPolicy"),
        &format!("{p}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        true,
        errs,
    );
    enum_field(
        c.get("terminationMessagePolicy"),
        &format!("{p}.terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
        true,
        errs,
    );
}

fn validate_probe(pr: &Value, pp: &str, needs_success_one: bool, errs: &mut Vec<FieldError>) {
    exactly_one_of(pr, &["exec", "httpGet", "tcpSocket", "grpc"], pp, "handler type", errs);
    for f in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        if let Some(n) = int_at(pr, &[f])
            && n < 0
        {
            errs.push(FieldError::invalid(format!("{pp}.{f}"), Value::from(n), IS_NEGATIVE));
        }
    }
    if needs_success_one
        && let Some(n) = int_at(pr, &["successThreshold"])
        && n != 1
    {
        errs.push(FieldError::invalid(format!("{pp}.successThreshold"), Value::from(n), "must be 1"));
    }
    if let Some(port) = at(pr, &["httpGet", "port"]) {
        validate_port_num_or_name(port, &format!("{pp}.httpGet.port"), errs);
    }
    if let Some(port) = at(pr, &["tcpSocket", "port"]) {
        validate_port_num_or_name(port, &format!("{pp}.tcpSocket.port"), errs);
    }
}

/// An int-or-string port: a number 1..65535 or an IANA port name.
pub(crate) fn validate_port_num_or_name(port: &Value, field: &str, errs: &mut Vec<FieldError>) {
    match port {
        Value::Number(n) => {
            for m in is_valid_port_num(n.as_i64().unwrap_or(0)) {
                errs.push(FieldError::invalid(field, port.clone(), m));
            }
        }
        Value::String(s) => {
            for m in is_valid_port_name(s) {
                errs.push(FieldError::invalid(field, port.clone(), m));
            }
        }
        _ => errs.push(FieldError::invalid(field, port.clone(), "must contain an int or a string")),
    }
}

fn validate_container_ports(c: &Value, p: &str, errs: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, port) in arr_at(c, &["ports"]).iter().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        let name = str_at(port, &["name"]);
        if !name.is_empty() {
            for m in is_valid_port_name(name) {
                errs.push(FieldError::invalid(format!("{pp}.name"), Value::from(name), m));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), Value::from(name)));
            }
        }
        match int_at(port, &["containerPort"]) {
            None | Some(0) => errs.push(FieldError::required(format!("{pp}.containerPort"), "")),
            Some(n) => {
                for m in is_valid_port_num(n) {
                    errs.push(FieldError::invalid(format!("{pp}.containerPort"), Value::from(n), m));
                }
            }
        }
        if let Some(h) = int_at(port, &["hostPort"]).filter(|h| *h != 0) {
            for m in is_valid_port_num(h) {
                errs.push(FieldError::invalid(format!("{pp}.hostPort"), Value::from(h), m));
            }
        }
        enum_field(port.get("protocol"), &format!("{pp}.protocol"), &["SCTP", "TCP", "UDP"], true, errs);
    }
}

fn validate_env(c: &Value, p: &str, errs: &mut Vec<FieldError>) {
    for (i, e) in arr_at(c, &["env"]).iter().enumerate() {
        let ep = format!("{p}.env[{i}]");
        let name = str_at(e, &["name"]);
        if name.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name"), ""));
        } else if name.chars().any(|ch| !ch.is_ascii_graphic() && ch != ' ' || ch == '=') {
            errs.push(FieldError::invalid(
                format!("{ep}.name"),
                Value::from(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        let Some(from) = e.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        let fp = format!("{ep}.valueFrom");
        if !str_at(e, &["value"]).is_empty() {
            errs.push(FieldError::invalid(
                fp.clone(),
                Value::from(""),
                "may not be specified when `value` is not empty",
            ));
        }
        let sources: Vec<&str> = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"]
            .into_iter()
            .filter(|s| at(from, &[s]).is_some())
            .collect();
        match sources.len() {
            0 => errs.push(FieldError::invalid(
                fp.clone(),
                Value::from(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )),
            1 => {}
            _ => errs.push(FieldError::invalid(
                fp.clone(),
                Value::from(""),
                "may not have more than one field specified at a time",
            )),
        }
        if let Some(f) = at(from, &["fieldRef"]) {
            if str_at(f, &["fieldPath"]).is_empty() {
                errs.push(FieldError::required(format!("{fp}.fieldRef.fieldPath"), ""));
            }
            if str_at(f, &["apiVersion"]).is_empty() {
                errs.push(FieldError::required(format!("{fp}.fieldRef.apiVersion"), ""));
            }
        }
        for r in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(k) = at(from, &[r]) {
                let key = str_at(k, &["key"]);
                if key.is_empty() {
                    errs.push(FieldError::required(format!("{fp}.{r}.key"), ""));
                } else {
                    for m in is_config_map_key(key) {
                        errs.push(FieldError::invalid(format!("{fp}.{r}.key"), Value::from(key), m));
                    }
                }
                if str_at(k, &["name"]).is_empty() {
                    errs.push(FieldError::required(format!("{fp}.{r}.name"), ""));
                }
            }
        }
    }
}

/// Whether upstream lets requests differ from limits for this resource (native, not hugepages).
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

/// Resource requirements: quantities parse and are non-negative; requests <= limits.
pub(crate) fn validate_resources(res: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut limits = std::collections::BTreeMap::new();
    if let Some(m) = obj_at(res, &["limits"]) {
        for (k, v) in m {
            let fp = format!("{path}.limits[{k}]");
            if let Some(q) = check_quantity(k, v, &fp, errs) {
                limits.insert(k.as_str(), q);
            }
        }
    }
    if let Some(m) = obj_at(res, &["requests"]) {
        for (k, v) in m {
            let fp = format!("{path}.requests[{k}]");
            let Some(q) = check_quantity(k, v, &fp, errs) else {
                continue;
            };
            match limits.get(k.as_str()) {
                Some(limit) if !overcommit_allowed(k) && q != *limit => errs.push(FieldError::invalid(
                    format!("{path}.requests"),
                    Value::from(q.to_string()),
                    format!("must be equal to {k} limit of {limit}"),
                )),
                Some(limit) if q > *limit => errs.push(FieldError::invalid(
                    format!("{path}.requests"),
                    Value::from(q.to_string()),
                    format!("must be less than or equal to {k} limit of {limit}"),
                )),
                None if !overcommit_allowed(k) => errs.push(FieldError::required(
                    format!("{path}.limits"),
                    "Limit must be set for non overcommitable resources",
                )),
                _ => {}
            }
        }
    }
}

fn check_quantity(name: &str, v: &Value, fp: &str, errs: &mut Vec<FieldError>) -> Option<crate::quantity::Quantity> {
    let Some(q) = parse_quantity_value(v) else {
        errs.push(FieldError::invalid(fp, v.clone(), QUANTITY_FORMAT_ERROR));
        return None;
    };
    if q.sign() < 0 {
        errs.push(FieldError::invalid(fp, Value::from(q.to_string()), IS_NEGATIVE));
    }
    let integer = !overcommit_allowed(name) || name.starts_with("hugepages-");
    if integer && name != "cpu" && q.nanos() % 1_000_000_000 != 0 {
        errs.push(FieldError::invalid(fp, Value::from(q.to_string()), "must be an integer"));
    }
    Some(q)
}

fn validate_tolerations(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (i, t) in arr_at(spec, &["tolerations"]).iter().enumerate() {
        let tp = format!("{path}.tolerations[{i}]");
        let key = str_at(t, &["key"]);
        if !key.is_empty() {
            for m in is_qualified_name(key) {
                errs.push(FieldError::invalid(format!("{tp}.key"), Value::from(key), m));
            }
        }
        let op = str_at(t, &["operator"]);
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                format!("{tp}.operator"),
                Value::from(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        match op {
            "" | "Equal" => {
                let value = str_at(t, &["value"]);
                for m in super::is_valid_label_value(value) {
                    errs.push(FieldError::invalid(format!("{tp}.value"), Value::from(value), m));
                }
            }
            "Exists" => {
                let value = str_at(t, &["value"]);
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{tp}.operator"),
                        Value::from(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => {
                errs.push(FieldError::not_supported(format!("{tp}.operator"), Value::from(other), &["Equal", "Exists"]))
            }
        }
        let effect = str_at(t, &["effect"]);
        if at(t, &["tolerationSeconds"]).is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{tp}.effect"),
                Value::from(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errs.push(FieldError::not_supported(
                format!("{tp}.effect"),
                Value::from(effect),
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
}

/// The Pod kind: its spec on create and update, plus the update restrictions.
pub(crate) fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_pod_spec(spec, "spec", errs);
    if let Some(old) = old {
        validate_pod_spec_update(spec, old.get("spec").unwrap_or(&Value::Null), errs);
    }
}

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn validate_pod_spec_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    // activeDeadlineSeconds may be set, or lowered, but never unset or raised.
    match (int_at(new, &["activeDeadlineSeconds"]), int_at(old, &["activeDeadlineSeconds"])) {
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(n), Some(o)) if n > o => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::from(n),
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    // Tolerations: only additions.
    let new_t = arr_at(new, &["tolerations"]);
    for t in arr_at(old, &["tolerations"]) {
        if !new_t.contains(t) {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    // Compare everything else with the mutable fields carried over from new into a copy of old.
    let mut mutated_old = old.clone();
    if let Some(o) = mutated_old.as_object_mut() {
        for key in ["containers", "initContainers"] {
            let new_list = arr_at(new, &[key]);
            if let Some(list) = o.get_mut(key).and_then(Value::as_array_mut) {
                for (i, c) in list.iter_mut().enumerate() {
                    if let (Some(c), Some(img)) = (c.as_object_mut(), new_list.get(i).and_then(|n| n.get("image"))) {
                        c.insert("image".into(), img.clone());
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "tolerations"] {
            match new.get(key) {
                Some(v) => {
                    o.insert(key.into(), v.clone());
                }
                None => {
                    o.remove(key);
                }
            }
        }
        let old_tgps = int_at(old, &["terminationGracePeriodSeconds"]);
        let new_tgps = int_at(new, &["terminationGracePeriodSeconds"]);
        if old_tgps.is_some_and(|t| t < 0) && new_tgps == Some(1) {
            o.insert("terminationGracePeriodSeconds".into(), Value::from(1));
        }
    }
    if &mutated_old != new {
        let diff = spec_diff(&mutated_old, new);
        errs.push(FieldError::forbidden("spec", format!("{POD_UPDATE_FORBIDDEN}\n{diff}")));
    }
}

/// A short description of which top-level spec fields differ (upstream prints a Go struct diff).
fn spec_diff(old: &Value, new: &Value) -> String {
    let mut keys: Vec<&String> = Vec::new();
    if let (Some(o), Some(n)) = (old.as_object(), new.as_object()) {
        for k in o.keys().chain(n.keys()) {
            if o.get(k) != n.get(k) && !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        if let Some(v) = old.get(k) {
            out.push_str(&format!("- \t{k}: {v},\n"));
        }
        if let Some(v) = new.get(k) {
            out.push_str(&format!("+ \t{k}: {v},\n"));
        }
    }
    out.push_str("  }\n");
    out
}

/// Pod status: phase, IPs, container statuses' names.
pub(crate) fn validate_pod_status(status: &Value, errs: &mut Vec<FieldError>) {
    if let Some(phase) = status.get("phase").and_then(Value::as_str)
        && !phase.is_empty()
        && !["Pending", "Running", "Succeeded", "Failed", "Unknown"].contains(&phase)
    {
        errs.push(FieldError::not_supported(
            "status.phase",
            Value::from(phase),
            &["Pending", "Running", "Succeeded", "Failed", "Unknown"],
        ));
    }
    for key in ["podIP", "hostIP"] {
        let ip = str_at(status, &[key]);
        if !ip.is_empty() {
            for m in is_valid_ip(ip) {
                errs.push(FieldError::invalid(format!("status.{key}"), Value::from(ip), m));
            }
        }
    }
    for (i, ip) in arr_at(status, &["podIPs"]).iter().enumerate() {
        let s = str_at(ip, &["ip"]);
        for m in is_valid_ip(s) {
            errs.push(FieldError::invalid(format!("status.podIPs[{i}].ip"), Value::from(s), m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec() -> Value {
        json!({"containers":[{"name":"web","image":"nginx","imagePullPolicy":"Always",
            "terminationMessagePolicy":"File"}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst"})
    }

    fn errors(spec: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_pod_spec(spec, "spec", &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_spec_passes() {
        assert!(errors(&pod_spec()).is_empty());
    }

    #[test]
    fn containers_and_images_required() {
        assert_eq!(
            errors(&json!({"containers":[],"restartPolicy":"Always","dnsPolicy":"ClusterFirst"})),
            vec!["spec.containers: Required value"]
        );
        let mut s = pod_spec();
        s["containers"][0]["image"] = json!("");
        let first = s["containers"][0].clone();
        s["containers"].as_array_mut().unwrap().push(first);
        let e = errors(&s);
        assert!(e.contains(&"spec.containers[0].image: Required value".to_string()));
        assert!(e.contains(&"spec.containers[1].name: Duplicate value: \"web\"".to_string()));
    }

    #[test]
    fn policies_ports_and_mounts() {
        let mut s = pod_spec();
        s["restartPolicy"] = json!("Sometimes");
        s["containers"][0]["ports"] = json!([{"containerPort":70000,"protocol":"TCP"}]);
        s["containers"][0]["volumeMounts"] = json!([{"name":"data","mountPath":"/d"}]);
        let e = errors(&s);
        assert_eq!(
            e,
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn requests_above_limits() {
        let mut s = pod_spec();
        s["containers"][0]["resources"] = json!({"limits":{"cpu":"500m"},"requests":{"cpu":"1"}});
        assert_eq!(
            errors(&s),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"
            ]
        );
        s["containers"][0]["resources"] = json!({"limits":{"memory":"lots"}});
        assert_eq!(errors(&s).len(), 1);
    }

    #[test]
    fn pod_update_allows_image_only() {
        let old = json!({"spec": pod_spec()});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        let mut errs = Vec::new();
        validate_pod(&new, Some(&old), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        new["spec"]["restartPolicy"] = json!("Never");
        validate_pod(&new, Some(&old), &mut errs);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with("spec: Forbidden: pod updates may not change fields other than"));
    }
}
