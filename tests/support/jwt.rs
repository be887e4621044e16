//! One JWT forging kit: keys the test holds, tokens built by hand (base64url segments and a
//! signature over their exact bytes), and a bench: a gateway with a required `/api/` route to a
//! recording echo, where every forged token must be refused as SPEC 6 says (401, one
//! `WWW-Authenticate: Bearer error="invalid_token"`, a JSON `invalid_token` body that does not
//! echo the token) without reaching the upstream, and every control token must be accepted.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::auth::tokens::unix_now;
use portcullis::config::KeyAlgorithm;
use rcgen::PublicKeyData;
use serde_json::{Value, json};

use super::cases::assert_none_failed;
use super::upstreams::Upstream;
use super::{Gateway, Reply, RequestExt, api_gateway, request};

/// The leeway of every bench's `[tokens]`.
pub const LEEWAY: u64 = 5;

pub const ALL_ALGORITHMS: [KeyAlgorithm; 4] = [
    KeyAlgorithm::Es256,
    KeyAlgorithm::EdDsa,
    KeyAlgorithm::Rs256,
    KeyAlgorithm::Hs256,
];

/// The library's `Algorithm` for `alg`, found by its JOSE name.
pub fn jose(alg: KeyAlgorithm) -> Algorithm {
    alg.name().parse().expect("a JOSE algorithm name")
}

// === keys ===

/// A signing key and the algorithm it signs with.
pub struct Key {
    pub alg: KeyAlgorithm,
    pub encoding: EncodingKey,
    /// The key file as written: PKCS#8 PEM, or the HS256 secret text.
    pub file: Vec<u8>,
}

impl Key {
    /// A key from its file, read the way the gateway reads it (an HS256 secret is its trimmed text).
    pub fn load(alg: KeyAlgorithm, path: &Path) -> Key {
        let file = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let encoding = match alg {
            KeyAlgorithm::Es256 => EncodingKey::from_ec_pem(&file),
            KeyAlgorithm::EdDsa => EncodingKey::from_ed_pem(&file),
            KeyAlgorithm::Rs256 => EncodingKey::from_rsa_pem(&file),
            KeyAlgorithm::Hs256 => Ok(EncodingKey::from_secret(file.trim_ascii())),
        }
        .expect("key loads");
        Key { alg, encoding, file }
    }

    /// A new key made by the gateway's own generator, written to `path`.
    pub fn generate(alg: KeyAlgorithm, path: &Path) -> Key {
        portcullis::auth::keys::generate(alg, path).expect("generate key");
        Key::load(alg, path)
    }

    /// A key no gateway knows, of the kind the gateway makes. One per algorithm for the whole
    /// test binary: RSA generation is slow unoptimised.
    pub fn attacker(alg: KeyAlgorithm) -> &'static Key {
        static KEYS: LazyLock<Vec<Key>> = LazyLock::new(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            ALL_ALGORITHMS
                .map(|alg| Key::generate(alg, &dir.path().join(alg.name())))
                .into()
        });
        KEYS.iter().find(|k| k.alg == alg).expect("every algorithm")
    }

    /// The private key as rcgen reads it, for its public half.
    fn pair(&self) -> rcgen::KeyPair {
        assert_ne!(self.alg, KeyAlgorithm::Hs256, "an HMAC secret has no public key");
        let pem = std::str::from_utf8(&self.file).expect("PEM text");
        rcgen::KeyPair::from_pem(pem).expect("a PKCS#8 private key")
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Vec<u8> {
        self.pair().subject_public_key_info()
    }

    /// The raw public key: the EC point, the Ed25519 bytes, or the PKCS#1 RSAPublicKey.
    pub fn raw_public(&self) -> Vec<u8> {
        self.pair().public_key_raw().to_vec()
    }

    /// The SPKI as `PUBLIC KEY` PEM with LF line endings, as `openssl pkey -pubout` writes it.
    pub fn public_pem(&self) -> String {
        self.pair().public_key_pem()
    }

    pub fn jwk(&self) -> Value {
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding, jose(self.alg)).expect("jwk");
        serde_json::to_value(jwk).expect("jwk")
    }
}

// === building tokens ===

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token whose signing input is given verbatim.
pub fn sign_input(input: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg);
    format!("{input}.{}", signature.expect("the key signs with the algorithm"))
}

/// `b64(header).b64(claims).signature` over those exact bytes.
pub fn sign_bytes(
    header: impl AsRef<[u8]>,
    claims: impl AsRef<[u8]>,
    key: &EncodingKey,
    alg: Algorithm,
) -> String {
    sign_input(&format!("{}.{}", b64(header), b64(claims)), key, alg)
}

pub fn sign_json(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    sign_bytes(header.to_string(), claims.to_string(), key, alg)
}

pub fn hmac(header: &Value, claims: &Value, secret: &[u8], alg: Algorithm) -> String {
    sign_json(header, claims, &EncodingKey::from_secret(secret), alg)
}

