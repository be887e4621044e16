//! Sessions as the endpoints see them: begin at login, rotate on refresh (with reuse
//! detection), end on logout; every revocation reaches the in-memory state at once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::refresh_token::{self, new_seed};
use super::store::{
    Advance, FeedNews, IdpLink, NewSession, Origin, Revocation, RevocationKind, SessionRecord, Store,
    StoreError, Timing,
};
use crate::auth::tokens::{Grant, unix_now};
use crate::auth::{ApiKeys, Revocations};

/// How long one read of the revocation feed waits for news; a new entry returns at once.
const FEED_WAIT: Duration = Duration::from_secs(1);
/// Retries stay frequent: after an outage, revocations made elsewhere must be enforced within
/// a second of the store coming back (SPEC 9), and one try is cheap.
const FEED_BACKOFF_MIN: Duration = Duration::from_millis(50);
const FEED_BACKOFF_MAX: Duration = Duration::from_millis(250);
use crate::secret::Secret;

/// Whether the user behind a session may still refresh it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Listed and enabled, with the role new tokens should carry.
    Active { role: String },
    /// Disabled or removed from the users file.
    Barred,
    /// The gateway cannot tell (a remote password checker): the session's role stays.
    Unknown,
}

/// A session that login just began.
pub struct Started {
    pub sid: String,
    pub refresh_token: String,
}

/// A refresh that succeeded.
pub struct Refreshed {
    pub sid: String,
    pub sub: String,
    pub role: String,
    pub refresh_token: String,
    /// How the session began: its access tokens keep saying so.
    pub origin: Origin,
}

impl Refreshed {
    /// What the session's next access token says.
    pub fn grant(&self) -> Grant<'_> {
        Grant {
            sub: &self.sub,
            role: &self.role,
            sid: &self.sid,
            idp: &self.origin.idp,
            auth_time: self.origin.auth_time,
            amr: &self.origin.amr,
            jkt: self.origin.jkt.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh token is not valid")]
    Invalid,
    #[error("the session has ended")]
    Ended,
    #[error("a retired refresh token was presented again; the session is revoked")]
    Reuse { sid: String, sub: String },
    #[error("the user may no longer refresh")]
    Barred,
    /// The session is bound to a DPoP key the request did not prove, or to none while the
    /// request proved one (SPEC 14). Nothing is rotated.
    #[error("the session's DPoP key binding does not match the request's proof")]
    WrongKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct SessionService {
    pub(super) store: Arc<dyn Store>,
    pub(super) revocations: Arc<Revocations>,
    pub(super) api_keys: Arc<ApiKeys>,
}

/// Who a new session is for, and where they logged in from (shown in the session list).
pub struct Holder<'a> {
    pub sub: &'a str,
    pub role: &'a str,
    pub ip: String,
    pub user_agent: Option<String>,
    pub origin: &'a Origin,
}

impl SessionService {
    pub fn new(store: Arc<dyn Store>, revocations: Arc<Revocations>, api_keys: Arc<ApiKeys>) -> Self {
        SessionService {
            store,
            revocations,
            api_keys,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Rebuilds the in-memory revocations and API keys from the store (at start); returns how
    /// many revocations, and the feed position to follow other gateways' changes from.
    pub async fn load_state(&self, now: u64) -> Result<(usize, String), StoreError> {
        // Position first: whatever lands in between is seen twice, never missed.
        let position = self.store.feed_position().await?;
        let revocations = self.store.revocations(now).await?;
        for revocation in &revocations {
            self.revocations.apply(revocation);
        }
        self.api_keys.replace_all(&self.store.api_keys().await?);
        Ok((revocations.len(), position))
    }

    /// Applies the revocations and API key changes other gateways record, until `stop`. A
    /// store that cannot be reached is retried with backoff, resuming from the last position
    /// read, so nothing revoked meanwhile is missed.
    pub async fn follow_changes(&self, mut position: String, stop: CancellationToken) {
        let mut backoff = FEED_BACKOFF_MIN;
        let mut failing = false;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = self.store.changes_since(&position, FEED_WAIT, unix_now()) => next,
            };
            let next = match next {
                Ok((news, next)) => self.apply(news).await.map(|()| next),
                Err(e) => Err(e),
            };
            match next {
                Ok(next) => {
                    position = next;
                    backoff = FEED_BACKOFF_MIN;
                    if std::mem::take(&mut failing) {
                        tracing::info!("the revocation feed is reachable again");
                    }
                }
                Err(e) => {
                    // Said once per outage, not on every retry.
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "the revocation feed is unreachable; retrying");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(FEED_BACKOFF_MAX);
                }
            }
        }
    }

    /// Revocations first: a key deleted elsewhere is refused even if looking it up fails.
    async fn apply(&self, news: FeedNews) -> Result<(), StoreError> {
        for revocation in &news.revocations {
            self.revocations.apply(revocation);
        }
        if news.complete {
            self.api_keys.replace_all(&self.store.api_keys().await?);
        }
        for id in &news.api_keys {
            self.reload_api_key(id).await?;
        }
        Ok(())
    }

