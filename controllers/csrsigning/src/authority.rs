//! The certificate authority side of CSR signing (upstream's pkg/controller/certificates/authority
//! and the signer-specific request checks): parsing and verifying a PKCS#10 request, validating the
//! requested usages for a signer, and issuing an X.509 certificate from the cluster CA with
//! upstream's permissive signing policy (subject and SANs from the request, usages from
//! `spec.usages`, every other requested extension dropped, `CA:FALSE`, 5 minutes of backdating,
//! never outliving the CA).

use rcgen::SigningKey;
use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

/// `kubernetes.io/kube-apiserver-client`: client certificates the apiserver honours.
pub const KUBE_APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// Backdating of NotBefore (upstream: 5 minutes, tolerates clock skew).
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Below this TTL a certificate is "short": its NotAfter is not shifted back by the backdate.
pub const SHORT: Duration = Duration::from_secs(8 * 3600);
/// The smallest TTL issued, whatever `spec.expirationSeconds` asks (upstream: 2 × backdate).
pub const MIN_DURATION: Duration = Duration::from_secs(10 * 60);

/// A PKCS#10 request that parsed and whose self-signature verified.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// The DER subject Name, copied as is into the certificate (every RDN, e.g. several O).
    subject_der: Vec<u8>,
    /// Common name of the subject (empty when absent).
    pub common_name: String,
    /// Organizations of the subject, in order.
    pub organizations: Vec<String>,
    /// DNS, e-mail, URI and IP subject alternative names (the kinds upstream copies).
    pub sans: Vec<SanType>,
    /// The DER SubjectPublicKeyInfo.
    spki_der: Vec<u8>,
}

