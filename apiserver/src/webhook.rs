//! Dynamic admission webhooks (admission.k8s.io/v1): calling the webhooks of
//! MutatingWebhookConfigurations and ValidatingWebhookConfigurations with an
//! `AdmissionReview` over HTTPS and turning their answers into patches,
//! denials, warnings and audit annotations, with upstream's semantics
//! (failurePolicy, sideEffects on dry runs, timeouts, reinvocation) and
//! error wording.
//!
//! Which webhooks apply is decided by `rkube_registry::admission::matching`
//! and, for `matchConditions`, `rkube_registry::admission::policy`. The
//! [`testserver`] module runs a real HTTPS webhook in-process for tests.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rkube_registry::admission::matching::{
    is_exempt_configuration, namespace_not_found, namespace_selector_matches, object_selector_matches, rules_match,
};
use rkube_registry::admission::{AdmissionRequest, policy};
use rkube_registry::status::{ApiError, Reason, qualified};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What admission webhooks add to a request that they let through.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Warnings for the client (`Warning` headers), in webhook order.
    pub warnings: Vec<String>,
    /// Audit annotations: each webhook's `auditAnnotations` as
    /// `<webhook name>/<key>`, plus the mutation records upstream keeps.
    pub audit_annotations: Vec<(String, String)>,
}

/// Resolves a Service (`namespace`, `name`, `port`) to the `host:port` to
/// connect to (e.g. a ClusterIP or an endpoint address).
pub type ServiceResolver<'a> = &'a (dyn Fn(&str, &str, i32) -> Option<String> + Sync);

/// Largest webhook response read (upstream has no smaller limit in practice).
const MAX_RESPONSE_BYTES: usize = 32 << 20;

const MUTATION_ANNOTATION_PREFIX: &str = "mutation.webhook.admission.k8s.io/";
const MUTATING_FAILED_OPEN_PREFIX: &str = "failed-open.mutation.webhook.admission.k8s.io/";
const VALIDATING_FAILED_OPEN_PREFIX: &str = "failed-open.validating.webhook.admission.k8s.io/";

/// Calls admission webhooks. Keeps one TLS client configuration per
/// `caBundle` and idle HTTP/1.1 connections per endpoint for reuse; share
/// one Dispatcher for the whole server.
#[derive(Default)]
pub struct Dispatcher {
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
    idle: Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>,
}

/// One webhook of one configuration, in dispatch order.
struct Hook<'a> {
    configuration: &'a str,
    spec: &'a Value,
    name: &'a str,
}

impl Hook<'_> {
    fn ignore_failures(&self) -> bool {
        self.spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore")
    }
    fn timeout(&self) -> Duration {
        let secs = self.spec.get("timeoutSeconds").and_then(Value::as_i64).unwrap_or(10).clamp(1, 30);
        Duration::from_secs(secs as u64)
    }
    fn reinvoke_if_needed(&self) -> bool {
        self.spec.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded")
    }
}

/// The webhooks of `configs`, configurations sorted by name (as upstream),
/// webhooks in their listed order.
fn collect_hooks(configs: &[Value]) -> Vec<Hook<'_>> {
    let mut sorted: Vec<&Value> = configs.iter().collect();
    sorted.sort_by_key(|c| c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""));
    let mut hooks = Vec::new();
    for c in sorted {
        let configuration = c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        for spec in c.get("webhooks").and_then(Value::as_array).into_iter().flatten() {
            let name = spec.get("name").and_then(Value::as_str).unwrap_or("");
            hooks.push(Hook { configuration, spec, name });
        }
    }
    hooks
}

/// Why a call did not produce a usable answer.
enum CallError {
    /// Upstream's ErrCallingWebhook: subject to failurePolicy. Holds the
    /// reason, shown as `failed calling webhook "<name>": <reason>`.
    Calling(String),
    /// A final error: a denial, a dry-run refusal, a patch that cannot apply.
    Final(ApiError),
}

fn calling_error(name: &str, reason: &str) -> ApiError {
    let mut e = ApiError::internal(format!("failed calling webhook {name:?}: {reason}"));
    e.causes = vec![json!({ "message": e.message.trim_start_matches("Internal error occurred: ") })];
    e
}

/// The reason upstream would give a Status with this code when the webhook
/// named none we know.
fn reason_for_code(code: u16) -> Reason {
    match code {
        401 => Reason::Unauthorized,
        403 => Reason::Forbidden,
        404 => Reason::NotFound,
        405 => Reason::MethodNotAllowed,
        406 => Reason::NotAcceptable,
        409 => Reason::Conflict,
        410 => Reason::Gone,
        413 => Reason::RequestEntityTooLarge,
        415 => Reason::UnsupportedMediaType,
        422 => Reason::Invalid,
        429 => Reason::TooManyRequests,
        500 => Reason::InternalError,
        503 => Reason::ServiceUnavailable,
        504 => Reason::Timeout,
        _ => Reason::BadRequest,
    }
}

fn parse_reason(s: &str) -> Option<Reason> {
    Some(match s {
        "BadRequest" => Reason::BadRequest,
        "Unauthorized" => Reason::Unauthorized,
        "Forbidden" => Reason::Forbidden,
        "NotFound" => Reason::NotFound,
        "AlreadyExists" => Reason::AlreadyExists,
        "Conflict" => Reason::Conflict,
        "Gone" => Reason::Gone,
        "Expired" => Reason::Expired,
        "Invalid" => Reason::Invalid,
        "MethodNotAllowed" => Reason::MethodNotAllowed,
        "NotAcceptable" => Reason::NotAcceptable,
        "RequestEntityTooLarge" => Reason::RequestEntityTooLarge,
        "UnsupportedMediaType" => Reason::UnsupportedMediaType,
        "TooManyRequests" => Reason::TooManyRequests,
        "InternalError" => Reason::InternalError,
        "ServiceUnavailable" => Reason::ServiceUnavailable,
        "Timeout" => Reason::Timeout,
        _ => return None,
    })
}

