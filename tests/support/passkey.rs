//! A software passkey authenticator (aws-lc-rs P-256 key, CBOR by ciborium) that answers the
//! gateway's WebAuthn options the way a browser's `toJSON()` does, for an origin of the
//! test's choosing.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ciborium::Value as Cbor;
use serde_json::{Value, json};

pub struct Authenticator {
    key: EcdsaKeyPair,
    pub id: Vec<u8>,
    count: u32,
    /// The user handle it stored at registration.
    handle: Vec<u8>,
}

impl Authenticator {
    pub fn new(id: &[u8]) -> Authenticator {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
        Authenticator {
            key,
            id: id.to_vec(),
            count: 0,
            handle: Vec::new(),
        }
    }

    pub fn id(&self) -> String {
        B64.encode(&self.id)
    }

    /// The credential for `navigator.credentials.create({publicKey})`, as if at `origin`.
    pub fn create(&mut self, public_key: &Value, origin: &str) -> Value {
        self.handle = B64
            .decode(public_key["user"]["id"].as_str().expect("user id"))
            .expect("b64");
        let rp_id = public_key["rp"]["id"].as_str().expect("rp id");
        let point = self.key.public_key().as_ref();
        let int = |i: i64| Cbor::Integer(i.into());
        let cose = Cbor::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Cbor::Bytes(point[1..33].to_vec())),
            (int(-3), Cbor::Bytes(point[33..65].to_vec())),
        ]);
        let mut auth = self.auth_data(rp_id, 0x45);
        auth.extend([0u8; 16]);
        auth.extend((self.id.len() as u16).to_be_bytes());
        auth.extend(&self.id);
        ciborium::into_writer(&cose, &mut auth).expect("cbor");
        let object = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth)),
        ]);
        let mut attestation = Vec::new();
        ciborium::into_writer(&object, &mut attestation).expect("cbor");
        let client = client_data("webauthn.create", public_key, origin);
        json!({ "id": self.id(), "type": "public-key",
                "response": { "clientDataJSON": client, "attestationObject": B64.encode(attestation) } })
    }

    /// The credential for `navigator.credentials.get({publicKey})`, as if at `origin`.
    pub fn get(&mut self, public_key: &Value, origin: &str) -> Value {
        self.count += 1;
        let auth = self.auth_data(public_key["rpId"].as_str().expect("rp id"), 0x05);
        let client = client_data("webauthn.get", public_key, origin);
        let hash = digest::digest(&digest::SHA256, &B64.decode(&client).expect("b64"));
        let signed = [&auth[..], hash.as_ref()].concat();
        let signature = self.key.sign(&SystemRandom::new(), &signed).expect("sign");
        json!({ "id": self.id(), "type": "public-key", "response": {
            "clientDataJSON": client,
            "authenticatorData": B64.encode(&auth),
            "signature": B64.encode(signature.as_ref()),
            "userHandle": B64.encode(&self.handle),
        } })
    }

    fn auth_data(&self, rp_id: &str, flags: u8) -> Vec<u8> {
        let mut data = digest::digest(&digest::SHA256, rp_id.as_bytes())
            .as_ref()
            .to_vec();
        data.push(flags);
        data.extend(self.count.to_be_bytes());
        data
    }
}

fn client_data(kind: &str, public_key: &Value, origin: &str) -> String {
    let challenge = public_key["challenge"].as_str().expect("challenge");
    B64.encode(
        json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false }).to_string(),
    )
}
