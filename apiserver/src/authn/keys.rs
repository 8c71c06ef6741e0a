//! The service-account signing key and compact JWS (RFC 7515) signing and
//! verification with it.
//!
//! The key lives in `<dir>/sa.key` (PKCS#8 PEM, or a PKCS#1 `RSA PRIVATE KEY`
//! an operator put there); on first start an ECDSA P-256 key is generated
//! (ES256). An RSA key signs RS256. As upstream, a key's `kid` is the
//! base64url (unpadded) SHA-256 of its DER-encoded PKIX public key, so tokens
//! and the JWKS document name keys the way other Kubernetes tooling expects.

use super::{DEFAULT_ISSUER, b64url, b64url_decode};
use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};
use std::path::Path;

/// File name of the signing key inside the directory given to [`Signer::load_or_create`].
pub const KEY_FILE: &str = "sa.key";

/// A JWS signature algorithm rkube signs and verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
    ES256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
        }
    }
}

/// A public verification key: algorithm, `kid`, and its JWK form.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub alg: Algorithm,
    pub kid: String,
    /// DER `SubjectPublicKeyInfo`.
    pub spki_der: Vec<u8>,
    /// What ring verifies with: the uncompressed EC point, or the PKCS#1 `RSAPublicKey` DER.
    raw: Vec<u8>,
    jwk: Value,
}

impl PublicKey {
    /// The key as a JWK (`use: sig`), as served in `/openid/v1/jwks`.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self.alg {
            Algorithm::ES256 => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.raw).verify(message, sig).is_ok()
            }
            Algorithm::RS256 => {
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.raw).verify(message, sig).is_ok()
            }
        }
    }

    fn ec(point: &[u8]) -> Result<Self, String> {
        if point.len() != 65 || point[0] != 4 {
            return Err("EC public key is not an uncompressed P-256 point".into());
        }
        let mut spki = EC_P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        let kid = key_id(&spki);
        let jwk = json!({
            "use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
            "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
        });
        Ok(Self { alg: Algorithm::ES256, kid, spki_der: spki, raw: point.to_vec(), jwk })
    }

    fn rsa(pkcs1_der: &[u8]) -> Result<Self, String> {
        let (n, e) = parse_rsa_public_key(pkcs1_der).ok_or("malformed RSA public key")?;
        let mut bits = vec![0u8];
        bits.extend_from_slice(pkcs1_der);
        let mut spki = RSA_ALGORITHM_ID.to_vec();
        spki.extend(der_tlv(0x03, &bits));
        let spki = der_tlv(0x30, &spki);
        let kid = key_id(&spki);
        let jwk = json!({
            "use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": b64url(strip_zeros(n)), "e": b64url(strip_zeros(e)),
        });
        Ok(Self { alg: Algorithm::RS256, kid, spki_der: spki, raw: pkcs1_der.to_vec(), jwk })
    }
}

