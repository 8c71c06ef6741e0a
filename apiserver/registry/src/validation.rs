//! Validation of built-in kinds on create, update and status update, with upstream's messages.
//!
//! Works on JSON objects (already defaulted by `defaults::apply_defaults`). Owns the
//! shared string checks (`is_dns1123_subdomain`, `is_qualified_name`, ...), the name
//! rule of each resource, metadata checks (`meta`), and one submodule per API group
//! family: `pod` (pod specs and templates), `core`, `apps`, `batch`, `other`
//! (networking, rbac, coordination, policy, autoscaling, scheduling, storage).
//! Field paths and messages are upstream's (`spec.template.spec.containers[0].image`).

mod apps;
mod batch;
mod core;
mod meta;
mod other;
mod pod;

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::status::{FieldError, FieldErrorType};

pub(crate) use pod::VOLUME_SOURCES;

/// How upstream validates `metadata.name` of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// Anything usable as a URL path segment (RBAC kinds, CSRs).
    PathSegment,
    /// Not validated (reviews: tokenreviews, subjectaccessreviews, ...).
    None,
    /// DNS-1035 label (services).
    Dns1035Label,
}

/// How upstream validates `metadata.name` of `resource` in `group`.
pub fn name_rule(group: &str, resource: &str) -> NameRule {
    match (group, resource) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("certificates.k8s.io", "certificatesigningrequests") => NameRule::PathSegment,
        ("authentication.k8s.io", _) | ("authorization.k8s.io", _) => NameRule::None,
        _ => NameRule::Subdomain,
    }
}

