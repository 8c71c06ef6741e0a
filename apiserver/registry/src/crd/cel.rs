//! CEL validation rules of custom resources: `x-kubernetes-validations`.
//!
//! Owns compiling the rules of one CRD version's structural schema once
//! ([`compile_rules`], errors shaped as upstream's CRD validation reports them) and
//! evaluating them against an object on create and update ([`validate`], errors shaped
//! as upstream's `apiextensions-apiserver/pkg/apiserver/schema/cel` reports them).
//!
//! `self` is bound to the node's value, typed from the schema (integer → int, number →
//! double, string formats `byte`/`duration`/`date`/`date-time` → bytes/duration/timestamp,
//! objects with properties → field access with upstream's property-name escaping, maps,
//! lists, int-or-string and preserved unknown fields → dynamic). `oldSelf` is bound on
//! updates where the node correlates with the old object (object properties, map keys,
//! items of `x-kubernetes-list-type: map` lists by key); rules that use it are skipped
//! when there is no old value unless `optionalOldSelf` is set, when it is an optional.
//! Errors of non-transition rules on unchanged values are ratcheted away (as upstream).
//!
//! Functions: the CEL standard library (`size`, `contains`, `startsWith`, `endsWith`,
//! `matches`, conversions `int/uint/double/string/bytes/bool/dyn/type`, `duration`,
//! `timestamp` and their getters, `has()`, `all/exists/exists_one/map/filter` macros,
//! optionals), the strings extension (`charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`,
//! `upperAscii`, `trim`, `replace`, `split`, `substring`, `join`, `reverse`, `format`,
//! `strings.quote`), the lists extension (`distinct`, `flatten`, `slice`, `sort`,
//! `lists.range`), the math extension (`math.*`) and, implemented here from Kubernetes'
//! libraries: `isSorted`, `sum`, `min`, `max` on lists, `find`/`findAll` regex
//! functions, `sets.contains/equivalent/intersects`. Anything else is a compile error.
//!
//! Cost: every comprehension charges its range size times the size of its body before
//! it runs; a rule stops at [`PER_CALL_LIMIT`] and a whole validation at
//! [`RUNTIME_COST_BUDGET`] (plus a wall-clock guard), with upstream's messages.
//!
//! Also the same library for admission expressions (ValidatingAdmissionPolicy,
//! matchConditions): [`compile_admission_expression`] against declared top-level variables
//! and [`eval_admission_expression`] with bindings and a shared [`CelBudget`].

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelInt, CelOptional};
use cel::common::value::Val;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Value as CelValue};
use serde_json::Value;

use crate::status::{FieldError, FieldErrorType};

/// Upstream's per-expression runtime cost limit (`PerCallLimit`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Upstream's runtime cost budget for validating one object (`RuntimeCELCostBudget`).
pub const RUNTIME_COST_BUDGET: u64 = 10_000_000;
/// Wall-clock guard for validating one object.
pub const EVALUATION_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Upstream's `MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;
/// Where a CRD's schema sits in upstream's (internal) CRD validation errors.
pub const DEFAULT_SCHEMA_PATH: &str = "spec.validation.openAPIV3Schema";

const ITER_FN: &str = "@rkube_iter";
const RULE_REASONS: [&str; 4] =
    ["FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid", "FieldValueDuplicate"];
const NAMESPACES: [&str; 5] = ["optional", "math", "strings", "lists", "sets"];
const TYPE_IDENTS: [&str; 12] =
    ["int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type", "dyn", "optional_type"];

/// Global functions (and macros left as calls) a rule may use.
const GLOBAL_FUNCTIONS: &[&str] = &[
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "duration",
    "timestamp",
    "matches",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "strings.quote",
    "lists.range",
    "math.ceil",
    "math.floor",
    "math.round",
    "math.trunc",
    "math.isInf",
    "math.isNaN",
    "math.isFinite",
    "math.abs",
    "math.sign",
    "math.bitAnd",
    "math.bitOr",
    "math.bitXor",
    "math.bitNot",
    "math.bitShiftLeft",
    "math.bitShiftRight",
    "math.sqrt",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
];

/// Member functions (`x.f(...)`) a rule may use.
const MEMBER_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "join",
    "reverse",
    "format",
    "distinct",
    "flatten",
    "slice",
    "sort",
    "hasValue",
    "value",
    "orValue",
    "or",
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
];

// ---------------------------------------------------------------------------------------------
// Types derived from the schema
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum StrFormat {
    Plain,
    Byte,
    Duration,
    Date,
    DateTime,
}

/// The CEL type of a schema node, as far as converting JSON data needs it.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Int,
    Double,
    Bool,
    Str(StrFormat),
    /// int-or-string, preserved unknown fields, untyped: converted by JSON type.
    Dyn,
    List(Box<Ty>),
    Object {
        /// property name (unescaped) → type
        props: BTreeMap<String, Ty>,
        /// `additionalProperties` schema: a map
        additional: Option<Box<Ty>>,
        /// `x-kubernetes-preserve-unknown-fields` without properties: dynamic
        preserve: bool,
        /// root of a resource (the CR or an embedded resource): metadata is name/generateName only
        resource: bool,
    },
}

fn schema_ty(schema: &Value, resource_root: bool) -> Ty {
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Ty::Dyn;
    }
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    let embedded = schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => Ty::Int,
        Some("number") => Ty::Double,
        Some("boolean") => Ty::Bool,
        Some("string") => Ty::Str(match schema.get("format").and_then(Value::as_str) {
            Some("byte") => StrFormat::Byte,
            Some("duration") => StrFormat::Duration,
            Some("date") => StrFormat::Date,
            Some("date-time") => StrFormat::DateTime,
            _ => StrFormat::Plain,
        }),
        Some("array") => Ty::List(Box::new(schema.get("items").map(|i| schema_ty(i, false)).unwrap_or(Ty::Dyn))),
        Some("object") => {
            let props: BTreeMap<String, Ty> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.iter().map(|(k, v)| (k.clone(), schema_ty(v, false))).collect())
                .unwrap_or_default();
            let additional = match schema.get("additionalProperties") {
                Some(a @ Value::Object(_)) => Some(Box::new(schema_ty(a, false))),
                Some(Value::Bool(true)) => Some(Box::new(Ty::Dyn)),
                _ => None,
            };
            let preserve = preserve && props.is_empty() && additional.is_none();
            Ty::Object { props, additional, preserve, resource: resource_root || embedded }
        }
        _ if preserve || embedded => {
            Ty::Object { props: BTreeMap::new(), additional: None, preserve: true, resource: embedded }
        }
        _ => Ty::Dyn,
    }
}

pub(crate) const CEL_RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Upstream's escaping of property names into CEL field names; `None` when the name
/// cannot be expressed (the property is then invisible to CEL).
pub fn escape_property(name: &str) -> Option<String> {
    if CEL_RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if !(first.is_ascii_alphabetic() || matches!(first, '_' | '.' | '-' | '/')) || !chars.all(ok) {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let bytes: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '_' if bytes.get(i + 1) == Some(&'_') => {
                out.push_str("__underscores__");
                i += 2;
                continue;
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// JSON → CEL values
// ---------------------------------------------------------------------------------------------

fn dyn_value(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(dyn_value).collect())),
        Value::Object(o) => {
            let map: std::collections::HashMap<Key, CelValue> =
                o.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), dyn_value(v))).collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

fn to_cel(v: &Value, ty: &Ty) -> CelValue {
    match (ty, v) {
        (_, Value::Null) => CelValue::Null,
        (Ty::Int, Value::Number(n)) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        (Ty::Double, Value::Number(n)) => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        (Ty::Str(format), Value::String(s)) => string_value(s, format),
        (Ty::List(item), Value::Array(a)) => CelValue::List(Arc::new(a.iter().map(|x| to_cel(x, item)).collect())),
        (Ty::Object { props, additional, preserve, resource }, Value::Object(o)) => {
            if *preserve && !*resource {
                return dyn_value(v);
            }
            let mut map = std::collections::HashMap::new();
            for (k, val) in o {
                if *resource && (k == "apiVersion" || k == "kind") {
                    map.insert(Key::String(Arc::new(k.clone())), dyn_value(val));
                    continue;
                }
                if *resource && k == "metadata" {
                    let mut meta = std::collections::HashMap::new();
                    for f in ["name", "generateName"] {
                        if let Some(Value::String(s)) = val.get(f) {
                            meta.insert(Key::String(Arc::new(f.to_string())), CelValue::String(Arc::new(s.clone())));
                        }
                    }
                    map.insert(Key::String(Arc::new(k.clone())), CelValue::Map(Map { map: Arc::new(meta) }));
                    continue;
                }
                if let Some(pty) = props.get(k) {
                    if let Some(name) = escape_property(k) {
                        map.insert(Key::String(Arc::new(name)), to_cel(val, pty));
                    }
                } else if let Some(aty) = additional {
                    map.insert(Key::String(Arc::new(k.clone())), to_cel(val, aty));
                } else if *preserve {
                    map.insert(Key::String(Arc::new(k.clone())), dyn_value(val));
                }
            }
            CelValue::Map(Map { map: Arc::new(map) })
        }
        _ => dyn_value(v),
    }
}

