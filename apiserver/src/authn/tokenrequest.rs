//! The TokenRequest subresource (`POST .../serviceaccounts/<name>/token`,
//! `authentication.k8s.io/v1`): request validation and defaults, and the
//! response with `status.token` and `status.expirationTimestamp`.
//!
//! The caller (the REST layer) owns the lookups: it calls
//! [`parse_token_request`], fetches the service account and the object
//! `spec.boundObjectRef` names (checking its uid with [`check_bound_uid`], and
//! for a pod that it runs as this service account), then
//! [`create_token_request`] with what it found.

use super::keys::Signer;
use super::serviceaccount::BoundObject;
use chrono::{SecondsFormat, TimeZone, Utc};
use rkube_registry::status::{ApiError, FieldError};
use serde_json::{Value, json};

pub const GROUP: &str = "authentication.k8s.io";
pub const API_VERSION: &str = "authentication.k8s.io/v1";
/// `spec.expirationSeconds` when unset.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime one can ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime one can ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime kubelet asks for on projected tokens; with expiry extension it
/// signals "issue a long-lived token, but warn when used past this age".
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
/// The extended lifetime (one year).
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;

/// Server-side token policy (`--service-account-max-token-expiration`,
/// `--service-account-extend-token-expiration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequestPolicy {
    pub max_expiration_seconds: Option<i64>,
    pub extend_expiration: bool,
}

impl Default for TokenRequestPolicy {
    fn default() -> Self {
        Self { max_expiration_seconds: None, extend_expiration: true }
    }
}

/// `spec.boundObjectRef`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundObjectRef {
    /// `Pod`, `Secret` or `Node` (already checked).
    pub kind: String,
    pub api_version: String,
    pub name: String,
    /// Empty when the request named no uid.
    pub uid: String,
}

/// A validated, defaulted TokenRequest spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequestSpec {
    /// Empty: the API audiences (filled in by [`create_token_request`]).
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub bound_object_ref: Option<BoundObjectRef>,
}

fn str_field(v: &Value, key: &str, path: &str) -> Result<String, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_request(format!("{path}.{key}: expected a string"))),
    }
}

/// Validate and default a TokenRequest body sent for service account `sa_name` in `namespace`.
pub fn parse_token_request(body: &Value, namespace: &str, sa_name: &str) -> Result<TokenRequestSpec, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body of the request was not a TokenRequest object"));
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty() && *k != "TokenRequest") {
        return Err(ApiError::bad_request(format!("expected a TokenRequest, got kind {kind:?}")));
    }
    let meta = body.get("metadata").cloned().unwrap_or(Value::Null);
    let obj_ns = str_field(&meta, "namespace", "metadata")?;
    if !obj_ns.is_empty() && obj_ns != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let obj_name = str_field(&meta, "name", "metadata")?;
    let mut errors = Vec::new();
    if !obj_name.is_empty() && obj_name != sa_name {
        errors.push(FieldError::invalid(
            "metadata.name",
            json!(obj_name),
            "must match the service account name if specified",
        ));
    }
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    if !(spec.is_object() || spec.is_null()) {
        return Err(ApiError::bad_request("spec: expected an object"));
    }
    let audiences = match spec.get("audiences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad_request("spec.audiences: expected a list of strings"))?,
        Some(_) => return Err(ApiError::bad_request("spec.audiences: expected a list of strings")),
    };
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| ApiError::bad_request("spec.expirationSeconds: expected an integer"))?,
    };
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            json!(expiration_seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            json!(expiration_seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(GROUP, "TokenRequest", sa_name, &errors));
    }
    let bound_object_ref = match spec.get("boundObjectRef") {
        None | Some(Value::Null) => None,
        Some(r) if r.is_object() => {
            let path = "spec.boundObjectRef";
            let r = BoundObjectRef {
                kind: str_field(r, "kind", path)?,
                api_version: str_field(r, "apiVersion", path)?,
                name: str_field(r, "name", path)?,
                uid: str_field(r, "uid", path)?,
            };
            let (group, version) = match r.api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", r.api_version.as_str()),
            };
            if !group.is_empty() || !matches!(r.kind.as_str(), "Pod" | "Secret" | "Node") {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={}",
                    r.kind
                )));
            }
            if r.name.is_empty() {
                return Err(ApiError::bad_request("resource name may not be empty"));
            }
            Some(r)
        }
        Some(_) => return Err(ApiError::bad_request("spec.boundObjectRef: expected an object")),
    };
    Ok(TokenRequestSpec { audiences, expiration_seconds, bound_object_ref })
}

/// 409 when the bound object's current uid is not the one the request named.
pub fn check_bound_uid(r: &BoundObjectRef, actual_uid: &str) -> Result<(), ApiError> {
    if r.uid.is_empty() || r.uid == actual_uid {
        return Ok(());
    }
    Err(ApiError::conflict(
        "",
        &r.kind,
        &r.name,
        &format!(
            "the UID in the bound object reference ({}) does not match the UID in record ({actual_uid}). \
             The object might have been deleted and then recreated",
            r.uid
        ),
    ))
}

