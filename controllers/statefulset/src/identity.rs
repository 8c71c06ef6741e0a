//! Pod and claim identity of a StatefulSet (upstream's stateful_set_utils.go, pure functions):
//! ordinal names `<set>-<ordinal>`, the identity labels, hostname / subdomain, the claims
//! `<template>-<set>-<ordinal>` mounted in place of same-named template volumes, the
//! `controller-revision-hash` label, pod predicates, and the ownerReferences a claim must carry
//! under the set's `persistentVolumeClaimRetentionPolicy`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rkube_controller_common::owner::{controller_of, controller_ref};
use rkube_controller_common::pod::{is_pod_available, is_pod_ready, phase, pod_from_template};
use std::collections::BTreeMap;

/// `statefulset.kubernetes.io/pod-name`: the pod's own name, so a Service can select one pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// `apps.kubernetes.io/pod-index`: the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// `controller-revision-hash`: the name of the ControllerRevision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Splits `<parent>-<ordinal>` (upstream's `getParentNameAndOrdinal`); `None` when the name does
/// not end in `-<digits>`.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// The pod's ordinal, or -1 when its name carries none.
pub fn ordinal(pod: &Pod) -> i32 {
    pod.metadata.name.as_deref().and_then(parent_and_ordinal).map_or(-1, |(_, o)| o)
}

/// Whether the pod's name says it belongs to the set (upstream's `isMemberOf`).
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    pod.metadata.name.as_deref().and_then(parent_and_ordinal).is_some_and(|(p, _)| p == set.name_any())
}

/// `spec.ordinals.start` (0 when unset).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0)
}

/// `spec.replicas` (default 1).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// One past the last ordinal the set wants.
pub fn end_ordinal(set: &StatefulSet) -> i32 {
    start_ordinal(set).saturating_add(replicas(set))
}

/// Whether the pod's ordinal is in `[start, start + replicas)`.
pub fn in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o < end_ordinal(set)
}

/// `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", set.name_any())
}

/// The `controller-revision-hash` label ("" when absent).
pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).map_or("", String::as_str)
}

/// Upstream's `isRunningAndReady`.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

/// Upstream's `isRunningAndAvailable` (ready for longer than minReadySeconds).
pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    phase(pod) == "Running" && is_pod_available(pod, min_ready_seconds, now)
}

/// Upstream's `isCreated`: the apiserver gave the pod a phase.
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

/// Upstream's `isTerminating`.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `isHealthy`: running, ready and not terminating.
pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// The set's claims for the pod with this ordinal, keyed by template name (upstream's
/// `getPersistentVolumeClaims`): the template with the ordinal name, the set's namespace and the
/// selector's matchLabels added to the template's labels.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let Some(spec) = set.spec.as_ref() else { return Vec::new() };
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let tname = t.metadata.name.clone().unwrap_or_default();
            let mut claim = t.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(match_labels.clone());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&tname, set, ordinal)),
                namespace: set.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: claim.metadata.annotations.take(),
                finalizers: claim.metadata.finalizers.take(),
                ..Default::default()
            };
            claim.status = None;
            (tname, claim)
        })
        .collect()
}

fn claim_volumes(set: &StatefulSet, ordinal: i32) -> Vec<Volume> {
    claims_for(set, ordinal)
        .into_iter()
        .map(|(tname, claim)| Volume {
            name: tname,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect()
}

/// A new pod of the set with this ordinal (upstream's `newStatefulSetPod`): the template, a
/// controller reference, the ordinal name and identity labels, hostname = name,
/// subdomain = serviceName, and claim volumes replacing template volumes of the same name.
pub fn new_pod(set: &StatefulSet, ordinal: i32) -> Pod {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let mut pod = pod_from_template(&template, &set.name_any(), &ns, Some(controller_ref(set)));
    let name = pod_name(set, ordinal);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set.spec.as_ref().and_then(|s| s.service_name.clone()).filter(|s| !s.is_empty());
    let claims = claim_volumes(set, ordinal);
    let mut volumes: Vec<Volume> = claims.clone();
    for v in spec.volumes.take().unwrap_or_default() {
        if !claims.iter().any(|c| c.name == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    pod
}

/// Upstream's `newVersionedStatefulSetPod`: ordinals below the partition (or, without a
/// rollingUpdate block, below the current replica count) are made from the current revision,
/// the others from the update revision.
pub fn new_versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current_revision: &str,
    update_revision: &str,
    ordinal: i32,
) -> Pod {
    let strategy = current_set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.is_none_or(|s| s.type_.as_deref().is_none_or(|t| t == "RollingUpdate"));
    let use_current = rolling
        && match strategy.and_then(|s| s.rolling_update.as_ref()) {
            None => {
                let current = current_set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0);
                ordinal < start_ordinal(current_set) + current
            }
            Some(ru) => ordinal < start_ordinal(current_set) + ru.partition.unwrap_or(0),
        };
    let (set, rev) = if use_current { (current_set, current_revision) } else { (update_set, update_revision) };
    let mut pod = new_pod(set, ordinal);
    pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(REVISION_LABEL.into(), rev.to_string());
    pod
}

/// Upstream's `identityMatches`: name, namespace and identity labels as the set would make them.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let o = ordinal(pod);
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    o >= 0
        && is_member_of(set, pod)
        && pod.metadata.name.as_deref() == Some(pod_name(set, o).as_str())
        && pod.metadata.namespace == set.metadata.namespace
        && labels.get(POD_NAME_LABEL) == pod.metadata.name.as_ref()
        && labels.get(POD_INDEX_LABEL) == Some(&o.to_string())
}

/// The labels that `identity_matches` needs, for a patch fixing a pod that lost them.
pub fn identity_labels(pod: &Pod) -> BTreeMap<String, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    BTreeMap::from([(POD_NAME_LABEL.to_string(), name), (POD_INDEX_LABEL.to_string(), ordinal(pod).to_string())])
}

