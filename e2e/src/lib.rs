//! rkube-e2e: helpers for end-to-end suites that run a real `rkube server`
//! process and drive it with stock clients (kubectl, helm, kube-rs).
//!
//! The suites themselves live in `e2e/tests/` and are registered as
//! integration tests of the `rkube` package, so that cargo builds the binary
//! first and hands its path over as `CARGO_BIN_EXE_rkube`.

pub mod etcd;

pub use etcd::EtcdCluster;

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `rkube server` child process on a free port in a temporary data dir.
pub struct Cluster {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    /// How long the last start took until the server printed its kubeconfig line.
    pub started_in: Duration,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

impl Cluster {
    /// Start `bin server` with extra arguments and wait until it is ready.
    pub fn start(bin: &str, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let mut c = Cluster {
            bin: PathBuf::from(bin),
            dir,
            port,
            kubeconfig,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            started_in: Duration::ZERO,
        };
        c.spawn()?;
        Ok(c)
    }

    fn spawn(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let mut child = Command::new(&self.bin)
            .arg("server")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--secure-port")
            .arg(self.port.to_string())
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("export KUBECONFIG=") {
                    let _ = tx.send(line);
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => {
                self.started_in = t0.elapsed();
                Ok(())
            }
            Err(_) => bail!("rkube server did not become ready within 30 s"),
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Kill -9 the server (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the server again on the same data dir and port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Run stock kubectl (the one on PATH) against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with("kubectl", args, None)
    }

    /// Run a given kubectl binary with optional stdin.
    pub fn kubectl_with(&self, kubectl: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(kubectl);
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig).env("HOME", self.dir.path());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot run {kubectl}: {e}"),
        };
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            let _ = pipe.write_all(input.as_bytes());
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("{kubectl} failed to run: {e}"))
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// stdout of a successful command, or a panic with everything it printed.
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "command failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// `kubectl <args>` against `c`: its stdout, or a panic with everything it printed.
pub fn k(c: &Cluster, args: &[&str]) -> String {
    ok(c.kubectl(args))
}

/// `kubectl apply -f -` of `yaml`.
pub fn apply(c: &Cluster, yaml: &str) -> String {
    ok(c.kubectl_with("kubectl", &["apply", "-f", "-"], Some(yaml)))
}

/// Poll `kubectl <args>` (a jsonpath, say) until its stdout is `want`; returns
/// the last output, stdout and stderr.
pub fn wait_for(c: &Cluster, secs: u64, args: &[&str], want: &str) -> String {
    let mut last = String::new();
    let got = eventually(Duration::from_secs(secs), || {
        let out = c.kubectl(args);
        last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == want).then_some(())
    });
    assert!(got.is_some(), "kubectl {args:?}: wanted {want:?}, last saw {last:?}");
    last
}

/// Submit and approve a CertificateSigningRequest for a client certificate
/// (`kubernetes.io/kube-apiserver-client`) named `name`, with the subject
/// `subj` (e.g. `/O=dev/CN=carol`); openssl makes the key (returned: its
/// path, in the cluster's data dir) and the request.
pub fn approve_client_csr(c: &Cluster, name: &str, subj: &str) -> PathBuf {
    use base64::Engine;
    let dir = c.dir.path();
    let (key, csr) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.csr")));
    let status = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subj])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl makes the request");
    let request = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr).expect("the request"));
    let obj = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"
    );
    ok(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(&obj)));
    k(c, &["certificate", "approve", name]);
    key
}

/// stderr of a command that must fail.
pub fn fails(out: Output) -> String {
    if out.status.success() {
        panic!("command unexpectedly succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Where the other kubectl versions are on this machine.
pub fn kubectl_version(minor: u32) -> Option<String> {
    let p = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
    Path::new(&p).exists().then_some(p)
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
