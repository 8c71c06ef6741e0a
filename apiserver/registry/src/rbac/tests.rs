//! Unit tests for the RBAC module: matching, authorization, rules listing, escalation,
//! aggregation, bootstrap policy and messages, against upstream's documented behaviour.

use serde_json::{Value, json};

use super::*;

fn cr(name: &str, rules: Value) -> Value {
    json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn crb(name: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects})
}

fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role}, "subjects": subjects})
}

fn g(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A small policy used by several tests.
fn sample() -> Policy {
    let roles = vec![
        role("default", "pod-reader", json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])),
        role(
            "default",
            "named-cm",
            json!([{"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app-config"]}]),
        ),
        role("default", "logs", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}])),
    ];
    let cluster_roles = vec![
        cr("deploy-admin", json!([{"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]}])),
        cr("scaler", json!([{"verbs": ["get", "update"], "apiGroups": ["*"], "resources": ["*/scale"]}])),
        cr("metrics", json!([{"verbs": ["get"], "nonResourceURLs": ["/metrics", "/debug/*"]}])),
        cr("node-reader", json!([{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]}])),
    ];
    let bindings = vec![
        rb("default", "jane-pods", "Role", "pod-reader", json!([{"kind": "User", "name": "jane"}])),
        rb("default", "jane-cm", "Role", "named-cm", json!([{"kind": "User", "name": "jane"}])),
        rb("default", "devs-deploy", "ClusterRole", "deploy-admin", json!([{"kind": "Group", "name": "devs"}])),
        rb("default", "sa-logs", "Role", "logs", json!([{"kind": "ServiceAccount", "name": "builder"}])),
        rb(
            "default",
            "all-sa-in-ns",
            "ClusterRole",
            "node-reader",
            json!([{"kind": "Group", "name": "system:serviceaccounts:default"}]),
        ),
        rb("default", "dangling", "Role", "missing-role", json!([{"kind": "User", "name": "bob"}])),
    ];
    let cluster_bindings = vec![
        crb("scalers", "scaler", json!([{"kind": "User", "name": "hpa"}])),
        crb("monitoring", "metrics", json!([{"kind": "Group", "name": "system:monitoring"}])),
        crb(
            "ctrl-nodes",
            "node-reader",
            json!([{"kind": "ServiceAccount", "name": "ctrl", "namespace": "kube-system"}]),
        ),
    ];
    Policy::new(&roles, &cluster_roles, &bindings, &cluster_bindings)
}

fn res(user: &str, groups: &[&str], verb: &str, ns: Option<&str>, group: &str, resource: &str) -> Attributes {
    Attributes::resource(user, groups, verb, ns, group, resource)
}

#[test]
fn allow_deny_table() {
    let p = sample();
    let cases: Vec<(Attributes, bool)> = vec![
        (res("jane", &[], "get", Some("default"), "", "pods"), true),
        (res("jane", &[], "list", Some("default"), "", "pods"), true),
        (res("jane", &[], "delete", Some("default"), "", "pods"), false),
        (res("jane", &[], "get", Some("other"), "", "pods"), false),
        // A Role grants nothing cluster-wide.
        (res("jane", &[], "list", None, "", "pods"), false),
        (res("jane", &[], "get", Some("default"), "apps", "pods"), false),
        (res("alice", &["devs"], "delete", Some("default"), "apps", "deployments"), true),
        // A RoleBinding to a ClusterRole only grants within its namespace.
        (res("alice", &["devs"], "delete", Some("kube-system"), "apps", "deployments"), false),
        (res("alice", &["devs"], "list", None, "apps", "deployments"), false),
        (res("alice", &["devs"], "get", Some("default"), "", "deployments"), false),
        (res("nobody", &[], "get", Some("default"), "", "pods"), false),
        // system:masters always allowed.
        (res("root", &["system:masters"], "deletecollection", None, "x.io", "anything"), true),
        (Attributes::non_resource("root", &["system:masters"], "post", "/anything"), true),
    ];
    for (a, want) in cases {
        assert_eq!(p.authorize(&a).is_allowed(), want, "{a:?}");
    }
}

#[test]
fn resource_names() {
    let p = sample();
    let a = res("jane", &[], "get", Some("default"), "", "configmaps");
    assert!(p.authorize(&a.clone().with_name("app-config")).is_allowed());
    assert!(
        p.authorize(&res("jane", &[], "update", Some("default"), "", "configmaps").with_name("app-config"))
            .is_allowed()
    );
    assert!(!p.authorize(&a.clone().with_name("other")).is_allowed());
    // No name (list/create) never matches a resourceNames rule.
    assert!(!p.authorize(&a).is_allowed());
    assert!(!p.authorize(&res("jane", &[], "list", Some("default"), "", "configmaps")).is_allowed());
}

#[test]
fn subresources() {
    let p = sample();
    // Access to pods does not grant pods/log and vice versa.
    assert!(!p.authorize(&res("jane", &[], "get", Some("default"), "", "pods").with_subresource("log")).is_allowed());
    let sa = "system:serviceaccount:default:builder";
    assert!(p.authorize(&res(sa, &[], "get", Some("default"), "", "pods").with_subresource("log")).is_allowed());
    assert!(!p.authorize(&res(sa, &[], "get", Some("default"), "", "pods")).is_allowed());
    assert!(!p.authorize(&res(sa, &[], "get", Some("default"), "", "pods").with_subresource("exec")).is_allowed());
    // */scale matches any resource's scale subresource in any group, but not the resource itself.
    let hpa = |r: &str, sub: &str| res("hpa", &[], "update", Some("ns1"), "apps", r).with_subresource(sub);
    assert!(p.authorize(&hpa("deployments", "scale")).is_allowed());
    assert!(p.authorize(&hpa("statefulsets", "scale")).is_allowed());
    assert!(!p.authorize(&hpa("deployments", "status")).is_allowed());
    assert!(!p.authorize(&res("hpa", &[], "update", Some("ns1"), "apps", "deployments")).is_allowed());
    // Resources "*" covers subresources.
    let wild = Policy::new(
        &[],
        &[cr("w", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}]))],
        &[],
        &[crb("w", "w", json!([{"kind": "User", "name": "u"}]))],
    );
    assert!(wild.authorize(&res("u", &[], "get", Some("x"), "", "pods").with_subresource("log")).is_allowed());
}

