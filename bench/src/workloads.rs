//! The measured workloads, each driven through real HTTPS `kube::Client`s built
//! from the server's admin kubeconfig: readiness polling, concurrent creates,
//! full LISTs and watch fan-out. Every loop is bounded in count and in time.

use crate::stats::Samples;
use anyhow::{Context, Result, anyhow, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh client (own connection pool, own TLS sessions) from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig).context("reading the admin kubeconfig")?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// `n` independent clients.
pub async fn clients(kubeconfig: &Path, n: usize) -> Result<Vec<Client>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(client(kubeconfig).await?);
    }
    Ok(out)
}

fn get(path: &str) -> Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

/// Poll `GET /readyz` until it answers 200, at most `limit`.
pub async fn wait_readyz(client: &Client, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match client.request_text(get("/readyz")?).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            bail!("/readyz not 200 within {limit:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Create a namespace; an existing one is fine.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(anyhow!("creating namespace {name}: {e}")),
    }
}

/// The outcome of a batch of concurrent creates.
#[derive(Debug)]
pub struct Creates {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Wall-clock time of the whole batch.
    pub elapsed: Duration,
    /// Latency of each successful create.
    pub latencies: Samples,
    /// True when the time limit cut the batch short.
    pub timed_out: bool,
}

/// Create `total` objects with `concurrency` workers sharing a counter; worker `w`
/// uses `apis[w % apis.len()]`. Stops early once `limit` has passed.
pub async fn create_many<K, F>(apis: &[Api<K>], total: usize, concurrency: usize, limit: Duration, make: F) -> Creates
where
    K: Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    F: Fn(usize) -> K + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let t0 = Instant::now();
    let deadline = t0 + limit;
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let Some(api) = apis.get(w % apis.len().max(1)).cloned() else { break };
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let pp = PostParams::default();
            let (mut lat, mut errors, mut first_error, mut timed_out) = (Vec::new(), 0usize, None, false);
            loop {
                if Instant::now() > deadline {
                    timed_out = true;
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let obj = make(i);
                let s = Instant::now();
                match api.create(&pp, &obj).await {
                    Ok(_) => lat.push(u64::try_from(s.elapsed().as_nanos()).unwrap_or(u64::MAX)),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, errors, first_error, timed_out)
        }));
    }
    let (mut all, mut errors, mut first_error, mut timed_out) = (Vec::new(), 0, None, false);
    for t in tasks {
        match t.await {
            Ok((lat, e, fe, to)) => {
                all.extend(lat);
                errors += e;
                timed_out |= to;
                if first_error.is_none() {
                    first_error = fe;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    let elapsed = t0.elapsed();
    Creates { ok: all.len(), errors, first_error, elapsed, latencies: Samples::new(all), timed_out }
}

/// Timings of repeated full LISTs.
#[derive(Debug)]
pub struct Lists {
    /// One duration per run: request sent until the whole body was received.
    pub runs: Samples,
    pub items: usize,
    pub bytes: usize,
}

/// GET `path` (a collection, no limit) `runs` times; the body is read fully but
/// only decoded once (outside the timing) to count the items.
pub async fn time_list(client: &Client, path: &str, runs: usize) -> Result<Lists> {
    let mut times = Vec::new();
    let mut body = String::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        body = client.request_text(get(path)?).await.with_context(|| format!("LIST {path}"))?;
        times.push(t.elapsed());
    }
    #[derive(serde::Deserialize)]
    struct List {
        items: Vec<serde::de::IgnoredAny>,
    }
    let items = serde_json::from_str::<List>(&body).context("decoding the LIST body")?.items.len();
    Ok(Lists { runs: Samples::from_durations(&times), items, bytes: body.len() })
}

/// The outcome of the watch fan-out.
#[derive(Debug)]
pub struct Fanout {
    pub watchers: usize,
    /// Watches whose response headers arrived before the writes began.
    pub established: usize,
    /// From the first watch request until the last one was established.
    pub establish_time: Duration,
    pub writes_ok: usize,
    /// watchers × successful writes.
    pub expected: usize,
    /// (watcher, event) pairs that arrived.
    pub delivered: usize,
    /// For every delivered (watcher, event): write start → event line received.
    pub latencies: Samples,
    /// Latency of each create as seen by the writer.
    pub write_latencies: Samples,
    pub first_error: Option<String>,
}

#[derive(serde::Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    ty: String,
    object: ObjectHead,
}
#[derive(serde::Deserialize)]
struct ObjectHead {
    #[serde(default)]
    metadata: MetaHead,
}
#[derive(serde::Deserialize, Default)]
struct MetaHead {
    #[serde(default)]
    name: String,
}

/// The write index carried by a watch event line for an ADDED object named `w-<i>`.
fn added_index(line: &str) -> Option<usize> {
    let ev: EventHead = serde_json::from_str(line).ok()?;
    if ev.ty != "ADDED" {
        return None;
    }
    ev.object.metadata.name.strip_prefix("w-")?.parse().ok()
}

fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Open `watchers` watches on ConfigMaps in `ns` (spread over `clients`), then
/// create `events` ConfigMaps one by one, one every `pace`, and time every delivery.
pub async fn watch_fanout(
    clients: &[Client],
    ns: &str,
    watchers: usize,
    events: usize,
    pace: Duration,
) -> Result<Fanout> {
    let first = clients.first().context("no client")?.clone();
    // Watch from the namespace's current revision so that nothing written later can be missed.
    let list: serde_json::Value = first
        .request(get(&format!("/api/v1/namespaces/{ns}/configmaps?limit=1"))?)
        .await
        .context("LIST before watch")?;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
    let path = format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=false&timeoutSeconds=300"
    );

    let base = Instant::now();
    let starts: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(u64::MAX)).collect());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel::<Option<tokio::time::Instant>>(None);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(watchers.max(1));
    let open_gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let client = clients[w % clients.len()].clone();
        let path = path.clone();
        let ready_tx = ready_tx.clone();
        let mut stop_rx = stop_rx.clone();
        let gate = open_gate.clone();
        tasks.push(tokio::spawn(async move {
            let mut got: Vec<(u32, u64)> = Vec::with_capacity(events);
            let stream = {
                let _permit = gate.acquire().await;
                let req = match get(&path) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string())).await;
                        return got;
                    }
                };
                match client.request_stream(req).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string())).await;
                        return got;
                    }
                }
            };
            let _ = ready_tx.send(Ok(())).await;
            let mut lines = Box::pin(stream).lines();
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let mut seen = vec![false; events];
            while got.len() < events {
                let stop_at = stop_rx.borrow().unwrap_or(far);
                tokio::select! {
                    line = lines.next() => {
                        let recv = nanos_since(base);
                        let Some(Ok(line)) = line else { break };
                        if let Some(i) = added_index(&line)
                            && i < events
                            && !seen[i]
                        {
                            seen[i] = true;
                            got.push((i as u32, recv));
                        }
                    }
                    _ = tokio::time::sleep_until(stop_at) => break,
                    changed = stop_rx.changed() => if changed.is_err() { break },
                }
            }
            got
        }));
    }
    drop(ready_tx);

    // Wait (at most 60 s) until every watch has its response headers.
    let open_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut established, mut answered, mut first_error) = (0usize, 0usize, None);
    while answered < watchers {
        match tokio::time::timeout_at(open_deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => established += 1,
            Ok(Some(Err(e))) => {
                first_error.get_or_insert(format!("watch: {e}"));
            }
            Ok(None) | Err(_) => break,
        }
        answered += 1;
    }
    let establish_time = base.elapsed();

    // The paced writer.
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(first.clone(), ns);
    let pp = PostParams::default();
    let mut tick = tokio::time::interval(pace.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut write_lat = Vec::with_capacity(events);
    for (i, start) in starts.iter().enumerate() {
        tick.tick().await;
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            metadata: ObjectMeta { name: Some(format!("w-{i}")), ..Default::default() },
            data: Some([("i".to_string(), i.to_string())].into()),
            ..Default::default()
        };
        start.store(nanos_since(base), Ordering::SeqCst);
        let s = Instant::now();
        match tokio::time::timeout(Duration::from_secs(10), api.create(&pp, &cm)).await {
            Ok(Ok(_)) => write_lat.push(s.elapsed()),
            Ok(Err(e)) => {
                first_error.get_or_insert(format!("write w-{i}: {e}"));
            }
            Err(_) => {
                first_error.get_or_insert(format!("write w-{i}: timed out"));
            }
        }
    }
    // Give late deliveries 10 s, then stop every watcher still waiting.
    let _ = stop_tx.send(Some(tokio::time::Instant::now() + Duration::from_secs(10)));

    let mut lat = Vec::new();
    for t in tasks {
        if let Ok(got) = t.await {
            for (i, recv) in got {
                let start = starts[i as usize].load(Ordering::SeqCst);
                if start != u64::MAX {
                    lat.push(recv.saturating_sub(start));
                }
            }
        }
    }
    let writes_ok = write_lat.len();
    Ok(Fanout {
        watchers,
        established,
        establish_time,
        writes_ok,
        expected: established * writes_ok,
        delivered: lat.len(),
        latencies: Samples::new(lat),
        write_latencies: Samples::from_durations(&write_lat),
        first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_events_carry_their_write_index() {
        let line = r#"{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"w-17","namespace":"bench-watch","resourceVersion":"42"},"data":{"i":"17"}}}"#;
        assert_eq!(added_index(line), Some(17));
    }

    #[test]
    fn other_events_and_names_are_ignored() {
        let modified = r#"{"type":"MODIFIED","object":{"metadata":{"name":"w-3"}}}"#;
        assert_eq!(added_index(modified), None);
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"9"}}}"#;
        assert_eq!(added_index(bookmark), None);
        let foreign = r#"{"type":"ADDED","object":{"metadata":{"name":"other"}}}"#;
        assert_eq!(added_index(foreign), None);
        let error = r#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#;
        assert_eq!(added_index(error), None);
        assert_eq!(added_index("not json"), None);
    }
}
