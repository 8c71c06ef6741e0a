//! Table printers for the remaining built-in groups: networking (ingresses,
//! ingress classes, network policies, IP addresses, service CIDRs), discovery
//! (endpoint slices), RBAC bindings, storage, scheduling, node, certificates,
//! coordination, admission registration, flow control and resource (DRA).

use super::util::{
    age, at, boolean, format_label_selector, int, int_opt, list, list_with_more, load_balancer_ingress, name, quantity,
    st, st_opt,
};
use super::{Col, META, Row, cells, doc, human_duration, text};
use chrono::{DateTime, Utc};
use serde_json::Value;

const STORAGE_CLASS: &str = "io.k8s.api.storage.v1.StorageClass";
const CSI_DRIVER_SPEC: &str = "io.k8s.api.storage.v1.CSIDriverSpec";
const VA_SPEC: &str = "io.k8s.api.storage.v1.VolumeAttachmentSpec";
const PRIORITY_CLASS: &str = "io.k8s.api.scheduling.v1.PriorityClass";
const CSR_SPEC: &str = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec";
const ENDPOINT_SLICE: &str = "io.k8s.api.discovery.v1.EndpointSlice";
const FS_SPEC: &str = "io.k8s.api.flowcontrol.v1.FlowSchemaSpec";
const QUEUING: &str = "io.k8s.api.flowcontrol.v1.QueuingConfiguration";
const SLICE_SPEC: &str = "io.k8s.api.resource.v1beta1.ResourceSliceSpec";

/// The value, or `placeholder` when empty.
fn or(s: &str, placeholder: &str) -> String {
    if s.is_empty() { placeholder.to_string() } else { s.to_string() }
}

// ---------------------------------------------------------------------------
// networking.k8s.io

pub(crate) fn ingress_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        text("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        text("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        text("Ports", "string", "Ports of TLS configurations that open"),
        Col::age(),
    ]
}

/// `formatHosts`: up to three hosts, "*" when none are named.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = st(rule, "host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let ret = hosts.join(",");
    if more { format!("{ret} + {} more...", rules.len() - MAX) } else { ret }
}

pub(crate) fn ingress_row(ing: &Value, now: DateTime<Utc>) -> Row {
    let class = st_opt(ing, "spec.ingressClassName").unwrap_or("<none>");
    let ports = if list(ing, "spec.tls").is_empty() { "80" } else { "80, 443" };
    cells![
        name(ing),
        class,
        format_hosts(list(ing, "spec.rules")),
        load_balancer_ingress(at(ing, "status.loadBalancer")),
        ports,
        age(ing, now),
    ]
}

pub(crate) fn ingressclass_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Controller", "string", "Controller that is responsible for handling this class"),
        text("Parameters", "string", "A reference to a resource with additional parameters"),
        Col::age(),
    ]
}

pub(crate) fn ingressclass_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let parameters = match at(obj, "spec.parameters") {
        Some(p) => {
            let mut s = st(p, "kind").to_string();
            if let Some(group) = st_opt(p, "apiGroup") {
                s = format!("{s}.{group}");
            }
            format!("{s}/{}", st(p, "name"))
        }
        None => "<none>".to_string(),
    };
    cells![name(obj), st(obj, "spec.controller"), parameters, age(obj, now)]
}

pub(crate) fn networkpolicy_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Pod-Selector", "string", "io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector"),
        Col::age(),
    ]
}

pub(crate) fn networkpolicy_row(obj: &Value, now: DateTime<Utc>) -> Row {
    // podSelector is a value, not a pointer: absent means the empty selector.
    let empty = Value::Object(Default::default());
    let sel = at(obj, "spec.podSelector").unwrap_or(&empty);
    cells![name(obj), format_label_selector(Some(sel)), age(obj, now)]
}

pub(crate) fn ipaddress_columns() -> Vec<Col> {
    // Upstream declares no AGE column but still prints the age cell.
    vec![Col::name(), doc("ParentRef", "string", "io.k8s.api.networking.v1.IPAddressSpec", "parentRef")]
}

