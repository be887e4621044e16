//! Reading the revocation state and purging what has ended.

use super::*;

impl RedisStore {
    pub(super) async fn all_revocations(&self, now: u64) -> Result<Vec<Revocation>, StoreError> {
        let mut all = HashMap::new();
        self.scan_revocations(|field, value| {
            all.insert(field, value);
        })
        .await?;
        let mut revocations = Vec::new();
        for (field, value) in all {
            let revocation = parse_revocation(&field, &value)?;
            if revocation.keep_until > now {
                revocations.push(revocation);
            }
        }
        revocations.sort_by(|a, b| {
            kind_name(a.kind)
                .cmp(kind_name(b.kind))
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(revocations)
    }

    /// Walks the revocations hash with `HSCAN`, which does not block Redis however large the
    /// hash is; a field may be seen more than once.
    pub(super) async fn scan_revocations(
        &self,
        mut each: impl FnMut(String, String),
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut cursor = String::from("0");
        loop {
            let answer: Value = redis::cmd("HSCAN")
                .arg(&self.keys.revocations)
                .arg(&cursor)
                .arg("COUNT")
                .arg(FEED_BATCH)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            let (next, items) = scan_reply(&answer)?;
            for (field, value) in pairs(items)? {
                each(utf8(field, "revocation field")?, utf8(value, "revocation value")?);
            }
            if next == "0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    pub(super) async fn purge_all(&self, timing: Timing) -> Result<u64, StoreError> {
        let mut deleted = self.purge_sessions(timing).await?;
        deleted += self.purge_revocations(timing.now).await?;
        self.trim_feed(FEED_RETENTION).await?;
        Ok(deleted)
    }

    /// Sessions that ended more than `revocation_ttl` ago go (until then they explain the
    /// revocation that covers their tokens), like in the SQLite store.
    pub(super) async fn purge_sessions(&self, timing: Timing) -> Result<u64, StoreError> {
        let ended_by = timing.now.checked_sub(timing.revocation_ttl);
        let idle_by = ended_by.and_then(|t| t.checked_sub(timing.idle_ttl));
        let show = |t: Option<u64>| t.map(|t| t.to_string()).unwrap_or_default();
        let mut conn = self.conn.clone();
        let mut cursor = String::from("0");
        let mut deleted = 0;
        loop {
            let answer: Value = redis::cmd("SSCAN")
                .arg(&self.keys.users)
                .arg(&cursor)
                .arg("COUNT")
                .arg(PURGE_BATCH)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            let (next, items) = scan_reply(&answer)?;
            let subs = array(items)?;
            if !subs.is_empty() {
                let mut call = SCRIPTS.purge_users.prepare_invoke();
                call.key(&self.keys.users)
                    .arg(&self.keys.prefix)
                    .arg(show(ended_by))
                    .arg(show(idle_by));
                for sub in subs {
                    call.arg(bytes(sub).ok_or_else(|| corrupt("a user id is not a string"))?);
                }
                let count: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
                deleted += integer(&count)?;
            }
            if next == "0" {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    pub(super) async fn purge_revocations(&self, now: u64) -> Result<u64, StoreError> {
        let mut expired = Vec::new();
        let mut damaged = false;
        self.scan_revocations(|field, value| match parse_revocation(&field, &value) {
            Ok(r) if r.keep_until <= now => expired.push(field),
            Ok(_) => {}
            Err(_) => damaged = true,
        })
        .await?;
        if damaged {
            tracing::warn!("the redis revocations hash holds entries that do not decode; they are kept");
        }
        expired.sort_unstable();
        expired.dedup();
        let mut deleted = 0;
        let mut conn = self.conn.clone();
        for batch in expired.chunks(PURGE_BATCH) {
            let mut call = SCRIPTS.purge_revocations.prepare_invoke();
            call.key(&self.keys.revocations).arg(now);
            for field in batch {
                call.arg(field);
            }
            let count: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
            deleted += integer(&count)?;
        }
        Ok(deleted)
    }
}
