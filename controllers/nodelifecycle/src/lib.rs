//! rkube-controller-nodelifecycle: Node health from leases: NotReady/Unknown, taints, eviction of pods.
//!
//! (being written)
