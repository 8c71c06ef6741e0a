//! The core (`v1`) kinds other than pod specs: Pod dispatch, Service, ConfigMap, Secret,
//! Namespace, Node, PersistentVolume(Claim), Endpoints, ReplicationController, PodTemplate.

use std::collections::HashSet;

use serde_json::Value;

use super::pod::{validate_pod, validate_pod_template, validate_port_num_or_name, validate_workload_template};
use super::{
    arr_at, at, enum_field, go_quote, int_at, invalid_go, is_config_map_key, is_dns1123_label, is_dns1123_subdomain,
    is_qualified_name, is_valid_ip, is_valid_port_num, nonnegative, obj_at, str_at, unique_label_name, validate_labels,
};
use crate::quantity::parse_quantity_value;
use crate::status::FieldError;

/// Upstream's `MaxSecretSize` (also the ConfigMap limit).
const MAX_DATA_SIZE: usize = 1024 * 1024;

pub(super) fn validate(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match kind {
        "Pod" => validate_pod(obj, old, errs),
        "Service" => validate_service(obj, old, errs),
        "ConfigMap" => validate_config_map(obj, old, errs),
        "Secret" => validate_secret(obj, old, errs),
        "Namespace" => validate_namespace(obj, errs),
        "Node" => validate_node(obj, errs),
        "PersistentVolumeClaim" => validate_pvc(obj, old, errs),
        "PersistentVolume" => validate_pv(obj, errs),
        "Endpoints" => validate_endpoints(obj, errs),
        "ReplicationController" => validate_rc(obj, errs),
        "PodTemplate" => validate_pod_template(obj.get("template").unwrap_or(&Value::Null), "template", errs),
        _ => {}
    }
}

// ---- Service --------------------------------------------------------------------------------

fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = str_at(spec, &["type"]);
    let headless = str_at(spec, &["clusterIP"]) == "None";
    let ports = arr_at(spec, &["ports"]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "ClusterIP" | "NodePort" | "LoadBalancer" => {}
        "ExternalName" => {
            let name = str_at(spec, &["externalName"]);
            if name.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                let trimmed = name.strip_suffix('.').unwrap_or(name);
                let msgs = is_dns1123_subdomain(trimmed);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid("spec.externalName", Value::from(trimmed), msgs.join(",")));
                } else if !trimmed.contains('.') {
                    errs.push(FieldError::invalid(
                        "spec.externalName",
                        Value::from(trimmed),
                        "should be a domain with at least two segments separated by dots",
                    ));
                }
            }
        }
        "" => errs.push(FieldError::required("spec.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.type",
            Value::from(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        unique_label_name(str_at(p, &["name"]), &format!("{pp}.name"), require_name, &mut names, errs);
        let port = int_at(p, &["port"]).unwrap_or(0);
        for m in is_valid_port_num(port) {
            errs.push(FieldError::invalid(format!("{pp}.port"), Value::from(port), m));
        }
        enum_field(p.get("protocol"), &format!("{pp}.protocol"), &["SCTP", "TCP", "UDP"], true, errs);
        if let Some(tp) = at(p, &["targetPort"])
            && (!headless || tp != &Value::from(0))
        {
            validate_port_num_or_name(tp, &format!("{pp}.targetPort"), errs);
        }
        let proto = str_at(p, &["protocol"]);
        if !keys.insert((proto.to_string(), port)) {
            let go = format!(
                "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                go_quote(proto)
            );
            errs.push(FieldError::new(crate::status::FieldErrorType::Duplicate, pp.clone(), None, go));
        }
        if let Some(np) = int_at(p, &["nodePort"]).filter(|n| *n != 0) {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(
                    format!("{pp}.nodePort"),
                    format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !(30000..=32767).contains(&np) {
                errs.push(FieldError::invalid(
                    format!("{pp}.nodePort"),
                    Value::from(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            } else if !node_ports.insert((proto.to_string(), np)) {
                errs.push(FieldError::duplicate(format!("{pp}.nodePort"), Value::from(np)));
            }
        }
    }
    let cip = str_at(spec, &["clusterIP"]);
    if !cip.is_empty() && cip != "None" {
        for m in is_valid_ip(cip) {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", Value::from(cip), m));
        }
    }
    for (i, ip) in arr_at(spec, &["clusterIPs"]).iter().enumerate().skip(1) {
        let ip = ip.as_str().unwrap_or("");
        for m in is_valid_ip(ip) {
            errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), Value::from(ip), m));
        }
    }
    if let Some(first) = arr_at(spec, &["clusterIPs"]).first().and_then(Value::as_str)
        && !cip.is_empty()
        && first != cip
    {
        errs.push(FieldError::invalid("spec.clusterIPs[0]", Value::from(first), "must match `clusterIP` when set"));
    }
    for (i, ip) in arr_at(spec, &["externalIPs"]).iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        for m in is_valid_ip(ip) {
            errs.push(FieldError::invalid(format!("spec.externalIPs[{i}]"), Value::from(ip), m));
        }
    }
    validate_labels(spec.get("selector"), "spec.selector", errs);
    enum_field(spec.get("sessionAffinity"), "spec.sessionAffinity", &["ClientIP", "None"], ty != "ExternalName", errs);
    let external = ty == "NodePort" || ty == "LoadBalancer" || !arr_at(spec, &["externalIPs"]).is_empty();
    let etp = spec.get("externalTrafficPolicy");
    if external {
        enum_field(etp, "spec.externalTrafficPolicy", &["Cluster", "Local"], true, errs);
    } else if let Some(v) = etp.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            Value::from(v),
            "may only be set for externally-accessible services",
        ));
    }
    if ty != "ExternalName" {
        enum_field(spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", &["Cluster", "Local"], false, errs);
    }
    enum_field(
        spec.get("ipFamilyPolicy"),
        "spec.ipFamilyPolicy",
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
        false,
        errs,
    );
    for (i, f) in arr_at(spec, &["ipFamilies"]).iter().enumerate() {
        enum_field(Some(f), &format!("spec.ipFamilies[{i}]"), &["IPv4", "IPv6"], true, errs);
    }
    if let Some(old) = old {
        let ospec = old.get("spec").unwrap_or(&Value::Null);
        let oty = str_at(ospec, &["type"]);
        if ty != "ExternalName" && oty != "ExternalName" {
            let old_ip = str_at(ospec, &["clusterIP"]);
            if !old_ip.is_empty() && cip != old_ip {
                let ips = spec.get("clusterIPs").cloned().unwrap_or(Value::Array(vec![]));
                let go = super::go_string_slice(Some(&ips));
                errs.push(invalid_go("spec.clusterIPs[0]", &go, "may not change once set"));
            }
        }
    }
}