fn string_value(s: &str, format: &StrFormat) -> CelValue {
    use base64::Engine as _;
    let fallback = || CelValue::String(Arc::new(s.to_string()));
    match format {
        StrFormat::Plain => fallback(),
        StrFormat::Byte => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| CelValue::Bytes(Arc::new(b)))
            .unwrap_or_else(|_| fallback()),
        StrFormat::Duration => parse_go_duration(s).map(CelValue::Duration).unwrap_or_else(fallback),
        StrFormat::DateTime => {
            chrono::DateTime::parse_from_rfc3339(s).map(CelValue::Timestamp).unwrap_or_else(|_| fallback())
        }
        StrFormat::Date => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| CelValue::Timestamp(dt.and_utc().fixed_offset()))
            .unwrap_or_else(fallback),
    }
}

/// Go's `time.ParseDuration` syntax: `[-]` then one or more `<number><unit>`.
fn parse_go_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += number * scale;
    }
    if total_nanos > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(total_nanos as i64);
    Some(if neg { -d } else { d })
}

// ---------------------------------------------------------------------------------------------
// Compiled form
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct CompiledRule {
    source: String,
    message: Option<String>,
    message_expression: Option<(String, IdedExpr)>,
    reason: Option<FieldErrorType>,
    /// normalized fieldPath, appended to the node path (`.a.b`, `[key]`)
    field_path: String,
    uses_old_self: bool,
    optional_old_self: bool,
    expr: IdedExpr,
}

#[derive(Debug, Default)]
struct Node {
    /// the schema's `type` (the value upstream puts in `Invalid value: "object"`)
    schema_type: String,
    ty: Option<Ty>,
    rules: Vec<CompiledRule>,
    properties: BTreeMap<String, Node>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
    all_of: Vec<Node>,
    /// `x-kubernetes-list-map-keys` when this node is a `list-type: map` list
    list_map_keys: Option<Vec<String>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.properties.is_empty()
            && self.additional.is_none()
            && self.items.is_none()
            && self.all_of.is_empty()
    }
}

/// The compiled `x-kubernetes-validations` of one schema (one CRD version): compile once,
/// cache with the CRD version, evaluate for every write.
pub struct CompiledRules {
    env: Arc<Env>,
    root: Option<Node>,
}

impl std::fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRules").field("root", &self.root).finish()
    }
}

impl CompiledRules {
    /// Whether the schema has no rules at all (validation is then a no-op).
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }
    /// How many rules were compiled.
    pub fn rule_count(&self) -> usize {
        fn count(n: &Node) -> usize {
            n.rules.len()
                + n.properties.values().map(count).sum::<usize>()
                + n.additional.as_deref().map_or(0, count)
                + n.items.as_deref().map_or(0, count)
                + n.all_of.iter().map(count).sum::<usize>()
        }
        self.root.as_ref().map_or(0, count)
    }
}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    // The extensions only declare overloads; failures would mean duplicate names, which
    // the crate's own tests rule out. Keep going without the extension rather than panic.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    let _ = env.add_extension(cel::extensions::math);
    env
}

fn shared_env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env())).clone()
}

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

/// Compile every `x-kubernetes-validations` rule of `schema` (an `openAPIV3Schema`), with
/// errors reported under `spec.validation.openAPIV3Schema` as upstream does.
pub fn compile_rules(schema: &Value) -> Result<CompiledRules, Vec<FieldError>> {
    compile_rules_at(schema, DEFAULT_SCHEMA_PATH)
}

/// [`compile_rules`] with errors reported under `base_path`
/// (e.g. `spec.versions[1].schema.openAPIV3Schema`).
pub fn compile_rules_at(schema: &Value, base_path: &str) -> Result<CompiledRules, Vec<FieldError>> {
    let env = shared_env();
    let mut errs = Vec::new();
    let root = compile_node(&env, schema, base_path, true, None, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledRules { env, root: (!root.is_empty()).then_some(root) })
}

fn compile_node(
    env: &Env,
    schema: &Value,
    path: &str,
    resource_root: bool,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Node {
    let mut node = Node {
        schema_type: schema.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
        ..Node::default()
    };
    if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array).filter(|r| !r.is_empty()) {
        let ty = schema_ty(schema, resource_root);
        for (i, rule) in rules.iter().enumerate() {
            let rule_path = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(c) = compile_rule(env, rule, &ty, schema, &rule_path, uncorrelatable, errs) {
                node.rules.push(c);
            }
        }
        node.ty = Some(ty);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let child = compile_node(env, sub, &format!("{path}.properties[{name}]"), false, uncorrelatable, errs);
            if !child.is_empty() {
                node.properties.insert(name.clone(), child);
            }
        }
    }
    if let Some(sub @ Value::Object(_)) = schema.get("additionalProperties") {
        let child = compile_node(env, sub, &format!("{path}.additionalProperties"), false, uncorrelatable, errs);
        if !child.is_empty() {
            node.additional = Some(Box::new(child));
        }
    }
    if let Some(sub @ Value::Object(_)) = schema.get("items") {
        let is_map_list = schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
        let keys: Option<Vec<String>> = is_map_list.then(|| {
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        });
        let items_path = format!("{path}.items");
        let unc = if is_map_list { uncorrelatable } else { uncorrelatable.or(Some(path)) };
        let child = compile_node(env, sub, &items_path, false, unc, errs);
        if !child.is_empty() {
            node.items = Some(Box::new(child));
            node.list_map_keys = keys;
        }
    }
    if let Some(all_of) = schema.get("allOf").and_then(Value::as_array) {
        for (i, sub) in all_of.iter().enumerate() {
            // allOf branches validate the same node: type it with the node's own schema
            let mut merged = sub.clone();
            if let (Value::Object(m), Value::Object(base)) = (&mut merged, schema) {
                for k in ["type", "properties", "items", "additionalProperties", "x-kubernetes-int-or-string"] {
                    if let (false, Some(v)) = (m.contains_key(k), base.get(k)) {
                        if k == "properties" || k == "items" || k == "additionalProperties" {
                            // only the type structure, never the parent's own rules
                            m.insert(k.to_string(), strip_validations(v));
                        } else {
                            m.insert(k.to_string(), v.clone());
                        }
                    }
                }
            }
            let child = compile_node(env, &merged, &format!("{path}.allOf[{i}]"), resource_root, uncorrelatable, errs);
            if !child.is_empty() {
                node.all_of.push(child);
            }
        }
    }
    node
}

fn strip_validations(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "x-kubernetes-validations")
                .map(|(k, v)| (k.clone(), strip_validations(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_validations).collect()),
        other => other.clone(),
    }
}

/// Upstream prints the offending `ValidationRule` with Go's `%#v`.
fn go_rule_repr(rule: &Value) -> String {
    let s = |k: &str| rule.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let reason = if rule.get("reason").is_some_and(|r| !r.is_null()) {
        "(*apiextensions.FieldValueErrorReason)(0xc000000000)"
    } else {
        "(*apiextensions.FieldValueErrorReason)(nil)"
    };
    let optional = if rule.get("optionalOldSelf").is_some_and(|r| !r.is_null()) {
        "(*bool)(0xc000000000)"
    } else {
        "(*bool)(nil)"
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{:?}, Message:{:?}, MessageExpression:{:?}, Reason:{reason}, FieldPath:{:?}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath")
    )
}

fn invalid_rule(path: String, rule: &Value, detail: String) -> FieldError {
    FieldError::new(FieldErrorType::Invalid, path, None, format!("{}: {detail}", go_rule_repr(rule)))
}