/// A denial: the webhook's `status` with upstream's message prefix; codes
/// below 400 become 400.
fn denial(name: &str, status: Option<&Value>) -> ApiError {
    let empty = json!({});
    let status = status.filter(|s| s.is_object()).unwrap_or(&empty);
    let text = |k: &str| status.get(k).and_then(Value::as_str).unwrap_or("");
    let code = status.get("code").and_then(Value::as_u64).unwrap_or(0);
    let code = if (400..=599).contains(&code) { code as u16 } else { 400 };
    let denied_by = format!("admission webhook {name:?} denied the request");
    let message = if !text("message").is_empty() {
        format!("{denied_by}: {}", text("message"))
    } else if !text("reason").is_empty() {
        format!("{denied_by}: {}", text("reason"))
    } else {
        format!("{denied_by} without explanation")
    };
    let reason = parse_reason(text("reason")).unwrap_or_else(|| reason_for_code(code));
    let mut e = ApiError::new(code, reason, message);
    if let Some(d) = status.get("details").filter(|d| d.is_object()) {
        let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
        e.name = s("name");
        e.group = s("group");
        e.kind = s("kind");
        if let Some(c) = d.get("causes").and_then(Value::as_array) {
            e.causes = c.clone();
        }
        e.retry_after_seconds = d.get("retryAfterSeconds").and_then(Value::as_u64);
    }
    e
}

/// Where and how to reach a webhook.
struct Endpoint {
    /// The URL as upstream prints it in errors, with `?timeout=`.
    display_url: String,
    /// `host:port` to connect to.
    connect: String,
    /// The name the certificate must be valid for.
    server_name: String,
    /// The `Host` header.
    host: String,
    /// Path and query of the POST.
    path_and_query: String,
}

/// Go's `path.Join("/", p)`: cleaned, absolute, no trailing slash.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

fn timeout_query(t: Duration) -> String {
    format!("timeout={}s", t.as_secs())
}

/// Split `host[:port]` (IPv6 in brackets) into host and port.
fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| format!("invalid host {authority:?}"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => 443,
        Some(p) => p.parse::<u16>().map_err(|_| format!("invalid port {p:?}"))?,
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    Ok((host, port))
}

fn endpoint(hook: &Hook<'_>, resolve: ServiceResolver<'_>) -> Result<Endpoint, String> {
    let cc = hook.spec.get("clientConfig").unwrap_or(&Value::Null);
    let query = timeout_query(hook.timeout());
    if let Some(url) = cc.get("url").and_then(Value::as_str) {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.get(..8).filter(|s| s.eq_ignore_ascii_case("https://")).map(|_| &url[8..]))
            .ok_or_else(|| format!("unsupported URL {url:?}: webhooks must use https"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let path = rest[end..].split(['?', '#']).next().unwrap_or("");
        let (host, port) = split_host_port(authority)?;
        let path = clean_path(path);
        let host_fmt = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        return Ok(Endpoint {
            display_url: format!("https://{authority}{path}?{query}"),
            connect: format!("{host_fmt}:{port}"),
            server_name: host,
            host: authority.to_string(),
            path_and_query: format!("{path}?{query}"),
        });
    }
    let svc = cc.get("service").ok_or("neither url nor service is set in clientConfig")?;
    let ns = svc.get("namespace").and_then(Value::as_str).unwrap_or("");
    let name = svc.get("name").and_then(Value::as_str).unwrap_or("");
    let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443) as i32;
    let path = clean_path(svc.get("path").and_then(Value::as_str).unwrap_or(""));
    let server_name = format!("{name}.{ns}.svc");
    let host = format!("{server_name}:{port}");
    let display_url = format!("https://{host}{path}?{query}");
    let connect = resolve(ns, name, port)
        .ok_or_else(|| format!("failed to call webhook: Post {display_url:?}: service {name:?} not found"))?;
    Ok(Endpoint { display_url, connect, server_name, host, path_and_query: format!("{path}?{query}") })
}

/// The CA certificates the system trusts (used when a webhook has no caBundle).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let mut files: Vec<String> = std::env::var("SSL_CERT_FILE").into_iter().collect();
    files.extend(
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
            .map(String::from),
    );
    for f in files {
        if let Ok(data) = std::fs::read(&f) {
            for c in CertificateDer::pem_slice_iter(&data).flatten() {
                let _ = roots.add(c);
            }
            if !roots.is_empty() {
                break;
            }
        }
    }
    roots
}

/// Go's wording for a TLS failure.
fn tls_error_text(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let verify = |s: &str| format!("tls: failed to verify certificate: x509: {s}");
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            // Same-named CA that did not sign it: Go also says "unknown authority".
            C::UnknownIssuer | C::BadSignature => verify("certificate signed by unknown authority"),
            C::NotValidForName => verify("certificate is not valid for the requested name"),
            C::NotValidForNameContext { expected, presented } => {
                let names: Vec<String> = presented
                    .iter()
                    .map(|p| {
                        let inner = p.split_once('(').map(|x| x.1).unwrap_or(p).trim_end_matches(')');
                        inner.trim_matches('"').to_string()
                    })
                    .collect();
                let wanted = match expected {
                    ServerName::DnsName(d) => d.as_ref().to_string(),
                    ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                    other => format!("{other:?}"),
                };
                if names.is_empty() {
                    verify(&format!("certificate is not valid for any names, but wanted to match {wanted}"))
                } else {
                    verify(&format!("certificate is valid for {}, not {wanted}", names.join(", ")))
                }
            }
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                verify("certificate has expired or is not yet valid")
            }
            other => verify(&format!("{other:?}")),
        },
        rustls::Error::AlertReceived(a) => format!("remote error: tls: {a:?}"),
        other => format!("tls: {other}"),
    }
}

/// An HTTP answer from a webhook.
struct HttpAnswer {
    status: u16,
    text_body: bool,
    body: Bytes,
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    fn tls_config(&self, ca_bundle: &str) -> Result<Arc<rustls::ClientConfig>, String> {
        if let Ok(cache) = self.tls.lock()
            && let Some(c) = cache.get(ca_bundle)
        {
            return Ok(c.clone());
        }
        let roots = if ca_bundle.is_empty() {
            system_roots()
        } else {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca_bundle.trim())
                .map_err(|e| format!("could not get REST client: illegal base64 data in caBundle: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(
                    "could not get REST client: unable to load root certificates: unable to parse bytes as PEM block"
                        .into(),
                );
            }
            roots
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("could not get REST client: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        if let Ok(mut cache) = self.tls.lock() {
            cache.insert(ca_bundle.to_string(), cfg.clone());
        }
        Ok(cfg)
    }

