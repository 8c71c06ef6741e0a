//! Least privilege for rkube's own components: under `--authorization-mode=Node,RBAC`
//! every controller, the scheduler and the simulated kubelets run a representative
//! workload to convergence with no request refused (the audit log holds no 403
//! for any `system:` user), while each component is held to what it needs.

use rkube_e2e::{Cluster, apply, approve_client_csr, eventually, k, ok, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

/// Until `kubectl get <args>` fails with NotFound.
fn wait_gone(c: &Cluster, secs: u64, args: &[&str]) {
    let mut get = vec!["get"];
    get.extend_from_slice(args);
    let gone = eventually(Duration::from_secs(secs), || {
        let out = c.kubectl(&get);
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound")).then_some(())
    });
    assert!(gone.is_some(), "{args:?} still there after {secs} s");
}

/// Until `kubectl <args>` prints something.
fn wait_nonempty(c: &Cluster, secs: u64, args: &[&str]) {
    let got = eventually(Duration::from_secs(secs), || {
        let out = c.kubectl(args);
        (out.status.success() && !out.stdout.trim_ascii().is_empty()).then_some(())
    });
    assert!(got.is_some(), "kubectl {args:?} printed nothing for {secs} s");
}

fn can_i(c: &Cluster, who: &str, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let as_user = format!("--as={who}");
    all.push(&as_user);
    String::from_utf8_lossy(&c.kubectl(&all).stdout).trim().to_string()
}

/// A 403 from the authorizer (upstream's `authorization.k8s.io/decision: forbid`, or its
/// `User "..." cannot ...` message) — not one from admission, such as NamespaceLifecycle's
/// refusal of new objects in a terminating namespace, which upstream's components meet too.
fn is_authorization_refusal(e: &Value) -> bool {
    if e["responseStatus"]["code"] != 403 {
        return false;
    }
    match (e["annotations"]["authorization.k8s.io/decision"].as_str(), e["responseStatus"]["message"].as_str()) {
        (Some(decision), _) => decision == "forbid",
        (None, Some(message)) => message.contains(" cannot "),
        (None, None) => true,
    }
}

fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

const WORKLOAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, resources: {requests: {cpu: 100m}}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: agent:1}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 2
  parallelism: 2
  ttlSecondsAfterFinished: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: \"@daily\"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: r, image: busybox}]
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: quota}
spec:
  hard: {pods: \"50\", configmaps: \"50\"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: parent}
---
apiVersion: v1
kind: Namespace
metadata: {name: doomed}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: inside, namespace: doomed}
spec:
  replicas: 1
  selector: {matchLabels: {app: inside}}
  template:
    metadata: {labels: {app: inside}}
    spec:
      containers: [{name: c, image: nginx}]
---
apiVersion: sim.rkube.io/v1alpha1
kind: NodePool
metadata: {name: extra}
spec:
  replicas: 1
  labels: {pool: extra}
";

