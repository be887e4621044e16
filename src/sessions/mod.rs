//! Who may log in and, with the sessions issue, the sessions they hold.

mod api_keys;
#[cfg(test)]
mod contract;
pub mod redis;
pub mod refresh_token;
pub mod service;
pub mod sqlite;
pub mod store;
pub mod users;

use std::sync::Arc;

use crate::config::StoreConfig;
use store::{Store, StoreError};

/// Every key the gateway writes in Redis starts with this.
const REDIS_PREFIX: &str = "portcullis:";

/// Opens the configured store (blocking file work happens off the async workers).
pub async fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Sqlite { path } => {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path)).await;
            let store = opened.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            Ok(Arc::new(store))
        }
        StoreConfig::Redis { url, password } => {
            let password =
                match password {
                    None => None,
                    Some(source) => Some(source.read().map_err(|reason| {
                        StoreError::Unavailable(format!("the Redis password: {reason}"))
                    })?),
                };
            let password = password.as_ref().map(|p| p.expose().as_str());
            Ok(Arc::new(
                redis::RedisStore::connect(url, password, REDIS_PREFIX).await?,
            ))
        }
    }
}
