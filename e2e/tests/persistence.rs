//! Durability of the embedded store through a real `rkube server` process:
//! data survives a restart, and a kill -9 in the middle of concurrent writes
//! loses no acknowledged write. Also: who may talk to the server at all.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use rkube_e2e::{Cluster, ok};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

async fn client(c: &Cluster) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_restart() {
    let mut c = Cluster::start(BIN, &["--apiserver-only"]).unwrap();
    ok(c.kubectl(&["create", "namespace", "keep"]));
    let cms: Api<ConfigMap> = Api::namespaced(client(&c).await, "keep");
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"))).await.unwrap();
    }
    let svc = ok(c.kubectl(&["get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP} {.metadata.uid}"]));
    let rv_before = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    c.restart().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client(&c).await, "keep");
    let list = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 20);
    let rv_after: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv_after >= rv_before.parse::<i64>().unwrap(), "revisions never go back");
    // bootstrap is idempotent: the same kubernetes Service, not a new one
    assert_eq!(ok(c.kubectl(&["get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP} {.metadata.uid}"])), svc);
    // the certificates were reused: the old kubeconfig still works
    ok(c.kubectl(&["get", "ns", "keep"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let mut c = Cluster::start(BIN, &[]).unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let cms = cms.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let name = format!("w{w}-{i}");
                match cms.create(&PostParams::default(), &cm(&name)).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // let the writers get going, then pull the plug
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if acked.lock().unwrap().len() >= 300 {
            break;
        }
    }
    c.kill9();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let acked = acked.lock().unwrap().clone();
    c.restart().unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let stored: std::collections::HashSet<String> =
        cms.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn only_authenticated_clients_get_in() {
    let c = Cluster::start(BIN, &[]).unwrap();
    // curl verifies the serving certificate against the CA, presenting no client certificate.
    let ca = c.dir.path().join("pki/ca.crt");
    let curl = |path: &str, extra: &[&str]| -> (u16, String) {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(["-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://localhost:{}{path}", c.port))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    };
    let (code, body) = curl("/api/v1/namespaces", &[]);
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status["reason"].as_str(), status["code"].as_i64()), (Some("Unauthorized"), Some(401)));
    for public in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(curl(public, &[]).0, 200, "{public}");
    }
    // credentials we cannot verify are refused everywhere, as upstream does
    assert_eq!(curl("/version", &["-H", "Authorization: Bearer not-a-token"]).0, 401);
    let v: serde_json::Value = serde_json::from_str(&curl("/version", &[]).1).unwrap();
    assert_eq!((v["major"].as_str(), v["minor"].as_str()), (Some("1"), Some("33")));
    assert!(v["gitVersion"].as_str().unwrap().contains("rkube"));
    // the admin client certificate works
    assert!(ok(c.kubectl(&["get", "ns", "-o", "name"])).contains("namespace/default"));
}
