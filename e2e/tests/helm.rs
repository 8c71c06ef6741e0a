//! Helm 3 and Helm 4 end to end against `rkube server --sim-nodes 3`: the
//! release lifecycle of charts/rkube-test-app (install, status, manifest,
//! upgrade, history, rollback, `helm test`, a server-side dry run, `lookup`,
//! uninstall) and the release Secrets Helm keeps in the cluster.
//!
//! The real Helm binaries come from e2e/fetch-helm.sh (target/tools/helm3 and
//! target/tools/helm4, or RKUBE_HELM3 / RKUBE_HELM4 / RKUBE_TOOLS_DIR). A
//! missing binary fails the test with a message saying how to get it.

use rkube_e2e::{Cluster, eventually};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");
const RELEASE: &str = "demo";
const FULLNAME: &str = "demo-rkube-test-app";
/// Every kind the chart renders, as `kubectl get` names them.
const KINDS: &str = "all,cm,secret,sa,role,rolebinding,ingress,hpa,pdb";

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Where fetch-helm.sh put Helm `major`, or a panic that says how to get it.
fn helm_binary(major: u32) -> PathBuf {
    let path = match std::env::var_os(format!("RKUBE_HELM{major}")) {
        Some(p) => PathBuf::from(p),
        None => {
            let tools = std::env::var_os("RKUBE_TOOLS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target").join("tools"));
            tools.join(format!("helm{major}"))
        }
    };
    assert!(
        path.is_file(),
        "Helm {major} is missing at {}: run e2e/fetch-helm.sh (test.sh does) or set RKUBE_HELM{major}",
        path.display()
    );
    path
}

/// One Helm binary with its own empty cache/config/data homes, aimed at a cluster.
struct Helm<'a> {
    bin: PathBuf,
    major: u32,
    home: tempfile::TempDir,
    cluster: &'a Cluster,
}

impl<'a> Helm<'a> {
    fn new(major: u32, cluster: &'a Cluster) -> Self {
        let bin = helm_binary(major);
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir for helm: {e}"));
        let h = Helm { bin, major, home, cluster };
        let version = h.ok(&["version", "--template", "{{.Version}}"]);
        assert!(version.starts_with(&format!("v{major}.")), "{} is helm {version}, wanted v{major}", h.bin.display());
        h
    }

