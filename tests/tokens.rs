//! Access-token verification (SPEC 5.1, 6): a matrix of forged and malformed tokens, each
//! refused with 401 `invalid_token` before anything reaches the upstream, and the claim rules.
//!
//! Tokens are built by hand (base64url JSON segments and a signature over their exact bytes),
//! usually signed with the gateway's own key read from the test's temp dir, so that each case
//! differs from an accepted token in exactly the way it names. Every matrix ends by showing
//! that the unmodified control token is accepted, so a rejection is never an accident of the
//! forging.

mod support;

use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::auth::tokens::unix_now;
use portcullis::config::KeyAlgorithm;
use serde_json::{Value, json};
use support::DEADLINE;
use support::jwt::*;
use support::upstreams::Upstream;

// === the forgery matrix ===

#[tokio::test]
async fn alg_none_in_any_spelling_is_rejected_with_or_without_a_signature() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let claims = claims().to_string();
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = header(alg, "k1").to_string();
        cases.push(case(
            format!("{alg}, empty signature"),
            unsigned(&header, &claims, ""),
        ));
        cases.push(case(
            format!("{alg}, garbage signature"),
            unsigned(&header, &claims, "Z2FyYmFnZS1zaWduYXR1cmU"),
        ));
        let real = parts(&bench.control())[2].to_string();
        cases.push(case(
            format!("{alg}, a real signature of another input"),
            unsigned(&header, &claims, &real),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn stripped_altered_and_foreign_signatures_are_rejected() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let control = bench.control();
    let [h, p, s] = parts(&control)[..] else {
        panic!("three segments")
    };
    let attacker = Key::attacker(KeyAlgorithm::Es256);
    let raw = URL_SAFE_NO_PAD.decode(s).expect("signature");
    assert_eq!(raw.len(), 64, "ES256 signatures are r || s");
    let other_token = bench.sign(bench.header(), set(claims(), "sub", json!("other")));
    let pkcs8 = pem::parse(&bench.k1.file).expect("PEM").into_contents();
    let asn1_key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).expect("key");
    let asn1 = asn1_key
        .sign(
            &aws_lc_rs::rand::SystemRandom::new(),
            format!("{h}.{p}").as_bytes(),
        )
        .expect("sign");
    let cases = vec![
        case("signature stripped", format!("{h}.{p}.")),
        case(
            "one signature character changed",
            format!("{h}.{p}.{}", flip(s, 20)),
        ),
        case(
            "first signature character changed",
            format!("{h}.{p}.{}", flip(s, 0)),
        ),
        case(
            "one payload character changed",
            format!("{h}.{}.{s}", flip(p, 30)),
        ),
        case("one header character changed", format!("{}.{p}.{s}", flip(h, 12))),
        case(
            "signature of another token",
            format!("{h}.{p}.{}", parts(&other_token)[2]),
        ),
        case(
            "signed by another ES256 key",
            sign_input(&format!("{h}.{p}"), &attacker.encoding, Algorithm::ES256),
        ),
        case(
            "all-zero 64-byte signature",
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
        ),
        case(
            "the real signature DER-encoded",
            format!(
                "{h}.{p}.{}",
                URL_SAFE_NO_PAD.encode(der_ecdsa(&raw[..32], &raw[32..]))
            ),
        ),
        case(
            "a fresh DER signature by the real key",
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(asn1.as_ref())),
        ),
        case(
            "signature truncated to 63 bytes",
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&raw[..63])),
        ),
        case(
            "signature with a byte appended",
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode([&raw[..], &[0]].concat())),
        ),
    ];
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn hs256_signed_with_the_servers_public_key_is_rejected() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let jwks = bench.gateway.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    let jwk = jwks.json()["keys"][0].clone();
    assert_eq!(jwk["kid"], "k1");
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("coordinate"))
            .expect("base64url")
    };
    let der = bench.k1.spki();
    let pem = bench.k1.public_pem();
    let point = [&[4u8][..], &coordinate("x"), &coordinate("y")].concat();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the public key PEM", pem.clone().into_bytes()),
        ("the public key PEM, trimmed", pem.trim().as_bytes().to_vec()),
        ("the public key DER", der.clone()),
        ("the uncompressed point", point.clone()),
        ("the point without its prefix", point[1..].to_vec()),
        ("the JWK JSON", jwk.to_string().into_bytes()),
        ("the JWKS document", jwks.body.to_vec()),
    ];
    assert!(der.ends_with(&point), "the JWKS publishes the key in k1.pem");
    let claims = claims().to_string();
    let mut cases = Vec::new();
    for (name, secret) in &secrets {
        for header in [header("HS256", "k1"), unset(header("HS256", "k1"), "kid")] {
            let token = sign_bytes(
                header.to_string(),
                &claims,
                &EncodingKey::from_secret(secret),
                Algorithm::HS256,
            );
            cases.push(case(format!("HMAC keyed with {name}, header {header}"), token));
        }
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn unknown_missing_and_hostile_kids_are_rejected() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let claims = claims();
    let kids = [
        ("unknown kid k2", json!("k2")),
        ("kid in another case", json!("K1")),
        ("empty kid", json!("")),
        ("path traversal kid", json!("../../etc/passwd")),
        ("kid with a NUL", json!("k1\u{0}")),
        ("kid with a quote", json!("k1\"")),
        ("kid with a trailing space", json!("k1 ")),
        ("numeric kid", json!(1)),
        ("null kid", Value::Null),
        ("array kid", json!(["k1"])),
    ];
    let mut cases: Vec<_> = kids
        .into_iter()
        .map(|(name, kid)| case(name, bench.sign(set(bench.header(), "kid", kid), &claims)))
        .collect();
    cases.push(case(
        "missing kid",
        bench.sign(unset(bench.header(), "kid"), &claims),
    ));
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn embedded_and_remote_key_references_are_never_used_or_fetched() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    // Anything the gateway fetched would show up here as a connection.
    let trap = Upstream::echo().await;
    let attacker = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("attacker key");
    let attacker_key = EncodingKey::from_ec_pem(attacker.serialize_pem().as_bytes()).expect("key");
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker_key, Algorithm::ES256).expect("jwk");
    let jwk = set(serde_json::to_value(&jwk).expect("jwk"), "kid", json!("k1"));
    let certificate = rcgen::CertificateParams::new(vec!["attacker.example".to_string()])
        .expect("params")
        .self_signed(&attacker)
        .expect("certificate");
    let x5c = json!([STANDARD.encode(certificate.der())]);
    let members = [
        ("jwk", jwk),
        ("jku", json!(format!("http://{}/jwks.json", trap.addr))),
        ("x5u", json!(format!("http://{}/cert.pem", trap.addr))),
        ("x5c", x5c),
    ];
    let claims = claims().to_string();
    let mut cases = Vec::new();
    for (member, value) in &members {
        for kid in [Some("k1"), Some("attacker"), None] {
            let mut header = set(bench.header(), member, value.clone());
            header = match kid {
                Some(kid) => set(header, "kid", json!(kid)),
                None => unset(header, "kid"),
            };
            let token = sign_bytes(header.to_string(), &claims, &attacker_key, Algorithm::ES256);
            cases.push(case(
                format!("{member} with kid {kid:?}, signed by the attacker"),
                token,
            ));
        }
    }
    bench.assert_rejected(cases).await;
    assert_eq!(trap.counts.connections(), 0, "the gateway fetched a key URL");
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn typ_must_name_an_access_token() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let claims = claims();
    let mut cases = vec![case(
        "missing typ",
        bench.sign(unset(bench.header(), "typ"), &claims),
    )];
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("JOSE"),
        json!(""),
        json!("at+jwt "),
        json!("at+jwt\u{0}"),
        json!("application/jwt"),
        json!("refresh+jwt"),
        Value::Null,
        json!(["at+jwt"]),
    ] {
        cases.push(case(
            format!("typ {typ}"),
            bench.sign(set(bench.header(), "typ", typ), &claims),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

/// RFC 9068 4 accepts "at+jwt" and "application/at+jwt"; `typ` is a media type, and media
/// types compare case-insensitively (RFC 7515 4.1.9, RFC 2045), so case variants are accepted.
#[tokio::test]
async fn typ_at_jwt_is_accepted_in_any_case_and_with_the_application_prefix() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    for typ in [
        "at+jwt",
        "at+JWT",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = bench.sign(set(bench.header(), "typ", json!(typ)), claims());
        bench.assert_accepted(typ, &token).await;
    }
}

#[tokio::test]
async fn crit_b64_and_zip_headers_are_rejected() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let claims_text = claims().to_string();
    let headers = [
        (
            "crit naming exp",
            json!({ "crit": ["exp"], "exp": unix_now() + 600 }),
        ),
        (
            "crit naming an unknown extension",
            json!({ "crit": ["x-ext"], "x-ext": 1 }),
        ),
        ("empty crit", json!({ "crit": [] })),
        ("b64 false under crit", json!({ "crit": ["b64"], "b64": false })),
        ("b64 false", json!({ "b64": false })),
        ("b64 true", json!({ "b64": true })),
        ("zip DEF", json!({ "zip": "DEF" })),
    ];
    let mut cases = Vec::new();
    for (name, extra) in headers {
        let mut header = bench.header();
        for (member, value) in extra.as_object().expect("object") {
            header = set(header, member, value.clone());
        }
        cases.push(case(name, bench.sign(header.to_string(), &claims_text)));
    }
    // RFC 7797: with b64 false the payload is signed unencoded.
    let unencoded_header = set(set(bench.header(), "b64", json!(false)), "crit", json!(["b64"]));
    let input = format!("{}.{claims_text}", b64(unencoded_header.to_string()));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &bench.k1.encoding, Algorithm::ES256).expect("sign");
    cases.push(case(
        "b64 false with an RFC 7797 signature",
        format!(
            "{}.{}.{signature}",
            b64(unencoded_header.to_string()),
            b64(&claims_text)
        ),
    ));
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn duplicate_members_in_header_or_claims_are_rejected() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let header = bench.header();
    let claims = claims();
    let (header_text, claims_text) = (header.to_string(), claims.to_string());
    let now = unix_now();
    let expired = set(claims.clone(), "exp", json!(now - 3600));
    let user_role = set(claims.clone(), "role", json!("user"));
    let cases = vec![
        case(
            "alg none then ES256",
            bench.sign(prepend(&header, r#""alg":"none""#), &claims_text),
        ),
        case(
            "alg twice, same value",
            bench.sign(prepend(&header, r#""alg":"ES256""#), &claims_text),
        ),
        case(
            "alg ES256 then HS256",
            bench.sign(append(&header, r#""alg":"HS256""#), &claims_text),
        ),
        case(
            "kid k2 then k1",
            bench.sign(prepend(&header, r#""kid":"k2""#), &claims_text),
        ),
        case(
            "kid twice, same value",
            bench.sign(prepend(&header, r#""kid":"k1""#), &claims_text),
        ),
        case(
            "typ twice",
            bench.sign(prepend(&header, r#""typ":"JWT""#), &claims_text),
        ),
        case(
            "kid twice, one spelt with an escape",
            bench.sign(prepend(&header, r#""\u006bid":"k1""#), &claims_text),
        ),
        case(
            "sub twice",
            bench.sign(&header_text, prepend(&claims, r#""sub":"root""#)),
        ),
        case(
            "sub twice, same value",
            bench.sign(&header_text, prepend(&claims, r#""sub":"mallory""#)),
        ),
        case(
            "sub twice, one spelt with an escape",
            bench.sign(&header_text, prepend(&claims, r#""\u0073ub":"root""#)),
        ),
        case(
            "exp twice: valid first, expired last",
            bench.sign(&header_text, prepend(&expired, &format!("\"exp\":{}", now + 600))),
        ),
        case(
            "exp twice: expired first, valid last",
            bench.sign(&header_text, prepend(&claims, &format!("\"exp\":{}", now - 3600))),
        ),
        case(
            "role twice",
            bench.sign(&header_text, prepend(&user_role, r#""role":"admin""#)),
        ),
        case(
            "aud twice",
            bench.sign(&header_text, prepend(&claims, r#""aud":"other""#)),
        ),
    ];
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn time_claims_must_be_present_and_numeric() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let now = unix_now();
    let header = bench.header();
    let mut cases = Vec::new();
    for (member, value) in [("exp", now + 600), ("nbf", now), ("iat", now)] {
        cases.push(case(
            format!("{member} as a string"),
            bench.sign(&header, set(claims(), member, json!(value.to_string()))),
        ));
        cases.push(case(
            format!("{member} null"),
            bench.sign(&header, set(claims(), member, Value::Null)),
        ));
        cases.push(case(
            format!("{member} as a boolean"),
            bench.sign(&header, set(claims(), member, json!(true))),
        ));
    }
    for member in ["exp", "nbf"] {
        cases.push(case(
            format!("{member} missing"),
            bench.sign(&header, unset(claims(), member)),
        ));
    }
    cases.push(case(
        "negative exp",
        bench.sign(&header, set(claims(), "exp", json!(-1))),
    ));
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn exp_nbf_and_iat_are_checked_with_the_leeway_only() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let now = unix_now();
    let header = bench.header();
    let cases = vec![
        case(
            "exp exactly at the end of the leeway",
            bench.sign(&header, set(claims(), "exp", json!(now - LEEWAY))),
        ),
        case(
            "exp one second beyond the leeway",
            bench.sign(&header, set(claims(), "exp", json!(now - LEEWAY - 1))),
        ),
        case(
            "exp long ago",
            bench.sign(&header, set(claims(), "exp", json!(now - 86_400))),
        ),
        case(
            "nbf in the future beyond the leeway",
            bench.sign(&header, set(claims(), "nbf", json!(now + LEEWAY + 3))),
        ),
        case(
            "iat in the future beyond the leeway",
            bench.sign(&header, set(claims(), "iat", json!(now + LEEWAY + 3))),
        ),
        case(
            "iat an hour in the future",
            bench.sign(&header, set(claims(), "iat", json!(now + 3600))),
        ),
    ];
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    // The gateway's clock can only be ahead of `now`, so these stay inside the leeway.
    let now = unix_now();
    bench
        .assert_accepted(
            "exp within the leeway",
            &bench.sign(&header, set(claims(), "exp", json!(now - LEEWAY + 2))),
        )
        .await;
    bench
        .assert_accepted(
            "nbf at the edge of the leeway",
            &bench.sign(&header, set(claims(), "nbf", json!(now + LEEWAY))),
        )
        .await;
}

#[tokio::test]
async fn issuer_and_audience_must_match_exactly() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let header = bench.header();
    let mut cases = Vec::new();
    for iss in [
        json!("Portcullis"),
        json!("PORTCULLIS"),
        json!("portcullis "),
        json!(" portcullis"),
        json!("portcullis\u{0}"),
        json!(""),
        json!("other"),
        json!(["portcullis"]),
        Value::Null,
    ] {
        cases.push(case(
            format!("iss {iss}"),
            bench.sign(&header, set(claims(), "iss", iss)),
        ));
    }
    cases.push(case("missing iss", bench.sign(&header, unset(claims(), "iss"))));
    for aud in [
        json!("Default"),
        json!("default "),
        json!("other"),
        json!(""),
        json!([]),
        json!(["other"]),
        json!(["Default", "other"]),
        json!([["default"]]),
        json!(7),
        Value::Null,
    ] {
        cases.push(case(
            format!("aud {aud}"),
            bench.sign(&header, set(claims(), "aud", aud)),
        ));
    }
    cases.push(case("missing aud", bench.sign(&header, unset(claims(), "aud"))));
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    for aud in [json!(["default"]), json!(["other", "default"])] {
        let token = bench.sign(&header, set(claims(), "aud", aud.clone()));
        bench.assert_accepted(&format!("aud {aud}"), &token).await;
    }
}

#[tokio::test]
async fn sub_and_role_must_be_non_empty_visible_ascii_strings() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let header = bench.header();
    let values = [
        ("a number", json!(42)),
        ("empty", json!("")),
        ("with a space", json!("ali ce")),
        ("with a control character", json!("ali\u{7}ce")),
        ("with a tab", json!("ali\tce")),
        ("with CR LF", json!("alice\r\nX-Auth-Role: admin")),
        ("with a NUL", json!("alice\u{0}")),
        ("with DEL", json!("alice\u{7f}")),
        ("non-ASCII", json!("alicé")),
        ("300 bytes", json!("a".repeat(300))),
        ("null", Value::Null),
        ("an array", json!(["alice"])),
        ("an object", json!({ "name": "alice" })),
    ];
    let mut cases = Vec::new();
    for member in ["sub", "role"] {
        for (name, value) in &values {
            cases.push(case(
                format!("{member} {name}"),
                bench.sign(&header, set(claims(), member, value.clone())),
            ));
        }
        cases.push(case(
            format!("{member} missing"),
            bench.sign(&header, unset(claims(), member)),
        ));
    }
    for (name, value) in [
        ("empty", json!("")),
        ("with CR LF", json!("s\r\nX-Auth-Sub: root")),
        ("non-ASCII", json!("sé")),
    ] {
        cases.push(case(
            format!("sid {name}"),
            bench.sign(&header, set(claims(), "sid", value)),
        ));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn malformed_token_shapes_are_rejected() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let control = bench.control();
    let [h, p, s] = parts(&control)[..] else {
        panic!("three segments")
    };
    // Valid in every other way: an audience array may name other audiences too.
    let big = bench.sign(
        bench.header(),
        set(claims(), "aud", json!(["default", "x".repeat(3800)])),
    );
    assert!((5 * 1024..6 * 1024).contains(&big.len()), "{}", big.len());
    // Padding inside the signing input, with a signature valid over those exact bytes.
    let padded_input = format!("{}.{p}", padded(&bench.header().to_string()));
    let padded_payload = format!("{h}.{}", padded(&claims().to_string()));
    // A signature with a character that the standard alphabet spells differently.
    let (standard_input, standard_signature) = std::iter::repeat_with(|| bench.control())
        .take(200)
        .find_map(|token| {
            let (input, signature) = token.rsplit_once('.')?;
            let standard = signature.replace('-', "+").replace('_', "/");
            (standard != signature).then(|| (input.to_string(), standard))
        })
        .expect("a signature with - or _");
    let padded_signature = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(s).expect("signature"));
    assert!(padded_signature.ends_with('='));
    let cases = vec![
        case("a 5 KiB token", big),
        case("two segments", format!("{h}.{p}")),
        case("one segment", h.to_string()),
        case("four segments", format!("{h}.{p}.{s}.{s}")),
        case("four segments, last empty", format!("{h}.{p}.{s}.")),
        case("five segments", format!("{h}.{p}.{s}.{p}.{s}")),
        case("empty header", format!(".{p}.{s}")),
        case("empty payload", format!("{h}..{s}")),
        case("only dots", "..".to_string()),
        case("padded signature", format!("{h}.{p}.{padded_signature}")),
        case(
            "padded header, signed over the padding",
            sign_input(&padded_input, &bench.k1.encoding, Algorithm::ES256),
        ),
        case(
            "padded payload, signed over the padding",
            sign_input(&padded_payload, &bench.k1.encoding, Algorithm::ES256),
        ),
        case(
            "standard base64 alphabet",
            format!("{standard_input}.{standard_signature}"),
        ),
        case(
            "header that is not JSON",
            sign_input(
                &format!("{}.{p}", b64("alg=ES256")),
                &bench.k1.encoding,
                Algorithm::ES256,
            ),
        ),
        case(
            "payload that is not JSON",
            sign_input(
                &format!("{h}.{}", b64("sub=mallory")),
                &bench.k1.encoding,
                Algorithm::ES256,
            ),
        ),
        case(
            "header with data after its JSON",
            sign_input(
                &format!("{}.{p}", b64(format!("{} {{}}", bench.header()))),
                &bench.k1.encoding,
                Algorithm::ES256,
            ),
        ),
        case(
            "payload with data after its JSON",
            sign_input(
                &format!("{h}.{}", b64(format!("{}x", claims()))),
                &bench.k1.encoding,
                Algorithm::ES256,
            ),
        ),
        case(
            "payload that is a JSON array",
            sign_input(
                &format!("{h}.{}", b64("[1,2]")),
                &bench.k1.encoding,
                Algorithm::ES256,
            ),
        ),
    ];
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 0);
    bench.assert_controls_accepted().await;
}

// === accepted tokens and the cache ===

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_exactly_one_of_each_identity_header() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let claims = set(
        set(set(claims(), "sub", json!("zed")), "role", json!("auditor")),
        "sid",
        json!("sess-42"),
    );
    let reply = bench
        .assert_accepted("forged with the real key", &bench.sign(bench.header(), &claims))
        .await;
    assert_eq!(reply.upstream_header("x-auth-sub"), ["zed"]);
    assert_eq!(reply.upstream_header("x-auth-role"), ["auditor"]);
    assert_eq!(reply.upstream_header("x-auth-session"), ["sess-42"]);

    let issued = bench.gateway.token("bob").await;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts(&issued)[1]).expect("base64url"))
            .expect("claims");
    let reply = bench.assert_accepted("issued at login", &issued).await;
    assert_eq!(reply.upstream_header("x-auth-sub"), ["bob"]);
    assert_eq!(reply.upstream_header("x-auth-role"), ["user"]);
    let sid = claims["sid"].as_str().expect("sid");
    assert!(!sid.is_empty());
    assert_eq!(reply.upstream_header("x-auth-session"), [sid]);
}

#[tokio::test]
async fn a_forged_token_is_rejected_every_time_it_is_sent() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let attacker = Key::attacker(KeyAlgorithm::Es256);
    let forged = sign_bytes(
        bench.header().to_string(),
        claims().to_string(),
        &attacker.encoding,
        Algorithm::ES256,
    );
    let control = bench.control();
    let [h, p, s] = parts(&control)[..] else {
        panic!("three segments")
    };
    let altered = format!("{h}.{p}.{}", flip(s, 20));
    // The genuine token first, so a cache keyed loosely (by claims, by prefix) would be warm.
    bench.assert_accepted("genuine", &control).await;
    let mut cases = Vec::new();
    for round in 1..=3 {
        cases.push(case(format!("forged, attempt {round}"), forged.clone()));
        cases.push(case(format!("altered, attempt {round}"), altered.clone()));
    }
    bench.assert_rejected(cases).await;
    assert_eq!(bench.echo.counts.requests(), 1);
}

#[tokio::test]
async fn a_token_refused_as_not_yet_valid_is_accepted_once_its_time_comes() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let nbf = unix_now() + LEEWAY + 3;
    let token = bench.sign(bench.header(), set(claims(), "nbf", json!(nbf)));
    bench
        .assert_rejected(vec![case("not valid yet", token.clone())])
        .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let sent_at = unix_now();
        let reply = bench.send(&token).await;
        if reply.status == 200 {
            assert!(
                sent_at + 1 >= nbf - LEEWAY,
                "accepted at {sent_at}, before nbf {nbf} minus the leeway"
            );
            break;
        }
        assert!(refusal_problem(&reply, &token).is_none());
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal was cached: still refused at {}, nbf {nbf}",
            unix_now()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bench.echo.counts.requests(), 1);
}

#[tokio::test]
async fn a_cached_token_stops_working_when_it_expires() {
    let bench = Bench::one_key(KeyAlgorithm::Es256).await;
    let exp = unix_now() - LEEWAY + 3;
    let token = bench.sign(bench.header(), set(claims(), "exp", json!(exp)));
    bench.assert_accepted("valid for a few seconds", &token).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let sent_at = unix_now();
        let reply = bench.send(&token).await;
        if reply.status == 401 {
            assert!(refusal_problem(&reply, &token).is_none());
            break;
        }
        assert_eq!(reply.status, 200);
        assert!(
            sent_at < exp + LEEWAY,
            "accepted at {sent_at}, after exp {exp} plus the leeway"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepted at {}",
            unix_now()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// === every algorithm ===

/// Login, verification and the published key work for `alg`, and tokens signed with another
/// algorithm's key under the same kid are refused.
async fn algorithm_is_pinned_to_its_key(alg: KeyAlgorithm) {
    let bench = Bench::one_key(alg).await;
    let issued = bench.gateway.token("alice").await;
    assert_eq!(segment_of(&issued, 0), header(alg.name(), "k1"));
    let reply = bench.assert_accepted("issued at login", &issued).await;
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);
    assert_eq!(reply.upstream_header("x-auth-role"), ["admin"]);

    let jwks = bench.gateway.get("/.well-known/jwks.json").await.json();
    let published = jwks["keys"].as_array().expect("keys");
    if alg == KeyAlgorithm::Hs256 {
        assert!(published.is_empty(), "an HMAC secret was published: {jwks}");
    } else {
        assert_eq!(published.len(), 1, "{jwks}");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(published[0].clone()).expect("JWK");
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("usable JWK");
        let (input, signature) = issued.rsplit_once('.').expect("signature");
        let verified = jsonwebtoken::crypto::verify(signature, input.as_bytes(), &key, jose(alg));
        assert!(
            matches!(verified, Ok(true)),
            "the login token does not verify with the JWKS"
        );
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(published[0].get(private).is_none(), "{private} published: {jwks}");
        }
    }

    let claims = claims();
    let mut cases = Vec::new();
    for other in ALL_ALGORITHMS {
        let key = Key::attacker(other);
        let under = |name: &str| sign_json(&header(name, "k1"), &claims, &key.encoding, jose(other));
        let (ours, theirs) = (alg.name(), other.name());
        if other != alg {
            let name = format!("alg {theirs} under kid k1, signed by a {theirs} key");
            cases.push(case(name, under(theirs)));
        }
        let name = format!("alg {ours} under kid k1, signed by a new {theirs} key");
        cases.push(case(name, under(ours)));
    }
    if alg != KeyAlgorithm::Hs256 {
        // Key confusion: the server's public key used as an HMAC secret.
        for secret in [bench.k1.public_pem().into_bytes(), bench.k1.spki()] {
            let token = hmac(&header("HS256", "k1"), &claims, &secret, Algorithm::HS256);
            cases.push(case("alg HS256 keyed with the server's public key", token));
        }
    }
    let own = bench.control();
    let [h, p, s] = parts(&own)[..] else {
        panic!("three segments")
    };
    let none = header("none", "k1").to_string();
    cases.extend([
        case("own key, signature changed", format!("{h}.{p}.{}", flip(s, 10))),
        case("alg none", unsigned(&none, claims.to_string(), "")),
        case(
            "alg none with the real signature",
            format!("{}.{p}.{s}", b64(&none)),
        ),
    ]);
    bench.assert_rejected(cases).await;
    bench.assert_controls_accepted().await;
}

#[tokio::test]
async fn es256_keys_sign_verify_and_refuse_other_algorithms_under_their_kid() {
    algorithm_is_pinned_to_its_key(KeyAlgorithm::Es256).await;
}

#[tokio::test]
async fn eddsa_keys_sign_verify_and_refuse_other_algorithms_under_their_kid() {
    algorithm_is_pinned_to_its_key(KeyAlgorithm::EdDsa).await;
}

#[tokio::test]
async fn rs256_keys_sign_verify_and_refuse_other_algorithms_under_their_kid() {
    algorithm_is_pinned_to_its_key(KeyAlgorithm::Rs256).await;
}

#[tokio::test]
async fn hs256_secrets_sign_verify_and_refuse_other_algorithms_under_their_kid() {
    algorithm_is_pinned_to_its_key(KeyAlgorithm::Hs256).await;
}
