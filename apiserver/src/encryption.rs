//! Encryption of stored values at rest: upstream's `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`, `--encryption-provider-config`).
//!
//! A configuration lists resource selectors (`secrets`, `deployments.apps`,
//! `*.apps`, `*.` for every core resource, `*.*` for everything), each with an
//! ordered list of providers: `aesgcm`, `aescbc`, `secretbox` (each with named
//! keys) and `identity`. The first rule whose selectors match a resource decides
//! its providers; the first key of the first provider encrypts every write, and
//! every configured key can decrypt.
//!
//! Stored values use upstream's layout, `k8s:enc:<provider>:v1:<key name>:`
//! followed by the provider's bytes:
//! - `aesgcm`: 12-byte random nonce, then ciphertext and 16-byte tag; the full
//!   storage key (`/registry/secrets/ns/name`) is the additional authenticated
//!   data, so a value copied to another key does not decrypt;
//! - `aescbc`: 16-byte random IV, then the PKCS#7-padded ciphertext;
//! - `secretbox` (XSalsa20-Poly1305): 24-byte random nonce, then tag and ciphertext;
//! - `identity`: the plain bytes, without prefix.
//!
//! Reading tries the providers in order by prefix; a value not written with the
//! first provider's first key is reported stale so the caller can rewrite it
//! (key rotation, migrating to or from encryption).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use rand::RngCore as _;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

/// The prefix reserved for encrypted values.
const ENC_PREFIX: &str = "k8s:enc:";

/// The transformers for every storage key, built from an `EncryptionConfiguration`.
pub struct Transformers {
    rules: Vec<Rule>,
    /// Storage groups (`apps`, `batch`, `rbac.authorization.k8s.io`, ...) that
    /// appear as the first key segment after `/registry/`.
    groups: BTreeSet<String>,
}

impl std::fmt::Debug for Transformers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Transformers").field("rules", &self.rules.len()).finish()
    }
}

struct Rule {
    selectors: Vec<Selector>,
    /// Every (prefix, cipher) in configuration order; identity has an empty prefix.
    providers: Vec<Provider>,
}

/// One entry of a rule's `resources`.
#[derive(Debug, Clone, PartialEq)]
enum Selector {
    /// `*.*`
    All,
    /// `*.<group>`; `*.` is the core group.
    Group(String),
    /// `<resource>` (core) or `<resource>.<group>`.
    Exact { group: String, resource: String },
}

impl Selector {
    fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("resources: an entry is empty".into());
        }
        if s != s.to_ascii_lowercase() {
            return Err(format!("resources: {s:?} must be lowercase"));
        }
        if s == "*" {
            return Err("resources: \"*\" is not allowed; use \"*.\" for all core resources or \"*.*\" for all".into());
        }
        if s == "*.*" {
            return Ok(Selector::All);
        }
        if let Some(group) = s.strip_prefix("*.") {
            return Ok(Selector::Group(group.to_string()));
        }
        if s.contains('*') {
            return Err(format!("resources: {s:?}: a wildcard may only be \"*.<group>\" or \"*.*\""));
        }
        match s.split_once('.') {
            Some((resource, group)) => Ok(Selector::Exact { group: group.into(), resource: resource.into() }),
            None => Ok(Selector::Exact { group: String::new(), resource: s.into() }),
        }
    }

    fn matches(&self, group: &str, resource: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Group(g) => g == group,
            Selector::Exact { group: g, resource: r } => g == group && r == resource,
        }
    }
}

struct Provider {
    /// `k8s:enc:aesgcm:v1:<name>:`; empty for identity.
    prefix: Vec<u8>,
    cipher: Cipher,
}

enum Cipher {
    Identity,
    Gcm128(Box<aes_gcm::Aes128Gcm>),
    Gcm192(Box<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>),
    Gcm256(Box<aes_gcm::Aes256Gcm>),
    Cbc([u8; 32]),
    SecretBox(Box<crypto_secretbox::XSalsa20Poly1305>),
}

