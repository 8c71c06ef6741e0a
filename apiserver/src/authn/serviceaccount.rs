//! Service-account JWTs: bound tokens (TokenRequest API, projected volumes) and
//! legacy tokens (`kubernetes.io/service-account-token` Secrets).
//!
//! Bound tokens carry the registered claims `iss`, `sub`
//! (`system:serviceaccount:<ns>:<name>`), `aud`, `exp`, `iat`, `nbf`, `jti`
//! and a private `kubernetes.io` claim naming the namespace, the service
//! account and what the token is bound to (pod, and the pod's node; secret; or
//! node), plus `warnafter` for extended-expiry tokens. Legacy tokens carry
//! `iss: kubernetes/serviceaccount`, `sub` and flat
//! `kubernetes.io/serviceaccount/*` claims, and never expire.
//!
//! [`Signer::verify`] checks structure, issuer, signature, time (with the
//! one-minute leeway upstream allows) and audience; the caller then checks that
//! the objects named in [`Claims`] still exist with the same uids (and, for a
//! legacy token, that the Secret still holds this token).

use super::keys::Signer;
use super::{AUTHENTICATED_GROUP, LEGACY_ISSUER};
use crate::server::User;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, as upstream's JWT validation.
pub const LEEWAY_SECONDS: i64 = 60;

/// A named object with its uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

impl ObjectRef {
    pub fn new(name: impl Into<String>, uid: impl Into<String>) -> Self {
        Self { name: name.into(), uid: uid.into() }
    }
    fn to_json(&self) -> Value {
        json!({"name": self.name, "uid": self.uid})
    }
    fn from_json(v: Option<&Value>) -> Option<Self> {
        let v = v?.as_object()?;
        Some(Self {
            name: v.get("name")?.as_str()?.to_string(),
            uid: v.get("uid").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
    }
}

/// What a bound token is tied to; the token dies with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundObject {
    /// A pod, and (as upstream since 1.30) the node it is scheduled on, if any.
    Pod {
        pod: ObjectRef,
        node: Option<ObjectRef>,
    },
    Secret(ObjectRef),
    Node(ObjectRef),
}

/// The verified content of a service-account token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub issuer: String,
    pub subject: String,
    /// The token's audiences that matched the requested (or API) audiences.
    pub audiences: Vec<String>,
    pub expiry: Option<i64>,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    pub jti: Option<String>,
    pub namespace: String,
    pub service_account: ObjectRef,
    pub pod: Option<ObjectRef>,
    /// For legacy tokens: the token Secret (uid empty).
    pub secret: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
    pub warn_after: Option<i64>,
    /// A legacy (Secret-based) token.
    pub legacy: bool,
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Split a service-account username into (namespace, name).
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

impl Claims {
    pub fn username(&self) -> String {
        username(&self.namespace, &self.service_account.name)
    }

    /// The user: `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts`,
    /// `system:serviceaccounts:<ns>` and `system:authenticated`.
    pub fn user(&self) -> User {
        User {
            name: self.username(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{}", self.namespace),
                AUTHENTICATED_GROUP.to_string(),
            ],
        }
    }

    /// The user's `extra` as upstream sets it (pod / node binding, credential id).
    pub fn extra(&self) -> BTreeMap<String, Vec<String>> {
        let mut m = BTreeMap::new();
        let key = |k: &str| format!("authentication.kubernetes.io/{k}");
        if let Some(p) = &self.pod {
            m.insert(key("pod-name"), vec![p.name.clone()]);
            m.insert(key("pod-uid"), vec![p.uid.clone()]);
        }
        if let Some(n) = &self.node {
            m.insert(key("node-name"), vec![n.name.clone()]);
            m.insert(key("node-uid"), vec![n.uid.clone()]);
        }
        if let Some(j) = &self.jti {
            m.insert(key("credential-id"), vec![format!("JTI={j}")]);
        }
        m
    }
}

impl Signer {
    /// Issue a bound token; returns it and its expiry.
    pub fn issue(
        &self,
        namespace: &str,
        sa_name: &str,
        sa_uid: &str,
        audiences: &[String],
        expiration_seconds: i64,
        bound: Option<&BoundObject>,
    ) -> Result<(String, DateTime<Utc>), String> {
        self.issue_at(Utc::now().timestamp(), namespace, sa_name, sa_uid, audiences, expiration_seconds, bound, None)
    }

