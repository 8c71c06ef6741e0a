//! Label and field selectors: parsing the `labelSelector` / `fieldSelector` query syntax,
//! turning a `metav1.LabelSelector` object (or a Service's `spec.selector` map) into a
//! selector, and matching JSON objects against them.
//!
//! Semantics follow upstream's `k8s.io/apimachinery/pkg/labels` and `pkg/fields` packages:
//! the grammar, the canonical `String()` form, the validation of label keys and values and
//! the wording of parse errors. Which fields a resource may be selected on follows the
//! field-label conversion functions and `ToSelectableFields` of each upstream registry; an
//! unsupported field is a 400 with upstream's per-kind message.

// The API of this crate returns `ApiError` (a full `metav1.Status`) by design.

use serde_json::{Map, Value};

use crate::status::{ApiError, FieldError};

/// Upstream's `IsQualifiedName` (the rule for label keys) and `IsValidLabelValue`: error
/// strings, empty when valid. One implementation, shared with object validation.
pub use crate::validation::{is_qualified_name as qualified_name_errors, is_valid_label_value as label_value_errors};

/// Go's `%#v` of a `[]string`, as upstream prints it in requirement errors.
fn go_string_slice(vals: &[String]) -> String {
    let items: Vec<String> = vals.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Upstream's aggregate error text: one message alone, several in brackets (deduplicated).
fn aggregate(msgs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in msgs {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.len() {
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

// ---------------------------------------------------------------------------
// Label selectors.
// ---------------------------------------------------------------------------

/// A requirement operator (upstream's `selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// Upstream's `NewRequirement`: validates the key, the values and their count.
    /// A bad key is reported at path `key` (the parser checks keys itself first, at `<nil>`).
    fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(FieldError::invalid("key", Value::String(key.to_string()), key_errs.join("; ")).to_string());
        }
        let invalid_values = |detail: &str| format!("values: Invalid value: {}: {detail}", go_string_slice(&values));
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_values("for 'in', 'notin' operators, values set can't be empty"));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_values("exact-match compatibility requires one single value"));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_values("values set must be empty for exists and does not exist"));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_values("for 'Gt', 'Lt' operators, exactly one value is required"));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(
                            FieldError::invalid(
                                format!("values[{i}]"),
                                Value::String(v.clone()),
                                "for 'Gt', 'Lt' operators, the value must be an integer",
                            )
                            .to_string(),
                        );
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let verrs = label_value_errors(v);
            if !verrs.is_empty() {
                errs.push(
                    FieldError::invalid(format!("values[{i}][{key}]"), Value::String(v.clone()), verrs.join("; "))
                        .to_string(),
                );
            }
        }
        if errs.is_empty() { Ok(Self { key: key.to_string(), operator, values }) } else { Err(aggregate(errs)) }
    }

    /// Whether this requirement holds for the given labels (upstream's `Requirement.Matches`).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let got = labels.and_then(|l| l.get(&self.key)).map(label_text);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => got.is_some_and(|v| self.values.contains(&v)),
            Operator::NotIn | Operator::NotEquals => got.is_none_or(|v| !self.values.contains(&v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = got.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else { return false };
                let Ok(want) = want.parse::<i64>() else { return false };
                if self.operator == Operator::GreaterThan { have > want } else { have < want }
            }
        }
    }

    /// Upstream's `Requirement.String()`: `!k`, `k`, `k=v`, `k in (a,b)` (values sorted).
    pub fn to_query_string(&self) -> String {
        let mut s = String::new();
        if self.operator == Operator::DoesNotExist {
            s.push('!');
        }
        s.push_str(&self.key);
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return s,
        };
        s.push_str(op);
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            s.push('(');
        }
        let mut vals = self.values.clone();
        vals.sort();
        s.push_str(&vals.join(","));
        if set {
            s.push(')');
        }
        s
    }
}

