//! ValidatingAdmissionPolicy: CEL validations bound to requests by
//! ValidatingAdmissionPolicyBindings, and the CEL matchConditions shared
//! with admission webhooks.
//!
//! Owns compiling every expression of the policies once ([`PolicySet::new`]),
//! evaluating them for one admission request ([`PolicySet::validate`]: matching,
//! params, matchConditions, variables, validations, messageExpressions, audit
//! annotations, failurePolicy and validationActions, the deny `Status`), the
//! create/update validation of policies and bindings ([`validate_policy`]) and
//! webhooks' [`match_conditions`].
//!
//! CEL variables: `object`, `oldObject`, `request`, `params`, `namespaceObject` and
//! `variables.<name>` (evaluated lazily, at most once per evaluation, each variable
//! seeing only the ones declared before it). `authorizer` is not provided: an
//! expression using it fails to compile (`undeclared reference to 'authorizer'`).
//! Expressions are not type-checked against the objects' schemas: a field that does
//! not exist fails at runtime (`no such key`), not at compile time.

use super::AdmissionRequest;
use super::matching;
use crate::crd::cel::{
    AdmissionEvalError, AdmissionExpression, CelBudget, cel_type_name, compile_admission_expression,
    eval_admission_expression, json_to_cel,
};
use crate::status::{ApiError, FieldError, Reason};
use cel::Value as CelValue;
use cel::objects::{Key, Map as CelMap};
use serde_json::{Map, Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// The audit annotation key of validation failures of `Audit` bindings.
pub const VALIDATION_FAILURE_ANNOTATION: &str = "validation.policy.admission.k8s.io/validation_failure";
/// Upstream's `maxAuditAnnotationValueLength`.
const MAX_AUDIT_ANNOTATION_VALUE_LENGTH: usize = 10 * 1024;
/// Upstream's `MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

const WEBHOOK_VARIABLES: [&str; 3] = ["object", "oldObject", "request"];

/// The top-level variables a policy's expressions may use: `params` only with a paramKind,
/// `variables` only when the policy declares variables (and never in matchConditions).
fn policy_declarations(has_params: bool, has_variables: bool) -> Vec<&'static str> {
    let mut d = vec!["object", "oldObject", "request", "namespaceObject"];
    if has_params {
        d.push("params");
    }
    if has_variables {
        d.push("variables");
    }
    d
}

// ---------------------------------------------------------------------------------------------
// Activation: the values expressions see, with lazily evaluated composited variables
// ---------------------------------------------------------------------------------------------

type Compiled = Result<AdmissionExpression, String>;

/// `request` as CEL sees it: the AdmissionRequest without `object`/`oldObject`.
fn request_value(req: &AdmissionRequest) -> Value {
    let mut v = req.to_value();
    if let Some(m) = v.as_object_mut() {
        m.insert("object".into(), Value::Null);
        m.insert("oldObject".into(), Value::Null);
    }
    v
}

/// `namespaceObject`: the namespace's spec, status and a subset of its metadata
/// (no managedFields, ownerReferences), as upstream exposes it.
fn namespace_value(ns: Option<&Value>) -> Value {
    let Some(ns) = ns.filter(|n| n.is_object()) else { return Value::Null };
    const META: [&str; 12] = [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "finalizers",
    ];
    let mut meta = Map::new();
    if let Some(m) = ns.get("metadata").and_then(Value::as_object) {
        for k in META {
            if let Some(v) = m.get(k) {
                meta.insert(k.to_string(), v.clone());
            }
        }
    }
    let mut out = Map::new();
    out.insert("metadata".into(), Value::Object(meta));
    for k in ["spec", "status"] {
        out.insert(k.into(), ns.get(k).cloned().unwrap_or_else(|| json!({})));
    }
    Value::Object(out)
}

struct Activation<'a> {
    base: Vec<(&'static str, CelValue)>,
    variables: &'a [(String, Compiled)],
    cache: RefCell<HashMap<usize, Result<CelValue, AdmissionEvalError>>>,
    budget: CelBudget,
}

