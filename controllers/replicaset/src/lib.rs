//! rkube-controller-replicaset: ReplicaSet controller: pods to match replicas, adoption, status.
//!
//! (being written)
