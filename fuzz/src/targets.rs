//! The bodies of the fuzz targets, each a plain `fn(&[u8])` that panics when an invariant
//! breaks. Shared by the libFuzzer binaries (fuzz/fuzz_targets/) and by the regression test
//! `tests/fuzz_regressions.rs`, which includes this file with `#[path]`; so it may use only
//! crates that both the fuzz package and the gateway's tests have.
//!
//! - `token`: `AccessTokens::verify` with a fixed key set (ES256 `k1` signs, HS256 `h1`
//!   verifies too). The first input byte picks a mode: the raw token; header and claims
//!   JSON taken from the input and signed with the real HS256 or ES256 key (so mutations
//!   reach the claim checks); or a claim set assembled from input bytes (boundary times,
//!   hostile strings, duplicate and forbidden members, algorithm confusion). An independent
//!   oracle (its own JSON duplicate check, aws-lc signatures, SPEC 5.1 rules) must agree
//!   with the gateway both ways, and a second (cached) verification must agree with the first.
//! - `path`: `normalize_path` against an independent model, the canonical-form rules and
//!   idempotence, and the threat model normalize.rs states (a backend that decodes once more
//!   and strips `;parameters` must not see a dot segment).
//! - `config`: `config::parse` on arbitrary UTF-8: never panics, errors are located and
//!   non-empty, an accepted config holds only normalised route paths and non-zero limits.
//! - `cookie`: `cookies::pairs`/`find` against a model of the Cookie grammar (duplicates
//!   are reported, a found value lies inside the input), and `strip_own_cookies` never
//!   lets one of the gateway's cookies through nor loses another.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use portcullis::auth::keys::KeySet;
use portcullis::auth::tokens::{AccessTokens, Identity};
use portcullis::config::{KeyAlgorithm, KeyConfig, KeySource, TokensConfig};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

// ---------------------------------------------------------------------------------------
// token
// ---------------------------------------------------------------------------------------

/// A fixed "now" far ahead of the real clock, so that results never depend on when the
/// fuzzer runs and accepted tokens stay in the verified-token cache (which expires entries
/// by the real clock).
pub const NOW: u64 = 4_000_000_000;
const ISSUER: &str = "portcullis";
const AUDIENCE: &str = "default";
const LEEWAY: u64 = 5;
const MAX_TOKEN_BYTES: usize = 4096;
const MAX_CLAIM_BYTES: usize = 256;

/// The HS256 secret of kid `h1` (a fuzzing fixture, not a secret of any deployment).
const HS256_SECRET: &str = "portcullis-fuzz-hs256-secret-0123456789abcdef";
/// The ES256 key of kid `k1` (a fuzzing fixture, not a key of any deployment).
const ES256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6Lk/3bciM9YKIEu6
1EaPgRV+EPhJ6174FmSh5HG2AR6hRANCAAQa0etJqljNtw6yFI8Uf+KYW/+innZi
6jlvEuhpUNCMcAcSTYdbtfv1v7chkVd2C0GQy9XQ+DApcxEIADRk66KL
-----END PRIVATE KEY-----
";

struct TokenFixture {
    tokens: AccessTokens,
    hmac: hmac::Key,
    ec: EcdsaKeyPair,
}

fn token_fixture() -> &'static TokenFixture {
    static FIXTURE: OnceLock<TokenFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir for the fuzz keys");
        let ec_path = dir.path().join("k1.pem");
        let hs_path = dir.path().join("h1.secret");
        std::fs::write(&ec_path, ES256_PEM).expect("write the ES256 key");
        std::fs::write(&hs_path, format!("{HS256_SECRET}\n")).expect("write the HS256 secret");
        let config = TokensConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(86_400),
            refresh_idle_ttl: Duration::from_secs(86_400),
            refresh_grace: Duration::from_secs(30),
            leeway: Duration::from_secs(LEEWAY),
            keys: vec![
                KeyConfig {
                    kid: "k1".into(),
                    alg: KeyAlgorithm::Es256,
                    source: KeySource::PrivateKeyFile(ec_path),
                    generate_if_missing: false,
                },
                KeyConfig {
                    kid: "h1".into(),
                    alg: KeyAlgorithm::Hs256,
                    source: KeySource::SecretFile(hs_path),
                    generate_if_missing: false,
                },
            ],
        };
        let keys = KeySet::load(&config).unwrap_or_else(|e| panic!("fuzz key set: {e}"));
        let der = pem_body(ES256_PEM);
        TokenFixture {
            tokens: AccessTokens::new(&config, keys),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, HS256_SECRET.as_bytes()),
            ec: EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .expect("the ES256 fixture parses"),
        }
    })
}

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("the PEM fixture is base64")
}