pub(crate) fn ipaddress_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let parent = match at(obj, "spec.parentRef") {
        Some(p) => {
            let (group, resource) = (st(p, "group"), st(p, "resource"));
            let mut s =
                if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }.to_lowercase();
            if let Some(ns) = st_opt(p, "namespace").filter(|n| !n.is_empty()) {
                s = format!("{s}/{ns}");
            }
            format!("{s}/{}", st(p, "name"))
        }
        None => "<none>".to_string(),
    };
    cells![name(obj), parent, age(obj, now)]
}

pub(crate) fn servicecidr_columns() -> Vec<Col> {
    vec![Col::name(), doc("CIDRs", "string", "io.k8s.api.networking.v1.ServiceCIDRSpec", "cidrs"), Col::age()]
}

pub(crate) fn servicecidr_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let cidrs: Vec<&str> = list(obj, "spec.cidrs").iter().filter_map(Value::as_str).collect();
    cells![name(obj), cidrs.join(","), age(obj, now)]
}

// ---------------------------------------------------------------------------
// discovery.k8s.io

pub(crate) fn endpointslice_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("AddressType", "string", ENDPOINT_SLICE, "addressType"),
        doc("Ports", "string", ENDPOINT_SLICE, "ports"),
        doc("Endpoints", "string", ENDPOINT_SLICE, "endpoints"),
        Col::age(),
    ]
}

const MAX_LISTED: usize = 3;

fn format_slice_ports(ports: &[Value]) -> String {
    let shown: Vec<String> = ports
        .iter()
        .take(MAX_LISTED)
        .map(|p| match (int_opt(p, "port"), st_opt(p, "name")) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    list_with_more(&shown, ports.len() > MAX_LISTED, ports.len(), MAX_LISTED)
}

fn format_slice_endpoints(endpoints: &[Value]) -> String {
    let all: Vec<&str> = endpoints.iter().flat_map(|e| list(e, "addresses").iter().filter_map(Value::as_str)).collect();
    let shown: Vec<String> = all.iter().take(MAX_LISTED).map(|s| s.to_string()).collect();
    list_with_more(&shown, all.len() > MAX_LISTED, all.len(), MAX_LISTED)
}

pub(crate) fn endpointslice_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![
        name(obj),
        st(obj, "addressType"),
        format_slice_ports(list(obj, "ports")),
        format_slice_endpoints(list(obj, "endpoints")),
        age(obj, now),
    ]
}

// ---------------------------------------------------------------------------
// rbac.authorization.k8s.io

fn binding_columns(which: &'static str, users: &'static str, groups: &'static str, sas: &'static str) -> Vec<Col> {
    vec![
        Col::name(),
        doc("Role", "string", which, "roleRef"),
        Col::age(),
        text("Users", "string", users).wide(),
        text("Groups", "string", groups).wide(),
        text("ServiceAccounts", "string", sas).wide(),
    ]
}

pub(crate) fn rolebinding_columns() -> Vec<Col> {
    binding_columns(
        "io.k8s.api.rbac.v1.RoleBinding",
        "Users in the roleBinding",
        "Groups in the roleBinding",
        "ServiceAccounts in the roleBinding",
    )
}

pub(crate) fn clusterrolebinding_columns() -> Vec<Col> {
    binding_columns(
        "io.k8s.api.rbac.v1.ClusterRoleBinding",
        "Users in the clusterRoleBinding",
        "Groups in the clusterRoleBinding",
        "ServiceAccounts in the clusterRoleBinding",
    )
}

pub(crate) fn binding_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut sas = Vec::new();
    for s in list(obj, "subjects") {
        match st(s, "kind") {
            "User" => users.push(st(s, "name").to_string()),
            "Group" => groups.push(st(s, "name").to_string()),
            "ServiceAccount" => sas.push(format!("{}/{}", st(s, "namespace"), st(s, "name"))),
            _ => {}
        }
    }
    let role = format!("{}/{}", st(obj, "roleRef.kind"), st(obj, "roleRef.name"));
    cells![name(obj), role, age(obj, now), users.join(", "), groups.join(", "), sas.join(", ")]
}

// ---------------------------------------------------------------------------
// storage.k8s.io

pub(crate) fn storageclass_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Provisioner", "string", STORAGE_CLASS, "provisioner"),
        doc("ReclaimPolicy", "string", STORAGE_CLASS, "reclaimPolicy"),
        doc("VolumeBindingMode", "string", STORAGE_CLASS, "volumeBindingMode"),
        doc("AllowVolumeExpansion", "string", STORAGE_CLASS, "allowVolumeExpansion"),
        Col::age(),
    ]
}

