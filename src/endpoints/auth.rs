//! The gateway's own public endpoints: `/auth/login`, `/auth/me` and `/.well-known/jwks.json`.
//! (refresh, logout and sessions arrive with the sessions issue.)

use bytes::Bytes;
use http::header::{CONTENT_TYPE, PRAGMA};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::json;
use crate::auth::{self, tokens::random_id, tokens::unix_now};
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
        ("/auth/me", &Method::GET) => me(runtime, &request),
        ("/.well-known/jwks.json", &Method::GET) => Ok(jwks(runtime)),
        ("/auth/login" | "/auth/me" | "/.well-known/jwks.json", _) => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NoRoute),
    }
}

async fn login(
    shared: &Shared,
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let ip = client_ip(
        connection.peer,
        request.headers(),
        &runtime.config.server.trusted_proxies,
    );
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
    let session = random_id();
    let tokens = &runtime.tokens;
    let access = tokens
        .issue(&who.sub, &who.role, &session, unix_now())
        .map_err(|_| GatewayError::Internal)?;
    tracing::info!(target: "portcullis::audit", event = "login_ok", sub = %who.sub, sid = %session, %ip);
    let body = json!({
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": tokens.ttl(),
        // Until the sessions issue lands this is an opaque placeholder that nothing accepts.
        "refresh_token": format!("{}{}", random_id(), random_id()),
        "refresh_expires_in": runtime.config.tokens.refresh_ttl.as_secs(),
    });
    Ok(no_store(json(StatusCode::OK, body)))
}

fn me(runtime: &Runtime, request: &Request<Incoming>) -> Result<Response<ResponseBody>, GatewayError> {
    let identity = auth::identify(
        &runtime.tokens,
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
async fn read_json<T: for<'de> Deserialize<'de>>(request: Request<Incoming>) -> Result<T, GatewayError> {
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