#[derive(Clone, Copy)]
enum SignWith {
    Hs256,
    Es256,
}

impl TokenFixture {
    fn sign(&self, with: SignWith, header: &[u8], claims: &[u8]) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let signature = match with {
            SignWith::Hs256 => hmac::sign(&self.hmac, token.as_bytes()).as_ref().to_vec(),
            SignWith::Es256 => self
                .ec
                .sign(&aws_lc_rs::rand::SystemRandom::new(), token.as_bytes())
                .expect("ES256 signing")
                .as_ref()
                .to_vec(),
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// Independent signature check: the key and algorithm come from our own kid table.
    fn signature_ok(&self, kid: &str, message: &[u8], signature: &[u8]) -> bool {
        match kid {
            "h1" => hmac::verify(&self.hmac, message, signature).is_ok(),
            "k1" => signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                self.ec.public_key().as_ref(),
            )
            .verify(message, signature)
            .is_ok(),
            _ => false,
        }
    }
}

/// Fuzz target: access-token verification (SPEC 5.1).
pub fn token(data: &[u8]) {
    let fixture = token_fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = match mode % 4 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 | 2 => {
            // Header JSON, a 0 byte, claims JSON (a raw 0 byte is never valid inside JSON).
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
            let with = if mode % 4 == 1 {
                SignWith::Hs256
            } else {
                SignWith::Es256
            };
            fixture.sign(with, header, claims)
        }
        _ => assembled_token(fixture, rest),
    };
    check_token(fixture, &token);
}

fn check_token(fixture: &TokenFixture, token: &str) {
    let verdict = oracle(fixture, token);
    let first = fixture.tokens.verify(token, NOW);
    match (&first, &verdict) {
        (Ok(identity), Ok(claims)) => check_identity(token, identity, claims),
        (Ok(_), Err(why)) => panic!("the gateway accepted a token the contract refuses ({why}): {token:?}"),
        (Err(error), Ok(_)) => {
            panic!("the gateway refused a token the contract accepts ({error:?}): {token:?}")
        }
        (Err(_), Err(_)) => {}
    }
    // The second verification of an accepted token is a cache hit: it must agree.
    let second = fixture.tokens.verify(token, NOW);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert!(
            Arc::ptr_eq(a, b) || a.jti == b.jti,
            "cache returned another identity"
        ),
        (Err(a), Err(b)) => assert_eq!(a, b, "a repeated verification changed its error: {token:?}"),
        _ => panic!("a repeated verification changed its verdict: {first:?} then {second:?} for {token:?}"),
    }
}

/// The claims an accepted token carried, as the oracle read them.
struct Claims {
    sub: String,
    role: String,
    sid: String,
    jti: String,
    iat: u64,
    exp: u64,
}

