//! rkube-controller-serviceaccount: Default ServiceAccount and kube-root-ca.crt ConfigMap in every namespace.
//!
//! (being written)
