//! The Lua scripts that make every decision of the Redis store one atomic step.
//!
//! Redis runs a script without interleaving any other command, so reading a session,
//! deciding (SPEC 5.3) and writing the outcome cannot race with another gateway. A script
//! that fails halfway keeps the writes it already made (Redis scripts are isolated, not
//! transactional), so each script loads and validates everything it reads before its first
//! write.
//!
//! Numbers cross the boundary as decimal strings. Lua numbers are doubles, so values that are
//! stored or compared for equality (generations, times, revocation bounds) stay strings,
//! compared exactly with `gt`; doubles are used only for the ordering tests of realistic
//! times and for key lifetimes, which are clamped before they are formatted.
//!
//! Keys a script derives from the prefix (a user's set, the sessions of a user) are not
//! declared in `KEYS`: fine for a single Redis (or one behind Sentinel), not for Redis
//! Cluster.

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by the scripts, prepended to each.
macro_rules! prelude {
    () => {
        r#"
-- a > b for canonical decimal strings of any length
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end

-- a > b for stream ids "ms-seq"
local function id_gt(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not ams then return false end
  if not bms then return true end
  if ams ~= bms then return gt(ams, bms) end
  return gt(aseq, bseq)
end

local function is_uint(s)
  return type(s) == 'string' and string.match(s, '^%d+$') ~= nil
end

local function corrupt(what)
  error({err = 'CORRUPT ' .. what})
end

-- The fields a decision needs; nil when the session is unknown.
local function load_session(key)
  if redis.call('EXISTS', key) == 0 then return nil end
  local v = redis.call('HMGET', key, 'sub', 'generation', 'rotated_at_ms', 'created_at',
    'last_used_at', 'expires_at', 'revoked_at')
  local s = {sub = v[1], generation = v[2], rotated_at_ms = v[3], created_at = v[4],
    last_used_at = v[5], expires_at = v[6], revoked_at = v[7]}
  if type(s.sub) ~= 'string' or not is_uint(s.generation) or not is_uint(s.rotated_at_ms)
    or not is_uint(s.created_at) or not is_uint(s.last_used_at) or not is_uint(s.expires_at)
    or (s.revoked_at and not is_uint(s.revoked_at)) then
    corrupt('a session record does not decode')
  end
  return s
end

-- Not revoked, before the absolute end, not idle too long.
local function is_live(s, now, idle_ttl)
  return not s.revoked_at and now < tonumber(s.expires_at)
    and now < tonumber(s.last_used_at) + idle_ttl
end

-- The live sessions among a set's sids that `wanted(s, key)` accepts, after reading and
-- validating every one (so that a damaged record changes nothing); drops the sids of sessions
-- Redis already forgot.
local function live_members(set, prefix, now, idle_ttl, wanted)
  local live, gone = {}, {}
  for _, sid in ipairs(redis.call('SMEMBERS', set)) do
    local key = prefix .. 'session:' .. sid
    local s = load_session(key)
    if not s then
      table.insert(gone, sid)
    elseif wanted(s, key) and is_live(s, now, idle_ttl) then
      table.insert(live, {sid = sid, key = key, created_at = s.created_at})
    end
  end
  for _, sid in ipairs(gone) do
    redis.call('SREM', set, sid)
  end
  return live
end

-- Ten years: longer lifetimes are cut to this so that EXPIRE gets a plain integer.
local MAX_TTL = 315360000

local function clamp_ttl(seconds)
  if seconds ~= seconds or seconds < 1 then return 1 end
  if seconds > MAX_TTL then return MAX_TTL end
  return math.floor(seconds)
end

local function expire_in(key, seconds)
  redis.call('EXPIRE', key, string.format('%d', clamp_ttl(seconds)))
end

-- Lengthens the lifetime of an existing key (never shortens it, never creates the key).
local function extend(key, seconds)
  local ttl = clamp_ttl(seconds)
  local current = redis.call('TTL', key)
  if current ~= -2 and current < ttl then
    redis.call('EXPIRE', key, string.format('%d', ttl))
  end
end

-- How long a live session's key must stay: until it ends (absolute or idle), then as long as
-- the revocation of its tokens would be remembered.
local function live_ttl(s, now, idle_ttl, revocation_ttl)
  return math.min(tonumber(s.expires_at), now + idle_ttl) + revocation_ttl - now
end

local function mark_revoked(key, now_s, revocation_ttl)
  redis.call('HSET', key, 'revoked_at', now_s)
  expire_in(key, revocation_ttl)
end

-- Records (merging: the later times win) a revocation and appends it to the feed, so that
-- every gateway following the feed learns of it.
local function record_revocation(revocations, feed, kind, key, not_before, keep_until)
  local field = kind .. ':' .. key
  local old = redis.call('HGET', revocations, field)
  if old then
    local old_nb, old_ku = string.match(old, '^(%d+):(%d+)$')
    if old_nb then
      if gt(old_nb, not_before) then not_before = old_nb end
      if gt(old_ku, keep_until) then keep_until = old_ku end
    end
  end
  redis.call('HSET', revocations, field, not_before .. ':' .. keep_until)
  redis.call('XADD', feed, '*', 'kind', kind, 'key', key, 'not_before', not_before,
    'keep_until', keep_until)
end
"#
    };
}

/// KEYS: session, user set, users index, then the provider's index sets (none for a
/// password login).
/// ARGV: sid, sub, lifetime in seconds, then the hash's field/value pairs.
const CREATE: &str = concat!(
    prelude!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS the session id is already taken')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
local ttl = tonumber(ARGV[3])
expire_in(KEYS[1], ttl)
redis.call('SADD', KEYS[2], ARGV[1])
extend(KEYS[2], ttl)
redis.call('SADD', KEYS[3], ARGV[2])
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  extend(KEYS[i], ttl)
end
return 1
"#
);

/// KEYS: the provider's index set (of a provider session or subject), revocations, feed.
/// ARGV: prefix, idp, the session field the index is by (`idp_sid`/`idp_sub`), its value,
/// now, idle_ttl, revocation_ttl, keep_until.
/// Returns the revoked sids.
const REVOKE_FEDERATED: &str = concat!(
    prelude!(),
    r#"
local now = tonumber(ARGV[5])
local idle_ttl = tonumber(ARGV[6])
local revocation_ttl = tonumber(ARGV[7])
local live = live_members(KEYS[1], ARGV[1], now, idle_ttl, function(_, key)
  local link = redis.call('HMGET', key, 'idp', ARGV[3])
  return link[1] == ARGV[2] and link[2] == ARGV[4]
end)
local out = {}
for _, s in ipairs(live) do
  mark_revoked(s.key, ARGV[5], revocation_ttl)
  record_revocation(KEYS[2], KEYS[3], 'session', s.sid, ARGV[5], ARGV[8])
  table.insert(out, s.sid)
end
return out
"#
);

/// KEYS: session, revocations, feed.
/// ARGV: prefix, sid, presented, presented + 1 (saturating), now, now_ms, grace_ms, idle_ttl,
/// revocation_ttl, keep_until.
/// Returns {'ended'}, {'rotated', generation}, {'replayed', generation} or {'reuse'}.
const ADVANCE: &str = concat!(
    prelude!(),
    r#"
local now = tonumber(ARGV[5])
local idle_ttl = tonumber(ARGV[8])
local revocation_ttl = tonumber(ARGV[9])
local s = load_session(KEYS[1])
if not s or not is_live(s, now, idle_ttl) then
  return {'ended'}
end
local user_key = ARGV[1] .. 'user:' .. s.sub
local keep = live_ttl(s, now, idle_ttl, revocation_ttl)
if ARGV[3] == s.generation then
  redis.call('HSET', KEYS[1], 'generation', ARGV[4], 'rotated_at_ms', ARGV[6],
    'last_used_at', ARGV[5])
  expire_in(KEYS[1], keep)
  extend(user_key, keep)
  return {'rotated', ARGV[4]}
end
if ARGV[4] == s.generation
  and tonumber(ARGV[6]) < tonumber(s.rotated_at_ms) + tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'last_used_at', ARGV[5])
  expire_in(KEYS[1], keep)
  extend(user_key, keep)
  return {'replayed', s.generation}
end
mark_revoked(KEYS[1], ARGV[5], revocation_ttl)
record_revocation(KEYS[2], KEYS[3], 'session', ARGV[2], ARGV[5], ARGV[10])
return {'reuse'}
"#
);

