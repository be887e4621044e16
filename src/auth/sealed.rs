//! AES-256-GCM sealing of small values the gateway must find again unaltered: browser state
//! in cookies, second-factor secrets at rest. `purpose` is the associated data, so a value
//! sealed for one purpose (or one user) never opens as another.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::secret::Secret;

/// `nonce || ciphertext || tag`, with a random nonce; `None` only without an OS entropy source.
pub(crate) fn seal(key: &Secret<[u8; 32]>, purpose: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    let mut sealed = plain.to_vec();
    cipher(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose),
            &mut sealed,
        )
        .ok()?;
    let mut value = nonce.to_vec();
    value.append(&mut sealed);
    Some(value)
}

/// The plain bytes of a value `seal` made with this key and purpose, if intact.
pub(crate) fn open(key: &Secret<[u8; 32]>, purpose: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = cipher(key)?
        .open_in_place(nonce, Aad::from(purpose), &mut body)
        .ok()?;
    let length = plain.len();
    body.truncate(length);
    Some(body)
}

/// HKDF-SHA256 of secret `material` for the one use `info` names: a key of its own that
/// still agrees across replicas sharing the material. `None` only if HKDF fails.
pub(crate) fn derive_key(material: &[u8], info: &[u8]) -> Option<Secret<[u8; 32]>> {
    use aws_lc_rs::hkdf;
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis").extract(material);
    let mut key = [0u8; 32];
    prk.expand(&[info], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut key))
        .ok()?;
    Some(Secret::new(key))
}

fn cipher(key: &Secret<[u8; 32]>) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .ok()
        .map(LessSafeKey::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_purpose_intact() {
        let key = Secret::new([1u8; 32]);
        let sealed = seal(&key, b"totp:alice", b"secret").expect("sealed");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open(&key, b"totp:alice", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(open(&key, b"totp:bob", &sealed), None);
        assert_eq!(open(&Secret::new([2u8; 32]), b"totp:alice", &sealed), None);
        let mut altered = sealed.clone();
        altered[NONCE_LEN] ^= 1;
        assert_eq!(open(&key, b"totp:alice", &altered), None);
        assert_eq!(open(&key, b"totp:alice", &sealed[..NONCE_LEN]), None);
    }
}
