//! API keys in Redis (SPEC 11). Keys, under the prefix `{p}`: `{p}apikey:{id}`, a hash
//! (`hash` as 32 raw bytes, `sub`, `role`, `name`, `created_at`, `expires_at` when set,
//! `last_used_at` once used), and `{p}apikeys`, the set of ids. Creating and deleting a key
//! append an `api_key` entry to the revocation feed, so every gateway looks the key up again.

use super::*;
use crate::sessions::store::{ApiKeyRecord, api_key_sid};

impl Keys {
    fn api_key(&self, id: &str) -> String {
        format!("{}apikey:{id}", self.prefix)
    }
}

impl RedisStore {
    pub(super) async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut call = SCRIPTS.create_api_key.prepare_invoke();
        call.key(self.keys.api_key(&key.id))
            .key(&self.keys.api_keys)
            .key(&self.keys.feed)
            .arg(&key.id)
            .arg("hash")
            .arg(&key.hash[..])
            .arg("sub")
            .arg(&key.sub)
            .arg("role")
            .arg(&key.role)
            .arg("name")
            .arg(&key.name)
            .arg("created_at")
            .arg(key.created_at);
        if let Some(expires_at) = key.expires_at {
            call.arg("expires_at").arg(expires_at);
        }
        let mut conn = self.conn.clone();
        let _: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(())
    }

    pub(super) async fn all_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut call = SCRIPTS.api_keys.prepare_invoke();
        call.key(&self.keys.api_keys).arg(&self.keys.prefix);
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let items = array(&answer)?;
        if items.len() % 2 != 0 {
            return Err(corrupt("api_keys returned an odd list"));
        }
        let mut keys = Vec::with_capacity(items.len() / 2);
        for pair in items.chunks_exact(2) {
            let id = text(&pair[0])?;
            // One damaged key must not hide the others (or stop a replica's reload): it is
            // left out, so it is refused, and said.
            match pairs(&pair[1]).and_then(|fields| api_key_from_fields(&id, &fields)) {
                Ok(key) => keys.push(key),
                Err(error) => tracing::warn!(%id, %error, "an API key in redis does not decode; left out"),
            }
        }
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(keys)
    }

    pub(super) async fn one_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let fields = self.hash(&self.keys.api_key(id)).await?;
        let fields = pairs(&fields)?;
        if fields.is_empty() {
            return Ok(None);
        }
        api_key_from_fields(id, &fields).map(Some)
    }

    pub(super) async fn remove_api_key(&self, id: &str, timing: Timing) -> Result<bool, StoreError> {
        let mut call = SCRIPTS.delete_api_key.prepare_invoke();
        call.key(self.keys.api_key(id))
            .key(&self.keys.api_keys)
            .key(&self.keys.revocations)
            .key(&self.keys.feed)
            .arg(id)
            .arg(api_key_sid(id))
            .arg(timing.now)
            .arg(keep_until(timing));
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(integer(&answer)? == 1)
    }

    pub(super) async fn touch_keys(&self, uses: &[(String, u64)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut call = SCRIPTS.touch_api_keys.prepare_invoke();
        for (id, at) in uses {
            call.key(self.keys.api_key(id)).arg(*at);
        }
        let mut conn = self.conn.clone();
        let _: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(())
    }
}

/// Decodes an API key hash. Messages name fields, never values.
fn api_key_from_fields(id: &str, fields: &[(&[u8], &[u8])]) -> Result<ApiKeyRecord, StoreError> {
    let find = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| *f == name.as_bytes())
            .map(|(_, v)| *v)
    };
    let required = |name: &str| find(name).ok_or_else(|| corrupt(&format!("an API key has no {name}")));
    let string = |name: &str| required(name).and_then(|raw| utf8(raw, name));
    let optional_number = |name: &str| {
        find(name)
            .map(|raw| utf8(raw, name).and_then(|t| number(&t, name)))
            .transpose()
    };
    let hash = required("hash")?
        .try_into()
        .map_err(|_| corrupt("an API key hash has the wrong length"))?;
    Ok(ApiKeyRecord {
        id: id.to_owned(),
        hash,
        sub: string("sub")?,
        role: string("role")?,
        name: string("name")?,
        created_at: number(&string("created_at")?, "created_at")?,
        expires_at: optional_number("expires_at")?,
        last_used_at: optional_number("last_used_at")?,
    })
}
