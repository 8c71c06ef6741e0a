//! Escalation prevention (upstream's `pkg/registry/rbac/validation` plus the policy-based Role,
//! ClusterRole, RoleBinding and ClusterRoleBinding storage checks): a user may only write a role
//! whose rules they already hold, or bind a role whose rules they already hold, unless they have
//! `escalate` on the role resource (roles) or `bind` on the referenced role (bindings).
//! Members of `system:masters` are never checked.

use serde_json::Value;

use super::{Attributes, Policy, RBAC_GROUP, Rule, SYSTEM_MASTERS, aggregate_errors, go_quote, go_quote_list};
use crate::status::qualified;

/// The REST resource of an RBAC kind.
pub(crate) fn resource_for_kind(kind: &str) -> &'static str {
    match kind {
        "Role" => "roles",
        "ClusterRole" => "clusterroles",
        "RoleBinding" => "rolebindings",
        "ClusterRoleBinding" => "clusterrolebindings",
        _ => "",
    }
}

fn forbidden(kind: &str, name: &str, msg: &str) -> String {
    let res = qualified(resource_for_kind(kind), RBAC_GROUP);
    if name.is_empty() {
        format!("{res} is forbidden: {msg}")
    } else {
        format!("{res} {} is forbidden: {msg}", go_quote(name))
    }
}

pub(crate) fn check(
    policy: &Policy,
    user: &str,
    groups: &[String],
    namespace: &str,
    obj: &Value,
    kind: &str,
) -> Result<(), String> {
    if groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let authorized = |verb: &str, resource: &str, res_name: &str, group: &str| {
        let a = Attributes {
            user: user.to_string(),
            groups: groups.to_vec(),
            verb: verb.to_string(),
            namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
            api_group: group.to_string(),
            resource: resource.to_string(),
            subresource: None,
            name: Some(res_name.to_string()).filter(|n| !n.is_empty()),
            resource_request: true,
            path: String::new(),
        };
        policy.authorize(&a).is_allowed()
    };
    match kind {
        "Role" | "ClusterRole" => {
            if authorized("escalate", resource_for_kind(kind), name, RBAC_GROUP) {
                return Ok(());
            }
            let rules = super::rules_of(obj);
            confirm_no_escalation(policy, user, groups, namespace, &rules).map_err(|m| forbidden(kind, name, &m))?;
            if kind == "ClusterRole" && obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                let full = [
                    Rule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Default::default()
                    },
                    Rule { verbs: vec!["*".into()], non_resource_urls: vec!["*".into()], ..Default::default() },
                ];
                if confirm_no_escalation(policy, user, groups, namespace, &full).is_err() {
                    return Err(forbidden(kind, name, "must have cluster-admin privileges to use the aggregationRule"));
                }
            }
            Ok(())
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
            let (ref_kind, ref_name, mut ref_group) = (s("/roleRef/kind"), s("/roleRef/name"), s("/roleRef/apiGroup"));
            if ref_group.is_empty() {
                ref_group = RBAC_GROUP.to_string();
            }
            let bind_ns = if kind == "ClusterRoleBinding" { "" } else { namespace };
            let ref_resource = match ref_kind.as_str() {
                "ClusterRole" => Some("clusterroles"),
                "Role" => Some("roles"),
                _ => None,
            };
            if let Some(r) = ref_resource
                && authorized("bind", r, &ref_name, &ref_group)
            {
                return Ok(());
            }
            let rules = policy.role_ref_rules(&ref_kind, &ref_name, bind_ns).map_err(|e| forbidden(kind, name, &e))?;
            confirm_no_escalation(policy, user, groups, bind_ns, rules).map_err(|m| forbidden(kind, name, &m))
        }
        _ => Ok(()),
    }
}

