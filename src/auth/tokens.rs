//! Access tokens: issuing them, and verifying them on every request (SPEC 5.1).
//!
//! Verification order: size, then the verified-token cache (an exact-string hit costs one
//! hash lookup), then the cheap structural checks (segments, header, `kid`, `alg`), then the
//! signature, then the claims. Only a token that passed everything is ever cached.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use super::issuers::{Issuer, Issuers};
use super::keys::KeySet;
use crate::config::TokensConfig;

/// Our tokens longer than this are refused before their signature is checked; ours are well
/// under 1 KiB.
const MAX_TOKEN_BYTES: usize = 4096;
/// Any longer token is refused before anything else: other issuers' access tokens carry more
/// claims than ours, but a few KiB at most.
const MAX_ANY_TOKEN_BYTES: usize = 8192;
/// Verified tokens kept in memory; a miss only costs a signature check.
const CACHE_ENTRIES: u64 = 50_000;
/// The `idp` of a password login (SPEC 13 matches on it), and its `amr` (RFC 8176).
pub const LOCAL_IDP: &str = "local";
pub const LOCAL_AMR: &str = "pwd";
/// Longest `sub`/`role` that may become a header value.
const MAX_CLAIM_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token header is not acceptable")]
    BadHeader,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token names an unknown key")]
    UnknownKey,
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token claims are not acceptable")]
    BadClaims,
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
    #[error("the token has been revoked")]
    Revoked,
    #[error("this route does not accept that kind of credential")]
    NotAccepted,
    #[error("{0}")]
    Foreign(super::foreign::ForeignTokenError),
    #[error("the token's issuer has not been reached yet")]
    IssuerUnavailable,
    #[error("the token's claims map to no subject or no role")]
    Unmapped,
    #[error("the API key is not valid")]
    ApiKeyInvalid,
    #[error("the API key has expired")]
    ApiKeyExpired,
}

/// What kind of credential a caller presented: routes choose which they accept (SPEC 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// Our own access token: a session begun by a login.
    Session,
    ApiKey,
    /// An access token of the `[[issuers]]` entry with this name.
    Issuer(Arc<str>),
}

/// A verified caller, with the header values the upstream will receive.
#[derive(Debug)]
pub struct Identity {
    pub kind: CredentialKind,
    pub sub: String,
    pub role: String,
    pub sid: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    /// How the session began (SPEC 10): `local` for a password login, else the provider.
    pub idp: String,
    pub auth_time: u64,
    pub amr: Vec<String>,
    /// `cnf.jkt`: the token is DPoP-bound to the key with this thumbprint (SPEC 14).
    pub jkt: Option<String>,
    pub sub_header: HeaderValue,
    pub role_header: HeaderValue,
    pub sid_header: HeaderValue,
    /// `amr` space-separated, for `[headers] amr`; `None` when there is none.
    pub amr_header: Option<HeaderValue>,
}

/// A caller's values before they are checked as header values.
pub struct Claimed {
    pub kind: CredentialKind,
    pub sub: String,
    pub role: String,
    pub sid: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    pub idp: String,
    pub auth_time: u64,
    pub amr: Vec<String>,
    pub jkt: Option<String>,
}

impl Identity {
    /// `sub`, `role`, `sid` and `jti` must be non-empty visible ASCII of bounded length: they
    /// become header values.
    pub fn new(claimed: Claimed) -> Result<Identity, TokenError> {
        let Claimed {
            kind,
            sub,
            role,
            sid,
            jti,
            iat,
            exp,
            idp,
            auth_time,
            amr,
            jkt,
        } = claimed;
        header_value(&jti)?;
        let amr_header = match amr.is_empty() {
            true => None,
            false => HeaderValue::from_str(&amr.join(" ")).ok(),
        };
        Ok(Identity {
            kind,
            amr_header,
            sub_header: header_value(&sub)?,
            role_header: header_value(&role)?,
            sid_header: header_value(&sid)?,
            sub,
            role,
            sid,
            jti,
            iat,
            exp,
            idp,
            auth_time,
            amr,
            jkt,
        })
    }
}

/// What an access token says about its holder and how they logged in.
pub struct Grant<'a> {
    pub sub: &'a str,
    pub role: &'a str,
    pub sid: &'a str,
    pub idp: &'a str,
    pub auth_time: u64,
    pub amr: &'a [String],
    /// The DPoP key the token is bound to, if any.
    pub jkt: Option<&'a str>,
}