    async fn connect(&self, ep: &Endpoint, tls: Arc<rustls::ClientConfig>) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect(&ep.connect).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                format!("dial tcp {}: connect: connection refused", ep.connect)
            } else if e.to_string().contains("lookup") {
                let host = split_host_port(&ep.connect).map(|h| h.0).unwrap_or_default();
                format!("dial tcp: lookup {host}: no such host")
            } else {
                format!("dial tcp {}: {e}", ep.connect)
            }
        })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(ep.server_name.clone()).map_err(|e| format!("invalid server name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| {
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(t) => tls_error_text(t),
                None => format!("tls: {e}"),
            }
        })?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn build_request(ep: &Endpoint, body: &Bytes) -> Result<hyper::Request<Full<Bytes>>, String> {
        hyper::Request::post(&ep.path_and_query)
            .header(hyper::header::HOST, &ep.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, */*")
            .body(Full::new(body.clone()))
            .map_err(|e| format!("could not get REST client: invalid webhook URL: {e}"))
    }

    async fn send_on(
        sender: &mut SendRequest<Full<Bytes>>,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<HttpAnswer, hyper::Error> {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let text_body = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/"));
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Ok(HttpAnswer { status, text_body, body })
    }

    /// POST `body` to the endpoint, reusing an idle connection when one is left.
    async fn post(&self, ep: &Endpoint, ca_bundle: &str, body: Bytes) -> Result<HttpAnswer, String> {
        let tls = self.tls_config(ca_bundle)?;
        let first = Self::build_request(ep, &body)?;
        let key = format!("{}|{}|{}", ep.connect, ep.server_name, ca_bundle);
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.get_mut(&key).and_then(Vec::pop));
        if let Some(mut sender) = pooled
            && !sender.is_closed()
            && let Ok(answer) = Self::send_on(&mut sender, first).await
        {
            self.put_idle(key, sender);
            return Ok(answer);
        }
        let mut sender = self.connect(ep, tls).await?;
        let answer = Self::send_on(&mut sender, Self::build_request(ep, &body)?)
            .await
            .map_err(|e| if e.is_incomplete_message() || e.is_closed() { "EOF".to_string() } else { e.to_string() })?;
        self.put_idle(key, sender);
        Ok(answer)
    }

    fn put_idle(&self, key: String, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            if list.len() < 8 {
                list.push(sender);
            }
        }
    }

    /// Send one AdmissionReview and check the answer; returns the response.
    async fn call(
        &self,
        hook: &Hook<'_>,
        req: &AdmissionRequest,
        mutating: bool,
        resolve: ServiceResolver<'_>,
    ) -> Result<Value, CallError> {
        if req.dry_run {
            match hook.spec.get("sideEffects").and_then(Value::as_str) {
                None => return Err(CallError::Calling("Webhook SideEffects is nil".into())),
                Some("None" | "NoneOnDryRun") => {}
                Some(_) => {
                    return Err(CallError::Final(ApiError::bad_request(format!(
                        "admission webhook {:?} does not support dry run",
                        hook.name
                    ))));
                }
            }
        }
        let versions: Vec<&str> = hook
            .spec
            .get("admissionReviewVersions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(version) = versions.iter().find(|v| **v == "v1" || **v == "v1beta1") else {
            return Err(CallError::Calling(format!(
                "could not create admission objects: webhook does not accept known AdmissionReview versions: [{}]",
                versions.join(" ")
            )));
        };
        let api_version = format!("admission.k8s.io/{version}");
        let uid = uuid::Uuid::new_v4().to_string();
        let mut request = req.to_value();
        request["uid"] = json!(uid);
        let review = json!({ "apiVersion": api_version, "kind": "AdmissionReview", "request": request });
        let body = Bytes::from(serde_json::to_vec(&review).unwrap_or_default());

        let ep = endpoint(hook, resolve).map_err(|e| {
            if e.starts_with("failed to call webhook") {
                CallError::Calling(e)
            } else {
                CallError::Calling(format!("could not get REST client: {e}"))
            }
        })?;
        let ca_bundle = hook.spec.pointer("/clientConfig/caBundle").and_then(Value::as_str).unwrap_or("");
        let post = |cause: String| format!("failed to call webhook: Post {:?}: {cause}", ep.display_url);
        let answer = match tokio::time::timeout(hook.timeout(), self.post(&ep, ca_bundle, body)).await {
            Err(_) => return Err(CallError::Calling(post("context deadline exceeded".into()))),
            Ok(Err(cause)) if cause.starts_with("could not get REST client") => {
                return Err(CallError::Calling(cause));
            }
            Ok(Err(cause)) => return Err(CallError::Calling(post(cause))),
            Ok(Ok(a)) => a,
        };
        if !(200..300).contains(&answer.status) {
            return Err(CallError::Calling(format!("failed to call webhook: {}", http_error_text(&answer))));
        }
        let review: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            CallError::Calling(format!("failed to call webhook: couldn't get version/kind; json parse error: {e}"))
        })?;
        verify_response(&review, &uid, &api_version, mutating)
            .map_err(|e| CallError::Calling(format!("received invalid webhook response: {e}")))?;
        Ok(review.get("response").cloned().unwrap_or(Value::Null))
    }

    /// Decide whether `hook` applies to the request. Errors are upstream's:
    /// a missing namespace (404), a bad selector (500), a failing match
    /// condition under failurePolicy Fail (403).
    fn should_call(
        &self,
        hook: &Hook<'_>,
        req: &AdmissionRequest,
        namespaced: bool,
        namespace_object: Option<&Value>,
    ) -> Result<bool, ApiError> {
        if !rules_match(hook.spec.get("rules").unwrap_or(&Value::Null), req, namespaced) {
            return Ok(false);
        }
        match namespace_selector_matches(hook.spec.get("namespaceSelector"), req, namespace_object) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                let missing = if req.namespace.is_empty() { &req.name } else { &req.namespace };
                if e == namespace_not_found(missing) {
                    return Err(ApiError::not_found("", "namespaces", missing));
                }
                return Err(ApiError::internal(e));
            }
        }
        match object_selector_matches(hook.spec.get("objectSelector"), req) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => return Err(ApiError::internal(e)),
        }
        match hook.spec.get("matchConditions") {
            Some(conds @ Value::Array(list)) if !list.is_empty() => match policy::match_conditions(conds, req, None) {
                Ok(m) => Ok(m),
                Err(_) if hook.ignore_failures() => Ok(false),
                Err(e) => {
                    let mut err = ApiError::forbidden(format!(
                        "{} {:?} is forbidden: {e}",
                        qualified(&req.resource, &req.group),
                        req.name
                    ));
                    err.group = Some(req.group.clone());
                    err.kind = Some(req.resource.clone());
                    err.name = Some(req.name.clone()).filter(|n| !n.is_empty());
                    Err(err)
                }
            },
            _ => Ok(true),
        }
    }

    /// Run the mutating webhooks of `configs` on `req`, applying their
    /// JSONPatches to `req.object` in order. Webhooks with
    /// `reinvocationPolicy: IfNeeded` are called once more when a later
    /// webhook changed the object. `namespaced` is the scope of the
    /// resource; `namespace_object` the request's Namespace (for
    /// namespaceSelector; None when it does not exist); `resolve` maps
    /// Services to addresses.
    pub async fn mutate(
        &self,
        configs: &[Value],
        req: &mut AdmissionRequest,
        namespaced: bool,
        namespace_object: Option<&Value>,
        resolve: ServiceResolver<'_>,
    ) -> Result<Outcome, ApiError> {
        let mut out = Outcome::default();
        if is_exempt_configuration(req) {
            return Ok(out);
        }
        let hooks = collect_hooks(configs);
        let mut previously_invoked: HashSet<usize> = HashSet::new();
        let mut reinvoke: HashSet<usize> = HashSet::new();
        let mut any_change = false;
        for round in 0..2 {
            if round == 1 && (!any_change || reinvoke.is_empty()) {
                break;
            }
            for (i, hook) in hooks.iter().enumerate() {
                if round == 1 && !reinvoke.contains(&i) {
                    continue;
                }
                if !self.should_call(hook, req, namespaced, namespace_object)? {
                    continue;
                }
                let result = self.call_mutating(hook, req, &mut out, resolve).await;
                let changed = matches!(result, Ok(true));
                out.audit_annotations.push((
                    format!("{MUTATION_ANNOTATION_PREFIX}round_{round}_index_{i}"),
                    json!({ "configuration": hook.configuration, "webhook": hook.name, "mutated": changed })
                        .to_string(),
                ));
                if changed {
                    any_change = true;
                    reinvoke.extend(previously_invoked.drain());
                }
                if hook.reinvoke_if_needed() {
                    previously_invoked.insert(i);
                }
                match result {
                    Ok(_) => {}
                    Err(CallError::Calling(_)) if hook.ignore_failures() => {
                        out.audit_annotations.push((
                            format!("{MUTATING_FAILED_OPEN_PREFIX}round_{round}_index_{i}"),
                            hook.name.to_string(),
                        ));
                    }
                    Err(CallError::Calling(reason)) => return Err(calling_error(hook.name, &reason)),
                    Err(CallError::Final(e)) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// One mutating call; Ok(true) when the webhook changed the object.
    async fn call_mutating(
        &self,
        hook: &Hook<'_>,
        req: &mut AdmissionRequest,
        out: &mut Outcome,
        resolve: ServiceResolver<'_>,
    ) -> Result<bool, CallError> {
        let response = self.call(hook, req, true, resolve).await?;
        collect_extras(hook.name, &response, out);
        if !response.get("allowed").and_then(Value::as_bool).unwrap_or(false) {
            return Err(CallError::Final(denial(hook.name, response.get("status"))));
        }
        let Some(patch_b64) = response.get("patch").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
            return Ok(false);
        };
        let undecodable =
            |e: String| CallError::Calling(format!("received undecodable patch in webhook response: {e}"));
        let raw =
            base64::engine::general_purpose::STANDARD.decode(patch_b64).map_err(|e| undecodable(e.to_string()))?;
        let patch: Value = serde_json::from_slice(&raw).map_err(|e| undecodable(e.to_string()))?;
        if !patch.is_array() {
            return Err(undecodable("json: cannot unmarshal into Go value of type jsonpatch.Patch".into()));
        }
        if patch.as_array().is_some_and(Vec::is_empty) {
            return Ok(false);
        }
        let Some(object) = req.object.as_ref() else {
            return Err(CallError::Final(ApiError::internal(format!(
                "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                hook.name
            ))));
        };
        match response.get("patchType").and_then(Value::as_str).unwrap_or("") {
            "JSONPatch" => {}
            other => return Err(CallError::Calling(format!("unsupported patch type {other:?}"))),
        }
        let patched = rkube_registry::patch::json_patch(object, &patch)
            .map_err(|e| CallError::Final(ApiError::internal(e.message)))?;
        check_identity(object, &patched, req).map_err(CallError::Final)?;
        let changed = &patched != object;
        req.object = Some(patched);
        Ok(changed)
    }

    /// Call the validating webhooks of `configs` that apply to `req`, all at
    /// once. The first denial or failure (in webhook order) is the error.
    pub async fn validate(
        &self,
        configs: &[Value],
        req: &AdmissionRequest,
        namespaced: bool,
        namespace_object: Option<&Value>,
        resolve: ServiceResolver<'_>,
    ) -> Result<Outcome, ApiError> {
        let mut out = Outcome::default();
        if is_exempt_configuration(req) {
            return Ok(out);
        }
        let mut relevant = Vec::new();
        for (i, hook) in collect_hooks(configs).into_iter().enumerate() {
            if self.should_call(&hook, req, namespaced, namespace_object)? {
                relevant.push((i, hook));
            }
        }
        let results =
            futures::future::join_all(relevant.iter().map(|(_, hook)| self.call(hook, req, false, resolve))).await;
        let mut first_error = None;
        for ((i, hook), result) in relevant.iter().zip(results) {
            let err = match result {
                Ok(response) => {
                    collect_extras(hook.name, &response, &mut out);
                    if response.get("allowed").and_then(Value::as_bool).unwrap_or(false) {
                        continue;
                    }
                    denial(hook.name, response.get("status"))
                }
                Err(CallError::Calling(_)) if hook.ignore_failures() => {
                    out.audit_annotations
                        .push((format!("{VALIDATING_FAILED_OPEN_PREFIX}round_0_index_{i}"), hook.name.to_string()));
                    continue;
                }
                Err(CallError::Calling(reason)) => calling_error(hook.name, &reason),
                Err(CallError::Final(e)) => e,
            };
            first_error.get_or_insert(err);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Warnings and audit annotations of a response (denied or not).
fn collect_extras(name: &str, response: &Value, out: &mut Outcome) {
    for w in response.get("warnings").and_then(Value::as_array).into_iter().flatten() {
        if let Some(w) = w.as_str() {
            out.warnings.push(w.to_string());
        }
    }
    if let Some(a) = response.get("auditAnnotations").and_then(Value::as_object) {
        let sorted: BTreeMap<&String, &Value> = a.iter().collect();
        for (k, v) in sorted {
            if let Some(v) = v.as_str() {
                out.audit_annotations.push((format!("{name}/{k}"), v.to_string()));
            }
        }
    }
}

/// Upstream's checks of an AdmissionReview response.
fn verify_response(review: &Value, uid: &str, api_version: &str, mutating: bool) -> Result<(), String> {
    let Some(resp) = review.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".into());
    };
    let got_uid = resp.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    if api_version == "admission.k8s.io/v1" {
        let av = review.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
        if av != api_version || kind != "AdmissionReview" {
            let gvk = match av.split_once('/') {
                Some((g, v)) => format!("{g}/{v}, Kind={kind}"),
                None => format!("{av}, Kind={kind}"),
            };
            return Err(format!("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {gvk}"));
        }
    }
    let has_patch = resp.get("patch").and_then(Value::as_str).is_some_and(|p| !p.is_empty());
    let has_type = resp.get("patchType").is_some_and(|t| !t.is_null());
    if mutating {
        if has_patch && !has_type {
            return Err("webhook returned response.patch but not response.patchType".into());
        }
        if has_type && !has_patch {
            return Err("webhook returned response.patchType but not response.patch".into());
        }
    } else {
        if has_patch {
            return Err("validating webhooks may not return response.patch".into());
        }
        if has_type {
            return Err("validating webhooks may not return response.patchType".into());
        }
    }
    Ok(())
}

/// client-go's wording for a non-2xx answer without a Status body.
fn http_error_text(a: &HttpAnswer) -> String {
    if let Ok(status) = serde_json::from_slice::<Value>(&a.body)
        && status.get("kind").and_then(Value::as_str) == Some("Status")
        && let Some(m) = status.get("message").and_then(Value::as_str)
    {
        return m.to_string();
    }
    let server_message =
        if a.text_body { String::from_utf8_lossy(&a.body).trim().to_string() } else { "unknown".to_string() };
    match a.status {
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 => "the server does not allow access to the requested resource".into(),
        404 => "the server could not find the requested resource".into(),
        405 => "the server does not allow this method on the requested resource".into(),
        409 => "the server reported a conflict".into(),
        422 => "the server rejected our request due to an error in our request".into(),
        429 => "the server has received too many requests and has asked us to try again later".into(),
        503 => "the server is currently unable to handle the request".into(),
        504 => {
            "the server was unable to return a response in the time allotted, but may still be processing the request"
                .into()
        }
        s if s >= 500 => {
            format!("an error on the server ({server_message:?}) has prevented the request from succeeding")
        }
        s => format!("the server responded with the status code {s} but did not return more information"),
    }
}

/// A mutating webhook may not change what the request is about.
fn check_identity(before: &Value, after: &Value, req: &AdmissionRequest) -> Result<(), ApiError> {
    let field = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    for p in ["/apiVersion", "/kind"] {
        if field(before, p) != field(after, p) {
            return Err(ApiError::internal(format!(
                "unable to apply webhook patch: the patch changed {} from {:?} to {:?}",
                &p[1..],
                field(before, p),
                field(after, p)
            )));
        }
    }
    let (old_name, new_name) = (field(before, "/metadata/name"), field(after, "/metadata/name"));
    if !old_name.is_empty() && old_name != new_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({old_name})"
        )));
    }
    let (old_ns, new_ns) = (field(before, "/metadata/namespace"), field(after, "/metadata/namespace"));
    let expected_ns = if old_ns.is_empty() { req.namespace.as_str() } else { old_ns.as_str() };
    if new_ns != old_ns && !new_ns.is_empty() && new_ns != expected_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if new_ns.is_empty() && !old_ns.is_empty() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// A real in-process HTTPS admission webhook for tests (unit tests here, e2e
/// suites against `rkube server`): a self-signed CA, a serving certificate
/// for the names given, and a handler from AdmissionRequest to
/// AdmissionResponse.
pub mod testserver {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
    use rustls::pki_types::PrivateKeyDer;
    use std::net::SocketAddr;

    type Handler = Arc<dyn Fn(Value) -> Value + Send + Sync>;

    /// A running webhook server; stops when dropped.
    pub struct TestServer {
        /// `https://127.0.0.1:<port>/`
        pub url: String,
        pub addr: SocketAddr,
        /// The CA that signed the serving certificate (PEM).
        pub ca_pem: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        /// The CA as a webhook's `clientConfig.caBundle` (base64 of the PEM).
        pub fn ca_bundle(&self) -> String {
            base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Start a webhook on 127.0.0.1 with a certificate for `127.0.0.1` and
    /// `localhost`. `handler` gets the AdmissionRequest and returns the
    /// AdmissionResponse; `uid` is filled in when the handler leaves it out.
    /// The handler runs on a blocking thread, so it may sleep.
    pub async fn start(handler: impl Fn(Value) -> Value + Send + Sync + 'static) -> anyhow::Result<TestServer> {
        start_with_names(&["127.0.0.1", "localhost"], handler).await
    }

    /// As [`start`], with a certificate for `names` (DNS names or IPs), e.g.
    /// `hooks.system.svc` for a webhook reached through a Service.
    pub async fn start_with_names(
        names: &[&str],
        handler: impl Fn(Value) -> Value + Send + Sync + 'static,
    ) -> anyhow::Result<TestServer> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "webhook-test-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key)?;
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("webhook"));
        for n in names {
            leaf.subject_alt_names.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into()?),
            });
        }
        let cert = leaf.signed_by(&key, &issuer)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?,
            )?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handler: Handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, handler) = (acceptor.clone(), handler.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |r| serve(r, handler.clone()));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Ok(TestServer { url: format!("https://{addr}/"), addr, ca_pem, task })
    }

    async fn serve(
        r: hyper::Request<hyper::body::Incoming>,
        handler: Handler,
    ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
        let body = r.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let request = review.get("request").cloned().unwrap_or(Value::Null);
        let uid = request.get("uid").cloned().unwrap_or(Value::Null);
        let mut response =
            tokio::task::spawn_blocking(move || handler(request)).await.unwrap_or_else(|_| json!({"allowed": false}));
        if response.get("uid").is_none()
            && let Some(m) = response.as_object_mut()
        {
            m.insert("uid".into(), uid);
        }
        let api_version = review.get("apiVersion").cloned().unwrap_or(json!("admission.k8s.io/v1"));
        let answer = json!({ "apiVersion": api_version, "kind": "AdmissionReview", "response": response });
        let mut resp = hyper::Response::new(Full::new(Bytes::from(answer.to_string())));
        resp.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
        Ok(resp)
    }

    /// An allowing AdmissionResponse.
    pub fn allow() -> Value {
        json!({ "allowed": true })
    }

    /// A denying AdmissionResponse with this message and HTTP code.
    pub fn deny(message: &str, code: u16) -> Value {
        json!({ "allowed": false, "status": { "message": message, "code": code } })
    }

    /// An allowing AdmissionResponse carrying a JSONPatch.
    pub fn patch(ops: Value) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ops.to_string());
        json!({ "allowed": true, "patchType": "JSONPatch", "patch": b64 })
    }
}

#[cfg(test)]
mod tests {
    use super::testserver::{self, TestServer};
    use super::*;
    use rkube_registry::admission::Operation;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn no_services(_: &str, _: &str, _: i32) -> Option<String> {
        None
    }

    fn pod_request(op: Operation) -> AdmissionRequest {
        AdmissionRequest {
            uid: "req-1".into(),
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            resource: "pods".into(),
            subresource: String::new(),
            name: "web".into(),
            namespace: "default".into(),
            operation: op,
            user: Default::default(),
            object: Some(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            })),
            old_object: None,
            options: None,
            dry_run: false,
        }
    }

    fn pod_rules() -> Value {
        json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    }

    fn hook(name: &str, url: &str, ca_bundle: &str) -> Value {
        json!({
            "name": name,
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": pod_rules(),
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    fn config(kind: &str, name: &str, hooks: Vec<Value>) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name},
            "webhooks": hooks,
        })
    }

    fn validating(hooks: Vec<Value>) -> Vec<Value> {
        vec![config("ValidatingWebhookConfiguration", "v", hooks)]
    }

    fn mutating(hooks: Vec<Value>) -> Vec<Value> {
        vec![config("MutatingWebhookConfiguration", "m", hooks)]
    }

    /// A server that counts calls and answers with `f`.
    async fn counting(f: impl Fn(Value) -> Value + Send + Sync + 'static) -> (TestServer, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let s = testserver::start(move |r| {
            c.fetch_add(1, Ordering::SeqCst);
            f(r)
        })
        .await
        .unwrap();
        (s, calls)
    }

    /// A port nothing listens on.
    async fn closed_port() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn denial_carries_message_and_code() {
        let (s, calls) = counting(|_| testserver::deny("no pods today", 403)).await;
        let d = Dispatcher::new();
        let cfg = validating(vec![hook("deny.example.com", &s.url, &s.ca_bundle())]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(err.reason, Reason::Forbidden);
        assert_eq!(err.message, "admission webhook \"deny.example.com\" denied the request: no pods today");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Without a status: 400 and "without explanation", as upstream.
        let (s2, _) = counting(|_| json!({"allowed": false})).await;
        let cfg = validating(vec![hook("quiet.example.com", &s2.url, &s2.ca_bundle())]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "admission webhook \"quiet.example.com\" denied the request without explanation");

        // A mutating webhook's denial reads the same.
        let cfg = mutating(vec![hook("deny.example.com", &s.url, &s.ca_bundle())]);
        let mut req = pod_request(Operation::Create);
        let err = d.mutate(&cfg, &mut req, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 403);
        assert!(err.message.ends_with("denied the request: no pods today"));
    }

    #[tokio::test]
    async fn request_is_an_admission_review_v1() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let s = testserver::start(move |r| {
            keep.lock().unwrap().push(r);
            testserver::allow()
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let cfg = validating(vec![hook("a.example.com", &s.url, &s.ca_bundle())]);
        let out = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
        assert_eq!(out, Outcome::default());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["operation"], "CREATE");
        assert_eq!(seen[0]["resource"]["resource"], "pods");
        assert_eq!(seen[0]["object"]["metadata"]["name"], "web");
        // Each call has its own uid, not the request's.
        assert_ne!(seen[0]["uid"], "req-1");
        assert!(!seen[0]["uid"].as_str().unwrap_or("").is_empty());
    }

    #[tokio::test]
    async fn patch_warnings_and_audit_annotations() {
        let s = testserver::start(|_| {
            let mut r = testserver::patch(json!([{"op": "add", "path": "/metadata/labels/injected", "value": "yes"}]));
            r["warnings"] = json!(["image tag is latest"]);
            r["auditAnnotations"] = json!({"decision": "labelled"});
            r
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let cfg = mutating(vec![hook("label.example.com", &s.url, &s.ca_bundle())]);
        let mut req = pod_request(Operation::Create);
        let out = d.mutate(&cfg, &mut req, true, None, &no_services).await.unwrap();
        let obj = req.object.as_ref().unwrap();
        assert_eq!(obj["metadata"]["labels"]["injected"], "yes");
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(out.warnings, vec!["image tag is latest".to_string()]);
        assert!(out.audit_annotations.contains(&("label.example.com/decision".into(), "labelled".into())));
        let mutation = out
            .audit_annotations
            .iter()
            .find(|(k, _)| k == "mutation.webhook.admission.k8s.io/round_0_index_0")
            .map(|(_, v)| serde_json::from_str::<Value>(v).unwrap())
            .unwrap();
        assert_eq!(mutation, json!({"configuration": "m", "webhook": "label.example.com", "mutated": true}));

        // Validating webhooks pass warnings on too, and may not patch.
        let cfg = validating(vec![hook("label.example.com", &s.url, &s.ca_bundle())]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 500);
        assert!(err.message.contains("validating webhooks may not return response.patch"), "{}", err.message);
    }

    #[tokio::test]
    async fn unreachable_webhook_fail_vs_ignore() {
        let port = closed_port().await;
        let url = format!("https://127.0.0.1:{port}/validate");
        let d = Dispatcher::new();
        let req = pod_request(Operation::Create);
        let cfg = validating(vec![hook("down.example.com", &url, "")]);
        let err = d.validate(&cfg, &req, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(err.reason, Reason::InternalError);
        assert_eq!(
            err.message,
            format!(
                "Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: \
                 Post \"https://127.0.0.1:{port}/validate?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: \
                 connection refused"
            )
        );
        let mut ignore = hook("down.example.com", &url, "");
        ignore["failurePolicy"] = json!("Ignore");
        let out = d.validate(&validating(vec![ignore.clone()]), &req, true, None, &no_services).await.unwrap();
        assert_eq!(
            out.audit_annotations,
            vec![("failed-open.validating.webhook.admission.k8s.io/round_0_index_0".into(), "down.example.com".into())]
        );
        // Mutating: Fail stops the request, Ignore leaves the object alone.
        let mut m = pod_request(Operation::Create);
        let err = d.mutate(&mutating(vec![hook("down.example.com", &url, "")]), &mut m, true, None, &no_services).await;
        assert_eq!(err.unwrap_err().code, 500);
        let before = m.object.clone();
        d.mutate(&mutating(vec![ignore]), &mut m, true, None, &no_services).await.unwrap();
        assert_eq!(m.object, before);
    }

    #[tokio::test]
    async fn slow_webhook_times_out() {
        let s = testserver::start(|_| {
            std::thread::sleep(Duration::from_millis(2500));
            testserver::allow()
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let mut h = hook("slow.example.com", &s.url, &s.ca_bundle());
        h["timeoutSeconds"] = json!(1);
        let started = std::time::Instant::now();
        let err = d
            .validate(&validating(vec![h.clone()]), &pod_request(Operation::Create), true, None, &no_services)
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(2000));
        assert_eq!(err.code, 500);
        assert!(
            err.message.ends_with(&format!("Post \"https://{}/?timeout=1s\": context deadline exceeded", s.addr)),
            "{}",
            err.message
        );
        h["failurePolicy"] = json!("Ignore");
        d.validate(&validating(vec![h]), &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
    }

    #[tokio::test]
    async fn wrong_ca_bundle_is_a_tls_failure() {
        let (s, calls) = counting(|_| testserver::allow()).await;
        let other = testserver::start(|_| testserver::allow()).await.unwrap();
        let d = Dispatcher::new();
        let cfg = validating(vec![hook("tls.example.com", &s.url, &other.ca_bundle())]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 500);
        assert!(
            err.message.ends_with("tls: failed to verify certificate: x509: certificate signed by unknown authority"),
            "{}",
            err.message
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // Names are checked: localhost is in the certificate, 127.0.0.1 is not in this one.
        let by_name = format!("https://localhost:{}/", s.addr.port());
        let cfg = validating(vec![hook("tls.example.com", &by_name, &s.ca_bundle())]);
        d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
        let named = testserver::start_with_names(&["hooks.system.svc"], |_| testserver::allow()).await.unwrap();
        let cfg = validating(vec![hook("tls.example.com", &named.url, &named.ca_bundle())]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert!(
            err.message.ends_with("x509: certificate is valid for hooks.system.svc, not 127.0.0.1"),
            "{}",
            err.message
        );
        let not_a_bundle = base64::engine::general_purpose::STANDARD.encode("not pem");
        let cfg = validating(vec![hook("tls.example.com", &s.url, &not_a_bundle)]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert!(err.message.contains("could not get REST client"), "{}", err.message);
    }

    #[tokio::test]
    async fn dry_run_needs_side_effect_free_webhooks() {
        let (s, calls) = counting(|_| testserver::allow()).await;
        let d = Dispatcher::new();
        let mut req = pod_request(Operation::Create);
        req.dry_run = true;
        let mut h = hook("effects.example.com", &s.url, &s.ca_bundle());
        h["sideEffects"] = json!("Unknown");
        let err = d.validate(&validating(vec![h.clone()]), &req, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "admission webhook \"effects.example.com\" does not support dry run");
        // Ignore does not cover it: the refusal is not a call failure.
        h["failurePolicy"] = json!("Ignore");
        let err = d.mutate(&mutating(vec![h.clone()]), &mut req, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        h["sideEffects"] = json!("NoneOnDryRun");
        d.validate(&validating(vec![h]), &req, true, None, &no_services).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn response_uid_must_match() {
        let s = testserver::start(|_| json!({"uid": "someone-else", "allowed": true})).await.unwrap();
        let d = Dispatcher::new();
        let cfg = validating(vec![hook("uid.example.com", &s.url, &s.ca_bundle())]);
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 500);
        assert!(
            err.message.contains(
                "failed calling webhook \"uid.example.com\": received invalid webhook response: expected response.uid="
            ) && err.message.ends_with("got \"someone-else\""),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn rules_and_selectors_choose_who_is_called() {
        let (s, calls) = counting(|_| testserver::allow()).await;
        let d = Dispatcher::new();
        let mut deployments = hook("deploy.example.com", &s.url, &s.ca_bundle());
        deployments["rules"] =
            json!([{"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}]);
        let mut prod_only = hook("prod.example.com", &s.url, &s.ca_bundle());
        prod_only["namespaceSelector"] = json!({"matchLabels": {"env": "prod"}});
        let mut db_only = hook("db.example.com", &s.url, &s.ca_bundle());
        db_only["objectSelector"] = json!({"matchLabels": {"app": "db"}});
        let mut deletes = hook("delete.example.com", &s.url, &s.ca_bundle());
        deletes["rules"][0]["operations"] = json!(["DELETE"]);
        let cfg = validating(vec![deployments, prod_only.clone(), db_only, deletes]);
        let dev = json!({"metadata": {"name": "default", "labels": {"env": "dev"}}});
        d.validate(&cfg, &pod_request(Operation::Create), true, Some(&dev), &no_services).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // The namespace selector lets prod through.
        let prod = json!({"metadata": {"name": "default", "labels": {"env": "prod"}}});
        d.validate(&cfg, &pod_request(Operation::Create), true, Some(&prod), &no_services).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A missing namespace is a 404 when a selector needs it.
        let err = d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 404);
        assert_eq!(err.message, "namespaces \"default\" not found");
        // Webhook configurations themselves are never sent to webhooks.
        let mut everything = hook("all.example.com", &s.url, &s.ca_bundle());
        everything["rules"] =
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]);
        let mut cfg_req = pod_request(Operation::Create);
        cfg_req.group = "admissionregistration.k8s.io".into();
        cfg_req.kind = "ValidatingWebhookConfiguration".into();
        cfg_req.resource = "validatingwebhookconfigurations".into();
        cfg_req.namespace = String::new();
        d.validate(&validating(vec![everything]), &cfg_req, false, None, &no_services).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn service_reference_uses_the_resolver_and_service_name() {
        let (s, calls) = counting(|_| testserver::allow()).await;
        let svc = testserver::start_with_names(&["hooks.system.svc"], |_| testserver::allow()).await.unwrap();
        let d = Dispatcher::new();
        let addr = svc.addr.to_string();
        let resolve = move |ns: &str, name: &str, port: i32| {
            (ns == "system" && name == "hooks" && port == 8443).then(|| addr.clone())
        };
        let mut h = hook("svc.example.com", "", &svc.ca_bundle());
        h["clientConfig"] = json!({
            "service": {"namespace": "system", "name": "hooks", "port": 8443, "path": "/validate"},
            "caBundle": svc.ca_bundle(),
        });
        d.validate(&validating(vec![h.clone()]), &pod_request(Operation::Create), true, None, &resolve).await.unwrap();
        h["clientConfig"]["service"]["name"] = json!("gone");
        let err =
            d.validate(&validating(vec![h]), &pod_request(Operation::Create), true, None, &resolve).await.unwrap_err();
        assert!(
            err.message.ends_with(
                "failed to call webhook: Post \"https://gone.system.svc:8443/validate?timeout=10s\": service \"gone\" not found"
            ),
            "{}",
            err.message
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        drop(s);
    }

    #[tokio::test]
    async fn if_needed_webhooks_are_reinvoked_after_later_changes() {
        let (first, first_calls) = counting(|_| testserver::allow()).await;
        let second = testserver::start(|r| {
            if r["object"]["metadata"]["labels"]["second"].is_null() {
                testserver::patch(json!([{"op": "add", "path": "/metadata/labels/second", "value": "1"}]))
            } else {
                testserver::allow()
            }
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let mut a = hook("a.example.com", &first.url, &first.ca_bundle());
        a["reinvocationPolicy"] = json!("IfNeeded");
        let b = hook("b.example.com", &second.url, &second.ca_bundle());
        // Configurations are ordered by name: "1-first" runs before "2-second".
        let cfgs = vec![
            config("MutatingWebhookConfiguration", "2-second", vec![b]),
            config("MutatingWebhookConfiguration", "1-first", vec![a.clone()]),
        ];
        let mut req = pod_request(Operation::Create);
        let out = d.mutate(&cfgs, &mut req, true, None, &no_services).await.unwrap();
        assert_eq!(req.object.as_ref().unwrap()["metadata"]["labels"]["second"], "1");
        assert_eq!(first_calls.load(Ordering::SeqCst), 2);
        assert!(out.audit_annotations.iter().any(|(k, _)| k == "mutation.webhook.admission.k8s.io/round_1_index_0"));
        // With the default policy (Never) it runs once.
        a["reinvocationPolicy"] = json!("Never");
        let cfgs = vec![
            config(
                "MutatingWebhookConfiguration",
                "2-second",
                vec![hook("b.example.com", &second.url, &second.ca_bundle())],
            ),
            config("MutatingWebhookConfiguration", "1-first", vec![a]),
        ];
        let mut req = pod_request(Operation::Create);
        d.mutate(&cfgs, &mut req, true, None, &no_services).await.unwrap();
        assert_eq!(first_calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn mutation_may_not_rename_or_patch_deletes() {
        let s = testserver::start(|_| {
            testserver::patch(json!([{"op": "replace", "path": "/metadata/name", "value": "other"}]))
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let cfg = mutating(vec![hook("rename.example.com", &s.url, &s.ca_bundle())]);
        let mut req = pod_request(Operation::Create);
        let err = d.mutate(&cfg, &mut req, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "the name of the object (other) does not match the name on the URL (web)");
        assert_eq!(req.object.as_ref().unwrap()["metadata"]["name"], "web");

        let mut del_hook = hook("rename.example.com", &s.url, &s.ca_bundle());
        del_hook["rules"][0]["operations"] = json!(["DELETE"]);
        let mut del = pod_request(Operation::Delete);
        del.old_object = del.object.take();
        let err = d.mutate(&mutating(vec![del_hook]), &mut del, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 500);
        assert!(err.message.contains("attempted to modify the object, which is not supported for this operation"));
    }

    #[tokio::test]
    async fn review_versions_must_include_a_known_one() {
        let (s, calls) = counting(|_| testserver::allow()).await;
        let d = Dispatcher::new();
        let mut h = hook("v.example.com", &s.url, &s.ca_bundle());
        h["admissionReviewVersions"] = json!(["v2"]);
        let err = d
            .validate(&validating(vec![h.clone()]), &pod_request(Operation::Create), true, None, &no_services)
            .await
            .unwrap_err();
        assert!(err.message.contains("webhook does not accept known AdmissionReview versions"), "{}", err.message);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        h["admissionReviewVersions"] = json!(["v2", "v1beta1"]);
        d.validate(&validating(vec![h]), &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn validating_webhooks_run_in_parallel_and_connections_are_reused() {
        let s = testserver::start(|_| {
            std::thread::sleep(Duration::from_millis(600));
            testserver::allow()
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let cfg = validating(vec![
            hook("p1.example.com", &s.url, &s.ca_bundle()),
            hook("p2.example.com", &s.url, &s.ca_bundle()),
            hook("p3.example.com", &s.url, &s.ca_bundle()),
        ]);
        let started = std::time::Instant::now();
        d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
        let idle: usize = d.idle.lock().unwrap().values().map(Vec::len).sum();
        assert_eq!(idle, 3);
        d.validate(&cfg, &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
        let idle: usize = d.idle.lock().unwrap().values().map(Vec::len).sum();
        assert_eq!(idle, 3);
    }

    #[tokio::test]
    async fn match_conditions_filter_webhooks() {
        let (s, calls) = counting(|_| testserver::allow()).await;
        let d = Dispatcher::new();
        let mut h = hook("cond.example.com", &s.url, &s.ca_bundle());
        h["matchConditions"] = json!([{"name": "not-web", "expression": "object.metadata.name != 'web'"}]);
        d.validate(&validating(vec![h.clone()]), &pod_request(Operation::Create), true, None, &no_services)
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        h["matchConditions"] = json!([{"name": "is-web", "expression": "object.metadata.name == 'web'"}]);
        d.validate(&validating(vec![h.clone()]), &pod_request(Operation::Create), true, None, &no_services)
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // An expression that fails: Fail forbids the request, Ignore skips the webhook.
        h["matchConditions"] = json!([{"name": "broken", "expression": "object.metadata.nope == 'x'"}]);
        let err = d
            .validate(&validating(vec![h.clone()]), &pod_request(Operation::Create), true, None, &no_services)
            .await
            .unwrap_err();
        assert_eq!(err.code, 403);
        assert!(err.message.starts_with("pods \"web\" is forbidden: "), "{}", err.message);
        h["failurePolicy"] = json!("Ignore");
        d.validate(&validating(vec![h]), &pod_request(Operation::Create), true, None, &no_services).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn dispatch_futures_are_send() {
        let d = Dispatcher::new();
        let mut r = pod_request(Operation::Create);
        assert_send(d.mutate(&[], &mut r, true, None, &no_services));
        let r = pod_request(Operation::Create);
        assert_send(d.validate(&[], &r, true, None, &no_services));
    }

    #[tokio::test]
    async fn mutation_may_not_move_namespaces() {
        let s = testserver::start(|_| {
            testserver::patch(json!([{"op": "replace", "path": "/metadata/namespace", "value": "kube-system"}]))
        })
        .await
        .unwrap();
        let d = Dispatcher::new();
        let cfg = mutating(vec![hook("move.example.com", &s.url, &s.ca_bundle())]);
        let mut req = pod_request(Operation::Create);
        let err = d.mutate(&cfg, &mut req, true, None, &no_services).await.unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "the namespace of the provided object does not match the namespace sent on the request"
        );
    }

    #[test]
    fn paths_are_cleaned_as_go_does() {
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("validate/"), "/validate");
        assert_eq!(clean_path("/a/./b/../c"), "/a/c");
    }
}
