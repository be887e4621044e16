//! The `__Host-portcullis-oidc` cookie: what a login through a provider must find again at its
//! callback (state, nonce, PKCE verifier, where to return), sealed with AES-256-GCM under a key
//! derived from the signing key. The browser can neither read nor forge it, any replica with
//! the same key can open it, it is valid for ten minutes, and the callback accepts its state
//! once (through the session store, so on every replica).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::auth::sealed;
use crate::secret::Secret;

pub(crate) const COOKIE: &str = "__Host-portcullis-oidc";
/// How long a login may take at the provider (SPEC 10: at most ten minutes).
pub(crate) const LIFETIME_SECS: u64 = 600;
/// A sealed cookie longer than this was not written by us.
const MAX_SEALED: usize = 4096;

/// A login in flight, from `/auth/oidc/{name}/login` to its callback.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LoginState {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub redirect_uri: String,
    pub issued_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateProblem {
    /// Not sealed by this gateway's key, or altered.
    Unreadable,
    Expired,
}

impl LoginState {
    /// A fresh login: random state, nonce and verifier (256 bits each).
    pub(crate) fn begin(provider: &str, return_to: String, redirect_uri: String, now: u64) -> LoginState {
        LoginState {
            provider: provider.to_owned(),
            state: random_text(),
            nonce: random_text(),
            verifier: random_text(),
            return_to,
            redirect_uri,
            issued_at: now,
        }
    }

    /// PKCE S256 (RFC 7636 4.2): what the provider is shown of the verifier.
    pub(crate) fn code_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, self.verifier.as_bytes()))
    }

    /// The cookie value; `None` only if the system's random source fails.
    pub(crate) fn seal(&self, key: &Secret<[u8; 32]>) -> Option<String> {
        let plain = serde_json::to_vec(self).ok()?;
        sealed::seal(key, COOKIE.as_bytes(), &plain).map(|value| URL_SAFE_NO_PAD.encode(value))
    }

    /// Opens a cookie value sealed by `seal`, if it is ours, intact and not older than ten minutes.
    pub(crate) fn open(key: &Secret<[u8; 32]>, value: &str, now: u64) -> Result<LoginState, StateProblem> {
        if value.len() > MAX_SEALED {
            return Err(StateProblem::Unreadable);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| StateProblem::Unreadable)?;
        let plain = sealed::open(key, COOKIE.as_bytes(), &bytes).ok_or(StateProblem::Unreadable)?;
        let state: LoginState = serde_json::from_slice(&plain).map_err(|_| StateProblem::Unreadable)?;
        match now < state.issued_at.saturating_add(LIFETIME_SECS) && state.issued_at <= now + 60 {
            true => Ok(state),
            false => Err(StateProblem::Expired),
        }
    }
}

/// 256 random bits, base64url.
fn random_text() -> String {
    let mut bytes = [0u8; 32];
    // As for session ids: only fails without an OS entropy source.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Secret<[u8; 32]> {
        Secret::new([byte; 32])
    }

    #[test]
    fn a_sealed_state_opens_only_with_its_key_intact_and_within_ten_minutes() {
        let state = LoginState::begin("corp", "/app".into(), "https://gw/cb".into(), 1000);
        let sealed = state.seal(&key(1)).expect("sealed");
        assert!(
            !sealed.contains(&state.nonce),
            "the cookie does not show the nonce"
        );
        let opened = LoginState::open(&key(1), &sealed, 1000 + LIFETIME_SECS - 1).expect("opens");
        assert_eq!((opened.state, opened.verifier), (state.state, state.verifier));
        assert_eq!(
            LoginState::open(&key(2), &sealed, 1000).unwrap_err(),
            StateProblem::Unreadable
        );
        assert_eq!(
            LoginState::open(&key(1), &sealed, 1000 + LIFETIME_SECS).unwrap_err(),
            StateProblem::Expired
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(
            LoginState::open(&key(1), &tampered, 1000).unwrap_err(),
            StateProblem::Unreadable
        );
        for junk in ["", "x", "%%%", &"A".repeat(5000)] {
            assert_eq!(
                LoginState::open(&key(1), junk, 1000).unwrap_err(),
                StateProblem::Unreadable
            );
        }
    }

    #[test]
    fn the_code_challenge_is_rfc_7636_s256() {
        // RFC 7636 appendix B.
        let mut state = LoginState::begin("corp", "/".into(), "https://gw/cb".into(), 0);
        state.verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into();
        assert_eq!(
            state.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
