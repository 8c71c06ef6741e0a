//! The bootstrap RBAC policy the apiserver ensures at startup: upstream's default ClusterRoles
//! (cluster-admin, admin/edit/view with their `aggregate-to-*` parts, discovery and
//! public-info roles, node, scheduler, controller-manager, per-controller roles) and their
//! bindings, the kube-system/kube-public Roles, plus rkube's own identities (the `system:nodes`
//! group, node-ipam-controller, local-path-provisioner). The tables are written from upstream's
//! `bootstrappolicy` package; objects carry upstream's bootstrapping label and autoupdate annotation.

use serde_json::{Value, json};

use super::{RBAC_GROUP, aggregate_cluster_role};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];

const LEGACY: &str = "";
const APPS: &str = "apps";
const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTS: &str = "certificates.k8s.io";
const COORDINATION: &str = "coordination.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EXTENSIONS: &str = "extensions";
const POLICY: &str = "policy";
const STORAGE: &str = "storage.k8s.io";
const NETWORKING: &str = "networking.k8s.io";
const EVENTS: &str = "events.k8s.io";
const ADMISSIONREG: &str = "admissionregistration.k8s.io";

const CONTROLLER_PREFIX: &str = "system:controller:";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn events_rule() -> Value {
    rule(&["create", "update", "patch"], &[LEGACY, EVENTS], &["events"])
}

fn metadata(name: &str, namespace: Option<&str>, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in extra_labels {
        labels.insert((*k).into(), json!(v));
    }
    let mut m = json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    });
    if let (Some(ns), Some(o)) = (namespace, m.as_object_mut()) {
        o.insert("namespace".into(), json!(ns));
    }
    m
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata(name, None, &[]), "rules": rules})
}

fn labeled_cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata(name, None, labels), "rules": rules})
}

fn aggregated_cluster_role(name: &str, labels: &[(&str, &str)], aggregate_from: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, None, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]},
        "rules": [],
    })
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata(name, Some(namespace), &[]), "rules": rules})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": RBAC_GROUP, "name": name})
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": name})
}

fn sa(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    let mut b = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None, &[]),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    });
    if subjects_empty(&b)
        && let Some(o) = b.as_object_mut()
    {
        o.remove("subjects");
    }
    b
}

fn subjects_empty(b: &Value) -> bool {
    b["subjects"].as_array().is_some_and(Vec::is_empty)
}

fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(name, Some(namespace), &[]),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

