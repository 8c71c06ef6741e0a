//! ResourceQuota usage and admission, and LimitRange defaulting/validation, as pure functions on JSON.
//!
//! This owns what upstream splits over pkg/quota/v1 (the evaluators: what one object counts
//! against a quota, and which quota scopes it matches), plugin/pkg/admission/resourcequota (would a
//! create/update exceed a quota) and plugin/pkg/admission/limitranger (container defaults and
//! min/max/ratio checks). The quota controller and the apiserver's admission chain both call it.
//!
//! Quota admission reads `status.hard` and `status.used` like upstream: a quota the controller has
//! not yet populated does not constrain anything.

use crate::quantity::{Format, Quantity, parse_quantity, parse_quantity_value};
use crate::status::ApiError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A resource list: resource name → quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The annotation LimitRanger sets on pods it defaulted.
pub const LIMIT_RANGER_ANNOTATION: &str = "kubernetes.io/limit-ranger";

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];
const POD_RESOURCE_PREFIXES: &[&str] = &["hugepages-", "requests.hugepages-"];
/// Compute resources every container must set when a quota tracks them (upstream's validationSet).
const POD_VALIDATION_SET: &[&str] =
    &["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"];
const SERVICE_RESOURCES: &[&str] = &["count/services", "services", "services.nodeports", "services.loadbalancers"];
const PVC_RESOURCES: &[&str] = &["count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage"];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Quantity addition that, like upstream, adopts the other side's format when `a` is zero.
fn add_q(a: &Quantity, b: &Quantity) -> Quantity {
    if a.is_zero() { Quantity::from_nanos(b.nanos(), b.format) } else { a.add(b) }
}

fn one() -> Quantity {
    Quantity::from_int(1, Format::DecimalSI)
}

fn zero() -> Quantity {
    Quantity::zero()
}

/// Parse a JSON resource list (`{"cpu": "100m"}`); entries that are not quantities are skipped.
pub fn resource_list(v: Option<&Value>) -> ResourceList {
    let mut out = ResourceList::new();
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            if let Some(q) = parse_quantity_value(v) {
                out.insert(k.clone(), q);
            }
        }
    }
    out
}

/// A resource list as JSON, in canonical quantity form.
pub fn resource_list_to_value(list: &ResourceList) -> Value {
    Value::Object(list.iter().map(|(k, q)| (k.clone(), q.to_value())).collect::<Map<_, _>>())
}

/// `a + b`, key by key.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        let sum = match out.get(k) {
            Some(cur) => add_q(cur, q),
            None => *q,
        };
        out.insert(k.clone(), sum);
    }
    out
}

fn mask(list: &ResourceList, names: &BTreeSet<String>) -> ResourceList {
    list.iter().filter(|(k, _)| names.contains(*k)).map(|(k, q)| (k.clone(), *q)).collect()
}

fn pretty(list: &ResourceList) -> String {
    list.iter().map(|(k, q)| format!("{k}={q}")).collect::<Vec<_>>().join(",")
}

fn is_native_resource(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

/// Upstream's `IsExtendedResourceName`: a qualified name outside the kubernetes.io domain.
fn is_extended_resource(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    match name.split_once('/') {
        Some((domain, n)) => !domain.is_empty() && !n.is_empty() && !n.contains('/'),
        None => false,
    }
}

fn is_extended_for_quota(name: &str) -> bool {
    name.strip_prefix("requests.").is_some_and(is_extended_resource)
}

/// The object-count resource name upstream uses: `count/pods`, `count/deployments.apps`.
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() { format!("count/{resource}") } else { format!("count/{resource}.{group}") }
}

/// Legacy (pre-`count/`) name of a core resource's object count, when it has one.
fn legacy_count_name(group: &str, resource: &str) -> Option<&'static str> {
    if !group.is_empty() {
        return None;
    }
    match resource {
        "configmaps" => Some("configmaps"),
        "secrets" => Some("secrets"),
        "replicationcontrollers" => Some("replicationcontrollers"),
        "resourcequotas" => Some("resourcequotas"),
        _ => None,
    }
}

/// The subset of `names` that the evaluator for `group`/`resource` tracks (upstream's
/// `MatchingResources`).
pub fn matching_resources(group: &str, resource: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| match (group, resource) {
            ("", "pods") => {
                POD_RESOURCES.contains(&n.as_str())
                    || POD_RESOURCE_PREFIXES.iter().any(|p| n.starts_with(p))
                    || is_extended_for_quota(n)
            }
            ("", "services") => SERVICE_RESOURCES.contains(&n.as_str()),
            ("", "persistentvolumeclaims") => {
                PVC_RESOURCES.contains(&n.as_str())
                    || n.split_once(STORAGE_CLASS_SUFFIX)
                        .is_some_and(|(_, r)| r == "requests.storage" || r == "persistentvolumeclaims")
            }
            _ => **n == object_count_name(group, resource) || legacy_count_name(group, resource) == Some(n.as_str()),
        })
        .cloned()
        .collect()
}

