//! Phases 3 and 4: who is calling (bearer token or access cookie) and whether they may
//! (roles, and the same-origin rule for cookie-authenticated unsafe requests).

use std::sync::Arc;

use http::header::{ACCEPT, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request};
use hyper::body::Incoming;

use super::{Runtime, Shared, Target};
use crate::auth::tokens::unix_now;
use crate::auth::{self, Credential, Identity, TokenError, cookies, csrf};
use crate::config::AuthPolicy;
use crate::error::GatewayError;
use crate::proxy::upgrade;
use crate::routes::Route;
use crate::sessions::service::RefreshError;

/// The caller of one proxied request.
#[derive(Default)]
pub(super) struct Caller {
    pub identity: Option<Arc<Identity>>,
    /// The credential was the access cookie, which browsers attach to cross-site requests.
    pub via_cookie: bool,
    /// `Set-Cookie` values for the response, after a transparent refresh.
    pub set_cookies: Vec<HeaderValue>,
}

/// A protected route needs a valid credential; a public one forwards a valid credential's
/// identity and treats a missing or invalid one as anonymous.
pub(super) async fn authenticate(
    shared: &Shared,
    runtime: &Runtime,
    route: &Route,
    request: &Request<Incoming>,
) -> Result<Caller, GatewayError> {
    let refused = |error| match route.auth {
        AuthPolicy::Required => Err(login_page_or(route, request, error)),
        AuthPolicy::Public => Ok(Caller::default()),
    };
    let (token, via_cookie) = match auth::credential(request.headers(), &runtime.config.cookies) {
        Ok(Some(Credential::Bearer(token))) => (token, false),
        Ok(Some(Credential::Cookie(token))) => (token, true),
        // A browser drops the access cookie when its Max-Age (the token's lifetime) ends and
        // keeps sending only the refresh cookie: that is the usual case for a refresh.
        Ok(None) if may_refresh_transparently(runtime, request) && holds_refresh_cookie(runtime, request) => {
            return match Box::pin(transparent_refresh(
                shared,
                runtime,
                request.headers(),
                unix_now(),
            ))
            .await
            {
                Some(caller) => Ok(caller),
                None => refused(GatewayError::AuthenticationRequired),
            };
        }
        Ok(None) => return refused(GatewayError::AuthenticationRequired),
        Err(_) => return refused(GatewayError::InvalidToken(TokenError::Malformed)),
    };
    let now = unix_now();
    match auth::verify(&runtime.tokens, &shared.revocations, token, now) {
        Ok(identity) => Ok(Caller {
            identity: Some(identity),
            via_cookie,
            set_cookies: Vec::new(),
        }),
        Err(TokenError::Expired) if via_cookie && may_refresh_transparently(runtime, request) => {
            // Boxed: the store round trip is a large future that only this rare branch needs,
            // and every proxied request would otherwise carry (and copy) its space.
            match Box::pin(transparent_refresh(shared, runtime, request.headers(), now)).await {
                Some(caller) => Ok(caller),
                None => refused(GatewayError::InvalidToken(TokenError::Expired)),
            }
        }
        Err(error) => refused(GatewayError::InvalidToken(error)),
    }
}

/// A browser navigating to a route with a `login_page` goes there instead of getting a 401.
fn login_page_or(route: &Route, request: &Request<Incoming>, error: GatewayError) -> GatewayError {
    let Some(page) = &route.login_page else {
        return error;
    };
    let navigation = matches!(*request.method(), Method::GET | Method::HEAD)
        && request
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if !navigation {
        return error;
    }
    let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let return_to: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    match HeaderValue::from_str(&format!("{page}?return_to={return_to}")) {
        Ok(location) => GatewayError::LoginRequired { location },
        Err(_) => error,
    }
}

fn holds_refresh_cookie(runtime: &Runtime, request: &Request<Incoming>) -> bool {
    let cookies = &runtime.config.cookies;
    cookies.enabled
        && matches!(
            cookies::find(request.headers(), &cookies.refresh_name),
            Ok(Some(_))
        )
}

/// Only a same-site navigation-like read may rotate tokens behind the caller's back: an
/// unsafe method or a cross-site fetch (per `Sec-Fetch-Site`) never triggers a refresh.
fn may_refresh_transparently(runtime: &Runtime, request: &Request<Incoming>) -> bool {
    let fetch_site = request
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    runtime.config.cookies.transparent_refresh
        && matches!(*request.method(), Method::GET | Method::HEAD)
        && matches!(fetch_site, None | Some("same-origin") | Some("none"))
}

/// Rotates the refresh cookie and mints a new access token, so the request goes on once.
/// Concurrent requests presenting the same refresh cookie get the same successor (the grace
/// of SPEC 5.3), so the session keeps one lineage.
async fn transparent_refresh(
    shared: &Shared,
    runtime: &Runtime,
    headers: &HeaderMap,
    now: u64,
) -> Option<Caller> {
    let names = &runtime.config.cookies;
    let refresh_token = cookies::find(headers, &names.refresh_name).ok()??;
    let standing = |sub: &str| runtime.passwords.standing(sub);
    let refreshed = match shared
        .sessions
        .refresh(refresh_token, runtime.timing(now), standing)
        .await
    {
        Ok(refreshed) => refreshed,
        Err(RefreshError::Reuse { sid, sub }) => {
            tracing::warn!(target: "portcullis::audit", event = "refresh_reuse", %sub, %sid, transparent = true);
            shared.metrics.refresh("reuse");
            return None;
        }
        Err(_) => return None,
    };
    let access = runtime
        .tokens
        .issue(&refreshed.sub, &refreshed.role, &refreshed.sid, now)
        .ok()?;
    let identity = auth::verify(&runtime.tokens, &shared.revocations, &access.token, now).ok()?;
    tracing::info!(target: "portcullis::audit", event = "refresh", sub = %refreshed.sub, sid = %refreshed.sid, transparent = true);
    shared.metrics.refresh("ok");
    let set_cookies = runtime.session_cookies(&access.token, &refreshed.refresh_token);
    Some(Caller {
        identity: Some(identity),
        via_cookie: true,
        set_cookies,
    })
}

// === phase 4: authorize ===

pub(super) fn authorize(
    runtime: &Runtime,
    route: &Route,
    caller: &Caller,
    request: &Request<Incoming>,
    target: &Target,
) -> Result<(), GatewayError> {
    let Some(identity) = &caller.identity else {
        return Ok(());
    };
    // A WebSocket upgrade is a GET, but it opens a channel that can act: same rule as unsafe
    // methods (cross-site WebSocket hijacking).
    if caller.via_cookie && (!request.method().is_safe() || upgrade::is_websocket(request)) {
        let allowed = &runtime.config.cookies.allowed_origins;
        if !csrf::same_origin(request.headers(), target.authority.as_str(), allowed) {
            return Err(GatewayError::CrossSiteRequest);
        }
    }
    if !route.roles.is_empty() && !route.roles.contains(&identity.role) {
        return Err(GatewayError::InsufficientScope);
    }
    Ok(())
}

/// Adds the cookies a transparent refresh produced to the response.
pub(super) fn attach_cookies(headers: &mut HeaderMap, set_cookies: Vec<HeaderValue>) {
    for cookie in set_cookies {
        headers.append(SET_COOKIE, cookie);
    }
}
