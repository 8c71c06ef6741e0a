//! ControllerRevisions of a StatefulSet (upstream's history package and the revision helpers of
//! stateful_set_utils.go, pure functions).
//!
//! A revision's `data` is the strategic-merge patch `{"spec":{"template":{…,"$patch":"replace"}}}`
//! that restores the set's pod template — exactly what `kubectl rollout undo statefulset` sends
//! back as a patch. The revision is named `<set>-<hash>`, the hash being FNV-1 (32 bit) over the
//! JSON of the data followed by the decimal collision count, encoded with `SafeEncodeString`; its
//! labels are the template's plus `controller.kubernetes.io/hash`, its annotations the set's, and
//! the set controls it.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::ResourceExt;
use rkube_controller_common::hash::safe_encode_string;
use rkube_controller_common::owner::controller_ref;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// `controller.kubernetes.io/hash`: the hash part of the revision's name.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Go's `hash/fnv.New32` (FNV-1: multiply, then xor).
fn fnv1_32(chunks: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for b in *chunk {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    }
    h
}

/// The patch restoring the set's template (upstream's `getPatch`); object keys are sorted, as Go
/// marshals maps.
pub fn patch_of(set: &StatefulSet) -> Value {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut t = serde_json::to_value(&template).unwrap_or(Value::Null);
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// Upstream's `HashControllerRevision`: FNV-1 over the data's JSON, then the collision count.
pub fn hash_data(data: &Value, collision_count: i32) -> String {
    let raw = serde_json::to_vec(data).unwrap_or_default();
    let probe = collision_count.to_string();
    safe_encode_string(&fnv1_32(&[&raw, probe.as_bytes()]).to_string())
}

/// Upstream's `ControllerRevisionName`: `<prefix>-<hash>`, the prefix cut to 223 characters.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(223);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// A new revision of the set's current template (upstream's `newRevision`).
pub fn new_revision(set: &StatefulSet, revision: i64, collision_count: i32) -> ControllerRevision {
    let data = patch_of(set);
    let hash = hash_data(&data, collision_count);
    let mut labels: BTreeMap<String, String> =
        set.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
    let annotations = set.metadata.annotations.clone().unwrap_or_default();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&set.name_any(), &hash)),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// The data of a revision (`null` when absent).
pub fn data_of(rev: &ControllerRevision) -> &Value {
    rev.data.as_ref().map_or(&Value::Null, |d| &d.0)
}

/// Upstream's `FindEqualRevisions` (semantic equality of the data).
pub fn equal_revisions<'a>(
    revisions: &'a [ControllerRevision],
    needle: &ControllerRevision,
) -> Vec<&'a ControllerRevision> {
    revisions.iter().filter(|r| data_of(r) == data_of(needle)).collect()
}

/// Sorts by revision number, then creation time, then name (upstream's `SortControllerRevisions`).
pub fn sort_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ta.cmp(&tb)
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

/// Upstream's `nextRevision`: one more than the last (sorted) revision, or 1.
pub fn next_revision(sorted: &[ControllerRevision]) -> i64 {
    sorted.last().map_or(1, |r| r.revision.saturating_add(1))
}

/// The template a revision restores (upstream's `ApplyRevision` for this patch shape): the set
/// with its template replaced. Data that does not hold a template leaves the set unchanged.
pub fn apply_revision(set: &StatefulSet, rev: &ControllerRevision) -> StatefulSet {
    let mut out = set.clone();
    let Some(t) = data_of(rev).pointer("/spec/template") else { return out };
    let mut t = t.clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("$patch");
    }
    if let (Ok(template), Some(spec)) = (serde_json::from_value::<PodTemplateSpec>(t), out.spec.as_mut()) {
        spec.template = template;
    }
    out
}

/// Revisions to delete (upstream's `truncateHistory`): those that are neither current, nor update,
/// nor the revision of a live pod, beyond the `limit` most recent.
pub fn to_truncate<'a>(
    sorted: &'a [ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<&'a ControllerRevision> {
    let non_live: Vec<&ControllerRevision> = sorted.iter().filter(|r| !live.contains(&r.name_any())).collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if non_live.len() <= limit {
        return Vec::new();
    }
    let excess = non_live.len() - limit;
    non_live.into_iter().take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(image: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "annotations": {"kubernetes.io/change-cause": "x"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "serviceName": "web",
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}
                }
            }
        }))
        .unwrap_or_default()
    }

    #[test]
    fn fnv1_matches_go_reference_values() {
        // Go: fnv.New32() over "" is the offset basis, over "a" is 0x050c5d7e.
        assert_eq!(fnv1_32(&[b""]), 0x811c_9dc5);
        assert_eq!(fnv1_32(&[b"a"]), 0x050c_5d7e);
        assert_eq!(fnv1_32(&[b"foo"]), 0x408f_5e13);
    }

    #[test]
    fn patch_replaces_the_template() {
        let p = patch_of(&set("nginx:1"));
        assert_eq!(p["spec"]["template"]["$patch"], "replace");
        assert_eq!(p["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1");
        assert_eq!(p.as_object().map(|o| o.len()), Some(1));
        // Keys are sorted, as Go marshals maps.
        let s = serde_json::to_string(&p["spec"]["template"]).unwrap_or_default();
        assert!(s.starts_with("{\"$patch\":\"replace\",\"metadata\""), "{s}");
    }

    #[test]
    fn revisions_are_named_by_hash() {
        let s = set("nginx:1");
        let r = new_revision(&s, 3, 0);
        let hash = r.labels().get(REVISION_HASH_LABEL).cloned().unwrap_or_default();
        assert!(!hash.is_empty());
        assert_eq!(r.name_any(), format!("web-{hash}"));
        assert_eq!(r.revision, 3);
        assert_eq!(r.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(r.annotations().get("kubernetes.io/change-cause").map(String::as_str), Some("x"));
        assert_eq!(r.metadata.owner_references.as_ref().map(|o| o[0].uid.as_str()), Some("u1"));
        // Same template: same name; another template or collision count: another name.
        assert_eq!(new_revision(&s, 9, 0).name_any(), r.name_any());
        assert_ne!(new_revision(&set("nginx:2"), 3, 0).name_any(), r.name_any());
        assert_ne!(new_revision(&s, 3, 1).name_any(), r.name_any());
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn apply_restores_the_template() {
        let old = new_revision(&set("nginx:1"), 1, 0);
        let cur = set("nginx:2");
        let restored = apply_revision(&cur, &old);
        let image =
            restored.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| s.containers[0].image.clone());
        assert_eq!(image, Some(Some("nginx:1".to_string())));
        assert_eq!(patch_of(&restored), patch_of(&set("nginx:1")));
        assert_eq!(equal_revisions(std::slice::from_ref(&old), &new_revision(&restored, 7, 0)).len(), 1);
    }

    #[test]
    fn history_truncation_keeps_live_and_recent() {
        let mut revs: Vec<ControllerRevision> =
            (1..=5).map(|i| new_revision(&set(&format!("nginx:{i}")), i, 0)).collect();
        revs.reverse();
        sort_revisions(&mut revs);
        assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(next_revision(&revs), 6);
        assert_eq!(next_revision(&[]), 1);
        let live: HashSet<String> = [revs[0].name_any(), revs[4].name_any()].into();
        // Non-live: 2, 3, 4; keep the 2 newest.
        let gone: Vec<i64> = to_truncate(&revs, &live, 2).iter().map(|r| r.revision).collect();
        assert_eq!(gone, [2]);
        assert!(to_truncate(&revs, &live, 3).is_empty());
        assert_eq!(to_truncate(&revs, &live, 0).len(), 3);
    }
}