#[test]
fn non_resource_urls() {
    let p = sample();
    let mon = |verb: &str, path: &str| Attributes::non_resource("prom", &["system:monitoring"], verb, path);
    assert!(p.authorize(&mon("get", "/metrics")).is_allowed());
    assert!(!p.authorize(&mon("get", "/metrics/extra")).is_allowed());
    assert!(p.authorize(&mon("get", "/debug/pprof/heap")).is_allowed());
    assert!(p.authorize(&mon("get", "/debug/")).is_allowed());
    assert!(!p.authorize(&mon("get", "/debug")).is_allowed());
    assert!(!p.authorize(&mon("post", "/metrics")).is_allowed());
    assert!(!p.authorize(&Attributes::non_resource("jane", &[], "get", "/metrics")).is_allowed());
    // A resource rule never matches a non-resource request.
    let star = Policy::new(
        &[],
        &[cr("s", json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]))],
        &[],
        &[crb("s", "s", json!([{"kind": "User", "name": "u"}]))],
    );
    assert!(!star.authorize(&Attributes::non_resource("u", &[], "get", "/healthz")).is_allowed());
    assert!(star.authorize(&res("u", &[], "get", None, "x", "y")).is_allowed());
}

#[test]
fn service_account_subjects() {
    let p = sample();
    // Cluster binding with explicit namespace.
    let ctrl = "system:serviceaccount:kube-system:ctrl";
    assert!(p.authorize(&res(ctrl, &[], "list", None, "", "nodes")).is_allowed());
    assert!(!p.authorize(&res("system:serviceaccount:default:ctrl", &[], "list", None, "", "nodes")).is_allowed());
    // RoleBinding subject without namespace defaults to the binding's namespace.
    assert!(
        !p.authorize(
            &res("system:serviceaccount:other:builder", &[], "get", Some("default"), "", "pods")
                .with_subresource("log")
        )
        .is_allowed()
    );
    // The per-namespace service account group.
    let groups = ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"];
    assert!(
        p.authorize(&res("system:serviceaccount:default:x", &groups, "get", Some("default"), "", "nodes")).is_allowed()
    );
}

#[test]
fn decision_reasons() {
    let p = sample();
    assert_eq!(
        p.authorize(&res("jane", &[], "get", Some("default"), "", "pods")),
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "jane-pods/default" of Role "pod-reader" to User "jane""#.into()
        )
    );
    assert_eq!(
        p.authorize(&res("system:serviceaccount:kube-system:ctrl", &[], "get", None, "", "nodes")),
        Decision::Allow(
            r#"RBAC: allowed by ClusterRoleBinding "ctrl-nodes" of ClusterRole "node-reader" to ServiceAccount "ctrl/kube-system""#
                .into()
        )
    );
    assert_eq!(
        p.authorize(&res("jane", &[], "delete", Some("default"), "", "pods")),
        Decision::NoOpinion(String::new())
    );
    assert_eq!(
        p.authorize(&res("bob", &[], "get", Some("default"), "", "pods")),
        Decision::NoOpinion(r#"RBAC: role.rbac.authorization.k8s.io "missing-role" not found"#.into())
    );
}

