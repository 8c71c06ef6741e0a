//! Conversion of stored objects between the served versions of one resource.
//!
//! One storage holds each resource in one version; the apiserver converts on the way
//! in and out. Most kinds have identical schemas across their served versions, so
//! only `apiVersion` changes. Two pairs need real work, reproduced from upstream's
//! conversion functions:
//!
//! * `HorizontalPodAutoscaler` `autoscaling/v1` <-> `autoscaling/v2`: v1 only knows a CPU
//!   utilization target; everything else a v2 object says travels through v1 in the
//!   `autoscaling.alpha.kubernetes.io/{metrics,current-metrics,conditions,behavior}`
//!   annotations (metrics in v1's legacy metric format), and comes back when converted
//!   to v2 again. A v1 object without a CPU target gets v2's implicit 80% CPU metric.
//! * `Event` `v1` <-> `events.k8s.io/v1`: field renames (`involvedObject`/`regarding`,
//!   `message`/`note`, `source`/`deprecatedSource`, the deprecated timestamps and count,
//!   `reportingComponent`/`reportingController`).
//!
//! `…List` kinds are converted item by item.

// The API of this crate returns `ApiError` (a full `metav1.Status`) by design.

use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// Annotation carrying non-CPU-utilization v2 metric specs through v1.
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Annotation carrying v2 `status.currentMetrics` through v1.
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// Annotation carrying v2 `status.conditions` through v1.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// Annotation carrying v2 `spec.behavior` through v1.
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// The CPU utilization target v1 implies when it sets none.
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

const ROUND_TRIP_ANNOTATIONS: [&str; 4] =
    [METRIC_SPECS_ANNOTATION, METRIC_STATUSES_ANNOTATION, CONDITIONS_ANNOTATION, BEHAVIOR_ANNOTATION];