/// Whether `resource` is cluster-scoped (`Some(true)`), namespaced (`Some(false)`) or unknown here.
pub(crate) fn cluster_scoped(group: &str, resource: &str) -> Option<bool> {
    const CLUSTER: &[(&str, &str)] = &[
        ("", "namespaces"),
        ("", "nodes"),
        ("", "persistentvolumes"),
        ("", "componentstatuses"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "volumeattributesclasses"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "ipaddresses"),
        ("networking.k8s.io", "servicecidrs"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("apiregistration.k8s.io", "apiservices"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
        ("certificates.k8s.io", "certificatesigningrequests"),
        ("flowcontrol.apiserver.k8s.io", "flowschemas"),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
        ("authentication.k8s.io", "tokenreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ];
    const NAMESPACED_GROUPS: &[&str] =
        &["apps", "batch", "autoscaling", "policy", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io"];
    if CLUSTER.contains(&(group, resource)) {
        return Some(true);
    }
    if NAMESPACED_GROUPS.contains(&group) {
        return Some(false);
    }
    match (group, resource) {
        ("", _) => Some(false),
        ("rbac.authorization.k8s.io", "roles" | "rolebindings") => Some(false),
        ("networking.k8s.io", "ingresses" | "networkpolicies") => Some(false),
        ("storage.k8s.io", "csistoragecapacities") => Some(false),
        ("authorization.k8s.io", "localsubjectaccessreviews") => Some(false),
        _ => None,
    }
}

/// Everything upstream checks on create: metadata and the kind's own fields.
pub fn validate_create(group: &str, version: &str, kind: &str, resource: &str, obj: &Value) -> Vec<FieldError> {
    let _ = version;
    let mut errs = Vec::new();
    meta::validate_object_meta(obj, name_rule(group, resource), cluster_scoped(group, resource), &mut errs);
    validate_kind(group, kind, obj, None, &mut errs);
    errs
}

/// On update: metadata update rules, the kind's own fields and its immutable fields.
pub fn validate_update(
    group: &str,
    version: &str,
    kind: &str,
    resource: &str,
    new: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let _ = (version, resource);
    let mut errs = Vec::new();
    meta::validate_object_meta_update(new, old, &mut errs);
    validate_kind(group, kind, new, Some(old), &mut errs);
    errs
}

/// Status-subresource updates: metadata update rules and the status only.
pub fn validate_status_update(
    group: &str,
    version: &str,
    kind: &str,
    resource: &str,
    new: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let _ = (version, resource);
    let mut errs = Vec::new();
    meta::validate_object_meta_update(new, old, &mut errs);
    let status = new.get("status").unwrap_or(&Value::Null);
    match (group, kind) {
        ("apps", "Deployment") => apps::validate_deployment_status(status, &mut errs),
        ("apps", "ReplicaSet" | "StatefulSet") | ("", "ReplicationController") => {
            apps::validate_replicas_status(status, &mut errs)
        }
        ("apps", "DaemonSet") => apps::validate_daemonset_status(status, &mut errs),
        ("batch", "Job") => batch::validate_job_status(status, &mut errs),
        ("", "Pod") => pod::validate_pod_status(status, &mut errs),
        ("", "Service") => core::validate_service_status(status, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => other::validate_hpa_status(status, &mut errs),
        _ => {}
    }
    errs
}

/// The kind-specific part of create (`old == None`) and update validation.
fn validate_kind(group: &str, kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    match group {
        "" => core::validate(kind, obj, old, errs),
        "apps" => apps::validate(kind, obj, old, errs),
        "batch" => batch::validate(kind, obj, old, errs),
        _ => other::validate(group, kind, obj, old, errs),
    }
}

// ---------------------------------------------------------------------------------------------
// String checks (k8s.io/apimachinery/pkg/util/validation).

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR: &str = "a valid percent string must be a numeric string followed by an ending '%'";

fn anchored(fmt: &str) -> Regex {
    // The patterns are constants of this module; a failure here is a programming error caught by tests.
    Regex::new(&format!("^(?:{fmt})$")).unwrap_or_else(|_| Regex::new("^$").unwrap_or_else(|_| unreachable!()))
}

static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT));
static DNS1035_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static CONFIG_KEY_RE: LazyLock<Regex> = LazyLock::new(|| anchored(CONFIG_KEY_FMT));
static PERCENT_RE: LazyLock<Regex> = LazyLock::new(|| anchored(PERCENT_FMT));

/// Upstream's `RegexError`: the message, examples and the regex.
pub(crate) fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", ex.join(" or "))
}

pub(crate) fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

pub(crate) fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Upstream's usual pair of checks: at most `max` bytes, and the whole of `s` matching `re`
/// (reported with `msg`, the pattern `fmt` and `examples`).
fn max_len_and_pattern(s: &str, max: usize, re: &Regex, msg: &str, fmt: &str, examples: &[&str]) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > max {
        errs.push(max_len_error(max));
    }
    if !re.is_match(s) {
        errs.push(regex_error(msg, fmt, examples));
    }
    errs
}

/// A DNS-1123 subdomain (`example.com`): most object names.
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    max_len_and_pattern(s, 253, &DNS1123_SUBDOMAIN_RE, DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"])
}

/// A DNS-1123 label (`my-name`): namespaces, container names, port names of services.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !DNS1123_LABEL_RE.is_match(s) {
        if DNS1123_SUBDOMAIN_RE.is_match(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// A DNS-1035 label (`my-name`, starts with a letter): service names.
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    max_len_and_pattern(s, 63, &DNS1035_LABEL_RE, DNS1035_LABEL_ERR, DNS1035_LABEL_FMT, &["my-name", "abc-123"])
}

fn qualified_name_regex_error() -> String {
    regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
}

/// A qualified name (`example.com/MyName`): label and annotation keys, finalizers.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for m in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {m}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                qualified_name_regex_error()
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!("name part {}", qualified_name_regex_error()));
    }
    errs
}

