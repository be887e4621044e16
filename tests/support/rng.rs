//! The tests' one seeded generator (xorshift64): a fixed seed reproduces a run,
//! `from_entropy` shuffles, without a `rand` dependency; and bogus tokens made with it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

pub struct Rng(u64);

impl Rng {
    /// A generator that repeats its sequence for the same non-zero `seed`.
    pub fn new(seed: u64) -> Rng {
        assert_ne!(seed, 0, "xorshift stays at 0");
        Rng(seed)
    }

    pub fn from_entropy() -> Rng {
        let mut seed = [0u8; 8];
        aws_lc_rs::rand::fill(&mut seed).expect("entropy");
        Rng(u64::from_le_bytes(seed) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// `n` random bytes, base64url-encoded.
    pub fn b64(&mut self, n: usize) -> String {
        URL_SAFE_NO_PAD.encode((0..n).map(|_| self.next() as u8).collect::<Vec<u8>>())
    }
}

/// The `n`th of a stream of distinct bogus tokens: mostly well-formed ES256 JWTs for kid k1
/// with a bad signature (the expensive path: a real signature verification), and the cheap
/// kinds attackers mix in.
pub fn bogus_token(rng: &mut Rng, n: u64) -> String {
    let b64 = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let now = 1_700_000_000u64 + rng.next() % 100_000_000;
    let claims = b64(json!({
        "iss": "portcullis", "aud": "default", "sub": "alice", "role": "admin",
        "sid": rng.b64(12), "jti": rng.b64(12), "iat": now, "nbf": now, "exp": now + 900,
    }));
    let header = |alg: &str, kid: String| b64(json!({ "alg": alg, "typ": "at+jwt", "kid": kid }));
    match n % 8 {
        0..=3 => format!("{}.{claims}.{}", header("ES256", "k1".into()), rng.b64(64)),
        4 => {
            let kid = rng.b64(6);
            format!("{}.{claims}.{}", header("ES256", kid), rng.b64(64))
        }
        5 => format!("{}.{claims}.", header("none", "k1".into())),
        6 => {
            let len = 16 + (rng.next() % 600) as usize;
            rng.b64(len)
        }
        _ => format!("{}.{}.{}", rng.b64(20), rng.b64(200), rng.b64(64)),
    }
}