/// Which (group, resource) pairs a quota with these hard resource names needs counted: the
/// built-in evaluators plus one generic object counter per `count/<resource>.<group>` name.
pub fn tracked_kinds(names: &[String]) -> Vec<(String, String)> {
    let mut out: BTreeSet<(String, String)> = BTreeSet::new();
    for (g, r) in [("", "pods"), ("", "services"), ("", "persistentvolumeclaims"), ("", "configmaps"), ("", "secrets")]
        .into_iter()
        .chain([("", "replicationcontrollers"), ("", "resourcequotas")])
    {
        if !matching_resources(g, r, names).is_empty() {
            out.insert((g.to_string(), r.to_string()));
        }
    }
    for n in names {
        if let Some(rest) = n.strip_prefix("count/") {
            let (r, g) = rest.split_once('.').unwrap_or((rest, ""));
            if !r.is_empty() {
                out.insert((g.to_string(), r.to_string()));
            }
        }
    }
    out.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten()
}

fn container_list(c: &Value, which: &str) -> ResourceList {
    resource_list(c.get("resources").and_then(|r| r.get(which)))
}

fn max_list(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        match out.get(k) {
            Some(cur) if cur >= q => {}
            _ => {
                out.insert(k.clone(), *q);
            }
        }
    }
    out
}

/// Upstream's `PodRequests`/`PodLimits`: sum of the app containers (and sidecars), at least the
/// largest init container (with the sidecars started before it), plus the pod overhead.
fn pod_aggregate(pod: &Value, which: &str) -> ResourceList {
    let mut total = ResourceList::new();
    for c in containers(pod, "containers") {
        total = add(&total, &container_list(c, which));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in containers(pod, "initContainers") {
        let own = container_list(c, which);
        let effective = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            total = add(&total, &own);
            sidecars = add(&sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        init_max = max_list(&init_max, &effective);
    }
    let mut out = max_list(&total, &init_max);
    let overhead = resource_list(pod.pointer("/spec/overhead"));
    if !overhead.is_empty() {
        out = add(&out, &overhead);
    }
    out
}

/// Upstream's `podComputeUsageHelper`: quota names for a set of requests and limits.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), one());
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.to_string(), *q);
            out.insert(format!("requests.{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), *q);
        }
    }
    for (k, q) in requests {
        if k.starts_with("hugepages-") {
            out.insert(k.clone(), *q);
            out.insert(format!("requests.{k}"), *q);
        }
        if is_extended_resource(k) {
            out.insert(format!("requests.{k}"), *q);
        }
    }
    out
}

/// Whether a pod still counts against compute quota (upstream's `QuotaV1Pod`, without the
/// deletion-grace clock): not Succeeded or Failed.
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded") | Some("Failed"))
}

fn pod_usage(pod: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/pods".into(), one());
    if !pod_counts(pod) {
        return out;
    }
    add(&out, &compute_usage(&pod_aggregate(pod, "requests"), &pod_aggregate(pod, "limits")))
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64).is_some_and(|s| s >= 0)
}

/// BestEffort QoS: no container (app or init) requests or limits cpu or memory.
fn is_best_effort(pod: &Value) -> bool {
    containers(pod, "containers").chain(containers(pod, "initContainers")).all(|c| {
        ["requests", "limits"].iter().all(|w| {
            let l = container_list(c, w);
            !l.iter().any(|(k, q)| (k == "cpu" || k == "memory") && !q.is_zero())
        })
    })
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = pod.pointer(&format!("/spec/affinity/{kind}")) else { return false };
        ["requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"]
            .iter()
            .filter_map(|f| a.get(*f).and_then(Value::as_array))
            .flatten()
            .any(|t| {
                let t = t.get("podAffinityTerm").unwrap_or(t);
                t.get("namespaces").and_then(Value::as_array).is_some_and(|n| !n.is_empty())
                    || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
            })
    })
}

/// One quota scope requirement: spec.scopes entries become `Exists`.
struct ScopeReq {
    scope: String,
    operator: String,
    values: Vec<String>,
}

fn quota_scopes(quota: &Value) -> Vec<ScopeReq> {
    let mut out = Vec::new();
    for s in quota.pointer("/spec/scopes").and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = s.as_str() {
            out.push(ScopeReq { scope: s.to_string(), operator: "Exists".into(), values: Vec::new() });
        }
    }
    for e in quota.pointer("/spec/scopeSelector/matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        out.push(ScopeReq {
            scope: e.get("scopeName").and_then(Value::as_str).unwrap_or_default().to_string(),
            operator: e.get("operator").and_then(Value::as_str).unwrap_or_default().to_string(),
            values: e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        });
    }
    out
}

