//! What exists of the security issue so far: bearer tokens (a static token
//! file and ServiceAccount tokens from `kubectl create token`), whoami and
//! can-i, Secrets encrypted at rest, and the audit log naming each component.

use rkube_e2e::{Cluster, approve_client_csr, eventually, fails, ok};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rkube");

#[test]
fn tokens_encryption_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cr3t-token,jane,1001,\"dev,qa\"\n").unwrap();
    let enc = dir.path().join("encryption.yaml");
    std::fs::write(
        &enc,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: key1\n        secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=\n  - identity: {}\n",
    )
    .unwrap();
    let audit = dir.path().join("audit.log");
    let c = Cluster::start(
        BIN,
        &[
            "--sim-nodes",
            "1",
            "--token-auth-file",
            tokens.to_str().unwrap(),
            "--encryption-provider-config",
            enc.to_str().unwrap(),
            "--audit-log-path",
            audit.to_str().unwrap(),
        ],
    )
    .unwrap();

    // whoami with the admin certificate and with a static token
    let me = ok(c.kubectl(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]));
    assert_eq!(me, "admin");
    let server = c.url();
    let ca = c.dir.path().join("pki/ca.crt");
    let as_token = |token: &str, args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(["--kubeconfig=/dev/null", "--server", &server, "--certificate-authority"])
            .arg(&ca)
            .args(["--token", token])
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_token(
        "s3cr3t-token",
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("jane ") && text.contains("dev") && text.contains("system:authenticated"), "{text}");
    assert!(!as_token("wrong-token", &["get", "ns"]).status.success(), "an unknown token is refused");

    // a ServiceAccount token from `kubectl create token`
    eventually(Duration::from_secs(20), || c.kubectl(&["get", "sa", "default"]).status.success().then_some(()))
        .expect("default ServiceAccount");
    let sa_token = ok(c.kubectl(&["create", "token", "default", "--duration=10m"]));
    let out = as_token(sa_token.trim(), &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "system:serviceaccount:default:default");
    // RBAC (on by default, with the Node authorizer) grants a fresh ServiceAccount nothing
    let can = as_token(sa_token.trim(), &["auth", "can-i", "list", "pods"]);
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "no");
    // a legacy token Secret is filled in by the token controller and authenticates
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: legacy\n  annotations: {kubernetes.io/service-account.name: default}\ntype: kubernetes.io/service-account-token\n";
    ok(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(secret)));
    let legacy = eventually(Duration::from_secs(10), || {
        let out = c.kubectl(&["get", "secret", "legacy", "-o", "jsonpath={.data.token}"]);
        let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!t.is_empty()).then_some(t)
    })
    .expect("token filled in");
    use base64::Engine;
    let legacy = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(legacy).unwrap()).unwrap();
    let out = as_token(&legacy, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "system:serviceaccount:default:default");
    // tokens bound to a pod or a secret stop working once it is gone
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: holder\nspec:\n  nodeName: nowhere\n  containers:\n  - {name: c, image: busybox}\n";
    ok(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(pod)));
    ok(c.kubectl(&["create", "secret", "generic", "anchor", "--from-literal=k=v"]));
    let whoami = |t: &str| as_token(t, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    let bound = |kind: &str, name: &str| {
        let args = ["create", "token", "default", "--bound-object-kind", kind, "--bound-object-name", name];
        ok(c.kubectl(&args)).trim().to_string()
    };
    let (pod_token, secret_token) = (bound("Pod", "holder"), bound("Secret", "anchor"));
    assert!(whoami(&pod_token).status.success(), "a pod-bound token works while its pod exists");
    assert!(whoami(&secret_token).status.success(), "a secret-bound token works while its secret exists");
    ok(c.kubectl(&["delete", "pod", "holder", "--grace-period=0", "--force"]));
    ok(c.kubectl(&["delete", "secret", "anchor"]));
    let refused = whoami(&pod_token);
    assert!(!refused.status.success(), "a token bound to a deleted pod is refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"), "{refused:?}");
    assert!(!whoami(&secret_token).status.success(), "a token bound to a deleted secret is refused");
    // a new pod of the same name has another uid: the old token stays invalid
    ok(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(pod)));
    assert!(!whoami(&pod_token).status.success(), "a token bound to an earlier pod of that name is refused");

    // the issuer's keys are published for anyone
    let jwks = ok(c.kubectl(&["get", "--raw", "/openid/v1/jwks"]));
    assert!(jwks.contains("\"keys\""), "{jwks}");

    // a Secret's value never reaches the store's files in clear
    ok(c.kubectl(&["create", "secret", "generic", "vault", "--from-literal=password=unguessable-pa55word"]));
    assert_eq!(
        ok(c.kubectl(&["get", "secret", "vault", "-o", "jsonpath={.data.password}"])),
        "dW5ndWVzc2FibGUtcGE1NXdvcmQ="
    );
    let mut found = false;
    for entry in std::fs::read_dir(c.dir.path().join("db")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [&b"unguessable-pa55word"[..], &b"dW5ndWVzc2FibGUtcGE1NXdvcmQ="[..]] {
            found |= bytes.windows(needle.len()).any(|w| w == needle);
        }
    }
    assert!(!found, "the secret's value is in the store's files in clear");

    // the audit log names every component by its own identity
    let users = eventually(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let users: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["user"]["username"].as_str().map(str::to_string))
            .collect();
        (users.contains("system:kube-scheduler") && users.contains("jane")).then_some(users)
    })
    .expect("audit events of the scheduler and of jane");
    for u in ["admin", "system:serviceaccount:kube-system:replicaset-controller", "system:node:sim-0"] {
        assert!(users.contains(u), "no audit event of {u}: {users:?}");
    }
}