fn compile_rule(
    env: &Env,
    rule: &Value,
    ty: &Ty,
    schema: &Value,
    rule_path: &str,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Option<CompiledRule> {
    let before = errs.len();
    let source = rule.get("rule").and_then(Value::as_str).unwrap_or_default().to_string();
    let message = rule.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_string);
    let message_expression_src =
        rule.get("messageExpression").and_then(Value::as_str).filter(|m| !m.trim().is_empty()).map(str::to_string);
    let optional_old_self = rule.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);

    if let Some(m) = &message {
        if m.contains('\n') {
            errs.push(FieldError::invalid(
                format!("{rule_path}.message"),
                Value::String(m.clone()),
                "message must not contain line breaks",
            ));
        }
    } else if source.contains('\n') && message_expression_src.is_none() {
        errs.push(FieldError::required(
            format!("{rule_path}.message"),
            "message must be specified if rule contains line breaks",
        ));
    }

    let reason = match rule.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if RULE_REASONS.contains(&r.as_str()) => Some(match r.as_str() {
            "FieldValueRequired" => FieldErrorType::Required,
            "FieldValueForbidden" => FieldErrorType::Forbidden,
            "FieldValueDuplicate" => FieldErrorType::Duplicate,
            _ => FieldErrorType::Invalid,
        }),
        Some(other) => {
            errs.push(FieldError::not_supported(format!("{rule_path}.reason"), other.clone(), &RULE_REASONS));
            None
        }
    };

    let field_path = match rule.get("fieldPath").and_then(Value::as_str).filter(|f| !f.is_empty()) {
        None => String::new(),
        Some(fp) => match normalize_field_path(fp, schema) {
            Ok(p) => p,
            Err(e) => {
                errs.push(FieldError::invalid(
                    format!("{rule_path}.fieldPath"),
                    Value::String(fp.to_string()),
                    format!("fieldPath must be a valid path: {e}"),
                ));
                String::new()
            }
        },
    };

    let mut expr = None;
    let mut uses_old_self = false;
    if source.trim().is_empty() {
        errs.push(FieldError::required(format!("{rule_path}.rule"), "rule is not specified"));
    } else {
        match compile_expression(env, &source, ty, optional_old_self) {
            Ok((e, old)) => {
                if let Some(msg) = literal_non_bool(&e) {
                    errs.push(invalid_rule(format!("{rule_path}.rule"), rule, msg));
                }
                uses_old_self = old;
                expr = Some(e);
            }
            Err(detail) => {
                errs.push(invalid_rule(format!("{rule_path}.rule"), rule, format!("compilation failed: {detail}")))
            }
        }
    }
    if uses_old_self && let Some(at) = uncorrelatable {
        errs.push(invalid_rule(
            format!("{rule_path}.rule"),
            rule,
            format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {at}"),
        ));
    }
    if optional_old_self && expr.is_some() && !uses_old_self {
        errs.push(FieldError::invalid(
            format!("{rule_path}.optionalOldSelf"),
            Value::Bool(true),
            "may not be set if oldSelf is not used in rule",
        ));
    }

    let mut message_expression = None;
    if let Some(src) = message_expression_src {
        match compile_expression(env, &src, ty, optional_old_self) {
            Ok((e, _)) => message_expression = Some((src, e)),
            Err(detail) => errs.push(invalid_rule(
                format!("{rule_path}.messageExpression"),
                rule,
                format!("messageExpression compilation failed: {detail}"),
            )),
        }
    }

    if errs.len() != before {
        return None;
    }
    Some(CompiledRule {
        source,
        message,
        message_expression,
        reason,
        field_path,
        uses_old_self,
        optional_old_self,
        expr: expr?,
    })
}

/// Parse, check and instrument one expression. Returns it and whether it uses `oldSelf`.
fn compile_expression(env: &Env, source: &str, ty: &Ty, optional_old_self: bool) -> Result<(IdedExpr, bool), String> {
    let program = env.compile(source).map_err(|e| e.to_string())?;
    let expr = program.expression();
    let mut checker = Checker {
        scopes: Vec::new(),
        uses_old_self: false,
        error: None,
        ty,
        optional_old_self,
        declared: None,
        composited: None,
        variables_used: Vec::new(),
    };
    checker.check(expr);
    if let Some((id, msg)) = checker.error {
        let start = program.source_info().offset_for(id).map_or(0, |(start, _)| start as usize).min(source.len());
        let before = source.get(..start).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        let snippet = source.lines().nth(line - 1).unwrap_or_default();
        let caret = format!("{:.>width$}", "^", width = col);
        return Err(format!("ERROR: <input>:{line}:{col}: {msg}\n | {snippet}\n | {caret}"));
    }
    let mut instrumented = expr.clone();
    instrument(&mut instrumented);
    Ok((instrumented, checker.uses_old_self))
}

/// Without a type checker, only a literal of another type is known not to be a bool.
fn literal_non_bool(expr: &IdedExpr) -> Option<String> {
    let non_bool = match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => false,
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) => true,
        _ => false,
    };
    non_bool.then(|| "cel expression must evaluate to a bool".to_string())
}

struct Checker<'a> {
    scopes: Vec<HashSet<String>>,
    uses_old_self: bool,
    error: Option<(u64, String)>,
    ty: &'a Ty,
    optional_old_self: bool,
    /// Admission expressions: the declared top-level variables (instead of `self`/`oldSelf`).
    declared: Option<&'a [&'a str]>,
    /// Admission expressions: the composited variables `variables.<name>` may name.
    composited: Option<&'a [String]>,
    /// Admission expressions: the `variables.<name>` referenced (`*` when `variables` is used whole).
    variables_used: Vec<String>,
}

