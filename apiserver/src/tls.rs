//! The cluster's PKI: a CA, the serving certificate and the admin client
//! certificate, made on first start and reused afterwards, plus the admin
//! kubeconfig and the rustls server configuration that checks client
//! certificates against the CA.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// PEM files of the cluster's PKI, all kept in the data directory.
pub struct Pki {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

/// Validity from an hour ago (clock skew) to `n` years ahead.
fn years(n: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (now - time::Duration::hours(1), now + time::Duration::days(365 * n))
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rkube-ca");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    (p.not_before, p.not_after) = years(10);
    p
}

/// A leaf certificate's parameters. One organization at most: rcgen keeps one
/// value per attribute type (certificates with several groups are issued by
/// the CSR signer, which writes the requested subject itself).
fn leaf_params(cn: &str, org: Option<&str>, sans: &[String], server: bool) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages =
        vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
    for s in sans {
        match s.parse::<IpAddr>() {
            Ok(ip) => p.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => p.subject_alt_names.push(SanType::DnsName(s.as_str().try_into()?)),
        }
    }
    (p.not_before, p.not_after) = years(1);
    Ok(p)
}

/// The subject alternative names of the serving certificate.
pub fn serving_sans(bind: &str, service_ip: Option<IpAddr>) -> Vec<String> {
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            sans.push(h.to_string());
        }
    }
    if !bind.is_empty() && bind != "0.0.0.0" && bind != "::" {
        sans.push(bind.to_string());
    }
    if let Some(ip) = service_ip {
        sans.push(ip.to_string());
    }
    sans.sort();
    sans.dedup();
    sans
}

impl Pki {
    /// Load the PKI from `dir`, creating whatever is missing. The serving
    /// certificate is re-issued when the wanted SANs changed.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let f = |name: &str| -> PathBuf { dir.join(name) };
        let read = |name: &str| std::fs::read_to_string(f(name)).ok();
        let write = |name: &str, data: &str| -> Result<()> {
            let path = f(name);
            std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
            #[cfg(unix)]
            if name.ends_with(".key") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        };

        let (ca_cert_pem, ca_key_pem) = match (read("ca.crt"), read("ca.key")) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let cert = ca_params().self_signed(&key)?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write("ca.key", &k)?;
                write("ca.crt", &c)?;
                (c, k)
            }
        };
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)?;

        let wanted = sans.join(",");
        let (serving_cert_pem, serving_key_pem) = match (read("serving.crt"), read("serving.key"), read("serving.sans"))
        {
            (Some(c), Some(k), Some(s)) if s.trim() == wanted => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let cert = leaf_params("kube-apiserver", None, sans, true)?.signed_by(&key, &issuer)?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write("serving.key", &k)?;
                write("serving.crt", &c)?;
                write("serving.sans", &wanted)?;
                (c, k)
            }
        };

        let (admin_cert_pem, admin_key_pem) = match (read("admin.crt"), read("admin.key")) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let cert = leaf_params("admin", Some("system:masters"), &[], false)?.signed_by(&key, &issuer)?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write("admin.key", &k)?;
                write("admin.crt", &c)?;
                (c, k)
            }
        };
        Ok(Self { ca_cert_pem, ca_key_pem, serving_cert_pem, serving_key_pem, admin_cert_pem, admin_key_pem })
    }

    /// rustls server config: our serving certificate, HTTP/2 and HTTP/1.1, and
    /// client certificates verified against the CA when offered (requests
    /// without one are answered 401 by the handler, not refused by TLS).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
            roots.add(c?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()?;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.serving_cert_pem.as_bytes()).collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes())?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// A kubeconfig for `server` with the CA and a client certificate embedded.
    pub fn kubeconfig(&self, server: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: rkube\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: rkube\n  context:\n    cluster: rkube\n    user: {user}\n    namespace: default\ncurrent-context: rkube\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
            ca = b64(&self.ca_cert_pem),
            cert = b64(cert_pem),
            key = b64(key_pem),
        )
    }
}

/// The user a client certificate names: CN is the user, each O a group.
pub fn user_from_cert(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sans = serving_sans("127.0.0.1", None);
        let a = Pki::load_or_create(dir.path(), &sans).unwrap();
        let b = Pki::load_or_create(dir.path(), &sans).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
        a.server_config().unwrap();
        let der = CertificateDer::pem_slice_iter(a.admin_cert_pem.as_bytes()).next().unwrap().unwrap();
        let (user, groups) = user_from_cert(&der).unwrap();
        assert_eq!(user, "admin");
        assert_eq!(groups, vec!["system:masters".to_string()]);
        // New SANs re-issue the serving certificate but keep the CA.
        let c = Pki::load_or_create(dir.path(), &serving_sans("10.1.2.3", None)).unwrap();
        assert_eq!(a.ca_cert_pem, c.ca_cert_pem);
        assert_ne!(a.serving_cert_pem, c.serving_cert_pem);
    }
}