impl<'a> Activation<'a> {
    fn new(base: Vec<(&'static str, CelValue)>, variables: &'a [(String, Compiled)]) -> Self {
        Activation { base, variables, cache: RefCell::new(HashMap::new()), budget: CelBudget::new() }
    }

    /// Evaluate `expr`, which may see the first `visible` composited variables.
    fn eval(&self, expr: &AdmissionExpression, visible: usize) -> Result<CelValue, AdmissionEvalError> {
        let used = expr.variables_used();
        let mut bindings = self.base.clone();
        if !self.variables.is_empty() || !used.is_empty() {
            let mut map = HashMap::new();
            let wanted: Vec<usize> = if used.iter().any(|u| u == "*") {
                (0..visible.min(self.variables.len())).collect()
            } else {
                used.iter()
                    .filter_map(|u| self.variables.iter().position(|(n, _)| n == u))
                    .filter(|i| *i < visible)
                    .collect()
            };
            for i in wanted {
                let value = self.variable(i)?;
                map.insert(Key::String(Arc::new(self.variables[i].0.clone())), value);
            }
            bindings.push(("variables", CelValue::Map(CelMap { map: Arc::new(map) })));
        }
        eval_admission_expression(expr, &bindings, &self.budget)
    }

    fn variable(&self, i: usize) -> Result<CelValue, AdmissionEvalError> {
        if let Some(r) = self.cache.borrow().get(&i) {
            return r.clone();
        }
        let (name, compiled) = &self.variables[i];
        let result = match compiled {
            Err(e) => Err(AdmissionEvalError::Failed(format!("composited variable {name:?} fails to compile: {e}"))),
            Ok(expr) => self.eval(expr, i),
        };
        self.cache.borrow_mut().insert(i, result.clone());
        result
    }

    /// Evaluate a bool expression as upstream's filter reports it: the value, or the
    /// error message (`compilation error: …`, `expression '…' resulted in error: …`).
    fn eval_reported(&self, source: &str, compiled: &Compiled, visible: usize) -> Result<CelValue, EvalFailure> {
        match compiled {
            Err(e) => Err(EvalFailure::Error(format!("compilation error: {e}"))),
            Ok(expr) => match self.eval(expr, visible) {
                Ok(v) => Ok(v),
                Err(AdmissionEvalError::BudgetExhausted) => Err(EvalFailure::Budget),
                Err(e) => Err(EvalFailure::Error(format!("expression '{source}' resulted in error: {e}"))),
            },
        }
    }
}

enum EvalFailure {
    /// One expression failed.
    Error(String),
    /// The whole budget ran out: no further expression runs.
    Budget,
}

const BUDGET_MESSAGE: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// Upstream's `utilerrors.NewAggregate(...).Error()`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Evaluate compiled matchConditions: Ok(false) as soon as one is false; otherwise
/// Err with every error; Ok(true) when all are true.
fn eval_match_conditions(act: &Activation, conditions: &[(String, String, Compiled)]) -> Result<bool, String> {
    let mut errors = Vec::new();
    for (_, source, compiled) in conditions {
        match act.eval_reported(source, compiled, usize::MAX) {
            Ok(CelValue::Bool(false)) => return Ok(false),
            Ok(CelValue::Bool(true)) => {}
            Ok(other) => errors.push(format!(
                "expression '{source}' resulted in error: no such overload: expected bool, got {}",
                cel_type_name(&other)
            )),
            Err(EvalFailure::Error(e)) => errors.push(e),
            Err(EvalFailure::Budget) => return Err(BUDGET_MESSAGE.to_string()),
        }
    }
    if errors.is_empty() { Ok(true) } else { Err(aggregate(&errors)) }
}

fn compile_match_conditions(
    conditions: &Value,
    declared: &[&str],
    composited: &[String],
) -> Vec<(String, String, Compiled)> {
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = str_at(c, "name").to_string();
            let source = str_at(c, "expression").to_string();
            let compiled = compile_admission_expression(&source, declared, composited, Some("bool"));
            (name, source, compiled)
        })
        .collect()
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Evaluate admissionregistration `matchConditions` (a list of {name,
/// expression}) with `object`, `oldObject`, `request` (and `namespaceObject`
/// when `namespace_object` is given) bound. Ok(true) when all are true; Ok(false) when one is
/// false (even if others failed); Err(message) when one fails to compile or evaluate, worded
/// as upstream (`compilation error: …`, `expression '…' resulted in error: …`, several
/// joined as `[a, b]`). Webhooks apply their failurePolicy to the Err.
pub fn match_conditions(
    conditions: &Value,
    req: &AdmissionRequest,
    namespace_object: Option<&Value>,
) -> Result<bool, String> {
    let mut declared: Vec<&str> = WEBHOOK_VARIABLES.to_vec();
    if namespace_object.is_some() {
        declared.push("namespaceObject");
    }
    let compiled = compile_match_conditions(conditions, &declared, &[]);
    if compiled.is_empty() {
        return Ok(true);
    }
    let mut base = vec![
        ("object", json_to_cel(req.object.as_ref().unwrap_or(&Value::Null))),
        ("oldObject", json_to_cel(req.old_object.as_ref().unwrap_or(&Value::Null))),
        ("request", json_to_cel(&request_value(req))),
    ];
    if namespace_object.is_some() {
        base.push(("namespaceObject", json_to_cel(&namespace_value(namespace_object))));
    }
    let act = Activation::new(base, &[]);
    eval_match_conditions(&act, &compiled)
}

// ---------------------------------------------------------------------------------------------
// Compiled policies
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Validation {
    source: String,
    expr: Compiled,
    message: String,
    message_expression: Option<Compiled>,
    reason: Option<String>,
}

#[derive(Debug)]
struct AuditAnnotation {
    key: String,
    source: String,
    expr: Compiled,
}

#[derive(Debug)]
struct Binding {
    name: String,
    match_resources: Option<Value>,
    param_ref: Option<Value>,
    actions: Vec<String>,
}

#[derive(Debug)]
struct Policy {
    name: String,
    match_constraints: Value,
    failure_policy: String,
    /// (apiVersion, kind)
    param_kind: Option<(String, String)>,
    variables: Vec<(String, Compiled)>,
    match_conditions: Vec<(String, String, Compiled)>,
    validations: Vec<Validation>,
    audit_annotations: Vec<AuditAnnotation>,
    bindings: Vec<Binding>,
}

/// Every ValidatingAdmissionPolicy with its bindings, compiled once. Rebuild it when a
/// policy or binding changes.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

/// A request for param objects, made by [`PolicySet::validate`] through its `params` closure.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamQuery {
    /// The policy's `paramKind.apiVersion` (`v1`, `rules.example.com/v1`).
    pub api_version: String,
    /// The policy's `paramKind.kind`.
    pub kind: String,
    /// Where to look when the kind is namespaced: the binding's `paramRef.namespace`, else the
    /// request's namespace; None when both are empty. Ignored for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// `paramRef.name`: return that object only. None: return every object of the kind (in
    /// `namespace` when namespaced); the engine filters them with `paramRef.selector`.
    pub name: Option<String>,
}

/// The answer to a [`ParamQuery`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParamResult {
    /// The kind is namespaced; the objects found in the query's namespace (none when the
    /// query has no namespace or nothing is found).
    Namespaced(Vec<Value>),
    /// The kind is cluster-scoped; the objects found.
    Cluster(Vec<Value>),
    /// No such kind is served.
    UnknownKind,
    /// The lookup failed; the message becomes a binding configuration error.
    Error(String),
}

/// What the policies decided about one request.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The first denial (a `Status` shaped as upstream's), if any binding denied.
    pub denied: Option<ApiError>,
    /// Warnings of `Warn` bindings, for the `Warning` response header.
    pub warnings: Vec<String>,
    /// Audit annotations (key, value): `<policy>/<key>` of auditAnnotations and
    /// [`VALIDATION_FAILURE_ANNOTATION`] of `Audit` bindings.
    pub audit_annotations: Vec<(String, String)>,
}

impl Outcome {
    fn annotate(&mut self, key: String, value: String) {
        // upstream refuses to overwrite an annotation with a different value: first wins
        if !self.audit_annotations.iter().any(|(k, _)| *k == key) {
            self.audit_annotations.push((key, value));
        }
    }
}

fn strings_at(v: &Value, key: &str) -> Vec<String> {
    v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

fn compile_policy(obj: &Value) -> Policy {
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let param_kind = spec
        .get("paramKind")
        .filter(|p| p.is_object())
        .map(|p| (str_at(p, "apiVersion").to_string(), str_at(p, "kind").to_string()));
    let has_variables = spec.get("variables").and_then(Value::as_array).is_some_and(|v| !v.is_empty());
    let decls = policy_declarations(param_kind.is_some(), has_variables);
    let mut composited: Vec<String> = Vec::new();
    let mut variables = Vec::new();
    for v in spec.get("variables").and_then(Value::as_array).into_iter().flatten() {
        let vname = str_at(v, "name").to_string();
        let compiled = compile_admission_expression(str_at(v, "expression"), &decls, &composited, None);
        composited.push(vname.clone());
        variables.push((vname, compiled));
    }
    let match_conditions = compile_match_conditions(
        spec.get("matchConditions").unwrap_or(&Value::Null),
        &policy_declarations(param_kind.is_some(), false),
        &[],
    );
    let validations = spec
        .get("validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            let source = str_at(v, "expression").to_string();
            let expr = compile_admission_expression(&source, &decls, &composited, Some("bool"));
            let message_expression = v
                .get("messageExpression")
                .and_then(Value::as_str)
                .filter(|m| !m.trim().is_empty())
                .map(|m| compile_admission_expression(m, &decls, &composited, Some("string")));
            Validation {
                source,
                expr,
                message: str_at(v, "message").to_string(),
                message_expression,
                reason: v.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()).map(str::to_string),
            }
        })
        .collect();
    let audit_annotations = spec
        .get("auditAnnotations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            let source = str_at(a, "valueExpression").to_string();
            let expr = compile_admission_expression(&source, &decls, &composited, None);
            AuditAnnotation { key: str_at(a, "key").to_string(), source, expr }
        })
        .collect();
    Policy {
        name,
        match_constraints: spec.get("matchConstraints").cloned().unwrap_or_else(|| json!({})),
        failure_policy: spec.get("failurePolicy").and_then(Value::as_str).unwrap_or("Fail").to_string(),
        param_kind,
        variables,
        match_conditions,
        validations,
        audit_annotations,
        bindings: Vec::new(),
    }
}

/// A policy decision, as upstream's PolicyDecision.
struct Decision {
    deny: bool,
    message: String,
    reason: Option<String>,
}

/// The result of evaluating one policy with one binding and one param.
#[derive(Default)]
struct ValidateResult {
    decisions: Vec<Decision>,
    /// (key, value); None value with Some error: an audit annotation that failed
    audit: Vec<(String, String)>,
    audit_errors: Vec<String>,
}

struct Denial<'p> {
    policy: &'p str,
    binding: Option<&'p str>,
    message: String,
    reason: Option<String>,
}

impl Policy {
    fn ignore_errors(&self) -> bool {
        self.failure_policy == "Ignore"
    }

    fn error_decision(&self, message: String) -> Decision {
        Decision { deny: !self.ignore_errors(), message, reason: None }
    }

