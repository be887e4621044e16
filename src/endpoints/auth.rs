//! Logging in and saying who is logged in: `/auth/login` (JSON token or cookie mode, or an
//! HTML form), `/auth/me` and `/.well-known/jwks.json`; the session endpoints are in
//! `sessions`, the dispatch in `endpoints::handle`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::body::{self, BodyKind};
use super::{json, mfa};
use crate::auth::csrf;
use crate::auth::tokens::{Grant, Issued, unix_now};
use crate::caller::binding;
use crate::caller::identify;
use crate::context::{RequestCtx, Target};
use crate::error::{DPOP_NONCE, GatewayError, login_result};
use crate::mfa::pending::PendingLogin;
use crate::proxy::ResponseBody;
use crate::runtime::Runtime;
use crate::secret::Secret;
use crate::sessions::service::{Holder, Started};
use crate::sessions::store::Origin;
use crate::sessions::users::Authenticated;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLogin {
    username: String,
    password: Secret<String>,
    mode: Option<String>,
}

/// How the client wants the result of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Delivery {
    /// JSON token pair (API clients).
    Tokens,
    /// JSON token pair bound to the key of the request's DPoP proof (SPEC 14), with a fresh
    /// `DPoP-Nonce` when nonces are required.
    DpopTokens { nonce: Option<HeaderValue> },
    /// Cookies and a JSON body without tokens (`"mode": "cookie"`).
    Cookies,
    /// Cookies and a 303 to a same-origin `return_to` (the HTML form).
    Redirect(String),
}

struct LoginAttempt {
    username: String,
    password: Secret<String>,
    delivery: Delivery,
}

impl Delivery {
    /// The delivery a pending second-factor login asked for.
    pub(super) fn from_pending(pending: &PendingLogin) -> Delivery {
        match pending.delivery.as_str() {
            "cookie" => Delivery::Cookies,
            "redirect" => Delivery::Redirect(csrf::safe_return_to(Some(&pending.return_to))),
            _ => Delivery::Tokens,
        }
    }

    /// Cookies are a browser's: a cross-site request must not set them (login CSRF).
    pub(super) fn sets_cookies(&self) -> bool {
        matches!(self, Delivery::Cookies | Delivery::Redirect(_))
    }

    /// The same delivery, bound to the key the request proved (`jkt`), if it proved one. Only
    /// a token pair can be: a browser's cookies come with no key.
    pub(super) fn bound(self, ctx: &RequestCtx<'_>, jkt: Option<&str>) -> Result<Delivery, GatewayError> {
        match (self, jkt) {
            (delivery, None) => Ok(delivery),
            (Delivery::Tokens | Delivery::DpopTokens { .. }, Some(_)) => Ok(Delivery::DpopTokens {
                nonce: binding::fresh_nonce(ctx),
            }),
            (_, Some(_)) => Err(GatewayError::BadRequest(
                "a DPoP proof binds tokens the client holds: ask for the token pair, not cookies",
            )),
        }
    }

    fn pending(&self, who: &Authenticated, now: u64) -> Option<PendingLogin> {
        let (name, return_to) = match self {
            // The second step proves its own key, if it binds the session.
            Delivery::Tokens | Delivery::DpopTokens { .. } => ("token", ""),
            Delivery::Cookies => ("cookie", ""),
            Delivery::Redirect(to) => ("redirect", to.as_str()),
        };
        PendingLogin::new(&who.sub, &who.role, name, return_to, now)
    }
}

/// What a login came to: a session, or a request for the second factor.
enum Outcome {
    LoggedIn(Response<ResponseBody>),
    SecondFactor(Response<ResponseBody>),
}

/// `POST /auth/login`, counted in `portcullis_logins_total{result}`.
pub(super) async fn login(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let mut from_form = None;
    let result = login_uncounted(ctx, request, target, &mut from_form).await;
    let label = match &result {
        Ok(Outcome::SecondFactor(_)) => "mfa_required",
        _ => login_result(&result),
    };
    ctx.shared.metrics.login(label);
    match (result, from_form) {
        (Err(error), Some(return_to)) if super::html::form_problem(&error).is_some() => {
            Ok(super::html::login_form_again(ctx, &return_to, &error))
        }
        (result, _) => result.map(|(Outcome::LoggedIn(response) | Outcome::SecondFactor(response))| response),
    }
}

