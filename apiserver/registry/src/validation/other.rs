//! The smaller groups: networking (Ingress, NetworkPolicy), rbac (rules, bindings and their
//! immutable roleRef), coordination (Lease), policy (PodDisruptionBudget), autoscaling (HPA),
//! scheduling (PriorityClass), storage (StorageClass), discovery (EndpointSlice).

use serde_json::Value;

use super::pod::validate_port_num_or_name;
use super::{
    arr_at, at, enum_field, go_quote, int_at, invalid_go, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain,
    is_valid_ip, nonnegative, not_more_than_100_percent, str_at, validate_label_selector,
    validate_positive_int_or_percent,
};
use crate::status::FieldError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub(super) fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match (group, kind) {
        ("networking.k8s.io", "Ingress") => validate_ingress(obj, errs),
        ("networking.k8s.io", "NetworkPolicy") => validate_network_policy(obj, errs),
        (RBAC_GROUP, "Role") => validate_rules(obj, true, errs),
        (RBAC_GROUP, "ClusterRole") => validate_rules(obj, false, errs),
        (RBAC_GROUP, "RoleBinding") => validate_binding(obj, old, true, errs),
        (RBAC_GROUP, "ClusterRoleBinding") => validate_binding(obj, old, false, errs),
        ("coordination.k8s.io", "Lease") => validate_lease(obj, errs),
        ("policy", "PodDisruptionBudget") => validate_pdb(obj, errs),
        ("autoscaling", "HorizontalPodAutoscaler") => validate_hpa(obj, errs),
        ("scheduling.k8s.io", "PriorityClass") => validate_priority_class(obj, old, errs),
        ("storage.k8s.io", "StorageClass") => validate_storage_class(obj, old, errs),
        ("discovery.k8s.io", "EndpointSlice") => validate_endpoint_slice(obj, old, errs),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding") => {
            errs.extend(crate::admission::policy::validate_policy(obj))
        }
        _ => {}
    }
}

// ---- networking -----------------------------------------------------------------------------

fn validate_ingress_backend(b: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let svc = b.get("service").filter(|v| v.is_object());
    let res = b.get("resource").filter(|v| v.is_object());
    match (svc, res) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid(path, Value::from(""), "cannot set both service and resource backends"))
        }
        (None, None) => {
            errs.push(FieldError::invalid(path, Value::from(""), "resource or service backend is required"))
        }
        (Some(s), None) => {
            let name = str_at(s, &["name"]);
            for m in is_dns1035_label(name) {
                errs.push(FieldError::invalid(format!("{path}.service.name"), Value::from(name), m));
            }
            let port = s.get("port").unwrap_or(&Value::Null);
            let pname = str_at(port, &["name"]);
            let pnum = int_at(port, &["number"]).unwrap_or(0);
            match (pname.is_empty(), pnum == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    format!("{path}.service.port"),
                    port.clone(),
                    "cannot set both port name & port number",
                )),
                (true, true) => errs.push(FieldError::invalid(
                    format!("{path}.service.port"),
                    port.clone(),
                    "port name or number is required",
                )),
                (false, true) => {
                    validate_port_num_or_name(&Value::from(pname), &format!("{path}.service.port.name"), errs)
                }
                (true, false) => {
                    validate_port_num_or_name(&Value::from(pnum), &format!("{path}.service.port.number"), errs)
                }
            }
        }
        (None, Some(r)) => {
            if str_at(r, &["kind"]).is_empty() {
                errs.push(FieldError::required(format!("{path}.resource.kind"), ""));
            }
            if str_at(r, &["name"]).is_empty() {
                errs.push(FieldError::required(format!("{path}.resource.name"), ""));
            }
        }
    }
}

