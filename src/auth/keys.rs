//! Signing and verification keys by `kid`, the published JWKS, and key generation.
//!
//! Every key is pinned to one algorithm: verification looks the `kid` up here and uses only
//! that key's algorithm, so there is no "try every key" and no algorithm chosen by the token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use aws_lc_rs::{encoding::AsDer, rsa::KeySize};
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::weak_secret;
use crate::config::{KeyAlgorithm, KeyConfig, KeySource, TokensConfig};
use crate::secret::Secret;

/// HS256 secrets shorter than this are refused (RFC 7518 3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {kid:?}: cannot read {path}: {reason}")]
    Read {
        kid: String,
        path: PathBuf,
        reason: String,
    },
    #[error("key {kid:?}: {reason}")]
    Invalid { kid: String, reason: String },
    #[error("key {kid:?}: the HS256 secret has {len} bytes; at least {MIN_SECRET_BYTES} are required")]
    SecretTooShort { kid: String, len: usize },
    #[error("key {kid:?}: the HS256 secret {reason}; generate one with `portcullis keygen --alg HS256`")]
    WeakSecret { kid: String, reason: &'static str },
    #[error("key {kid:?}: environment variable {name} is not set")]
    MissingEnv { kid: String, name: String },
    #[error("cannot write key {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// The key that signs new tokens.
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    pub fn key(&self) -> &EncodingKey {
        &self.key
    }
}

/// A key that verifies tokens carrying its `kid`, with the one algorithm it allows.
pub struct Verifier {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

pub struct KeySet {
    pub signer: Signer,
    /// Derived from the signing key's secret material: seals short-lived browser state (the
    /// single sign-on login cookie) that any replica with the same key must be able to open.
    pub sealing_key: Secret<[u8; 32]>,
    verifiers: HashMap<String, Verifier>,
    jwks: Bytes,
}

impl KeySet {
    pub fn load(tokens: &TokensConfig) -> Result<KeySet, KeyError> {
        let mut signer = None;
        let mut sealing_key = None;
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for config in &tokens.keys {
            let loaded = load_key(config)?;
            if let Some(public) = loaded.public {
                published.push(public);
            }
            if signer.is_none() {
                let key = loaded
                    .signing
                    .ok_or_else(|| invalid(config, "the first key must be able to sign"))?;
                signer = Some(Signer {
                    kid: config.kid.clone(),
                    alg: algorithm(config.alg),
                    key,
                });
                sealing_key = loaded.sealing_key;
            }
            verifiers.insert(
                config.kid.clone(),
                Verifier {
                    alg: algorithm(config.alg),
                    key: loaded.verifying,
                },
            );
        }
        let signer = signer.ok_or_else(|| KeyError::Invalid {
            kid: String::new(),
            reason: "no keys".into(),
        })?;
        let jwks = serde_json::to_vec(&JwkSet { keys: published }).map_err(|e| KeyError::Invalid {
            kid: String::new(),
            reason: format!("cannot serialise the JWKS: {e}"),
        })?;
        let sealing_key = sealing_key.ok_or_else(|| KeyError::Invalid {
            kid: signer.kid.clone(),
            reason: "the signing key has no secret material".into(),
        })?;
        let set = KeySet {
            signer,
            sealing_key,
            verifiers,
            jwks: Bytes::from(jwks),
        };
        set.self_test()?;
        Ok(set)
    }

    pub fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.verifiers.get(kid)
    }

    /// `{"keys":[...]}` with the public verification keys (HS256 secrets are never published).
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// Signs and verifies a probe, so a broken or mismatched key stops the start, not a login.
    fn self_test(&self) -> Result<(), KeyError> {
        let fail = |reason: String| KeyError::Invalid {
            kid: self.signer.kid.clone(),
            reason,
        };
        let probe = b"portcullis key self-test";
        let signature = jsonwebtoken::crypto::sign(probe, &self.signer.key, self.signer.alg)
            .map_err(|e| fail(format!("cannot sign: {e}")))?;
        let verifier = &self.verifiers[&self.signer.kid];
        match jsonwebtoken::crypto::verify(&signature, probe, &verifier.key, verifier.alg) {
            Ok(true) => Ok(()),
            _ => Err(fail("a signature made with this key does not verify".into())),
        }
    }
}

