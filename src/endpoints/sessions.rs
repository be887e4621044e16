//! Session endpoints on the public listener: refresh, logout, logout-all, and the caller's
//! own session list and revocation.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::auth::{client_meta, read_json, token_pair};
use super::json;
use crate::auth::tokens::unix_now;
use crate::auth::{self, Identity};
use crate::error::GatewayError;
use crate::gateway::{ConnectionInfo, Runtime, Shared};
use crate::proxy::ResponseBody;
use crate::secret::Secret;
use crate::sessions::service::RefreshError;
use crate::sessions::store::SessionRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: Secret<String>,
}

pub async fn handle(
    shared: &Shared,
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
    path: &str,
) -> Result<Response<ResponseBody>, GatewayError> {
    match (path, request.method()) {
        ("/auth/refresh", &Method::POST) => refresh(shared, runtime, connection, request).await,
        ("/auth/logout", &Method::POST) => logout(shared, runtime, request).await,
        ("/auth/logout-all", &Method::POST) => logout_all(shared, runtime, &request).await,
        ("/auth/sessions", &Method::GET) => list(shared, runtime, &request).await,
        (path, &Method::DELETE) if path.starts_with("/auth/sessions/") => {
            revoke_own(shared, runtime, &request, &path["/auth/sessions/".len()..]).await
        }
        ("/auth/refresh" | "/auth/logout" | "/auth/logout-all" | "/auth/sessions", _) => {
            Err(GatewayError::MethodNotAllowed)
        }
        _ => Err(GatewayError::NoRoute),
    }
}

async fn refresh(
    shared: &Shared,
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (ip, _) = client_meta(runtime, connection, request.headers());
    let body: RefreshRequest = read_json(request).await?;
    let token = body.refresh_token.expose();
    if let Some(presented) = crate::sessions::refresh_token::parse(token) {
        runtime
            .refresh_limits
            .check(&presented.sid)
            .map_err(|wait| GatewayError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            })?;
    }
    let now = unix_now();
    let standing = |sub: &str| runtime.passwords.standing(sub);
    let refreshed = match shared
        .sessions
        .refresh(token, runtime.timing(now), standing)
        .await
    {
        Ok(refreshed) => refreshed,
        Err(error) => return Err(refresh_failed(error, ip)),
    };
    let access = runtime
        .tokens
        .issue(&refreshed.sub, &refreshed.role, &refreshed.sid, now);
    let access = access.map_err(|_| GatewayError::Internal)?;
    tracing::info!(target: "portcullis::audit", event = "refresh", sub = %refreshed.sub, sid = %refreshed.sid, %ip);
    Ok(token_pair(runtime, &access.token, &refreshed.refresh_token))
}

fn refresh_failed(error: RefreshError, ip: std::net::IpAddr) -> GatewayError {
    match error {
        RefreshError::Store(_) => GatewayError::StoreUnavailable,
        RefreshError::Reuse { sid, sub } => {
            tracing::warn!(target: "portcullis::audit", event = "refresh_reuse", %sub, %sid, %ip);
            GatewayError::InvalidGrant
        }
        RefreshError::Invalid | RefreshError::Ended | RefreshError::Barred => GatewayError::InvalidGrant,
    }
}

/// Ends the session named by a refresh token in the body, else by the bearer access token.
async fn logout(
    shared: &Shared,
    runtime: &Runtime,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let now = unix_now();
    let bearer = auth::identify(
        &runtime.tokens,
        &shared.revocations,
        &runtime.config.cookies,
        request.headers(),
        now,
    );
    let sid = if request.headers().contains_key(http::header::CONTENT_TYPE) {
        let body: RefreshRequest = read_json(request).await?;
        let session = shared
            .sessions
            .session_of_token(body.refresh_token.expose())
            .await;
        session
            .map_err(|_| GatewayError::StoreUnavailable)?
            .ok_or(GatewayError::InvalidGrant)?
            .sid
    } else {
        bearer?.ok_or(GatewayError::AuthenticationRequired)?.sid.clone()
    };
    let ended = shared.sessions.end(&sid, runtime.timing(now)).await;
    if let Some(session) = ended.map_err(|_| GatewayError::StoreUnavailable)? {
        tracing::info!(target: "portcullis::audit", event = "logout", sub = %session.sub, %sid);
    }
    Ok(no_content())
}

async fn logout_all(
    shared: &Shared,
    runtime: &Runtime,
    request: &Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(shared, runtime, request)?;
    let ended = shared
        .sessions
        .end_all(&caller.sub, runtime.timing(unix_now()))
        .await;
    let ended = ended.map_err(|_| GatewayError::StoreUnavailable)?;
    tracing::info!(target: "portcullis::audit", event = "logout_all", sub = %caller.sub, sessions = ended.len());
    Ok(no_content())
}

async fn list(
    shared: &Shared,
    runtime: &Runtime,
    request: &Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(shared, runtime, request)?;
    let sessions = shared
        .sessions
        .list(&caller.sub, runtime.timing(unix_now()))
        .await;
    let sessions = sessions.map_err(|_| GatewayError::StoreUnavailable)?;
    let body: Vec<_> = sessions.iter().map(|s| describe(s, Some(&caller.sid))).collect();
    Ok(json(StatusCode::OK, serde_json::Value::Array(body)).map(http_body_util::Either::Right))
}

/// Another user's session, or an unknown one, is 404: existence is not disclosed.
async fn revoke_own(
    shared: &Shared,
    runtime: &Runtime,
    request: &Request<Incoming>,
    sid: &str,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(shared, runtime, request)?;
    let timing = runtime.timing(unix_now());
    let session = shared
        .sessions
        .get(sid)
        .await
        .map_err(|_| GatewayError::StoreUnavailable)?;
    if session.is_none_or(|s| s.sub != caller.sub) {
        return Err(GatewayError::NoRoute);
    }
    match shared
        .sessions
        .end(sid, timing)
        .await
        .map_err(|_| GatewayError::StoreUnavailable)?
    {
        Some(_) => {
            tracing::info!(target: "portcullis::audit", event = "session_revoked", sub = %caller.sub, %sid, by = "owner");
            Ok(no_content())
        }
        None => Err(GatewayError::NoRoute),
    }
}

/// The caller's verified identity; these endpoints need one.
fn caller(
    shared: &Shared,
    runtime: &Runtime,
    request: &Request<Incoming>,
) -> Result<Arc<Identity>, GatewayError> {
    let identity = auth::identify(
        &runtime.tokens,
        &shared.revocations,
        &runtime.config.cookies,
        request.headers(),
        unix_now(),
    );
    identity?.ok_or(GatewayError::AuthenticationRequired)
}

/// The JSON shape of SPEC 4's session list.
pub fn describe(session: &SessionRecord, current: Option<&str>) -> serde_json::Value {
    json!({
        "id": session.sid,
        "sub": session.sub,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "user_agent": session.user_agent,
        "ip": session.ip,
        "current": current == Some(session.sid.as_str()),
    })
}

fn no_content() -> Response<ResponseBody> {
    let mut response = Response::new(http_body_util::Either::Right(Default::default()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