impl Checker<'_> {
    fn fail(&mut self, id: u64, msg: String) {
        if self.error.is_none() {
            self.error = Some((id, msg));
        }
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.contains(name))
    }

    fn check(&mut self, e: &IdedExpr) {
        if self.error.is_some() {
            return;
        }
        match &e.expr {
            Expr::Ident(name) if self.declared.is_some() => {
                let declared = self.declared.unwrap_or_default();
                if self.in_scope(name) || TYPE_IDENTS.contains(&name.as_str()) {
                    return;
                }
                if !declared.contains(&name.as_str()) {
                    self.fail(e.id, format!("undeclared reference to '{name}' (in container '')"));
                } else if name == "variables" {
                    self.variables_used.push("*".to_string());
                }
            }
            Expr::Select(sel) if self.declared.is_some() => {
                if let Expr::Ident(root) = &sel.operand.expr
                    && root == "variables"
                    && !self.in_scope(root)
                    && self.declared.unwrap_or_default().contains(&"variables")
                {
                    if !self.composited.unwrap_or_default().iter().any(|v| v == &sel.field) {
                        self.fail(e.id, format!("undefined field '{}'", sel.field));
                    } else {
                        self.variables_used.push(sel.field.clone());
                    }
                    return;
                }
                self.check(&sel.operand);
            }
            Expr::Ident(name) => {
                if name == "oldSelf" {
                    self.uses_old_self = true;
                } else if name != "self" && !self.in_scope(name) && !TYPE_IDENTS.contains(&name.as_str()) {
                    self.fail(e.id, format!("undeclared reference to '{name}' (in container '')"));
                }
            }
            Expr::Select(sel) => {
                self.check_fields(e);
                self.check(&sel.operand);
            }
            Expr::Call(call) => self.check_call(e.id, call),
            Expr::Comprehension(c) => self.check_comprehension(c),
            Expr::List(l) => l.elements.iter().for_each(|x| self.check(x)),
            Expr::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            self.check(&me.key);
                            self.check(&me.value);
                        }
                        EntryExpr::StructField(sf) => self.check(&sf.value),
                    }
                }
            }
            Expr::Struct(s) => self.fail(e.id, format!("undeclared reference to '{}' (in container '')", s.type_name)),
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    /// `self.a.b`: every field must exist where the schema fixes the fields.
    fn check_fields(&mut self, e: &IdedExpr) {
        let mut chain = Vec::new();
        let mut cur = e;
        while let Expr::Select(sel) = &cur.expr {
            chain.push((cur.id, sel.field.as_str()));
            cur = &sel.operand;
        }
        let root_is_self = match &cur.expr {
            Expr::Ident(n) if n == "self" => !self.in_scope("self"),
            Expr::Ident(n) if n == "oldSelf" => !self.in_scope("oldSelf") && !self.optional_old_self,
            _ => false,
        };
        if !root_is_self {
            return;
        }
        let mut ty = self.ty;
        for (id, field) in chain.iter().rev() {
            match ty {
                Ty::Object { props, additional: None, preserve: false, resource } => {
                    if *resource && matches!(*field, "apiVersion" | "kind" | "metadata") {
                        return;
                    }
                    match props.iter().find(|(k, _)| escape_property(k).as_deref() == Some(*field)) {
                        Some((_, t)) => ty = t,
                        None => {
                            self.fail(*id, format!("undefined field '{field}'"));
                            return;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn check_call(&mut self, id: u64, call: &CallExpr) {
        let name = call.func_name.as_str();
        let is_operator = name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_";
        if !is_operator {
            let qualified = call.target.as_deref().and_then(|t| match &t.expr {
                Expr::Ident(ns) if NAMESPACES.contains(&ns.as_str()) && !self.in_scope(ns) => {
                    Some(format!("{ns}.{name}"))
                }
                _ => None,
            });
            let known = match (&call.target, &qualified) {
                (_, Some(q)) if GLOBAL_FUNCTIONS.contains(&q.as_str()) => {
                    // namespaced global: don't check the namespace identifier
                    call.args.iter().for_each(|a| self.check(a));
                    return;
                }
                (Some(_), _) => MEMBER_FUNCTIONS.contains(&name),
                (None, _) => GLOBAL_FUNCTIONS.contains(&name),
            };
            if !known {
                let shown = qualified.unwrap_or_else(|| name.to_string());
                self.fail(id, format!("undeclared reference to '{shown}' (in container '')"));
                return;
            }
        }
        if let Some(t) = &call.target {
            self.check(t);
        }
        call.args.iter().for_each(|a| self.check(a));
    }

    fn check_comprehension(&mut self, c: &ComprehensionExpr) {
        self.check(&c.iter_range);
        self.check(&c.accu_init);
        let mut scope = HashSet::new();
        scope.insert(c.iter_var.clone());
        if let Some(v2) = &c.iter_var2 {
            scope.insert(v2.clone());
        }
        scope.insert(c.accu_var.clone());
        self.scopes.push(scope);
        self.check(&c.loop_cond);
        self.check(&c.loop_step);
        self.check(&c.result);
        self.scopes.pop();
    }
}

fn node_count(e: &IdedExpr) -> u64 {
    1 + match &e.expr {
        Expr::Call(c) => c.target.as_deref().map_or(0, node_count) + c.args.iter().map(node_count).sum::<u64>(),
        Expr::Select(s) => node_count(&s.operand),
        Expr::Comprehension(c) => {
            node_count(&c.iter_range)
                + node_count(&c.accu_init)
                + node_count(&c.loop_cond)
                + node_count(&c.loop_step)
                + node_count(&c.result)
        }
        Expr::List(l) => l.elements.iter().map(node_count).sum(),
        Expr::Map(m) => m
            .entries
            .iter()
            .map(|en| match &en.expr {
                EntryExpr::MapEntry(me) => node_count(&me.key) + node_count(&me.value),
                EntryExpr::StructField(sf) => node_count(&sf.value),
            })
            .sum(),
        _ => 0,
    }
}

/// Wrap every comprehension's range as `@rkube_iter(range, weight)`: before iterating, the
/// meter is charged `size(range) * weight`, weight being the size of the loop body.
fn instrument(e: &mut IdedExpr) {
    match &mut e.expr {
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref_mut() {
                instrument(t);
            }
            c.args.iter_mut().for_each(instrument);
        }
        Expr::Select(s) => instrument(&mut s.operand),
        Expr::Comprehension(c) => {
            instrument(&mut c.iter_range);
            instrument(&mut c.loop_cond);
            instrument(&mut c.loop_step);
            instrument(&mut c.result);
            let weight = 1 + node_count(&c.loop_step) + node_count(&c.loop_cond);
            let range = std::mem::take(&mut c.iter_range);
            let id = range.id;
            c.iter_range = IdedExpr {
                id,
                expr: Expr::Call(CallExpr {
                    func_name: ITER_FN.to_string(),
                    target: None,
                    args: vec![
                        range,
                        IdedExpr { id, expr: Expr::Literal(LiteralValue::Int(CelInt::from(weight as i64))) },
                    ],
                }),
            };
        }
        Expr::List(l) => l.elements.iter_mut().for_each(instrument),
        Expr::Map(m) => {
            for en in &mut m.entries {
                match &mut en.expr {
                    EntryExpr::MapEntry(me) => {
                        instrument(&mut me.key);
                        instrument(&mut me.value);
                    }
                    EntryExpr::StructField(sf) => instrument(&mut sf.value),
                }
            }
        }
        _ => {}
    }
}

/// Resolve a rule's `fieldPath` (`.a.b`, `.m['key']`, `['x.y']`) against the node's
/// schema; returns the path to append (`.a.b`, `.m[key]`).
fn normalize_field_path(fp: &str, schema: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut schema = schema;
    let mut rest = fp;
    let step = |name: &str, schema: &mut &Value, out: &mut String| -> Result<(), String> {
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            let next = p.get(name).ok_or_else(|| "does not refer to a valid field".to_string())?;
            out.push('.');
            out.push_str(name);
            *schema = next;
            Ok(())
        } else if let Some(a @ Value::Object(_)) = schema.get("additionalProperties") {
            out.push('[');
            out.push_str(name);
            out.push(']');
            *schema = a;
            Ok(())
        } else {
            Err("does not refer to a valid field".to_string())
        }
    };
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err("unexpected end of JSON path".to_string());
            }
            step(&r[..end], &mut schema, &mut out)?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.strip_prefix('\'').ok_or_else(|| format!("expected single quoted string but got {r}"))?;
            let mut end = None;
            let mut prev = '\0';
            for (i, ch) in r.char_indices() {
                if ch == '\'' && prev != '\\' {
                    end = Some(i);
                    break;
                }
                prev = ch;
            }
            let end = end.ok_or_else(|| "unexpected end of JSON path".to_string())?;
            let name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            let after = r[end + 1..].strip_prefix(']').ok_or_else(|| "expected ] but got end".to_string())?;
            step(&name, &mut schema, &mut out)?;
            rest = after;
        } else {
            let tok = rest.split(['.', '[']).next().unwrap_or(rest);
            return Err(format!("expected [ or . but got: {tok}"));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// The cost meter of one `validate` call.
struct Meter {
    /// cost used by the whole validation so far
    total: AtomicU64,
    /// cost used by the current expression
    call: AtomicU64,
    deadline: Instant,
    call_exceeded: AtomicBool,
    budget_exceeded: AtomicBool,
}

impl Meter {
    fn charge(&self, cost: u64) -> Result<(), ExecutionError> {
        let call = self.call.fetch_add(cost, Ordering::Relaxed).saturating_add(cost);
        let total = self.total.fetch_add(cost, Ordering::Relaxed).saturating_add(cost);
        if total > RUNTIME_COST_BUDGET {
            self.budget_exceeded.store(true, Ordering::Relaxed);
            return Err(ExecutionError::function_error(ITER_FN, "running out of cost budget"));
        }
        if call > PER_CALL_LIMIT || Instant::now() > self.deadline {
            self.call_exceeded.store(true, Ordering::Relaxed);
            return Err(ExecutionError::function_error(ITER_FN, "actual cost limit exceeded"));
        }
        Ok(())
    }
}

struct Eval<'a> {
    env: &'a Arc<Env>,
    meter: Arc<Meter>,
    errs: Vec<FieldError>,
    stopped: bool,
}

/// Evaluate every rule of `compiled` against `obj` (and `old`, the stored object, on
/// updates). Returns upstream-shaped field errors; an empty list means valid.
pub fn validate(compiled: &CompiledRules, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Some(root) = &compiled.root else { return Vec::new() };
    let meter = Arc::new(Meter {
        total: AtomicU64::new(0),
        call: AtomicU64::new(0),
        deadline: Instant::now() + EVALUATION_TIME_LIMIT,
        call_exceeded: AtomicBool::new(false),
        budget_exceeded: AtomicBool::new(false),
    });
    let mut ev = Eval { env: &compiled.env, meter, errs: Vec::new(), stopped: false };
    ev.walk(root, "", obj, old);
    ev.errs
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

fn shown_path(path: &str) -> String {
    if path.is_empty() { "<nil>".to_string() } else { path.to_string() }
}

fn join_field_path(path: &str, suffix: &str) -> String {
    if path.is_empty() { suffix.trim_start_matches('.').to_string() } else { format!("{path}{suffix}") }
}

fn list_key(item: &Value, keys: &[String]) -> Option<Vec<Value>> {
    let obj = item.as_object()?;
    Some(keys.iter().map(|k| obj.get(k).cloned().unwrap_or(Value::Null)).collect())
}

impl Eval<'_> {
    fn walk(&mut self, node: &Node, path: &str, obj: &Value, old: Option<&Value>) {
        if self.stopped || obj.is_null() {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        if !node.rules.is_empty() {
            self.eval_rules(node, path, obj, old);
            if self.stopped {
                return;
            }
        }
        for sub in &node.all_of {
            self.walk(sub, path, obj, old);
            if self.stopped {
                return;
            }
        }
        match obj {
            Value::Array(items) => {
                let Some(item_node) = &node.items else { return };
                let old_items: Vec<(Vec<Value>, &Value)> = match (&node.list_map_keys, old) {
                    (Some(keys), Some(Value::Array(o))) => {
                        o.iter().filter_map(|x| list_key(x, keys).map(|k| (k, x))).collect()
                    }
                    _ => Vec::new(),
                };
                for (i, item) in items.iter().enumerate() {
                    let old_item = node.list_map_keys.as_ref().and_then(|keys| {
                        let k = list_key(item, keys)?;
                        old_items.iter().find(|(ok, _)| *ok == k).map(|(_, v)| *v)
                    });
                    self.walk(item_node, &format!("{path}[{i}]"), item, old_item);
                    if self.stopped {
                        return;
                    }
                }
            }
            Value::Object(map) => {
                if let Some(add) = &node.additional {
                    for (k, v) in map {
                        let old_v = old.and_then(|o| o.get(k));
                        self.walk(add, &format!("{path}[{k}]"), v, old_v);
                        if self.stopped {
                            return;
                        }
                    }
                }
                for (k, v) in map {
                    if let Some(sub) = node.properties.get(k) {
                        let old_v = old.and_then(|o| o.get(k));
                        self.walk(sub, &child_path(path, k), v, old_v);
                        if self.stopped {
                            return;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn context(
        &self,
        self_val: &CelValue,
        old_val: Option<&CelValue>,
        optional_old: bool,
    ) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(self.env.clone());
        ctx.add_variable_from_value("self", self_val.clone());
        if optional_old {
            let opt = match old_val.map(|o| Box::<dyn Val>::try_from(o.clone())) {
                Some(Ok(b)) => CelOptional::of(b),
                _ => CelOptional::none(),
            };
            ctx.add_variable_as_val("oldSelf", Box::new(opt));
        } else if let Some(o) = old_val {
            ctx.add_variable_from_value("oldSelf", o.clone());
        }
        let meter = self.meter.clone();
        let _ = ctx.add_function(ITER_FN, move |range: CelValue, weight: i64| -> Result<CelValue, ExecutionError> {
            let n = match &range {
                CelValue::List(l) => l.len() as u64,
                CelValue::Map(m) => m.map.len() as u64,
                _ => 1,
            };
            meter.charge(n.saturating_mul(weight.max(1) as u64))?;
            Ok(range)
        });
        register_library(&mut ctx);
        ctx
    }

    fn eval_rules(&mut self, node: &Node, path: &str, obj: &Value, old: Option<&Value>) {
        let ty = node.ty.as_ref().unwrap_or(&Ty::Dyn);
        let self_val = to_cel(obj, ty);
        let old_val = old.map(|o| to_cel(o, ty));
        let type_value = Value::String(node.schema_type.clone());
        let at = shown_path(path);
        let plain_ctx = self.context(&self_val, old_val.as_ref(), false);
        let optional_ctx = if node.rules.iter().any(|r| r.optional_old_self) {
            Some(self.context(&self_val, old_val.as_ref(), true))
        } else {
            None
        };
        for rule in &node.rules {
            if self.meter.total.load(Ordering::Relaxed) >= RUNTIME_COST_BUDGET {
                self.errs.push(FieldError::invalid(
                    at.clone(),
                    type_value.clone(),
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                ));
                self.stopped = true;
                return;
            }
            if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
                continue;
            }
            let ctx = match (&optional_ctx, rule.optional_old_self) {
                (Some(c), true) => c,
                _ => &plain_ctx,
            };
            let rule_text = rule.message.as_deref().map(str::trim).unwrap_or(rule.source.trim());
            self.meter.call.store(0, Ordering::Relaxed);
            let _ = self.meter.charge(node_count(&rule.expr));
            let result = CelValue::resolve(&rule.expr, ctx);
            if self.meter.budget_exceeded.load(Ordering::Relaxed) {
                self.errs.push(FieldError::invalid(
                    at.clone(),
                    type_value.clone(),
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                ));
                self.stopped = true;
                return;
            }
            if self.meter.call_exceeded.load(Ordering::Relaxed) {
                self.errs.push(FieldError::invalid(
                    at.clone(),
                    type_value.clone(),
                    format!(
                        "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {rule_text}"
                    ),
                ));
                self.stopped = true;
                return;
            }
            match result {
                Ok(CelValue::Bool(true)) => continue,
                Ok(CelValue::Bool(false)) => {}
                Ok(other) => {
                    self.errs.push(FieldError::invalid(
                        at.clone(),
                        type_value.clone(),
                        format!("rule evaluated to {} instead of bool evaluating rule: {rule_text}", other.type_of()),
                    ));
                    continue;
                }
                Err(ExecutionError::NoSuchOverload(o)) => {
                    self.errs.push(FieldError::invalid(
                        at.clone(),
                        type_value.clone(),
                        format!(
                            "'no such overload: {o}': call arguments did not match a supported operator, function or macro signature for rule: {rule_text}"
                        ),
                    ));
                    continue;
                }
                Err(e) => {
                    self.errs.push(FieldError::invalid(
                        at.clone(),
                        type_value.clone(),
                        format!("{} evaluating rule: {rule_text}", exec_error_text(&e)),
                    ));
                    continue;
                }
            }
            // the rule is false: ratchet unchanged values, then build the error
            if !rule.uses_old_self && old == Some(obj) {
                continue;
            }
            let err_path = join_field_path(path, &rule.field_path);
            let err_path = shown_path(&err_path);
            let mut detail = None;
            if let Some((_, mexpr)) = &rule.message_expression {
                self.meter.call.store(0, Ordering::Relaxed);
                let out = CelValue::resolve(mexpr, &plain_ctx);
                if self.meter.budget_exceeded.load(Ordering::Relaxed)
                    || self.meter.call_exceeded.load(Ordering::Relaxed)
                {
                    self.errs.push(FieldError::invalid(
                        err_path,
                        type_value.clone(),
                        "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run",
                    ));
                    self.stopped = true;
                    return;
                }
                if let Ok(CelValue::String(s)) = out {
                    let t = s.trim();
                    if !t.is_empty() && t.len() <= MAX_MESSAGE_EXPRESSION_BYTES && !t.contains('\n') {
                        detail = Some(t.to_string());
                    }
                }
            }
            let detail = detail.unwrap_or_else(|| match &rule.message {
                Some(m) => m.trim().to_string(),
                None => format!("failed rule: {}", rule.source.trim()),
            });
            self.errs.push(match rule.reason {
                Some(FieldErrorType::Forbidden) => FieldError::forbidden(err_path, detail),
                Some(FieldErrorType::Required) => FieldError::required(err_path, detail),
                Some(FieldErrorType::Duplicate) => FieldError::duplicate(err_path, type_value.clone()),
                _ => FieldError::invalid(err_path, type_value.clone(), detail),
            });
        }
    }
}

/// cel-go's wording for the runtime errors users see most.
fn exec_error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::IndexOutOfBounds(i) => format!("index out of bounds: {}", cel_display(i)),
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        ExecutionError::Overflow(..) => "integer overflow".to_string(),
        ExecutionError::UndeclaredReference(r) => format!("no such attribute: {r}"),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn cel_display(v: &CelValue) -> String {
    match v {
        CelValue::Int(i) => i.to_string(),
        CelValue::UInt(u) => u.to_string(),
        CelValue::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes library functions not in the cel crate
// ---------------------------------------------------------------------------------------------

fn list_of(v: &CelValue, f: &str) -> Result<Arc<Vec<CelValue>>, ExecutionError> {
    match v {
        CelValue::List(l) => Ok(l.clone()),
        other => Err(ExecutionError::no_such_member_overload(f, vec![other.type_of().to_string()])),
    }
}

fn compare(a: &CelValue, b: &CelValue) -> Result<std::cmp::Ordering, ExecutionError> {
    a.partial_cmp(b).ok_or_else(|| ExecutionError::ValuesNotComparable(a.clone(), b.clone()))
}

fn register_library(ctx: &mut Context<'static, 'static>) {
    use cel::extractors::This;
    let _ = ctx.add_function("isSorted", |This(v): This<CelValue>| -> Result<bool, ExecutionError> {
        let l = list_of(&v, "isSorted")?;
        for w in l.windows(2) {
            if compare(&w[0], &w[1])? == std::cmp::Ordering::Greater {
                return Ok(false);
            }
        }
        Ok(true)
    });
    let _ = ctx.add_function("sum", |This(v): This<CelValue>| -> Result<CelValue, ExecutionError> {
        let l = list_of(&v, "sum")?;
        let mut acc = match l.first() {
            Some(CelValue::Float(_)) => CelValue::Float(0.0),
            Some(CelValue::UInt(_)) => CelValue::UInt(0),
            Some(CelValue::Duration(_)) => CelValue::Duration(chrono::Duration::zero()),
            _ => CelValue::Int(0),
        };
        for x in l.iter() {
            acc = match (&acc, x) {
                (CelValue::Int(a), CelValue::Int(b)) => CelValue::Int(
                    a.checked_add(*b)
                        .ok_or_else(|| ExecutionError::Overflow("+", CelValue::Int(*a), CelValue::Int(*b)))?,
                ),
                (CelValue::UInt(a), CelValue::UInt(b)) => CelValue::UInt(
                    a.checked_add(*b)
                        .ok_or_else(|| ExecutionError::Overflow("+", CelValue::UInt(*a), CelValue::UInt(*b)))?,
                ),
                (CelValue::Float(a), CelValue::Float(b)) => CelValue::Float(a + b),
                (CelValue::Duration(a), CelValue::Duration(b)) => CelValue::Duration(*a + *b),
                (a, b) => {
                    return Err(ExecutionError::no_such_overload(
                        "sum",
                        vec![a.type_of().to_string(), b.type_of().to_string()],
                    ));
                }
            };
        }
        Ok(acc)
    });
    for (name, want) in [("min", std::cmp::Ordering::Less), ("max", std::cmp::Ordering::Greater)] {
        let _ = ctx.add_function(name, move |This(v): This<CelValue>| -> Result<CelValue, ExecutionError> {
            let l = list_of(&v, name)?;
            let mut it = l.iter();
            let mut best = it
                .next()
                .ok_or_else(|| ExecutionError::function_error(name, format!("{name} called on empty list")))?;
            for x in it {
                if compare(x, best)? == want {
                    best = x;
                }
            }
            Ok(best.clone())
        });
    }
    let _ =
        ctx.add_function("find", |This(s): This<Arc<String>>, re: Arc<String>| -> Result<CelValue, ExecutionError> {
            let re = regex::Regex::new(&re).map_err(|e| ExecutionError::function_error("find", e))?;
            Ok(CelValue::String(Arc::new(re.find(&s).map(|m| m.as_str().to_string()).unwrap_or_default())))
        });
    let _ = ctx.add_function(
        "findAll",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<CelValue, ExecutionError> {
            let re = regex::Regex::new(&re).map_err(|e| ExecutionError::function_error("findAll", e))?;
            Ok(CelValue::List(Arc::new(
                re.find_iter(&s).map(|m| CelValue::String(Arc::new(m.as_str().to_string()))).collect(),
            )))
        },
    );
    let _ = ctx.add_function("sets.contains", |a: CelValue, b: CelValue| -> Result<bool, ExecutionError> {
        let (a, b) = (list_of(&a, "sets.contains")?, list_of(&b, "sets.contains")?);
        Ok(b.iter().all(|x| a.contains(x)))
    });
    let _ = ctx.add_function("sets.equivalent", |a: CelValue, b: CelValue| -> Result<bool, ExecutionError> {
        let (a, b) = (list_of(&a, "sets.equivalent")?, list_of(&b, "sets.equivalent")?);
        Ok(b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x)))
    });
    let _ = ctx.add_function("sets.intersects", |a: CelValue, b: CelValue| -> Result<bool, ExecutionError> {
        let (a, b) = (list_of(&a, "sets.intersects")?, list_of(&b, "sets.intersects")?);
        Ok(b.iter().any(|x| a.contains(x)))
    });
}

// ---------------------------------------------------------------------------------------------
// Admission expressions (ValidatingAdmissionPolicy, matchConditions)
// ---------------------------------------------------------------------------------------------

/// One admission CEL expression (a matchCondition, validation, messageExpression,
/// variable, auditAnnotation valueExpression), compiled once against declared top-level
/// variables. Evaluate it with [`eval_admission_expression`].
#[derive(Debug, Clone)]
pub struct AdmissionExpression {
    source: String,
    expr: IdedExpr,
    variables_used: Vec<String>,
}

impl AdmissionExpression {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The composited variables (`variables.<name>`) this expression references; `*` when it
    /// uses `variables` as a whole.
    pub fn variables_used(&self) -> &[String] {
        &self.variables_used
    }
}

/// Compile `source` with the top-level variables `declared` (e.g. `object`, `oldObject`,
/// `request`, `params`, `namespaceObject`, `variables`) and, when `variables` is declared,
/// the names `variables.<name>` may use (`composited`). Errors are worded as upstream's
/// admission CEL compiler words them: `compilation failed: ERROR: <input>:1:5: undeclared
/// reference to 'x' (in container '')` plus the source and caret lines, or `must evaluate
/// to bool` when `expect` names a type (`bool`, `string`) and the expression is a literal
/// of another type (without a type checker, only literals are known not to fit).
pub fn compile_admission_expression(
    source: &str,
    declared: &[&str],
    composited: &[String],
    expect: Option<&str>,
) -> Result<AdmissionExpression, String> {
    compile_admission_inner(source, declared, composited, expect).map_err(|e| match e {
        Ok(msg) => msg,
        Err(msg) => format!("compilation failed: {msg}"),
    })
}

/// The literal type of a literal expression (`None` for anything computed).
fn literal_type(expr: &IdedExpr) -> Option<&'static str> {
    Some(match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => "bool",
        Expr::Literal(LiteralValue::Int(_)) => "int",
        Expr::Literal(LiteralValue::UInt(_)) => "uint",
        Expr::Literal(LiteralValue::Double(_)) => "double",
        Expr::Literal(LiteralValue::String(_)) => "string",
        Expr::Literal(LiteralValue::Bytes(_)) => "bytes",
        Expr::Literal(LiteralValue::Null) => "null_type",
        Expr::List(_) => "list",
        Expr::Map(_) => "map",
        _ => return None,
    })
}

/// Err(Ok(msg)): a type error shown as is; Err(Err(msg)): a parse/check error.
fn compile_admission_inner(
    source: &str,
    declared: &[&str],
    composited: &[String],
    expect: Option<&str>,
) -> Result<AdmissionExpression, Result<String, String>> {
    let env = shared_env();
    let program = env.compile(source).map_err(|e| Err(e.to_string()))?;
    let expr = program.expression();
    let mut checker = Checker {
        scopes: Vec::new(),
        uses_old_self: false,
        error: None,
        ty: &Ty::Dyn,
        optional_old_self: false,
        declared: Some(declared),
        composited: Some(composited),
        variables_used: Vec::new(),
    };
    checker.check(expr);
    if let Some((id, msg)) = checker.error {
        let start = program.source_info().offset_for(id).map_or(0, |(start, _)| start as usize).min(source.len());
        let before = source.get(..start).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        let snippet = source.lines().nth(line - 1).unwrap_or_default();
        let caret = format!("{:.>width$}", "^", width = col);
        return Err(Err(format!("ERROR: <input>:{line}:{col}: {msg}\n | {snippet}\n | {caret}")));
    }
    if let Some(want) = expect
        && let Some(got) = literal_type(expr)
        && got != want
    {
        return Err(Ok(format!("must evaluate to {want}")));
    }
    let mut instrumented = expr.clone();
    instrument(&mut instrumented);
    let mut variables_used = checker.variables_used;
    variables_used.sort();
    variables_used.dedup();
    Ok(AdmissionExpression { source: source.to_string(), expr: instrumented, variables_used })
}

/// JSON data as a dynamic CEL value (objects → maps, integers → int, other numbers → double).
pub fn json_to_cel(v: &Value) -> CelValue {
    dyn_value(v)
}

/// Why an admission expression did not produce a value.
#[derive(Debug, Clone, PartialEq)]
pub enum AdmissionEvalError {
    /// A runtime error, worded as cel-go does (`no such key: x`).
    Failed(String),
    /// The expression went over the per-expression cost limit.
    CostLimitExceeded,
    /// The evaluation's whole budget ran out (no further expression should run).
    BudgetExhausted,
}

impl std::fmt::Display for AdmissionEvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdmissionEvalError::Failed(m) => f.write_str(m),
            AdmissionEvalError::CostLimitExceeded => f.write_str("operation cancelled: actual cost limit exceeded"),
            AdmissionEvalError::BudgetExhausted => f.write_str(
                "validation failed due to running out of cost budget, no further validation rules will be run",
            ),
        }
    }
}

/// The cost budget shared by the expressions of one admission evaluation (one policy and
/// binding, or one set of matchConditions): [`RUNTIME_COST_BUDGET`] in total,
/// [`PER_CALL_LIMIT`] per expression, and a wall-clock guard.
pub struct CelBudget {
    meter: Arc<Meter>,
}

impl Default for CelBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl CelBudget {
    pub fn new() -> Self {
        CelBudget {
            meter: Arc::new(Meter {
                total: AtomicU64::new(0),
                call: AtomicU64::new(0),
                deadline: Instant::now() + EVALUATION_TIME_LIMIT,
                call_exceeded: AtomicBool::new(false),
                budget_exceeded: AtomicBool::new(false),
            }),
        }
    }
    /// Whether the whole budget is used up.
    pub fn exhausted(&self) -> bool {
        self.meter.budget_exceeded.load(Ordering::Relaxed)
            || self.meter.total.load(Ordering::Relaxed) >= RUNTIME_COST_BUDGET
    }
}

/// Evaluate `expr` with `bindings` (name → value for each declared variable; `variables`
/// as a map of the composited variables it uses), charging `budget`.
pub fn eval_admission_expression(
    expr: &AdmissionExpression,
    bindings: &[(&str, CelValue)],
    budget: &CelBudget,
) -> Result<CelValue, AdmissionEvalError> {
    if budget.exhausted() {
        return Err(AdmissionEvalError::BudgetExhausted);
    }
    let meter = budget.meter.clone();
    let mut ctx = Context::with_env(shared_env());
    for (name, value) in bindings {
        ctx.add_variable_from_value(*name, value.clone());
    }
    let charge = meter.clone();
    let _ = ctx.add_function(ITER_FN, move |range: CelValue, weight: i64| -> Result<CelValue, ExecutionError> {
        let n = match &range {
            CelValue::List(l) => l.len() as u64,
            CelValue::Map(m) => m.map.len() as u64,
            _ => 1,
        };
        charge.charge(n.saturating_mul(weight.max(1) as u64))?;
        Ok(range)
    });
    register_library(&mut ctx);
    meter.call.store(0, Ordering::Relaxed);
    meter.call_exceeded.store(false, Ordering::Relaxed);
    let _ = meter.charge(node_count(&expr.expr));
    let result = CelValue::resolve(&expr.expr, &ctx);
    if meter.budget_exceeded.load(Ordering::Relaxed) {
        return Err(AdmissionEvalError::BudgetExhausted);
    }
    if meter.call_exceeded.load(Ordering::Relaxed) {
        return Err(AdmissionEvalError::CostLimitExceeded);
    }
    result.map_err(|e| match e {
        ExecutionError::NoSuchOverload(o) => AdmissionEvalError::Failed(format!("no such overload: {o}")),
        other => AdmissionEvalError::Failed(exec_error_text(&other)),
    })
}

/// cel-go's name of a value's type (`int`, `string`, `map`, …).
pub fn cel_type_name(v: &CelValue) -> String {
    v.type_of().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(schema: Value) -> CompiledRules {
        match compile_rules(&schema) {
            Ok(c) => c,
            Err(e) => panic!("compile failed: {e:?}"),
        }
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn spec_schema(spec: Value) -> Value {
        json!({"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
               "metadata": {"type": "object"}, "spec": spec}})
    }

    #[test]
    fn simple_rule_with_message() {
        let c = rules(spec_schema(json!({
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "maxReplicas": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.replicas <= self.maxReplicas",
                                          "message": "replicas must be less than maxReplicas"}]
        })));
        let ok = json!({"spec": {"replicas": 1, "maxReplicas": 3}});
        assert!(validate(&c, &ok, None).is_empty());
        let bad = json!({"spec": {"replicas": 5, "maxReplicas": 3}});
        assert_eq!(
            messages(&validate(&c, &bad, None)),
            vec![r#"spec: Invalid value: "object": replicas must be less than maxReplicas"#]
        );
    }

    #[test]
    fn default_message_and_root_path() {
        let c = rules(json!({"type": "object", "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.a.startsWith('x')"}]}));
        let errs = validate(&c, &json!({"a": "yz"}), None);
        assert_eq!(messages(&errs), vec![r#"<nil>: Invalid value: "object": failed rule: self.a.startsWith('x')"#]);
        assert!(validate(&c, &json!({"a": "xy"}), None).is_empty());
    }

    #[test]
    fn message_expression() {
        let c = rules(spec_schema(json!({
            "type": "object", "properties": {"name": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "size(self.name) <= 3", "message": "static",
                "messageExpression": "'name ' + self.name + ' is longer than 3'"}]
        })));
        let errs = validate(&c, &json!({"spec": {"name": "abcdef"}}), None);
        assert_eq!(messages(&errs), vec![r#"spec: Invalid value: "object": name abcdef is longer than 3"#]);
        // a messageExpression that fails falls back to message
        let c = rules(spec_schema(json!({
            "type": "object", "properties": {"name": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "size(self.name) <= 3", "message": "static",
                "messageExpression": "self.name + string(1/0)"}]
        })));
        let errs = validate(&c, &json!({"spec": {"name": "abcdef"}}), None);
        assert_eq!(messages(&errs), vec![r#"spec: Invalid value: "object": static"#]);
    }

    #[test]
    fn transition_rule_immutability() {
        let c = rules(spec_schema(json!({
            "type": "object",
            "properties": {"mode": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}]}}
        })));
        let new = json!({"spec": {"mode": "b"}});
        // create: no oldSelf, the transition rule is skipped
        assert!(validate(&c, &new, None).is_empty());
        let old = json!({"spec": {"mode": "a"}});
        assert_eq!(
            messages(&validate(&c, &new, Some(&old))),
            vec![r#"spec.mode: Invalid value: "string": Value is immutable"#]
        );
        assert!(validate(&c, &old, Some(&old)).is_empty());
        // field newly added on update: no old value at that node, skipped
        assert!(validate(&c, &new, Some(&json!({"spec": {}}))).is_empty());
    }

    #[test]
    fn optional_old_self() {
        let c = rules(spec_schema(json!({
            "type": "object",
            "properties": {"mode": {"type": "string",
                "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || oldSelf.value() == self",
                    "optionalOldSelf": true, "message": "immutable once set"}]}}
        })));
        assert!(validate(&c, &json!({"spec": {"mode": "b"}}), None).is_empty());
        let errs = validate(&c, &json!({"spec": {"mode": "b"}}), Some(&json!({"spec": {"mode": "a"}})));
        assert_eq!(messages(&errs), vec![r#"spec.mode: Invalid value: "string": immutable once set"#]);
    }

    #[test]
    fn rules_on_list_items_and_map_values() {
        let c = rules(spec_schema(json!({
            "type": "object",
            "properties": {
                "ports": {"type": "array", "items": {"type": "integer",
                    "x-kubernetes-validations": [{"rule": "self > 0 && self < 65536", "message": "bad port"}]}},
                "labels": {"type": "object", "additionalProperties": {"type": "string",
                    "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$')"}]}}
            }
        })));
        let obj = json!({"spec": {"ports": [80, 0, 70000], "labels": {"a": "ok", "b": "NO"}}});
        let errs = validate(&c, &obj, None);
        assert_eq!(
            messages(&errs),
            vec![
                r#"spec.labels[b]: Invalid value: "string": failed rule: self.matches('^[a-z]+$')"#,
                r#"spec.ports[1]: Invalid value: "integer": bad port"#,
                r#"spec.ports[2]: Invalid value: "integer": bad port"#,
            ]
        );
    }

    #[test]
    fn list_macros_and_library() {
        let c = rules(spec_schema(json!({
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "string"}},
                           "nums": {"type": "array", "items": {"type": "integer"}},
                           "opt": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "self.items.all(x, x.lowerAscii() == x)", "message": "lower"},
                {"rule": "self.items.exists_one(x, x == 'a')", "message": "one a"},
                {"rule": "self.nums.isSorted() && self.nums.sum() == 6 && self.nums.max() == 3", "message": "nums"},
                {"rule": "self.items.map(x, x + '!').filter(y, y.endsWith('!')).size() == size(self.items)", "message": "map"},
                {"rule": "!has(self.opt) || self.opt == 'x'", "message": "has"}
            ]
        })));
        assert!(validate(&c, &json!({"spec": {"items": ["a", "b"], "nums": [1, 2, 3]}}), None).is_empty());
        let errs = validate(&c, &json!({"spec": {"items": ["A", "a", "a"], "nums": [3, 2, 1]}}), None);
        assert_eq!(
            messages(&errs),
            vec![
                r#"spec: Invalid value: "object": lower"#,
                r#"spec: Invalid value: "object": one a"#,
                r#"spec: Invalid value: "object": nums"#,
            ]
        );
    }

    #[test]
    fn reason_and_field_path() {
        let c = rules(spec_schema(json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "m": {"type": "object", "additionalProperties": {"type": "string"}}},
            "x-kubernetes-validations": [
                {"rule": "self.a > 0", "message": "a must be positive", "reason": "FieldValueForbidden", "fieldPath": ".a"},
                {"rule": "has(self.m)", "message": "m is required", "reason": "FieldValueRequired"},
                {"rule": "self.a != 2", "reason": "FieldValueDuplicate", "fieldPath": ".m['k.x']"}
            ]
        })));
        let errs = validate(&c, &json!({"spec": {"a": -1}}), None);
        assert_eq!(
            messages(&errs),
            vec!["spec.a: Forbidden: a must be positive", "spec: Required value: m is required"]
        );
        assert_eq!(errs[0].kind.cause_reason(), "FieldValueForbidden");
        let errs = validate(&c, &json!({"spec": {"a": 2, "m": {}}}), None);
        assert_eq!(messages(&errs), vec![r#"spec.m[k.x]: Duplicate value: "object""#]);
    }

    #[test]
    fn compile_errors_are_reported_at_the_rule() {
        let schema = spec_schema(json!({
            "type": "object", "properties": {"a": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.a >"}, {"rule": "self.nope == 1"}, {"rule": "self.a.frobnicate()"}]
        }));
        let errs = match compile_rules(&schema) {
            Err(e) => e,
            Ok(_) => panic!("expected compile errors"),
        };
        assert_eq!(errs.len(), 3, "{errs:?}");
        let m = messages(&errs);
        assert!(m[0].starts_with(
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.a >\""
        ), "{}", m[0]);
        assert!(m[0].contains(": compilation failed: ERROR: <input>:1:"), "{}", m[0]);
        assert!(m[1].contains("compilation failed: ERROR: <input>:1:5: undefined field 'nope'"), "{}", m[1]);
        assert!(m[2].contains("undeclared reference to 'frobnicate'"), "{}", m[2]);
        assert_eq!(errs[0].kind, FieldErrorType::Invalid);
    }

    #[test]
    fn rule_shape_errors() {
        let schema = json!({"type": "object", "properties": {
            "l": {"type": "array", "items": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
            "s": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self != ''", "reason": "Bogus"},
                {"rule": "self != ''", "fieldPath": ".x"},
                {"rule": ""},
                {"rule": "self != ''", "optionalOldSelf": true},
                {"rule": "'abc'"}]}}});
        let errs = match compile_rules(&schema) {
            Err(e) => messages(&e),
            Ok(_) => panic!("expected errors"),
        };
        let joined = errs.join("\n");
        assert!(joined.contains("oldSelf cannot be used on the uncorrelatable portion of the schema within spec.validation.openAPIV3Schema.properties[l]"), "{joined}");
        assert!(joined.contains("x-kubernetes-validations[0].reason: Unsupported value: \"Bogus\""), "{joined}");
        assert!(
            joined.contains(
                "x-kubernetes-validations[1].fieldPath: Invalid value: \".x\": fieldPath must be a valid path"
            ),
            "{joined}"
        );
        assert!(joined.contains("x-kubernetes-validations[2].rule: Required value: rule is not specified"), "{joined}");
        assert!(joined.contains("x-kubernetes-validations[3].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"), "{joined}");
        assert!(joined.contains("x-kubernetes-validations[4].rule: Invalid value: apiextensions.ValidationRule{Rule:\"'abc'\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: cel expression must evaluate to a bool"), "{joined}");
    }

    #[test]
    fn list_map_items_correlate_by_key() {
        let c = rules(json!({"type": "object", "properties": {"l": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "v may not decrease"}]}}}}));
        let old = json!({"l": [{"name": "a", "v": 5}, {"name": "b", "v": 1}]});
        let new = json!({"l": [{"name": "b", "v": 2}, {"name": "a", "v": 4}, {"name": "c", "v": 0}]});
        assert_eq!(
            messages(&validate(&c, &new, Some(&old))),
            vec![r#"l[1]: Invalid value: "object": v may not decrease"#]
        );
    }

    #[test]
    fn ratcheting_skips_unchanged_invalid_values() {
        let c = rules(json!({"type": "object", "properties": {"a": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self < 10"}]}}}));
        let obj = json!({"a": 50});
        assert_eq!(validate(&c, &obj, None).len(), 1);
        assert!(validate(&c, &obj, Some(&obj)).is_empty());
        assert_eq!(validate(&c, &json!({"a": 51}), Some(&obj)).len(), 1);
    }

    #[test]
    fn runtime_errors_are_reported() {
        let c = rules(json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.a == 1"}]}));
        let errs = validate(&c, &json!({"b": 1}), None);
        assert_eq!(
            messages(&errs),
            vec![r#"<nil>: Invalid value: "object": no such key: a evaluating rule: self.a == 1"#]
        );
    }

    #[test]
    fn typed_values() {
        let c = rules(json!({"type": "object", "properties": {
            "ios": {"x-kubernetes-int-or-string": true},
            "d": {"type": "string", "format": "duration"},
            "t": {"type": "string", "format": "date-time"},
            "f": {"type": "number"},
            "dash-name": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "type(self.ios) == int ? self.ios > 2 : self.ios.endsWith('%')", "message": "ios"},
                {"rule": "self.d > duration('1m')", "message": "d"},
                {"rule": "self.t < timestamp('2030-01-01T00:00:00Z')", "message": "t"},
                {"rule": "self.f > 1.5", "message": "f"},
                {"rule": "self.dash__dash__name == 'x'", "message": "dash"}]}));
        let ok = json!({"ios": "50%", "d": "1h", "t": "2024-01-01T00:00:00Z", "f": 2, "dash-name": "x"});
        assert!(validate(&c, &ok, None).is_empty(), "{:?}", validate(&c, &ok, None));
        let bad = json!({"ios": 1, "d": "30s", "t": "2031-01-01T00:00:00Z", "f": 1, "dash-name": "y"});
        let m = messages(&validate(&c, &bad, None));
        assert_eq!(m.len(), 5, "{m:?}");
    }

    #[test]
    fn cost_budget_aborts_evaluation() {
        let c = rules(json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [
                {"rule": "self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))"},
                {"rule": "size(self.l) < 0"}]}));
        let big: Vec<i64> = (0..500).collect();
        let errs = validate(&c, &json!({"l": big}), None);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].to_string().contains(
                "call cost exceeds limit for rule: self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))"
            ),
            "{}",
            errs[0]
        );
        // small data under the same rules is fine (and the second rule fails normally)
        let errs = validate(&c, &json!({"l": [1, 2, 3]}), None);
        assert_eq!(messages(&errs), vec![r#"<nil>: Invalid value: "object": failed rule: size(self.l) < 0"#]);
    }

    #[test]
    fn supported_functions_resolve() {
        let c = rules(
            json!({"type": "object", "properties": {"s": {"type": "string"}, "l": {"type": "array", "items": {"type": "string"}}},
            "x-kubernetes-validations": [
                {"rule": "self.s.contains('b') && self.s.startsWith('a') && self.s.endsWith('c') && self.s.matches('^a.c$')", "message": "1"},
                {"rule": "self.s.upperAscii() == 'ABC' && self.s.charAt(1) == 'b' && self.s.indexOf('c') == 2 && self.s.substring(1) == 'bc'", "message": "2"},
                {"rule": "self.s.split('b').size() == 2 && self.l.join(',') == 'x,y' && self.s.replace('b', '') == 'ac' && self.s.trim() == 'abc'", "message": "3"},
                {"rule": "self.s.find('[bc]+') == 'bc' && self.s.findAll('[a-z]').size() == 3", "message": "4"},
                {"rule": "sets.contains(self.l, ['x']) && sets.intersects(self.l, ['y', 'z']) && sets.equivalent(self.l, ['y', 'x'])", "message": "5"},
                {"rule": "int('3') == 3 && string(3) == '3' && double(1) == 1.0 && self.l.min() == 'x' && math.abs(-2) == 2", "message": "6"},
                {"rule": "self.l.distinct().size() == 2 && self.l.reverse()[0] == 'y' && lists.range(3).size() == 3 && self.l.sort()[0] == 'x'", "message": "7"},
                {"rule": "duration('1h').getMinutes() == 60 && timestamp('2024-01-02T00:00:00Z').getDayOfMonth() == 1", "message": "8"}
            ]}),
        );
        let errs = validate(&c, &json!({"s": "abc", "l": ["x", "y"]}), None);
        assert!(errs.is_empty(), "{:?}", messages(&errs));
    }

    #[test]
    fn compiled_rules_can_be_cached_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledRules>();
        let c = rules(json!({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]}));
        assert_eq!(c.rule_count(), 1);
        assert!(!c.is_empty());
        assert!(rules(json!({"type": "object"})).is_empty());
    }

    #[test]
    fn compile_error_points_at_the_offending_column() {
        let errs = match compile_rules(&json!({"type": "object", "properties": {"a": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.b == 1"}]}))
        {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        };
        assert!(
            errs[0]
                .detail
                .ends_with("compilation failed: ERROR: <input>:1:5: undefined field 'b'\n | self.b == 1\n | ....^"),
            "{}",
            errs[0].detail
        );
    }

    #[test]
    fn escaping_of_property_names() {
        assert_eq!(escape_property("foo").as_deref(), Some("foo"));
        assert_eq!(escape_property("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape_property("a-b.c/d").as_deref(), Some("a__dash__b__dot__c__slash__d"));
        assert_eq!(escape_property("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(escape_property("1abc"), None);
        assert_eq!(escape_property("a b"), None);
    }

    #[test]
    fn resource_root_metadata_is_limited() {
        let c = rules(json!({"type": "object", "properties": {"metadata": {"type": "object"}},
            "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('x') && !has(self.metadata.labels)"}]}));
        assert!(validate(&c, &json!({"metadata": {"name": "xy", "labels": {"a": "b"}}}), None).is_empty());
        assert_eq!(validate(&c, &json!({"metadata": {"name": "y"}}), None).len(), 1);
    }
}
