//! The shared session store: `Store` on Redis, so that any number of gateways act as one.
//!
//! Every decision (`create`, `advance`, `revoke_session`, `revoke_user`, the deletions of
//! `purge`) is one Lua script (`scripts.rs`), which Redis runs without interleaving any other
//! command: two gateways presenting the same generation cannot both rotate it. Every
//! revocation is recorded in a hash and appended to a stream in the same script, and each
//! gateway follows that stream (`changes_since`) from the last id it saw, so a gateway
//! that was cut off resumes where it stopped, or reloads every revocation in force when the
//! entries it missed were already trimmed, or the feed was reset (a Redis that lost its data
//! numbers its entries anew).
//!
//! Keys, under the caller's prefix `{p}`:
//! - `{p}session:{sid}`: a hash (`sub`, `role`, `seed` as 32 raw bytes, `generation`,
//!   `rotated_at_ms`, `created_at`, `last_used_at`, `expires_at`, `user_agent` when known, `ip`,
//!   `revoked_at` once revoked), with a lifetime that ends `revocation_ttl` after the session
//!   does, so Redis forgets ended sessions even if no gateway purges;
//! - `{p}user:{sub}`: the set of that user's sids, living as long as its longest session;
//! - `{p}users`: the set of subs that have sessions, which `purge` walks;
//! - `{p}revocations`: a hash from `kind:key` (`session:{sid}`, `user:{sub}`) to
//!   `not_before:keep_until`;
//! - `{p}revocations:feed`: a stream with an entry (`kind`, `key`, `not_before`, `keep_until`)
//!   per recorded revocation, trimmed by `purge` after an hour;
//! - `{p}revocations:trimmed`: the largest feed id `purge` deleted;
//! - API keys and single sign-on's keys: see `api_keys.rs` and `federated.rs`.
//!
//! Lifetimes are relative (`EXPIRE`), computed from the gateway's clock, so a clock
//! difference between a gateway and Redis never ends a session early. Needs Redis 6.2 or
//! later (`XTRIM MINID`, exclusive ranges), with an eviction policy that never evicts keys
//! without a lifetime (`noeviction` or a `volatile-*` one).
//!
//! Connections: one `ConnectionManager` (a multiplexed connection that reconnects by itself,
//! with backoff, after a failure) carries every operation; the blocking `XREAD` of the feed
//! has a connection of its own, so it never holds up the others.

mod api_keys;
mod decode;
mod factors;
mod federated;
mod feed;
mod revocations;
mod scripts;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::{TcpSettings, socket2};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Value};
use tokio::sync::Mutex;

use super::store::{
    Advance, ApiKeyRecord, FactorRecord, FeedNews, IdpLink, NewSession, Revocation, RevocationKind,
    SEED_BYTES, SessionRecord, Store, StoreError, StoreFuture, Timing,
};
use crate::secret::Secret;
use decode::*;
use scripts::SCRIPTS;

/// One attempt to open a connection gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A command (a script included) that gets no answer within this fails as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a lost connection the manager tries again this many times, waiting 100 ms, 200 ms,
/// 400 ms in between, then fails the waiting operations; the next operation starts over.
const RECONNECT_RETRIES: usize = 3;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
/// TCP keepalive and `TCP_USER_TIMEOUT`: a peer that vanished without closing the connection
/// (a partition, a crashed host) is noticed within about this long, and the manager reconnects.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// A blocking feed read that has not answered this long after its own deadline is abandoned,
/// with its connection.
const FEED_SLACK: Duration = Duration::from_secs(2);
/// The most feed entries one read returns.
const FEED_BATCH: usize = 1000;
/// How long feed entries are kept: a gateway cut off for longer reloads every revocation.
const FEED_RETENTION: Duration = Duration::from_secs(3600);
/// A session's key outlives its absolute end by this until the first refresh sets the exact
/// lifetime (creation does not know `revocation_ttl` and `idle_ttl`).
const CREATE_SLACK: u64 = 24 * 3600;
/// How many users or revocation fields one purge script handles.
const PURGE_BATCH: usize = 500;