/// A freshly signed access token.
pub struct Issued {
    pub token: String,
    pub jti: String,
    pub exp: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    iss: String,
    aud: Audience,
    sub: String,
    role: String,
    sid: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    // Optional so that tokens signed before these claims existed (password logins before
    // single sign-on) stay valid until they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// RFC 7800's confirmation claim, as RFC 9449 §6.1 uses it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    jkt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Issues and verifies our access tokens with one key set and one set of claim rules, and
/// verifies other issuers' (SPEC 11) through the same cache.
pub struct AccessTokens {
    keys: KeySet,
    issuers: Issuers,
    issuer: String,
    audience: String,
    ttl: u64,
    leeway: u64,
    cache: Cache<Box<str>, Arc<Identity>, foldhash::fast::RandomState>,
}

impl AccessTokens {
    pub fn new(config: &TokensConfig, keys: KeySet) -> AccessTokens {
        let cache = Cache::builder()
            .max_capacity(CACHE_ENTRIES)
            .expire_after(UntilExpiry)
            // Only verified tokens are inserted, so a caller cannot choose colliding keys;
            // foldhash hashes a 300-byte token several times faster than SipHash.
            .build_with_hasher(foldhash::fast::RandomState::default());
        AccessTokens {
            keys,
            issuers: Issuers::default(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_ttl.as_secs().max(1),
            leeway: config.leeway.as_secs(),
            cache,
        }
    }

    /// Accepts the tokens of these issuers too.
    pub fn with_issuers(self, issuers: Issuers) -> AccessTokens {
        AccessTokens { issuers, ..self }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The configured issuer a token claims to come from, if any.
    pub fn claimed_issuer(&self, token: &str) -> Option<&Issuer> {
        self.issuers.claimed_by(token)
    }

    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// Signs a token for a password login of `sub` at `now` in session `sid` (tests, benches).
    pub fn issue(&self, sub: &str, role: &str, sid: &str, now: u64) -> Result<Issued, TokenError> {
        let amr = [LOCAL_AMR.to_string()];
        let grant = Grant {
            sub,
            role,
            sid,
            idp: LOCAL_IDP,
            auth_time: now,
            amr: &amr,
            jkt: None,
        };
        self.issue_grant(&grant, now)
    }

    /// Signs a token for `grant`, valid from `now` for the access TTL.
    pub fn issue_grant(&self, grant: &Grant<'_>, now: u64) -> Result<Issued, TokenError> {
        let jti = random_id();
        let exp = now + self.ttl;
        let header = self.header("at+jwt");
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            sub: grant.sub.to_string(),
            role: grant.role.to_string(),
            sid: grant.sid.to_string(),
            jti: jti.clone(),
            iat: now,
            nbf: now,
            exp,
            // Always written: rules (SPEC 13) judge `auth_time` and `amr`, and a refreshed
            // token's `iat` says nothing about when its holder last proved who they are.
            idp: Some(grant.idp.to_string()),
            auth_time: Some(grant.auth_time),
            amr: Some(grant.amr.to_vec()),
            cnf: grant.jkt.map(|jkt| Confirmation { jkt: jkt.to_string() }),
        };
        let claims = serde_json::to_vec(&claims).map_err(|_| TokenError::BadClaims)?;
        let token = self.sign(&header, &claims)?;
        Ok(Issued { token, jti, exp })
    }

    /// A compact JWS of `claims` (JSON bytes) under `header`, signed with the signing key.
    pub(crate) fn sign(&self, header: &serde_json::Value, claims: &[u8]) -> Result<String, TokenError> {
        let signer = &self.keys.signer;
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), signer.key(), signer.alg)
            .map_err(|_| TokenError::BadSignature)?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// The JOSE header of a token of type `typ` from the signing key.
    pub(crate) fn header(&self, typ: &str) -> serde_json::Value {
        let signer = &self.keys.signer;
        serde_json::json!({ "alg": algorithm_name(signer.alg), "typ": typ, "kid": signer.kid })
    }

