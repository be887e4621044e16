//! Second factors in Redis (SPEC 13). Keys, under the prefix `{p}`: `{p}factor:{id}`, a hash
//! (`sub`, `kind`, `label`, `data` as raw bytes, `created_at`, `last_used_at` once used), and
//! `{p}factors:{sub}`, the set of a user's factor ids. Factors never expire by themselves.
//! Step-up's renewal of a session's authentication is here too (its script is `RENEW`).

use std::sync::LazyLock;

use redis::Script;

use super::*;
use crate::sessions::store::{FactorKind, FactorRecord};

/// KEYS: the factor's hash, the user's set. ARGV: id, then field/value pairs, `sub` first.
/// Returns 0, changing nothing, when the id is another user's.
const PUT: &str = r#"
local owner = redis.call('HGET', KEYS[1], 'sub')
if owner and owner ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: the factor's hash, the user's set. ARGV: id, sub. Returns 1 when it was deleted.
const DELETE: &str = r#"
if redis.call('HGET', KEYS[1], 'sub') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: the user's set. ARGV: prefix. Returns id, fields for each factor, read at once.
const OF_USER: &str = r#"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 'factor:' .. id)
  if #fields > 0 then
    table.insert(out, id)
    table.insert(out, fields)
  end
end
return out
"#;

struct FactorScripts {
    put: Script,
    delete: Script,
    of_user: Script,
}

static FACTOR_SCRIPTS: LazyLock<FactorScripts> = LazyLock::new(|| FactorScripts {
    put: Script::new(PUT),
    delete: Script::new(DELETE),
    of_user: Script::new(OF_USER),
});

impl Keys {
    fn factor(&self, id: &str) -> String {
        format!("{}factor:{id}", self.prefix)
    }

    fn factors(&self, sub: &str) -> String {
        format!("{}factors:{sub}", self.prefix)
    }
}

impl RedisStore {
    pub(super) async fn put_factor_record(&self, factor: &FactorRecord) -> Result<bool, StoreError> {
        let mut call = FACTOR_SCRIPTS.put.prepare_invoke();
        call.key(self.keys.factor(&factor.id))
            .key(self.keys.factors(&factor.sub))
            .arg(&factor.id)
            .arg("sub")
            .arg(&factor.sub)
            .arg("kind")
            .arg(factor.kind.name())
            .arg("label")
            .arg(&factor.label)
            .arg("data")
            .arg(&factor.data[..])
            .arg("created_at")
            .arg(factor.created_at);
        if let Some(used) = factor.last_used_at {
            call.arg("last_used_at").arg(used);
        }
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(integer(&answer)? == 1)
    }

    pub(super) async fn one_factor(&self, id: &str) -> Result<Option<FactorRecord>, StoreError> {
        let fields = self.hash(&self.keys.factor(id)).await?;
        let fields = pairs(&fields)?;
        match fields.is_empty() {
            true => Ok(None),
            false => factor_from_fields(id, &fields).map(Some),
        }
    }

    pub(super) async fn factors_of_user(&self, sub: &str) -> Result<Vec<FactorRecord>, StoreError> {
        let mut call = FACTOR_SCRIPTS.of_user.prepare_invoke();
        call.key(self.keys.factors(sub)).arg(&self.keys.prefix);
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let items = array(&answer)?;
        if items.len() % 2 != 0 {
            return Err(corrupt("factors_of returned an odd list"));
        }
        let mut factors = items
            .chunks_exact(2)
            .map(|pair| factor_from_fields(&text(&pair[0])?, &pairs(&pair[1])?))
            .collect::<Result<Vec<_>, _>>()?;
        factors.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(factors)
    }

    pub(super) async fn delete_factor_record(&self, sub: &str, id: &str) -> Result<bool, StoreError> {
        let mut call = FACTOR_SCRIPTS.delete.prepare_invoke();
        call.key(self.keys.factor(id))
            .key(self.keys.factors(sub))
            .arg(id)
            .arg(sub);
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(integer(&answer)? == 1)
    }

    pub(super) async fn renew(
        &self,
        sid: &str,
        auth_time: u64,
        amr: &[String],
        timing: Timing,
    ) -> Result<bool, StoreError> {
        let mut call = SCRIPTS.renew.prepare_invoke();
        call.key(self.keys.session(sid))
            .arg(timing.now)
            .arg(timing.idle_ttl)
            .arg(auth_time)
            .arg(amr.join(" "));
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(integer(&answer)? == 1)
    }
}

/// Decodes a factor's hash. Messages name fields, never values.
fn factor_from_fields(id: &str, fields: &[(&[u8], &[u8])]) -> Result<FactorRecord, StoreError> {
    let find = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| *f == name.as_bytes())
            .map(|(_, v)| *v)
    };
    let required = |name: &str| find(name).ok_or_else(|| corrupt(&format!("a second factor has no {name}")));
    let string = |name: &str| required(name).and_then(|raw| utf8(raw, name));
    let kind = string("kind")?;
    let last_used_at = find("last_used_at")
        .map(|raw| utf8(raw, "last_used_at").and_then(|t| number(&t, "last_used_at")))
        .transpose()?;
    Ok(FactorRecord {
        id: id.to_owned(),
        sub: string("sub")?,
        kind: FactorKind::from_name(&kind).ok_or_else(|| corrupt("a second factor has an unknown kind"))?,
        label: string("label")?,
        data: required("data")?.to_vec(),
        created_at: number(&string("created_at")?, "created_at")?,
        last_used_at,
    })
}
