//! The durable session store: the contract that SQLite (and later Redis) implement.
//!
//! Every operation that decides something (rotation, reuse, revocation) is one atomic step in
//! the store, so concurrent requests on one or many gateways cannot both win a race. Anything
//! that revokes also records the revocation entries in the same step, so the in-memory
//! revocation state can always be rebuilt from the store after a crash.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use crate::auth::api_keys::{ApiKeyRecord, api_key_sid};
pub use crate::auth::revocation::{Revocation, RevocationKind};
use crate::auth::tokens::{LOCAL_AMR, LOCAL_IDP};
use crate::secret::Secret;

/// Bytes of the per-session secret from which every refresh token of the session is derived.
pub const SEED_BYTES: usize = 32;

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or failed; callers answer 503 and accept nothing.
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
    /// The store holds something it should not (a bug or a hand edit); treated like unavailable.
    #[error("the session store holds invalid data: {0}")]
    Corrupt(String),
}

/// How a session's holder proved who they are: recorded at login, carried into every access
/// token the session issues (SPEC 10), and the handle back-channel logout finds it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `local` for a password login, else the name of the provider.
    pub idp: String,
    pub auth_time: u64,
    /// RFC 8176 values, none holding a space.
    pub amr: Vec<String>,
    /// The provider's session id (`sid`) and subject (`sub`), for back-channel logout.
    pub idp_sid: Option<String>,
    pub idp_sub: Option<String>,
    /// The RFC 7638 thumbprint of the key a DPoP login bound the session to (SPEC 14): its
    /// access tokens carry it as `cnf.jkt`, and only a proof by that key refreshes it.
    pub jkt: Option<String>,
}

impl Origin {
    /// A password login at `auth_time`.
    pub fn local(auth_time: u64) -> Origin {
        Origin {
            idp: LOCAL_IDP.to_string(),
            auth_time,
            amr: vec![LOCAL_AMR.to_string()],
            idp_sid: None,
            idp_sub: None,
            jkt: None,
        }
    }
}

/// Which of a provider's sessions a back-channel logout names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpLink<'a> {
    /// The provider's session id: the sessions begun in that provider session.
    Sid(&'a str),
    /// The provider's subject: every session of that user through that provider.
    Sub(&'a str),
}

/// A session as login creates it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub sid: String,
    pub sub: String,
    pub role: String,
    pub seed: Secret<[u8; SEED_BYTES]>,
    pub created_at: u64,
    /// Absolute end: `created_at + refresh_ttl`.
    pub expires_at: u64,
    pub user_agent: Option<String>,
    pub ip: String,
    pub origin: Origin,
}

/// A stored session. `generation` counts rotations: the live refresh token is the one derived
/// for `generation`, and the one for `generation - 1` was retired at `rotated_at_ms`.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub sid: String,
    pub sub: String,
    pub role: String,
    pub seed: Secret<[u8; SEED_BYTES]>,
    pub generation: u64,
    /// When the live generation was issued, in Unix milliseconds: the grace is often short.
    pub rotated_at_ms: u64,
    pub created_at: u64,
    pub last_used_at: u64,
    pub expires_at: u64,
    pub user_agent: Option<String>,
    pub ip: String,
    pub revoked_at: Option<u64>,
    pub origin: Origin,
}

/// What kind of second factor a `FactorRecord` holds (SPEC 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    Totp,
    Passkey,
}

impl FactorKind {
    pub fn name(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Passkey => "passkey",
        }
    }

    pub fn from_name(name: &str) -> Option<FactorKind> {
        [FactorKind::Totp, FactorKind::Passkey]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// A user's second factor. `data` is opaque to the store (a sealed TOTP secret with its
/// recovery-code hashes, or a passkey); the store never interprets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRecord {
    /// Unique over all users (`totp:<sub>`, a passkey's credential id).
    pub id: String,
    pub sub: String,
    pub kind: FactorKind,
    /// The passkey's name; empty for TOTP.
    pub label: String,
    pub data: Vec<u8>,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

/// The clock and the durations an atomic decision needs, all in Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub now: u64,
    /// The same instant in milliseconds, for the grace window.
    pub now_ms: u64,
    /// `refresh_grace` in milliseconds: how long the token retired last may be presented again.
    pub grace_ms: u64,
    /// `refresh_idle_ttl`: a session not refreshed for this long has ended.
    pub idle_ttl: u64,
    /// How long a revocation must be remembered: `access_ttl + leeway`, so every access token
    /// it covers has expired before it is forgotten.
    pub revocation_ttl: u64,
}

/// What presenting a (MAC-verified) refresh token of generation `presented` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// `presented` was the live token: the session moved to `generation` (= presented + 1).
    Rotated { generation: u64 },
    /// `presented` was retired last and within the grace: the live `generation` is re-issued,
    /// nothing changes but `last_used_at`, so the session keeps one lineage.
    Replayed { generation: u64 },
    /// An older token, or the previous one after the grace: the session is now revoked (and
    /// its revocation recorded).
    Reuse,
    /// Revoked, expired (absolute or idle), or unknown.
    Ended,
}

/// What the change feed brought since a position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedNews {
    pub revocations: Vec<Revocation>,
    /// API keys created or deleted: each is looked up again.
    pub api_keys: Vec<String>,
    /// The position was too old: `revocations` is every revocation in force, and every API
    /// key must be loaded again.
    pub complete: bool,
}