/// `from_form`: set to the form's `return_to` once the request is known to be the HTML form.
async fn login_uncounted(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
    from_form: &mut Option<String>,
) -> Result<Outcome, GatewayError> {
    let (runtime, ip) = (ctx.runtime, ctx.client);
    let user_agent = user_agent(request.headers());
    let cross_site = !same_origin(runtime, request.headers(), target);
    let jkt = binding::proven_key(ctx, request.headers(), target)?;
    let attempt = read_attempt(runtime, request).await?;
    if let Delivery::Redirect(return_to) = &attempt.delivery {
        *from_form = Some(return_to.clone());
    }
    // Cookie logins are a CSRF target (login CSRF plants the attacker's session).
    if attempt.delivery.sets_cookies() && cross_site {
        return Err(GatewayError::CrossSiteRequest);
    }
    let delivery = attempt.delivery.clone().bound(ctx, jkt.as_deref())?;
    runtime
        .login_limits
        .check(ip, &attempt.username)
        .map_err(GatewayError::rate_limited)?;
    let who = check_password(ctx, &attempt).await?;
    let now = unix_now();
    let factors = mfa::factors(ctx, &who.sub).await?;
    if factors.any() {
        let pending = attempt
            .delivery
            .pending(&who, now)
            .ok_or(GatewayError::Internal)?;
        tracing::info!(target: "portcullis::audit", event = "login_second_factor", sub = %who.sub, %ip);
        return mfa::challenge(ctx, &pending, factors, None).map(Outcome::SecondFactor);
    }
    let origin = Origin {
        jkt,
        ..Origin::local(now)
    };
    let (session, access) = begin_session(ctx, &who, origin, user_agent).await?;
    tracing::info!(target: "portcullis::audit", event = "login_ok", sub = %who.sub, sid = %session.sid, %ip);
    let response = deliver(runtime, &delivery, &who, &access.token, &session.refresh_token);
    Ok(Outcome::LoggedIn(response))
}

/// A new session's tokens the way the client asked for them.
pub(super) fn deliver(
    runtime: &Runtime,
    delivery: &Delivery,
    who: &Authenticated,
    access_token: &str,
    refresh_token: &str,
) -> Response<ResponseBody> {
    match delivery {
        Delivery::Tokens => token_pair(runtime, "Bearer", access_token, refresh_token),
        Delivery::DpopTokens { nonce } => {
            let mut response = token_pair(runtime, "DPoP", access_token, refresh_token);
            if let Some(nonce) = nonce {
                response.headers_mut().insert(DPOP_NONCE, nonce.clone());
            }
            response
        }
        Delivery::Cookies => cookie_pair(runtime, who, access_token, refresh_token),
        Delivery::Redirect(to) => redirect_with_cookies(runtime, to, access_token, refresh_token),
    }
}

/// A new session for `who`, begun now as `origin` says, and its first access token: what
/// every way of logging in ends with.
pub(super) async fn begin_session(
    ctx: &RequestCtx<'_>,
    who: &Authenticated,
    origin: Origin,
    user_agent: Option<String>,
) -> Result<(Started, Issued), GatewayError> {
    let runtime = ctx.runtime;
    let now = unix_now();
    let lifetime = runtime.config.tokens.refresh_ttl.as_secs();
    let holder = Holder {
        sub: &who.sub,
        role: &who.role,
        ip: ctx.client.to_string(),
        user_agent,
        origin: &origin,
    };
    let session = ctx.shared.sessions.begin(holder, now, lifetime).await?;
    let grant = Grant {
        sub: &who.sub,
        role: &who.role,
        sid: &session.sid,
        idp: &origin.idp,
        auth_time: origin.auth_time,
        amr: &origin.amr,
        jkt: origin.jkt.as_deref(),
    };
    let access = runtime
        .tokens
        .issue_grant(&grant, now)
        .map_err(|_| GatewayError::Internal)?;
    Ok((session, access))
}