/// `apps/v1`, or `v1` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// Convert an object between two versions of the same resource. Returns the object unchanged
/// (apiVersion rewritten) for kinds whose schema is identical across the versions.
pub fn convert(
    obj: Value,
    kind: &str,
    from_group: &str,
    from_version: &str,
    to_group: &str,
    to_version: &str,
) -> Result<Value, ApiError> {
    let Value::Object(mut m) = obj else {
        return Err(ApiError::bad_request(format!("cannot convert {kind}: the object is not a JSON object")));
    };
    let target = api_version(to_group, to_version);
    if let Some(item_kind) = kind.strip_suffix("List")
        && matches!(m.get("items"), Some(Value::Array(_)))
        && let Some(Value::Array(items)) = m.remove("items")
    {
        // Items of a list usually carry no apiVersion of their own; keep it that way.
        let converted = items
            .into_iter()
            .map(|it| {
                let had_version = it.get("apiVersion").is_some();
                let mut out = convert(it, item_kind, from_group, from_version, to_group, to_version)?;
                if !had_version && let Value::Object(o) = &mut out {
                    o.remove("apiVersion");
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        m.insert("items".into(), Value::Array(converted));
        m.insert("apiVersion".into(), Value::String(target));
        return Ok(Value::Object(m));
    }
    let same = from_group == to_group && from_version == to_version;
    let mut out = match (kind, from_group, to_group) {
        _ if same => m,
        ("HorizontalPodAutoscaler", "autoscaling", "autoscaling") => match (from_version, to_version) {
            ("v1", _) => hpa_v1_to_v2(m)?,
            (_, "v1") => hpa_v2_to_v1(m),
            // v2 and v2beta2 share a schema; neither keeps the v1 round-trip annotations.
            _ => {
                drop_round_trip_annotations(&mut m);
                m
            }
        },
        ("Event", "", "events.k8s.io") => event_core_to_events(m),
        ("Event", "events.k8s.io", "") => event_events_to_core(m),
        _ => m,
    };
    out.insert("apiVersion".into(), Value::String(target));
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// Small JSON helpers.
// ---------------------------------------------------------------------------

/// Copy each of `keys` from `from` to `to` when present and not null.
fn copy_keys(from: &Map<String, Value>, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        copy_as(from, k, to, k);
    }
}

/// Copy `from[src]` to `to[dst]` when present and not null.
fn copy_as(from: &Map<String, Value>, src: &str, to: &mut Map<String, Value>, dst: &str) {
    if let Some(v) = from.get(src)
        && !v.is_null()
    {
        to.insert(dst.to_string(), v.clone());
    }
}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// A Go `resource.Quantity` that is not a pointer: missing means `"0"`.
fn quantity_or_zero(v: Option<&Value>) -> Value {
    match v {
        Some(q) if !q.is_null() => q.clone(),
        _ => Value::String("0".into()),
    }
}

fn annotations(m: &Map<String, Value>) -> Map<String, Value> {
    m.get("metadata").and_then(|md| md.get("annotations")).and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Write annotations back; an empty map removes the field, as Go's `omitempty` does.
fn set_annotations(m: &mut Map<String, Value>, ann: Map<String, Value>) {
    let had = m.get("metadata").and_then(|md| md.get("annotations")).is_some();
    if ann.is_empty() && !had {
        return;
    }
    let md = m.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(md) = md {
        if ann.is_empty() {
            md.remove("annotations");
        } else {
            md.insert("annotations".into(), Value::Object(ann));
        }
    }
}

fn drop_round_trip_annotations(m: &mut Map<String, Value>) {
    let mut ann = annotations(m);
    if ROUND_TRIP_ANNOTATIONS.iter().any(|k| ann.contains_key(*k)) {
        for k in ROUND_TRIP_ANNOTATIONS {
            ann.remove(k);
        }
        set_annotations(m, ann);
    }
}

/// Parse a round-trip annotation's JSON list; a malformed one is the client's error.
fn annotation_list(ann: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>, ApiError> {
    let Some(text) = ann.get(key) else { return Ok(None) };
    let text = text.as_str().unwrap_or_default();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => Ok(Some(a)),
        Ok(Value::Null) => Ok(Some(Vec::new())),
        Ok(_) => Err(ApiError::bad_request(format!("annotation {key}: expected a JSON list"))),
        Err(e) => Err(ApiError::bad_request(format!("annotation {key}: {e}"))),
    }
}

fn is_cpu_resource(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
}

// ---------------------------------------------------------------------------
// HorizontalPodAutoscaler: v2 metric formats <-> v1's legacy (v2beta1-like) format.
// ---------------------------------------------------------------------------

/// `metric: {name, selector}` of v2 into v1's flat `metricName` / selector key.
fn metric_identifier_to_v1(src: &Map<String, Value>, out: &mut Map<String, Value>, selector_key: &str) {
    if let Some(id) = obj(src.get("metric")) {
        copy_as(id, "name", out, "metricName");
        copy_as(id, "selector", out, selector_key);
    }
    out.entry("metricName").or_insert_with(|| Value::String(String::new()));
}

fn metric_identifier_from_v1(src: &Map<String, Value>, selector_key: &str) -> Value {
    let mut id = Map::new();
    id.insert("name".into(), src.get("metricName").cloned().unwrap_or_else(|| Value::String(String::new())));
    copy_as(src, selector_key, &mut id, "selector");
    Value::Object(id)
}

/// A metric's `type`, the member holding its source (`resource`, `pods`, ...) and that
/// source; `None` for an unknown type or a missing source (such a metric is passed through).
fn metric_source(metric: &Value) -> Option<(&str, &'static str, &Map<String, Value>)> {
    let m = metric.as_object()?;
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let key = match ty {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return None,
    };
    Some((ty, key, obj(m.get(key))?))
}

fn metric_spec_to_v1(metric: &Value) -> Value {
    let Some((ty, key, src)) = metric_source(metric) else {
        return metric.clone();
    };
    let target = obj(src.get("target")).cloned().unwrap_or_default();
    let mut out = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_keys(src, &mut out, &["name", "container"]);
            copy_as(&target, "averageUtilization", &mut out, "targetAverageUtilization");
            copy_as(&target, "averageValue", &mut out, "targetAverageValue");
        }
        "Pods" => {
            metric_identifier_to_v1(src, &mut out, "selector");
            out.insert("targetAverageValue".into(), quantity_or_zero(target.get("averageValue")));
        }
        "Object" => {
            copy_as(src, "describedObject", &mut out, "target");
            metric_identifier_to_v1(src, &mut out, "selector");
            out.insert("targetValue".into(), quantity_or_zero(target.get("value")));
            copy_as(&target, "averageValue", &mut out, "averageValue");
        }
        _ => {
            metric_identifier_to_v1(src, &mut out, "metricSelector");
            copy_as(&target, "value", &mut out, "targetValue");
            copy_as(&target, "averageValue", &mut out, "targetAverageValue");
        }
    }
    json!({ "type": ty, key: out })
}

fn metric_spec_from_v1(metric: &Value) -> Value {
    let Some((ty, key, src)) = metric_source(metric) else {
        return metric.clone();
    };
    let mut out = Map::new();
    let mut target = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_keys(src, &mut out, &["name", "container"]);
            let util = src.get("targetAverageUtilization").filter(|v| !v.is_null());
            target.insert("type".into(), json!(if util.is_some() { "Utilization" } else { "AverageValue" }));
            copy_as(src, "targetAverageUtilization", &mut target, "averageUtilization");
            copy_as(src, "targetAverageValue", &mut target, "averageValue");
        }
        "Pods" => {
            out.insert("metric".into(), metric_identifier_from_v1(src, "selector"));
            target.insert("type".into(), json!("AverageValue"));
            target.insert("averageValue".into(), quantity_or_zero(src.get("targetAverageValue")));
        }
        "Object" => {
            copy_as(src, "target", &mut out, "describedObject");
            out.insert("metric".into(), metric_identifier_from_v1(src, "selector"));
            let average = src.get("averageValue").filter(|v| !v.is_null());
            target.insert("type".into(), json!(if average.is_some() { "AverageValue" } else { "Value" }));
            // Upstream always fills `value`; keep it only where it means something, so that
            // an AverageValue target round-trips unchanged.
            let value = quantity_or_zero(src.get("targetValue"));
            if average.is_none() || value != json!("0") {
                target.insert("value".into(), value);
            }
            copy_as(src, "averageValue", &mut target, "averageValue");
        }
        _ => {
            out.insert("metric".into(), metric_identifier_from_v1(src, "metricSelector"));
            let value = src.get("targetValue").filter(|v| !v.is_null());
            target.insert("type".into(), json!(if value.is_some() { "Value" } else { "AverageValue" }));
            copy_as(src, "targetValue", &mut target, "value");
            copy_as(src, "targetAverageValue", &mut target, "averageValue");
        }
    }
    out.insert("target".into(), Value::Object(target));
    json!({ "type": ty, key: out })
}