/// SPEC 5.1 restated without the gateway's code: `Ok` when the token must be accepted.
fn oracle(fixture: &TokenFixture, token: &str) -> Result<Claims, String> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("too long".into());
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, sig] = parts[..] else {
        return Err("not three segments".into());
    };
    let header = decode_object(header)?;
    let payload = decode_object(payload)?;
    let sig = segment_bytes(sig)?;
    let mut names: Vec<&str> = header.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names != ["alg", "kid", "typ"] {
        return Err(format!("header members {names:?}"));
    }
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).ok_or("not a string");
    let (alg, typ, kid) = (
        text(&header["alg"])?,
        text(&header["typ"])?,
        text(&header["kid"])?,
    );
    if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return Err("typ".into());
    }
    let pinned = match kid.as_str() {
        "k1" => "ES256",
        "h1" => "HS256",
        _ => return Err("unknown kid".into()),
    };
    if alg != pinned {
        return Err("alg differs from the kid's".into());
    }
    let signing_input = &token[..token.rfind('.').unwrap_or(0)];
    if !fixture.signature_ok(&kid, signing_input.as_bytes(), &sig) {
        return Err("bad signature".into());
    }
    let mut names: Vec<&str> = payload.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names != ["aud", "exp", "iat", "iss", "jti", "nbf", "role", "sid", "sub"] {
        return Err(format!("claims {names:?}"));
    }
    if payload["iss"] != ISSUER {
        return Err("iss".into());
    }
    let audience_ok = match &payload["aud"] {
        serde_json::Value::String(aud) => aud == AUDIENCE,
        serde_json::Value::Array(auds) => {
            auds.iter().all(serde_json::Value::is_string) && auds.iter().any(|a| a == AUDIENCE)
        }
        _ => false,
    };
    if !audience_ok {
        return Err("aud".into());
    }
    let number = |name: &str| payload[name].as_u64().ok_or(format!("{name} is not a u64"));
    let (iat, nbf, exp) = (number("iat")?, number("nbf")?, number("exp")?);
    if u128::from(NOW) >= u128::from(exp) + u128::from(LEEWAY) {
        return Err("expired".into());
    }
    if nbf > NOW + LEEWAY || iat > NOW + LEEWAY {
        return Err("not yet valid or issued in the future".into());
    }
    let visible = |name: &str| -> Result<String, String> {
        let value = text(&payload[name])?;
        let ok = !value.is_empty()
            && value.len() <= MAX_CLAIM_BYTES
            && value.bytes().all(|b| b.is_ascii_graphic());
        ok.then_some(value).ok_or(format!("{name} is not visible ASCII"))
    };
    Ok(Claims {
        sub: visible("sub")?,
        role: visible("role")?,
        sid: visible("sid")?,
        jti: visible("jti")?,
        iat,
        exp,
    })
}

fn check_identity(token: &str, identity: &Identity, claims: &Claims) {
    let same = identity.sub == claims.sub
        && identity.role == claims.role
        && identity.sid == claims.sid
        && identity.jti == claims.jti
        && identity.iat == claims.iat
        && identity.exp == claims.exp
        && identity.sub_header == claims.sub.as_str()
        && identity.role_header == claims.role.as_str()
        && identity.sid_header == claims.sid.as_str();
    assert!(
        same,
        "the identity differs from the token's claims: {identity:?} for {token:?}"
    );
}

fn segment_bytes(segment: &str) -> Result<Vec<u8>, String> {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if segment.is_empty() || !segment.bytes().all(alphabet) {
        return Err("segment is not base64url".into());
    }
    URL_SAFE_NO_PAD.decode(segment).map_err(|e| e.to_string())
}

fn decode_object(segment: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let bytes = segment_bytes(segment)?;
    serde_json::from_slice::<NoDuplicates>(&bytes).map_err(|e| e.to_string())?;
    match serde_json::from_slice(&bytes).map_err(|e| e.to_string())? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err("not an object".into()),
    }
}

/// Any JSON value, refusing an object with the same member twice (at any depth).
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without duplicate members")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member"));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

/// Reads choices from the fuzzer's bytes; zeros once they run out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }
    fn pick<'s>(&mut self, options: &[&'s str]) -> &'s str {
        options[usize::from(self.byte()) % options.len()]
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.byte()))
    }
    /// A short string over an alphabet that hits every class `header_value` cares about.
    fn text(&mut self) -> String {
        const ALPHABET: &[&str] = &[
            "a", "Z", "0", "-", ".", "~", "!", " ", "\t", "\u{7f}", "\u{1}", "\u{e9}", "\"", "\\", "\n",
            "\u{2028}",
        ];
        let len = usize::from(self.byte() % 8);
        let mut out: String = (0..len).map(|_| self.pick(ALPHABET)).collect();
        if self.byte().is_multiple_of(16) {
            out = "x".repeat(MAX_CLAIM_BYTES - 2 + usize::from(self.byte() % 4));
        }
        out
    }
    /// A JSON number (or not) for `iat`/`nbf`/`exp`, around the interesting boundaries.
    fn time(&mut self) -> Option<String> {
        let offset = i64::from(self.byte() as i8);
        let near = |base: u64| base.saturating_add_signed(offset).to_string();
        Some(match self.byte() % 10 {
            0 => near(NOW),
            1 => near(NOW + LEEWAY),
            2 => near(NOW - LEEWAY),
            3 => self.u64().to_string(),
            4 => near(u64::MAX),
            5 => "0".into(),
            6 => return None,
            7 => format!("\"{}\"", near(NOW)),
            8 => format!("{}.5", near(NOW)),
            _ => format!("-{}", self.byte()),
        })
    }
}

