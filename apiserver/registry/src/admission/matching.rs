//! Which admission requests a webhook or policy applies to: rules
//! (operations, API groups, versions, resources, scope), namespace and
//! object label selectors.

use super::AdmissionRequest;
use serde_json::{Map, Value};

/// Does any rule of `rules` (admissionregistration's RuleWithOperations list)
/// match the request? `namespaced` is the scope of the requested resource.
pub fn rules_match(rules: &Value, req: &AdmissionRequest, namespaced: bool) -> bool {
    let _ = (rules, req, namespaced);
    false
}

/// A webhook's or binding's namespaceSelector against the request's
/// namespace (its labels from `namespace_object`).
pub fn namespace_selector_matches(
    selector: Option<&Value>,
    req: &AdmissionRequest,
    namespace_object: Option<&Value>,
) -> Result<bool, String> {
    let _ = (selector, req, namespace_object);
    Ok(true)
}

/// A webhook's or binding's objectSelector against the labels of the
/// request's object or old object.
pub fn object_selector_matches(selector: Option<&Value>, req: &AdmissionRequest) -> Result<bool, String> {
    let _ = (selector, req);
    Ok(true)
}

/// A metav1.LabelSelector (matchLabels, matchExpressions) against labels.
pub fn label_selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> Result<bool, String> {
    let _ = (selector, labels);
    Ok(true)
}
