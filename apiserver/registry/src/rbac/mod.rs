//! RBAC authorization as a pure library: rule matching, the `Policy` authorizer (upstream's
//! `plugin/pkg/auth/authorizer/rbac`), `SelfSubjectRulesReview` rule listing, escalation
//! prevention for Role/ClusterRole/RoleBinding/ClusterRoleBinding writes (`escalation`),
//! ClusterRole aggregation (`aggregate`), the bootstrap policy (`bootstrap`) and the exact
//! upstream 403 wording (`forbidden_message`).
//!
//! Everything works on stored `serde_json::Value` objects; malformed rules or bindings are
//! skipped (never a panic), as upstream's authorizer only ever sees validated objects.

mod aggregate;
mod bootstrap;
mod escalation;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::status::{ApiError, qualified};

pub use aggregate::aggregate_cluster_role;
pub use bootstrap::bootstrap_policy;
pub use escalation::compact_string;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group whose members may do anything (upstream's `user.SystemPrivilegedGroup`).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// What is being asked (upstream's `authorizer.Attributes`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub namespace: Option<String>,
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    pub resource_request: bool,
    /// The request path, used for non-resource requests.
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(
        user: &str,
        groups: &[&str],
        verb: &str,
        namespace: Option<&str>,
        api_group: &str,
        resource: &str,
    ) -> Self {
        Self {
            user: user.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            verb: verb.to_string(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            api_group: api_group.to_string(),
            resource: resource.to_string(),
            resource_request: true,
            ..Default::default()
        }
    }

    /// A non-resource request (`/healthz`, `/metrics`, ...).
    pub fn non_resource(user: &str, groups: &[&str], verb: &str, path: &str) -> Self {
        Self {
            user: user.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            verb: verb.to_string(),
            path: path.to_string(),
            ..Default::default()
        }
    }

    pub fn with_subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_string()).filter(|s| !s.is_empty());
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string()).filter(|s| !s.is_empty());
        self
    }

    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// An authorizer's answer. RBAC itself never denies: it allows or has no opinion; `Deny` exists
/// so that a union of authorizers can share the type. The string is upstream's reason text
/// (`RBAC: allowed by ...` / `RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`, or empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
    NoOpinion(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// One `PolicyRule`, parsed leniently from JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl Rule {
    pub(crate) fn from_value(v: &Value) -> Self {
        Rule {
            verbs: strings(v.get("verbs")),
            api_groups: strings(v.get("apiGroups")),
            resources: strings(v.get("resources")),
            resource_names: strings(v.get("resourceNames")),
            non_resource_urls: strings(v.get("nonResourceURLs")),
        }
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == "*" || g == group)
    }

    /// `combined` is `resource` or `resource/subresource`.
    fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == "*"
                || r == combined
                || (!subresource.is_empty() && r.strip_prefix("*/").is_some_and(|s| s == subresource))
        })
    }

    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| url_covers(u, path))
    }

    /// Upstream's `RuleAllows`.
    pub(crate) fn allows(&self, a: &Attributes) -> bool {
        if !self.verb_matches(&a.verb) {
            return false;
        }
        if a.resource_request {
            let sub = a.subresource.as_deref().unwrap_or("");
            let combined = if sub.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, sub) };
            self.group_matches(&a.api_group)
                && self.resource_matches(&combined, sub)
                && self.name_matches(a.name.as_deref().unwrap_or(""))
        } else {
            self.url_matches(&a.path)
        }
    }
}