/// KEYS: session, revocations, feed.
/// ARGV: sid, now, idle_ttl, revocation_ttl, keep_until.
/// Returns the revoked session's hash (flat), or an empty array when it was not live.
const REVOKE_SESSION: &str = concat!(
    prelude!(),
    r#"
local s = load_session(KEYS[1])
if not s or not is_live(s, tonumber(ARGV[2]), tonumber(ARGV[3])) then
  return {}
end
mark_revoked(KEYS[1], ARGV[2], tonumber(ARGV[4]))
record_revocation(KEYS[2], KEYS[3], 'session', ARGV[1], ARGV[2], ARGV[5])
return redis.call('HGETALL', KEYS[1])
"#
);

/// Step-up. KEYS: session. ARGV: now, idle_ttl, auth_time, amr (space-separated).
/// Returns 1 when the session was live and renewed.
const RENEW: &str = concat!(
    prelude!(),
    r#"
local s = load_session(KEYS[1])
if not s or not is_live(s, tonumber(ARGV[1]), tonumber(ARGV[2])) then return 0 end
redis.call('HSET', KEYS[1], 'auth_time', ARGV[3], 'amr', ARGV[4])
return 1
"#
);

/// KEYS: user set, revocations, feed.
/// ARGV: prefix, sub, now, idle_ttl, revocation_ttl, keep_until.
/// Returns the revoked sessions as a flat list of sid, created_at.
const REVOKE_USER: &str = concat!(
    prelude!(),
    r#"
local now = tonumber(ARGV[3])
local idle_ttl = tonumber(ARGV[4])
local revocation_ttl = tonumber(ARGV[5])
local live = live_members(KEYS[1], ARGV[1], now, idle_ttl, function(s) return s.sub == ARGV[2] end)
local out = {}
for _, s in ipairs(live) do
  mark_revoked(s.key, ARGV[3], revocation_ttl)
  record_revocation(KEYS[2], KEYS[3], 'session', s.sid, ARGV[3], ARGV[6])
  table.insert(out, s.sid)
  table.insert(out, s.created_at)
end
-- Recorded even when no session was live: tokens of sessions that just ended may not have
-- expired yet.
record_revocation(KEYS[2], KEYS[3], 'user', ARGV[2], ARGV[3], ARGV[6])
return out
"#
);