/// The full names of the keys the store uses, under its prefix.
struct Keys {
    prefix: String,
    users: String,
    revocations: String,
    feed: String,
    trimmed: String,
    api_keys: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            users: format!("{prefix}users"),
            revocations: format!("{prefix}revocations"),
            feed: format!("{prefix}revocations:feed"),
            trimmed: format!("{prefix}revocations:trimmed"),
            api_keys: format!("{prefix}apikeys"),
        }
    }

    fn session(&self, sid: &str) -> String {
        format!("{}session:{sid}", self.prefix)
    }

    fn user(&self, sub: &str) -> String {
        format!("{}user:{sub}", self.prefix)
    }
}

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    /// Opens the feed's connection again after it failed.
    client: Client,
    /// The feed's own connection, opened on first use and dropped after any failure.
    feed: Arc<Mutex<Option<MultiplexedConnection>>>,
    keys: Arc<Keys>,
}

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://` for TLS, `redis+unix://`), with `password`
    /// when given (it replaces one in the URL), checks the server answers `PING`, and names
    /// every key with `prefix`. A server that cannot be reached now is `Unavailable`; later
    /// outages are survived by reconnecting.
    pub async fn connect(url: &str, password: Option<&str>, prefix: &str) -> Result<RedisStore, StoreError> {
        // The URL may hold a password: neither it nor the parser's message goes into the error.
        let mut info = url
            .into_connection_info()
            .map_err(|e| StoreError::Unavailable(format!("the redis URL is not valid ({})", e.category())))?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        info = info.set_tcp_settings(tcp_settings());
        let client = Client::open(info).map_err(redis_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(redis_error)?;
        let store = RedisStore {
            conn,
            client,
            feed: Arc::new(Mutex::new(None)),
            keys: Arc::new(Keys::new(prefix)),
        };
        store.ping_server().await?;
        Ok(store)
    }

    async fn ping_server(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let answer: Value = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        match answer {
            Value::SimpleString(s) if s == "PONG" => Ok(()),
            Value::BulkString(b) if b == b"PONG" => Ok(()),
            _ => Err(StoreError::Unavailable(
                "redis answered PING with something else".into(),
            )),
        }
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        let lifetime = session
            .expires_at
            .saturating_sub(session.created_at)
            .saturating_add(CREATE_SLACK);
        let mut call = SCRIPTS.create.prepare_invoke();
        call.key(self.keys.session(&session.sid))
            .key(self.keys.user(&session.sub))
            .key(&self.keys.users);
        for link in self.keys.idp_links(&session.origin) {
            call.key(link);
        }
        call.arg(&session.sid)
            .arg(&session.sub)
            .arg(lifetime)
            .arg("sub")
            .arg(&session.sub)
            .arg("role")
            .arg(&session.role)
            .arg("seed")
            .arg(&session.seed.expose()[..])
            .arg("generation")
            .arg(0u64)
            .arg("rotated_at_ms")
            .arg(session.created_at.saturating_mul(1000))
            .arg("created_at")
            .arg(session.created_at)
            .arg("last_used_at")
            .arg(session.created_at)
            .arg("expires_at")
            .arg(session.expires_at)
            .arg("ip")
            .arg(&session.ip);
        if let Some(user_agent) = &session.user_agent {
            call.arg("user_agent").arg(user_agent);
        }
        for (field, value) in federated::origin_fields(&session.origin) {
            call.arg(field).arg(value);
        }
        let mut conn = self.conn.clone();
        let _: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(())
    }

    async fn load(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        let fields = self.hash(&self.keys.session(sid)).await?;
        let fields = pairs(&fields)?;
        if fields.is_empty() {
            return Ok(None);
        }
        record_from_fields(sid, &fields).map(Some)
    }

    /// `HGETALL key`: an empty reply when the key does not exist.
    async fn hash(&self, key: &str) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn advance_session(
        &self,
        sid: &str,
        presented: u64,
        timing: Timing,
    ) -> Result<Advance, StoreError> {
        let mut call = SCRIPTS.advance.prepare_invoke();
        call.key(self.keys.session(sid))
            .key(&self.keys.revocations)
            .key(&self.keys.feed)
            .arg(&self.keys.prefix)
            .arg(sid)
            .arg(presented)
            .arg(presented.saturating_add(1))
            .arg(timing.now)
            .arg(timing.now_ms)
            .arg(timing.grace_ms)
            .arg(timing.idle_ttl)
            .arg(timing.revocation_ttl)
            .arg(keep_until(timing));
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let items = array(&answer)?;
        let outcome = items.first().map(text).transpose()?;
        let generation = || -> Result<u64, StoreError> {
            let value = items
                .get(1)
                .ok_or_else(|| corrupt("advance returned no generation"))?;
            number(&text(value)?, "generation")
        };
        match outcome.as_deref() {
            Some("rotated") => Ok(Advance::Rotated {
                generation: generation()?,
            }),
            Some("replayed") => Ok(Advance::Replayed {
                generation: generation()?,
            }),
            Some("reuse") => Ok(Advance::Reuse),
            Some("ended") => Ok(Advance::Ended),
            _ => Err(corrupt("advance returned an unknown outcome")),
        }
    }

    async fn revoke_one(&self, sid: &str, timing: Timing) -> Result<Option<SessionRecord>, StoreError> {
        let mut call = SCRIPTS.revoke_session.prepare_invoke();
        call.key(self.keys.session(sid))
            .key(&self.keys.revocations)
            .key(&self.keys.feed)
            .arg(sid)
            .arg(timing.now)
            .arg(timing.idle_ttl)
            .arg(timing.revocation_ttl)
            .arg(keep_until(timing));
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let fields = pairs(&answer)?;
        if fields.is_empty() {
            return Ok(None);
        }
        record_from_fields(sid, &fields).map(Some)
    }

    async fn revoke_all(&self, sub: &str, timing: Timing) -> Result<Vec<String>, StoreError> {
        let mut call = SCRIPTS.revoke_user.prepare_invoke();
        call.key(self.keys.user(sub))
            .key(&self.keys.revocations)
            .key(&self.keys.feed)
            .arg(&self.keys.prefix)
            .arg(sub)
            .arg(timing.now)
            .arg(timing.idle_ttl)
            .arg(timing.revocation_ttl)
            .arg(keep_until(timing));
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let items = array(&answer)?;
        if items.len() % 2 != 0 {
            return Err(corrupt("revoke_user returned an odd list"));
        }
        let mut revoked = items
            .chunks_exact(2)
            .map(|pair| Ok((text(&pair[0])?, number(&text(&pair[1])?, "created_at")?)))
            .collect::<Result<Vec<(String, u64)>, StoreError>>()?;
        // The order `sessions_of` uses: newest first, then by sid.
        revoked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(revoked.into_iter().map(|(sid, _)| sid).collect())
    }

    async fn live_sessions(&self, sub: &str, timing: Timing) -> Result<Vec<SessionRecord>, StoreError> {
        let mut call = SCRIPTS.sessions_of.prepare_invoke();
        call.key(self.keys.user(sub)).arg(&self.keys.prefix);
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let items = array(&answer)?;
        if items.len() % 2 != 0 {
            return Err(corrupt("sessions_of returned an odd list"));
        }
        let mut sessions = Vec::new();
        for pair in items.chunks_exact(2) {
            let sid = text(&pair[0])?;
            let record = record_from_fields(&sid, &pairs(&pair[1])?)?;
            if record.sub == sub && is_live(&record, timing) {
                sessions.push(record);
            }
        }
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.sid.cmp(&b.sid)));
        Ok(sessions)
    }
}