impl Cipher {
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut rng = rand::rng();
        match self {
            Cipher::Identity => plain.to_vec(),
            Cipher::Gcm128(_) | Cipher::Gcm192(_) | Cipher::Gcm256(_) => {
                let mut nonce = [0u8; 12];
                rng.fill_bytes(&mut nonce);
                let payload = Payload { msg: plain, aad };
                let n = aes_gcm::Nonce::from_slice(&nonce);
                let sealed = match self {
                    Cipher::Gcm128(c) => c.encrypt(n, payload),
                    Cipher::Gcm192(c) => c.encrypt(n, payload),
                    Cipher::Gcm256(c) => c.encrypt(n, payload),
                    _ => unreachable_cipher(),
                };
                // Encryption in memory fails only on absurd lengths (> 64 GiB).
                let sealed = sealed.unwrap_or_default();
                let mut out = Vec::with_capacity(12 + sealed.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                out
            }
            Cipher::Cbc(key) => {
                let mut iv = [0u8; 16];
                rng.fill_bytes(&mut iv);
                let enc = cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into());
                let sealed = enc.encrypt_padded_vec_mut::<Pkcs7>(plain);
                let mut out = Vec::with_capacity(16 + sealed.len());
                out.extend_from_slice(&iv);
                out.extend_from_slice(&sealed);
                out
            }
            Cipher::SecretBox(c) => {
                let mut nonce = [0u8; 24];
                rng.fill_bytes(&mut nonce);
                let sealed = c.encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plain).unwrap_or_default();
                let mut out = Vec::with_capacity(24 + sealed.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                out
            }
        }
    }

    fn open(&self, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Cipher::Identity => {
                if data.starts_with(ENC_PREFIX.as_bytes()) {
                    return Err("identity transformer tried to read encrypted data".into());
                }
                Ok(data.to_vec())
            }
            Cipher::Gcm128(_) | Cipher::Gcm192(_) | Cipher::Gcm256(_) => {
                if data.len() < 12 {
                    return Err("the stored data was shorter than the required size".into());
                }
                let (nonce, rest) = data.split_at(12);
                let n = aes_gcm::Nonce::from_slice(nonce);
                let payload = Payload { msg: rest, aad };
                let r = match self {
                    Cipher::Gcm128(c) => c.decrypt(n, payload),
                    Cipher::Gcm192(c) => c.decrypt(n, payload),
                    Cipher::Gcm256(c) => c.decrypt(n, payload),
                    _ => unreachable_cipher(),
                };
                r.map_err(|_| "aesgcm: message authentication failed".to_string())
            }
            Cipher::Cbc(key) => {
                if data.len() < 16 {
                    return Err("the stored data was shorter than the required size".into());
                }
                let (iv, rest) = data.split_at(16);
                if rest.is_empty() || rest.len() % 16 != 0 {
                    return Err("the stored data is not a multiple of the block size".into());
                }
                let mut iv_arr = [0u8; 16];
                iv_arr.copy_from_slice(iv);
                let dec = cbc::Decryptor::<aes::Aes256>::new(key.into(), &iv_arr.into());
                dec.decrypt_padded_vec_mut::<Pkcs7>(rest).map_err(|_| "aescbc: invalid PKCS7 padding".to_string())
            }
            Cipher::SecretBox(c) => {
                if data.len() < 24 {
                    return Err("the stored data was shorter than the required size".into());
                }
                let (nonce, rest) = data.split_at(24);
                c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), rest)
                    .map_err(|_| "secretbox: message authentication failed".to_string())
            }
        }
    }
}

/// The inner matches above only see the AES-GCM variants.
fn unreachable_cipher() -> Result<Vec<u8>, aes_gcm::aead::Error> {
    Err(aes_gcm::aead::Error)
}

// ---- the configuration file ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderConfig {
    aesgcm: Option<KeysConfig>,
    aescbc: Option<KeysConfig>,
    secretbox: Option<KeysConfig>,
    identity: Option<serde_yaml::Value>,
    kms: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