    fn evaluate(&self, base: Vec<(&'static str, CelValue)>) -> ValidateResult {
        let act = Activation::new(base, &self.variables);
        match eval_match_conditions(&act, &self.match_conditions) {
            Ok(true) => {}
            Ok(false) => return ValidateResult::default(),
            Err(_) if self.ignore_errors() => return ValidateResult::default(),
            Err(e) => return ValidateResult { decisions: vec![self.error_decision(e)], ..Default::default() },
        }
        let mut decisions = Vec::new();
        for v in &self.validations {
            let result = act.eval_reported(&v.source, &v.expr, usize::MAX);
            let decision = match result {
                Err(EvalFailure::Budget) => {
                    return ValidateResult {
                        decisions: vec![self.error_decision(BUDGET_MESSAGE.to_string())],
                        ..Default::default()
                    };
                }
                Err(EvalFailure::Error(e)) => self.error_decision(e),
                Ok(CelValue::Bool(true)) => Decision { deny: false, message: String::new(), reason: None },
                Ok(_) => {
                    let mut message = String::new();
                    if let Some(Ok(mexpr)) = &v.message_expression {
                        match act.eval(mexpr, usize::MAX) {
                            Ok(CelValue::String(s)) => {
                                let t = s.trim();
                                if t.len() <= MAX_MESSAGE_EXPRESSION_BYTES && !t.contains('\n') {
                                    message = t.to_string();
                                }
                            }
                            Err(AdmissionEvalError::BudgetExhausted) => {
                                decisions
                                    .push(self.error_decision(format!("failed messageExpression: {BUDGET_MESSAGE}")));
                                continue;
                            }
                            _ => {}
                        }
                    }
                    if message.is_empty() && !v.message.is_empty() {
                        message = v.message.trim().to_string();
                    }
                    if message.is_empty() {
                        message = format!("failed expression: {}", v.source.trim());
                    }
                    Decision { deny: true, message, reason: Some(v.reason.clone().unwrap_or_else(|| "Invalid".into())) }
                }
            };
            decisions.push(decision);
        }
        let mut result = ValidateResult { decisions, ..Default::default() };
        // audit annotations run with a budget of their own, as upstream
        let audit_act = Activation::new(act.base.clone(), &self.variables);
        for a in &self.audit_annotations {
            match audit_act.eval_reported(&a.source, &a.expr, usize::MAX) {
                Ok(CelValue::String(s)) => {
                    let t = s.trim();
                    if !t.is_empty() {
                        result.audit.push((a.key.clone(), t.to_string()));
                    }
                }
                Ok(CelValue::Null) => {}
                Ok(other) => result.audit_errors.push(format!(
                    "valueExpression '{}' resulted in unsupported return type: {}. Return type must be either string or null.",
                    a.source,
                    cel_type_name(&other)
                )),
                Err(_) if self.ignore_errors() => {}
                Err(EvalFailure::Error(e)) => result.audit_errors.push(e),
                Err(EvalFailure::Budget) => result.audit_errors.push(BUDGET_MESSAGE.to_string()),
            }
        }
        result
    }
}

/// `params` lookup for one binding, as upstream's CollectParams: `[None]` when the policy
/// has no paramKind or the binding no paramRef.
enum ParamError {
    /// The policy cannot be used (its paramKind is not served).
    Policy(String),
    /// This binding cannot be used.
    Binding(String),
}

fn collect_params(
    policy: &Policy,
    binding: &Binding,
    req: &AdmissionRequest,
    params: &dyn Fn(ParamQuery) -> ParamResult,
) -> Result<Vec<Option<Value>>, ParamError> {
    use ParamError::Binding as B;
    let (Some((api_version, kind)), Some(param_ref)) = (&policy.param_kind, &binding.param_ref) else {
        return Ok(vec![None]);
    };
    let ref_ns = str_at(param_ref, "namespace");
    let ref_name = str_at(param_ref, "name");
    let namespace = if !ref_ns.is_empty() {
        Some(ref_ns.to_string())
    } else if !req.namespace.is_empty() {
        Some(req.namespace.clone())
    } else {
        None
    };
    let query = ParamQuery {
        api_version: api_version.clone(),
        kind: kind.clone(),
        namespace: namespace.clone(),
        name: (!ref_name.is_empty()).then(|| ref_name.to_string()),
    };
    let found = match params(query) {
        ParamResult::UnknownKind => {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Err(ParamError::Policy(format!(
                "failed to find resource referenced by paramKind: '{group}/{version}, Kind={kind}'"
            )));
        }
        ParamResult::Error(e) => return Err(B(e)),
        ParamResult::Namespaced(objs) => {
            if namespace.is_none() {
                return Err(B(
                    "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                        .to_string(),
                ));
            }
            objs
        }
        ParamResult::Cluster(objs) => {
            if !ref_ns.is_empty() {
                return Err(B("paramRef.namespace must not be provided for a cluster-scoped `paramKind`".to_string()));
            }
            objs
        }
    };
    let selected: Vec<Value> = if !ref_name.is_empty() {
        if param_ref.get("selector").is_some_and(|s| !s.is_null()) {
            return Err(B("paramRef.name and paramRef.selector are mutually exclusive".to_string()));
        }
        found.into_iter().filter(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(ref_name)).collect()
    } else if let Some(selector) = param_ref.get("selector").filter(|s| !s.is_null()) {
        let mut out = Vec::new();
        for o in found {
            let labels = o.pointer("/metadata/labels").and_then(Value::as_object);
            if matching::label_selector_matches(selector, labels).map_err(B)? {
                out.push(o);
            }
        }
        out
    } else {
        return Err(B("one of name or selector must be provided".to_string()));
    };
    if selected.is_empty() && str_at(param_ref, "parameterNotFoundAction") == "Deny" {
        return Err(B("no params found for policy binding with `Deny` parameterNotFoundAction".to_string()));
    }
    Ok(selected
        .into_iter()
        .map(|mut p| {
            // like upstream's wrappedParam: make sure apiVersion/kind are visible to CEL
            if let Some(m) = p.as_object_mut() {
                m.entry("apiVersion").or_insert_with(|| json!(api_version));
                m.entry("kind").or_insert_with(|| json!(kind));
            }
            Some(p)
        })
        .collect())
}

fn reason_of(r: Option<&str>) -> (u16, Reason) {
    match r {
        Some("Forbidden") => (403, Reason::Forbidden),
        Some("Unauthorized") => (401, Reason::Unauthorized),
        Some("RequestEntityTooLarge") => (413, Reason::RequestEntityTooLarge),
        _ => (422, Reason::Invalid),
    }
}

/// Upstream's `admission.NewForbidden` naming: the object's name, else its generateName,
/// else `Unknown` (always on DELETE, where there is no new object).
fn forbidden_name(req: &AdmissionRequest) -> String {
    let meta = req.object.as_ref().and_then(|o| o.get("metadata"));
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty());
    get("name").or_else(|| get("generateName")).unwrap_or("Unknown").to_string()
}

fn deny_error(req: &AdmissionRequest, d: &Denial) -> ApiError {
    let message = match d.binding {
        Some(b) => {
            format!("ValidatingAdmissionPolicy '{}' with binding '{b}' denied request: {}", d.policy, d.message)
        }
        None => format!("ValidatingAdmissionPolicy '{}' denied request: {}", d.policy, d.message),
    };
    let name = forbidden_name(req);
    let (code, reason) = reason_of(d.reason.as_deref());
    let qualified = crate::status::qualified(&req.resource, &req.group);
    let mut err = ApiError::new(code, reason, format!("{qualified} {name:?} is forbidden: {message}"));
    err.group = Some(req.group.clone());
    err.kind = Some(req.resource.clone());
    err.name = Some(name);
    err.causes = vec![json!({ "message": message })];
    err
}

