//! Table printers for the core (`v1`) kinds: pods, pod templates, replication
//! controllers, services, endpoints, nodes, namespaces, events (also
//! `events.k8s.io`), secrets, config maps, service accounts, persistent volumes
//! and claims, component statuses and resource quotas.

use super::util::{
    age, at, boolean, container_cells, format_labels, int, int_opt, join_host_port, list, load_balancer_ingress,
    map_len, name, parse_time, quantity, since, st,
};
use super::{Col, META, Row, cells, doc, text};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

const POD_STATUS: &str = "io.k8s.api.core.v1.PodStatus";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const RC_SPEC: &str = "io.k8s.api.core.v1.ReplicationControllerSpec";
const RC_STATUS: &str = "io.k8s.api.core.v1.ReplicationControllerStatus";
const SVC_SPEC: &str = "io.k8s.api.core.v1.ServiceSpec";
const NODE_INFO: &str = "io.k8s.api.core.v1.NodeSystemInfo";
const NODE_STATUS: &str = "io.k8s.api.core.v1.NodeStatus";
const EVENT: &str = "io.k8s.api.core.v1.Event";
const OBJECT_REF: &str = "io.k8s.api.core.v1.ObjectReference";
const PV_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeSpec";
const PV_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeStatus";
const PVC_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeClaimSpec";
const PVC_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeClaimStatus";

pub(crate) const CONTAINERS_DESC: &str = "Names of each container in the template.";
pub(crate) const IMAGES_DESC: &str = "Images referenced by each container in the template.";

// ---------------------------------------------------------------------------
// Pods

pub(crate) fn pod_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        text("Status", "string", "The aggregate status of the containers in this pod."),
        text(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        Col::age(),
        doc("IP", "string", POD_STATUS, "podIP").wide(),
        doc("Node", "string", POD_SPEC, "nodeName").wide(),
        doc("Nominated Node", "string", POD_STATUS, "nominatedNodeName").wide(),
        doc("Readiness Gates", "string", POD_SPEC, "readinessGates").wide(),
    ]
}

fn keep_latest(slot: &mut Option<DateTime<Utc>>, t: Option<DateTime<Utc>>) {
    if let Some(t) = t
        && slot.is_none_or(|cur| cur < t)
    {
        *slot = Some(t);
    }
}

fn last_termination(cs: &Value) -> Option<DateTime<Utc>> {
    at(cs, "lastState.terminated").and_then(|t| parse_time(at(t, "finishedAt")))
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    list(obj, "status.conditions").iter().any(|c| st(c, "type") == ty && st(c, "status") == "True")
}

/// `isPodInitializedConditionTrue`: the first Initialized condition decides.
fn pod_initialized(pod: &Value) -> bool {
    list(pod, "status.conditions")
        .iter()
        .find(|c| st(c, "type") == "Initialized")
        .is_some_and(|c| st(c, "status") == "True")
}

/// "Signal:9" / "ExitCode:1" for a terminated state without a reason.
fn exit_reason(t: &Value) -> String {
    let signal = int(t, "signal");
    if signal != 0 { format!("Signal:{signal}") } else { format!("ExitCode:{}", int(t, "exitCode")) }
}

