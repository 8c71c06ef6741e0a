//! rkube-controller-common: Helpers shared by controllers: owner references, expectations, hashing, conditions, events.
//!
//! (being written)
