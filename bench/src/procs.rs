//! Child processes the harness owns: `rkube server` on a fresh data dir and a
//! single-member `etcd` on loopback. Both are killed when dropped. Also reads a
//! process's memory from /proc.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe socket")?;
    Ok(l.local_addr()?.port())
}

/// Memory figures of a process from /proc/<pid>/status, in kibibytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mem {
    /// Resident set size now (VmRSS).
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM).
    pub hwm_kib: u64,
}

/// Parse the `VmRSS` and `VmHWM` lines of a /proc/<pid>/status text.
pub fn parse_status(text: &str) -> Option<Mem> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line[name.len()..].trim_start_matches(':').trim();
        let num = rest.split_whitespace().next()?;
        num.parse().ok()
    };
    Some(Mem { rss_kib: field("VmRSS")?, hwm_kib: field("VmHWM").unwrap_or(0) })
}

pub fn read_mem(pid: u32) -> Result<Mem> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}"))?;
    parse_status(&text).context("no VmRSS in /proc status")
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = strip_ansi(&std::fs::read_to_string(path).unwrap_or_default());
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Text without ANSI colour sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A single-member etcd on loopback with its own temporary data dir.
pub struct Etcd {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub client_url: String,
}

impl Etcd {
    /// Start etcd and wait (at most 30 s) until `/health` reports healthy.
    pub fn start(etcd_bin: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("rkube-bench-etcd").tempdir()?;
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(etcd_bin)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {etcd_bin}"))?;
        let mut etcd = Etcd { child: Some(child), _dir: dir, client_url };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if healthy(client_port) {
                return Ok(etcd);
            }
            if let Some(c) = etcd.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!("etcd exited ({status}):\n{}", tail(&etcd._dir.path().join("etcd.log"), 20));
            }
            if Instant::now() > deadline {
                bail!("etcd not healthy within 30 s:\n{}", tail(&etcd._dir.path().join("etcd.log"), 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// One plain HTTP/1.0 GET of etcd's `/health`.
fn healthy(port: u16) -> bool {
    let probe = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    probe().map(|r| r.starts_with("HTTP/1.") && r.contains("\"health\":\"true\"")).unwrap_or(false)
}

/// A `rkube server` child process on a fresh data dir and a free port.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// From spawn until the `export KUBECONFIG=` line appeared on stdout.
    pub until_line: Duration,
    /// When the process was spawned (to time `/readyz` against).
    pub spawned_at: Instant,
}

impl Server {
    /// Spawn `rkube server` and wait (at most 30 s) for its kubeconfig line.
    pub fn start(bin: &Path, etcd_servers: Option<&str>) -> Result<Self> {
        Self::start_with(bin, etcd_servers, &[])
    }

    /// [`Server::start`] with extra flags (`--sim-nodes 1000`, `--apiserver-only`, ...).
    pub fn start_with(bin: &Path, etcd_servers: Option<&str>, extra: &[String]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("rkube-bench-server").tempdir()?;
        let port = free_port()?;
        let data = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(bin);
        cmd.arg("server").arg("--data-dir").arg(&data).arg("--secure-port").arg(port.to_string());
        if let Some(e) = etcd_servers {
            cmd.arg("--etcd-servers").arg(e);
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining stdout after the line so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(path) = line.strip_prefix("export KUBECONFIG=") {
                    let _ = tx.send(PathBuf::from(path.trim()));
                }
            }
        });
        let mut server =
            Server { child: Some(child), dir, kubeconfig: PathBuf::new(), until_line: Duration::ZERO, spawned_at };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(path) => {
                server.until_line = spawned_at.elapsed();
                server.kubeconfig = path;
                Ok(server)
            }
            Err(_) => {
                let status = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                bail!(
                    "rkube server did not print its kubeconfig line within 30 s (exit: {status:?}); log tail:\n{}",
                    tail(&log_path, 30)
                )
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("server.log"), lines)
    }

    /// The exit status if the server has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The server's temporary directory (its log and data dir live there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Another rkube component (`rkube scheduler --kubeconfig K`), logging to a file; killed when dropped.
pub struct Component {
    child: Option<Child>,
    log_path: PathBuf,
    pub spawned_at: Instant,
}

impl Component {
    /// Spawn `bin args...` with stderr and stdout going to `log_path`.
    pub fn start(bin: &Path, args: &[String], log_path: PathBuf) -> Result<Self> {
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let spawned_at = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {} {}", bin.display(), args.join(" ")))?;
        Ok(Component { child: Some(child), log_path, spawned_at })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path, lines)
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// User + system CPU time from the fields after the command name of a /proc/<pid>/stat
/// text (utime and stime are fields 14 and 15), in clock ticks.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that is unavailable).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn read_cpu(pid: u32) -> Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}"))?;
    let ticks = parse_stat_ticks(&text).context("malformed /proc stat")?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text = "Name:\trkube\nVmPeak:\t  900000 kB\nVmHWM:\t   25000 kB\nVmRSS:\t   21432 kB\nThreads:\t5\n";
        assert_eq!(parse_status(text), Some(Mem { rss_kib: 21432, hwm_kib: 25000 }));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn reads_own_memory() {
        let m = read_mem(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
    }

    #[test]
    fn strips_colours() {
        assert_eq!(strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"), "2026  INFO x");
        assert_eq!(strip_ansi("plain [text]"), "plain [text]");
    }

    #[test]
    fn parses_proc_stat_cpu_ticks() {
        let text = "4242 (rkube (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 12 0 100 0 0";
        assert_eq!(parse_stat_ticks(text), Some(1234 + 567));
        assert_eq!(parse_stat_ticks("4242 (rkube) S 1 2"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        let before = read_cpu(std::process::id()).unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(150) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(read_cpu(std::process::id()).unwrap() > before);
    }

    #[test]
    fn free_ports_are_bindable() {
        let p = free_port().unwrap();
        assert!(p > 0);
        assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
    }
}
