//! DPoP proofs (RFC 9449, SPEC 14): a `dpop+jwt` signed by the public key it carries, for
//! this request (`htm`, `htu`), recent (`iat`), used once (`jti`, per replica), bound to the
//! access token it comes with (`ath`) and to the key the token names (`cnf.jkt`).
//!
//! Cheap checks (size, shape, header, the key's form) run before the signature; the replay
//! cache is consulted last, so a refused proof never takes a `jti`.

mod jwk;
mod nonce;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use jwk::ProofKey;
pub use nonce::Nonces;
pub use replay::ReplayCache;

/// Proofs longer than this are refused unread: an RSA-4096 key makes one of about 1.5 KiB.
const MAX_PROOF_BYTES: usize = 8192;
/// Longest `jti` remembered.
const MAX_JTI_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("a DPoP proof is required (one DPoP header)")]
    Missing,
    #[error("the DPoP proof is malformed")]
    Malformed,
    #[error("the DPoP proof is not a dpop+jwt")]
    WrongType,
    #[error("the DPoP proof's algorithm is not ES256, EdDSA (Ed25519) or RS256")]
    BadAlgorithm,
    #[error("the DPoP proof's jwk is not a usable public key")]
    BadKey,
    #[error("the DPoP proof's jwk holds a private key")]
    PrivateKey,
    #[error("the DPoP proof's signature is invalid")]
    BadSignature,
    #[error("the DPoP proof is for another method")]
    WrongMethod,
    #[error("the DPoP proof is for another URI")]
    WrongUri,
    #[error("the DPoP proof is too old or from the future")]
    Stale,
    #[error("the DPoP proof was used already")]
    Replayed,
    #[error("the DPoP proof is for another access token")]
    WrongAccessToken,
    #[error("the DPoP proof is signed by another key than the token's")]
    WrongKey,
    #[error("the DPoP proof needs a current nonce from the gateway")]
    NonceRequired,
}

impl DpopError {
    /// The `reason` label of `portcullis_auth_failures_total` and of the audit event.
    pub fn reason(self) -> &'static str {
        match self {
            DpopError::Missing => "dpop_missing",
            DpopError::Malformed => "dpop_malformed",
            DpopError::WrongType => "dpop_wrong_type",
            DpopError::BadAlgorithm => "dpop_bad_algorithm",
            DpopError::BadKey => "dpop_bad_key",
            DpopError::PrivateKey => "dpop_private_key",
            DpopError::BadSignature => "dpop_bad_signature",
            DpopError::WrongMethod => "dpop_wrong_method",
            DpopError::WrongUri => "dpop_wrong_uri",
            DpopError::Stale => "dpop_stale",
            DpopError::Replayed => "dpop_replayed",
            DpopError::WrongAccessToken => "dpop_wrong_ath",
            DpopError::WrongKey => "dpop_wrong_key",
            DpopError::NonceRequired => "dpop_nonce",
        }
    }
}

/// What a proof must say to be this request's.
pub struct Expected<'a> {
    pub method: &'a str,
    /// `https://<host>[:<port>]<path>`, in the form `normalize_htu` gives.
    pub uri: &'a str,
    /// The access token the proof comes with (then `ath` is required and checked).
    pub access_token: Option<&'a str>,
    /// The thumbprint the access token names in `cnf.jkt`.
    pub jkt: Option<&'a str>,
    pub now: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    typ: String,
    alg: String,
    jwk: Map<String, Value>,
}

/// Other claims are allowed (RFC 9449 §4.2); these are the ones checked.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Checks proofs against one window (`[dpop] max_age`), the server nonces when they are
/// required, and a replay cache that outlives reloads.
pub struct DpopVerifier {
    max_age: u64,
    leeway: u64,
    nonces: Option<Nonces>,
    replays: Arc<ReplayCache>,
}

impl DpopVerifier {
    pub fn new(max_age: Duration, leeway: Duration, replays: Arc<ReplayCache>) -> DpopVerifier {
        DpopVerifier {
            max_age: max_age.as_secs(),
            leeway: leeway.as_secs(),
            nonces: None,
            replays,
        }
    }

    /// Proofs must also carry a nonce these `nonces` issued recently.
    pub fn with_nonces(self, nonces: Nonces) -> DpopVerifier {
        DpopVerifier {
            nonces: Some(nonces),
            ..self
        }
    }

