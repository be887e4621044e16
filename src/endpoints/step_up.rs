//! Step-up (SPEC 13, RFC 9470): the holder of a session proves who they are again (the
//! password, and the second factor when enrolled), which renews `auth_time` and `amr` of the
//! *same* session: no new session, the refresh token lineage untouched. The answer is a new
//! access token that says so (a cookie, or JSON for an API client); later refreshes carry it.

use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::auth::no_store;
use super::body::{BodyKind, Fields};
use super::html::page;
use super::sessions::caller;
use super::{json, mfa, query_param};
use crate::auth::csrf;
use crate::auth::tokens::{Grant, LOCAL_AMR, LOCAL_IDP, unix_now};
use crate::auth::{Identity, cookies};
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::mfa::OTP_AMR;
use crate::pages::StepUpPage;
use crate::proxy::ResponseBody;
use crate::secret::Secret;

/// `GET /auth/step-up?return_to=/path[&acr_values=mfa]`: the page.
pub(super) async fn page_for<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
    let return_to = csrf::safe_return_to(query_param(request, "return_to").as_deref());
    let factors = mfa::factors(ctx, &caller.sub).await?;
    let code = caller.idp == LOCAL_IDP && factors.totp;
    let wants_mfa = query_param(request, "acr_values").is_some_and(|v| v.split(' ').any(|v| v == "mfa"));
    let blocked = if caller.idp != LOCAL_IDP {
        Some("This session began through an identity provider: log out and sign in through it again.")
    } else if wants_mfa && !factors.any() {
        Some("This page needs a second factor, and none is enrolled for you yet.")
    } else {
        None
    };
    let reason = match wants_mfa {
        true => "The page you asked for needs a recent sign-in with a second factor.",
        false => "The page you asked for needs a recent sign-in.",
    };
    let page_values = StepUpPage {
        sub: &caller.sub,
        return_to: &return_to,
        code,
        passkeys: factors.passkeys,
        reason,
        blocked,
    };
    Ok(page(ctx.runtime.pages.step_up(&page_values)))
}

/// `POST /auth/step-up` with `password` (and `code` when a TOTP is enrolled), as the page's
/// form or as JSON.
pub(super) async fn step_up(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, &request, target)?;
    let via_cookie = !request.headers().contains_key(http::header::AUTHORIZATION);
    let deadline = ctx.runtime.config.server.header_read_timeout;
    let mut fields = Fields::read(request, deadline, &["password", "code", "return_to"]).await?;
    let password = Secret::new(fields.require("password", "the body needs password")?);
    let code = fields.take("code");
    if caller.idp != LOCAL_IDP {
        return Err(GatewayError::BadRequest(
            "this session began through an identity provider: sign in through it again",
        ));
    }
    mfa::limit(ctx, &caller.sub)?;
    let amr = prove_again(ctx, &caller, &password, code.as_deref()).await?;
    let access = renew(ctx, &caller, amr).await?;
    tracing::info!(target: "portcullis::audit", event = "step_up", sub = %caller.sub, sid = %caller.sid, ip = %ctx.client);
    let runtime = ctx.runtime;
    let cookie = || {
        cookies::set(
            &runtime.config.cookies.access_name,
            &access,
            "/",
            runtime.tokens.ttl(),
        )
    };
    Ok(match (fields.kind, via_cookie) {
        (BodyKind::Form, _) => {
            let to = csrf::safe_return_to(fields.take("return_to").as_deref());
            let mut response = Response::new(http_body_util::Either::Right(Default::default()));
            *response.status_mut() = StatusCode::SEE_OTHER;
            let headers = response.headers_mut();
            headers.insert(
                LOCATION,
                HeaderValue::from_str(&to).unwrap_or(HeaderValue::from_static("/")),
            );
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(SET_COOKIE, cookie());
            response
        }
        (_, via_cookie) => renewed(ctx, &caller, &access, via_cookie),
    })
}

/// The answer to a step-up by script: the new access token as the access cookie for a cookie
/// session, else in the body. Password and passkey step-ups both end here.
pub(super) fn renewed(
    ctx: &RequestCtx<'_>,
    caller: &Identity,
    access: &str,
    via_cookie: bool,
) -> Response<ResponseBody> {
    let ttl = ctx.runtime.tokens.ttl();
    if !via_cookie {
        // A bound session's renewed token is bound to the same key (SPEC 14).
        let token_type = if caller.jkt.is_some() { "DPoP" } else { "Bearer" };
        let body = json!({ "access_token": access, "token_type": token_type, "expires_in": ttl });
        return no_store(json(StatusCode::OK, body));
    }
    let body = json!({ "sub": caller.sub, "role": caller.role, "expires_in": ttl });
    let mut response = no_store(json(StatusCode::OK, body));
    let cookie = cookies::set(&ctx.runtime.config.cookies.access_name, access, "/", ttl);
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
}

/// Checks the password of the session's user and, when they have a TOTP, a code; the
/// session's new `amr`.
async fn prove_again(
    ctx: &RequestCtx<'_>,
    caller: &Identity,
    password: &Secret<String>,
    code: Option<&str>,
) -> Result<Vec<String>, GatewayError> {
    let checked = ctx
        .runtime
        .passwords
        .check(&ctx.shared.hash_pool, &caller.sub, password.expose())
        .await;
    let ip = ctx.client;
    let who = checked.inspect_err(|error| {
        tracing::info!(target: "portcullis::audit", event = "step_up_failed", sub = %caller.sub, %ip, reason = %error);
    })?;
    if who.sub != caller.sub {
        return Err(GatewayError::InvalidCredentials);
    }
    let mut amr = vec![LOCAL_AMR.to_string()];
    if mfa::factors(ctx, &caller.sub).await?.totp {
        let code = code.ok_or(GatewayError::BadRequest(
            "a TOTP is enrolled: the body needs code",
        ))?;
        mfa::check_code(ctx, &caller.sub, code).await?;
        amr.push(OTP_AMR.to_string());
    }
    Ok(amr)
}

/// Renews the session's authentication in the store and signs an access token that carries it.
pub(super) async fn renew(
    ctx: &RequestCtx<'_>,
    caller: &Identity,
    amr: Vec<String>,
) -> Result<String, GatewayError> {
    let now = unix_now();
    let store = ctx.shared.sessions.store();
    let renewed = store
        .renew_authentication(&caller.sid, now, &amr, ctx.runtime.timing(now))
        .await?;
    if !renewed {
        return Err(GatewayError::InvalidToken(crate::auth::TokenError::Revoked));
    }
    let grant = Grant {
        sub: &caller.sub,
        role: &caller.role,
        sid: &caller.sid,
        idp: LOCAL_IDP,
        auth_time: now,
        amr: &amr,
        // A bound session's renewed token stays bound to the same key.
        jkt: caller.jkt.as_deref(),
    };
    let issued = ctx
        .runtime
        .tokens
        .issue_grant(&grant, now)
        .map_err(|_| GatewayError::Internal)?;
    Ok(issued.token)
}