/// KEYS: user set. ARGV: prefix.
/// Returns sid, hash (flat) for every session of the user that still exists.
const SESSIONS_OF: &str = r#"
local out = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 'session:' .. sid)
  if #fields > 0 then
    table.insert(out, sid)
    table.insert(out, fields)
  end
end
return out
"#;

/// KEYS: users index.
/// ARGV: prefix, ended_by ('' for none), idle_by ('' for none), then subs.
/// Deletes sessions that ended at or before `ended_by` (revoked, or past `expires_at`) or were
/// last used at or before `idle_by`, drops the sids of sessions Redis already forgot, and
/// drops users left without sessions from the index. Returns how many sessions it deleted.
const PURGE_USERS: &str = concat!(
    prelude!(),
    r#"
local ended_by = tonumber(ARGV[2])
local idle_by = tonumber(ARGV[3])
local deleted = 0
for i = 4, #ARGV do
  local user_key = ARGV[1] .. 'user:' .. ARGV[i]
  for _, sid in ipairs(redis.call('SMEMBERS', user_key)) do
    local key = ARGV[1] .. 'session:' .. sid
    if redis.call('EXISTS', key) == 0 then
      redis.call('SREM', user_key, sid)
    elseif ended_by then
      local v = redis.call('HMGET', key, 'revoked_at', 'expires_at', 'last_used_at')
      local revoked_at, expires_at, last_used = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
      -- A field that does not decode keeps the session: `get` reports it as corrupt.
      if (revoked_at and revoked_at <= ended_by) or (expires_at and expires_at <= ended_by)
        or (idle_by and last_used and last_used <= idle_by) then
        redis.call('DEL', key)
        redis.call('SREM', user_key, sid)
        deleted = deleted + 1
      end
    end
  end
  if redis.call('SCARD', user_key) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return deleted
"#
);

/// KEYS: revocations. ARGV: now, then fields.
/// Deletes the given fields whose keep_until is at or before now (checked again here, as
/// another gateway may have lengthened one since it was read). Returns how many went.
const PURGE_REVOCATIONS: &str = concat!(
    prelude!(),
    r#"
local deleted = 0
for i = 2, #ARGV do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    local keep_until = string.match(value, '^%d+:(%d+)$')
    if keep_until and not gt(keep_until, ARGV[1]) then
      redis.call('HDEL', KEYS[1], ARGV[i])
      deleted = deleted + 1
    end
  end
end
return deleted
"#
);

/// KEYS: feed, trimmed marker. ARGV: retention in milliseconds.
/// Deletes feed entries older than the retention (by Redis's clock) and remembers the
/// largest id it deleted, so that a reader whose position is older knows it missed entries.
const TRIM_FEED: &str = concat!(
    prelude!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local min_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
if min_ms <= 0 then return 0 end
local min_id = string.format('%d', min_ms) .. '-0'
local last = redis.call('XREVRANGE', KEYS[1], '(' .. min_id, '-', 'COUNT', 1)
if #last == 0 then return 0 end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', min_id)
local deleted_up_to = last[1][1]
local marker = redis.call('GET', KEYS[2])
if not marker or id_gt(deleted_up_to, marker) then
  redis.call('SET', KEYS[2], deleted_up_to)
end
return trimmed
"#
);