fn pod_matches_scope(req: &ScopeReq, pod: &Value) -> bool {
    match req.scope.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        "PriorityClass" => {
            let pc = pod.pointer("/spec/priorityClassName").and_then(Value::as_str).unwrap_or_default();
            match req.operator.as_str() {
                "Exists" => !pc.is_empty(),
                "In" => req.values.iter().any(|v| v == pc),
                "NotIn" => !req.values.iter().any(|v| v == pc),
                // the label set always holds the PriorityClass key
                _ => false,
            }
        }
        _ => false,
    }
}

fn hard_names(quota: &Value) -> Vec<String> {
    resource_list(quota.pointer("/status/hard")).into_keys().collect()
}

/// Does `obj` (of `group`/`resource`) fall under the quota's scopes? Only pods have scopes; any
/// scope excludes every other kind (upstream's `MatchesNoScopeFunc`).
pub fn matches_scopes(quota: &Value, group: &str, resource: &str, obj: &Value) -> bool {
    let is_pod = group.is_empty() && resource == "pods";
    quota_scopes(quota).iter().all(|s| is_pod && pod_matches_scope(s, obj))
}

/// What one object counts against quotas (upstream's evaluator `Usage`).
pub fn usage(group: &str, resource: &str, obj: &Value) -> BTreeMap<String, Quantity> {
    match (group, resource) {
        ("", "pods") => pod_usage(obj),
        ("", "services") => service_usage(obj),
        ("", "persistentvolumeclaims") => pvc_usage(obj),
        _ => {
            let mut out = ResourceList::new();
            out.insert(object_count_name(group, resource), one());
            if let Some(l) = legacy_count_name(group, resource) {
                out.insert(l.to_string(), one());
            }
            out
        }
    }
}

fn service_usage(svc: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/services".into(), one());
    out.insert("services".into(), one());
    out.insert("services.loadbalancers".into(), zero());
    out.insert("services.nodeports".into(), zero());
    let ports: Vec<&Value> = svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten().collect();
    let n = |c: usize| Quantity::from_int(i64::try_from(c).unwrap_or(i64::MAX), Format::DecimalSI);
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => {
            out.insert("services.nodeports".into(), n(ports.len()));
        }
        Some("LoadBalancer") => {
            let allocate = svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false);
            let count = if allocate {
                ports.len()
            } else {
                ports.iter().filter(|p| p.get("nodePort").and_then(Value::as_i64).is_some_and(|v| v != 0)).count()
            };
            out.insert("services.nodeports".into(), n(count));
            out.insert("services.loadbalancers".into(), one());
        }
        _ => {}
    }
    out
}

fn pvc_usage(pvc: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/persistentvolumeclaims".into(), one());
    out.insert("persistentvolumeclaims".into(), one());
    let class = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class").and_then(Value::as_str)
        })
        .unwrap_or_default();
    if !class.is_empty() {
        out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"), one());
    }
    let requested = pvc.pointer("/spec/resources/requests/storage").and_then(parse_quantity_value);
    let allocated = pvc.pointer("/status/allocatedResources/storage").and_then(parse_quantity_value);
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) => Some(if a > r { a } else { r }),
        (r, a) => r.or(a),
    };
    if let Some(q) = storage {
        out.insert("requests.storage".into(), q);
        if !class.is_empty() {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), q);
        }
    }
    out
}

/// The usage of `objects` (all of `group`/`resource`, one namespace) that a quota counts: zero for
/// every tracked hard resource, plus each in-scope object's usage, masked to the tracked names.
pub fn quota_usage<'a>(
    hard: &[String],
    quota: &Value,
    group: &str,
    resource: &str,
    objects: impl IntoIterator<Item = &'a Value>,
) -> ResourceList {
    let tracked: BTreeSet<String> = matching_resources(group, resource, hard).into_iter().collect();
    let mut out: ResourceList = tracked.iter().map(|k| (k.clone(), zero())).collect();
    if tracked.is_empty() {
        return out;
    }
    for obj in objects {
        if matches_scopes(quota, group, resource, obj) {
            out = add(&out, &mask(&usage(group, resource, obj), &tracked));
        }
    }
    out
}