impl Store for RedisStore {
    fn create(&self, session: NewSession) -> StoreFuture<'_, ()> {
        Box::pin(self.create_session(session))
    }

    fn get<'a>(&'a self, sid: &'a str) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(self.load(sid))
    }

    fn advance<'a>(&'a self, sid: &'a str, presented: u64, timing: Timing) -> StoreFuture<'a, Advance> {
        Box::pin(self.advance_session(sid, presented, timing))
    }

    fn revoke_session<'a>(&'a self, sid: &'a str, timing: Timing) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(self.revoke_one(sid, timing))
    }

    fn revoke_user<'a>(&'a self, sub: &'a str, timing: Timing) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.revoke_all(sub, timing))
    }

    fn revoke_federated<'a>(
        &'a self,
        idp: &'a str,
        link: IdpLink<'a>,
        timing: Timing,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.revoke_linked(idp, link, timing))
    }

    fn use_once<'a>(&'a self, key: &'a str, keep_until: u64, timing: Timing) -> StoreFuture<'a, bool> {
        Box::pin(self.use_key_once(key, keep_until, timing.now))
    }

    fn sessions_of<'a>(&'a self, sub: &'a str, timing: Timing) -> StoreFuture<'a, Vec<SessionRecord>> {
        Box::pin(self.live_sessions(sub, timing))
    }

    fn revocations(&self, now: u64) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(self.all_revocations(now))
    }

    fn purge(&self, timing: Timing) -> StoreFuture<'_, u64> {
        Box::pin(self.purge_all(timing))
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_api_key(key))
    }

    fn api_keys(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>> {
        Box::pin(self.all_api_keys())
    }

    fn api_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>> {
        Box::pin(self.one_api_key(id))
    }

    fn delete_api_key<'a>(&'a self, id: &'a str, timing: Timing) -> StoreFuture<'a, bool> {
        Box::pin(self.remove_api_key(id, timing))
    }

    fn touch_api_keys<'a>(&'a self, uses: &'a [(String, u64)]) -> StoreFuture<'a, ()> {
        Box::pin(self.touch_keys(uses))
    }

    fn put_factor<'a>(&'a self, factor: &'a FactorRecord) -> StoreFuture<'a, bool> {
        Box::pin(self.put_factor_record(factor))
    }

    fn factor<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FactorRecord>> {
        Box::pin(self.one_factor(id))
    }

    fn factors_of<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, Vec<FactorRecord>> {
        Box::pin(self.factors_of_user(sub))
    }

    fn delete_factor<'a>(&'a self, sub: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.delete_factor_record(sub, id))
    }

    fn renew_authentication<'a>(
        &'a self,
        sid: &'a str,
        auth_time: u64,
        amr: &'a [String],
        timing: Timing,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.renew(sid, auth_time, amr, timing))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ping_server())
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // Every acknowledged write is already in Redis; how Redis persists is its own setting.
        Box::pin(async { Ok(()) })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn feed_position(&self) -> StoreFuture<'_, String> {
        Box::pin(self.last_feed_id())
    }

    fn changes_since<'a>(
        &'a self,
        position: &'a str,
        wait: Duration,
        now: u64,
    ) -> StoreFuture<'a, (FeedNews, String)> {
        Box::pin(self.follow(position, wait, now))
    }
}