/// KEYS: feed. Returns the last id the feed generated, or '0-0' when it does not exist.
const FEED_POSITION: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return '0-0' end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info - 1, 2 do
  if info[i] == 'last-generated-id' then return info[i + 1] end
end
return redis.error_reply('CORRUPT the revocation feed has no last id')
"#;

/// KEYS: feed, trimmed marker. ARGV: a reader's position (a valid id).
/// Returns 1 when a reader at that position must reload every revocation: entries after it
/// were trimmed, or the feed was reset (deleted, or recreated by a Redis that lost its data)
/// so that its ids no longer continue from the position; 0 when reading on is complete.
const FEED_CHECK: &str = concat!(
    prelude!(),
    r#"
local marker = redis.call('GET', KEYS[2])
if marker then
  if not string.match(marker, '^%d+-%d+$') or id_gt(marker, ARGV[1]) then return 1 end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[1] == '0-0' then return 0 end
  return 1
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info - 1, 2 do
  if info[i] == 'last-generated-id' then
    if id_gt(ARGV[1], info[i + 1]) then return 1 end
    return 0
  end
end
return 1
"#
);

/// KEYS: the key's hash, the set of ids, feed. ARGV: id, then the hash's field/value pairs.
const CREATE_API_KEY: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS the API key id is already taken')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'kind', 'api_key', 'key', ARGV[1])
return 1
"#;

/// KEYS: the key's hash, the set of ids, revocations, feed. ARGV: id, the key's session id,
/// now, keep_until. Returns 1 when the key existed.
const DELETE_API_KEY: &str = concat!(
    prelude!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
record_revocation(KEYS[3], KEYS[4], 'session', ARGV[2], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[4], '*', 'kind', 'api_key', 'key', ARGV[1])
return 1
"#
);

/// KEYS: the set of ids. ARGV: prefix. Returns id, fields for each key (ids whose hash is
/// gone are dropped from the set).
const API_KEYS: &str = r#"
local out, gone = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 'apikey:' .. id)
  if #fields == 0 then
    table.insert(gone, id)
  else
    table.insert(out, id)
    table.insert(out, fields)
  end
end
for _, id in ipairs(gone) do redis.call('SREM', KEYS[1], id) end
return out
"#;

/// KEYS: API key hashes. ARGV: for each, the time of its last use. Raises `last_used_at`,
/// never lowers it, and never creates a hash that was deleted meanwhile.
const TOUCH_API_KEYS: &str = concat!(
    prelude!(),
    r#"
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local old = redis.call('HGET', key, 'last_used_at')
    if not old or gt(ARGV[i], old) then
      redis.call('HSET', key, 'last_used_at', ARGV[i])
    end
  end
end
return 1
"#
);

pub(super) struct Scripts {
    pub renew: Script,
    pub create_api_key: Script,
    pub delete_api_key: Script,
    pub api_keys: Script,
    pub touch_api_keys: Script,
    pub create: Script,
    pub advance: Script,
    pub revoke_session: Script,
    pub revoke_user: Script,
    pub revoke_federated: Script,
    pub sessions_of: Script,
    pub purge_users: Script,
    pub purge_revocations: Script,
    pub trim_feed: Script,
    pub feed_position: Script,
    pub feed_check: Script,
}

/// Built once: `Script::new` hashes the source for EVALSHA. `invoke_async` loads a script
/// that Redis does not know (a restarted server) and retries, so nothing else is needed.
pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    renew: Script::new(RENEW),
    create_api_key: Script::new(CREATE_API_KEY),
    delete_api_key: Script::new(DELETE_API_KEY),
    api_keys: Script::new(API_KEYS),
    touch_api_keys: Script::new(TOUCH_API_KEYS),
    create: Script::new(CREATE),
    revoke_federated: Script::new(REVOKE_FEDERATED),
    advance: Script::new(ADVANCE),
    revoke_session: Script::new(REVOKE_SESSION),
    revoke_user: Script::new(REVOKE_USER),
    sessions_of: Script::new(SESSIONS_OF),
    purge_users: Script::new(PURGE_USERS),
    purge_revocations: Script::new(PURGE_REVOCATIONS),
    trim_feed: Script::new(TRIM_FEED),
    feed_position: Script::new(FEED_POSITION),
    feed_check: Script::new(FEED_CHECK),
});
