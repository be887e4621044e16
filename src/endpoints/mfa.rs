//! TOTP second factors (SPEC 13): enrolment, confirmation with recovery codes, removal, and
//! the second step of a password login (`POST /auth/login/mfa`). Codes are rate limited like
//! passwords, per client address and per user.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::auth::{Delivery, deliver, same_origin};
use super::body::{BodyKind, Fields};
use super::sessions::caller;
use super::{json, store};
use crate::auth::Identity;
use crate::auth::tokens::{LOCAL_AMR, unix_now};
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::mfa::pending::PendingLogin;
use crate::mfa::{OTP_AMR, Totp};
use crate::pages::{ListedPasskey, SecondFactorPage};
use crate::proxy::ResponseBody;
use crate::sessions::service::Standing;
use crate::sessions::store::{FactorKind, FactorRecord, Origin};
use crate::sessions::users::Authenticated;

/// `GET /auth/mfa`: the page where the signed-in user sets up an authenticator app and
/// passkeys.
pub(super) async fn page<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
    let (totp, passkeys) = second_factors(ctx, &caller.sub).await?;
    let passkeys = passkeys.as_deref();
    Ok(super::html::page(ctx.runtime.pages.factors(
        &caller.sub,
        totp,
        passkeys,
    )))
}

/// What the pages show of `sub`'s second factors: whether a TOTP is set up (`None` without
/// `[mfa]`) and their passkeys (`None` without `[webauthn]`).
pub(super) async fn second_factors(
    ctx: &RequestCtx<'_>,
    sub: &str,
) -> Result<(Option<bool>, Option<Vec<ListedPasskey>>), GatewayError> {
    let stored = store(ctx).factors_of(sub).await?;
    let totp = ctx
        .runtime
        .totp
        .as_ref()
        .map(|_| Factors::of(ctx, &stored))
        .transpose()?
        .map(|f| f.totp);
    let passkeys = stored
        .into_iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .map(|f| ListedPasskey {
            id: f.id,
            name: f.label,
        })
        .collect();
    Ok((totp, ctx.runtime.config.webauthn.as_ref().map(|_| passkeys)))
}

