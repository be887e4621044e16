//! Session endpoints on the public listener: refresh, logout, logout-all, and the caller's
//! own session list and revocation.

use std::sync::Arc;

use http::header::SET_COOKIE;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Delivery, cookie_pair, deliver, same_origin};
use super::body::{self, BodyKind};
use super::json;
use crate::auth::tokens::unix_now;
use crate::auth::{CredentialKind, Identity, cookies};
use crate::caller::identify;
use crate::caller::rotation::{self, Asker};
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::proxy::ResponseBody;
use crate::runtime::Runtime;
use crate::secret::Secret;
use crate::sessions::store::SessionRecord;
use crate::sessions::users::Authenticated;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: Secret<String>,
}

/// A JSON body rotates a token pair; no body rotates the refresh cookie (cookie mode).
pub(super) async fn refresh(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let runtime = ctx.runtime;
    // No body, or an HTML form (a plain `<form method="post">` button): the cookies speak.
    let via_cookie = matches!(body::kind(&request), BodyKind::Absent | BodyKind::Form);
    let jkt = crate::caller::binding::proven_key(ctx, request.headers(), target)
        .inspect_err(|_| ctx.shared.metrics.refresh("invalid"))?;
    let token = match via_cookie {
        true => cookie_refresh_token(runtime, request.headers(), target),
        false => body::json(request, runtime.config.server.header_read_timeout)
            .await
            .map(|body: RefreshRequest| body.refresh_token.expose().clone()),
    };
    // A refresh refused before rotation (cross-site, tossed cookies, a bad body) counts too.
    let token = token.inspect_err(|_| ctx.shared.metrics.refresh("invalid"))?;
    let rotated = rotation::rotate(ctx, &token, Asker::Endpoint, jkt.as_deref()).await?;
    let who = Authenticated {
        sub: rotated.sub,
        role: rotated.role,
    };
    let (access, refresh) = (&rotated.access_token, &rotated.refresh_token);
    Ok(match via_cookie {
        true => cookie_pair(runtime, &who, access, refresh),
        false => {
            let delivery = Delivery::Tokens.bound(ctx, jkt.as_deref())?;
            deliver(runtime, &delivery, &who, access, refresh)
        }
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
    let refresh = cookies::find(headers, &names.refresh_name)?;
    cookies::find(headers, &names.access_name)?;
    if !same_origin(runtime, headers, target) {
        return Err(GatewayError::CrossSiteRequest);
    }
    refresh.map(str::to_string).ok_or(GatewayError::InvalidGrant)
}

/// Ends the session named by a refresh token in the body, else by the bearer access token,
/// else by the cookies (a same-origin request only: no forced logout from other sites).
/// Both cookies are always cleared.
pub(super) async fn logout(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (runtime, sessions) = (ctx.runtime, &ctx.shared.sessions);
    let now = unix_now();
    let sid = match body::kind(&request) {
        BodyKind::Absent | BodyKind::Form => logout_without_body(ctx, request.headers(), target, now).await?,
        _ => {
            let body: RefreshRequest = body::json(request, runtime.config.server.header_read_timeout).await?;
            let session = sessions.session_of_token(body.refresh_token.expose()).await?;
            Some(session.ok_or(GatewayError::InvalidGrant)?.sid)
        }
    };
    if let Some(sid) = sid
        && let Some(session) = sessions.end(&sid, runtime.timing(now)).await?
    {
        tracing::info!(target: "portcullis::audit", event = "logout", sub = %session.sub, %sid);
    }
    let mut response = no_content();
    for cookie in runtime.clearing_cookies() {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The session of a bearer token, or of the cookies; `None` when the cookies name none.
async fn logout_without_body(
    ctx: &RequestCtx<'_>,
    headers: &HeaderMap,
    target: &Target,
    now: u64,
) -> Result<Option<String>, GatewayError> {
    let (runtime, shared) = (ctx.runtime, ctx.shared);
    if headers.contains_key(http::header::AUTHORIZATION) {
        let identity = identify(ctx, headers, target)?.ok_or(GatewayError::AuthenticationRequired)?;
        return Ok(Some(identity.sid.clone()));
    }
    let names = &runtime.config.cookies;
    let refresh = cookies::find(headers, &names.refresh_name)?;
    let access = cookies::find(headers, &names.access_name)?;
    if refresh.is_none() && access.is_none() {
        return Err(GatewayError::AuthenticationRequired);
    }
    if !same_origin(runtime, headers, target) {
        return Err(GatewayError::CrossSiteRequest);
    }
    if let Some(token) = refresh
        && let Some(session) = shared.sessions.session_of_token(token).await?
    {
        return Ok(Some(session.sid));
    }
    let identity = access.and_then(|token| ctx.verifiers().verify(token, now).ok());
    let session = identity.filter(|identity| identity.kind == CredentialKind::Session);
    Ok(session.map(|identity| identity.sid.clone()))
}

pub(super) async fn logout_all<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
    end_everywhere(ctx, &caller).await?;
    Ok(no_content())
}

pub(super) async fn list<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
    let timing = ctx.runtime.timing(unix_now());
    let sessions = ctx.shared.sessions.list(&caller.sub, timing).await?;
    let body: Vec<_> = sessions.iter().map(|s| describe(s, Some(&caller.sid))).collect();
    Ok(json(StatusCode::OK, serde_json::Value::Array(body)).map(http_body_util::Either::Right))
}

/// Another user's session, or an unknown one, is 404: existence is not disclosed.
pub(super) async fn revoke_own<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
    sid: &str,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
    match end_own(ctx, &caller, sid).await? {
        true => Ok(no_content()),
        false => Err(GatewayError::NoRoute),
    }
}

/// Ends the caller's session `sid`; `false` when it is not a live session of theirs.
pub(super) async fn end_own(
    ctx: &RequestCtx<'_>,
    caller: &Identity,
    sid: &str,
) -> Result<bool, GatewayError> {
    let sessions = &ctx.shared.sessions;
    if sessions.get(sid).await?.is_none_or(|s| s.sub != caller.sub) {
        return Ok(false);
    }
    let ended = sessions.end(sid, ctx.runtime.timing(unix_now())).await?.is_some();
    if ended {
        tracing::info!(target: "portcullis::audit", event = "session_revoked", sub = %caller.sub, %sid, by = "owner");
    }
    Ok(ended)
}

/// Ends every session of the caller and every access token issued to them until now.
pub(super) async fn end_everywhere(ctx: &RequestCtx<'_>, caller: &Identity) -> Result<(), GatewayError> {
    let timing = ctx.runtime.timing(unix_now());
    let ended = ctx.shared.sessions.end_all(&caller.sub, timing).await?;
    tracing::info!(target: "portcullis::audit", event = "logout_all", sub = %caller.sub, sessions = ended.len());
    Ok(())
}

/// The caller's verified identity; these endpoints need one.
pub(super) fn caller<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Arc<Identity>, GatewayError> {
    let headers = request.headers();
    let identity = identify(ctx, headers, target)?.ok_or(GatewayError::AuthenticationRequired)?;
    // A cookie rides along on cross-site requests; a state change needs our own origin.
    let via_cookie = !headers.contains_key(http::header::AUTHORIZATION);
    if !request.method().is_safe() && via_cookie && !same_origin(ctx.runtime, headers, target) {
        return Err(GatewayError::CrossSiteRequest);
    }
    Ok(identity)
}

/// The JSON shape of SPEC 4's session list.
pub(super) fn describe(session: &SessionRecord, current: Option<&str>) -> serde_json::Value {
    json!({
        "id": session.sid,
        "sub": session.sub,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "user_agent": session.user_agent,
        "ip": session.ip,
        "idp": session.origin.idp,
        "auth_time": session.origin.auth_time,
        "amr": session.origin.amr,
        "current": current == Some(session.sid.as_str()),
    })
}

pub(super) fn no_content() -> Response<ResponseBody> {
    let mut response = Response::new(http_body_util::Either::Right(Default::default()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
