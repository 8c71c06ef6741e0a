//! The review APIs that answer questions instead of storing objects:
//! SelfSubjectReview (`kubectl auth whoami`), the access reviews
//! (`kubectl auth can-i`), and TokenReview. Authorization is AlwaysAllow
//! today (every authenticated user may do everything), so access reviews
//! answer `allowed: true` with that reason.

use crate::http::{self, Body};
use crate::rest::{Req, decode_body};
use crate::server::{Server, User, not_found_path};
use ::http::{Response, StatusCode};
use rkube_registry::ApiError;
use serde_json::{Value, json};

impl Server {
    pub(crate) async fn review(&self, req: &Req) -> Result<Response<Body>, ApiError> {
        if req.verb != crate::request::Verb::Create {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let mut body = decode_body(req)?;
        let api_version = req.info.api_version();
        body["apiVersion"] = json!(api_version);
        body["kind"] = json!(req.info.kind);
        match req.info.resource {
            "selfsubjectreviews" => {
                body["status"] = json!({"userInfo": {"username": req.user.name, "groups": req.user.groups}});
            }
            "selfsubjectaccessreviews" | "subjectaccessreviews" | "localsubjectaccessreviews" => {
                let who = if req.info.resource == "selfsubjectaccessreviews" {
                    req.user.clone()
                } else {
                    let groups = body
                        .pointer("/spec/groups")
                        .and_then(Value::as_array)
                        .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default();
                    User { name: body.pointer("/spec/user").and_then(Value::as_str).unwrap_or("").to_string(), groups }
                };
                let spec = body.get("spec").cloned().unwrap_or(json!({}));
                let a = match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
                    (Some(r), _) => {
                        let s = |k: &str| r.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
                        let ns =
                            if req.info.resource == "localsubjectaccessreviews" { req.ns() } else { s("namespace") };
                        crate::authz::resource_attributes(
                            &who,
                            s("verb").unwrap_or(""),
                            ns,
                            s("group").unwrap_or(""),
                            s("resource").unwrap_or(""),
                            s("subresource"),
                            s("name"),
                        )
                    }
                    (None, Some(n)) => crate::authz::path_attributes(
                        &who,
                        n.get("verb").and_then(Value::as_str).unwrap_or(""),
                        n.get("path").and_then(Value::as_str).unwrap_or(""),
                    ),
                    (None, None) => {
                        return Err(ApiError::bad_request(
                            "exactly one of resourceAttributes or nonResourceAttributes must be specified",
                        ));
                    }
                };
                let (allowed, reason) = self.review_access(&a).await;
                body["status"] = json!({"allowed": allowed, "reason": reason});
            }
            "selfsubjectrulesreviews" => {
                let ns = body.pointer("/spec/namespace").and_then(Value::as_str).unwrap_or("").to_string();
                body["status"] = match self.rbac_policy().await {
                    Some(p) => {
                        let (res, non, incomplete) = p.rules_for(&req.user.name, &req.user.groups, &ns);
                        json!({"resourceRules": res, "nonResourceRules": non, "incomplete": incomplete})
                    }
                    None => json!({
                        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                        "incomplete": false,
                    }),
                };
            }
            "tokenreviews" => {
                let token = body.pointer("/spec/token").and_then(Value::as_str).unwrap_or("").to_string();
                let user = self.authenticate_bearer(&token).await;
                body["status"] = match user {
                    Some(u) => json!({"authenticated": true, "user": {"username": u.name, "groups": u.groups}}),
                    None => json!({"authenticated": false, "error": "invalid bearer token"}),
                };
            }
            _ => return Err(not_found_path()),
        }
        Ok(http::json(StatusCode::CREATED, &body))
    }

    /// `serviceaccounts/<name>/token`: a bound, expiring ServiceAccount token (`kubectl create token`).
    pub(crate) async fn token_request(&self, req: &Req) -> Result<Response<Body>, ApiError> {
        let ns = req.ns().unwrap_or("");
        let name = req.name();
        let sas = rkube_registry::resources::lookup("", "v1", "serviceaccounts").ok_or_else(not_found_path)?;
        let sa = self.get_object(sas, &req.path, Some(ns), name, &req.query).await?;
        let uid = sa.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
        let signer = self
            .tokens()
            .and_then(|t| t.signer.as_ref())
            .ok_or_else(|| ApiError::internal("no service account signing key configured"))?;
        let body = decode_body(req)?;
        let spec = crate::authn::tokenrequest::parse_token_request(&body, ns, name)?;
        let bound = match &spec.bound_object_ref {
            Some(r) => Some(self.bound_object(r, ns, name).await?),
            None => None,
        };
        let out =
            crate::authn::create_token_request(signer, &body, ns, name, &uid, bound.as_ref(), &Default::default())?;
        Ok(http::json(StatusCode::CREATED, &out))
    }