impl PolicySet {
    /// Compile every policy and attach its bindings (by `spec.policyName`). Expressions that
    /// do not compile are kept as errors: their bindings fail per failurePolicy at admission.
    pub fn new(policies: &[Value], bindings: &[Value]) -> PolicySet {
        let mut compiled: Vec<Policy> = policies.iter().map(compile_policy).collect();
        compiled.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sorted: Vec<&Value> = bindings.iter().collect();
        sorted.sort_by_key(|b| b.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string());
        for b in sorted {
            let spec = b.get("spec").unwrap_or(&Value::Null);
            let policy_name = str_at(spec, "policyName");
            let Some(p) = compiled.iter_mut().find(|p| p.name == policy_name) else { continue };
            p.bindings.push(Binding {
                name: b.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                match_resources: spec.get("matchResources").filter(|m| !m.is_null()).cloned(),
                param_ref: spec.get("paramRef").filter(|m| !m.is_null()).cloned(),
                actions: strings_at(spec, "validationActions"),
            });
        }
        PolicySet { policies: compiled }
    }

    /// Whether no policy has a binding (admission can then skip building the request).
    pub fn is_empty(&self) -> bool {
        self.policies.iter().all(|p| p.bindings.is_empty())
    }

    /// Evaluate every bound policy against `req`. `namespaced` is the scope of the requested
    /// resource; `namespace_object` the request's Namespace (None for cluster-scoped
    /// requests); `params` looks up param objects (see [`ParamQuery`]).
    pub fn validate(
        &self,
        req: &AdmissionRequest,
        namespaced: bool,
        namespace_object: Option<&Value>,
        params: &dyn Fn(ParamQuery) -> ParamResult,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        if matching::is_exempt_configuration(req) {
            return outcome;
        }
        let mut denials: Vec<Denial> = Vec::new();
        // the namespace object of a Namespace request is not its own namespace
        let is_namespace = req.group.is_empty() && req.version == "v1" && req.kind == "Namespace";
        let ns_for_cel = if is_namespace || req.namespace.is_empty() { None } else { namespace_object };
        let object = json_to_cel(req.object.as_ref().unwrap_or(&Value::Null));
        let old_object = json_to_cel(req.old_object.as_ref().unwrap_or(&Value::Null));
        let request = json_to_cel(&request_value(req));
        let ns_value = json_to_cel(&namespace_value(ns_for_cel));

        for policy in self.policies.iter().filter(|p| !p.bindings.is_empty()) {
            match matching::match_resources(&policy.match_constraints, req, namespaced, namespace_object) {
                Ok(true) => {}
                Ok(false) | Err(_) => continue,
            }
            // a configuration error: a denial unless failurePolicy is Ignore
            let config_error = |binding: Option<&str>, err: String| -> Option<String> {
                match policy.failure_policy.as_str() {
                    "Ignore" => None,
                    "Fail" => {
                        let what = if binding.is_some() { "binding" } else { "policy" };
                        Some(format!("failed to configure {what}: {err}"))
                    }
                    other => Some(format!("unrecognized failure policy: '{other}'")),
                }
            };
            let mut audit_values: Vec<(String, Vec<String>)> = Vec::new();
            for binding in &policy.bindings {
                if let Some(mr) = &binding.match_resources {
                    match matching::match_resources(mr, req, namespaced, namespace_object) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            if let Some(message) = config_error(Some(&binding.name), e) {
                                denials.push(Denial {
                                    policy: &policy.name,
                                    binding: Some(&binding.name),
                                    message,
                                    reason: None,
                                });
                            }
                            continue;
                        }
                    }
                }
                let param_objects = match collect_params(policy, binding, req, params) {
                    Ok(p) => p,
                    Err(ParamError::Policy(e)) => {
                        // the policy itself cannot be used: once, without a binding
                        if let Some(message) = config_error(None, e) {
                            denials.push(Denial { policy: &policy.name, binding: None, message, reason: None });
                        }
                        break;
                    }
                    Err(ParamError::Binding(e)) => {
                        if let Some(message) = config_error(Some(&binding.name), e) {
                            denials.push(Denial {
                                policy: &policy.name,
                                binding: Some(&binding.name),
                                message,
                                reason: None,
                            });
                        }
                        continue;
                    }
                };
                for param in param_objects {
                    let params_value = json_to_cel(param.as_ref().unwrap_or(&Value::Null));
                    let base = vec![
                        ("object", object.clone()),
                        ("oldObject", old_object.clone()),
                        ("request", request.clone()),
                        ("params", params_value),
                        ("namespaceObject", ns_value.clone()),
                    ];
                    let result = policy.evaluate(base);
                    for (i, decision) in result.decisions.iter().enumerate() {
                        if !decision.deny {
                            continue;
                        }
                        for action in &binding.actions {
                            match action.as_str() {
                                "Deny" => denials.push(Denial {
                                    policy: &policy.name,
                                    binding: Some(&binding.name),
                                    message: decision.message.clone(),
                                    reason: decision.reason.clone(),
                                }),
                                "Audit" => {
                                    let value = json!([{
                                        "message": decision.message,
                                        "policy": policy.name,
                                        "binding": binding.name,
                                        "expressionIndex": i,
                                        "validationActions": binding.actions,
                                    }]);
                                    outcome.annotate(VALIDATION_FAILURE_ANNOTATION.to_string(), value.to_string());
                                }
                                "Warn" => outcome.warnings.push(format!(
                                    "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {}",
                                    policy.name, binding.name, decision.message
                                )),
                                _ => {}
                            }
                        }
                    }
                    for (key, mut value) in result.audit {
                        if value.len() > MAX_AUDIT_ANNOTATION_VALUE_LENGTH {
                            let mut cut = MAX_AUDIT_ANNOTATION_VALUE_LENGTH;
                            while !value.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            value.truncate(cut);
                        }
                        match audit_values.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, vals)) => {
                                if !vals.contains(&value) {
                                    vals.push(value);
                                }
                            }
                            None => audit_values.push((key, vec![value])),
                        }
                    }
                    for message in result.audit_errors {
                        denials.push(Denial {
                            policy: &policy.name,
                            binding: Some(&binding.name),
                            message,
                            reason: None,
                        });
                    }
                }
            }
            for (key, vals) in audit_values {
                outcome.annotate(format!("{}/{key}", policy.name), vals.join(", "));
            }
        }
        outcome.denied = denials.first().map(|d| deny_error(req, d));
        outcome
    }
}

// ---------------------------------------------------------------------------------------------
// Validation of policies and bindings (create/update)
// ---------------------------------------------------------------------------------------------

/// Validate a ValidatingAdmissionPolicy or ValidatingAdmissionPolicyBinding (by `kind`) on
/// create and update: required fields, supported values, and that every expression compiles.
pub fn validate_policy(obj: &Value) -> Vec<FieldError> {
    match obj.get("kind").and_then(Value::as_str) {
        Some("ValidatingAdmissionPolicyBinding") => validate_binding(obj),
        _ => validate_policy_object(obj),
    }
}

fn compile_error(path: String, source: &str, err: String) -> FieldError {
    FieldError::invalid(path, Value::String(source.to_string()), err)
}

fn is_cel_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !crate::crd::cel::CEL_RESERVED.contains(&s)
}

