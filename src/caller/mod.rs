//! Who is calling (phase 3) and whether they may (phase 4); `rotation` renews a session.
//!
//! Phases 3 and 4: who is calling (bearer token or access cookie) and whether they may
//! (roles, and the same-origin rule for cookie-authenticated unsafe requests).

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{ACCEPT, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request};
use hyper::body::Incoming;

use crate::auth::tokens::unix_now;
use crate::auth::{self, Credential, Identity, TokenError, cookies, csrf};
use crate::config::AuthPolicy;
use crate::error::GatewayError;
use crate::gateway::{Runtime, Shared, Target};
use crate::proxy::upgrade;
use crate::routes::Route;

pub mod rotation;

use rotation::Asker;

/// The caller of one proxied request.
#[derive(Default)]
pub(crate) struct Caller {
    pub identity: Option<Arc<Identity>>,
    /// The credential was the access cookie, which browsers attach to cross-site requests.
    pub via_cookie: bool,
    /// `Set-Cookie` values for the response, after a transparent refresh.
    pub set_cookies: Vec<HeaderValue>,
}

/// A protected route needs a valid credential; a public one forwards a valid credential's
/// identity and treats a missing or invalid one as anonymous.
pub(crate) async fn authenticate(
    shared: &Shared,
    runtime: &Runtime,
    route: &Route,
    request: &Request<Incoming>,
    client: IpAddr,
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
            let refreshed = transparent_refresh(shared, runtime, request.headers(), client, unix_now());
            return match Box::pin(refreshed).await? {
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
            let refreshed = transparent_refresh(shared, runtime, request.headers(), client, now);
            match Box::pin(refreshed).await? {
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
/// of SPEC 5.3), so the session keeps one lineage. `Ok(None)`: no usable refresh cookie or a
/// refused rotation (the request is then unauthenticated); over the session's refresh limit
/// the request is refused with 429, as `POST /auth/refresh` would be.
async fn transparent_refresh(
    shared: &Shared,
    runtime: &Runtime,
    headers: &HeaderMap,
    client: IpAddr,
    now: u64,
) -> Result<Option<Caller>, GatewayError> {
    let names = &runtime.config.cookies;
    let Ok(Some(refresh_token)) = cookies::find(headers, &names.refresh_name) else {
        return Ok(None);
    };
    let rotated = match rotation::rotate(shared, runtime, refresh_token, client, Asker::Transparent).await {
        Ok(rotated) => rotated,
        Err(limited @ GatewayError::RateLimited { .. }) => return Err(limited),
        Err(_) => return Ok(None),
    };
    let Ok(identity) = auth::verify(&runtime.tokens, &shared.revocations, &rotated.access_token, now) else {
        return Ok(None);
    };
    let set_cookies = runtime.session_cookies(&rotated.access_token, &rotated.refresh_token);
    Ok(Some(Caller {
        identity: Some(identity),
        via_cookie: true,
        set_cookies,
    }))
}

// === phase 4: authorize ===

pub(crate) fn authorize(
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
pub(crate) fn attach_cookies(headers: &mut HeaderMap, set_cookies: Vec<HeaderValue>) {
    for cookie in set_cookies {
        headers.append(SET_COOKIE, cookie);
    }
}
