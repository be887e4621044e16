//! The state the request path reads: `Runtime`, everything built from one `Config` and
//! swapped as a unit on reload, and `Shared`, what outlives reloads (store, revocations,
//! metrics, the upstream client).

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::auth::admin_token::AdminToken;
use crate::auth::dpop::{DpopVerifier, Nonces};
use crate::auth::issuers::Issuers;
use crate::auth::keys::{KeyError, KeySet};
use crate::auth::{AccessTokens, ApiKeys, Revocations, cookies};
use crate::config::{Config, ConfigErrors, UsersConfig};
use crate::federation::{Federation, FederationError, IssuerError, IssuerKeyring};
use crate::limits::{HashPool, KeyedLimiter, LoginLimiter};
use crate::mfa::Totp;
use crate::pages::Pages;
use crate::proxy::{IdentityHeaders, UpstreamClient, UpstreamPool};
use crate::routes::{Route, RouteTable};
use crate::sessions::service::SessionService;
use crate::sessions::store::Timing;
use crate::sessions::users::{PasswordCheck, Users, UsersFile};
use crate::telemetry::export::Spans;
use crate::telemetry::metrics::{Metrics, UpstreamHealth};
use crate::tls;

/// What is built from one `Config` and swapped as a unit on reload.
pub(crate) struct Runtime {
    pub config: Config,
    pub routes: RouteTable,
    /// New handshakes use the certificate of the runtime current when they start.
    pub tls: TlsAcceptor,
    /// The certificate behind `tls`, for the host names it covers.
    pub certificate: tls::ServerTls,
    pub tokens: AccessTokens,
    pub login_limits: LoginLimiter,
    pub refresh_limits: KeyedLimiter<String>,
    pub passwords: PasswordCheck,
    pub identity_headers: IdentityHeaders,
    /// The OpenID Connect providers; one whose config is unchanged keeps what it learnt.
    pub federation: Federation,
    /// Other issuers' key fetchers (their keys are read through `tokens`).
    pub issuer_keys: IssuerKeyring,
    /// TOTP second factors, when `[mfa]` is configured.
    pub totp: Option<Totp>,
    /// DPoP proofs (SPEC 14); its replay cache carries over reloads.
    pub dpop: DpopVerifier,
    /// What `/admin/*` requires, when `[admin]` names a token (SPEC 15).
    pub admin_token: Option<AdminToken>,
    /// The gateway's pages as `[ui]` brands them.
    pub pages: Pages,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Users(#[from] ConfigErrors),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    #[error("[mfa]: {0}")]
    Mfa(String),
    #[error("[dpop]: cannot derive the nonce key from the signing key")]
    DpopNonceKey,
    #[error("[admin]: {0}")]
    Admin(String),
    #[error("[ui]: {0}")]
    Ui(String),
    #[error("route {route:?}: {error}")]
    UpstreamTls {
        route: String,
        error: crate::tls::TlsError,
    },
}

impl Runtime {
    /// Loads what the config names (certificate, keys, users) and compiles the rest. A
    /// `previous` runtime's users file is kept when its path is unchanged, so its reloader
    /// and its current contents carry over.
    pub(crate) fn build(
        config: Config,
        client: &UpstreamClient,
        health: &UpstreamHealth,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, RuntimeError> {
        let identity_headers = IdentityHeaders::new(&config.headers);
        let certificate = tls::server_config(&config.tls)?;
        let tls = TlsAcceptor::from(certificate.config.clone());
        let issuer_keys = IssuerKeyring::build(&config.issuers, previous.map(|p| &p.issuer_keys))?;
        let issuers = Issuers::new(&config.issuers, issuer_keys.shared_keys());
        let tokens = AccessTokens::new(&config.tokens, KeySet::load(&config.tokens)?).with_issuers(issuers);
        let passwords = match (&config.users, previous.map(|p| &p.passwords)) {
            (UsersConfig::File(path), Some(PasswordCheck::File(users))) if users.path() == path => {
                users.reload_now()?;
                PasswordCheck::File(users.clone())
            }
            (UsersConfig::File(path), _) => {
                PasswordCheck::File(Users::new(path.clone(), UsersFile::load(path)?))
            }
            (UsersConfig::CheckUrl(url), _) => PasswordCheck::Remote {
                url: url.clone(),
                client: client.clone(),
            },
        };
        let federation = Federation::build(&config.providers, previous.map(|p| &p.federation))?;
        let dpop = dpop_verifier(&config, &tokens, previous)?;
        let admin_token = config.admin.token.as_ref().map(AdminToken::load).transpose();
        let limits = &config.limits;
        let totp = config
            .mfa
            .as_ref()
            .map(Totp::load)
            .transpose()
            .map_err(RuntimeError::Mfa)?;
        Ok(Runtime {
            totp,
            dpop,
            admin_token: admin_token.map_err(RuntimeError::Admin)?,
            pages: Pages::load(&config.ui).map_err(RuntimeError::Ui)?,
            federation,
            issuer_keys,
            routes: routes(&config, health, previous)?,
            tls,
            certificate,
            tokens,
            login_limits: LoginLimiter::new(limits.login_per_ip, limits.login_per_user),
            refresh_limits: KeyedLimiter::new(limits.refresh_per_session),
            passwords,
            identity_headers,
            config,
        })
    }

    /// Starts the active health checks of every route's upstream pool (they end with it).
    pub(crate) fn start_health_checks(&self, client: &UpstreamClient) {
        self.routes
            .pools()
            .for_each(|pool| pool.start_health_checks(client));
    }

    /// `Set-Cookie` values that hand a browser a new token pair (SPEC 4's cookie mode).
    pub(crate) fn session_cookies(&self, access_token: &str, refresh_token: &str) -> Vec<HeaderValue> {
        let (names, tokens) = (&self.config.cookies, &self.config.tokens);
        vec![
            cookies::set(&names.access_name, access_token, "/", tokens.access_ttl.as_secs()),
            cookies::set(
                &names.refresh_name,
                refresh_token,
                self.refresh_cookie_path(),
                tokens.refresh_ttl.as_secs(),
            ),
        ]
    }

    /// `Set-Cookie` values that remove both cookies (same names, paths and attributes).
    pub(crate) fn clearing_cookies(&self) -> Vec<HeaderValue> {
        let names = &self.config.cookies;
        vec![
            cookies::clear(&names.access_name, "/"),
            cookies::clear(&names.refresh_name, self.refresh_cookie_path()),
        ]
    }

    /// `/auth`, except with transparent refresh, where proxied paths must receive it too.
    pub(crate) fn refresh_cookie_path(&self) -> &'static str {
        match self.config.cookies.transparent_refresh {
            true => "/",
            false => cookies::REFRESH_PATH,
        }
    }

