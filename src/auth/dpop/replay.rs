//! Proofs seen within their window, per replica (SPEC 14): a `jti` of one key is accepted
//! once. Each entry expires when its proof could no longer pass the `iat` check, so the
//! memory follows the proof rate times the window; the capacity bounds it under a flood.

use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::sync::Cache;

/// At 10,000 proofs a second and a 60 s window: 600,000 entries of 36 bytes plus moka's own.
const CAPACITY: u64 = 1_000_000;

/// A proof's key-and-`jti` digest, and how long it must be remembered.
pub struct ReplayCache {
    seen: Cache<[u8; 32], Duration, foldhash::fast::RandomState>,
}

impl Default for ReplayCache {
    fn default() -> ReplayCache {
        let seen = Cache::builder()
            .max_capacity(CAPACITY)
            .expire_after(ForItsWindow)
            .build_with_hasher(foldhash::fast::RandomState::default());
        ReplayCache { seen }
    }
}

impl ReplayCache {
    /// Whether this is the first use of `jti` by the key `thumbprint`; records it for
    /// `remembered`. Atomic: two requests racing with one proof cannot both be first.
    pub fn first_use(&self, thumbprint: &str, jti: &str, remembered: Duration) -> bool {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(thumbprint.as_bytes());
        context.update(&[0]);
        context.update(jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        self.seen.entry(key).or_insert(remembered).is_fresh()
    }
}

/// Each entry lives for the duration stored with it.
struct ForItsWindow;

impl moka::Expiry<[u8; 32], Duration> for ForItsWindow {
    fn expire_after_create(&self, _: &[u8; 32], remembered: &Duration, _: Instant) -> Option<Duration> {
        Some(*remembered)
    }
}