fn tcp_settings() -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new().with_time(DEAD_PEER_TIMEOUT / 2);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    let keepalive = keepalive.with_interval(Duration::from_secs(1)).with_retries(5);
    let settings = TcpSettings::default().set_nodelay(true).set_keepalive(keepalive);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    let settings = settings.set_user_timeout(DEAD_PEER_TIMEOUT);
    settings
}

/// Live means usable for a refresh; the scripts apply the same rule inside Redis.
fn is_live(session: &SessionRecord, timing: Timing) -> bool {
    session.revoked_at.is_none()
        && timing.now < session.expires_at
        && timing.now < session.last_used_at.saturating_add(timing.idle_ttl)
}

fn keep_until(timing: Timing) -> u64 {
    timing.now.saturating_add(timing.revocation_ttl)
}

/// Errors the scripts raise as `CORRUPT ...`, and replies of the wrong shape, are corrupt
/// data; anything else (I/O, timeouts, refused connections, server errors) is unavailable.
/// Redis's messages name commands and keys, never the values (seeds) we sent.
fn redis_error(error: RedisError) -> StoreError {
    if error.code() == Some("CORRUPT") {
        let detail = error.detail().unwrap_or("invalid data");
        return StoreError::Corrupt(format!("redis: {detail}"));
    }
    match error.kind() {
        redis::ErrorKind::UnexpectedReturnType => StoreError::Corrupt(format!("redis: {error}")),
        _ => StoreError::Unavailable(format!("redis: {error}")),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}
