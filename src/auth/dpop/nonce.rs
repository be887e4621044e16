//! Server nonces (RFC 9449 §8, `[dpop] require_nonce`): the gateway's answer to a client's
//! clock and to proofs made ahead of time. A nonce is its issue time and an HMAC of it, so
//! every replica sharing the signing key accepts the others' nonces without shared state.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::Secret;

/// How long a nonce is accepted after it was issued.
pub(super) const NONCE_LIFETIME_SECS: u64 = 300;
/// The HMAC is cut to this many bytes: a forgery needs 2^128 tries.
const TAG_BYTES: usize = 16;

pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    /// Nonces under `key` (the gateway derives it from its signing key's material).
    pub fn new(key: &Secret<[u8; 32]>) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        }
    }

    /// A nonce issued at `now`: base64url of the time (8 bytes, big-endian) and its tag.
    pub fn issue(&self, now: u64) -> String {
        let time = now.to_be_bytes();
        let tag = hmac::sign(&self.key, &time);
        let mut bytes = time.to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` is one of ours, issued within the last `NONCE_LIFETIME_SECS`.
    pub fn is_current(&self, nonce: &str, now: u64, leeway: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != 8 + TAG_BYTES {
            return false;
        }
        let (time, tag) = bytes.split_at(8);
        let expected = hmac::sign(&self.key, time);
        if verify_slices_are_equal(&expected.as_ref()[..TAG_BYTES], tag).is_err() {
            return false;
        }
        let issued = u64::from_be_bytes(time.try_into().unwrap_or_default());
        issued <= now + leeway && now.saturating_sub(issued) <= NONCE_LIFETIME_SECS
    }
}
