//! Adversarial suite: JWT forgery (issue 9), the jwt_tool playbook run as data-driven matrices.
//!
//! The bench is a gateway with three verification keys: `k1` ES256 (signs), and two
//! verify-only keys from `public_key_file`, `k2` EdDSA and `k3` RS256, whose private halves
//! only this test holds (so each kid has a control token that must be accepted, and the
//! attacks on it are meaningful). A second bench runs the HS256 profile with a strong
//! generated secret. Every forged token must get 401 with `WWW-Authenticate: Bearer
//! error="invalid_token"`, a JSON `invalid_token` body that does not echo the token, and the
//! recording upstream must receive nothing (checked after every single case, so a failure
//! names the case that got through).
//!
//! Covered: `alg: none` spellings under every kid; algorithm substitution (HS/RS/PS/ES/EdDSA
//! families) under every kid; key confusion with each published public key as an HMAC secret
//! in PEM/DER/PKCS#1/raw/JWK/JWKS forms and HS256/384/512; kid injection (traversal,
//! `/dev/null`, SQL, shell, absolute paths to key files with their contents as the secret,
//! look-alikes, other types); embedded and remote keys (`jwk`, `jku`, `x5u`, `x5c`, `x5t`) with
//! correct signatures by the embedded key, and a trap server proving nothing is fetched;
//! psychic signatures (ECDSA r=s=0 and r/s = n, Ed25519 identity/non-canonical S, RSA s=0/1/n);
//! claim type confusion (time claims as floats, exponents, huge, negative, arrays, objects;
//! `aud` shapes; `sub`/`role`/`sid`/`jti` as non-strings, look-alikes, invisible and
//! non-ASCII characters; nested and double-encoded JSON; BOM; invalid UTF-8); encoding
//! tricks (standard alphabet in signed segments, non-canonical base64 trailing bits, stray
//! dots, whitespace, percent-encoding, quotes, overlong tokens); `crit`, `cty` and `typ`
//! variants; the exact leeway boundaries of `exp`, `nbf` and `iat`; a weak-secret wordlist
//! (a sample of wallarm/jwt-secrets) against the HS256 profile; and `config`/`portcullis
//! check` refusing weak HS256 secrets.
//!
//! Left to tests/tokens.rs (not repeated here): the basic forms of each attack against the
//! single-key bench, duplicate members, the cache and expiry over time, and per-algorithm
//! issuance. Authorization header parsing is in tests/identity.rs.

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::EcdsaKeyPair;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::auth::tokens::unix_now;
use portcullis::config::KeyAlgorithm;
use serde_json::{Value, json};
use support::jwt::*;
use support::upstreams::Upstream;

/// The order n of the P-256 group (the value the psychic-signature bug compared against).
const P256_ORDER: &str = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
/// The order L of the Ed25519 group, little-endian (an S of L is the non-canonical zero).
const ED25519_ORDER_LE: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

// === alg none and algorithm substitution ===