/// Issue the token and build the TokenRequest response object.
///
/// `bound` is the object `spec.boundObjectRef` resolved to (the caller looked it up).
#[allow(clippy::too_many_arguments)]
pub fn create_token_request(
    signer: &Signer,
    body: &Value,
    namespace: &str,
    sa_name: &str,
    sa_uid: &str,
    bound: Option<&BoundObject>,
    policy: &TokenRequestPolicy,
) -> Result<Value, ApiError> {
    create_token_request_at(Utc::now().timestamp(), signer, body, namespace, sa_name, sa_uid, bound, policy)
}

/// [`create_token_request`] at a given time.
#[allow(clippy::too_many_arguments)]
pub fn create_token_request_at(
    now: i64,
    signer: &Signer,
    body: &Value,
    namespace: &str,
    sa_name: &str,
    sa_uid: &str,
    bound: Option<&BoundObject>,
    policy: &TokenRequestPolicy,
) -> Result<Value, ApiError> {
    let mut spec = parse_token_request(body, namespace, sa_name)?;
    if spec.audiences.is_empty() {
        spec.audiences = signer.api_audiences().to_vec();
    }
    if let Some(max) = policy.max_expiration_seconds.filter(|m| *m > 0) {
        spec.expiration_seconds = spec.expiration_seconds.min(max);
    }
    let mut token_lifetime = spec.expiration_seconds;
    let mut warn_after = None;
    let for_api = spec.audiences.iter().all(|a| signer.api_audiences().contains(a));
    if policy.extend_expiration
        && matches!(bound, Some(BoundObject::Pod { .. }))
        && spec.expiration_seconds == WARN_ONLY_EXPIRATION_SECONDS
        && for_api
    {
        warn_after = Some(spec.expiration_seconds);
        token_lifetime = EXTENDED_EXPIRATION_SECONDS;
    }
    let (token, _) = signer
        .issue_at(now, namespace, sa_name, sa_uid, &spec.audiences, token_lifetime, bound, warn_after)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    // Clients refresh by the requested lifetime, even when the token itself lives longer.
    let status_exp = Utc
        .timestamp_opt(now.saturating_add(spec.expiration_seconds), 0)
        .single()
        .ok_or_else(|| ApiError::internal("expiration out of range"))?;
    let mut out_spec = json!({"audiences": spec.audiences, "expirationSeconds": spec.expiration_seconds});
    if let (Some(r), Some(obj)) = (&spec.bound_object_ref, out_spec.as_object_mut()) {
        let mut rj = json!({"kind": r.kind, "apiVersion": r.api_version, "name": r.name});
        if !r.uid.is_empty() {
            rj["uid"] = json!(r.uid);
        }
        obj.insert("boundObjectRef".into(), rj);
    }
    let mut metadata = body.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({}));
    metadata["name"] = json!(sa_name);
    metadata["namespace"] = json!(namespace);
    if metadata.get("creationTimestamp").is_none() {
        metadata["creationTimestamp"] = Value::Null;
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": API_VERSION,
        "metadata": metadata,
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": status_exp.to_rfc3339_opts(SecondsFormat::Secs, true),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::super::serviceaccount::ObjectRef;
    use super::*;

    fn signer() -> Signer {
        Signer::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    const T0: i64 = 1_700_000_000;

    #[test]
    fn defaults_kubectl_create_token() {
        let s = signer();
        let body =
            json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "spec": {}});
        let pol = TokenRequestPolicy::default();
        let out = create_token_request_at(T0, &s, &body, "default", "builder", "sa-uid", None, &pol).unwrap();
        assert_eq!(out["kind"], "TokenRequest");
        assert_eq!(out["metadata"]["name"], "builder");
        assert_eq!(out["spec"]["expirationSeconds"], 3600);
        assert_eq!(out["spec"]["audiences"], json!(["https://kubernetes.default.svc.cluster.local"]));
        assert_eq!(out["status"]["expirationTimestamp"], "2023-11-14T23:13:20Z");
        let tok = out["status"]["token"].as_str().unwrap();
        let c = s.verify_at(tok, &[], T0 + 10).unwrap();
        assert_eq!(c.username(), "system:serviceaccount:default:builder");
        assert_eq!(c.expiry, Some(T0 + 3600));
    }

    #[test]
    fn expiration_bounds() {
        for (secs, msg) in
            [(599, "less than 10 minutes"), ((1i64 << 32) + 1, "larger than 2^32 seconds"), (-1, "less than 10")]
        {
            let e = parse_token_request(&json!({"spec": {"expirationSeconds": secs}}), "ns", "sa").unwrap_err();
            assert_eq!(e.code, 422);
            assert!(e.message.contains(msg), "{}", e.message);
            assert!(e.message.contains("spec.expirationSeconds"), "{}", e.message);
        }
        assert_eq!(
            parse_token_request(&json!({"spec": {"expirationSeconds": 600}}), "ns", "sa").unwrap().expiration_seconds,
            600
        );
        assert_eq!(
            parse_token_request(&json!({"spec": {"expirationSeconds": "x"}}), "ns", "sa").unwrap_err().code,
            400
        );
    }

    #[test]
    fn bound_object_ref_kinds() {
        let r =
            |kind: &str, av: &str| json!({"spec": {"boundObjectRef": {"kind": kind, "apiVersion": av, "name": "x"}}});
        for k in ["Pod", "Secret", "Node"] {
            assert!(parse_token_request(&r(k, "v1"), "ns", "sa").unwrap().bound_object_ref.is_some());
        }
        let e = parse_token_request(&r("Deployment", "apps/v1"), "ns", "sa").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "cannot bind token to object of type apps/v1, Kind=Deployment");
        assert!(parse_token_request(&r("ConfigMap", "v1"), "ns", "sa").is_err());
        let noname = json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1"}}});
        assert_eq!(parse_token_request(&noname, "ns", "sa").unwrap_err().code, 400);
    }

    #[test]
    fn metadata_must_match() {
        let e = parse_token_request(&json!({"metadata": {"namespace": "other"}}), "ns", "sa").unwrap_err();
        assert_eq!(e.code, 400);
        let e = parse_token_request(&json!({"metadata": {"name": "other"}}), "ns", "sa").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(parse_token_request(&json!({"metadata": {"name": "sa", "namespace": "ns"}}), "ns", "sa").is_ok());
        assert_eq!(parse_token_request(&json!([]), "ns", "sa").unwrap_err().code, 400);
    }

    #[test]
    fn uid_conflict() {
        let r = BoundObjectRef { kind: "Pod".into(), api_version: "v1".into(), name: "p".into(), uid: "old".into() };
        let e = check_bound_uid(&r, "new").unwrap_err();
        assert_eq!(e.code, 409);
        assert!(e.message.contains("does not match the UID in record (new)"), "{}", e.message);
        assert!(check_bound_uid(&r, "old").is_ok());
        assert!(check_bound_uid(&BoundObjectRef { uid: String::new(), ..r }, "any").is_ok());
    }

    #[test]
    fn pod_bound_kubelet_token_is_extended_with_warnafter() {
        let s = signer();
        let body = json!({"spec": {"expirationSeconds": 3607,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "pu"}}});
        let pod = BoundObject::Pod { pod: ObjectRef::new("web", "pu"), node: None };
        let pol = TokenRequestPolicy::default();
        let out = create_token_request_at(T0, &s, &body, "ns", "sa", "su", Some(&pod), &pol).unwrap();
        assert_eq!(out["spec"]["boundObjectRef"]["uid"], "pu");
        let c = s.verify_at(out["status"]["token"].as_str().unwrap(), &[], T0).unwrap();
        assert_eq!(c.expiry, Some(T0 + EXTENDED_EXPIRATION_SECONDS));
        assert_eq!(c.warn_after, Some(T0 + 3607));
        assert_eq!(c.pod, Some(ObjectRef::new("web", "pu")));
        // The status reports the requested lifetime.
        let status_exp = chrono::DateTime::parse_from_rfc3339(out["status"]["expirationTimestamp"].as_str().unwrap());
        assert_eq!(status_exp.unwrap().timestamp(), T0 + 3607);
        // Not extended without extension, for other audiences, or when not pod-bound.
        let off = TokenRequestPolicy { extend_expiration: false, ..Default::default() };
        let out = create_token_request_at(T0, &s, &body, "ns", "sa", "su", Some(&pod), &off).unwrap();
        assert_eq!(s.verify_at(out["status"]["token"].as_str().unwrap(), &[], T0).unwrap().expiry, Some(T0 + 3607));
        let body2 = json!({"spec": {"expirationSeconds": 3607, "audiences": ["vault"]}});
        let out = create_token_request_at(T0, &s, &body2, "ns", "sa", "su", Some(&pod), &pol).unwrap();
        let c = s.verify_at(out["status"]["token"].as_str().unwrap(), &["vault".to_string()], T0).unwrap();
        assert_eq!(c.expiry, Some(T0 + 3607));
    }

    #[test]
    fn max_expiration_caps() {
        let s = signer();
        let pol = TokenRequestPolicy { max_expiration_seconds: Some(7200), extend_expiration: true };
        let body = json!({"spec": {"expirationSeconds": 86400, "audiences": ["a", "b"]}});
        let out = create_token_request_at(T0, &s, &body, "ns", "sa", "su", None, &pol).unwrap();
        assert_eq!(out["spec"]["expirationSeconds"], 7200);
        assert_eq!(out["spec"]["audiences"], json!(["a", "b"]));
        let c = s.verify_at(out["status"]["token"].as_str().unwrap(), &["b".to_string()], T0).unwrap();
        assert_eq!(c.expiry, Some(T0 + 7200));
    }
}
