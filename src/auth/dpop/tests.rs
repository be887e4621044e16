//! Proofs crafted here, good and bad in each way RFC 9449 names.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::json;

use super::*;
use crate::secret::Secret;

const NOW: u64 = 1_700_000_000;
const URI: &str = "https://gw.example.com/api/x";
const TOKEN: &str = "an.access.token";

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl Signer {
    fn es256() -> Signer {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("key");
        Signer::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key"),
        )
    }

    fn jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Signer::Es256(key) => {
                let point = key.public_key().as_ref();
                json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]) })
            }
            Signer::EdDsa(key) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref()) })
            }
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Es256(_) => "ES256",
            Signer::EdDsa(_) => "EdDSA",
        }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match self {
            Signer::Es256(key) => key
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            Signer::EdDsa(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk() })
    }

    /// A good proof for `URI` with `jti`, changed by `edit`.
    fn proof(&self, jti: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut header = self.header();
        let ath = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, TOKEN.as_bytes()));
        let mut claims = json!({ "jti": jti, "htm": "GET", "htu": URI, "iat": NOW, "ath": ath });
        edit(&mut header, &mut claims);
        self.sign(&header, &claims)
    }

    fn thumbprint(&self) -> String {
        ProofKey::from_jwk(
            self.jwk().as_object().expect("object"),
            match self {
                Signer::Es256(_) => Algorithm::ES256,
                Signer::EdDsa(_) => Algorithm::EdDSA,
            },
        )
        .map(|key| key.thumbprint)
        .unwrap_or_default()
    }
}

fn verifier() -> DpopVerifier {
    DpopVerifier::new(Duration::from_secs(60), Duration::from_secs(5), Arc::default())
}

fn expected(jkt: Option<&str>) -> Expected<'_> {
    Expected {
        method: "GET",
        uri: URI,
        access_token: Some(TOKEN),
        jkt,
        now: NOW,
    }
}

#[test]
fn a_good_proof_passes_once_and_names_its_key() {
    for signer in [
        Signer::es256(),
        Signer::EdDsa(Ed25519KeyPair::generate().expect("key")),
    ] {
        let verifier = verifier();
        let jkt = signer.thumbprint();
        let proof = signer.proof("j1", |_, _| {});
        assert_eq!(verifier.verify(&proof, &expected(Some(&jkt))), Ok(jkt.clone()));
        assert_eq!(
            verifier.verify(&proof, &expected(Some(&jkt))),
            Err(DpopError::Replayed)
        );
        // Without a bound token (at login), no `ath` is needed.
        let login = Expected {
            access_token: None,
            jkt: None,
            ..expected(None)
        };
        let bare = signer.proof("j2", |_, claims| {
            claims.as_object_mut().expect("object").remove("ath");
        });
        assert_eq!(verifier.verify(&bare, &login), Ok(jkt));
    }
    // Ed25519 under RFC 9864's name for it.
    let signer = Signer::EdDsa(Ed25519KeyPair::generate().expect("key"));
    let jkt = signer.thumbprint();
    let renamed = signer.proof("j3", |header, _| header["alg"] = json!("Ed25519"));
    assert_eq!(verifier().verify(&renamed, &expected(Some(&jkt))), Ok(jkt));
}

