//! Field paths and field sets (structured-merge-diff's `fieldpath`), and their
//! `FieldsV1` encoding as stored in `metadata.managedFields[].fieldsV1`:
//! `f:<field>`, `k:<json object of key fields, sorted by name>`, `v:<json value>`,
//! `i:<index>`, and `.` for "this node itself" when it also has children.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// One step in a path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A struct field or map key.
    Field(String),
    /// A list-map item, by its key fields (sorted by name).
    Key(Vec<(String, Value)>),
    /// A set item, by value.
    Value(Value),
    /// A list item by position.
    Index(usize),
}

/// Total order on JSON values as SMD's `value.Compare`: numbers (ints and
/// floats compared numerically) < strings < bools < lists < maps < null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (f, g) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                f.partial_cmp(&g).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            // serde_json maps iterate in key order.
            for ((k1, v1), (k2, v2)) in x.iter().zip(y) {
                let c = k1.cmp(k2).then_with(|| compare_values(v1, v2));
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        use PathElement::*;
        fn rank(p: &PathElement) -> u8 {
            match p {
                Field(_) => 0,
                Key(_) => 1,
                Value(_) => 2,
                Index(_) => 3,
            }
        }
        match (self, other) {
            (Field(a), Field(b)) => a.cmp(b),
            (Key(a), Key(b)) => {
                for ((n1, v1), (n2, v2)) in a.iter().zip(b) {
                    let c = n1.cmp(n2).then_with(|| compare_values(v1, v2));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Value(a), Value(b)) => compare_values(a, b),
            (Index(a), Index(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}
impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for PathElement {}

/// Go's `%q`-style rendering of a scalar as SMD's `value.ToString`.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

impl std::fmt::Display for PathElement {
    /// `.name`, `[name="x",port=80]`, `[=value]`, `[3]` as upstream prints paths in conflicts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(k) => {
                let parts: Vec<String> = k.iter().map(|(n, v)| format!("{n}={}", value_to_string(v))).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_to_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path rendered as upstream (`.spec.containers[name="app"].image`).
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

impl PathElement {
    /// The FieldsV1 key of this element (`f:x`, `k:{...}`, `v:...`, `i:0`).
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(k) => {
                let body: Vec<String> = k.iter().map(|(n, v)| format!("{}:{}", Value::String(n.clone()), v)).collect();
                format!("k:{{{}}}", body.join(","))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parse a FieldsV1 key.
    pub fn from_fields_v1_key(s: &str) -> Result<Self, String> {
        let (kind, rest) = s.split_at_checked(2).ok_or_else(|| format!("invalid path element {s:?}"))?;
        match kind {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "k:" => {
                let v: Value = serde_json::from_str(rest).map_err(|e| format!("invalid key {rest:?}: {e}"))?;
                let Value::Object(m) = v else { return Err(format!("key must be a JSON object: {rest:?}")) };
                // serde_json maps are sorted by name, as SMD sorts key fields.
                Ok(PathElement::Key(m.into_iter().collect()))
            }
            "v:" => {
                serde_json::from_str(rest).map(PathElement::Value).map_err(|e| format!("invalid value {rest:?}: {e}"))
            }
            "i:" => rest.parse().map(PathElement::Index).map_err(|_| format!("invalid index {rest:?}")),
            _ => Err(format!("unknown path element type {s:?}")),
        }
    }
}

/// A set of paths, stored as a trie: `members` end here, `children` continue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// The subset under `pe` (paths relative to it).
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    pub fn union_with(&mut self, other: &Set) {
        self.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            match self.children.get_mut(pe) {
                Some(mine) => mine.union_with(c),
                None => {
                    self.children.insert(pe.clone(), c.clone());
                }
            }
        }
    }

    /// Paths in `self` that are not in `other` (exact paths; descendants kept).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.iter().filter(|m| !other.members.contains(m)).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                children.insert(pe.clone(), d);
            }
        }
        Set { members, children }
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.iter().filter(|m| other.members.contains(m)).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    children.insert(pe.clone(), i);
                }
            }
        }
        Set { members, children }
    }

    /// Paths in `self` that are neither in `other` nor below one of its paths.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.iter().filter(|m| !other.members.contains(m)).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let d = match other.children.get(pe) {
                Some(o) => c.recursive_difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                children.insert(pe.clone(), d);
            }
        }
        Set { members, children }
    }

    /// Every path, members of a node before its children, in element order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub(crate) fn child_mut(&mut self, pe: PathElement) -> &mut Set {
        self.children.entry(pe).or_default()
    }

    /// The FieldsV1 JSON object of this set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_map(false))
    }

    fn fields_v1_map(&self, include_self: bool) -> Map<String, Value> {
        let mut m = Map::new();
        if include_self {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                m.insert(pe.to_fields_v1_key(), Value::Object(Map::new()));
            }
        }
        for (pe, c) in &self.children {
            let is_member = self.members.contains(pe);
            m.insert(pe.to_fields_v1_key(), Value::Object(c.fields_v1_map(is_member)));
        }
        m
    }

    /// FieldsV1 as upstream serializes it: entries in path-element order
    /// (`.` first, then fields, keys, values, indexes), no whitespace.
    pub fn to_fields_v1_string(&self) -> String {
        let mut s = String::new();
        self.write_v1(false, &mut s);
        s
    }

    fn write_v1(&self, include_self: bool, s: &mut String) {
        s.push('{');
        let mut first = true;
        let mut sep = |s: &mut String| {
            if !first {
                s.push(',');
            }
            first = false;
        };
        if include_self {
            sep(s);
            s.push_str("\".\":{}");
        }
        // Members and children merged in element order.
        let mut all: BTreeSet<&PathElement> = self.members.iter().collect();
        all.extend(self.children.keys());
        for pe in all {
            sep(s);
            s.push_str(&Value::String(pe.to_fields_v1_key()).to_string());
            s.push(':');
            match self.children.get(pe) {
                Some(c) => c.write_v1(self.members.contains(pe), s),
                None => s.push_str("{}"),
            }
        }
        s.push('}');
    }

    /// Parse a FieldsV1 JSON object.
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(m) = v else { return Err("FieldsV1 must be a JSON object".into()) };
        let mut set = Set::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::from_fields_v1_key(k)?;
            let Value::Object(cm) = child else { return Err(format!("{k}: expected an object")) };
            if cm.is_empty() {
                set.members.insert(pe);
                continue;
            }
            if cm.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let c = Set::from_fields_v1(child)?;
            if !c.is_empty() {
                set.children.insert(pe, c);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElement {
        PathElement::Field(n.into())
    }

    // A real managedFields entry written by kubectl for a Deployment (upstream
    // docs, "Server-Side Apply"), and one written by a controller.
    const UPSTREAM: &str = r#"{"f:metadata":{"f:annotations":{},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}}}}}}}}"#;

    #[test]
    fn fields_v1_round_trip_upstream_example() {
        let v: Value = serde_json::from_str(UPSTREAM).unwrap();
        let set = Set::from_fields_v1(&v).unwrap();
        let img = vec![
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            PathElement::Key(vec![("name".into(), json!("nginx"))]),
            f("image"),
        ];
        assert!(set.has(&img));
        assert_eq!(path_string(&img), r#".spec.template.spec.containers[name="nginx"].image"#);
        let port = PathElement::Key(vec![("containerPort".into(), json!(80)), ("protocol".into(), json!("TCP"))]);
        assert_eq!(port.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
        // f:labels is both a member (".") and a parent.
        assert!(set.has(&[f("metadata"), f("labels")]));
        assert!(!set.has(&[f("metadata")]));
        assert_eq!(set.to_fields_v1(), v);
        // Upstream's byte encoding, which is ordered by element, here equals the input.
        assert_eq!(set.to_fields_v1_string(), UPSTREAM);
    }

    #[test]
    fn element_order_and_value_keys() {
        let mut s = Set::new();
        s.insert(&[f("finalizers"), PathElement::Value(json!("b"))]);
        s.insert(&[f("finalizers"), PathElement::Value(json!("a"))]);
        s.insert(&[f("ports"), PathElement::Key(vec![("port".into(), json!(443))])]);
        s.insert(&[f("ports"), PathElement::Key(vec![("port".into(), json!(80))])]);
        s.insert(&[f("args"), PathElement::Index(2)]);
        assert_eq!(
            s.to_fields_v1_string(),
            r#"{"f:args":{"i:2":{}},"f:finalizers":{"v:\"a\"":{},"v:\"b\"":{}},"f:ports":{"k:{\"port\":80}":{},"k:{\"port\":443}":{}}}"#
        );
        let back = Set::from_fields_v1(&s.to_fields_v1()).unwrap();
        assert_eq!(back, s);
        assert!(Set::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:notjson": {}})).is_err());
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        a.insert(&[f("d")]);
        let mut b = Set::new();
        b.insert(&[f("a"), f("b")]);
        b.insert(&[f("a")]);
        let d = a.difference(&b);
        assert!(!d.has(&[f("a"), f("b")]) && d.has(&[f("a"), f("c")]) && d.has(&[f("d")]));
        let r = a.recursive_difference(&b);
        assert!(!r.has(&[f("a"), f("c")]) && r.has(&[f("d")]));
        let i = a.intersection(&b);
        assert_eq!(i.paths(), vec![vec![f("a"), f("b")]]);
        assert_eq!(a.union(&b).paths().len(), 4);
    }
}
