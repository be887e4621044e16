//! A software authenticator (aws-lc-rs keys, ciborium CBOR) against the relying party's checks.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use ciborium::Value as Cbor;

use super::*;

const RP: RelyingParty<'static> = RelyingParty {
    id: "localhost",
    name: "Portcullis",
    origin: "https://localhost:8443",
};
const CHALLENGE: &[u8] = b"0123456789abcdef0123456789abcdef";
const HANDLE: &[u8] = b"user-handle-16b!";

enum Key {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct Authenticator {
    key: Key,
    id: Vec<u8>,
    count: u32,
    flags: u8,
}

impl Authenticator {
    fn p256() -> Authenticator {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
        Authenticator {
            key: Key::P256(key),
            id: b"credential-1".to_vec(),
            count: 0,
            flags: 0x05,
        }
    }

    fn ed25519() -> Authenticator {
        let key = Ed25519KeyPair::generate().expect("key");
        Authenticator {
            key: Key::Ed25519(key),
            id: b"credential-2".to_vec(),
            count: 7,
            flags: 0x05,
        }
    }

    fn cose_key(&self) -> Cbor {
        let int = |i: i64| Cbor::Integer(i.into());
        match &self.key {
            Key::P256(key) => {
                let point = key.public_key().as_ref();
                Cbor::Map(vec![
                    (int(1), int(2)),
                    (int(3), int(-7)),
                    (int(-1), int(1)),
                    (int(-2), Cbor::Bytes(point[1..33].to_vec())),
                    (int(-3), Cbor::Bytes(point[33..65].to_vec())),
                ])
            }
            Key::Ed25519(key) => Cbor::Map(vec![
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), Cbor::Bytes(key.public_key().as_ref().to_vec())),
            ]),
        }
    }

    fn auth_data(&self, rp_id: &str, attested: bool) -> Vec<u8> {
        let mut data = digest::digest(&digest::SHA256, rp_id.as_bytes())
            .as_ref()
            .to_vec();
        data.push(self.flags | if attested { 0x40 } else { 0 });
        data.extend(self.count.to_be_bytes());
        if attested {
            data.extend([0u8; 16]);
            data.extend((self.id.len() as u16).to_be_bytes());
            data.extend(&self.id);
            ciborium::into_writer(&self.cose_key(), &mut data).expect("cbor");
        }
        data
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Key::P256(key) => key
                .sign(&SystemRandom::new(), message)
                .expect("sign")
                .as_ref()
                .to_vec(),
            Key::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }

    fn register(&self, kind: &str, origin: &str, rp_id: &str) -> RegistrationCredential {
        let object = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (
                Cbor::Text("authData".into()),
                Cbor::Bytes(self.auth_data(rp_id, true)),
            ),
        ]);
        let mut attestation = Vec::new();
        ciborium::into_writer(&object, &mut attestation).expect("cbor");
        RegistrationCredential {
            id: URL_SAFE_NO_PAD.encode(&self.id),
            kind: "public-key".into(),
            response: AttestationResponse {
                client_data_json: client_data(kind, CHALLENGE, origin),
                attestation_object: URL_SAFE_NO_PAD.encode(attestation),
            },
        }
    }

    fn assert(&self, challenge: &[u8], handle: Option<&[u8]>) -> AssertionCredential {
        let client = client_data("webauthn.get", challenge, RP.origin);
        let auth = self.auth_data(RP.id, false);
        let hash = digest::digest(&digest::SHA256, &URL_SAFE_NO_PAD.decode(&client).expect("b64"));
        AssertionCredential {
            id: URL_SAFE_NO_PAD.encode(&self.id),
            kind: "public-key".into(),
            response: AssertionResponse {
                client_data_json: client,
                signature: URL_SAFE_NO_PAD.encode(self.sign(&[&auth[..], hash.as_ref()].concat())),
                authenticator_data: URL_SAFE_NO_PAD.encode(auth),
                user_handle: handle.map(|h| URL_SAFE_NO_PAD.encode(h)),
            },
        }
    }
}

fn client_data(kind: &str, challenge: &[u8], origin: &str) -> String {
    let json = json!({ "type": kind, "challenge": URL_SAFE_NO_PAD.encode(challenge), "origin": origin, "crossOrigin": false });
    URL_SAFE_NO_PAD.encode(json.to_string())
}