/// Upstream's pod `Constraints`: every container must set each tracked cpu/memory resource.
fn pod_constraints(required: &[String], pod: &Value) -> Result<(), String> {
    let required: BTreeSet<&str> =
        required.iter().map(String::as_str).filter(|r| POD_VALIDATION_SET.contains(r)).collect();
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let u = compute_usage(&container_list(c, "requests"), &container_list(c, "limits"));
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        for r in &required {
            if !u.contains_key(*r) {
                missing.entry(r).or_default().insert(name.to_string());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| format!("{r} for: {}", names.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

fn forbidden(group: &str, resource: &str, obj: &Value, msg: &str) -> ApiError {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let qualified = crate::status::qualified(resource, group);
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {name:?} is forbidden: {msg}")
    };
    let mut e = ApiError::forbidden(message);
    e.group = Some(group.to_string());
    e.kind = Some(resource.to_string());
    if !name.is_empty() {
        e.name = Some(name.to_string());
    }
    e
}

/// Quota admission for a create (`old` = None) or update of `obj`. Returns, for every quota the
/// change counts against, its name and new `status.used`; Err is upstream's 403.
pub fn admit(
    quotas: &[Value],
    group: &str,
    resource: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Vec<(String, ResourceList)>, ApiError> {
    let mut interesting = Vec::new();
    for q in quotas {
        let hard = hard_names(q);
        let restricted = matching_resources(group, resource, &hard);
        if restricted.is_empty() || !matches_scopes(q, group, resource, obj) {
            continue;
        }
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        if group.is_empty()
            && resource == "pods"
            && let Err(m) = pod_constraints(&restricted, obj)
        {
            return Err(forbidden(group, resource, obj, &format!("failed quota: {qname}: {m}")));
        }
        let used = resource_list(q.pointer("/status/used"));
        let missing: Vec<&String> = restricted.iter().filter(|r| !used.contains_key(*r)).collect();
        if !missing.is_empty() {
            let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
            return Err(forbidden(
                group,
                resource,
                obj,
                &format!("status unknown for quota: {qname}, resources: {list}"),
            ));
        }
        interesting.push(q);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let nonzero = |l: ResourceList| -> ResourceList { l.into_iter().filter(|(_, q)| !q.is_zero()).collect() };
    let mut delta = nonzero(usage(group, resource, obj));
    if let Some(old) = old {
        let prev = usage(group, resource, old);
        delta = delta
            .into_iter()
            .map(|(k, q)| {
                let d = match prev.get(&k) {
                    Some(p) => q.sub(p),
                    None => q,
                };
                (k, if d.sign() < 0 { zero() } else { d })
            })
            .collect();
        delta = nonzero(delta);
    }
    if delta.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for q in interesting {
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let hard = resource_list(q.pointer("/status/hard"));
        let used = resource_list(q.pointer("/status/used"));
        let hard_set: BTreeSet<String> = hard.keys().cloned().collect();
        let requested = mask(&delta, &hard_set);
        let new_used = add(&used, &requested);
        let exceeded: BTreeSet<String> = requested
            .keys()
            .filter(|k| match (new_used.get(*k), hard.get(*k)) {
                (Some(u), Some(h)) => u > h,
                _ => false,
            })
            .cloned()
            .collect();
        if !exceeded.is_empty() {
            let msg = format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                pretty(&mask(&requested, &exceeded)),
                pretty(&mask(&used, &exceeded)),
                pretty(&mask(&hard, &exceeded)),
            );
            return Err(forbidden(group, resource, obj, &msg));
        }
        if !requested.is_empty() {
            out.push((qname.to_string(), new_used));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// LimitRanger
// ---------------------------------------------------------------------------------------------

/// One LimitRange item, with upstream's `SetDefaults_LimitRangeItem` applied for Containers.
struct LimitItem {
    type_: String,
    min: ResourceList,
    max: ResourceList,
    default: ResourceList,
    default_request: ResourceList,
    ratio: ResourceList,
}

fn limit_items(range: &Value) -> Vec<LimitItem> {
    let mut out = Vec::new();
    for l in range.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten() {
        let mut item = LimitItem {
            type_: l.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
            min: resource_list(l.get("min")),
            max: resource_list(l.get("max")),
            default: resource_list(l.get("default")),
            default_request: resource_list(l.get("defaultRequest")),
            ratio: resource_list(l.get("maxLimitRequestRatio")),
        };
        if item.type_ == "Container" {
            for (k, q) in &item.max {
                item.default.entry(k.clone()).or_insert(*q);
            }
            for (k, q) in item.default.iter().chain(item.min.iter()) {
                item.default_request.entry(k.clone()).or_insert(*q);
            }
        }
        out.push(item);
    }
    out
}

fn merge_defaults(
    c: &mut Value,
    requests: &ResourceList,
    limits: &ResourceList,
    prefix: &str,
    notes: &mut Vec<String>,
) {
    let name = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(obj) = c.as_object_mut() else { return };
    let res = obj.entry("resources").or_insert_with(|| Value::Object(Map::new()));
    if !res.is_object() {
        *res = Value::Object(Map::new());
    }
    let Some(res) = res.as_object_mut() else { return };
    let mut set = |which: &str, defaults: &ResourceList| -> Vec<String> {
        let list = res.entry(which).or_insert_with(|| Value::Object(Map::new()));
        if !list.is_object() {
            *list = Value::Object(Map::new());
        }
        let mut added = Vec::new();
        if let Some(list) = list.as_object_mut() {
            for (k, q) in defaults {
                if !list.contains_key(k) {
                    list.insert(k.clone(), q.to_value());
                    added.push(k.clone());
                }
            }
        }
        added
    };
    let set_limits = set("limits", limits);
    let set_requests = set("requests", requests);
    if !set_requests.is_empty() {
        notes.push(format!("{} request for {prefix} {name}", set_requests.join(", ")));
    }
    if !set_limits.is_empty() {
        notes.push(format!("{} limit for {prefix} {name}", set_limits.join(", ")));
    }
}

fn min_constraint(kind: &str, r: &str, enforced: &Quantity, req: &ResourceList, lim: &ResourceList) -> Option<String> {
    let Some(rq) = req.get(r) else {
        return Some(format!("minimum {r} usage per {kind} is {enforced}.  No request is specified"));
    };
    if rq.milli_value() < enforced.milli_value() {
        return Some(format!("minimum {r} usage per {kind} is {enforced}, but request is {rq}"));
    }
    match lim.get(r) {
        Some(l) if l.milli_value() < enforced.milli_value() => {
            Some(format!("minimum {r} usage per {kind} is {enforced}, but limit is {l}"))
        }
        _ => None,
    }
}

fn max_constraint(kind: &str, r: &str, enforced: &Quantity, req: &ResourceList, lim: &ResourceList) -> Option<String> {
    let Some(l) = lim.get(r) else {
        return Some(format!("maximum {r} usage per {kind} is {enforced}.  No limit is specified"));
    };
    if l.milli_value() > enforced.milli_value() {
        return Some(format!("maximum {r} usage per {kind} is {enforced}, but limit is {l}"));
    }
    match req.get(r) {
        Some(rq) if rq.milli_value() > enforced.milli_value() => {
            Some(format!("maximum {r} usage per {kind} is {enforced}, but request is {rq}"))
        }
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    r: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let rq = req.get(r).map(|q| q.milli_value()).unwrap_or(0);
    if rq == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    let l = lim.get(r).map(|q| q.milli_value()).unwrap_or(0);
    if l == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let observed = l as f64 / rq as f64;
    if observed * 1000.0 > enforced.milli_value() as f64 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
        ));
    }
    None
}

fn check_item(item: &LimitItem, kind: &str, req: &ResourceList, lim: &ResourceList, errs: &mut Vec<String>) {
    for (r, q) in &item.min {
        errs.extend(min_constraint(kind, r, q, req, lim));
    }
    for (r, q) in &item.max {
        errs.extend(max_constraint(kind, r, q, req, lim));
    }
    for (r, q) in &item.ratio {
        errs.extend(ratio_constraint(kind, r, q, req, lim));
    }
}

/// LimitRanger for a pod being created: first every range's Container defaults
/// (`default` → limits, `defaultRequest` → requests, only where unset, noting what was set in the
/// `kubernetes.io/limit-ranger` annotation), then min/max/maxLimitRequestRatio per Container and
/// per Pod. Err is upstream's 403 (`pods "p" is forbidden: maximum cpu usage per Container is 1, but
/// limit is 2`, several joined as `[a, b]`).
pub fn apply_limit_ranges(ranges: &[Value], pod: &mut Value) -> Result<(), ApiError> {
    let items: Vec<Vec<LimitItem>> = ranges.iter().map(limit_items).collect();
    for range in &items {
        let mut requests = ResourceList::new();
        let mut limits = ResourceList::new();
        for item in range.iter().filter(|i| i.type_ == "Container") {
            requests.extend(item.default_request.iter().map(|(k, q)| (k.clone(), *q)));
            limits.extend(item.default.iter().map(|(k, q)| (k.clone(), *q)));
        }
        if requests.is_empty() && limits.is_empty() {
            continue;
        }
        let mut notes = Vec::new();
        for (field, prefix) in [("containers", "container"), ("initContainers", "init container")] {
            if let Some(cs) = pod.pointer_mut(&format!("/spec/{field}")).and_then(Value::as_array_mut) {
                for c in cs {
                    merge_defaults(c, &requests, &limits, prefix, &mut notes);
                }
            }
        }
        if !notes.is_empty()
            && let Some(meta) =
                pod.as_object_mut().map(|o| o.entry("metadata").or_insert_with(|| Value::Object(Map::new())))
            && let Some(meta) = meta.as_object_mut()
        {
            let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
            if !ann.is_object() {
                *ann = Value::Object(Map::new());
            }
            if let Some(ann) = ann.as_object_mut() {
                ann.insert(
                    LIMIT_RANGER_ANNOTATION.to_string(),
                    Value::String(format!("LimitRanger plugin set: {}", notes.join("; "))),
                );
            }
        }
    }

    let mut errs: Vec<String> = Vec::new();
    for item in items.iter().flatten() {
        match item.type_.as_str() {
            "Container" => {
                for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
                    check_item(
                        item,
                        "Container",
                        &container_list(c, "requests"),
                        &container_list(c, "limits"),
                        &mut errs,
                    );
                }
            }
            "Pod" => {
                check_item(item, "Pod", &pod_aggregate(pod, "requests"), &pod_aggregate(pod, "limits"), &mut errs);
            }
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    let msg = match errs.as_slice() {
        [] => return Ok(()),
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    Err(forbidden("", "pods", pod, &msg))
}

/// Parse one quantity string (helper for callers building resource lists).
pub fn quantity(s: &str) -> Option<Quantity> {
    parse_quantity(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        parse_quantity(s).unwrap_or_else(Quantity::zero)
    }

    fn pod(name: &str, containers: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": containers}})
    }

    fn quota(name: &str, hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"hard": hard.clone()}, "status": {"hard": hard, "used": used}})
    }

    #[test]
    fn pod_usage_sums_containers_and_init_max() {
        let p = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "300m", "memory": "64Mi", "example.com/gpu": "1"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1", "hugepages-2Mi": "4Mi"}}}]
        }});
        let u = usage("", "pods", &p);
        assert_eq!(u.get("pods"), Some(&q("1")));
        assert_eq!(u.get("count/pods"), Some(&q("1")));
        assert_eq!(u.get("requests.cpu").map(|x| x.to_string()).as_deref(), Some("1"));
        assert_eq!(u.get("cpu"), Some(&q("1")));
        assert_eq!(u.get("requests.memory").map(|x| x.to_string()).as_deref(), Some("128Mi"));
        assert_eq!(u.get("limits.cpu"), Some(&q("200m")));
        assert!(!u.contains_key("limits.memory"));
        assert_eq!(u.get("requests.example.com/gpu"), Some(&q("1")));
        assert_eq!(u.get("requests.hugepages-2Mi"), Some(&q("4Mi")));
    }

    #[test]
    fn terminal_pod_counts_only_object() {
        let mut p = pod("p", json!([{"name": "c", "resources": {"requests": {"cpu": "1"}}}]));
        p["status"] = json!({"phase": "Succeeded"});
        let u = usage("", "pods", &p);
        assert_eq!(u.keys().cloned().collect::<Vec<_>>(), vec!["count/pods".to_string()]);
    }

    #[test]
    fn service_pvc_and_generic_usage() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage("", "services", &svc);
        assert_eq!(u.get("services.nodeports"), Some(&q("2")));
        assert_eq!(u.get("services.loadbalancers"), Some(&q("0")));
        let lb = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "nodePort": 30000}, {"port": 81}]}});
        let u = usage("", "services", &lb);
        assert_eq!(u.get("services.nodeports"), Some(&q("1")));
        assert_eq!(u.get("services.loadbalancers"), Some(&q("1")));

        let pvc = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}});
        let u = usage("", "persistentvolumeclaims", &pvc);
        assert_eq!(u.get("requests.storage"), Some(&q("1Gi")));
        assert_eq!(u.get("gold.storageclass.storage.k8s.io/requests.storage"), Some(&q("1Gi")));
        assert_eq!(u.get("gold.storageclass.storage.k8s.io/persistentvolumeclaims"), Some(&q("1")));

        let u = usage("", "configmaps", &json!({}));
        assert_eq!(u.get("configmaps"), Some(&q("1")));
        assert_eq!(u.get("count/configmaps"), Some(&q("1")));
        let u = usage("apps", "deployments", &json!({}));
        assert_eq!(u.keys().cloned().collect::<Vec<_>>(), vec!["count/deployments.apps".to_string()]);
    }

    #[test]
    fn tracked_kinds_from_hard_names() {
        let names: Vec<String> =
            ["pods", "count/deployments.apps", "services.nodeports", "count/widgets.example.com", "secrets"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let kinds = tracked_kinds(&names);
        for k in [("", "pods"), ("apps", "deployments"), ("", "services"), ("example.com", "widgets"), ("", "secrets")]
        {
            assert!(kinds.contains(&(k.0.to_string(), k.1.to_string())), "{k:?} in {kinds:?}");
        }
        assert!(!kinds.contains(&("".to_string(), "configmaps".to_string())));
    }

    #[test]
    fn admit_exceeded_message_is_upstreams() {
        let quotas = [quota("q", json!({"pods": "2"}), json!({"pods": "2"}))];
        let p = pod("p", json!([{"name": "c"}]));
        let err = admit(&quotas, "", "pods", &p, None).err().map(|e| (e.code, e.message));
        assert_eq!(
            err,
            Some((
                403,
                "pods \"p\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into()
            ))
        );
    }

    #[test]
    fn admit_returns_new_used() {
        let quotas = [
            quota("q", json!({"pods": "2", "requests.cpu": "1"}), json!({"pods": "1", "requests.cpu": "500m"})),
            quota("other", json!({"configmaps": "5"}), json!({"configmaps": "0"})),
        ];
        let p = pod("p", json!([{"name": "c", "resources": {"requests": {"cpu": "250m"}}}]));
        let out = admit(&quotas, "", "pods", &p, None).unwrap_or_default();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "q");
        assert_eq!(out[0].1.get("pods"), Some(&q("2")));
        assert_eq!(out[0].1.get("requests.cpu"), Some(&q("750m")));

        let big = pod("big", json!([{"name": "c", "resources": {"requests": {"cpu": "600m"}}}]));
        let err = admit(&quotas, "", "pods", &big, None).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "pods \"big\" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
            )
        );
    }

    #[test]
    fn admit_requires_compute_resources() {
        let quotas = [quota("compute", json!({"limits.cpu": "2", "requests.memory": "1Gi"}), json!({}))];
        let p = pod("p", json!([{"name": "b", "resources": {"limits": {"cpu": "1"}}}, {"name": "a"}]));
        let err = admit(&quotas, "", "pods", &p, None).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "pods \"p\" is forbidden: failed quota: compute: must specify limits.cpu for: a; requests.memory for: a,b"
            )
        );
    }

    #[test]
    fn admit_status_unknown() {
        let quotas = [quota("q", json!({"pods": "2"}), json!({}))];
        let err = admit(&quotas, "", "pods", &pod("p", json!([{"name": "c"}])), None).err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("pods \"p\" is forbidden: status unknown for quota: q, resources: pods"));
    }

    #[test]
    fn admit_honours_scopes() {
        let mut be = quota("be", json!({"pods": "0"}), json!({"pods": "0"}));
        be["spec"]["scopes"] = json!(["BestEffort"]);
        let best_effort = pod("p", json!([{"name": "c"}]));
        let burstable = pod("p", json!([{"name": "c", "resources": {"requests": {"cpu": "1"}}}]));
        assert!(admit(std::slice::from_ref(&be), "", "pods", &best_effort, None).is_err());
        assert!(admit(std::slice::from_ref(&be), "", "pods", &burstable, None).is_ok());

        let mut term = quota("t", json!({"pods": "0"}), json!({"pods": "0"}));
        term["spec"]["scopes"] = json!(["Terminating"]);
        let mut deadline = best_effort.clone();
        deadline["spec"]["activeDeadlineSeconds"] = json!(30);
        assert!(admit(std::slice::from_ref(&term), "", "pods", &best_effort, None).is_ok());
        assert!(admit(std::slice::from_ref(&term), "", "pods", &deadline, None).is_err());

        let mut pc = quota("pc", json!({"pods": "0"}), json!({"pods": "0"}));
        pc["spec"]["scopeSelector"] =
            json!({"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]});
        let mut high = best_effort.clone();
        high["spec"]["priorityClassName"] = json!("high");
        assert!(admit(std::slice::from_ref(&pc), "", "pods", &best_effort, None).is_ok());
        assert!(admit(std::slice::from_ref(&pc), "", "pods", &high, None).is_err());

        // a scoped quota never matches non-pod objects
        let mut scoped = quota("s", json!({"configmaps": "0"}), json!({"configmaps": "0"}));
        scoped["spec"]["scopes"] = json!(["BestEffort"]);
        assert!(admit(&[scoped], "", "configmaps", &json!({}), None).is_ok());
    }

    #[test]
    fn admit_update_counts_only_the_increase() {
        let quotas = [quota(
            "q",
            json!({"services.nodeports": "1", "services": "1"}),
            json!({"services.nodeports": "1", "services": "1"}),
        )];
        let old = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 1}]}});
        let same = old.clone();
        assert_eq!(admit(&quotas, "", "services", &same, Some(&old)).map(|v| v.len()).ok(), Some(0));
        let more =
            json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]}});
        let err = admit(&quotas, "", "services", &more, Some(&old)).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "services \"s\" is forbidden: exceeded quota: q, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"
            )
        );
    }

    #[test]
    fn admit_generic_count() {
        let quotas = [quota("q", json!({"count/deployments.apps": "1"}), json!({"count/deployments.apps": "1"}))];
        let d = json!({"metadata": {"name": "d"}});
        let err = admit(&quotas, "apps", "deployments", &d, None).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "deployments.apps \"d\" is forbidden: exceeded quota: q, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
            )
        );
        assert!(admit(&quotas, "apps", "statefulsets", &d, None).is_ok());
    }

    #[test]
    fn quota_usage_sums_in_scope_objects() {
        let qt = quota("q", json!({"pods": "5", "requests.cpu": "2", "count/pods": "9"}), json!({}));
        let hard: Vec<String> = resource_list(qt.pointer("/spec/hard")).into_keys().collect();
        let mut done = pod("d", json!([{"name": "c", "resources": {"requests": {"cpu": "1"}}}]));
        done["status"] = json!({"phase": "Failed"});
        let pods = [
            pod("a", json!([{"name": "c", "resources": {"requests": {"cpu": "250m"}}}])),
            pod("b", json!([{"name": "c"}])),
            done,
        ];
        let u = quota_usage(&hard, &qt, "", "pods", pods.iter());
        assert_eq!(u.get("pods"), Some(&q("2")));
        assert_eq!(u.get("count/pods"), Some(&q("3")));
        assert_eq!(u.get("requests.cpu"), Some(&q("250m")));
        let none = quota_usage(&hard, &qt, "", "pods", std::iter::empty());
        assert_eq!(none.get("requests.cpu").map(|x| x.to_string()).as_deref(), Some("0"));
    }

    fn range(limits: Value) -> Value {
        json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}})
    }

    #[test]
    fn limit_range_defaults_and_annotation() {
        let ranges = [range(
            json!([{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m", "memory": "64Mi"}}]),
        )];
        let mut p = pod("p", json!([{"name": "web", "resources": {"requests": {"memory": "32Mi"}}}]));
        p["spec"]["initContainers"] = json!([{"name": "init"}]);
        assert!(apply_limit_ranges(&ranges, &mut p).is_ok());
        let c = &p["spec"]["containers"][0]["resources"];
        assert_eq!(c["requests"]["cpu"], json!("100m"));
        assert_eq!(c["requests"]["memory"], json!("32Mi"));
        assert_eq!(c["limits"]["cpu"], json!("500m"));
        assert_eq!(p["spec"]["initContainers"][0]["resources"]["requests"]["memory"], json!("64Mi"));
        assert_eq!(
            p["metadata"]["annotations"][LIMIT_RANGER_ANNOTATION],
            json!(
                "LimitRanger plugin set: cpu request for container web; cpu limit for container web; cpu, memory request for init container init; cpu limit for init container init"
            )
        );
    }

    #[test]
    fn limit_range_max_defaults_limit() {
        // upstream's LimitRangeItem defaulting: max → default → defaultRequest
        let ranges = [range(json!([{"type": "Container", "max": {"cpu": "1"}}]))];
        let mut p = pod("p", json!([{"name": "c"}]));
        assert!(apply_limit_ranges(&ranges, &mut p).is_ok());
        assert_eq!(p["spec"]["containers"][0]["resources"]["limits"]["cpu"], json!("1"));
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"]["cpu"], json!("1"));
    }

    #[test]
    fn limit_range_violations() {
        let ranges = [range(json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "10Mi"}}]))];
        let mut p = pod(
            "p",
            json!([{"name": "c", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "2", "memory": "5Mi"}}}]),
        );
        let err = apply_limit_ranges(&ranges, &mut p).err().map(|e| (e.code, e.message));
        assert_eq!(
            err,
            Some((
                403,
                "pods \"p\" is forbidden: [minimum memory usage per Container is 10Mi, but request is 5Mi, maximum cpu usage per Container is 1, but limit is 2]".into()
            ))
        );

        let ratio = [range(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]))];
        let mut p =
            pod("p", json!([{"name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}}]));
        let err = apply_limit_ranges(&ratio, &mut p).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "pods \"p\" is forbidden: cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
            )
        );
        let mut p =
            pod("p", json!([{"name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}]));
        assert!(apply_limit_ranges(&ratio, &mut p).is_ok());

        let pod_max = [range(json!([{"type": "Pod", "max": {"memory": "100Mi"}}]))];
        let mut p = pod(
            "p",
            json!([
                {"name": "a", "resources": {"limits": {"memory": "60Mi"}}},
                {"name": "b", "resources": {"limits": {"memory": "60Mi"}}}
            ]),
        );
        let err = apply_limit_ranges(&pod_max, &mut p).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("pods \"p\" is forbidden: maximum memory usage per Pod is 100Mi, but limit is 120Mi")
        );

        let mut nolimit = pod("p", json!([{"name": "a"}]));
        let err = apply_limit_ranges(&pod_max, &mut nolimit).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("pods \"p\" is forbidden: maximum memory usage per Pod is 100Mi.  No limit is specified")
        );
    }
}
