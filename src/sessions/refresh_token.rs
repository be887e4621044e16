//! Refresh tokens: opaque strings derived from a per-session secret, so the store never holds
//! a token and the token of any generation can be derived again (SPEC 5.2, 5.3).
//!
//! A token is base64url(sid (16 bytes) || generation (8 bytes, big-endian) || tag (32 bytes)),
//! where tag = HMAC-SHA256(seed, label || sid || generation). Only the holder of the session's
//! seed can make a valid tag, and the 256-bit seed makes every token unguessable.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::store::SEED_BYTES;

const LABEL: &[u8] = b"portcullis refresh token v1";
const SID_BYTES: usize = 16;
const TOKEN_BYTES: usize = SID_BYTES + 8 + 32;

/// A presented token, parsed but not yet checked against its session's seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// Lower-case hex, as sessions are stored.
    pub sid: String,
    pub generation: u64,
    tag: [u8; 32],
}

/// Parses the token's shape; `None` for anything that is not one of ours.
pub fn parse(token: &str) -> Option<Presented> {
    if token.len() > 128 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != TOKEN_BYTES {
        return None;
    }
    let (sid, rest) = bytes.split_at(SID_BYTES);
    let (generation, tag) = rest.split_at(8);
    Some(Presented {
        sid: sid.iter().map(|b| format!("{b:02x}")).collect(),
        generation: u64::from_be_bytes(generation.try_into().ok()?),
        tag: tag.try_into().ok()?,
    })
}

impl Presented {
    /// Whether the tag was made with this seed (constant-time comparison).
    pub fn is_signed_by(&self, seed: &[u8; SEED_BYTES]) -> bool {
        match sid_bytes(&self.sid) {
            Some(sid) => {
                constant_time::verify_slices_are_equal(&tag(seed, &sid, self.generation), &self.tag).is_ok()
            }
            None => false,
        }
    }
}

/// The token of `generation` for session `sid` (hex) with `seed`; `None` if `sid` is not ours.
pub fn derive(seed: &[u8; SEED_BYTES], sid: &str, generation: u64) -> Option<String> {
    let sid = sid_bytes(sid)?;
    let mut bytes = Vec::with_capacity(TOKEN_BYTES);
    bytes.extend_from_slice(&sid);
    bytes.extend_from_slice(&generation.to_be_bytes());
    bytes.extend_from_slice(&tag(seed, &sid, generation));
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn tag(seed: &[u8; SEED_BYTES], sid: &[u8; SID_BYTES], generation: u64) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, seed);
    let mut context = hmac::Context::with_key(&key);
    context.update(LABEL);
    context.update(sid);
    context.update(&generation.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(context.sign().as_ref());
    out
}

fn sid_bytes(sid: &str) -> Option<[u8; SID_BYTES]> {
    if sid.len() != SID_BYTES * 2 {
        return None;
    }
    let mut out = [0u8; SID_BYTES];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(sid.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fresh random session seed.
pub fn new_seed() -> [u8; SEED_BYTES] {
    let mut seed = [0u8; SEED_BYTES];
    // Only fails without an OS entropy source, where nothing here could work anyway.
    let _ = aws_lc_rs::rand::fill(&mut seed);
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn a_derived_token_parses_back_and_verifies_with_its_seed_only() {
        let seed = new_seed();
        let token = derive(&seed, SID, 7).unwrap();
        let presented = parse(&token).unwrap();
        assert_eq!((presented.sid.as_str(), presented.generation), (SID, 7));
        assert!(presented.is_signed_by(&seed));
        assert!(!presented.is_signed_by(&new_seed()));
    }

    #[test]
    fn derivation_is_deterministic_per_generation() {
        let seed = new_seed();
        assert_eq!(derive(&seed, SID, 3), derive(&seed, SID, 3));
        assert_ne!(derive(&seed, SID, 3), derive(&seed, SID, 4));
    }

    #[test]
    fn a_tampered_generation_or_sid_fails_verification() {
        let seed = new_seed();
        let token = derive(&seed, SID, 1).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[SID_BYTES + 7] ^= 1;
        assert!(
            !parse(&URL_SAFE_NO_PAD.encode(&bytes))
                .unwrap()
                .is_signed_by(&seed)
        );
        bytes[SID_BYTES + 7] ^= 1;
        bytes[0] ^= 1;
        assert!(
            !parse(&URL_SAFE_NO_PAD.encode(&bytes))
                .unwrap()
                .is_signed_by(&seed)
        );
    }

    #[test]
    fn garbage_is_not_a_token() {
        for bad in [
            "",
            "abc",
            "!!!!",
            &"A".repeat(74),
            &"A".repeat(76),
            &"A".repeat(200),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