pub(crate) fn pod_row(pod: &Value, now: DateTime<Utc>) -> Row {
    let init_specs = list(pod, "spec.initContainers");
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut total = list(pod, "spec.containers").len();
    let mut ready = 0usize;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_restart: Option<DateTime<Utc>> = None;

    let phase = st(pod, "status.phase");
    let mut reason = phase.to_string();
    let status_reason = st(pod, "status.reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    if list(pod, "status.conditions")
        .iter()
        .any(|c| st(c, "type") == "PodScheduled" && st(c, "reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let conditions = match phase {
        "Succeeded" => vec![json!({"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."})],
        "Failed" => vec![json!({"type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."})],
        _ => Vec::new(),
    };

    // Sidecars (init containers with restartPolicy Always) count as containers.
    let restartable: HashMap<&str, bool> =
        init_specs.iter().map(|c| (st(c, "name"), st(c, "restartPolicy") == "Always")).collect();
    total += restartable.values().filter(|r| **r).count();

    let mut initializing = false;
    for (i, cs) in list(pod, "status.initContainerStatuses").iter().enumerate() {
        let rc = int(cs, "restartCount");
        restarts += rc;
        let finished = last_termination(cs);
        keep_latest(&mut last_restart, finished);
        let is_restartable = restartable.get(st(cs, "name")).copied().unwrap_or(false);
        if is_restartable {
            restartable_restarts += rc;
            keep_latest(&mut last_restartable_restart, finished);
        }
        let terminated = at(cs, "state.terminated");
        let waiting_reason = at(cs, "state.waiting").map(|w| st(w, "reason")).unwrap_or("");
        if terminated.is_some_and(|t| int(t, "exitCode") == 0) {
            continue;
        }
        if is_restartable && boolean(cs, "started") == Some(true) {
            if boolean(cs, "ready") == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match st(t, "reason") {
                "" => format!("Init:{}", exit_reason(t)),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || pod_initialized(pod) {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for cs in list(pod, "status.containerStatuses").iter().rev() {
            restarts += int(cs, "restartCount");
            keep_latest(&mut last_restart, last_termination(cs));
            let waiting_reason = at(cs, "state.waiting").map(|w| st(w, "reason")).unwrap_or("");
            let terminated = at(cs, "state.terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match st(t, "reason") {
                    "" => exit_reason(t),
                    r => r.to_string(),
                };
            } else if boolean(cs, "ready") == Some(true) && at(cs, "state.running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = at(pod, "metadata.deletionTimestamp").is_some();
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", super::human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let pod_ip = list(pod, "status.podIPs")
        .first()
        .map(|ip| st(ip, "ip"))
        .or_else(|| at(pod, "status.podIP").and_then(Value::as_str))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let or_none = |s: &str| {
        if s.is_empty() { "<none>".to_string() } else { s.to_string() }
    };
    let gates = list(pod, "spec.readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = list(pod, "status.conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                conds
                    .iter()
                    .find(|c| st(c, "type") == st(g, "conditionType"))
                    .is_some_and(|c| st(c, "status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };

    let mut row = cells![
        name(pod),
        format!("{ready}/{total}"),
        reason,
        restarts_cell,
        age(pod, now),
        pod_ip,
        or_none(st(pod, "spec.nodeName")),
        or_none(st(pod, "status.nominatedNodeName")),
        readiness_gates,
    ];
    row.conditions = conditions;
    row
}

// ---------------------------------------------------------------------------
// Pod templates and replication controllers

pub(crate) fn pod_template_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Containers", "string", CONTAINERS_DESC),
        text("Images", "string", IMAGES_DESC),
        text("Pod Labels", "string", "The labels for the pod template."),
    ]
}

pub(crate) fn pod_template_row(obj: &Value, _now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(list(obj, "template.spec.containers"));
    cells![name(obj), names, images, format_labels(at(obj, "template.metadata.labels"))]
}

pub(crate) fn rc_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Desired", "integer", RC_SPEC, "replicas"),
        doc("Current", "integer", RC_STATUS, "replicas"),
        doc("Ready", "integer", RC_STATUS, "readyReplicas"),
        Col::age(),
        text("Containers", "string", CONTAINERS_DESC).wide(),
        text("Images", "string", IMAGES_DESC).wide(),
        doc("Selector", "string", RC_SPEC, "selector").wide(),
    ]
}

pub(crate) fn rc_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(list(obj, "spec.template.spec.containers"));
    cells![
        name(obj),
        int_opt(obj, "spec.replicas").unwrap_or(1),
        int(obj, "status.replicas"),
        int(obj, "status.readyReplicas"),
        age(obj, now),
        names,
        images,
        format_labels(at(obj, "spec.selector")),
    ]
}

// ---------------------------------------------------------------------------
// Services and endpoints

pub(crate) fn service_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Type", "string", SVC_SPEC, "type"),
        doc("Cluster-IP", "string", SVC_SPEC, "clusterIP"),
        doc("External-IP", "string", SVC_SPEC, "externalIPs"),
        doc("Port(s)", "string", SVC_SPEC, "ports"),
        Col::age(),
        doc("Selector", "string", SVC_SPEC, "selector").wide(),
    ]
}

fn strings<'a>(v: &'a Value, path: &str) -> Vec<&'a str> {
    list(v, path).iter().filter_map(Value::as_str).collect()
}

/// `getServiceExternalIP` (always the wide form: load-balancer addresses are not clipped).
fn service_external_ip(svc: &Value, svc_type: &str) -> String {
    let external_ips = strings(svc, "spec.externalIPs");
    match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(at(svc, "status.loadBalancer"));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = if lb.is_empty() { Vec::new() } else { lb.split(',').collect() };
                all.extend(external_ips);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => st(svc, "spec.externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `makePortString`: "80/TCP", "80:30080/TCP", comma-joined.
pub(crate) fn service_ports(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let proto = match st(p, "protocol") {
                "" => "TCP",
                proto => proto,
            };
            let node_port = int(p, "nodePort");
            if node_port > 0 {
                format!("{}:{node_port}/{proto}", int(p, "port"))
            } else {
                format!("{}/{proto}", int(p, "port"))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn service_row(svc: &Value, now: DateTime<Utc>) -> Row {
    let svc_type = match st(svc, "spec.type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = strings(svc, "spec.clusterIPs")
        .first()
        .copied()
        .or_else(|| Some(st(svc, "spec.clusterIP")).filter(|s| !s.is_empty()))
        .unwrap_or("<none>");
    let mut ports = service_ports(list(svc, "spec.ports"));
    if ports.is_empty() {
        ports = "<none>".to_string();
    }
    cells![
        name(svc),
        svc_type,
        cluster_ip,
        service_external_ip(svc, svc_type),
        ports,
        age(svc, now),
        format_labels(at(svc, "spec.selector")),
    ]
}

pub(crate) fn endpoints_columns() -> Vec<Col> {
    vec![Col::name(), doc("Endpoints", "string", "io.k8s.api.core.v1.Endpoints", "subsets"), Col::age()]
}

/// `formatEndpoints` with all ports: up to three "ip:port" entries, then "+ N more...".
fn format_endpoints(ep: &Value) -> String {
    let subsets = list(ep, "subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut out: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = list(ss, "addresses");
        let ports = list(ss, "ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if out.len() == MAX {
                    more = true;
                    break;
                }
                out.push(st(a, "ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if out.len() == MAX {
                    more = true;
                    break;
                }
                out.push(join_host_port(st(a, "ip"), int(port, "port")));
            }
        }
    }
    let ret = out.join(",");
    if more { format!("{ret} + {} more...", count - MAX) } else { ret }
}

pub(crate) fn endpoints_row(ep: &Value, now: DateTime<Utc>) -> Row {
    cells![name(ep), format_endpoints(ep), age(ep, now)]
}

// ---------------------------------------------------------------------------
// Nodes and namespaces

pub(crate) fn node_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Status", "string", "The status of the node"),
        text("Roles", "string", "The roles of the node"),
        Col::age(),
        doc("Version", "string", NODE_INFO, "kubeletVersion"),
        doc("Internal-IP", "string", NODE_STATUS, "addresses").wide(),
        doc("External-IP", "string", NODE_STATUS, "addresses").wide(),
        doc("OS-Image", "string", NODE_INFO, "osImage").wide(),
        doc("Kernel-Version", "string", NODE_INFO, "kernelVersion").wide(),
        doc("Container-Runtime", "string", NODE_INFO, "containerRuntimeVersion").wide(),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` labels and the `kubernetes.io/role` label.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = at(node, "metadata.labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!role.is_empty()).then(|| role.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().filter(|v| !v.is_empty()).map(str::to_string)
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    roles
}

fn node_address(node: &Value, ty: &str) -> String {
    list(node, "status.addresses")
        .iter()
        .find(|a| st(a, "type") == ty)
        .map_or_else(|| "<none>".to_string(), |a| st(a, "address").to_string())
}

pub(crate) fn node_row(node: &Value, now: DateTime<Utc>) -> Row {
    // Only the Ready condition is summarised; the last one of that type wins, as upstream's map does.
    let ready = list(node, "status.conditions").iter().rfind(|c| st(c, "type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if st(c, "status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if boolean(node, "spec.unschedulable") == Some(true) {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(node);
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let info = |field: &str| match st(node, &format!("status.nodeInfo.{field}")) {
        "" => "<unknown>".to_string(),
        s => s.to_string(),
    };
    cells![
        name(node),
        status.join(","),
        roles,
        age(node, now),
        st(node, "status.nodeInfo.kubeletVersion"),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

pub(crate) fn namespace_columns() -> Vec<Col> {
    vec![Col::name(), text("Status", "string", "The status of the namespace"), Col::age()]
}

pub(crate) fn namespace_row(ns: &Value, now: DateTime<Utc>) -> Row {
    cells![name(ns), st(ns, "status.phase"), age(ns, now)]
}

// ---------------------------------------------------------------------------
// Events

pub(crate) fn event_columns() -> Vec<Col> {
    vec![
        doc("Last Seen", "string", EVENT, "lastTimestamp"),
        doc("Type", "string", EVENT, "type"),
        doc("Reason", "string", EVENT, "reason"),
        doc("Object", "string", EVENT, "involvedObject"),
        doc("Subobject", "string", OBJECT_REF, "fieldPath").wide(),
        doc("Source", "string", EVENT, "source").wide(),
        doc("Message", "string", EVENT, "message"),
        doc("First Seen", "string", EVENT, "firstTimestamp").wide(),
        doc("Count", "string", EVENT, "count").wide(),
        doc("Name", "string", META, "name").wide().format("name"),
    ]
}

/// Reads either a core/v1 Event or an events.k8s.io/v1 Event (whose fields are renamed).
fn event_field<'a>(ev: &'a Value, core: &str, events_v1: &str) -> Option<&'a Value> {
    at(ev, core).or_else(|| at(ev, events_v1))
}

pub(crate) fn event_row(ev: &Value, now: DateTime<Utc>) -> Row {
    let event_time = at(ev, "eventTime");
    let first_ts = event_field(ev, "firstTimestamp", "deprecatedFirstTimestamp");
    let first = if parse_time(first_ts).is_some() { since(first_ts, now) } else { since(event_time, now) };
    let last_ts = event_field(ev, "lastTimestamp", "deprecatedLastTimestamp");
    let mut last = if parse_time(last_ts).is_some() { since(last_ts, now) } else { first.clone() };
    let mut count = event_field(ev, "count", "deprecatedCount").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = at(ev, "series") {
        last = since(at(series, "lastObservedTime"), now);
        count = int(series, "count");
    } else if count == 0 {
        // Singleton events have no count in the new API.
        count = 1;
    }
    let involved = event_field(ev, "involvedObject", "regarding").unwrap_or(&Value::Null);
    let kind = st(involved, "kind").to_lowercase();
    let target = match st(involved, "name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = event_field(ev, "source", "deprecatedSource").unwrap_or(&Value::Null);
    let component = Some(st(source, "component")).filter(|s| !s.is_empty()).unwrap_or(st(ev, "reportingController"));
    let instance = Some(st(source, "host")).filter(|s| !s.is_empty()).unwrap_or(st(ev, "reportingInstance"));
    let source = if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") };
    let message = event_field(ev, "message", "note").and_then(Value::as_str).unwrap_or("").trim();
    cells![
        last,
        st(ev, "type"),
        st(ev, "reason"),
        target,
        st(involved, "fieldPath"),
        source,
        message,
        first,
        count,
        name(ev),
    ]
}

// ---------------------------------------------------------------------------
// Secrets, config maps, service accounts

pub(crate) fn secret_columns() -> Vec<Col> {
    let secret = "io.k8s.api.core.v1.Secret";
    vec![Col::name(), doc("Type", "string", secret, "type"), doc("Data", "string", secret, "data"), Col::age()]
}

pub(crate) fn secret_row(obj: &Value, now: DateTime<Utc>) -> Row {
    let ty = match st(obj, "type") {
        "" => "Opaque",
        t => t,
    };
    cells![name(obj), ty, map_len(obj, "data") as i64, age(obj, now)]
}

pub(crate) fn configmap_columns() -> Vec<Col> {
    vec![Col::name(), doc("Data", "string", "io.k8s.api.core.v1.ConfigMap", "data"), Col::age()]
}

pub(crate) fn configmap_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), (map_len(obj, "data") + map_len(obj, "binaryData")) as i64, age(obj, now)]
}

pub(crate) fn serviceaccount_columns() -> Vec<Col> {
    vec![Col::name(), doc("Secrets", "string", "io.k8s.api.core.v1.ServiceAccount", "secrets"), Col::age()]
}

pub(crate) fn serviceaccount_row(obj: &Value, now: DateTime<Utc>) -> Row {
    cells![name(obj), list(obj, "secrets").len() as i64, age(obj, now)]
}

// ---------------------------------------------------------------------------
// Persistent volumes and claims

pub(crate) fn pv_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Capacity", "string", PV_SPEC, "capacity"),
        doc("Access Modes", "string", PV_SPEC, "accessModes"),
        doc("Reclaim Policy", "string", PV_SPEC, "persistentVolumeReclaimPolicy"),
        doc("Status", "string", PV_STATUS, "phase"),
        doc("Claim", "string", PV_SPEC, "claimRef"),
        text("StorageClass", "string", "StorageClass of the pv"),
        text("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        doc("Reason", "string", PV_STATUS, "reason"),
        Col::age(),
        doc("VolumeMode", "string", PV_SPEC, "volumeMode").wide(),
    ]
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, de-duplicated.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(m, _)| has(m))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    at(obj, "metadata.annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

fn terminating_or(obj: &Value, phase: &str) -> String {
    if at(obj, "metadata.deletionTimestamp").is_some() { "Terminating".to_string() } else { phase.to_string() }
}

fn or_unset(s: Option<&str>) -> String {
    s.unwrap_or("<unset>").to_string()
}

pub(crate) fn pv_row(pv: &Value, now: DateTime<Utc>) -> Row {
    let claim = match at(pv, "spec.claimRef") {
        Some(c) => format!("{}/{}", st(c, "namespace"), st(c, "name")),
        None => String::new(),
    };
    let class = annotation(pv, BETA_STORAGE_CLASS).unwrap_or(st(pv, "spec.storageClassName"));
    cells![
        name(pv),
        quantity(at(pv, "spec.capacity.storage")),
        access_modes(list(pv, "spec.accessModes")),
        st(pv, "spec.persistentVolumeReclaimPolicy"),
        terminating_or(pv, st(pv, "status.phase")),
        claim,
        class,
        or_unset(at(pv, "spec.volumeAttributesClassName").and_then(Value::as_str)),
        st(pv, "status.reason"),
        age(pv, now),
        or_unset(at(pv, "spec.volumeMode").and_then(Value::as_str)),
    ]
}

pub(crate) fn pvc_columns() -> Vec<Col> {
    vec![
        Col::name(),
        doc("Status", "string", PVC_STATUS, "phase"),
        doc("Volume", "string", PVC_SPEC, "volumeName"),
        doc("Capacity", "string", PVC_STATUS, "capacity"),
        doc("Access Modes", "string", PVC_STATUS, "accessModes"),
        text("StorageClass", "string", "StorageClass of the pvc"),
        text("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        Col::age(),
        doc("VolumeMode", "string", PVC_SPEC, "volumeMode").wide(),
    ]
}

pub(crate) fn pvc_row(pvc: &Value, now: DateTime<Utc>) -> Row {
    let volume = st(pvc, "spec.volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(at(pvc, "status.capacity.storage")), access_modes(list(pvc, "status.accessModes")))
    };
    let class = annotation(pvc, BETA_STORAGE_CLASS).unwrap_or(st(pvc, "spec.storageClassName"));
    cells![
        name(pvc),
        terminating_or(pvc, st(pvc, "status.phase")),
        volume,
        capacity,
        modes,
        class,
        or_unset(at(pvc, "spec.volumeAttributesClassName").and_then(Value::as_str)),
        age(pvc, now),
        or_unset(at(pvc, "spec.volumeMode").and_then(Value::as_str)),
    ]
}

// ---------------------------------------------------------------------------
// Component statuses and resource quotas

pub(crate) fn componentstatus_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Status", "string", "Status of the component conditions"),
        text("Message", "string", "Message of the component conditions"),
        text("Error", "string", "Error of the component conditions"),
    ]
}

pub(crate) fn componentstatus_row(obj: &Value, _now: DateTime<Utc>) -> Row {
    let healthy = list(obj, "conditions").iter().find(|c| st(c, "type") == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) => (if st(c, "status") == "True" { "Healthy" } else { "Unhealthy" }, st(c, "message"), st(c, "error")),
        None => ("Unknown", "", ""),
    };
    cells![name(obj), status, message, error]
}

pub(crate) fn resourcequota_columns() -> Vec<Col> {
    vec![
        Col::name(),
        text("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        text(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        Col::age(),
    ]
}

pub(crate) fn resourcequota_row(rq: &Value, now: DateTime<Utc>) -> Row {
    let mut resources: Vec<&String> =
        at(rq, "status.hard").and_then(Value::as_object).map(|m| m.keys().collect()).unwrap_or_default();
    resources.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for r in resources {
        let used = quantity(at(rq, "status.used").and_then(|u| u.get(r.as_str())));
        let hard = quantity(at(rq, "status.hard").and_then(|h| h.get(r.as_str())));
        let entry = format!("{r}: {used}/{hard}");
        let is_limit = r.split('.').count() > 1 && r.split('.').next() == Some("limits");
        if is_limit { limits.push(entry) } else { requests.push(entry) }
    }
    cells![name(rq), requests.join(", "), limits.join(", "), age(rq, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printers::tests::now;
    use crate::printers::{IncludeObject, table};

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "creationTimestamp": "2025-06-01T11:00:00Z"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n1"},
            "status": status,
        })
    }

    fn status_cell(p: &Value) -> String {
        pod_row(p, now()).cells[2].as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn pod_running_ready() {
        let p = pod(json!({"phase": "Running", "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2025-06-01T11:00:05Z"}}}]}));
        let row = pod_row(&p, now());
        assert_eq!(
            row.cells,
            vec![
                json!("web"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("60m"),
                json!("10.0.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        assert!(row.conditions.is_empty());
    }

    #[test]
    fn pod_waiting_reasons_and_restarts() {
        let p = pod(json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(status_cell(&p), "ContainerCreating");

        let p = pod(json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": false,
            "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:55:00Z"}}}]}));
        let row = pod_row(&p, now());
        assert_eq!(row.cells[1], "0/1");
        assert_eq!(row.cells[2], "CrashLoopBackOff");
        assert_eq!(row.cells[3], "3 (5m ago)");

        let p = pod(json!({"phase": "Pending", "containerStatuses": [{"name": "app",
            "state": {"waiting": {"reason": "ErrImagePull", "message": "pull failed"}}}]}));
        assert_eq!(status_cell(&p), "ErrImagePull");
    }

    #[test]
    fn pod_terminated_states() {
        let p = pod(json!({"phase": "Succeeded", "containerStatuses": [{"name": "app",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        let row = pod_row(&p, now());
        assert_eq!(row.cells[2], "Completed");
        assert_eq!(row.conditions[0]["reason"], "Succeeded");
        assert_eq!(row.conditions[0]["type"], "Completed");

        let p = pod(json!({"phase": "Failed", "containerStatuses": [{"name": "app",
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        assert_eq!(status_cell(&p), "OOMKilled");
        let p = pod(json!({"phase": "Failed", "containerStatuses": [{"name": "app",
            "state": {"terminated": {"exitCode": 2}}}]}));
        assert_eq!(status_cell(&p), "ExitCode:2");
        let p = pod(json!({"phase": "Failed", "containerStatuses": [{"name": "app",
            "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}));
        assert_eq!(status_cell(&p), "Signal:9");
    }

    #[test]
    fn pod_completed_with_running_sibling() {
        let mut p = pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "app", "ready": true, "state": {"running": {}}},
            {"name": "job", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]}));
        if let Some(cs) = p["spec"]["containers"].as_array_mut() {
            cs.push(json!({"name": "job", "image": "busybox"}));
        }
        let row = pod_row(&p, now());
        assert_eq!(row.cells[1], "1/2");
        assert_eq!(row.cells[2], "NotReady");
        p["status"]["conditions"][0]["status"] = json!("True");
        assert_eq!(status_cell(&p), "Running");
    }

    #[test]
    fn pod_init_container_states() {
        let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "init", "state": {"running": {}}, "restartCount": 0}]}));
        p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
        assert_eq!(status_cell(&p), "Init:0/1");

        p["status"]["initContainerStatuses"] =
            json!([{"name": "init", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 2}]);
        let row = pod_row(&p, now());
        assert_eq!(row.cells[2], "Init:CrashLoopBackOff");
        assert_eq!(row.cells[3], "2");

        p["status"]["initContainerStatuses"] =
            json!([{"name": "init", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]);
        assert_eq!(status_cell(&p), "Init:Error");
        p["status"]["initContainerStatuses"] = json!([{"name": "init", "state": {"terminated": {"exitCode": 3}}}]);
        assert_eq!(status_cell(&p), "Init:ExitCode:3");

        // Init done, main container not yet started.
        p["status"]["initContainerStatuses"] =
            json!([{"name": "init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
        p["status"]["containerStatuses"] =
            json!([{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]);
        assert_eq!(status_cell(&p), "PodInitializing");
    }

    #[test]
    fn pod_sidecar_counts_as_container() {
        let mut p = pod(json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]);
        let row = pod_row(&p, now());
        assert_eq!(row.cells[1], "2/2");
        assert_eq!(row.cells[2], "Running");
        assert_eq!(row.cells[3], "1");
    }

    #[test]
    fn pod_terminating_and_gated() {
        let mut p = pod(json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true,
            "state": {"running": {}}}]}));
        p["metadata"]["deletionTimestamp"] = json!("2025-06-01T11:59:00Z");
        assert_eq!(status_cell(&p), "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(status_cell(&p), "Unknown");

        let p = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "SchedulingGated"}]}));
        assert_eq!(status_cell(&p), "SchedulingGated");
        let p = pod(json!({"phase": "Pending"}));
        assert_eq!(status_cell(&p), "Pending");
    }

    #[test]
    fn pod_readiness_gates_and_wide_columns() {
        let mut p = pod(json!({"phase": "Running", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
            "nominatedNodeName": "n2",
            "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}]}));
        p["spec"]["readinessGates"] =
            json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]);
        let row = pod_row(&p, now());
        assert_eq!(&row.cells[5..], &[json!("fd00::5"), json!("n1"), json!("n2"), json!("1/2")]);
        let cols = pod_columns();
        let wide: Vec<&str> = cols.iter().filter(|c| c.priority == 1).map(|c| c.name).collect();
        assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
        assert!(cols.iter().take(5).all(|c| c.priority == 0));
        assert_eq!(cols.len(), row.cells.len());
    }

    #[test]
    fn service_cells() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2025-06-01T11:59:30Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"tier": "fe", "app": "web"}}});
        let t = table("", "services", &[&svc], IncludeObject::None, now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "30s", "app=web,tier=fe"])
        );
        assert_eq!(t["columnDefinitions"][6]["name"], "Selector");
        assert_eq!(t["columnDefinitions"][6]["priority"], 1);

        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"],
            "ports": [{"port": 443}]}});
        let row = service_row(&lb, now());
        assert_eq!(row.cells[3], "<pending>");
        assert_eq!(row.cells[4], "443/TCP");
        assert_eq!(row.cells[5], "<unknown>");
        assert_eq!(row.cells[6], "<none>");
        let mut lb2 = lb.clone();
        lb2["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a.example.com"}]}});
        lb2["spec"]["externalIPs"] = json!(["198.51.100.1"]);
        assert_eq!(service_row(&lb2, now()).cells[3], "203.0.113.9,a.example.com,198.51.100.1");

        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        let row = service_row(&headless, now());
        assert_eq!(row.cells[1], "ClusterIP");
        assert_eq!(row.cells[2], "None");
        assert_eq!(row.cells[4], "<none>");
        let ext =
            json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let row = service_row(&ext, now());
        assert_eq!(row.cells[2], "<none>");
        assert_eq!(row.cells[3], "db.example.com");
    }

    #[test]
    fn endpoints_cell() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(format_endpoints(&ep), "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...");
        assert_eq!(format_endpoints(&json!({"subsets": []})), "<none>");
        let headless = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(format_endpoints(&headless), "10.0.0.1");
    }

    #[test]
    fn node_cells() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2025-05-30T12:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "",
                    "kubernetes.io/role": "master", "node-role.kubernetes.io/": "x"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.5"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.6.20"}}});
        let row = node_row(&node, now());
        assert_eq!(
            row.cells,
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,master,worker"),
                json!("2d"),
                json!("v1.33.0"),
                json!("192.168.1.5"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0"),
                json!("containerd://1.6.20")
            ]
        );
        let bare = json!({"metadata": {"name": "n2"}});
        let row = node_row(&bare, now());
        assert_eq!(row.cells[1], "Unknown");
        assert_eq!(row.cells[2], "<none>");
        assert_eq!(row.cells[7], "<unknown>");
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(node_row(&not_ready, now()).cells[1], "NotReady");
        let cols = node_columns();
        assert_eq!(cols.iter().filter(|c| c.priority == 1).count(), 5);
    }

    #[test]
    fn event_cells_core_and_events_v1() {
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "n1"}, "message": "Back-off restarting  \n",
            "firstTimestamp": "2025-06-01T11:00:00Z", "lastTimestamp": "2025-06-01T11:58:00Z", "count": 7});
        assert_eq!(
            event_row(&ev, now()).cells,
            vec![
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, n1"),
                json!("Back-off restarting"),
                json!("60m"),
                json!(7),
                json!("web.1")
            ]
        );
        let ev1 = json!({"metadata": {"name": "x"}, "type": "Normal", "reason": "Scheduled",
            "regarding": {"kind": "Pod", "name": "web"}, "note": "assigned", "reportingController": "default-scheduler",
            "eventTime": "2025-06-01T11:59:50.123456Z"});
        assert_eq!(
            event_row(&ev1, now()).cells,
            vec![
                json!("9s"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web"),
                json!(""),
                json!("default-scheduler"),
                json!("assigned"),
                json!("9s"),
                json!(1),
                json!("x")
            ]
        );
        let series = json!({"involvedObject": {"kind": "Node"}, "eventTime": "2025-06-01T10:00:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2025-06-01T11:59:00.000000Z"}});
        let row = event_row(&series, now());
        assert_eq!(row.cells[0], "60s");
        assert_eq!(row.cells[3], "node");
        assert_eq!(row.cells[8], 4);
        assert_eq!(event_columns().len(), row.cells.len());
    }

    #[test]
    fn pv_pvc_quota_cells() {
        let pv = json!({"metadata": {"name": "pv1", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "ns", "name": "data"},
                "storageClassName": "fast", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        assert_eq!(
            pv_row(&pv, now()).cells,
            vec![
                json!("pv1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("ns/data"),
                json!("old"),
                json!("<unset>"),
                json!(""),
                json!("<unknown>"),
                json!("Filesystem")
            ]
        );
        let pvc = json!({"metadata": {"name": "data"}, "spec": {"storageClassName": "fast"},
            "status": {"phase": "Pending"}});
        let row = pvc_row(&pvc, now());
        assert_eq!(&row.cells[1..6], &[json!("Pending"), json!(""), json!(""), json!(""), json!("fast")]);
        let bound = json!({"metadata": {"name": "data", "deletionTimestamp": "2025-06-01T11:00:00Z"},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}}});
        let row = pvc_row(&bound, now());
        assert_eq!(&row.cells[1..5], &[json!("Terminating"), json!("pv1"), json!("1Gi"), json!("RWO")]);

        let rq = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"requests.cpu": "1", "pods": "10", "limits.memory": "2Gi"},
            "used": {"requests.cpu": "500m", "limits.memory": "1Gi"}}});
        assert_eq!(
            resourcequota_row(&rq, now()).cells[1..3],
            [json!("pods: 0/10, requests.cpu: 500m/1"), json!("limits.memory: 1Gi/2Gi")]
        );
    }

    #[test]
    fn small_core_kinds() {
        let s = json!({"metadata": {"name": "tok"}, "data": {"a": "", "b": ""}, "type": "kubernetes.io/tls"});
        assert_eq!(secret_row(&s, now()).cells[1..3], [json!("kubernetes.io/tls"), json!(2)]);
        assert_eq!(secret_row(&json!({}), now()).cells[1], "Opaque");
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "x"}]});
        assert_eq!(serviceaccount_row(&sa, now()).cells[1], 1);
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        assert_eq!(namespace_row(&ns, now()).cells[1], "Active");
        let cs = json!({"metadata": {"name": "etcd-0"}, "conditions": [{"type": "Healthy", "status": "True",
            "message": "ok"}]});
        assert_eq!(
            componentstatus_row(&cs, now()).cells,
            vec![json!("etcd-0"), json!("Healthy"), json!("ok"), json!("")]
        );
        let pt = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "i1"}, {"name": "b", "image": "i2"}]}}});
        assert_eq!(pod_template_row(&pt, now()).cells, vec![json!("t"), json!("a,b"), json!("i1,i2"), json!("app=x")]);
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 2, "selector": {"app": "x"}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(rc_row(&rc, now()).cells[1..4], [json!(2), json!(2), json!(1)]);
        assert_eq!(rc_row(&rc, now()).cells[7], "app=x");
    }
}