fn decode_secret(kind: &str, k: &KeyConfig, sizes: &[usize]) -> Result<Vec<u8>, String> {
    if k.name.is_empty() {
        return Err(format!("{kind}: a key has no name"));
    }
    if k.secret.is_empty() {
        return Err(format!("{kind}: key {:?} has no secret", k.name));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(k.secret.trim())
        .map_err(|e| format!("{kind}: key {:?}: secret is not valid base64: {e}", k.name))?;
    if !sizes.contains(&raw.len()) {
        return Err(format!(
            "{kind}: key {:?}: secret is not of the expected length, got {}, expected one of {sizes:?}",
            k.name,
            raw.len()
        ));
    }
    Ok(raw)
}

fn build_providers(cfg: &ProviderConfig) -> Result<Vec<Provider>, String> {
    let set = [
        cfg.aesgcm.is_some(),
        cfg.aescbc.is_some(),
        cfg.secretbox.is_some(),
        cfg.identity.is_some(),
        cfg.kms.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(format!("providers: each entry must name exactly one provider, found {set}"));
    }
    if cfg.kms.is_some() {
        return Err("providers: kms is not supported".into());
    }
    if cfg.identity.is_some() {
        return Ok(vec![Provider { prefix: Vec::new(), cipher: Cipher::Identity }]);
    }
    let (kind, keys) = if let Some(k) = &cfg.aesgcm {
        ("aesgcm", k)
    } else if let Some(k) = &cfg.aescbc {
        ("aescbc", k)
    } else if let Some(k) = &cfg.secretbox {
        ("secretbox", k)
    } else {
        return Err("providers: no provider named".into());
    };
    if keys.keys.is_empty() {
        return Err(format!("{kind}: keys: at least one key is required"));
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for k in &keys.keys {
        if !names.insert(k.name.as_str()) {
            return Err(format!("{kind}: key name {:?} is used more than once", k.name));
        }
        if k.name.contains(':') {
            return Err(format!("{kind}: key name {:?} must not contain ':'", k.name));
        }
        let cipher = match kind {
            "aesgcm" => {
                let raw = decode_secret(kind, k, &[16, 24, 32])?;
                let err = |_| format!("{kind}: key {:?}: invalid key", k.name);
                match raw.len() {
                    16 => Cipher::Gcm128(Box::new(aes_gcm::Aes128Gcm::new_from_slice(&raw).map_err(err)?)),
                    24 => Cipher::Gcm192(Box::new(
                        aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(&raw)
                            .map_err(err)?,
                    )),
                    _ => Cipher::Gcm256(Box::new(aes_gcm::Aes256Gcm::new_from_slice(&raw).map_err(err)?)),
                }
            }
            "aescbc" => {
                let raw = decode_secret(kind, k, &[32])?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&raw);
                Cipher::Cbc(key)
            }
            _ => {
                let raw = decode_secret(kind, k, &[32])?;
                let c = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&raw)
                    .map_err(|_| format!("{kind}: key {:?}: invalid key", k.name))?;
                Cipher::SecretBox(Box::new(c))
            }
        };
        out.push(Provider { prefix: format!("{ENC_PREFIX}{kind}:v1:{}:", k.name).into_bytes(), cipher });
    }
    Ok(out)
}