fn metric_status_to_v1(metric: &Value) -> Value {
    let Some((ty, key, src)) = metric_source(metric) else {
        return metric.clone();
    };
    let current = obj(src.get("current")).cloned().unwrap_or_default();
    let mut out = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_keys(src, &mut out, &["name", "container"]);
            copy_as(&current, "averageUtilization", &mut out, "currentAverageUtilization");
            out.insert("currentAverageValue".into(), quantity_or_zero(current.get("averageValue")));
        }
        "Pods" => {
            metric_identifier_to_v1(src, &mut out, "selector");
            out.insert("currentAverageValue".into(), quantity_or_zero(current.get("averageValue")));
        }
        "Object" => {
            copy_as(src, "describedObject", &mut out, "target");
            metric_identifier_to_v1(src, &mut out, "selector");
            out.insert("currentValue".into(), quantity_or_zero(current.get("value")));
            copy_as(&current, "averageValue", &mut out, "averageValue");
        }
        _ => {
            metric_identifier_to_v1(src, &mut out, "metricSelector");
            out.insert("currentValue".into(), quantity_or_zero(current.get("value")));
            copy_as(&current, "averageValue", &mut out, "currentAverageValue");
        }
    }
    json!({ "type": ty, key: out })
}

fn metric_status_from_v1(metric: &Value) -> Value {
    let Some((ty, key, src)) = metric_source(metric) else {
        return metric.clone();
    };
    let mut out = Map::new();
    let mut current = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_keys(src, &mut out, &["name", "container"]);
            current.insert("averageValue".into(), quantity_or_zero(src.get("currentAverageValue")));
            copy_as(src, "currentAverageUtilization", &mut current, "averageUtilization");
        }
        "Pods" => {
            out.insert("metric".into(), metric_identifier_from_v1(src, "selector"));
            current.insert("averageValue".into(), quantity_or_zero(src.get("currentAverageValue")));
        }
        "Object" => {
            copy_as(src, "target", &mut out, "describedObject");
            out.insert("metric".into(), metric_identifier_from_v1(src, "selector"));
            current.insert("value".into(), quantity_or_zero(src.get("currentValue")));
            copy_as(src, "averageValue", &mut current, "averageValue");
        }
        _ => {
            out.insert("metric".into(), metric_identifier_from_v1(src, "metricSelector"));
            current.insert("value".into(), quantity_or_zero(src.get("currentValue")));
            copy_as(src, "currentAverageValue", &mut current, "averageValue");
        }
    }
    out.insert("current".into(), Value::Object(current));
    json!({ "type": ty, key: out })
}

