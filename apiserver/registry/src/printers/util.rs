//! Shared cell formatting for the table printers: reading JSON leniently, ages and
//! durations, label maps and label selectors, container lists, "+ N more..." lists.
//!
//! Every reader here tolerates missing or mistyped fields (a client-written object
//! never makes a printer panic); absent values read as upstream's zero values.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The value at a dotted path (`spec.template.spec.containers`).
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.as_object()?.get(key)?;
    }
    if cur.is_null() { None } else { Some(cur) }
}

/// The string at `path`, or "" (Go's zero value).
pub(crate) fn st<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` if present and non-empty.
pub(crate) fn st_opt<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The integer at `path`, if it is a number.
pub(crate) fn int_opt(v: &Value, path: &str) -> Option<i64> {
    let n = at(v, path)?;
    n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or 0.
pub(crate) fn int(v: &Value, path: &str) -> i64 {
    int_opt(v, path).unwrap_or(0)
}

/// The boolean at `path`, if it is one.
pub(crate) fn boolean(v: &Value, path: &str) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// The array at `path`, or an empty slice.
pub(crate) fn list<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The number of entries of the map at `path` (0 when absent).
pub(crate) fn map_len(v: &Value, path: &str) -> usize {
    at(v, path).and_then(Value::as_object).map_or(0, |m| m.len())
}

pub(crate) fn name(v: &Value) -> &str {
    st(v, "metadata.name")
}

/// A Kubernetes timestamp (RFC 3339, with or without fractional seconds).
pub(crate) fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Upstream's `translateTimestampSince`: "<unknown>" for a zero/absent time.
pub(crate) fn since(ts: Option<&Value>, now: DateTime<Utc>) -> String {
    match parse_time(ts) {
        Some(t) => super::human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub(crate) fn age(v: &Value, now: DateTime<Utc>) -> String {
    since(at(v, "metadata.creationTimestamp"), now)
}

/// A `resource.Quantity` as printed; quantities arrive as JSON strings (numbers tolerated).
/// Absent quantities print as upstream's zero quantity, "0".
pub(crate) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// An `IntOrString` as printed (`intstr.String()`).
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()),
        _ => String::new(),
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs joined by ",", or "<none>".
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, "<none>" when it selects
/// everything (or nothing), "<error>" when it is not a valid selector.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// `LabelSelectorAsSelector(sel).String()`: requirements sorted by key, joined by ",".
/// An absent selector (nothing) and an empty one (everything) both print as "".
pub(crate) fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else { return Ok(String::new()) };
    let sel = sel.as_object().ok_or(())?;
    // (key, rendered requirement)
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").filter(|v| !v.is_null()) {
        for (k, v) in ml.as_object().ok_or(())? {
            let v = v.as_str().ok_or(())?;
            if !valid_label_key(k) || !valid_label_value(v) {
                return Err(());
            }
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").filter(|v| !v.is_null()) {
        for e in exprs.as_array().ok_or(())? {
            let key = st(e, "key");
            if !valid_label_key(key) {
                return Err(());
            }
            let mut values = Vec::new();
            for v in list(e, "values") {
                let v = v.as_str().ok_or(())?;
                if !valid_label_value(v) {
                    return Err(());
                }
                values.push(v);
            }
            let rendered = match st(e, "operator") {
                op @ ("In" | "NotIn") => {
                    if values.is_empty() {
                        return Err(());
                    }
                    values.sort_unstable();
                    let word = if op == "In" { "in" } else { "notin" };
                    format!("{key} {word} ({})", values.join(","))
                }
                "Exists" if values.is_empty() => key.to_string(),
                "DoesNotExist" if values.is_empty() => format!("!{key}"),
                _ => return Err(()),
            };
            reqs.push((key.to_string(), rendered));
        }
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

fn valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A qualified name: `[prefix/]name`.
fn valid_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => valid_dns_subdomain(prefix) && valid_label_name(name),
        None => valid_label_name(k),
    }
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty() || valid_label_name(v)
}

/// Container names and images, each comma-joined (`layoutContainerCells`).
pub(crate) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| st(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| st(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// `listWithMoreString`: "a,b,c + 2 more...", or "<unset>" for an empty list.
pub(crate) fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count.saturating_sub(max));
    }
    if ret.is_empty() { "<unset>".to_string() } else { ret }
}

/// "True"/"False"/"<unset>" (`printBoolPtr`).
pub(crate) fn bool_ptr(v: Option<bool>) -> String {
    match v {
        Some(true) => "True".to_string(),
        Some(false) => "False".to_string(),
        None => "<unset>".to_string(),
    }
}

/// `net.JoinHostPort`: IPv6 hosts are bracketed.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Load-balancer ingress points (IP, else hostname), de-duplicated and sorted.
/// The server always renders wide output, so the value is never clipped.
pub(crate) fn load_balancer_ingress(status: Option<&Value>) -> String {
    let mut set: Vec<&str> = status
        .map(|s| list(s, "ingress"))
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| {
            let ip = st(i, "ip");
            let host = st(i, "hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.sort_unstable();
    set.dedup();
    set.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_sorted_and_none_when_empty() {
        assert_eq!(format_labels(Some(&json!({"tier": "fe", "app": "web"}))), "app=web,tier=fe");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selectors_render_like_upstream() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["a"]}
            ]
        });
        assert_eq!(format_label_selector(Some(&sel)), "app=web,!canary,env,tier in (be,fe),zone notin (a)");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        let bad_key = json!({"matchLabels": {"-x": "y"}});
        assert_eq!(format_label_selector(Some(&bad_key)), "<error>");
        assert_eq!(selector_string(Some(&json!({"matchLabels": {"k8s.io/app": "x"}}))), Ok("k8s.io/app=x".into()));
    }

    #[test]
    fn more_lists() {
        let l: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(list_with_more(&l, true, 5, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&[], false, 0, 3), "<unset>");
    }

    #[test]
    fn lenient_readers() {
        let v = json!({"spec": {"replicas": "three", "n": 2.0, "x": null}});
        assert_eq!(int(&v, "spec.replicas"), 0);
        assert_eq!(int(&v, "spec.n"), 2);
        assert!(at(&v, "spec.x").is_none());
        assert!(list(&v, "spec.replicas.items").is_empty());
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}
