//! The public key a DPoP proof carries in its `jwk` header (RFC 9449 §4.2): EC P-256, Ed25519
//! or RSA of 2048 bits or more, never a symmetric or a private key; and its RFC 7638
//! thumbprint, which an access token's `cnf.jkt` names.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::DpopError;

/// Members that only a private (or symmetric) key has: a proof carrying one is refused, as
/// its client has published its secret.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof's verified-to-be-public key.
pub(super) struct ProofKey {
    pub key: DecodingKey,
    /// RFC 7638 SHA-256 thumbprint, base64url.
    pub thumbprint: String,
}

impl ProofKey {
    /// The key of `jwk` for `alg`; its type and curve must be `alg`'s.
    pub(super) fn from_jwk(jwk: &Map<String, Value>, alg: Algorithm) -> Result<ProofKey, DpopError> {
        if PRIVATE_MEMBERS.iter().any(|member| jwk.contains_key(*member)) {
            return Err(DpopError::PrivateKey);
        }
        let text = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(DpopError::BadKey);
        let bytes = |name: &str| URL_SAFE_NO_PAD.decode(text(name)?).map_err(|_| DpopError::BadKey);
        let (key, members) = match (text("kty")?, alg) {
            ("EC", Algorithm::ES256) if text("crv")? == "P-256" => {
                if bytes("x")?.len() != 32 || bytes("y")?.len() != 32 {
                    return Err(DpopError::BadKey);
                }
                let key = DecodingKey::from_ec_components(text("x")?, text("y")?);
                (
                    key,
                    vec![
                        ("crv", text("crv")?),
                        ("kty", "EC"),
                        ("x", text("x")?),
                        ("y", text("y")?),
                    ],
                )
            }
            ("OKP", Algorithm::EdDSA) if text("crv")? == "Ed25519" => {
                if bytes("x")?.len() != 32 {
                    return Err(DpopError::BadKey);
                }
                let key = DecodingKey::from_ed_components(text("x")?);
                (key, vec![("crv", "Ed25519"), ("kty", "OKP"), ("x", text("x")?)])
            }
            ("RSA", Algorithm::RS256) => {
                let modulus = bytes("n")?;
                if modulus.len() < 256 || modulus.len() > 1024 || bytes("e")?.is_empty() {
                    return Err(DpopError::BadKey);
                }
                let key = DecodingKey::from_rsa_components(text("n")?, text("e")?);
                (key, vec![("e", text("e")?), ("kty", "RSA"), ("n", text("n")?)])
            }
            _ => return Err(DpopError::BadKey),
        };
        Ok(ProofKey {
            key: key.map_err(|_| DpopError::BadKey)?,
            thumbprint: thumbprint(&members),
        })
    }
}

/// RFC 7638: SHA-256 of the required members, in lexicographic order, as JSON without spaces.
fn thumbprint(members: &[(&str, &str)]) -> String {
    let object: Map<String, Value> = members
        .iter()
        .map(|(name, value)| ((*name).to_string(), Value::String((*value).to_string())))
        .collect();
    // serde_json's map keeps its keys sorted, and base64url values need no escaping.
    let canonical = Value::Object(object).to_string();
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = [("e", "AQAB"), ("kty", "RSA"), ("n", n)];
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
