//! Server-side table printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`):
//! the `meta.k8s.io/v1` Table that drives every `kubectl get` column.
//!
//! This module owns the column definitions and cell values of each built-in
//! resource, following upstream 1.33's `pkg/printers/internalversion` handlers,
//! and the default table (NAME, CREATED AT) for every other resource. As upstream's
//! apiserver does, it always renders the wide cells; clients hide the columns with
//! `priority` 1 unless asked for `-o wide`. List metadata (resourceVersion,
//! continue) is left for the apiserver to fill in.
//!
//! Printers never fail: missing or mistyped fields print as upstream's zero values.

mod apps;
mod corev1;
mod misc;
mod util;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The `includeObject` query parameter of a Table request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object in the rows (`"object": null`).
    None,
    /// A `PartialObjectMetadata` carrying the object's metadata (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the query value; `None` for an unrecognised value (upstream: 400 Bad Request).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Metadata" => Some(Self::Metadata),
            "None" => Some(Self::None),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// A meta.k8s.io/v1 Table for objects of one resource. `now` is used for AGE etc.
pub fn table(group: &str, resource: &str, objects: &[&Value], include: IncludeObject, now: DateTime<Utc>) -> Value {
    let (columns, mut printed): (Vec<Col>, Vec<(Row, &Value)>) = match printer_for(group, resource) {
        Some(p) => ((p.columns)(), objects.iter().map(|o| ((p.row)(o, now), *o)).collect()),
        None => (default_columns(), objects.iter().map(|o| (default_row(o), *o)).collect()),
    };
    if (group, resource) == ("flowcontrol.apiserver.k8s.io", "flowschemas") {
        // Upstream prints FlowSchemas in matching order: precedence, then name.
        printed.sort_by(|a, b| {
            let key = |v: &Value| (util::int(v, "spec.matchingPrecedence"), util::name(v).to_string());
            key(a.1).cmp(&key(b.1))
        });
    }
    let rows: Vec<Value> = printed
        .into_iter()
        .map(|(row, obj)| {
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(row.cells));
            if !row.conditions.is_empty() {
                r.insert("conditions".into(), Value::Array(row.conditions));
            }
            r.insert("object".into(), row_object(obj, include));
            Value::Object(r)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns.iter().map(Col::definition).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// Human durations as upstream's `duration.HumanDuration`: about 2–3 significant
/// figures ("59s", "119s", "2m3s", "10m", "179m", "3h", "7h59m", "47h", "2d3h",
/// "8d", "729d", "2y4d", "8y"); "0s" within a second of the future, "<invalid>"
/// beyond that.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// The object carried by a row, per `includeObject`.
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

// ---------------------------------------------------------------------------
// Columns and rows

/// Where a column's description comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Desc {
    /// Literal text.
    Text(&'static str),
    /// The OpenAPI description of `definition.properties[field]` ("" if absent, as
    /// upstream's `SwaggerDoc()[field]` lookups of unknown fields are).
    Doc(&'static str, &'static str),
}

/// One `TableColumnDefinition`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Col {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub priority: i64,
    pub desc: Desc,
}

pub(crate) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

impl Col {
    pub(crate) const fn new(name: &'static str, ty: &'static str, desc: Desc) -> Self {
        Col { name, ty, format: "", priority: 0, desc }
    }
    /// Shown only with `-o wide`.
    pub(crate) const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }
    pub(crate) const fn format(mut self, format: &'static str) -> Self {
        self.format = format;
        self
    }
    /// The NAME column every printer starts with.
    pub(crate) const fn name() -> Self {
        Col::new("Name", "string", Desc::Doc(META, "name")).format("name")
    }
    /// The AGE column.
    pub(crate) const fn age() -> Self {
        Col::new("Age", "string", Desc::Doc(META, "creationTimestamp"))
    }

    fn description(&self) -> String {
        match self.desc {
            Desc::Text(t) => t.to_string(),
            Desc::Doc(def, field) => crate::openapi::definitions()
                .get(def)
                .and_then(|d| d.get("properties"))
                .and_then(|p| p.get(field))
                .and_then(|f| f.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description(),
            "priority": self.priority,
        })
    }
}

/// Shorthand: a string column described by text.
pub(crate) const fn text(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col::new(name, ty, Desc::Text(desc))
}

/// Shorthand: a column described by an OpenAPI field.
pub(crate) const fn doc(name: &'static str, ty: &'static str, def: &'static str, field: &'static str) -> Col {
    Col::new(name, ty, Desc::Doc(def, field))
}