fn annotation_true(obj: &Value, key: &str) -> bool {
    at(obj, "metadata.annotations").and_then(|a| a.get(key)).and_then(Value::as_str) == Some("true")
}

pub(crate) fn storageclass_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let mut n = name(obj).to_string();
    if annotation_true(obj, "storageclass.kubernetes.io/is-default-class")
        || annotation_true(obj, "storageclass.beta.kubernetes.io/is-default-class")
    {
        n.push_str(" (default)");
    }
    cells![
        n,
        st(obj, "provisioner"),
        st_opt(obj, "reclaimPolicy").unwrap_or("Delete"),
        st_opt(obj, "volumeBindingMode").unwrap_or("Immediate"),
        boolean(obj, "allowVolumeExpansion").unwrap_or(false),
        age(obj, now),
    ]
}

pub(crate) fn volumeattributesclass_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("DriverName", "string", "io.k8s.api.storage.v1beta1.VolumeAttributesClass", "driverName"),
        Col::age(),
    ]
}

pub(crate) fn volumeattributesclass_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let mut n = name(obj).to_string();
    if annotation_true(obj, "storage.kubernetes.io/is-default-class") {
        n.push_str(" (default)");
    }
    cells![n, st(obj, "driverName"), age(obj, now)]
}

pub(crate) fn csidriver_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("AttachRequired", "boolean", CSI_DRIVER_SPEC, "attachRequired"),
        doc("PodInfoOnMount", "boolean", CSI_DRIVER_SPEC, "podInfoOnMount"),
        doc("StorageCapacity", "boolean", CSI_DRIVER_SPEC, "storageCapacity"),
        doc("TokenRequests", "string", CSI_DRIVER_SPEC, "tokenRequests"),
        doc("RequiresRepublish", "boolean", CSI_DRIVER_SPEC, "requiresRepublish"),
        doc("Modes", "string", CSI_DRIVER_SPEC, "volumeLifecycleModes"),
        Col::age(),
    ]
}

pub(crate) fn csidriver_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let modes: Vec<&str> = list(obj, "spec.volumeLifecycleModes").iter().filter_map(Value::as_str).collect();
    let tokens = match at(obj, "spec.tokenRequests").and_then(Value::as_array) {
        Some(reqs) => reqs.iter().map(|t| st(t, "audience")).collect::<Vec<_>>().join(","),
        None => "<unset>".to_string(),
    };
    cells![
        name(obj),
        boolean(obj, "spec.attachRequired").unwrap_or(true),
        boolean(obj, "spec.podInfoOnMount").unwrap_or(false),
        boolean(obj, "spec.storageCapacity").unwrap_or(false),
        tokens,
        boolean(obj, "spec.requiresRepublish").unwrap_or(false),
        or(&modes.join(","), "<none>"),
        age(obj, now),
    ]
}

pub(crate) fn csinode_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"),
        Col::age(),
    ]
}

pub(crate) fn csinode_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), list(obj, "spec.drivers").len() as i64, age(obj, now)]
}

pub(crate) fn csistoragecapacity_columns() -> Vec<Col> {
    let def = "io.k8s.api.storage.v1.CSIStorageCapacity";
    vec![
        Col::name(),
        doc("StorageClassName", "string", def, "storageClassName"),
        doc("Capacity", "string", def, "capacity"),
    ]
}

pub(crate) fn csistoragecapacity_row(obj: &Value, _now: DateTime<Utc>) -> Row {
    let capacity = at(obj, "capacity").map_or_else(|| "<unset>".to_string(), |q| quantity(Some(q)));
    cells![name(obj), st(obj, "storageClassName"), capacity]
}

pub(crate) fn volumeattachment_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Attacher", "string", VA_SPEC, "attacher").format("name"),
        doc("PV", "string", "io.k8s.api.storage.v1.VolumeAttachmentSource", "persistentVolumeName"),
        doc("Node", "string", VA_SPEC, "nodeName"),
        doc("Attached", "boolean", "io.k8s.api.storage.v1.VolumeAttachmentStatus", "attached"),
        Col::age(),
    ]
}