#[test]
fn a_registration_verifies_only_for_its_type_challenge_origin_rp_and_a_verified_user() {
    for authenticator in [Authenticator::p256(), Authenticator::ed25519()] {
        let good = authenticator.register("webauthn.create", RP.origin, RP.id);
        let registered = verify_registration(&RP, CHALLENGE, HANDLE, &good).expect("registers");
        assert_eq!(registered.id, URL_SAFE_NO_PAD.encode(&authenticator.id));
        assert_eq!(
            (
                registered.passkey.user_handle.as_slice(),
                registered.passkey.sign_count
            ),
            (HANDLE, authenticator.count)
        );
        let wrong = WebauthnError::WrongCeremony;
        let cases = [
            (
                authenticator.register("webauthn.get", RP.origin, RP.id),
                wrong.clone(),
            ),
            (
                authenticator.register("webauthn.create", "https://evil.example", RP.id),
                wrong.clone(),
            ),
            (
                authenticator.register("webauthn.create", RP.origin, "evil.example"),
                wrong.clone(),
            ),
        ];
        for (credential, expected) in cases {
            assert_eq!(
                verify_registration(&RP, CHALLENGE, HANDLE, &credential).err(),
                Some(expected)
            );
        }
        assert_eq!(
            verify_registration(&RP, b"another challenge", HANDLE, &good).err(),
            Some(wrong)
        );
        let presence_only = Authenticator {
            flags: 0x01,
            ..authenticator
        };
        let credential = presence_only.register("webauthn.create", RP.origin, RP.id);
        assert_eq!(
            verify_registration(&RP, CHALLENGE, HANDLE, &credential).err(),
            Some(WebauthnError::NotVerified)
        );
    }
}

#[test]
fn an_assertion_verifies_with_the_stored_key_a_growing_counter_and_its_user_handle() {
    let mut authenticator = Authenticator::p256();
    let registration = authenticator.register("webauthn.create", RP.origin, RP.id);
    let stored = verify_registration(&RP, CHALLENGE, HANDLE, &registration)
        .expect("registers")
        .passkey;
    authenticator.count = 1;
    let assertion = authenticator.assert(CHALLENGE, Some(HANDLE));
    assert_eq!(verify_assertion(&RP, CHALLENGE, &stored, &assertion), Ok(1));
    // The same counter again: a cloned authenticator.
    let moved_on = StoredPasskey {
        sign_count: 1,
        ..stored.clone()
    };
    assert_eq!(
        verify_assertion(&RP, CHALLENGE, &moved_on, &assertion),
        Err(WebauthnError::CounterWentBack)
    );
    assert_eq!(
        verify_assertion(
            &RP,
            CHALLENGE,
            &stored,
            &authenticator.assert(CHALLENGE, Some(b"someone else"))
        ),
        Err(WebauthnError::WrongCeremony)
    );
    assert_eq!(
        verify_assertion(&RP, b"other", &stored, &assertion),
        Err(WebauthnError::WrongCeremony)
    );
    let mut forged = authenticator.assert(CHALLENGE, None);
    forged.response.signature = URL_SAFE_NO_PAD.encode(Authenticator::p256().sign(b"x"));
    assert_eq!(
        verify_assertion(&RP, CHALLENGE, &stored, &forged),
        Err(WebauthnError::BadSignature)
    );
    // Another authenticator's key never verifies, whatever it signs.
    let other = Authenticator {
        count: 2,
        ..Authenticator::p256()
    };
    assert_eq!(
        verify_assertion(&RP, CHALLENGE, &stored, &other.assert(CHALLENGE, None)),
        Err(WebauthnError::BadSignature)
    );
}

#[test]
fn stored_passkeys_round_trip_through_json() {
    let authenticator = Authenticator::ed25519();
    let registration = authenticator.register("webauthn.create", RP.origin, RP.id);
    let stored = verify_registration(&RP, CHALLENGE, HANDLE, &registration)
        .expect("registers")
        .passkey;
    let json = serde_json::to_vec(&stored).expect("json");
    assert_eq!(
        serde_json::from_slice::<StoredPasskey>(&json).expect("back"),
        stored
    );
}
