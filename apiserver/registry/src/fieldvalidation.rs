//! Field validation (`fieldValidation=Strict|Warn|Ignore`): unknown and duplicate fields in
//! request bodies, found and reported the way upstream's strict decoding does.
//!
//! Upstream decodes create/update bodies with a strict decoder that records, in document
//! order, `unknown field "spec.foo"` (a key the Go type has no field for) and
//! `duplicate field "metadata.name"` (a key given twice). YAML bodies are first checked by
//! the YAML parser, whose one error lists every repeated key
//! (`yaml: unmarshal errors:\n  line 3: key "name" already set in map`). With `Strict` the
//! list becomes one `strict decoding error: a, b` (400 on create/update, 422 `patch: Invalid
//! value` on patch); with `Warn` (the server default) each entry becomes a `Warning` header;
//! `Ignore` skips the checks.
//!
//! Schemas come from upstream's OpenAPI definitions (`openapi::definitions()`): properties
//! are Go struct fields, `additionalProperties` are Go maps, and the few types with their own
//! JSON decoding (RawExtension, FieldsV1, apiextensions JSON, IntOrString, Quantity, times)
//! accept anything below them. Custom-resource schemas (`openAPIV3Schema`) follow the
//! structural pruning rules instead (`unknown_fields_in_schema`).

use crate::openapi::definitions;
use crate::status::{ApiError, FieldError};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Upstream stops collecting strict errors after this many.
const MAX_ERRORS: usize = 100;
/// Deeper documents are not checked (serde_json refuses them anyway).
const MAX_DEPTH: usize = 512;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// Types whose Go decoding is custom: anything is accepted below them, nothing is checked.
const OPAQUE_TYPES: &[&str] = &[
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
];

// ---------------------------------------------------------------------------------------------
// Directive
// ---------------------------------------------------------------------------------------------

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    Strict,
    Warn,
    Ignore,
}

impl Directive {
    /// Parse `fieldValidation` for a create (`CreateOptions`); unset or empty means `Warn`.
    pub fn parse(q: Option<&str>) -> Result<Self, ApiError> {
        Self::parse_for(q, "CreateOptions")
    }

