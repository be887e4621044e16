//! Keeping other issuers' keys (SPEC 11) in memory: fetched in the background at start, again
//! every hour, and on a token naming an unknown `kid` (at most once a minute per issuer). The
//! request path only reads them (`auth::issuers`). Until the first fetch succeeds, the
//! issuer's tokens are refused (401): the background retries with backoff, and a token of
//! that issuer asks again, at most once a second, so the gateway recovers as soon as the
//! issuer answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::Deserialize;

use super::http::ProviderHttp;
use super::provider::ProviderError;
use crate::auth::foreign::ForeignKeys;
use crate::auth::issuers::SharedKeys;
use crate::config::IssuerConfig;

/// Keys are fetched again this often, so a key the issuer retired stops being accepted.
const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// After a failed fetch: the first retry, doubled up to the last.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// A token fetches the keys again at most this often: an unknown `kid` ...
const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(60);
/// ... or an issuer never reached.
const NEVER_FETCHED_EVERY: Duration = Duration::from_secs(1);

/// One issuer's key fetcher.
pub(crate) struct IssuerKeys {
    pub config: IssuerConfig,
    http: ProviderHttp,
    keys: SharedKeys,
    /// When a token last made us fetch, by why; held while fetching, so concurrent ones wait.
    asked: tokio::sync::Mutex<Asked>,
    started: AtomicBool,
}

impl IssuerKeys {
    fn new(config: IssuerConfig, http: ProviderHttp) -> IssuerKeys {
        IssuerKeys {
            config,
            http,
            keys: Arc::new(ArcSwapOption::empty()),
            asked: tokio::sync::Mutex::new(Asked::default()),
            started: AtomicBool::new(false),
        }
    }

    pub(crate) fn shared(&self) -> SharedKeys {
        self.keys.clone()
    }

    /// After a token named a `kid` the current keys lack, or found no keys at all: fetch again
    /// unless a token did so less than a minute (a second, without keys) ago. `true` when new
    /// keys are in place (the token may be tried again).
    pub(crate) async fn refetch(&self) -> bool {
        let before = self.keys.load_full();
        let mut asked = self.asked.lock().await;
        let current = self.keys.load_full();
        // Someone else fetched while we waited for the lock.
        if before.as_ref().map(Arc::as_ptr) != current.as_ref().map(Arc::as_ptr) {
            return true;
        }
        let (last, every) = match current {
            Some(_) => (&mut asked.unknown_kid, UNKNOWN_KID_EVERY),
            None => (&mut asked.no_keys, NEVER_FETCHED_EVERY),
        };
        if last.is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> bool {
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(issuer = %self.config.name, keys = keys.len(), "fetched the issuer's keys");
                self.keys.store(Some(Arc::new(keys)));
                true
            }
            Err(error) => {
                tracing::warn!(issuer = %self.config.name, %error, "cannot fetch the issuer's keys");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<ForeignKeys, ProviderError> {
        let jwks_uri = match &self.config.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover().await?,
        };
        let document = self.http.get_json(&jwks_uri).await?;
        Ok(ForeignKeys::from_jwks(&document)?)
    }

    /// The `jwks_uri` of the issuer's discovery document (OpenID Connect Discovery, which
    /// RFC 8414 authorization servers answer too), which must name the issuer exactly.
    async fn discover(&self) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let document = self
            .http
            .get_json(&super::discovery_url(&self.config.issuer))
            .await?;
        let discovery: Discovery =
            serde_json::from_slice(&document).map_err(|e| ProviderError::Discovery(e.to_string()))?;
        if discovery.issuer != self.config.issuer {
            return Err(ProviderError::Discovery(format!(
                "it names issuer {:?}, not the configured {:?}",
                discovery.issuer, self.config.issuer
            )));
        }
        // The same rule as for a configured jwks_uri: TLS unless on this machine.
        let plain_ok = self.config.issuer.starts_with("http://");
        match discovery.jwks_uri.starts_with("https://")
            || plain_ok && discovery.jwks_uri.starts_with("http://")
        {
            true => Ok(discovery.jwks_uri),
            false => Err(ProviderError::Discovery(
                "its jwks_uri is not an https:// URL".into(),
            )),
        }
    }

    /// Fetches until it succeeds (backing off), then every `REFRESH_EVERY`; ends when the
    /// issuer is dropped (a reload removed or changed it).
    async fn keep_fresh(issuer: Weak<IssuerKeys>) {
        let mut wait = RETRY_FIRST;
        loop {
            let Some(this) = issuer.upgrade() else { return };
            let fetched = this.fetch_and_store().await;
            drop(this);
            let (pause, next) = match fetched {
                true => (REFRESH_EVERY, RETRY_FIRST),
                false => (wait, (wait * 2).min(RETRY_MAX)),
            };
            wait = next;
            tokio::time::sleep(pause).await;
        }
    }
}

/// When tokens last made an issuer's keys be fetched: the two reasons have their own pace.
#[derive(Default)]
struct Asked {
    unknown_kid: Option<Instant>,
    no_keys: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
#[error("issuer {name:?}: {reason}")]
pub struct IssuerError {
    name: String,
    reason: String,
}

/// The configured issuers' fetchers, in file order; one whose config did not change keeps its
/// keys across a reload.
#[derive(Default)]
pub(crate) struct IssuerKeyring {
    list: Vec<Arc<IssuerKeys>>,
}

impl IssuerKeyring {
    pub(crate) fn build(
        configs: &[IssuerConfig],
        previous: Option<&IssuerKeyring>,
    ) -> Result<IssuerKeyring, IssuerError> {
        let mut list = Vec::with_capacity(configs.len());
        for config in configs {
            let kept = previous.and_then(|p| p.list.iter().find(|i| i.config == *config));
            let issuer = match kept {
                Some(kept) => kept.clone(),
                None => {
                    let http = ProviderHttp::with_loopback_http(config.ca_file.as_deref()).map_err(|e| {
                        IssuerError {
                            name: config.name.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    Arc::new(IssuerKeys::new(config.clone(), http))
                }
            };
            list.push(issuer);
        }
        Ok(IssuerKeyring { list })
    }

    /// Each issuer's keys, in config order.
    pub(crate) fn shared_keys(&self) -> Vec<SharedKeys> {
        self.list.iter().map(|i| i.shared()).collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<IssuerKeys>> {
        self.list.iter().find(|i| i.config.name == name)
    }

    /// Starts the background fetch of every issuer that has none running yet.
    pub(crate) fn start(&self) {
        for issuer in &self.list {
            if !issuer.started.swap(true, Ordering::SeqCst) {
                tokio::spawn(IssuerKeys::keep_fresh(Arc::downgrade(issuer)));
            }
        }
    }
}
