//! A small JSONPath evaluator for the expressions kubectl users write in
//! `additionalPrinterColumns` (client-go's jsonpath dialect): `.spec.replicas`,
//! `.metadata.labels.app`, `['kubernetes.io/x']`, `[0]`, `[-1]`, `[1:3]`, `[*]`, `.*`,
//! `..name` and filters such as `.status.conditions[?(@.type=="Ready")].status`.
//! Surrounding `{}` are accepted. Missing keys yield no result (AllowMissingKeys).

use serde_json::Value;

/// One step of a parsed path.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Field(String),
    /// `.*` / `[*]`
    Wildcard,
    /// `..name` (recursive descent then the field)
    Recursive(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
}

/// `[?(@.a.b OP literal)]`, or `[?(@.a.b)]` (existence) when `op` is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub path: Vec<Step>,
    pub op: Option<(String, Value)>,
}

/// A parsed JSONPath expression.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    pub steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `expr`; the error says what is wrong (for `unrecognized column definition`).
    pub fn parse(expr: &str) -> Result<Self, String> {
        let mut e = expr.trim();
        if let Some(inner) = e.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            e = inner.trim();
        }
        let e = e.strip_prefix('$').unwrap_or(e);
        let chars: Vec<char> = e.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let steps = p.steps(false)?;
        if p.i != chars.len() {
            return Err(format!("unexpected {:?} at position {} in {expr:?}", chars[p.i], p.i));
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path selects in `root`, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval(&self.steps, vec![root])
    }
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn ident(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' && self.s.get(self.i + 1).is_some() {
                out.push(self.s[self.i + 1]);
                self.i += 2;
                continue;
            }
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '$') {
                out.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        out
    }

    /// Steps until the end, or (in a filter) until an operator or `)`.
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                '.' => {
                    self.i += 1;
                    if self.peek() == Some('.') {
                        self.i += 1;
                        let name = self.ident();
                        if name.is_empty() {
                            return Err("missing field name after '..'".into());
                        }
                        steps.push(Step::Recursive(name));
                    } else if self.peek() == Some('*') {
                        self.i += 1;
                        steps.push(Step::Wildcard);
                    } else {
                        let name = self.ident();
                        if !name.is_empty() {
                            steps.push(Step::Field(name));
                        }
                    }
                }
                '[' => {
                    self.i += 1;
                    steps.push(self.bracket()?);
                }
                _ if in_filter => break,
                _ => return Err(format!("unexpected {c:?} at position {}", self.i)),
            }
        }
        Ok(steps)
    }

    fn bracket(&mut self) -> Result<Step, String> {
        let close = |p: &mut Self| -> Result<(), String> {
            p.skip_ws();
            if p.peek() == Some(']') {
                p.i += 1;
                Ok(())
            } else {
                Err("missing ']'".into())
            }
        };
        self.skip_ws();
        match self.peek() {
            Some('*') => {
                self.i += 1;
                close(self)?;
                Ok(Step::Wildcard)
            }
            Some(q @ ('\'' | '"')) => {
                self.i += 1;
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    self.i += 1;
                    if c == q {
                        close(self)?;
                        return Ok(Step::Field(name));
                    }
                    name.push(c);
                }
                Err("unterminated quoted field".into())
            }
            Some('?') => {
                self.i += 1;
                self.skip_ws();
                if self.peek() != Some('(') {
                    return Err("expected '(' after '?'".into());
                }
                self.i += 1;
                self.skip_ws();
                if self.peek() != Some('@') {
                    return Err("filters must start with '@'".into());
                }
                self.i += 1;
                let path = self.steps(true)?;
                self.skip_ws();
                let mut op = None;
                if self.peek() != Some(')') {
                    let mut o = String::new();
                    while let Some(c) = self.peek().filter(|c| matches!(c, '=' | '!' | '<' | '>')) {
                        o.push(c);
                        self.i += 1;
                    }
                    if !matches!(o.as_str(), "==" | "!=" | "<" | ">" | "<=" | ">=") {
                        return Err(format!("unsupported filter operator {o:?}"));
                    }
                    self.skip_ws();
                    op = Some((o, self.literal()?));
                    self.skip_ws();
                }
                if self.peek() != Some(')') {
                    return Err("missing ')' in filter".into());
                }
                self.i += 1;
                close(self)?;
                Ok(Step::Filter(Filter { path, op }))
            }
            _ => {
                let a = self.int();
                self.skip_ws();
                if self.peek() == Some(':') {
                    self.i += 1;
                    let b = self.int();
                    self.skip_ws();
                    if self.peek() == Some(':') {
                        self.i += 1;
                        self.int();
                    }
                    close(self)?;
                    return Ok(Step::Slice(a, b));
                }
                let a = a.ok_or("expected an index")?;
                close(self)?;
                Ok(Step::Index(a))
            }
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    fn int(&mut self) -> Option<i64> {
        self.skip_ws();
        let start = self.i;
        if self.peek() == Some('-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let text: String = self.s[start..self.i].iter().collect();
        text.parse().ok()
    }

    fn literal(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.i += 1;
                let mut out = String::new();
                while let Some(c) = self.peek() {
                    self.i += 1;
                    if c == q {
                        return Ok(Value::String(out));
                    }
                    out.push(c);
                }
                Err("unterminated string literal".into())
            }
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|c| !c.is_whitespace() && c != ')') {
                    self.i += 1;
                }
                let text: String = self.s[start..self.i].iter().collect();
                match text.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    t => serde_json::from_str::<serde_json::Number>(t)
                        .map(Value::Number)
                        .map_err(|_| format!("unrecognized literal {t:?}")),
                }
            }
        }
    }
}