pub(crate) fn volumeattachment_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![
        name(obj),
        st(obj, "spec.attacher"),
        st(obj, "spec.source.persistentVolumeName"),
        st(obj, "spec.nodeName"),
        boolean(obj, "status.attached").unwrap_or(false),
        age(obj, now),
    ]
}

// ---------------------------------------------------------------------------
// scheduling.k8s.io, node.k8s.io

pub(crate) fn priorityclass_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Value", "integer", PRIORITY_CLASS, "value"),
        doc("Global-Default", "boolean", PRIORITY_CLASS, "globalDefault"),
        Col::age(),
        // Upstream gives this column no priority, yet only fills it in wide output;
        // the server always prints wide, so it is always filled.
        doc("PreemptionPolicy", "string", PRIORITY_CLASS, "preemptionPolicy"),
    ]
}

pub(crate) fn priorityclass_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![
        name(obj),
        int(obj, "value"),
        boolean(obj, "globalDefault").unwrap_or(false),
        age(obj, now),
        st(obj, "preemptionPolicy"),
    ]
}

pub(crate) fn runtimeclass_columns() -> Vec<Col> {
    // Upstream looks "handler" up in ObjectMeta's docs, which has no such field: "".
    vec![Col::name(), doc("Handler", "string", META, "handler"), Col::age()]
}

pub(crate) fn runtimeclass_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), st(obj, "handler"), age(obj, now)]
}

// ---------------------------------------------------------------------------
// certificates.k8s.io, coordination.k8s.io

pub(crate) fn csr_columns() -> Vec<Col> {
    vec![
        Col::name(),
        Col::age(),
        doc("SignerName", "string", CSR_SPEC, "signerName"),
        doc("Requestor", "string", CSR_SPEC, "request"),
        doc("RequestedDuration", "string", CSR_SPEC, "expirationSeconds"),
        doc("Condition", "string", "io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions"),
    ]
}

/// "Approved,Issued", "Denied", "Pending", ... (`extractCSRStatus`).
fn csr_condition(obj: &Value) -> String {
    let has = |ty: &str| list(obj, "status.conditions").iter().any(|c| st(c, "type") == ty);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !st(obj, "status.certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

pub(crate) fn csr_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let duration = int_opt(obj, "spec.expirationSeconds")
        .map_or_else(|| "<none>".to_string(), |s| human_duration(chrono::Duration::seconds(s)));
    cells![
        name(obj),
        age(obj, now),
        or(st(obj, "spec.signerName"), "<none>"),
        st(obj, "spec.username"),
        duration,
        csr_condition(obj),
    ]
}

pub(crate) fn ctb_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("SignerName", "string", "io.k8s.api.certificates.v1beta1.ClusterTrustBundleSpec", "signerName"),
    ]
}

pub(crate) fn ctb_row(obj: &Value, _now: DateTime<Utc>) -> Row {
    cells![name(obj), or(st(obj, "spec.signerName"), "<none>")]
}

pub(crate) fn lease_columns() -> Vec<Col> {
    vec![Col::name(), doc("Holder", "string", "io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"), Col::age()]
}

pub(crate) fn lease_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), st(obj, "spec.holderIdentity"), age(obj, now)]
}

pub(crate) fn leasecandidate_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("LeaseName", "string", "io.k8s.api.coordination.v1beta1.LeaseCandidateSpec", "leaseName"),
        // Upstream looks these up in ObjectMeta's docs: "".
        doc("BinaryVersion", "string", META, "binaryVersion"),
        doc("EmulationVersion", "string", META, "emulationVersion"),
        Col::age(),
    ]
}

pub(crate) fn leasecandidate_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![
        name(obj),
        st(obj, "spec.leaseName"),
        st(obj, "spec.binaryVersion"),
        st(obj, "spec.emulationVersion"),
        age(obj, now),
    ]
}

// ---------------------------------------------------------------------------
// admissionregistration.k8s.io

pub(crate) fn webhook_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
        Col::age(),
    ]
}

pub(crate) fn webhook_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), list(obj, "webhooks").len() as i64, age(obj, now)]
}

const PARAM_KIND_DESC: &str = "ParamKind specifies the kind of resources used to parameterize this policy";

