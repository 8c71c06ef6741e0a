//! The other workload controllers with stock kubectl on simulated nodes:
//! StatefulSet, DaemonSet, Job, CronJob, HorizontalPodAutoscaler, and drain
//! with a PodDisruptionBudget.

use rkube_e2e::{Cluster, apply, fails, k, ok, wait_for};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

/// A headless Service and a 3-replica StatefulSet with a volume claim template.
const STS: &str = include_str!("manifests/db-statefulset.yaml");

#[test]
fn statefulset_orders_pods_and_keeps_their_claims() {
    let c = Cluster::start(BIN, &["--sim-nodes", "2"]).unwrap();
    apply(&c, STS);
    k(&c, &["rollout", "status", "statefulset/db", "--timeout=60s"]);
    // ordinal names, created in order (OrderedReady)
    let created = k(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=db",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    assert_eq!(created, "db-0 db-1 db-2");
    let host = k(&c, &["get", "pod", "db-1", "-o", "jsonpath={.spec.hostname}.{.spec.subdomain}"]);
    assert_eq!(host, "db-1.db");
    // a Bound claim per ordinal, from the default local-path class
    wait_for(&c, 30, &["get", "pvc", "-o", "jsonpath={.items[*].status.phase}"], "Bound Bound Bound");
    let claims = k(&c, &["get", "pvc", "-o", "name"]);
    assert!(claims.contains("data-db-0") && claims.contains("data-db-2"), "{claims}");
    // scale down from the highest ordinal; claims stay (Retain)
    k(&c, &["scale", "statefulset/db", "--replicas=1"]);
    wait_for(&c, 30, &["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.name}"], "db-0");
    assert_eq!(k(&c, &["get", "pvc", "-o", "name"]).lines().count(), 3);
    // rolling update, history and undo through ControllerRevisions
    k(&c, &["scale", "statefulset/db", "--replicas=3"]);
    k(&c, &["rollout", "status", "statefulset/db", "--timeout=60s"]);
    k(&c, &["set", "image", "statefulset/db", "db=postgres:17"]);
    k(&c, &["rollout", "status", "statefulset/db", "--timeout=90s"]);
    let images = k(&c, &["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].spec.containers[0].image}"]);
    assert_eq!(images, "postgres:17 postgres:17 postgres:17");
    let hist = k(&c, &["rollout", "history", "statefulset/db"]);
    assert!(hist.contains('1') && hist.contains('2'), "{hist}");
    k(&c, &["rollout", "undo", "statefulset/db"]);
    k(&c, &["rollout", "status", "statefulset/db", "--timeout=90s"]);
    wait_for(
        &c,
        60,
        &["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].spec.containers[0].image}"],
        "postgres:16 postgres:16 postgres:16",
    );
}

const DS: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: agent:1}]
";

