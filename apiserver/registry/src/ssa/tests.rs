//! Behaviour of apply and update tracking against upstream's documented
//! server-side apply semantics.

use super::*;
use serde_json::json;

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";
const T2: &str = "2025-01-01T00:02:00Z";

fn op<'a>(manager: &'a str, now: &'a str) -> Operation<'a> {
    Operation { manager, api_version: "apps/v1", subresource: None, now, reset_fields: &["status"] }
}

fn deploy() -> TypeRef {
    schema_for("apps", "v1", "Deployment")
}

fn cfg(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"].as_array()?.iter().find(|e| e["manager"] == manager)
}

fn owns(obj: &Value, manager: &str, path: &[&str]) -> bool {
    let Some(e) = entry(obj, manager) else { return false };
    let mut cur = &e["fieldsV1"];
    for p in path {
        cur = &cur[*p];
        if cur.is_null() {
            return false;
        }
    }
    true
}

#[test]
fn create_by_apply_records_apply_entry() {
    let t = deploy();
    let out = apply(&t, None, &cfg(2, "nginx:1"), &op("kubectl", T0), false).unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    let e = entry(&out, "kubectl").unwrap();
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T0);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    );
    // name/namespace/apiVersion/kind are never owned.
    assert!(e["fieldsV1"].get("f:metadata").is_none());
}

#[test]
fn reapply_removes_fields_no_longer_applied() {
    let t = deploy();
    let mut c = cfg(2, "nginx:1");
    c["metadata"]["labels"] = json!({"a": "1", "b": "2"});
    let live = apply(&t, None, &c, &op("kubectl", T0), false).unwrap();
    let mut c2 = cfg(2, "nginx:1");
    c2["metadata"]["labels"] = json!({"a": "1"});
    let out = apply(&t, Some(&live), &c2, &op("kubectl", T1), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    // Dropping all labels removes the map.
    let out2 = apply(&t, Some(&out), &cfg(2, "nginx:1"), &op("kubectl", T2), false).unwrap();
    assert!(out2["metadata"].get("labels").is_none(), "{}", out2["metadata"]);
}

#[test]
fn field_owned_by_another_manager_stays_when_unapplied() {
    let t = deploy();
    let mut c = cfg(2, "nginx:1");
    c["metadata"]["labels"] = json!({"shared": "x", "mine": "y"});
    let live = apply(&t, None, &c, &op("a", T0), false).unwrap();
    // Manager b applies the same value: shared ownership, no conflict.
    let mut cb = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    cb["metadata"]["labels"] = json!({"shared": "x"});
    let live = apply(&t, Some(&live), &cb, &op("b", T1), false).unwrap();
    assert!(owns(&live, "a", &["f:metadata", "f:labels", "f:shared"]));
    assert!(owns(&live, "b", &["f:metadata", "f:labels", "f:shared"]));
    // a stops applying both labels: "shared" stays (b owns it), "mine" goes.
    let out = apply(&t, Some(&live), &cfg(2, "nginx:1"), &op("a", T2), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"shared": "x"}));
}

#[test]
fn granular_maps_merge_and_atomic_lists_replace() {
    let t = deploy();
    let mut c = cfg(2, "nginx:1");
    c["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
    let live = apply(&t, None, &c, &op("a", T0), false).unwrap();
    let mut cb = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "x"}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["c"]}]}}}});
    let err = apply(&t, Some(&live), &cb, &op("b", T1), false).unwrap_err();
    assert_eq!(err.code, 409);
    assert!(err.message.contains(r#".spec.template.spec.containers[name="app"].args"#), "{}", err.message);
    cb["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
    let out = apply(&t, Some(&live), &cb, &op("b", T1), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"team": "x"}));
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1");
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["args"], json!(["a", "b"]));
    // Force: the atomic list is replaced whole and changes owner.
    cb["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["z"]);
    let out = apply(&t, Some(&out), &cb, &op("b", T2), true).unwrap();
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["args"], json!(["z"]));
    let a = &entry(&out, "a").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert!(a.get("f:args").is_none() && a.get("f:image").is_some());
}

