//! Proofs seen within their window, per replica (SPEC 14): a `jti` of one key is accepted
//! once. Entries expire when a proof with them could no longer pass the `iat` check, so the
//! memory follows the proof rate times the window; the capacity bounds it under a flood.

use std::time::Duration;

use aws_lc_rs::digest;
use moka::sync::Cache;

/// At 10,000 proofs a second and a 60 s window: 600,000 entries of 32 bytes plus moka's own.
const CAPACITY: u64 = 1_000_000;

pub struct ReplayCache {
    seen: Cache<[u8; 32], (), foldhash::fast::RandomState>,
}

impl ReplayCache {
    pub fn new(window: Duration) -> ReplayCache {
        let seen = Cache::builder()
            .max_capacity(CAPACITY)
            .time_to_live(window)
            .build_with_hasher(foldhash::fast::RandomState::default());
        ReplayCache { seen }
    }

    /// Whether this is the first use of `jti` by the key `thumbprint` within the window;
    /// records it. Atomic: two requests racing with one proof cannot both be first.
    pub fn first_use(&self, thumbprint: &str, jti: &str) -> bool {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(thumbprint.as_bytes());
        context.update(&[0]);
        context.update(jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        self.seen.entry(key).or_insert(()).is_fresh()
    }
}
