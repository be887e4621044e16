//! Who is calling (phase 3) and whether they may (phase 4): bearer token or access cookie,
//! a transparent refresh when a browser's access cookie is gone or expired, then roles and
//! the same-origin rule for cookie-authenticated unsafe requests and the route's rules
//! (`policy`); and the signed assertion of who is calling, for routes that ask for one.
//! `rotation` renews a session for both refresh paths.

use std::sync::Arc;

use http::header::ACCEPT;
use http::{HeaderMap, HeaderValue, Method, Request};

use crate::auth::foreign::ForeignTokenError;
use crate::auth::tokens::unix_now;
use crate::auth::{self, Credential, CredentialKind, Identity, TokenError, cookies, csrf};
use crate::config::{Acceptable, AuthPolicy};
use crate::context::{RequestCtx, Target};
use crate::error::{DpopFailure, GatewayError};
use crate::policy::{self, Decision, Facts, StepUp};
use crate::proxy::upgrade;
use crate::routes::Route;

pub(crate) mod binding;
pub(crate) mod rotation;

use rotation::Asker;

/// The browser's way to renew its session's authentication (`endpoints::step_up`).
pub(crate) const STEP_UP_PAGE: &str = "/auth/step-up";

/// The verified caller of a request that presents a credential, for the gateway's own
/// endpoints: `Ok(None)` when it presents none. A DPoP-bound token needs its proof here too.
pub(crate) fn identify(
    ctx: &RequestCtx<'_>,
    headers: &HeaderMap,
    target: &Target,
) -> Result<Option<Arc<Identity>>, GatewayError> {
    let credential = match auth::credential(headers, &ctx.runtime.config.cookies) {
        Ok(Some(credential)) => credential,
        Ok(None) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let identity = ctx.verifiers().verify(credential.token(), unix_now())?;
    // The gateway's own endpoints act on sessions: API keys and other issuers' tokens have none.
    if identity.kind != CredentialKind::Session {
        return Err(TokenError::NotAccepted.into());
    }
    binding::check(ctx, (&ctx.method, headers), target, credential, &identity, false)?;
    Ok(Some(identity))
}

/// Phase 3. A protected route needs a valid credential; a public one forwards a valid
/// credential's identity and treats a missing or invalid one as anonymous. Sets the
/// context's caller (and the cookies of a transparent refresh).
pub(crate) async fn authenticate<B>(
    ctx: &mut RequestCtx<'_>,
    route: &Route,
    request: &Request<B>,
    target: &Target,
) -> Result<(), GatewayError> {
    let refused = |error| match route.auth {
        AuthPolicy::Required => Err(login_page_or(route, request, error)),
        AuthPolicy::Public => Ok(()),
    };
    let runtime = ctx.runtime;
    let credential = match auth::credential(request.headers(), &runtime.config.cookies) {
        Ok(Some(credential)) => credential,
        // A browser drops the access cookie when its Max-Age (the token's lifetime) ends and
        // keeps sending only the refresh cookie: that is the usual case for a refresh.
        Ok(None)
            if may_refresh_transparently(ctx, request)
                && accepts(route, &CredentialKind::Session, true)
                && holds_refresh_cookie(ctx, request) =>
        {
            return match Box::pin(transparent_refresh(ctx, request.headers())).await? {
                true => Ok(()),
                false => refused(GatewayError::AuthenticationRequired),
            };
        }
        Ok(None) if route.require_dpop => return refused(GatewayError::Dpop(DpopFailure::Required)),
        Ok(None) => return refused(GatewayError::AuthenticationRequired),
        Err(_) => return refused(GatewayError::InvalidToken(TokenError::Malformed)),
    };
    let (token, via_cookie) = (credential.token(), matches!(credential, Credential::Cookie(_)));
    match verify(ctx, token).await {
        Ok(identity) if accepts(route, &identity.kind, via_cookie) => {
            let request_line = (request.method(), request.headers());
            if let Err(error) = binding::check(
                ctx,
                request_line,
                target,
                credential,
                &identity,
                route.require_dpop,
            ) {
                return refused(error);
            }
            ctx.caller = Some(identity);
            ctx.via_cookie = via_cookie;
            Ok(())
        }
        Ok(_) => refused(GatewayError::InvalidToken(TokenError::NotAccepted)),
        Err(TokenError::Expired)
            if via_cookie
                && accepts(route, &CredentialKind::Session, true)
                && may_refresh_transparently(ctx, request) =>
        {
            // Boxed: the store round trip is a large future that only this rare branch needs,
            // and every proxied request would otherwise carry (and copy) its space.
            match Box::pin(transparent_refresh(ctx, request.headers())).await? {
                true => Ok(()),
                false => refused(GatewayError::InvalidToken(TokenError::Expired)),
            }
        }
        // Answered with a DPoP challenge to a client that spoke DPoP (RFC 9449 §7.1).
        Err(error) if matches!(credential, Credential::Dpop(_)) => {
            refused(GatewayError::Dpop(DpopFailure::Token(error)))
        }
        Err(error) => refused(GatewayError::InvalidToken(error)),
    }
}

/// Whether the route takes this kind of credential (SPEC 11). The access cookie only ever
/// carries our own session tokens.
fn accepts(route: &Route, kind: &CredentialKind, via_cookie: bool) -> bool {
    route.accept.iter().any(|acceptable| match (acceptable, kind) {
        (Acceptable::Session, CredentialKind::Session) => true,
        _ if via_cookie => false,
        (Acceptable::ApiKey, CredentialKind::ApiKey) => true,
        (Acceptable::Issuer(name), CredentialKind::Issuer(issuer)) => **name == **issuer,
        _ => false,
    })
}

/// The token verified from memory, or once more after fetching an issuer's newer keys.
async fn verify(ctx: &RequestCtx<'_>, token: &str) -> Result<Arc<Identity>, TokenError> {
    match ctx.verifiers().verify(token, unix_now()) {
        // Boxed like the refresh: a fetch of an issuer's keys is rare and large.
        Err(error @ (TokenError::Foreign(ForeignTokenError::UnknownKey) | TokenError::IssuerUnavailable)) => {
            Box::pin(verify_with_newer_keys(ctx, token, error)).await
        }
        verified => verified,
    }
}

/// A token of another issuer that names a key we do not hold (the issuer may have rotated
/// its keys), or of an issuer whose keys were never fetched: they are fetched again (rate
/// limited, see `IssuerKeys::refetch`) and the token tried once more.
async fn verify_with_newer_keys(
    ctx: &RequestCtx<'_>,
    token: &str,
    error: TokenError,
) -> Result<Arc<Identity>, TokenError> {
    let runtime = ctx.runtime;
    let Some(issuer) = runtime.tokens.claimed_issuer(token) else {
        return Err(error);
    };
    let Some(keys) = runtime.issuer_keys.get(&issuer.config.name) else {
        return Err(error);
    };
    match keys.refetch().await {
        true => ctx.verifiers().verify(token, unix_now()),
        false => Err(error),
    }
}

/// A browser navigating to a route with a `login_page` goes there instead of getting a 401.
fn login_page_or<B>(route: &Route, request: &Request<B>, error: GatewayError) -> GatewayError {
    match &route.login_page {
        Some(page) if is_navigation(request) => redirect_or(page, "", request, error),
        _ => error,
    }
}

/// A page load (not a script's fetch), judged the way browsers ask for pages.
fn is_navigation<B>(request: &Request<B>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// 302 to `page?return_to=<this request's path and query><extra>`, or `error` when that
/// cannot be a header value.
fn redirect_or<B>(page: &str, extra: &str, request: &Request<B>, error: GatewayError) -> GatewayError {
    let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let return_to: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    match HeaderValue::from_str(&format!("{page}?return_to={return_to}{extra}")) {
        Ok(location) => GatewayError::LoginRequired { location },
        Err(_) => error,
    }
}

fn holds_refresh_cookie<B>(ctx: &RequestCtx<'_>, request: &Request<B>) -> bool {
    let cookies = &ctx.runtime.config.cookies;
    cookies.enabled
        && matches!(
            cookies::find(request.headers(), &cookies.refresh_name),
            Ok(Some(_))
        )
}

/// Only a same-site navigation-like read may rotate tokens behind the caller's back: an
/// unsafe method or a cross-site fetch (per `Sec-Fetch-Site`) never triggers a refresh, nor
/// a request whose answer cannot give the browser its new cookies.
fn may_refresh_transparently<B>(ctx: &RequestCtx<'_>, request: &Request<B>) -> bool {
    let fetch_site = request
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    ctx.runtime.config.cookies.transparent_refresh
        && ctx.cookies_reach_browser
        && matches!(*request.method(), Method::GET | Method::HEAD)
        && matches!(fetch_site, None | Some("same-origin") | Some("none"))
}

/// Rotates the refresh cookie and mints a new access token, so the request goes on once.
/// Concurrent requests presenting the same refresh cookie get the same successor (the grace
/// of SPEC 5.3), so the session keeps one lineage. `Ok(false)`: no usable refresh cookie or
/// a refused rotation (the request is then unauthenticated); over the session's refresh
/// limit the request is refused with 429, as `POST /auth/refresh` would be.
async fn transparent_refresh(ctx: &mut RequestCtx<'_>, headers: &HeaderMap) -> Result<bool, GatewayError> {
    let runtime = ctx.runtime;
    let Ok(Some(refresh_token)) = cookies::find(headers, &runtime.config.cookies.refresh_name) else {
        return Ok(false);
    };
    let rotated = match rotation::rotate(ctx, refresh_token, Asker::Transparent, None).await {
        Ok(rotated) => rotated,
        Err(limited @ GatewayError::RateLimited { .. }) => return Err(limited),
        Err(_) => return Ok(false),
    };
    let verified = ctx.verifiers().verify(&rotated.access_token, unix_now());
    let Ok(identity) = verified else {
        return Ok(false);
    };
    ctx.caller = Some(identity);
    ctx.via_cookie = true;
    ctx.set_cookies = runtime.session_cookies(&rotated.access_token, &rotated.refresh_token);
    Ok(true)
}

/// Phase 4: the same-origin rule for cookie-authenticated unsafe requests, the route's
/// roles, then its rules (SPEC 13).
pub(crate) fn authorize<B>(
    ctx: &RequestCtx<'_>,
    route: &Route,
    request: &Request<B>,
    target: &Target,
) -> Result<(), GatewayError> {
    if let Some(identity) = &ctx.caller {
        // A WebSocket upgrade is a GET, but it opens a channel that can act: same rule as
        // unsafe methods (cross-site WebSocket hijacking).
        if ctx.via_cookie && (!request.method().is_safe() || upgrade::is_websocket(request)) {
            let allowed = &ctx.runtime.config.cookies.allowed_origins;
            if !csrf::same_origin(request.headers(), target.authority.as_str(), allowed) {
                return Err(GatewayError::CrossSiteRequest);
            }
        }
        if !route.roles.is_empty() && !route.roles.contains(&identity.role) {
            return Err(GatewayError::InsufficientScope);
        }
    }
    if route.rules.is_empty() {
        return Ok(());
    }
    let facts = Facts {
        caller: ctx.caller.as_deref(),
        method: request.method(),
        path: &target.path,
        client: ctx.client,
        now: unix_now(),
    };
    match policy::decide(&route.rules, &facts, |_, _| {}) {
        Decision::Allow { .. } => Ok(()),
        // Anonymous on a public route: logging in may satisfy a rule.
        Decision::Deny { .. } if ctx.caller.is_none() => Err(login_page_or(
            route,
            request,
            GatewayError::AuthenticationRequired,
        )),
        Decision::Deny { .. } => Err(GatewayError::RuleDenied),
        Decision::StepUp(step_up) => Err(step_up_or_page(ctx, request, step_up)),
    }
}

/// RFC 9470's 401 for an API client; a browser navigating with its session cookie goes to
/// the step-up page, which comes back here when done.
fn step_up_or_page<B>(ctx: &RequestCtx<'_>, request: &Request<B>, step_up: StepUp) -> GatewayError {
    let error = GatewayError::StepUpRequired(step_up);
    if !(ctx.via_cookie && is_navigation(request)) {
        return error;
    }
    let extra = if step_up.mfa { "&acr_values=mfa" } else { "" };
    redirect_or(STEP_UP_PAGE, extra, request, error)
}

/// The route's signed identity assertion for the caller, when the route asks for one.
pub(crate) fn assertion(ctx: &RequestCtx<'_>, route: &Route) -> Result<Option<HeaderValue>, GatewayError> {
    let (Some(assertions), Some(caller)) = (&route.assertions, &ctx.caller) else {
        return Ok(None);
    };
    match assertions.for_caller(&ctx.runtime.tokens, caller, unix_now()) {
        Ok(value) => Ok(Some(value)),
        Err(error) => {
            tracing::error!(%error, route = %route.name, "cannot sign an identity assertion");
            Err(GatewayError::Internal)
        }
    }
}
