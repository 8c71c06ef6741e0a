//! Pod-template hashing, as upstream's `controller.ComputeHash`: the value of the
//! `pod-template-hash` label that Deployments put on their ReplicaSets and pods.
//!
//! The hash is FNV-1a (32 bit) over a deterministic dump of the `PodTemplateSpec`
//! (every field, maps in sorted key order) followed, when set, by the
//! collision count (little-endian, 8 bytes as upstream writes it). The decimal
//! form of the sum is then passed through upstream's `SafeEncodeString`, so the
//! result only uses characters that cannot form words and are DNS-label safe.
//! The dump is not byte-identical to Go's spew output, so the hash differs from
//! upstream's for the same template; it is stable across runs and releases of
//! rkube, changes whenever anything in the template changes, and ignores nothing.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label key Deployments add to their ReplicaSets, selectors and pods.
pub const DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY: &str = "pod-template-hash";

/// Upstream's alphabet for `SafeEncodeString`: no vowels, no `0`/`1`/`3`, no ambiguous characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a 32-bit hasher (Go's `hash/fnv.New32a`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a32(u32);

impl Default for Fnv1a32 {
    fn default() -> Self {
        Self(FNV_OFFSET_BASIS)
    }
}

impl Fnv1a32 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub fn sum32(&self) -> u32 {
        self.0
    }
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped onto the safe alphabet.
pub fn safe_encode_string(s: &str) -> String {
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// Writes a deterministic, self-delimiting dump of a JSON value into the hasher:
/// objects in sorted key order, every scalar tagged with its type.
fn dump(value: &Value, h: &mut Fnv1a32) {
    match value {
        Value::Null => h.write(b"n;"),
        Value::Bool(b) => h.write(if *b { b"t;" } else { b"f;" }),
        Value::Number(n) => {
            h.write(b"#");
            h.write(n.to_string().as_bytes());
            h.write(b";");
        }
        Value::String(s) => {
            h.write(b"s");
            h.write(s.len().to_string().as_bytes());
            h.write(b":");
            h.write(s.as_bytes());
        }
        Value::Array(items) => {
            h.write(b"[");
            for item in items {
                dump(item, h);
            }
            h.write(b"]");
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.write(b"{");
            for k in keys {
                h.write(k.len().to_string().as_bytes());
                h.write(b":");
                h.write(k.as_bytes());
                if let Some(v) = map.get(k) {
                    dump(v, h);
                }
            }
            h.write(b"}");
        }
    }
}

/// The `pod-template-hash` of a pod template with the Deployment's collision count.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h = Fnv1a32::new();
    // Serialising a typed k8s-openapi struct cannot fail (no non-string map keys).
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    dump(&value, &mut h);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        h.write(&bytes);
    }
    safe_encode_string(&h.sum32().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values of FNV-1a 32 (Go's hash/fnv New32a).
        let mut h = Fnv1a32::new();
        assert_eq!(h.sum32(), 0x811c9dc5);
        h.write(b"a");
        assert_eq!(h.sum32(), 0xe40c292c);
        let mut h = Fnv1a32::new();
        h.write(b"foobar");
        assert_eq!(h.sum32(), 0xbf9cf968);
    }

    #[test]
    fn safe_encode_maps_digits_like_upstream() {
        // '0'..'9' are bytes 48..57: 48 % 27 = 21 -> '4', ..., 54 % 27 = 0 -> 'b'.
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
        assert!(safe_encode_string("anything at all").bytes().all(|b| ALPHANUMS.contains(&b)));
    }

    #[test]
    fn hash_is_deterministic_and_template_sensitive() {
        let a = compute_hash(&template("nginx:1"), None);
        assert_eq!(a, compute_hash(&template("nginx:1"), None));
        assert_ne!(a, compute_hash(&template("nginx:2"), None));
        assert!(!a.is_empty() && a.len() <= 10);
        assert!(a.bytes().all(|b| ALPHANUMS.contains(&b)));
    }

    #[test]
    fn collision_count_changes_the_hash() {
        let t = template("nginx:1");
        let none = compute_hash(&t, None);
        let zero = compute_hash(&t, Some(0));
        let one = compute_hash(&t, Some(1));
        assert_ne!(none, zero);
        assert_ne!(zero, one);
    }

    #[test]
    fn label_and_annotation_changes_change_the_hash() {
        let base = template("nginx:1");
        let mut restarted = base.clone();
        if let Some(meta) = restarted.metadata.as_mut() {
            meta.annotations =
                Some(BTreeMap::from([("kubectl.kubernetes.io/restartedAt".into(), "2025-01-01T00:00:00Z".into())]));
        }
        assert_ne!(compute_hash(&base, None), compute_hash(&restarted, None));
        let mut relabeled = base.clone();
        if let Some(meta) = relabeled.metadata.as_mut() {
            meta.labels = Some(BTreeMap::from([("app".to_string(), "web2".to_string())]));
        }
        assert_ne!(compute_hash(&base, None), compute_hash(&relabeled, None));
    }

    #[test]
    fn dump_is_unambiguous_between_strings() {
        // "ab" + "c" must not hash like "a" + "bc".
        let mut h1 = Fnv1a32::new();
        dump(&serde_json::json!(["ab", "c"]), &mut h1);
        let mut h2 = Fnv1a32::new();
        dump(&serde_json::json!(["a", "bc"]), &mut h2);
        assert_ne!(h1.sum32(), h2.sum32());
    }
}