fn to_json_string(v: &Value) -> Value {
    Value::String(v.to_string())
}

/// autoscaling/v2 -> autoscaling/v1.
fn hpa_v2_to_v1(mut m: Map<String, Value>) -> Map<String, Value> {
    let mut ann = annotations(&m);
    for k in ROUND_TRIP_ANNOTATIONS {
        ann.remove(k);
    }
    if let Some(spec) = m.remove("spec") {
        let src = spec.as_object().cloned().unwrap_or_default();
        let mut out = Map::new();
        copy_keys(&src, &mut out, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
        let metrics = list(src.get("metrics"));
        // The first CPU resource metric decides v1's target, if it is a utilization.
        if let Some(cpu) = metrics.iter().find(|mt| is_cpu_resource(mt))
            && let Some(u) = cpu.pointer("/resource/target/averageUtilization").filter(|v| !v.is_null())
        {
            out.insert("targetCPUUtilizationPercentage".into(), u.clone());
        }
        let others: Vec<Value> = metrics
            .iter()
            .filter(|mt| {
                !(is_cpu_resource(mt)
                    && mt.pointer("/resource/target/averageUtilization").is_some_and(|v| !v.is_null()))
            })
            .map(metric_spec_to_v1)
            .collect();
        if !others.is_empty() {
            ann.insert(METRIC_SPECS_ANNOTATION.into(), to_json_string(&Value::Array(others)));
        }
        if let Some(b) = src.get("behavior").filter(|b| !b.is_null()) {
            ann.insert(BEHAVIOR_ANNOTATION.into(), to_json_string(b));
        }
        m.insert("spec".into(), Value::Object(out));
    }
    if let Some(status) = m.remove("status") {
        let src = status.as_object().cloned().unwrap_or_default();
        let mut out = Map::new();
        copy_keys(&src, &mut out, &["observedGeneration", "lastScaleTime"]);
        out.insert("currentReplicas".into(), src.get("currentReplicas").cloned().unwrap_or(json!(0)));
        out.insert("desiredReplicas".into(), src.get("desiredReplicas").cloned().unwrap_or(json!(0)));
        let current = list(src.get("currentMetrics"));
        for cm in current {
            if is_cpu_resource(cm)
                && let Some(u) = cm.pointer("/resource/current/averageUtilization").filter(|v| !v.is_null())
            {
                out.insert("currentCPUUtilizationPercentage".into(), u.clone());
            }
        }
        if !current.is_empty() {
            let v1: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
            ann.insert(METRIC_STATUSES_ANNOTATION.into(), to_json_string(&Value::Array(v1)));
        }
        let conditions = list(src.get("conditions"));
        if !conditions.is_empty() {
            ann.insert(CONDITIONS_ANNOTATION.into(), to_json_string(&Value::Array(conditions.to_vec())));
        }
        m.insert("status".into(), Value::Object(out));
    }
    set_annotations(&mut m, ann);
    m
}

/// autoscaling/v1 -> autoscaling/v2.
fn hpa_v1_to_v2(mut m: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut ann = annotations(&m);
    let other_metrics = annotation_list(&ann, METRIC_SPECS_ANNOTATION)?;
    let current_metrics = annotation_list(&ann, METRIC_STATUSES_ANNOTATION)?;
    let conditions = annotation_list(&ann, CONDITIONS_ANNOTATION)?;
    let behavior = match ann.get(BEHAVIOR_ANNOTATION) {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Value>(text.as_str().unwrap_or_default())
                .map_err(|e| ApiError::bad_request(format!("annotation {BEHAVIOR_ANNOTATION}: {e}")))?,
        ),
    };
    if let Some(spec) = m.remove("spec") {
        let src = spec.as_object().cloned().unwrap_or_default();
        let mut out = Map::new();
        copy_keys(&src, &mut out, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
        let mut metrics: Vec<Value> = other_metrics.iter().flatten().map(metric_spec_from_v1).collect();
        let cpu = src.get("targetCPUUtilizationPercentage").filter(|v| !v.is_null());
        if let Some(u) = cpu {
            metrics.push(cpu_utilization_metric(u.clone()));
        }
        if metrics.is_empty() {
            metrics.push(cpu_utilization_metric(json!(DEFAULT_CPU_UTILIZATION)));
        }
        out.insert("metrics".into(), Value::Array(metrics));
        if let Some(b) = behavior.filter(|b| !b.is_null()) {
            out.insert("behavior".into(), b);
        }
        m.insert("spec".into(), Value::Object(out));
    }
    if let Some(status) = m.remove("status") {
        let src = status.as_object().cloned().unwrap_or_default();
        let mut out = Map::new();
        copy_keys(&src, &mut out, &["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"]);
        let current: Vec<Value> = match current_metrics {
            Some(list) => list.iter().map(metric_status_from_v1).collect(),
            None => match src.get("currentCPUUtilizationPercentage").filter(|v| !v.is_null()) {
                Some(u) => vec![json!({
                    "type": "Resource",
                    "resource": { "name": "cpu", "current": { "averageUtilization": u } },
                })],
                None => Vec::new(),
            },
        };
        if !current.is_empty() {
            out.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions.filter(|c| !c.is_empty()) {
            out.insert("conditions".into(), Value::Array(c));
        }
        m.insert("status".into(), Value::Object(out));
    }
    for k in ROUND_TRIP_ANNOTATIONS {
        ann.remove(k);
    }
    set_annotations(&mut m, ann);
    Ok(m)
}

fn cpu_utilization_metric(utilization: Value) -> Value {
    json!({
        "type": "Resource",
        "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": utilization } },
    })
}

