//! The state of one WebAuthn ceremony between `start` and `finish`: sealed by the gateway and
//! carried by the client, valid five minutes, and finished once (its challenge is spent
//! through the store, so on every replica).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::auth::sealed;
use crate::mfa::pending::PendingLogin;
use crate::secret::Secret;

pub(crate) const LIFETIME_SECS: u64 = 300;
const PURPOSE: &[u8] = b"portcullis webauthn ceremony v1";
const MAX_STATE: usize = 4096;

/// What the ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Purpose {
    /// A new passkey for `sub`.
    Register,
    /// A passwordless login: any passkey of this site.
    Login,
    /// The second factor of the password login in `pending`.
    SecondFactor,
    /// Renewing session `sid` of `sub`.
    StepUp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ceremony {
    pub purpose: Purpose,
    #[serde(with = "super::b64")]
    pub challenge: Vec<u8>,
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// Register: the user handle the new passkey carries.
    #[serde(default, with = "super::b64")]
    pub user_handle: Vec<u8>,
    /// Second factor: the password login it finishes.
    pub pending: Option<PendingLogin>,
    /// Login: `token`, `cookie` or `redirect` (a page), and where to after a page.
    pub delivery: String,
    pub return_to: String,
    pub issued_at: u64,
}

impl Ceremony {
    /// A ceremony with a new 256-bit challenge; `None` only without an OS entropy source.
    pub(crate) fn begin(purpose: Purpose, now: u64) -> Option<Ceremony> {
        let mut challenge = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut challenge).ok()?;
        Some(Ceremony {
            purpose,
            challenge,
            sub: None,
            sid: None,
            user_handle: Vec::new(),
            pending: None,
            delivery: "token".to_string(),
            return_to: "/".to_string(),
            issued_at: now,
        })
    }

    pub(crate) fn seal(&self, key: &Secret<[u8; 32]>) -> Option<String> {
        let plain = serde_json::to_vec(self).ok()?;
        sealed::seal(key, PURPOSE, &plain).map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A ceremony we sealed, intact, of `purpose` (any, for `None`), not older than five minutes.
    pub(crate) fn open(
        key: &Secret<[u8; 32]>,
        state: &str,
        purpose: Option<Purpose>,
        now: u64,
    ) -> Option<Ceremony> {
        if state.len() > MAX_STATE {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(state).ok()?;
        let ceremony: Ceremony = serde_json::from_slice(&sealed::open(key, PURPOSE, &bytes)?).ok()?;
        let fresh = now < ceremony.issued_at.saturating_add(LIFETIME_SECS) && ceremony.issued_at <= now + 60;
        (fresh && purpose.is_none_or(|p| p == ceremony.purpose)).then_some(ceremony)
    }

    /// The one-use key that finishing spends.
    pub(crate) fn once_key(&self) -> String {
        format!("webauthn:{}", URL_SAFE_NO_PAD.encode(&self.challenge))
    }

    pub(crate) fn keep_until(&self) -> u64 {
        self.issued_at + LIFETIME_SECS
    }
}
