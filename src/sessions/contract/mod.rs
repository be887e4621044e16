//! What the session stores' tests share: the clock and sessions they use, and a real
//! `redis-server`.

pub(crate) mod redis_server;

use crate::secret::Secret;
use crate::sessions::store::{NewSession, RevocationKind, SEED_BYTES, Store, Timing};

pub(crate) const T0: u64 = 1_700_000_000;
pub(crate) const REFRESH_TTL: u64 = 30 * 24 * 3600;
pub(crate) const IDLE_TTL: u64 = 7 * 24 * 3600;
pub(crate) const GRACE: u64 = 10;
pub(crate) const REVOCATION_TTL: u64 = 960;

/// The clock at `now` (whole seconds) with the durations above.
pub(crate) fn at(now: u64) -> Timing {
    Timing {
        now,
        now_ms: now * 1000,
        grace_ms: GRACE * 1000,
        idle_ttl: IDLE_TTL,
        revocation_ttl: REVOCATION_TTL,
    }
}

/// A seed that differs per session and in every byte position.
pub(crate) fn seed_for(sid: &str) -> [u8; SEED_BYTES] {
    let mut seed = [0u8; SEED_BYTES];
    for (byte, (i, c)) in seed.iter_mut().zip(sid.bytes().cycle().enumerate()) {
        *byte = c.wrapping_add(i as u8);
    }
    seed
}

pub(crate) fn new_session(sid: &str, sub: &str, created_at: u64) -> NewSession {
    NewSession {
        sid: sid.to_owned(),
        sub: sub.to_owned(),
        role: "user".to_owned(),
        seed: Secret::new(seed_for(sid)),
        created_at,
        expires_at: created_at + REFRESH_TTL,
        user_agent: Some("curl/8".to_owned()),
        ip: "192.0.2.7".to_owned(),
    }
}

pub(crate) async fn created(store: &dyn Store, sid: &str, sub: &str, created_at: u64) {
    store
        .create(new_session(sid, sub, created_at))
        .await
        .expect("create");
}

/// The revocations in force at `now`, as (kind, key) in the store's order.
pub(crate) async fn revocation_list(store: &dyn Store, now: u64) -> Vec<(RevocationKind, String)> {
    let all = store.revocations(now).await.expect("revocations");
    all.into_iter().map(|r| (r.kind, r.key)).collect()
}
