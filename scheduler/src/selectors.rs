//! Matching helpers the plugins share: compiled label selectors, node selector terms
//! (nodeSelector, required/preferred node affinity with `matchFields`), and taint tolerations.
//! Pure functions over k8s-openapi types; no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A compiled `metav1.LabelSelector`. `None` selects nothing (upstream's `labels.Nothing()`
/// for a nil or invalid selector); an empty requirement list selects everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector(Option<Vec<Requirement>>);

impl Selector {
    pub fn nothing() -> Self {
        Selector(None)
    }

    pub fn everything() -> Self {
        Selector(Some(Vec::new()))
    }

    /// Compile a selector; a nil selector or one with an unknown operator selects nothing.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Self {
        let Some(sel) = sel else { return Self::nothing() };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement { key: k.clone(), op: Op::In, values: vec![v.clone()] });
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return Self::nothing(),
            };
            reqs.push(Requirement { key: e.key.clone(), op, values: e.values.clone().unwrap_or_default() });
        }
        Selector(Some(reqs))
    }

    /// Add `key in (value)` requirements (topology spread `matchLabelKeys`).
    pub fn with_equal(mut self, key: &str, value: &str) -> Self {
        if let Some(reqs) = self.0.as_mut() {
            reqs.push(Requirement { key: key.to_string(), op: Op::In, values: vec![value.to_string()] });
        }
        self
    }

    pub fn is_nothing(&self) -> bool {
        self.0.is_none()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let Some(reqs) = &self.0 else { return false };
        reqs.iter().all(|r| {
            let v = labels.get(&r.key);
            match r.op {
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
    }
}

fn node_requirement_matches(r: &NodeSelectorRequirement, labels: &Labels) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let v = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => v.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => v.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (v, values) else { return false };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else { return false };
            if r.operator == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

fn field_requirement_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => values.len() == 1 && values[0] == node_name,
        "NotIn" => !(values.len() == 1 && values[0] == node_name),
        _ => false,
    }
}

/// One node selector term: all expressions and fields must match; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node_name: &str, labels: &Labels) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| node_requirement_matches(r, labels))
        && fields.iter().all(|r| field_requirement_matches(r, node_name))
}

/// Required node affinity of `pod` (nodeSelector AND any of the required terms), upstream's
/// `RequiredNodeAffinity.Match`.
pub fn pod_matches_node(pod: &Pod, node_name: &str, labels: &Labels) -> bool {
    let Some(spec) = &pod.spec else { return true };
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    match required {
        Some(req) => req.node_selector_terms.iter().any(|t| term_matches(t, node_name, labels)),
        None => true,
    }
}

/// Whether the toleration tolerates the taint (upstream's `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn first_untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration], effects: &[&str]) -> Option<&'a Taint> {
    taints.iter().find(|t| effects.contains(&t.effect.as_str()) && !tolerated(tolerations, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn nreq(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn label_selector_semantics() {
        assert!(!Selector::from_label_selector(None).matches(&labels(&[])));
        let all = Selector::from_label_selector(Some(&LabelSelector::default()));
        assert!(all.matches(&labels(&[("a", "b")])));
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let s = Selector::from_label_selector(Some(&sel));
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Bogus".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(Selector::from_label_selector(Some(&bad)).is_nothing());
    }

    #[test]
    fn node_selector_terms() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let t = |r: Vec<NodeSelectorRequirement>| NodeSelectorTerm { match_expressions: Some(r), match_fields: None };
        assert!(term_matches(&t(vec![nreq("zone", "In", &["a", "b"])]), "n1", &l));
        assert!(!term_matches(&t(vec![nreq("zone", "NotIn", &["a"])]), "n1", &l));
        assert!(term_matches(&t(vec![nreq("gpu", "DoesNotExist", &[])]), "n1", &l));
        assert!(term_matches(&t(vec![nreq("cores", "Gt", &["4"])]), "n1", &l));
        assert!(!term_matches(&t(vec![nreq("cores", "Lt", &["4"])]), "n1", &l));
        assert!(!term_matches(&t(vec![nreq("zone", "Gt", &["1"])]), "n1", &l));
        assert!(!term_matches(&NodeSelectorTerm::default(), "n1", &l));
        let f = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![nreq("metadata.name", "In", &["n1"])]),
        };
        assert!(term_matches(&f, "n1", &l));
        assert!(!term_matches(&f, "n2", &l));
    }

    #[test]
    fn toleration_matching() {
        let taint = Taint { key: "k".into(), value: Some("v".into()), effect: "NoSchedule".into(), time_added: None };
        let tol = |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        };
        assert!(tolerates(&tol(Some("k"), None, Some("v"), None), &taint));
        assert!(!tolerates(&tol(Some("k"), None, Some("w"), None), &taint));
        assert!(tolerates(&tol(Some("k"), Some("Exists"), None, Some("NoSchedule")), &taint));
        assert!(!tolerates(&tol(Some("k"), Some("Exists"), None, Some("NoExecute")), &taint));
        assert!(tolerates(&tol(None, Some("Exists"), None, None), &taint));
        assert!(first_untolerated(std::slice::from_ref(&taint), &[], &["NoSchedule"]).is_some());
        assert!(first_untolerated(std::slice::from_ref(&taint), &[], &["NoExecute"]).is_none());
    }
}