/// One printed row: cells plus optional `TableRowCondition`s.
#[derive(Debug, Default)]
pub(crate) struct Row {
    pub cells: Vec<Value>,
    pub conditions: Vec<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Row { cells, conditions: Vec::new() }
    }
}

/// `cells![a, b, c]`: a row of JSON cells from strings, integers and booleans.
macro_rules! cells {
    ($($e:expr),* $(,)?) => { $crate::printers::Row::from(vec![$(serde_json::Value::from($e)),*]) };
}
pub(crate) use cells;

pub(crate) type RowFn = fn(&Value, DateTime<Utc>) -> Row;

/// A resource's printer: its columns and how to print one object.
pub(crate) struct Printer {
    pub columns: fn() -> Vec<Col>,
    pub row: RowFn,
}

fn p(columns: fn() -> Vec<Col>, row: RowFn) -> Option<Printer> {
    Some(Printer { columns, row })
}

/// The printer of a built-in resource, by API group and plural resource name.
fn printer_for(group: &str, resource: &str) -> Option<Printer> {
    match (group, resource) {
        ("", "pods") => p(corev1::pod_columns, corev1::pod_row),
        ("", "podtemplates") => p(corev1::pod_template_columns, corev1::pod_template_row),
        ("", "replicationcontrollers") => p(corev1::rc_columns, corev1::rc_row),
        ("", "services") => p(corev1::service_columns, corev1::service_row),
        ("", "endpoints") => p(corev1::endpoints_columns, corev1::endpoints_row),
        ("", "nodes") => p(corev1::node_columns, corev1::node_row),
        ("", "namespaces") => p(corev1::namespace_columns, corev1::namespace_row),
        ("", "events") | ("events.k8s.io", "events") => p(corev1::event_columns, corev1::event_row),
        ("", "secrets") => p(corev1::secret_columns, corev1::secret_row),
        ("", "configmaps") => p(corev1::configmap_columns, corev1::configmap_row),
        ("", "serviceaccounts") => p(corev1::serviceaccount_columns, corev1::serviceaccount_row),
        ("", "persistentvolumes") => p(corev1::pv_columns, corev1::pv_row),
        ("", "persistentvolumeclaims") => p(corev1::pvc_columns, corev1::pvc_row),
        ("", "componentstatuses") => p(corev1::componentstatus_columns, corev1::componentstatus_row),
        ("", "resourcequotas") => p(corev1::resourcequota_columns, corev1::resourcequota_row),
        ("apps", "deployments") => p(apps::deployment_columns, apps::deployment_row),
        ("apps", "replicasets") => p(apps::replicaset_columns, apps::replicaset_row),
        ("apps", "statefulsets") => p(apps::statefulset_columns, apps::statefulset_row),
        ("apps", "daemonsets") => p(apps::daemonset_columns, apps::daemonset_row),
        ("apps", "controllerrevisions") => p(apps::controllerrevision_columns, apps::controllerrevision_row),
        ("batch", "jobs") => p(apps::job_columns, apps::job_row),
        ("batch", "cronjobs") => p(apps::cronjob_columns, apps::cronjob_row),
        ("autoscaling", "horizontalpodautoscalers") => p(apps::hpa_columns, apps::hpa_row),
        ("policy", "poddisruptionbudgets") => p(apps::pdb_columns, apps::pdb_row),
        ("networking.k8s.io", "ingresses") => p(misc::ingress_columns, misc::ingress_row),
        ("networking.k8s.io", "ingressclasses") => p(misc::ingressclass_columns, misc::ingressclass_row),
        ("networking.k8s.io", "networkpolicies") => p(misc::networkpolicy_columns, misc::networkpolicy_row),
        ("networking.k8s.io", "ipaddresses") => p(misc::ipaddress_columns, misc::ipaddress_row),
        ("networking.k8s.io", "servicecidrs") => p(misc::servicecidr_columns, misc::servicecidr_row),
        ("discovery.k8s.io", "endpointslices") => p(misc::endpointslice_columns, misc::endpointslice_row),
        ("rbac.authorization.k8s.io", "rolebindings") => p(misc::rolebinding_columns, misc::binding_row),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => p(misc::clusterrolebinding_columns, misc::binding_row),
        ("storage.k8s.io", "storageclasses") => p(misc::storageclass_columns, misc::storageclass_row),
        ("storage.k8s.io", "csidrivers") => p(misc::csidriver_columns, misc::csidriver_row),
        ("storage.k8s.io", "csinodes") => p(misc::csinode_columns, misc::csinode_row),
        ("storage.k8s.io", "csistoragecapacities") => p(misc::csistoragecapacity_columns, misc::csistoragecapacity_row),
        ("storage.k8s.io", "volumeattachments") => p(misc::volumeattachment_columns, misc::volumeattachment_row),
        ("storage.k8s.io", "volumeattributesclasses") => {
            p(misc::volumeattributesclass_columns, misc::volumeattributesclass_row)
        }
        ("scheduling.k8s.io", "priorityclasses") => p(misc::priorityclass_columns, misc::priorityclass_row),
        ("node.k8s.io", "runtimeclasses") => p(misc::runtimeclass_columns, misc::runtimeclass_row),
        ("certificates.k8s.io", "certificatesigningrequests") => p(misc::csr_columns, misc::csr_row),
        ("certificates.k8s.io", "clustertrustbundles") => p(misc::ctb_columns, misc::ctb_row),
        ("coordination.k8s.io", "leases") => p(misc::lease_columns, misc::lease_row),
        ("coordination.k8s.io", "leasecandidates") => p(misc::leasecandidate_columns, misc::leasecandidate_row),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
        | ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            p(misc::webhook_columns, misc::webhook_row)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => p(misc::vap_columns, misc::vap_row),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => p(misc::map_columns, misc::map_row),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings")
        | ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings") => {
            p(misc::policybinding_columns, misc::policybinding_row)
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => p(misc::flowschema_columns, misc::flowschema_row),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => p(misc::plc_columns, misc::plc_row),
        ("resource.k8s.io", "deviceclasses") | ("resource.k8s.io", "resourceclaimtemplates") => {
            p(misc::name_age_columns, misc::name_age_row)
        }
        ("resource.k8s.io", "resourceclaims") => p(misc::resourceclaim_columns, misc::resourceclaim_row),
        ("resource.k8s.io", "resourceslices") => p(misc::resourceslice_columns, misc::resourceslice_row),
        _ => None,
    }
}