/// A label value as text (labels are strings; anything else is shown as JSON).
fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A label selector: the AND of its requirements. `nothing()` matches no object
/// (upstream's `labels.Nothing()`, what a nil `metav1.LabelSelector` becomes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches nothing.
    pub fn nothing() -> Self {
        Self { requirements: Vec::new(), nothing: true }
    }

    /// Parse the `labelSelector` query syntax. Errors are 400s with upstream's wording.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut p = Parser { items: lex(s), pos: 0 };
        let mut reqs = p.parse().map_err(ApiError::bad_request)?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements: reqs, nothing: false })
    }

    /// From a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`), as upstream's
    /// `LabelSelectorAsSelector`: `null` selects nothing, `{}` selects everything.
    pub fn from_label_selector(v: &Value) -> Result<Self, ApiError> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            _ => return Err(ApiError::bad_request("invalid label selector: not an object")),
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Value::String(val) = v else {
                        return Err(ApiError::bad_request(format!(
                            "invalid label selector: matchLabels[{k:?}] must be a string"
                        )));
                    };
                    reqs.push(Requirement::new(k, Operator::Equals, vec![val.clone()]).map_err(ApiError::bad_request)?);
                }
            }
            Some(_) => {
                return Err(ApiError::bad_request("invalid label selector: matchLabels must be an object"));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for e in exprs {
                    let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                    let op_text = e.get("operator").and_then(Value::as_str).unwrap_or_default();
                    let op = match op_text {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "{other:?} is not a valid label selector operator"
                            )));
                        }
                    };
                    let values = match e.get("values") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(a)) => a.iter().map(label_text).collect(),
                        Some(_) => {
                            return Err(ApiError::bad_request(
                                "invalid label selector: matchExpressions values must be a list",
                            ));
                        }
                    };
                    reqs.push(Requirement::new(key, op, values).map_err(ApiError::bad_request)?);
                }
            }
            Some(_) => {
                return Err(ApiError::bad_request("invalid label selector: matchExpressions must be a list"));
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements: reqs, nothing: false })
    }

    /// An equality selector from a plain map (a Service's or ReplicationController's
    /// `spec.selector`). An empty map selects everything; values are not validated.
    pub fn from_map(labels: &Map<String, Value>) -> Self {
        let mut reqs: Vec<Requirement> = labels
            .iter()
            .map(|(k, v)| Requirement { key: k.clone(), operator: Operator::Equals, values: vec![label_text(v)] })
            .collect();
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements: reqs, nothing: false }
    }

    /// Whether all requirements hold for these labels (`None`: the object has no labels).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Match against `metadata.labels` of an object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }

    /// True when the selector does not restrict anything (`nothing()` is not empty).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The canonical form, as upstream's `String()`: requirements sorted by key, comma-joined.
    pub fn to_query_string(&self) -> String {
        self.requirements.iter().map(Requirement::to_query_string).collect::<Vec<_>>().join(",")
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// If the selector pins `label` to a single value (`=`, `==` or a one-value `in`), that value.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [one]) => Some(one),
            _ => None,
        }
    }
}

/// Lexer tokens of the label selector grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Tokenize the whole input (upstream's Lexer, byte-wise), ending with `End`.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            // Longest run of special symbols that still forms a known token.
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                let cand = &b[start..=pos];
                if let Some(t) = keyword(cand) {
                    last = Some((t, pos + 1));
                } else if last.is_some() {
                    break;
                }
                pos += 1;
            }
            match last {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, String::from_utf8_lossy(&b[start..end]).into_owned()));
                }
                None => {
                    let found = String::from_utf8_lossy(&b[start..pos]).into_owned();
                    out.push((Tok::Error, format!("error expected: keyword found '{found}'")));
                }
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_space(b[pos]) {
                pos += 1;
            }
            let word = &b[start..pos];
            let text = String::from_utf8_lossy(word).into_owned();
            match keyword(word) {
                Some(t) => out.push((t, text)),
                None => out.push((Tok::Identifier, text)),
            }
        }
    }
}