pub(crate) fn vap_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text(
            "Validations",
            "integer",
            "Validations indicates the number of validation rules defined in this configuration",
        ),
        text("ParamKind", "string", PARAM_KIND_DESC),
        Col::age(),
    ]
}

pub(crate) fn map_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Mutations", "integer", "Mutation indicates the number of mutations rules defined in this configuration"),
        text("ParamKind", "string", PARAM_KIND_DESC),
        Col::age(),
    ]
}

fn param_kind(obj: &Value) -> String {
    match at(obj, "spec.paramKind") {
        Some(pk) => format!("{}/{}", st(pk, "apiVersion"), st(pk, "kind")),
        None => "<unset>".to_string(),
    }
}

pub(crate) fn vap_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), list(obj, "spec.validations").len() as i64, param_kind(obj), age(obj, now)]
}

pub(crate) fn map_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), list(obj, "spec.mutations").len() as i64, param_kind(obj), age(obj, now)]
}

pub(crate) fn policybinding_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("PolicyName", "string", "PolicyName indicates the policy definition which the policy binding binded to"),
        text("ParamRef", "string", "ParamRef indicates the param resource which sets the configration param"),
        Col::age(),
    ]
}

pub(crate) fn policybinding_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let param = match at(obj, "spec.paramRef") {
        Some(pr) => match (st(pr, "name"), st(pr, "namespace")) {
            ("", _) => match at(pr, "selector") {
                // Upstream prints the selector struct's Go representation here; we print
                // the selector in label-selector syntax instead.
                Some(sel) => format_label_selector(Some(sel)),
                None => "<unset>".to_string(),
            },
            (n, "") => format!("*/{n}"),
            (n, ns) => format!("{ns}/{n}"),
        },
        None => "<unset>".to_string(),
    };
    cells![name(obj), st(obj, "spec.policyName"), param, age(obj, now)]
}

// ---------------------------------------------------------------------------
// flowcontrol.apiserver.k8s.io

pub(crate) fn flowschema_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("PriorityLevel", "string", "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationReference", "name"),
        doc("MatchingPrecedence", "string", FS_SPEC, "matchingPrecedence"),
        doc("DistinguisherMethod", "string", FS_SPEC, "distinguisherMethod"),
        Col::age(),
        text("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration"),
    ]
}

pub(crate) fn flowschema_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let distinguisher = at(obj, "spec.distinguisherMethod").map_or("<none>", |d| st(d, "type"));
    let missing =
        list(obj, "status.conditions").iter().find(|c| st(c, "type") == "Dangling").map_or("?", |c| st(c, "status"));
    cells![
        name(obj),
        st(obj, "spec.priorityLevelConfiguration.name"),
        int(obj, "spec.matchingPrecedence"),
        distinguisher,
        age(obj, now),
        missing,
    ]
}

pub(crate) fn plc_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Type", "string", "io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationSpec", "type"),
        doc(
            "NominalConcurrencyShares",
            "string",
            "io.k8s.api.flowcontrol.v1.LimitedPriorityLevelConfiguration",
            "nominalConcurrencyShares",
        ),
        doc("Queues", "string", QUEUING, "queues"),
        doc("HandSize", "string", QUEUING, "handSize"),
        doc("QueueLengthLimit", "string", QUEUING, "queueLengthLimit"),
        Col::age(),
    ]
}

pub(crate) fn plc_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let none = || Value::from("<none>");
    let mut values = [none(), none(), none(), none()];
    if let Some(limited) = at(obj, "spec.limited") {
        values[0] = Value::from(int(limited, "nominalConcurrencyShares"));
        if let Some(q) = at(limited, "limitResponse.queuing") {
            values[1] = Value::from(int(q, "queues"));
            values[2] = Value::from(int(q, "handSize"));
            values[3] = Value::from(int(q, "queueLengthLimit"));
        }
    }
    let [ncs, queues, hand, qll] = values;
    cells![name(obj), st(obj, "spec.type"), ncs, queues, hand, qll, age(obj, now)]
}

// ---------------------------------------------------------------------------
// resource.k8s.io

pub(crate) fn name_age_columns() -> Vec<Col> {
    vec![Col::name(), Col::age()]
}

pub(crate) fn name_age_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), age(obj, now)]
}