// ---------------------------------------------------------------------------
// Event: core/v1 <-> events.k8s.io/v1.
// ---------------------------------------------------------------------------

/// (core/v1 name, events.k8s.io/v1 name)
const EVENT_RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(m: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = m.remove(from) {
        m.insert(to.to_string(), v);
    }
}

fn event_core_to_events(mut m: Map<String, Value>) -> Map<String, Value> {
    for (core, events) in EVENT_RENAMES {
        rename(&mut m, core, events);
    }
    // `eventTime` is required in events.k8s.io/v1; upstream renders an unset one as null.
    m.entry("eventTime").or_insert(Value::Null);
    m
}

fn event_events_to_core(mut m: Map<String, Value>) -> Map<String, Value> {
    for (core, events) in EVENT_RENAMES {
        rename(&mut m, events, core);
    }
    if m.get("eventTime").is_some_and(Value::is_null) {
        m.remove("eventTime");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa_v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1,
                "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "metric": {"name": "requests", "selector": {"matchLabels": {"a": "b"}}},
                        "target": {"type": "Value", "value": "2k"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}},
                    {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
            },
            "status": {
                "observedGeneration": 3,
                "currentReplicas": 2,
                "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70, "averageValue": "350m"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "12"}}}
                ],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": "2024-01-01T00:00:00Z"}]
            }
        })
    }

    #[test]
    fn hpa_v2_to_v1_keeps_extra_data_in_annotations() {
        let v1 = convert(hpa_v2(), "HorizontalPodAutoscaler", "autoscaling", "v2", "autoscaling", "v1").unwrap();
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["spec"]["maxReplicas"], 10);
        assert!(v1["spec"].get("metrics").is_none());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["desiredReplicas"], 3);
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["team"], "a");
        let metrics: Value = serde_json::from_str(ann[METRIC_SPECS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(metrics.as_array().unwrap().len(), 5, "all but the CPU utilization metric");
        assert_eq!(
            metrics[0],
            json!({"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}})
        );
        assert_eq!(metrics[1], json!({"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}));
        assert_eq!(metrics[2]["object"]["targetValue"], "2k");
        assert_eq!(metrics[2]["object"]["target"]["kind"], "Ingress");
        let statuses: Value = serde_json::from_str(ann[METRIC_STATUSES_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(statuses[0]["resource"]["currentAverageUtilization"], 70);
        assert!(ann[CONDITIONS_ANNOTATION].as_str().unwrap().contains("AbleToScale"));
        assert!(ann[BEHAVIOR_ANNOTATION].as_str().unwrap().contains("stabilizationWindowSeconds"));
    }

    #[test]
    fn hpa_round_trips_v2_v1_v2() {
        let original = hpa_v2();
        let v1 =
            convert(original.clone(), "HorizontalPodAutoscaler", "autoscaling", "v2", "autoscaling", "v1").unwrap();
        let back = convert(v1, "HorizontalPodAutoscaler", "autoscaling", "v1", "autoscaling", "v2").unwrap();
        // The CPU utilization metric is last in `original`, where v1 puts it back.
        assert_eq!(back, original);
    }

    #[test]
    fn hpa_round_trips_v1_v2_v1() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4, "targetCPUUtilizationPercentage": 65},
        });
        let v2 = convert(v1.clone(), "HorizontalPodAutoscaler", "autoscaling", "v1", "autoscaling", "v2").unwrap();
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}])
        );
        assert!(v2["metadata"].get("annotations").is_none());
        let back = convert(v2, "HorizontalPodAutoscaler", "autoscaling", "v2", "autoscaling", "v1").unwrap();
        assert_eq!(back, v1);
    }

    #[test]
    fn hpa_v1_without_target_gets_the_implicit_default() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 2},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 12}});
        let v2 = convert(v1, "HorizontalPodAutoscaler", "autoscaling", "v1", "autoscaling", "v2").unwrap();
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], DEFAULT_CPU_UTILIZATION);
        assert_eq!(v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"], 12);
    }

    #[test]
    fn hpa_bad_annotation_is_a_bad_request() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "x", "annotations": {METRIC_SPECS_ANNOTATION: "{not json"}},
            "spec": {"maxReplicas": 2}});
        let e = convert(v1, "HorizontalPodAutoscaler", "autoscaling", "v1", "autoscaling", "v2").unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn hpa_v2_drops_stale_round_trip_annotations() {
        let mut v2 = hpa_v2();
        v2["metadata"]["annotations"][METRIC_SPECS_ANNOTATION] = json!("[]");
        let out = convert(v2, "HorizontalPodAutoscaler", "autoscaling", "v2beta2", "autoscaling", "v2").unwrap();
        assert!(out["metadata"]["annotations"].get(METRIC_SPECS_ANNOTATION).is_none());
        assert_eq!(out["apiVersion"], "autoscaling/v2");
    }

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Started", "message": "Started container app", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:01:00Z", "count": 3,
            "reportingComponent": "kubelet", "reportingInstance": "node-1", "action": "Start"
        })
    }

    #[test]
    fn event_core_to_events_renames_fields() {
        let e = convert(core_event(), "Event", "", "v1", "events.k8s.io", "v1").unwrap();
        assert_eq!(e["apiVersion"], "events.k8s.io/v1");
        assert_eq!(e["regarding"]["name"], "web");
        assert_eq!(e["note"], "Started container app");
        assert_eq!(e["deprecatedSource"]["component"], "kubelet");
        assert_eq!(e["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(e["deprecatedLastTimestamp"], "2024-01-01T00:01:00Z");
        assert_eq!(e["deprecatedCount"], 3);
        assert_eq!(e["reportingController"], "kubelet");
        assert_eq!(e["reportingInstance"], "node-1");
        for gone in ["involvedObject", "message", "source", "count", "reportingComponent"] {
            assert!(e.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn event_round_trips_both_ways() {
        let core = core_event();
        let ev = convert(core.clone(), "Event", "", "v1", "events.k8s.io", "v1").unwrap();
        let back = convert(ev.clone(), "Event", "events.k8s.io", "v1", "", "v1").unwrap();
        assert_eq!(back, core);
        let mut ev2 = ev;
        ev2["eventTime"] = json!("2024-01-01T00:00:00.000000Z");
        let core2 = convert(ev2.clone(), "Event", "events.k8s.io", "v1", "", "v1").unwrap();
        assert_eq!(core2["eventTime"], "2024-01-01T00:00:00.000000Z");
        assert_eq!(convert(core2, "Event", "", "v1", "events.k8s.io", "v1").unwrap(), ev2);
    }

    #[test]
    fn identical_schemas_only_rewrite_api_version_and_lists_convert_items() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}});
        let out = convert(obj, "Deployment", "apps", "v1", "apps", "v1beta2").unwrap();
        assert_eq!(out, json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "spec": {"replicas": 2}}));

        let list = json!({"apiVersion": "v1", "kind": "EventList", "items": [core_event()]});
        let out = convert(list, "EventList", "", "v1", "events.k8s.io", "v1").unwrap();
        assert_eq!(out["apiVersion"], "events.k8s.io/v1");
        assert_eq!(out["items"][0]["note"], "Started container app");
        assert!(convert(json!([1]), "Pod", "", "v1", "", "v1").is_err());
    }
}
