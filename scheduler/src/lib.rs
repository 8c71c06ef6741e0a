//! rkube-scheduler: Binds pending pods to nodes: filters, scores, binding, FailedScheduling.
//!
//! (being written)
