//! The `mfa_token` of a password login that needs its second factor: who passed the password,
//! how they want the result, and when; sealed under the gateway's browser-state key, valid five
//! minutes, and finishing one login only (its id is spent through the store).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::auth::sealed;
use crate::secret::Secret;

pub(crate) const LIFETIME_SECS: u64 = 300;
const PURPOSE: &[u8] = b"portcullis mfa token v1";
/// A longer token was not written by us.
const MAX_TOKEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    /// Random: spent once through the store.
    pub id: String,
    pub sub: String,
    pub role: String,
    /// `token`, `cookie`, or `redirect` (the HTML form, to `return_to`).
    pub delivery: String,
    pub return_to: String,
    pub issued_at: u64,
}

impl PendingLogin {
    pub(crate) fn new(
        sub: &str,
        role: &str,
        delivery: &str,
        return_to: &str,
        now: u64,
    ) -> Option<PendingLogin> {
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).ok()?;
        Some(PendingLogin {
            id: URL_SAFE_NO_PAD.encode(id),
            sub: sub.to_string(),
            role: role.to_string(),
            delivery: delivery.to_string(),
            return_to: return_to.to_string(),
            issued_at: now,
        })
    }

    pub(crate) fn seal(&self, key: &Secret<[u8; 32]>) -> Option<String> {
        let plain = serde_json::to_vec(self).ok()?;
        sealed::seal(key, PURPOSE, &plain).map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The login a token we sealed carries, if intact and not older than five minutes.
    pub(crate) fn open(key: &Secret<[u8; 32]>, token: &str, now: u64) -> Option<PendingLogin> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let plain = sealed::open(key, PURPOSE, &bytes)?;
        let pending: PendingLogin = serde_json::from_slice(&plain).ok()?;
        let fresh = now < pending.issued_at.saturating_add(LIFETIME_SECS) && pending.issued_at <= now + 60;
        fresh.then_some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_with_its_key_within_five_minutes_only() {
        let key = Secret::new([3u8; 32]);
        let pending = PendingLogin::new("alice", "admin", "token", "/", 1000).expect("random");
        let token = pending.seal(&key).expect("sealed");
        assert!(!token.contains("alice"));
        assert_eq!(
            PendingLogin::open(&key, &token, 1000 + LIFETIME_SECS - 1),
            Some(pending)
        );
        assert_eq!(PendingLogin::open(&key, &token, 1000 + LIFETIME_SECS), None);
        assert_eq!(PendingLogin::open(&Secret::new([4u8; 32]), &token, 1000), None);
        assert_eq!(PendingLogin::open(&key, "junk", 1000), None);
    }
}