/// In the "values" context the keywords `in`/`notin` are plain identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn item(&self, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = self.items.get(self.pos).cloned().unwrap_or((Tok::End, String::new()));
        let tok = match (ctx, tok) {
            (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Identifier,
            (_, t) => t,
        };
        (tok, lit)
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.item(ctx)
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let it = self.item(ctx);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        it
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = op {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = qualified_name_errors(&lit);
        if !errs.is_empty() {
            return Err(FieldError::invalid("<nil>", Value::String(lit.clone()), errs.join("; ")).to_string());
        }
        let (t, _) = self.lookahead(Ctx::Values);
        if (t == Tok::End || t == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// `( v1, v2 )` → a sorted, deduplicated set (upstream's `sets.String`).
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set.into_iter().collect()),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        set.insert(String::new());
                        return Ok(set.into_iter().collect());
                    }
                    if t2 == Tok::Comma {
                        self.consume(Ctx::Values);
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier { Ok(vec![lit]) } else { Err(format!("found '{lit}', expected: identifier")) }
    }
}

// ---------------------------------------------------------------------------
// Field selectors.
// ---------------------------------------------------------------------------

/// `=`/`==` (equal) or `!=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

/// One `field op value` term, with the field already mapped to the stored form
/// (e.g. `regarding.name` of events.k8s.io becomes `involvedObject.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

/// A field selector for one resource: the AND of its terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
    group: String,
    resource: String,
}

