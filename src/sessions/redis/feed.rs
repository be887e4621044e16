//! The revocation feed: a Redis stream every gateway reads on its own connection, resuming
//! from the last id it saw and reloading everything when that id was trimmed away.

use std::time::Duration;

use redis::Value;

use super::*;

impl RedisStore {
    /// Deletes feed entries older than `retention` and returns how many went.
    pub(crate) async fn trim_feed(&self, retention: Duration) -> Result<u64, StoreError> {
        let mut call = SCRIPTS.trim_feed.prepare_invoke();
        call.key(&self.keys.feed)
            .key(&self.keys.trimmed)
            .arg(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
        let mut conn = self.conn.clone();
        let count: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        integer(&count)
    }

    pub(super) async fn last_feed_id(&self) -> Result<String, StoreError> {
        let mut call = SCRIPTS.feed_position.prepare_invoke();
        call.key(&self.keys.feed);
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let id = text(&answer)?;
        if parse_id(&id).is_none() {
            return Err(corrupt("the revocation feed has an invalid last id"));
        }
        Ok(id)
    }

    /// Whether a reader at `position` must reload everything: it is not a position, entries
    /// after it were trimmed, or the feed was reset so that its ids do not continue from it.
    pub(super) async fn missed_entries(&self, position: &str) -> Result<bool, StoreError> {
        if parse_id(position).is_none() {
            return Ok(true);
        }
        let mut call = SCRIPTS.feed_check.prepare_invoke();
        call.key(&self.keys.feed).key(&self.keys.trimmed).arg(position);
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        Ok(integer(&answer)? != 0)
    }

    /// Every revocation in force (API keys to be loaded again), and the feed position to
    /// follow from after them.
    pub(super) async fn full_state(&self, now: u64) -> Result<(FeedNews, String), StoreError> {
        let position = self.last_feed_id().await?;
        let news = FeedNews {
            revocations: self.all_revocations(now).await?,
            api_keys: Vec::new(),
            complete: true,
        };
        Ok((news, position))
    }

    pub(super) async fn follow(
        &self,
        position: &str,
        wait: Duration,
        now: u64,
    ) -> Result<(FeedNews, String), StoreError> {
        if self.missed_entries(position).await? {
            return self.full_state(now).await;
        }
        let Some(read) = self.read_feed(position, wait).await? else {
            return Ok((FeedNews::default(), position.to_owned()));
        };
        // Checked again after the read: a trim in between may have taken entries it skipped.
        if self.missed_entries(position).await? {
            return self.full_state(now).await;
        }
        let Ok((mut news, last)) = parse_feed(&read) else {
            // The hash is the record; the feed only says when to look. An entry that does not
            // decode must not stop the feed, so everything is reloaded instead.
            tracing::warn!("the redis revocation feed holds an entry that does not decode; reloading");
            return self.full_state(now).await;
        };
        let position = last.unwrap_or_else(|| position.to_owned());
        news.revocations.retain(|r| r.keep_until > now);
        Ok((news, position))
    }

    /// `XREAD` on the feed's own connection: `None` when nothing arrived within `wait`.
    pub(super) async fn read_feed(
        &self,
        position: &str,
        wait: Duration,
    ) -> Result<Option<Value>, StoreError> {
        let mut slot = self.feed.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(redis_error)?
            }
        };
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let mut xread = redis::cmd("XREAD");
        // BLOCK 0 would wait forever: no wait means a plain read.
        if wait_ms > 0 {
            xread.arg("BLOCK").arg(wait_ms);
        }
        xread
            .arg("COUNT")
            .arg(FEED_BATCH)
            .arg("STREAMS")
            .arg(&self.keys.feed)
            .arg(position);
        let deadline = wait.saturating_add(FEED_SLACK);
        let answer = match tokio::time::timeout(deadline, xread.query_async::<Value>(&mut conn)).await {
            Ok(Ok(answer)) => answer,
            // The connection is dropped with its error; the next read opens another.
            Ok(Err(e)) => return Err(redis_error(e)),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "redis did not answer a revocation feed read in time".into(),
                ));
            }
        };
        *slot = Some(conn);
        Ok(match answer {
            Value::Nil => None,
            answer => Some(answer),
        })
    }
}
