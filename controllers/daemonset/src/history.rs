//! DaemonSet revision history in ControllerRevisions (pure parts), as upstream's daemon
//! `update.go` history helpers and what `kubectl rollout history/undo daemonset` read:
//!
//! - a revision is named `<ds>-<hash>` (the pod-template hash with the collision count), labelled
//!   with the template's labels plus `controller-revision-hash`, annotated with the DaemonSet's
//!   annotations (so `kubernetes.io/change-cause` shows in `rollout history`), controlled by the
//!   DaemonSet, and its `data` is the strategic-merge patch
//!   `{"spec":{"template":{…,"$patch":"replace"}}}` that `rollout undo` applies to the DaemonSet;
//! - a revision "matches" the DaemonSet when its data equals that patch for the current template;
//! - the current revision has the highest number; old ones beyond `revisionHistoryLimit` go,
//!   oldest first, unless a live pod still carries their hash.

use crate::placement::CONTROLLER_REVISION_HASH_LABEL;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use rkube_controller_common::hash::compute_hash;
use rkube_controller_common::owner::controller_ref;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Upstream's `getPatch`: the patch replacing `spec.template` with the DaemonSet's template.
pub fn revision_data(ds: &DaemonSet) -> Value {
    let mut template = serde_json::to_value(crate::placement::template(ds)).unwrap_or_else(|_| json!({}));
    if let Some(obj) = template.as_object_mut() {
        obj.insert("$patch".to_string(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// Upstream's `Match`: whether the revision holds the DaemonSet's current template.
pub fn matches(ds: &DaemonSet, rev: &ControllerRevision) -> bool {
    rev.data.as_ref().is_some_and(|d| d.0 == revision_data(ds))
}

/// The hash naming the DaemonSet's current revision (template + collision count).
pub fn template_hash(ds: &DaemonSet) -> String {
    let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    compute_hash(&crate::placement::template(ds), collision_count)
}

/// A new revision of the DaemonSet's current template (upstream's `snapshot`, before the create).
pub fn new_revision(ds: &DaemonSet, revision: i64) -> ControllerRevision {
    let hash = template_hash(ds);
    let ds_name = ds.metadata.name.clone().unwrap_or_default();
    let mut labels = crate::placement::template(ds).metadata.and_then(|m| m.labels).unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{ds_name}-{hash}")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        data: Some(RawExtension(revision_data(ds))),
        revision,
    }
}

/// The hash label of a revision (upstream labels every revision it adopts with its name).
pub fn revision_hash(rev: &ControllerRevision) -> Option<&str> {
    rev.metadata.labels.as_ref()?.get(CONTROLLER_REVISION_HASH_LABEL).map(String::as_str)
}

/// The highest revision number (0 for none).
pub fn max_revision(revs: &[ControllerRevision]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0)
}

/// Upstream's `cleanupHistory` choice: the old revisions to delete, oldest first, keeping
/// `limit` of them and any whose hash a live pod still carries.
pub fn revisions_to_delete(old: &[ControllerRevision], limit: i32, live_hashes: &HashSet<String>) -> Vec<String> {
    let mut to_kill = old.len() as i64 - i64::from(limit.max(0));
    if to_kill <= 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&ControllerRevision> = old.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let mut out = Vec::new();
    for rev in sorted {
        if to_kill <= 0 {
            break;
        }
        if revision_hash(rev).is_some_and(|h| live_hashes.contains(h)) {
            continue;
        }
        out.push(rev.metadata.name.clone().unwrap_or_default());
        to_kill -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(image: &str) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns", "uid": "u1",
                         "annotations": {"kubernetes.io/change-cause": "because"}},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}},
                             "spec": {"containers": [{"name": "c", "image": image}]}}
            }
        }))
        .unwrap_or_default()
    }

    fn rev(name: &str, hash: &str, revision: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string())].into()),
                ..Default::default()
            },
            data: None,
            revision,
        }
    }

    #[test]
    fn revisions_hold_a_replace_patch_of_the_template() {
        let d = ds("a:1");
        let r = new_revision(&d, 3);
        let hash = template_hash(&d);
        assert_eq!(r.metadata.name, Some(format!("d-{hash}")));
        assert_eq!(r.revision, 3);
        assert_eq!(revision_hash(&r), Some(hash.as_str()));
        assert_eq!(r.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("d"));
        assert_eq!(
            r.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/change-cause")).map(String::as_str),
            Some("because")
        );
        let owner = r.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(
            owner.first().map(|o| (o.kind.as_str(), o.uid.as_str(), o.controller)),
            Some(("DaemonSet", "u1", Some(true)))
        );
        let data = r.data.clone().map(|d| d.0).unwrap_or_default();
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(data["spec"]["template"]["spec"]["containers"][0]["image"], "a:1");
        assert!(matches(&d, &r));
        assert!(!matches(&ds("a:2"), &r));
    }

    #[test]
    fn hash_changes_with_template_and_collisions() {
        let a = template_hash(&ds("a:1"));
        assert_ne!(a, template_hash(&ds("a:2")));
        let mut bumped = ds("a:1");
        bumped.status =
            Some(k8s_openapi::api::apps::v1::DaemonSetStatus { collision_count: Some(1), ..Default::default() });
        assert_ne!(a, template_hash(&bumped));
        assert_eq!(a, template_hash(&ds("a:1")));
    }

    #[test]
    fn cleanup_keeps_the_limit_and_live_hashes() {
        let old = vec![rev("r3", "h3", 3), rev("r1", "h1", 1), rev("r2", "h2", 2), rev("r4", "h4", 4)];
        assert_eq!(max_revision(&old), 4);
        let none = HashSet::new();
        assert_eq!(revisions_to_delete(&old, 2, &none), ["r1", "r2"]);
        assert!(revisions_to_delete(&old, 4, &none).is_empty());
        let live: HashSet<String> = ["h1".to_string()].into();
        assert_eq!(revisions_to_delete(&old, 2, &live), ["r2", "r3"]);
        assert_eq!(revisions_to_delete(&old, 0, &none).len(), 4);
    }
}