/// Split on unescaped commas, keeping escapes (upstream's `splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// First occurrence of `!=`, `==` or `=` (checked in that order at each position).
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [("!=", FieldOp::NotEquals), ("==", FieldOp::Equals), ("=", FieldOp::Equals)] {
            if rest.starts_with(op) {
                return Some((&term[..i], kind, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// Upstream's `UnescapeValue`: `\\`, `\,` and `\=` only; bare `,`/`=` are errors.
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(format!("invalid field selector: invalid escape sequence: \\{other}")),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!("invalid field selector: unescaped character in value: {}", c as u32));
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Upstream's `EscapeValue`.
fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

/// The field-label conversion of `(group, resource)`: the stored field name a selector
/// field maps to, or upstream's error message for an unsupported field.
fn convert_field_label(group: &str, resource: &str, label: &str) -> Result<String, String> {
    let allow = |allowed: &[&str], msg: String| -> Result<String, String> {
        if allowed.contains(&label) { Ok(label.to_string()) } else { Err(msg) }
    };
    let not_supported = format!("field label not supported: {label}");
    match (group, resource) {
        ("", "pods") => {
            if label == "spec.host" {
                return Ok("spec.nodeName".to_string());
            }
            allow(
                &[
                    "metadata.name",
                    "metadata.namespace",
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.podIPs",
                    "status.nominatedNodeName",
                ],
                not_supported,
            )
        }
        ("", "nodes") => allow(&["metadata.name", "spec.unschedulable"], not_supported),
        ("", "replicationcontrollers") => {
            allow(&["metadata.name", "metadata.namespace", "status.replicas"], not_supported)
        }
        ("", "events") => allow(
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ],
            not_supported,
        ),
        ("events.k8s.io", "events") => {
            let mapped = match label {
                "reason" | "source" | "type" | "metadata.namespace" | "metadata.name" => label.to_string(),
                "reportingController" => "reportingComponent".to_string(),
                l => match l.strip_prefix("regarding.") {
                    Some(
                        f @ ("kind" | "namespace" | "name" | "uid" | "apiVersion" | "resourceVersion" | "fieldPath"),
                    ) => format!("involvedObject.{f}"),
                    _ => return Err(not_supported),
                },
            };
            Ok(mapped)
        }
        ("", "namespaces") => allow(&["status.phase", "metadata.name"], not_supported),
        ("", "secrets") => allow(&["type", "metadata.namespace", "metadata.name"], not_supported),
        ("", "services") => {
            allow(&["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"], not_supported)
        }
        ("batch", "jobs") => allow(
            &["metadata.name", "metadata.namespace", "status.successful"],
            format!("field label {label:?} not supported for batchv1.Job"),
        ),
        ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
            allow(&["metadata.name", "spec.signerName"], not_supported)
        }
        ("resource.k8s.io", "resourceslices") => allow(
            &["metadata.name", "spec.nodeName", "spec.driver"],
            format!("field label not supported for resource.k8s.io/v1beta1, Kind=ResourceSlice: {label}"),
        ),
        _ => allow(
            &["metadata.name", "metadata.namespace"],
            format!("{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""),
        ),
    }
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn int_at(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0).to_string()
}

fn bool_at(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer).and_then(Value::as_bool).unwrap_or(false).to_string()
}

/// The value of a selectable field of `obj` (upstream's `ToSelectableFields`); fields a
/// kind does not expose read as the empty string, as a missing key in a `fields.Set` does.
fn selectable_field(group: &str, resource: &str, obj: &Value, field: &str) -> String {
    match field {
        "metadata.name" => return str_at(obj, "/metadata/name").to_string(),
        "metadata.namespace" => return str_at(obj, "/metadata/namespace").to_string(),
        _ => {}
    }
    match (group, resource) {
        ("", "pods") => match field {
            "spec.nodeName" => str_at(obj, "/spec/nodeName").to_string(),
            "spec.restartPolicy" => str_at(obj, "/spec/restartPolicy").to_string(),
            "spec.schedulerName" => str_at(obj, "/spec/schedulerName").to_string(),
            "spec.serviceAccountName" => str_at(obj, "/spec/serviceAccountName").to_string(),
            "spec.hostNetwork" => bool_at(obj, "/spec/hostNetwork"),
            "status.phase" => str_at(obj, "/status/phase").to_string(),
            "status.podIP" => match obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
                Some(ip) => ip.to_string(),
                None => str_at(obj, "/status/podIP").to_string(),
            },
            "status.nominatedNodeName" => str_at(obj, "/status/nominatedNodeName").to_string(),
            _ => String::new(),
        },
        ("", "nodes") => match field {
            "spec.unschedulable" => bool_at(obj, "/spec/unschedulable"),
            _ => String::new(),
        },
        ("", "replicationcontrollers") => match field {
            "status.replicas" => int_at(obj, "/status/replicas"),
            _ => String::new(),
        },
        ("" | "events.k8s.io", "events") => event_field(obj, field),
        ("", "namespaces") => match field {
            "status.phase" => str_at(obj, "/status/phase").to_string(),
            _ => String::new(),
        },
        ("", "secrets") => match field {
            "type" => str_at(obj, "/type").to_string(),
            _ => String::new(),
        },
        ("", "services") => match field {
            "spec.clusterIP" => str_at(obj, "/spec/clusterIP").to_string(),
            "spec.type" => str_at(obj, "/spec/type").to_string(),
            _ => String::new(),
        },
        ("batch", "jobs") => match field {
            "status.successful" => int_at(obj, "/status/succeeded"),
            _ => String::new(),
        },
        ("certificates.k8s.io", _) | ("resource.k8s.io", _) => match field {
            "spec.signerName" => str_at(obj, "/spec/signerName").to_string(),
            "spec.nodeName" => str_at(obj, "/spec/nodeName").to_string(),
            "spec.driver" => str_at(obj, "/spec/driver").to_string(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// Event fields in core/v1 terms, read from either a core/v1 or an events.k8s.io/v1 object.
fn event_field(obj: &Value, field: &str) -> String {
    let new_api = str_at(obj, "/apiVersion").starts_with("events.k8s.io/");
    let (regarding, reporting, source) = if new_api {
        ("/regarding", "/reportingController", "/deprecatedSource/component")
    } else {
        ("/involvedObject", "/reportingComponent", "/source/component")
    };
    if let Some(sub) = field.strip_prefix("involvedObject.") {
        return str_at(obj, &format!("{regarding}/{sub}")).to_string();
    }
    match field {
        "reason" => str_at(obj, "/reason").to_string(),
        "type" => str_at(obj, "/type").to_string(),
        "reportingComponent" => str_at(obj, reporting).to_string(),
        "source" => {
            let s = str_at(obj, source);
            if s.is_empty() { str_at(obj, reporting).to_string() } else { s.to_string() }
        }
        _ => String::new(),
    }
}

impl FieldSelector {
    /// Parse the `fieldSelector` syntax for `resource` in `group` (`""` for core). Syntax
    /// errors and fields the resource does not support are 400s with upstream's messages.
    pub fn parse(s: &str, group: &str, resource: &str) -> Result<Self, ApiError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut raw = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let value = unescape_value(rhs).map_err(ApiError::bad_request)?;
            raw.push((lhs, op, value));
        }
        let mut terms = Vec::with_capacity(raw.len());
        for (lhs, op, value) in raw {
            let field = convert_field_label(group, resource, lhs).map_err(ApiError::bad_request)?;
            terms.push(FieldTerm { field, op, value });
        }
        Ok(Self { terms, group: group.to_string(), resource: resource.to_string() })
    }

    /// Whether every term holds for `obj`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = selectable_field(&self.group, &self.resource, obj, &t.field);
            match t.op {
                FieldOp::Equals => have == t.value,
                FieldOp::NotEquals => have != t.value,
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// If the selector pins `metadata.name` (`metadata.name=x`), that name.
    pub fn exact_name(&self) -> Option<&str> {
        self.requires_exact_match("metadata.name")
    }

    /// If the selector pins `field` to one value with `=`/`==`, that value (the first such term).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && t.op == FieldOp::Equals).map(|t| t.value.as_str())
    }

    /// The terms, in upstream's (sorted) order, with fields in stored form.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// The canonical form (`a=b,c!=d`, values escaped).
    pub fn to_query_string(&self) -> String {
        self.terms
            .iter()
            .map(|t| {
                let op = if t.op == FieldOp::Equals { "=" } else { "!=" };
                format!("{}{op}{}", t.field, escape_value(&t.value))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel:?}"),
            Err(e) => {
                assert_eq!(e.code, 400);
                e.message
            }
        }
    }

    #[test]
    fn parses_every_operator_and_prints_canonically() {
        let s = LabelSelector::parse("x in (foo,,baz),y,z notin ()").unwrap();
        assert_eq!(s.to_query_string(), "x in (,baz,foo),y,z notin ()");
        let s = LabelSelector::parse(" b==2 , a=1, !c, d!=3, e>4, f<5 ").unwrap();
        assert_eq!(s.to_query_string(), "a=1,b==2,!c,d!=3,e>4,f<5");
        assert_eq!(LabelSelector::parse("a=").unwrap().to_query_string(), "a=");
        // `in` is a plain value inside the value context.
        assert_eq!(LabelSelector::parse("x in (in,notin)").unwrap().to_query_string(), "x in (in,notin)");
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn matching_follows_upstream() {
        let l = labels(json!({"app": "web", "tier": "fe", "n": "10"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app=db"));
        assert!(m("app in (db,web)"));
        assert!(m("missing notin (x)"));
        assert!(m("missing!=x"));
        assert!(!m("app notin (web)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("n>9") && !m("n>10") && m("n<11"));
        assert!(!m("app>1"), "non-integer label never matches gt");
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
        let obj = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(LabelSelector::parse("app=web").unwrap().matches_object(&obj));
        assert!(LabelSelector::everything().matches_object(&json!({})));
    }

    #[test]
    fn syntax_errors_use_upstream_wording() {
        assert_eq!(parse_err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(parse_err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(parse_err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(parse_err("=a"), "found '=', expected: !, identifier, or 'end of string'");
        assert_eq!(parse_err("x in (a"), "unable to parse requirement: found '', expected: ',' or ')'");
        assert_eq!(parse_err("x in a"), "unable to parse requirement: found 'a' expected: '('");
        assert_eq!(parse_err("a<=5"), "unable to parse requirement: found '=', expected: identifier");
        assert_eq!(parse_err("!a=b"), "found '=', expected: ',' or 'end of string'");
    }

    #[test]
    fn key_and_value_validation_errors() {
        assert_eq!(
            parse_err("app:monolith"),
            "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let msg = parse_err("app.kubernetes_io/name=x");
        assert!(
            msg.starts_with("unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix part a lowercase RFC 1123 subdomain must consist of"),
            "{msg}"
        );
        assert!(parse_err("a/b/c=d").contains("a qualified name must consist of"));
        assert_eq!(
            parse_err("a=b@"),
            "unable to parse requirement: values[0][a]: Invalid value: \"b@\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            parse_err("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(parse_err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 characters"));
    }

    #[test]
    fn from_label_selector_object() {
        let s = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"b": "2"},
            "matchExpressions": [
                {"key": "a", "operator": "In", "values": ["y", "x"]},
                {"key": "c", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist"},
            ]
        }))
        .unwrap();
        assert_eq!(s.to_query_string(), "a in (x,y),b=2,c,!d");
        assert!(s.matches(Some(&labels(json!({"a": "x", "b": "2", "c": ""})))));
        assert!(!s.matches(Some(&labels(json!({"a": "x", "b": "2", "c": "", "d": "1"})))));

        assert!(LabelSelector::from_label_selector(&json!({})).unwrap().is_empty());
        let nothing = LabelSelector::from_label_selector(&Value::Null).unwrap();
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(Some(&labels(json!({"a": "b"})))));

        let e = LabelSelector::from_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}))
            .unwrap_err();
        assert_eq!(e.message, "\"Gt\" is not a valid label selector operator");
        let e = LabelSelector::from_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}))
            .unwrap_err();
        assert_eq!(
            e.message,
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        let e = LabelSelector::from_label_selector(&json!({"matchLabels": {"bad key": "x"}})).unwrap_err();
        assert!(e.message.starts_with("key: Invalid value: \"bad key\": name part"), "{}", e.message);
    }

    #[test]
    fn from_map_is_an_equality_selector() {
        let s = LabelSelector::from_map(&labels(json!({"z": "1", "a": "2"})));
        assert_eq!(s.to_query_string(), "a=2,z=1");
        assert_eq!(s.requires_exact_match("z"), Some("1"));
        assert!(s.matches(Some(&labels(json!({"a": "2", "z": "1", "x": "y"})))));
        assert!(!s.matches(Some(&labels(json!({"a": "2"})))));
        assert!(LabelSelector::from_map(&Map::new()).is_empty());
    }

    #[test]
    fn field_selector_on_pod_node_name() {
        let sel = FieldSelector::parse("spec.nodeName=node-1", "", "pods").unwrap();
        let on = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"nodeName": "node-1"}});
        let off = json!({"metadata": {"name": "b", "namespace": "d"}, "spec": {}});
        assert!(sel.matches(&on));
        assert!(!sel.matches(&off));
        // kubelet/scheduler style: unscheduled pods.
        let pending = FieldSelector::parse("spec.nodeName=,status.phase!=Succeeded", "", "pods").unwrap();
        assert!(pending.matches(&off));
        assert!(!pending.matches(&on));
        // Old clients' spec.host maps to spec.nodeName.
        assert!(FieldSelector::parse("spec.host==node-1", "", "pods").unwrap().matches(&on));
        let host = json!({"spec": {}});
        assert!(FieldSelector::parse("spec.hostNetwork=false", "", "pods").unwrap().matches(&host));
        let ip = json!({"status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        assert!(FieldSelector::parse("status.podIP=10.0.0.1", "", "pods").unwrap().matches(&ip));
    }

    #[test]
    fn unsupported_fields_are_rejected_with_per_kind_messages() {
        let e = FieldSelector::parse("spec.foo=x", "", "pods").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: spec.foo"));
        let e = FieldSelector::parse("spec.replicas=1", "apps", "deployments").unwrap_err();
        assert_eq!(
            e.message,
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let e = FieldSelector::parse("status.active=1", "batch", "jobs").unwrap_err();
        assert_eq!(e.message, "field label \"status.active\" not supported for batchv1.Job");
        let e = FieldSelector::parse("metadata.namespace=x", "", "nodes").unwrap_err();
        assert_eq!(e.message, "field label not supported: metadata.namespace");
        assert!(FieldSelector::parse("metadata.name=a,metadata.namespace=b", "apps", "deployments").is_ok());
    }

    #[test]
    fn field_selector_syntax_and_escapes() {
        let e = FieldSelector::parse("metadata.name", "", "pods").unwrap_err();
        assert_eq!(e.message, "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
        let e = FieldSelector::parse("metadata.name=a\\b", "", "pods").unwrap_err();
        assert_eq!(e.message, "invalid field selector: invalid escape sequence: \\b");
        let e = FieldSelector::parse("metadata.name=a=b", "", "pods").unwrap_err();
        assert_eq!(e.message, "invalid field selector: unescaped character in value: 61");
        let sel = FieldSelector::parse("metadata.name=a\\,b\\=c", "", "pods").unwrap();
        assert_eq!(sel.exact_name(), Some("a,b=c"));
        assert_eq!(sel.to_query_string(), "metadata.name=a\\,b\\=c");
        let neg = FieldSelector::parse("metadata.name!=x", "", "pods").unwrap();
        assert_eq!(neg.exact_name(), None);
        assert!(neg.matches(&json!({"metadata": {"name": "y"}})));
        assert!(FieldSelector::parse("", "", "pods").unwrap().is_empty());
        assert!(FieldSelector::parse(",,", "", "pods").unwrap().is_empty());
    }

    #[test]
    fn event_fields_work_for_both_event_apis() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "involvedObject": {"kind": "Pod", "name": "web"},
            "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal", "reportingComponent": "kubelet"});
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"kind": "Pod", "name": "web"},
            "reason": "Started", "reportingController": "kubelet", "type": "Normal"});
        let a = FieldSelector::parse("involvedObject.name=web,source=kubelet", "", "events").unwrap();
        let b =
            FieldSelector::parse("regarding.name=web,reportingController=kubelet", "events.k8s.io", "events").unwrap();
        for obj in [&core, &new] {
            assert!(a.matches(obj), "{obj}");
            assert!(b.matches(obj), "{obj}");
        }
        assert!(!a.matches(&json!({"involvedObject": {"name": "db"}})));
        let e = FieldSelector::parse("involvedObject.name=x", "events.k8s.io", "events").unwrap_err();
        assert_eq!(e.message, "field label not supported: involvedObject.name");
    }

    #[test]
    fn other_kind_fields() {
        let secret = json!({"type": "helm.sh/release.v1", "metadata": {"name": "s"}});
        assert!(FieldSelector::parse("type=helm.sh/release.v1", "", "secrets").unwrap().matches(&secret));
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(FieldSelector::parse("spec.unschedulable=true", "", "nodes").unwrap().matches(&node));
        let job = json!({"status": {"succeeded": 2}});
        assert!(FieldSelector::parse("status.successful=2", "batch", "jobs").unwrap().matches(&job));
        let ns = json!({"status": {"phase": "Active"}});
        assert!(FieldSelector::parse("status.phase=Active", "", "namespaces").unwrap().matches(&ns));
    }
}
