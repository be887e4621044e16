//! API keys (SPEC 11): long-lived credentials for services and scripts, created through the
//! admin API. A key is `pcl_<id>_<secret>`; only the SHA-256 of its secret is stored (the secret has 256
//! random bits, so a slow hash would add nothing). Every live key is held in memory, so a
//! request with a key costs one map lookup and one hash, with no store I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::constant_time;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use tokio::sync::Notify;

use super::tokens::{Claimed, CredentialKind, Identity, TokenError, random_id};

/// Every key starts with this, so a key found in a log or a repository is recognisable.
pub const PREFIX: &str = "pcl_";
/// The `idp` of an API key's caller.
const API_KEY_IDP: &str = "api_key";
const ID_CHARS: usize = 32;
const SECRET_BYTES: usize = 32;
/// 32 bytes in unpadded base64url.
const SECRET_CHARS: usize = 43;
/// `last_used_at` is written at most this often per key.
const LAST_USED_EVERY: u64 = 60;

/// The session id of an API key's caller (`X-Auth-Session`), under which its revocation is
/// recorded.
pub fn api_key_sid(id: &str) -> String {
    format!("api_key:{id}")
}

/// An API key as the store keeps it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    /// SHA-256 of the whole key.
    pub hash: [u8; 32],
    pub sub: String,
    pub role: String,
    pub name: String,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub last_used_at: Option<u64>,
}

/// What the admin asks for when creating a key.
pub struct NewApiKey<'a> {
    pub sub: &'a str,
    pub role: &'a str,
    pub name: &'a str,
    pub expires_in: Option<u64>,
}

/// A fresh key: the record to store, and the key to show once.
pub fn generate(new: &NewApiKey<'_>, now: u64) -> (ApiKeyRecord, String) {
    let id = random_id();
    let mut secret = [0u8; SECRET_BYTES];
    // Fails only without an OS entropy source, which no supported system lacks.
    let _ = aws_lc_rs::rand::fill(&mut secret);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let key = format!("{PREFIX}{id}_{secret}");
    let record = ApiKeyRecord {
        hash: hash(&secret),
        id,
        sub: new.sub.to_string(),
        role: new.role.to_string(),
        name: new.name.to_string(),
        created_at: now,
        expires_at: new.expires_in.map(|secs| now.saturating_add(secs)),
        last_used_at: None,
    };
    (record, key)
}

/// SHA-256 of the secret part: the id only finds the key, so the secret alone is hashed (one
/// SHA-256 block instead of two).
fn hash(secret: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
    out
}

