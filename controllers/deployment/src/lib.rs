//! rkube-controller-deployment: Deployment controller: rolling update, recreate, revisions, rollback, status.
//!
//! (being written)
