//! `/auth/oidc/{name}/…` (SPEC 10): the redirect to a provider, the callback that begins a
//! session from its answer, and its back-channel logout. The provider conversation itself is
//! `federation`'s; this module adds the cookie, the one-use state, the session and the audit.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::auth::{begin_session, redirect_with_cookies, user_agent};
use super::{body, query_param};
use crate::auth::cookies::{self, SameSite};
use crate::auth::csrf;
use crate::auth::tokens::unix_now;
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::federation::{self, Callback, FlowError, LoginState, LogoutProblem, Named, OidcFailure, Provider};
use crate::proxy::ResponseBody;
use crate::runtime::Runtime;
use crate::sessions::store::IdpLink;
use crate::sessions::users::Authenticated;

pub(super) const PREFIX: &str = "/auth/oidc/";

pub(super) async fn handle(
    ctx: &mut RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let rest = &target.path[PREFIX.len()..];
    let (name, action) = rest.split_once('/').ok_or(GatewayError::NoRoute)?;
    let provider = ctx
        .runtime
        .federation
        .get(name)
        .ok_or(GatewayError::NoRoute)?
        .clone();
    let get = request.method() == Method::GET;
    match action {
        "login" if get => login(ctx, &request, target, &provider).await,
        "callback" if get => callback(ctx, &request, &provider).await,
        "backchannel-logout" if request.method() == Method::POST => {
            backchannel(ctx, request, &provider).await
        }
        "login" | "callback" => Err(GatewayError::method_not_allowed("GET")),
        "backchannel-logout" => Err(GatewayError::method_not_allowed("POST")),
        _ => Err(GatewayError::NoRoute),
    }
}

/// `GET /auth/oidc/{name}/login?return_to=/path`: 302 to the provider, with the login cookie.
async fn login(
    ctx: &mut RequestCtx<'_>,
    request: &Request<Incoming>,
    target: &Target,
    provider: &Provider,
) -> Result<Response<ResponseBody>, GatewayError> {
    ctx.html_errors = is_navigation(request.headers());
    let return_to = query_param(request, "return_to");
    let return_to = csrf::safe_return_to(return_to.as_deref());
    let authority = match &ctx.runtime.config.server.public_host {
        Some(public) => public.as_str(),
        None => target.authority.as_str(),
    };
    let redirect_uri = format!("https://{authority}{PREFIX}{}/callback", provider.config.name);
    let key = &ctx.runtime.tokens.keys().sealing_key;
    let (location, sealed) = federation::start(provider, key, return_to, redirect_uri, unix_now())
        .await
        .map_err(|e| failed(ctx, provider, e))?;
    let location = HeaderValue::from_str(&location).map_err(|_| GatewayError::Internal)?;
    let mut response = empty(StatusCode::FOUND);
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let cookie = cookies::set_same_site(
        federation::COOKIE,
        &sealed,
        "/",
        federation::LIFETIME_SECS,
        SameSite::Lax,
    );
    headers.append(SET_COOKIE, cookie);
    Ok(response)
}

/// `GET /auth/oidc/{name}/callback`: every check, then a normal cookie session and 303 to
/// where the login started. Whatever happens, the login cookie is spent.
async fn callback(
    ctx: &mut RequestCtx<'_>,
    request: &Request<Incoming>,
    provider: &Provider,
) -> Result<Response<ResponseBody>, GatewayError> {
    ctx.html_errors = is_navigation(request.headers());
    ctx.set_cookies
        .push(cookies::clear_same_site(federation::COOKIE, "/", SameSite::Lax));
    let result = callback_checked(ctx, request, provider).await;
    let result = result.map_err(|e| failed(ctx, provider, e));
    ctx.shared
        .metrics
        .oidc_login(&provider.config.name, oidc_result(&result));
    result
}

async fn callback_checked(
    ctx: &RequestCtx<'_>,
    request: &Request<Incoming>,
    provider: &Provider,
) -> Result<Response<ResponseBody>, FlowError> {
    let runtime = ctx.runtime;
    let now = unix_now();
    let callback = Callback::parse(request.uri().query()).ok_or(OidcFailure::BadCallback)?;
    let cookie =
        cookies::find(request.headers(), federation::COOKIE).map_err(|_| OidcFailure::MissingState)?;
    let key = &runtime.tokens.keys().sealing_key;
    let login = federation::check_state(provider, key, cookie, &callback, now)?;
    spend_state(ctx, &login).await?;
    let leeway = runtime.config.tokens.leeway.as_secs();
    let mapped = federation::finish(provider, &login, &callback, leeway, now).await?;
    let who = Authenticated {
        sub: mapped.sub,
        role: mapped.role,
    };
    let user_agent = user_agent(request.headers());
    let (session, access) = begin_session(ctx, &who, mapped.origin, user_agent)
        .await
        .map_err(|_| FlowError::Store)?;
    let (idp, ip) = (&provider.config.name, ctx.client);
    tracing::info!(target: "portcullis::audit", event = "oidc_login_ok", sub = %who.sub, role = %who.role, %idp, sid = %session.sid, %ip);
    let (to, access, refresh) = (&login.return_to, &access.token, &session.refresh_token);
    Ok(match ctx.html_errors {
        true => continue_page(runtime, to, access, refresh),
        false => redirect_with_cookies(runtime, to, access, refresh),
    })
}