/// Upstream's `ParseCSR`: the first PEM block must be a `CERTIFICATE REQUEST`, which must parse and
/// carry a valid self-signature.
pub fn parse_request(pem_bytes: &[u8]) -> Result<ParsedRequest, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem_bytes).map_err(|_| "PEM block type must be CERTIFICATE REQUEST")?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let (_, req) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| format!("unable to parse certificate request: {e}"))?;
    req.verify_signature().map_err(|e| format!("unable to verify certificate request signature: {e}"))?;
    let info = &req.certification_request_info;

    let mut common_name = String::new();
    let mut organizations = Vec::new();
    for attr in info.subject.iter_common_name() {
        common_name = attr.as_str().unwrap_or_default().to_string();
    }
    for attr in info.subject.iter_organization() {
        organizations.push(attr.as_str().unwrap_or_default().to_string());
    }

    let mut sans = Vec::new();
    if let Some(exts) = req.requested_extensions() {
        for ext in exts {
            let ParsedExtension::SubjectAlternativeName(san) = ext else { continue };
            for name in &san.general_names {
                let ia5 = |s: &str| Ia5String::try_from(s.to_string()).map_err(|e| format!("invalid SAN {s:?}: {e}"));
                match name {
                    GeneralName::DNSName(s) => sans.push(SanType::DnsName(ia5(s)?)),
                    GeneralName::RFC822Name(s) => sans.push(SanType::Rfc822Name(ia5(s)?)),
                    GeneralName::URI(s) => sans.push(SanType::URI(ia5(s)?)),
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).map(IpAddr::from).ok(),
                            16 => <[u8; 16]>::try_from(*b).map(IpAddr::from).ok(),
                            _ => None,
                        };
                        sans.push(SanType::IpAddress(ip.ok_or("invalid IP address SAN")?));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(ParsedRequest {
        subject_der: info.subject.as_raw().to_vec(),
        common_name,
        organizations,
        sans,
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// Upstream's `validAPIServerClientUsages` for `kubernetes.io/kube-apiserver-client`: `client auth`
/// is required, `digital signature` and `key encipherment` are allowed, nothing else.
pub fn validate_kube_apiserver_client_usages(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for u in usages {
        match u.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if !client_auth {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// Upstream's signer `duration`: the configured TTL unless `spec.expirationSeconds` asks for less,
/// never below [`MIN_DURATION`].
pub fn signing_duration(max: Duration, expiration_seconds: Option<i32>) -> Duration {
    let Some(secs) = expiration_seconds else { return max };
    let requested = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    if requested > max {
        max
    } else if requested < MIN_DURATION {
        MIN_DURATION
    } else {
        requested
    }
}

/// Order of Go's `x509.ExtKeyUsage` constants (upstream sorts the extended usages by it).
fn eku_of(usage: &str) -> Option<(u8, ExtendedKeyUsagePurpose)> {
    use ExtendedKeyUsagePurpose as E;
    Some(match usage {
        "any" => (0, E::Any),
        "server auth" => (1, E::ServerAuth),
        "client auth" => (2, E::ClientAuth),
        "code signing" => (3, E::CodeSigning),
        "email protection" | "s/mime" => (4, E::EmailProtection),
        "ipsec end system" => (5, E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5])),
        "ipsec tunnel" => (6, E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6])),
        "ipsec user" => (7, E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7])),
        "timestamping" => (8, E::TimeStamping),
        "ocsp signing" => (9, E::OcspSigning),
        "microsoft sgc" => (10, E::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
        "netscape sgc" => (11, E::Other(vec![2, 16, 840, 1, 113730, 4, 1])),
        _ => return None,
    })
}

fn ku_of(usage: &str) -> Option<KeyUsagePurpose> {
    use KeyUsagePurpose as K;
    Some(match usage {
        "signing" | "digital signature" => K::DigitalSignature,
        "content commitment" => K::ContentCommitment,
        "key encipherment" => K::KeyEncipherment,
        "key agreement" => K::KeyAgreement,
        "data encipherment" => K::DataEncipherment,
        "cert sign" => K::KeyCertSign,
        "crl sign" => K::CrlSign,
        "encipher only" => K::EncipherOnly,
        "decipher only" => K::DecipherOnly,
        _ => return None,
    })
}

/// Upstream's `keyUsagesFromStrings`: key usages and (sorted, deduplicated) extended key usages.
pub fn key_usages(usages: &[String]) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), String> {
    let mut ku: Vec<KeyUsagePurpose> = Vec::new();
    let mut eku: Vec<(u8, ExtendedKeyUsagePurpose)> = Vec::new();
    let mut unrecognized = Vec::new();
    for u in usages {
        if let Some(k) = ku_of(u) {
            if !ku.contains(&k) {
                ku.push(k);
            }
        } else if let Some(e) = eku_of(u) {
            if !eku.iter().any(|(o, _)| *o == e.0) {
                eku.push(e);
            }
        } else {
            unrecognized.push(format!("{u:?}"));
        }
    }
    if !unrecognized.is_empty() {
        return Err(format!("unrecognized usage values: [{}]", unrecognized.join(" ")));
    }
    eku.sort_by_key(|(o, _)| *o);
    Ok((ku, eku.into_iter().map(|(_, e)| e).collect()))
}

/// The cluster signing CA: certificate subject, key, and expiry.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the CA from its PEM certificate and PEM (PKCS#8) private key.
    pub fn new(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Self, String> {
        let key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("invalid CA private key: {e}"))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(ca_cert_pem.as_bytes())
            .map_err(|e| format!("invalid CA certificate: {e}"))?;
        let cert = pem.parse_x509().map_err(|e| format!("invalid CA certificate: {e}"))?;
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| format!("invalid CA certificate: {e}"))?;
        Ok(Self { issuer, not_after })
    }

    /// Upstream's `CertificateAuthority.Sign` with a `PermissiveSigningPolicy`: issues a PEM
    /// certificate for `req` valid for `ttl` from `now` (backdated by [`BACKDATE`]).
    pub fn sign(
        &self,
        req: &ParsedRequest,
        usages: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<String, String> {
        let (ku, eku) = key_usages(usages)?;
        let mut params = CertificateParams::default();
        // rcgen keeps one value per attribute type, so the certificate is made with a placeholder
        // subject which is then replaced by the request's own (see `with_subject`).
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, PLACEHOLDER_CN);
        params.subject_alt_names = req.sans.clone();
        params.key_usages = ku;
        params.extended_key_usages = eku;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let mut serial: [u8; 16] = rand::random();
        serial[0] &= 0x7f;
        if serial[0] == 0 {
            serial[0] = 1;
        }
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = now - BACKDATE;
        params.not_after = if ttl < SHORT { now + ttl } else { params.not_before + ttl };
        if params.not_after >= self.not_after {
            params.not_after = self.not_after;
        }
        if params.not_before >= self.not_after {
            return Err(format!("the signer has expired: NotAfter={}", self.not_after));
        }
        if now >= self.not_after {
            return Err(format!(
                "refusing to sign a certificate that expired in the past: NotAfter={}",
                self.not_after
            ));
        }
        let spki = SubjectPublicKeyInfo::from_der(&req.spki_der).map_err(|e| format!("unsupported public key: {e}"))?;
        let cert = params.signed_by(&spki, &self.issuer).map_err(|e| format!("failed to sign certificate: {e}"))?;
        let der = self.with_subject(cert.der(), &req.subject_der)?;
        Ok(pem_encode("CERTIFICATE", &der))
    }

    /// Re-issues `cert` (made by rcgen with the placeholder subject) with `subject` (a DER Name)
    /// instead, signing the new TBSCertificate with the CA key and the same algorithm.
    fn with_subject(&self, cert: &[u8], subject: &[u8]) -> Result<Vec<u8>, String> {
        let (_, parsed) = X509Certificate::from_der(cert).map_err(|e| format!("failed to sign certificate: {e}"))?;
        let placeholder = parsed.tbs_certificate.subject.as_raw();
        replace_subject_and_resign(cert, placeholder, subject, self.issuer.key())
            .ok_or_else(|| "failed to sign certificate: malformed certificate".to_string())
    }
}