impl Transformers {
    /// Read and validate an `EncryptionConfiguration` file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and validate an `EncryptionConfiguration` document (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: ConfigFile =
            serde_yaml::from_str(text).map_err(|e| format!("invalid EncryptionConfiguration: {e}"))?;
        if cfg.kind != "EncryptionConfiguration" {
            return Err(format!("kind must be EncryptionConfiguration, got {:?}", cfg.kind));
        }
        if !matches!(cfg.api_version.as_str(), "apiserver.config.k8s.io/v1" | "apiserver.config.k8s.io/v1beta1") {
            return Err(format!("apiVersion must be apiserver.config.k8s.io/v1, got {:?}", cfg.api_version));
        }
        if cfg.resources.is_empty() {
            return Err("resources: at least one entry is required".into());
        }
        let mut rules = Vec::new();
        for (i, rc) in cfg.resources.iter().enumerate() {
            if rc.resources.is_empty() {
                return Err(format!("resources[{i}].resources: at least one resource is required"));
            }
            if rc.providers.is_empty() {
                return Err(format!("resources[{i}].providers: at least one provider is required"));
            }
            let selectors = rc
                .resources
                .iter()
                .map(|s| Selector::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("resources[{i}].{e}"))?;
            let mut providers = Vec::new();
            for p in &rc.providers {
                providers.extend(build_providers(p).map_err(|e| format!("resources[{i}].{e}"))?);
            }
            rules.push(Rule { selectors, providers });
        }
        let groups = rkube_registry::resources::all()
            .iter()
            .filter(|r| !r.storage_group.is_empty())
            .map(|r| r.storage_group.to_string())
            .collect();
        Ok(Transformers { rules, groups })
    }

    /// The (group, resource) a storage key belongs to: `/registry/secrets/ns/x`
    /// is ("", "secrets"), `/registry/apps/deployments/ns/x` ("apps",
    /// "deployments"), a custom resource's `/registry/<group>/<plural>/...`
    /// (group, plural). None outside `/registry/`.
    fn group_resource<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = key.strip_prefix("/registry/")?;
        let mut segs = rest.split('/');
        let first = segs.next().filter(|s| !s.is_empty())?;
        if self.groups.contains(first) || first.contains('.') {
            let resource = segs.next().filter(|s| !s.is_empty())?;
            Some((first, resource))
        } else {
            Some(("", first))
        }
    }

    /// The providers for a storage key; None when no rule covers it (identity).
    fn providers_for(&self, key: &str) -> Option<&[Provider]> {
        let (group, resource) = self.group_resource(key)?;
        self.rules
            .iter()
            .find(|r| r.selectors.iter().any(|s| s.matches(group, resource)))
            .map(|r| r.providers.as_slice())
    }

    /// Whether values under this storage key are encrypted on write (the rule
    /// covering it starts with a provider other than identity).
    pub fn encrypts(&self, key: &str) -> bool {
        self.providers_for(key).and_then(|p| p.first()).is_some_and(|p| !p.prefix.is_empty())
    }

    /// Encrypt `plain` for the storage key (the resource is derived from the key `/registry/secrets/...`).
    pub fn encrypt(&self, key: &str, plain: &[u8]) -> Vec<u8> {
        let Some(first) = self.providers_for(key).and_then(|p| p.first()) else {
            return plain.to_vec();
        };
        let sealed = first.cipher.seal(key.as_bytes(), plain);
        let mut out = Vec::with_capacity(first.prefix.len() + sealed.len());
        out.extend_from_slice(&first.prefix);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypt whatever is stored (any configured provider; plain JSON passes through as identity);
    /// returns (plain, stale) where stale = not written by the first provider (key rotation: rewrite it).
    ///
    /// As upstream, unencrypted data under a covered resource reads only when
    /// `identity` is among that rule's providers; encrypted data under a key no
    /// rule covers is an error.
    pub fn decrypt(&self, key: &str, stored: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let Some(providers) = self.providers_for(key) else {
            return Cipher::Identity.open(&[], stored).map(|p| (p, false));
        };
        let mut errors = Vec::new();
        for (i, p) in providers.iter().enumerate() {
            if !stored.starts_with(&p.prefix) {
                continue;
            }
            match p.cipher.open(key.as_bytes(), &stored[p.prefix.len()..]) {
                Ok(plain) => return Ok((plain, i != 0)),
                // Identity refusing encrypted data lets a later provider try
                // (migrating away from encryption puts identity first).
                Err(e) if p.prefix.is_empty() => errors.push(e),
                Err(e) => return Err(format!("{key}: {e}")),
            }
        }
        if errors.is_empty() {
            Err(format!("{key}: no matching prefix found"))
        } else {
            Err(format!("{key}: {}", errors.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluaywgeWVzISE="; // 32 bytes
    const K2: &str = "dGhpcyBpcyBwYXNzd29yZCBudW1iZXIgdHdvIC4uLiE="; // 32 bytes

    fn cfg(resources: &str, providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: {resources}\n  providers:\n{providers}"
        )
    }

    fn keyed(kind: &str, keys: &[(&str, &str)]) -> String {
        let mut s = format!("  - {kind}:\n      keys:\n");
        for (n, k) in keys {
            s.push_str(&format!("      - name: {n}\n        secret: {k}\n"));
        }
        s
    }

    const SECRET_KEY: &str = "/registry/secrets/default/db-pass";
    const PLAIN: &[u8] = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="},"stringData":"TOPSECRETVALUE"}"#;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trip_each_provider() {
        for kind in ["aesgcm", "aescbc", "secretbox"] {
            let t = Transformers::parse(&cfg("[secrets]", &keyed(kind, &[("key1", K1)]))).unwrap();
            let stored = t.encrypt(SECRET_KEY, PLAIN);
            let prefix = format!("k8s:enc:{kind}:v1:key1:");
            assert!(stored.starts_with(prefix.as_bytes()), "{kind}");
            assert!(!contains(&stored, b"TOPSECRETVALUE"), "{kind}: plaintext visible");
            assert!(!contains(&stored, b"Secret"), "{kind}: plaintext visible");
            let body = &stored[prefix.len()..];
            match kind {
                "aesgcm" => assert_eq!(body.len(), 12 + PLAIN.len() + 16),
                "aescbc" => assert_eq!(body.len(), 16 + (PLAIN.len() / 16 + 1) * 16),
                _ => assert_eq!(body.len(), 24 + 16 + PLAIN.len()),
            }
            // Random nonces: two encryptions differ.
            assert_ne!(stored, t.encrypt(SECRET_KEY, PLAIN), "{kind}");
            assert_eq!(t.decrypt(SECRET_KEY, &stored).unwrap(), (PLAIN.to_vec(), false), "{kind}");
            assert!(t.encrypts(SECRET_KEY));
        }
    }

    #[test]
    fn aes_key_sizes() {
        let k16 = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let k24 = base64::engine::general_purpose::STANDARD.encode([7u8; 24]);
        for k in [&k16, &k24] {
            let t = Transformers::parse(&cfg("[secrets]", &keyed("aesgcm", &[("k", k)]))).unwrap();
            let s = t.encrypt(SECRET_KEY, PLAIN);
            assert_eq!(t.decrypt(SECRET_KEY, &s).unwrap().0, PLAIN);
        }
        // aescbc and secretbox take 32-byte keys only.
        assert!(Transformers::parse(&cfg("[secrets]", &keyed("aescbc", &[("k", &k16)]))).is_err());
        assert!(Transformers::parse(&cfg("[secrets]", &keyed("secretbox", &[("k", &k24)]))).is_err());
        assert!(Transformers::parse(&cfg("[secrets]", &keyed("aesgcm", &[("k", "bm9wZQ==")]))).is_err());
        assert!(Transformers::parse(&cfg("[secrets]", &keyed("aesgcm", &[("k", "!!notbase64")]))).is_err());
    }

    #[test]
    fn aesgcm_binds_the_storage_key() {
        let t = Transformers::parse(&cfg("[secrets]", &keyed("aesgcm", &[("key1", K1)]))).unwrap();
        let stored = t.encrypt(SECRET_KEY, PLAIN);
        let err = t.decrypt("/registry/secrets/default/other", &stored).unwrap_err();
        assert!(err.contains("authentication"), "{err}");
        // aescbc has no authenticated data: a copied value still decrypts (as upstream).
        let t = Transformers::parse(&cfg("[secrets]", &keyed("aescbc", &[("key1", K1)]))).unwrap();
        let stored = t.encrypt(SECRET_KEY, PLAIN);
        assert_eq!(t.decrypt("/registry/secrets/default/other", &stored).unwrap().0, PLAIN);
    }

    #[test]
    fn tampering_and_truncation_fail() {
        for kind in ["aesgcm", "secretbox"] {
            let t = Transformers::parse(&cfg("[secrets]", &keyed(kind, &[("key1", K1)]))).unwrap();
            let mut stored = t.encrypt(SECRET_KEY, PLAIN);
            let last = stored.len() - 1;
            stored[last] ^= 1;
            assert!(t.decrypt(SECRET_KEY, &stored).is_err(), "{kind}");
            let prefix_len = format!("k8s:enc:{kind}:v1:key1:").len();
            assert!(t.decrypt(SECRET_KEY, &stored[..prefix_len + 5]).is_err(), "{kind}");
        }
        let t = Transformers::parse(&cfg("[secrets]", &keyed("aescbc", &[("key1", K1)]))).unwrap();
        let stored = t.encrypt(SECRET_KEY, PLAIN);
        assert!(t.decrypt(SECRET_KEY, &stored[..stored.len() - 3]).is_err());
    }

    #[test]
    fn wrong_key_fails() {
        for kind in ["aesgcm", "aescbc", "secretbox"] {
            let a = Transformers::parse(&cfg("[secrets]", &keyed(kind, &[("key1", K1)]))).unwrap();
            // Same key name, different secret.
            let b = Transformers::parse(&cfg("[secrets]", &keyed(kind, &[("key1", K2)]))).unwrap();
            let stored = a.encrypt(SECRET_KEY, PLAIN);
            match b.decrypt(SECRET_KEY, &stored) {
                Err(_) => {}
                // CBC without a MAC can, rarely, unpad garbage: it must not be the plaintext.
                Ok((p, _)) => assert!(kind == "aescbc" && p != PLAIN, "{kind} decrypted with the wrong key"),
            }
            // Different key name: no matching prefix.
            let c = Transformers::parse(&cfg("[secrets]", &keyed(kind, &[("key2", K1)]))).unwrap();
            let err = c.decrypt(SECRET_KEY, &stored).unwrap_err();
            assert!(err.contains("no matching prefix"), "{err}");
        }
    }

    #[test]
    fn rotation_old_key_decrypts_and_is_stale() {
        let old = Transformers::parse(&cfg("[secrets]", &keyed("aescbc", &[("key1", K1)]))).unwrap();
        let stored_old = old.encrypt(SECRET_KEY, PLAIN);
        // New primary key first, old key kept for reading, then a provider switch.
        let providers =
            format!("{}{}", keyed("aesgcm", &[("key2", K2), ("key1", K1)]), keyed("aescbc", &[("key1", K1)]));
        let new = Transformers::parse(&cfg("[secrets]", &providers)).unwrap();
        assert_eq!(new.decrypt(SECRET_KEY, &stored_old).unwrap(), (PLAIN.to_vec(), true));
        let rewritten = new.encrypt(SECRET_KEY, PLAIN);
        assert!(rewritten.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        assert_eq!(new.decrypt(SECRET_KEY, &rewritten).unwrap(), (PLAIN.to_vec(), false));
        // A value under the second key of the first provider is stale too.
        let gcm_old = Transformers::parse(&cfg("[secrets]", &keyed("aesgcm", &[("key1", K1)]))).unwrap();
        let s = gcm_old.encrypt(SECRET_KEY, PLAIN);
        assert_eq!(new.decrypt(SECRET_KEY, &s).unwrap(), (PLAIN.to_vec(), true));
        // The old configuration cannot read what the new one wrote.
        assert!(old.decrypt(SECRET_KEY, &rewritten).is_err());
    }

    #[test]
    fn identity_semantics() {
        // Enabling encryption: identity last reads old plain data, marked stale.
        let t =
            Transformers::parse(&cfg("[secrets]", &format!("{}  - identity: {{}}\n", keyed("aesgcm", &[("k", K1)]))))
                .unwrap();
        assert_eq!(t.decrypt(SECRET_KEY, PLAIN).unwrap(), (PLAIN.to_vec(), true));
        // Without identity, plain data is unreadable for a covered resource.
        let t2 = Transformers::parse(&cfg("[secrets]", &keyed("aesgcm", &[("k", K1)]))).unwrap();
        assert!(t2.decrypt(SECRET_KEY, PLAIN).is_err());
        // Disabling encryption: identity first writes plain, still reads encrypted (stale).
        let enc = t.encrypt(SECRET_KEY, PLAIN);
        let d =
            Transformers::parse(&cfg("[secrets]", &format!("  - identity: {{}}\n{}", keyed("aesgcm", &[("k", K1)]))))
                .unwrap();
        assert_eq!(d.encrypt(SECRET_KEY, PLAIN), PLAIN);
        assert!(!d.encrypts(SECRET_KEY));
        assert_eq!(d.decrypt(SECRET_KEY, &enc).unwrap(), (PLAIN.to_vec(), true));
        assert_eq!(d.decrypt(SECRET_KEY, PLAIN).unwrap(), (PLAIN.to_vec(), false));
        // Resources not covered pass through, but never decode encrypted data.
        let cm = "/registry/configmaps/default/x";
        assert_eq!(t.encrypt(cm, PLAIN), PLAIN);
        assert_eq!(t.decrypt(cm, PLAIN).unwrap(), (PLAIN.to_vec(), false));
        assert!(t.decrypt(cm, &enc).is_err());
    }

    #[test]
    fn resource_selectors() {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [configmaps, deployments.apps]\n  providers:\n{}\
             - resources: ['*.batch', widgets.example.com]\n  providers:\n{}\
             - resources: ['*.']\n  providers:\n  - identity: {{}}\n\
             - resources: ['*.*']\n  providers:\n{}",
            keyed("aesgcm", &[("a", K1)]),
            keyed("aescbc", &[("b", K1)]),
            keyed("secretbox", &[("c", K1)]),
        );
        let t = Transformers::parse(&text).unwrap();
        let prefix_of = |k: &str| String::from_utf8_lossy(&t.encrypt(k, b"{}")).chars().take(20).collect::<String>();
        assert!(prefix_of("/registry/configmaps/ns/x").starts_with("k8s:enc:aesgcm"));
        assert!(prefix_of("/registry/apps/deployments/ns/x").starts_with("k8s:enc:aesgcm"));
        assert!(prefix_of("/registry/batch/jobs/ns/x").starts_with("k8s:enc:aescbc"));
        assert!(prefix_of("/registry/batch/cronjobs/ns/x").starts_with("k8s:enc:aescbc"));
        assert!(prefix_of("/registry/example.com/widgets/ns/x").starts_with("k8s:enc:aescbc"));
        // Core resources hit `*.` (identity) before `*.*`.
        assert_eq!(prefix_of("/registry/secrets/ns/x"), "{}");
        assert_eq!(prefix_of("/registry/pods/ns/x"), "{}");
        // Other groups fall to `*.*`.
        assert!(prefix_of("/registry/apps/daemonsets/ns/x").starts_with("k8s:enc:secretbox"));
        assert!(prefix_of("/registry/rbac.authorization.k8s.io/roles/ns/x").starts_with("k8s:enc:secretbox"));
        // Outside /registry/: untouched.
        assert_eq!(prefix_of("/compact_rev_key"), "{}");
    }

    #[test]
    fn invalid_configurations() {
        let bad = [
            "kind: EncryptionConfiguration\napiVersion: v1\nresources: []".to_string(),
            "kind: Nope\napiVersion: apiserver.config.k8s.io/v1\nresources: []".to_string(),
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []".to_string(),
            cfg("['*']", "  - identity: {}\n"),
            cfg("[Secrets]", "  - identity: {}\n"),
            cfg("[secrets]", "  []\n"),
            cfg("[secrets]", "  - kms: {name: x}\n"),
            cfg("[secrets]", "  - aesgcm: {keys: []}\n"),
            cfg("[secrets]", &keyed("aesgcm", &[("k", K1), ("k", K2)])),
            cfg("[secrets]", &keyed("aesgcm", &[("", K1)])),
            cfg("[secrets]", &format!("  - identity: {{}}\n    aesgcm: {{keys: [{{name: k, secret: {K1}}}]}}\n")),
            "::: not yaml".to_string(),
        ];
        for b in bad {
            assert!(Transformers::parse(&b).is_err(), "accepted: {b}");
        }
    }

    #[test]
    fn load_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.yaml");
        std::fs::write(&path, cfg("[secrets]", &keyed("secretbox", &[("key1", K1)]))).unwrap();
        let t = Transformers::load(&path).unwrap();
        assert!(t.encrypts(SECRET_KEY));
        assert!(Transformers::load(&dir.path().join("missing.yaml")).is_err());
        // Debug never shows key material.
        assert!(!format!("{t:?}").contains(K1));
    }
}