/// Upstream's `ConfirmNoEscalation`: the user's own rules in `namespace` must cover `rules`.
fn confirm_no_escalation(
    policy: &Policy,
    user: &str,
    groups: &[String],
    namespace: &str,
    rules: &[Rule],
) -> Result<(), String> {
    let (owner, errors) = policy.raw_rules_for(user, groups, namespace);
    let missing = uncovered(&owner, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut descriptions: Vec<String> = compact(missing).iter().map(compact_string_rule).collect();
    descriptions.sort();
    descriptions.dedup();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(user),
        go_quote_list(groups),
        descriptions.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", aggregate_errors(&errors)));
    }
    Err(msg)
}

/// Upstream's `BreakdownRule`: one rule per (group, resource, verb[, name]) and per (url, verb).
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for g in &rule.api_groups {
        for r in &rule.resources {
            for v in &rule.verbs {
                let base = Rule {
                    verbs: vec![v.clone()],
                    api_groups: vec![g.clone()],
                    resources: vec![r.clone()],
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for n in &rule.resource_names {
                        out.push(Rule { resource_names: vec![n.clone()], ..base.clone() });
                    }
                }
            }
        }
    }
    for u in &rule.non_resource_urls {
        for v in &rule.verbs {
            out.push(Rule { verbs: vec![v.clone()], non_resource_urls: vec![u.clone()], ..Default::default() });
        }
    }
    out
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| set.contains(i))
}

fn resource_covers(owner: &[String], requested: &str) -> bool {
    owner.iter().any(|o| {
        o == "*"
            || o == requested
            || o.strip_prefix("*/").is_some_and(|sub| requested.split_once('/').is_some_and(|(_, rs)| rs == sub))
    })
}

/// Upstream's `ruleCovers`.
fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let verbs = owner.verbs.iter().any(|v| v == "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = owner.api_groups.iter().any(|g| g == "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = sub.resources.iter().all(|r| resource_covers(&owner.resources, r));
    let urls = sub.non_resource_urls.iter().all(|u| owner.non_resource_urls.iter().any(|o| super::url_covers(o, u)));
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && urls && names
}

/// The broken-down servant rules no owner rule covers.
fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    servant.iter().flat_map(breakdown).filter(|sub| !owner.iter().any(|o| rule_covers(o, sub))).collect()
}

/// Upstream's `CompactRules`: simple single-group single-resource rules with the same
/// (group, resource, name) are merged, their verbs concatenated.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut simple: Vec<Rule> = Vec::new();
    for r in rules {
        let is_simple = r.resource_names.len() <= 1
            && r.non_resource_urls.is_empty()
            && r.api_groups.len() == 1
            && r.resources.len() == 1;
        if !is_simple {
            out.push(r);
            continue;
        }
        if let Some(existing) = simple.iter_mut().find(|e| {
            e.api_groups == r.api_groups && e.resources == r.resources && e.resource_names == r.resource_names
        }) {
            for v in r.verbs {
                if !existing.verbs.contains(&v) {
                    existing.verbs.push(v);
                }
            }
        } else {
            simple.push(r);
        }
    }
    out.extend(simple);
    out
}

fn compact_string_rule(r: &Rule) -> String {
    let mut parts = Vec::new();
    if !r.api_groups.is_empty() {
        parts.push(format!("APIGroups:{}", go_quote_list(&r.api_groups)));
    }
    if !r.resources.is_empty() {
        parts.push(format!("Resources:{}", go_quote_list(&r.resources)));
    }
    if !r.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:{}", go_quote_list(&r.non_resource_urls)));
    }
    if !r.resource_names.is_empty() {
        parts.push(format!("ResourceNames:{}", go_quote_list(&r.resource_names)));
    }
    if !r.verbs.is_empty() {
        parts.push(format!("Verbs:{}", go_quote_list(&r.verbs)));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Upstream's `CompactString` of a `PolicyRule` value:
/// `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub fn compact_string(rule: &Value) -> String {
    compact_string_rule(&Rule::from_value(rule))
}
