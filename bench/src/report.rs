//! What one backend's run measured, and how it is shown: a fixed-width table
//! with one column per backend and the target, or JSON (`--json`).

use crate::orchestration::{DeployReport, LatencyReport, SchedReport};
use crate::procs::Mem;
use crate::stats::{Samples, ms, rate};
use crate::workloads::{Creates, Fanout, Lists};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Startup {
    pub starts: usize,
    /// Median spawn → `export KUBECONFIG=` line.
    pub line_ms: f64,
    /// Median spawn → first `/readyz` 200.
    pub readyz_ms: f64,
    pub readyz_min_ms: f64,
    pub readyz_max_ms: f64,
}

impl Startup {
    pub fn from_samples(line: &Samples, readyz: &Samples) -> Self {
        let f = |d: Option<std::time::Duration>| d.map(ms).unwrap_or(f64::NAN);
        Startup {
            starts: readyz.len(),
            line_ms: f(line.median()),
            readyz_ms: f(readyz.median()),
            readyz_min_ms: f(readyz.min()),
            readyz_max_ms: f(readyz.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Throughput {
    pub ok: usize,
    pub errors: usize,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub elapsed_ms: f64,
    pub timed_out: bool,
    pub first_error: Option<String>,
}

impl From<&Creates> for Throughput {
    fn from(c: &Creates) -> Self {
        let f = |d: Option<std::time::Duration>| d.map(ms).unwrap_or(f64::NAN);
        Throughput {
            ok: c.ok,
            errors: c.errors,
            per_sec: rate(c.ok, c.elapsed),
            p50_ms: f(c.latencies.percentile(50.0)),
            p99_ms: f(c.latencies.percentile(99.0)),
            max_ms: f(c.latencies.max()),
            elapsed_ms: ms(c.elapsed),
            timed_out: c.timed_out,
            first_error: c.first_error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ListReport {
    pub items: usize,
    pub bytes: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl From<&Lists> for ListReport {
    fn from(l: &Lists) -> Self {
        let f = |d: Option<std::time::Duration>| d.map(ms).unwrap_or(f64::NAN);
        ListReport {
            items: l.items,
            bytes: l.bytes,
            runs: l.runs.len(),
            median_ms: f(l.runs.median()),
            min_ms: f(l.runs.min()),
            max_ms: f(l.runs.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct WatchReport {
    pub watchers: usize,
    pub established: usize,
    pub establish_ms: f64,
    pub writes: usize,
    pub expected: usize,
    pub delivered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    pub first_error: Option<String>,
}

impl From<&Fanout> for WatchReport {
    fn from(w: &Fanout) -> Self {
        let f = |d: Option<std::time::Duration>| d.map(ms).unwrap_or(f64::NAN);
        WatchReport {
            watchers: w.watchers,
            established: w.established,
            establish_ms: ms(w.establish_time),
            writes: w.writes_ok,
            expected: w.expected,
            delivered: w.delivered,
            p50_ms: f(w.latencies.percentile(50.0)),
            p99_ms: f(w.latencies.percentile(99.0)),
            max_ms: f(w.latencies.max()),
            write_p50_ms: f(w.write_latencies.percentile(50.0)),
            write_p99_ms: f(w.write_latencies.percentile(99.0)),
            first_error: w.first_error.clone(),
        }
    }
}

/// Everything measured for one backend; a section is `None` when it failed
/// (the reason is in `errors`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct BackendReport {
    pub backend: String,
    pub startup: Option<Startup>,
    pub idle_mem: Option<Mem>,
    pub etcd_mem: Option<Mem>,
    pub configmap_creates: Option<Throughput>,
    pub pod_creates: Option<Throughput>,
    pub list_pods: Option<ListReport>,
    pub watch: Option<WatchReport>,
    pub mem_after: Option<Mem>,
    pub errors: Vec<String>,
}

/// Parameters of the run, echoed in the output.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunInfo {
    pub rkube: String,
    pub cpus: usize,
    pub starts: usize,
    pub creates: usize,
    pub clients: usize,
    pub pods: usize,
    pub list_runs: usize,
    pub watchers: usize,
    pub watch_events: usize,
    pub watch_pace_ms: u64,
    /// `apiserver`, `orchestration` or `all`.
    pub suite: String,
    pub sched_nodes: usize,
    pub sched_pods: usize,
    pub deploy_nodes: usize,
    pub deploy_replicas: usize,
    pub latency_nodes: usize,
    pub latency_rate: u32,
    pub latency_secs: u64,
}

/// Everything the orchestration suite measured on one backend; a section is `None` when it
/// failed before measuring (the reason is in `errors`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct OrchReport {
    pub backend: String,
    pub scheduling: Option<SchedReport>,
    pub deployment: Option<DeployReport>,
    /// `--deploy-split`: the same rollout with controller manager and scheduler in their own processes.
    pub deployment_split: Option<DeployReport>,
    pub latency: Option<LatencyReport>,
    pub errors: Vec<String>,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// A table row: label, target, and per backend the value plus whether it misses the target.
struct Row {
    label: String,
    target: String,
    cells: Vec<(String, bool)>,
}

fn row<T, F>(reports: &[T], label: &str, target: &str, f: F) -> Row
where
    F: Fn(&T) -> Option<(String, bool)>,
{
    Row {
        label: label.into(),
        target: target.into(),
        cells: reports.iter().map(|r| f(r).unwrap_or_else(|| ("n/a".into(), false))).collect(),
    }
}

/// The human-readable table; values marked `*` miss their target.
pub fn render_table(info: &RunInfo, reports: &[BackendReport]) -> String {
    let rows = vec![
        row(reports, "start → kubeconfig line (median)", "", |r| {
            r.startup.as_ref().map(|s| (fmt_ms(s.line_ms), false))
        }),
        row(reports, &format!("start → /readyz 200 (median of {})", info.starts), "< 300 ms", |r| {
            r.startup.as_ref().map(|s| (fmt_ms(s.readyz_ms), s.readyz_ms.is_nan() || s.readyz_ms >= 300.0))
        }),
        row(reports, "idle RSS (rkube)", "< 30 MiB", |r| {
            r.idle_mem.map(|m| (mib(m.rss_kib), m.rss_kib as f64 >= 30.0 * 1024.0))
        }),
        row(reports, "idle RSS (etcd process)", "", |r| r.etcd_mem.map(|m| (mib(m.rss_kib), false))),
        row(reports, &format!("ConfigMap creates/s ({} clients)", info.clients), "≥ 2000/s", |r| {
            r.configmap_creates.as_ref().map(|t| (format!("{:.0}/s", t.per_sec), t.per_sec < 2000.0))
        }),
        row(reports, "  create latency p50", "", |r| r.configmap_creates.as_ref().map(|t| (fmt_ms(t.p50_ms), false))),
        row(reports, "  create latency p99", "< 50 ms", |r| {
            r.configmap_creates.as_ref().map(|t| (fmt_ms(t.p99_ms), t.p99_ms.is_nan() || t.p99_ms >= 50.0))
        }),
        row(reports, "  creates ok / errors", "", |r| {
            r.configmap_creates.as_ref().map(|t| (format!("{} / {}", t.ok, t.errors), t.errors > 0))
        }),
        row(reports, &format!("Pod creates/s (setup, {} pods)", info.pods), "", |r| {
            r.pod_creates.as_ref().map(|t| (format!("{:.0}/s", t.per_sec), t.errors > 0))
        }),
        row(reports, &format!("LIST pods, no limit (median of {})", info.list_runs), "< 250 ms", |r| {
            r.list_pods.as_ref().map(|l| (fmt_ms(l.median_ms), l.median_ms.is_nan() || l.median_ms >= 250.0))
        }),
        row(reports, "  items / body size", "", |r| {
            r.list_pods.as_ref().map(|l| (format!("{} / {}", l.items, mib(l.bytes as u64 / 1024)), l.items < info.pods))
        }),
        row(reports, &format!("watch delivery p50 ({} watchers)", info.watchers), "", |r| {
            r.watch.as_ref().map(|w| (fmt_ms(w.p50_ms), false))
        }),
        row(reports, "watch delivery p99", "< 100 ms", |r| {
            r.watch.as_ref().map(|w| (fmt_ms(w.p99_ms), w.p99_ms.is_nan() || w.p99_ms >= 100.0))
        }),
        row(reports, "  delivered / expected", "", |r| {
            r.watch
                .as_ref()
                .map(|w| (format!("{} / {}", w.delivered, w.watchers * w.writes), w.delivered < w.watchers * w.writes))
        }),
        row(reports, "  watches open / establish time", "", |r| {
            r.watch
                .as_ref()
                .map(|w| (format!("{} / {}", w.established, fmt_ms(w.establish_ms)), w.established < w.watchers))
        }),
        row(reports, "  writer create p50 / p99", "", |r| {
            r.watch.as_ref().map(|w| (format!("{} / {}", fmt_ms(w.write_p50_ms), fmt_ms(w.write_p99_ms)), false))
        }),
        row(reports, "RSS after workloads / peak", "", |r| {
            r.mem_after.map(|m| (format!("{} / {}", mib(m.rss_kib), mib(m.hwm_kib)), false))
        }),
    ];

    let mut out = String::new();
    let _ = writeln!(out, "rkube-bench: {} ({} CPUs, harness and server share them)", info.rkube, info.cpus);
    let columns: Vec<&str> = reports.iter().map(|r| r.backend.as_str()).collect();
    render_rows(&mut out, &columns, &rows);
    for r in reports {
        for e in &r.errors {
            let _ = writeln!(out, "{}: {}", r.backend, e);
        }
    }
    out
}

/// Lay out rows under a `metric | <column>... | target` header; `*` marks a missed target.
fn render_rows(out: &mut String, columns: &[&str], rows: &[Row]) {
    let cell = |(v, miss): &(String, bool)| if *miss { format!("{v} *") } else { v.clone() };
    let w0 = rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0).max(6);
    let wc: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| cell(&r.cells[i]).chars().count()).max().unwrap_or(0).max(columns[i].len()))
        .collect();
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut header = pad("metric", w0);
    for (i, c) in columns.iter().enumerate() {
        header.push_str(" | ");
        header.push_str(&pad(c, wc[i]));
    }
    header.push_str(" | target");
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.chars().count() + 2));
    for r in rows {
        let mut line = pad(&r.label, w0);
        for (i, c) in r.cells.iter().enumerate() {
            line.push_str(" | ");
            line.push_str(&pad(&cell(c), wc[i]));
        }
        line.push_str(" | ");
        line.push_str(&r.target);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "(* misses its target or lost requests/events)");
}

fn fmt_s(ms: f64) -> String {
    if ms.is_nan() { "-".into() } else { format!("{:.1} s", ms / 1000.0) }
}

fn usage(cpu_s: Option<f64>, mem: Option<Mem>) -> String {
    let cpu = cpu_s.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "-".into());
    let mem = mem.map(|m| mib(m.rss_kib)).unwrap_or_else(|| "-".into());
    format!("{cpu} / {mem}")
}

fn fmt_opt_s(ms: Option<f64>) -> String {
    ms.map(fmt_s).unwrap_or_else(|| "-".into())
}

/// The orchestration table: one column per backend.
pub fn render_orchestration(info: &RunInfo, reports: &[OrchReport]) -> String {
    let rows = vec![
        row(reports, &format!("sched: {} sim nodes registered", info.sched_nodes), "", |r| {
            r.scheduling.as_ref().map(|s| (fmt_s(s.nodes_ready_ms), false))
        }),
        row(reports, &format!("sched: pending pod creates/s ({} pods)", info.sched_pods), "", |r| {
            r.scheduling.as_ref().map(|s| (format!("{:.0}/s", s.creates.per_sec), s.creates.errors > 0))
        }),
        row(reports, "scheduling throughput (spawn → all bound)", "≥ 1000 pods/s", |r| {
            r.scheduling.as_ref().map(|s| {
                if s.complete { (format!("{:.0} pods/s", s.per_sec), s.per_sec < 1000.0) } else { ("n/a".into(), true) }
            })
        }),
        row(reports, "  pods bound / time", "", |r| {
            r.scheduling.as_ref().map(|s| (format!("{} / {}", s.bound, fmt_s(s.elapsed_ms)), !s.complete))
        }),
        row(reports, "  scheduler spawn → first bind", "", |r| {
            r.scheduling.as_ref().map(|s| (s.first_bind_ms.map(fmt_ms).unwrap_or_else(|| "-".into()), false))
        }),
        row(reports, "  bind rate after the first bind", "", |r| {
            r.scheduling
                .as_ref()
                .map(|s| (s.steady_per_sec.map(|v| format!("{v:.0} pods/s")).unwrap_or("-".into()), false))
        }),
        row(reports, "  CPU: scheduler / server", "", |r| {
            r.scheduling.as_ref().map(|s| {
                let f = |v: Option<f64>| v.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "-".into());
                (format!("{} / {}", f(s.scheduler_cpu_s), f(s.server_cpu_s)), false)
            })
        }),
        row(reports, "  server RSS: nodes / +pods / +bound", "", |r| {
            r.scheduling.as_ref().map(|s| {
                let f = |m: Option<Mem>| m.map(|m| format!("{:.0}", m.rss_kib as f64 / 1024.0)).unwrap_or("-".into());
                (format!("{} / {} / {} MiB", f(s.server_mem_nodes), f(s.server_mem_pods), f(s.server_mem_bound)), false)
            })
        }),
        row(reports, &format!("deploy: {} nodes with podCIDR", info.deploy_nodes), "", |r| {
            r.deployment.as_ref().map(|d| (fmt_s(d.nodes_ready_ms), false))
        }),
        row(reports, &format!("Deployment {} replicas → available", info.deploy_replicas), "< 30 s", |r| {
            r.deployment.as_ref().map(|d| match d.available_ms {
                Some(v) => (fmt_s(v), v >= 30_000.0),
                None => ("n/a".into(), true),
            })
        }),
        row(reports, "  all pods created / bound / Running", "", |r| {
            r.deployment.as_ref().map(|d| {
                let v = format!(
                    "{} / {} / {}",
                    fmt_opt_s(d.all_created_ms),
                    fmt_opt_s(d.all_bound_ms),
                    fmt_opt_s(d.all_running_ms)
                );
                (v, false)
            })
        }),
        row(reports, "  pod writes seen per pod", "", |r| {
            r.deployment.as_ref().map(|d| (format!("{:.2}", d.pod_events as f64 / d.replicas.max(1) as f64), false))
        }),
        row(reports, "  server RSS after / peak", "< 400 MB", |r| {
            r.deployment
                .as_ref()
                .and_then(|d| d.mem_after)
                .map(|m| (format!("{} / {}", mib(m.rss_kib), mib(m.hwm_kib)), m.rss_kib as f64 * 1024.0 >= 400e6))
        }),
        row(reports, "  server CPU: rollout / since start", "", |r| {
            r.deployment.as_ref().map(|d| {
                let f = |v: Option<f64>| v.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "-".into());
                (format!("{} / {}", f(d.cpu_rollout_s), f(d.cpu_total_s)), false)
            })
        }),
    ];
    let mut rows = rows;
    if reports.iter().any(|r| r.deployment_split.is_some()) {
        rows.push(row(reports, "split: Deployment → available", "< 30 s", |r| {
            r.deployment_split.as_ref().map(|d| match d.available_ms {
                Some(v) => (fmt_s(v), v >= 30_000.0),
                None => ("n/a".into(), true),
            })
        }));
        rows.push(row(reports, "  apiserver+kubelets: CPU / RSS", "", |r| {
            r.deployment_split.as_ref().map(|d| (usage(d.cpu_rollout_s, d.mem_after), false))
        }));
        for name in ["controller-manager", "scheduler"] {
            rows.push(row(reports, &format!("  {name}: CPU / RSS"), "", |r| {
                let d = r.deployment_split.as_ref()?;
                let c = d.components.iter().find(|c| c.name == name)?;
                Some((usage(c.cpu_rollout_s, c.mem_after), false))
            }));
        }
    }
    rows.extend([
        row(
            reports,
            &format!("pod create → Running p50 ({}/s, {} nodes)", info.latency_rate, info.latency_nodes),
            "",
            |r| r.latency.as_ref().map(|l| (fmt_ms(l.running_p50_ms), false)),
        ),
        row(reports, "pod create → Running p99", "< 1 s", |r| {
            r.latency
                .as_ref()
                .map(|l| (fmt_ms(l.running_p99_ms), l.running_p99_ms.is_nan() || l.running_p99_ms >= 1000.0))
        }),
        row(reports, "  Running / created (max)", "all", |r| {
            r.latency.as_ref().map(|l| {
                (format!("{} / {} ({})", l.running, l.created, fmt_ms(l.running_max_ms)), l.running < l.created)
            })
        }),
        row(reports, "  create → bound p50 / p99", "", |r| {
            r.latency.as_ref().map(|l| (format!("{} / {}", fmt_ms(l.bound_p50_ms), fmt_ms(l.bound_p99_ms)), false))
        }),
        row(reports, "  create call p50 / p99", "", |r| {
            r.latency.as_ref().map(|l| (format!("{} / {}", fmt_ms(l.create_p50_ms), fmt_ms(l.create_p99_ms)), false))
        }),
        row(reports, "  creates achieved / errors", "", |r| {
            r.latency.as_ref().map(|l| {
                (
                    format!("{:.0}/s / {}", l.achieved_per_sec, l.create_errors),
                    l.create_errors > 0 || l.attempted < l.created,
                )
            })
        }),
    ]);
    let mut out = String::new();
    let _ =
        writeln!(out, "rkube-bench orchestration: {} ({} CPUs, harness and server share them)", info.rkube, info.cpus);
    let columns: Vec<&str> = reports.iter().map(|r| r.backend.as_str()).collect();
    render_rows(&mut out, &columns, &rows);
    for r in reports {
        for e in &r.errors {
            let _ = writeln!(out, "{}: {}", r.backend, e);
        }
    }
    out
}

/// The JSON document printed by `--json`.
pub fn render_json(info: &RunInfo, reports: &[BackendReport], orch: &[OrchReport]) -> String {
    let doc = serde_json::json!({ "run": info, "backends": reports, "orchestration": orch });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (RunInfo, Vec<BackendReport>) {
        let info = RunInfo {
            rkube: "rkube".into(),
            cpus: 2,
            starts: 5,
            clients: 32,
            pods: 10000,
            list_runs: 3,
            watchers: 500,
            ..Default::default()
        };
        let fast = BackendReport {
            backend: "embedded".into(),
            startup: Some(Startup { starts: 5, line_ms: 40.0, readyz_ms: 55.5, ..Default::default() }),
            idle_mem: Some(Mem { rss_kib: 20 * 1024, hwm_kib: 21 * 1024 }),
            configmap_creates: Some(Throughput {
                ok: 10000,
                per_sec: 3000.0,
                p50_ms: 8.0,
                p99_ms: 20.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let slow = BackendReport {
            backend: "etcd".into(),
            startup: Some(Startup { starts: 5, line_ms: 300.0, readyz_ms: 450.0, ..Default::default() }),
            idle_mem: Some(Mem { rss_kib: 40 * 1024, hwm_kib: 41 * 1024 }),
            configmap_creates: Some(Throughput {
                ok: 9990,
                errors: 10,
                per_sec: 900.0,
                p99_ms: 80.0,
                ..Default::default()
            }),
            errors: vec!["watch: boom".into()],
            ..Default::default()
        };
        (info, vec![fast, slow])
    }

    fn line<'a>(table: &'a str, prefix: &str) -> &'a str {
        table.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no row {prefix:?} in\n{table}"))
    }

    #[test]
    fn marks_missed_targets_only() {
        let (info, reports) = sample();
        let t = render_table(&info, &reports);
        let ready = line(&t, "start → /readyz 200");
        assert!(ready.contains("56 ms |") || ready.contains("56 ms  "), "{ready}");
        assert!(ready.contains("450 ms *"), "{ready}");
        assert!(!ready.contains("56 ms *"), "{ready}");
        let rss = line(&t, "idle RSS (rkube)");
        assert!(rss.contains("20.0 MiB ") && rss.contains("40.0 MiB *"), "{rss}");
        let rate = line(&t, "ConfigMap creates/s (32 clients)");
        assert!(rate.contains("3000/s ") && rate.contains("900/s *"), "{rate}");
        assert!(line(&t, "  creates ok / errors").contains("9990 / 10 *"));
        // Sections that did not run say so, and errors are listed.
        assert!(line(&t, "watch delivery p99").contains("n/a"));
        assert!(t.contains("etcd: watch: boom"));
    }

    #[test]
    fn columns_line_up() {
        let (info, reports) = sample();
        let t = render_table(&info, &reports);
        let header = line(&t, "metric");
        let bar = header.find(" | etcd").unwrap_or(0);
        assert!(bar > 0);
        // Every row's second separator sits where the header's does.
        for l in t.lines().filter(|l| l.contains(" | ")) {
            let chars: Vec<char> = l.chars().collect();
            let hchars: Vec<char> = header.chars().collect();
            let hpos = hchars.iter().collect::<String>()[..bar].chars().count();
            assert_eq!(chars.get(hpos + 1), Some(&'|'), "misaligned row: {l}");
        }
    }

    #[test]
    fn json_has_every_backend() {
        let (info, reports) = sample();
        let orch = vec![OrchReport { backend: "embedded".into(), ..Default::default() }];
        let v: serde_json::Value = serde_json::from_str(&render_json(&info, &reports, &orch)).unwrap();
        assert_eq!(v["orchestration"][0]["backend"], "embedded");
        assert!(v["orchestration"][0]["scheduling"].is_null());
        assert_eq!(v["backends"][0]["backend"], "embedded");
        assert_eq!(v["backends"][1]["configmap_creates"]["errors"], 10);
        assert_eq!(v["backends"][0]["idle_mem"]["rss_kib"], 20480);
        assert_eq!(v["run"]["watchers"], 500);
    }

    fn orch_sample() -> (RunInfo, Vec<OrchReport>) {
        let info = RunInfo {
            rkube: "rkube".into(),
            cpus: 2,
            sched_nodes: 1000,
            sched_pods: 10000,
            deploy_nodes: 1000,
            deploy_replicas: 10000,
            latency_nodes: 100,
            latency_rate: 100,
            ..Default::default()
        };
        let good = OrchReport {
            backend: "embedded".into(),
            scheduling: Some(SchedReport {
                complete: true,
                bound: 10000,
                pods: 10000,
                per_sec: 1500.0,
                ..Default::default()
            }),
            deployment: Some(DeployReport {
                replicas: 10000,
                available_ms: Some(12_300.0),
                mem_after: Some(Mem { rss_kib: 300 * 1024, hwm_kib: 310 * 1024 }),
                ..Default::default()
            }),
            latency: Some(LatencyReport {
                created: 2000,
                running: 2000,
                running_p50_ms: 120.0,
                running_p99_ms: 400.0,
                ..Default::default()
            }),
            errors: vec![],
            ..Default::default()
        };
        let bad = OrchReport {
            backend: "etcd".into(),
            scheduling: Some(SchedReport {
                complete: false,
                bound: 7000,
                pods: 10000,
                per_sec: 40.0,
                ..Default::default()
            }),
            deployment: Some(DeployReport {
                replicas: 10000,
                available_ms: Some(45_000.0),
                mem_after: Some(Mem { rss_kib: 500 * 1024, hwm_kib: 510 * 1024 }),
                ..Default::default()
            }),
            latency: Some(LatencyReport {
                created: 2000,
                running: 1990,
                running_p50_ms: 300.0,
                running_p99_ms: 1500.0,
                ..Default::default()
            }),
            errors: vec!["scheduling: only 7000 of 10000 pods bound".into()],
            ..Default::default()
        };
        (info, vec![good, bad])
    }

    #[test]
    fn orchestration_table_marks_targets() {
        let (info, reports) = orch_sample();
        let t = render_orchestration(&info, &reports);
        let s = line(&t, "scheduling throughput");
        assert!(s.contains("1500 pods/s ") && s.contains("n/a *"), "{s}");
        let d = line(&t, "Deployment 10000 replicas → available");
        assert!(d.contains("12.3 s ") && d.contains("45.0 s *"), "{d}");
        let m = line(&t, "  server RSS after / peak");
        assert!(m.contains("300.0 MiB / 310.0 MiB ") && m.contains("500.0 MiB / 510.0 MiB *"), "{m}");
        let p = line(&t, "pod create → Running p99");
        assert!(p.contains("400 ms ") && p.contains("1500 ms *"), "{p}");
        assert!(line(&t, "  Running / created").contains("1990 / 2000"));
        assert!(line(&t, "  Running / created").contains(") *"));
        assert!(t.contains("etcd: scheduling: only 7000 of 10000 pods bound"));
        // A backend whose sections never ran shows n/a.
        let none = vec![OrchReport { backend: "embedded".into(), ..Default::default() }];
        assert!(line(&render_orchestration(&info, &none), "pod create → Running p99").contains("n/a"));
    }
}
