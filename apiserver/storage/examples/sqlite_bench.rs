//! Group-commit throughput of the durable SqliteStore: N concurrent writers each doing M creates
//! (fsync'd, `synchronous=FULL`), reporting creates/s and latency percentiles.
//!
//! `cargo run -p rkube-storage --example sqlite_bench [writers] [creates-per-writer] [dir]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use rkube_storage::Store;
use rkube_storage::sqlite::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let writers: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let per: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(500);
    let dir = match args.get(3) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("rkube-sqlite-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(&dir.join("bench.db"))?;
    let value = Bytes::from(vec![b'x'; 1024]);
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let value = value.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                store.create(&format!("/registry/bench/{w:03}/{i:06}"), value.clone()).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, rkube_storage::StoreError>(lat)
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for h in handles {
        lat.extend(h.await??);
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{} durable creates by {writers} writers in {elapsed:?}: {:.0}/s, p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1],
    );
    drop(store);
    if args.get(3).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
