//! Micro-benchmark of DPoP proof verification (SPEC 14): an ES256 proof with its embedded key,
//! each with its own `jti`, checked against method, URI, `ath` and `cnf.jkt` and recorded in
//! the replay cache, as every DPoP request will be. Run with `cargo bench --bench dpop`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::auth::dpop::{DpopVerifier, Expected};
use serde_json::json;

const URI: &str = "https://gw.example.com/api/orders";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.an-access-token.signature";
/// Proofs made up front (signing is the client's cost, not the gateway's).
const PROOFS: usize = 20_000;

fn proofs(now: u64) -> Vec<String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key");
    let point = key.public_key().as_ref();
    let jwk =
        json!({ "kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]) });
    let header = B64.encode(json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk }).to_string());
    let ath = B64.encode(digest::digest(&digest::SHA256, TOKEN.as_bytes()));
    (0..PROOFS)
        .map(|i| {
            let claims =
                json!({ "jti": format!("jti-{i}"), "htm": "GET", "htu": URI, "iat": now, "ath": ath });
            let input = format!("{header}.{}", B64.encode(claims.to_string()));
            let signature = key.sign(&rng, input.as_bytes()).expect("sign");
            format!("{input}.{}", B64.encode(signature.as_ref()))
        })
        .collect()
}

fn proof_verification(c: &mut Criterion) {
    let now = portcullis::auth::tokens::unix_now();
    let proofs = proofs(now);
    let window = Duration::from_secs(60);
    let jkt = DpopVerifier::new(window, Duration::from_secs(5), Default::default())
        .verify(
            &proofs[0],
            &Expected {
                method: "GET",
                uri: URI,
                access_token: Some(TOKEN),
                jkt: None,
                now,
            },
        )
        .expect("the proofs verify");
    c.bench_function("dpop/ES256 proof, new jti", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            let mut done = 0;
            while done < iterations {
                // A fresh replay cache per round of the proofs: each jti is new to it.
                let verifier = DpopVerifier::new(window, Duration::from_secs(5), Default::default());
                let round = (iterations - done).min(PROOFS as u64) as usize;
                let expected = Expected {
                    method: "GET",
                    uri: URI,
                    access_token: Some(TOKEN),
                    jkt: Some(&jkt),
                    now,
                };
                let started = Instant::now();
                for proof in &proofs[..round] {
                    black_box(verifier.verify(black_box(proof), &expected)).expect("verifies");
                }
                spent += started.elapsed();
                done += round as u64;
            }
            spent
        })
    });
}

criterion_group!(benches, proof_verification);
criterion_main!(benches);
