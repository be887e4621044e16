//! The account page (SPEC 15): `GET /auth/account` for the browser's cookie session, and the
//! three forms on it (sign out one other device, this one, every one). Each form answers
//! with a redirect, so everything works without script; each is a cookie action, so it must
//! come from our own origin, like every other.

use http::header::{LOCATION, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::Fields;
use super::html::page;
use super::sessions::{caller, end_everywhere, end_own};
use crate::auth::tokens::unix_now;
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::pages::{AccountPage, ListedSession};
use crate::proxy::ResponseBody;

pub(super) const PAGE: &str = "/auth/account";

/// `GET /auth/account`; without a session, the login page, which comes back here.
pub(super) async fn show<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = match caller(ctx, request, target) {
        Ok(caller) => caller,
        Err(GatewayError::AuthenticationRequired | GatewayError::InvalidToken(_)) => {
            let location = HeaderValue::from_static("/auth/login?return_to=%2Fauth%2Faccount");
            return Err(GatewayError::LoginRequired { location });
        }
        Err(error) => return Err(error),
    };
    let timing = ctx.runtime.timing(unix_now());
    let sessions: Vec<ListedSession> = ctx
        .shared
        .sessions
        .list(&caller.sub, timing)
        .await?
        .into_iter()
        .map(|s| ListedSession {
            current: s.sid == caller.sid,
            id: s.sid,
            user_agent: s.user_agent,
            ip: s.ip,
            idp: s.origin.idp,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
        })
        .collect();
    let (totp, passkeys) = super::mfa::second_factors(ctx, &caller.sub).await?;
    let names: Option<Vec<String>> = passkeys.map(|keys| keys.into_iter().map(|key| key.name).collect());
    let notice = match super::query_param(request, "done").as_deref() {
        Some("revoked") => Some("That device is signed out."),
        _ => None,
    };
    let account = AccountPage {
        sub: &caller.sub,
        sessions: &sessions,
        totp,
        passkeys: names.as_deref(),
        notice,
    };
    Ok(page(ctx.runtime.pages.account(&account)))
}

/// `POST /auth/account/revoke` (form: `sid`): signs out another of the caller's sessions.
pub(super) async fn revoke(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, &request, target)?;
    let deadline = ctx.runtime.config.server.header_read_timeout;
    let sid = Fields::read(request, deadline, &["sid"])
        .await?
        .require("sid", "the form needs sid")?;
    // Someone else's session, or an unknown one: nothing happens, and nothing is disclosed.
    end_own(ctx, &caller, &sid).await?;
    Ok(see_other("/auth/account?done=revoked", Vec::new()))
}

/// `POST /auth/account/logout` (this session) and `/auth/account/logout-all` (every one):
/// the cookies are cleared and the browser goes to the login page.
pub(super) async fn sign_out<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
    everywhere: bool,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
    if everywhere {
        end_everywhere(ctx, &caller).await?;
    } else if ctx
        .shared
        .sessions
        .end(&caller.sid, ctx.runtime.timing(unix_now()))
        .await?
        .is_some()
    {
        tracing::info!(target: "portcullis::audit", event = "logout", sub = %caller.sub, sid = %caller.sid);
    }
    Ok(see_other(
        "/auth/login?return_to=%2Fauth%2Faccount",
        ctx.runtime.clearing_cookies(),
    ))
}

fn see_other(to: &'static str, cookies: Vec<HeaderValue>) -> Response<ResponseBody> {
    let mut response = Response::new(http_body_util::Either::Right(Default::default()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_static(to));
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
    response
}