pub(super) fn validate_service_status(status: &Value, errs: &mut Vec<FieldError>) {
    for (i, ing) in arr_at(status, &["loadBalancer", "ingress"]).iter().enumerate() {
        let ip = str_at(ing, &["ip"]);
        if !ip.is_empty() {
            for m in is_valid_ip(ip) {
                errs.push(FieldError::invalid(format!("status.loadBalancer.ingress[{i}].ip"), Value::from(ip), m));
            }
        }
    }
}

// ---- ConfigMap / Secret ---------------------------------------------------------------------

fn validate_config_map(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let mut total = 0usize;
    let binary_keys: HashSet<&str> =
        obj_at(obj, &["binaryData"]).map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    if let Some(data) = obj_at(obj, &["data"]) {
        for (k, v) in data {
            validate_data_key("data", k, errs);
            if binary_keys.contains(k.as_str()) {
                errs.push(FieldError::invalid(
                    format!("data[{k}]"),
                    Value::from(k.as_str()),
                    format!("duplicate of key {k:?} present in binaryData"),
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    total += base64_data(obj_at(obj, &["binaryData"]), "binaryData", errs);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], errs);
    }
}

/// `immutable: true` freezes the data and itself.
fn immutable_data(new: &Value, old: &Value, keys: &[&str], errs: &mut Vec<FieldError>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    for k in keys {
        let empty = |v: Option<&Value>| v.is_none_or(|v| v.as_object().is_some_and(|m| m.is_empty()));
        let (a, b) = (at(new, &[k]), at(old, &[k]));
        if a != b && !(empty(a) && empty(b)) {
            errs.push(FieldError::forbidden(*k, "field is immutable when `immutable` is set"));
        }
    }
}

/// A ConfigMap or Secret key, reported at `<field>[<key>]`.
fn validate_data_key(field: &str, key: &str, errs: &mut Vec<FieldError>) {
    for m in is_config_map_key(key) {
        errs.push(FieldError::invalid(format!("{field}[{key}]"), Value::from(key), m));
    }
}

/// The keys of a map of base64 values at `field` (`binaryData`, a Secret's `data`); returns
/// the size of the values once decoded.
fn base64_data(data: Option<&serde_json::Map<String, Value>>, field: &str, errs: &mut Vec<FieldError>) -> usize {
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        validate_data_key(field, k, errs);
        total += decoded_len(v.as_str().unwrap_or(""));
    }
    total
}

/// Size in bytes of base64 text once decoded.
fn decoded_len(b64: &str) -> usize {
    let t = b64.trim_end_matches('=');
    t.len() * 3 / 4
}

fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let data = obj_at(obj, &["data"]);
    if base64_data(data, "data", errs) > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match str_at(obj, &["type"]) {
        "kubernetes.io/service-account-token"
            if str_at(obj, &["metadata", "annotations", "kubernetes.io/service-account.name"]).is_empty() =>
        {
            errs.push(FieldError::required("metadata.annotations[kubernetes.io/service-account.name]", ""));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => errs.push(FieldError::required("data[.dockercfg]", "")),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(FieldError::required("data[.dockerconfigjson]", ""))
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let (nt, ot) = (str_at(obj, &["type"]), str_at(old, &["type"]));
        if nt != ot {
            errs.push(FieldError::invalid("type", Value::from(nt), super::IMMUTABLE));
        }
        immutable_data(obj, old, &["data"], errs);
    }
}

// ---- Namespace / Node -----------------------------------------------------------------------

fn validate_namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    for f in arr_at(obj, &["spec", "finalizers"]) {
        let f = f.as_str().unwrap_or("");
        let msgs = is_qualified_name(f);
        for m in &msgs {
            errs.push(FieldError::invalid("spec.finalizers", Value::from(f), m.clone()));
        }
        if msgs.is_empty() && f != "kubernetes" && !f.contains('/') {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                Value::from(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

fn validate_node(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, t) in arr_at(obj, &["spec", "taints"]).iter().enumerate() {
        let tp = format!("spec.taints[{i}]");
        let key = str_at(t, &["key"]);
        for m in is_qualified_name(key) {
            errs.push(FieldError::invalid(format!("{tp}.key"), Value::from(key), m));
        }
        enum_field(
            t.get("effect"),
            &format!("{tp}.effect"),
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            true,
            errs,
        );
    }
    let cidr = str_at(obj, &["spec", "podCIDR"]);
    if !cidr.is_empty() && !is_cidr(cidr) {
        errs.push(FieldError::invalid(
            "spec.podCIDR",
            Value::from(cidr),
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
        _ => false,
    }
}

// ---- Persistent volumes ---------------------------------------------------------------------

const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

fn validate_access_modes(spec: &Value, errs: &mut Vec<FieldError>) {
    let modes = arr_at(spec, &["accessModes"]);
    if modes.is_empty() {
        errs.push(FieldError::required("spec.accessModes", "at least 1 access mode is required"));
    }
    for m in modes {
        let s = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&s) {
            errs.push(FieldError::not_supported("spec.accessModes", Value::from(s), ACCESS_MODES));
        }
    }
}

fn validate_pvc(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_access_modes(spec, errs);
    match at(spec, &["resources", "requests", "storage"]) {
        None => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(v) => match parse_quantity_value(v) {
            None => errs.push(FieldError::invalid(
                "spec.resources[storage]",
                v.clone(),
                crate::quantity::QUANTITY_FORMAT_ERROR,
            )),
            Some(q) if q.sign() <= 0 => errs.push(FieldError::invalid(
                "spec.resources[storage]",
                Value::from(q.to_string()),
                "must be greater than zero",
            )),
            Some(_) => {}
        },
    }
    enum_field(spec.get("volumeMode"), "spec.volumeMode", &["Block", "Filesystem"], false, errs);
    if let Some(sel) = spec.get("selector").filter(|s| s.is_object()) {
        super::validate_label_selector(sel, "spec.selector", errs);
    }
    if let Some(old) = old {
        let ospec = old.get("spec").unwrap_or(&Value::Null);
        let strip = |s: &Value, volume_name: Option<&Value>| {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                if let Some(r) = o.get_mut("resources").and_then(Value::as_object_mut) {
                    r.remove("requests");
                }
                if let Some(v) = volume_name {
                    o.insert("volumeName".into(), v.clone());
                }
            }
            s
        };
        // Binding may set volumeName once.
        let carry = if str_at(ospec, &["volumeName"]).is_empty() { spec.get("volumeName") } else { None };
        if strip(spec, None) != strip(ospec, carry) {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests for bound claims",
            ));
        }
    }
}

fn validate_pv(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_access_modes(spec, errs);
    if at(spec, &["capacity", "storage"]).is_none() {
        errs.push(FieldError::required("spec.capacity[storage]", ""));
    }
    const SOURCES: &[&str] = &[
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "hostPath",
        "glusterfs",
        "nfs",
        "rbd",
        "iscsi",
        "cinder",
        "cephfs",
        "fc",
        "flocker",
        "flexVolume",
        "azureFile",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "local",
        "storageos",
        "csi",
    ];
    let n = SOURCES.iter().filter(|s| at(spec, &[s]).is_some()).count();
    if n == 0 {
        errs.push(FieldError::required("spec", "must specify a volume type"));
    }
    enum_field(
        spec.get("persistentVolumeReclaimPolicy"),
        "spec.persistentVolumeReclaimPolicy",
        &["Delete", "Recycle", "Retain"],
        false,
        errs,
    );
    enum_field(spec.get("volumeMode"), "spec.volumeMode", &["Block", "Filesystem"], false, errs);
}

// ---- Endpoints / ReplicationController ------------------------------------------------------

fn validate_endpoints(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, subset) in arr_at(obj, &["subsets"]).iter().enumerate() {
        for key in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr_at(subset, &[key]).iter().enumerate() {
                let ip = str_at(a, &["ip"]);
                for m in is_valid_ip(ip) {
                    errs.push(FieldError::invalid(format!("subsets[{i}].{key}[{j}].ip"), Value::from(ip), m));
                }
            }
        }
        let ports = arr_at(subset, &["ports"]);
        for (j, p) in ports.iter().enumerate() {
            let pp = format!("subsets[{i}].ports[{j}]");
            let name = str_at(p, &["name"]);
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !name.is_empty() {
                for m in is_dns1123_label(name) {
                    errs.push(FieldError::invalid(format!("{pp}.name"), Value::from(name), m));
                }
            }
            let port = int_at(p, &["port"]).unwrap_or(0);
            for m in is_valid_port_num(port) {
                errs.push(FieldError::invalid(format!("{pp}.port"), Value::from(port), m));
            }
            enum_field(p.get("protocol"), &format!("{pp}.protocol"), &["SCTP", "TCP", "UDP"], true, errs);
        }
    }
}