fn validate_policy_object(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(fp) = spec.get("failurePolicy").and_then(Value::as_str)
        && fp != "Fail"
        && fp != "Ignore"
    {
        errs.push(FieldError::not_supported("spec.failurePolicy", json!(fp), &["Fail", "Ignore"]));
    }
    if let Some(pk) = spec.get("paramKind").filter(|p| !p.is_null()) {
        let av = str_at(pk, "apiVersion");
        if av.is_empty() {
            errs.push(FieldError::required("spec.paramKind.apiVersion", ""));
        } else if av.split('/').count() > 2 || av.split('/').any(str::is_empty) {
            errs.push(FieldError::invalid(
                "spec.paramKind.apiVersion",
                json!(av),
                format!("unexpected GroupVersion string: {av}"),
            ));
        }
        if str_at(pk, "kind").is_empty() {
            errs.push(FieldError::required("spec.paramKind.kind", ""));
        }
    }
    match spec.get("matchConstraints").filter(|m| !m.is_null()) {
        None => errs.push(FieldError::required("spec.matchConstraints", "")),
        Some(mc) => {
            if mc.get("resourceRules").and_then(Value::as_array).is_none_or(|r| r.is_empty()) {
                errs.push(FieldError::required("spec.matchConstraints.resourceRules", ""));
            }
        }
    }
    let mc_decls = policy_declarations(spec.get("paramKind").is_some_and(|p| !p.is_null()), false);
    let mut names: Vec<&str> = Vec::new();
    for (i, c) in spec.get("matchConditions").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let path = format!("spec.matchConditions[{i}]");
        let name = str_at(c, "name");
        let expr = str_at(c, "expression");
        if expr.trim().is_empty() {
            errs.push(FieldError::required(format!("{path}.expression"), ""));
        } else if let Err(e) = compile_admission_expression(expr.trim(), &mc_decls, &[], Some("bool")) {
            errs.push(compile_error(format!("{path}.expression"), expr.trim(), e));
        }
        if name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else if names.contains(&name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), json!(name)));
        } else {
            names.push(name);
        }
    }
    let has_variables = spec.get("variables").and_then(Value::as_array).is_some_and(|v| !v.is_empty());
    let decls = policy_declarations(spec.get("paramKind").is_some_and(|p| !p.is_null()), has_variables);
    let mut composited: Vec<String> = Vec::new();
    for (i, v) in spec.get("variables").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let path = format!("spec.variables[{i}]");
        let name = str_at(v, "name");
        let expr = str_at(v, "expression");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), "name is not specified"));
        } else if !is_cel_identifier(name) {
            errs.push(FieldError::invalid(format!("{path}.name"), json!(name), "name is not a valid CEL identifier"));
        }
        if expr.trim().is_empty() {
            errs.push(FieldError::required(format!("{path}.expression"), "expression is not specified"));
        } else if let Err(e) = compile_admission_expression(expr, &decls, &composited, None) {
            errs.push(compile_error(format!("{path}.expression"), expr, e));
        }
        composited.push(name.to_string());
    }
    let validations = spec.get("validations").and_then(Value::as_array).filter(|a| !a.is_empty());
    let audits = spec.get("auditAnnotations").and_then(Value::as_array).filter(|a| !a.is_empty());
    if validations.is_none() && audits.is_none() {
        let msg = "validations or auditAnnotations must contain at least one item";
        errs.push(FieldError::required("spec.validations", msg));
        errs.push(FieldError::required("spec.auditAnnotations", msg));
    }
    for (i, v) in validations.into_iter().flatten().enumerate() {
        let path = format!("spec.validations[{i}]");
        let expr = str_at(v, "expression");
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            errs.push(FieldError::required(format!("{path}.expression"), "expression is not specified"));
        } else if let Err(e) = compile_admission_expression(expr, &decls, &composited, Some("bool")) {
            errs.push(compile_error(format!("{path}.expression"), expr, e));
        }
        let message = str_at(v, "message");
        let msg_trimmed = message.trim();
        if let Some(me) = v.get("messageExpression").and_then(Value::as_str) {
            if !me.is_empty() && me.trim().is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.messageExpression"),
                    json!(me),
                    "must be non-empty if specified",
                ));
            } else if !me.is_empty()
                && let Err(e) = compile_admission_expression(me, &decls, &composited, Some("string"))
            {
                errs.push(compile_error(format!("{path}.messageExpression"), me, e));
            }
        }
        if !message.is_empty() && msg_trimmed.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.message"),
                json!(message),
                "message must be non-empty if specified",
            ));
        } else if msg_trimmed.contains(['\n', '\r']) {
            errs.push(FieldError::invalid(
                format!("{path}.message"),
                json!(message),
                "message must not contain line breaks",
            ));
        }
        if let Some(r) = v.get("reason").and_then(Value::as_str) {
            const REASONS: [&str; 3] = ["Forbidden", "Invalid", "RequestEntityTooLarge"];
            if !REASONS.contains(&r) {
                errs.push(FieldError::not_supported(format!("{path}.reason"), json!(r), &REASONS));
            }
        }
    }
    let mut keys: Vec<&str> = Vec::new();
    for (i, a) in audits.into_iter().flatten().enumerate() {
        let path = format!("spec.auditAnnotations[{i}]");
        let key = str_at(a, "key");
        if key.is_empty() {
            errs.push(FieldError::required(format!("{path}.key"), ""));
        } else {
            if keys.contains(&key) {
                errs.push(FieldError::duplicate(format!("{path}.key"), json!(key)));
            }
            keys.push(key);
        }
        let expr = str_at(a, "valueExpression");
        if expr.trim().is_empty() {
            errs.push(FieldError::required(format!("{path}.valueExpression"), "valueExpression is not specified"));
        } else if let Err(e) = compile_admission_expression(expr, &decls, &composited, None) {
            errs.push(compile_error(format!("{path}.valueExpression"), expr, e));
        }
    }
    errs
}

