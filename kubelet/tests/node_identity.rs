//! A pool whose nodes write as themselves (`system:node:<name>`) under `Node,RBAC`: the pool's
//! own identity may only watch, so every write it makes must carry the node's identity to pass.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, PostParams};
use rkube_apiserver::authz::AuthzMode;
use rkube_apiserver::inprocess::component_user;
use rkube_apiserver::server::User;
use rkube_kubelet::{Config, NodeClients, NodeConfig, start};
use serde_json::json;
use std::time::Duration;

fn user(name: &str) -> User {
    User { name: name.into(), groups: vec!["system:authenticated".into()] }
}

async fn create<K>(api: &Api<K>, v: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// An apiserver with `Node,RBAC` as upstream runs it (system:node bound to no one), a watch-only
/// pool user `sim-pool`, and a user `node-proxy` that may only impersonate nodes.
async fn server() -> rkube_apiserver::testenv::TestEnv {
    let env = rkube_apiserver::testenv::TestEnv::start().await.unwrap();
    env.server.set_authorization_modes(vec![AuthzMode::Node, AuthzMode::Rbac]);
    env.server.start_rbac().await.unwrap();
    let admin = env.client();
    let crb: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    let _ = crb.delete("system:node", &Default::default()).await;
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    create(
        &roles,
        json!({"metadata": {"name": "pool-watch"}, "rules": [
        {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    create(
        &roles,
        json!({"metadata": {"name": "node-impersonator"}, "rules": [
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
        {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": ["system:nodes"]}]}),
    )
    .await;
    for (role, who) in [("pool-watch", "sim-pool"), ("node-impersonator", "node-proxy")] {
        create(
            &crb,
            json!({"metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": who}]}),
        )
        .await;
    }
    env
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_pool(env: &rkube_apiserver::testenv::TestEnv, clients: NodeClients) -> Vec<tokio::task::JoinHandle<()>> {
    let admin = env.client();
    let ipam = tokio::spawn(async move {
        let _ = rkube_controller_nodeipam::run(admin, Default::default()).await;
    });
    let cfg = Config {
        nodes: vec![NodeConfig::new("n1"), NodeConfig::new("n2")],
        node_status_update_frequency: Duration::from_millis(500),
        node_lease_duration_seconds: 2,
        pod_behaviors: false,
        node_clients: Some(clients),
        ..Config::default()
    };
    let (_handle, join) = start(env.client_as(user("sim-pool")), cfg).unwrap();
    let pool = tokio::spawn(async move {
        let _ = join.await;
    });
    vec![ipam, pool]
}

async fn check_pool_runs_pods(env: &rkube_apiserver::testenv::TestEnv) {
    let admin = env.client();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    create(&secrets, json!({"metadata": {"name": "creds"}, "stringData": {"k": "v"}})).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    create(
        &pods,
        json!({"metadata": {"name": "web"}, "spec": {"nodeName": "n2",
        "containers": [{"name": "app", "image": "nginx"}],
        "volumes": [{"name": "s", "secret": {"secretName": "creds"}}]}}),
    )
    .await;
    let nodes: Api<Node> = Api::all(admin.clone());
    for n in ["n1", "n2"] {
        wait_for("node registered Ready", || async {
            let node = nodes.get_opt(n).await.ok().flatten()?;
            let conds = node.status?.conditions?;
            conds.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
        })
        .await;
    }
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    wait_for("both leases", || async {
        (leases.get_opt("n1").await.ok().flatten().is_some() && leases.get_opt("n2").await.ok().flatten().is_some())
            .then_some(())
    })
    .await;
    wait_for("pod Running", || async {
        let p = pods.get("web").await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    // The pool's own identity may not write at all: the writes above were the nodes'.
    let as_pool: Api<Node> = Api::all(env.client_as(user("sim-pool")));
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    let err = as_pool.patch("n1", &Default::default(), &kube::api::Patch::Merge(&patch)).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
}

#[tokio::test]
async fn in_process_node_identities() {
    let env = server().await;
    let server = env.server.clone();
    let clients = NodeClients::new(move |n| {
        rkube_apiserver::inprocess::in_process_client(server.clone(), component_user(&format!("system:node:{n}")))
    });
    let tasks = run_pool(&env, clients).await;
    check_pool_runs_pods(&env).await;
    // Node n1 is itself: it may not read n2's pod's secret.
    let n1: Api<Secret> = Api::namespaced(env.client_as(component_user("system:node:n1")), "default");
    assert!(matches!(n1.get("creds").await.unwrap_err(), kube::Error::Api(s) if s.code == 403));
    let n2: Api<Secret> = Api::namespaced(env.client_as(component_user("system:node:n2")), "default");
    assert!(n2.get("creds").await.is_ok());
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn impersonated_node_identities() {
    let env = server().await;
    let base = env.client_as(user("node-proxy"));
    let tasks = run_pool(&env, NodeClients::impersonating(base.clone())).await;
    check_pool_runs_pods(&env).await;
    // The impersonated identity is the node's: n1 may not read n2's pod's secret.
    let n1: Api<Secret> = Api::namespaced(rkube_kubelet::identity::impersonate(base.clone(), "n1"), "default");
    assert!(matches!(n1.get("creds").await.unwrap_err(), kube::Error::Api(s) if s.code == 403));
    let n2: Api<Secret> = Api::namespaced(rkube_kubelet::identity::impersonate(base, "n2"), "default");
    assert!(n2.get("creds").await.is_ok());
    for t in tasks {
        t.abort();
    }
}
