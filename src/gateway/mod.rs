//! The request pipeline of the public listener, as named phases over one request:
//!
//! 1. `early_checks`: framing verdict, Host, request target, header size, path
//!    normalisation -> 400 / 431
//! 2. `route`: gateway endpoint or route table -> 404
//! 3. `authenticate`: bearer token or access cookie -> `Identity` (signature, claims) -> 401
//! 4. `authorize`: same-origin rule for cookie-authenticated unsafe requests, roles -> 403
//! 5. `upstream_request`: body limit, strip-then-set of identity and forwarding headers -> 413
//! 6. `forward`: pooled client with the route's timeout -> 502 / 504
//! 7. `respond`: response hygiene (hop-by-hop, HSTS, request id) and one access-log line
//!
//! `handle` is the only place where a `GatewayError` becomes a response.

mod early;
mod upstream;

use crate::caller::{attach_cookies, authenticate, authorize};
use early::early_checks;
use upstream::{downstream_response, respond, upstream_request};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::UPGRADE;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::auth::TokenError;
use crate::auth::keys::{KeyError, KeySet};
use crate::auth::{AccessTokens, Identity, Revocations, cookies};
use crate::config::{Config, ConfigErrors, UsersConfig};
use crate::endpoints;
use crate::error::GatewayError;
use crate::limits::{HashPool, KeyedLimiter, LoginLimiter};
use crate::proxy::headers::{self, PeerHeaders, X_REQUEST_ID};
use crate::proxy::upgrade::{self, TunnelGuard};
use crate::proxy::{ResponseBody, UpstreamClient};
use crate::routes::{Destination, RouteTable};
use crate::server::framing::FramingVerdicts;
use crate::sessions::service::SessionService;
use crate::sessions::store::Timing;
use crate::sessions::users::{PasswordCheck, Users, UsersFile};
use crate::telemetry::metrics::Metrics;
use crate::tls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// What is built from one `Config` and swapped as a unit on reload.
pub struct Runtime {
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
    identity_headers: [HeaderName; 3],
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Users(#[from] ConfigErrors),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl Runtime {
    /// Loads what the config names (certificate, keys, users) and compiles the rest. A
    /// `previous` runtime's users file is kept when its path is unchanged, so its reloader
    /// and its current contents carry over.
    pub fn build(
        config: Config,
        client: &UpstreamClient,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, RuntimeError> {
        let h = &config.headers;
        let identity_headers = [h.subject.clone(), h.role.clone(), h.session.clone()];
        let certificate = tls::server_config(&config.tls)?;
        let tls = TlsAcceptor::from(certificate.config.clone());
        let tokens = AccessTokens::new(&config.tokens, KeySet::load(&config.tokens)?);
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
        let limits = &config.limits;
        Ok(Runtime {
            routes: RouteTable::new(&config.routes),
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

    /// `Set-Cookie` values that hand a browser a new token pair (SPEC 4's cookie mode).
    pub fn session_cookies(&self, access_token: &str, refresh_token: &str) -> Vec<HeaderValue> {
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
    pub fn clearing_cookies(&self) -> Vec<HeaderValue> {
        let names = &self.config.cookies;
        vec![
            cookies::clear(&names.access_name, "/"),
            cookies::clear(&names.refresh_name, self.refresh_cookie_path()),
        ]
    }

    /// `/auth`, except with transparent refresh, where proxied paths must receive it too.
    pub fn refresh_cookie_path(&self) -> &'static str {
        match self.config.cookies.transparent_refresh {
            true => "/",
            false => cookies::REFRESH_PATH,
        }
    }

    /// The durations the session store decides with, at `now`.
    pub fn timing(&self, now: u64) -> Timing {
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
    pub fn serves_host(&self, host: &str) -> bool {
        self.routes.names_host(host) || self.certificate.names(host)
    }

    fn own_cookies(&self) -> [&str; 2] {
        [
            &self.config.cookies.access_name,
            &self.config.cookies.refresh_name,
        ]
    }
}

/// State shared by every connection of the public listener.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub client: UpstreamClient,
    pub hash_pool: HashPool,
    /// Outlives reloads: revocations must never be forgotten early.
    pub revocations: Arc<Revocations>,
    pub sessions: SessionService,
    pub metrics: Metrics,
    /// Held for the whole of a reload, so reloads apply in the order they read the files.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Cancelled when the shutdown grace is over: long-lived tunnels close then.
    pub shutdown: CancellationToken,
}

/// What the server knows about the connection a request came on.
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// The framing guard's verdicts; `None` on HTTP/2, where h2 itself enforces framing.
    pub framing: Option<Arc<FramingVerdicts>>,
    pub peer_headers: PeerHeaders,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, framing: Option<Arc<FramingVerdicts>>) -> ConnectionInfo {
        ConnectionInfo {
            peer,
            framing,
            peer_headers: PeerHeaders::new(peer.ip().to_canonical()),
        }
    }
}

/// The request after `early_checks`: where it is going, in canonical form.
pub struct Target {
    /// Lower-case host without port, for routing.
    pub host: String,
    /// The authority as the client sent it, for `Host` and `X-Forwarded-Host`.
    pub authority: Authority,
    pub path: String,
}

/// The service behind the public listener; every error is already a response.
pub async fn handle(
    shared: Arc<Shared>,
    connection: Arc<ConnectionInfo>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let runtime = shared.runtime.load_full();
    let request_id = headers::request_id(request.headers());
    let method = request.method().clone();
    let trusted = &runtime.config.server.trusted_proxies;
    let client = headers::client_ip(connection.peer, request.headers(), trusted);
    let asks_upgrade = asks_upgrade(&request);
    let mut outcome = Outcome {
        route: "-",
        set_cookies: Vec::new(),
        cors: None,
        sub: None,
    };
    let result = pipeline(
        &shared,
        &runtime,
        &connection,
        request,
        &request_id,
        client,
        &mut outcome,
    );
    let mut response = result.await.unwrap_or_else(|error| {
        count_failure(&shared.metrics, outcome.route, &error);
        error.to_response()
    });
    respond(&mut response, request_id);
    if let Some(framing) = &connection.framing
        && asks_upgrade
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        framing.upgrade_refused();
    }
    // Even when the upstream failed: a browser must not keep a refresh token we retired.
    attach_cookies(response.headers_mut(), outcome.set_cookies);
    if let Some(origin) = outcome.cors {
        endpoints::cors::allow(response.headers_mut(), origin);
    }
    let latency = started.elapsed();
    shared
        .metrics
        .request(outcome.route, response.status().as_u16(), latency.as_secs_f64());
    tracing::info!(
        target: "portcullis::access",
        %method,
        route = outcome.route,
        status = response.status().as_u16(),
        latency_us = latency.as_micros() as u64,
        request_id = response.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-"),
        client = %client,
        peer = %connection.peer,
        sub = outcome.sub.as_ref().map_or("-", |identity| identity.sub.as_str()),
    );
    Ok(response)
}

async fn pipeline<'r>(
    shared: &Shared,
    runtime: &'r Runtime,
    connection: &ConnectionInfo,
    mut request: Request<Incoming>,
    request_id: &HeaderValue,
    client: std::net::IpAddr,
    outcome: &mut Outcome<'r>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let target = early_checks(runtime, connection, &request)?;
    let route = match runtime.routes.find(&target.host, &target.path, request.method()) {
        Some(Destination::Upstream(route)) => route,
        Some(Destination::Gateway) => {
            outcome.route = "gateway";
            outcome.cors =
                endpoints::cors::allowed_origin(request.headers(), &runtime.config.cookies.allowed_origins);
            // Boxed for the same reason as the transparent refresh: a large, rare future.
            return Box::pin(endpoints::auth::handle(
                shared, runtime, connection, request, &target,
            ))
            .await;
        }
        Some(Destination::WrongMethod { route, allow }) => {
            outcome.route = &route.name;
            return Err(GatewayError::MethodNotAllowed { allow: allow.clone() });
        }
        None => return Err(GatewayError::NoRoute),
    };
    outcome.route = &route.name;
    let mut caller = authenticate(shared, runtime, route, &request, client).await?;
    outcome.set_cookies = std::mem::take(&mut caller.set_cookies);
    outcome.sub = caller.identity.clone();
    authorize(runtime, route, &caller, &request, &target)?;
    // Only authenticated, authorised requests to a WebSocket route may ask for an upgrade.
    let on_upgrade =
        (route.websocket && upgrade::is_websocket(&request)).then(|| hyper::upgrade::on(&mut request));
    let identity = caller.identity;
    let mut upstream = upstream_request(
        runtime,
        connection,
        route,
        &target,
        request,
        request_id,
        identity.clone(),
    )?;
    if on_upgrade.is_some() {
        upgrade::ask_for_upgrade(upstream.headers_mut());
    }
    let response = shared.client.send(upstream, route.timeout).await?;
    match on_upgrade {
        Some(downstream) if response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
            if let Some(framing) = &connection.framing {
                framing.stop_scanning();
            }
            let guard = TunnelGuard {
                revocations: shared.revocations.clone(),
                identity,
                shutdown: shared.shutdown.clone(),
            };
            Ok(upgrade::tunnel(response, downstream, guard))
        }
        _ => Ok(downstream_response(runtime, response)),
    }
}