/// For a browser: the session cookies on a page that goes on to `to` by itself (see
/// `pages::continue_to` for why not a redirect).
fn continue_page(runtime: &Runtime, to: &str, access: &str, refresh: &str) -> Response<ResponseBody> {
    let page = runtime.pages.continue_to(to);
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(page))));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in runtime.session_cookies(access, refresh) {
        headers.append(SET_COOKIE, cookie);
    }
    response
}

/// One use per login, on every replica: a replayed callback finds its state spent.
async fn spend_state(ctx: &RequestCtx<'_>, login: &LoginState) -> Result<(), FlowError> {
    let key = format!("oidc-state:{}", login.state);
    let keep_until = login.issued_at.saturating_add(federation::LIFETIME_SECS);
    let timing = ctx.runtime.timing(unix_now());
    match ctx
        .shared
        .sessions
        .store()
        .use_once(&key, keep_until, timing)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(OidcFailure::Replayed.into()),
        Err(_) => Err(FlowError::Store),
    }
}

/// `POST /auth/oidc/{name}/backchannel-logout` with a `logout_token`: every session begun in
/// the provider session (or for the provider user) it names ends, on every replica.
async fn backchannel(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    provider: &Provider,
) -> Result<Response<ResponseBody>, GatewayError> {
    let fields = match body::form(request, ctx.runtime.config.server.header_read_timeout).await {
        Err(GatewayError::BodyTooLarge) => Err(GatewayError::BadLogoutToken(LogoutProblem::Malformed)),
        read => read,
    }?;
    let token = fields
        .iter()
        .find(|(name, _)| name == "logout_token")
        .map(|(_, v)| v.as_str());
    let result = logout(ctx, provider, token.unwrap_or("")).await;
    let (idp, ip) = (&provider.config.name, ctx.client);
    match &result {
        Ok(sessions) => {
            tracing::info!(target: "portcullis::audit", event = "backchannel_logout", %idp, sessions, %ip);
        }
        Err(error) => {
            tracing::info!(target: "portcullis::audit", event = "backchannel_logout_refused", %idp, reason = %error, %ip);
        }
    }
    result.map_err(GatewayError::from)?;
    let mut response = empty(StatusCode::OK);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Verifies the token, spends its `jti`, ends the sessions; returns how many ended.
async fn logout(ctx: &RequestCtx<'_>, provider: &Provider, token: &str) -> Result<usize, FlowError> {
    let now = unix_now();
    let leeway = ctx.runtime.config.tokens.leeway.as_secs();
    let logout = federation::verify_logout(provider, token, leeway, now).await?;
    let idp = &provider.config.name;
    let timing = ctx.runtime.timing(now);
    let store = ctx.shared.sessions.store();
    let jti_key = format!("oidc-jti:{idp}:{}", logout.jti);
    if !store
        .use_once(&jti_key, logout.keep_jti_until, timing)
        .await
        .map_err(|_| FlowError::Store)?
    {
        return Err(LogoutProblem::Replayed.into());
    }
    let link = match &logout.named {
        Named::Sid(sid) => IdpLink::Sid(sid),
        Named::Sub(sub) => IdpLink::Sub(sub),
    };
    let ended = ctx.shared.sessions.end_federated(idp, link, timing).await;
    Ok(ended.map_err(|_| FlowError::Store)?.len())
}

/// Audits a failed step (`oidc_failed` with its reason) and turns it into the gateway's error.
fn failed(ctx: &RequestCtx<'_>, provider: &Provider, error: FlowError) -> GatewayError {
    let (idp, ip) = (&provider.config.name, ctx.client);
    let reason = match &error {
        FlowError::Failed(failure) => failure.reason(),
        FlowError::Unavailable(_) => "provider_unavailable",
        FlowError::Store => "store_unavailable",
        FlowError::Logout(_) | FlowError::Internal => "internal",
    };
    tracing::info!(target: "portcullis::audit", event = "oidc_failed", %idp, reason, %ip, detail = %error);
    GatewayError::from(error)
}

/// `portcullis_oidc_logins_total{idp,result}`.
fn oidc_result<T>(result: &Result<T, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(GatewayError::ProviderUnavailable | GatewayError::StoreUnavailable) => "unavailable",
        Err(_) => "failed",
    }
}

/// A browser loading a page (not a script's fetch): failures are answered as a page.
fn is_navigation(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    header("sec-fetch-mode") == "navigate" || header("accept").contains("text/html")
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}
