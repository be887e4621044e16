//! API keys as the admin API sees them (SPEC 11): create (the key is shown once), list,
//! delete; every change reaches this gateway's memory at once and the others' through the
//! change feed. The uses that requests record are written to the store here, off the request
//! path.

use tokio_util::sync::CancellationToken;

use super::service::SessionService;
use super::store::{ApiKeyRecord, RevocationKind, StoreError, Timing, api_key_sid};
use crate::auth::api_keys::{self, NewApiKey};

impl SessionService {
    /// Stores a new key and makes it usable here at once; returns it with the key itself,
    /// which is never stored or shown again.
    pub async fn create_api_key(
        &self,
        new: &NewApiKey<'_>,
        now: u64,
    ) -> Result<(ApiKeyRecord, String), StoreError> {
        let (record, key) = api_keys::generate(new, now);
        self.store.create_api_key(&record).await?;
        self.api_keys
            .insert(&record)
            .map_err(|e| StoreError::Corrupt(format!("a new API key is not usable: {e}")))?;
        Ok((record, key))
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store.api_keys().await
    }

    /// Deletes a key; it is refused here at once, and on other gateways when the feed brings
    /// its revocation. `false` when there was no such key.
    pub async fn delete_api_key(&self, id: &str, timing: Timing) -> Result<bool, StoreError> {
        let deleted = self.store.delete_api_key(id, timing).await?;
        // Forgotten here even when the store did not know it: another gateway may have deleted it.
        self.api_keys.remove(id);
        if deleted {
            self.remember(RevocationKind::Session, &api_key_sid(id), timing);
        }
        Ok(deleted)
    }

    /// Looks a key up again after the feed named it: present means created, absent deleted.
    /// A damaged record is refused (the key stops working here) without stopping the feed.
    pub(super) async fn reload_api_key(&self, id: &str) -> Result<(), StoreError> {
        let record = match self.store.api_key(id).await {
            Ok(record) => record,
            Err(StoreError::Corrupt(error)) => {
                tracing::warn!(%id, %error, "an API key in the store does not decode; it is refused");
                None
            }
            Err(unavailable) => return Err(unavailable),
        };
        let usable = record.map(|record| self.api_keys.insert(&record));
        if let Some(Err(error)) = &usable {
            tracing::warn!(%id, %error, "an API key in the store is not usable; it is refused");
        }
        if !matches!(usable, Some(Ok(()))) {
            self.api_keys.remove(id);
        }
        Ok(())
    }

    /// Writes keys' `last_used_at` as requests report uses (at most once a minute per key),
    /// until `stop`. A failed write is logged and retried with the next batch.
    pub async fn write_api_key_uses(&self, stop: CancellationToken) {
        let mut pending: Vec<(String, u64)> = Vec::new();
        loop {
            let due = tokio::select! {
                _ = stop.cancelled() => return,
                due = self.api_keys.uses_to_write() => due,
            };
            pending.extend(due);
            match self.store.touch_api_keys(&pending).await {
                Ok(()) => pending.clear(),
                Err(error) => tracing::warn!(%error, "cannot record API key uses; will retry"),
            }
        }
    }
}
