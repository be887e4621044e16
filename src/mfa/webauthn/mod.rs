//! Passkeys: the relying-party side of WebAuthn Level 2 (§7.1 registration, §7.2
//! authentication) for discoverable credentials with user verification, signatures checked
//! with aws-lc-rs, the gateway's one crypto provider. Attestation is not asked for
//! (`"none"`): a passkey proves it holds its key, not which model made it.
//!
//! The ceremony state between `start` and `finish` is the caller's to carry (`ceremony`),
//! sealed by the gateway; what the authenticator sends back arrives as
//! `PublicKeyCredential.toJSON()` does it: base64url strings.

mod authenticator_data;
mod ceremony;
mod cose;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use authenticator_data::AuthenticatorData;
pub(crate) use ceremony::{Ceremony, Purpose};
pub use cose::PublicKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebauthnError {
    #[error("the {0} is malformed")]
    Malformed(&'static str),
    #[error("the credential's algorithm or key is not supported (ES256, EdDSA, RS256)")]
    Unsupported,
    #[error("the response is for another ceremony, challenge or origin")]
    WrongCeremony,
    #[error("the authenticator did not verify the user")]
    NotVerified,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature counter went backwards: the authenticator may be cloned")]
    CounterWentBack,
}

/// What the gateway keeps of a passkey (`FactorRecord::data`, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPasskey {
    pub public_key: PublicKey,
    pub sign_count: u32,
    #[serde(with = "b64")]
    pub user_handle: Vec<u8>,
}

/// The relying party: the domain passkeys are bound to, and the origin of the request that
/// runs the ceremony (`https://<host>` as the browser reached the gateway).
pub struct RelyingParty<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub origin: &'a str,
}

/// The browser's answer to `navigator.credentials.create()`, as `toJSON()` gives it.
#[derive(Debug, Deserialize)]
pub struct RegistrationCredential {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub response: AttestationResponse,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    pub attestation_object: String,
}

/// The browser's answer to `navigator.credentials.get()`.
#[derive(Debug, Deserialize)]
pub struct AssertionCredential {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub response: AssertionResponse,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponse {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    pub authenticator_data: String,
    pub signature: String,
    pub user_handle: Option<String>,
}

/// A verified registration: the credential id (base64url) and what to keep of it.
pub struct Registered {
    pub id: String,
    pub passkey: StoredPasskey,
}

/// The user handle passkeys of `sub` carry: stable per user (so an authenticator keeps one
/// passkey per account), and telling nothing about `sub` to whoever reads it.
pub fn user_handle(key: &crate::secret::Secret<[u8; 32]>, sub: &str) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose());
    let tag = aws_lc_rs::hmac::sign(&key, format!("portcullis passkey user {sub}").as_bytes());
    tag.as_ref()[..16].to_vec()
}

/// `PublicKeyCredentialCreationOptions` (JSON form) for a new passkey of `sub`.
pub fn creation_options(
    rp: &RelyingParty<'_>,
    sub: &str,
    user_handle: &[u8],
    challenge: &[u8],
    existing: &[String],
) -> Value {
    let params: Vec<Value> = cose::ALGORITHMS
        .iter()
        .map(|alg| json!({ "type": "public-key", "alg": alg }))
        .collect();
    let exclude: Vec<Value> = existing
        .iter()
        .map(|id| json!({ "type": "public-key", "id": id }))
        .collect();
    json!({
        "rp": { "id": rp.id, "name": rp.name },
        "user": { "id": URL_SAFE_NO_PAD.encode(user_handle), "name": sub, "displayName": sub },
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "pubKeyCredParams": params,
        "timeout": ceremony::LIFETIME_SECS * 1000,
        "excludeCredentials": exclude,
        "authenticatorSelection": { "residentKey": "required", "requireResidentKey": true, "userVerification": "required" },
        "attestation": "none",
    })
}

/// `PublicKeyCredentialRequestOptions` (JSON form); `allow` empty lets the user pick any
/// passkey of this site (a passwordless login).
pub fn request_options(rp: &RelyingParty<'_>, challenge: &[u8], allow: &[String]) -> Value {
    let allow: Vec<Value> = allow
        .iter()
        .map(|id| json!({ "type": "public-key", "id": id }))
        .collect();
    json!({
        "rpId": rp.id,
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "timeout": ceremony::LIFETIME_SECS * 1000,
        "allowCredentials": allow,
        "userVerification": "required",
    })
}