    /// The object a TokenRequest binds its token to: it must exist (404),
    /// have the uid the request names (409), and a pod must run as the
    /// ServiceAccount asking (400). A pod's node is bound too when it has one.
    async fn bound_object(
        &self,
        r: &crate::authn::tokenrequest::BoundObjectRef,
        ns: &str,
        sa: &str,
    ) -> Result<crate::authn::BoundObject, ApiError> {
        use crate::authn::{BoundObject, ObjectRef};
        let resource = match r.kind.as_str() {
            "Pod" => "pods",
            "Secret" => "secrets",
            _ => "nodes",
        };
        let info = rkube_registry::resources::lookup("", "v1", resource).ok_or_else(not_found_path)?;
        let obj_ns = (resource != "nodes").then_some(ns);
        let key = crate::objects::key(info, obj_ns, &r.name);
        let get = |key: String| async move {
            let kv = self.store.get(&key).await.map_err(crate::server::store_error)?;
            Ok::<_, ApiError>(kv.and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok()))
        };
        let obj = get(key).await?.ok_or_else(|| ApiError::not_found("", resource, &r.name))?;
        let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        crate::authn::tokenrequest::check_bound_uid(r, uid)?;
        let this = ObjectRef::new(r.name.clone(), uid);
        Ok(match resource {
            "pods" => {
                let pod_sa = obj.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
                if pod_sa != sa {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount \"{sa}\" to pod running with different serviceaccount name."
                    )));
                }
                let node = match obj.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                    Some(n) => {
                        let node = get(format!("/registry/nodes/{n}")).await?;
                        node.map(|o| {
                            ObjectRef::new(n, o.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or(""))
                        })
                    }
                    None => None,
                };
                BoundObject::Pod { pod: this, node }
            }
            "secrets" => BoundObject::Secret(this),
            _ => BoundObject::Node(this),
        })
    }
}

const SECRETS_PREFIX: &str = "/registry/secrets/";
const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

impl Server {
    /// Upstream's token controller for legacy ServiceAccount token Secrets:
    /// a Secret of type `kubernetes.io/service-account-token` naming a
    /// ServiceAccount gets `data.token` (a legacy JWT), `ca.crt` and
    /// `namespace`. Runs inside the apiserver, which holds the signing key.
    pub fn spawn_token_controller(self: &std::sync::Arc<Self>, ca_pem: String) -> tokio::task::JoinHandle<()> {
        let server = std::sync::Arc::downgrade(self);
        let watcher = self.cache.watch(SECRETS_PREFIX, 0);
        tokio::spawn(async move {
            let Ok(mut w) = watcher else { return };
            loop {
                if let Some(s) = server.upgrade() {
                    s.fill_token_secrets(&ca_pem).await;
                }
                if w.next().await.is_none() {
                    return;
                }
            }
        })
    }

    async fn fill_token_secrets(&self, ca_pem: &str) {
        use base64::Engine;
        let Some(signer) = self.tokens().and_then(|t| t.signer.as_ref()) else { return };
        let Ok((secrets, _)) = self.cache.list(SECRETS_PREFIX, 0).await else { return };
        let Some(info) = rkube_registry::resources::lookup("", "v1", "secrets") else { return };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for s in secrets {
            let obj = &s.object();
            if obj.get("type").and_then(Value::as_str) != Some(SA_TOKEN_TYPE)
                || obj.pointer("/data/token").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
            {
                continue;
            }
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
            let name = crate::objects::name(obj).to_string();
            let Some(sa_name) =
                obj.pointer("/metadata/annotations/kubernetes.io~1service-account.name").and_then(Value::as_str)
            else {
                continue;
            };
            let Ok(Some(kv)) = self.store.get(&format!("/registry/serviceaccounts/{ns}/{sa_name}")).await else {
                continue;
            };
            let sa: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            let uid = sa.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
            let Ok(token) = signer.issue_legacy(&ns, sa_name, &uid, &name) else { continue };
            let mut new = obj.clone();
            new["data"]["token"] = json!(b64(&token));
            new["data"]["ca.crt"] = json!(b64(ca_pem));
            new["data"]["namespace"] = json!(b64(&ns));
            new["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = json!(uid);
            let w = crate::rest::WriteOptions::internal("tokens-controller");
            let _ = self
                .update_object(info, &Default::default(), Some(&ns), &name, crate::rest::Change::Replace(new), &w)
                .await;
        }
    }
}