/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits)` header of a P-256 SPKI.
const EC_P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `SEQUENCE { rsaEncryption, NULL }`.
const RSA_ALGORITHM_ID: [u8; 15] =
    [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

/// Upstream's key id: base64url(SHA-256(DER PKIX public key)), unpadded.
pub fn key_id(spki_der: &[u8]) -> String {
    b64url(ring::digest::digest(&ring::digest::SHA256, spki_der).as_ref())
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// One DER element: (tag, content, rest).
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn parse_rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, seq, _) = der_read(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, n, rest) = der_read(seq)?;
    let (t2, e, _) = der_read(rest)?;
    (t1 == 0x02 && t2 == 0x02).then_some((n, e))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len().saturating_sub(1));
    &b[i..]
}

enum PrivateKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// Signs (and verifies) service-account tokens; also knows the issuer and the
/// API audiences tokens are issued for and accepted with.
pub struct Signer {
    key: PrivateKey,
    public: PublicKey,
    /// More keys accepted for verification (`--service-account-key-file`).
    extra_public: Vec<PublicKey>,
    rng: SystemRandom,
    /// `--service-account-issuer`: the first signs, all are accepted.
    issuers: Vec<String>,
    /// `--api-audiences`: defaults to the issuers.
    api_audiences: Vec<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.public.alg)
            .field("kid", &self.public.kid)
            .field("issuers", &self.issuers)
            .field("api_audiences", &self.api_audiences)
            .finish()
    }
}

impl Signer {
    /// Load `<dir>/sa.key`, or generate a P-256 key there (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, String> {
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| "generating the service-account key failed".to_string())?;
                let pem = pem_encode("PRIVATE KEY", pkcs8.as_ref());
                write_private(&path, &pem)?;
                Self::from_pem(&pem)
            }
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// A signer from a PEM private key: PKCS#8 (EC P-256 or RSA) or PKCS#1 RSA.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let mut reader = std::io::BufReader::new(pem.as_bytes());
        let item = loop {
            match rustls_pemfile::read_one(&mut reader) {
                Ok(Some(rustls_pemfile::Item::Pkcs8Key(k))) => break Der::Pkcs8(k.secret_pkcs8_der().to_vec()),
                Ok(Some(rustls_pemfile::Item::Pkcs1Key(k))) => break Der::Pkcs1(k.secret_pkcs1_der().to_vec()),
                Ok(Some(rustls_pemfile::Item::Sec1Key(_))) => {
                    return Err("EC PRIVATE KEY (SEC1) is not supported; use PKCS#8 (BEGIN PRIVATE KEY)".into());
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Err("no private key found in PEM".into()),
                Err(e) => return Err(format!("invalid PEM: {e:?}")),
            }
        };
        let rng = SystemRandom::new();
        let (key, public) = match item {
            Der::Pkcs8(der) => match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng) {
                Ok(k) => {
                    let public = PublicKey::ec(k.public_key().as_ref())?;
                    (PrivateKey::Ec(k), public)
                }
                Err(ec_err) => {
                    let k = RsaKeyPair::from_pkcs8(&der)
                        .map_err(|e| format!("unsupported private key (not P-256: {ec_err}; not RSA: {e})"))?;
                    let public = PublicKey::rsa(k.public().as_ref())?;
                    (PrivateKey::Rsa(k), public)
                }
            },
            Der::Pkcs1(der) => {
                let k = RsaKeyPair::from_der(&der).map_err(|e| format!("invalid RSA key: {e}"))?;
                let public = PublicKey::rsa(k.public().as_ref())?;
                (PrivateKey::Rsa(k), public)
            }
        };
        Ok(Self {
            key,
            public,
            extra_public: Vec::new(),
            rng,
            issuers: vec![DEFAULT_ISSUER.to_string()],
            api_audiences: vec![DEFAULT_ISSUER.to_string()],
        })
    }

    /// Set `--service-account-issuer` (first signs; all verify). Unless audiences
    /// were set explicitly afterwards, the API audiences follow the issuers, as upstream's default.
    pub fn with_issuers(mut self, issuers: Vec<String>) -> Self {
        if !issuers.is_empty() {
            self.api_audiences = issuers.clone();
            self.issuers = issuers;
        }
        self
    }

    /// Set `--api-audiences` (ignored when empty).
    pub fn with_api_audiences(mut self, audiences: Vec<String>) -> Self {
        if !audiences.is_empty() {
            self.api_audiences = audiences;
        }
        self
    }

    /// Accept tokens signed by further keys (PEM `PUBLIC KEY` or a private key whose public half is used).
    pub fn add_verification_keys_pem(&mut self, pem: &str) -> Result<(), String> {
        let mut reader = std::io::BufReader::new(pem.as_bytes());
        let mut added = 0;
        for item in rustls_pemfile::read_all(&mut reader) {
            let item = item.map_err(|e| format!("invalid PEM: {e:?}"))?;
            if let rustls_pemfile::Item::SubjectPublicKeyInfo(spki) = item {
                self.extra_public.push(public_from_spki(spki.as_ref())?);
                added += 1;
            }
        }
        if added == 0 {
            let other = Signer::from_pem(pem).map_err(|e| format!("no public key found: {e}"))?;
            self.extra_public.push(other.public);
        }
        Ok(())
    }

    pub fn issuer(&self) -> &str {
        self.issuers.first().map(String::as_str).unwrap_or(DEFAULT_ISSUER)
    }
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }
    pub fn algorithm(&self) -> Algorithm {
        self.public.alg
    }
    pub fn key_id(&self) -> &str {
        &self.public.kid
    }
    /// The signing key's public half first, then the extra verification keys.
    pub fn public_keys(&self) -> impl Iterator<Item = &PublicKey> {
        std::iter::once(&self.public).chain(self.extra_public.iter())
    }

    /// Sign `claims` as a compact JWS with header `{"alg", "kid"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": self.public.alg.as_str(), "kid": self.public.kid});
        let header = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
        let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let signing_input = format!("{}.{}", b64url(&header), b64url(&payload));
        let sig = match &self.key {
            PrivateKey::Ec(k) => {
                k.sign(&self.rng, signing_input.as_bytes()).map_err(|_| "signing failed".to_string())?.as_ref().to_vec()
            }
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, signing_input.as_bytes(), &mut sig)
                    .map_err(|_| "signing failed".to_string())?;
                sig
            }
        };
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }

    /// Check a compact JWS's signature against our keys; return its payload.
    /// Only signature and structure are checked here, no claims.
    pub fn verify_signature(&self, token: &str) -> Result<Value, String> {
        let (header, payload) = decode_unverified(token)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
        let kid = header.get("kid").and_then(Value::as_str);
        let mut parts = token.rsplitn(2, '.');
        let sig = parts.next().and_then(b64url_decode).ok_or("invalid signature encoding")?;
        let signing_input = parts.next().ok_or("malformed token")?;
        let mut candidates: Vec<&PublicKey> = self.public_keys().filter(|k| k.alg.as_str() == alg).collect();
        if candidates.is_empty() {
            return Err(format!("unsupported signing algorithm {alg:?}"));
        }
        // A matching kid is tried first; as upstream, a kid is a hint, not a filter.
        candidates.sort_by_key(|k| Some(k.kid.as_str()) != kid);
        if candidates.iter().any(|k| k.verify(signing_input.as_bytes(), &sig)) {
            Ok(payload)
        } else {
            Err("invalid signature".into())
        }
    }
}