fn validate_rc(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    nonnegative(spec, &["replicas"], "spec.replicas", errs);
    nonnegative(spec, &["minReadySeconds"], "spec.minReadySeconds", errs);
    let selector = obj_at(spec, &["selector"]);
    if selector.is_none_or(|s| s.is_empty()) {
        errs.push(FieldError::required("spec.selector", ""));
    }
    validate_labels(spec.get("selector"), "spec.selector", errs);
    let selects = |labels: Option<&Value>| {
        selector
            .filter(|s| !s.is_empty())
            .is_none_or(|sel| sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)))
    };
    let Some(tmpl) = validate_workload_template(spec, selects, errs) else {
        return;
    };
    let rp = str_at(tmpl, &["spec", "restartPolicy"]);
    if !rp.is_empty() && rp != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", Value::from(rp), &["Always"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(kind: &str, obj: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate(kind, &obj, old.as_ref(), &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata":{"name":"s"},"spec":spec})
    }

    #[test]
    fn service_ports_required_unless_headless() {
        let base = json!({"type":"ClusterIP","sessionAffinity":"None","internalTrafficPolicy":"Cluster"});
        assert_eq!(run("Service", svc(base.clone()), None), vec!["spec.ports: Required value"]);
        let mut headless = base.clone();
        headless["clusterIP"] = json!("None");
        assert!(run("Service", svc(headless), None).is_empty());
    }

    #[test]
    fn service_port_rules() {
        let spec = json!({"type":"NodePort","sessionAffinity":"None","externalTrafficPolicy":"Cluster",
            "ports":[{"port":80,"protocol":"TCP","targetPort":80,"nodePort":80},
                     {"name":"b","port":443,"protocol":"TCP","targetPort":443}]});
        assert_eq!(
            run("Service", svc(spec), None),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            ]
        );
    }

    #[test]
    fn cluster_ip_may_not_change() {
        let old =
            svc(json!({"type":"ClusterIP","sessionAffinity":"None","clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5"],
            "ports":[{"port":80,"protocol":"TCP","targetPort":80}]}));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.6");
        new["spec"]["clusterIPs"] = json!(["10.96.0.6"]);
        assert_eq!(
            run("Service", new, Some(old)),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.6\"}: may not change once set"]
        );
    }

    #[test]
    fn config_map_keys_and_immutability() {
        let cm = json!({"data":{"bad key":"v"}});
        assert_eq!(run("ConfigMap", cm, None).len(), 1);
        let old = json!({"immutable":true,"data":{"a":"1"}});
        let new = json!({"immutable":true,"data":{"a":"2"}});
        assert_eq!(
            run("ConfigMap", new, Some(old)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn secret_type_requirements() {
        let s = json!({"type":"kubernetes.io/tls","data":{"tls.crt":"YQ=="}});
        assert_eq!(run("Secret", s, None), vec!["data[tls.key]: Required value"]);
    }

    #[test]
    fn pvc_needs_storage_and_is_immutable() {
        let pvc = json!({"spec":{"accessModes":["ReadWriteOnce"]}});
        assert_eq!(run("PersistentVolumeClaim", pvc, None), vec!["spec.resources[storage]: Required value"]);
        let old = json!({"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}});
        let mut new = old.clone();
        new["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(run("PersistentVolumeClaim", new.clone(), Some(old.clone())).is_empty());
        new["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(run("PersistentVolumeClaim", new, Some(old)).len(), 1);
    }
}