#[test]
fn list_map_with_two_key_fields() {
    let t = deploy();
    let mut c = cfg(1, "dns");
    c["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53}]);
    let live = apply(&t, None, &c, &op("a", T0), false).unwrap();
    let ports = &entry(&live, "a").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
        ["f:ports"];
    assert!(ports.get("k:{\"containerPort\":53,\"protocol\":\"UDP\"}").is_some());
    assert!(ports.get("k:{\"containerPort\":53,\"protocol\":\"TCP\"}").is_some(), "{ports}");
    // Stop applying the UDP port: only that item goes.
    c["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 53}]);
    let out = apply(&t, Some(&live), &c, &op("a", T1), false).unwrap();
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["ports"], json!([{"containerPort": 53}]));
    // Duplicate keys in a configuration are rejected.
    c["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53}]);
    let err = apply(&t, Some(&out), &c, &op("a", T2), false).unwrap_err();
    assert_eq!(err.code, 500);
    assert!(err.message.contains("duplicate entries for key [containerPort=53,protocol=\"TCP\"]"), "{}", err.message);
}

#[test]
fn apply_changes_a_set() {
    let t = deploy();
    let mut c = cfg(1, "x");
    c["metadata"]["finalizers"] = json!(["a/x", "a/y"]);
    let live = apply(&t, None, &c, &op("a", T0), false).unwrap();
    // Another manager adds its own finalizer.
    let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["b/z"]}});
    let live = apply(&t, Some(&live), &b, &op("b", T1), false).unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["a/x", "a/y", "b/z"]));
    assert!(owns(&live, "b", &["f:metadata", "f:finalizers", "v:\"b/z\""]));
    c["metadata"]["finalizers"] = json!(["a/y"]);
    let out = apply(&t, Some(&live), &c, &op("a", T2), false).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["a/y", "b/z"]));
}

#[test]
fn conflicts_message_causes_and_force() {
    let t = deploy();
    let live = apply(&t, None, &cfg(2, "nginx:1"), &op("kubectl", T0), false).unwrap();
    // A controller scales through an update.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    track_update(&t, Some(&live), &mut scaled, &op("kube-controller-manager", T1));
    assert!(owns(&scaled, "kube-controller-manager", &["f:spec", "f:replicas"]));
    assert!(!owns(&scaled, "kubectl", &["f:spec", "f:replicas"]), "update takes ownership");
    // Re-applying replicas 2 conflicts with the updater (an Update entry: "using").
    let mut scaled2 = scaled.clone();
    track_update(&t, Some(&scaled), &mut scaled2, &op("kube-controller-manager", T1));
    let err = apply(&t, Some(&scaled), &cfg(2, "nginx:1"), &op("kubectl", T2), false).unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, Reason::Conflict);
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kube-controller-manager" using apps/v1: .spec.replicas"#
    );
    assert_eq!(
        err.causes,
        vec![
            json!({"reason": "FieldManagerConflict", "message": "conflict with \"kube-controller-manager\" using apps/v1", "field": ".spec.replicas"})
        ]
    );
    // Applying the live value (5) is no conflict: shared ownership.
    let shared = apply(&t, Some(&scaled), &cfg(5, "nginx:1"), &op("kubectl", T2), false).unwrap();
    assert!(owns(&shared, "kubectl", &["f:spec", "f:replicas"]));
    assert!(owns(&shared, "kube-controller-manager", &["f:spec", "f:replicas"]));
    // Force takes it.
    let forced = apply(&t, Some(&scaled), &cfg(2, "nginx:2"), &op("kubectl", T2), true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
    assert!(entry(&forced, "kube-controller-manager").is_none(), "empty entries disappear");
    assert_eq!(entry(&forced, "kubectl").unwrap()["time"], T2);
}