async fn read_attempt(runtime: &Runtime, request: Request<Incoming>) -> Result<LoginAttempt, GatewayError> {
    if body::kind(&request) == BodyKind::Form {
        let mut fields = body::form(request, runtime.config.server.header_read_timeout).await?;
        let mut take = |name: &str| {
            fields
                .iter()
                .position(|(n, _)| n == name)
                .map(|i| fields.swap_remove(i).1)
        };
        let username = take("username").ok_or(GatewayError::BadRequest("the form needs username"))?;
        let password = take("password").ok_or(GatewayError::BadRequest("the form needs password"))?;
        let return_to = csrf::safe_return_to(take("return_to").as_deref());
        return Ok(LoginAttempt {
            username,
            password: Secret::new(password),
            delivery: Delivery::Redirect(return_to),
        });
    }
    let login: JsonLogin = body::json(request, runtime.config.server.header_read_timeout).await?;
    let delivery = match login.mode.as_deref() {
        None | Some("token") => Delivery::Tokens,
        Some("cookie") => Delivery::Cookies,
        Some(_) => {
            return Err(GatewayError::BadRequest("mode must be \"token\" or \"cookie\""));
        }
    };
    Ok(LoginAttempt {
        username: login.username,
        password: login.password,
        delivery,
    })
}

async fn check_password(ctx: &RequestCtx<'_>, attempt: &LoginAttempt) -> Result<Authenticated, GatewayError> {
    let start = ctx.span_start();
    let checked = ctx
        .runtime
        .passwords
        .check(
            &ctx.shared.hash_pool,
            &attempt.username,
            attempt.password.expose(),
        )
        .await;
    let kind = crate::telemetry::export::Kind::Internal;
    ctx.finish_span("password hashing", kind, start, Vec::new(), false);
    checked.map_err(|error| {
        let ip = ctx.client;
        tracing::info!(target: "portcullis::audit", event = "login_failed", user = %attempt.username, %ip, reason = %error);
        GatewayError::from(error)
    })
}

/// SPEC 4's token pair, never cached; `token_type` is `DPoP` for a bound pair (SPEC 14).
fn token_pair(
    runtime: &Runtime,
    token_type: &str,
    access_token: &str,
    refresh_token: &str,
) -> Response<ResponseBody> {
    let body = json!({
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": runtime.tokens.ttl(),
        "refresh_token": refresh_token,
        "refresh_expires_in": runtime.config.tokens.refresh_ttl.as_secs(),
    });
    no_store(json(StatusCode::OK, body))
}

/// Cookie mode: the tokens only in `HttpOnly` cookies, the body says who logged in.
pub(super) fn cookie_pair(
    runtime: &Runtime,
    who: &Authenticated,
    access_token: &str,
    refresh_token: &str,
) -> Response<ResponseBody> {
    let body = json!({ "sub": who.sub, "role": who.role, "expires_in": runtime.tokens.ttl() });
    let mut response = no_store(json(StatusCode::OK, body));
    for cookie in runtime.session_cookies(access_token, refresh_token) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

pub(super) fn redirect_with_cookies(
    runtime: &Runtime,
    to: &str,
    access_token: &str,
    refresh_token: &str,
) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(
        LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in runtime.session_cookies(access_token, refresh_token) {
        headers.append(SET_COOKIE, cookie);
    }
    response
}

/// `GET /auth/me`: who the credential names.
pub(super) fn me<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let identity = identify(ctx, request.headers(), target)?.ok_or(GatewayError::AuthenticationRequired)?;
    let body = json!({
        "sub": identity.sub,
        "role": identity.role,
        "sid": identity.sid,
        "exp": identity.exp,
        "idp": identity.idp,
        "auth_time": identity.auth_time,
        "amr": identity.amr,
    });
    Ok(no_store(json(StatusCode::OK, body)))
}

pub(super) fn jwks(runtime: &Runtime) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(runtime.tokens.keys().jwks().into()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

pub(super) fn no_store(response: Response<Full<Bytes>>) -> Response<ResponseBody> {
    let mut response = response.map(Either::Right);
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Whether a browser request comes from this gateway's origin or an allowed one.
pub(super) fn same_origin(runtime: &Runtime, headers: &HeaderMap, target: &Target) -> bool {
    let allowed = &runtime.config.cookies.allowed_origins;
    csrf::same_origin(headers, target.authority.as_str(), allowed)
}

/// A bounded, printable copy of the User-Agent, for the session list.
pub(super) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().filter(|c| !c.is_control()).take(256).collect())
}
