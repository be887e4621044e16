//! Second factors (SPEC 13): TOTP enrolment with recovery codes, and checking a code for a
//! login or a step-up. A code is accepted once on every replica (through the store's one-use
//! keys); secrets are stored sealed with AES-256-GCM under the `[mfa]` key, bound to their user.
//! `pending` carries a password login to its second step.

pub(crate) mod pending;
pub mod recovery;
pub mod totp;
pub mod webauthn;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::auth::keys::KeyError;
use crate::auth::sealed;
use crate::config::{KeyAlgorithm, MfaConfig, SecretSource};
use crate::secret::Secret;
use crate::sessions::store::{FactorKind, FactorRecord, Store, StoreError, Timing};

/// The `amr` values (RFC 8176) a second factor adds to a session.
pub const OTP_AMR: &str = "otp";
pub const PASSKEY_AMR: &str = "hwk";
/// A used recovery code is remembered this long (it is also struck from the list).
const RECOVERY_MEMORY_SECS: u64 = 10 * 365 * 24 * 3600;
/// The least secret text `[mfa] key_file` must hold.
const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    #[error("TOTP is not enabled on this gateway ([mfa] is not configured)")]
    NotEnabled,
    #[error("no TOTP authenticator is enrolled")]
    NotEnrolled,
    #[error("a TOTP authenticator is enrolled already; delete it first")]
    AlreadyEnrolled,
    #[error("the code is wrong, expired or used already")]
    InvalidCode,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored second factor cannot be read")]
    Unreadable,
}

/// What a user's TOTP factor holds, sealed before it reaches the store.
#[derive(Serialize, Deserialize)]
struct TotpData {
    /// The shared secret, base64url.
    secret: String,
    /// Whether a code proved the user's app holds the secret.
    confirmed: bool,
    /// Hex SHA-256 of each recovery code not used yet.
    recovery: Vec<String>,
}

/// TOTP for one gateway: the key secrets are sealed with, and the name apps show.
pub struct Totp {
    key: Secret<[u8; 32]>,
    issuer: String,
}

/// A new enrolment, for the user's authenticator app.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

impl Totp {
    /// Reads the `[mfa]` key; its text must hold at least 32 bytes of secret.
    pub fn load(config: &MfaConfig) -> Result<Totp, String> {
        let text = config.key.read()?;
        if text.expose().len() < MIN_KEY_BYTES {
            return Err(format!(
                "the [mfa] key must hold at least {MIN_KEY_BYTES} bytes of secret"
            ));
        }
        Ok(Totp {
            // HKDF of the file's text: any 32+ bytes of secret make a proper AES-256 key.
            key: sealed::derive_key(text.expose().as_bytes(), b"portcullis totp secrets v1")
                .ok_or("cannot derive the TOTP sealing key")?,
            issuer: config.issuer.clone(),
        })
    }

    /// Begins (or begins again) an enrolment: a new secret, unconfirmed.
    pub async fn enroll(&self, store: &dyn Store, sub: &str, now: u64) -> Result<Enrolment, MfaError> {
        if self
            .data(store, sub)
            .await?
            .is_some_and(|(_, data)| data.confirmed)
        {
            return Err(MfaError::AlreadyEnrolled);
        }
        let secret = totp::new_secret().ok_or(MfaError::Unreadable)?;
        let data = TotpData {
            secret: URL_SAFE_NO_PAD.encode(secret),
            confirmed: false,
            recovery: Vec::new(),
        };
        self.save(store, sub, &data, now, None).await?;
        Ok(Enrolment {
            secret: totp::encode_secret(&secret),
            otpauth_uri: totp::otpauth_uri(&self.issuer, sub, &secret),
        })
    }

    /// Confirms a pending enrolment with a code from the app; the recovery codes, shown once.
    pub async fn confirm(
        &self,
        store: &dyn Store,
        sub: &str,
        code: &str,
        timing: Timing,
    ) -> Result<Vec<String>, MfaError> {
        let (record, mut data) = self.data(store, sub).await?.ok_or(MfaError::NotEnrolled)?;
        if data.confirmed {
            return Err(MfaError::AlreadyEnrolled);
        }
        self.use_totp_code(store, sub, &data, code, timing).await?;
        let codes = recovery::new_codes().ok_or(MfaError::Unreadable)?;
        data.confirmed = true;
        data.recovery = codes.iter().map(|code| recovery::hash(code)).collect();
        self.save(store, sub, &data, record.created_at, Some(timing.now))
            .await?;
        Ok(codes)
    }

    /// Whether a stored factor (of `factors_of`) is this gateway's confirmed TOTP.
    pub fn confirmed(&self, record: &FactorRecord) -> Result<bool, MfaError> {
        Ok(record.kind == FactorKind::Totp && self.open(record)?.confirmed)
    }