#[test]
fn several_conflicts_message() {
    let t = deploy();
    let live = apply(&t, None, &cfg(2, "nginx:1"), &op("a", T0), false).unwrap();
    let err = apply(&t, Some(&live), &cfg(3, "nginx:2"), &op("b", T1), false).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 2 conflicts: \nconflicts with \"a\"\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );
    assert_eq!(err.causes.len(), 2);
    assert_eq!(err.causes[0]["message"], "conflict with \"a\"");
}

#[test]
fn apply_validation_errors() {
    let t = deploy();
    let mut c = cfg(1, "x");
    c["apiVersion"] = json!("apps/v1beta1");
    let e = apply(&t, None, &c, &op("a", T0), false).unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
    );
    let mut c = cfg(1, "x");
    c["metadata"]["managedFields"] = json!([]);
    let e = apply(&t, None, &c, &op("a", T0), false).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (400, "metadata.managedFields must be nil"));
    let mut c = cfg(1, "x");
    c["spec"]["bogus"] = json!(1);
    let e = apply(&t, None, &c, &op("a", T0), false).unwrap_err();
    assert_eq!(e.code, 500);
    assert!(e.message.ends_with(".spec.bogus: field not declared in schema"), "{}", e.message);
}

#[test]
fn update_tracking_create_and_transfer() {
    let t = schema_for("", "v1", "ConfigMap");
    let o = |m| Operation { manager: m, api_version: "v1", subresource: None, now: T0, reset_fields: &[] };
    let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1"}});
    track_update(&t, None, &mut created, &o("kubectl-create"));
    let e = entry(&created, "kubectl-create").unwrap();
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["time"], T0);
    assert_eq!(
        e["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
    );
    let mut edited = created.clone();
    edited["data"]["a"] = json!("2");
    edited["data"]["b"] = json!("3");
    let o2 = Operation { now: T1, ..o("editor") };
    track_update(&t, Some(&created), &mut edited, &o2);
    assert!(owns(&edited, "editor", &["f:data", "f:a"]) && owns(&edited, "editor", &["f:data", "f:b"]));
    assert!(!owns(&edited, "kubectl-create", &["f:data", "f:a"]));
    assert!(owns(&edited, "kubectl-create", &["f:metadata", "f:labels", "f:x"]));
    // Removing a field removes it from its owner; a no-op keeps everything.
    let mut removed = edited.clone();
    removed["metadata"].as_object_mut().unwrap().remove("labels");
    track_update(&t, Some(&edited), &mut removed, &o("editor"));
    assert!(entry(&removed, "kubectl-create").is_some(), "still owns data itself");
    assert!(!owns(&removed, "kubectl-create", &["f:metadata"]));
    let mut same = removed.clone();
    track_update(&t, Some(&removed), &mut same, &o("other"));
    assert_eq!(same["metadata"]["managedFields"], removed["metadata"]["managedFields"]);
}

