//! rkube-controller-nodeipam: Hands out node podCIDRs from --cluster-cidr.
//!
//! (being written)
