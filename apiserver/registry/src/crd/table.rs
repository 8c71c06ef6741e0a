//! Tables for custom resources (upstream's customresource `tableconvertor`): NAME, then one
//! column per `additionalPrinterColumns` entry, or NAME and AGE when the version has none.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::jsonpath::{JsonPath, to_text};
use crate::printers::{IncludeObject, human_duration};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn meta_doc(field: &str) -> String {
    crate::openapi::definitions()
        .get(META)
        .and_then(|d| d.get("properties"))
        .and_then(|p| p.get(field))
        .and_then(|f| f.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The columns a version serves: its `additionalPrinterColumns`, or the default AGE column.
pub fn effective_columns(columns: &[Value]) -> Vec<Value> {
    if columns.is_empty() {
        vec![json!({"name": "Age", "type": "date", "description": meta_doc("creationTimestamp"),
                    "jsonPath": ".metadata.creationTimestamp"})]
    } else {
        columns.to_vec()
    }
}

/// A meta.k8s.io/v1 Table of custom resources. `columns` are the version's
/// `additionalPrinterColumns` (empty: upstream's default NAME, AGE); `now` drives `date` cells.
pub fn cr_table(columns: &[Value], objects: &[&Value], include: IncludeObject, now: DateTime<Utc>) -> Value {
    let columns = effective_columns(columns);
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
                               "description": meta_doc("name"), "priority": 0})];
    let mut paths = Vec::new();
    for c in &columns {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let jp = s("jsonPath");
        let desc = match s("description") {
            d if d.is_empty() => format!("Custom resource definition column (in JSONPath format): {jp}"),
            d => d,
        };
        defs.push(json!({"name": s("name"), "type": s("type"), "format": s("format"), "description": desc,
                         "priority": c.get("priority").and_then(Value::as_i64).unwrap_or(0)}));
        paths.push((JsonPath::parse(&jp).ok(), s("type")));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![Value::from(obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""))];
            for (path, ty) in &paths {
                let found = path.as_ref().and_then(|p| p.find(obj).into_iter().next());
                cells.push(match found {
                    None => Value::Null,
                    Some(v) => cell(ty, v, now),
                });
            }
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(cells));
            r.insert("object".into(), row_object(obj, include));
            Value::Object(r)
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": defs, "rows": rows})
}

fn cell(ty: &str, v: &Value, now: DateTime<Utc>) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match ty {
        "string" => Value::from(to_text(v)),
        "integer" => match v {
            Value::Number(n) => {
                n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(Value::from).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => match v.as_str() {
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Value::from(human_duration(now - t.with_timezone(&Utc))),
                Err(_) => Value::from("<invalid>"),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-01T01:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn default_columns_are_name_and_age() {
        let o = json!({"metadata": {"name": "a", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        let t = cr_table(&[], &[&o], IncludeObject::None, now());
        let names: Vec<&str> =
            t["columnDefinitions"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, vec!["Name", "Age"]);
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["a", "60m"]));
        assert_eq!(t["rows"][0]["object"], Value::Null);
    }

    #[test]
    fn printer_columns_typed_cells() {
        let cols = vec![
            json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}),
            json!({"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1}),
            json!({"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status",
                   "description": "readiness"}),
            json!({"name": "On", "type": "boolean", "jsonPath": ".spec.on"}),
            json!({"name": "Ports", "type": "string", "jsonPath": ".spec.ports"}),
            json!({"name": "Started", "type": "date", "jsonPath": ".status.started"}),
            json!({"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"}),
        ];
        let o = json!({"metadata": {"name": "x"}, "spec": {"replicas": 2.0, "ratio": 3, "on": true, "ports": [80]},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}], "started": "2023-12-31T23:00:00Z"}});
        let t = cr_table(&cols, &[&o], IncludeObject::Metadata, now());
        assert_eq!(t["rows"][0]["cells"], json!(["x", 2, 3.0, "True", true, "[80]", "120m", null]));
        assert_eq!(t["columnDefinitions"][2]["priority"], 1);
        assert_eq!(t["columnDefinitions"][3]["description"], "readiness");
        assert_eq!(
            t["columnDefinitions"][1]["description"],
            "Custom resource definition column (in JSONPath format): .spec.replicas"
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
