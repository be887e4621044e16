//! One identity provider: its config and client secret, and what the gateway learnt from it
//! (the discovery document and the signing keys). Learnt at start, refreshed daily, the keys
//! again when a token names an unknown `kid` (at most once a minute). A provider that cannot
//! be reached never stops the gateway: its logins answer 503 and it is asked again, at most
//! once a second, by the next login.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::http::{FetchError, ProviderHttp};
use crate::auth::foreign::{ForeignKeys, JwksError, accepted_algorithms};
use crate::config::{ClientAuth, ProviderConfig};
use crate::secret::Secret;

/// What was learnt is asked again after this.
const REFRESH_EVERY: Duration = Duration::from_secs(24 * 3600);
/// A provider never reached is asked again by a login at most this often.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(1);
/// A stale document, or the keys on an unknown `kid`, are asked again at most this often.
const RETRY_KNOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProviderError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the discovery document is not usable: {0}")]
    Discovery(String),
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error("the provider has not been reached yet")]
    NotYetReached,
}

/// The parts of the discovery document the gateway uses (OpenID Connect Discovery 1.0).
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// What the gateway learnt from the provider; replaced as a whole.
#[derive(Clone)]
pub(crate) struct Known {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The asymmetric algorithms the provider signs id_tokens with.
    pub algorithms: Vec<Algorithm>,
    /// The configured method, unless discovery says the provider only takes the other.
    pub client_auth: ClientAuth,
    pub keys: Arc<ForeignKeys>,
    jwks_uri: String,
    learnt: Instant,
    keys_learnt: Instant,
}

#[derive(Default)]
struct Attempts {
    last: Option<Instant>,
    last_keys: Option<Instant>,
}

pub(crate) struct Provider {
    pub config: ProviderConfig,
    pub secret: Secret<String>,
    pub http: ProviderHttp,
    known: ArcSwapOption<Known>,
    /// Held while asking the provider: concurrent logins wait for one answer.
    asking: tokio::sync::Mutex<Attempts>,
}

impl Provider {
    pub(crate) fn new(config: ProviderConfig, secret: Secret<String>, http: ProviderHttp) -> Provider {
        Provider {
            config,
            secret,
            http,
            known: ArcSwapOption::empty(),
            asking: tokio::sync::Mutex::new(Attempts::default()),
        }
    }

    /// What is known about the provider, asking it first when it was never reached or the
    /// knowledge is a day old (a stale answer is still used while the provider is down).
    pub(crate) async fn known(&self) -> Result<Arc<Known>, ProviderError> {
        let fresh = |k: &Arc<Known>| k.learnt.elapsed() < REFRESH_EVERY;
        if let Some(known) = self.known.load_full().filter(fresh) {
            return Ok(known);
        }
        let mut attempts = self.asking.lock().await;
        let stale = self.known.load_full();
        if let Some(known) = stale.clone().filter(fresh) {
            return Ok(known);
        }
        let wait = if stale.is_some() {
            RETRY_KNOWN
        } else {
            RETRY_UNREACHABLE
        };
        if attempts.last.is_some_and(|at| at.elapsed() < wait) {
            return stale.ok_or(ProviderError::NotYetReached);
        }
        attempts.last = Some(Instant::now());
        match self.learn().await {
            Ok(known) => {
                let known = Arc::new(known);
                self.known.store(Some(known.clone()));
                tracing::info!(provider = %self.config.name, keys = known.keys.len(), "learnt the provider's discovery document and keys");
                Ok(known)
            }
            Err(error) => {
                tracing::warn!(provider = %self.config.name, %error, "cannot learn the provider's discovery document or keys");
                stale.ok_or(error)
            }
        }
    }

    /// After a token named a `kid` that `seen` lacks: the keys asked again, unless that was
    /// done less than a minute ago. `None` when nothing newer is to be had.
    pub(crate) async fn newer_keys(&self, seen: &Arc<Known>) -> Option<Arc<Known>> {
        let mut attempts = self.asking.lock().await;
        let current = self.known.load_full()?;
        if current.keys_learnt != seen.keys_learnt {
            return Some(current);
        }
        if attempts.last_keys.is_some_and(|at| at.elapsed() < RETRY_KNOWN) {
            return None;
        }
        attempts.last_keys = Some(Instant::now());
        match self.fetch_keys(&current.jwks_uri).await {
            Ok(keys) => {
                let known = Arc::new(Known {
                    keys: Arc::new(keys),
                    keys_learnt: Instant::now(),
                    ..(*current).clone()
                });
                self.known.store(Some(known.clone()));
                Some(known)
            }
            Err(error) => {
                tracing::warn!(provider = %self.config.name, %error, "cannot fetch the provider's keys again");
                None
            }
        }
    }

    /// Asks the provider now, at start (so the first login does not wait).
    pub(crate) async fn prefetch(&self) {
        let _ = self.known().await;
    }

    async fn learn(&self) -> Result<Known, ProviderError> {
        let document = self
            .http
            .get_json(&super::discovery_url(&self.config.issuer))
            .await?;
        let discovery: Discovery =
            serde_json::from_slice(&document).map_err(|e| ProviderError::Discovery(e.to_string()))?;
        self.check(&discovery)?;
        let algorithms = accepted_algorithms(&discovery.id_token_signing_alg_values_supported);
        if algorithms.is_empty() {
            return Err(ProviderError::Discovery(
                "it advertises no asymmetric id_token signing algorithm".into(),
            ));
        }
        let keys = self.fetch_keys(&discovery.jwks_uri).await?;
        let now = Instant::now();
        Ok(Known {
            client_auth: client_auth(
                self.config.client_auth,
                discovery.token_endpoint_auth_methods_supported,
            ),
            authorization_endpoint: discovery.authorization_endpoint,
            token_endpoint: discovery.token_endpoint,
            algorithms,
            keys: Arc::new(keys),
            jwks_uri: discovery.jwks_uri,
            learnt: now,
            keys_learnt: now,
        })
    }

    /// OpenID Connect Discovery 4.3: the document must name the configured issuer exactly,
    /// and every endpoint is reached over TLS.
    fn check(&self, discovery: &Discovery) -> Result<(), ProviderError> {
        if discovery.issuer != self.config.issuer {
            return Err(ProviderError::Discovery(format!(
                "it names issuer {:?}, not the configured {:?}",
                discovery.issuer, self.config.issuer
            )));
        }
        let endpoints = [
            &discovery.authorization_endpoint,
            &discovery.token_endpoint,
            &discovery.jwks_uri,
        ];
        match endpoints.iter().all(|url| url.starts_with("https://")) {
            true => Ok(()),
            false => Err(ProviderError::Discovery(
                "an endpoint is not an https:// URL".into(),
            )),
        }
    }

    async fn fetch_keys(&self, jwks_uri: &str) -> Result<ForeignKeys, ProviderError> {
        let document = self.http.get_json(jwks_uri).await?;
        Ok(ForeignKeys::from_jwks(&document)?)
    }
}

/// `client_secret_basic` unless the provider lists its methods and takes only `client_secret_post`.
fn client_auth(configured: ClientAuth, supported: Option<Vec<String>>) -> ClientAuth {
    let Some(supported) = supported else {
        return configured;
    };
    let takes = |method: &str| supported.iter().any(|m| m == method);
    match configured {
        ClientAuth::Basic if !takes("client_secret_basic") && takes("client_secret_post") => ClientAuth::Post,
        ClientAuth::Post if !takes("client_secret_post") && takes("client_secret_basic") => ClientAuth::Basic,
        configured => configured,
    }
}
