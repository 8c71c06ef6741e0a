//! The CSR signing controller against an in-process apiserver (TestEnv): approval through the
//! `approval` subresource (as `kubectl certificate approve` does), issuance, signer validation.

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Client;
use kube::api::{Api, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rkube_apiserver::testenv::TestEnv;
use rkube_controller_csrsigning::{Config, run};
use serde_json::json;
use std::time::{Duration, Instant};
use x509_parser::prelude::{FromDer, X509Certificate};

fn ca() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, "rkube-test-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - Duration::from_secs(3600);
    p.not_after = now + Duration::from_secs(5 * 365 * 86400);
    Ok((p.self_signed(&key)?.pem(), key.serialize_pem()))
}

fn request_pem(cn: &str, org: &str) -> Result<String> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, org);
    Ok(p.serialize_request(&key)?.pem()?)
}

async fn create_csr(client: &Client, name: &str, usages: &[&str], expiration: Option<i32>) -> Result<()> {
    let pem = request_pem(name, "developers")?;
    let mut spec = json!({
        "request": k8s_openapi::ByteString(pem.into_bytes()),
        "signerName": "kubernetes.io/kube-apiserver-client",
        "usages": usages,
    });
    if let Some(e) = expiration {
        spec["expirationSeconds"] = json!(e);
    }
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name}, "spec": spec}))?;
    Api::<CertificateSigningRequest>::all(client.clone()).create(&PostParams::default(), &csr).await?;
    Ok(())
}

/// What `kubectl certificate approve` does: read, append an Approved condition, PUT `/approval`.
async fn approve(client: &Client, name: &str) -> Result<()> {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    let mut csr = serde_json::to_value(api.get(name).await?)?;
    csr["status"]["conditions"] = json!([{
        "type": "Approved", "status": "True", "reason": "KubectlApprove",
        "message": "This CSR was approved by kubectl certificate approve.",
        "lastUpdateTime": "2024-01-01T00:00:00Z",
    }]);
    let _: CertificateSigningRequest = api.replace_subresource("approval", name, &PostParams::default(), &csr).await?;
    Ok(())
}

async fn wait_for<T>(client: &Client, name: &str, f: impl Fn(&CertificateSigningRequest) -> Option<T>) -> Result<T> {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let csr = api.get(name).await?;
        if let Some(v) = f(&csr) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting on csr {name}: {:?}", csr.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn certificate(csr: &CertificateSigningRequest) -> Option<Vec<u8>> {
    csr.status.as_ref()?.certificate.as_ref().map(|c| c.0.clone()).filter(|c| !c.is_empty())
}

#[tokio::test]
async fn approved_client_csr_gets_a_certificate_from_the_ca() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client();
    let (ca_cert_pem, ca_key_pem) = ca()?;
    let config = Config { ca_cert_pem: ca_cert_pem.clone(), ca_key_pem, ..Config::default() };
    let cl = client.clone();
    let task = tokio::spawn(async move { run(cl, config).await });

    create_csr(&client, "jane", &["digital signature", "key encipherment", "client auth"], Some(3600)).await?;
    create_csr(&client, "pending", &["client auth"], None).await?;
    create_csr(&client, "bad-usage", &["client auth", "server auth"], None).await?;
    approve(&client, "jane").await?;
    approve(&client, "bad-usage").await?;

    let pem = wait_for(&client, "jane", certificate).await?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| anyhow!("{e}"))?;
    assert_eq!(block.label, "CERTIFICATE");
    let (_, cert) = X509Certificate::from_der(&block.contents).map_err(|e| anyhow!("{e}"))?;
    assert_eq!(cert.issuer().to_string(), "CN=rkube-test-ca");
    let cn: Vec<_> = cert.subject().iter_common_name().filter_map(|a| a.as_str().ok()).collect();
    let o: Vec<_> = cert.subject().iter_organization().filter_map(|a| a.as_str().ok()).collect();
    assert_eq!((cn, o), (vec!["jane"], vec!["developers"]));
    let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca_cert_pem.as_bytes()).map_err(|e| anyhow!("{e}"))?;
    let ca = ca_block.parse_x509().map_err(|e| anyhow!("{e}"))?;
    assert!(cert.verify_signature(Some(ca.public_key())).is_ok(), "not signed by the CA");
    // spec.expirationSeconds (1h) is honoured.
    let lifetime = cert.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((3500..=3600).contains(&lifetime), "lifetime {lifetime}");
    assert_eq!(cert.extended_key_usage().ok().flatten().map(|e| e.value.client_auth), Some(true));

    let (reason, message) = wait_for(&client, "bad-usage", |csr| {
        let c = csr.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Failed")?;
        Some((c.reason.clone(), c.message.clone()))
    })
    .await?;
    assert_eq!(reason.as_deref(), Some("SignerValidationFailure"));
    assert_eq!(message.as_deref(), Some("invalid usage for client certificate: server auth"));
    let bad = Api::<CertificateSigningRequest>::all(client.clone()).get("bad-usage").await?;
    assert!(certificate(&bad).is_none());

    // Not approved: never signed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = Api::<CertificateSigningRequest>::all(client.clone()).get("pending").await?;
    assert!(certificate(&pending).is_none());
    assert!(!task.is_finished());
    task.abort();
    Ok(())
}