/// RBAC: who may do what, tried for real with stock kubectl.
#[test]
fn rbac_decides_who_can_do_what() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "jane-token,jane,1001,\"dev\"\neddie-token,eddie,1002,\"\"\n").unwrap();
    let c = Cluster::start(
        BIN,
        &["--sim-nodes", "2", "--authorization-mode", "Node,RBAC", "--token-auth-file", tokens.to_str().unwrap()],
    )
    .unwrap();
    let server = c.url();
    let ca = c.dir.path().join("pki/ca.crt");
    let run = |token: Option<&str>, args: &[&str]| {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.args(["--kubeconfig=/dev/null", "--server", &server, "--certificate-authority"]).arg(&ca);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.args(args).output().unwrap()
    };
    // the components work under their own identities with the bootstrap policy
    ok(c.kubectl(&["create", "deployment", "web", "--image=nginx", "--replicas=2"]));
    ok(c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]));
    // kubelets: the Node authorizer and NodeRestriction keep each to its own node and pods
    let as_node = |node: &str, args: &[&str]| {
        let user = format!("--as=system:node:{node}");
        let mut all = vec![user.as_str(), "--as-group=system:nodes"];
        all.extend_from_slice(args);
        c.kubectl(&all)
    };
    ok(c.kubectl(&["create", "secret", "generic", "mounted", "--from-literal=k=v"]));
    ok(c.kubectl(&["create", "secret", "generic", "unrelated", "--from-literal=k=v"]));
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: uses-secret\nspec:\n  nodeName: sim-0\n  containers:\n  - {name: c, image: busybox}\n  volumes:\n  - name: s\n    secret: {secretName: mounted}\n";
    ok(c.kubectl_with("kubectl", &["create", "-f", "-"], Some(pod)));
    ok(as_node("sim-0", &["get", "secret", "mounted"]));
    let err = fails(as_node("sim-1", &["get", "secret", "mounted"]));
    assert!(err.contains("no relationship found between node 'sim-1' and this object"), "{err}");
    let err = fails(as_node("sim-0", &["get", "secret", "unrelated"]));
    assert!(err.contains("no relationship found between node 'sim-0' and this object"), "{err}");
    ok(as_node("sim-0", &["label", "node", "sim-0", "rack=r1"]));
    // (kubectl reads before it patches, and a node may read only itself: PUT the object directly)
    let mut other: serde_json::Value =
        serde_json::from_str(&ok(c.kubectl(&["get", "node", "sim-1", "-o", "json"]))).unwrap();
    other["metadata"]["labels"]["rack"] = "r1".into();
    let body = dir.path().join("sim-1.json");
    std::fs::write(&body, other.to_string()).unwrap();
    let err = fails(as_node("sim-0", &["replace", "--raw", "/api/v1/nodes/sim-1", "-f", body.to_str().unwrap()]));
    assert!(err.contains("node \"sim-0\" is not allowed to modify node \"sim-1\""), "{err}");
    let err = fails(as_node("sim-0", &["label", "node", "sim-0", "node-restriction.kubernetes.io/pool=a"]));
    assert!(err.contains("is not allowed to modify labels: node-restriction.kubernetes.io/pool"), "{err}");
    let err = fails(as_node("sim-1", &["delete", "pod", "uses-secret"]));
    assert!(err.contains("forbidden"), "{err}");
    // a token user with no grants is forbidden, with upstream's message
    let out = run(Some("jane-token"), &["get", "pods"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""), "{err}");
    // anonymous: upstream's 401 Status everywhere but the public paths (curl shows the body as it
    // is; kubectl would ask for a password)
    let anonymous = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&ca)
            .arg(format!("{server}{path}"))
            .output();
        String::from_utf8_lossy(&out.unwrap().stdout).to_string()
    };
    let body = anonymous("/api/v1/namespaces/default/pods");
    assert!(body.contains("\"code\":401") && body.contains("\"reason\":\"Unauthorized\""), "{body}");
    assert_eq!(anonymous("/healthz"), "ok");
    assert!(anonymous("/version").contains("gitVersion"));
    // grant edit in one namespace
    ok(c.kubectl(&["create", "rolebinding", "eddie-edit", "--clusterrole=edit", "--user=eddie"]));
    let allowed = eventually(Duration::from_secs(10), || {
        run(Some("eddie-token"), &["get", "pods"]).status.success().then_some(())
    });
    assert!(allowed.is_some(), "edit lets eddie list pods");
    assert_eq!(
        String::from_utf8_lossy(&run(Some("eddie-token"), &["auth", "can-i", "delete", "deployments"]).stdout).trim(),
        "yes"
    );
    assert_eq!(
        String::from_utf8_lossy(
            &run(Some("eddie-token"), &["auth", "can-i", "list", "pods", "-n", "kube-system"]).stdout
        )
        .trim(),
        "no"
    );
    assert_eq!(
        String::from_utf8_lossy(&run(Some("eddie-token"), &["auth", "can-i", "create", "roles"]).stdout).trim(),
        "no"
    );
    let list = String::from_utf8_lossy(&run(Some("eddie-token"), &["auth", "can-i", "--list"]).stdout).into_owned();
    assert!(list.contains("deployments.apps") && list.contains("pods"), "{list}");
    // edit cannot hand itself cluster-admin
    let out = run(
        Some("eddie-token"),
        &["create", "clusterrolebinding", "mine", "--clusterrole=cluster-admin", "--user=eddie"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"), "{}", String::from_utf8_lossy(&out.stderr));
    // impersonation: the admin may act as jane (and is then refused as jane); eddie may not impersonate
    let out = c.kubectl(&["get", "pods", "--as=jane"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("User \"jane\" cannot list resource \"pods\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ok(c.kubectl(&["auth", "whoami", "--as=jane", "--as-group=dev", "-o", "jsonpath={.status.userInfo.username}"])),
        "jane"
    );
    let out = run(Some("eddie-token"), &["get", "pods", "--as=jane"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot impersonate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a ServiceAccount token gets what its bindings grant: nothing, then view
    let sa_token = ok(c.kubectl(&["create", "token", "default"]));
    assert!(!run(Some(sa_token.trim()), &["get", "configmaps"]).status.success());
    ok(c.kubectl(&["create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default"]));
    let viewed = eventually(Duration::from_secs(10), || {
        run(Some(sa_token.trim()), &["get", "configmaps"]).status.success().then_some(())
    });
    assert!(viewed.is_some(), "view lets the ServiceAccount read configmaps");
    assert!(!run(Some(sa_token.trim()), &["create", "configmap", "x"]).status.success(), "view cannot write");
}

/// Admission: Pod Security levels on namespaces, and ResourceQuota.
#[test]
fn pod_security_and_quota_admission() {
    let c = Cluster::start(BIN, &["--sim-nodes", "1"]).unwrap();
    ok(c.kubectl(&["create", "namespace", "locked"]));
    ok(c.kubectl(&["label", "namespace", "locked", "pod-security.kubernetes.io/enforce=restricted"]));
    let privileged = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: root\n  namespace: locked\nspec:\n  containers:\n  - name: c\n    image: busybox\n    securityContext: {privileged: true}\n";
    let out = c.kubectl_with("kubectl", &["create", "-f", "-"], Some(privileged));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pods \"root\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"),
        "{err}"
    );
    // a deployment with the same template is admitted with a warning
    let out = c.kubectl(&["create", "deployment", "d", "--image=busybox", "-n", "locked"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would violate PodSecurity \"restricted:latest\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // a quota of two pods refuses the third
    ok(c.kubectl(&["create", "namespace", "small"]));
    ok(c.kubectl(&["create", "quota", "tiny", "--hard=pods=2", "-n", "small"]));
    let filled = eventually(Duration::from_secs(10), || {
        let out = c.kubectl(&["get", "quota", "tiny", "-n", "small", "-o", "jsonpath={.status.hard.pods}"]);
        (String::from_utf8_lossy(&out.stdout) == "2").then_some(())
    });
    assert!(filled.is_some(), "the quota controller fills status");
    ok(c.kubectl(&["run", "a", "--image=busybox", "-n", "small"]));
    ok(c.kubectl(&["run", "b", "--image=busybox", "-n", "small"]));
    let out = c.kubectl(&["run", "c", "--image=busybox", "-n", "small"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded quota: tiny, requested: pods=1, used: pods=2, limited: pods=2"), "{err}");
    let desc = ok(c.kubectl(&["describe", "quota", "tiny", "-n", "small"]));
    assert!(desc.contains("pods") && desc.contains("2"), "{desc}");
}

/// A new user's client certificate through a CertificateSigningRequest and
/// `kubectl certificate approve`, without touching the CA files.
#[test]
fn csr_approval_issues_a_client_certificate() {
    let c = Cluster::start(BIN, &[]).unwrap();
    let dir = c.dir.path();
    let key = approve_client_csr(&c, "carol", "/O=dev/CN=carol");
    use base64::Engine;
    let cert = eventually(Duration::from_secs(20), || {
        let out = c.kubectl(&["get", "csr", "carol", "-o", "jsonpath={.status.certificate}"]);
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!s.is_empty()).then_some(s)
    })
    .expect("the signer issues the certificate");
    let cert_path = dir.join("carol.crt");
    std::fs::write(&cert_path, base64::engine::general_purpose::STANDARD.decode(cert).unwrap()).unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["--kubeconfig=/dev/null", "--server", &c.url(), "--certificate-authority"])
        .arg(dir.join("pki/ca.crt"))
        .arg("--client-certificate")
        .arg(&cert_path)
        .arg("--client-key")
        .arg(&key)
        .args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("carol ") && text.contains("dev"), "{text} {}", String::from_utf8_lossy(&out.stderr));
}

/// `--anonymous-auth=false` closes even the public paths; `--service-account-issuer`
/// names the issuer of ServiceAccount tokens and of the discovery document.
#[test]
fn anonymous_auth_and_issuer_flags() {
    let issuer = "https://issuer.rkube.example";
    let c = Cluster::start(BIN, &["--anonymous-auth=false", "--service-account-issuer", issuer]).unwrap();
    let server = c.url();
    let ca = c.dir.path().join("pki/ca.crt");
    // (kubectl asks for a password on a 401: curl shows the answer as it is)
    let anonymous = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&ca)
            .arg(format!("{server}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for path in ["/healthz", "/version", "/.well-known/openid-configuration"] {
        let body = anonymous(path);
        assert!(body.contains("\"code\":401") && body.contains("Unauthorized"), "{path}: {body}");
    }
    let doc = ok(c.kubectl(&["get", "--raw", "/.well-known/openid-configuration"]));
    assert!(doc.contains(&format!("\"issuer\":\"{issuer}\"")), "{doc}");
    let token = ok(c.kubectl(&["create", "token", "default"]));
    let claims = token.trim().split('.').nth(1).unwrap();
    use base64::Engine;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], serde_json::json!([issuer]));
}
