//! COSE public keys (RFC 9052/9053) as authenticators send them, turned into what aws-lc-rs
//! verifies with: ES256 (P-256), EdDSA (Ed25519) and RS256, nothing else.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use ciborium::Value;
use serde::{Deserialize, Serialize};

use super::WebauthnError;

/// The COSE algorithms we ask for, most preferred first.
pub(super) const ES256: i64 = -7;
pub(super) const EDDSA: i64 = -8;
pub(super) const RS256: i64 = -257;
pub(super) const ALGORITHMS: [i64; 3] = [ES256, EDDSA, RS256];

/// A credential's public key as stored: the algorithm, and the key in the form aws-lc-rs
/// takes (an uncompressed P-256 point, 32 Ed25519 bytes, or RSA's modulus and exponent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub alg: i64,
    #[serde(with = "super::b64")]
    pub key: Vec<u8>,
    #[serde(default, with = "super::b64", skip_serializing_if = "Vec::is_empty")]
    pub exponent: Vec<u8>,
}

impl PublicKey {
    /// Reads a COSE_Key map; its `kty`, `alg` and curve must agree.
    pub(super) fn from_cose(key: &Value) -> Result<PublicKey, WebauthnError> {
        let unsupported = || WebauthnError::Unsupported;
        let map = key
            .as_map()
            .ok_or(WebauthnError::Malformed("credential public key"))?;
        let get = |label: i64| {
            map.iter()
                .find(|(k, _)| k.as_integer().is_some_and(|k| i128::from(k) == i128::from(label)))
                .map(|(_, v)| v)
        };
        let int = |label| get(label).and_then(Value::as_integer).map(i128::from);
        let bytes = |label| get(label).and_then(Value::as_bytes).cloned();
        let (kty, alg) = (int(1).ok_or_else(unsupported)?, int(3).ok_or_else(unsupported)?);
        let alg = i64::try_from(alg).map_err(|_| unsupported())?;
        let key = match (kty, alg) {
            // EC2, P-256: x and y of 32 bytes each.
            (2, ES256) if int(-1) == Some(1) => {
                let (x, y) = (
                    bytes(-2).ok_or_else(unsupported)?,
                    bytes(-3).ok_or_else(unsupported)?,
                );
                if x.len() != 32 || y.len() != 32 {
                    return Err(unsupported());
                }
                PublicKey {
                    alg,
                    key: [&[4u8][..], &x, &y].concat(),
                    exponent: Vec::new(),
                }
            }
            // OKP, Ed25519.
            (1, EDDSA) if int(-1) == Some(6) => {
                let x = bytes(-2).filter(|x| x.len() == 32).ok_or_else(unsupported)?;
                PublicKey {
                    alg,
                    key: x,
                    exponent: Vec::new(),
                }
            }
            (3, RS256) => {
                let (n, e) = (
                    bytes(-1).ok_or_else(unsupported)?,
                    bytes(-2).ok_or_else(unsupported)?,
                );
                // 2048 bits at least, as aws-lc-rs' RSA_PKCS1_2048_8192_SHA256 requires.
                if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return Err(unsupported());
                }
                PublicKey {
                    alg,
                    key: n,
                    exponent: e,
                }
            }
            _ => return Err(unsupported()),
        };
        Ok(key)
    }

    /// Whether `signature` signs `message` with this key.
    pub(super) fn verifies(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        match self.alg {
            ES256 => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.key)
                .verify(message, signature_bytes)
                .is_ok(),
            EDDSA => UnparsedPublicKey::new(&signature::ED25519, &self.key)
                .verify(message, signature_bytes)
                .is_ok(),
            RS256 => RsaPublicKeyComponents {
                n: &self.key,
                e: &self.exponent,
            }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature_bytes)
            .is_ok(),
            _ => false,
        }
    }
}