/// Whether this is an HTTP/1.1 request that asks to switch protocols, as hyper decides it: the
/// framing guard holds what follows it until told whether the switch happened.
fn asks_upgrade(request: &Request<Incoming>) -> bool {
    request.version() == Version::HTTP_11 && request.headers().contains_key(UPGRADE)
}

/// Counts the failures SPEC 8 names: authentication by reason, upstream errors by kind.
fn count_failure(metrics: &Metrics, route: &str, error: &GatewayError) {
    let auth = |reason| metrics.auth_failure(reason);
    match error {
        GatewayError::AuthenticationRequired | GatewayError::LoginRequired { .. } => auth("missing"),
        GatewayError::InvalidToken(TokenError::Expired) => auth("expired"),
        GatewayError::InvalidToken(TokenError::Revoked) => auth("revoked"),
        GatewayError::InvalidToken(_) => auth("invalid_token"),
        GatewayError::InsufficientScope => auth("insufficient_scope"),
        GatewayError::CrossSiteRequest => auth("cross_site"),
        GatewayError::UpstreamUnreachable => metrics.upstream_error(route, "connect"),
        GatewayError::UpstreamTimeout => metrics.upstream_error(route, "timeout"),
        GatewayError::UpstreamFailed => metrics.upstream_error(route, "failed"),
        _ => {}
    }
}

/// What the pipeline learns that the response and the access log need, even on failure.
struct Outcome<'r> {
    route: &'r str,
    /// From a transparent refresh.
    set_cookies: Vec<HeaderValue>,
    /// An allowed origin calling a gateway endpoint: the response says it may read it.
    cors: Option<HeaderValue>,
    /// The authenticated caller, for the access log.
    sub: Option<Arc<Identity>>,
}
