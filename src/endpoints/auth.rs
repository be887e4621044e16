//! The gateway's own public endpoints: `/auth/login`, `/auth/me` and `/.well-known/jwks.json`;
//! the session endpoints are in `sessions`.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, PRAGMA};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::json;
use crate::auth::{self, tokens::unix_now};
use crate::error::GatewayError;
use crate::gateway::{ConnectionInfo, Runtime, Shared};
use crate::proxy::ResponseBody;
use crate::proxy::headers::client_ip;
use crate::secret::Secret;
use crate::sessions::users::LoginError;

/// Login bodies are tiny; anything bigger is refused before it is read in full.
const MAX_LOGIN_BODY: usize = 8 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: Secret<String>,
    mode: Option<String>,
}

pub async fn handle(
    shared: &Shared,
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
    path: &str,
) -> Result<Response<ResponseBody>, GatewayError> {
    match (path, request.method()) {
        ("/auth/login", &Method::POST) => login(shared, runtime, connection, request).await,
        ("/auth/me", &Method::GET) => me(shared, runtime, &request),
        ("/.well-known/jwks.json", &Method::GET) => Ok(jwks(runtime)),
        ("/auth/login" | "/auth/me" | "/.well-known/jwks.json", _) => Err(GatewayError::MethodNotAllowed),
        _ => super::sessions::handle(shared, runtime, connection, request, path).await,
    }
}

async fn login(
    shared: &Shared,
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (ip, user_agent) = client_meta(runtime, connection, request.headers());
    let login: LoginRequest = read_json(request).await?;
    if !matches!(login.mode.as_deref(), None | Some("token")) {
        return Err(GatewayError::BadLoginRequest(
            "mode must be \"token\" (cookie mode is not available yet)",
        ));
    }
    runtime
        .login_limits
        .check(ip, &login.username)
        .map_err(|wait| GatewayError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        })?;
    let password = login.password.expose();
    let who = match runtime
        .passwords
        .check(&shared.hash_pool, &login.username, password)
        .await
    {
        Ok(who) => who,
        Err(error) => {
            tracing::info!(target: "portcullis::audit", event = "login_failed", user = %login.username, %ip, reason = %error);
            return Err(match error {
                LoginError::InvalidCredentials => GatewayError::InvalidCredentials,
                LoginError::Overloaded => GatewayError::LoginOverloaded,
                LoginError::CheckerUnavailable => GatewayError::CheckerUnavailable,
            });
        }
    };
    let now = unix_now();
    let lifetime = runtime.config.tokens.refresh_ttl.as_secs();
    let session = shared
        .sessions
        .begin(&who.sub, &who.role, ip.to_string(), user_agent, now, lifetime)
        .await;
    let session = session.map_err(|_| GatewayError::StoreUnavailable)?;
    let access = runtime
        .tokens
        .issue(&who.sub, &who.role, &session.sid, now)
        .map_err(|_| GatewayError::Internal)?;
    tracing::info!(target: "portcullis::audit", event = "login_ok", sub = %who.sub, sid = %session.sid, %ip);
    Ok(token_pair(runtime, &access.token, &session.refresh_token))
}

/// SPEC 4's token pair, never cached.
pub(super) fn token_pair(
    runtime: &Runtime,
    access_token: &str,
    refresh_token: &str,
) -> Response<ResponseBody> {
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": runtime.tokens.ttl(),
        "refresh_token": refresh_token,
        "refresh_expires_in": runtime.config.tokens.refresh_ttl.as_secs(),
    });
    no_store(json(StatusCode::OK, body))
}

/// The client address (SPEC 6) and a bounded, printable copy of its User-Agent.
pub(super) fn client_meta(
    runtime: &Runtime,
    connection: &ConnectionInfo,
    headers: &http::HeaderMap,
) -> (IpAddr, Option<String>) {
    let ip = client_ip(connection.peer, headers, &runtime.config.server.trusted_proxies);
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().filter(|c| !c.is_control()).take(256).collect());
    (ip, user_agent)
}

fn me(
    shared: &Shared,
    runtime: &Runtime,
    request: &Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let identity = auth::identify(
        &runtime.tokens,
        &shared.revocations,
        &runtime.config.cookies,
        request.headers(),
        unix_now(),
    )?
    .ok_or(GatewayError::AuthenticationRequired)?;
    let body =
        json!({ "sub": identity.sub, "role": identity.role, "sid": identity.sid, "exp": identity.exp });
    Ok(no_store(json(StatusCode::OK, body)))
}

fn jwks(runtime: &Runtime) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(runtime.tokens.keys().jwks().into()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn no_store(response: Response<http_body_util::Full<Bytes>>) -> Response<ResponseBody> {
    let mut response = response.map(Either::Right);
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Reads a small JSON body; the wrong type, too large or malformed bodies are refused.
pub(super) async fn read_json<T: for<'de> Deserialize<'de>>(
    request: Request<Incoming>,
) -> Result<T, GatewayError> {
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(GatewayError::UnsupportedMediaType);
    }
    let body = match Limited::new(request.into_body(), MAX_LOGIN_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(GatewayError::BodyTooLarge),
        Err(_) => return Err(GatewayError::BadLoginRequest("the request body was cut short")),
    };
    serde_json::from_slice(&body)
        .map_err(|_| GatewayError::BadLoginRequest("the body must be JSON with username and password"))
}