/// `*` matches everything, `/apis/*` matches by prefix, anything else exactly.
pub(crate) fn url_covers(rule: &str, path: &str) -> bool {
    if rule == "*" || rule == path {
        return true;
    }
    rule.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

#[derive(Clone, Debug)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Clone, Debug)]
struct Binding {
    name: String,
    /// Empty for ClusterRoleBindings.
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    fn from_value(v: &Value, cluster: bool) -> Option<Self> {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
        let name = s("/metadata/name");
        let namespace = if cluster { String::new() } else { s("/metadata/namespace") };
        let subjects = v
            .get("subjects")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|sv| Subject {
                        kind: sv.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
                        name: sv.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                        namespace: sv.get("namespace").and_then(Value::as_str).unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Binding { name, namespace, role_kind: s("/roleRef/kind"), role_name: s("/roleRef/name"), subjects })
    }

    /// The first subject that applies to this user (upstream's `appliesTo`).
    fn applies_to(&self, user: &str, groups: &[String]) -> Option<&Subject> {
        self.subjects.iter().find(|s| subject_applies(s, user, groups, &self.namespace))
    }

    fn describe(&self, subject: &Subject) -> String {
        let subj = describe_subject(subject, &self.namespace);
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {} of {} {} to {subj}",
                go_quote(&self.name),
                self.role_kind,
                go_quote(&self.role_name)
            )
        } else {
            format!(
                "RoleBinding {} of {} {} to {subj}",
                go_quote(&format!("{}/{}", self.name, self.namespace)),
                self.role_kind,
                go_quote(&self.role_name)
            )
        }
    }
}

fn describe_subject(s: &Subject, binding_ns: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = if s.namespace.is_empty() { binding_ns } else { &s.namespace };
        format!("{} {}", s.kind, go_quote(&format!("{}/{}", s.name, ns)))
    } else {
        format!("{} {}", s.kind, go_quote(&s.name))
    }
}

fn subject_applies(s: &Subject, user: &str, groups: &[String], binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => s.name == user,
        "Group" => groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() { binding_ns } else { &s.namespace };
            !ns.is_empty() && user == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

/// Indexed roles and bindings; answers authorization questions (upstream's RBAC authorizer).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// (namespace, name) -> rules
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_roles: HashMap<String, Vec<Rule>>,
    /// namespace -> bindings in that namespace
    bindings: HashMap<String, Vec<Binding>>,
    cluster_bindings: Vec<Binding>,
}

fn meta(v: &Value, field: &str) -> String {
    v.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or("").to_string()
}

pub(crate) fn rules_of(v: &Value) -> Vec<Rule> {
    v.get("rules").and_then(Value::as_array).map(|a| a.iter().map(Rule::from_value).collect()).unwrap_or_default()
}

/// Where a rule came from while visiting, for reasons.
struct Source<'a> {
    binding: &'a Binding,
    subject: &'a Subject,
}

impl Policy {
    pub fn new(roles: &[Value], cluster_roles: &[Value], bindings: &[Value], cluster_bindings: &[Value]) -> Self {
        let mut p = Policy::default();
        for r in roles {
            p.roles.insert((meta(r, "namespace"), meta(r, "name")), rules_of(r));
        }
        for r in cluster_roles {
            p.cluster_roles.insert(meta(r, "name"), rules_of(r));
        }
        for b in bindings {
            if let Some(b) = Binding::from_value(b, false) {
                p.bindings.entry(b.namespace.clone()).or_default().push(b);
            }
        }
        p.cluster_bindings = cluster_bindings.iter().filter_map(|b| Binding::from_value(b, true)).collect();
        p
    }

    /// The rules a role reference resolves to (upstream's `GetRoleReferenceRules`), or the
    /// upstream not-found message.
    pub(crate) fn role_ref_rules(&self, kind: &str, name: &str, namespace: &str) -> Result<&[Rule], String> {
        match kind {
            "ClusterRole" => self
                .cluster_roles
                .get(name)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {} not found", go_quote(name))),
            "Role" => self
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .map(Vec::as_slice)
                .ok_or_else(|| format!("role.{RBAC_GROUP} {} not found", go_quote(name))),
            other => Err(format!("unsupported role reference kind: {}", go_quote(other))),
        }
    }