/// A label value: empty, or up to 63 alphanumerics with `-_.` inside.
pub fn is_valid_label_value(s: &str) -> Vec<String> {
    max_len_and_pattern(s, 63, &LABEL_VALUE_RE, LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"])
}

/// A key of a ConfigMap or Secret.
pub fn is_config_map_key(s: &str) -> Vec<String> {
    let mut errs = max_len_and_pattern(
        s,
        253,
        &CONFIG_KEY_RE,
        CONFIG_KEY_ERR,
        CONFIG_KEY_FMT,
        &["key.name", "KEY_NAME", "key-name"],
    );
    if s == "." {
        errs.push("must not be '.'".to_string());
    } else if s == ".." {
        errs.push("must not be '..'".to_string());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// A port number 1..=65535.
pub fn is_valid_port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) { Vec::new() } else { vec![inclusive_range_error(1, 65535)] }
}

/// A named port (IANA service name): up to 15 of `[-a-z0-9]` with a letter, no `--`, no edge `-`.
pub fn is_valid_port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len_error(15));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `25%`.
pub fn is_valid_percent(s: &str) -> Vec<String> {
    if PERCENT_RE.is_match(s) { Vec::new() } else { vec![regex_error(PERCENT_ERR, PERCENT_FMT, &["1%", "93%"])] }
}

/// An IP address as upstream accepts it (no leading zeros, no zone).
pub fn is_valid_ip(s: &str) -> Vec<String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        Vec::new()
    } else {
        vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()]
    }
}

/// The name check of a rule; `prefix` for `generateName` (a trailing `-` is allowed).
pub(crate) fn name_errors(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = if prefix && name.len() > 1 && name.ends_with('-') {
        // Upstream replaces the last two characters with "a" before checking.
        let mut end = name.len() - 2;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        masked = format!("{}a", &name[..end]);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::Subdomain => is_dns1123_subdomain(name),
        NameRule::Label => is_dns1123_label(name),
        NameRule::Dns1035Label => is_dns1035_label(name),
        NameRule::None => Vec::new(),
        NameRule::PathSegment => path_segment_errors(name, prefix),
    }
}

fn path_segment_errors(name: &str, prefix: bool) -> Vec<String> {
    if !prefix {
        for bad in [".", ".."] {
            if name == bad {
                return vec![format!("may not be '{bad}'")];
            }
        }
    }
    ["/", "%"].iter().filter(|c| name.contains(**c)).map(|c| format!("may not contain '{c}'")).collect()
}

// ---------------------------------------------------------------------------------------------
// Shared JSON helpers for the submodules.

pub(crate) const IS_NEGATIVE: &str = "must be greater than or equal to 0";
pub(crate) const IMMUTABLE: &str = "field is immutable";

/// Walk `keys` into `v`.
pub(crate) fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for k in keys {
        cur = cur.get(*k)?;
    }
    if cur.is_null() { None } else { Some(cur) }
}

pub(crate) fn str_at<'a>(v: &'a Value, keys: &[&str]) -> &'a str {
    at(v, keys).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn int_at(v: &Value, keys: &[&str]) -> Option<i64> {
    at(v, keys).and_then(Value::as_i64)
}

pub(crate) fn arr_at<'a>(v: &'a Value, keys: &[&str]) -> &'a [Value] {
    at(v, keys).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

pub(crate) fn obj_at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a serde_json::Map<String, Value>> {
    at(v, keys).and_then(Value::as_object)
}

/// An `Invalid` error whose value is shown as Go's `%#v` text (`map[string]string{...}`).
pub(crate) fn invalid_go(field: impl Into<String>, go_value: &str, detail: &str) -> FieldError {
    FieldError::new(FieldErrorType::Invalid, field, None, format!("{go_value}: {detail}"))
}

/// The `name` of a list member (volume, container, service port) at `field`: required when
/// `required`, a DNS-1123 label, and not already in `names` (which it joins).
pub(crate) fn unique_label_name(
    name: &str,
    field: &str,
    required: bool,
    names: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    if name.is_empty() {
        if required {
            errs.push(FieldError::required(field, ""));
        }
        return;
    }
    for m in is_dns1123_label(name) {
        errs.push(FieldError::invalid(field, Value::from(name), m));
    }
    if !names.insert(name.to_string()) {
        errs.push(FieldError::duplicate(field, Value::from(name)));
    }
}

/// `must be greater than or equal to 0` for an integer field that is negative.
pub(crate) fn nonnegative(v: &Value, keys: &[&str], field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = int_at(v, keys)
        && n < 0
    {
        errs.push(FieldError::invalid(field, Value::from(n), IS_NEGATIVE));
    }
}