#[test]
fn each_way_a_proof_can_be_wrong_is_refused() {
    let signer = Signer::es256();
    let jkt = signer.thumbprint();
    let other = Signer::es256();
    let set =
        |member: &'static str, value: Value| move |_: &mut Value, claims: &mut Value| claims[member] = value;
    let cases: Vec<(&str, String, DpopError)> = vec![
        (
            "wrong htm",
            signer.proof("a", set("htm", json!("POST"))),
            DpopError::WrongMethod,
        ),
        (
            "wrong htu",
            signer.proof("b", set("htu", json!("https://gw.example.com/api/y"))),
            DpopError::WrongUri,
        ),
        (
            "http htu",
            signer.proof("c", set("htu", json!("http://gw.example.com/api/x"))),
            DpopError::WrongUri,
        ),
        (
            "stale iat",
            signer.proof("d", set("iat", json!(NOW - 66))),
            DpopError::Stale,
        ),
        (
            "future iat",
            signer.proof("e", set("iat", json!(NOW + 6))),
            DpopError::Stale,
        ),
        (
            "wrong ath",
            signer.proof("f", set("ath", json!("AAAA"))),
            DpopError::WrongAccessToken,
        ),
        ("another key", other.proof("g", |_, _| {}), DpopError::WrongKey),
        (
            "alg none",
            signer.proof("h", |h, _| h["alg"] = json!("none")),
            DpopError::BadAlgorithm,
        ),
        (
            "alg HS256",
            signer.proof("i", |h, _| h["alg"] = json!("HS256")),
            DpopError::BadAlgorithm,
        ),
        (
            "typ JWT",
            signer.proof("j", |h, _| h["typ"] = json!("JWT")),
            DpopError::WrongType,
        ),
        (
            "private key",
            signer.proof("k", |h, _| h["jwk"]["d"] = json!("c2VjcmV0")),
            DpopError::PrivateKey,
        ),
        (
            "symmetric key",
            signer.proof("l", |h, _| h["jwk"] = json!({ "kty": "oct", "k": "c2VjcmV0" })),
            DpopError::PrivateKey,
        ),
        (
            "key of another alg",
            signer.proof("m", |h, _| h["alg"] = json!("EdDSA")),
            DpopError::BadKey,
        ),
        (
            "extra header",
            signer.proof("n", |h, _| h["kid"] = json!("x")),
            DpopError::Malformed,
        ),
    ];
    let verifier = verifier();
    for (what, proof, error) in cases {
        assert_eq!(
            verifier.verify(&proof, &expected(Some(&jkt))),
            Err(error),
            "{what}"
        );
    }
    // Someone else's signature under this key's jwk.
    let mut forged = signer.proof("o", |_, _| {});
    let stolen = other.proof("o", |_, _| {});
    forged.replace_range(
        forged.rfind('.').expect("dot")..,
        &stolen[stolen.rfind('.').expect("dot")..],
    );
    assert_eq!(
        verifier.verify(&forged, &expected(Some(&jkt))),
        Err(DpopError::BadSignature)
    );
    // None of the refused proofs took its jti: the good one with jti "a" still passes.
    assert_eq!(
        verifier.verify(&signer.proof("a", |_, _| {}), &expected(Some(&jkt))),
        Ok(jkt)
    );
}

#[test]
fn htu_is_compared_after_rfc_3986_normalisation() {
    let normal = Some("https://gw.example.com/a/~b".to_string());
    for same in [
        "https://gw.example.com/a/~b",
        "HTTPS://GW.Example.COM:443/a/%7eb",
        "https://gw.example.com/a/./c/../~b?q=1#f",
    ] {
        assert_eq!(normalize_htu(same), normal, "{same}");
    }
    assert_eq!(
        normalize_htu("https://gw.example.com:8443/a").as_deref(),
        Some("https://gw.example.com:8443/a")
    );
    for refused in [
        "http://gw.example.com/a",
        "/a",
        "https:///a",
        "https://gw.example.com/a%2fb",
    ] {
        assert_eq!(normalize_htu(refused), None, "{refused}");
    }
}

#[test]
fn with_nonces_a_proof_needs_a_current_one_of_ours() {
    let signer = Signer::es256();
    let jkt = signer.thumbprint();
    let nonces = || Nonces::new(&Secret::new([7; 32]));
    let verifier = verifier().with_nonces(nonces());
    let with_nonce = |jti: &str, nonce: Value| signer.proof(jti, |_, claims| claims["nonce"] = nonce);
    let fresh = verifier.fresh_nonce(NOW).expect("nonces are on");
    let old = nonces().issue(NOW - nonce::NONCE_LIFETIME_SECS - 1);
    let foreign = Nonces::new(&Secret::new([8; 32])).issue(NOW);
    for (what, proof) in [
        ("no nonce", signer.proof("a", |_, _| {})),
        ("an expired one", with_nonce("b", json!(old))),
        ("another key's", with_nonce("c", json!(foreign))),
        ("not a nonce", with_nonce("d", json!("abc"))),
    ] {
        assert_eq!(
            verifier.verify(&proof, &expected(Some(&jkt))),
            Err(DpopError::NonceRequired),
            "{what}"
        );
    }
    // A nonce issued by another replica with the same key, a few minutes ago, passes.
    let earlier = nonces().issue(NOW - 200);
    for (jti, nonce) in [("a", fresh), ("e", earlier)] {
        assert_eq!(
            verifier.verify(&with_nonce(jti, json!(nonce)), &expected(Some(&jkt))),
            Ok(jkt.clone())
        );
    }
}

#[test]
fn request_htu_matches_what_normalize_htu_makes_of_the_same_uri() {
    for (authority, path) in [
        ("GW.example.com", "/a"),
        ("gw.example.com:443", "/a/b"),
        ("gw.example.com:8443", "/"),
        ("[::1]:8443", "/x"),
    ] {
        let authority: http::uri::Authority = authority.parse().expect("authority");
        let htu = request_htu(&authority, path);
        assert_eq!(normalize_htu(&format!("https://{authority}{path}")), Some(htu));
    }
}