/// Upstream's `storageMatches`: every claim template is mounted with the pod's claim name.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let o = ordinal(pod);
    if o < 0 {
        return false;
    }
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
    claims_for(set, o).iter().all(|(tname, claim)| {
        volumes.iter().any(|v| {
            &v.name == tname
                && v.persistent_volume_claim.as_ref().map(|c| &c.claim_name) == claim.metadata.name.as_ref()
        })
    })
}

/// `(whenDeleted, whenScaled)`, each `Retain` unless set to `Delete`.
pub fn retention_policy(set: &StatefulSet) -> (bool, bool) {
    let p = set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let del = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
    (del(p.and_then(|p| p.when_deleted.as_ref())), del(p.and_then(|p| p.when_scaled.as_ref())))
}

fn pod_ref(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.name_any(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn matches_ref(r: &OwnerReference, kind: &str, group_prefix: &str, name: &str) -> bool {
    r.kind == kind && r.name == name && r.api_version.starts_with(group_prefix)
}

/// The ownerReferences the claim should carry (upstream's `updateClaimOwnerRefForSetAndPod`):
/// references to the set and the pod are scrubbed; unless someone else controls the claim, the set
/// gets a controller reference when whenDeleted=Delete (and the pod is in range, if whenScaled is
/// Delete too), and a scaled-down pod gets one when whenScaled=Delete. `pod` must carry its UID.
pub fn desired_claim_refs(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> Vec<OwnerReference> {
    let set_name = set.name_any();
    let pod_name = pod.name_any();
    let set_uid = set.metadata.uid.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let current = claim.metadata.owner_references.clone().unwrap_or_default();
    let ours = |r: &OwnerReference| {
        r.uid == set_uid
            || r.uid == pod_uid
            || matches_ref(r, "StatefulSet", "apps/", &set_name)
            || matches_ref(r, "Pod", "v1", &pod_name)
    };
    let unexpected_controller = controller_of(&claim.metadata).is_some_and(|r| !ours(r));
    let mut refs: Vec<OwnerReference> = current.into_iter().filter(|r| !ours(r)).collect();
    if unexpected_controller {
        return refs;
    }
    let (when_deleted, when_scaled) = retention_policy(set);
    let scaled_down = !in_ordinal_range(pod, set);
    if when_scaled && scaled_down && !pod_uid.is_empty() {
        refs.push(pod_ref(pod));
    } else if when_deleted && !(when_scaled && scaled_down) {
        refs.push(controller_ref(set));
    }
    refs
}

/// Whether the claim's references already are what [`desired_claim_refs`] wants (ignoring order).
pub fn claim_refs_match(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let mut want: Vec<String> = desired_claim_refs(claim, set, pod).into_iter().map(|r| r.uid).collect();
    let mut have: Vec<String> = claim.metadata.owner_references.iter().flatten().map(|r| r.uid.clone()).collect();
    want.sort();
    have.sort();
    want == have
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(policy: (&str, &str)) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {
                "replicas": 3,
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": policy.0, "whenScaled": policy.1},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "c", "image": "nginx"}],
                        "volumes": [{"name": "www", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]
                    }
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "www", "labels": {"tier": "data"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }]
            }
        }))
        .unwrap_or_default()
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
        assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web-x1"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        let s = set(("Retain", "Retain"));
        assert_eq!(pod_name(&s, 4), "web-4");
        assert_eq!(claim_name("www", &s, 4), "www-web-4");
        let mut other = Pod::default();
        other.metadata.name = Some("webx-1".into());
        assert!(!is_member_of(&s, &other));
        assert_eq!(ordinal(&other), 1);
    }

    #[test]
    fn new_pods_carry_identity_and_claims() {
        let s = set(("Retain", "Retain"));
        let p = new_pod(&s, 1);
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(p.metadata.generate_name, None);
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(POD_NAME_LABEL).map(String::as_str), Some("web-1"));
        assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("1"));
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.unwrap_or_default();
        // The claim replaces the template's same-named volume; others stay.
        assert_eq!(vols.len(), 2);
        let www = vols.iter().find(|v| v.name == "www");
        assert_eq!(
            www.and_then(|v| v.persistent_volume_claim.as_ref()).map(|c| c.claim_name.as_str()),
            Some("www-web-1")
        );
        assert!(vols.iter().any(|v| v.name == "cfg" && v.empty_dir.is_some()));
        assert_eq!(controller_of(&p.metadata).map(|r| r.uid.as_str()), Some("set-uid"));
        assert!(identity_matches(&s, &p));
        assert!(storage_matches(&s, &p));
        let mut broken = p.clone();
        if let Some(l) = broken.metadata.labels.as_mut() {
            l.remove(POD_NAME_LABEL);
        }
        assert!(!identity_matches(&s, &broken));
        let mut nostorage = p;
        if let Some(s) = nostorage.spec.as_mut() {
            s.volumes = None;
        }
        assert!(!storage_matches(&s, &nostorage));
    }

    #[test]
    fn claims_merge_selector_labels() {
        let s = set(("Retain", "Retain"));
        let claims = claims_for(&s, 0);
        assert_eq!(claims.len(), 1);
        let (tname, c) = &claims[0];
        assert_eq!(tname, "www");
        assert_eq!(c.metadata.name.as_deref(), Some("www-web-0"));
        assert_eq!(c.metadata.namespace.as_deref(), Some("ns"));
        let labels = c.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get("tier").map(String::as_str), Some("data"));
    }

    #[test]
    fn partition_picks_the_revision() {
        let s = set(("Retain", "Retain"));
        let below = new_versioned_pod(&s, &s, "web-cur", "web-upd", 1);
        let above = new_versioned_pod(&s, &s, "web-cur", "web-upd", 2);
        assert_eq!(pod_revision(&below), "web-cur");
        assert_eq!(pod_revision(&above), "web-upd");
    }

    fn pod_with_uid(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p
    }

    fn uids(refs: &[OwnerReference]) -> Vec<&str> {
        refs.iter().map(|r| r.uid.as_str()).collect()
    }

    #[test]
    fn retention_policy_owner_refs() {
        let claim = PersistentVolumeClaim::default();
        let in_range = pod_with_uid("web-1");
        let scaled = pod_with_uid("web-5");
        // Retain / Retain: no references.
        let s = set(("Retain", "Retain"));
        assert!(desired_claim_refs(&claim, &s, &in_range).is_empty());
        // whenDeleted=Delete: the set controls the claim.
        let s = set(("Delete", "Retain"));
        let refs = desired_claim_refs(&claim, &s, &in_range);
        assert_eq!(uids(&refs), ["set-uid"]);
        assert_eq!(refs[0].controller, Some(true));
        assert_eq!(uids(&desired_claim_refs(&claim, &s, &scaled)), ["set-uid"]);
        // whenScaled=Delete: only scaled-down pods own their claims.
        let s = set(("Retain", "Delete"));
        assert!(desired_claim_refs(&claim, &s, &in_range).is_empty());
        assert_eq!(uids(&desired_claim_refs(&claim, &s, &scaled)), ["uid-web-5"]);
        // Both: the set while in range, the pod once scaled down.
        let s = set(("Delete", "Delete"));
        assert_eq!(uids(&desired_claim_refs(&claim, &s, &in_range)), ["set-uid"]);
        let mut owned = claim.clone();
        owned.metadata.owner_references = Some(desired_claim_refs(&claim, &s, &in_range));
        assert!(claim_refs_match(&owned, &s, &in_range));
        assert!(!claim_refs_match(&owned, &s, &scaled));
        assert_eq!(uids(&desired_claim_refs(&owned, &s, &scaled)), ["uid-web-5"]);
    }

    #[test]
    fn foreign_controllers_are_left_alone() {
        let s = set(("Delete", "Delete"));
        let mut claim = PersistentVolumeClaim::default();
        let foreign = OwnerReference {
            api_version: "example.com/v1".into(),
            kind: "Thing".into(),
            name: "t".into(),
            uid: "t-uid".into(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        claim.metadata.owner_references = Some(vec![foreign, controller_ref(&s)]);
        let refs = desired_claim_refs(&claim, &s, &pod_with_uid("web-0"));
        assert_eq!(uids(&refs), ["t-uid"]);
    }
}