    /// [`Signer::issue`] at a given time, with an optional `warnafter` (the
    /// requested lifetime of a token whose expiry was extended).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_at(
        &self,
        now: i64,
        namespace: &str,
        sa_name: &str,
        sa_uid: &str,
        audiences: &[String],
        expiration_seconds: i64,
        bound: Option<&BoundObject>,
        warn_after_seconds: Option<i64>,
    ) -> Result<(String, DateTime<Utc>), String> {
        let exp = now.checked_add(expiration_seconds).ok_or("expiration out of range")?;
        let expiry = Utc.timestamp_opt(exp, 0).single().ok_or("expiration out of range")?;
        let mut k8s = Map::new();
        k8s.insert("namespace".into(), json!(namespace));
        match bound {
            Some(BoundObject::Pod { pod, node }) => {
                if let Some(n) = node {
                    k8s.insert("node".into(), n.to_json());
                }
                k8s.insert("pod".into(), pod.to_json());
            }
            Some(BoundObject::Secret(s)) => {
                k8s.insert("secret".into(), s.to_json());
            }
            Some(BoundObject::Node(n)) => {
                k8s.insert("node".into(), n.to_json());
            }
            None => {}
        }
        k8s.insert("serviceaccount".into(), ObjectRef::new(sa_name, sa_uid).to_json());
        if let Some(w) = warn_after_seconds {
            k8s.insert("warnafter".into(), json!(now.saturating_add(w)));
        }
        let claims = json!({
            "aud": audiences,
            "exp": exp,
            "iat": now,
            "iss": self.issuer(),
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": Value::Object(k8s),
            "nbf": now,
            "sub": username(namespace, sa_name),
        });
        Ok((self.sign(&claims)?, expiry))
    }

    /// Issue a legacy token for a `kubernetes.io/service-account-token` Secret.
    pub fn issue_legacy(
        &self,
        namespace: &str,
        sa_name: &str,
        sa_uid: &str,
        secret_name: &str,
    ) -> Result<String, String> {
        let claims = json!({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": sa_name,
            "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
            "sub": username(namespace, sa_name),
        });
        self.sign(&claims)
    }

    /// Verify a service-account token for `audiences` (empty: the API audiences).
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, String> {
        self.verify_at(token, audiences, Utc::now().timestamp())
    }