/// Upstream's default table (`rest.NewDefaultTableConvertor`): used for every resource
/// without a printer (roles, clusterroles, limitranges, custom resources without
/// additionalPrinterColumns, ...).
fn default_columns() -> Vec<Col> {
    vec![Col::name(), doc("Created At", "date", META, "creationTimestamp")]
}

fn default_row(obj: &Value) -> Row {
    let created = util::parse_time(util::at(obj, "metadata.creationTimestamp"))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    cells![util::name(obj), created]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    pub(crate) fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).single().unwrap_or_default()
    }

    #[test]
    fn human_duration_table() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (95 * 60, "95m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600 + 30 * 60, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (734 * 86400, "2y4d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400 + 100 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(*secs)), *want, "{secs}s");
        }
        // Just under a second in the future still reads as now.
        assert_eq!(human_duration(Duration::milliseconds(-1500)), "0s");
    }

    #[test]
    fn table_shape_and_include_object() {
        let cm = json!({"metadata": {"name": "cfg", "namespace": "default", "creationTimestamp": "2025-06-01T11:55:00Z",
            "labels": {"a": "b"}}, "data": {"x": "1", "y": "2"}, "binaryData": {"z": ""}});
        let t = table("", "configmaps", &[&cm], IncludeObject::Metadata, now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({}));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][0]["priority"], 0);
        assert!(
            t["columnDefinitions"][0]["description"].as_str().is_some_and(|d| d.starts_with("Name must be unique"))
        );
        assert_eq!(t["rows"][0]["cells"], json!(["cfg", 3, "5m"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["a"], "b");
        assert!(t["rows"][0]["object"].get("data").is_none());

        let t = table("", "configmaps", &[&cm], IncludeObject::Object, now());
        assert_eq!(t["rows"][0]["object"], cm);
        let t = table("", "configmaps", &[&cm], IncludeObject::None, now());
        assert_eq!(t["rows"][0]["object"], Value::Null);
        assert!(t["rows"][0].get("conditions").is_none());
        assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("bogus"), None);
    }

    #[test]
    fn default_table_for_roles_and_unknown_resources() {
        let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2025-05-01T10:00:00+02:00"}});
        let t = table("rbac.authorization.k8s.io", "roles", &[&role], IncludeObject::None, now());
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["reader", "2025-05-01T08:00:00Z"]));
        let t = table("example.com", "widgets", &[&json!({"metadata": {"name": "w"}})], IncludeObject::None, now());
        assert_eq!(t["rows"][0]["cells"], json!(["w", "0001-01-01T00:00:00Z"]));
        // A CRD that happens to be called "pods" in another group gets the default table.
        let t = table("example.com", "pods", &[], IncludeObject::None, now());
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(2));
        assert_eq!(t["rows"], json!([]));
    }

    #[test]
    fn garbage_objects_do_not_panic() {
        let junk = [json!(null), json!(3), json!({"metadata": 5, "spec": [], "status": "x"})];
        let refs: Vec<&Value> = junk.iter().collect();
        for (g, r) in [
            ("", "pods"),
            ("", "services"),
            ("", "nodes"),
            ("", "events"),
            ("apps", "deployments"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
            ("", "resourcequotas"),
            ("apps", "controllerrevisions"),
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
            ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
            ("x", "y"),
        ] {
            let t = table(g, r, &refs, IncludeObject::Metadata, now());
            assert_eq!(t["rows"].as_array().map(Vec::len), Some(3), "{g}/{r}");
        }
    }

    const BUILT_IN: &[(&str, &str)] = &[
        ("", "pods"),
        ("", "podtemplates"),
        ("", "replicationcontrollers"),
        ("", "services"),
        ("", "endpoints"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "secrets"),
        ("", "configmaps"),
        ("", "serviceaccounts"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "componentstatuses"),
        ("", "resourcequotas"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        ("networking.k8s.io", "ipaddresses"),
        ("networking.k8s.io", "servicecidrs"),
        ("discovery.k8s.io", "endpointslices"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "csistoragecapacities"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "volumeattributesclasses"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        ("certificates.k8s.io", "certificatesigningrequests"),
        ("certificates.k8s.io", "clustertrustbundles"),
        ("coordination.k8s.io", "leases"),
        ("coordination.k8s.io", "leasecandidates"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings"),
        ("flowcontrol.apiserver.k8s.io", "flowschemas"),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
        ("resource.k8s.io", "deviceclasses"),
        ("resource.k8s.io", "resourceclaims"),
        ("resource.k8s.io", "resourceclaimtemplates"),
        ("resource.k8s.io", "resourceslices"),
    ];

    #[test]
    fn every_printer_is_consistent() {
        // Descriptions upstream looks up under a field that does not exist (and so prints "").
        let known_empty = [(META, "handler"), (META, "binaryVersion"), (META, "emulationVersion")];
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2025-06-01T11:59:00Z"}});
        for (g, r) in BUILT_IN {
            let Some(p) = printer_for(g, r) else { panic!("no printer for {g}/{r}") };
            let cols = (p.columns)();
            assert_eq!(cols[0].name, if *r == "events" { "Last Seen" } else { "Name" }, "{g}/{r}");
            for c in &cols {
                if let Desc::Doc(def, field) = c.desc
                    && !known_empty.contains(&(def, field))
                {
                    assert!(!c.description().is_empty(), "{g}/{r} column {}: no doc for {def}.{field}", c.name);
                }
                assert!(matches!(c.ty, "string" | "integer" | "boolean" | "date"), "{g}/{r} {}", c.name);
            }
            let cells = (p.row)(&obj, now()).cells;
            // Upstream's IPAddress printer declares two columns but prints three cells.
            let extra = usize::from(*r == "ipaddresses");
            assert_eq!(cells.len(), cols.len() + extra, "{g}/{r}");
            let t = table(g, r, &[&obj], IncludeObject::None, now());
            let name_col = cols.iter().position(|c| c.format == "name").unwrap_or(usize::MAX);
            assert_eq!(t["rows"][0]["cells"][name_col], "x", "{g}/{r}");
        }
    }

    #[test]
    fn flowschemas_sorted_by_precedence() {
        let a = json!({"metadata": {"name": "b"}, "spec": {"matchingPrecedence": 500, "priorityLevelConfiguration": {"name": "x"}}});
        let b = json!({"metadata": {"name": "a"}, "spec": {"matchingPrecedence": 1000}});
        let c = json!({"metadata": {"name": "exempt"}, "spec": {"matchingPrecedence": 1}});
        let t = table("flowcontrol.apiserver.k8s.io", "flowschemas", &[&b, &a, &c], IncludeObject::None, now());
        let names: Vec<&str> =
            t["rows"].as_array().map(|r| r.iter().filter_map(|r| r["cells"][0].as_str()).collect()).unwrap_or_default();
        assert_eq!(names, ["exempt", "b", "a"]);
        assert_eq!(t["rows"][1]["cells"], json!(["b", "x", 500, "<none>", "<unknown>", "?"]));
    }
}
