//! Defaulting of built-in kinds, as upstream's `SetDefaults_*` (pkg/apis/*/v1/defaults.go),
//! plus the few values the apiserver's create strategies fill (Pod `status.phase` and
//! `qosClass`, Namespace finalizers, the Priority admission's `priority: 0`), and the Job
//! selector generation (`job_generate_selector`, run once the uid is known).
//!
//! Works in place on JSON so that unknown fields survive; never panics on malformed input
//! (fields of the wrong type are left for validation to report).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::quantity::{Quantity, parse_quantity_value};
use crate::validation::VOLUME_SOURCES;

/// Fill upstream's defaults in place, for a kind in its served/storage version.
pub fn apply_defaults(group: &str, version: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => default_pod(obj),
        ("", "PodTemplate") => {
            if let Some(t) = obj.get_mut("template") {
                default_pod_template(t);
            }
        }
        ("", "ReplicationController") => default_rc(obj),
        ("", "Service") => default_service(obj),
        ("", "Namespace") => {
            if let Some(spec) = ensure_obj(obj, "spec") {
                set(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(st) = ensure_obj(obj, "status") {
                set_str(st, "phase", "Active");
            }
        }
        ("", "Secret") => default_secret(obj),
        ("", "PersistentVolume") => {
            if let Some(spec) = ensure_obj(obj, "spec") {
                set_str(spec, "persistentVolumeReclaimPolicy", "Retain");
                set_str(spec, "volumeMode", "Filesystem");
            }
            if let Some(st) = ensure_obj(obj, "status") {
                set_str(st, "phase", "Pending");
            }
        }
        ("", "PersistentVolumeClaim") => default_pvc(obj),
        ("", "Endpoints") => {
            for subset in arr_mut(obj, "subsets") {
                for p in arr_mut(subset, "ports") {
                    set_str(p, "protocol", "TCP");
                }
            }
        }
        ("", "Node") => {
            let capacity = obj.get("status").and_then(|s| s.get("capacity")).cloned();
            if let (Some(cap), Some(st)) = (capacity, obj.get_mut("status")) {
                set(st, "allocatable", cap);
            }
        }
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = ensure_obj(obj, "spec") {
                set(spec, "replicas", json!(1));
                default_template_in(spec);
            }
        }
        ("apps", "StatefulSet") => default_statefulset(obj),
        ("apps", "DaemonSet") => default_daemonset(obj),
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => default_cronjob(obj),
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => default_hpa(version, obj),
        ("scheduling.k8s.io", "PriorityClass") => set_str(obj, "preemptionPolicy", "PreemptLowerPriority"),
        ("storage.k8s.io", "StorageClass") => {
            set_str(obj, "reclaimPolicy", "Delete");
            set_str(obj, "volumeBindingMode", "Immediate");
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = ensure_obj(obj, "spec") {
                set(spec, "attachRequired", json!(true));
                set(spec, "podInfoOnMount", json!(false));
                set(spec, "storageCapacity", json!(false));
                set_str(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType");
                set(spec, "requiresRepublish", json!(false));
                set(spec, "volumeLifecycleModes", json!(["Persistent"]));
                set(spec, "seLinuxMount", json!(false));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            for s in arr_mut(obj, "subjects") {
                let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
                if kind == "User" || kind == "Group" {
                    set_str(s, "apiGroup", "rbac.authorization.k8s.io");
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for p in arr_mut(obj, "ports") {
                set(p, "name", json!(""));
                set_str(p, "protocol", "TCP");
            }
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => {
            let mutating = kind == "MutatingWebhookConfiguration";
            for w in arr_mut(obj, "webhooks") {
                default_webhook(w, mutating);
            }
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            if let Some(spec) = ensure_obj(obj, "spec") {
                set_str(spec, "failurePolicy", "Fail");
                if let Some(mc) = spec.get_mut("matchConstraints") {
                    default_match_resources(mc);
                }
            }
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            if let Some(mr) = obj.pointer_mut("/spec/matchResources") {
                default_match_resources(mr);
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if let Some(spec) = ensure_obj(obj, "spec")
                && let Some(conv) = ensure_obj(spec, "conversion")
            {
                set_str(conv, "strategy", "None");
                if let Some(port) = conv.pointer_mut("/webhook/clientConfig/service") {
                    set(port, "port", json!(443));
                }
            }
        }
        _ => {}
    }
}

// ---- JSON helpers ---------------------------------------------------------------------------

fn absent(o: &Map<String, Value>, key: &str) -> bool {
    o.get(key).is_none_or(Value::is_null)
}

/// Insert `v` at `key` when absent or null.
fn set(o: &mut Value, key: &str, v: Value) {
    if let Some(m) = o.as_object_mut()
        && absent(m, key)
    {
        m.insert(key.to_string(), v);
    }
}

/// Insert a string at `key` when absent, null or empty (Go's zero value).
fn set_str(o: &mut Value, key: &str, s: &str) {
    if let Some(m) = o.as_object_mut()
        && (absent(m, key) || m.get(key).and_then(Value::as_str) == Some(""))
    {
        m.insert(key.to_string(), Value::from(s));
    }
}

/// The object at `key`, created empty when absent; `None` when `o` or the value isn't an object.
fn ensure_obj<'a>(o: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let m = o.as_object_mut()?;
    if absent(m, key) {
        m.insert(key.to_string(), json!({}));
    }
    m.get_mut(key).filter(|v| v.is_object())
}

/// The object at `key` when present.
fn child<'a>(o: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    o.get_mut(key).filter(|v| v.is_object())
}

/// Elements of the array at `key` (empty when absent).
fn arr_mut<'a>(o: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    o.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

// ---- Pods -----------------------------------------------------------------------------------

fn default_pod(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        default_pod_spec(spec);
        set(spec, "enableServiceLinks", json!(true));
        // Requests default to limits when only limits are set.
        for key in ["initContainers", "containers"] {
            for c in arr_mut(spec, key) {
                if let Some(res) = child(c, "resources") {
                    let limits = res.get("limits").and_then(Value::as_object).cloned();
                    if let Some(limits) = limits.filter(|l| !l.is_empty())
                        && let Some(req) = ensure_obj(res, "requests").and_then(Value::as_object_mut)
                    {
                        for (k, v) in limits {
                            req.entry(k).or_insert(v);
                        }
                    }
                }
            }
        }
        // The Priority admission plugin, when no priority class is named.
        let named = spec.get("priorityClassName").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !named {
            set(spec, "priority", json!(0));
            set_str(spec, "preemptionPolicy", "PreemptLowerPriority");
        }
    }
    // podStrategy.PrepareForCreate: a new pod is Pending with its QoS class.
    let has_phase = obj.pointer("/status/phase").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !has_phase {
        let qos = pod_qos_class(obj);
        if let Some(st) = ensure_obj(obj, "status") {
            set_str(st, "phase", "Pending");
            set_str(st, "qosClass", qos);
        }
    }
}

/// Upstream's QoS class of a pod: `Guaranteed`, `Burstable` or `BestEffort`.
pub fn pod_qos_class(pod: &Value) -> &'static str {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .collect();
    let supported = |k: &str| k == "cpu" || k == "memory";
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.get("resources").unwrap_or(&Value::Null);
        let get = |what: &str| -> Vec<(String, Quantity)> {
            res.get(what)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(k, _)| supported(k))
                .filter_map(|(k, v)| parse_quantity_value(v).map(|q| (k.clone(), q)))
                .filter(|(_, q)| !q.is_zero())
                .collect()
        };
        let (requests, limits) = (get("requests"), get("limits"));
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        if limits.len() != 2 {
            guaranteed = false;
        }
        for (k, q) in &requests {
            if limits.iter().find(|(lk, _)| lk == k).map(|(_, l)| l) != Some(q) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Defaults of `spec.template` inside a workload spec.
fn default_template_in(spec: &mut Value) {
    if let Some(t) = child(spec, "template") {
        default_pod_template(t);
    }
}

fn default_pod_template(tmpl: &mut Value) {
    if let Some(spec) = ensure_obj(tmpl, "spec") {
        default_pod_spec(spec);
    }
}

fn default_pod_spec(spec: &mut Value) {
    set_str(spec, "dnsPolicy", "ClusterFirst");
    set_str(spec, "restartPolicy", "Always");
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set_str(spec, "schedulerName", "default-scheduler");
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in arr_mut(spec, key) {
            default_container(c, host_network);
        }
    }
    for v in arr_mut(spec, "volumes") {
        default_volume(v);
    }
}

fn default_container(c: &mut Value, host_network: bool) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
    set_str(c, "imagePullPolicy", default_pull_policy(&image));
    set_str(c, "terminationMessagePath", "/dev/termination-log");
    set_str(c, "terminationMessagePolicy", "File");
    for p in arr_mut(c, "ports") {
        set_str(p, "protocol", "TCP");
        if host_network {
            let cp = p.get("containerPort").cloned();
            let hp = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if let (Some(cp), 0) = (cp, hp)
                && let Some(m) = p.as_object_mut()
            {
                m.insert("hostPort".into(), cp);
            }
        }
    }
    for e in arr_mut(c, "env") {
        if let Some(f) = e.pointer_mut("/valueFrom/fieldRef") {
            set_str(f, "apiVersion", "v1");
        }
        if let Some(r) = e.pointer_mut("/valueFrom/resourceFieldRef")
            && let Some(d) = r.get("divisor")
        {
            canonicalize_quantity(d.clone()).into_iter().for_each(|q| r["divisor"] = q);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            default_handler(p);
        }
    }
    if let Some(lc) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lc, hook) {
                default_handler(h);
            }
        }
    }
    if let Some(res) = child(c, "resources") {
        for key in ["limits", "requests"] {
            if let Some(list) = res.get_mut(key).and_then(Value::as_object_mut) {
                for v in list.values_mut() {
                    if let Some(q) = canonicalize_quantity(v.clone()) {
                        *v = q;
                    }
                }
            }
        }
    }
}

