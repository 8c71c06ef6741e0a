//! Service-account issuer discovery (OIDC): the documents served at
//! `/.well-known/openid-configuration` and `/openid/v1/jwks`, which let
//! relying parties outside the cluster verify service-account tokens.

use super::keys::Signer;
use serde_json::{Value, json};

/// Path of the discovery document.
pub const OPENID_CONFIG_PATH: &str = "/.well-known/openid-configuration";
/// Path of the key set.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// Content type of the discovery document.
pub const OPENID_CONFIG_CONTENT_TYPE: &str = "application/json";
/// Content type of the key set.
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";
/// `Cache-Control` both documents are served with.
pub const CACHE_CONTROL: &str = "public, max-age=3600";

/// The JWKS URI when `--service-account-jwks-uri` is not set: the issuer's
/// scheme and host with path `/openid/v1/jwks`. `None` when the issuer is not
/// an `https://` URL (upstream then serves no discovery).
pub fn default_jwks_uri(issuer: &str) -> Option<String> {
    let rest = issuer.strip_prefix("https://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!host.is_empty()).then(|| format!("https://{host}{JWKS_PATH}"))
}

/// The OpenID provider configuration for `issuer`, advertising the signing
/// algorithms of `signer`'s keys.
pub fn openid_configuration(issuer: &str, jwks_uri: &str, signer: &Signer) -> Value {
    let mut algs: Vec<&str> = signer.public_keys().map(|k| k.alg.as_str()).collect();
    algs.sort_unstable();
    algs.dedup();
    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
    })
}

/// The JSON Web Key Set of every key tokens are verified with.
pub fn jwks(signer: &Signer) -> Value {
    json!({"keys": signer.public_keys().map(|k| k.jwk().clone()).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::super::keys::key_id;
    use super::*;
    use base64::Engine;

    #[test]
    fn jwks_has_the_key_with_upstream_kid() {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(dir.path()).unwrap();
        let doc = jwks(&s);
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["crv"], "P-256");
        assert_eq!(k["alg"], "ES256");
        // kid = base64url(sha256(DER SPKI)); rebuild the SPKI from x and y.
        let dec = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
        let (x, y) = (dec(&k["x"]), dec(&k["y"]));
        assert_eq!((x.len(), y.len()), (32, 32));
        let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.push(4);
        spki.extend(x);
        spki.extend(y);
        assert_eq!(k["kid"], key_id(&spki));
        assert_eq!(k["kid"], s.key_id());
        // The kid in issued tokens names this key.
        let (tok, _) = s.issue("ns", "sa", "u", s.api_audiences(), 600, None).unwrap();
        let (h, _) = super::super::keys::decode_unverified(&tok).unwrap();
        assert_eq!(h["kid"], k["kid"]);
        assert_eq!(h["alg"], "ES256");
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn openid_configuration_document() {
        let s = Signer::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let issuer = "https://kubernetes.default.svc.cluster.local";
        let uri = default_jwks_uri(issuer).unwrap();
        assert_eq!(uri, "https://kubernetes.default.svc.cluster.local/openid/v1/jwks");
        let doc = openid_configuration(issuer, &uri, &s);
        assert_eq!(
            doc,
            json!({"issuer": issuer, "jwks_uri": uri, "response_types_supported": ["id_token"],
                   "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["ES256"]})
        );
    }

    #[test]
    fn default_jwks_uri_cases() {
        assert_eq!(
            default_jwks_uri("https://example.com:8443/sub/path").unwrap(),
            "https://example.com:8443/openid/v1/jwks"
        );
        assert_eq!(default_jwks_uri("http://example.com"), None);
        assert_eq!(default_jwks_uri("kubernetes/serviceaccount"), None);
        assert_eq!(default_jwks_uri("https://"), None);
    }
}