pub(crate) fn resourceclaim_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("State", "string", "A summary of the current state (allocated, pending, reserved, etc.)."),
        Col::age(),
    ]
}

pub(crate) fn resourceclaim_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let deleted = at(obj, "metadata.deletionTimestamp").is_some();
    let mut states = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if at(obj, "status.allocation").is_none() {
        if !deleted {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if !list(obj, "status.reservedFor").is_empty() {
            states.push("reserved");
        }
    }
    cells![name(obj), states.join(","), age(obj, now)]
}

pub(crate) fn resourceslice_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Node", "string", SLICE_SPEC, "nodeName"),
        doc("Driver", "string", SLICE_SPEC, "driver"),
        doc("Pool", "string", "io.k8s.api.resource.v1beta1.ResourcePool", "name"),
        Col::age(),
    ]
}

pub(crate) fn resourceslice_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), st(obj, "spec.nodeName"), st(obj, "spec.driver"), st(obj, "spec.pool.name"), age(obj, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printers::tests::now;
    use serde_json::json;

    #[test]
    fn ingress_cells() {
        let ing = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx",
                "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"},
                    {"host": "d.example.com"}],
                "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(
            ingress_row(&ing, now()).cells[1..5],
            [
                json!("nginx"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("203.0.113.10,lb.example.com"),
                json!("80, 443")
            ]
        );
        let bare = json!({"metadata": {"name": "x"}, "spec": {"rules": [{}]}});
        assert_eq!(ingress_row(&bare, now()).cells[1..5], [json!("<none>"), json!("*"), json!(""), json!("80")]);
        let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        assert_eq!(
            ingressclass_row(&ic, now()).cells[1..3],
            [json!("k8s.io/ingress-nginx"), json!("IngressParameters.k8s.example.com/p")]
        );
    }

    #[test]
    fn endpointslice_cells() {
        let es = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "dns"}, {}, {"port": 9}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
        assert_eq!(
            endpointslice_row(&es, now()).cells[1..4],
            [json!("IPv4"), json!("80,dns,* + 1 more..."), json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")]
        );
        let empty = json!({"addressType": "IPv6"});
        assert_eq!(endpointslice_row(&empty, now()).cells[2..4], [json!("<unset>"), json!("<unset>")]);
    }

    #[test]
    fn bindings_and_policies() {
        let rb = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"}]});
        assert_eq!(
            binding_row(&rb, now()).cells,
            vec![
                json!("b"),
                json!("ClusterRole/view"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("devs"),
                json!("ci/runner")
            ]
        );
        assert_eq!(rolebinding_columns().iter().filter(|c| c.priority == 1).count(), 3);

        let np = json!({"metadata": {"name": "deny"}, "spec": {}});
        assert_eq!(networkpolicy_row(&np, now()).cells[1], "<none>");
        let np = json!({"metadata": {"name": "web"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(networkpolicy_row(&np, now()).cells[1], "app=web");

        let vapb = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "paramRef": {"name": "cfg"}}});
        assert_eq!(policybinding_row(&vapb, now()).cells[1..3], [json!("p"), json!("*/cfg")]);
        let vapb = json!({"spec": {"policyName": "p", "paramRef": {"name": "cfg", "namespace": "ns"}}});
        assert_eq!(policybinding_row(&vapb, now()).cells[2], "ns/cfg");
        assert_eq!(policybinding_row(&json!({"spec": {}}), now()).cells[2], "<unset>");
        let vap = json!({"metadata": {"name": "p"}, "spec": {"validations": [{}, {}],
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}}});
        assert_eq!(vap_row(&vap, now()).cells[1..3], [json!(2), json!("v1/ConfigMap")]);
        let wh = json!({"metadata": {"name": "w"}, "webhooks": [{}, {}, {}]});
        assert_eq!(webhook_row(&wh, now()).cells[1], 3);
    }

    #[test]
    fn storage_and_scheduling_cells() {
        let sc = json!({"metadata": {"name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            storageclass_row(&sc, now()).cells[..5],
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
        let d = json!({"metadata": {"name": "csi.example.com"}, "spec": {"tokenRequests": [{"audience": "a"},
            {"audience": "b"}], "volumeLifecycleModes": ["Persistent", "Ephemeral"]}});
        assert_eq!(
            csidriver_row(&d, now()).cells[1..7],
            [json!(true), json!(false), json!(false), json!("a,b"), json!(false), json!("Persistent,Ephemeral")]
        );
        assert_eq!(csidriver_row(&json!({}), now()).cells[4], "<unset>");
        assert_eq!(csidriver_row(&json!({}), now()).cells[6], "<none>");
        let va = json!({"metadata": {"name": "va"}, "spec": {"attacher": "csi.example.com", "nodeName": "n1",
            "source": {"persistentVolumeName": "pv1"}}, "status": {"attached": true}});
        assert_eq!(
            volumeattachment_row(&va, now()).cells[1..5],
            [json!("csi.example.com"), json!("pv1"), json!("n1"), json!(true)]
        );
        let pc = json!({"metadata": {"name": "system-cluster-critical"}, "value": 2000000000,
            "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            priorityclass_row(&pc, now()).cells,
            vec![
                json!("system-cluster-critical"),
                json!(2000000000),
                json!(false),
                json!("<unknown>"),
                json!("PreemptLowerPriority")
            ]
        );
        let rc = json!({"metadata": {"name": "runc"}, "handler": "runc"});
        assert_eq!(runtimeclass_row(&rc, now()).cells[1], "runc");
        assert_eq!(runtimeclass_columns()[1].description(), "");
        let cn = json!({"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": "a"}]}});
        assert_eq!(csinode_row(&cn, now()).cells[1], 1);
    }

    #[test]
    fn csr_lease_and_ipaddress_cells() {
        let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
            "username": "alice", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
        assert_eq!(
            csr_row(&csr, now()).cells[2..6],
            [json!("kubernetes.io/kube-apiserver-client"), json!("alice"), json!("24h"), json!("Approved,Issued")]
        );
        let denied = json!({"status": {"conditions": [{"type": "Approved"}, {"type": "Denied"}, {"type": "Failed"}]}});
        assert_eq!(csr_condition(&denied), "Denied,Failed");
        assert_eq!(csr_row(&json!({}), now()).cells[4..6], [json!("<none>"), json!("Pending")]);

        let lease = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
        assert_eq!(lease_row(&lease, now()).cells[1], "n1");

        let ip = json!({"metadata": {"name": "10.96.0.1", "creationTimestamp": "2025-06-01T11:00:00Z"},
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
        let row = ipaddress_row(&ip, now());
        assert_eq!(row.cells, vec![json!("10.96.0.1"), json!("services/default/kubernetes"), json!("60m")]);
        assert_eq!(ipaddress_columns().len(), 2);
        let cidr = json!({"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12", "fd00::/108"]}});
        assert_eq!(servicecidr_row(&cidr, now()).cells[1], "10.96.0.0/12,fd00::/108");
    }

    #[test]
    fn flowcontrol_and_resource_cells() {
        let plc = json!({"metadata": {"name": "workload-low"}, "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 100, "limitResponse": {"type": "Queue",
                "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(plc_row(&plc, now()).cells[1..6], [json!("Limited"), json!(100), json!(128), json!(6), json!(50)]);
        let exempt = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt"}});
        assert_eq!(
            plc_row(&exempt, now()).cells[2..6],
            [json!("<none>"), json!("<none>"), json!("<none>"), json!("<none>")]
        );
        let fs = json!({"metadata": {"name": "x"}, "spec": {"distinguisherMethod": {"type": "ByUser"}},
            "status": {"conditions": [{"type": "Dangling", "status": "False"}]}});
        assert_eq!(flowschema_row(&fs, now()).cells[3], "ByUser");
        assert_eq!(flowschema_row(&fs, now()).cells[5], "False");

        let claim = json!({"metadata": {"name": "gpu"}, "status": {"allocation": {}, "reservedFor": [{"name": "p"}]}});
        assert_eq!(resourceclaim_row(&claim, now()).cells[1], "allocated,reserved");
        let pending = json!({"metadata": {"name": "gpu", "deletionTimestamp": "2025-06-01T11:00:00Z"}});
        assert_eq!(resourceclaim_row(&pending, now()).cells[1], "deleted");
        assert_eq!(resourceclaim_row(&json!({}), now()).cells[1], "pending");
    }
}