/// `POST /auth/mfa/totp/enroll`: a new secret for the caller's app, unconfirmed.
pub(super) async fn enroll(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (caller, totp) = (caller(ctx, &request, target)?, totp(ctx)?);
    let enrolment = totp.enroll(store(ctx), &caller.sub, unix_now()).await?;
    tracing::info!(target: "portcullis::audit", event = "totp_enrolment_begun", sub = %caller.sub);
    let body = json!({ "secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri });
    Ok(super::auth::no_store(json(StatusCode::OK, body)))
}

/// `POST /auth/mfa/totp/confirm {"code"}`: the first code proves the app holds the secret;
/// the answer carries the ten recovery codes, the only time they are shown.
pub(super) async fn confirm(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (caller, code) = caller_and_code(ctx, request, target).await?;
    let timing = ctx.runtime.timing(unix_now());
    let codes = totp(ctx)?.confirm(store(ctx), &caller.sub, &code, timing).await?;
    tracing::info!(target: "portcullis::audit", event = "totp_enrolled", sub = %caller.sub);
    let body = json!({ "recovery_codes": codes });
    Ok(super::auth::no_store(json(StatusCode::OK, body)))
}

/// `DELETE /auth/mfa/totp {"code"}`: only with a current code (or a recovery code), so a
/// stolen session alone cannot take the second factor away.
pub(super) async fn remove(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (caller, code) = caller_and_code(ctx, request, target).await?;
    let timing = ctx.runtime.timing(unix_now());
    totp(ctx)?.remove(store(ctx), &caller.sub, &code, timing).await?;
    tracing::info!(target: "portcullis::audit", event = "totp_removed", sub = %caller.sub);
    Ok(super::sessions::no_content())
}

/// `POST /auth/login/mfa {"mfa_token","code"}` (JSON or the code page's form): finishes the
/// password login the token names, with `amr` `["pwd","otp"]`.
pub(super) async fn finish_login(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let runtime = ctx.runtime;
    let cross_site = !same_origin(runtime, request.headers(), target);
    let user_agent = super::auth::user_agent(request.headers());
    let jkt = crate::caller::binding::proven_key(ctx, request.headers(), target)?;
    let deadline = runtime.config.server.header_read_timeout;
    let mut fields = Fields::read(request, deadline, &["mfa_token", "code"]).await?;
    let token = fields.require("mfa_token", "the body needs mfa_token")?;
    let code = fields.require("code", "the body needs code")?;
    let now = unix_now();
    let key = &runtime.tokens.keys().sealing_key;
    let pending = PendingLogin::open(key, &token, now).ok_or(GatewayError::InvalidMfaToken)?;
    let delivery = Delivery::from_pending(&pending);
    if delivery.sets_cookies() && cross_site {
        return Err(GatewayError::CrossSiteRequest);
    }
    let delivery = delivery.bound(ctx, jkt.as_deref())?;
    limit(ctx, &pending.sub)?;
    // Each token is one attempt: spent before the code is looked at, so a code is never
    // used up by a token that can no longer finish; a wrong code gets a new token.
    let keep_until = pending.issued_at + crate::mfa::pending::LIFETIME_SECS;
    let spent = store(ctx)
        .use_once(
            &format!("mfa-token:{}", pending.id),
            keep_until,
            runtime.timing(now),
        )
        .await?;
    if !spent {
        return Err(GatewayError::InvalidMfaToken);
    }
    match check_code_unlimited(ctx, &pending.sub, &code).await {
        Ok(()) => {}
        Err(GatewayError::InvalidCode) => return another_attempt(ctx, &pending, now).await,
        Err(error) => return Err(error),
    }
    let who = user_in_good_standing(ctx, &pending.sub, Some(&pending.role))?;
    let origin = Origin {
        amr: vec![LOCAL_AMR.to_string(), OTP_AMR.to_string()],
        jkt,
        ..Origin::local(now)
    };
    let (session, access) = super::auth::begin_session(ctx, &who, origin, user_agent).await?;
    let ip = ctx.client;
    tracing::info!(target: "portcullis::audit", event = "login_ok", sub = %who.sub, sid = %session.sid, %ip, second_factor = "totp");
    ctx.shared.metrics.login("ok");
    Ok(deliver(
        runtime,
        &delivery,
        &who,
        &access.token,
        &session.refresh_token,
    ))
}

/// A code of `sub`, rate limited like a password (per address and per user), audited when wrong.
pub(super) async fn check_code(ctx: &RequestCtx<'_>, sub: &str, code: &str) -> Result<(), GatewayError> {
    limit(ctx, sub)?;
    check_code_unlimited(ctx, sub, code).await
}

/// Attempts at codes count against the login limits of the address and the user.
pub(super) fn limit(ctx: &RequestCtx<'_>, sub: &str) -> Result<(), GatewayError> {
    ctx.runtime
        .login_limits
        .check(ctx.client, sub)
        .map_err(GatewayError::rate_limited)
}

async fn check_code_unlimited(ctx: &RequestCtx<'_>, sub: &str, code: &str) -> Result<(), GatewayError> {
    let (ip, timing) = (ctx.client, ctx.runtime.timing(unix_now()));
    totp(ctx)?
        .check(store(ctx), sub, code, timing)
        .await
        .inspect_err(|error| {
            tracing::info!(target: "portcullis::audit", event = "login_failed", user = %sub, %ip, reason = %error);
        })
        .map_err(GatewayError::from)
}

/// A wrong code: 401 `invalid_code` with a new `mfa_token` for the next attempt (the
/// second-factor page again, saying so, for a browser).
async fn another_attempt(
    ctx: &RequestCtx<'_>,
    pending: &PendingLogin,
    now: u64,
) -> Result<Response<ResponseBody>, GatewayError> {
    let next = PendingLogin::new(
        &pending.sub,
        &pending.role,
        &pending.delivery,
        &pending.return_to,
        now,
    )
    .ok_or(GatewayError::Internal)?;
    let factors = factors(ctx, &pending.sub).await?;
    challenge(ctx, &next, factors, Some(GatewayError::InvalidCode))
}

/// `sub` as the users file says now (disabled or gone since: refused); `fallback_role` when
/// a password checker, not a file, holds the users, and `None` refuses then.
pub(super) fn user_in_good_standing(
    ctx: &RequestCtx<'_>,
    sub: &str,
    fallback_role: Option<&str>,
) -> Result<Authenticated, GatewayError> {
    let role = match (ctx.runtime.passwords.standing_of(sub), fallback_role) {
        (Standing::Active { role }, _) => role,
        (Standing::Unknown, Some(role)) => role.to_string(),
        _ => return Err(GatewayError::InvalidCredentials),
    };
    Ok(Authenticated {
        sub: sub.to_string(),
        role,
    })
}

async fn caller_and_code(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<(Arc<Identity>, String), GatewayError> {
    let caller = caller(ctx, &request, target)?;
    let deadline = ctx.runtime.config.server.header_read_timeout;
    let mut fields = Fields::read(request, deadline, &["code"]).await?;
    if fields.kind != BodyKind::Json {
        return Err(GatewayError::UnsupportedMediaType);
    }
    let code = fields.require("code", "the body needs code")?;
    limit(ctx, &caller.sub)?;
    Ok((caller, code))
}

pub(super) fn totp<'r>(ctx: &RequestCtx<'r>) -> Result<&'r Totp, GatewayError> {
    ctx.runtime.totp.as_ref().ok_or(GatewayError::MfaNotEnabled)
}

/// The second factors `sub` can give after the password.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Factors {
    /// A confirmed TOTP, while `[mfa]` is configured.
    pub totp: bool,
    /// A passkey, while `[webauthn]` is configured.
    pub passkeys: bool,
}