    fn run(&self, args: &[&str]) -> Output {
        let dir = self.home.path();
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig())
            .env_remove("KUBECONFIG")
            .env("HOME", dir)
            .env("HELM_CACHE_HOME", dir.join("cache"))
            .env("HELM_CONFIG_HOME", dir.join("config"))
            .env("HELM_DATA_HOME", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// stdout of a helm command that must succeed; on failure everything it printed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "helm {} {args:?} failed ({}):\nstderr:\n{}\nstdout (tail):\n{}",
                self.major,
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail(&stdout, 60)
            );
        }
        // Shown only when the test fails: what helm said on the way (with --debug, the
        // requests that went wrong even when helm carried on, like a failed release record).
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            eprintln!("helm {} {args:?} stderr:\n{}", self.major, tail(&stderr, 40));
        }
        stdout
    }

    /// Release names, whatever their status (Helm 4 dropped `--all`: it lists every status).
    fn list(&self) -> String {
        let args: &[&str] = if self.major == 3 { &["list", "--all", "-q"] } else { &["list", "-q"] };
        self.ok(args).trim().to_string()
    }

    fn history(&self) -> Vec<(i64, String, String)> {
        let out = self.ok(&["history", RELEASE, "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("helm history -o json: {e}: {out}"));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["revision"].as_i64().unwrap_or(-1),
                    r["status"].as_str().unwrap_or("").to_string(),
                    r["description"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let out = c.kubectl(args);
    if !out.status.success() {
        panic!("kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn jsonpath(c: &Cluster, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let p = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &p]);
    kubectl(c, &args)
}

/// Poll until `kubectl get <what> -o jsonpath` prints `want`.
fn wait_jsonpath(c: &Cluster, secs: u64, what: &[&str], path: &str, want: &str) {
    let mut last = String::new();
    let got = eventually(Duration::from_secs(secs), || {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let p = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &p]);
        let out = c.kubectl(&args);
        last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success() && last.trim() == want).then_some(())
    });
    assert!(got.is_some(), "kubectl get {what:?} {path}: wanted {want:?}, last saw {last:?}");
}

/// Objects of every chart kind carrying the release's instance label.
fn release_objects(c: &Cluster, release: &str) -> Vec<String> {
    let sel = format!("app.kubernetes.io/instance={release}");
    kubectl(c, &["get", KINDS, "-l", &sel, "-o", "name"]).lines().map(str::to_string).collect()
}

/// The release Secrets Helm stores: (name, type, status label).
fn release_secrets(c: &Cluster, release: &str) -> Vec<(String, String, String)> {
    let sel = format!("owner=helm,name={release}");
    let out = kubectl(c, &["get", "secret", "-l", &sel, "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("secret list: {e}: {out}"));
    let mut rows: Vec<(String, String, String)> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap_or("").to_string(),
                s["type"].as_str().unwrap_or("").to_string(),
                s["metadata"]["labels"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn secret_rows(release: &str, statuses: &[&str]) -> Vec<(String, String, String)> {
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("sh.helm.release.v1.{release}.v{}", i + 1), "helm.sh/release.v1".into(), s.to_string()))
        .collect()
}

/// The app as the chart's values left it: replicas, image, greeting, service type.
fn assert_app(c: &Cluster, replicas: u32, image: &str, greeting: &str, svc_type: &str) {
    let deploy = ["deployment", FULLNAME];
    assert_eq!(jsonpath(c, &deploy, "{.spec.replicas}"), replicas.to_string());
    assert_eq!(jsonpath(c, &deploy, "{.spec.template.spec.containers[0].image}"), image);
    // --wait returned, so the new pods are ready; the Deployment's status follows.
    let n = replicas.to_string();
    wait_jsonpath(c, 30, &deploy, "{.status.readyReplicas}/{.status.updatedReplicas}", &format!("{n}/{n}"));
    let pods = "app.kubernetes.io/instance=demo";
    wait_jsonpath(
        c,
        60,
        &["pods", "-l", pods, "--field-selector=status.phase=Running"],
        "{.items[*].spec.containers[0].image}",
        &vec![image; replicas as usize].join(" "),
    );
    assert_eq!(jsonpath(c, &["configmap", FULLNAME], "{.data.greeting}"), greeting);
    let html = jsonpath(c, &["configmap", FULLNAME], "{.data.index\\.html}");
    assert!(html.contains(&format!("{greeting} from demo")), "{html}");
    assert_eq!(jsonpath(c, &["service", FULLNAME], "{.spec.type}"), svc_type);
    let node_port = jsonpath(c, &["service", FULLNAME], "{.spec.ports[0].nodePort}");
    if svc_type == "NodePort" {
        let p: u32 = node_port.parse().unwrap_or(0);
        assert!((30000..=32767).contains(&p), "nodePort allocated from the range: {node_port:?}");
    } else {
        assert_eq!(node_port, "", "a ClusterIP service has no nodePort");
    }
}

/// The lookup-backed Secret: (which branch rendered it, password).
fn auth_secret(c: &Cluster) -> (String, String) {
    let name = format!("{FULLNAME}-auth");
    (
        jsonpath(c, &["secret", &name], "{.metadata.annotations.rkube\\.io/lookup}"),
        jsonpath(c, &["secret", &name], "{.data.password}"),
    )
}

fn helm_release_lifecycle(major: u32) {
    let c = Cluster::start(BIN, &["--sim-nodes", "3"]).unwrap_or_else(|e| panic!("rkube server: {e:#}"));
    let helm = Helm::new(major, &c);
    let chart = workspace_root().join("charts").join("rkube-test-app");
    let chart = chart.to_str().unwrap_or_else(|| panic!("chart path is not UTF-8"));
    let timeout = "--timeout=120s";

    // install --wait
    helm.ok(&["install", RELEASE, chart, "--wait", timeout, "--debug"]);
    let status = helm.ok(&["status", RELEASE]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    assert!(status.contains("REVISION: 1"), "{status}");
    assert_app(&c, 2, "nginx:1.27", "hello", "ClusterIP");
    for kind in ["hpa", "pdb", "ingress", "role", "rolebinding", "serviceaccount"] {
        assert_eq!(jsonpath(&c, &[kind, FULLNAME], "{.metadata.name}"), FULLNAME, "{kind}");
    }
    // Helm's ownership marks, which later upgrades check before adopting objects.
    assert_eq!(
        jsonpath(&c, &["deployment", FULLNAME], "{.metadata.annotations.meta\\.helm\\.sh/release-name}"),
        RELEASE
    );
    assert_eq!(jsonpath(&c, &["deployment", FULLNAME], "{.metadata.labels.app\\.kubernetes\\.io/managed-by}"), "Helm");
    let (source, password) = auth_secret(&c);
    assert_eq!(source, "generated", "lookup finds no Secret on first install");
    assert!(!password.is_empty());
    assert_eq!(release_secrets(&c, RELEASE), secret_rows(RELEASE, &["deployed"]));

    // get manifest: every rendered kind, and not the test hook
    let manifest = helm.ok(&["get", "manifest", RELEASE]);
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        assert!(manifest.contains(&format!("\nkind: {kind}\n")), "manifest lacks {kind}:\n{manifest}");
    }
    assert!(!manifest.contains("helm.sh/hook"), "hooks are not part of the manifest:\n{manifest}");

    // upgrade --wait with changed values
    helm.ok(&[
        "upgrade",
        RELEASE,
        chart,
        "--wait",
        timeout,
        "--debug",
        "--set",
        "replicaCount=3",
        "--set",
        "image.tag=1.28",
        "--set",
        "config.greeting=hola",
        "--set",
        "service.type=NodePort",
    ]);
    assert_app(&c, 3, "nginx:1.28", "hola", "NodePort");
    let (source, password2) = auth_secret(&c);
    assert_eq!(source, "found", "lookup finds the Secret already in the cluster on upgrade");
    assert_eq!(password2, password, "the looked-up password is kept");
    assert!(helm.ok(&["status", RELEASE]).contains("REVISION: 2"));

    // history: two revisions, and two release Secrets
    let hist = helm.history();
    let statuses: Vec<(i64, &str)> = hist.iter().map(|(r, s, _)| (*r, s.as_str())).collect();
    assert_eq!(statuses, vec![(1, "superseded"), (2, "deployed")], "{hist:?}");
    assert_eq!(release_secrets(&c, RELEASE), secret_rows(RELEASE, &["superseded", "deployed"]));
    let listed = kubectl(&c, &["get", "secret", "-l", "owner=helm", "--no-headers"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().all(|l| l.contains(" helm.sh/release.v1 ")), "{listed}");

    // rollback --wait to revision 1
    helm.ok(&["rollback", RELEASE, "1", "--wait", timeout, "--debug"]);
    assert_app(&c, 2, "nginx:1.27", "hello", "ClusterIP");
    let hist = helm.history();
    assert_eq!(hist.len(), 3, "{hist:?}");
    assert_eq!(hist[2].1, "deployed", "{hist:?}");
    assert!(hist[2].2.contains("Rollback to 1"), "{hist:?}");
    // A rollback re-applies revision 1's stored manifest: no re-render, same password.
    assert_eq!(auth_secret(&c), ("generated".to_string(), password.clone()), "rollback restores revision 1's Secret");

    // helm test: the hook pod runs to Succeeded and is deleted (hook-succeeded)
    let test_out = helm.ok(&["test", RELEASE, timeout]);
    let phase_ok = test_out.lines().any(|l| l.starts_with("Phase:") && l.trim_end().ends_with("Succeeded"));
    assert!(phase_ok, "helm test:\n{test_out}");
    assert!(test_out.contains(&format!("{FULLNAME}-test")), "{test_out}");
    let test_pod_gone = eventually(Duration::from_secs(30), || {
        let out = c.kubectl(&["get", "pod", &format!("{FULLNAME}-test"), "-o", "name"]);
        (!out.status.success()).then_some(())
    });
    assert!(test_pod_gone.is_some(), "the hook-succeeded test pod is deleted");

    // install --dry-run=server of a second release: rendered with lookups, nothing stored
    let dry = helm.ok(&["install", "preview", chart, "--dry-run=server"]);
    assert!(dry.contains("STATUS: pending-install"), "{dry}");
    assert!(dry.contains("name: preview-rkube-test-app\n"), "{dry}");
    assert!(dry.contains("rkube.io/lookup: generated"), "{dry}");
    assert_eq!(release_objects(&c, "preview"), Vec::<String>::new(), "a dry run creates nothing");
    assert_eq!(release_secrets(&c, "preview"), vec![], "a dry run stores no release");
    assert_eq!(helm.list(), RELEASE, "helm list after the dry run");

    // uninstall: nothing of the release is left, release Secrets included
    helm.ok(&["uninstall", RELEASE, "--wait", timeout, "--debug"]);
    let mut left = Vec::new();
    let clean = eventually(Duration::from_secs(60), || {
        left = release_objects(&c, RELEASE);
        left.is_empty().then_some(())
    });
    assert!(clean.is_some(), "left behind after uninstall: {left:?}");
    assert_eq!(release_secrets(&c, RELEASE), vec![], "uninstall deletes the release Secrets");
    assert_eq!(helm.list(), "", "no release listed after uninstall");
}

#[test]
fn helm3_release_lifecycle() {
    helm_release_lifecycle(3);
}

#[test]
fn helm4_release_lifecycle() {
    helm_release_lifecycle(4);
}
