//! The request pipeline of the public listener, as named phases over one request:
//!
//! 1. `early_checks`: framing verdict, Host, request target, header size, path
//!    normalisation -> 400 / 431
//! 2. `route`: gateway endpoint or route table -> 404
//! 3. `authenticate`: bearer token or access cookie -> `Identity` (signature, claims) -> 401
//! 4. `authorize`: the route's roles -> 403
//! 5. `upstream_request`: body limit, strip-then-set of identity and forwarding headers -> 413
//! 6. `forward`: pooled client with the route's timeout -> 502 / 504
//! 7. `respond`: response hygiene (hop-by-hop, HSTS, request id) and one access-log line
//!
//! `handle` is the only place where a `GatewayError` becomes a response.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, STRICT_TRANSPORT_SECURITY};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::auth::keys::{KeyError, KeySet};
use crate::auth::tokens::unix_now;
use crate::auth::{self, AccessTokens, Identity, Revocations};
use crate::config::{AuthPolicy, Config, ConfigErrors, UsersConfig};
use crate::endpoints;
use crate::error::GatewayError;
use crate::limits::{HashPool, KeyedLimiter, LoginLimiter};
use crate::proxy::headers::{self, Forwarding, X_REQUEST_ID};
use crate::proxy::{RequestBody, ResponseBody, UpstreamClient};
use crate::routes::{self, Destination, Route, RouteTable, normalize_path};
use crate::server::framing::{FramingVerdicts, FramingViolation};
use crate::sessions::service::SessionService;
use crate::sessions::store::Timing;
use crate::sessions::users::{PasswordCheck, Users, UsersFile};

const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// What is built from one `Config` and swapped as a unit on reload.
pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable,
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
}

impl Runtime {
    /// Loads what the config names (keys, users) and compiles the rest.
    pub fn build(config: Config, client: &UpstreamClient) -> Result<Runtime, RuntimeError> {
        let h = &config.headers;
        let identity_headers = [h.subject.clone(), h.role.clone(), h.session.clone()];
        let tokens = AccessTokens::new(&config.tokens, KeySet::load(&config.tokens)?);
        let passwords = match &config.users {
            UsersConfig::File(path) => PasswordCheck::File(Users::new(path.clone(), UsersFile::load(path)?)),
            UsersConfig::CheckUrl(url) => PasswordCheck::Remote {
                url: url.clone(),
                client: client.clone(),
            },
        };
        let limits = &config.limits;
        Ok(Runtime {
            routes: RouteTable::new(&config.routes),
            tokens,
            login_limits: LoginLimiter::new(limits.login_per_ip, limits.login_per_user),
            refresh_limits: KeyedLimiter::new(limits.refresh_per_session),
            passwords,
            identity_headers,
            config,
        })
    }

    /// The durations the session store decides with, at `now`.
    pub fn timing(&self, now: u64) -> Timing {
        let tokens = &self.config.tokens;
        Timing {
            now,
            grace: tokens.refresh_grace.as_secs(),
            idle_ttl: tokens.refresh_idle_ttl.as_secs(),
            revocation_ttl: (tokens.access_ttl + tokens.leeway).as_secs(),
        }
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
}

/// What the server knows about the connection a request came on.
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// The framing guard's verdicts; `None` on HTTP/2, where h2 itself enforces framing.
    pub framing: Option<Arc<FramingVerdicts>>,
}

/// The request after `early_checks`: where it is going, in canonical form.
struct Target {
    /// Lower-case host without port, for routing.
    host: String,
    /// The authority as the client sent it, for `Host` and `X-Forwarded-Host`.
    authority: Authority,
    path: String,
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
    let mut route_name = "-";
    let result = pipeline(
        &shared,
        &runtime,
        &connection,
        request,
        &request_id,
        &mut route_name,
    );
    let mut response = result.await.unwrap_or_else(|e| e.to_response());
    respond(&mut response, request_id);
    tracing::info!(
        target: "portcullis::access",
        %method,
        route = route_name,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        request_id = ?response.headers().get(X_REQUEST_ID),
        peer = %connection.peer,
    );
    Ok(response)
}

async fn pipeline<'r>(
    shared: &Shared,
    runtime: &'r Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
    request_id: &HeaderValue,
    route_name: &mut &'r str,
) -> Result<Response<ResponseBody>, GatewayError> {
    let target = early_checks(runtime, connection, &request)?;
    let route = match runtime.routes.find(&target.host, &target.path, request.method()) {
        Some(Destination::Upstream(route)) => route,
        Some(Destination::Gateway) => {
            *route_name = "gateway";
            return endpoints::auth::handle(shared, runtime, connection, request, &target.path).await;
        }
        None => return Err(GatewayError::NoRoute),
    };
    *route_name = &route.name;
    let identity = authenticate(runtime, &shared.revocations, route, request.headers())?;
    authorize(route, identity.as_deref())?;
    let upstream = upstream_request(runtime, connection, route, &target, request, request_id, identity)?;
    let response = shared.client.send(upstream, route.timeout).await?;
    Ok(downstream_response(response))
}

// === phase 1: early checks ===