    /// A new session with a fresh id and seed (never one the client sent), and its first token.
    pub async fn begin(
        &self,
        holder: Holder<'_>,
        created_at: u64,
        lifetime: u64,
    ) -> Result<Started, StoreError> {
        let sid = crate::auth::tokens::random_id();
        let seed = new_seed();
        let refresh_token = refresh_token::derive(&seed, &sid, 0)
            .ok_or_else(|| StoreError::Corrupt("a generated session id is not hex".into()))?;
        let session = NewSession {
            sid: sid.clone(),
            sub: holder.sub.to_string(),
            role: holder.role.to_string(),
            seed: Secret::new(seed),
            created_at,
            expires_at: created_at.saturating_add(lifetime),
            user_agent: holder.user_agent,
            ip: holder.ip,
            origin: holder.origin.clone(),
        };
        self.store.create(session).await?;
        Ok(Started { sid, refresh_token })
    }

    /// SPEC 5.3: rotate the live token, re-issue the live one for the token retired last
    /// within the grace, and revoke the session on any other reuse.
    /// `proven_key`: the thumbprint of the DPoP key the request proved, checked against the
    /// session's binding before anything changes, so a stolen refresh token without its key
    /// neither rotates the session nor trips reuse detection.
    pub async fn refresh(
        &self,
        token: &str,
        timing: Timing,
        standing: impl Fn(&SessionRecord) -> Standing,
        proven_key: Option<&str>,
    ) -> Result<Refreshed, RefreshError> {
        let presented = refresh_token::parse(token).ok_or(RefreshError::Invalid)?;
        let session = self
            .store
            .get(&presented.sid)
            .await?
            .ok_or(RefreshError::Invalid)?;
        if !presented.is_signed_by(session.seed.expose()) {
            return Err(RefreshError::Invalid);
        }
        if session.origin.jkt.as_deref() != proven_key {
            return Err(RefreshError::WrongKey);
        }
        let role = match standing(&session) {
            Standing::Barred => return Err(RefreshError::Barred),
            Standing::Active { role } => role,
            Standing::Unknown => session.role.clone(),
        };
        let generation = match self
            .store
            .advance(&session.sid, presented.generation, timing)
            .await?
        {
            Advance::Rotated { generation } | Advance::Replayed { generation } => generation,
            Advance::Ended => return Err(RefreshError::Ended),
            Advance::Reuse => {
                self.remember(RevocationKind::Session, &session.sid, timing);
                return Err(RefreshError::Reuse {
                    sid: session.sid,
                    sub: session.sub,
                });
            }
        };
        let refresh_token = refresh_token::derive(session.seed.expose(), &session.sid, generation)
            .ok_or_else(|| StoreError::Corrupt("a stored session id is not hex".into()))?;
        Ok(Refreshed {
            sid: session.sid,
            sub: session.sub,
            role,
            refresh_token,
            origin: session.origin,
        })
    }

    /// The session id a refresh token names, if the token is genuine (for logout).
    pub async fn session_of_token(&self, token: &str) -> Result<Option<SessionRecord>, StoreError> {
        let Some(presented) = refresh_token::parse(token) else {
            return Ok(None);
        };
        let session = self.store.get(&presented.sid).await?;
        Ok(session.filter(|s| presented.is_signed_by(s.seed.expose())))
    }

    /// Ends one session and its access tokens; `None` when it had already ended.
    pub async fn end(&self, sid: &str, timing: Timing) -> Result<Option<SessionRecord>, StoreError> {
        let ended = self.store.revoke_session(sid, timing).await?;
        if ended.is_some() {
            self.remember(RevocationKind::Session, sid, timing);
        }
        Ok(ended)
    }

    /// Ends every session of `sub` and every access token issued to it until now.
    pub async fn end_all(&self, sub: &str, timing: Timing) -> Result<Vec<String>, StoreError> {
        let sids = self.store.revoke_user(sub, timing).await?;
        for sid in &sids {
            self.remember(RevocationKind::Session, sid, timing);
        }
        self.remember(RevocationKind::User, sub, timing);
        Ok(sids)
    }

    /// Ends the sessions a provider's back-channel logout names, and their access tokens.
    pub async fn end_federated(
        &self,
        idp: &str,
        link: IdpLink<'_>,
        timing: Timing,
    ) -> Result<Vec<String>, StoreError> {
        let sids = self.store.revoke_federated(idp, link, timing).await?;
        for sid in &sids {
            self.remember(RevocationKind::Session, sid, timing);
        }
        Ok(sids)
    }

    pub async fn list(&self, sub: &str, timing: Timing) -> Result<Vec<SessionRecord>, StoreError> {
        self.store.sessions_of(sub, timing).await
    }

    pub async fn get(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.store.get(sid).await
    }

    /// Drops ended sessions and forgotten revocations, in the store and in memory.
    pub async fn purge(&self, timing: Timing) -> Result<u64, StoreError> {
        self.revocations.purge(timing.now);
        self.store.purge(timing).await
    }

    pub(super) fn remember(&self, kind: RevocationKind, key: &str, timing: Timing) {
        self.revocations.apply(&Revocation {
            kind,
            key: key.to_string(),
            not_before: timing.now,
            keep_until: timing.now.saturating_add(timing.revocation_ttl),
        });
    }
}