fn eval<'a>(steps: &[Step], mut cur: Vec<&'a Value>) -> Vec<&'a Value> {
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            apply(step, v, &mut next);
        }
        cur = next;
    }
    cur
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => {
            if let Some(x) = v.get(name.as_str()) {
                out.push(x);
            }
        }
        Step::Wildcard => match v {
            Value::Object(m) => out.extend(m.values()),
            Value::Array(a) => out.extend(a.iter()),
            _ => {}
        },
        Step::Recursive(name) => recurse(name, v, out),
        Step::Index(i) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&idx) {
                    out.push(&a[idx as usize]);
                }
            }
        }
        Step::Slice(a, b) => {
            if let Value::Array(arr) = v {
                let len = arr.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let start = a.map(norm).unwrap_or(0);
                let end = b.map(norm).unwrap_or(len);
                if start < end {
                    out.extend(arr[start as usize..end as usize].iter());
                }
            }
        }
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => Vec::new(),
            };
            for it in items {
                let found = eval(&f.path, vec![it]);
                let keep = match &f.op {
                    None => !found.is_empty(),
                    Some((op, lit)) => found.first().is_some_and(|x| compare(x, op, lit)),
                };
                if keep {
                    out.push(it);
                }
            }
        }
    }
}

fn recurse<'a>(name: &str, v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(name) {
                out.push(x);
            }
            for x in m.values() {
                recurse(name, x, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                recurse(name, x, out);
            }
        }
        _ => {}
    }
}

fn compare(x: &Value, op: &str, lit: &Value) -> bool {
    let ord = match (x, lit) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => {
            return match op {
                "==" => x == lit,
                "!=" => x != lit,
                _ => false,
            };
        }
    };
    let Some(o) = ord else { return false };
    match op {
        "==" => o.is_eq(),
        "!=" => o.is_ne(),
        "<" => o.is_lt(),
        ">" => o.is_gt(),
        "<=" => o.is_le(),
        ">=" => o.is_ge(),
        _ => false,
    }
}

/// client-go's text rendering of a selected value: strings bare, other scalars as JSON-ish
/// text, objects and arrays as JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(expr: &str, v: &Value) -> Vec<Value> {
        JsonPath::parse(expr).map(|p| p.find(v).into_iter().cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn evaluates_kubectl_style_paths() {
        let o = json!({"metadata": {"labels": {"app": "web", "kubernetes.io/os": "linux"}},
            "spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [{"type": "Progressing", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        assert_eq!(find(".spec.replicas", &o), vec![json!(3)]);
        assert_eq!(find("{.metadata.labels.app}", &o), vec![json!("web")]);
        assert_eq!(find(".metadata.labels['kubernetes.io/os']", &o), vec![json!("linux")]);
        assert_eq!(find(r".metadata.labels.kubernetes\.io/os", &o), vec![json!("linux")]);
        assert_eq!(find(".status.conditions[?(@.type==\"Ready\")].status", &o), vec![json!("False")]);
        assert_eq!(find(".status.conditions[?(@.type=='Progressing')].status", &o), vec![json!("True")]);
        assert_eq!(find(".spec.ports[*].port", &o), vec![json!(80), json!(443)]);
        assert_eq!(find(".spec.ports[0].port", &o), vec![json!(80)]);
        assert_eq!(find(".spec.ports[-1].port", &o), vec![json!(443)]);
        assert_eq!(find(".spec.ports[0:1].port", &o), vec![json!(80)]);
        assert_eq!(find(".spec.ports[?(@.port>100)].port", &o), vec![json!(443)]);
        assert_eq!(find("..port", &o), vec![json!(80), json!(443)]);
        assert!(find(".spec.missing.deeper", &o).is_empty());
        assert!(find(".spec.ports[5]", &o).is_empty());
    }

    #[test]
    fn rejects_malformed_paths() {
        assert!(JsonPath::parse(".spec[").is_err());
        assert!(JsonPath::parse(".spec[?(@.a~1)]").is_err());
        assert!(JsonPath::parse("spec oops").is_err());
    }
}