/// Required / NotSupported check of an enum string field.
pub(crate) fn enum_field(
    v: Option<&Value>,
    field: &str,
    supported: &[&str],
    required: bool,
    errs: &mut Vec<FieldError>,
) {
    match v.and_then(Value::as_str) {
        None | Some("") => {
            if required {
                errs.push(FieldError::required(field, ""));
            }
        }
        Some(s) if supported.contains(&s) => {}
        Some(s) => errs.push(FieldError::not_supported(field, Value::from(s), supported)),
    }
}

/// Go's `%#v` of a quoted string.
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `%#v` of a `map[string]string` held in `v` (`map[string]string(nil)` when absent).
pub(crate) fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v.as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
pub(crate) fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a.iter().map(|s| go_quote(s.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`.
pub(crate) fn go_label_selector(v: Option<&Value>) -> String {
    let Some(sel) = v.filter(|v| v.is_object()) else {
        return "(*v1.LabelSelector)(nil)".to_string();
    };
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_at(r, &["key"])),
                        go_quote(str_at(r, &["operator"])),
                        go_string_slice(r.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}", go_string_map(sel.get("matchLabels")), exprs)
}

/// Go's `%#v` of an `intstr.IntOrString`.
pub(crate) fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", go_quote(s)),
        Some(Value::Number(n)) => format!("intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}", n),
        _ => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
    }
}

/// Validate every key and value of a label map at `field`.
pub(crate) fn validate_labels(v: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) {
    let Some(map) = v.and_then(Value::as_object) else {
        return;
    };
    for (k, val) in map {
        for m in is_qualified_name(k) {
            errs.push(FieldError::invalid(field, Value::from(k.as_str()), m));
        }
        let s = val.as_str().unwrap_or("");
        for m in is_valid_label_value(s) {
            errs.push(FieldError::invalid(field, Value::from(s), m));
        }
    }
}

/// Validate a `metav1.LabelSelector` at `field`.
pub(crate) fn validate_label_selector(sel: &Value, field: &str, errs: &mut Vec<FieldError>) {
    for (i, req) in arr_at(sel, &["matchExpressions"]).iter().enumerate() {
        let p = format!("{field}.matchExpressions[{i}]");
        let values = arr_at(req, &["values"]);
        match str_at(req, &["operator"]) {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                Value::from(op),
                "not a valid selector operator",
            )),
        }
        let key = str_at(req, &["key"]);
        for m in is_qualified_name(key) {
            errs.push(FieldError::invalid(format!("{p}.key"), Value::from(key), m));
        }
    }
    validate_labels(sel.get("matchLabels"), &format!("{field}.matchLabels"), errs);
}