fn algorithm(alg: KeyAlgorithm) -> Algorithm {
    match alg {
        KeyAlgorithm::Es256 => Algorithm::ES256,
        KeyAlgorithm::EdDsa => Algorithm::EdDSA,
        KeyAlgorithm::Rs256 => Algorithm::RS256,
        KeyAlgorithm::Hs256 => Algorithm::HS256,
    }
}

fn invalid(config: &KeyConfig, reason: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        kid: config.kid.clone(),
        reason: reason.into(),
    }
}

struct LoadedKey {
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    /// The JWK to publish; `None` for HMAC secrets.
    public: Option<Jwk>,
    sealing_key: Option<Secret<[u8; 32]>>,
}

/// HKDF-SHA256 of a signing key's secret material, for one purpose only: a different key
/// than the signing key itself, that still agrees across replicas sharing the key file.
fn sealing_key(config: &KeyConfig, material: &[u8]) -> Result<Secret<[u8; 32]>, KeyError> {
    super::sealed::derive_key(material, b"portcullis sealed browser state v1")
        .ok_or_else(|| invalid(config, "cannot derive the sealing key"))
}

/// Writes the keys marked `generate_if_missing` whose files do not exist yet (development).
pub fn generate_missing(tokens: &TokensConfig) -> Result<(), KeyError> {
    for config in tokens.keys.iter().filter(|k| k.generate_if_missing) {
        if let Some(path) = config.missing_file() {
            generate(config.alg, path)?;
            tracing::warn!(kid = %config.kid, path = %path.display(), "GENERATED A NEW SIGNING KEY (development only)");
        }
    }
    Ok(())
}