    /// The durations the session store decides with, at `now`.
    pub(crate) fn timing(&self, now: u64) -> Timing {
        let tokens = &self.config.tokens;
        Timing {
            now,
            now_ms: crate::auth::tokens::unix_now_ms(),
            grace_ms: tokens.refresh_grace.as_millis() as u64,
            idle_ttl: tokens.refresh_idle_ttl.as_secs(),
            revocation_ttl: (tokens.access_ttl + tokens.leeway).as_secs(),
        }
    }

    /// Whether `host` (lower-case, no port) is one this gateway serves: named by a route's
    /// host pattern or by the listener's certificate.
    pub(crate) fn serves_host(&self, host: &str) -> bool {
        self.routes.names_host(host) || self.certificate.names(host)
    }

    pub(crate) fn own_cookies(&self) -> [&str; 2] {
        [
            &self.config.cookies.access_name,
            &self.config.cookies.refresh_name,
        ]
    }
}

/// Proofs checked with `[dpop]`'s window and the tokens' leeway; nonces (when required) keyed
/// from the signing key, so replicas sharing it accept each other's. The replay cache is the
/// `previous` runtime's: a reload must not make a used proof usable again.
fn dpop_verifier(
    config: &Config,
    tokens: &AccessTokens,
    previous: Option<&Runtime>,
) -> Result<DpopVerifier, RuntimeError> {
    let replays = previous.map_or_else(Default::default, |p| p.dpop.replays().clone());
    let verifier = DpopVerifier::new(config.dpop.max_age, config.tokens.leeway, replays);
    if !config.dpop.require_nonce {
        return Ok(verifier);
    }
    let material = tokens.keys().sealing_key.expose();
    let key = crate::auth::sealed::derive_key(material, b"portcullis dpop nonces v1")
        .ok_or(RuntimeError::DpopNonceKey)?;
    Ok(verifier.with_nonces(Nonces::new(&key)))
}

/// The route table, each route with its upstream pool; an endpoint the `previous` runtime's
/// route of the same name had keeps whether it was in rotation.
fn routes(
    config: &Config,
    health: &UpstreamHealth,
    previous: Option<&Runtime>,
) -> Result<RouteTable, RuntimeError> {
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let pool = match &route.upstream {
            Some(upstream) => {
                let before = previous.and_then(|p| p.routes.pool_of(&route.name));
                let pool = UpstreamPool::build(&route.name, upstream, health, before).map_err(|error| {
                    RuntimeError::UpstreamTls {
                        route: route.name.clone(),
                        error,
                    }
                })?;
                Some(Arc::new(pool))
            }
            None => None,
        };
        routes.push(Route::new(route.clone(), pool));
    }
    Ok(RouteTable::new(routes))
}

/// State shared by every connection of the public listener.
pub(crate) struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub client: UpstreamClient,
    pub hash_pool: HashPool,
    /// Outlives reloads: revocations must never be forgotten early.
    pub revocations: Arc<Revocations>,
    /// Every live API key; kept current by the admin API and the change feed.
    pub api_keys: Arc<ApiKeys>,
    pub sessions: SessionService,
    pub metrics: Metrics,
    /// Held for the whole of a reload, so reloads apply in the order they read the files.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Cancelled when the shutdown grace is over: long-lived tunnels close then.
    pub shutdown: CancellationToken,
    /// Where finished spans go, with `[telemetry] otlp_endpoint` (SPEC 15).
    pub spans: Option<Spans>,
}
