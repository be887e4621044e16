//! The complete in-memory revocation state consulted on every request (SPEC 5.4).
//!
//! Not a cache: every entry stays until every token it covers has expired (`keep_until`), and
//! nothing is evicted earlier under any load. The store keeps the same entries durably and the
//! state is rebuilt from it at start. Memory is bounded by the revocation rate times
//! `access_ttl + leeway`; one entry costs about 100 bytes (a 32-character key, the times and
//! the map's slot), so 100,000 live revocations take roughly 10 MB.

use dashmap::DashMap;
use tokio::sync::watch;

use super::tokens::CredentialKind;
use super::{Identity, TokenError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// Every access token with this `sid`.
    Session,
    /// Every access token of this `sub` issued before `not_before`.
    User,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: RevocationKind,
    /// The `sid` or the `sub`.
    pub key: String,
    pub not_before: u64,
    /// After this the entry covers no unexpired token and may be forgotten.
    pub keep_until: u64,
}

/// `keep_until` per revoked session; `(not_before, keep_until)` per revoked user.
pub struct Revocations {
    sessions: DashMap<Box<str>, u64>,
    users: DashMap<Box<str>, (u64, u64)>,
    /// Bumped on every new entry, so long-lived connections (WebSocket tunnels) can re-check.
    changes: watch::Sender<u64>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            sessions: DashMap::new(),
            users: DashMap::new(),
            changes: watch::Sender::new(0),
        }
    }
}

impl Revocations {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver that wakes whenever a revocation is added.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Adds an entry, keeping the later times when one exists.
    pub fn apply(&self, revocation: &Revocation) {
        let key: Box<str> = revocation.key.as_str().into();
        match revocation.kind {
            RevocationKind::Session => {
                let mut keep = self.sessions.entry(key).or_insert(0);
                *keep = (*keep).max(revocation.keep_until);
            }
            RevocationKind::User => {
                let mut entry = self.users.entry(key).or_insert((0, 0));
                entry.0 = entry.0.max(revocation.not_before);
                entry.1 = entry.1.max(revocation.keep_until);
            }
        }
        self.changes.send_modify(|epoch| *epoch += 1);
    }

    /// The hot-path check: memory only, two hash lookups. An API key outlives any user
    /// revocation's memory (`keep_until`), so only its own revocation applies to it.
    pub fn check(&self, identity: &Identity) -> Result<(), TokenError> {
        if self.sessions.contains_key(identity.sid.as_str()) {
            return Err(TokenError::Revoked);
        }
        if identity.kind == CredentialKind::ApiKey {
            return Ok(());
        }
        match self.users.get(identity.sub.as_str()) {
            Some(entry) if identity.iat < entry.0 => Err(TokenError::Revoked),
            _ => Ok(()),
        }
    }

    /// Forgets entries whose tokens have all expired.
    pub fn purge(&self, now: u64) {
        self.sessions.retain(|_, keep_until| *keep_until > now);
        self.users.retain(|_, (_, keep_until)| *keep_until > now);
    }

    /// Entries held: (sessions, users).
    pub fn len(&self) -> (usize, usize) {
        (self.sessions.len(), self.users.len())
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.users.is_empty()
    }
}
