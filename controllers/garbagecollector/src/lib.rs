//! rkube-controller-garbagecollector: Garbage collector: ownerReferences with background, foreground and orphan propagation.
//!
//! (being written)