/// A JSON object written by hand, so that members can repeat.
fn object(members: &[(String, String)]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn assembled_token(fixture: &TokenFixture, data: &[u8]) -> String {
    let mut c = Choices(data);
    let with = if c.byte().is_multiple_of(2) {
        SignWith::Hs256
    } else {
        SignWith::Es256
    };
    let mut header = vec![
        (
            "alg".into(),
            json_string(c.pick(&["HS256", "ES256", "none", "hs256", "RS256", "EdDSA"])),
        ),
        (
            "typ".into(),
            json_string(c.pick(&["at+jwt", "AT+JWT", "application/at+jwt", "JWT", "at+jwt "])),
        ),
        (
            "kid".into(),
            json_string(c.pick(&["h1", "k1", "k2", "", "H1", "h1\u{0}"])),
        ),
    ];
    let forbidden = [
        "crit", "b64", "zip", "jku", "x5u", "jwk", "x5c", "cty", "alg", "kid", "typ",
    ];
    if c.byte().is_multiple_of(4) {
        header.push((
            c.pick(&forbidden).into(),
            c.pick(&["[\"exp\"]", "false", "\"DEF\"", "\"k1\""]).into(),
        ));
    }
    if c.byte().is_multiple_of(8) {
        header.remove(usize::from(c.byte()) % header.len());
    }
    let audience = c.pick(&[
        "\"default\"",
        "[\"other\",\"default\"]",
        "[]",
        "\"Default\"",
        "[\"default\",1]",
        "[[\"default\"]]",
        "null",
    ]);
    let mut claims = vec![
        (
            "iss".into(),
            json_string(c.pick(&[ISSUER, "portcullis ", "Portcullis", ""])),
        ),
        ("aud".into(), audience.into()),
        ("sub".into(), json_string(&c.text())),
        ("role".into(), json_string(&c.text())),
        ("sid".into(), json_string(&c.text())),
        ("jti".into(), json_string(&c.text())),
    ];
    for name in ["iat", "nbf", "exp"] {
        if let Some(value) = c.time() {
            claims.push((name.into(), value));
        }
    }
    match c.byte() % 8 {
        0 => claims.push(("scope".into(), "\"admin\"".into())),
        1 => {
            let copy = claims[usize::from(c.byte()) % claims.len()].clone();
            claims.push(copy);
        }
        2 => {
            let other = usize::from(c.byte()) % claims.len();
            claims.swap(0, other);
        }
        _ => {}
    }
    fixture.sign(with, object(&header).as_bytes(), object(&claims).as_bytes())
}

// ---------------------------------------------------------------------------------------
// path
// ---------------------------------------------------------------------------------------

/// Fuzz target: request-path normalisation.
pub fn path(data: &[u8]) {
    use portcullis::path::normalize_path;
    let raw = String::from_utf8_lossy(data);
    let result = normalize_path(&raw);
    assert_eq!(
        result,
        path_model(&raw),
        "normalize_path disagrees with the model for {raw:?}"
    );
    let out = match result {
        Ok(out) => out,
        Err(rejection) => {
            assert!(!rejection.to_string().is_empty());
            return;
        }
    };
    let fail = |why: &str| panic!("{raw:?} -> {out:?}: {why}");
    if !out.starts_with('/') {
        fail("does not start with /");
    }
    if out.len() > raw.len() {
        fail("longer than the input");
    }
    if out.contains("//") {
        fail("contains //");
    }
    if !out
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'?' | b'#'))
    {
        fail("contains a control, non-ASCII, backslash, ? or #");
    }
    let body = out.strip_suffix('/').unwrap_or(&out);
    for segment in body.split('/').skip(1) {
        if segment.is_empty() || segment == "." || segment == ".." {
            fail("contains an empty or dot segment");
        }
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
                let upper = |b: &u8| b.is_ascii_digit() || (b'A'..=b'F').contains(b);
                if hex.len() != 2 || !hex.iter().all(upper) {
                    fail("an escape that is not two upper-case hex digits");
                }
                let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16).unwrap_or(0);
                if value == 0 || value == b'/' || value == b'\\' || is_unreserved(value) {
                    fail("an escape of NUL, a slash, a backslash or an unreserved character");
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        // The threat model of normalize.rs: a backend that decodes once more, then drops
        // `;parameters` (servlet containers), must not find a dot segment.
        let decoded = percent_decode(segment);
        let without_parameters = decoded.split(|&b| b == b';').next().unwrap_or_default();
        if without_parameters == b"." || without_parameters == b".." {
            fail("a backend decoding once more and dropping ;parameters sees a dot segment");
        }
    }
    assert_eq!(
        normalize_path(&out).as_deref(),
        Ok(out.as_str()),
        "not idempotent for {raw:?}"
    );
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 dot-segment removal over decoded segments, with the gateway's refusals.
fn path_model(raw: &str) -> Result<String, portcullis::path::PathRejection> {
    use portcullis::path::PathRejection as R;
    let rest = raw.strip_prefix('/').ok_or(R::NotOriginForm)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let mut stack: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for (n, segment) in segments.iter().enumerate() {
        let mut decoded = String::new();
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = bytes.get(i + 1..i + 3).ok_or(R::BadPercentEncoding)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(R::BadPercentEncoding);
                }
                let value =
                    u8::from_str_radix(std::str::from_utf8(hex).map_err(|_| R::BadPercentEncoding)?, 16)
                        .map_err(|_| R::BadPercentEncoding)?;
                match value {
                    b'/' => return Err(R::EncodedSlash),
                    b'\\' => return Err(R::EncodedBackslash),
                    0 => return Err(R::Nul),
                    v if is_unreserved(v) => decoded.push(char::from(v)),
                    v => decoded.push_str(&format!("%{v:02X}")),
                }
                i += 3;
                continue;
            }
            match b {
                0 => return Err(R::Nul),
                b'\\' => return Err(R::Backslash),
                b'?' | b'#' => return Err(R::NotOriginForm),
                b if !b.is_ascii_graphic() => return Err(R::ControlCharacter),
                b => decoded.push(char::from(b)),
            }
            i += 1;
        }
        let dot = decoded == "." || decoded == "..";
        if dot && segment.to_ascii_lowercase().contains("%2e") {
            return Err(R::EncodedDotSegment);
        }
        // A `;` escaped as `%3B` starts parameters too: a backend may decode, then strip them.
        let parameters = decoded.replace("%3B", ";");
        if matches!(parameters.split(';').next(), Some("." | "..")) && parameters.contains(';') {
            return Err(R::DotSegmentWithParameters);
        }
        let last = n + 1 == segments.len();
        match decoded.as_str() {
            ".." => {
                stack.pop();
            }
            "." | "" => {}
            _ => {
                stack.push(decoded.clone());
            }
        }
        if last {
            trailing_slash = dot || decoded.is_empty();
        }
    }
    let mut out = format!("/{}", stack.join("/"));
    if trailing_slash && !stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