    /// [`Signer::verify`] at a given time.
    pub fn verify_at(&self, token: &str, audiences: &[String], now: i64) -> Result<Claims, String> {
        // As upstream, look at the issuer first: a token from another issuer is not ours to judge.
        let (_, unverified) = super::keys::decode_unverified(token)?;
        let iss = unverified.get("iss").and_then(Value::as_str).unwrap_or_default();
        let legacy = iss == LEGACY_ISSUER;
        if !legacy && !self.issuers().iter().any(|i| i == iss) {
            return Err(format!("token issuer {iss:?} is not accepted"));
        }
        let payload = self.verify_signature(token)?;

        let requested: &[String] = if audiences.is_empty() { self.api_audiences() } else { audiences };
        let token_auds = audience_list(payload.get("aud"))?;
        // Legacy tokens have no audience: they are good for the API audiences only.
        let effective: &[String] = if token_auds.is_empty() { self.api_audiences() } else { &token_auds };
        let matched: Vec<String> = effective.iter().filter(|a| requested.contains(a)).cloned().collect();
        if matched.is_empty() && !self.api_audiences().is_empty() {
            return Err(format!("token audiences {effective:?} is invalid for the target audiences {requested:?}"));
        }

        let num = |k: &str| -> Result<Option<i64>, String> {
            match payload.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| format!("invalid {k} claim")),
            }
        };
        let (exp, iat, nbf) = (num("exp")?, num("iat")?, num("nbf")?);
        if exp.is_some_and(|e| now.saturating_sub(LEEWAY_SECONDS) > e) {
            return Err("service account token has expired".into());
        }
        if nbf.is_some_and(|n| now.saturating_add(LEEWAY_SECONDS) < n) {
            return Err("service account token is not valid yet".into());
        }
        if iat.is_some_and(|i| now.saturating_add(LEEWAY_SECONDS) < i) {
            return Err("service account token is issued in the future".into());
        }
        let subject = payload.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
        let jti = payload.get("jti").and_then(Value::as_str).map(str::to_string);
        let mut claims = Claims {
            issuer: iss.to_string(),
            subject,
            audiences: matched,
            expiry: exp,
            issued_at: iat,
            not_before: nbf,
            jti,
            namespace: String::new(),
            service_account: ObjectRef::default(),
            pod: None,
            secret: None,
            node: None,
            warn_after: None,
            legacy,
        };
        if legacy {
            let s = |k: &str| -> Result<String, String> {
                match payload.get(format!("kubernetes.io/serviceaccount/{k}")).and_then(Value::as_str) {
                    Some(v) if !v.is_empty() => Ok(v.to_string()),
                    _ => Err(format!("{k} claim is missing")),
                }
            };
            claims.namespace = s("namespace")?;
            claims.secret = Some(ObjectRef::new(s("secret.name")?, ""));
            claims.service_account = ObjectRef::new(s("service-account.name")?, s("service-account.uid")?);
        } else {
            let k8s = payload
                .get("kubernetes.io")
                .and_then(Value::as_object)
                .ok_or("service account token claims could not be validated: missing kubernetes.io claim")?;
            claims.namespace = k8s.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
            claims.service_account = ObjectRef::from_json(k8s.get("serviceaccount")).unwrap_or_default();
            if claims.namespace.is_empty() || claims.service_account.name.is_empty() {
                return Err(
                    "service account token claims could not be validated: incomplete kubernetes.io claim".into()
                );
            }
            claims.pod = ObjectRef::from_json(k8s.get("pod"));
            claims.secret = ObjectRef::from_json(k8s.get("secret"));
            claims.node = ObjectRef::from_json(k8s.get("node"));
            claims.warn_after = k8s.get("warnafter").and_then(Value::as_i64);
        }
        if split_username(&claims.subject) != Some((claims.namespace.as_str(), claims.service_account.name.as_str())) {
            return Err("sub claim does not match the service account claims".into());
        }
        Ok(claims)
    }
}