/// What a kubelet needs (upstream's `NodeRules`, feature-gated parts as enabled in 1.33).
fn node_rules() -> Vec<Value> {
    vec![
        rule(&["create"], &[AUTHN], &["tokenreviews"]),
        rule(&["create"], &[AUTHZ], &["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, &[LEGACY], &["services"]),
        rule(&["create", "get", "list", "watch"], &[LEGACY], &["nodes"]),
        rule(&["update", "patch"], &[LEGACY], &["nodes/status"]),
        rule(&["update", "patch"], &[LEGACY], &["nodes"]),
        rule(&["create", "update", "patch"], &[LEGACY], &["events"]),
        rule(READ, &[LEGACY], &["pods"]),
        rule(&["create", "delete"], &[LEGACY], &["pods"]),
        rule(&["update", "patch"], &[LEGACY], &["pods/status"]),
        rule(&["create"], &[LEGACY], &["pods/eviction"]),
        rule(READ, &[LEGACY], &["secrets", "configmaps"]),
        rule(&["get"], &[LEGACY], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"], &[LEGACY], &["endpoints"]),
        rule(&["create", "get", "list", "watch"], &[CERTS], &["certificatesigningrequests"]),
        rule(&["get", "create", "update", "patch", "delete"], &[COORDINATION], &["leases"]),
        rule(&["get"], &[STORAGE], &["volumeattachments"]),
        rule(&["get", "update", "patch"], &[LEGACY], &["persistentvolumeclaims/status"]),
        rule(&["create"], &[LEGACY], &["serviceaccounts/token"]),
        rule(&["get", "watch", "list"], &[STORAGE], &["csidrivers"]),
        rule(&["get", "create", "update", "patch", "delete"], &[STORAGE], &["csinodes"]),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

fn aggregate_to_edit_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[LEGACY],
            &["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"],
        ),
        rule(&["impersonate"], &[LEGACY], &["serviceaccounts"]),
        rule(WRITE, &[LEGACY], &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        rule(&["create"], &[LEGACY], &["pods/eviction"]),
        rule(
            WRITE,
            &[LEGACY],
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], &[LEGACY], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &[APPS],
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, &[AUTOSCALING], &["horizontalpodautoscalers"]),
        rule(WRITE, &[BATCH], &["jobs", "cronjobs"]),
        rule(
            WRITE,
            &[EXTENSIONS],
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(WRITE, &[POLICY], &["poddisruptionbudgets"]),
        rule(WRITE, &[NETWORKING], &["networkpolicies", "ingresses"]),
    ]
}

fn aggregate_to_view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[LEGACY],
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            &[LEGACY],
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        rule(READ, &[LEGACY], &["namespaces"]),
        rule(READ, &[DISCOVERY], &["endpointslices"]),
        rule(
            READ,
            &[APPS],
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(READ, &[AUTOSCALING], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, &[BATCH], &["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
        rule(
            READ,
            &[EXTENSIONS],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(READ, &[POLICY], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, &[NETWORKING], &["networkpolicies", "ingresses", "ingresses/status"]),
    ]
}

fn scheduler_rules() -> Vec<Value> {
    vec![
        events_rule(),
        rule(&["create"], &[COORDINATION], &["leases"]),
        named(&["get", "update"], &[COORDINATION], &["leases"], &["kube-scheduler"]),
        rule(&["create"], &[LEGACY], &["endpoints"]),
        named(&["get", "update"], &[LEGACY], &["endpoints"], &["kube-scheduler"]),
        rule(READ, &[LEGACY], &["nodes"]),
        rule(READ, &[LEGACY], &["namespaces"]),
        rule(&["get", "list", "watch", "delete"], &[LEGACY], &["pods"]),
        rule(&["create"], &[LEGACY], &["pods/binding", "bindings"]),
        rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
        rule(READ, &[LEGACY], &["services", "replicationcontrollers"]),
        rule(READ, &[APPS, EXTENSIONS], &["replicasets"]),
        rule(READ, &[APPS], &["statefulsets"]),
        rule(READ, &[POLICY], &["poddisruptionbudgets"]),
        rule(READ, &[LEGACY], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["create"], &[AUTHN], &["tokenreviews"]),
        rule(&["create"], &[AUTHZ], &["subjectaccessreviews"]),
        rule(READ, &[STORAGE], &["csinodes"]),
        rule(READ, &[STORAGE], &["csidrivers"]),
        rule(READ, &[STORAGE], &["csistoragecapacities"]),
    ]
}

fn base_cluster_roles() -> Vec<Value> {
    let healthz = ["/livez", "/readyz", "/healthz", "/version", "/version/"];
    vec![
        cluster_role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &["/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(&["create"], &[AUTHZ], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"], &[AUTHN], &["selfsubjectreviews"]),
            ],
        ),
        cluster_role("system:public-info-viewer", vec![urls(&["get"], &healthz)]),
        aggregated_cluster_role("admin", &[], "rbac.authorization.k8s.io/aggregate-to-admin"),
        aggregated_cluster_role(
            "edit",
            &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")],
            "rbac.authorization.k8s.io/aggregate-to-edit",
        ),
        aggregated_cluster_role(
            "view",
            &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")],
            "rbac.authorization.k8s.io/aggregate-to-view",
        ),
        labeled_cluster_role(
            "system:aggregate-to-admin",
            &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")],
            vec![
                rule(&["create"], &[AUTHZ], &["localsubjectaccessreviews"]),
                rule(READ_WRITE, &[super::RBAC_GROUP], &["roles", "rolebindings"]),
            ],
        ),
        labeled_cluster_role(
            "system:aggregate-to-edit",
            &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")],
            aggregate_to_edit_rules(),
        ),
        labeled_cluster_role(
            "system:aggregate-to-view",
            &[("rbac.authorization.k8s.io/aggregate-to-view", "true")],
            aggregate_to_view_rules(),
        ),
        cluster_role(
            "system:heapster",
            vec![
                rule(READ, &[LEGACY], &["events", "pods", "nodes", "namespaces"]),
                rule(READ, &[EXTENSIONS], &["deployments"]),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-problem-detector",
            vec![rule(&["get"], &[LEGACY], &["nodes"]), rule(&["patch"], &[LEGACY], &["nodes/status"]), events_rule()],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(READ, &[LEGACY], &["nodes"]),
                rule(&["proxy"], &[LEGACY], &["nodes"]),
                rule(&["*"], &[LEGACY], &["nodes/proxy", "nodes/metrics", "nodes/spec", "nodes/stats", "nodes/log"]),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(&["create", "get", "list", "watch"], &[CERTS], &["certificatesigningrequests"])],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["create"], &[AUTHN], &["tokenreviews"]),
                rule(&["create"], &[AUTHZ], &["subjectaccessreviews"]),
            ],
        ),
        cluster_role("system:kube-aggregator", vec![rule(READ, &[LEGACY], &["services", "endpoints"])]),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                events_rule(),
                rule(&["create"], &[COORDINATION], &["leases"]),
                named(&["get", "update"], &[COORDINATION], &["leases"], &["kube-controller-manager"]),
                rule(&["create"], &[LEGACY], &["secrets", "serviceaccounts"]),
                rule(&["delete"], &[LEGACY], &["secrets"]),
                rule(&["get"], &[LEGACY], &["namespaces", "secrets", "serviceaccounts", "configmaps"]),
                rule(&["update"], &[LEGACY], &["secrets", "serviceaccounts"]),
                rule(&["create"], &[AUTHN], &["tokenreviews"]),
                rule(&["create"], &[AUTHZ], &["subjectaccessreviews"]),
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["create"], &[LEGACY], &["serviceaccounts/token"]),
            ],
        ),
        cluster_role("system:kube-dns", vec![rule(&["list", "watch"], &[LEGACY], &["endpoints", "services"])]),
        cluster_role(
            "system:persistent-volume-provisioner",
            vec![
                rule(&["get", "list", "watch", "create", "delete"], &[LEGACY], &["persistentvolumes"]),
                rule(&["get", "list", "watch", "update"], &[LEGACY], &["persistentvolumeclaims"]),
                rule(READ, &[STORAGE], &["storageclasses"]),
                rule(&["watch"], &[LEGACY], &["events"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(&["create"], &[CERTS], &["certificatesigningrequests/nodeclient"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(&["create"], &[CERTS], &["certificatesigningrequests/selfnodeclient"])],
        ),
        cluster_role(
            "system:volume-scheduler",
            vec![
                rule(READ_UPDATE, &[LEGACY], &["persistentvolumes"]),
                rule(READ, &[STORAGE], &["storageclasses"]),
                rule(READ_UPDATE, &[LEGACY], &["persistentvolumeclaims"]),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:legacy-unknown-approver",
            vec![named(&["approve"], &[CERTS], &["signers"], &["kubernetes.io/legacy-unknown"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:kubelet-serving-approver",
            vec![named(&["approve"], &[CERTS], &["signers"], &["kubernetes.io/kubelet-serving"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            vec![named(&["approve"], &[CERTS], &["signers"], &["kubernetes.io/kube-apiserver-client"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            vec![named(&["approve"], &[CERTS], &["signers"], &["kubernetes.io/kube-apiserver-client-kubelet"])],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"], &[LEGACY], &["services", "endpoints"]),
                rule(READ, &[LEGACY], &["nodes"]),
                events_rule(),
                rule(&["list", "watch"], &[DISCOVERY], &["endpointslices"]),
            ],
        ),
        cluster_role("system:kube-scheduler", scheduler_rules()),
    ]
}

/// `system:controller:<name>` roles (upstream's `buildControllerRoles`) plus rkube's own
/// controllers; each is bound to the ServiceAccount `kube-system:<name>`.
fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "attachdetach-controller",
            vec![
                rule(&["list", "watch"], &[LEGACY], &["persistentvolumes", "persistentvolumeclaims"]),
                rule(READ, &[LEGACY], &["nodes"]),
                rule(&["patch", "update"], &[LEGACY], &["nodes/status"]),
                rule(&["list", "watch"], &[LEGACY], &["pods"]),
                events_rule(),
                rule(&["get", "create", "delete", "list", "watch"], &[STORAGE], &["volumeattachments"]),
                rule(&["get", "watch", "list"], &[STORAGE], &["csidrivers"]),
                rule(&["get", "watch", "list"], &[STORAGE], &["csinodes"]),
            ],
        ),
        (
            "clusterrole-aggregation-controller",
            vec![rule(&["escalate", "get", "list", "watch", "update", "patch"], &[RBAC_GROUP], &["clusterroles"])],
        ),
        (
            "cronjob-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[BATCH], &["cronjobs"]),
                rule(&["get", "list", "watch", "create", "update", "delete", "patch"], &[BATCH], &["jobs"]),
                rule(&["update"], &[BATCH], &["cronjobs/status"]),
                rule(&["update"], &[BATCH], &["cronjobs/finalizers"]),
                rule(&["list", "watch", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                rule(READ, &[EXTENSIONS, APPS], &["daemonsets"]),
                rule(&["update"], &[EXTENSIONS, APPS], &["daemonsets/status"]),
                rule(&["update"], &[EXTENSIONS, APPS], &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[LEGACY], &["nodes"]),
                rule(&["list", "watch", "create", "delete", "patch"], &[LEGACY], &["pods"]),
                rule(&["create"], &[LEGACY], &["pods/binding"]),
                rule(
                    &["get", "list", "watch", "create", "delete", "update", "patch"],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                events_rule(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[EXTENSIONS, APPS], &["deployments"]),
                rule(&["update"], &[EXTENSIONS, APPS], &["deployments/status"]),
                rule(&["update"], &[EXTENSIONS, APPS], &["deployments/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "patch", "delete"],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule(READ, &[EXTENSIONS, APPS], &["deployments"]),
                rule(READ, &[APPS, EXTENSIONS], &["replicasets"]),
                rule(READ, &[LEGACY], &["replicationcontrollers"]),
                rule(READ, &[POLICY], &["poddisruptionbudgets"]),
                rule(READ, &[APPS], &["statefulsets"]),
                rule(&["update"], &[POLICY], &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
                events_rule(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                rule(READ, &[LEGACY], &["services", "pods"]),
                rule(&["get", "list", "watch", "create", "update", "delete"], &[LEGACY], &["endpoints"]),
                rule(&["create"], &[LEGACY], &["endpoints/restricted"]),
                events_rule(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule(READ, &[LEGACY], &["services", "pods", "nodes"]),
                rule(&["update"], &[LEGACY], &["services/finalizers"]),
                rule(&["get", "list", "watch", "create", "update", "delete"], &[DISCOVERY], &["endpointslices"]),
                events_rule(),
            ],
        ),
        (
            "endpointslicemirroring-controller",
            vec![
                rule(READ, &[LEGACY], &["services", "endpoints"]),
                rule(&["update"], &[LEGACY], &["services/finalizers"]),
                rule(&["update"], &[LEGACY], &["endpoints/finalizers"]),
                rule(&["get", "list", "watch", "create", "update", "delete"], &[DISCOVERY], &["endpointslices"]),
                events_rule(),
            ],
        ),
        (
            "expand-controller",
            vec![
                rule(&["get", "list", "watch", "update", "patch"], &[LEGACY], &["persistentvolumes"]),
                rule(&["update", "patch"], &[LEGACY], &["persistentvolumeclaims/status"]),
                rule(READ, &[LEGACY], &["persistentvolumeclaims"]),
                events_rule(),
                rule(&["get"], &[LEGACY], &["services"]),
            ],
        ),
        (
            "ephemeral-volume-controller",
            vec![
                rule(READ, &[LEGACY], &["pods"]),
                rule(&["update"], &[LEGACY], &["pods/finalizers"]),
                rule(&["get", "list", "watch", "create"], &[LEGACY], &["persistentvolumeclaims"]),
                events_rule(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![rule(&["get", "list", "watch", "patch", "update", "delete"], &["*"], &["*"]), events_rule()],
        ),
        (
            "horizontal-pod-autoscaler",
            vec![
                rule(READ, &[AUTOSCALING], &["horizontalpodautoscalers"]),
                rule(&["update"], &[AUTOSCALING], &["horizontalpodautoscalers/status"]),
                rule(&["get", "update"], &["*"], &["*/scale"]),
                rule(&["list", "watch"], &[LEGACY], &["pods"]),
                rule(&["list", "watch"], &["metrics.k8s.io"], &["pods"]),
                rule(READ, &["custom.metrics.k8s.io"], &["*"]),
                rule(READ, &["external.metrics.k8s.io"], &["*"]),
                events_rule(),
            ],
        ),
        (
            "job-controller",
            vec![
                rule(&["get", "list", "watch", "update", "patch"], &[BATCH], &["jobs"]),
                rule(&["update"], &[BATCH], &["jobs/status"]),
                rule(&["update"], &[BATCH], &["jobs/finalizers"]),
                rule(&["list", "watch", "create", "delete", "patch"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "namespace-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &[LEGACY], &["namespaces"]),
                rule(&["update"], &[LEGACY], &["namespaces/finalize", "namespaces/status"]),
                rule(&["get", "list", "watch", "delete", "deletecollection"], &["*"], &["*"]),
            ],
        ),
        (
            "node-controller",
            vec![
                rule(&["get", "list", "watch", "update", "delete", "patch"], &[LEGACY], &["nodes"]),
                rule(&["patch", "update"], &[LEGACY], &["nodes/status"]),
                rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
                rule(&["list", "watch", "get", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "persistent-volume-binder",
            vec![
                rule(&["get", "list", "watch", "update", "create", "delete"], &[LEGACY], &["persistentvolumes"]),
                rule(&["update"], &[LEGACY], &["persistentvolumes/status"]),
                rule(&["get", "list", "watch", "update"], &[LEGACY], &["persistentvolumeclaims"]),
                rule(&["update"], &[LEGACY], &["persistentvolumeclaims/status"]),
                rule(&["list", "watch", "get", "create", "delete"], &[LEGACY], &["pods"]),
                rule(READ, &[STORAGE], &["storageclasses"]),
                rule(&["list", "watch"], &[LEGACY], &["nodes"]),
                events_rule(),
                rule(&["watch"], &[LEGACY], &["events"]),
                rule(&["get"], &[LEGACY], &["services"]),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"], &[LEGACY], &["pods"]),
                rule(READ, &[LEGACY], &["nodes"]),
                rule(&["patch"], &[LEGACY], &["pods/status"]),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[APPS, EXTENSIONS], &["replicasets"]),
                rule(&["update"], &[APPS, EXTENSIONS], &["replicasets/status"]),
                rule(&["update"], &[APPS, EXTENSIONS], &["replicasets/finalizers"]),
                rule(&["list", "watch", "patch", "create", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "replication-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[LEGACY], &["replicationcontrollers"]),
                rule(&["update"], &[LEGACY], &["replicationcontrollers/status"]),
                rule(&["update"], &[LEGACY], &["replicationcontrollers/finalizers"]),
                rule(&["list", "watch", "patch", "create", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["update"], &[LEGACY], &["resourcequotas/status"]),
                events_rule(),
            ],
        ),
        (
            "route-controller",
            vec![
                rule(&["list", "watch"], &[LEGACY], &["nodes"]),
                rule(&["patch"], &[LEGACY], &["nodes/status"]),
                events_rule(),
            ],
        ),
        ("service-account-controller", vec![rule(&["create"], &[LEGACY], &["serviceaccounts"]), events_rule()]),
        (
            "service-controller",
            vec![
                rule(READ, &[LEGACY], &["services"]),
                rule(&["patch", "update"], &[LEGACY], &["services/status"]),
                rule(&["list", "watch"], &[LEGACY], &["nodes"]),
                events_rule(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                rule(&["list", "watch"], &[LEGACY], &["pods"]),
                rule(READ, &[APPS], &["statefulsets"]),
                rule(&["update"], &[APPS], &["statefulsets/status"]),
                rule(&["update"], &[APPS], &["statefulsets/finalizers"]),
                rule(&["get", "create", "delete", "update", "patch"], &[LEGACY], &["pods"]),
                rule(
                    &["get", "create", "delete", "update", "patch", "list", "watch"],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                rule(&["get", "create", "list", "watch"], &[LEGACY], &["persistentvolumeclaims"]),
                rule(&["update", "delete"], &[LEGACY], &["persistentvolumeclaims"]),
                rule(&["update"], &[LEGACY], &["pods/finalizers"]),
                events_rule(),
            ],
        ),
        ("ttl-controller", vec![rule(&["update", "patch", "list", "watch"], &[LEGACY], &["nodes"]), events_rule()]),
        (
            "certificate-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &[CERTS], &["certificatesigningrequests"]),
                rule(
                    &["update"],
                    &[CERTS],
                    &["certificatesigningrequests/status", "certificatesigningrequests/approval"],
                ),
                named(&["approve"], &[CERTS], &["signers"], &["kubernetes.io/kube-apiserver-client-kubelet"]),
                named(
                    &["sign"],
                    &[CERTS],
                    &["signers"],
                    &[
                        "kubernetes.io/legacy-unknown",
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(&["create"], &[AUTHZ], &["subjectaccessreviews"]),
                events_rule(),
            ],
        ),
        (
            "pvc-protection-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[LEGACY], &["persistentvolumeclaims"]),
                rule(&["list", "watch", "get"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "pv-protection-controller",
            vec![rule(&["get", "list", "watch", "update"], &[LEGACY], &["persistentvolumes"]), events_rule()],
        ),
        (
            "ttl-after-finished-controller",
            vec![rule(&["get", "list", "watch", "delete"], &[BATCH], &["jobs"]), events_rule()],
        ),
        ("root-ca-cert-publisher", vec![rule(&["create", "update"], &[LEGACY], &["configmaps"]), events_rule()]),
        (
            "validatingadmissionpolicy-status-controller",
            vec![
                rule(READ, &[ADMISSIONREG], &["validatingadmissionpolicies"]),
                rule(&["get", "patch", "update"], &[ADMISSIONREG], &["validatingadmissionpolicies/status"]),
                events_rule(),
            ],
        ),
        (
            "legacy-service-account-token-cleaner",
            vec![
                named(&["get"], &[LEGACY], &["configmaps"], &["kube-apiserver-legacy-service-account-token-tracking"]),
                rule(&["patch", "delete"], &[LEGACY], &["secrets"]),
            ],
        ),
        // rkube's own controllers.
        (
            "node-ipam-controller",
            vec![
                rule(&["get", "list", "watch", "update", "patch"], &[LEGACY], &["nodes"]),
                rule(&["patch", "update"], &[LEGACY], &["nodes/status"]),
                events_rule(),
            ],
        ),
        (
            "local-path-provisioner",
            vec![
                rule(READ, &[LEGACY], &["nodes"]),
                rule(
                    &["get", "list", "watch", "create", "update", "patch", "delete"],
                    &[LEGACY],
                    &["persistentvolumes"],
                ),
                rule(&["get", "list", "watch", "update", "patch"], &[LEGACY], &["persistentvolumeclaims"]),
                rule(&["update", "patch"], &[LEGACY], &["persistentvolumeclaims/status"]),
                rule(READ, &[STORAGE], &["storageclasses"]),
                rule(&["get", "list", "watch", "create", "delete"], &[LEGACY], &["pods"]),
                rule(READ, &[LEGACY], &["pods/log", "configmaps"]),
                rule(&["get", "create", "update"], &[COORDINATION], &["leases"]),
                rule(&["watch"], &[LEGACY], &["events"]),
                events_rule(),
            ],
        ),
    ]
}

/// The bootstrap policy: (ClusterRoles, ClusterRoleBindings, Roles, RoleBindings), as stored
/// objects. `admin`, `edit` and `view` come with their `aggregationRule` and their rules already
/// aggregated from the bootstrap `system:aggregate-to-*` roles.
///
/// Deliberate differences from upstream: `system:node` is bound to the `system:nodes` group
/// (rkube has no Node authorizer), and `system:controller:node-ipam-controller` and
/// `system:controller:local-path-provisioner` exist for rkube's own controllers.
pub fn bootstrap_policy() -> (Vec<Value>, Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut cluster_roles = base_cluster_roles();
    let mut cluster_bindings = vec![
        cluster_binding("cluster-admin", "cluster-admin", vec![group("system:masters")]),
        cluster_binding("system:monitoring", "system:monitoring", vec![group("system:monitoring")]),
        cluster_binding("system:discovery", "system:discovery", vec![group("system:authenticated")]),
        cluster_binding("system:basic-user", "system:basic-user", vec![group("system:authenticated")]),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![group("system:authenticated"), group("system:unauthenticated")],
        ),
        cluster_binding("system:node-proxier", "system:node-proxier", vec![user("system:kube-proxy")]),
        cluster_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        cluster_binding("system:kube-dns", "system:kube-dns", vec![sa("kube-system", "kube-dns")]),
        cluster_binding("system:kube-scheduler", "system:kube-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding("system:volume-scheduler", "system:volume-scheduler", vec![user("system:kube-scheduler")]),
        // No subjects, as upstream since 1.8: kubelets are authorized by the Node
        // authorizer (which also applies the node rules), not by their group.
        cluster_binding("system:node", "system:node", vec![]),
        cluster_binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
    ];
    for (name, rules) in controller_roles() {
        let full = format!("{CONTROLLER_PREFIX}{name}");
        cluster_roles.push(cluster_role(&full, rules));
        cluster_bindings.push(cluster_binding(&full, &full, vec![sa("kube-system", name)]));
    }

    // Fill admin/edit/view as the aggregation controller would (edit feeds admin, view feeds edit).
    for target in ["view", "edit", "admin"] {
        let Some(idx) = cluster_roles.iter().position(|r| r.pointer("/metadata/name") == Some(&json!(target))) else {
            continue;
        };
        if let Some(updated) = aggregate_cluster_role(&cluster_roles[idx], &cluster_roles) {
            cluster_roles[idx] = updated;
        }
    }

    let ks = "kube-system";
    let roles = vec![
        role(
            ks,
            "extension-apiserver-authentication-reader",
            vec![named(READ, &[LEGACY], &["configmaps"], &["extension-apiserver-authentication"])],
        ),
        role(
            ks,
            "system::leader-locking-kube-controller-manager",
            vec![
                rule(&["watch"], &[LEGACY], &["configmaps"]),
                named(&["get", "update"], &[LEGACY], &["configmaps"], &["kube-controller-manager"]),
            ],
        ),
        role(
            ks,
            "system::leader-locking-kube-scheduler",
            vec![
                rule(&["watch"], &[LEGACY], &["configmaps"]),
                named(&["get", "update"], &[LEGACY], &["configmaps"], &["kube-scheduler"]),
            ],
        ),
        role(ks, "system:controller:bootstrap-signer", vec![rule(&["list", "watch"], &[LEGACY], &["secrets"])]),
        role(
            ks,
            "system:controller:token-cleaner",
            vec![rule(&["delete", "get", "list", "watch"], &[LEGACY], &["secrets"]), events_rule()],
        ),
        role(
            "kube-public",
            "system:controller:bootstrap-signer",
            vec![
                rule(READ, &[LEGACY], &["configmaps"]),
                named(&["update"], &[LEGACY], &["configmaps"], &["cluster-info"]),
                events_rule(),
            ],
        ),
    ];
    let role_bindings = vec![
        role_binding(
            ks,
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![user("system:kube-controller-manager"), user("system:kube-scheduler")],
        ),
        role_binding(
            ks,
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![sa(ks, "kube-controller-manager")],
        ),
        role_binding(
            ks,
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![sa(ks, "kube-scheduler")],
        ),
        role_binding(
            ks,
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![sa(ks, "bootstrap-signer")],
        ),
        role_binding(
            ks,
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![sa(ks, "token-cleaner")],
        ),
        role_binding(
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![sa(ks, "bootstrap-signer")],
        ),
    ];
    (cluster_roles, cluster_bindings, roles, role_bindings)
}