/// Whether a label selector (JSON) matches a label map (JSON).
pub(crate) fn selector_matches(sel: &Value, labels: Option<&Value>) -> bool {
    let empty = serde_json::Map::new();
    let labels = labels.and_then(Value::as_object).unwrap_or(&empty);
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    for req in arr_at(sel, &["matchExpressions"]) {
        let key = str_at(req, &["key"]);
        let values: Vec<&str> = arr_at(req, &["values"]).iter().filter_map(Value::as_str).collect();
        let ok = match str_at(req, &["operator"]) {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector selects nothing at all (no matchLabels and no matchExpressions).
pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    obj_at(sel, &["matchLabels"]).is_none_or(|m| m.is_empty()) && arr_at(sel, &["matchExpressions"]).is_empty()
}

/// Positive int or percent (`maxSurge`, `maxUnavailable`, PDB fields).
pub(crate) fn validate_positive_int_or_percent(v: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) {
    match v {
        Some(Value::String(s)) => {
            for m in is_valid_percent(s) {
                errs.push(invalid_go(field, &go_int_or_string(v), &m));
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
            errs.push(FieldError::invalid(field, Value::Number(n.clone()), IS_NEGATIVE));
        }
        _ => {}
    }
}

/// The numeric value of an int-or-percent (`25%` → 25), and whether it was a percent.
pub(crate) fn int_or_percent_value(v: Option<&Value>) -> (i64, bool) {
    match v {
        Some(Value::String(s)) => (s.trim_end_matches('%').parse().unwrap_or(0), s.ends_with('%')),
        Some(Value::Number(n)) => (n.as_i64().unwrap_or(0), false),
        _ => (0, false),
    }
}

pub(crate) fn not_more_than_100_percent(v: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) {
    let (n, pct) = int_or_percent_value(v);
    if pct && n > 100 {
        errs.push(invalid_go(field, &go_int_or_string(v), "must not be greater than 100%"));
    }
}

/// `field is immutable` when `new` differs from `old` at `keys` (absent == null).
pub(crate) fn immutable(new: &Value, old: &Value, keys: &[&str], field: &str, errs: &mut Vec<FieldError>) {
    let (a, b) = (at(new, keys), at(old, keys));
    if a != b {
        errs.push(FieldError::invalid(field, a.cloned().unwrap_or(Value::Null), IMMUTABLE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_name_message_is_upstreams() {
        let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name","namespace":"default"},
            "spec":{"containers":[{"name":"c","image":"nginx","imagePullPolicy":"Always","terminationMessagePolicy":"File"}],
                    "restartPolicy":"Always","dnsPolicy":"ClusterFirst"}});
        let errs = validate_create("", "v1", "Pod", "pods", &pod);
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
    }

    #[test]
    fn string_checks() {
        assert!(is_dns1123_subdomain("a.b-c").is_empty());
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254)).len(), 1);
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots".to_string()]);
        assert_eq!(
            is_dns1123_label("A"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(
            is_dns1035_label("1abc"),
            vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
        assert!(is_qualified_name("example.com/MyName").is_empty());
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert_eq!(is_qualified_name("/x"), vec!["prefix part must be non-empty".to_string()]);
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert!(is_valid_label_value("").is_empty());
        assert!(!is_valid_label_value("-x").is_empty());
        assert_eq!(is_valid_label_value(&"a".repeat(64))[0], "must be no more than 63 characters");
        assert!(is_config_map_key("..x").contains(&"must not start with '..'".to_string()));
        assert!(is_valid_port_name("http").is_empty());
        assert_eq!(is_valid_port_name("80"), vec!["must contain at least one letter (a-z)".to_string()]);
        assert_eq!(is_valid_port_num(0), vec!["must be between 1 and 65535, inclusive".to_string()]);
    }

    #[test]
    fn bad_label_key_is_reported() {
        let cm = json!({"metadata":{"name":"x","namespace":"default","labels":{"bad key":"v"}}});
        let errs = validate_create("", "v1", "ConfigMap", "configmaps", &cm);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
    }

    #[test]
    fn name_rules() {
        assert_eq!(name_rule("", "pods"), NameRule::Subdomain);
        assert_eq!(name_rule("", "namespaces"), NameRule::Label);
        assert_eq!(name_rule("", "services"), NameRule::Dns1035Label);
        assert_eq!(name_rule("rbac.authorization.k8s.io", "roles"), NameRule::PathSegment);
        assert_eq!(name_errors(NameRule::PathSegment, "system:controller:x", false), Vec::<String>::new());
        assert_eq!(name_errors(NameRule::PathSegment, "a/b", false), vec!["may not contain '/'".to_string()]);
        assert!(name_errors(NameRule::Subdomain, "web-", true).is_empty());
        assert!(!name_errors(NameRule::Subdomain, "web-", false).is_empty());
    }

    #[test]
    fn selector_matching() {
        let sel = json!({"matchLabels":{"app":"a"},"matchExpressions":[{"key":"tier","operator":"In","values":["x"]}]});
        assert!(selector_matches(&sel, Some(&json!({"app":"a","tier":"x"}))));
        assert!(!selector_matches(&sel, Some(&json!({"app":"a"}))));
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels":{"app":"b"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
