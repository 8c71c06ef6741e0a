//! rkube-controller-common: helpers every controller shares.
//!
//! - [`owner`]: controller owner references and upstream's ControllerRefManager (adopt / release).
//! - [`expectations`]: upstream's ControllerExpectations, so a controller never overshoots while its
//!   informer cache lags behind its own writes.
//! - [`events`]: publishing Normal / Warning events about an object.
//! - [`pod`]: pod predicates (ready, available, active) and pods from a template.
//! - [`slow_start`]: upstream's slowStartBatch (1, 2, 4, … parallel calls, stop at the first failure).
//! - [`hash`]: pod-template hashing (`pod-template-hash`).
//! - [`conditions`]: status conditions.
//!
//! This crate is API-client only: it never touches storage.

pub mod conditions;
pub mod events;
pub mod expectations;
pub mod hash;
pub mod owner;
pub mod pod;
pub mod slow_start;
pub mod watch;

/// Errors of the shared helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The owner may not adopt: it is gone, was replaced (other UID) or is being deleted.
    #[error("{0}")]
    CannotAdopt(String),
}

/// Whether an error from the apiserver carries the given HTTP status code.
pub fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

/// 404 Not Found.
pub fn is_not_found(err: &kube::Error) -> bool {
    is_status(err, 404)
}

/// 409 Conflict (stale resourceVersion, or AlreadyExists).
pub fn is_conflict(err: &kube::Error) -> bool {
    is_status(err, 409)
}

/// 422 Invalid.
pub fn is_invalid(err: &kube::Error) -> bool {
    is_status(err, 422)
}

/// Whether an API error names the given cause type (`details.causes[].reason`), e.g.
/// `NamespaceTerminating` when creating into a namespace that is being deleted.
pub fn has_status_cause(err: &kube::Error, cause: &str) -> bool {
    match err {
        kube::Error::Api(status) => status.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == cause)),
        _ => false,
    }
}

/// `namespace/name`, upstream's cache key for namespaced objects (`name` alone when cluster scoped).
pub fn key_of(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}
