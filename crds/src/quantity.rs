//! Schema helpers shared by the CRD types: a resource quantity that accepts `4` as well as `"4"`
//! (the int-or-string schema controller-gen emits for `resource.Quantity`), and the Go duration
//! string (`metav1.Duration`: "1.5s", "2m30s").

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// The grammar of a Kubernetes resource quantity (upstream's `resource.Quantity` serialization).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A Go `time.Duration` string: one or more `<number><unit>` with units ns, us, µs, ms, s, m, h; or "0".
pub const DURATION_PATTERN: &str = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$";

/// A resource quantity ("500m", "16Gi", 4). Always serialized as a string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl Quantity {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            other => Err(serde::de::Error::custom(format!("quantity must be a string or a number, got {other}"))),
        }
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": true,
        })
    }
}

/// `schema_with` for an optional Go duration string.
pub fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": DURATION_PATTERN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_accept_numbers_and_strings() {
        let q: Quantity = serde_json::from_value(serde_json::json!(4)).unwrap();
        assert_eq!(q.as_str(), "4");
        let q: Quantity = serde_json::from_value(serde_json::json!("16Gi")).unwrap();
        assert_eq!(q, Quantity::new("16Gi"));
        assert_eq!(serde_json::to_value(&q).unwrap(), serde_json::json!("16Gi"));
        assert!(serde_json::from_value::<Quantity>(serde_json::json!(true)).is_err());
        assert!(serde_json::from_value::<Quantity>(serde_json::json!({"a": 1})).is_err());
    }

    #[test]
    fn patterns_match_upstream_grammar() {
        // The apiserver enforces `pattern` with an RE2-syntax engine; the patterns are anchored.
        let q = regex_lite(QUANTITY_PATTERN);
        for ok in ["4", "500m", "16Gi", "1.5", "1e3", "+2k", ".5"] {
            assert!(q(ok), "{ok} should be a quantity");
        }
        for bad in ["", "4 cores", "Gi", "1.5.5", "16GB"] {
            assert!(!q(bad), "{bad} should not be a quantity");
        }
        let d = regex_lite(DURATION_PATTERN);
        for ok in ["0", "2s", "1.5s", "2m30s", "500ms", "1h"] {
            assert!(d(ok), "{ok} should be a duration");
        }
        for bad in ["", "10", "-1s", "soon", "1d"] {
            assert!(!d(bad), "{bad} should not be a duration");
        }
    }

    fn regex_lite(p: &str) -> impl Fn(&str) -> bool {
        let re = regex::Regex::new(p).unwrap();
        move |s| re.is_match(s)
    }
}