fn load_key(config: &KeyConfig) -> Result<LoadedKey, KeyError> {
    let alg = algorithm(config.alg);
    match &config.source {
        KeySource::SecretFile(path) => hmac_key(config, read(config, path)?),
        KeySource::SecretEnv(name) => match std::env::var(name) {
            Ok(value) => hmac_key(config, value.into_bytes()),
            Err(_) => Err(KeyError::MissingEnv {
                kid: config.kid.clone(),
                name: name.clone(),
            }),
        },
        KeySource::PrivateKeyFile(path) => {
            let pem = read(config, path)?;
            let signing = match config.alg {
                KeyAlgorithm::Es256 => EncodingKey::from_ec_pem(&pem),
                KeyAlgorithm::EdDsa => EncodingKey::from_ed_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .map_err(|e| {
                invalid(
                    config,
                    format!("{}: not a {} private key: {e}", path.display(), alg_name(alg)),
                )
            })?;
            let jwk = Jwk::from_encoding_key(&signing, alg)
                .map_err(|e| invalid(config, format!("cannot derive the public key: {e}")))?;
            let mut loaded = public_key(config, jwk, Some(signing))?;
            loaded.sealing_key = Some(sealing_key(config, &pem)?);
            Ok(loaded)
        }
        KeySource::PublicKeyFile(path) => {
            let pem = read(config, path)?;
            let verifying = match config.alg {
                KeyAlgorithm::Es256 => DecodingKey::from_ec_pem(&pem),
                KeyAlgorithm::EdDsa => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            }
            .map_err(|e| {
                invalid(
                    config,
                    format!("{}: not a {} public key: {e}", path.display(), alg_name(alg)),
                )
            })?;
            let jwk = Jwk::from_decoding_key(&verifying, Some(alg))
                .map_err(|e| invalid(config, format!("cannot describe the public key: {e}")))?;
            public_key(config, jwk, None)
        }
    }
}

fn public_key(config: &KeyConfig, mut jwk: Jwk, signing: Option<EncodingKey>) -> Result<LoadedKey, KeyError> {
    jwk.common.key_id = Some(config.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let verifying =
        DecodingKey::from_jwk(&jwk).map_err(|e| invalid(config, format!("unusable public key: {e}")))?;
    Ok(LoadedKey {
        signing,
        verifying,
        public: Some(jwk),
        sealing_key: None,
    })
}

fn hmac_key(config: &KeyConfig, secret: Vec<u8>) -> Result<LoadedKey, KeyError> {
    let secret = Secret::new(secret);
    let trimmed = secret.expose().trim_ascii();
    if trimmed.len() < MIN_SECRET_BYTES {
        return Err(KeyError::SecretTooShort {
            kid: config.kid.clone(),
            len: trimmed.len(),
        });
    }
    if let Some(reason) = weak_secret::weakness(trimmed) {
        return Err(KeyError::WeakSecret {
            kid: config.kid.clone(),
            reason,
        });
    }
    Ok(LoadedKey {
        signing: Some(EncodingKey::from_secret(trimmed)),
        verifying: DecodingKey::from_secret(trimmed),
        public: None,
        sealing_key: Some(sealing_key(config, trimmed)?),
    })
}

fn read(config: &KeyConfig, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Read {
        kid: config.kid.clone(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

/// Writes a new key for `alg` to `path` (mode 0600), refusing to replace an existing file.
/// Asymmetric keys are PKCS#8 PEM; an HS256 secret is 64 base64url characters of randomness.
pub fn generate(alg: KeyAlgorithm, path: &Path) -> Result<(), KeyError> {
    let fail = |reason: String| KeyError::Write {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() {
        return Err(fail("the file exists; refusing to overwrite a key".into()));
    }
    let rng = SystemRandom::new();
    let unspecified = |_| fail("the key generator failed".into());
    let contents = match alg {
        KeyAlgorithm::Es256 => {
            let der =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(unspecified)?;
            private_key_pem(der.as_ref())
        }
        KeyAlgorithm::EdDsa => private_key_pem(
            Ed25519KeyPair::generate_pkcs8v1(&rng)
                .map_err(unspecified)?
                .as_ref(),
        ),
        KeyAlgorithm::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(unspecified)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(unspecified)?;
            private_key_pem(der.as_ref())
        }
        KeyAlgorithm::Hs256 => {
            let mut secret = [0u8; 48];
            aws_lc_rs::rand::fill(&mut secret).map_err(unspecified)?;
            let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
            format!("{encoded}\n")
        }
    };
    crate::tls::write_new_file(path, contents.as_bytes(), 0o600).map_err(|e| fail(e.to_string()))
}

fn private_key_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tokens(keys: Vec<KeyConfig>) -> TokensConfig {
        TokensConfig {
            issuer: "i".into(),
            audience: "a".into(),
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(60),
            refresh_idle_ttl: Duration::from_secs(60),
            refresh_grace: Duration::from_secs(1),
            leeway: Duration::from_secs(1),
            keys,
        }
    }

    fn generate_and_load(tokens: &TokensConfig) -> Result<KeySet, KeyError> {
        generate_missing(tokens)?;
        KeySet::load(tokens)
    }

    fn generated(dir: &Path, kid: &str, alg: KeyAlgorithm) -> KeyConfig {
        let source = match alg {
            KeyAlgorithm::Hs256 => KeySource::SecretFile(dir.join(kid)),
            _ => KeySource::PrivateKeyFile(dir.join(kid)),
        };
        KeyConfig {
            kid: kid.into(),
            alg,
            source,
            generate_if_missing: true,
        }
    }

    #[test]
    fn every_algorithm_generates_a_key_that_loads_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        for (kid, alg) in [
            ("es", KeyAlgorithm::Es256),
            ("ed", KeyAlgorithm::EdDsa),
            ("rs", KeyAlgorithm::Rs256),
            ("hs", KeyAlgorithm::Hs256),
        ] {
            let set = generate_and_load(&tokens(vec![generated(dir.path(), kid, alg)]))
                .unwrap_or_else(|e| panic!("{kid}: {e}"));
            assert_eq!(set.signer.kid, kid);
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(dir.path().join(kid)).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "{kid}");
        }
    }

    #[test]
    fn the_jwks_holds_public_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let keys = vec![
            generated(dir.path(), "k1", KeyAlgorithm::Es256),
            generated(dir.path(), "h", KeyAlgorithm::Hs256),
        ];
        let set = generate_and_load(&tokens(keys)).unwrap();
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], "k1");
        assert_eq!(keys[0]["kty"], "EC");
        assert!(keys[0].get("d").is_none(), "private part published");
    }

    #[test]
    fn a_short_hmac_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), "too-short-secret\n").unwrap();
        let key = KeyConfig {
            kid: "h".into(),
            alg: KeyAlgorithm::Hs256,
            source: KeySource::SecretFile(dir.path().join("short")),
            generate_if_missing: false,
        };
        assert!(matches!(
            KeySet::load(&tokens(vec![key])),
            Err(KeyError::SecretTooShort { len: 16, .. })
        ));
    }

    #[test]
    fn generate_never_overwrites_an_existing_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "precious").unwrap();
        assert!(generate(KeyAlgorithm::Es256, &path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }
}
