//! Which admission requests a webhook or policy applies to: rules
//! (operations, API groups, versions, resources, scope), resource names,
//! namespace and object label selectors, and a ValidatingAdmissionPolicy's
//! whole `matchResources`. Pure functions over the request; the caller
//! supplies the namespace object when a selector needs its labels.
//!
//! `matchPolicy: Equivalent` is treated as `Exact`: rkube calls admission in
//! the version the client used and does not map between equivalent resources.

use super::{AdmissionRequest, Operation};
use crate::selectors::LabelSelector;
use serde_json::{Map, Value};

/// Kinds that dynamic admission never applies to (upstream exempts them so a
/// broken webhook or policy can always be removed).
const EXEMPT_KINDS: [&str; 6] = [
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
];

/// Is the request about an admission configuration object itself (webhook
/// configurations, admission policies and their bindings)? Such requests
/// skip webhooks and policies, as upstream.
pub fn is_exempt_configuration(req: &AdmissionRequest) -> bool {
    req.group == "admissionregistration.k8s.io" && EXEMPT_KINDS.contains(&req.kind.as_str())
}

/// The request is about a Namespace object (cluster-scoped, but matched by
/// namespace selectors and counted as "Cluster" scope).
fn is_namespace_resource(req: &AdmissionRequest) -> bool {
    req.group.is_empty() && req.resource == "namespaces"
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

fn exact_or_wildcard(items: Option<&Value>, requested: &str) -> bool {
    strings(items).any(|i| i == "*" || i == requested)
}

/// One RuleWithOperations against the request.
fn rule_matches(rule: &Value, req: &AdmissionRequest, namespaced: bool) -> bool {
    let scope_ok = match rule.get("scope").and_then(Value::as_str) {
        None | Some("*") => true,
        Some("Namespaced") => namespaced && !is_namespace_resource(req),
        Some("Cluster") => !namespaced || is_namespace_resource(req),
        Some(_) => false,
    };
    let op = req.operation.as_str();
    let op_ok = strings(rule.get("operations")).any(|o| o == "*" || o == op);
    let resource_ok = strings(rule.get("resources")).any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == req.resource) && (sub == "*" || sub == req.subresource)
    });
    scope_ok
        && op_ok
        && exact_or_wildcard(rule.get("apiGroups"), &req.group)
        && exact_or_wildcard(rule.get("apiVersions"), &req.version)
        && resource_ok
}

/// Does any rule of `rules` (admissionregistration's RuleWithOperations list)
/// match the request? `namespaced` is the scope of the requested resource.
pub fn rules_match(rules: &Value, req: &AdmissionRequest, namespaced: bool) -> bool {
    rules.as_array().is_some_and(|rs| rs.iter().any(|r| rule_matches(r, req, namespaced)))
}

/// Does any NamedRuleWithOperations (a rule plus optional `resourceNames`)
/// match the request? An empty `resourceNames` matches every name.
pub fn named_rules_match(rules: &Value, req: &AdmissionRequest, namespaced: bool) -> bool {
    rules.as_array().is_some_and(|rs| {
        rs.iter().any(|r| {
            if !rule_matches(r, req, namespaced) {
                return false;
            }
            let mut names = strings(r.get("resourceNames")).peekable();
            names.peek().is_none() || names.any(|n| n == req.name)
        })
    })
}

/// Parse a selector field; absent or `null` means the defaulted `{}`,
/// which selects everything.
fn parse_selector(selector: Option<&Value>) -> Result<LabelSelector, String> {
    match selector {
        None | Some(Value::Null) => Ok(LabelSelector::everything()),
        Some(v) => LabelSelector::from_label_selector(v).map_err(|e| e.message),
    }
}

