//! Password checks: against the users file on the hashing pool, or delegated to `check_url`.
//!
//! With a users file, every failure verifies exactly one hash (the user's or a dummy), so the
//! time a login takes does not tell an unknown user from a wrong or disabled one.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::{MAX_NAME_BYTES, StoredHash, Users, UsersFile, visible_ascii};
use crate::auth::tokens::LOCAL_IDP;
use crate::limits::{HashPool, PoolBusy};
use crate::proxy::UpstreamClient;
use crate::sessions::service::Standing;
use crate::sessions::store::SessionRecord;

/// Longer passwords are refused before any hashing: hashing megabytes is a cheap DoS.
const MAX_PASSWORD_BYTES: usize = 1024;
/// bcrypt ignores everything past 72 bytes, so a longer password would match on its prefix.
const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;
const CHECK_URL_TIMEOUT: Duration = Duration::from_secs(5);

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub sub: String,
    pub role: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("password hashing is saturated")]
    Overloaded,
    #[error("the password checker is unreachable")]
    CheckerUnavailable,
}

/// The password check, local or delegated.
// Built once per config and shared, so the size of the `Remote` variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum PasswordCheck {
    File(Arc<Users>),
    Remote { url: http::Uri, client: UpstreamClient },
}

// === impl PasswordCheck ===

impl PasswordCheck {
    pub async fn check(
        &self,
        pool: &HashPool,
        username: &str,
        password: &str,
    ) -> Result<Authenticated, LoginError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(LoginError::InvalidCredentials);
        }
        match self {
            PasswordCheck::File(users) => {
                let (users, username, password) = (users.current(), username.to_owned(), password.to_owned());
                let verified = pool.run(move || users.verify(&username, &password)).await;
                verified.map_err(|PoolBusy| LoginError::Overloaded)?
            }
            PasswordCheck::Remote { url, client } => check_remote(url, client, username, password).await,
        }
    }

    /// Whether the holder of `session` may still refresh it, and with which role. A session
    /// begun through a provider is the provider's to end (back-channel logout): its role stays.
    pub fn standing(&self, session: &SessionRecord) -> Standing {
        if session.origin.idp != LOCAL_IDP {
            return Standing::Unknown;
        }
        self.standing_of(&session.sub)
    }

    /// Whether the users file still lets `sub` in, and with which role; `Unknown` with a
    /// password checker, which answers only for a password.
    pub fn standing_of(&self, sub: &str) -> Standing {
        match self {
            PasswordCheck::File(users) => match users.current().get(sub) {
                Some(user) if !user.disabled => Standing::Active {
                    role: user.role.clone(),
                },
                _ => Standing::Barred,
            },
            PasswordCheck::Remote { .. } => Standing::Unknown,
        }
    }
}

// === the users file ===

impl UsersFile {
    /// Blocking (runs on the hashing pool); verifies one hash whatever the outcome.
    fn verify(&self, username: &str, password: &str) -> Result<Authenticated, LoginError> {
        let Some(user) = self.get(username) else {
            verify_dummy(password.as_bytes());
            return Err(LoginError::InvalidCredentials);
        };
        let matches = user.hash.matches(password.as_bytes());
        // An empty password never logs in, even if someone hashed the empty string.
        match matches && !user.disabled && !password.is_empty() {
            true => Ok(Authenticated {
                sub: user.name.clone(),
                role: user.role.clone(),
            }),
            false => Err(LoginError::InvalidCredentials),
        }
    }
}

impl StoredHash {
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2id(hash) => Argon2::default().verify_password(password, &**hash).is_ok(),
            StoredHash::Bcrypt(_) if password.len() > BCRYPT_MAX_PASSWORD_BYTES => {
                verify_dummy(password);
                false
            }
            StoredHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        }
    }
}

/// Verified when there is no real hash to verify; built on first use, on a pool thread.
pub(super) static DUMMY_HASH: LazyLock<Option<PasswordHash>> = LazyLock::new(|| {
    // The input is fixed and irrelevant: the dummy only has to cost what a default hash costs.
    let salt = b"portcullis-dummy";
    Argon2::default()
        .hash_password_with_salt(b"no user has this password", salt)
        .ok()
});

fn verify_dummy(password: &[u8]) {
    if let Some(hash) = DUMMY_HASH.as_ref() {
        let _ = Argon2::default().verify_password(password, hash);
    }
}

/// An argon2id PHC string with the RustCrypto defaults (m=19456, t=2, p=1) and an OS-random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("an empty password can never log in".to_string());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "passwords over {MAX_PASSWORD_BYTES} bytes are refused at login"
        ));
    }
    let hash = Argon2::default().hash_password(password.as_bytes());
    hash.map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

// === check_url ===

#[derive(Deserialize)]
struct CheckAnswer {
    sub: String,
    role: String,
}

async fn check_remote(
    url: &http::Uri,
    client: &UpstreamClient,
    username: &str,
    password: &str,
) -> Result<Authenticated, LoginError> {
    // No checker should accept an empty password; asking it would only add load.
    if password.is_empty() {
        return Err(LoginError::InvalidCredentials);
    }
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    match client.post_json(url, Bytes::from(body), CHECK_URL_TIMEOUT).await {
        Ok((StatusCode::OK, answer)) => identity_from(&answer).ok_or(LoginError::InvalidCredentials),
        Ok((status, _)) => {
            tracing::debug!(%status, "check_url refused the login");
            Err(LoginError::InvalidCredentials)
        }
        // post_json fails only when no answer came (unreachable, timeout, broken exchange).
        Err(error) => {
            tracing::warn!(%error, "check_url is unavailable");
            Err(LoginError::CheckerUnavailable)
        }
    }
}

/// The checker's `{"sub","role"}`; anything that could not be a header value is refused.
fn identity_from(body: &[u8]) -> Option<Authenticated> {
    let CheckAnswer { sub, role } = serde_json::from_slice(body).ok()?;
    let valid = visible_ascii(&sub) && sub.len() <= MAX_NAME_BYTES && visible_ascii(&role);
    valid.then_some(Authenticated { sub, role })
}
