//! Access tokens issued by someone else (SPEC 11): typically client-credentials tokens from the
//! organisation's identity provider. Verified from memory against the issuer's keys, which
//! `federation` fetches and keeps current; an issuer whose keys were never fetched refuses
//! every token (fails closed).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::foreign::{Expected, ForeignKeys};
use super::mapping::{self, StringClaim};
use super::tokens::{Claimed, CredentialKind, Identity, TokenError, fits_header, hex};
use crate::config::IssuerConfig;

/// A `jti` longer than this is replaced by a hash in the session header.
const MAX_JTI_BYTES: usize = 128;

/// An issuer's current verification keys: written by its fetcher, read on every token.
pub type SharedKeys = Arc<ArcSwapOption<ForeignKeys>>;

pub struct Issuer {
    pub config: IssuerConfig,
    kind: CredentialKind,
    keys: SharedKeys,
}

/// The configured issuers, in file order.
#[derive(Default)]
pub struct Issuers {
    list: Vec<Issuer>,
}

impl Issuers {
    /// `keys[i]` holds the keys of `configs[i]`.
    pub fn new(configs: &[IssuerConfig], keys: Vec<SharedKeys>) -> Issuers {
        let list = configs
            .iter()
            .zip(keys)
            .map(|(config, keys)| Issuer {
                kind: CredentialKind::Issuer(config.name.as_str().into()),
                config: config.clone(),
                keys,
            })
            .collect();
        Issuers { list }
    }

    /// The issuer a JWT claims to come from (its `iss`, read without trusting it), if one is
    /// configured: that issuer's keys and rules decide. Only runs on a cache miss.
    pub fn claimed_by(&self, token: &str) -> Option<&Issuer> {
        if self.list.is_empty() {
            return None;
        }
        #[derive(Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let payload = token.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let iss = serde_json::from_slice::<Iss>(&bytes).ok()?.iss?;
        self.list.iter().find(|issuer| issuer.config.issuer == iss)
    }
}

impl Issuer {
    /// Signature, algorithm, `iss`, `aud`, `exp`/`nbf`/`iat` within `leeway`, then the
    /// mapping of subject and role.
    pub fn verify(&self, token: &str, now: u64, leeway: u64) -> Result<Identity, TokenError> {
        let keys = self.keys.load();
        let keys = keys.as_ref().ok_or(TokenError::IssuerUnavailable)?;
        let expected = Expected {
            issuer: &self.config.issuer,
            audience: &self.config.audience,
            algorithms: &self.config.algorithms,
            leeway,
            now,
        };
        let claims = keys.verify(token, &expected).map_err(TokenError::Foreign)?;
        self.identity(token, &claims)
    }

    fn identity(&self, token: &str, claims: &Map<String, Value>) -> Result<Identity, TokenError> {
        let mapping = &self.config.mapping;
        let sub = mapping::subject(mapping, claims).ok_or(TokenError::Unmapped)?;
        let role = mapping::role(mapping, claims, StringClaim::SpaceSeparated).ok_or(TokenError::Unmapped)?;
        let jti = mapping::text(claims, "jti")
            .filter(|jti| jti.len() <= MAX_JTI_BYTES && fits_header(jti))
            .map_or_else(|| token_hash(token), str::to_owned);
        let number = |name| claims.get(name).and_then(Value::as_u64);
        // `verify` made sure both are there.
        let (iat, exp) = (number("iat").unwrap_or(0), number("exp").unwrap_or(0));
        Identity::new(Claimed {
            jkt: dpop_binding(claims)?,
            kind: self.kind.clone(),
            sid: format!("issuer:{}:{jti}", self.config.name),
            sub,
            role,
            jti,
            iat,
            exp,
            idp: format!("issuer:{}", self.config.name),
            auth_time: iat,
            amr: Vec::new(),
        })
    }
}

/// `cnf.jkt` of a DPoP-bound token (RFC 9449 §6.1), which is then checked like ours. A token
/// bound some other way (`cnf` without `jkt`, e.g. to a client certificate) is refused: we
/// cannot check that binding, and accepting it as a bearer token would undo it.
fn dpop_binding(claims: &Map<String, Value>) -> Result<Option<String>, TokenError> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    match cnf.get("jkt").and_then(Value::as_str) {
        Some(jkt) if !jkt.is_empty() && jkt.len() <= 64 => Ok(Some(jkt.to_owned())),
        _ => Err(TokenError::BadClaims),
    }
}

/// 128 bits of the token's SHA-256, in hex: a stable name for a token without a usable `jti`.
fn token_hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    hex(&digest.as_ref()[..16])
}
