//! Session endpoints on the public listener: refresh, logout, logout-all, and the caller's
//! own session list and revocation.

use std::sync::Arc;

use http::header::SET_COOKIE;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::auth::{client_meta, cookie_pair, same_origin, token_pair};
use super::body::{self, BodyKind};
use super::json;
use crate::auth::cookies;
use crate::auth::tokens::unix_now;
use crate::auth::{self, Identity};
use crate::caller::rotation::{self, Asker};
use crate::error::GatewayError;
use crate::gateway::{ConnectionInfo, Runtime, Shared, Target};
use crate::proxy::ResponseBody;
use crate::secret::Secret;
use crate::sessions::store::SessionRecord;
use crate::sessions::users::Authenticated;

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
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let path = target.path.as_str();
    match (path, request.method()) {
        ("/auth/refresh", &Method::POST) => refresh(shared, runtime, connection, request, target).await,
        ("/auth/logout", &Method::POST) => logout(shared, runtime, request, target).await,
        ("/auth/logout-all", &Method::POST) => logout_all(shared, runtime, &request, target).await,
        ("/auth/sessions", &Method::GET) => list(shared, runtime, &request).await,
        (path, &Method::DELETE) if path.starts_with("/auth/sessions/") => {
            revoke_own(
                shared,
                runtime,
                &request,
                target,
                &path["/auth/sessions/".len()..],
            )
            .await
        }
        ("/auth/refresh" | "/auth/logout" | "/auth/logout-all", _) => {
            Err(GatewayError::method_not_allowed("POST"))
        }
        ("/auth/sessions", _) => Err(GatewayError::method_not_allowed("GET")),
        (path, _) if path.starts_with("/auth/sessions/") => Err(GatewayError::method_not_allowed("DELETE")),
        _ => Err(GatewayError::NoRoute),
    }
}

/// A JSON body rotates a token pair; no body rotates the refresh cookie (cookie mode).
async fn refresh(
    shared: &Shared,
    runtime: &Runtime,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (ip, _) = client_meta(runtime, connection, request.headers());
    // No body, or an HTML form (a plain `<form method="post">` button): the cookies speak.
    let via_cookie = matches!(body::kind(&request), BodyKind::Absent | BodyKind::Form);
    let token = match via_cookie {
        true => cookie_refresh_token(runtime, request.headers(), target),
        false => body::json(request, runtime.config.server.header_read_timeout)
            .await
            .map(|body: RefreshRequest| body.refresh_token.expose().clone()),
    };
    // A refresh refused before rotation (cross-site, tossed cookies, a bad body) counts too.
    let token = token.inspect_err(|_| shared.metrics.refresh("invalid"))?;
    let rotated = rotation::rotate(shared, runtime, &token, ip, Asker::Endpoint).await?;
    Ok(match via_cookie {
        true => {
            let who = Authenticated {
                sub: rotated.sub,
                role: rotated.role,
            };
            cookie_pair(runtime, &who, &rotated.access_token, &rotated.refresh_token)
        }
        false => token_pair(runtime, &rotated.access_token, &rotated.refresh_token),
    })
}

/// The refresh cookie of a same-origin request; two copies of either gateway cookie are
/// refused before anything rotates.
fn cookie_refresh_token(
    runtime: &Runtime,
    headers: &HeaderMap,
    target: &Target,
) -> Result<String, GatewayError> {
    let names = &runtime.config.cookies;
    let refresh = cookies::find(headers, &names.refresh_name).map_err(|_| GatewayError::DuplicateCookie)?;
    cookies::find(headers, &names.access_name).map_err(|_| GatewayError::DuplicateCookie)?;
    if !same_origin(runtime, headers, target) {
        return Err(GatewayError::CrossSiteRequest);
    }
    refresh.map(str::to_string).ok_or(GatewayError::InvalidGrant)
}

/// Ends the session named by a refresh token in the body, else by the bearer access token,
/// else by the cookies (a same-origin request only: no forced logout from other sites).
/// Both cookies are always cleared.
async fn logout(
    shared: &Shared,
    runtime: &Runtime,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let now = unix_now();
    let sid = match body::kind(&request) {
        BodyKind::Absent | BodyKind::Form => {
            logout_without_body(shared, runtime, request.headers(), target, now).await?
        }
        _ => {
            let body: RefreshRequest = body::json(request, runtime.config.server.header_read_timeout).await?;
            let session = shared
                .sessions
                .session_of_token(body.refresh_token.expose())
                .await;
            Some(
                session
                    .map_err(|_| GatewayError::StoreUnavailable)?
                    .ok_or(GatewayError::InvalidGrant)?
                    .sid,
            )
        }
    };
    if let Some(sid) = sid {
        let ended = shared.sessions.end(&sid, runtime.timing(now)).await;
        if let Some(session) = ended.map_err(|_| GatewayError::StoreUnavailable)? {
            tracing::info!(target: "portcullis::audit", event = "logout", sub = %session.sub, %sid);
        }
    }
    let mut response = no_content();
    for cookie in runtime.clearing_cookies() {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The session of a bearer token, or of the cookies; `None` when the cookies name none.
async fn logout_without_body(
    shared: &Shared,
    runtime: &Runtime,
    headers: &HeaderMap,
    target: &Target,
    now: u64,
) -> Result<Option<String>, GatewayError> {
    if headers.contains_key(http::header::AUTHORIZATION) {
        let identity = auth::identify(
            &runtime.tokens,
            &shared.revocations,
            &runtime.config.cookies,
            headers,
            now,
        );
        return Ok(Some(
            identity?.ok_or(GatewayError::AuthenticationRequired)?.sid.clone(),
        ));
    }
    let names = &runtime.config.cookies;
    let refresh = cookies::find(headers, &names.refresh_name).map_err(|_| GatewayError::DuplicateCookie)?;
    let access = cookies::find(headers, &names.access_name).map_err(|_| GatewayError::DuplicateCookie)?;
    if refresh.is_none() && access.is_none() {
        return Err(GatewayError::AuthenticationRequired);
    }
    if !same_origin(runtime, headers, target) {
        return Err(GatewayError::CrossSiteRequest);
    }
    if let Some(token) = refresh {
        let session = shared
            .sessions
            .session_of_token(token)
            .await
            .map_err(|_| GatewayError::StoreUnavailable)?;
        if let Some(session) = session {
            return Ok(Some(session.sid));
        }
    }
    let identity =
        access.and_then(|token| auth::verify(&runtime.tokens, &shared.revocations, token, now).ok());
    Ok(identity.map(|identity| identity.sid.clone()))
}

async fn logout_all(
    shared: &Shared,
    runtime: &Runtime,
    request: &Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(shared, runtime, request, Some(target))?;
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
    let caller = caller(shared, runtime, request, None)?;
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
    target: &Target,
    sid: &str,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(shared, runtime, request, Some(target))?;
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
    unsafe_at: Option<&Target>,
) -> Result<Arc<Identity>, GatewayError> {
    let headers = request.headers();
    let identity = auth::identify(
        &runtime.tokens,
        &shared.revocations,
        &runtime.config.cookies,
        headers,
        unix_now(),
    );
    let identity = identity?.ok_or(GatewayError::AuthenticationRequired)?;
    // A cookie rides along on cross-site requests; a state change needs our own origin.
    let via_cookie = !headers.contains_key(http::header::AUTHORIZATION);
    if let Some(target) = unsafe_at
        && via_cookie
        && !same_origin(runtime, headers, target)
    {
        return Err(GatewayError::CrossSiteRequest);
    }
    Ok(identity)
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
