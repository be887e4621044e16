//! Signed identity assertions (SPEC 12, `assertion = true`): a short-lived JWT per caller and
//! route, so a backend that other paths can reach verifies who is calling (with the JWKS)
//! instead of trusting the network. One is signed per (session, role) and route, then served
//! from memory for half its lifetime: a request never costs a signature once its session has
//! one, and every assertion handed out has at least half its lifetime left.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use moka::sync::Cache;
use serde::Serialize;

use super::tokens::{AccessTokens, Identity, TokenError};

/// The header that carries the assertion, to backends and on forward-auth answers.
pub const ASSERTION_HEADER: HeaderName = HeaderName::from_static("x-auth-assertion");
const TYP: &str = "portcullis-assertion+jwt";
/// An assertion's lifetime (SPEC 12: at most 60 s) ...
const LIFETIME: u64 = 60;
/// ... and how long it is handed out again.
const REUSED_FOR: Duration = Duration::from_secs(LIFETIME / 2);
/// Sessions with an assertion held per route; the oldest go first beyond this.
const CACHED: u64 = 100_000;

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    role: &'a str,
    sid: &'a str,
    iat: u64,
    exp: u64,
}

/// One route's assertions, by the caller's session and role header values.
#[derive(Clone)]
pub struct Assertions {
    route: String,
    cache: Cache<(HeaderValue, HeaderValue), HeaderValue>,
}

impl Assertions {
    pub fn new(route: &str) -> Assertions {
        let cache = Cache::builder()
            .max_capacity(CACHED)
            .time_to_live(REUSED_FOR)
            .build();
        Assertions {
            route: route.to_string(),
            cache,
        }
    }

    /// The assertion for `caller` on this route, signed now unless one is held.
    pub fn for_caller(
        &self,
        tokens: &AccessTokens,
        caller: &Identity,
        now: u64,
    ) -> Result<HeaderValue, TokenError> {
        let key = (caller.sid_header.clone(), caller.role_header.clone());
        if let Some(held) = self.cache.get(&key) {
            return Ok(held);
        }
        let claims = AssertionClaims {
            iss: tokens.issuer(),
            aud: &self.route,
            sub: &caller.sub,
            role: &caller.role,
            sid: &caller.sid,
            iat: now,
            exp: now + LIFETIME,
        };
        let claims = serde_json::to_vec(&claims).map_err(|_| TokenError::BadClaims)?;
        let token = tokens.sign(&tokens.header(TYP), &claims)?;
        // Base64url and dots only: always a valid header value.
        let value = HeaderValue::from_str(&token).map_err(|_| TokenError::BadClaims)?;
        self.cache.insert(key, value.clone());
        Ok(value)
    }
}