/// For a signed DER structure `SEQUENCE { body, AlgorithmIdentifier, BIT STRING }` (a certificate
/// or a PKCS#10 request): replaces the last occurrence of `placeholder` inside `body` by `subject`
/// and signs the new body with `key`, keeping the algorithm identifier.
fn replace_subject_and_resign(
    signed: &[u8],
    placeholder: &[u8],
    subject: &[u8],
    key: &impl SigningKey,
) -> Option<Vec<u8>> {
    let (_, outer) = split_der(signed)?;
    let (body_hdr, body_content) = split_der(outer)?;
    let body_len = body_hdr + body_content.len();
    let rest = outer.get(body_len..)?;
    let (alg_hdr, alg_content) = split_der(rest)?;
    let alg_der = rest.get(..alg_hdr + alg_content.len())?;
    let pos = body_content.windows(placeholder.len()).rposition(|w| w == placeholder)?;
    let mut new_content = Vec::with_capacity(body_content.len() + subject.len());
    new_content.extend_from_slice(&body_content[..pos]);
    new_content.extend_from_slice(subject);
    new_content.extend_from_slice(&body_content[pos + placeholder.len()..]);
    let new_body = der_tlv(0x30, &new_content);
    let signature = key.sign(&new_body).ok()?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&signature);
    let mut out = new_body;
    out.extend_from_slice(alg_der);
    out.extend_from_slice(&der_tlv(0x03, &bits));
    Some(der_tlv(0x30, &out))
}

/// Common name of the temporary subject rcgen signs before the real one is put in place.
const PLACEHOLDER_CN: &str = "rkube-csrsigning-placeholder-subject";

/// Splits one DER TLV into (header length, content).
fn split_der(der: &[u8]) -> Option<(usize, &[u8])> {
    let first = *der.get(1)?;
    let (hdr, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (2 + n, len)
    };
    Some((hdr, der.get(hdr..hdr.checked_add(len)?)?))
}