/// The id and the secret of a well-formed key, without checking anything else.
fn parts(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    let id_ok = id.len() == ID_CHARS && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let secret_ok = secret.len() == SECRET_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// A live key as requests see it.
struct LiveKey {
    hash: [u8; 32],
    expires_at: Option<u64>,
    identity: Arc<Identity>,
    /// Unix seconds of the last use seen here, and of the last one handed to the store.
    last_used: AtomicU64,
    last_written: AtomicU64,
}

/// Every live API key, by id: loaded at start, changed by the admin API on this gateway and
/// by the change feed for the others.
#[derive(Default)]
pub struct ApiKeys {
    /// foldhash: the map only holds ids the gateway generated, so nobody can fill it with
    /// colliding ones, and it is quicker than SipHash.
    keys: DashMap<Box<str>, Arc<LiveKey>, foldhash::fast::RandomState>,
    /// Woken when a key's `last_used_at` is due to be written.
    used: Notify,
}

impl ApiKeys {
    pub fn new() -> ApiKeys {
        ApiKeys::default()
    }

    /// Adds or replaces a key; a record that cannot become header values is refused.
    pub fn insert(&self, record: &ApiKeyRecord) -> Result<(), TokenError> {
        let identity = Identity::new(Claimed {
            kind: CredentialKind::ApiKey,
            sub: record.sub.clone(),
            role: record.role.clone(),
            sid: api_key_sid(&record.id),
            jti: record.id.clone(),
            iat: record.created_at,
            exp: record.expires_at.unwrap_or(u64::MAX),
            idp: API_KEY_IDP.to_string(),
            auth_time: record.created_at,
            amr: Vec::new(),
            jkt: None,
        })?;
        let last_used = record.last_used_at.unwrap_or(0);
        let live = LiveKey {
            hash: record.hash,
            expires_at: record.expires_at,
            identity: Arc::new(identity),
            last_used: AtomicU64::new(last_used),
            last_written: AtomicU64::new(last_used),
        };
        self.keys.insert(record.id.as_str().into(), Arc::new(live));
        Ok(())
    }

    pub fn remove(&self, id: &str) {
        self.keys.remove(id);
    }

    /// Replaces every key (at start, and when the change feed was missed).
    pub fn replace_all(&self, records: &[ApiKeyRecord]) {
        let listed: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        self.keys.retain(|id, _| listed.contains(&**id));
        for record in records {
            if let Err(error) = self.insert(record) {
                tracing::warn!(id = %record.id, %error, "an API key in the store is not usable; skipped");
            }
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller a key names: memory only. An unknown id and a wrong secret are the same
    /// error, and the hashes are compared in constant time.
    pub fn verify(&self, key: &str, now: u64) -> Result<Arc<Identity>, TokenError> {
        let (id, secret) = parts(key).ok_or(TokenError::ApiKeyInvalid)?;
        let live = self.keys.get(id).map(|entry| entry.clone());
        let live = live.ok_or(TokenError::ApiKeyInvalid)?;
        if constant_time::verify_slices_are_equal(&hash(secret), &live.hash).is_err() {
            return Err(TokenError::ApiKeyInvalid);
        }
        if live.expires_at.is_some_and(|at| now >= at) {
            return Err(TokenError::ApiKeyExpired);
        }
        self.note_use(&live, now);
        Ok(live.identity.clone())
    }

    /// At most one store write per key per `LAST_USED_EVERY`: only the first use after that
    /// wakes the writer, off the request path.
    fn note_use(&self, live: &LiveKey, now: u64) {
        let seen = live.last_used.load(Ordering::Relaxed);
        let due = now >= seen.saturating_add(LAST_USED_EVERY);
        if due
            && live
                .last_used
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.notify_one();
        }
    }

    /// Waits until some key's use is due to be written, then takes every such `(id, at)`.
    pub async fn uses_to_write(&self) -> Vec<(String, u64)> {
        self.used.notified().await;
        let mut due = Vec::new();
        for entry in self.keys.iter() {
            let used = entry.last_used.load(Ordering::Relaxed);
            if entry.last_written.swap(used, Ordering::Relaxed) < used {
                due.push((entry.key().to_string(), used));
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::revocation::{Revocation, RevocationKind};

    const T0: u64 = 1_700_000_000;

    fn new_key(expires_in: Option<u64>) -> (ApiKeyRecord, String) {
        let new = NewApiKey {
            sub: "ci:deploy",
            role: "deployer",
            name: "deploy",
            expires_in,
        };
        generate(&new, T0)
    }

    #[test]
    fn a_key_has_the_documented_shape_and_only_its_hash_is_kept() {
        let (record, key) = new_key(None);
        let rest = key.strip_prefix("pcl_").expect("the prefix");
        let (id, secret) = rest.split_once('_').expect("id and secret");
        assert_eq!((id, id.len(), secret.len()), (record.id.as_str(), 32, 43));
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).expect("base64url").len(), 32);
        assert_eq!(parts(&key), Some((id, secret)));
        assert_eq!(record.hash, hash(secret));
        assert_ne!(new_key(None).1, key, "every key is new");
    }

    #[test]
    fn only_the_exact_key_of_a_live_id_verifies() {
        let keys = ApiKeys::new();
        let (record, key) = new_key(Some(60));
        keys.insert(&record).expect("insert");
        let identity = keys.verify(&key, T0).expect("the key verifies");
        assert_eq!(
            (
                identity.sub.as_str(),
                identity.role.as_str(),
                identity.kind.clone()
            ),
            ("ci:deploy", "deployer", CredentialKind::ApiKey)
        );
        assert_eq!(identity.sid, format!("api_key:{}", record.id));
        let (_, other) = new_key(None);
        let wrong_secret = format!(
            "{}_{}",
            &key[..PREFIX.len() + ID_CHARS],
            &other[other.len() - SECRET_CHARS..]
        );
        let refused = [
            wrong_secret.as_str(),
            other.as_str(),
            &key[..key.len() - 1],
            "pcl_",
            "pcl_zz_zz",
        ];
        for bad in refused {
            assert_eq!(
                keys.verify(bad, T0).map(drop),
                Err(TokenError::ApiKeyInvalid),
                "{bad}"
            );
        }
        assert_eq!(
            keys.verify(&key, T0 + 60).map(drop),
            Err(TokenError::ApiKeyExpired)
        );
        keys.remove(&record.id);
        assert_eq!(keys.verify(&key, T0).map(drop), Err(TokenError::ApiKeyInvalid));
    }

    #[test]
    fn only_its_own_revocation_stops_a_key_not_one_of_its_user() {
        let keys = ApiKeys::new();
        let (record, key) = new_key(None);
        keys.insert(&record).expect("insert");
        let identity = keys.verify(&key, T0).expect("verifies");
        let revocations = super::super::Revocations::new();
        let revoke = |kind, key: String| Revocation {
            kind,
            key,
            not_before: T0 + 10,
            keep_until: T0 + 1000,
        };
        revocations.apply(&revoke(RevocationKind::User, "ci:deploy".into()));
        assert_eq!(
            revocations.check(&identity),
            Ok(()),
            "a user revocation ends with access_ttl"
        );
        revocations.apply(&revoke(RevocationKind::Session, identity.sid.clone()));
        assert_eq!(revocations.check(&identity), Err(TokenError::Revoked));
    }

    #[tokio::test]
    async fn a_use_is_handed_to_the_writer_at_most_once_a_minute() {
        let keys = ApiKeys::new();
        let (record, key) = new_key(None);
        keys.insert(&record).expect("insert");
        keys.verify(&key, T0).expect("verifies");
        assert_eq!(keys.uses_to_write().await, [(record.id.clone(), T0)]);
        keys.verify(&key, T0 + LAST_USED_EVERY - 1).expect("verifies");
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), keys.uses_to_write()).await;
        assert!(quiet.is_err(), "a use within the minute wakes nobody");
        keys.verify(&key, T0 + LAST_USED_EVERY).expect("verifies");
        assert_eq!(
            keys.uses_to_write().await,
            [(record.id.clone(), T0 + LAST_USED_EVERY)]
        );
    }
}
