//! rkube-registry: what each built-in Kubernetes kind *is*, as pure functions on JSON.
//!
//! The apiserver asks this crate everything kind-specific: which resources exist
//! (`resources`), how discovery and OpenAPI describe them (`discovery`, `openapi`),
//! how to default and validate an object (`defaults`, `validation`), how to print
//! it as a table (`printers`), how to patch it (`patch`), how to select it
//! (`selectors`) and how to convert it between served versions (`convert`).
//! Errors are `status::ApiError`, rendered as `metav1.Status`.
//!
//! This crate never does I/O: no storage, no network, no clocks except where a
//! caller passes `now`.

pub mod admission;
pub mod convert;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod fieldvalidation;
pub mod openapi;
pub mod openapi_proto;
pub mod patch;
pub mod podsecurity;
pub mod printers;
pub mod proto;
pub mod quantity;
pub mod quota;
pub mod rbac;
pub mod resources;
pub mod selectors;
pub mod ssa;
pub mod status;
pub mod validation;

pub use status::{ApiError, FieldError, FieldErrorType, Reason};