#[test]
fn messages_exact() {
    let a = res("jane", &[], "list", Some("default"), "", "pods");
    assert_eq!(
        forbidden_message(&a),
        r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    let a = res("jane", &[], "get", None, "apps", "deployments").with_name("web").with_subresource("scale");
    assert_eq!(
        forbidden_message(&a),
        r#"deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
    );
    let a = Attributes::non_resource("x", &[], "get", "/metrics");
    assert_eq!(forbidden_message(&a), r#"forbidden: User "x" cannot get path "/metrics""#);
    let a = res("bob", &[], "get", Some("default"), "", "pods");
    assert_eq!(
        forbidden_message_with_reason(&a, r#"RBAC: role.rbac.authorization.k8s.io "r" not found"#),
        r#"pods is forbidden: User "bob" cannot get resource "pods" in API group "" in the namespace "default": RBAC: role.rbac.authorization.k8s.io "r" not found"#
    );
    // Sanitized as upstream.
    let a = Attributes::non_resource("<b>", &[], "get", "/a&b");
    assert_eq!(forbidden_message(&a), r#"forbidden: User "&lt;b&gt;" cannot get path "/a&amp;b""#);
    let e = forbidden_error(&res("jane", &[], "get", Some("default"), "", "pods").with_name("p1"), "");
    assert_eq!(e.code, 403);
    assert_eq!(e.name.as_deref(), Some("p1"));
    assert_eq!(e.kind.as_deref(), Some("pods"));
}

#[test]
fn rules_for_lists_rules() {
    let p = sample();
    let (rr, nr, incomplete) = p.rules_for("jane", &[], "default");
    assert!(!incomplete);
    assert!(nr.is_empty());
    assert!(rr.contains(&json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]})));
    assert!(rr.contains(&json!({"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app-config"]})));
    assert_eq!(rr.len(), 2);
    // Another namespace: nothing.
    let (rr, _, _) = p.rules_for("jane", &[], "other");
    assert!(rr.is_empty());
    let (_, nr, _) = p.rules_for("prom", &g(&["system:monitoring"]), "default");
    assert_eq!(nr, vec![json!({"verbs": ["get"], "nonResourceURLs": ["/metrics", "/debug/*"]})]);
    // Unresolvable role reference → incomplete.
    let (_, _, incomplete) = p.rules_for("bob", &[], "default");
    assert!(incomplete);
    let (rr, nr, _) = p.rules_for("root", &g(&["system:masters"]), "default");
    assert_eq!(rr[0], json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
    assert_eq!(nr[0], json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
}

fn escalation_policy() -> Policy {
    let cluster_roles = vec![
        cr("pod-reader", json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])),
        cr("secret-admin", json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["secrets"]}])),
        cr(
            "role-writer",
            json!([{"verbs": ["create", "update"], "apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings", "clusterroles"]}]),
        ),
        cr("escalator", json!([{"verbs": ["escalate"], "apiGroups": [RBAC_GROUP], "resources": ["roles"]}])),
        cr(
            "binder",
            json!([{"verbs": ["bind"], "apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "resourceNames": ["secret-admin"]}]),
        ),
    ];
    let bindings = vec![
        rb("dev", "jane-read", "ClusterRole", "pod-reader", json!([{"kind": "User", "name": "jane"}])),
        rb("dev", "jane-write", "ClusterRole", "role-writer", json!([{"kind": "User", "name": "jane"}])),
        rb("dev", "esc", "ClusterRole", "escalator", json!([{"kind": "User", "name": "esc"}])),
        rb("dev", "bind", "ClusterRole", "binder", json!([{"kind": "User", "name": "binder"}])),
    ];
    Policy::new(&[], &cluster_roles, &bindings, &[])
}

#[test]
fn escalation_role_refused_and_allowed() {
    let p = escalation_policy();
    let covered = role("dev", "r1", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]));
    assert_eq!(p.check_escalation("jane", &g(&["system:authenticated"]), Some("dev"), &covered, "Role"), Ok(()));
    let too_much = role(
        "dev",
        "r2",
        json!([
            {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods", "secrets"]},
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}
        ]),
    );
    let err = p.check_escalation("jane", &g(&["system:authenticated"]), Some("dev"), &too_much, "Role").unwrap_err();
    assert_eq!(
        err,
        "roles.rbac.authorization.k8s.io \"r2\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}"
    );
    // Rules held only in another namespace don't count.
    assert!(p.check_escalation("jane", &[], Some("prod"), &covered, "Role").is_err());
    // `escalate` on roles lets anything through.
    assert_eq!(p.check_escalation("esc", &[], Some("dev"), &too_much, "Role"), Ok(()));
    // system:masters skip the check.
    assert_eq!(p.check_escalation("root", &g(&["system:masters"]), None, &too_much, "ClusterRole"), Ok(()));
    let api = p.check_escalation_error("jane", &[], Some("dev"), &too_much, "Role").unwrap_err();
    assert_eq!((api.code, api.kind.as_deref(), api.name.as_deref()), (403, Some("roles"), Some("r2")));
}

