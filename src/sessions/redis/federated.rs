//! What single sign-on adds to the Redis store: the provider's index of sessions (for
//! back-channel logout) and one-use keys.
//!
//! Keys, under the prefix `{p}`: `{p}idp:{idp}:sid:{provider sid}` and
//! `{p}idp:{idp}:sub:{provider sub}`, sets of the sids begun through that provider session or
//! subject, living as long as their longest session; `{p}once:{key}`, one-use keys that
//! expire when they may be forgotten. Provider names are `[a-z0-9-]+`, so a key cannot be
//! read as another provider's.

use super::*;
use crate::sessions::store::{IdpLink, Origin};

impl Keys {
    /// The index set of a provider's session or subject.
    fn idp_link(&self, idp: &str, link: IdpLink<'_>) -> String {
        match link {
            IdpLink::Sid(sid) => format!("{}idp:{idp}:sid:{sid}", self.prefix),
            IdpLink::Sub(sub) => format!("{}idp:{idp}:sub:{sub}", self.prefix),
        }
    }

    /// The index sets a new session joins (none for a password login).
    pub(super) fn idp_links(&self, origin: &Origin) -> Vec<String> {
        let sid = origin.idp_sid.as_deref().map(IdpLink::Sid);
        let sub = origin.idp_sub.as_deref().map(IdpLink::Sub);
        [sid, sub]
            .into_iter()
            .flatten()
            .map(|link| self.idp_link(&origin.idp, link))
            .collect()
    }
}

/// The session hash fields that record `origin` (and its key binding).
pub(super) fn origin_fields(origin: &Origin) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("idp", origin.idp.clone()),
        ("auth_time", origin.auth_time.to_string()),
        ("amr", origin.amr.join(" ")),
    ];
    fields.extend(origin.idp_sid.clone().map(|sid| ("idp_sid", sid)));
    fields.extend(origin.idp_sub.clone().map(|sub| ("idp_sub", sub)));
    fields.extend(origin.jkt.clone().map(|jkt| ("jkt", jkt)));
    fields
}

impl RedisStore {
    pub(super) async fn revoke_linked(
        &self,
        idp: &str,
        link: IdpLink<'_>,
        timing: Timing,
    ) -> Result<Vec<String>, StoreError> {
        let (field, value) = match link {
            IdpLink::Sid(sid) => ("idp_sid", sid),
            IdpLink::Sub(sub) => ("idp_sub", sub),
        };
        let mut call = SCRIPTS.revoke_federated.prepare_invoke();
        call.key(self.keys.idp_link(idp, link))
            .key(&self.keys.revocations)
            .key(&self.keys.feed)
            .arg(&self.keys.prefix)
            .arg(idp)
            .arg(field)
            .arg(value)
            .arg(timing.now)
            .arg(timing.idle_ttl)
            .arg(timing.revocation_ttl)
            .arg(keep_until(timing));
        let mut conn = self.conn.clone();
        let answer: Value = call.invoke_async(&mut conn).await.map_err(redis_error)?;
        let mut revoked = array(&answer)?
            .iter()
            .map(text)
            .collect::<Result<Vec<String>, StoreError>>()?;
        revoked.sort();
        Ok(revoked)
    }

    /// `SET NX` with a relative lifetime, like every lifetime here (the gateway's clock).
    pub(super) async fn use_key_once(
        &self,
        key: &str,
        keep_until: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let seconds = keep_until.saturating_sub(now).max(1);
        let mut conn = self.conn.clone();
        let answer: Value = redis::cmd("SET")
            .arg(format!("{}once:{key}", self.keys.prefix))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(seconds)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(!matches!(answer, Value::Nil))
    }
}