fn validate_ingress(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let rules = arr_at(spec, &["rules"]);
    let default = spec.get("defaultBackend").filter(|v| v.is_object());
    if rules.is_empty() && default.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            Value::Array(vec![]),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        validate_ingress_backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("spec.rules[{i}]");
        let host = str_at(rule, &["host"]);
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    format!("{rp}.host"),
                    Value::from(host),
                    "must be a DNS name, not an IP address",
                ));
            } else if let Some(rest) = host.strip_prefix("*.") {
                for m in is_dns1123_subdomain(rest) {
                    errs.push(FieldError::invalid(format!("{rp}.host"), Value::from(host), m));
                }
            } else {
                for m in is_dns1123_subdomain(host) {
                    errs.push(FieldError::invalid(format!("{rp}.host"), Value::from(host), m));
                }
            }
        }
        let Some(http) = rule.get("http").filter(|v| v.is_object()) else {
            continue;
        };
        let paths = arr_at(http, &["paths"]);
        if paths.is_empty() {
            errs.push(FieldError::required(format!("{rp}.http.paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = format!("{rp}.http.paths[{j}]");
            let path = str_at(p, &["path"]);
            match str_at(p, &["pathType"]) {
                "" => errs.push(FieldError::required(format!("{pp}.pathType"), "pathType must be specified")),
                "Exact" | "Prefix" => {
                    if !path.starts_with('/') {
                        errs.push(FieldError::invalid(
                            format!("{pp}.path"),
                            Value::from(path),
                            "must be an absolute path",
                        ));
                    }
                }
                "ImplementationSpecific" => {
                    if !path.is_empty() && !path.starts_with('/') {
                        errs.push(FieldError::invalid(
                            format!("{pp}.path"),
                            Value::from(path),
                            "must be an absolute path",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    format!("{pp}.pathType"),
                    Value::from(other),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            validate_ingress_backend(p.get("backend").unwrap_or(&Value::Null), &format!("{pp}.backend"), errs);
        }
    }
    for (i, tls) in arr_at(spec, &["tls"]).iter().enumerate() {
        for (j, h) in arr_at(tls, &["hosts"]).iter().enumerate() {
            let h = h.as_str().unwrap_or("");
            let check = h.strip_prefix("*.").unwrap_or(h);
            for m in is_dns1123_subdomain(check) {
                errs.push(FieldError::invalid(format!("spec.tls[{i}].hosts[{j}]"), Value::from(h), m));
            }
        }
    }
}

fn validate_network_policy(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_label_selector(spec.get("podSelector").unwrap_or(&Value::Null), "spec.podSelector", errs);
    for (i, t) in arr_at(spec, &["policyTypes"]).iter().enumerate() {
        enum_field(Some(t), &format!("spec.policyTypes[{i}]"), &["Ingress", "Egress"], true, errs);
    }
    if arr_at(spec, &["policyTypes"]).len() > 2 {
        errs.push(FieldError::invalid(
            "spec.policyTypes",
            spec.get("policyTypes").cloned().unwrap_or(Value::Null),
            "may not specify more than two policyTypes",
        ));
    }
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr_at(spec, &[dir]).iter().enumerate() {
            let rp = format!("spec.{dir}[{i}]");
            for (j, port) in arr_at(rule, &["ports"]).iter().enumerate() {
                let pp = format!("{rp}.ports[{j}]");
                enum_field(port.get("protocol"), &format!("{pp}.protocol"), &["SCTP", "TCP", "UDP"], false, errs);
                if let Some(p) = port.get("port").filter(|p| !p.is_null()) {
                    validate_port_num_or_name(p, &format!("{pp}.port"), errs);
                }
            }
            for (j, peer) in arr_at(rule, &[peers]).iter().enumerate() {
                let pp = format!("{rp}.{peers}[{j}]");
                let n =
                    ["podSelector", "namespaceSelector", "ipBlock"].iter().filter(|k| at(peer, &[k]).is_some()).count();
                if n == 0 {
                    errs.push(FieldError::required(pp.clone(), "must specify a peer"));
                }
                if at(peer, &["ipBlock"]).is_some() && n > 1 {
                    errs.push(FieldError::forbidden(pp.clone(), "may not specify both ipBlock and another peer"));
                }
                for sel in ["podSelector", "namespaceSelector"] {
                    if let Some(s) = at(peer, &[sel]) {
                        validate_label_selector(s, &format!("{pp}.{sel}"), errs);
                    }
                }
            }
        }
    }
}

// ---- rbac -----------------------------------------------------------------------------------

fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in arr_at(obj, &["rules"]).iter().enumerate() {
        let rp = format!("rules[{i}]");
        if arr_at(rule, &["verbs"]).is_empty() {
            errs.push(FieldError::required(format!("{rp}.verbs"), "verbs must contain at least one value"));
        }
        let urls = arr_at(rule, &["nonResourceURLs"]);
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{rp}.nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr_at(rule, &["apiGroups"]).is_empty() || !arr_at(rule, &["resources"]).is_empty() {
                errs.push(FieldError::invalid(
                    format!("{rp}.nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr_at(rule, &["apiGroups"]).is_empty() {
            errs.push(FieldError::required(
                format!("{rp}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr_at(rule, &["resources"]).is_empty() {
            errs.push(FieldError::required(
                format!("{rp}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

fn go_role_ref(r: Option<&Value>) -> String {
    let r = r.unwrap_or(&Value::Null);
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(str_at(r, &["apiGroup"])),
        go_quote(str_at(r, &["kind"])),
        go_quote(str_at(r, &["name"]))
    )
}

fn validate_binding(obj: &Value, old: Option<&Value>, namespaced: bool, errs: &mut Vec<FieldError>) {
    let rr = obj.get("roleRef").unwrap_or(&Value::Null);
    let api_group = str_at(rr, &["apiGroup"]);
    if api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported("roleRef.apiGroup", Value::from(api_group), &[RBAC_GROUP]));
    }
    let kind = str_at(rr, &["kind"]);
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported("roleRef.kind", Value::from(kind), kinds));
    }
    let name = str_at(rr, &["name"]);
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for m in super::path_segment_errors(name, false) {
            errs.push(FieldError::invalid("roleRef.name", Value::from(name), m));
        }
    }
    for (i, s) in arr_at(obj, &["subjects"]).iter().enumerate() {
        let sp = format!("subjects[{i}]");
        let sname = str_at(s, &["name"]);
        if sname.is_empty() {
            errs.push(FieldError::required(format!("{sp}.name"), ""));
        }
        let sgroup = str_at(s, &["apiGroup"]);
        match str_at(s, &["kind"]) {
            "ServiceAccount" => {
                if !sname.is_empty() {
                    for m in is_dns1123_subdomain(sname) {
                        errs.push(FieldError::invalid(format!("{sp}.name"), Value::from(sname), m));
                    }
                }
                if !sgroup.is_empty() {
                    errs.push(FieldError::not_supported(format!("{sp}.apiGroup"), Value::from(sgroup), &[""]));
                }
                if !namespaced && str_at(s, &["namespace"]).is_empty() {
                    errs.push(FieldError::required(format!("{sp}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if sgroup != RBAC_GROUP {
                    errs.push(FieldError::not_supported(format!("{sp}.apiGroup"), Value::from(sgroup), &[RBAC_GROUP]));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{sp}.kind"),
                Value::from(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old
        && old.get("roleRef") != obj.get("roleRef")
    {
        errs.push(invalid_go("roleRef", &go_role_ref(obj.get("roleRef")), "cannot change roleRef"));
    }
}

// ---- coordination / policy / autoscaling / scheduling / storage / discovery ------------------

fn validate_lease(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(d) = int_at(spec, &["leaseDurationSeconds"])
        && d <= 0
    {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", Value::from(d), "must be greater than 0"));
    }
    nonnegative(spec, &["leaseTransitions"], "spec.leaseTransitions", errs);
}

fn validate_pdb(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let (min, max) =
        (spec.get("minAvailable").filter(|v| !v.is_null()), spec.get("maxUnavailable").filter(|v| !v.is_null()));
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid("spec", spec.clone(), "minAvailable and maxUnavailable cannot be both set"));
    }
    for (v, name) in [(min, "spec.minAvailable"), (max, "spec.maxUnavailable")] {
        if v.is_some() {
            validate_positive_int_or_percent(v, name, errs);
            not_more_than_100_percent(v, name, errs);
        }
    }
    if let Some(sel) = spec.get("selector").filter(|s| s.is_object()) {
        validate_label_selector(sel, "spec.selector", errs);
    }
    enum_field(
        spec.get("unhealthyPodEvictionPolicy"),
        "spec.unhealthyPodEvictionPolicy",
        &["AlwaysAllow", "IfHealthyBudget"],
        false,
        errs,
    );
}

fn validate_hpa(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for key in ["kind", "name"] {
        let field = format!("spec.scaleTargetRef.{key}");
        let value = str_at(target, &[key]);
        if value.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else {
            for m in super::path_segment_errors(value, false) {
                errs.push(FieldError::invalid(field.as_str(), Value::from(value), m));
            }
        }
    }
    let min = int_at(spec, &["minReplicas"]);
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid("spec.minReplicas", Value::from(m), "must be greater than or equal to 1"));
    }
    let max = int_at(spec, &["maxReplicas"]).unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid("spec.maxReplicas", Value::from(max), "must be greater than 0"));
    }
    if let Some(m) = min
        && max < m
    {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            Value::from(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    if let Some(cpu) = int_at(spec, &["targetCPUUtilizationPercentage"])
        && cpu < 1
    {
        errs.push(FieldError::invalid(
            "spec.targetCPUUtilizationPercentage",
            Value::from(cpu),
            "must be greater than 0",
        ));
    }
    for (i, m) in arr_at(spec, &["metrics"]).iter().enumerate() {
        enum_field(
            m.get("type"),
            &format!("spec.metrics[{i}].type"),
            &["ContainerResource", "External", "Object", "Pods", "Resource"],
            true,
            errs,
        );
    }
}

pub(super) fn validate_hpa_status(status: &Value, errs: &mut Vec<FieldError>) {
    nonnegative(status, &["currentReplicas"], "status.currentReplicas", errs);
    nonnegative(status, &["desiredReplicas"], "status.desiredReplicas", errs);
}

fn validate_priority_class(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let name = str_at(obj, &["metadata", "name"]);
    let value = int_at(obj, &["value"]).unwrap_or(0);
    let system = name == "system-cluster-critical" || name == "system-node-critical";
    if !system {
        if name.starts_with("system-") {
            errs.push(FieldError::forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved",
            ));
        }
        if value > 1_000_000_000 {
            errs.push(FieldError::forbidden("value", "maximum allowed value of a user defined priority is 1000000000"));
        }
    }
    enum_field(obj.get("preemptionPolicy"), "preemptionPolicy", &["Never", "PreemptLowerPriority"], false, errs);
    if let Some(old) = old {
        if int_at(old, &["value"]) != int_at(obj, &["value"]) {
            errs.push(FieldError::forbidden("value", "may not be changed in an update."));
        }
        super::immutable(obj, old, &["preemptionPolicy"], "preemptionPolicy", errs);
    }
}

fn validate_storage_class(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let prov = str_at(obj, &["provisioner"]);
    if prov.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        // upstream: ValidateQualifiedName of the lower-cased name (a `prefix/` is allowed)
        for m in crate::validation::is_qualified_name(&prov.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", Value::from(prov), m));
        }
    }
    enum_field(obj.get("reclaimPolicy"), "reclaimPolicy", &["Delete", "Retain"], false, errs);
    enum_field(obj.get("volumeBindingMode"), "volumeBindingMode", &["Immediate", "WaitForFirstConsumer"], false, errs);
    if let Some(old) = old {
        if at(obj, &["parameters"]) != at(old, &["parameters"]) {
            errs.push(FieldError::forbidden("parameters", "updates to parameters are forbidden."));
        }
        if str_at(obj, &["provisioner"]) != str_at(old, &["provisioner"]) {
            errs.push(FieldError::forbidden("provisioner", "updates to provisioner are forbidden."));
        }
        if at(obj, &["reclaimPolicy"]) != at(old, &["reclaimPolicy"]) {
            errs.push(FieldError::forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."));
        }
        super::immutable(obj, old, &["volumeBindingMode"], "volumeBindingMode", errs);
    }
}

fn validate_endpoint_slice(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let at_type = str_at(obj, &["addressType"]);
    enum_field(obj.get("addressType"), "addressType", &["FQDN", "IPv4", "IPv6"], true, errs);
    for (i, ep) in arr_at(obj, &["endpoints"]).iter().enumerate() {
        let addrs = arr_at(ep, &["addresses"]);
        if addrs.is_empty() || addrs.len() > 100 {
            errs.push(FieldError::invalid(
                format!("endpoints[{i}].addresses"),
                Value::from(addrs.len()),
                "must contain at least 1 address but no more than 100 addresses",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let msgs = if at_type == "FQDN" { is_dns1123_subdomain(a) } else { is_valid_ip(a) };
            for m in msgs {
                errs.push(FieldError::invalid(format!("endpoints[{i}].addresses[{j}]"), Value::from(a), m));
            }
        }
        let host = str_at(ep, &["hostname"]);
        if !host.is_empty() {
            for m in is_dns1123_label(host) {
                errs.push(FieldError::invalid(format!("endpoints[{i}].hostname"), Value::from(host), m));
            }
        }
    }
    for (i, p) in arr_at(obj, &["ports"]).iter().enumerate() {
        let name = str_at(p, &["name"]);
        if !name.is_empty() {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid(format!("ports[{i}].name"), Value::from(name), m));
            }
        }
        enum_field(p.get("protocol"), &format!("ports[{i}].protocol"), &["SCTP", "TCP", "UDP"], true, errs);
    }
    if let Some(old) = old {
        super::immutable(obj, old, &["addressType"], "addressType", errs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate(group, kind, obj, old, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn role_rules_need_verbs() {
        let r = json!({"rules":[{"apiGroups":[""],"resources":["pods"]}]});
        assert_eq!(
            run(RBAC_GROUP, "Role", &r, None),
            vec!["rules[0].verbs: Required value: verbs must contain at least one value"]
        );
    }

    #[test]
    fn binding_role_ref_is_immutable() {
        let old = json!({"roleRef":{"apiGroup":RBAC_GROUP,"kind":"Role","name":"a"},
            "subjects":[{"kind":"User","name":"alice","apiGroup":RBAC_GROUP}]});
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("b");
        assert_eq!(
            run(RBAC_GROUP, "RoleBinding", &new, Some(&old)),
            vec![
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"b\"}: cannot change roleRef"
            ]
        );
    }

    #[test]
    fn ingress_path_type_required() {
        let ing = json!({"spec":{"rules":[{"host":"a.example.com","http":{"paths":[
            {"path":"/","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}});
        assert_eq!(
            run("networking.k8s.io", "Ingress", &ing, None),
            vec!["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
        );
    }

    #[test]
    fn pdb_and_hpa() {
        let pdb = json!({"spec":{"minAvailable":1,"maxUnavailable":"200%"}});
        assert_eq!(run("policy", "PodDisruptionBudget", &pdb, None).len(), 2);
        let hpa = json!({"spec":{"scaleTargetRef":{"kind":"Deployment","name":"web"},"minReplicas":3,"maxReplicas":2}});
        assert_eq!(
            run("autoscaling", "HorizontalPodAutoscaler", &hpa, None),
            vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
        );
    }
}