#[test]
fn escalation_clusterrole_aggregation_rule_needs_full_authority() {
    let p = escalation_policy();
    let agg = json!({"kind": "ClusterRole", "metadata": {"name": "agg"}, "rules": [],
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "true"}}]}});
    let err = p.check_escalation("jane", &[], None, &agg, "ClusterRole").unwrap_err();
    assert_eq!(
        err,
        r#"clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
    );
    let admin = Policy::new(
        &[],
        &[cr(
            "ca",
            json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]),
        )],
        &[],
        &[crb("ca", "ca", json!([{"kind": "User", "name": "admin"}]))],
    );
    assert_eq!(admin.check_escalation("admin", &[], None, &agg, "ClusterRole"), Ok(()));
}

#[test]
fn escalation_bindings() {
    let p = escalation_policy();
    let bind_reader = rb("dev", "b1", "ClusterRole", "pod-reader", json!([{"kind": "User", "name": "x"}]));
    assert_eq!(p.check_escalation("jane", &[], Some("dev"), &bind_reader, "RoleBinding"), Ok(()));
    let bind_secrets = rb("dev", "b2", "ClusterRole", "secret-admin", json!([{"kind": "User", "name": "x"}]));
    let err = p.check_escalation("jane", &[], Some("dev"), &bind_secrets, "RoleBinding").unwrap_err();
    assert_eq!(
        err,
        "rolebindings.rbac.authorization.k8s.io \"b2\" is forbidden: user \"jane\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"*\"]}"
    );
    // `bind` on exactly that ClusterRole allows it, without holding the permissions.
    assert_eq!(p.check_escalation("binder", &[], Some("dev"), &bind_secrets, "RoleBinding"), Ok(()));
    // ... but only within the namespace where bind was granted.
    assert!(p.check_escalation("binder", &[], Some("prod"), &bind_secrets, "RoleBinding").is_err());
    // bind on a different role name doesn't help.
    let bind_reader_by_binder = rb("dev", "b3", "ClusterRole", "pod-reader", json!([]));
    assert!(p.check_escalation("binder", &[], Some("dev"), &bind_reader_by_binder, "RoleBinding").is_err());
    // Unknown role reference.
    let dangling = rb("dev", "b4", "ClusterRole", "nope", json!([]));
    assert_eq!(
        p.check_escalation("jane", &[], Some("dev"), &dangling, "RoleBinding").unwrap_err(),
        r#"rolebindings.rbac.authorization.k8s.io "b4" is forbidden: clusterrole.rbac.authorization.k8s.io "nope" not found"#
    );
    // ClusterRoleBinding: namespace-scoped grants don't count.
    let crb_reader = crb("c1", "pod-reader", json!([]));
    assert!(p.check_escalation("jane", &[], None, &crb_reader, "ClusterRoleBinding").is_err());
}