    /// Parse `fieldValidation`; a bad value is upstream's 422 on the options kind
    /// (`CreateOptions`, `UpdateOptions`, `PatchOptions`):
    /// `PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "x": supported
    /// values: "", "Ignore", "Strict", "Warn"`. Values are case-sensitive.
    pub fn parse_for(q: Option<&str>, options_kind: &str) -> Result<Self, ApiError> {
        match q.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            "Ignore" => Ok(Self::Ignore),
            other => Err(ApiError::invalid(
                "meta.k8s.io",
                options_kind,
                "",
                &[FieldError::not_supported("fieldValidation", json!(other), &["", "Ignore", "Strict", "Warn"])],
            )),
        }
    }

    /// Whether the strict checks run at all (`Strict` or `Warn`).
    pub fn enabled(self) -> bool {
        !matches!(self, Self::Ignore)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages and verdicts
// ---------------------------------------------------------------------------------------------

/// `unknown field "spec.foo"`.
pub fn unknown_message(path: &str) -> String {
    format!("unknown field {}", go_quote(path))
}

/// `duplicate field "metadata.name"`.
pub fn duplicate_message(path: &str) -> String {
    format!("duplicate field {}", go_quote(path))
}

/// `strict decoding error: a, b` over already-rendered strict errors.
pub fn strict_message(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

/// The `Warning` texts for strict errors: one per error, except that a YAML error
/// (`yaml: unmarshal errors:\n  line 3: ...`) gives one warning per line, as upstream.
pub fn warnings(errors: &[String]) -> Vec<String> {
    const SHORT: &str = "yaml: unmarshal errors:\n";
    const LONG: &str = "error converting YAML to JSON: yaml: unmarshal errors:\n";
    let mut out = Vec::new();
    for e in errors {
        match e.strip_prefix(SHORT).or_else(|| e.strip_prefix(LONG)) {
            Some(rest) => out.extend(rest.split('\n').map(|l| l.trim().to_string())),
            None => out.push(e.clone()),
        }
    }
    out
}

/// Combine unknown-field and duplicate-field paths (duplicates first, then unknown, as a
/// JSON body usually yields them; use `check_errors` with `strict_errors_json` for exact
/// document order): `Ok(warnings)` for `Warn`, `Ok([])` for `Ignore`, and for `Strict` with
/// problems a 400 `strict decoding error: duplicate field "metadata.name", unknown field "spec.foo"`.
pub fn check(directive: Directive, unknown: Vec<String>, duplicates: Vec<String>) -> Result<Vec<String>, ApiError> {
    let errors: Vec<String> =
        duplicates.iter().map(|p| duplicate_message(p)).chain(unknown.iter().map(|p| unknown_message(p))).collect();
    check_errors(directive, errors)
}

/// Like `check`, over rendered strict errors (`unknown_message`, `duplicate_message`,
/// `yaml_strict_error`, ...). The 400 carries the bare `strict decoding error: ...` message.
pub fn check_errors(directive: Directive, errors: Vec<String>) -> Result<Vec<String>, ApiError> {
    verdict(directive, errors, |e| ApiError::bad_request(strict_message(e)))
}

/// Create/update as upstream words it: 400 `Deployment in version "v1" cannot be handled as a
/// Deployment: strict decoding error: unknown field "spec.foo"` (`kind`/`version` of the body).
pub fn check_decode(
    directive: Directive,
    kind: &str,
    version: &str,
    errors: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    verdict(directive, errors, |e| {
        ApiError::bad_request(format!(
            "{kind} in version {} cannot be handled as a {kind}: {}",
            go_quote(version),
            strict_message(e)
        ))
    })
}

/// Patches (JSON, merge and strategic merge) as upstream words them: 422
/// ` "" is invalid: patch: Invalid value: "<patched>": strict decoding error: ...`, where
/// `patched` is the patched object's JSON (JSON/merge patch) or the patch map printed by Go's
/// `%+v` (strategic merge patch). `errors` are the patch body's duplicates followed by the
/// patched object's unknown fields.
pub fn check_patch(directive: Directive, patched: &str, errors: Vec<String>) -> Result<Vec<String>, ApiError> {
    verdict(directive, errors, |e| {
        ApiError::invalid("", "", "", &[FieldError::invalid("patch", json!(patched), strict_message(e))])
    })
}

/// Server-side apply (`application/apply-patch+yaml`): only the patch body's duplicate keys
/// are checked here (unknown fields are the field manager's error). Strict gives upstream's
/// 400 `error strict decoding patch: yaml: unmarshal errors:\n  line 1: key "a" already set in map`.
pub fn check_apply(directive: Directive, body: &[u8]) -> Result<Vec<String>, ApiError> {
    let errors: Vec<String> = yaml_strict_error(body).into_iter().collect();
    verdict(directive, errors, |e| ApiError::bad_request(format!("error strict decoding patch: {}", e.join(", "))))
}

fn verdict(
    directive: Directive,
    errors: Vec<String>,
    fail: impl FnOnce(&[String]) -> ApiError,
) -> Result<Vec<String>, ApiError> {
    match directive {
        Directive::Ignore => Ok(Vec::new()),
        _ if errors.is_empty() => Ok(Vec::new()),
        Directive::Warn => Ok(warnings(&errors)),
        Directive::Strict => Err(fail(&errors)),
    }
}

/// Go's `strconv.Quote` for the strings that occur in field paths.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// A JSON tree that keeps every key, duplicates included
// ---------------------------------------------------------------------------------------------

/// Structure of a document; scalars carry nothing (only shapes matter here).
#[derive(Debug)]
enum Raw {
    Scalar,
    Array(Vec<Raw>),
    Object(Vec<(String, Raw)>),
}

impl Raw {
    fn from_value(v: &Value) -> Raw {
        match v {
            Value::Array(a) => Raw::Array(a.iter().map(Raw::from_value).collect()),
            Value::Object(m) => Raw::Object(m.iter().map(|(k, v)| (k.clone(), Raw::from_value(v))).collect()),
            _ => Raw::Scalar,
        }
    }
}

/// Parse JSON text keeping duplicate keys; `None` when it is not one valid JSON value.
fn parse_json(body: &[u8]) -> Option<Raw> {
    let mut p = JsonParser { s: body, i: 0 };
    let v = p.value(0)?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Raw> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                if self.eat(b'}') {
                    return Some(Raw::Object(entries));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    let v = self.value(depth + 1)?;
                    entries.push((key, v));
                    if self.eat(b',') {
                        continue;
                    }
                    return self.eat(b'}').then_some(Raw::Object(entries));
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Raw::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        continue;
                    }
                    return self.eat(b']').then_some(Raw::Array(items));
                }
            }
            b'"' => self.string().map(|_| Raw::Scalar),
            _ => {
                let start = self.i;
                while let Some(b) = self.s.get(self.i) {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.') {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                let lit = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                let ok =
                    matches!(lit, "true" | "false" | "null") || serde_json::from_str::<serde_json::Number>(lit).is_ok();
                ok.then_some(Raw::Scalar)
            }
        }
    }

    /// A JSON string at the cursor, unescaped (bad surrogates become U+FFFD, as in Go).
    fn string(&mut self) -> Option<String> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = *self.s.get(self.i)?;
            self.i += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.s.get(self.i) == Some(&b'\\')
                                && self.s.get(self.i + 1) == Some(&b'u')
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                        .unwrap_or('\u{FFFD}')
                                } else {
                                    self.i = save;
                                    '\u{FFFD}'
                                }
                            } else {
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return None,
                b => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.i += 4;
        Some(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in kinds: Go struct decoding semantics
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Problem {
    Unknown,
    Duplicate,
}

/// Collects strict errors in order, deduplicated and capped like upstream.
#[derive(Default)]
struct Collector {
    seen: HashSet<(bool, String)>,
    errors: Vec<(Problem, String)>,
    want_unknown: bool,
    want_duplicates: bool,
}

impl Collector {
    fn new(want_unknown: bool, want_duplicates: bool) -> Self {
        Self { want_unknown, want_duplicates, ..Self::default() }
    }

    fn record(&mut self, problem: Problem, path: String) {
        let wanted = match problem {
            Problem::Unknown => self.want_unknown,
            Problem::Duplicate => self.want_duplicates,
        };
        if !wanted || self.errors.len() >= MAX_ERRORS {
            return;
        }
        if self.seen.insert((problem == Problem::Unknown, path.clone())) {
            self.errors.push((problem, path));
        }
    }

    fn paths(self) -> Vec<String> {
        self.errors.into_iter().map(|(_, p)| p).collect()
    }

    fn messages(self) -> Vec<String> {
        self.errors
            .into_iter()
            .map(|(k, p)| match k {
                Problem::Unknown => unknown_message(&p),
                Problem::Duplicate => duplicate_message(&p),
            })
            .collect()
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// What decoding a value into a schema's Go type does.
enum Shape<'a> {
    /// Custom decoding: nothing below is checked.
    Opaque,
    /// `interface{}`: any keys, duplicates still detected at every depth.
    Untyped,
    /// A struct with these fields (possibly none).
    Struct(&'a serde_json::Map<String, Value>),
    /// A map with values of this schema.
    Map(&'a Value),
    /// A slice with items of this schema.
    List(&'a Value),
    Scalar,
}

/// Follow `$ref`s, classifying the Go type the schema stands for.
fn shape(schema: &Value) -> Shape<'_> {
    let mut s = schema;
    for _ in 0..16 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else { break };
        let name = r.strip_prefix("#/definitions/").unwrap_or(r);
        if OPAQUE_TYPES.contains(&name) {
            return Shape::Opaque;
        }
        match definitions().get(name) {
            Some(def) => s = def,
            None => return Shape::Opaque,
        }
    }
    if s.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
        || s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true)
    {
        return Shape::Opaque;
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        return Shape::Struct(props);
    }
    match s.get("additionalProperties") {
        Some(a) if a.is_object() => return Shape::Map(a),
        Some(Value::Bool(true)) => return Shape::Untyped,
        _ => {}
    }
    if let Some(items) = s.get("items") {
        return if items.is_object() { Shape::List(items) } else { Shape::Opaque };
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
            Shape::Struct(EMPTY.get_or_init(serde_json::Map::new))
        }
        Some("array") => Shape::Opaque,
        Some(_) => Shape::Scalar,
        None => Shape::Opaque,
    }
}

/// Walk `raw` as Go's strict decoder walks it into the type of `schema` (`None`: interface{}).
fn walk_go(raw: &Raw, schema: Option<&Value>, path: &str, out: &mut Collector) {
    let shape = match schema {
        Some(s) => shape(s),
        None => Shape::Untyped,
    };
    match (shape, raw) {
        (Shape::Struct(props), Raw::Object(entries)) => {
            let mut seen: HashSet<&str> = HashSet::new();
            for (k, v) in entries {
                match props.get(k) {
                    Some(prop) => {
                        let p = child(path, k);
                        if !seen.insert(k.as_str()) {
                            out.record(Problem::Duplicate, p.clone());
                        }
                        walk_go(v, Some(prop), &p, out);
                    }
                    None => out.record(Problem::Unknown, child(path, k)),
                }
            }
        }
        (Shape::Map(values), Raw::Object(entries)) => walk_map(entries, Some(values), path, out),
        (Shape::Untyped, Raw::Object(entries)) => walk_map(entries, None, path, out),
        (Shape::List(items), Raw::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                walk_go(v, Some(items), &format!("{path}[{i}]"), out);
            }
        }
        (Shape::Untyped, Raw::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                walk_go(v, None, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn walk_map(entries: &[(String, Raw)], values: Option<&Value>, path: &str, out: &mut Collector) {
    let mut seen: HashSet<&str> = HashSet::new();
    for (k, v) in entries {
        let p = child(path, k);
        if !seen.insert(k.as_str()) {
            out.record(Problem::Duplicate, p.clone());
        }
        walk_go(v, values, &p, out);
    }
}

fn kind_schema(group: &str, version: &str, kind: &str) -> Option<Value> {
    crate::openapi::definition_name(group, version, kind).map(|n| json!({ "$ref": format!("#/definitions/{n}") }))
}

/// Unknown fields of a built-in kind's object, as field paths in document order
/// (`spec.template.spec.containers[0].imagee`); maps (labels, annotations, ...) accept any
/// key, and nothing below an unknown field is reported. Empty for kinds without a built-in
/// schema (custom resources: use `unknown_fields_in_schema`).
pub fn unknown_fields(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<String> {
    let Some(schema) = kind_schema(group, version, kind) else { return Vec::new() };
    let mut out = Collector::new(true, false);
    walk_go(&Raw::from_value(obj), Some(&schema), "", &mut out);
    out.paths()
}

/// Every strict error of a JSON body for a built-in kind, rendered and in upstream's order
/// (document order, unknown and duplicate fields interleaved, at most 100). Duplicates are
/// found where Go's decoder finds them: struct fields and map keys, not inside types with
/// their own decoding (RawExtension, FieldsV1). Kinds without a built-in schema are decoded
/// as `map[string]interface{}` (duplicates only). Empty for a body that is not valid JSON
/// (the normal decode reports that).
pub fn strict_errors_json(group: &str, version: &str, kind: &str, body: &[u8]) -> Vec<String> {
    let Some(raw) = parse_json(body) else { return Vec::new() };
    let schema = kind_schema(group, version, kind);
    let mut out = Collector::new(true, true);
    walk_go(&raw, schema.as_ref(), "", &mut out);
    out.messages()
}

/// Duplicate keys anywhere in a JSON body, as field paths (`metadata.name`,
/// `spec.containers[0].name`), in document order: what decoding a patch body or a custom
/// resource into `map[string]interface{}` reports. Empty for invalid JSON.
pub fn duplicate_fields_json(body: &[u8]) -> Vec<String> {
    let Some(raw) = parse_json(body) else { return Vec::new() };
    let mut out = Collector::new(false, true);
    walk_go(&raw, None, "", &mut out);
    out.paths()
}

/// JSON patch bodies (`[{"op": ...}]`): unknown keys in operations and duplicate keys, as
/// upstream reports them (`json patch unknown field "[0].foo"`, `json patch duplicate field
/// "[0].path"`).
pub fn json_patch_strict_errors(body: &[u8]) -> Vec<String> {
    const OP_FIELDS: [&str; 4] = ["op", "path", "from", "value"];
    let Some(raw) = parse_json(body) else { return Vec::new() };
    // `value` is interface{}: any shape, duplicates checked all the way down.
    let mut out = Collector::new(true, true);
    if let Raw::Array(ops) = &raw {
        for (i, o) in ops.iter().enumerate() {
            let path = format!("[{i}]");
            if let Raw::Object(entries) = o {
                let mut seen = HashSet::new();
                for (k, v) in entries {
                    let p = child(&path, k);
                    if !OP_FIELDS.contains(&k.as_str()) {
                        out.record(Problem::Unknown, p);
                        continue;
                    }
                    if !seen.insert(k.as_str()) {
                        out.record(Problem::Duplicate, p.clone());
                    }
                    if k == "value" {
                        walk_go(v, None, &p, &mut out);
                    }
                }
            }
        }
    }
    out.messages().into_iter().map(|m| format!("json patch {m}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Custom resources: structural pruning
// ---------------------------------------------------------------------------------------------

/// Fields a custom-resource schema (`openAPIV3Schema`) would prune, as sorted paths, the way
/// upstream reports them for `fieldValidation` (`unknown field "spec.foo"`). The root and
/// every `x-kubernetes-embedded-resource` accept `apiVersion`, `kind` and `metadata`;
/// their `metadata` is checked against ObjectMeta. `x-kubernetes-preserve-unknown-fields`
/// keeps unknown keys but still checks the properties it declares.
pub fn unknown_fields_in_schema(schema: &Value, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut root = schema.clone();
    if let Some(m) = root.as_object_mut() {
        m.insert("x-kubernetes-embedded-resource".into(), Value::Bool(true));
    }
    prune(obj, Some(&root), "", false, &mut out, 0);
    out.sort();
    out
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool) == Some(true)
}

fn is_meta_field(k: &str) -> bool {
    matches!(k, "apiVersion" | "kind" | "metadata")
}

/// Unknown keys of an embedded resource's `metadata`.
fn check_embedded_meta(obj: &serde_json::Map<String, Value>, path: &str, out: &mut Vec<String>) {
    if let Some(meta) = obj.get("metadata") {
        let mut c = Collector::new(true, false);
        let schema = json!({ "$ref": format!("#/definitions/{OBJECT_META}") });
        walk_go(&Raw::from_value(meta), Some(&schema), &child(path, "metadata"), &mut c);
        out.extend(c.paths());
    }
}

/// Upstream's pruning walk; `skip` is set below a preserve-unknown-fields array, whose
/// items keep their unknown keys too (only declared properties are pruned further down).
fn prune(x: &Value, s: Option<&Value>, path: &str, skip: bool, out: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let preserve = skip || s.is_some_and(|s| flag(s, "x-kubernetes-preserve-unknown-fields"));
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                out.extend(m.keys().map(|k| child(path, k)));
                return;
            };
            let embedded = flag(s, "x-kubernetes-embedded-resource");
            if embedded {
                check_embedded_meta(m, path, out);
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            for (k, v) in m {
                if embedded && is_meta_field(k) {
                    continue;
                }
                if let Some(prop) = props.and_then(|p| p.get(k)) {
                    prune(v, Some(prop), &child(path, k), false, out, depth + 1);
                } else if let Some(a) = additional.filter(|a| !matches!(a, Value::Bool(false))) {
                    // `additionalProperties: true` carries no schema: anything goes below.
                    if a.is_object() {
                        prune(v, Some(a), &child(path, k), false, out, depth + 1);
                    }
                } else if !preserve {
                    out.push(child(path, k));
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.get("items"));
            if preserve && item_schema.is_none() {
                return;
            }
            for (i, v) in items.iter().enumerate() {
                prune(v, item_schema, &format!("{path}[{i}]"), preserve, out, depth + 1);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// YAML duplicate keys
// ---------------------------------------------------------------------------------------------

/// One repeated key in a YAML mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlDuplicate {
    /// Field path of the repeated key (`metadata.name`).
    pub path: String,
    /// 1-based line of the repeated (second) key.
    pub line: usize,
    /// The key as Go's `%#v` prints it: `"name"`, `true`, `1`.
    pub key: String,
}

impl YamlDuplicate {
    /// `line 3: key "name" already set in map`.
    pub fn message(&self) -> String {
        format!("line {}: key {} already set in map", self.line, self.key)
    }
}

/// Repeated mapping keys of the first YAML document in `body`, in document order. Handles
/// block and flow collections (so JSON too), quoted keys, comments, block scalars, anchors
/// and tags; a document it cannot follow yields what was found up to that point.
pub fn yaml_duplicates(body: &[u8]) -> Vec<YamlDuplicate> {
    let text = String::from_utf8_lossy(body);
    let mut p = Yaml::new(&text);
    p.document();
    p.found
}

/// Duplicate keys of a YAML body as field paths (`metadata.name`), in document order.
pub fn duplicate_fields_yaml(body: &[u8]) -> Vec<String> {
    yaml_duplicates(body).into_iter().map(|d| d.path).collect()
}

/// Upstream's strict YAML error for a body with repeated keys:
/// `yaml: unmarshal errors:\n  line 3: key "name" already set in map` (one line per key).
pub fn yaml_strict_error(body: &[u8]) -> Option<String> {
    let dups = yaml_duplicates(body);
    if dups.is_empty() {
        return None;
    }
    let lines: Vec<String> = dups.iter().map(YamlDuplicate::message).collect();
    Some(format!("yaml: unmarshal errors:\n  {}", lines.join("\n  ")))
}

/// A resolved YAML key, compared the way go-yaml compares map keys.
#[derive(Clone, PartialEq, Eq, Hash)]
enum YamlKey {
    Str(String),
    Bool(bool),
    Int(i128),
    Null,
    Other(String),
}

impl YamlKey {
    fn plain(s: &str) -> Self {
        match s {
            "" | "~" | "null" | "Null" | "NULL" => return Self::Null,
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                return Self::Bool(true);
            }
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
                return Self::Bool(false);
            }
            _ => {}
        }
        let digits = s.replace('_', "");
        let (neg, d) = match digits.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, digits.strip_prefix('+').unwrap_or(&digits).to_string()),
        };
        let parsed = if let Some(h) = d.strip_prefix("0x") {
            i128::from_str_radix(h, 16).ok()
        } else if let Some(b) = d.strip_prefix("0b") {
            i128::from_str_radix(b, 2).ok()
        } else if d.len() > 1 && d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit()) {
            i128::from_str_radix(&d[1..], 8).ok()
        } else if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) {
            d.parse().ok()
        } else {
            None
        };
        if let Some(n) = parsed {
            return Self::Int(if neg { -n } else { n });
        }
        if s.parse::<f64>().is_ok() && s.bytes().any(|b| b.is_ascii_digit()) {
            return Self::Other(s.to_string());
        }
        Self::Str(s.to_string())
    }

    fn go_repr(&self) -> String {
        match self {
            Self::Str(s) => go_quote(s),
            Self::Bool(b) => b.to_string(),
            Self::Int(n) => n.to_string(),
            Self::Null => "<nil>".into(),
            Self::Other(s) => s.clone(),
        }
    }
}

struct Yaml {
    c: Vec<char>,
    i: usize,
    line: usize,
    line_start: usize,
    found: Vec<YamlDuplicate>,
    steps: usize,
    depth: usize,
}

impl Yaml {
    fn new(text: &str) -> Self {
        Self { c: text.chars().collect(), i: 0, line: 1, line_start: 0, found: Vec::new(), steps: 0, depth: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.c.get(self.i + n).copied()
    }
    fn col(&self) -> usize {
        self.i - self.line_start
    }
    fn bump(&mut self) {
        if self.peek() == Some('\n') {
            self.line += 1;
            self.line_start = self.i + 1;
        }
        self.i += 1;
    }
    fn eof(&self) -> bool {
        self.i >= self.c.len()
    }
    /// Guard against loops on input the scanner does not understand.
    fn budget(&mut self) -> bool {
        self.steps += 1;
        self.steps < 10 * self.c.len() + 1000
    }

    /// Enter a nested node; `false` (and nothing more is scanned) past `MAX_DEPTH`.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.i = self.c.len();
            return false;
        }
        true
    }

    fn is_blank(c: Option<char>) -> bool {
        matches!(c, None | Some(' ' | '\t' | '\n' | '\r'))
    }

    /// Skip spaces and a trailing comment on the current line (not the newline).
    fn skip_inline(&mut self) {
        while let Some(' ' | '\t' | '\r') = self.peek() {
            self.bump();
        }
        if self.peek() == Some('#') {
            while !matches!(self.peek(), None | Some('\n')) {
                self.bump();
            }
        }
    }

    /// Skip whitespace, comments and newlines.
    fn skip_all(&mut self) {
        loop {
            self.skip_inline();
            if self.peek() == Some('\n') {
                self.bump();
            } else {
                return;
            }
        }
    }

    fn at_doc_marker(&self) -> bool {
        self.col() == 0
            && ((self.peek() == Some('-') && self.peek_at(1) == Some('-') && self.peek_at(2) == Some('-'))
                || (self.peek() == Some('.') && self.peek_at(1) == Some('.') && self.peek_at(2) == Some('.')))
            && Self::is_blank(self.peek_at(3))
    }

    fn document(&mut self) {
        self.skip_all();
        while self.peek() == Some('%') && self.col() == 0 {
            while !matches!(self.peek(), None | Some('\n')) {
                self.bump();
            }
            self.skip_all();
        }
        if self.at_doc_marker() && self.peek() == Some('-') {
            self.i += 3;
        }
        self.block_node(-1, "");
    }

    /// Skip anchors (`&a`) and tags (`!t`) before a node.
    fn properties(&mut self) {
        while let Some('&' | '!') = self.peek() {
            while !Self::is_blank(self.peek()) {
                self.bump();
            }
            self.skip_inline();
        }
    }

    /// A block node whose content must be indented more than `parent`.
    fn block_node(&mut self, parent: isize, path: &str) {
        if self.enter() {
            self.block_node_inner(parent, path);
        }
        self.depth -= 1;
    }

    fn block_node_inner(&mut self, parent: isize, path: &str) {
        if !self.budget() {
            return;
        }
        self.skip_all();
        self.properties();
        self.skip_all();
        if self.eof() || self.at_doc_marker() || (self.col() as isize) <= parent {
            return;
        }
        let col = self.col();
        match self.peek() {
            Some('-') if Self::is_blank(self.peek_at(1)) => self.block_seq(col, path),
            Some('{' | '[') => self.flow_node(path),
            Some('|' | '>') => self.block_scalar(parent),
            Some('*') => self.skip_line(),
            _ => {
                let save = (self.i, self.line, self.line_start);
                if self.scalar_key(false).is_some() && self.peek() == Some(':') && Self::is_blank(self.peek_at(1)) {
                    (self.i, self.line, self.line_start) = save;
                    self.block_map(col, path);
                } else {
                    (self.i, self.line, self.line_start) = save;
                    self.plain_or_quoted_value(parent);
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.bump();
        }
    }

    /// A scalar in block context (after `key: ` or `- `); plain scalars may continue on
    /// lines indented more than `parent`.
    fn plain_or_quoted_value(&mut self, parent: isize) {
        match self.peek() {
            Some('"' | '\'') => {
                let _ = self.quoted();
                self.skip_inline();
            }
            _ => {
                self.skip_line();
                loop {
                    let save = (self.i, self.line, self.line_start);
                    self.skip_all();
                    if !self.eof() && !self.at_doc_marker() && (self.col() as isize) > parent {
                        self.skip_line();
                    } else {
                        (self.i, self.line, self.line_start) = save;
                        return;
                    }
                }
            }
        }
    }

    /// `|` / `>` scalars: the header line, then every line blank or indented past `parent`.
    fn block_scalar(&mut self, parent: isize) {
        self.skip_line();
        loop {
            if self.peek() != Some('\n') {
                return;
            }
            let save = (self.i, self.line, self.line_start);
            self.bump();
            while self.peek() == Some(' ') {
                self.bump();
            }
            let blank = matches!(self.peek(), None | Some('\n' | '\r'));
            if blank || ((self.col() as isize) > parent && !self.at_doc_marker()) {
                self.skip_line();
            } else {
                (self.i, self.line, self.line_start) = save;
                return;
            }
        }
    }

    /// A quoted scalar at the cursor (may span lines).
    fn quoted(&mut self) -> Option<String> {
        let q = self.peek()?;
        self.bump();
        let mut s = String::new();
        loop {
            let c = self.peek()?;
            if q == '\'' && c == '\'' {
                if self.peek_at(1) == Some('\'') {
                    s.push('\'');
                    self.bump();
                    self.bump();
                    continue;
                }
                self.bump();
                return Some(s);
            }
            if q == '"' && c == '"' {
                self.bump();
                return Some(s);
            }
            if q == '"' && c == '\\' {
                self.bump();
                let e = self.peek()?;
                self.bump();
                match e {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    '0' => s.push('\0'),
                    '\n' => {}
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut h = String::new();
                        for _ in 0..n {
                            h.push(self.peek()?);
                            self.bump();
                        }
                        s.push(u32::from_str_radix(&h, 16).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}'));
                    }
                    other => s.push(other),
                }
                continue;
            }
            if c == '\n' {
                // Line folding: a single newline becomes a space.
                while s.ends_with(' ') || s.ends_with('\t') {
                    s.pop();
                }
                self.bump();
                while let Some(' ' | '\t') = self.peek() {
                    self.bump();
                }
                s.push(' ');
                continue;
            }
            s.push(c);
            self.bump();
        }
    }

    /// A mapping key at the cursor (quoted or plain), leaving the cursor after it. In flow
    /// context plain keys also end at `,`, `]`, `}`.
    fn scalar_key(&mut self, flow: bool) -> Option<YamlKey> {
        match self.peek()? {
            '"' | '\'' => {
                let s = self.quoted()?;
                while let Some(' ' | '\t') = self.peek() {
                    self.bump();
                }
                Some(YamlKey::Str(s))
            }
            _ => {
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None | Some('\n') => break,
                        Some(':')
                            if Self::is_blank(self.peek_at(1))
                                || (flow && matches!(self.peek_at(1), Some(',' | '}' | ']'))) =>
                        {
                            break;
                        }
                        Some(',' | ']' | '}') if flow => break,
                        Some('#') if s.ends_with(' ') || s.is_empty() => break,
                        Some(c) => {
                            s.push(c);
                            self.bump();
                        }
                    }
                }
                let key = YamlKey::plain(s.trim_end());
                while let Some(' ' | '\t') = self.peek() {
                    self.bump();
                }
                Some(key)
            }
        }
    }

    fn record(&mut self, seen: &mut HashSet<YamlKey>, key: YamlKey, line: usize, path: &str) -> String {
        let name = match &key {
            YamlKey::Str(s) | YamlKey::Other(s) => s.clone(),
            YamlKey::Bool(b) => b.to_string(),
            YamlKey::Int(n) => n.to_string(),
            YamlKey::Null => "null".into(),
        };
        let p = child(path, &name);
        if key != YamlKey::Str("<<".into()) && !seen.insert(key.clone()) && self.found.len() < MAX_ERRORS {
            self.found.push(YamlDuplicate { path: p.clone(), line, key: key.go_repr() });
        }
        p
    }

    fn block_map(&mut self, col: usize, path: &str) {
        let mut seen = HashSet::new();
        loop {
            if !self.budget() {
                return;
            }
            let line = self.line;
            let Some(key) = self.scalar_key(false) else { return };
            if self.peek() != Some(':') {
                return;
            }
            self.bump();
            let p = self.record(&mut seen, key, line, path);
            self.skip_inline();
            self.properties();
            if matches!(self.peek(), None | Some('\n')) {
                // Value on the following lines; a sequence may sit at the key's own indent.
                let save = (self.i, self.line, self.line_start);
                self.skip_all();
                if self.col() == col && self.peek() == Some('-') && Self::is_blank(self.peek_at(1)) {
                    self.block_seq(col, &p);
                } else {
                    (self.i, self.line, self.line_start) = save;
                    self.block_node(col as isize, &p);
                }
            } else {
                match self.peek() {
                    Some('{' | '[') => self.flow_node(&p),
                    Some('|' | '>') => self.block_scalar(col as isize),
                    _ => self.plain_or_quoted_value(col as isize),
                }
            }
            self.skip_all();
            if self.eof() || self.at_doc_marker() || self.col() != col {
                return;
            }
        }
    }

    fn block_seq(&mut self, col: usize, path: &str) {
        let mut idx = 0;
        loop {
            if !self.budget() {
                return;
            }
            // At `-`.
            self.bump();
            let p = format!("{path}[{idx}]");
            idx += 1;
            self.skip_inline();
            // Content on the dash's line starts a node whose column is its indent.
            self.block_node(col as isize, &p);
            self.skip_all();
            if self.eof()
                || self.at_doc_marker()
                || self.col() != col
                || !(self.peek() == Some('-') && Self::is_blank(self.peek_at(1)))
            {
                return;
            }
        }
    }

    fn flow_node(&mut self, path: &str) {
        if self.enter() && self.budget() {
            self.flow_node_inner(path);
        }
        self.depth -= 1;
    }

    fn flow_node_inner(&mut self, path: &str) {
        match self.peek() {
            Some('{') => {
                self.bump();
                let mut seen = HashSet::new();
                loop {
                    self.skip_all();
                    let before = self.i;
                    match self.peek() {
                        None => return,
                        Some('}') => {
                            self.bump();
                            return;
                        }
                        Some(',') => {
                            self.bump();
                            continue;
                        }
                        _ => {}
                    }
                    self.properties();
                    let line = self.line;
                    let Some(key) = self.scalar_key(true) else { return };
                    let p = self.record(&mut seen, key, line, path);
                    self.skip_all();
                    if self.peek() == Some(':') {
                        self.bump();
                        self.flow_value(&p);
                    }
                    if self.i == before || !self.budget() {
                        return;
                    }
                }
            }
            Some('[') => {
                self.bump();
                let mut idx = 0;
                loop {
                    self.skip_all();
                    match self.peek() {
                        None => return,
                        Some(']') => {
                            self.bump();
                            return;
                        }
                        Some(',') => {
                            self.bump();
                            continue;
                        }
                        _ => {}
                    }
                    let before = self.i;
                    self.flow_value(&format!("{path}[{idx}]"));
                    idx += 1;
                    if self.i == before {
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    fn flow_value(&mut self, path: &str) {
        self.skip_all();
        self.properties();
        self.skip_all();
        match self.peek() {
            Some('{' | '[') => self.flow_node(path),
            Some('"' | '\'') => {
                let _ = self.quoted();
            }
            _ => {
                while let Some(c) = self.peek() {
                    if matches!(c, ',' | ']' | '}' | '\n') {
                        break;
                    }
                    self.bump();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(extra_spec: Value) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"anything/goes": "x", "app": "web"}, "annotations": {"a": "b"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "nginx", "resources": {"limits": {"cpu": "1"}}},
                        {"name": "b", "imagee": "nginx", "ports": [{"containerPort": 80, "bogus": 1}]}
                    ]}
                }
            }
        });
        if let (Some(spec), Value::Object(extra)) = (d.get_mut("spec").and_then(Value::as_object_mut), extra_spec) {
            spec.extend(extra);
        }
        d
    }

    #[test]
    fn directive_parse() {
        assert_eq!(Directive::parse(None).ok(), Some(Directive::Warn));
        assert_eq!(Directive::parse(Some("")).ok(), Some(Directive::Warn));
        assert_eq!(Directive::parse(Some("Strict")).ok(), Some(Directive::Strict));
        assert_eq!(Directive::parse(Some("Ignore")).ok(), Some(Directive::Ignore));
        assert!(!Directive::Ignore.enabled() && Directive::Warn.enabled());
        let e = Directive::parse_for(Some("strict"), "PatchOptions").err().map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some((
                422,
                r#"PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn""#
                    .to_string()
            ))
        );
    }

    #[test]
    fn unknown_fields_nested_in_pod_template() {
        let d = deployment(json!({"foo": {"bar": 1}}));
        let got = unknown_fields("apps", "v1", "Deployment", &d);
        // spec keys are walked in the Value's order; assert as a set plus exact paths.
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![
                "spec.foo",
                "spec.template.spec.containers[1].imagee",
                "spec.template.spec.containers[1].ports[0].bogus",
            ]
        );
    }

    #[test]
    fn maps_intorstring_quantity_and_rawextension_accept_anything() {
        let ok = deployment(json!({}));
        let mut ok = ok;
        if let Some(cs) = ok.pointer_mut("/spec/template/spec/containers").and_then(Value::as_array_mut) {
            cs.truncate(1);
        }
        assert!(unknown_fields("apps", "v1", "Deployment", &ok).is_empty());

        // RawExtension below a ControllerRevision's data; FieldsV1 in managedFields.
        let cr = json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
            "metadata": {"name": "x", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"whatever": {}}}, "oops": 1}]},
            "data": {"spec": {"anything": [1, 2]}}
        });
        assert_eq!(unknown_fields("apps", "v1", "ControllerRevision", &cr), vec!["metadata.managedFields[0].oops"]);
    }

    #[test]
    fn top_level_and_metadata_unknowns() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "nmae": "q"}, "extra": true,
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "valu": "1"}]}]}});
        let mut got = unknown_fields("", "v1", "Pod", &pod);
        got.sort();
        assert_eq!(got, vec!["extra", "metadata.nmae", "spec.containers[0].env[0].valu"]);
        // Nothing below an unknown field is reported.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "spc": {"x": {"y": 1}}});
        assert_eq!(unknown_fields("", "v1", "ConfigMap", &cm), vec!["spc"]);
        assert!(unknown_fields("example.com", "v1", "Widget", &cm).is_empty());
    }

    #[test]
    fn empty_struct_types_reject_fields() {
        let sv = json!({"apiVersion": "internal.apiserver.k8s.io/v1alpha1", "kind": "StorageVersion",
            "metadata": {"name": "x"}, "spec": {"foo": 1}});
        assert_eq!(unknown_fields("internal.apiserver.k8s.io", "v1alpha1", "StorageVersion", &sv), vec!["spec.foo"]);
    }

    #[test]
    fn duplicates_at_several_depths_json() {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"a","labels":{"x":"1","x":"2"},"name":"b"},
            "data":{"k":"v"},"data":{"k":"v","k":"w"},
            "list":[{"a":1,"a":2}]}"#;
        assert_eq!(
            duplicate_fields_json(body),
            vec!["metadata.labels.x", "metadata.name", "data", "data.k", "list[0].a"]
        );
        // Escaped keys are compared after unescaping.
        assert_eq!(duplicate_fields_json(br#"{"a\u0062":1,"ab":2}"#), vec!["ab"]);
        assert!(duplicate_fields_json(b"{not json").is_empty());
        assert!(duplicate_fields_json(br#"{"a":1,"b":{"a":2}}"#).is_empty());
    }

    #[test]
    fn strict_errors_in_document_order() {
        let body = br#"{"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"a","name":"b","labels":{"l":"1","l":"2"}},
            "spec":{"foo":1,"foo":2,"selector":{"matchLabels":{"app":"x"}},
              "template":{"spec":{"containers":[{"name":"c","imagee":"i","name":"d"}]}}}}"#;
        assert_eq!(
            strict_errors_json("apps", "v1", "Deployment", body),
            vec![
                r#"duplicate field "metadata.name""#,
                r#"duplicate field "metadata.labels.l""#,
                r#"unknown field "spec.foo""#,
                r#"unknown field "spec.template.spec.containers[0].imagee""#,
                r#"duplicate field "spec.template.spec.containers[0].name""#,
            ]
        );
        // No duplicate detection inside types with their own decoding (RawExtension).
        let cr = br#"{"apiVersion":"apps/v1","kind":"ControllerRevision","revision":1,"metadata":{"name":"x"},"data":{"a":1,"a":2}}"#;
        assert!(strict_errors_json("apps", "v1", "ControllerRevision", cr).is_empty());
        // Unknown kinds decode as maps: duplicates only.
        assert_eq!(strict_errors_json("x.io", "v1", "W", br#"{"a":{"b":1,"b":2}}"#), vec![r#"duplicate field "a.b""#]);
    }

    #[test]
    fn json_patch_errors() {
        let body = br#"[{"op":"add","path":"/a","value":{"x":1,"x":2},"extra":1,"path":"/b"}]"#;
        assert_eq!(
            json_patch_strict_errors(body),
            vec![
                r#"json patch duplicate field "[0].value.x""#,
                r#"json patch unknown field "[0].extra""#,
                r#"json patch duplicate field "[0].path""#,
            ]
        );
    }

    #[test]
    fn messages_and_verdicts() {
        let strict = check(Directive::Strict, vec!["spec.foo".into()], vec!["metadata.name".into()]);
        let e = strict.err().map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some((400, r#"strict decoding error: duplicate field "metadata.name", unknown field "spec.foo""#.into()))
        );
        assert_eq!(
            check(Directive::Warn, vec!["spec.foo".into()], vec![]).ok(),
            Some(vec![r#"unknown field "spec.foo""#.to_string()])
        );
        assert_eq!(check(Directive::Ignore, vec!["spec.foo".into()], vec![]).ok(), Some(vec![]));
        assert_eq!(check(Directive::Strict, vec![], vec![]).ok(), Some(vec![]));

        let e = check_decode(Directive::Strict, "Deployment", "v1", vec![unknown_message("spec.foo")]).err();
        assert_eq!(
            e.map(|e| e.message),
            Some(r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo""#.into())
        );

        let e = check_patch(Directive::Strict, r#"{"a":1}"#, vec![unknown_message("spec.foo")]).err();
        assert_eq!(
            e.map(|e| (e.code, e.message)),
            Some((
                422,
                r#" "" is invalid: patch: Invalid value: "{\"a\":1}": strict decoding error: unknown field "spec.foo""#
                    .into()
            ))
        );

        // YAML errors become one warning per line.
        let y =
            "yaml: unmarshal errors:\n  line 3: key \"a\" already set in map\n  line 5: key \"b\" already set in map";
        assert_eq!(
            warnings(&[y.to_string(), unknown_message("x")]),
            vec![
                r#"line 3: key "a" already set in map"#,
                r#"line 5: key "b" already set in map"#,
                r#"unknown field "x""#
            ]
        );
        assert_eq!(unknown_message("a\"b"), r#"unknown field "a\"b""#);
    }

    #[test]
    fn crd_schema_pruning() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                             "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "child": {"type": "object", "x-kubernetes-embedded-resource": true,
                              "properties": {"spec": {"type": "object"}}}
                }}
            }
        });
        let obj = json!({
            "apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w", "bogus": 1},
            "spec": {
                "size": 1, "foo": 2,
                "items": [{"name": "a", "nmae": "b"}],
                "tags": {"anything": "ok"},
                "free": {"whatever": {"deep": 1}, "known": {"a": "x", "b": "y"}},
                "child": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "x": 1}, "spec": {"z": 1}, "other": 1}
            },
            "status": {}
        });
        assert_eq!(
            unknown_fields_in_schema(&schema, &obj),
            vec![
                "metadata.bogus",
                "spec.child.metadata.x",
                "spec.child.other",
                "spec.child.spec.z",
                "spec.foo",
                "spec.free.known.b",
                "spec.items[0].nmae",
                "status",
            ]
        );
    }

    #[test]
    fn yaml_duplicates_block_style() {
        let body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    x: '1'\n    x: \"2\"\n  name: b # again\ndata:\n  k: |\n    text: 1\n    text: 2\n  j: v\n";
        let d = yaml_duplicates(body);
        assert_eq!(
            d,
            vec![
                YamlDuplicate { path: "metadata.labels.x".into(), line: 7, key: r#""x""#.into() },
                YamlDuplicate { path: "metadata.name".into(), line: 8, key: r#""name""#.into() },
            ]
        );
        assert_eq!(
            yaml_strict_error(body).as_deref(),
            Some(
                "yaml: unmarshal errors:\n  line 7: key \"x\" already set in map\n  line 8: key \"name\" already set in map"
            )
        );
        assert_eq!(duplicate_fields_yaml(body), vec!["metadata.labels.x", "metadata.name"]);
    }

    #[test]
    fn yaml_duplicates_sequences_and_flow() {
        let body = b"spec:\n  containers:\n  - name: a\n    image: x\n    name: b\n  -   name: c\n      env:\n        - {name: A, value: '1', name: B}\n  'q': 1\n  q: 2\n";
        assert_eq!(
            duplicate_fields_yaml(body),
            vec!["spec.containers[0].name", "spec.containers[1].env[0].name", "spec.q"]
        );
        // JSON is YAML: everything on line 1.
        let json_body = br#"{"metadata": {"name": "a", "name": "b"}, "spec": [1, {"x": 1, "x": 2}]}"#;
        let d = yaml_duplicates(json_body);
        assert_eq!(
            d.iter().map(|d| (d.path.as_str(), d.line)).collect::<Vec<_>>(),
            vec![("metadata.name", 1), ("spec[1].x", 1)]
        );
        // Plain keys resolve like go-yaml: `true` and `yes` are one bool key, `1` and `01` (octal)
        // one int key, while `"1"` is a string.
        let d = yaml_duplicates(b"true: a\nyes: b\n1: c\n01: d\n\"1\": e\n");
        assert_eq!(
            d.iter().map(|d| d.message()).collect::<Vec<_>>(),
            vec!["line 2: key true already set in map", "line 4: key 1 already set in map"]
        );
        assert!(yaml_duplicates(b"a: 1\nb:\n  a: 2\n---\na: 3\na: 4\n").is_empty());
        assert!(yaml_strict_error(b"a: 1\n").is_none());
    }

    #[test]
    fn crd_preserve_unknown_arrays_keep_item_fields() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                     "items": {"type": "object", "properties": {"n": {"type": "object", "properties": {}}}}},
            "strict": {"type": "array", "items": {"type": "object", "properties": {}}}
        }}}});
        let obj = json!({"spec": {"list": [{"free": 1, "n": {"gone": 1}}], "strict": [{"gone": 1}]}});
        assert_eq!(unknown_fields_in_schema(&schema, &obj), vec!["spec.list[0].n.gone", "spec.strict[0].gone"]);
    }

    #[test]
    fn yaml_realistic_manifest() {
        let body = b"# a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    note: >-\n      folded text\n      note: not a key\n    long: this plain scalar\n      continues here\n  labels: &l\n    app: web\nspec:\n  selector:\n    matchLabels: *l\n  template:\n    metadata:\n      labels: !!map {app: web}\n    spec:\n      containers:\n        - name: web\n          image: \"nginx:1\"   # trailing\n          args: [\"a\", 'b', c]\n          ports:\n          - containerPort: 80\n            containerPort: 81\n      containers: []\n";
        assert_eq!(
            yaml_duplicates(body),
            vec![
                YamlDuplicate {
                    path: "spec.template.spec.containers[0].ports[0].containerPort".into(),
                    line: 28,
                    key: r#""containerPort""#.into()
                },
                YamlDuplicate { path: "spec.template.spec.containers".into(), line: 29, key: r#""containers""#.into() },
            ]
        );
    }

    #[test]
    fn hostile_input_terminates() {
        let deep = "[".repeat(100_000);
        assert!(yaml_duplicates(deep.as_bytes()).is_empty());
        assert!(duplicate_fields_json(deep.as_bytes()).is_empty());
        let deep_map = "a:\n".to_string() + &(1..2000).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>();
        assert!(yaml_duplicates(deep_map.as_bytes()).is_empty());
        for junk in ["{ ] : , }", "- - - : : :", "key: \"unterminated", "{a: 1, a", ": : a: b: c", "\t\tx: 1\n\tx: 2"] {
            let _ = yaml_duplicates(junk.as_bytes());
        }
        assert!(strict_errors_json("", "v1", "Pod", br#"{"a":1,}"#).is_empty());
    }

    #[test]
    fn apply_checks_yaml_duplicates() {
        let e = check_apply(Directive::Strict, b"{\"a\": 1, \"a\": 2}").err().map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some((
                400,
                "error strict decoding patch: yaml: unmarshal errors:\n  line 1: key \"a\" already set in map".into()
            ))
        );
        assert_eq!(
            check_apply(Directive::Warn, b"a: 1\na: 2\n").ok(),
            Some(vec![r#"line 2: key "a" already set in map"#.to_string()])
        );
    }
}