impl Factors {
    /// What the stored factors of one user (`factors_of`) allow.
    fn of(ctx: &RequestCtx<'_>, stored: &[FactorRecord]) -> Result<Factors, GatewayError> {
        let passkeys =
            ctx.runtime.config.webauthn.is_some() && stored.iter().any(|f| f.kind == FactorKind::Passkey);
        let mut totp = false;
        if let Some(vault) = &ctx.runtime.totp {
            for record in stored.iter().filter(|f| f.kind == FactorKind::Totp) {
                totp |= vault.confirmed(record)?;
            }
        }
        Ok(Factors { totp, passkeys })
    }

    pub(super) fn any(self) -> bool {
        self.totp || self.passkeys
    }
}

pub(super) async fn factors(ctx: &RequestCtx<'_>, sub: &str) -> Result<Factors, GatewayError> {
    Factors::of(ctx, &store(ctx).factors_of(sub).await?)
}

/// SPEC 13's answer to a password that needs its second factor: 401 `mfa_required` with the
/// `mfa_token` for a script, the second-factor page for the login form.
pub(super) fn challenge(
    ctx: &RequestCtx<'_>,
    pending: &PendingLogin,
    factors: Factors,
    problem: Option<GatewayError>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let key = &ctx.runtime.tokens.keys().sealing_key;
    let token = pending.seal(key).ok_or(GatewayError::Internal)?;
    let message = problem.as_ref().map(ToString::to_string);
    if pending.delivery == "redirect" {
        let page = SecondFactorPage {
            mfa_token: &token,
            return_to: &pending.return_to,
            code: factors.totp,
            passkeys: factors.passkeys,
            problem: message.as_deref(),
        };
        let mut response = super::html::page(ctx.runtime.pages.second_factor(&page));
        if problem.is_some() {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        return Ok(response);
    }
    let methods: Vec<&str> = [("totp", factors.totp), ("passkey", factors.passkeys)]
        .into_iter()
        .filter_map(|(name, has)| has.then_some(name))
        .collect();
    let body = match problem {
        Some(problem) => {
            json!({ "error": problem.code(), "message": problem.to_string(), "mfa_token": token, "methods": methods })
        }
        None => json!({
            "error": "mfa_required",
            "message": "a second factor is required: POST /auth/login/mfa with this mfa_token and a code",
            "mfa_token": token,
            "methods": methods,
        }),
    };
    Ok(super::auth::no_store(json(StatusCode::UNAUTHORIZED, body)))
}
