//! rkube-kubelet: The node agent: registration, lease heartbeat, pod workers, status; runtimes: sim (and CRI later).
//!
//! (being written)
