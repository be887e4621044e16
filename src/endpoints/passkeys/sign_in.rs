//! Using a passkey: a passwordless login (`amr` `["hwk"]`), the second factor of a password
//! login (`["pwd","hwk"]`), or a step-up of the caller's session.

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{config, key, passkey_ids, refused, relying_party, spend, started};
use crate::auth::CredentialKind;
use crate::auth::tokens::{LOCAL_AMR, unix_now};
use crate::context::{RequestCtx, Target};
use crate::endpoints::auth::{Delivery, deliver, same_origin};
use crate::endpoints::sessions::caller;
use crate::endpoints::store;
use crate::error::GatewayError;
use crate::mfa::PASSKEY_AMR;
use crate::mfa::pending::PendingLogin;
use crate::mfa::webauthn::{self, AssertionCredential, Ceremony, Purpose, StoredPasskey};
use crate::proxy::ResponseBody;
use crate::sessions::store::{FactorKind, FactorRecord, Origin, Store};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoginStart {
    /// `token` (default) or `cookie`, for a passwordless login.
    mode: Option<String>,
    /// The second factor of this password login.
    mfa_token: Option<String>,
    /// Renew the caller's own session.
    #[serde(default)]
    step_up: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFinish {
    state: String,
    credential: AssertionCredential,
}

/// `POST /auth/passkeys/login/start`: request options for a passwordless login (any passkey of
/// this site), for the second factor of `mfa_token`'s login, or (`"step_up": true`) for the
/// caller's step-up; the latter two allow only that user's passkeys.
pub(in crate::endpoints) async fn login_start(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let config = config(ctx)?;
    let cross_site = !same_origin(ctx.runtime, request.headers(), target);
    let headers = request.headers().clone();
    let body: LoginStart = match crate::endpoints::body::kind(&request) {
        crate::endpoints::body::BodyKind::Absent => LoginStart::default(),
        _ => crate::endpoints::body::json(request, ctx.runtime.config.server.header_read_timeout).await?,
    };
    let now = unix_now();
    let ceremony = match (&body.mfa_token, body.step_up) {
        (Some(token), false) => {
            let pending = PendingLogin::open(key(ctx), token, now).ok_or(GatewayError::InvalidMfaToken)?;
            with_sub(Purpose::SecondFactor, &pending.sub.clone(), now, |c| {
                c.pending = Some(pending)
            })?
        }
        (None, true) => {
            let caller = caller_of(ctx, &headers, target)?;
            with_sub(Purpose::StepUp, &caller.sub, now, |c| {
                c.sid = Some(caller.sid.clone())
            })?
        }
        (None, false) => {
            let delivery = match body.mode.as_deref() {
                None | Some("token") => "token",
                Some("cookie") if !cross_site => "cookie",
                Some("cookie") => return Err(GatewayError::CrossSiteRequest),
                Some(_) => return Err(GatewayError::BadRequest("mode must be \"token\" or \"cookie\"")),
            };
            let mut ceremony = Ceremony::begin(Purpose::Login, now).ok_or(GatewayError::Internal)?;
            ceremony.delivery = delivery.to_string();
            ceremony
        }
        (Some(_), true) => return Err(GatewayError::BadRequest("give mfa_token or step_up, not both")),
    };
    let allow = match &ceremony.sub {
        Some(sub) => passkey_ids(store(ctx), sub).await?,
        None => Vec::new(),
    };
    let rp = relying_party(ctx, config, target)?;
    let options = webauthn::request_options(&rp.party(), &ceremony.challenge, &allow);
    started(ctx, &ceremony, options)
}

/// `POST /auth/passkeys/login/finish {"state","credential"}`: finishes what `login/start` began.
pub(in crate::endpoints) async fn login_finish(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let config = config(ctx)?;
    let user_agent = crate::endpoints::auth::user_agent(request.headers());
    let cross_site = !same_origin(ctx.runtime, request.headers(), target);
    let headers = request.headers().clone();
    let jkt = crate::caller::binding::proven_key(ctx, &headers, target)?;
    let body: LoginFinish =
        crate::endpoints::body::json(request, ctx.runtime.config.server.header_read_timeout).await?;
    let now = unix_now();
    let ceremony = open_any(ctx, &body.state, now).await?;
    let (record, passkey) = passkey_of(store(ctx), &body.credential.id).await?;
    if ceremony.sub.as_ref().is_some_and(|sub| *sub != record.sub) {
        return Err(GatewayError::PasskeyRefused("this passkey is not the user's"));
    }
    if ceremony.purpose == Purpose::Login && body.credential.response.user_handle.is_none() {
        return Err(GatewayError::PasskeyRefused(
            "a passwordless login needs a discoverable passkey",
        ));
    }
    crate::endpoints::mfa::limit(ctx, &record.sub)?;
    let rp = relying_party(ctx, config, target)?;
    let count = webauthn::verify_assertion(&rp.party(), &ceremony.challenge, &passkey, &body.credential)
        .map_err(refused)?;
    used(store(ctx), record.clone(), passkey, count, now).await?;
    match ceremony.purpose {
        Purpose::StepUp => step_up(ctx, &ceremony, &headers, target).await,
        purpose => {
            let delivery = match &ceremony.pending {
                Some(pending) => Delivery::from_pending(pending),
                None if ceremony.delivery == "cookie" => Delivery::Cookies,
                None => Delivery::Tokens,
            };
            if delivery.sets_cookies() && cross_site {
                return Err(GatewayError::CrossSiteRequest);
            }
            let delivery = delivery.bound(ctx, jkt.as_deref())?;
            let amr = match purpose {
                Purpose::SecondFactor => vec![LOCAL_AMR.to_string(), PASSKEY_AMR.to_string()],
                _ => vec![PASSKEY_AMR.to_string()],
            };
            let origin = Origin {
                amr,
                jkt,
                ..Origin::local(now)
            };
            log_in(
                ctx,
                &record.sub,
                ceremony.pending.as_ref(),
                origin,
                &delivery,
                user_agent,
            )
            .await
        }
    }
}

/// Begins a session for `sub` (who must still be in the users file), after a passkey.
async fn log_in(
    ctx: &RequestCtx<'_>,
    sub: &str,
    pending: Option<&PendingLogin>,
    origin: Origin,
    delivery: &Delivery,
    user_agent: Option<String>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let now = unix_now();
    if let Some(pending) = pending {
        let keep_until = pending.issued_at + crate::mfa::pending::LIFETIME_SECS;
        let once = format!("mfa-token:{}", pending.id);
        if !store(ctx)
            .use_once(&once, keep_until, ctx.runtime.timing(now))
            .await?
        {
            return Err(GatewayError::InvalidMfaToken);
        }
    }
    let who = crate::endpoints::mfa::user_in_good_standing(ctx, sub, pending.map(|p| p.role.as_str()))?;
    let (session, access) = crate::endpoints::auth::begin_session(ctx, &who, origin, user_agent).await?;
    tracing::info!(target: "portcullis::audit", event = "login_ok", sub = %who.sub, sid = %session.sid, ip = %ctx.client, second_factor = "passkey");
    ctx.shared.metrics.login("ok");
    Ok(deliver(
        ctx.runtime,
        delivery,
        &who,
        &access.token,
        &session.refresh_token,
    ))
}

/// A passkey step-up of the caller's own session: `amr` becomes `["hwk"]`.
async fn step_up(
    ctx: &RequestCtx<'_>,
    ceremony: &Ceremony,
    headers: &http::HeaderMap,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller_of(ctx, headers, target)?;
    if ceremony.sid.as_deref() != Some(caller.sid.as_str()) {
        return Err(GatewayError::PasskeyRefused(
            "the step-up was begun for another session",
        ));
    }
    let access = crate::endpoints::step_up::renew(ctx, &caller, vec![PASSKEY_AMR.to_string()]).await?;
    tracing::info!(target: "portcullis::audit", event = "step_up", sub = %caller.sub, sid = %caller.sid, ip = %ctx.client, with = "passkey");
    let via_cookie = !headers.contains_key(http::header::AUTHORIZATION);
    Ok(crate::endpoints::step_up::renewed(
        ctx, &caller, &access, via_cookie,
    ))
}

/// The caller's session from request headers (bearer or same-origin cookie).
fn caller_of(
    ctx: &RequestCtx<'_>,
    headers: &http::HeaderMap,
    target: &Target,
) -> Result<std::sync::Arc<crate::auth::Identity>, GatewayError> {
    let mut request = Request::new(());
    *request.headers_mut() = headers.clone();
    let caller = caller(ctx, &request, target)?;
    match caller.kind {
        CredentialKind::Session => Ok(caller),
        _ => Err(GatewayError::AuthenticationRequired),
    }
}

fn with_sub(
    purpose: Purpose,
    sub: &str,
    now: u64,
    more: impl FnOnce(&mut Ceremony),
) -> Result<Ceremony, GatewayError> {
    let mut ceremony = Ceremony::begin(purpose, now).ok_or(GatewayError::Internal)?;
    ceremony.sub = Some(sub.to_string());
    more(&mut ceremony);
    Ok(ceremony)
}

async fn open_any(ctx: &RequestCtx<'_>, state: &str, now: u64) -> Result<Ceremony, GatewayError> {
    let ceremony = Ceremony::open(key(ctx), state, None, now)
        .filter(|c| c.purpose != Purpose::Register)
        .ok_or(GatewayError::PasskeyRefused(
            "the ceremony state is invalid or expired",
        ))?;
    spend(ctx, &ceremony, now).await?;
    Ok(ceremony)
}

async fn passkey_of(store: &dyn Store, id: &str) -> Result<(FactorRecord, StoredPasskey), GatewayError> {
    let record = store.factor(id).await?.filter(|f| f.kind == FactorKind::Passkey);
    let record = record.ok_or(GatewayError::PasskeyRefused(
        "this passkey is not registered here",
    ))?;
    let passkey = serde_json::from_slice(&record.data).map_err(|_| GatewayError::Internal)?;
    Ok((record, passkey))
}

/// Records the passkey's new signature count and when it was used.
async fn used(
    store: &dyn Store,
    mut record: FactorRecord,
    mut passkey: StoredPasskey,
    count: u32,
    now: u64,
) -> Result<(), GatewayError> {
    passkey.sign_count = count;
    record.data = serde_json::to_vec(&passkey).map_err(|_| GatewayError::Internal)?;
    record.last_used_at = Some(now);
    store.put_factor(&record).await?;
    Ok(())
}