fn audience_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_str().map(str::to_string).ok_or_else(|| "invalid aud claim".to_string())).collect()
        }
        Some(_) => Err("invalid aud claim".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::b64url;
    use super::*;

    fn signer() -> Signer {
        Signer::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
    }

    fn auds(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn payload(token: &str) -> Value {
        super::super::keys::decode_unverified(token).unwrap().1
    }

    #[test]
    fn bound_token_round_trip_and_claims_shape() {
        let s = signer();
        let bound = BoundObject::Pod {
            pod: ObjectRef::new("web-0", "pod-uid"),
            node: Some(ObjectRef::new("node-a", "node-uid")),
        };
        let (tok, exp) = s.issue("ns1", "builder", "sa-uid", &auds(&["api"]), 3600, Some(&bound)).unwrap();
        let p = payload(&tok);
        assert_eq!(p["iss"], "https://kubernetes.default.svc.cluster.local");
        assert_eq!(p["sub"], "system:serviceaccount:ns1:builder");
        assert_eq!(p["aud"], json!(["api"]));
        assert_eq!(p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(), 3600);
        assert_eq!(p["nbf"], p["iat"]);
        assert_eq!(exp.timestamp(), p["exp"].as_i64().unwrap());
        assert_eq!(p["jti"].as_str().unwrap().len(), 36);
        assert_eq!(
            p["kubernetes.io"],
            json!({"namespace": "ns1", "serviceaccount": {"name": "builder", "uid": "sa-uid"},
                   "pod": {"name": "web-0", "uid": "pod-uid"}, "node": {"name": "node-a", "uid": "node-uid"}})
        );

        let c = s.verify(&tok, &auds(&["other", "api"])).unwrap();
        assert!(!c.legacy);
        assert_eq!(c.audiences, auds(&["api"]));
        assert_eq!(c.namespace, "ns1");
        assert_eq!(c.service_account, ObjectRef::new("builder", "sa-uid"));
        assert_eq!(c.pod, Some(ObjectRef::new("web-0", "pod-uid")));
        assert_eq!(c.node, Some(ObjectRef::new("node-a", "node-uid")));
        let u = c.user();
        assert_eq!(u.name, "system:serviceaccount:ns1:builder");
        assert_eq!(u.groups, vec!["system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"]);
        let extra = c.extra();
        assert_eq!(extra["authentication.kubernetes.io/pod-name"], vec!["web-0"]);
        assert_eq!(extra["authentication.kubernetes.io/node-uid"], vec!["node-uid"]);
        assert!(extra["authentication.kubernetes.io/credential-id"][0].starts_with("JTI="));
    }

    #[test]
    fn default_audience_is_the_issuer() {
        let s = signer();
        let (tok, _) = s.issue("ns", "sa", "u", s.api_audiences(), 600, None).unwrap();
        assert_eq!(payload(&tok)["aud"], json!(["https://kubernetes.default.svc.cluster.local"]));
        assert!(s.verify(&tok, &[]).is_ok());
        assert!(payload(&tok)["kubernetes.io"].get("pod").is_none());
    }

    #[test]
    fn wrong_audience_rejected() {
        let s = signer();
        let (tok, _) = s.issue("ns", "sa", "u", &auds(&["vault"]), 600, None).unwrap();
        let e = s.verify(&tok, &[]).unwrap_err();
        assert!(e.contains("invalid for the target audiences"), "{e}");
        assert!(s.verify(&tok, &auds(&["vault"])).is_ok());
    }

    #[test]
    fn expiry_and_not_before_with_leeway() {
        let s = signer();
        let t0 = 1_700_000_000;
        let (tok, _) = s.issue_at(t0, "ns", "sa", "u", s.api_audiences(), 600, None, None).unwrap();
        assert!(s.verify_at(&tok, &[], t0 + 300).is_ok());
        assert!(s.verify_at(&tok, &[], t0 + 600 + LEEWAY_SECONDS).is_ok());
        assert_eq!(
            s.verify_at(&tok, &[], t0 + 600 + LEEWAY_SECONDS + 1).unwrap_err(),
            "service account token has expired"
        );
        assert!(s.verify_at(&tok, &[], t0 - LEEWAY_SECONDS).is_ok());
        assert!(s.verify_at(&tok, &[], t0 - LEEWAY_SECONDS - 1).unwrap_err().contains("not valid yet"));
    }

    #[test]
    fn warn_after_and_secret_binding() {
        let s = signer();
        let t0 = 1_700_000_000;
        let b = BoundObject::Secret(ObjectRef::new("sec", "sec-uid"));
        let (tok, exp) = s.issue_at(t0, "ns", "sa", "u", s.api_audiences(), 31_536_000, Some(&b), Some(3607)).unwrap();
        assert_eq!(exp.timestamp(), t0 + 31_536_000);
        let c = s.verify_at(&tok, &[], t0 + 7200).unwrap();
        assert_eq!(c.warn_after, Some(t0 + 3607));
        assert_eq!(c.secret, Some(ObjectRef::new("sec", "sec-uid")));
        assert!(c.pod.is_none());
    }

    #[test]
    fn tampered_token_rejected() {
        let s = signer();
        let (tok, _) = s.issue("ns", "sa", "u", s.api_audiences(), 600, None).unwrap();
        let parts: Vec<&str> = tok.split('.').collect();
        let mut p = payload(&tok);
        p["kubernetes.io"]["namespace"] = json!("kube-system");
        p["sub"] = json!("system:serviceaccount:kube-system:sa");
        let forged = format!("{}.{}.{}", parts[0], b64url(p.to_string().as_bytes()), parts[2]);
        assert_eq!(s.verify(&forged, &[]).unwrap_err(), "invalid signature");
        // Another signer's token with our issuer.
        let (other, _) = signer().issue("ns", "sa", "u", s.api_audiences(), 600, None).unwrap();
        assert!(s.verify(&other, &[]).is_err());
        // Unknown issuer.
        let s2 = signer().with_issuers(auds(&["https://elsewhere"]));
        assert!(s2.verify(&tok, &[]).unwrap_err().contains("issuer"));
    }

    #[test]
    fn subject_must_match_private_claims() {
        let s = signer();
        let claims = json!({"iss": s.issuer(), "sub": "system:serviceaccount:kube-system:admin",
            "aud": s.api_audiences(), "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u"}}});
        let tok = s.sign(&claims).unwrap();
        assert!(s.verify(&tok, &[]).unwrap_err().contains("sub claim"));
        let no_private =
            s.sign(&json!({"iss": s.issuer(), "sub": "system:serviceaccount:a:b", "aud": s.api_audiences()})).unwrap();
        assert!(s.verify(&no_private, &[]).is_err());
    }

    #[test]
    fn legacy_token_round_trip() {
        let s = signer();
        let tok = s.issue_legacy("default", "deployer", "sa-uid", "deployer-token-abcde").unwrap();
        let p = payload(&tok);
        assert_eq!(p["iss"], "kubernetes/serviceaccount");
        assert_eq!(p["kubernetes.io/serviceaccount/secret.name"], "deployer-token-abcde");
        assert_eq!(p["kubernetes.io/serviceaccount/service-account.uid"], "sa-uid");
        assert!(p.get("exp").is_none() && p.get("aud").is_none());
        let c = s.verify(&tok, &[]).unwrap();
        assert!(c.legacy);
        assert_eq!(c.secret, Some(ObjectRef::new("deployer-token-abcde", "")));
        assert_eq!(c.service_account, ObjectRef::new("deployer", "sa-uid"));
        assert_eq!(c.audiences, s.api_audiences().to_vec());
        assert_eq!(c.user().name, "system:serviceaccount:default:deployer");
        // Legacy tokens are only good for the API audiences.
        assert!(s.verify(&tok, &auds(&["vault"])).is_err());
        // Missing claims fail.
        let bad = s
            .sign(&json!({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:a:b",
            "kubernetes.io/serviceaccount/namespace": "a"}))
            .unwrap();
        assert!(s.verify(&bad, &[]).unwrap_err().contains("claim is missing"));
    }

    #[test]
    fn custom_issuers_and_audiences() {
        let s = signer().with_issuers(auds(&["https://new", "https://old"]));
        assert_eq!(s.api_audiences(), auds(&["https://new", "https://old"]).as_slice());
        let (tok, _) = s.issue("ns", "sa", "u", s.api_audiences(), 600, None).unwrap();
        assert_eq!(payload(&tok)["iss"], "https://new");
        let old = s
            .sign(&json!({"iss": "https://old", "sub": "system:serviceaccount:ns:sa", "aud": "https://old",
            "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u"}}}))
            .unwrap();
        let c = s.verify(&old, &[]).unwrap();
        assert_eq!(c.audiences, auds(&["https://old"]));
        let s = s.with_api_audiences(auds(&["api"]));
        assert!(s.verify(&old, &[]).is_err());
    }

    #[test]
    fn username_split() {
        assert_eq!(split_username("system:serviceaccount:ns:n"), Some(("ns", "n")));
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("system:serviceaccount:ns:a:b"), None);
        assert_eq!(split_username("alice"), None);
    }
}
