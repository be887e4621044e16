//! The store contract: what every `Store` must do, written once and run against each store
//! (a fresh SQLite file, a real `redis-server` of its own), one test per case and store, so a
//! failure names both (`contract::sqlite::...`, `contract::redis::...`).
//!
//! What only one store has (SQLite's schema and file, Redis's keys, feed and scripts) is tested
//! in that store's `tests.rs`, with the helpers here.

mod api_keys;
mod cases;
mod factors;
mod federated;
pub(crate) mod redis_server;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;

use crate::secret::Secret;
use crate::sessions::sqlite::SqliteStore;
use crate::sessions::store::{NewSession, Origin, RevocationKind, SEED_BYTES, Store, Timing};
use api_keys::*;
use cases::*;
use factors::*;
use federated::*;
use redis_server::RedisServer;

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
        origin: Origin::local(created_at),
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

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Redis,
}

/// A fresh, empty store of one backend, and what keeps its data alive until the case ends.
struct Subject {
    store: Arc<dyn Store>,
    home: Home,
}

enum Home {
    /// The database file, in a folder deleted when dropped.
    Sqlite { path: PathBuf, _dir: TempDir },
    /// The server, stopped when dropped.
    Redis(RedisServer),
}

impl Subject {
    /// `None` when the Redis tests are skipped (see `redis_server`).
    async fn open(backend: Backend) -> Option<Subject> {
        let home = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let path = dir.path().join("sessions.db");
                Home::Sqlite { path, _dir: dir }
            }
            Backend::Redis => Home::Redis(RedisServer::start()?),
        };
        let store = home.open().await;
        Some(Subject { store, home })
    }

    /// Another store on the same data, with connections of its own: for SQLite a second
    /// connection on the file, which does not share the first one's mutex (so only the
    /// file's write lock orders them); for Redis a second gateway.
    async fn another(&self) -> Arc<dyn Store> {
        self.home.open().await
    }
}

impl Home {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Home::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).expect("the store opens")),
            Home::Redis(server) => Arc::new(server.store().await),
        }
    }
}

/// Runs one case against a fresh store of `backend`.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Subject) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(subject) = Subject::open(backend).await {
        case(subject).await;
    }
}

/// One `#[tokio::test]` per case and store, in a module per store; a case may name the
/// runtime it needs in parentheses. A case left out of the list is dead code, which the
/// lints refuse.
macro_rules! contract {
    ($($store:ident => $backend:ident),+; $cases:tt) => {
        $(contract!(@store $store $backend $cases);)+
    };
    (@store $store:ident $backend:ident {$($case:ident $(($($runtime:tt)*))?),* $(,)?}) => {
        mod $store {
            $(
                #[tokio::test$(($($runtime)*))?]
                async fn $case() {
                    super::run(super::Backend::$backend, super::$case).await;
                }
            )*
        }
    };
}

contract! {
    sqlite => Sqlite, redis => Redis;
    {
        a_created_session_reads_back_with_its_seed_intact,
        creating_a_session_id_twice_is_refused,
        the_live_token_rotates_and_the_previous_one_replays_only_within_the_grace,
        the_grace_window_is_measured_in_milliseconds_and_half_open,
        an_older_or_a_future_generation_is_reuse,
        expired_idle_revoked_and_unknown_sessions_have_ended,
        concurrent_refreshes_of_one_session_rotate_exactly_once(flavor = "multi_thread", worker_threads = 4),
        two_stores_on_the_same_data_racing_keep_one_lineage(flavor = "multi_thread", worker_threads = 4),
        revoke_session_revokes_a_live_session_once,
        revoke_user_revokes_every_live_session_of_that_user_only,
        recording_a_revocation_again_keeps_the_later_times,
        sessions_of_lists_only_live_sessions_newest_first,
        revocations_omit_entries_past_their_keep_until,
        purge_removes_long_ended_sessions_and_forgotten_revocations,
        purge_early_in_the_clock_deletes_nothing_it_should_keep,
        a_session_reads_back_with_how_it_began,
        a_back_channel_logout_ends_only_the_sessions_it_names,
        a_key_is_accepted_once_by_every_store_on_the_same_data,
        an_api_key_reads_back_as_stored_and_never_as_the_key,
        deleting_an_api_key_records_its_revocation_once,
        uses_only_raise_last_used_at_of_existing_keys,
        factors_read_back_as_stored_and_belong_to_one_user,
        only_its_owner_deletes_a_factor,
        a_step_up_renews_how_a_live_session_was_proved_and_nothing_else,
    }
}
