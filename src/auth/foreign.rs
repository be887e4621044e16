//! Tokens signed by someone else (an OpenID provider's id_tokens and logout tokens; later,
//! other issuers' access tokens): a key set read from a JWKS, and verification against it.
//!
//! Only asymmetric algorithms are ever accepted, whatever a provider advertises: `none` has
//! no signature, and an HMAC "signed" with a client secret or a public key proves nothing
//! (the classic algorithm-confusion attack). A token's `kid` must name a key of the set; a
//! token without `kid` is tried only when the set holds exactly one key for its algorithm.
//! `jku`, `x5u`, `jwk` and `x5c` headers are never used, and `crit` is refused.

use std::str::FromStr;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Longer tokens are refused before any parsing; real id_tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// More keys than this in one JWKS is not a key set but an attack on memory.
const MAX_KEYS: usize = 100;

/// The asymmetric algorithms a foreign token may use.
pub use crate::config::ASYMMETRIC;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForeignTokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    BadAlgorithm,
    #[error("the token names a key the issuer does not publish")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token lacks a claim it must have, or one is malformed")]
    BadClaims,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JWKS is not valid: {0}")]
pub struct JwksError(String);

struct ForeignKey {
    kid: Option<String>,
    /// The key's own `alg`, when the JWKS names one: then only that algorithm.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// An issuer's published verification keys.
pub struct ForeignKeys {
    keys: Vec<ForeignKey>,
}

/// What a token must say besides its signature.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// The issuer's algorithms, already narrowed to `ASYMMETRIC`.
    pub algorithms: &'a [Algorithm],
    pub leeway: u64,
    pub now: u64,
}

impl ForeignKeys {
    /// Reads a JWKS document. Keys for encryption, of unsupported types or symmetric ones are
    /// skipped (a JWKS may hold them); a document with no usable signing key is an error.
    pub fn from_jwks(document: &[u8]) -> Result<ForeignKeys, JwksError> {
        let set: Value = serde_json::from_slice(document).map_err(|e| JwksError(e.to_string()))?;
        let listed = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError("it has no \"keys\" array".into()))?;
        if listed.len() > MAX_KEYS {
            return Err(JwksError(format!("it lists more than {MAX_KEYS} keys")));
        }
        let keys: Vec<ForeignKey> = listed.iter().filter_map(signing_key).collect();
        match keys.is_empty() {
            true => Err(JwksError("it holds no usable signing key".into())),
            false => Ok(ForeignKeys { keys }),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` and returns its claims. `UnknownKey` tells the caller a newer key set
    /// might know the key.
    pub fn verify(
        &self,
        token: &str,
        expected: &Expected<'_>,
    ) -> Result<Map<String, Value>, ForeignTokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ForeignTokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| ForeignTokenError::Malformed)?;
        if header.crit.is_some() {
            return Err(ForeignTokenError::Malformed);
        }
        let alg = header.alg;
        if !ASYMMETRIC.contains(&alg) || !expected.algorithms.contains(&alg) {
            return Err(ForeignTokenError::BadAlgorithm);
        }
        let key = self.key_for(header.kid.as_deref(), alg)?;
        let mut validation = Validation::new(alg);
        validation.leeway = expected.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[expected.issuer]);
        validation.set_audience(&[expected.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation).map_err(rejected)?;
        let claims = data.claims;
        let iat = claims
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or(ForeignTokenError::BadClaims)?;
        if iat > expected.now + expected.leeway {
            return Err(ForeignTokenError::IssuedInFuture);
        }
        Ok(claims)
    }

    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<&ForeignKey, ForeignTokenError> {
        let fits = |k: &&ForeignKey| k.alg.is_none_or(|a| a == alg) && k.key.family() == alg.family();
        match kid {
            Some(kid) => {
                let key = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid));
                key.filter(fits).ok_or(ForeignTokenError::UnknownKey)
            }
            None => {
                let mut candidates = self.keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(only),
                    _ => Err(ForeignTokenError::UnknownKey),
                }
            }
        }
    }
}

/// One JWKS entry as a verification key, or `None` when it cannot or must not verify.
fn signing_key(entry: &Value) -> Option<ForeignKey> {
    if entry.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match entry.get("alg").and_then(Value::as_str) {
        None => None,
        Some(name) => Some(
            Algorithm::from_str(name)
                .ok()
                .filter(|a| ASYMMETRIC.contains(a))?,
        ),
    };
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return None;
    }
    let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
    Some(ForeignKey { kid, alg, key })
}

fn rejected(error: jsonwebtoken::errors::Error) -> ForeignTokenError {
    use jsonwebtoken::errors::ErrorKind::*;
    match error.kind() {
        InvalidSignature | InvalidEcdsaKey | InvalidEddsaKey | InvalidRsaKey(_) => {
            ForeignTokenError::BadSignature
        }
        InvalidAlgorithm | UnsupportedAlgorithm | MissingAlgorithm => ForeignTokenError::BadAlgorithm,
        ExpiredSignature => ForeignTokenError::Expired,
        ImmatureSignature => ForeignTokenError::NotYetValid,
        InvalidIssuer => ForeignTokenError::WrongIssuer,
        InvalidAudience => ForeignTokenError::WrongAudience,
        MissingRequiredClaim(_) | InvalidClaimFormat(_) | InvalidSubject => ForeignTokenError::BadClaims,
        _ => ForeignTokenError::Malformed,
    }
}

/// The algorithms an issuer advertises (`id_token_signing_alg_values_supported` and the
/// like), narrowed to the asymmetric ones; unknown names are ignored.
pub fn accepted_algorithms(advertised: &[String]) -> Vec<Algorithm> {
    let mut algorithms: Vec<Algorithm> = advertised
        .iter()
        .filter_map(|name| Algorithm::from_str(name).ok())
        .filter(|alg| ASYMMETRIC.contains(alg))
        .collect();
    algorithms.dedup();
    algorithms
}