#[test]
fn escalation_covers_wildcards_and_names() {
    let owner = Policy::new(
        &[],
        &[cr(
            "o",
            json!([
                {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]},
                {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a", "b"]},
                {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}
            ]),
        )],
        &[],
        &[crb("o", "o", json!([{"kind": "User", "name": "u"}]))],
    );
    let ok = cr(
        "s",
        json!([
            {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]},
            {"verbs": ["get"], "nonResourceURLs": ["/logs/x"]}
        ]),
    );
    assert_eq!(owner.check_escalation("u", &[], None, &ok, "ClusterRole"), Ok(()));
    // Names-restricted owner rule doesn't cover an unrestricted one.
    let bad = cr("s", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]));
    assert!(owner.check_escalation("u", &[], None, &bad, "ClusterRole").is_err());
    let bad = cr("s", json!([{"verbs": ["get"], "nonResourceURLs": ["/logs"]}]));
    let err = owner.check_escalation("u", &[], None, &bad, "ClusterRole").unwrap_err();
    assert!(err.ends_with(r#"{NonResourceURLs:["/logs"], Verbs:["get"]}"#), "{err}");
}

#[test]
fn aggregation() {
    let target = json!({"kind": "ClusterRole", "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}});
    let r_b = json!({"metadata": {"name": "b", "labels": {"agg": "true"}},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["services"]}, {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
    let r_a = json!({"metadata": {"name": "a", "labels": {"agg": "true"}},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
    let r_c = json!({"metadata": {"name": "c", "labels": {"agg": "false"}},
        "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]});
    let all = vec![target.clone(), r_b, r_a, r_c];
    let out = aggregate_cluster_role(&target, &all).unwrap();
    assert_eq!(
        out["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "apiGroups": [""], "resources": ["services"]}])
    );
    assert_eq!(out["aggregationRule"], target["aggregationRule"]);
    // Already current → no update needed.
    assert!(aggregate_cluster_role(&out, &all).is_none());
    // No aggregation rule → nothing to do.
    assert!(aggregate_cluster_role(&all[1], &all).is_none());
}

#[test]
fn bootstrap_policy_behaviour() {
    let (crs, crbs, roles, rbs) = bootstrap_policy();
    let p = Policy::new(&roles, &crs, &rbs, &crbs);
    let authed = ["system:authenticated"];
    // Discovery and health for everyone authenticated; health also for anonymous.
    assert!(p.authorize(&Attributes::non_resource("u", &authed, "get", "/apis/apps/v1")).is_allowed());
    assert!(
        p.authorize(&Attributes::non_resource("system:anonymous", &["system:unauthenticated"], "get", "/healthz"))
            .is_allowed()
    );
    assert!(
        !p.authorize(&Attributes::non_resource("system:anonymous", &["system:unauthenticated"], "get", "/api"))
            .is_allowed()
    );
    assert!(!p.authorize(&Attributes::non_resource("u", &authed, "get", "/metrics")).is_allowed());
    assert!(
        p.authorize(&res("u", &authed, "create", None, "authorization.k8s.io", "selfsubjectaccessreviews"))
            .is_allowed()
    );
    assert!(!p.authorize(&res("u", &authed, "list", Some("default"), "", "pods")).is_allowed());
    // cluster-admin binding to system:masters.
    let b = crbs.iter().find(|b| b["metadata"]["name"] == "cluster-admin").unwrap();
    assert_eq!(b["subjects"][0]["name"], "system:masters");
    // Aggregated view/edit/admin, used through a RoleBinding.
    let view = crs.iter().find(|r| r["metadata"]["name"] == "view").unwrap();
    assert!(view["aggregationRule"].is_object());
    let with_binding = |role: &str| {
        let mut rbs2 = rbs.clone();
        rbs2.push(rb("team", "x", "ClusterRole", role, json!([{"kind": "User", "name": "dev"}])));
        Policy::new(&roles, &crs, &rbs2, &crbs)
    };
    let pv = with_binding("view");
    assert!(pv.authorize(&res("dev", &[], "list", Some("team"), "apps", "deployments")).is_allowed());
    assert!(!pv.authorize(&res("dev", &[], "get", Some("team"), "", "secrets")).is_allowed());
    assert!(!pv.authorize(&res("dev", &[], "create", Some("team"), "apps", "deployments")).is_allowed());
    let pe = with_binding("edit");
    assert!(pe.authorize(&res("dev", &[], "create", Some("team"), "apps", "deployments")).is_allowed());
    assert!(pe.authorize(&res("dev", &[], "get", Some("team"), "", "secrets")).is_allowed());
    assert!(pe.authorize(&res("dev", &[], "list", Some("team"), "", "pods")).is_allowed());
    assert!(!pe.authorize(&res("dev", &[], "create", Some("team"), RBAC_GROUP, "rolebindings")).is_allowed());
    let pa = with_binding("admin");
    assert!(pa.authorize(&res("dev", &[], "create", Some("team"), RBAC_GROUP, "rolebindings")).is_allowed());
    assert!(!pa.authorize(&res("dev", &[], "create", Some("team"), "", "resourcequotas")).is_allowed());
    // Controllers via their service accounts.
    let sa = |n: &str| format!("system:serviceaccount:kube-system:{n}");
    assert!(p.authorize(&res(&sa("replicaset-controller"), &[], "create", Some("x"), "", "pods")).is_allowed());
    assert!(
        p.authorize(&res(&sa("deployment-controller"), &[], "create", Some("x"), "apps", "replicasets")).is_allowed()
    );
    assert!(
        p.authorize(&res(&sa("generic-garbage-collector"), &[], "delete", Some("x"), "foo.io", "bars")).is_allowed()
    );
    assert!(
        p.authorize(
            &res(&sa("namespace-controller"), &[], "update", None, "", "namespaces").with_subresource("finalize")
        )
        .is_allowed()
    );
    assert!(
        p.authorize(&res(&sa("job-controller"), &[], "update", Some("x"), "batch", "jobs").with_subresource("status"))
            .is_allowed()
    );
    assert!(p.authorize(&res(&sa("root-ca-cert-publisher"), &[], "create", Some("x"), "", "configmaps")).is_allowed());
    assert!(p.authorize(&res(&sa("node-ipam-controller"), &[], "patch", None, "", "nodes")).is_allowed());
    assert!(
        p.authorize(&res(&sa("local-path-provisioner"), &[], "create", None, "", "persistentvolumes")).is_allowed()
    );
    assert!(!p.authorize(&res(&sa("replicaset-controller"), &[], "delete", Some("x"), "", "secrets")).is_allowed());
    for name in [
        "replicaset-controller",
        "deployment-controller",
        "generic-garbage-collector",
        "namespace-controller",
        "service-account-controller",
        "node-controller",
        "disruption-controller",
        "statefulset-controller",
        "daemon-set-controller",
        "job-controller",
        "cronjob-controller",
        "ttl-after-finished-controller",
        "horizontal-pod-autoscaler",
        "root-ca-cert-publisher",
        "endpoint-controller",
    ] {
        let full = format!("system:controller:{name}");
        assert!(crs.iter().any(|r| r["metadata"]["name"] == full.as_str()), "{full}");
        let b = crbs.iter().find(|b| b["metadata"]["name"] == full.as_str()).unwrap();
        assert_eq!(b["subjects"][0], json!({"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}));
    }
    // Scheduler and kubelets.
    assert!(
        p.authorize(&res("system:kube-scheduler", &[], "create", Some("x"), "", "pods").with_subresource("binding"))
            .is_allowed()
    );
    // Kubelets get nothing from RBAC: the system:node binding has no subjects
    // (the Node authorizer decides for them), as upstream.
    let node = ["system:nodes", "system:authenticated"];
    assert!(
        !p.authorize(&res("system:node:n1", &node, "patch", None, "", "nodes").with_subresource("status")).is_allowed()
    );
    let b = crbs.iter().find(|b| b["metadata"]["name"] == "system:node").unwrap();
    assert!(b.get("subjects").is_none(), "{b}");
    // Every bootstrap binding resolves.
    for b in crbs.iter().chain(rbs.iter()) {
        let kind = b["roleRef"]["kind"].as_str().unwrap();
        let name = b["roleRef"]["name"].as_str().unwrap();
        let ns = b["metadata"]["namespace"].as_str().unwrap_or("");
        assert!(p.role_ref_rules(kind, name, ns).is_ok(), "{kind} {name}");
    }
    // Metadata as upstream.
    assert_eq!(crs[0]["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
    assert_eq!(crs[0]["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true");
}

#[test]
fn compact_string_format() {
    assert_eq!(
        compact_string(
            &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]})
        ),
        r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["a"], Verbs:["get" "list"]}"#
    );
}

#[test]
fn malformed_objects_do_not_panic() {
    let p = Policy::new(
        &[json!(null), json!({"rules": "x"})],
        &[json!(42), json!({"metadata": {"name": "c"}, "rules": [{"verbs": [1, "get"], "resources": null}]})],
        &[json!({"subjects": [null, {"kind": 3}]})],
        &[json!({"roleRef": {"kind": "ClusterRole", "name": "c"}, "subjects": [{"kind": "User", "name": "u"}]})],
    );
    assert!(!p.authorize(&res("u", &[], "get", None, "", "pods")).is_allowed());
    assert!(p.check_escalation("u", &[], None, &json!("junk"), "Role").is_ok());
    assert!(p.check_escalation("u", &[], None, &json!({"roleRef": 1}), "RoleBinding").is_err());
}
