//! ValidatingAdmissionPolicy: CEL validations bound to requests by
//! ValidatingAdmissionPolicyBindings, and the CEL matchConditions shared
//! with admission webhooks.

use super::AdmissionRequest;
use serde_json::Value;

/// Evaluate admissionregistration `matchConditions` (a list of {name,
/// expression}) with `object`, `oldObject`, `request` (and `namespaceObject`
/// for policies) bound. Ok(true) when all are true; Ok(false) when one is
/// false; Err(message) when one fails to compile or evaluate.
pub fn match_conditions(
    conditions: &Value,
    req: &AdmissionRequest,
    namespace_object: Option<&Value>,
) -> Result<bool, String> {
    let _ = (conditions, req, namespace_object);
    Ok(true)
}
