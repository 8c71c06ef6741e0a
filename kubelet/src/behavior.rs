//! PodBehaviors (sim.rkube.io/v1alpha1) as the pool sees them: which `sim.rkube.io/*` annotations a
//! pod gets from the behaviors that select it.
//!
//! The pool keeps one [`Behaviors`] (the matching logic lives in rkube-crds, shared with other
//! readers) fed by a watch on PodBehaviors (and on Namespaces, for `namespaceSelector`) and, before
//! a pod reaches its worker, adds the annotations the pod lacks ([`Behaviors::inject`]); explicit pod
//! annotations win key by key. When several behaviors select a pod, each key comes from the first
//! behavior in name order that sets it. The pod object on the server is not changed.

use k8s_openapi::api::core::v1::Pod;

pub use rkube_crds::podbehavior::{Behaviors, annotations_of};

/// Removes previously injected keys from a pod (before injecting afresh).
pub fn strip(pod: &mut Pod, keys: &[String]) {
    if let Some(a) = pod.metadata.annotations.as_mut() {
        for k in keys {
            a.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::sim::{EXIT_AFTER, EXIT_CODE};
    use serde_json::json;

    #[test]
    fn injected_keys_are_stripped_and_own_annotations_kept() {
        let mut b = Behaviors::new();
        let pb = serde_json::from_value(json!({
            "apiVersion": "sim.rkube.io/v1alpha1", "kind": "PodBehavior", "metadata": {"name": "x"},
            "spec": {"selector": {}, "exitAfter": "2s", "exitCode": 1}
        }))
        .unwrap();
        b.upsert(&pb);
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d", "annotations": {EXIT_CODE: "3"}},
            "spec": {"containers": []}
        }))
        .unwrap();
        let keys = b.inject(&mut p);
        assert_eq!(keys, [EXIT_AFTER.to_string()]);
        strip(&mut p, &keys);
        let a = p.metadata.annotations.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[EXIT_CODE], "3");
    }
}