    /// `iss` of our tokens.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Every check of SPEC 5.1 except revocation, which the caller applies to the identity.
    pub fn verify(&self, token: &str, now: u64) -> Result<Arc<Identity>, TokenError> {
        if token.len() > MAX_ANY_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        if let Some(identity) = self.cache.get(token) {
            return match now < identity.exp.saturating_add(self.leeway) {
                true => Ok(identity),
                false => Err(TokenError::Expired),
            };
        }
        let identity = match self.issuers.claimed_by(token) {
            Some(issuer) => issuer.verify(token, now, self.leeway)?,
            None => self.verify_uncached(token, now)?,
        };
        let identity = Arc::new(identity);
        self.cache.insert(token.into(), identity.clone());
        Ok(identity)
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<Identity, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if [header, payload, signature]
            .iter()
            .any(|part| !is_base64url(part))
        {
            return Err(TokenError::Malformed);
        }
        let header: Header = decode_json(header).ok_or(TokenError::BadHeader)?;
        if !header.typ.eq_ignore_ascii_case("at+jwt")
            && !header.typ.eq_ignore_ascii_case("application/at+jwt")
        {
            return Err(TokenError::WrongType);
        }
        let verifier = self.keys.verifier(&header.kid).ok_or(TokenError::UnknownKey)?;
        if header.alg != algorithm_name(verifier.alg) {
            return Err(TokenError::AlgorithmMismatch);
        }
        let valid =
            jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &verifier.key, verifier.alg);
        if !matches!(valid, Ok(true)) {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims = decode_json(payload).ok_or(TokenError::BadClaims)?;
        self.check_claims(claims, now)
    }

    fn check_claims(&self, claims: Claims, now: u64) -> Result<Identity, TokenError> {
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let audience_ok = match &claims.aud {
            Audience::One(aud) => *aud == self.audience,
            Audience::Many(auds) => auds.contains(&self.audience),
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + self.leeway {
            return Err(TokenError::NotYetValid);
        }
        if claims.iat > now + self.leeway {
            return Err(TokenError::IssuedInFuture);
        }
        Identity::new(Claimed {
            kind: CredentialKind::Session,
            jti: claims.jti,
            sub: claims.sub,
            role: claims.role,
            sid: claims.sid,
            iat: claims.iat,
            exp: claims.exp,
            idp: claims.idp.unwrap_or_else(|| LOCAL_IDP.to_string()),
            auth_time: claims.auth_time.unwrap_or(claims.iat),
            amr: claims.amr.unwrap_or_else(|| vec![LOCAL_AMR.to_string()]),
            jkt: claims.cnf.map(|cnf| cnf.jkt),
        })
    }
}

/// A verified token stays cached at most this long (then it is verified again).
const MAX_CACHED_SECS: u64 = 3600;

/// Expires each cached identity when its token does, never later.
struct UntilExpiry;

impl moka::Expiry<Box<str>, Arc<Identity>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &Box<str>,
        identity: &Arc<Identity>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        // Capped: moka adds this to an `Instant`, and a signed but absurd `exp` must not overflow.
        let left = identity.exp.saturating_sub(unix_now()).min(MAX_CACHED_SECS);
        Some(Duration::from_secs(left))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 128 random bits as 32 hex digits, for token and session ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // aws-lc's generator only fails if the OS has no entropy source; an all-zero id would
    // still be unique per process start, but this is unreachable on supported systems.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex(&bytes)
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn algorithm_name(alg: jsonwebtoken::Algorithm) -> &'static str {
    match alg {
        jsonwebtoken::Algorithm::ES256 => "ES256",
        jsonwebtoken::Algorithm::EdDSA => "EdDSA",
        jsonwebtoken::Algorithm::RS256 => "RS256",
        jsonwebtoken::Algorithm::HS256 => "HS256",
        _ => "unsupported",
    }
}

fn is_base64url(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes a base64url JSON segment; duplicate or unknown members fail (serde derive).
fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a `sub`, `role` or id may become an identity header value: non-empty visible
/// ASCII of bounded length (SPEC 5.1).
pub fn fits_header(claim: &str) -> bool {
    !claim.is_empty() && claim.len() <= MAX_CLAIM_BYTES && claim.bytes().all(|b| b.is_ascii_graphic())
}

/// A claim that becomes a header value: non-empty visible ASCII, bounded length.
fn header_value(claim: &str) -> Result<HeaderValue, TokenError> {
    match fits_header(claim) {
        true => HeaderValue::from_str(claim).map_err(|_| TokenError::BadClaims),
        false => Err(TokenError::BadClaims),
    }
}
