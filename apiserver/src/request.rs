//! What a request asks for: the path parsed into group, version, namespace,
//! resource, name and subresource (upstream's `RequestInfo`), the verb, and the
//! query parameters of the Kubernetes REST API.

use ::http::Method;
use rkube_registry::ApiError;
use std::collections::HashMap;

/// A resource request: `/api/v1/namespaces/default/pods/web/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path segment was used.
    pub legacy_watch: bool,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    GroupVersion(String, String),
    Resource(ResourcePath),
    /// `/version`, `/healthz`, `/openapi/...`: everything else.
    NonResource(String),
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// Parse a request path.
pub fn route(path: &str) -> Route {
    let trimmed = path.trim_matches('/');
    let parts: Vec<String> = if trimmed.is_empty() { vec![] } else { trimmed.split('/').map(decode).collect() };
    let (group, version, rest) = match parts.first().map(String::as_str) {
        Some("api") => match parts.len() {
            1 => return Route::CoreVersions,
            _ => (String::new(), parts[1].clone(), &parts[2..]),
        },
        Some("apis") => match parts.len() {
            1 => return Route::Groups,
            2 => return Route::Group(parts[1].clone()),
            _ => (parts[1].clone(), parts[2].clone(), &parts[3..]),
        },
        _ => return Route::NonResource(path.to_string()),
    };
    if rest.is_empty() {
        return Route::GroupVersion(group, version);
    }
    let mut rest = rest;
    let mut legacy_watch = false;
    if rest[0] == "watch" {
        legacy_watch = true;
        rest = &rest[1..];
        if rest.is_empty() {
            return Route::NonResource(path.to_string());
        }
    }
    let mut rp = ResourcePath { group, version, legacy_watch, ..Default::default() };
    // namespaces/<ns>/<resource>/... unless it is the namespace's own subresource
    if rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"))
    {
        rp.namespace = Some(rest[1].clone());
        rest = &rest[2..];
    }
    rp.resource = rest[0].clone();
    rp.name = rest.get(1).cloned();
    if rest.len() >= 3 {
        // pods/x/proxy/<path> keeps only the subresource name
        rp.subresource = Some(rest[2].clone());
    }
    Route::Resource(rp)
}

/// The Kubernetes verb of a resource request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn from_request(method: &Method, has_name: bool, watch: bool) -> Option<Verb> {
        Some(match (method.as_str(), has_name) {
            ("GET" | "HEAD", true) if watch => Verb::Watch,
            ("GET" | "HEAD", true) => Verb::Get,
            ("GET" | "HEAD", false) if watch => Verb::Watch,
            ("GET" | "HEAD", false) => Verb::List,
            ("POST", _) => Verb::Create,
            ("PUT", true) => Verb::Update,
            ("PATCH", true) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            ("DELETE", false) => Verb::DeleteCollection,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// The query parameters of the REST API (unknown ones are ignored, as upstream does).
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub raw: HashMap<String, String>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let raw = form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
        Self { raw }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.raw.get(k).map(String::as_str)
    }
    pub fn str_or_empty(&self, k: &str) -> &str {
        self.get(k).unwrap_or("")
    }
    pub fn bool(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(false),
            Some("true" | "1" | "True" | "TRUE" | "t" | "T") => Ok(true),
            Some("false" | "0" | "False" | "FALSE" | "f" | "F") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!("invalid value {v:?} for {k}: must be a boolean"))),
        }
    }
    pub fn opt_bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        if self.get(k).is_none() { Ok(None) } else { self.bool(k).map(Some) }
    }
    pub fn i64(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for {k}: must be an integer"))),
        }
    }
    pub fn watch(&self) -> Result<bool, ApiError> {
        self.bool("watch")
    }
    /// `dryRun=All` (the only value upstream accepts).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.raw.get("dryRun").map(String::as_str) {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!("Invalid dryRun value {v:?}: must be 'All'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_paths_like_upstream() {
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(route("/apis/apps/v1"), Route::GroupVersion("apps".into(), "v1".into()));
        let r = res("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(
            (r.namespace.as_deref(), r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            (Some("default"), "pods", Some("web"), Some("status"))
        );
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!((r.namespace, r.resource.as_str(), r.name.as_deref()), (None, "namespaces", Some("kube-system")));
        let r = res("/api/v1/namespaces/x/finalize");
        assert_eq!((r.resource.as_str(), r.subresource.as_deref()), ("namespaces", Some("finalize")));
        let r = res("/apis/apps/v1/deployments");
        assert_eq!((r.group.as_str(), r.namespace, r.name), ("apps", None, None));
        let r = res("/api/v1/watch/namespaces/default/pods");
        assert!(r.legacy_watch);
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(route("/version"), Route::NonResource("/version".into()));
    }

    #[test]
    fn verbs() {
        assert_eq!(Verb::from_request(&Method::GET, false, true), Some(Verb::Watch));
        assert_eq!(Verb::from_request(&Method::DELETE, false, false), Some(Verb::DeleteCollection));
        assert_eq!(Verb::from_request(&Method::PUT, false, false), None);
    }
}