/// Encodes one DER TLV.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// PEM armour (64-column base64).
fn pem_encode(label: &str, der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for c in der.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                b64.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (String, String) {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "test-ca");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        p.not_before = OffsetDateTime::now_utc() - Duration::from_secs(3600);
        p.not_after = OffsetDateTime::now_utc() + Duration::from_secs(2 * 365 * 86400);
        let cert = p.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        (cert.pem(), key.serialize_pem())
    }

    /// A DER Name with one RDN per attribute (CN first, then each O), like Go's pkix.Name.
    pub(crate) fn name_der(cn: &str, orgs: &[&str]) -> Vec<u8> {
        let atv = |oid_last: u8, v: &str| {
            let mut seq = der_tlv(0x06, &[0x55, 0x04, oid_last]);
            seq.extend_from_slice(&der_tlv(0x0c, v.as_bytes()));
            der_tlv(0x31, &der_tlv(0x30, &seq))
        };
        let mut rdns = atv(0x03, cn);
        for o in orgs {
            rdns.extend_from_slice(&atv(0x0a, o));
        }
        der_tlv(0x30, &rdns)
    }

    /// A PEM PKCS#10 request for CN=`cn`, O=each of `orgs`, with the given SANs, and its key.
    pub(crate) fn request_with_key(cn: &str, orgs: &[&str], sans: &[&str]) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"));
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, PLACEHOLDER_CN);
        let csr = p.serialize_request(&key).unwrap_or_else(|e| panic!("{e}"));
        let (_, parsed) = X509CertificationRequest::from_der(csr.der()).unwrap_or_else(|e| panic!("{e}"));
        let placeholder = parsed.certification_request_info.subject.as_raw();
        let der = replace_subject_and_resign(csr.der(), placeholder, &name_der(cn, orgs), &key)
            .unwrap_or_else(|| panic!("resign"));
        (pem_encode("CERTIFICATE REQUEST", &der), key)
    }

    fn request(cn: &str, orgs: &[&str], sans: &[&str]) -> String {
        request_with_key(cn, orgs, sans).0
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_subject_and_sans_and_rejects_garbage() {
        let r = parse_request(request("jane", &["dev", "ops"], &["a.example", "10.0.0.1"]).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.common_name, "jane");
        assert_eq!(r.organizations, vec!["dev", "ops"]);
        assert_eq!(r.sans.len(), 2);
        assert!(parse_request(b"not pem").is_err());
        let (ca_pem, _) = ca();
        assert_eq!(
            parse_request(ca_pem.as_bytes()).err().as_deref(),
            Some("PEM block type must be CERTIFICATE REQUEST")
        );
    }

    #[test]
    fn tampered_request_fails_signature_check() {
        let pem = request("jane", &[], &[]);
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut der = block.contents.clone();
        // Flip a bit inside the subject CN ("jane").
        let pos = der.windows(4).position(|w| w == b"jane").unwrap_or_else(|| panic!("no CN"));
        der[pos] ^= 1;
        let tampered = pem_encode("CERTIFICATE REQUEST", &der);
        let err = parse_request(tampered.as_bytes()).err().unwrap_or_default();
        assert!(err.contains("signature"), "{err}");
    }

    #[test]
    fn kube_apiserver_client_usages_follow_upstream() {
        assert!(validate_kube_apiserver_client_usages(&s(&["client auth"])).is_ok());
        assert!(
            validate_kube_apiserver_client_usages(&s(&["digital signature", "key encipherment", "client auth"]))
                .is_ok()
        );
        assert_eq!(
            validate_kube_apiserver_client_usages(&s(&["client auth", "server auth"])).err().as_deref(),
            Some("invalid usage for client certificate: server auth")
        );
        assert_eq!(
            validate_kube_apiserver_client_usages(&s(&["digital signature"])).err().as_deref(),
            Some("missing required usage for client certificate: client auth")
        );
        assert!(validate_kube_apiserver_client_usages(&[]).is_err());
    }

    #[test]
    fn duration_is_capped_and_floored() {
        let year = Duration::from_secs(365 * 86400);
        assert_eq!(signing_duration(year, None), year);
        assert_eq!(signing_duration(year, Some(3600)), Duration::from_secs(3600));
        assert_eq!(signing_duration(year, Some(60)), MIN_DURATION);
        assert_eq!(signing_duration(year, Some(i32::MAX)), year);
        assert_eq!(signing_duration(year, Some(-5)), MIN_DURATION);
    }

    #[test]
    fn usages_map_and_sort_like_go() {
        let (ku, eku) = key_usages(&s(&["client auth", "server auth", "digital signature", "signing"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ku, vec![KeyUsagePurpose::DigitalSignature]);
        assert_eq!(eku, vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]);
        assert_eq!(key_usages(&s(&["bogus"])).err().as_deref(), Some("unrecognized usage values: [\"bogus\"]"));
    }

    #[test]
    fn signs_with_subject_usages_and_validity() {
        let (ca_pem, ca_key) = ca();
        let auth = Authority::new(&ca_pem, &ca_key).unwrap_or_else(|e| panic!("{e}"));
        let req = parse_request(request("jane", &["dev", "ops"], &["jane.example"]).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let now = OffsetDateTime::now_utc();
        let pem = auth
            .sign(&req, &s(&["digital signature", "client auth"]), Duration::from_secs(3600), now)
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(block.label, "CERTIFICATE");
        let (_, cert) = X509Certificate::from_der(&block.contents).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cert.issuer().to_string(), "CN=test-ca");
        let cn: Vec<_> = cert.subject().iter_common_name().filter_map(|a| a.as_str().ok()).collect();
        let o: Vec<_> = cert.subject().iter_organization().filter_map(|a| a.as_str().ok()).collect();
        assert_eq!(cn, vec!["jane"]);
        assert_eq!(o, vec!["dev", "ops"]);
        let eku = cert.extended_key_usage().ok().flatten().map(|e| (e.value.client_auth, e.value.server_auth));
        assert_eq!(eku, Some((true, false)));
        let ku = cert.key_usage().ok().flatten().map(|k| (k.value.digital_signature(), k.value.key_encipherment()));
        assert_eq!(ku, Some((true, false)));
        assert_eq!(cert.basic_constraints().ok().flatten().map(|b| b.value.ca), Some(false));
        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        assert_eq!(nb, (now - BACKDATE).unix_timestamp());
        // Short-lived: NotAfter is now + ttl, not backdated.
        assert_eq!(na, (now + Duration::from_secs(3600)).unix_timestamp());
        // Verifies against the CA key.
        let (_, cab) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let ca_cert = cab.parse_x509().unwrap_or_else(|e| panic!("{e}"));
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
        // A long-lived one is capped at the CA's NotAfter.
        let pem = auth
            .sign(&req, &s(&["client auth"]), Duration::from_secs(10 * 365 * 86400), now)
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let (_, cert) = X509Certificate::from_der(&block.contents).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cert.validity().not_after.timestamp(), ca_cert.validity().not_after.timestamp());
    }
}