/// Fuzz target: parsing and validating `gateway.toml`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A folder that does not exist: relative paths in the file resolve below it.
    let path = Path::new("/nonexistent-portcullis-fuzz/gateway.toml");
    match portcullis::config::parse(path, text) {
        Err(errors) => {
            assert!(
                !errors.0.is_empty(),
                "an error result without errors for {text:?}"
            );
            assert!(
                !errors.to_string().trim().is_empty(),
                "errors render empty for {text:?}"
            );
            let lines = text.split('\n').count();
            for error in &errors.0 {
                assert!(!error.message.trim().is_empty(), "an empty message for {text:?}");
                assert!(
                    error.line >= 1 && error.column >= 1 && error.line <= lines.max(1),
                    "error located at {}:{} outside the {lines}-line text {text:?}: {error}",
                    error.line,
                    error.column
                );
            }
        }
        Ok(config) => {
            use portcullis::path::normalize_path;
            assert!(
                !config.tokens.keys.is_empty(),
                "a config without keys for {text:?}"
            );
            let durations = [
                config.tokens.access_ttl,
                config.tokens.refresh_ttl,
                config.tokens.refresh_idle_ttl,
                config.server.header_read_timeout,
                config.server.idle_timeout,
            ];
            assert!(
                durations.iter().all(|d| !d.is_zero()),
                "a zero duration accepted from {text:?}"
            );
            assert!(!config.cookies.access_name.is_empty() && !config.cookies.refresh_name.is_empty());
            for rate in [config.limits.login_per_ip, config.limits.login_per_user] {
                assert!(
                    rate.count > 0 && !rate.per.is_zero(),
                    "a zero rate accepted from {text:?}"
                );
            }
            for route in &config.routes {
                assert_eq!(
                    normalize_path(&route.path).as_deref(),
                    Ok(route.path.as_str()),
                    "route {} has a path that is not normalised, from {text:?}",
                    route.name
                );
                assert!(
                    !route.timeout.is_zero(),
                    "route {} with a zero timeout",
                    route.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// cookie
// ---------------------------------------------------------------------------------------

const ACCESS_COOKIE: &str = "__Host-portcullis-access";
const REFRESH_COOKIE: &str = "__Secure-portcullis-refresh";

/// Fuzz target: reading the gateway's cookies and stripping them before proxying.
/// Input: a cookie name to look up, then one `Cookie` header value per line.
pub fn cookie(data: &[u8]) {
    use portcullis::auth::cookies;
    let mut lines = data.split(|&b| b == b'\n');
    let extra_name = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    let values: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let expected: Vec<(&[u8], &[u8])> = values.iter().flat_map(|v| cookie_model(v)).collect();
    let got: Vec<(&[u8], &[u8])> = cookies::pairs(&headers).collect();
    assert_eq!(got, expected, "cookie pairs differ from the model for {values:?}");
    for (name, value) in &got {
        assert!(!name.contains(&b'=') && !name.contains(&b';') && !value.contains(&b';'));
    }
    for name in [ACCESS_COOKIE, REFRESH_COOKIE, extra_name.as_str()] {
        let copies: Vec<&[u8]> = expected
            .iter()
            .filter(|(n, _)| *n == name.as_bytes())
            .map(|p| p.1)
            .collect();
        match (cookies::find(&headers, name), copies.as_slice()) {
            (Ok(None), []) | (Err(_), [_, _, ..]) => {}
            (Ok(Some(found)), [only]) => {
                assert_eq!(
                    found,
                    std::str::from_utf8(only).unwrap_or(""),
                    "cookie {name:?} in {values:?}"
                );
                let inside = |v: &&[u8]| v.as_ptr_range().contains(&found.as_ptr()) || found.is_empty();
                assert!(
                    values.iter().any(inside),
                    "cookie {name:?}: {found:?} is not taken from the input"
                );
            }
            (result, copies) => panic!(
                "find({name:?}) = {result:?} with {} copies in {values:?}",
                copies.len()
            ),
        }
    }
    let own = [ACCESS_COOKIE, REFRESH_COOKIE];
    let mut stripped = headers.clone();
    portcullis::proxy::headers::strip_own_cookies(&mut stripped, &own);
    let after: Vec<&HeaderValue> = stripped.get_all(COOKIE).iter().collect();
    let kept: Vec<(&[u8], &[u8])> = cookies::pairs(&stripped).collect();
    let others: Vec<(&[u8], &[u8])> = expected
        .iter()
        .copied()
        .filter(|(n, _)| !own.iter().any(|o| o.as_bytes() == *n))
        .collect();
    assert!(
        after.len() <= 1,
        "several Cookie headers left after stripping: {after:?}"
    );
    assert_eq!(kept, others, "strip_own_cookies kept {kept:?} from {values:?}");
}

/// RFC 6265 5.4 as browsers send it: `;`-separated pairs, whitespace-trimmed, the name up
/// to the first `=` (a pair without one is a name with an empty value).
fn cookie_model(value: &[u8]) -> Vec<(&[u8], &[u8])> {
    value
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                return None;
            }
            Some(match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()),
                None => (pair, &b""[..]),
            })
        })
        .collect()
}
