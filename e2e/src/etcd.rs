//! A real etcd cluster on loopback for tests and benchmarks: temp data dirs,
//! free ports, killed on drop. `etcd` (3.4+, Debian's etcd-server) must be
//! on PATH: tests that need it fail loudly without it, they never skip.

use crate::free_port;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// One etcd member process.
struct Member {
    child: Option<Child>,
    name: String,
    client_url: String,
    peer_url: String,
}

impl Member {
    fn spawn(dir: &Path, name: &str, client: u16, peer: u16, cluster: &str, state: &str) -> Member {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("create etcd log");
        let child = Command::new("etcd")
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(dir.join(name))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", cluster, "--initial-cluster-state", state])
            .args(["--initial-cluster-token", "rkube-test", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `etcd` ({e}): etcd 3.4+ must be on PATH for these tests (Debian: etcd-server)")
            });
        Member { child: Some(child), name: name.to_string(), client_url, peer_url }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An etcd cluster of `n` members with its temp dir.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Start `n` members (1 for most tests). Health is the client's job:
    /// `EtcdStore::connect` waits for the cluster to answer.
    pub fn start(n: usize) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| Member::spawn(dir.path(), &format!("m{i}"), *c, *p, &cluster, "new"))
            .collect();
        EtcdCluster { members, dir }
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Everything the members logged (for failure messages).
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name))).unwrap_or_default())
            .collect()
    }

    /// Kill member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Restart member `i` on its old ports and data dir.
    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.kill();
        let port = |url: &str| -> u16 { url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port") };
        let (client, peer) = (port(&m.client_url), port(&m.peer_url));
        let cluster = self.members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
        let name = self.members[i].name.clone();
        self.members[i] = Member::spawn(self.dir.path(), &name, client, peer, &cluster, "existing");
    }
}
