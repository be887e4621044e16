//! Authenticator data (WebAuthn §6.1): the RP ID hash, the flags, the signature counter and,
//! at registration, the new credential's id and public key (a COSE key, CBOR).

use super::WebauthnError;

/// The user touched the authenticator.
const USER_PRESENT: u8 = 0x01;
/// The authenticator verified the user (PIN, biometrics).
const USER_VERIFIED: u8 = 0x04;
/// Attested credential data follows the counter.
const ATTESTED_DATA: u8 = 0x40;
/// Credential ids are at most this long (§5.8.3 limits them to 1023 bytes).
const MAX_CREDENTIAL_ID: usize = 1023;

#[derive(Debug)]
pub(super) struct AuthenticatorData<'a> {
    pub rp_id_hash: &'a [u8],
    pub flags: u8,
    pub sign_count: u32,
    /// At registration: the credential id and its COSE public key (still CBOR).
    pub attested: Option<(&'a [u8], ciborium::Value)>,
}

impl<'a> AuthenticatorData<'a> {
    pub(super) fn parse(bytes: &'a [u8]) -> Result<AuthenticatorData<'a>, WebauthnError> {
        let malformed = || WebauthnError::Malformed("authenticator data");
        if bytes.len() < 37 {
            return Err(malformed());
        }
        let flags = bytes[32];
        let sign_count = u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]);
        let attested = match flags & ATTESTED_DATA {
            0 => None,
            _ => Some(attested_credential(&bytes[37..]).ok_or_else(malformed)?),
        };
        Ok(AuthenticatorData {
            rp_id_hash: &bytes[..32],
            flags,
            sign_count,
            attested,
        })
    }

    /// Both user presence and user verification: a passkey stands for a whole login (or
    /// a second factor), so it must have verified the user, not only seen a touch.
    pub(super) fn user_verified(&self) -> bool {
        self.flags & (USER_PRESENT | USER_VERIFIED) == USER_PRESENT | USER_VERIFIED
    }
}

/// aaguid (16), credential id length (2), credential id, COSE key; extensions may follow.
fn attested_credential(rest: &[u8]) -> Option<(&[u8], ciborium::Value)> {
    let length = usize::from(u16::from_be_bytes([*rest.get(16)?, *rest.get(17)?]));
    if length == 0 || length > MAX_CREDENTIAL_ID {
        return None;
    }
    let id = rest.get(18..18 + length)?;
    let mut key_bytes = rest.get(18 + length..)?;
    let key: ciborium::Value = ciborium::from_reader(&mut key_bytes).ok()?;
    Some((id, key))
}