#[tokio::test]
async fn alg_none_is_refused_under_every_kid_in_every_spelling_and_signature_shape() {
    let bench = Bench::three_keys().await;
    let claims = claims();
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE", "none ", " none", "", "null"] {
        for kid in [Some("k1"), Some("k2"), Some("k3"), None] {
            let mut header = header(alg, kid.unwrap_or_default());
            if kid.is_none() {
                header = unset(header, "kid");
            }
            let real = bench.genuine(kid.unwrap_or("k1"), &claims);
            let real_signature = parts(&real)[2];
            let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
            for (shape, token) in [
                ("signature stripped, dot kept", format!("{input}.")),
                ("no signature segment", input.clone()),
                ("a signature of 'null'", format!("{input}.bnVsbA")),
                ("a zero-byte-looking signature", format!("{input}.AA")),
                (
                    "the real signature of the same claims",
                    format!("{input}.{real_signature}"),
                ),
            ] {
                cases.push(case(format!("alg {alg:?}, kid {kid:?}, {shape}"), token));
            }
        }
    }
    // alg none in other JSON shapes.
    for alg in [Value::Null, json!(["none"]), json!({"none": true}), json!(0)] {
        let header = set(header("x", "k1"), "alg", alg.clone());
        cases.push(case(
            format!("alg {alg}"),
            unsigned(header.to_string(), claims.to_string(), ""),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn every_other_algorithm_under_every_kid_is_refused() {
    let bench = Bench::three_keys().await;
    let claims = claims();
    let p384 = {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .expect("P-384 key");
        EncodingKey::from_ec_pem(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())).as_bytes())
            .expect("P-384 PEM")
    };
    let attacker_rsa = &Key::attacker(KeyAlgorithm::Rs256).encoding;
    let attacker_ec = &Key::attacker(KeyAlgorithm::Es256).encoding;
    let attacker_ed = &Key::attacker(KeyAlgorithm::EdDsa).encoding;
    // (alg name, how an attacker would sign it)
    let algorithms: Vec<(&str, Option<(&EncodingKey, Algorithm)>)> = vec![
        ("RS256", Some((attacker_rsa, Algorithm::RS256))),
        ("RS384", Some((attacker_rsa, Algorithm::RS384))),
        ("RS512", Some((attacker_rsa, Algorithm::RS512))),
        ("PS256", Some((attacker_rsa, Algorithm::PS256))),
        ("PS384", Some((attacker_rsa, Algorithm::PS384))),
        ("PS512", Some((attacker_rsa, Algorithm::PS512))),
        ("ES256", Some((attacker_ec, Algorithm::ES256))),
        ("ES384", Some((&p384, Algorithm::ES384))),
        ("ES512", None),
        ("ES256K", None),
        ("EdDSA", Some((attacker_ed, Algorithm::EdDSA))),
        ("Ed25519", Some((attacker_ed, Algorithm::EdDSA))),
        ("Ed448", None),
        ("HS256", None),
        ("es256", Some((attacker_ec, Algorithm::ES256))),
        ("eddsa", Some((attacker_ed, Algorithm::EdDSA))),
        ("RS256 ", Some((attacker_rsa, Algorithm::RS256))),
        ("RSA-OAEP", None),
        ("dir", None),
    ];
    let mut cases = Vec::new();
    for (kid, _) in bench.kids() {
        for (alg, signer) in &algorithms {
            let header = header(alg, kid);
            let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
            let token = signer
                .map(|(key, alg)| sign_input(&input, key, alg))
                .unwrap_or_else(|| format!("{input}.{}", b64([7u8; 64])));
            cases.push(case(format!("alg {alg:?} under {kid}, attacker-signed"), token));
        }
    }
    // The real verify-only keys, each signing under another kid's name.
    for (kid, _) in bench.kids() {
        for (other_kid, other) in bench.kids() {
            if other_kid == kid {
                continue;
            }
            let header = header(other.alg.name(), kid);
            cases.push(case(
                format!(
                    "the real {other_kid} key signing as alg {} under {kid}",
                    other.alg.name()
                ),
                sign_json(&header, &claims, &other.encoding, jose(other.alg)),
            ));
            let header = set(header, "alg", json!(bench.key(kid).alg.name()));
            cases.push(case(
                format!("the real {other_kid} key signing under {kid}'s own alg"),
                sign_json(&header, &claims, &other.encoding, jose(other.alg)),
            ));
        }
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === key confusion ===

#[tokio::test]
async fn the_published_public_keys_used_as_hmac_secrets_are_refused() {
    let bench = Bench::three_keys().await;
    let jwks_reply = bench.gateway.get("/.well-known/jwks.json").await;
    assert_eq!(jwks_reply.status, 200);
    let jwks = jwks_reply.json();
    let published = jwks["keys"].as_array().expect("keys").clone();
    assert_eq!(published.len(), 3, "every verify key is published: {jwks}");
    let claims = claims();
    let mut cases = Vec::new();
    for (kid, key) in bench.kids() {
        let jwk = published
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("{kid} is not in the JWKS: {jwks}"))
            .clone();
        let pem = key.public_pem();
        let mut secrets: Vec<(String, Vec<u8>)> = vec![
            ("PEM".into(), pem.clone().into_bytes()),
            (
                "PEM without its final newline".into(),
                pem.trim_end().as_bytes().to_vec(),
            ),
            ("PEM with CRLF".into(), pem.replace('\n', "\r\n").into_bytes()),
            ("SPKI DER".into(), key.spki()),
            ("raw public key".into(), key.raw_public()),
            (
                "base64 of the SPKI DER".into(),
                STANDARD.encode(key.spki()).into_bytes(),
            ),
            ("the JWK JSON".into(), jwk.to_string().into_bytes()),
            ("the JWKS document".into(), jwks_reply.body.to_vec()),
        ];
        if key.alg == KeyAlgorithm::Rs256 {
            let pkcs1 = key.raw_public();
            secrets.push((
                "PKCS#1 RSA PUBLIC KEY PEM".into(),
                pem::encode(&pem::Pem::new("RSA PUBLIC KEY", pkcs1)).into_bytes(),
            ));
            for member in ["n", "e"] {
                let text = jwk[member].as_str().expect("RSA member");
                secrets.push((format!("the JWK's {member} text"), text.as_bytes().to_vec()));
                secrets.push((
                    format!("the JWK's {member} bytes"),
                    URL_SAFE_NO_PAD.decode(text).expect("b64"),
                ));
            }
        } else {
            for member in ["x", "y"] {
                if let Some(text) = jwk[member].as_str() {
                    secrets.push((format!("the JWK's {member} text"), text.as_bytes().to_vec()));
                    secrets.push((
                        format!("the JWK's {member} bytes"),
                        URL_SAFE_NO_PAD.decode(text).expect("b64"),
                    ));
                }
            }
        }
        for (form, secret) in &secrets {
            for (alg_name, alg) in [
                ("HS256", Algorithm::HS256),
                ("HS384", Algorithm::HS384),
                ("HS512", Algorithm::HS512),
            ] {
                cases.push(case(
                    format!("{alg_name} under {kid} keyed with its {form}"),
                    hmac(&header(alg_name, kid), &claims, secret, alg),
                ));
            }
            cases.push(case(
                format!("HS256 without a kid keyed with {kid}'s {form}"),
                hmac(
                    &unset(header("HS256", kid), "kid"),
                    &claims,
                    secret,
                    Algorithm::HS256,
                ),
            ));
        }
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === kid injection ===

#[tokio::test]
async fn injected_kids_are_refused_whatever_secret_they_point_at() {
    let bench = Bench::three_keys().await;
    let claims = claims();
    let k1_file = bench.gateway.dir.path().join("keys/k1.pem");
    let k2_public_text = std::fs::read(bench.public_file("k2")).expect("k2 public");
    let k3_public_text = std::fs::read(bench.public_file("k3")).expect("k3 public");
    let k1_file_text = std::fs::read(&k1_file).expect("k1 file");
    let config_text = std::fs::read(bench.gateway.config_path()).expect("config");
    // (kid, the secret an attacker expects that kid to select)
    let injections: Vec<(String, Vec<u8>)> = vec![
        ("../../../../../../../../dev/null".into(), vec![]),
        ("/dev/null".into(), vec![]),
        ("../../dev/null\u{0}".into(), vec![]),
        ("/proc/self/environ".into(), vec![]),
        ("/proc/sys/kernel/randomize_va_space".into(), b"2\n".to_vec()),
        (
            "/etc/hostname".into(),
            std::fs::read("/etc/hostname").unwrap_or_default(),
        ),
        (
            bench.public_file("k2").display().to_string(),
            k2_public_text.clone(),
        ),
        (
            bench.public_file("k3").display().to_string(),
            k3_public_text.clone(),
        ),
        (k1_file.display().to_string(), k1_file_text.clone()),
        ("keys/k1.pem".into(), k1_file_text.clone()),
        ("./keys/k1.pem".into(), k1_file_text.clone()),
        ("gateway.toml".into(), config_text.clone()),
        (bench.gateway.config_path().display().to_string(), config_text),
        (
            format!("file://{}", bench.public_file("k3").display()),
            k3_public_text,
        ),
        ("' OR 1=1 --".into(), vec![]),
        ("' OR '1'='1".into(), b"k1".to_vec()),
        (
            "x' UNION SELECT 'attacker-secret' -- ".into(),
            b"attacker-secret".to_vec(),
        ),
        ("k1' UNION SELECT 'ATTACKER';--".into(), b"ATTACKER".to_vec()),
        ("k1\" OR \"\"=\"".into(), vec![]),
        ("{\"$ne\": null}".into(), vec![]),
        ("|id".into(), vec![]),
        ("k1|id".into(), vec![]),
        ("k1; id".into(), vec![]),
        ("$(id)".into(), vec![]),
        ("`id`".into(), vec![]),
        ("k1&&whoami".into(), vec![]),
        ("k1\nk2".into(), vec![]),
        ("k1\r\n".into(), vec![]),
        ("".into(), vec![]),
        (" ".into(), vec![]),
        ("k1 ".into(), vec![]),
        ("\u{feff}k1".into(), vec![]),
        ("k\u{200b}1".into(), vec![]),
        ("k\u{ff11}".into(), vec![]),
        ("K1".into(), vec![]),
        ("k01".into(), vec![]),
        ("k1/../k1".into(), vec![]),
        ("./k1".into(), vec![]),
        ("k1%00".into(), vec![]),
        ("k%31".into(), vec![]),
        ("http://127.0.0.1:1/jwks.json#k1".into(), vec![]),
        ("k4".into(), vec![]),
        ("x".repeat(3000), vec![]),
    ];
    let mut cases = Vec::new();
    for (kid, secret) in &injections {
        let shown: String = kid.chars().take(60).collect();
        let hs = header("HS256", kid);
        cases.push(case(
            format!("kid {shown:?}, HS256 with the secret it points at"),
            hmac(&hs, &claims, secret, Algorithm::HS256),
        ));
        // The same kid with each real key's own algorithm and signature.
        for (real_kid, key) in bench.kids() {
            let header = header(key.alg.name(), kid);
            cases.push(case(
                format!("kid {shown:?}, signed by the real {real_kid}"),
                sign_json(&header, &claims, &key.encoding, jose(key.alg)),
            ));
        }
    }
    for (name, kid) in [
        ("numeric", json!(1)),
        ("boolean", json!(true)),
        ("object", json!({ "$ne": null })),
        ("array of the real kid", json!(["k1"])),
        ("array of all kids", json!(["k1", "k2", "k3"])),
        ("null", Value::Null),
    ] {
        let header = set(header("ES256", "k1"), "kid", kid);
        cases.push(case(
            format!("kid as {name}, signed by the real k1"),
            sign_json(&header, &claims, &bench.k1.encoding, Algorithm::ES256),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === embedded and remote keys ===

#[tokio::test]
async fn embedded_and_remote_keys_are_never_trusted_or_fetched_even_with_correct_signatures() {
    let bench = Bench::three_keys().await;
    // Anything the gateway fetched would connect here.
    let trap = Upstream::echo().await;
    let claims = claims();
    let attacker_secret = b"attacker-chosen-hmac-secret-of-32-bytes!".to_vec();
    let oct_jwk = json!({ "kty": "oct", "k": b64(&attacker_secret), "alg": "HS256", "kid": "k1" });
    let certificate = {
        let pair = rcgen::KeyPair::from_pem(
            std::str::from_utf8(&Key::attacker(KeyAlgorithm::Es256).file).expect("PEM"),
        )
        .expect("attacker key pair");
        rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&pair)
            .expect("certificate")
    };
    let der = certificate.der().to_vec();
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let trap_url = |path: &str| format!("http://{}{path}", trap.addr);
    let own_jwks = format!(
        "https://localhost:{}/.well-known/jwks.json",
        bench.gateway.addr.port()
    );
    let mut cases = Vec::new();
    for alg in [KeyAlgorithm::Es256, KeyAlgorithm::EdDsa, KeyAlgorithm::Rs256] {
        let attacker = Key::attacker(alg);
        let jwk = attacker.jwk();
        let members: Vec<(&str, Value)> = vec![
            ("jwk", jwk.clone()),
            ("jwk (as k1)", set(jwk.clone(), "kid", json!("k1"))),
            ("jku", json!(trap_url("/jwks.json"))),
            ("jku (own JWKS URL)", json!(own_jwks)),
            (
                "jku (file URL)",
                json!(format!("file://{}", bench.public_file("k3").display())),
            ),
            ("x5u", json!(trap_url("/cert.pem"))),
            ("x5c", json!([STANDARD.encode(&der)])),
            ("x5t", json!(b64(sha1.as_ref()))),
            ("x5t#S256", json!(b64(sha256.as_ref()))),
        ];
        for (member, value) in members {
            let name = member.split(' ').next().expect("name");
            for kid in ["k1", "k2", "k3", "attacker"] {
                let header = set(header(alg.name(), kid), name, value.clone());
                cases.push(case(
                    format!(
                        "{member}, alg {}, kid {kid}, signed by the embedded/attacker key",
                        alg.name()
                    ),
                    sign_json(&header, &claims, &attacker.encoding, jose(alg)),
                ));
            }
            let header = unset(set(header(alg.name(), "x"), name, value.clone()), "kid");
            cases.push(case(
                format!("{member}, alg {}, no kid", alg.name()),
                sign_json(&header, &claims, &attacker.encoding, jose(alg)),
            ));
        }
    }
    for kid in ["k1", "k2", "k3"] {
        let header = set(header("HS256", kid), "jwk", oct_jwk.clone());
        cases.push(case(
            format!("symmetric jwk embedded under {kid}, HS256 with its secret"),
            hmac(&header, &claims, &attacker_secret, Algorithm::HS256),
        ));
    }
    // The gateway's own public key embedded, signed as HMAC with its text.
    let own = bench.k1.jwk();
    cases.push(case(
        "own k1 JWK embedded, HS256 keyed with its JSON",
        hmac(
            &set(header("HS256", "k1"), "jwk", own.clone()),
            &claims,
            own.to_string().as_bytes(),
            Algorithm::HS256,
        ),
    ));
    // Key material smuggled into the claims (cnf, RFC 7800).
    let attacker = Key::attacker(KeyAlgorithm::Es256);
    cases.push(case(
        "cnf.jwk in the claims, signed by that key",
        sign_json(
            &header("ES256", "k1"),
            &set(claims.clone(), "cnf", json!({ "jwk": attacker.jwk() })),
            &attacker.encoding,
            Algorithm::ES256,
        ),
    ));
    bench.assert_rejected(cases).await;
    assert_eq!(trap.counts.connections(), 0, "the gateway fetched a key URL");
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === psychic and degenerate signatures ===

#[tokio::test]
async fn psychic_and_degenerate_signatures_are_refused_for_every_key_type() {
    let bench = Bench::three_keys().await;
    let claims = claims();
    let order = hex(P256_ORDER);
    let zero = [0u8; 32];
    let one = {
        let mut one = [0u8; 32];
        one[31] = 1;
        one
    };
    let mut cases = Vec::new();
    let es_input = format!(
        "{}.{}",
        b64(header("ES256", "k1").to_string()),
        b64(claims.to_string())
    );
    let raw = |r: &[u8], s: &[u8]| format!("{es_input}.{}", b64([r, s].concat()));
    let der = |r: &[u8], s: &[u8]| format!("{es_input}.{}", b64(der_ecdsa(r, s)));
    for (name, r, s) in [
        ("r = s = 0", &zero[..], &zero[..]),
        ("r = s = n", &order[..], &order[..]),
        ("r = 0, s = n", &zero[..], &order[..]),
        ("r = n, s = 0", &order[..], &zero[..]),
        ("r = s = 1", &one[..], &one[..]),
        ("r = 1, s = 0", &one[..], &zero[..]),
    ] {
        cases.push(case(format!("ES256 raw {name}"), raw(r, s)));
        cases.push(case(format!("ES256 DER {name}"), der(r, s)));
    }
    cases.push(case("ES256 DER 'MAYCAQACAQA'", format!("{es_input}.MAYCAQACAQA")));
    // A real signature's r with s replaced by 0, and n - s (malleated high-S form is fine for
    // ECDSA in general, but a zeroed half never is).
    let genuine = bench.genuine("k1", &claims);
    let signature = URL_SAFE_NO_PAD.decode(parts(&genuine)[2]).expect("signature");
    let (r, _) = signature.split_at(32);
    cases.push(case("ES256 real r, s = 0", raw(r, &zero)));
    cases.push(case("ES256 real r, s = n", raw(r, &order)));
    cases.push(case("ES256 empty signature", format!("{es_input}.")));

    let ed_input = format!(
        "{}.{}",
        b64(header("EdDSA", "k2").to_string()),
        b64(claims.to_string())
    );
    let identity = {
        let mut point = [0u8; 32];
        point[0] = 1;
        point
    };
    let l = hex(ED25519_ORDER_LE);
    for (name, signature) in [
        ("all zero", [0u8; 64].to_vec()),
        ("R = identity, S = 0", [&identity[..], &zero[..]].concat()),
        ("R = identity, S = L", [&identity[..], &l[..]].concat()),
        ("R = 0, S = L", [&zero[..], &l[..]].concat()),
        (
            "R = public key, S = 0",
            [&bench.key("k2").raw_public()[..], &zero[..]].concat(),
        ),
        ("63 bytes", vec![0u8; 63]),
        ("empty", vec![]),
    ] {
        cases.push(case(
            format!("EdDSA {name}"),
            format!("{ed_input}.{}", b64(signature)),
        ));
    }
    let genuine = bench.genuine("k2", &claims);
    let signature = URL_SAFE_NO_PAD.decode(parts(&genuine)[2]).expect("signature");
    // S + L: the same signature in non-canonical form (RFC 8032 requires S < L).
    let mut s_plus_l = signature[32..].to_vec();
    let mut carry = 0u16;
    for (byte, add) in s_plus_l.iter_mut().zip(&l) {
        let sum = *byte as u16 + *add as u16 + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    if carry == 0 {
        let malleated = [&signature[..32], &s_plus_l[..]].concat();
        let input = parts(&genuine)[..2].join(".");
        cases.push(case(
            "EdDSA real signature with S + L",
            format!("{input}.{}", b64(malleated)),
        ));
    }

    let rs_input = format!(
        "{}.{}",
        b64(header("RS256", "k3").to_string()),
        b64(claims.to_string())
    );
    let modulus = bench.key("k3").jwk()["n"]
        .as_str()
        .map(|n| URL_SAFE_NO_PAD.decode(n).expect("n"))
        .expect("n");
    let size = modulus.len();
    let mut n_minus_one = modulus.clone();
    *n_minus_one.last_mut().expect("modulus") -= 1;
    let mut s_one = vec![0u8; size];
    s_one[size - 1] = 1;
    for (name, signature) in [
        ("s = 0", vec![0u8; size]),
        ("s = 1", s_one),
        ("s = n", modulus.clone()),
        ("s = n - 1", n_minus_one),
        ("s = 0xff..ff", vec![0xffu8; size]),
        ("s one byte short", vec![1u8; size - 1]),
        ("empty", vec![]),
    ] {
        cases.push(case(
            format!("RS256 {name}"),
            format!("{rs_input}.{}", b64(signature)),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === claim type confusion (signed by the real key: only the claim differs) ===

#[tokio::test]
async fn time_claims_of_the_wrong_type_or_range_are_refused() {
    let bench = Bench::three_keys().await;
    let now = unix_now();
    let mut cases = Vec::new();
    for (member, valid) in [("exp", now + 600), ("nbf", now), ("iat", now)] {
        for (name, value) in [
            ("a float", format!("{valid}.5")),
            ("an integral float", format!("{valid}.0")),
            ("in exponent notation", format!("{}e0", valid)),
            (
                "in exponent notation with a fraction",
                format!("{:.3e}", valid as f64),
            ),
            ("a string", format!("\"{valid}\"")),
            ("a string with spaces", format!("\" {valid} \"")),
            ("a hex string", format!("\"0x{valid:x}\"")),
            ("an array", format!("[{valid}]")),
            ("an array of two", format!("[{valid},{valid}]")),
            ("an object", format!("{{\"$date\":{valid}}}")),
            ("an empty string", "\"\"".to_string()),
            ("2^64", "18446744073709551616".to_string()),
            ("1e30", "1e30".to_string()),
            ("-1", "-1".to_string()),
            ("negative zero", "-0".to_string()),
            ("a negative large value", "-9223372036854775808".to_string()),
        ] {
            cases.push(case(
                format!("{member} {name}"),
                bench.sign(
                    header("ES256", "k1"),
                    prepend(&unset(claims(), member), &format!("\"{member}\":{value}")),
                ),
            ));
        }
    }
    // Well-typed but absurd: far in the future for nbf and iat.
    for member in ["nbf", "iat"] {
        cases.push(case(
            format!("{member} u64::MAX"),
            bench.genuine("k1", &set(claims(), member, json!(u64::MAX))),
        ));
        cases.push(case(
            format!("{member} i64::MAX"),
            bench.genuine("k1", &set(claims(), member, json!(i64::MAX))),
        ));
    }
    cases.push(case(
        "exp 0",
        bench.genuine("k1", &set(claims(), "exp", json!(0))),
    ));
    cases.push(case(
        "exp 1",
        bench.genuine("k1", &set(claims(), "exp", json!(1))),
    ));
    cases.push(case(
        "exp before nbf and iat, both now",
        bench.genuine("k1", &set(claims(), "exp", json!(now - 3600))),
    ));
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn identity_and_audience_claims_of_the_wrong_shape_are_refused() {
    let bench = Bench::three_keys().await;
    let mut cases = Vec::new();
    for aud in [
        json!({ "aud": "default" }),
        json!([{ "aud": "default" }]),
        json!(["default\u{0}"]),
        json!("default,other"),
        json!("default other"),
        json!(["DEFAULT"]),
        json!(["de", "fault"]),
        json!(true),
        json!(["default", 1]),
        json!(["other", null]),
        json!("\u{feff}default"),
        json!("defaul\u{0442}"),
        json!(std::iter::repeat_n("other", 200).collect::<Vec<_>>()),
    ] {
        let shown: String = aud.to_string().chars().take(60).collect();
        cases.push(case(
            format!("aud {shown}"),
            bench.genuine("k1", &set(claims(), "aud", aud)),
        ));
    }
    let strings = [
        ("a number", json!(1)),
        ("a float", json!(1.5)),
        ("true", json!(true)),
        ("an empty array", json!([])),
        ("an array of the name", json!(["admin"])),
        ("an object", json!({ "value": "admin" })),
        ("empty", json!("")),
        ("only spaces", json!("   ")),
        ("CR LF by escape", json!("x\r\nX-Auth-Role: admin")),
        ("a lone LF", json!("x\nadmin")),
        ("a lone CR", json!("x\radmin")),
        ("a NUL", json!("admin\u{0}")),
        ("a vertical tab", json!("admin\u{b}")),
        ("a form feed", json!("admin\u{c}")),
        ("U+2028", json!("admin\u{2028}")),
        ("U+0085 (NEL)", json!("admin\u{85}")),
        ("a bidi override", json!("\u{202e}nimda")),
        ("a zero-width space", json!("ad\u{200b}min")),
        ("a Cyrillic homoglyph", json!("\u{430}dmin")),
        (
            "fullwidth letters",
            json!("\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}"),
        ),
        ("Latin-1", json!("adm\u{ed}n")),
        ("an emoji", json!("admin\u{1f600}")),
        ("257 bytes", json!("a".repeat(257))),
        ("2 KiB", json!("a".repeat(2048))),
    ];
    for member in ["sub", "role", "sid", "jti"] {
        for (name, value) in &strings {
            cases.push(case(
                format!("{member} {name}"),
                bench.genuine("k1", &set(claims(), member, value.clone())),
            ));
        }
        cases.push(case(
            format!("{member} missing"),
            bench.genuine("k1", &unset(claims(), member)),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    // Boundaries that are valid: 256 visible bytes, and an audience list with ours among others.
    let accepted = vec![
        case(
            "sub of 256 bytes",
            bench.genuine("k1", &set(claims(), "sub", json!("a".repeat(256)))),
        ),
        case(
            "aud with ours among wrong ones",
            bench.genuine("k1", &set(claims(), "aud", json!(["other", "default", "third"]))),
        ),
        case(
            "aud with ours last of many",
            bench.genuine(
                "k1",
                &set(
                    claims(),
                    "aud",
                    json!(
                        std::iter::repeat_n("x", 50)
                            .chain(["default"])
                            .collect::<Vec<_>>()
                    ),
                ),
            ),
        ),
    ];
    for (name, token) in &accepted {
        bench.assert_accepted(name, token).await;
    }
}

#[tokio::test]
async fn nested_double_encoded_and_non_utf8_json_is_refused() {
    let bench = Bench::three_keys().await;
    let header_text = header("ES256", "k1").to_string();
    let claims_text = claims().to_string();
    let k1 = |h: &[u8], c: &[u8]| sign_bytes(h, c, &bench.k1.encoding, Algorithm::ES256);
    let inner = bench.genuine("k1", &claims());
    let mut invalid_utf8 = claims_text.replace("mallory", "mall\u{1}ry").into_bytes();
    let at = invalid_utf8.iter().position(|&b| b == 1).expect("marker");
    invalid_utf8.splice(at..=at, [0xc0, 0xaf]);
    let mut latin1 = claims_text.replace("mallory", "mall\u{1}ry").into_bytes();
    let at = latin1.iter().position(|&b| b == 1).expect("marker");
    latin1[at] = 0xe9;
    let cases = vec![
        case(
            "claims nested in an object",
            k1(
                header_text.as_bytes(),
                json!({ "claims": claims() }).to_string().as_bytes(),
            ),
        ),
        case(
            "claims nested under payload",
            k1(
                header_text.as_bytes(),
                json!({ "payload": claims() }).to_string().as_bytes(),
            ),
        ),
        case(
            "claims as a JSON string (double-encoded)",
            k1(
                header_text.as_bytes(),
                Value::String(claims_text.clone()).to_string().as_bytes(),
            ),
        ),
        case(
            "header nested in an object",
            k1(
                json!({ "header": header("ES256", "k1") }).to_string().as_bytes(),
                claims_text.as_bytes(),
            ),
        ),
        case(
            "a nested JWT as the payload, cty JWT",
            k1(
                set(header("ES256", "k1"), "cty", json!("JWT"))
                    .to_string()
                    .as_bytes(),
                inner.as_bytes(),
            ),
        ),
        case(
            "cty JWT with ordinary claims",
            k1(
                set(header("ES256", "k1"), "cty", json!("JWT"))
                    .to_string()
                    .as_bytes(),
                claims_text.as_bytes(),
            ),
        ),
        case(
            "a UTF-8 BOM before the claims",
            k1(
                header_text.as_bytes(),
                format!("\u{feff}{claims_text}").as_bytes(),
            ),
        ),
        case(
            "a UTF-8 BOM before the header",
            k1(
                format!("\u{feff}{header_text}").as_bytes(),
                claims_text.as_bytes(),
            ),
        ),
        case(
            "UTF-16 claims",
            k1(
                header_text.as_bytes(),
                &claims_text
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<_>>(),
            ),
        ),
        case(
            "an overlong UTF-8 sequence in sub",
            k1(header_text.as_bytes(), &invalid_utf8),
        ),
        case("a Latin-1 byte in sub", k1(header_text.as_bytes(), &latin1)),
        case(
            "a NUL after the claims",
            k1(header_text.as_bytes(), format!("{claims_text}\u{0}").as_bytes()),
        ),
        case(
            "two claims objects",
            k1(
                header_text.as_bytes(),
                format!("{claims_text}{claims_text}").as_bytes(),
            ),
        ),
        case(
            "claims with a comment",
            k1(header_text.as_bytes(), format!("/*x*/{claims_text}").as_bytes()),
        ),
        case(
            "claims with a trailing comma",
            k1(header_text.as_bytes(), append(&claims(), "").as_bytes()),
        ),
        case(
            "single-quoted claims",
            k1(header_text.as_bytes(), claims_text.replace('"', "'").as_bytes()),
        ),
        case(
            "sub and Sub",
            k1(
                header_text.as_bytes(),
                format!("{{\"Sub\":\"root\",{}", &claims_text[1..]).as_bytes(),
            ),
        ),
        case(
            "an extra claim",
            k1(
                header_text.as_bytes(),
                set(claims(), "admin", json!(true)).to_string().as_bytes(),
            ),
        ),
        case(
            "an extra header member",
            k1(
                set(header("ES256", "k1"), "x", json!(1)).to_string().as_bytes(),
                claims_text.as_bytes(),
            ),
        ),
    ];
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    // JSON whitespace is insignificant (RFC 8259): pretty-printed, correctly signed JSON is
    // still the same token, so the refusals above were about their content.
    let pretty = k1(
        serde_json::to_string_pretty(&header("ES256", "k1"))
            .expect("json")
            .as_bytes(),
        serde_json::to_string_pretty(&claims()).expect("json").as_bytes(),
    );
    bench.assert_accepted("pretty-printed JSON", &pretty).await;
}

// === encoding tricks on the compact form ===

#[tokio::test]
async fn non_canonical_encodings_of_the_compact_form_are_refused() {
    let bench = Bench::three_keys().await;
    let control = bench.genuine("k1", &claims());
    let [h, p, s] = parts(&control)[..] else {
        panic!("three segments")
    };
    // A claims text whose base64url has '-' or '_', signed over its standard-alphabet spelling.
    let (standard_input, standard_payload) = (0..500)
        .find_map(|n| {
            let payload = b64(set(claims(), "sub", json!(format!("m?>~{n}"))).to_string());
            let standard = payload.replace('-', "+").replace('_', "/");
            (standard != payload).then(|| (format!("{h}.{standard}"), payload))
        })
        .expect("a payload with - or _");
    assert!(standard_input.contains(['+', '/']), "{standard_payload}");
    let standard_signed = sign_input(&standard_input, &bench.k1.encoding, Algorithm::ES256);
    // The signature with its unused low bits set: decodes to the same bytes on a lenient decoder.
    let trailing = {
        let last = s.chars().last().expect("signature");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.iter().position(|&c| c == last as u8).expect("base64url");
        // 64 bytes in 86 characters: the last character carries 2 data bits and 4 spare bits.
        let changed = alphabet[(index & !0xf) | 0x5] as char;
        assert_ne!(changed, last);
        format!("{}{changed}", &s[..s.len() - 1])
    };
    let pem_wrapped = {
        let mut wrapped = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && i % 64 == 0 {
                wrapped.push('\t');
            }
            wrapped.push(c);
        }
        wrapped
    };
    let big_aud =
        |bytes: usize| bench.genuine("k1", &set(claims(), "aud", json!(["default", "x".repeat(bytes)])));
    let cases = vec![
        case(
            "standard alphabet in the payload, signed over it",
            standard_signed,
        ),
        case(
            "signature with non-canonical trailing bits",
            format!("{h}.{p}.{trailing}"),
        ),
        case("a trailing dot", format!("{control}.")),
        case("a leading dot", format!(".{control}")),
        case("two dots between header and payload", format!("{h}..{p}.{s}")),
        case("two dots before the signature", format!("{h}.{p}..{s}")),
        case("four segments, the last repeated", format!("{control}.{s}")),
        case("the token twice", format!("{control}.{control}")),
        case("a tab inside the signature", format!("{h}.{p}.{pem_wrapped}")),
        case("a space after a dot", format!("{h}. {p}.{s}")),
        case("a tab before the signature", format!("{h}.{p}.\t{s}")),
        case("percent-encoded dots", control.replace('.', "%2E")),
        case(
            "percent-encoded token",
            format!("%{:02X}{}", control.as_bytes()[0], &control[1..]),
        ),
        case("token in double quotes", format!("\"{control}\"")),
        case("token in single quotes", format!("'{control}'")),
        case("token with a comma and another", format!("{control},{control}")),
        case("token in angle brackets", format!("<{control}>")),
        case(
            "padded header",
            format!(
                "{}.{p}.{s}",
                URL_SAFE.encode(URL_SAFE_NO_PAD.decode(h).expect("h"))
            ),
        ),
        case("a token of 4097 bytes", {
            let mut n = 3000;
            loop {
                let token = big_aud(n);
                match token.len().cmp(&4097) {
                    std::cmp::Ordering::Equal => break token,
                    std::cmp::Ordering::Less => n += 1,
                    std::cmp::Ordering::Greater => n -= 1,
                }
                assert!(n > 2000 && n < 4000, "cannot hit 4097 bytes");
            }
        }),
        case("a token of 8 KiB", big_aud(6000)),
        case("a token of 14 KiB", big_aud(10_500)),
        case(
            "a header of 8 KiB",
            bench.sign(
                set(
                    header("ES256", "k1"),
                    "typ",
                    json!(format!("at+jwt{}", " ".repeat(6000))),
                ),
                claims(),
            ),
        ),
    ];
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn a_token_beyond_the_header_limit_never_reaches_the_upstream() {
    let bench = Bench::three_keys().await;
    let token = bench.genuine(
        "k1",
        &set(claims(), "aud", json!(["default", "x".repeat(40_000)])),
    );
    let reply = bench.send(&token).await;
    assert!(
        [400, 401, 431].contains(&reply.status.as_u16()),
        "{}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === crit, cty and typ ===

#[tokio::test]
async fn crit_and_typ_variants_are_refused() {
    let bench = Bench::three_keys().await;
    let claims = claims();
    let mut cases = Vec::new();
    for (name, extra) in [
        ("crit as a string", json!({ "crit": "exp" })),
        ("crit null", json!({ "crit": null })),
        ("crit naming alg", json!({ "crit": ["alg"] })),
        ("crit naming kid", json!({ "crit": ["kid"] })),
        ("crit naming typ", json!({ "crit": ["typ"] })),
        ("crit with an empty name", json!({ "crit": [""] })),
        ("crit with b64 true", json!({ "crit": ["b64"], "b64": true })),
        ("cty JWT", json!({ "cty": "JWT" })),
        ("cty json", json!({ "cty": "json" })),
        ("enc (a JWE header)", json!({ "enc": "A256GCM" })),
        ("zip null", json!({ "zip": null })),
        ("url", json!({ "url": "https://localhost/" })),
        ("nonce", json!({ "nonce": "x" })),
    ] {
        for (kid, key) in bench.kids() {
            let mut header = header(key.alg.name(), kid);
            for (member, value) in extra.as_object().expect("object") {
                header = set(header, member, value.clone());
            }
            cases.push(case(
                format!("{name} under {kid}"),
                sign_json(&header, &claims, &key.encoding, jose(key.alg)),
            ));
        }
    }
    for typ in [
        json!("at+jwt; charset=utf-8"),
        json!("application/at+jwt; q=1"),
        json!("at+jwt\t"),
        json!("at%2Bjwt"),
        json!("at jwt"),
        json!("at+jws"),
        json!("at+jwt+jwt"),
        json!("application/jwt+at"),
        json!("application/at+jwt/"),
        json!("x-application/at+jwt"),
        json!("\u{ff41}t+jwt"),
        json!("at+jwt\u{200b}"),
        json!("AT+JWT\u{17f}"),
        json!("dpop+jwt"),
        json!("secevent+jwt"),
        json!("id_token"),
        json!("logout+jwt"),
        json!("JWT"),
        json!(1),
        json!({ "typ": "at+jwt" }),
    ] {
        for (kid, key) in bench.kids() {
            let header = set(header(key.alg.name(), kid), "typ", typ.clone());
            cases.push(case(
                format!("typ {typ} under {kid}"),
                sign_json(&header, &claims, &key.encoding, jose(key.alg)),
            ));
        }
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === the exact leeway boundaries ===

#[tokio::test]
async fn exp_nbf_and_iat_are_judged_to_the_second_at_the_leeway() {
    let bench = Bench::three_keys().await;
    let leeway = LEEWAY as i64;
    // Each case: name, claim, value relative to the gateway's clock, and whether it is accepted.
    let boundaries = [
        ("expired exactly at the leeway", "exp", -leeway, false),
        ("expired one second beyond the leeway", "exp", -leeway - 1, false),
        ("expired, one second left in the leeway", "exp", -leeway + 1, true),
        ("not yet valid, at the leeway", "nbf", leeway, true),
        (
            "not yet valid, one second beyond the leeway",
            "nbf",
            leeway + 1,
            false,
        ),
        ("issued in the future, at the leeway", "iat", leeway, true),
        (
            "issued in the future, one second beyond the leeway",
            "iat",
            leeway + 1,
            false,
        ),
    ];
    let mut failures = Vec::new();
    for &(name, member, offset, accepted) in &boundaries {
        // A verdict only counts when the whole exchange happened within one clock second;
        // otherwise the gateway may have judged it against the next second.
        let mut verdict = None;
        for _ in 0..20 {
            let now = unix_now();
            let value = now.checked_add_signed(offset).expect("time");
            let token = bench.genuine("k1", &set(claims(), member, json!(value)));
            let before = bench.echo.counts.requests();
            let reply = bench.send(&token).await;
            if unix_now() != now {
                continue;
            }
            let reached = bench.echo.counts.requests() - before;
            verdict = Some(match accepted {
                true if reply.status == 200 && reached == 1 => None,
                true => Some(format!("refused with {}", reply.status)),
                false if reached != 0 => Some("reached the upstream".to_string()),
                false => refusal_problem(&reply, &token),
            });
            break;
        }
        match verdict {
            Some(None) => {}
            Some(Some(problem)) => failures.push(format!("{name}: {problem}")),
            None => failures.push(format!("{name}: no exchange fit in one clock second")),
        }
    }
    assert!(failures.is_empty(), "leeway boundaries:\n{}", failures.join("\n"));
}

// === the HS256 profile ===

/// A sample of wallarm/jwt-secrets `jwt.secrets.list`: the secrets that jwt_tool, hashcat and
/// jwt-cracker try first (defaults from tutorials, frameworks and sample configs), one per line.
const WEAK_SECRETS: &str = include_str!("../data/weak_secrets.txt");

/// Low-entropy secrets of 32 bytes or more that no wordlist needs to contain.
fn low_entropy_secrets() -> Vec<String> {
    vec![
        "a".repeat(32),
        "0".repeat(32),
        "a".repeat(64),
        "ab".repeat(16),
        "abcd".repeat(8),
        "secret".repeat(6),
        "passwordpasswordpasswordpassword".to_string(),
        "0123456789abcdef0123456789abcdef".to_string(),
        "abcdefghijklmnopqrstuvwxyz012345".to_string(),
    ]
}

#[tokio::test]
async fn hs256_tokens_signed_with_wordlist_secrets_are_refused() {
    assert!(WEAK_SECRETS.lines().count() >= 100);
    let bench = Bench::one_key(KeyAlgorithm::Hs256).await;
    let secret_file = bench.k1.file.clone();
    let secret = secret_file.trim_ascii().to_vec();
    assert!(secret.len() >= 32);
    let claims = claims();
    let mut cases = Vec::new();
    for weak in WEAK_SECRETS
        .lines()
        .map(String::from)
        .chain(low_entropy_secrets())
    {
        let shown: String = weak.chars().take(40).collect();
        cases.push(case(
            format!("HS256 under k1 with {shown:?}"),
            hmac(&header("HS256", "k1"), &claims, weak.as_bytes(), Algorithm::HS256),
        ));
    }
    for weak in ["secret", "your-256-bit-secret", ""] {
        cases.push(case(
            format!("HS256 without a kid with {weak:?}"),
            hmac(
                &unset(header("HS256", "k1"), "kid"),
                &claims,
                weak.as_bytes(),
                Algorithm::HS256,
            ),
        ));
    }
    // Near misses of the real secret: every byte matters, and nothing else is tried.
    let mut flipped = secret.clone();
    flipped[0] ^= 1;
    let decoded = URL_SAFE_NO_PAD.decode(&secret).unwrap_or_default();
    for (name, key) in [
        ("the secret file untrimmed", secret_file.clone()),
        ("the secret with one bit flipped", flipped),
        ("the secret's first 31 bytes", secret[..31].to_vec()),
        ("the secret base64url-decoded", decoded),
        ("the secret upper-cased", secret.to_ascii_uppercase()),
    ] {
        cases.push(case(
            name,
            hmac(&header("HS256", "k1"), &claims, &key, Algorithm::HS256),
        ));
    }
    for (name, alg) in [("HS384", Algorithm::HS384), ("HS512", Algorithm::HS512)] {
        cases.push(case(
            format!("{name} with the real secret"),
            hmac(&header(name, "k1"), &claims, &secret, alg),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    // The JWKS publishes nothing to confuse with, and the real secret is accepted.
    let jwks = bench.gateway.get("/.well-known/jwks.json").await.json();
    assert_eq!(jwks["keys"], json!([]), "{jwks}");
    let genuine = hmac(&header("HS256", "k1"), &claims, &secret, Algorithm::HS256);
    bench.assert_accepted("the real secret", &genuine).await;
}

/// Writes a config (the kit's) whose only key is an HS256 secret file holding `secret`; its path.
fn secret_config(dir: &Path, secret: &str) -> PathBuf {
    std::fs::write(dir.join("k1.secret"), format!("{secret}\n")).expect("write secret");
    let key = key_entry("k1", KeyAlgorithm::Hs256, "secret_file = \"k1.secret\"");
    support::config::write(dir, "", &tokens_section(&key)).path
}

/// The verdict of `config::load` plus the key loading that `portcullis check` and the start
/// perform: true when the secret is refused.
fn refused_in_process(dir: &Path, secret: &str) -> bool {
    let path = secret_config(dir, secret);
    match portcullis::config::load(&path) {
        Err(_) => true,
        Ok(config) => portcullis::auth::keys::KeySet::load(&config.tokens).is_err(),
    }
}

/// `portcullis check` on the same config: true when it exits 1 without echoing the secret.
fn refused_by_check(dir: &Path, secret: &str) -> bool {
    let path = secret_config(dir, secret);
    let output = support::binary::portcullis()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run portcullis check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    output.status.code() == Some(1) && !stderr.contains(secret)
}

#[test]
fn config_refuses_wordlist_hs256_secrets_shorter_than_32_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let short: Vec<&str> = WEAK_SECRETS.lines().filter(|s| s.len() < 32).collect();
    assert!(short.len() >= 100);
    let accepted: Vec<&str> = short
        .iter()
        .copied()
        .filter(|secret| !refused_in_process(dir.path(), secret))
        .collect();
    assert!(accepted.is_empty(), "weak secrets accepted: {accepted:?}");
    for secret in ["changeme", "your-256-bit-secret"] {
        assert!(
            refused_by_check(dir.path(), secret),
            "portcullis check accepted {secret:?} or echoed it"
        );
    }
}

#[test]
fn config_refuses_wordlist_and_low_entropy_hs256_secrets_of_32_bytes_or_more() {
    let dir = tempfile::tempdir().expect("temp dir");
    let long: Vec<String> = WEAK_SECRETS
        .lines()
        .filter(|s| s.len() >= 32)
        .map(|s| s.to_string())
        .chain(low_entropy_secrets())
        .collect();
    assert!(long.len() >= 20, "{}", long.len());
    let mut accepted: Vec<String> = long
        .iter()
        .filter(|secret| !refused_in_process(dir.path(), secret))
        .cloned()
        .collect();
    for secret in ["reallyreallyreallyreallyverysafe".to_string(), "a".repeat(32)] {
        if !refused_by_check(dir.path(), &secret) {
            accepted.push(format!("{secret} (portcullis check)"));
        }
    }
    assert!(
        accepted.is_empty(),
        "weak secrets of 32+ bytes accepted: {accepted:#?}"
    );
}

/// A well-typed but absurd `exp` (only the key holder can sign one) must not break the
/// verified-token cache or the process: whatever the verdict, every request gets an answer
/// and the verdict does not change between the first (uncached) and second (cached) use.
#[tokio::test]
async fn an_absurdly_distant_exp_does_not_break_the_gateway() {
    let bench = Bench::three_keys().await;
    let mut failures = Vec::new();
    for exp in [
        u64::MAX,
        u64::MAX - 1,
        u64::MAX - LEEWAY + 1,
        i64::MAX as u64,
        253_402_300_800,
    ] {
        let token = bench.genuine("k1", &set(claims(), "exp", json!(exp)));
        let mut verdicts = Vec::new();
        for attempt in 1..=2 {
            match bench.try_send(&token).await {
                Ok(reply) => verdicts.push(reply.status.as_u16()),
                Err(e) => failures.push(format!("exp {exp}, attempt {attempt}: no answer ({e})")),
            }
        }
        if verdicts.len() == 2 && verdicts[0] != verdicts[1] {
            failures.push(format!("exp {exp}: uncached then cached verdicts {verdicts:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    bench.assert_controls_accepted().await;
}