    /// Accepts a current TOTP code or an unused recovery code of `sub`, once.
    pub async fn check(
        &self,
        store: &dyn Store,
        sub: &str,
        code: &str,
        timing: Timing,
    ) -> Result<(), MfaError> {
        let (record, mut data) = self.data(store, sub).await?.ok_or(MfaError::NotEnrolled)?;
        if !data.confirmed {
            return Err(MfaError::NotEnrolled);
        }
        if !recovery::looks_like(code) {
            self.use_totp_code(store, sub, &data, code, timing).await?;
            return self
                .save(store, sub, &data, record.created_at, Some(timing.now))
                .await;
        }
        let hash = recovery::hash(code);
        let Some(index) = data.recovery.iter().position(|h| *h == hash) else {
            return Err(MfaError::InvalidCode);
        };
        // The one-use key decides a race between two gateways; the list is only tidied.
        let keep_until = timing.now + RECOVERY_MEMORY_SECS;
        if !store
            .use_once(&format!("recovery:{sub}:{hash}"), keep_until, timing)
            .await?
        {
            return Err(MfaError::InvalidCode);
        }
        data.recovery.swap_remove(index);
        self.save(store, sub, &data, record.created_at, Some(timing.now))
            .await
    }

    /// Removes the factor after a current code (or a recovery code) proves its holder.
    pub async fn remove(
        &self,
        store: &dyn Store,
        sub: &str,
        code: &str,
        timing: Timing,
    ) -> Result<(), MfaError> {
        self.check(store, sub, code, timing).await?;
        store.delete_factor(sub, &factor_id(sub)).await?;
        Ok(())
    }

    /// Verifies a TOTP code against the secret and spends its time step.
    async fn use_totp_code(
        &self,
        store: &dyn Store,
        sub: &str,
        data: &TotpData,
        code: &str,
        timing: Timing,
    ) -> Result<(), MfaError> {
        let secret = URL_SAFE_NO_PAD
            .decode(&data.secret)
            .map_err(|_| MfaError::Unreadable)?;
        let step = totp::verify(&secret, code, timing.now).ok_or(MfaError::InvalidCode)?;
        // Remembered until the step can no longer be accepted (one step of drift after it).
        let keep_until = (step + 2) * totp::STEP_SECS;
        match store
            .use_once(&format!("totp:{sub}:{step}"), keep_until, timing)
            .await?
        {
            true => Ok(()),
            false => Err(MfaError::InvalidCode),
        }
    }

    async fn data(&self, store: &dyn Store, sub: &str) -> Result<Option<(FactorRecord, TotpData)>, MfaError> {
        match store.factor(&factor_id(sub)).await? {
            Some(record) if record.sub == sub => {
                let data = self.open(&record)?;
                Ok(Some((record, data)))
            }
            Some(_) => Err(MfaError::Unreadable),
            None => Ok(None),
        }
    }

    /// What a stored TOTP factor holds.
    fn open(&self, record: &FactorRecord) -> Result<TotpData, MfaError> {
        let sub = &record.sub;
        if record.kind != FactorKind::Totp || record.id != factor_id(sub) {
            return Err(MfaError::Unreadable);
        }
        let Some(plain) = sealed::open(&self.key, &purpose(sub), &record.data) else {
            // Fails closed (the login cannot finish), and says why: usually a changed key file.
            tracing::error!(%sub, "a stored TOTP secret does not open with the [mfa] key: was the key replaced?");
            return Err(MfaError::Unreadable);
        };
        serde_json::from_slice(&plain).map_err(|_| MfaError::Unreadable)
    }

    async fn save(
        &self,
        store: &dyn Store,
        sub: &str,
        data: &TotpData,
        created_at: u64,
        used: Option<u64>,
    ) -> Result<(), MfaError> {
        let plain = serde_json::to_vec(data).map_err(|_| MfaError::Unreadable)?;
        let record = FactorRecord {
            id: factor_id(sub),
            sub: sub.to_string(),
            kind: FactorKind::Totp,
            label: String::new(),
            data: sealed::seal(&self.key, &purpose(sub), &plain).ok_or(MfaError::Unreadable)?,
            created_at,
            last_used_at: used,
        };
        match store.put_factor(&record).await? {
            true => Ok(()),
            false => Err(MfaError::Unreadable),
        }
    }
}

/// Writes the `[mfa]` key file when `generate_if_missing` asks for it (development).
pub fn generate_missing_key(config: Option<&MfaConfig>) -> Result<(), KeyError> {
    let Some(MfaConfig {
        key: SecretSource::File(path),
        generate_if_missing: true,
        ..
    }) = config
    else {
        return Ok(());
    };
    if path.exists() {
        return Ok(());
    }
    crate::auth::keys::generate(KeyAlgorithm::Hs256, path)?;
    tracing::warn!(path = %path.display(), "GENERATED A NEW [mfa] KEY (development only)");
    Ok(())
}

/// One TOTP factor per user.
fn factor_id(sub: &str) -> String {
    format!("totp:{sub}")
}

/// Binds a sealed secret to its user: moved to another user's record, it does not open.
fn purpose(sub: &str) -> Vec<u8> {
    format!("portcullis totp v1 {sub}").into_bytes()
}