enum Der {
    Pkcs8(Vec<u8>),
    Pkcs1(Vec<u8>),
}

fn public_from_spki(spki: &[u8]) -> Result<PublicKey, String> {
    if spki.len() == EC_P256_SPKI_PREFIX.len() + 65 && spki.starts_with(&EC_P256_SPKI_PREFIX) {
        return PublicKey::ec(&spki[EC_P256_SPKI_PREFIX.len()..]);
    }
    let (tag, seq, _) = der_read(spki).ok_or("malformed public key")?;
    let (t_alg, _, rest) = der_read(seq).ok_or("malformed public key")?;
    if tag != 0x30 || t_alg != 0x30 || !seq.starts_with(&RSA_ALGORITHM_ID) {
        return Err("unsupported public key type (want RSA or EC P-256)".into());
    }
    let (t_bits, bits, _) = der_read(rest).ok_or("malformed public key")?;
    match bits.split_first() {
        Some((0, pkcs1)) if t_bits == 0x03 => PublicKey::rsa(pkcs1),
        _ => Err("malformed RSA public key".into()),
    }
}

/// Split and decode a compact JWS's header and payload without checking the signature.
pub fn decode_unverified(token: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("token is not a compact JWS (want 3 dot-separated parts)".into());
    }
    let decode = |s: &str, what: &str| -> Result<Value, String> {
        let bytes = b64url_decode(s).ok_or_else(|| format!("invalid {what} encoding"))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| format!("invalid {what} JSON"))?;
        if v.is_object() { Ok(v) } else { Err(format!("{what} is not a JSON object")) }
    };
    Ok((decode(parts[0], "header")?, decode(parts[1], "payload")?))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        f.write_all(contents.as_bytes()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        f.sync_all().map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway 2048-bit RSA key (PKCS#8), generated for these tests only.
    pub(crate) fn rsa_pem() -> String {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(dir.path().join("k.pem"))
            .output();
        match out {
            Ok(o) if o.status.success() => std::fs::read_to_string(dir.path().join("k.pem")).unwrap(),
            _ => String::new(),
        }
    }

    fn openssl(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(input).ok()?;
        let out = child.wait_with_output().ok()?;
        out.status.success().then_some(out.stdout)
    }

    #[test]
    fn signer_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Signer>();
    }

    #[test]
    fn creates_once_then_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(a.algorithm(), Algorithm::ES256);
        let b = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert!(Signer::from_pem("not a key").is_err());
        assert!(Signer::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        let tok = a.sign(&json!({"x": 1})).unwrap();
        assert_eq!(b.verify_signature(&tok).unwrap(), json!({"x": 1}));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn kid_is_sha256_of_pkix_der_like_openssl_computes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(dir.path()).unwrap();
        let pem = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        // openssl's DER SubjectPublicKeyInfo must equal ours, byte for byte.
        let Some(der) = openssl(&["pkey", "-pubout", "-outform", "DER"], &pem) else { return };
        assert_eq!(der, s.public.spki_der);
        assert_eq!(s.key_id(), key_id(&der));
        assert_eq!(s.key_id().len(), 43);
        assert!(!s.key_id().contains('='));
    }

    #[test]
    fn rsa_key_signs_rs256_and_spki_matches_openssl() {
        let pem = rsa_pem();
        if pem.is_empty() {
            return;
        }
        let s = Signer::from_pem(&pem).unwrap();
        assert_eq!(s.algorithm(), Algorithm::RS256);
        let der = openssl(&["pkey", "-pubout", "-outform", "DER"], pem.as_bytes()).unwrap();
        assert_eq!(der, s.public.spki_der);
        assert_eq!(s.public.jwk()["e"], "AQAB");
        let tok = s.sign(&json!({"a": "b"})).unwrap();
        let (h, _) = decode_unverified(&tok).unwrap();
        assert_eq!(h["alg"], "RS256");
        assert_eq!(s.verify_signature(&tok).unwrap()["a"], "b");
    }

    #[test]
    fn tampered_and_foreign_tokens_fail() {
        let dir_a = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir_a.path()).unwrap();
        let mut b = Signer::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let tok = a.sign(&json!({"sub": "x"})).unwrap();
        assert!(b.verify_signature(&tok).is_err());
        let parts: Vec<&str> = tok.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64url(br#"{"sub":"admin"}"#), parts[2]);
        assert_eq!(a.verify_signature(&forged).unwrap_err(), "invalid signature");
        let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), parts[1]);
        assert!(a.verify_signature(&none).is_err());
        assert!(a.verify_signature("abc").is_err());
        assert!(a.verify_signature("a.b.c").is_err());
        // b accepts a's tokens once a's public key (or private key file) is added.
        let key_pem = std::fs::read_to_string(dir_a.path().join(KEY_FILE)).unwrap();
        if let Some(pub_pem) = openssl(&["pkey", "-pubout"], key_pem.as_bytes()) {
            let mut c = Signer::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
            c.add_verification_keys_pem(&String::from_utf8_lossy(&pub_pem)).unwrap();
            assert!(c.verify_signature(&tok).is_ok());
        }
        b.add_verification_keys_pem(&key_pem).unwrap();
        assert!(b.verify_signature(&tok).is_ok());
        assert_eq!(b.public_keys().count(), 2);
    }
}