fn early_checks(
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: &Request<Incoming>,
) -> Result<Target, GatewayError> {
    // The framing verdict is taken first so that verdicts stay in step with requests.
    if let Some(framing) = &connection.framing {
        framing.next_request().map_err(GatewayError::AmbiguousFraming)?;
    }
    let headers = request.headers();
    if headers.get_all(CONTENT_LENGTH).iter().count() > 1 {
        return Err(GatewayError::AmbiguousFraming(
            FramingViolation::DuplicateContentLength,
        ));
    }
    let header_bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > runtime.config.server.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    if headers.get_all(AUTHORIZATION).iter().count() > 1 {
        return Err(GatewayError::DuplicateAuthorization);
    }
    if request.method() == Method::CONNECT {
        return Err(GatewayError::BadRequestTarget);
    }
    let authority = request_authority(request)?;
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let path = normalize_path(request.uri().path()).map_err(GatewayError::BadPath)?;
    Ok(Target {
        host,
        authority,
        path,
    })
}

/// The authority from the URI (HTTP/2, absolute-form) or the single `Host` header; they must agree.
fn request_authority(request: &Request<Incoming>) -> Result<Authority, GatewayError> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let host_header = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(GatewayError::BadHost),
        (header, None) => header
            .map(|h| h.to_str().map_err(|_| GatewayError::BadHost))
            .transpose()?,
    };
    // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, even in absolute form.
    if request.version() == Version::HTTP_11 && host_header.is_none() {
        return Err(GatewayError::BadHost);
    }
    let authority = match (request.uri().authority(), host_header) {
        (Some(uri), Some(header)) if !uri.as_str().eq_ignore_ascii_case(header) => {
            return Err(GatewayError::BadHost);
        }
        (Some(uri), _) => uri.clone(),
        (None, Some(header)) => Authority::from_str(header).map_err(|_| GatewayError::BadHost)?,
        (None, None) => return Err(GatewayError::BadHost),
    };
    match authority.as_str().contains('@') || authority.host().is_empty() {
        true => Err(GatewayError::BadHost),
        false => Ok(authority),
    }
}

// === phase 3: authenticate ===

/// A protected route needs a valid credential; a public one forwards a valid credential's
/// identity and treats an invalid one as anonymous.
fn authenticate(
    runtime: &Runtime,
    revocations: &Revocations,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Arc<Identity>>, GatewayError> {
    let identity = auth::identify(
        &runtime.tokens,
        revocations,
        &runtime.config.cookies,
        headers,
        unix_now(),
    );
    match (route.auth, identity) {
        (AuthPolicy::Required, Ok(None)) => Err(GatewayError::AuthenticationRequired),
        (AuthPolicy::Required, result) => result,
        (AuthPolicy::Public, result) => Ok(result.unwrap_or(None)),
    }
}

// === phase 4: authorize ===

fn authorize(route: &Route, identity: Option<&Identity>) -> Result<(), GatewayError> {
    match identity {
        Some(identity) if !route.roles.is_empty() && !route.roles.contains(&identity.role) => {
            Err(GatewayError::InsufficientScope)
        }
        _ => Ok(()),
    }
}

// === phase 5: the upstream request ===

fn upstream_request(
    runtime: &Runtime,
    connection: &ConnectionInfo,
    route: &Route,
    target: &Target,
    request: Request<Incoming>,
    request_id: &HeaderValue,
    identity: Option<Arc<Identity>>,
) -> Result<Request<RequestBody>, GatewayError> {
    let config = &runtime.config;
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.limits.max_body_bytes) {
        return Err(GatewayError::BodyTooLarge);
    }
    let headers = &mut parts.headers;
    headers::strip_hop_by_hop(headers);
    headers::strip_identity(headers, &runtime.identity_headers);
    if !config.headers.forward_authorization {
        headers.remove(AUTHORIZATION);
    }
    headers::strip_own_cookies(headers, &runtime.own_cookies());
    let trusted = &config.server.trusted_proxies;
    let peer_ip = connection.peer.ip().to_canonical();
    let forwarding = Forwarding {
        client_ip: headers::client_ip(connection.peer, headers, trusted),
        peer_ip,
        peer_trusted: trusted.iter().any(|net| net.contains(&peer_ip)),
        host: target.authority.as_str(),
    };
    headers::set_forwarding(headers, &forwarding);
    headers.insert(X_REQUEST_ID, request_id.clone());
    if let Some(identity) = identity {
        auth::set_identity(headers, &runtime.identity_headers, &identity);
    }
    parts.uri = upstream_uri(route, target, parts.uri.query())?;
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(
        parts,
        RequestBody::new(body, config.limits.max_body_bytes),
    ))
}

fn upstream_uri(route: &Route, target: &Target, query: Option<&str>) -> Result<Uri, GatewayError> {
    let path = routes::upstream_path(route, &target.path);
    let path_and_query = match query {
        Some(query) => PathAndQuery::from_str(&format!("{path}?{query}")),
        None => PathAndQuery::from_str(&path),
    }
    .map_err(|_| GatewayError::BadRequestTarget)?;
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(route.upstream.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::BadRequestTarget)
}

// === phase 7: respond ===

fn downstream_response(response: Response<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Either::Left(body))
}

fn respond(response: &mut Response<ResponseBody>, request_id: HeaderValue) {
    let headers = response.headers_mut();
    headers.entry(STRICT_TRANSPORT_SECURITY).or_insert(HSTS);
    headers.insert(X_REQUEST_ID, request_id);
}