#[test]
fn update_status_subresource_entry() {
    let t = deploy();
    let live = apply(&t, None, &cfg(1, "x"), &op("kubectl", T0), false).unwrap();
    let mut st = live.clone();
    st["status"] = json!({"replicas": 1});
    let o = Operation { subresource: Some("status"), reset_fields: &["spec", "metadata"], ..op("kcm", T1) };
    track_update(&t, Some(&live), &mut st, &o);
    let e = entry(&st, "kcm").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn client_sent_managed_fields() {
    let t = deploy();
    let live = apply(&t, None, &cfg(1, "x"), &op("kubectl", T0), false).unwrap();
    // [] keeps the old entries (clients that do not know the field).
    let mut body = live.clone();
    body["metadata"]["managedFields"] = json!([]);
    track_update(&t, Some(&live), &mut body, &op("x", T1));
    assert_eq!(body["metadata"]["managedFields"], live["metadata"]["managedFields"]);
    // [{}] clears them.
    let mut body = live.clone();
    body["metadata"]["managedFields"] = json!([{}]);
    track_update(&t, Some(&live), &mut body, &op("x", T1));
    assert!(body["metadata"].get("managedFields").is_none());
    // A rewritten list replaces them (kubectl's client-side to server-side upgrade).
    let mut body = live.clone();
    let mut mf = live["metadata"]["managedFields"].clone();
    mf[0]["manager"] = json!("renamed");
    body["metadata"]["managedFields"] = mf;
    track_update(&t, Some(&live), &mut body, &op("x", T1));
    assert!(entry(&body, "renamed").is_some() && entry(&body, "kubectl").is_none());
}

#[test]
fn update_entries_are_capped() {
    let t = schema_for("", "v1", "ConfigMap");
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let times: Vec<String> = (0..12).map(|i| format!("2025-01-01T00:{i:02}:00Z")).collect();
    for (i, now) in times.iter().enumerate() {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let name = format!("m{i}");
        let o = Operation { manager: &name, api_version: "v1", subresource: None, now, reset_fields: &[] };
        track_update(&t, Some(&obj), &mut next, &o);
        obj = next;
    }
    let mf = obj["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 10);
    let ancient = entry(&obj, "ancient-changes").unwrap();
    assert_eq!(ancient["fieldsV1"]["f:data"].as_object().unwrap().len(), 3, "{ancient}");
    assert_eq!(ancient["time"], "2025-01-01T00:02:00Z");
    assert!(entry(&obj, "m0").is_none() && entry(&obj, "m2").is_none() && entry(&obj, "m3").is_some());
}

#[test]
fn kubectl_keeps_last_applied_in_sync() {
    let t = deploy();
    let mut live = apply(&t, None, &cfg(1, "x"), &op("kubectl", T0), false).unwrap();
    live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{}"});
    let out = apply(&t, Some(&live), &cfg(3, "x"), &op("kubectl", T1), false).unwrap();
    let text = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].as_str().unwrap();
    let back: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back["spec"]["replicas"], 3);
}

#[test]
fn user_agent_prefix() {
    assert_eq!(manager_from_user_agent("kubectl/v1.33.0 (linux/amd64) kubernetes/abc"), "kubectl");
    assert_eq!(manager_from_user_agent("helm"), "helm");
    assert_eq!(manager_from_user_agent(&"x".repeat(300)).len(), 128);
    assert_eq!(manager_from_user_agent("a\u{7}b/1"), "ab");
}

#[test]
fn crd_and_deduced_schemas() {
    let t = schema_from_openapi_v3(&json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "hosts": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}));
    let o = Operation { manager: "a", api_version: "example.com/v1", subresource: None, now: T0, reset_fields: &[] };
    let c = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w", "labels": {"l": "1"}},
        "spec": {"hosts": ["a"], "extra": {"x": {"y": 1}}}});
    let out = apply(&t, None, &c, &o, false).unwrap();
    let e = entry(&out, "a").unwrap();
    assert!(e["fieldsV1"]["f:spec"]["f:hosts"].get("v:\"a\"").is_some());
    assert!(e["fieldsV1"]["f:spec"]["f:extra"]["f:x"]["f:y"].is_object());
    assert!(e["fieldsV1"]["f:metadata"]["f:labels"]["f:l"].is_object());
    let d = deduced();
    let out = apply(&d, None, &c, &o, false).unwrap();
    // Deduced: lists are atomic.
    assert_eq!(entry(&out, "a").unwrap()["fieldsV1"]["f:spec"]["f:hosts"], json!({}));
}

#[test]
fn apply_on_a_deployment_is_fast() {
    let t = deploy();
    let mut c = cfg(2, "nginx:1");
    c["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}, {"containerPort": 443}]);
    c["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    let live = apply(&t, None, &c, &op("kubectl", T0), false).unwrap();
    c["spec"]["replicas"] = json!(3);
    let start = std::time::Instant::now();
    let n = 50;
    for _ in 0..n {
        let _ = apply(&t, Some(&live), &c, &op("kubectl", T1), false).unwrap();
    }
    let per = start.elapsed() / n;
    eprintln!("apply on a Deployment: {per:?}");
    // Unoptimized test builds are ~10x slower than release; keep a generous bound.
    assert!(per < std::time::Duration::from_millis(10), "apply took {per:?}");
}