#[test]
fn daemonset_runs_one_pod_per_node() {
    let c = Cluster::start(BIN, &["--sim-nodes", "3"]).unwrap();
    apply(&c, DS);
    k(&c, &["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    let nodes = k(&c, &["get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    let mut v: Vec<&str> = nodes.split_whitespace().collect();
    v.sort();
    assert_eq!(v, vec!["sim-0", "sim-1", "sim-2"]);
    // a new node gets its pod
    let mut extra = Command::new(BIN)
        .args(["kubelet", "--node-name", "late", "--kubeconfig"])
        .arg(c.kubeconfig())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        &c,
        60,
        &[
            "get",
            "pods",
            "-l",
            "app=agent",
            "--field-selector",
            "spec.nodeName=late",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
        "Running",
    );
    // update and undo
    k(&c, &["set", "image", "daemonset/agent", "agent=agent:2"]);
    k(&c, &["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    k(&c, &["rollout", "undo", "daemonset/agent"]);
    k(&c, &["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    wait_for(&c, 60, &["get", "ds", "agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}"], "agent:1");
    let _ = extra.kill();
    let _ = extra.wait();
}

#[test]
fn jobs_complete_fail_and_are_scheduled() {
    let c = Cluster::start(BIN, &["--sim-nodes", "2"]).unwrap();
    // completions 5, parallelism 2: runs to completion on simulated nodes
    let job = "apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox}]
";
    apply(&c, job);
    k(&c, &["wait", "--for=condition=complete", "job/batch", "--timeout=60s"]);
    assert_eq!(k(&c, &["get", "job", "batch", "-o", "jsonpath={.status.succeeded}"]), "5");
    // an Indexed job whose index 2 always fails (a PodBehavior makes it exit 1)
    let failing = "apiVersion: sim.rkube.io/v1alpha1
kind: PodBehavior
metadata: {name: index-two-fails}
spec:
  selector:
    matchLabels: {batch.kubernetes.io/job-completion-index: \"2\", job-name: indexed}
  exitAfter: 1s
  exitCode: 1
---
apiVersion: batch/v1
kind: Job
metadata: {name: indexed}
spec:
  completionMode: Indexed
  completions: 4
  parallelism: 2
  backoffLimitPerIndex: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox}]
";
    apply(&c, failing);
    k(&c, &["wait", "--for=condition=failed", "job/indexed", "--timeout=90s"]);
    assert_eq!(k(&c, &["get", "job", "indexed", "-o", "jsonpath={.status.failedIndexes}"]), "2");
    assert_eq!(k(&c, &["get", "job", "indexed", "-o", "jsonpath={.status.completedIndexes}"]), "0,1,3");
    // a job from a cronjob's template
    let cron = "apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: \"@daily\"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: r, image: busybox}]
";
    apply(&c, cron);
    k(&c, &["create", "job", "manual", "--from=cronjob/nightly"]);
    k(&c, &["wait", "--for=condition=complete", "job/manual", "--timeout=60s"]);
    let owner = k(
        &c,
        &["get", "job", "manual", "-o", "jsonpath={.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"],
    );
    assert_eq!(owner, "manual");
}

#[test]
fn autoscaler_follows_simulated_cpu() {
    let c = Cluster::start(
        BIN,
        &[
            "--sim-nodes",
            "3",
            "--horizontal-pod-autoscaler-sync-period",
            "1s",
            "--horizontal-pod-autoscaler-downscale-stabilization",
            "3s",
        ],
    )
    .unwrap();
    let dep = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        resources: {requests: {cpu: 100m}}
";
    apply(&c, dep);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    let load = |cpu: &str| {
        apply(
            &c,
            &format!(
                "apiVersion: sim.rkube.io/v1alpha1\nkind: PodBehavior\nmetadata: {{name: web-load}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  cpuUsage: {cpu}\n"
            ),
        )
    };
    load("200m");
    k(&c, &["autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=10"]);
    // 200% of request against a 50% target: 4 replicas
    wait_for(&c, 60, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"], "4");
    let top = k(&c, &["top", "pods", "-l", "app=web"]);
    assert!(top.contains("200m"), "{top}");
    // load gone: back to the minimum after the stabilization window
    load("10m");
    wait_for(&c, 60, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"], "1");
    let events =
        k(&c, &["get", "events", "--field-selector", "reason=SuccessfulRescale", "-o", "jsonpath={.items[*].message}"]);
    assert!(events.contains("New size: 4"), "{events}");
}

#[test]
fn drain_waits_for_the_disruption_budget() {
    let c = Cluster::start(BIN, &["--sim-nodes", "2"]).unwrap();
    k(&c, &["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    k(&c, &["rollout", "status", "deployment/web", "--timeout=60s"]);
    k(&c, &["create", "pdb", "web", "--selector=app=web", "--min-available=2"]);
    wait_for(
        &c,
        30,
        &["get", "pdb", "web", "-o", "jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}"],
        "2/0",
    );
    let node = k(&c, &["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].spec.nodeName}"]);
    // the budget blocks the eviction: drain gives up
    let err = fails(c.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=4s"]));
    assert!(err.contains("evict") || err.contains("disruption budget"), "{err}");
    assert!(k(&c, &["get", "node", &node]).contains("SchedulingDisabled"));
    // with a third replica the budget allows one disruption, and drain completes
    k(&c, &["uncordon", &node]);
    k(&c, &["scale", "deployment/web", "--replicas=3"]);
    wait_for(&c, 30, &["get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"], "1");
    ok(c.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=60s"]));
    wait_for(
        &c,
        30,
        &["get", "pods", "-l", "app=web", "--field-selector", &format!("spec.nodeName={node}"), "-o", "name"],
        "",
    );
}
