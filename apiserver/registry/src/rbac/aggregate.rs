//! ClusterRole aggregation (upstream's clusterrole-aggregation controller, as a pure function):
//! a ClusterRole with `aggregationRule.clusterRoleSelectors` gets, as its `rules`, the union of
//! the rules of every other ClusterRole whose labels match any selector, in ClusterRole name
//! order, duplicates dropped.

use serde_json::Value;

use crate::selectors::LabelSelector;

/// The aggregated form of `target`: `Some(updated ClusterRole)` when `target` has an
/// `aggregationRule` and its `rules` differ from the aggregation result; `None` when there is
/// nothing to aggregate or the stored rules are already current (no write needed).
/// Selectors that fail to parse select nothing.
pub fn aggregate_cluster_role(target: &Value, all_cluster_roles: &[Value]) -> Option<Value> {
    let selectors: Vec<LabelSelector> = target
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?
        .iter()
        .map(|s| LabelSelector::from_label_selector(s).unwrap_or_else(|_| LabelSelector::nothing()))
        .collect();
    let target_name = target.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let name_of = |v: &Value| v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let mut sources: Vec<&Value> = all_cluster_roles
        .iter()
        .filter(|r| name_of(r) != target_name && selectors.iter().any(|s| s.matches_object(r)))
        .collect();
    sources.sort_by_key(|r| name_of(r));
    let mut rules: Vec<Value> = Vec::new();
    for r in sources {
        for rule in r.get("rules").and_then(Value::as_array).into_iter().flatten() {
            if !rules.iter().any(|existing| same_rule(existing, rule)) {
                rules.push(rule.clone());
            }
        }
    }
    let current = target.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
    let unchanged = current.len() == rules.len() && current.iter().zip(&rules).all(|(a, b)| same_rule(a, b));
    if unchanged {
        return None;
    }
    let mut out = target.clone();
    if let Some(o) = out.as_object_mut() {
        o.insert("rules".into(), Value::Array(rules));
    }
    Some(out)
}

/// Semantic equality of two rules: a missing list equals an empty one.
fn same_rule(a: &Value, b: &Value) -> bool {
    super::Rule::from_value(a) == super::Rule::from_value(b)
}
