//! Authentication: keys, access tokens, and turning a request's credential into an `Identity`.
//! Nothing here does I/O on the request path.

pub mod cookies;
pub mod csrf;
pub mod foreign;
pub mod identity;
pub mod keys;
pub mod revocation;
pub mod tokens;
mod weak_secret;

pub use identity::{Credential, CredentialError, credential};
pub use tokens::{AccessTokens, Identity, TokenError};

use std::sync::Arc;

use http::HeaderMap;

use crate::config::CookiesConfig;
pub use revocation::Revocations;

/// The verified caller of a request, if it presents a credential: `Ok(None)` means none was
/// presented; a presented but invalid one is an error (the caller decides what public routes do).
pub fn identify(
    tokens: &AccessTokens,
    revocations: &Revocations,
    cookies: &CookiesConfig,
    headers: &HeaderMap,
    now: u64,
) -> Result<Option<Arc<Identity>>, TokenError> {
    let token = match credential(headers, cookies) {
        Ok(Some(Credential::Bearer(token) | Credential::Cookie(token))) => token,
        Ok(None) => return Ok(None),
        // A malformed `Authorization` or a tossed cookie is an invalid credential.
        Err(_) => return Err(TokenError::Malformed),
    };
    verify(tokens, revocations, token, now).map(Some)
}

/// Every check of SPEC 5.1, revocation included: memory only, no I/O.
pub fn verify(
    tokens: &AccessTokens,
    revocations: &Revocations,
    token: &str,
    now: u64,
) -> Result<Arc<Identity>, TokenError> {
    let identity = tokens.verify(token, now)?;
    revocations.check(&identity)?;
    Ok(identity)
}
