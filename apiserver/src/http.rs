//! HTTP plumbing shared by the handlers: the response body type, reading a
//! request body with upstream's 3 MiB limit, decoding JSON/YAML, content
//! negotiation (`as=Table`, `as=PartialObjectMetadata`) and error responses.

use ::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use rkube_registry::ApiError;
use serde_json::Value;
use std::convert::Infallible;

/// Every response body: a buffer or a stream of watch frames.
pub type Body = BoxBody<Bytes, Infallible>;

/// Upstream's limit on request bodies (`MaxRequestBodyBytes`).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response from already-serialised bytes.
pub fn json_bytes(status: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    json_bytes(status, serde_json::to_vec(v).unwrap_or_default())
}

pub fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut r = Response::new(full(s));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// An error as a `Status` body with its HTTP code.
pub fn error(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(status, &e.to_status());
    if let Some(s) = e.retry_after_seconds
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Read a whole request body, at most [`MAX_BODY`] bytes (413 beyond).
pub async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY}")))
        }
        Err(e) => Err(ApiError::bad_request(format!("error reading request body: {e}"))),
    }
}

/// The body's media type without parameters, lower-cased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decode an object body: JSON, or YAML when the content type says so.
pub fn decode_object(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match ct {
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let y: serde_yaml::Value = serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")))?;
            serde_json::to_value(y).map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?
        }
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| json_error(&e))?,
        rkube_registry::proto::CONTENT_TYPE => rkube_registry::proto::decode_object(body)?,
        other => {
            return Err(unsupported_media(
                other,
                &["application/json", "application/yaml", rkube_registry::proto::CONTENT_TYPE],
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    Ok(v)
}

pub fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("the body of the request was in an unknown format: {e}"))
}

pub fn unsupported_media(_ct: &str, accepted: &[&str]) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    ))
}

/// What representation the client asked for in `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    Object,
    /// meta.k8s.io Table, with the version asked for (v1 or v1beta1)
    Table(&'static str),
    /// meta.k8s.io PartialObjectMetadata(List)
    PartialMetadata(&'static str),
}

/// Pick the first representation we can serve from `Accept`; 406 if none.
pub fn negotiate(headers: &HeaderMap) -> Result<Representation, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Representation::Object);
    };
    if accept.trim().is_empty() {
        return Ok(Representation::Object);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = val.trim(),
                    "g" => g = val.trim(),
                    "v" => v = val.trim(),
                    _ => {}
                }
            }
        }
        if !matches!(mt.as_str(), "application/json" | "*/*" | "application/*" | "application/yaml") {
            continue;
        }
        let version = match v {
            "v1" => "v1",
            "v1beta1" => "v1beta1",
            _ => "",
        };
        match (as_, g) {
            ("", _) => return Ok(Representation::Object),
            ("Table", "meta.k8s.io") if !version.is_empty() => return Ok(Representation::Table(version)),
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io") if !version.is_empty() => {
                return Ok(Representation::PartialMetadata(version));
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/yaml; the request asked for {accept}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(s: &str) -> Result<Representation, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(s).unwrap());
        negotiate(&h)
    }

    #[test]
    fn negotiates_tables_like_kubectl_asks() {
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json").unwrap(),
            Representation::Table("v1")
        );
        assert_eq!(accept("application/json").unwrap(), Representation::Object);
        assert_eq!(accept("application/vnd.kubernetes.protobuf, */*").unwrap(), Representation::Object);
        assert_eq!(accept("application/vnd.kubernetes.protobuf").unwrap_err().code, 406);
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").unwrap(),
            Representation::PartialMetadata("v1")
        );
    }

    #[test]
    fn decodes_and_rejects_bodies() {
        assert_eq!(decode_object("application/json", b"{not json").unwrap_err().code, 400);
        assert_eq!(decode_object("application/yaml", b"a: [1").unwrap_err().code, 400);
        assert_eq!(decode_object("application/yaml", b"a: 1").unwrap()["a"], 1);
        assert_eq!(decode_object("application/json", b"[1]").unwrap_err().code, 400);
        assert_eq!(decode_object("text/plain", b"{}").unwrap_err().code, 415);
    }
}