fn validate_binding(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if str_at(spec, "policyName").is_empty() {
        errs.push(FieldError::required("spec.policyName", ""));
    }
    let actions = spec.get("validationActions").and_then(Value::as_array).cloned().unwrap_or_default();
    if actions.is_empty() {
        errs.push(FieldError::required("spec.validationActions", "at least one validation action is required"));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let a = a.as_str().unwrap_or_default();
        if seen.contains(&a) {
            errs.push(FieldError::duplicate(format!("spec.validationActions[{i}]"), json!(a)));
        }
        if !["Deny", "Warn", "Audit"].contains(&a) {
            errs.push(FieldError::not_supported(
                format!("spec.validationActions[{i}]"),
                json!(a),
                &["Audit", "Deny", "Warn"],
            ));
        }
        seen.push(a);
    }
    if seen.contains(&"Deny") && seen.contains(&"Warn") {
        errs.push(FieldError::invalid(
            "spec.validationActions",
            Value::Array(actions.clone()),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if let Some(pr) = spec.get("paramRef").filter(|p| !p.is_null()) {
        let has_name = !str_at(pr, "name").is_empty();
        let has_selector = pr.get("selector").is_some_and(|s| !s.is_null());
        if has_name && has_selector {
            errs.push(FieldError::forbidden("spec.paramRef.name", "name and selector are mutually exclusive"));
            errs.push(FieldError::forbidden("spec.paramRef.selector", "name and selector are mutually exclusive"));
        } else if !has_name && !has_selector {
            errs.push(FieldError::required("spec.paramRef", "one of name or selector must be specified"));
        }
        match pr.get("parameterNotFoundAction").and_then(Value::as_str) {
            None => errs.push(FieldError::required("spec.paramRef.parameterNotFoundAction", "")),
            Some(a) if a != "Deny" && a != "Allow" => errs.push(FieldError::not_supported(
                "spec.paramRef.parameterNotFoundAction",
                json!(a),
                &["Deny", "Allow"],
            )),
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Operation, UserInfo};

    fn deployment(name: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
               "spec": {"replicas": replicas}})
    }

    fn request(op: Operation, object: Option<Value>, old: Option<Value>) -> AdmissionRequest {
        AdmissionRequest {
            uid: "uid-1".into(),
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            resource: "deployments".into(),
            subresource: String::new(),
            name: "web".into(),
            namespace: "default".into(),
            operation: op,
            user: UserInfo { username: "alice".into(), groups: vec!["dev".into()], ..Default::default() },
            object,
            old_object: old,
            options: None,
            dry_run: false,
        }
    }

    fn create(replicas: i64) -> AdmissionRequest {
        request(Operation::Create, Some(deployment("web", replicas)), None)
    }

    fn namespace(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "default", "labels": labels, "managedFields": [{"manager": "x"}]},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    }

    fn policy(name: &str, spec: Value) -> Value {
        let mut spec = spec;
        if spec.get("matchConstraints").is_none() {
            spec["matchConstraints"] = json!({"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["deployments"]}]});
        }
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
               "metadata": {"name": name}, "spec": spec})
    }

    fn binding(name: &str, policy: &str, spec: Value) -> Value {
        let mut spec = spec;
        spec["policyName"] = json!(policy);
        if spec.get("validationActions").is_none() {
            spec["validationActions"] = json!(["Deny"]);
        }
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name}, "spec": spec})
    }

    fn no_params(_: ParamQuery) -> ParamResult {
        ParamResult::UnknownKind
    }

    fn run(set: &PolicySet, req: &AdmissionRequest) -> Outcome {
        set.validate(req, true, Some(&namespace(json!({"environment": "test"}))), &no_params)
    }

    fn denied_message(o: &Outcome) -> String {
        o.denied.as_ref().map(|e| e.message.clone()).unwrap_or_default()
    }

    fn replicas_policy() -> PolicySet {
        PolicySet::new(
            &[policy("demo-policy.example.com", json!({"validations": [{"expression": "object.spec.replicas <= 5"}]}))],
            &[binding("demo-binding-test.example.com", "demo-policy.example.com", json!({}))],
        )
    }

    // ----- matchConditions -----

    #[test]
    fn match_conditions_true_false_and_errors() {
        let req = create(3);
        let conds = |exprs: &[&str]| -> Value {
            Value::Array(
                exprs.iter().enumerate().map(|(i, e)| json!({"name": format!("c{i}"), "expression": e})).collect(),
            )
        };
        assert_eq!(match_conditions(&json!([]), &req, None), Ok(true));
        assert_eq!(
            match_conditions(
                &conds(&["request.operation == 'CREATE'", "object.metadata.name == 'web'", "oldObject == null"]),
                &req,
                None
            ),
            Ok(true)
        );
        assert_eq!(match_conditions(&conds(&["request.userInfo.username == 'bob'"]), &req, None), Ok(false));
        // a false condition wins over an error
        assert_eq!(match_conditions(&conds(&["object.nope == 1", "false"]), &req, None), Ok(false));
        assert_eq!(
            match_conditions(&conds(&["object.nope == 1"]), &req, None),
            Err("expression 'object.nope == 1' resulted in error: no such key: nope".to_string())
        );
        let err = match_conditions(&conds(&["params.x", "object.nope == 1"]), &req, None).unwrap_err();
        assert!(err.starts_with("[compilation error: compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')"), "{err}");
        assert!(err.ends_with(", expression 'object.nope == 1' resulted in error: no such key: nope]"), "{err}");
        // namespaceObject only when given
        let ns = namespace(json!({"env": "prod"}));
        assert_eq!(
            match_conditions(&conds(&["namespaceObject.metadata.labels.env == 'prod'"]), &req, Some(&ns)),
            Ok(true)
        );
        assert!(match_conditions(&conds(&["namespaceObject == null"]), &req, None).is_err());
        // request.object is not exposed
        assert_eq!(match_conditions(&conds(&["request.object == null"]), &req, None), Ok(true));
    }

    // ----- the docs' examples -----

    #[test]
    fn deny_replicas_over_five_with_upstream_status() {
        let set = replicas_policy();
        assert!(run(&set, &create(3)).denied.is_none());
        let out = run(&set, &create(6));
        let err = out.denied.expect("denied");
        assert_eq!(
            err.message,
            "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'demo-policy.example.com' with binding \
             'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"
        );
        assert_eq!(err.code, 422);
        assert_eq!(err.reason, Reason::Invalid);
        let status = err.to_status();
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(status["details"]["kind"], "deployments");
        assert_eq!(status["details"]["name"], "web");
        assert_eq!(
            status["details"]["causes"],
            json!([{"message": "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding \
                'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"}])
        );
        // other resources are not matched
        let mut pod = create(9);
        pod.group = String::new();
        pod.resource = "pods".into();
        pod.kind = "Pod".into();
        assert!(run(&set, &pod).denied.is_none());
    }

    #[test]
    fn reason_sets_code_and_message_is_used() {
        for (reason, code) in
            [("Forbidden", 403), ("Unauthorized", 401), ("RequestEntityTooLarge", 413), ("Invalid", 422)]
        {
            let set = PolicySet::new(
                &[policy(
                    "p",
                    json!({"validations": [{"expression": "object.spec.replicas <= 5",
                    "message": "  too many replicas ", "reason": reason}]}),
                )],
                &[binding("b", "p", json!({}))],
            );
            let err = run(&set, &create(6)).denied.expect("denied");
            assert_eq!(err.code, code);
            assert_eq!(err.reason.as_str(), reason);
            assert!(err.message.ends_with("denied request: too many replicas"), "{}", err.message);
        }
    }

    #[test]
    fn params_from_a_namespaced_param_object() {
        let set = PolicySet::new(
            &[policy(
                "replicalimit-policy.example.com",
                json!({
                "paramKind": {"apiVersion": "rules.example.com/v1", "kind": "ReplicaLimit"},
                "validations": [{"expression": "object.spec.replicas <= params.maxReplicas",
                    "messageExpression": "'object.spec.replicas must be no greater than ' + string(params.maxReplicas)",
                    "reason": "Invalid"}]}),
            )],
            &[binding(
                "replicalimit-binding-test.example.com",
                "replicalimit-policy.example.com",
                json!({
                "paramRef": {"name": "replica-limit-test.example.com", "namespace": "default",
                             "parameterNotFoundAction": "Deny"},
                "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}}),
            )],
        );
        let seen = RefCell::new(Vec::new());
        let lookup = |q: ParamQuery| {
            seen.borrow_mut().push(q.clone());
            if q.namespace.as_deref() == Some("default") && q.name.as_deref() == Some("replica-limit-test.example.com")
            {
                ParamResult::Namespaced(vec![json!({"metadata": {"name": "replica-limit-test.example.com"},
                    "maxReplicas": 3})])
            } else {
                ParamResult::Namespaced(vec![])
            }
        };
        let ns = namespace(json!({"environment": "test"}));
        assert!(set.validate(&create(3), true, Some(&ns), &lookup).denied.is_none());
        let out = set.validate(&create(4), true, Some(&ns), &lookup);
        assert!(
            denied_message(&out).ends_with("denied request: object.spec.replicas must be no greater than 3"),
            "{}",
            denied_message(&out)
        );
        assert_eq!(
            seen.borrow()[0],
            ParamQuery {
                api_version: "rules.example.com/v1".into(),
                kind: "ReplicaLimit".into(),
                namespace: Some("default".into()),
                name: Some("replica-limit-test.example.com".into()),
            }
        );
        // namespace label does not match: binding does not apply
        let prod = namespace(json!({"environment": "production"}));
        assert!(set.validate(&create(40), true, Some(&prod), &lookup).denied.is_none());
    }

    #[test]
    fn param_not_found_actions_and_unknown_kind() {
        let mk = |action: &str, fp: &str| {
            PolicySet::new(
                &[policy(
                    "p",
                    json!({"failurePolicy": fp,
                    "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                    "validations": [{"expression": "object.spec.replicas <= int(params.data.max)"}]}),
                )],
                &[binding("b", "p", json!({"paramRef": {"name": "limits", "parameterNotFoundAction": action}}))],
            )
        };
        let none = |_: ParamQuery| ParamResult::Namespaced(vec![]);
        let ns = namespace(json!({}));
        let out = mk("Deny", "Fail").validate(&create(1), true, Some(&ns), &none);
        assert_eq!(
            out.denied.expect("denied").message,
            "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: \
             failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
        );
        assert!(mk("Deny", "Ignore").validate(&create(1), true, Some(&ns), &none).denied.is_none());
        assert!(mk("Allow", "Fail").validate(&create(100), true, Some(&ns), &none).denied.is_none());
        // ConfigMap found: apiVersion/kind are filled in for CEL
        let found = |q: ParamQuery| {
            assert_eq!(q.namespace.as_deref(), Some("default"));
            ParamResult::Namespaced(vec![json!({"metadata": {"name": "limits"}, "data": {"max": "2"}})])
        };
        assert!(mk("Deny", "Fail").validate(&create(2), true, Some(&ns), &found).denied.is_none());
        assert!(mk("Deny", "Fail").validate(&create(3), true, Some(&ns), &found).denied.is_some());
        let unknown = mk("Deny", "Fail").validate(&create(1), true, Some(&ns), &no_params);
        assert!(
            denied_message(&unknown).ends_with(
                "ValidatingAdmissionPolicy 'p' denied request: failed to configure policy: failed to find resource \
                 referenced by paramKind: '/v1, Kind=ConfigMap'"
            ),
            "{}",
            denied_message(&unknown)
        );
    }

    #[test]
    fn selector_params_evaluate_once_per_param() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"paramKind": {"apiVersion": "example.com/v1", "kind": "Limit"},
                "validations": [{"expression": "object.spec.replicas <= params.max",
                    "messageExpression": "'limit ' + params.metadata.name"}]}),
            )],
            &[binding(
                "b",
                "p",
                json!({"validationActions": ["Warn"], "paramRef": {
                "selector": {"matchLabels": {"tier": "web"}}, "parameterNotFoundAction": "Allow"}}),
            )],
        );
        let all = |q: ParamQuery| {
            assert_eq!(q.name, None);
            ParamResult::Cluster(vec![
                json!({"metadata": {"name": "a", "labels": {"tier": "web"}}, "max": 1}),
                json!({"metadata": {"name": "b", "labels": {"tier": "web"}}, "max": 2}),
                json!({"metadata": {"name": "c", "labels": {"tier": "db"}}, "max": 0}),
            ])
        };
        let out = set.validate(&create(5), true, None, &all);
        assert!(out.denied.is_none());
        assert_eq!(
            out.warnings,
            vec![
                "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': limit a",
                "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': limit b",
            ]
        );
        assert_eq!(set.validate(&create(2), true, None, &all).warnings.len(), 1);
    }

    #[test]
    fn warn_audit_and_deny_actions() {
        let mk = |actions: Value| {
            PolicySet::new(
                &[policy(
                    "p",
                    json!({"validations": [
                    {"expression": "true"},
                    {"expression": "object.spec.replicas <= 5", "message": "too many"}]}),
                )],
                &[binding("b", "p", json!({"validationActions": actions}))],
            )
        };
        let warn = run(&mk(json!(["Warn"])), &create(6));
        assert!(warn.denied.is_none());
        assert_eq!(
            warn.warnings,
            vec!["Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': too many"]
        );
        assert!(warn.audit_annotations.is_empty());

        let audit = run(&mk(json!(["Audit"])), &create(6));
        assert!(audit.denied.is_none() && audit.warnings.is_empty());
        assert_eq!(audit.audit_annotations.len(), 1);
        assert_eq!(audit.audit_annotations[0].0, VALIDATION_FAILURE_ANNOTATION);
        let v: Value = serde_json::from_str(&audit.audit_annotations[0].1).expect("json");
        assert_eq!(
            v,
            json!([{"message": "too many", "policy": "p", "binding": "b", "expressionIndex": 1,
                    "validationActions": ["Audit"]}])
        );

        let both = run(&mk(json!(["Deny", "Audit"])), &create(6));
        assert!(both.denied.is_some());
        assert_eq!(both.audit_annotations.len(), 1);
        assert!(run(&mk(json!(["Deny", "Audit"])), &create(5)).audit_annotations.is_empty());
    }

    #[test]
    fn message_expression_falls_back() {
        let mk = |mexpr: &str| {
            PolicySet::new(
                &[policy(
                    "p",
                    json!({"validations": [{"expression": "object.spec.replicas <= 5",
                    "message": "static", "messageExpression": mexpr}]}),
                )],
                &[binding("b", "p", json!({}))],
            )
        };
        let msg = |mexpr: &str| denied_message(&run(&mk(mexpr), &create(6)));
        assert!(msg("'replicas ' + string(object.spec.replicas) + ' > 5'").ends_with(": replicas 6 > 5"));
        assert!(msg("'   '").ends_with(": static"));
        assert!(msg("object.nope").ends_with(": static"));
        assert!(msg("'a\\nb'").ends_with(": static"));
    }

    #[test]
    fn variables_are_lazy_and_ordered() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({
                "variables": [
                    {"name": "replicas", "expression": "object.spec.replicas"},
                    {"name": "limit", "expression": "variables.replicas > 100 ? 100 : 5"},
                    {"name": "broken", "expression": "object.nope.deeper"}],
                "validations": [
                    {"expression": "variables.replicas <= variables.limit",
                     "messageExpression": "'replicas ' + string(variables.replicas)"}]}),
            )],
            &[binding("b", "p", json!({}))],
        );
        assert!(run(&set, &create(5)).denied.is_none(), "the unused failing variable is never evaluated");
        assert!(denied_message(&run(&set, &create(6))).ends_with(": replicas 6"));

        // a used failing variable is an evaluation error
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"variables": [{"name": "broken", "expression": "object.nope"}],
                "validations": [{"expression": "variables.broken == 1"}]}),
            )],
            &[binding("b", "p", json!({}))],
        );
        assert!(
            denied_message(&run(&set, &create(1)))
                .ends_with("denied request: expression 'variables.broken == 1' resulted in error: no such key: nope"),
            "{}",
            denied_message(&run(&set, &create(1)))
        );
    }

    #[test]
    fn failure_policy_on_runtime_errors() {
        let mk = |fp: &str| {
            PolicySet::new(
                &[policy(
                    "p",
                    json!({"failurePolicy": fp,
                    "validations": [{"expression": "object.spec.template.spec.containers.size() > 0"}]}),
                )],
                &[binding("b", "p", json!({}))],
            )
        };
        assert!(run(&mk("Ignore"), &create(1)).denied.is_none());
        let err = run(&mk("Fail"), &create(1)).denied.expect("denied");
        assert_eq!(err.code, 422);
        assert!(
            err.message.ends_with(
                "denied request: expression 'object.spec.template.spec.containers.size() > 0' resulted in error: \
                 no such key: template"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn expressions_that_do_not_compile_fail_per_failure_policy() {
        let mk = |fp: &str| {
            PolicySet::new(
                &[policy("p", json!({"failurePolicy": fp, "validations": [{"expression": "authorizer != null"}]}))],
                &[binding("b", "p", json!({}))],
            )
        };
        assert!(run(&mk("Ignore"), &create(1)).denied.is_none());
        let msg = denied_message(&run(&mk("Fail"), &create(1)));
        assert!(
            msg.contains(
                "denied request: compilation error: compilation failed: ERROR: <input>:1:1: undeclared reference to 'authorizer'"
            ),
            "{msg}"
        );
    }

    #[test]
    fn old_object_on_update_and_request_fields() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"validations": [
                {"expression": "request.operation != 'UPDATE' || object.spec.replicas >= oldObject.spec.replicas",
                 "message": "scale down forbidden"},
                {"expression": "request.userInfo.username == 'alice' && request.namespace == 'default'"}]}),
            )],
            &[binding("b", "p", json!({}))],
        );
        let up = request(Operation::Update, Some(deployment("web", 2)), Some(deployment("web", 3)));
        assert!(denied_message(&run(&set, &up)).ends_with(": scale down forbidden"));
        let up = request(Operation::Update, Some(deployment("web", 4)), Some(deployment("web", 3)));
        assert!(run(&set, &up).denied.is_none());
        assert!(run(&set, &create(1)).denied.is_none());
    }

    #[test]
    fn delete_has_null_object() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"validations": [{"expression": "object == null && oldObject.metadata.name != 'web'",
                "message": "web may not be deleted"}]}),
            )],
            &[binding("b", "p", json!({}))],
        );
        let del = request(Operation::Delete, None, Some(deployment("web", 1)));
        let err = run(&set, &del).denied.expect("denied");
        // upstream names the object "Unknown" when there is no new object
        assert_eq!(
            err.message,
            "deployments.apps \"Unknown\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied \
             request: web may not be deleted"
        );
        let del = request(Operation::Delete, None, Some(deployment("other", 1)));
        assert!(run(&set, &del).denied.is_none());
    }

    #[test]
    fn namespace_object_and_policy_match_conditions() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({
                "matchConditions": [{"name": "not-system", "expression": "!object.metadata.name.startsWith('system-')"}],
                "validations": [{"expression": "namespaceObject.metadata.labels.environment != 'test' || object.spec.replicas < 2",
                    "messageExpression": "'ns ' + namespaceObject.metadata.name + ' ' + string(has(namespaceObject.metadata.managedFields))"}]}),
            )],
            &[binding("b", "p", json!({}))],
        );
        assert!(denied_message(&run(&set, &create(3))).ends_with(": ns default false"));
        let sys = request(Operation::Create, Some(deployment("system-x", 3)), None);
        assert!(run(&set, &sys).denied.is_none(), "matchCondition false: policy does not apply");
    }

    #[test]
    fn audit_annotations_are_collected_per_policy() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"auditAnnotations": [
                {"key": "high-replicas", "valueExpression": "object.spec.replicas > 3 ? 'replicas ' + string(object.spec.replicas) : null"},
                {"key": "bad", "valueExpression": "1"}]}),
            )],
            &[binding("b1", "p", json!({})), binding("b2", "p", json!({}))],
        );
        let out = run(&set, &create(5));
        assert_eq!(out.audit_annotations, vec![("p/high-replicas".to_string(), "replicas 5".to_string())]);
        assert!(
            denied_message(&out).ends_with(
                "with binding 'b1' denied request: valueExpression '1' resulted in unsupported return type: int. \
                 Return type must be either string or null."
            ),
            "{}",
            denied_message(&out)
        );
        assert!(run(&set, &create(1)).audit_annotations.is_empty());
    }

    #[test]
    fn cost_limit_is_an_evaluation_error() {
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"failurePolicy": "Fail", "validations": [{"expression":
                "lists.range(300).all(a, lists.range(300).all(b, lists.range(300).all(c, a + b + c >= 0)))"}]}),
            )],
            &[binding("b", "p", json!({}))],
        );
        let msg = denied_message(&run(&set, &create(1)));
        assert!(msg.contains("resulted in error: operation cancelled: actual cost limit exceeded"), "{msg}");
    }

    #[test]
    fn unbound_and_exempt_requests_are_allowed() {
        let set = PolicySet::new(
            &[policy("p", json!({"validations": [{"expression": "false"}]}))],
            &[binding("b", "other-policy", json!({}))],
        );
        assert!(set.is_empty());
        assert!(run(&set, &create(1)).denied.is_none());
        let set = PolicySet::new(
            &[policy(
                "p",
                json!({"validations": [{"expression": "false"}],
                "matchConstraints": {"resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"],
                    "operations": ["*"], "resources": ["*"]}]}}),
            )],
            &[binding("b", "p", json!({}))],
        );
        let mut req = create(1);
        req.group = "admissionregistration.k8s.io".into();
        req.kind = "ValidatingAdmissionPolicyBinding".into();
        req.resource = "validatingadmissionpolicybindings".into();
        assert!(run(&set, &req).denied.is_none());
        assert!(run(&set, &create(1)).denied.is_some());
    }

    // ----- validation of the objects -----

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn policy_validation() {
        assert!(
            validate_policy(&policy(
                "p",
                json!({"validations": [{"expression": "object.spec.replicas <= 5"}],
            "variables": [{"name": "x", "expression": "1"}]})
            ))
            .is_empty()
        );
        let bad = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "p"}, "spec": {"failurePolicy": "Sometimes",
            "paramKind": {"kind": "X"},
            "variables": [{"name": "1x", "expression": "variables.later"}, {"name": "later", "expression": "1"}],
            "validations": [{"expression": "nope > 1"}, {"expression": "'str'"},
                {"expression": "true", "reason": "Teapot", "messageExpression": "1"},
                {"expression": "", "message": "  "}],
            "matchConditions": [{"name": "a", "expression": "true"}, {"name": "a", "expression": "params.x"}]}});
        let m = messages(&validate_policy(&bad));
        let joined = m.join("\n");
        for want in [
            "spec.failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\"",
            "spec.paramKind.apiVersion: Required value",
            "spec.matchConstraints: Required value",
            "spec.variables[0].name: Invalid value: \"1x\": name is not a valid CEL identifier",
            "spec.variables[0].expression: Invalid value: \"variables.later\": compilation failed: ERROR: <input>:1:10: undefined field 'later'",
            "spec.validations[0].expression: Invalid value: \"nope > 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'nope' (in container '')",
            "spec.validations[1].expression: Invalid value: \"'str'\": must evaluate to bool",
            "spec.validations[2].reason: Unsupported value: \"Teapot\"",
            "spec.validations[2].messageExpression: Invalid value: \"1\": must evaluate to string",
            "spec.validations[3].expression: Required value: expression is not specified",
            "spec.validations[3].message: Invalid value: \"  \": message must be non-empty if specified",
            "spec.matchConditions[1].name: Duplicate value: \"a\"",
        ] {
            assert!(joined.contains(want), "missing {want:?} in\n{joined}");
        }
        let empty = validate_policy(&policy("p", json!({})));
        assert_eq!(
            messages(&empty),
            vec![
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
            ]
        );
    }

    #[test]
    fn binding_validation() {
        assert!(validate_policy(&binding("b", "p", json!({"validationActions": ["Deny", "Audit"]}))).is_empty());
        let m = messages(&validate_policy(&binding("b", "", json!({"validationActions": []}))));
        assert_eq!(
            m,
            vec![
                "spec.policyName: Required value",
                "spec.validationActions: Required value: at least one validation action is required",
            ]
        );
        let m = messages(&validate_policy(&binding(
            "b",
            "p",
            json!({"validationActions": ["Deny", "Warn", "Deny", "Nope"],
            "paramRef": {"name": "x", "selector": {}}}),
        )));
        let joined = m.join("\n");
        for want in [
            "spec.validationActions[2]: Duplicate value: \"Deny\"",
            "spec.validationActions[3]: Unsupported value: \"Nope\"",
            "spec.validationActions: Invalid value: [\"Deny\",\"Warn\",\"Deny\",\"Nope\"]: must not contain both Deny and Warn",
            "spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
            "spec.paramRef.parameterNotFoundAction: Required value",
        ] {
            assert!(joined.contains(want), "missing {want:?} in\n{joined}");
        }
    }
}
