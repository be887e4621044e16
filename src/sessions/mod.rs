//! Who may log in and, with the sessions issue, the sessions they hold.

#[cfg(test)]
mod contract;
pub mod redis;
pub mod refresh_token;
pub mod service;
pub mod sqlite;
pub mod store;
pub mod users;

use std::sync::Arc;

use crate::config::{RedisPassword, StoreConfig};
use crate::secret::Secret;
use store::{Store, StoreError};

/// Every key the gateway writes in Redis starts with this.
const REDIS_PREFIX: &str = "portcullis:";

/// The Redis password from its variable or file (trimmed), never from the config itself.
fn redis_password(source: &RedisPassword) -> Result<Secret<String>, StoreError> {
    let read = match source {
        RedisPassword::Env(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        }
        RedisPassword::File(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
    };
    let password = read.map_err(|reason| StoreError::Unavailable(format!("the Redis password: {reason}")))?;
    Ok(Secret::new(password.trim().to_string()))
}

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
            let password = match password {
                None => None,
                Some(source) => Some(redis_password(source)?),
            };
            let password = password.as_ref().map(|p| p.expose().as_str());
            Ok(Arc::new(
                redis::RedisStore::connect(url, password, REDIS_PREFIX).await?,
            ))
        }
    }
}
