//! Authentication: keys, access tokens, and turning a request's credential into an `Identity`.
//! Nothing here does I/O on the request path.

pub mod admin_token;
pub mod api_keys;
pub mod assertion;
pub mod cookies;
pub mod csrf;
pub mod dpop;
pub mod foreign;
pub mod identity;
pub mod issuers;
pub mod keys;
pub mod mapping;
pub mod revocation;
pub(crate) mod sealed;
pub mod tokens;
mod weak_secret;

pub use api_keys::ApiKeys;
pub use identity::{Credential, CredentialError, credential};
pub use tokens::{AccessTokens, CredentialKind, Identity, TokenError};

use std::sync::Arc;

pub use revocation::Revocations;

/// What a presented credential is checked against.
pub struct Verifiers<'a> {
    pub tokens: &'a AccessTokens,
    pub api_keys: &'a ApiKeys,
    pub revocations: &'a Revocations,
}

impl Verifiers<'_> {
    /// Every check of SPEC 5.1 (or 11 for API keys and other issuers' tokens), revocation
    /// included: memory only, no I/O.
    pub fn verify(&self, token: &str, now: u64) -> Result<Arc<Identity>, TokenError> {
        let identity = match token.starts_with(api_keys::PREFIX) {
            true => self.api_keys.verify(token, now)?,
            false => self.tokens.verify(token, now)?,
        };
        self.revocations.check(&identity)?;
        Ok(identity)
    }
}