    /// The replay cache, for the next verifier after a reload.
    pub fn replays(&self) -> &Arc<ReplayCache> {
        &self.replays
    }

    /// A fresh nonce for the `DPoP-Nonce` header, when nonces are required.
    pub fn fresh_nonce(&self, now: u64) -> Option<String> {
        self.nonces.as_ref().map(|nonces| nonces.issue(now))
    }

    /// The proof's key thumbprint, if `proof` proves `expected`.
    pub fn verify(&self, proof: &str, expected: &Expected<'_>) -> Result<String, DpopError> {
        let (key, claims) = signed_by_its_key(proof)?;
        if claims.htm != expected.method {
            return Err(DpopError::WrongMethod);
        }
        if normalize_htu(&claims.htu).as_deref() != Some(expected.uri) {
            return Err(DpopError::WrongUri);
        }
        let oldest = expected.now.saturating_sub(self.max_age + self.leeway);
        if claims.iat < oldest || claims.iat > expected.now + self.leeway {
            return Err(DpopError::Stale);
        }
        if let Some(token) = expected.access_token {
            let hash = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()));
            if claims.ath.as_deref() != Some(hash.as_str()) {
                return Err(DpopError::WrongAccessToken);
            }
        }
        if expected.jkt.is_some_and(|jkt| jkt != key.thumbprint) {
            return Err(DpopError::WrongKey);
        }
        if let Some(nonces) = &self.nonces
            && !claims
                .nonce
                .as_deref()
                .is_some_and(|nonce| nonces.is_current(nonce, expected.now, self.leeway))
        {
            return Err(DpopError::NonceRequired);
        }
        // Remembered as long as the proof could pass the `iat` check, no longer.
        let passes_until = claims.iat + self.max_age + self.leeway;
        let remembered = Duration::from_secs(passes_until.saturating_sub(expected.now) + 1);
        match self.replays.first_use(&key.thumbprint, &claims.jti, remembered) {
            true => Ok(key.thumbprint),
            false => Err(DpopError::Replayed),
        }
    }
}

/// The `htu` a proof for a request to `authority` and (normalised) `path` must name, in the
/// form `normalize_htu` gives: the default port left out, the host in lower case.
pub fn request_htu(authority: &http::uri::Authority, path: &str) -> String {
    let host = authority.host().to_ascii_lowercase();
    match authority.port_u16() {
        Some(port) if port != 443 => format!("https://{host}:{port}{path}"),
        _ => format!("https://{host}{path}"),
    }
}

/// The proof's embedded key and claims, once its signature verifies with that key.
fn signed_by_its_key(proof: &str) -> Result<(ProofKey, Claims), DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::Malformed);
    }
    let (signing_input, signature) = proof.rsplit_once('.').ok_or(DpopError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(DpopError::Malformed)?;
    let header: Header = decode_json(header)?;
    if header.typ != "dpop+jwt" {
        return Err(DpopError::WrongType);
    }
    let alg = match header.alg.as_str() {
        "ES256" => Algorithm::ES256,
        // RFC 9864's fully specified name for the same algorithm (panva's `dpop` uses it).
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        _ => return Err(DpopError::BadAlgorithm),
    };
    let key = ProofKey::from_jwk(&header.jwk, alg)?;
    let valid = jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key.key, alg);
    if !matches!(valid, Ok(true)) {
        return Err(DpopError::BadSignature);
    }
    let claims: Claims = decode_json(payload)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_BYTES {
        return Err(DpopError::Malformed);
    }
    Ok((key, claims))
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, DpopError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| DpopError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed)
}

/// `htu` compared as RFC 9449 §4.3 says: without query and fragment, after RFC 3986's syntax-
/// and scheme-based normalisation (case of scheme and host, the default port, percent-escapes,
/// dot segments). `None` for anything but an absolute `https` URI.
pub fn normalize_htu(htu: &str) -> Option<String> {
    let uri: http::Uri = htu.parse().ok()?;
    if !uri.scheme_str()?.eq_ignore_ascii_case("https") {
        return None;
    }
    let host = uri.host()?.to_ascii_lowercase();
    let path = crate::path::normalize_path(uri.path()).ok()?;
    Some(match uri.port_u16() {
        Some(port) if port != 443 => format!("https://{host}:{port}{path}"),
        _ => format!("https://{host}{path}"),
    })
}

#[cfg(test)]
mod tests;
