//! Dynamic admission with stock kubectl against `rkube server`: mutating and
//! validating webhooks served over HTTPS by a real webhook server (with
//! `failurePolicy` and selectors honoured), and ValidatingAdmissionPolicies
//! (CEL) with bindings, parameters and validation actions.

use rkube_apiserver::webhook::testserver;
use rkube_e2e::{Cluster, apply, eventually, fails, ok};
use serde_json::{Value, json};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

/// Retry `args` until it fails with `needle` in its error (admission
/// configurations take effect as the apiserver sees them, within moments).
fn eventually_refused(c: &Cluster, args: &[&str], needle: &str) -> String {
    eventually(Duration::from_secs(10), || {
        let out = c.kubectl(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (!out.status.success() && err.contains(needle)).then_some(err)
    })
    .unwrap_or_else(|| panic!("{args:?} was not refused with {needle:?}"))
}

#[test]
fn webhooks_mutate_and_validate_over_https() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Two webhooks: one adds a label to ConfigMaps, one refuses those labelled deny=yes.
    let stamp = rt
        .block_on(testserver::start(|req: Value| {
            let labels = &req["object"]["metadata"]["labels"];
            if labels.get("stamped").is_some() {
                return testserver::allow();
            }
            let op = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/stamped", "value": "by-webhook"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"stamped": "by-webhook"}}])
            };
            let mut r = testserver::patch(op);
            r["warnings"] = json!(["stamped by the test webhook"]);
            r
        }))
        .unwrap();
    let hook = rt
        .block_on(testserver::start(|req: Value| {
            if req["operation"] == "DELETE" {
                return testserver::deny("configmaps here are kept", 403);
            }
            if req["object"]["metadata"]["labels"]["deny"] == "yes" {
                return testserver::deny("deny=yes is not welcome", 403);
            }
            testserver::allow()
        }))
        .unwrap();
    let c = Cluster::start(BIN, &[]).unwrap();
    ok(c.kubectl(&["create", "namespace", "hooked"]));
    ok(c.kubectl(&["label", "namespace", "hooked", "webhooks=on"]));
    ok(c.kubectl(&["create", "namespace", "plain"]));
    let config = |kind: &str, name: &str, url: &str, ca: &str, ops: &str, policy: &str| {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nwebhooks:\n- name: {name}\n  clientConfig:\n    url: {url}\n    caBundle: {ca}\n  rules:\n  - operations: {ops}\n    apiGroups: [\"\"]\n    apiVersions: [v1]\n    resources: [configmaps]\n  namespaceSelector:\n    matchLabels: {{webhooks: \"on\"}}\n  failurePolicy: {policy}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  timeoutSeconds: 5\n",
        )
    };
    apply(
        &c,
        &config("MutatingWebhookConfiguration", "stamp.rkube.test", &stamp.url, &stamp.ca_bundle(), "[CREATE]", "Fail"),
    );
    apply(
        &c,
        &config(
            "ValidatingWebhookConfiguration",
            "guard.rkube.test",
            &hook.url,
            &hook.ca_bundle(),
            "[CREATE, DELETE]",
            "Fail",
        ),
    );

    // mutated on the way in, with the webhook's warning shown by kubectl
    let stamped = eventually(Duration::from_secs(10), || {
        let name = format!("m{}", rand_suffix());
        let out = c.kubectl(&["create", "configmap", &name, "-n", "hooked", "--from-literal=k=v"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let label = ok(c.kubectl(&["get", "cm", &name, "-n", "hooked", "-o", "jsonpath={.metadata.labels.stamped}"]));
        (label == "by-webhook").then(|| String::from_utf8_lossy(&out.stderr).to_string())
    })
    .expect("the mutating webhook labels new ConfigMaps");
    assert!(stamped.contains("stamped by the test webhook"), "warning shown: {stamped}");
    // the namespaceSelector leaves other namespaces alone
    ok(c.kubectl(&["create", "configmap", "free", "-n", "plain"]));
    let label = ok(c.kubectl(&["get", "cm", "free", "-n", "plain", "-o", "jsonpath={.metadata.labels}"]));
    assert!(!label.contains("stamped"), "{label}");

    // refused by the validating webhook, with upstream's message
    let deny =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nope\n  namespace: hooked\n  labels: {deny: \"yes\"}\n";
    let err = fails(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(deny)));
    assert!(
        err.contains("admission webhook \"guard.rkube.test\" denied the request: deny=yes is not welcome"),
        "{err}"
    );
    assert!(!c.kubectl(&["get", "cm", "nope", "-n", "hooked"]).status.success(), "nothing was stored");
    // DELETE goes through validating webhooks too
    ok(c.kubectl(&["create", "configmap", "kept", "-n", "hooked"]));
    let err = fails(c.kubectl(&["delete", "configmap", "kept", "-n", "hooked"]));
    assert!(err.contains("configmaps here are kept"), "{err}");
    // a dry run with a side-effect-free webhook is admitted the same way
    let err = fails(c.kubectl_with("kubectl", &["create", "--dry-run=server", "-f", "-"], Some(deny)));
    assert!(err.contains("deny=yes is not welcome"), "{err}");

    // an unreachable webhook: Ignore lets requests through, Fail refuses them
    let dead = format!("https://127.0.0.1:{}/", rkube_e2e::free_port());
    apply(
        &c,
        &config("ValidatingWebhookConfiguration", "dead.rkube.test", &dead, &hook.ca_bundle(), "[CREATE]", "Ignore"),
    );
    std::thread::sleep(Duration::from_millis(500));
    ok(c.kubectl(&["create", "configmap", "through", "-n", "hooked"]));
    apply(
        &c,
        &config("ValidatingWebhookConfiguration", "dead.rkube.test", &dead, &hook.ca_bundle(), "[CREATE]", "Fail"),
    );
    let err = eventually_refused(
        &c,
        &["create", "configmap", "blocked", "-n", "hooked"],
        "failed calling webhook \"dead.rkube.test\"",
    );
    assert!(err.contains("Internal error occurred"), "{err}");
    // a wrong CA: the TLS handshake fails, the webhook is never trusted
    ok(c.kubectl(&["delete", "validatingwebhookconfiguration", "dead.rkube.test"]));
    let wrong_ca =
        config("ValidatingWebhookConfiguration", "mitm.rkube.test", &hook.url, &stamp.ca_bundle(), "[CREATE]", "Fail");
    apply(&c, &wrong_ca);
    let err = eventually_refused(&c, &["create", "configmap", "x509", "-n", "hooked"], "mitm.rkube.test");
    assert!(err.contains("x509") || err.contains("certificate"), "{err}");
    drop((hook, stamp));
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

#[test]
fn validating_admission_policies_with_cel() {
    let c = Cluster::start(BIN, &[]).unwrap();
    ok(c.kubectl(&["create", "namespace", "limited"]));
    ok(c.kubectl(&["label", "namespace", "limited", "environment=test"]));
    ok(c.kubectl(&["create", "configmap", "replica-limit", "-n", "limited", "--from-literal=max=3"]));
    // a policy with a parameter (upstream's documented example, reading a ConfigMap)
    apply(
        &c,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  variables:
  - name: limit
    expression: "int(params.data.max)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'replicas must be no greater than ' + string(variables.limit)"
    reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-test
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef:
    name: replica-limit
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector:
      matchLabels: {environment: test}
"#,
    );
    let err = eventually_refused(
        &c,
        &["create", "deployment", "big", "-n", "limited", "--image=nginx", "--replicas=5"],
        "ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-test' denied request",
    );
    assert!(err.contains("replicas must be no greater than 3"), "{err}");
    ok(c.kubectl(&["create", "deployment", "small", "-n", "limited", "--image=nginx", "--replicas=2"]));
    // updates are checked against the parameter too; the parameter can change
    let four = r#"{"spec":{"replicas":4}}"#;
    let err = fails(c.kubectl(&["patch", "deployment", "small", "-n", "limited", "-p", four]));
    assert!(err.contains("replicas must be no greater than 3"), "{err}");
    ok(c.kubectl(&["patch", "configmap", "replica-limit", "-n", "limited", "-p", r#"{"data":{"max":"10"}}"#]));
    let patched = eventually(Duration::from_secs(10), || {
        c.kubectl(&["patch", "deployment", "small", "-n", "limited", "-p", four]).status.success().then_some(())
    });
    assert!(patched.is_some(), "a raised limit admits the update");
    // namespaces without the label are not bound
    ok(c.kubectl(&["create", "deployment", "big", "--image=nginx", "--replicas=50"]));

    // Warn: admitted, with kubectl printing the policy's warning
    apply(
        &c,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: needs-team-label
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: [v1]
      operations: [CREATE]
      resources: [configmaps]
  validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    message: "every ConfigMap needs a team label"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: needs-team-label
spec:
  policyName: needs-team-label
  validationActions: [Warn]
"#,
    );
    let warned = eventually(Duration::from_secs(10), || {
        let out = c.kubectl(&["create", "configmap", &format!("w{}", rand_suffix())]);
        assert!(out.status.success(), "Warn admits: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.contains("every ConfigMap needs a team label").then_some(err)
    })
    .expect("a warning from the Warn binding");
    assert!(warned.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'needs-team-label'"), "{warned}");

    // a policy whose expression does not compile is refused on create, with the CEL error
    let bad = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: bad\nspec:\n  matchConstraints:\n    resourceRules:\n    - {apiGroups: [\"\"], apiVersions: [v1], operations: [CREATE], resources: [pods]}\n  validations:\n  - expression: \"object.spec.replicas >\"\n";
    let err = fails(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(bad)));
    assert!(err.contains("compilation failed") || err.contains("Syntax error"), "{err}");
    // a binding with Deny and Warn together is invalid
    let both = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: both\nspec:\n  policyName: needs-team-label\n  validationActions: [Deny, Warn]\n";
    let err = fails(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(both)));
    assert!(err.contains("validationActions"), "{err}");
}