/// Quantities are rounded up to milli precision and stored in canonical form.
fn canonicalize_quantity(v: Value) -> Option<Value> {
    let q = parse_quantity_value(&v)?;
    let nanos = q.nanos();
    let milli = 1_000_000i128;
    let rounded = if nanos % milli == 0 {
        nanos
    } else if nanos > 0 {
        (nanos / milli + 1) * milli
    } else {
        (nanos / milli - 1) * milli
    };
    Some(Quantity::from_nanos(rounded, q.format).to_value())
}

fn default_handler(h: &mut Value) {
    if let Some(g) = child(h, "httpGet") {
        set_str(g, "path", "/");
        set_str(g, "scheme", "HTTP");
    }
    if let Some(g) = child(h, "grpc") {
        set(g, "service", json!(""));
    }
}

/// `Always` for `:latest` or an untagged image, else `IfNotPresent`.
fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match tag {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

fn default_volume(v: &mut Value) {
    let Some(m) = v.as_object() else {
        return;
    };
    if !VOLUME_SOURCES.iter().any(|s| !absent(m, s)) {
        set(v, "emptyDir", json!({}));
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = child(v, src) {
            set(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = child(v, "downwardAPI") {
        default_downward_items(d);
    }
    if let Some(p) = child(v, "projected") {
        for s in arr_mut(p, "sources") {
            if let Some(t) = child(s, "serviceAccountToken") {
                set(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = child(s, "downwardAPI") {
                default_downward_items(d);
            }
        }
    }
    if let Some(h) = child(v, "hostPath") {
        set(h, "type", json!(""));
    }
    if let Some(i) = child(v, "iscsi") {
        set_str(i, "iscsiInterface", "default");
    }
    if let Some(r) = child(v, "rbd") {
        set_str(r, "pool", "rbd");
        set_str(r, "user", "admin");
        set_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = child(v, "azureDisk") {
        set_str(a, "cachingMode", "ReadWrite");
        set_str(a, "fsType", "ext4");
        set(a, "readOnly", json!(false));
        set_str(a, "kind", "Shared");
    }
}

fn default_downward_items(d: &mut Value) {
    for item in arr_mut(d, "items") {
        if let Some(f) = child(item, "fieldRef") {
            set_str(f, "apiVersion", "v1");
        }
    }
}

/// `metadata.labels` of a workload default to its pod template's labels when empty.
fn default_labels_from_template(obj: &mut Value, labels: Value) {
    if let Some(meta) = ensure_obj(obj, "metadata")
        && meta.get("labels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
    {
        meta["labels"] = labels;
    }
}

fn default_rc(obj: &mut Value) {
    let tmpl_labels =
        obj.pointer("/spec/template/metadata/labels").cloned().filter(|l| l.as_object().is_some_and(|m| !m.is_empty()));
    if let Some(spec) = ensure_obj(obj, "spec") {
        set(spec, "replicas", json!(1));
        if let Some(labels) = &tmpl_labels {
            let empty = spec.get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty());
            if empty {
                spec["selector"] = labels.clone();
            }
        }
        default_template_in(spec);
    }
    if let Some(labels) = tmpl_labels {
        default_labels_from_template(obj, labels);
    }
}

fn default_pvc(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_str(spec, "volumeMode", "Filesystem");
        if let Some(list) = spec.pointer_mut("/resources/requests").and_then(Value::as_object_mut) {
            for v in list.values_mut() {
                if let Some(q) = canonicalize_quantity(v.clone()) {
                    *v = q;
                }
            }
        }
    }
    if let Some(st) = ensure_obj(obj, "status") {
        set_str(st, "phase", "Pending");
    }
}

// ---- Service / Secret -----------------------------------------------------------------------

fn default_service(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP") => {
            let has = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds").is_some_and(|v| !v.is_null());
            if !has {
                spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
            }
        }
        _ => {}
    }
    set_str(spec, "type", "ClusterIP");
    for p in arr_mut(spec, "ports") {
        set_str(p, "protocol", "TCP");
        let tp = p.get("targetPort");
        let missing = tp.is_none_or(|t| t.is_null() || t == &json!(0) || t == &json!(""));
        if missing && let Some(port) = p.get("port").cloned() {
            p["targetPort"] = port;
        }
    }
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if ty == "NodePort" || ty == "LoadBalancer" || ty == "ClusterIP" {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // The REST layer's IP family defaults (single-stack IPv4 cluster).
    if ty != "ExternalName" {
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        let no_selector = spec.get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty());
        if headless && no_selector {
            set(spec, "ipFamilyPolicy", json!("RequireDualStack"));
            set(spec, "ipFamilies", json!(["IPv4", "IPv6"]));
        } else {
            set(spec, "ipFamilyPolicy", json!("SingleStack"));
            set(spec, "ipFamilies", json!(["IPv4"]));
        }
    }
    if let Some(status) = obj.get_mut("status")
        && let Some(ing) = status.pointer_mut("/loadBalancer/ingress").and_then(Value::as_array_mut)
    {
        for i in ing {
            if i.get("ip").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
                set_str(i, "ipMode", "VIP");
            }
        }
    }
}

/// Secret: type Opaque, and `stringData` folded into `data` (base64), as upstream's conversion does.
fn default_secret(obj: &mut Value) {
    set_str(obj, "type", "Opaque");
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = m.remove("stringData") else {
        return;
    };
    if absent(m, "data") {
        m.insert("data".into(), json!({}));
    }
    if let Some(data) = m.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or("");
            data.insert(k, Value::from(BASE64.encode(s.as_bytes())));
        }
    }
}

// ---- apps -----------------------------------------------------------------------------------

/// A Deployment's `strategy` or a DaemonSet's `updateStrategy`: `RollingUpdate` unless set,
/// and then the rolling update's `maxUnavailable` and `maxSurge`.
fn default_rolling_update(spec: &mut Value, key: &str, max_unavailable: Value, max_surge: Value) {
    if let Some(strategy) = ensure_obj(spec, key) {
        set_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
        {
            set(ru, "maxUnavailable", max_unavailable);
            set(ru, "maxSurge", max_surge);
        }
    }
}

fn default_deployment(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set(spec, "replicas", json!(1));
    default_rolling_update(spec, "strategy", json!("25%"), json!("25%"));
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    default_template_in(spec);
}

fn default_daemonset(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    default_rolling_update(spec, "updateStrategy", json!(1), json!(0));
    set(spec, "revisionHistoryLimit", json!(10));
    default_template_in(spec);
}

fn default_statefulset(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = ensure_obj(spec, "updateStrategy") {
        let untyped = strategy.get("type").and_then(Value::as_str).is_none_or(str::is_empty);
        if untyped {
            set_str(strategy, "type", "RollingUpdate");
            set(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            set(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        set_str(policy, "whenDeleted", "Retain");
        set_str(policy, "whenScaled", "Retain");
    }
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    for t in arr_mut(spec, "volumeClaimTemplates") {
        default_pvc(t);
    }
    default_template_in(spec);
}

// ---- batch ----------------------------------------------------------------------------------

fn default_job(obj: &mut Value) {
    let tmpl_labels = obj.pointer("/spec/template/metadata/labels").cloned().filter(|l| l.is_object());
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    let absent_key = |s: &Value, k: &str| s.get(k).is_none_or(Value::is_null);
    if absent_key(spec, "completions") && absent_key(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set(spec, "parallelism", json!(1));
    if absent_key(spec, "backoffLimit") {
        let per_index = !absent_key(spec, "backoffLimitPerIndex");
        spec["backoffLimit"] = json!(if per_index { i32::MAX } else { 6 });
    }
    set_str(spec, "completionMode", "NonIndexed");
    set(spec, "suspend", json!(false));
    let has_pfp = !absent_key(spec, "podFailurePolicy");
    if let Some(pfp) = child(spec, "podFailurePolicy") {
        for rule in arr_mut(pfp, "rules") {
            for pattern in arr_mut(rule, "onPodConditions") {
                set_str(pattern, "status", "True");
            }
        }
    }
    set_str(spec, "podReplacementPolicy", if has_pfp { "Failed" } else { "TerminatingOrFailed" });
    default_template_in(spec);
    if let Some(labels) = tmpl_labels {
        default_labels_from_template(obj, labels);
    }
}

/// The job controller's selector and pod labels, generated from the job's uid and name
/// (unless `spec.manualSelector` is true). Call after `metadata.uid` is set.
pub fn job_generate_selector(obj: &mut Value) {
    let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    if manual || !obj.is_object() {
        return;
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    let job_labels_empty = obj.pointer("/metadata/labels").and_then(Value::as_object).is_none_or(|m| m.is_empty());
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    let mut generated = Map::new();
    if let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
        .and_then(Value::as_object_mut)
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            labels.entry(key).or_insert_with(|| Value::from(name.as_str()));
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels.entry(key).or_insert_with(|| Value::from(uid.as_str()));
        }
        generated = labels.clone();
    }
    if let Some(ml) =
        ensure_obj(spec, "selector").and_then(|s| ensure_obj(s, "matchLabels")).and_then(Value::as_object_mut)
    {
        ml.entry("batch.kubernetes.io/controller-uid").or_insert_with(|| Value::from(uid.as_str()));
    }
    // Upstream's job labels share the template's label map when they were defaulted from it.
    if job_labels_empty && let Some(meta) = ensure_obj(obj, "metadata") {
        meta["labels"] = Value::Object(generated);
    }
}

fn default_cronjob(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_str(spec, "concurrencyPolicy", "Allow");
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(t) = spec.pointer_mut("/jobTemplate/spec/template").filter(|t| t.is_object()) {
        default_pod_template(t);
    }
}

// ---- networking / autoscaling / admission ---------------------------------------------------

fn default_network_policy(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        for rule in arr_mut(spec, dir) {
            for p in arr_mut(rule, "ports") {
                set_str(p, "protocol", "TCP");
            }
        }
    }
    let empty = spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if empty {
        let egress = spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
        spec["policyTypes"] = if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
    }
}

fn default_hpa(version: &str, obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set(spec, "minReplicas", json!(1));
    if version == "v1" {
        return;
    }
    let no_metrics = spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if no_metrics {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    if let Some(b) = child(spec, "behavior") {
        if let Some(up) = ensure_obj(b, "scaleUp") {
            set(up, "stabilizationWindowSeconds", json!(0));
            set(up, "selectPolicy", json!("Max"));
            set(
                up,
                "policies",
                json!([{"type":"Pods","value":4,"periodSeconds":15},{"type":"Percent","value":100,"periodSeconds":15}]),
            );
        }
        if let Some(down) = ensure_obj(b, "scaleDown") {
            set(down, "stabilizationWindowSeconds", json!(300));
            set(down, "selectPolicy", json!("Max"));
            set(down, "policies", json!([{"type":"Percent","value":100,"periodSeconds":15}]));
        }
    }
}

/// MatchResources of admission policies and bindings.
fn default_match_resources(mr: &mut Value) {
    set_str(mr, "matchPolicy", "Equivalent");
    set(mr, "namespaceSelector", json!({}));
    set(mr, "objectSelector", json!({}));
    for key in ["resourceRules", "excludeResourceRules"] {
        for r in arr_mut(mr, key) {
            set_str(r, "scope", "*");
        }
    }
}

fn default_webhook(w: &mut Value, mutating: bool) {
    set_str(w, "failurePolicy", "Fail");
    set_str(w, "matchPolicy", "Equivalent");
    set(w, "namespaceSelector", json!({}));
    set(w, "objectSelector", json!({}));
    set(w, "timeoutSeconds", json!(10));
    if mutating {
        set_str(w, "reinvocationPolicy", "Never");
    }
    for r in arr_mut(w, "rules") {
        set_str(r, "scope", "*");
    }
    if let Some(svc) = w.pointer_mut("/clientConfig/service") {
        set(svc, "port", json!(443));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_deployment() {
        let mut d = json!({"metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}});
        apply_defaults("apps", "v1", "Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        assert!(pod.get("enableServiceLinks").is_none(), "only Pods get enableServiceLinks");
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        // The defaulted object is valid.
        d["metadata"]["namespace"] = json!("default");
        assert!(crate::validation::validate_create("apps", "v1", "Deployment", "deployments", &d).is_empty());
    }

    #[test]
    fn bare_pod() {
        let mut p = json!({"metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"nginx:1.25",
            "ports":[{"containerPort":80}],
            "readinessProbe":{"httpGet":{"port":80}},
            "env":[{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
            "resources":{"limits":{"cpu":"0.5","memory":"1.5Gi"}}}],
            "volumes":[{"name":"cfg","configMap":{"name":"x"}},{"name":"scratch"}]}});
        apply_defaults("", "v1", "Pod", &mut p);
        let spec = &p["spec"];
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet":{"port":80,"path":"/","scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,
                "successThreshold":1,"failureThreshold":3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["resources"]["limits"], json!({"cpu":"500m","memory":"1536Mi"}));
        assert_eq!(c["resources"]["requests"], json!({"cpu":"500m","memory":"1536Mi"}));
        assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][1]["emptyDir"], json!({}));
        assert_eq!(p["status"], json!({"phase":"Pending","qosClass":"Guaranteed"}));
        assert!(crate::validation::validate_create("", "v1", "Pod", "pods", &p).is_empty());
    }

    #[test]
    fn qos_classes() {
        let mk = |res: Value| json!({"spec":{"containers":[{"name":"c","resources":res}]}});
        assert_eq!(pod_qos_class(&mk(json!({}))), "BestEffort");
        assert_eq!(pod_qos_class(&mk(json!({"requests":{"cpu":"1"}}))), "Burstable");
        assert_eq!(
            pod_qos_class(&mk(json!({"requests":{"cpu":"1","memory":"1Gi"},"limits":{"cpu":"1","memory":"1Gi"}}))),
            "Guaranteed"
        );
    }

    #[test]
    fn pull_policy() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/nginx:1"), "IfNotPresent");
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn bare_service() {
        let mut s = json!({"metadata":{"name":"s","namespace":"default"},
            "spec":{"selector":{"app":"web"},"ports":[{"port":80}]}});
        apply_defaults("", "v1", "Service", &mut s);
        assert_eq!(
            s["spec"],
            json!({"selector":{"app":"web"},"ports":[{"port":80,"protocol":"TCP","targetPort":80}],
                "type":"ClusterIP","sessionAffinity":"None","internalTrafficPolicy":"Cluster",
                "ipFamilyPolicy":"SingleStack","ipFamilies":["IPv4"]})
        );
        let mut np = json!({"spec":{"type":"NodePort","ports":[{"port":80,"targetPort":"http"}]}});
        apply_defaults("", "v1", "Service", &mut np);
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");
        assert!(crate::validation::validate_create("", "v1", "Service", "services", &s).is_empty());
    }

    #[test]
    fn bare_job_and_selector() {
        let mut j = json!({"metadata":{"name":"pi","namespace":"default"},"spec":{"template":{"spec":{
            "containers":[{"name":"pi","image":"perl:5"}],"restartPolicy":"Never"}}}});
        apply_defaults("batch", "v1", "Job", &mut j);
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        j["metadata"]["uid"] = json!("abc");
        job_generate_selector(&mut j);
        assert_eq!(j["spec"]["selector"], json!({"matchLabels":{"batch.kubernetes.io/controller-uid":"abc"}}));
        let labels = json!({"batch.kubernetes.io/controller-uid":"abc","batch.kubernetes.io/job-name":"pi",
            "controller-uid":"abc","job-name":"pi"});
        assert_eq!(j["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(j["metadata"]["labels"], labels);
        assert!(crate::validation::validate_create("batch", "v1", "Job", "jobs", &j).is_empty());
        // Parallelism alone leaves completions unset.
        let mut p = json!({"spec":{"parallelism":3}});
        apply_defaults("batch", "v1", "Job", &mut p);
        assert!(p["spec"].get("completions").is_none());
    }

    #[test]
    fn other_kinds() {
        let mut sts = json!({"spec":{"volumeClaimTemplates":[{"metadata":{"name":"d"},"spec":{}}]}});
        apply_defaults("apps", "v1", "StatefulSet", &mut sts);
        assert_eq!(sts["spec"]["updateStrategy"], json!({"type":"RollingUpdate","rollingUpdate":{"partition":0}}));
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted":"Retain","whenScaled":"Retain"})
        );
        assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"], "Pending");
        let mut ds = json!({"spec":{}});
        apply_defaults("apps", "v1", "DaemonSet", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":0}})
        );
        let mut ns = json!({"metadata":{"name":"x"}});
        apply_defaults("", "v1", "Namespace", &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        let mut sec = json!({"stringData":{"a":"hello"}});
        apply_defaults("", "v1", "Secret", &mut sec);
        assert_eq!(sec, json!({"type":"Opaque","data":{"a":"aGVsbG8="}}));
        let mut rb = json!({"subjects":[{"kind":"User","name":"u"},{"kind":"ServiceAccount","name":"s"}]});
        apply_defaults("rbac.authorization.k8s.io", "v1", "RoleBinding", &mut rb);
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none());
        let mut cj =
            json!({"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{"containers":[]}}}}}});
        apply_defaults("batch", "v1", "CronJob", &mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut np = json!({"spec":{"podSelector":{},"egress":[{"ports":[{"port":53}]}]}});
        apply_defaults("networking.k8s.io", "v1", "NetworkPolicy", &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        // Malformed input never panics.
        let mut bad = json!({"spec":"nope"});
        apply_defaults("apps", "v1", "Deployment", &mut bad);
        apply_defaults("", "v1", "Pod", &mut bad);
        assert_eq!(bad["spec"], "nope");
    }

    #[test]
    fn secret_string_data_is_padded_std_base64() {
        let mut sec = json!({"data":{"keep":"eA=="},"stringData":{"f":"f","fo":"fo","foo":"foo","bin":"\u{fbff}"}});
        apply_defaults("", "v1", "Secret", &mut sec);
        assert_eq!(sec["data"], json!({"keep":"eA==","f":"Zg==","fo":"Zm8=","foo":"Zm9v","bin":"76+/"}));
        assert!(sec.get("stringData").is_none());
    }
}