/// A token with the given signature segment, whatever it is.
pub fn unsigned(header: impl AsRef<[u8]>, claims: impl AsRef<[u8]>, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

pub fn header(alg: &str, kid: &str) -> Value {
    json!({ "alg": alg, "typ": "at+jwt", "kid": kid })
}

/// The claims of a token that is valid right now, for a subject no user has.
pub fn claims() -> Value {
    let now = unix_now();
    json!({
        "iss": "portcullis",
        "aud": "default",
        "sub": "mallory",
        "role": "admin",
        "sid": "forged-session",
        "jti": "forged-jti",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    })
}

pub fn set(mut object: Value, member: &str, value: Value) -> Value {
    assert!(object.is_object(), "{object}");
    object[member] = value;
    object
}

pub fn unset(mut object: Value, member: &str) -> Value {
    object.as_object_mut().expect("object").remove(member);
    object
}

/// The JSON text of `object` with `members` (raw JSON text) inserted first: `{members,...}`.
pub fn prepend(object: &Value, members: &str) -> String {
    let text = object.to_string();
    format!("{{{members},{}", &text[1..])
}

/// The JSON text of `object` with `members` (raw JSON text) added last: `{...,members}`.
pub fn append(object: &Value, members: &str) -> String {
    let text = object.to_string();
    format!("{},{members}}}", &text[..text.len() - 1])
}

/// Base64url with `=` padding of `json`, lengthened with insignificant spaces until it needs padding.
pub fn padded(json: &str) -> String {
    let mut text = json.to_string();
    while text.len().is_multiple_of(3) {
        text.insert(1, ' ');
    }
    let encoded = URL_SAFE.encode(&text);
    assert!(encoded.ends_with('='), "{encoded}");
    encoded
}

/// `text` with the character at `index` replaced by another base64url character.
pub fn flip(text: &str, index: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

pub fn parts(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from big-endian magnitudes.
pub fn der_ecdsa(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        // Minimal: no leading zeros, but one for zero itself or before a set high bit.
        let mut value: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
        if value.first().is_none_or(|&b| b & 0x80 != 0) {
            value.insert(0, 0);
        }
        [vec![0x02, value.len() as u8], value].concat()
    }
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// The decoded JSON of segment `index` of a JWT: 0 the header, 1 the claims.
pub fn segment_of(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index);
    let segment = segment.unwrap_or_else(|| panic!("not a JWT: {token:?}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON segment")
}

/// The decoded claims of a JWT.
pub fn claims_of(token: &str) -> Value {
    segment_of(token, 1)
}

/// The session id an access token names.
pub fn sid_of(access: &str) -> String {
    claims_of(access)["sid"].as_str().expect("sid claim").to_string()
}

pub fn case(name: impl Into<String>, token: impl Into<String>) -> (String, String) {
    (name.into(), token.into())
}

/// `[tokens]` with the bench's leeway and the given `[[tokens.keys]]` entries.
pub fn tokens_section(keys: &str) -> String {
    format!("[tokens]\nleeway = \"{LEEWAY}s\"\n{keys}")
}

/// One `[[tokens.keys]]` entry; `source` names its file (and may say more).
pub fn key_entry(kid: &str, alg: KeyAlgorithm, source: &str) -> String {
    let alg = alg.name();
    format!("[[tokens.keys]]\nkid = \"{kid}\"\nalg = \"{alg}\"\n{source}\n")
}

// === the bench ===

/// A gateway whose signing key k1 the test read from its temp dir, with optional verify-only
/// keys whose private halves only the test holds, in front of a recording echo at `/api/`.
pub struct Bench {
    pub gateway: Gateway,
    pub echo: Upstream,
    /// The gateway's own signing key.
    pub k1: Key,
    /// Verify-only keys: kid, key, and the public key file the gateway reads.
    verify_only: Vec<(&'static str, Key, PathBuf)>,
    _keys: tempfile::TempDir,
}

impl Bench {
    /// A bench whose only key is k1, of `alg`, generated by the gateway.
    pub async fn one_key(alg: KeyAlgorithm) -> Bench {
        Bench::start(alg, &[]).await
    }

    /// k1 (ES256, signs), and two verify-only keys from `public_key_file`: k2 (EdDSA) and k3 (RS256).
    pub async fn three_keys() -> Bench {
        use KeyAlgorithm::{EdDsa, Es256, Rs256};
        Bench::start(Es256, &[("k2", EdDsa), ("k3", Rs256)]).await
    }

    /// k1 of `alg`, generated by the gateway into its temp dir, then the verify-only `others`.
    async fn start(alg: KeyAlgorithm, others: &[(&'static str, KeyAlgorithm)]) -> Bench {
        let (setting, file) = match alg {
            KeyAlgorithm::Hs256 => ("secret_file", "keys/k1.secret"),
            _ => ("private_key_file", "keys/k1.pem"),
        };
        let k1_source = format!("{setting} = \"{file}\"\ngenerate_if_missing = true");
        let mut entries = key_entry("k1", alg, &k1_source);
        let keys = tempfile::tempdir().expect("temp dir");
        let mut verify_only = Vec::new();
        for &(kid, alg) in others {
            let key = Key::generate(alg, &keys.path().join(format!("{kid}.pem")));
            let public = keys.path().join(format!("{kid}.pub.pem"));
            std::fs::write(&public, key.public_pem()).expect("write public key");
            entries += &key_entry(kid, alg, &format!("public_key_file = '{}'", public.display()));
            verify_only.push((kid, key, public));
        }
        let (gateway, echo) = api_gateway(&tokens_section(&entries), "").await;
        let k1 = Key::load(alg, &gateway.dir.path().join(file));
        Bench {
            gateway,
            echo,
            k1,
            verify_only,
            _keys: keys,
        }
    }

    /// Every kid and its key.
    pub fn kids(&self) -> Vec<(&'static str, &Key)> {
        let others = self.verify_only.iter().map(|(kid, key, _)| (*kid, key));
        std::iter::once(("k1", &self.k1)).chain(others).collect()
    }

    pub fn key(&self, kid: &str) -> &Key {
        let found = self.kids().into_iter().find(|(k, _)| *k == kid);
        found.expect("known kid").1
    }

    /// Where a verify-only key's public half lives (an absolute path an attacker might name).
    pub fn public_file(&self, kid: &str) -> &Path {
        let found = self.verify_only.iter().find(|(k, _, _)| *k == kid);
        &found.expect("a verify-only kid").2
    }

    /// k1's header: its algorithm, `at+jwt`, kid k1.
    pub fn header(&self) -> Value {
        header(self.k1.alg.name(), "k1")
    }

    /// Signs the exact header and claims texts with k1 (a `Value`'s text is its JSON).
    pub fn sign(&self, header: impl Display, claims: impl Display) -> String {
        let k1 = &self.k1;
        sign_bytes(header.to_string(), claims.to_string(), &k1.encoding, jose(k1.alg))
    }

    /// A token the gateway must accept, signed by the real key of `kid` under its own header.
    pub fn genuine(&self, kid: &str, claims: &Value) -> String {
        let key = self.key(kid);
        sign_json(&header(key.alg.name(), kid), claims, &key.encoding, jose(key.alg))
    }

    /// k1's genuine token with the default claims.
    pub fn control(&self) -> String {
        self.genuine("k1", &claims())
    }

    /// `GET /api/resource` with `Authorization: Bearer <token>` over a fresh HTTP/1.1 connection.
    pub async fn send(&self, token: &str) -> Reply {
        self.gateway.get_with_token("/api/resource", token).await
    }

    /// `send`, with a dropped connection reported instead of failing the test.
    pub async fn try_send(&self, token: &str) -> Result<Reply, hyper::Error> {
        let request = request(http::Method::GET, "/api/resource").bearer(token);
        self.gateway.try_send(request.empty()).await
    }

    /// Sends every case; fails listing each one not refused properly or that reached the upstream.
    pub async fn assert_rejected(&self, cases: Vec<(String, String)>) {
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for (name, token) in &cases {
            let before = self.echo.counts.requests();
            let reply = self.send(token).await;
            if let Some(problem) = refusal_problem(&reply, token) {
                failures.push(format!("{name}: {problem}"));
            }
            let reached = self.echo.counts.requests() - before;
            if reached != 0 {
                failures.push(format!("{name}: the upstream received {reached} request(s)"));
            }
        }
        assert_none_failed("forged tokens not refused properly", &failures);
    }

    /// The token reaches the upstream exactly once; its reply.
    pub async fn assert_accepted(&self, case: &str, token: &str) -> Reply {
        let before = self.echo.counts.requests();
        let reply = self.send(token).await;
        assert_eq!(reply.status, 200, "{case}: {}", reply.text());
        assert_eq!(self.echo.counts.requests(), before + 1, "{case}");
        reply
    }

    /// A genuine token under every kid is accepted as `mallory`, so the refusals were about
    /// their cases and not an accident of the forging.
    pub async fn assert_controls_accepted(&self) {
        for (kid, _) in self.kids() {
            let case = format!("control signed by {kid}");
            let reply = self.assert_accepted(&case, &self.genuine(kid, &claims())).await;
            assert_eq!(reply.upstream_header("x-auth-sub"), ["mallory"], "{case}");
        }
    }
}

/// Why `reply` is not a proper refusal of `token` (SPEC 6), if it is not.
pub fn refusal_problem(reply: &Reply, token: &str) -> Option<String> {
    let text = reply.text();
    if reply.status != 401 {
        return Some(format!("status {} ({text:.200})", reply.status));
    }
    let challenges = reply.headers.get_all("www-authenticate").iter();
    let challenge: Vec<&str> = challenges.filter_map(|v| v.to_str().ok()).collect();
    if challenge.len() != 1
        || !challenge[0].starts_with("Bearer")
        || !challenge[0].contains("error=\"invalid_token\"")
    {
        return Some(format!("WWW-Authenticate is {challenge:?}"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        return Some(format!("body is not JSON: {text}"));
    };
    if body["error"] != "invalid_token" || !body["message"].is_string() {
        return Some(format!("body is {body}"));
    }
    let echoed = std::iter::once(token)
        .chain(token.split('.'))
        .any(|part| part.len() >= 8 && text.contains(part));
    echoed.then(|| format!("the body echoes the token: {text}"))
}