fn labels_of(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

/// The message used when the namespace whose labels a selector needs does
/// not exist (upstream answers such requests with this 404).
pub fn namespace_not_found(name: &str) -> String {
    format!("namespaces {name:?} not found")
}

/// A webhook's or binding's namespaceSelector against the request's
/// namespace (its labels from `namespace_object`).
///
/// Requests for cluster-scoped resources always match, except those for
/// Namespace objects, which are matched by their own labels (the new object
/// on CREATE/UPDATE, else `namespace_object`, else the old object). An
/// empty selector matches everything. Err when the selector is malformed or
/// the namespace is needed but `namespace_object` is None (the message is
/// then [`namespace_not_found`]).
pub fn namespace_selector_matches(
    selector: Option<&Value>,
    req: &AdmissionRequest,
    namespace_object: Option<&Value>,
) -> Result<bool, String> {
    let ns_resource = is_namespace_resource(req);
    if req.namespace.is_empty() && !ns_resource {
        return Ok(true);
    }
    let selector = parse_selector(selector)?;
    if selector.is_empty() {
        return Ok(true);
    }
    let own_object =
        ns_resource && req.subresource.is_empty() && matches!(req.operation, Operation::Create | Operation::Update);
    let labels_source = if own_object {
        req.object.as_ref()
    } else if ns_resource {
        namespace_object.or(req.old_object.as_ref())
    } else {
        namespace_object
    };
    match labels_source {
        Some(obj) => Ok(selector.matches(labels_of(obj))),
        None => {
            let name = if req.namespace.is_empty() { &req.name } else { &req.namespace };
            Err(namespace_not_found(name))
        }
    }
}

/// A webhook's or binding's objectSelector against the labels of the
/// request's object or old object: matches when either matches (an absent
/// object never does). An empty selector matches everything.
pub fn object_selector_matches(selector: Option<&Value>, req: &AdmissionRequest) -> Result<bool, String> {
    let selector = parse_selector(selector)?;
    if selector.is_empty() {
        return Ok(true);
    }
    let matches = |o: Option<&Value>| o.filter(|o| o.is_object()).is_some_and(|o| selector.matches(labels_of(o)));
    Ok(matches(req.object.as_ref()) || matches(req.old_object.as_ref()))
}

/// A metav1.LabelSelector (matchLabels, matchExpressions) against labels.
/// `null` selects nothing and `{}` everything, as upstream's conversion.
pub fn label_selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> Result<bool, String> {
    let s = LabelSelector::from_label_selector(selector).map_err(|e| e.message)?;
    Ok(s.matches(labels))
}

/// A ValidatingAdmissionPolicy's or binding's `matchResources`:
/// namespaceSelector, objectSelector, `excludeResourceRules` (any match
/// excludes) and `resourceRules` (empty: every resource). Selector errors
/// are reported only for requests the rules select, as upstream.
pub fn match_resources(
    match_resources: &Value,
    req: &AdmissionRequest,
    namespaced: bool,
    namespace_object: Option<&Value>,
) -> Result<bool, String> {
    let ns = namespace_selector_matches(match_resources.get("namespaceSelector"), req, namespace_object);
    if matches!(ns, Ok(false)) {
        return Ok(false);
    }
    let obj = object_selector_matches(match_resources.get("objectSelector"), req);
    if matches!(obj, Ok(false)) {
        return Ok(false);
    }
    if let Some(exclude) = match_resources.get("excludeResourceRules")
        && named_rules_match(exclude, req, namespaced)
    {
        return Ok(false);
    }
    let included = match match_resources.get("resourceRules") {
        Some(rules @ Value::Array(list)) if !list.is_empty() => named_rules_match(rules, req, namespaced),
        _ => true,
    };
    if !included {
        return Ok(false);
    }
    ns?;
    obj?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(group: &str, resource: &str, sub: &str, ns: &str, op: Operation) -> AdmissionRequest {
        AdmissionRequest {
            uid: "u".into(),
            group: group.into(),
            version: "v1".into(),
            kind: "Pod".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: "web".into(),
            namespace: ns.into(),
            operation: op,
            user: Default::default(),
            object: Some(json!({"metadata": {"name": "web", "labels": {"app": "web"}}})),
            old_object: None,
            options: None,
            dry_run: false,
        }
    }

    fn pods() -> AdmissionRequest {
        req("", "pods", "", "default", Operation::Create)
    }

    fn rule(ops: &[&str], groups: &[&str], versions: &[&str], resources: &[&str]) -> Value {
        json!({"operations": ops, "apiGroups": groups, "apiVersions": versions, "resources": resources})
    }

    #[test]
    fn operations_groups_versions() {
        let r = pods();
        assert!(rules_match(&json!([rule(&["CREATE"], &[""], &["v1"], &["pods"])]), &r, true));
        assert!(rules_match(&json!([rule(&["*"], &["*"], &["*"], &["*"])]), &r, true));
        assert!(!rules_match(&json!([rule(&["UPDATE", "DELETE"], &[""], &["v1"], &["pods"])]), &r, true));
        assert!(!rules_match(&json!([rule(&["CREATE"], &["apps"], &["v1"], &["pods"])]), &r, true));
        assert!(!rules_match(&json!([rule(&["CREATE"], &[""], &["v1beta1"], &["pods"])]), &r, true));
        // Any rule of the list.
        let list = json!([rule(&["DELETE"], &[""], &["v1"], &["pods"]), rule(&["CREATE"], &[""], &["v1"], &["pods"])]);
        assert!(rules_match(&list, &r, true));
        assert!(!rules_match(&json!([]), &r, true));
        assert!(!rules_match(&Value::Null, &r, true));
    }

    #[test]
    fn resource_and_subresource_forms() {
        let main = pods();
        let status = req("", "pods", "status", "default", Operation::Update);
        let m = |res: &str, r: &AdmissionRequest| rules_match(&json!([rule(&["*"], &["*"], &["*"], &[res])]), r, true);
        assert!(m("pods", &main));
        assert!(!m("pods", &status));
        assert!(m("pods/status", &status));
        assert!(!m("pods/status", &main));
        assert!(m("*", &main));
        assert!(!m("*", &status));
        assert!(m("*/*", &main));
        assert!(m("*/*", &status));
        assert!(m("*/status", &status));
        assert!(!m("*/status", &main));
        assert!(m("pods/*", &status));
        assert!(m("pods/*", &main));
        assert!(!m("deployments/*", &status));
    }

    #[test]
    fn scope() {
        let scoped = |s: &str| {
            let mut r = rule(&["*"], &["*"], &["*"], &["*"]);
            r["scope"] = json!(s);
            json!([r])
        };
        let pod = pods();
        let node = req("", "nodes", "", "", Operation::Create);
        let mut ns = req("", "namespaces", "", "", Operation::Create);
        ns.name = "team".into();
        assert!(rules_match(&scoped("Namespaced"), &pod, true));
        assert!(!rules_match(&scoped("Cluster"), &pod, true));
        assert!(rules_match(&scoped("Cluster"), &node, false));
        assert!(!rules_match(&scoped("Namespaced"), &node, false));
        // Namespaces are cluster-scoped even when the request carries their name as namespace.
        ns.namespace = "team".into();
        assert!(rules_match(&scoped("Cluster"), &ns, false));
        assert!(!rules_match(&scoped("Namespaced"), &ns, false));
        assert!(rules_match(&scoped("*"), &ns, false));
        assert!(!rules_match(&scoped("Bogus"), &pod, true));
    }

    #[test]
    fn resource_names() {
        let mut named = rule(&["*"], &["*"], &["*"], &["pods"]);
        named["resourceNames"] = json!(["web", "db"]);
        let r = pods();
        assert!(named_rules_match(&json!([named.clone()]), &r, true));
        named["resourceNames"] = json!(["db"]);
        assert!(!named_rules_match(&json!([named.clone()]), &r, true));
        named["resourceNames"] = json!([]);
        assert!(named_rules_match(&json!([named]), &r, true));
    }

    #[test]
    fn namespace_selector() {
        let sel = json!({"matchLabels": {"env": "prod"}});
        let prod = json!({"metadata": {"name": "default", "labels": {"env": "prod"}}});
        let dev = json!({"metadata": {"name": "default", "labels": {"env": "dev"}}});
        let r = pods();
        assert_eq!(namespace_selector_matches(Some(&sel), &r, Some(&prod)), Ok(true));
        assert_eq!(namespace_selector_matches(Some(&sel), &r, Some(&dev)), Ok(false));
        // Empty or absent selectors match everything without needing the namespace.
        assert_eq!(namespace_selector_matches(Some(&json!({})), &r, None), Ok(true));
        assert_eq!(namespace_selector_matches(None, &r, None), Ok(true));
        // A needed namespace that is missing is an error (upstream: 404).
        assert_eq!(namespace_selector_matches(Some(&sel), &r, None), Err(namespace_not_found("default")));
        // Cluster-scoped requests always match.
        let node = req("", "nodes", "", "", Operation::Create);
        assert_eq!(namespace_selector_matches(Some(&sel), &node, Some(&dev)), Ok(true));
        // Namespaces match by their own labels on create/update.
        let mut ns = req("", "namespaces", "", "", Operation::Create);
        ns.object = Some(prod.clone());
        assert_eq!(namespace_selector_matches(Some(&sel), &ns, None), Ok(true));
        ns.object = Some(dev.clone());
        assert_eq!(namespace_selector_matches(Some(&sel), &ns, None), Ok(false));
        // ... and by the stored namespace on delete.
        let mut del = req("", "namespaces", "", "", Operation::Delete);
        del.object = None;
        del.old_object = Some(prod);
        assert_eq!(namespace_selector_matches(Some(&sel), &del, None), Ok(true));
        assert_eq!(namespace_selector_matches(Some(&sel), &del, Some(&dev)), Ok(false));
        // Malformed selectors are errors.
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert!(namespace_selector_matches(Some(&bad), &r, Some(&dev)).is_err());
    }

    #[test]
    fn object_selector() {
        let sel = json!({"matchLabels": {"app": "web"}});
        let mut r = pods();
        assert_eq!(object_selector_matches(Some(&sel), &r), Ok(true));
        r.object = Some(json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(object_selector_matches(Some(&sel), &r), Ok(false));
        // The old object counts too (e.g. an update removing the label, a delete).
        r.old_object = Some(json!({"metadata": {"labels": {"app": "web"}}}));
        assert_eq!(object_selector_matches(Some(&sel), &r), Ok(true));
        r.object = None;
        r.old_object = None;
        assert_eq!(object_selector_matches(Some(&sel), &r), Ok(false));
        assert_eq!(object_selector_matches(Some(&json!({})), &r), Ok(true));
        let not_in = json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]});
        r.object = Some(json!({"metadata": {}}));
        assert_eq!(object_selector_matches(Some(&not_in), &r), Ok(true));
    }

    #[test]
    fn label_selectors() {
        let labels = json!({"a": "1", "b": "2"});
        let l = labels.as_object();
        assert_eq!(label_selector_matches(&json!({"matchLabels": {"a": "1"}}), l), Ok(true));
        assert_eq!(label_selector_matches(&json!({"matchLabels": {"a": "2"}}), l), Ok(false));
        let exists = json!({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]});
        assert_eq!(label_selector_matches(&exists, l), Ok(true));
        assert_eq!(label_selector_matches(&json!({}), None), Ok(true));
        assert_eq!(label_selector_matches(&Value::Null, l), Ok(false));
        assert!(label_selector_matches(&json!({"matchLabels": {"a": 1}}), l).is_err());
    }

    #[test]
    fn policy_match_resources() {
        let r = pods();
        let prod = json!({"metadata": {"labels": {"env": "prod"}}});
        let all_pods = json!({"resourceRules": [rule(&["CREATE"], &[""], &["v1"], &["pods"])]});
        assert_eq!(match_resources(&all_pods, &r, true, None), Ok(true));
        assert_eq!(match_resources(&json!({}), &r, true, None), Ok(true));
        let deploys = json!({"resourceRules": [rule(&["*"], &["apps"], &["v1"], &["deployments"])]});
        assert_eq!(match_resources(&deploys, &r, true, None), Ok(false));
        let mut excluded = all_pods.clone();
        let mut ex = rule(&["*"], &["*"], &["*"], &["*"]);
        ex["resourceNames"] = json!(["web"]);
        excluded["excludeResourceRules"] = json!([ex]);
        assert_eq!(match_resources(&excluded, &r, true, None), Ok(false));
        let mut with_ns = all_pods.clone();
        with_ns["namespaceSelector"] = json!({"matchLabels": {"env": "prod"}});
        assert_eq!(match_resources(&with_ns, &r, true, Some(&prod)), Ok(true));
        assert_eq!(match_resources(&with_ns, &r, true, Some(&json!({"metadata": {}}))), Ok(false));
        // The missing namespace only matters when the rules select the request.
        assert!(match_resources(&with_ns, &r, true, None).is_err());
        with_ns["resourceRules"] = deploys["resourceRules"].clone();
        assert_eq!(match_resources(&with_ns, &r, true, None), Ok(false));
        let mut by_obj = all_pods;
        by_obj["objectSelector"] = json!({"matchLabels": {"app": "db"}});
        assert_eq!(match_resources(&by_obj, &r, true, None), Ok(false));
    }

    #[test]
    fn exempt_configuration_kinds() {
        let mut r = pods();
        assert!(!is_exempt_configuration(&r));
        r.group = "admissionregistration.k8s.io".into();
        r.kind = "ValidatingWebhookConfiguration".into();
        assert!(is_exempt_configuration(&r));
    }
}