#[test]
fn components_converge_without_a_refusal_and_with_no_more_than_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let c = Cluster::start(
        BIN,
        &[
            "--sim-nodes",
            "2",
            "--authorization-mode",
            "Node,RBAC",
            "--audit-log-path",
            audit.to_str().unwrap(),
            "--horizontal-pod-autoscaler-sync-period",
            "1s",
            "--node-monitor-period",
            "1s",
        ],
    )
    .unwrap();
    k(&c, &["wait", "--for=condition=Established", "crd/nodepools.sim.rkube.io", "--timeout=10s"]);
    apply(&c, WORKLOAD);
    // the StatefulSet of the workloads suite, with one replica
    apply(&c, &include_str!("manifests/db-statefulset.yaml").replace("replicas: 3", "replicas: 1"));
    let parent_uid = k(&c, &["get", "cm", "parent", "-o", "jsonpath={.metadata.uid}"]);
    apply(
        &c,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: parent, uid: {parent_uid}}}\n"
        ),
    );
    k(&c, &["create", "job", "manual", "--from=cronjob/nightly"]);
    approve_client_csr(&c, "carol", "/O=dev/CN=carol");

    // everything converges
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    k(&c, &["rollout", "status", "statefulset/db", "--timeout=60s"]);
    wait_for(&c, 30, &["get", "pvc", "data-db-0", "-o", "jsonpath={.status.phase}"], "Bound");
    k(&c, &["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    k(&c, &["wait", "--for=condition=complete", "job/manual", "--timeout=60s"]);
    // the finished job is removed by the ttl-after-finished controller
    wait_gone(&c, 60, &["job", "batch"]);
    wait_for(&c, 30, &["get", "nodes", "-l", "pool=extra", "-o", "name"], "node/extra-0");
    let cert = eventually(Duration::from_secs(20), || {
        let s = k(&c, &["get", "csr", "carol", "-o", "jsonpath={.status.certificate}"]);
        (!s.trim().is_empty()).then_some(())
    });
    assert!(cert.is_some(), "the signer issues the approved certificate");
    wait_for(&c, 30, &["get", "pdb", "web", "-o", "jsonpath={.status.currentHealthy}"], "2");
    wait_for(&c, 30, &["get", "quota", "quota", "-o", "jsonpath={.status.hard.pods}"], "50");
    wait_nonempty(&c, 30, &["get", "hpa", "web", "-o", "jsonpath={.status.conditions[*].type}"]);
    wait_for(&c, 30, &["get", "cm", "kube-root-ca.crt", "-n", "doomed", "-o", "name"], "configmap/kube-root-ca.crt");

    // rollout and scale
    k(&c, &["set", "image", "deployment/web", "web=nginx:2"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    k(&c, &["scale", "deployment/web", "--replicas=3"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);

    // an eviction the budget allows
    let pod = k(&c, &["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    let eviction = format!(
        "{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{pod}\",\"namespace\":\"default\"}}}}"
    );
    let evict_path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
    ok(c.kubectl_with("kubectl", &["create", "--raw", &evict_path, "-f", "-"], Some(&eviction)));
    wait_gone(&c, 30, &["pod", &pod]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);

    // namespace deletion cascades; the garbage collector removes dependents of deleted owners.
    // The namespace's pods are gone first: in a terminating namespace admission refuses new
    // objects (a replacement pod, a kubelet's event) with a 403, as upstream's does.
    k(&c, &["rollout", "status", "deployment/inside", "-n", "doomed", "--timeout=60s"]);
    k(&c, &["scale", "deployment/inside", "-n", "doomed", "--replicas=0"]);
    wait_for(&c, 30, &["get", "pods", "-n", "doomed", "-o", "name"], "");
    k(&c, &["delete", "namespace", "doomed", "--wait=false"]);
    k(&c, &["delete", "configmap", "parent"]);
    k(&c, &["delete", "deployment", "web"]);
    wait_gone(&c, 60, &["namespace", "doomed"]);
    wait_gone(&c, 30, &["configmap", "child"]);
    wait_for(&c, 30, &["get", "rs,pods", "-l", "app=web", "-o", "name"], "");
    // a shrunk NodePool loses its node
    k(&c, &["scale", "nodepool", "extra", "--replicas=0"]);
    wait_for(&c, 30, &["get", "nodes", "-l", "pool=extra", "-o", "name"], "");

    // no component was refused anything, and each of them did work under its own name
    let events = audit_events(&audit);
    let mut refused = BTreeSet::new();
    let mut users = BTreeSet::new();
    for e in &events {
        let user = e["user"]["username"].as_str().unwrap_or_default();
        if !user.starts_with("system:") {
            continue;
        }
        users.insert(user.to_string());
        if is_authorization_refusal(e) {
            let r = &e["objectRef"];
            refused.insert(format!(
                "{user} {} {}/{}/{} ns={}",
                e["verb"].as_str().unwrap_or_default(),
                r["apiGroup"].as_str().unwrap_or_default(),
                r["resource"].as_str().unwrap_or_default(),
                r["subresource"].as_str().unwrap_or_default(),
                r["namespace"].as_str().unwrap_or_default(),
            ));
        }
    }
    assert!(refused.is_empty(), "components were refused:\n{}", refused.into_iter().collect::<Vec<_>>().join("\n"));
    for sa in [
        "replicaset-controller",
        "deployment-controller",
        "statefulset-controller",
        "daemon-set-controller",
        "job-controller",
        "cronjob-controller",
        "ttl-after-finished-controller",
        "disruption-controller",
        "horizontal-pod-autoscaler",
        "generic-garbage-collector",
        "namespace-controller",
        "service-account-controller",
        "node-controller",
        "node-ipam-controller",
        "resourcequota-controller",
        "certificate-controller",
        "local-path-provisioner",
    ] {
        let u = format!("system:serviceaccount:kube-system:{sa}");
        assert!(users.contains(&u), "no audit event of {u}: {users:?}");
    }
    for u in ["system:kube-scheduler", "system:node:sim-pool"] {
        assert!(users.contains(u), "no audit event of {u}: {users:?}");
    }

    // least privilege: no broad read role, and spot checks of what components may not do
    let sa = |n: &str| format!("system:serviceaccount:kube-system:{n}");
    let bindings: Value = serde_json::from_str(&k(&c, &["get", "clusterrolebindings", "-o", "json"])).unwrap();
    for b in bindings["items"].as_array().cloned().unwrap_or_default() {
        for s in b["subjects"].as_array().cloned().unwrap_or_default() {
            assert!(
                !(s["kind"] == "Group" && s["name"] == "system:serviceaccounts:kube-system"),
                "{} grants every kube-system ServiceAccount",
                b["metadata"]["name"]
            );
        }
    }
    assert!(!c.kubectl(&["get", "clusterrole", "system:rkube:controller-informers"]).status.success());
    assert_eq!(can_i(&c, &sa("replicaset-controller"), &["list", "secrets", "-A"]), "no");
    assert_eq!(can_i(&c, &sa("deployment-controller"), &["create", "pods"]), "no");
    assert_eq!(can_i(&c, &sa("disruption-controller"), &["delete", "pods"]), "no");
    assert_eq!(can_i(&c, &sa("service-account-controller"), &["get", "secrets", "-n", "kube-system"]), "no");
    assert_eq!(can_i(&c, &sa("local-path-provisioner"), &["delete", "storageclasses"]), "no");
    assert_eq!(can_i(&c, &sa("node-controller"), &["update", "leases", "-n", "kube-node-lease"]), "no");
    assert_eq!(can_i(&c, "system:kube-scheduler", &["delete", "deployments"]), "no");
    assert_eq!(can_i(&c, "system:node:sim-pool", &["list", "clusterroles"]), "no");
    // ... while what they do need holds
    assert_eq!(can_i(&c, &sa("disruption-controller"), &["watch", "pods", "-A"]), "yes");
    assert_eq!(can_i(&c, &sa("deployment-controller"), &["patch", "deployments"]), "yes");
}