/// §7.1: checks a registration against the challenge, origin and RP ID.
pub fn verify_registration(
    rp: &RelyingParty<'_>,
    challenge: &[u8],
    user_handle: &[u8],
    credential: &RegistrationCredential,
) -> Result<Registered, WebauthnError> {
    if credential.kind != "public-key" {
        return Err(WebauthnError::Malformed("credential type"));
    }
    check_client_data(
        rp,
        "webauthn.create",
        challenge,
        &credential.response.client_data_json,
    )?;
    let object = decode(&credential.response.attestation_object, "attestation object")?;
    let object: ciborium::Value = ciborium::from_reader(object.as_slice())
        .map_err(|_| WebauthnError::Malformed("attestation object"))?;
    let auth_data = object
        .as_map()
        .and_then(|map| map.iter().find(|(k, _)| k.as_text() == Some("authData")))
        .and_then(|(_, v)| v.as_bytes())
        .ok_or(WebauthnError::Malformed("attestation object"))?;
    let data = AuthenticatorData::parse(auth_data)?;
    check_authenticator(rp, &data)?;
    let (id, key) = data
        .attested
        .as_ref()
        .ok_or(WebauthnError::Malformed("attested credential"))?;
    let id = URL_SAFE_NO_PAD.encode(id);
    if id != credential.id {
        return Err(WebauthnError::Malformed("credential id"));
    }
    let passkey = StoredPasskey {
        public_key: PublicKey::from_cose(key)?,
        sign_count: data.sign_count,
        user_handle: user_handle.to_vec(),
    };
    Ok(Registered { id, passkey })
}

/// §7.2: checks an assertion of `passkey` against the challenge, origin and RP ID; the
/// passkey's new signature count.
pub fn verify_assertion(
    rp: &RelyingParty<'_>,
    challenge: &[u8],
    passkey: &StoredPasskey,
    credential: &AssertionCredential,
) -> Result<u32, WebauthnError> {
    let response = &credential.response;
    if credential.kind != "public-key" {
        return Err(WebauthnError::Malformed("credential type"));
    }
    if let Some(handle) = &response.user_handle {
        let handle = decode(handle, "user handle")?;
        if verify_slices_are_equal(&handle, &passkey.user_handle).is_err() {
            return Err(WebauthnError::WrongCeremony);
        }
    }
    let client_data = check_client_data(rp, "webauthn.get", challenge, &response.client_data_json)?;
    let auth_bytes = decode(&response.authenticator_data, "authenticator data")?;
    let data = AuthenticatorData::parse(&auth_bytes)?;
    check_authenticator(rp, &data)?;
    let signed = [
        &auth_bytes[..],
        digest::digest(&digest::SHA256, &client_data).as_ref(),
    ]
    .concat();
    let signature = decode(&response.signature, "signature")?;
    if !passkey.public_key.verifies(&signed, &signature) {
        return Err(WebauthnError::BadSignature);
    }
    // §7.2 step 21: a counter that does not grow (when either side counts) means two
    // authenticators share the key.
    let counts = data.sign_count != 0 || passkey.sign_count != 0;
    if counts && data.sign_count <= passkey.sign_count {
        return Err(WebauthnError::CounterWentBack);
    }
    Ok(data.sign_count)
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: bool,
}

/// The client data's type, challenge and origin; its raw bytes, which the signature covers.
fn check_client_data(
    rp: &RelyingParty<'_>,
    kind: &str,
    challenge: &[u8],
    encoded: &str,
) -> Result<Vec<u8>, WebauthnError> {
    let raw = decode(encoded, "client data")?;
    let data: ClientData =
        serde_json::from_slice(&raw).map_err(|_| WebauthnError::Malformed("client data"))?;
    let challenge_matches = verify_slices_are_equal(
        data.challenge.as_bytes(),
        URL_SAFE_NO_PAD.encode(challenge).as_bytes(),
    )
    .is_ok();
    match data.kind == kind && challenge_matches && data.origin == rp.origin && !data.cross_origin {
        true => Ok(raw),
        false => Err(WebauthnError::WrongCeremony),
    }
}

fn check_authenticator(rp: &RelyingParty<'_>, data: &AuthenticatorData<'_>) -> Result<(), WebauthnError> {
    let expected = digest::digest(&digest::SHA256, rp.id.as_bytes());
    if verify_slices_are_equal(data.rp_id_hash, expected.as_ref()).is_err() {
        return Err(WebauthnError::WrongCeremony);
    }
    match data.user_verified() {
        true => Ok(()),
        false => Err(WebauthnError::NotVerified),
    }
}

fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, WebauthnError> {
    // Limits what a client can make us decode; real values are far smaller.
    if text.len() > 16 * 1024 {
        return Err(WebauthnError::Malformed(what));
    }
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| WebauthnError::Malformed(what))
}

/// Bytes as base64url text in stored JSON.
mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(in crate::mfa) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    pub(in crate::mfa) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        URL_SAFE_NO_PAD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
