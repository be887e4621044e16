//! A DPoP client's key (RFC 9449): ES256 or Ed25519 on aws-lc-rs, proofs for a request, each
//! part of which a test may change to make it wrong.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub enum DpopKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl DpopKey {
    pub fn es256() -> DpopKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key");
        DpopKey::Es256(key)
    }

    pub fn ed25519() -> DpopKey {
        DpopKey::EdDsa(Ed25519KeyPair::generate().expect("key"))
    }

    pub fn jwk(&self) -> Value {
        match self {
            DpopKey::Es256(key) => {
                let point = key.public_key().as_ref();
                json!({ "kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]) })
            }
            DpopKey::EdDsa(key) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.public_key()) })
            }
        }
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order, base64url.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let members = match self {
            DpopKey::Es256(_) => {
                json!({ "crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"] })
            }
            DpopKey::EdDsa(_) => json!({ "crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"] }),
        };
        B64.encode(digest::digest(&digest::SHA256, members.to_string().as_bytes()))
    }

    fn alg(&self) -> &'static str {
        match self {
            DpopKey::Es256(_) => "ES256",
            DpopKey::EdDsa(_) => "EdDSA",
        }
    }

    /// A good proof for `method` `htu` (with `ath` of `token`, if any), fresh `jti` and `iat`.
    pub fn proof(&self, method: &str, htu: &str, token: Option<&str>) -> String {
        self.proof_with(method, htu, token, |_, _| {})
    }

    /// `proof`, its header and claims changed by `edit` before signing.
    pub fn proof_with(
        &self,
        method: &str,
        htu: &str,
        token: Option<&str>,
        edit: impl FnOnce(&mut Value, &mut Value),
    ) -> String {
        let mut header = json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk() });
        let now = portcullis::auth::tokens::unix_now();
        let jti = portcullis::auth::tokens::random_id();
        let mut claims = json!({ "jti": jti, "htm": method, "htu": htu, "iat": now });
        if let Some(token) = token {
            claims["ath"] = json!(B64.encode(digest::digest(&digest::SHA256, token.as_bytes())));
        }
        edit(&mut header, &mut claims);
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = match self {
            DpopKey::Es256(key) => key
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            DpopKey::EdDsa(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", B64.encode(signature))
    }
}

/// The `cnf.jkt` an access token names, read without verifying it.
pub fn bound_key(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    claims["cnf"]["jkt"].as_str().map(str::to_owned)
}

impl super::Client {
    /// Logs `user` in with a proof by `key` (`Host: localhost`); the DPoP-bound pair.
    pub async fn dpop_pair(&self, key: &DpopKey, user: &str) -> super::auth::Pair {
        let proof = key.proof("POST", "https://localhost/auth/login", None);
        let login = super::request(http::Method::POST, "/auth/login").header("dpop", proof);
        let password = format!("{user}-password");
        let body = json!({ "username": user, "password": password });
        let reply = self.send(super::RequestExt::json(login, &body)).await;
        let body = reply.json();
        assert_eq!(body["token_type"], "DPoP", "DPoP login: {}", reply.text());
        let token = |name: &str| body[name].as_str().expect("a token").to_owned();
        super::auth::Pair {
            access: token("access_token"),
            refresh: token("refresh_token"),
        }
    }
}
