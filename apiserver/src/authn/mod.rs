//! Authentication by bearer token: the pieces the apiserver's authenticator
//! chain and the TokenRequest / OIDC discovery endpoints are built from.
//!
//! - [`tokenfile`]: `--token-auth-file` (static CSV tokens).
//! - [`keys`]: the service-account signing key ([`Signer`]), kept in the data
//!   dir, and compact JWS (RS256 / ES256) signing and verification.
//! - [`serviceaccount`]: bound (TokenRequest) and legacy (Secret) service
//!   account JWTs: claims, issuing, verifying, and the user they stand for.
//! - [`discovery`]: `/.well-known/openid-configuration` and `/openid/v1/jwks`.
//! - [`tokenrequest`]: `serviceaccounts/<name>/token` request → response.
//!
//! Nothing here touches storage: checking that a token's service account (and
//! the pod / secret / node it is bound to) still exists with the same uid is
//! the caller's job, with what [`serviceaccount::Claims`] reports.

pub mod discovery;
pub mod keys;
pub mod serviceaccount;
pub mod tokenfile;
pub mod tokenrequest;

pub use discovery::{jwks, openid_configuration};
pub use keys::Signer;
pub use serviceaccount::{BoundObject, Claims, ObjectRef};
pub use tokenfile::TokenFile;
pub use tokenrequest::{TokenRequestPolicy, create_token_request};

/// Upstream's default `--service-account-issuer` (and so default API audience).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The issuer of legacy (Secret-based) service-account tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

pub(crate) fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()
}
