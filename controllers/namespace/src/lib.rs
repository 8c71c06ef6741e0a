//! rkube-controller-namespace: Namespace controller: deleting a namespace empties it, then finalizes it.
//!
//! (being written)