    /// Visit every rule that applies to the user in `namespace` (cluster bindings first, then the
    /// namespace's RoleBindings). The visitor returns false to stop. Resolution errors are passed
    /// as `Err`.
    fn visit<F>(&self, user: &str, groups: &[String], namespace: &str, mut f: F)
    where
        F: FnMut(Option<&Source<'_>>, Result<&Rule, String>) -> bool,
    {
        for b in &self.cluster_bindings {
            let Some(subject) = b.applies_to(user, groups) else { continue };
            let src = Source { binding: b, subject };
            match self.role_ref_rules(&b.role_kind, &b.role_name, "") {
                Ok(rules) => {
                    for r in rules {
                        if !f(Some(&src), Ok(r)) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !f(None, Err(e)) {
                        return;
                    }
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        for b in self.bindings.get(namespace).into_iter().flatten() {
            let Some(subject) = b.applies_to(user, groups) else { continue };
            let src = Source { binding: b, subject };
            match self.role_ref_rules(&b.role_kind, &b.role_name, namespace) {
                Ok(rules) => {
                    for r in rules {
                        if !f(Some(&src), Ok(r)) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !f(None, Err(e)) {
                        return;
                    }
                }
            }
        }
    }

    /// Upstream's RBAC `Authorize`, preceded by the `system:masters` privileged-group authorizer.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        if a.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return Decision::Allow(String::new());
        }
        let mut allowed: Option<String> = None;
        let mut errors: Vec<String> = Vec::new();
        self.visit(&a.user, &a.groups, a.ns(), |src, rule| match rule {
            Ok(r) => {
                if r.allows(a) {
                    allowed = src.map(|s| format!("RBAC: allowed by {}", s.binding.describe(s.subject)));
                    if allowed.is_none() {
                        allowed = Some(String::new());
                    }
                    false
                } else {
                    true
                }
            }
            Err(e) => {
                errors.push(e);
                true
            }
        });
        if let Some(reason) = allowed {
            return Decision::Allow(reason);
        }
        let reason = if errors.is_empty() { String::new() } else { format!("RBAC: {}", aggregate_errors(&errors)) };
        Decision::NoOpinion(reason)
    }

    /// All rules the user has (cluster-wide plus, when given, in `namespace`), as raw rules, and
    /// whether resolution hit errors.
    pub(crate) fn raw_rules_for(&self, user: &str, groups: &[String], namespace: &str) -> (Vec<Rule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit(user, groups, namespace, |_, r| {
            match r {
                Ok(r) => rules.push(r.clone()),
                Err(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }

    /// `SelfSubjectRulesReview` status: (resourceRules, nonResourceRules, incomplete). Members of
    /// `system:masters` additionally get `*` rules, as upstream's privileged-group authorizer.
    pub fn rules_for(&self, user: &str, groups: &[String], namespace: &str) -> (Vec<Value>, Vec<Value>, bool) {
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        if groups.iter().any(|g| g == SYSTEM_MASTERS) {
            resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        }
        let (rules, errors) = self.raw_rules_for(user, groups, namespace);
        for r in rules {
            if !r.resources.is_empty() {
                let mut m = Map::new();
                m.insert("verbs".into(), json!(r.verbs));
                if !r.api_groups.is_empty() {
                    m.insert("apiGroups".into(), json!(r.api_groups));
                }
                m.insert("resources".into(), json!(r.resources));
                if !r.resource_names.is_empty() {
                    m.insert("resourceNames".into(), json!(r.resource_names));
                }
                resource_rules.push(Value::Object(m));
            }
            if !r.non_resource_urls.is_empty() {
                non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
            }
        }
        (resource_rules, non_resource_rules, !errors.is_empty())
    }

    /// Escalation prevention for writes of RBAC objects; see `escalation`. `kind` is `Role`,
    /// `ClusterRole`, `RoleBinding` or `ClusterRoleBinding`; `namespace` the request namespace.
    /// On refusal returns upstream's full 403 message.
    pub fn check_escalation(
        &self,
        user: &str,
        groups: &[String],
        namespace: Option<&str>,
        obj: &Value,
        kind: &str,
    ) -> Result<(), String> {
        escalation::check(self, user, groups, namespace.unwrap_or(""), obj, kind)
    }

    /// `check_escalation` as an `ApiError` (403 Forbidden with upstream's details).
    pub fn check_escalation_error(
        &self,
        user: &str,
        groups: &[String],
        namespace: Option<&str>,
        obj: &Value,
        kind: &str,
    ) -> Result<(), ApiError> {
        self.check_escalation(user, groups, namespace, obj, kind).map_err(|msg| {
            let mut e = ApiError::forbidden(msg);
            e.group = Some(RBAC_GROUP.to_string());
            e.kind = Some(escalation::resource_for_kind(kind).to_string());
            let name = meta(obj, "name");
            if !name.is_empty() {
                e.name = Some(name);
            }
            e
        })
    }
}

/// Upstream's `utilerrors.Aggregate` message: one error as is, several as `[a, b]`.
fn aggregate_errors(errors: &[String]) -> String {
    let mut uniq: Vec<&String> = Vec::new();
    for e in errors {
        if !uniq.contains(&e) {
            uniq.push(e);
        }
    }
    if uniq.len() == 1 {
        uniq[0].clone()
    } else {
        format!("[{}]", uniq.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
    }
}

/// Go's `%q` for a string (`strconv.Quote`).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` for a `[]string`: `["a" "b"]`.
pub(crate) fn go_quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}

/// The authorizer's sentence without the `<resource> is forbidden:` prefix (upstream's
/// `forbiddenMessage`, HTML-sanitized as upstream does).
fn forbidden_sentence(a: &Attributes) -> String {
    let s = if !a.resource_request {
        format!("User {} cannot {} path {}", go_quote(&a.user), a.verb, go_quote(&a.path))
    } else {
        let mut resource = a.resource.clone();
        if let Some(sub) = a.subresource.as_deref().filter(|s| !s.is_empty()) {
            resource = format!("{resource}/{sub}");
        }
        match a.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => format!(
                "User {} cannot {} resource {} in API group {} in the namespace {}",
                go_quote(&a.user),
                a.verb,
                go_quote(&resource),
                go_quote(&a.api_group),
                go_quote(ns)
            ),
            None => format!(
                "User {} cannot {} resource {} in API group {} at the cluster scope",
                go_quote(&a.user),
                a.verb,
                go_quote(&resource),
                go_quote(&a.api_group)
            ),
        }
    };
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The full 403 message upstream returns when authorization fails, with no reason appended:
/// `pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default"`,
/// `pods "web" is forbidden: ...` when a name is known, `forbidden: User "x" cannot get path "/metrics"`.
pub fn forbidden_message(a: &Attributes) -> String {
    forbidden_message_with_reason(a, "")
}

/// As `forbidden_message`, with the authorizer's reason appended as `: <reason>` when non-empty.
pub fn forbidden_message_with_reason(a: &Attributes, reason: &str) -> String {
    let mut err = forbidden_sentence(a);
    if !reason.is_empty() {
        err = format!("{err}: {reason}");
    }
    let resource = if a.resource_request { a.resource.as_str() } else { "" };
    let name = if a.resource_request { a.name.as_deref().unwrap_or("") } else { "" };
    if resource.is_empty() && a.api_group.is_empty() {
        format!("forbidden: {err}")
    } else if name.is_empty() {
        format!("{} is forbidden: {err}", qualified(resource, &a.api_group))
    } else {
        format!("{} {} is forbidden: {err}", qualified(resource, &a.api_group), go_quote(name))
    }
}

/// The 403 `ApiError` for a refused request (details: group, resource as kind, name).
pub fn forbidden_error(a: &Attributes, reason: &str) -> ApiError {
    let mut e = ApiError::forbidden(forbidden_message_with_reason(a, reason));
    if a.resource_request {
        e.group = Some(a.api_group.clone());
        e.kind = Some(a.resource.clone());
        e.name = a.name.clone().filter(|n| !n.is_empty());
    } else {
        e.group = Some(String::new());
        e.kind = Some(String::new());
    }
    e
}