pub trait Store: Send + Sync + 'static {
    /// Stores a new session (generation 0, `rotated_at_ms` = `created_at` * 1000,
    /// `last_used_at` = `created_at`).
    fn create(&self, session: NewSession) -> StoreFuture<'_, ()>;

    /// The session, live or not; `None` when unknown or already purged.
    fn get<'a>(&'a self, sid: &'a str) -> StoreFuture<'a, Option<SessionRecord>>;

    /// Atomically applies SPEC 5.3 to a presented generation, in this order: revoked, past
    /// `expires_at` or past `last_used_at + idle_ttl` -> `Ended`; the live generation ->
    /// `Rotated`; the previous one within `grace_ms` of `rotated_at_ms` -> `Replayed`; anything
    /// older or later -> revoke the session (recording a `Session` revocation) -> `Reuse`.
    fn advance<'a>(&'a self, sid: &'a str, presented: u64, timing: Timing) -> StoreFuture<'a, Advance>;

    /// Revokes one live session and records its revocation; returns it, or `None` when it
    /// was unknown or had already ended.
    fn revoke_session<'a>(&'a self, sid: &'a str, timing: Timing) -> StoreFuture<'a, Option<SessionRecord>>;

    /// Revokes every live session of `sub`, recording a `Session` revocation for each and a
    /// `User` revocation with `not_before = now`; returns the revoked sids.
    fn revoke_user<'a>(&'a self, sub: &'a str, timing: Timing) -> StoreFuture<'a, Vec<String>>;

    /// Revokes every live session begun through provider `idp` with that provider session or
    /// subject, recording a `Session` revocation for each; returns the revoked sids, sorted.
    fn revoke_federated<'a>(
        &'a self,
        idp: &'a str,
        link: IdpLink<'a>,
        timing: Timing,
    ) -> StoreFuture<'a, Vec<String>>;

    /// Records `key` as used until `keep_until`; `true` the first time, `false` while it is
    /// remembered (one-use login states, back-channel logout `jti`s), on every gateway.
    fn use_once<'a>(&'a self, key: &'a str, keep_until: u64, timing: Timing) -> StoreFuture<'a, bool>;

    /// The live sessions of `sub` (not revoked, not expired, not idle), newest first.
    fn sessions_of<'a>(&'a self, sub: &'a str, timing: Timing) -> StoreFuture<'a, Vec<SessionRecord>>;

    /// Every revocation with `keep_until > now`, to rebuild the in-memory state.
    fn revocations(&self, now: u64) -> StoreFuture<'_, Vec<Revocation>>;

    /// Deletes ended sessions and forgotten revocations; returns how many rows went.
    fn purge(&self, timing: Timing) -> StoreFuture<'_, u64>;

    // === API keys (SPEC 11) ===

    /// Stores a new key (on a shared store, announced on the change feed).
    fn create_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> StoreFuture<'a, ()>;

    /// Every key, expired ones included, oldest first (ties by id).
    fn api_keys(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>>;

    fn api_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>>;

    /// Deletes a key and records the `Session` revocation of `api_key_sid(id)` (which closes
    /// its open tunnels); `false` when no such key exists.
    fn delete_api_key<'a>(&'a self, id: &'a str, timing: Timing) -> StoreFuture<'a, bool>;

    /// Raises each key's `last_used_at` to the given time (never lowers it); unknown ids are
    /// skipped.
    fn touch_api_keys<'a>(&'a self, uses: &'a [(String, u64)]) -> StoreFuture<'a, ()>;

    // === second factors and step-up (SPEC 13) ===

    /// Stores the factor, replacing the one with the same id; a factor whose id is another
    /// user's is refused (`false`, nothing changed).
    fn put_factor<'a>(&'a self, factor: &'a FactorRecord) -> StoreFuture<'a, bool>;

    /// The factor with this id, whoever's it is.
    fn factor<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FactorRecord>>;

    /// The user's factors, oldest first (then by id).
    fn factors_of<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, Vec<FactorRecord>>;

    /// Deletes the factor if it is this user's: `true` when one was deleted.
    fn delete_factor<'a>(&'a self, sub: &'a str, id: &'a str) -> StoreFuture<'a, bool>;

    /// Step-up: sets the live session's `origin.auth_time` and `origin.amr` and nothing else;
    /// `false` when the session is unknown, revoked or ended.
    fn renew_authentication<'a>(
        &'a self,
        sid: &'a str,
        auth_time: u64,
        amr: &'a [String],
        timing: Timing,
    ) -> StoreFuture<'a, bool>;

    /// Succeeds when the store answers (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Makes everything acknowledged so far durable in the store's main files (at shutdown).
    fn flush(&self) -> StoreFuture<'_, ()>;

    // === the revocation feed, for stores that several gateways share ===

    /// Whether other gateways share this store, so revocations they record must be followed.
    fn is_shared(&self) -> bool {
        false
    }

    /// The current end of the revocation feed. Read it before `revocations`, then follow from
    /// it: entries recorded in between are seen twice, which is harmless (applying is idempotent).
    fn feed_position(&self) -> StoreFuture<'_, String> {
        Box::pin(async { Ok(String::new()) })
    }

    /// Revocations and API key changes recorded by any gateway after `position`, waiting up to
    /// `wait` for the first one, and the position to follow from next. When `position` is
    /// older than what the feed still holds, the news is `complete`: every revocation in force
    /// (`keep_until > now`), and API keys to be loaded again, so a gateway that was cut off
    /// for long catches up completely.
    fn changes_since<'a>(
        &'a self,
        position: &'a str,
        wait: Duration,
        now: u64,
    ) -> StoreFuture<'a, (FeedNews, String)> {
        let _ = now;
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            Ok((FeedNews::default(), position.to_string()))
        })
    }
}
