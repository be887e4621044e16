//! Who may log in and, with the sessions issue, the sessions they hold.

pub mod refresh_token;
pub mod service;
pub mod sqlite;
pub mod store;
pub mod users;

use std::sync::Arc;

use crate::config::StoreConfig;
use store::{Store, StoreError};

/// Opens the configured store (blocking file work happens off the async workers).
pub async fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Sqlite { path } => {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path)).await;
            let store = opened.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            Ok(Arc::new(store))
        }
        StoreConfig::Redis { .. } => Err(StoreError::Unavailable(
            "the redis backend is not available in this build yet".into(),
        )),
    }
}
