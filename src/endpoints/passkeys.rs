//! Passkeys (SPEC 13): registering one (signed in), listing and deleting one's own, and the
//! three ways to use one: a passwordless login (`amr` `["hwk"]`), the second factor of a
//! password login (`["pwd","hwk"]`), and a step-up of the caller's session.

use http::header::SET_COOKIE;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Delivery, deliver, no_store, same_origin};
use super::json;
use super::sessions::{caller, no_content};
use crate::auth::tokens::{LOCAL_AMR, unix_now};
use crate::auth::{CredentialKind, cookies};
use crate::config::WebauthnConfig;
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::mfa::PASSKEY_AMR;
use crate::mfa::pending::PendingLogin;
use crate::mfa::webauthn::{
    self, AssertionCredential, Ceremony, Purpose, RegistrationCredential, RelyingParty, StoredPasskey,
};
use crate::proxy::ResponseBody;
use crate::secret::Secret;
use crate::sessions::store::{FactorKind, FactorRecord, Origin, Store};

/// Longest passkey name kept.
const MAX_NAME_CHARS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFinish {
    state: String,
    credential: RegistrationCredential,
    name: Option<String>,
}

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

/// `POST /auth/passkeys/register/start`: creation options for a new passkey of the caller.
pub(super) async fn register_start(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (config, caller) = (config(ctx)?, caller(ctx, &request, Some(target))?);
    let now = unix_now();
    let mut ceremony = Ceremony::begin(Purpose::Register, now).ok_or(GatewayError::Internal)?;
    ceremony.sub = Some(caller.sub.clone());
    ceremony.user_handle = webauthn::user_handle(key(ctx), &caller.sub);
    let existing = passkey_ids(store(ctx), &caller.sub).await?;
    let rp = relying_party(config, target)?;
    let options = webauthn::creation_options(
        &rp.party(),
        &caller.sub,
        &ceremony.user_handle,
        &ceremony.challenge,
        &existing,
    );
    started(ctx, &ceremony, options)
}

/// `POST /auth/passkeys/register/finish {"state","credential","name"?}`: 201 with the new
/// passkey's id and name.
pub(super) async fn register_finish(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let config = config(ctx)?;
    let caller = caller(ctx, &request, Some(target))?;
    let body: RegisterFinish =
        super::body::json(request, ctx.runtime.config.server.header_read_timeout).await?;
    let now = unix_now();
    let ceremony = open(ctx, &body.state, Purpose::Register, now).await?;
    if ceremony.sub.as_deref() != Some(caller.sub.as_str()) {
        return Err(GatewayError::PasskeyRefused(
            "the ceremony was begun by someone else",
        ));
    }
    let rp = relying_party(config, target)?;
    let registered = webauthn::verify_registration(
        &rp.party(),
        &ceremony.challenge,
        &ceremony.user_handle,
        &body.credential,
    )
    .map_err(refused)?;
    if store(ctx).factor(&registered.id).await?.is_some() {
        return Err(GatewayError::PasskeyRefused("this passkey is registered already"));
    }
    let name = passkey_name(body.name.as_deref());
    let record = FactorRecord {
        id: registered.id.clone(),
        sub: caller.sub.clone(),
        kind: FactorKind::Passkey,
        label: name.clone(),
        data: serde_json::to_vec(&registered.passkey).map_err(|_| GatewayError::Internal)?,
        created_at: now,
        last_used_at: None,
    };
    if !store(ctx).put_factor(&record).await? {
        return Err(GatewayError::PasskeyRefused("this passkey is registered already"));
    }
    tracing::info!(target: "portcullis::audit", event = "passkey_registered", sub = %caller.sub, id = %record.id);
    let body = json!({ "id": record.id, "name": name, "created_at": now });
    Ok(no_store(json(StatusCode::CREATED, body)))
}

/// `GET /auth/passkeys`: the caller's passkeys.
pub(super) async fn list<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, None)?;
    let factors = store(ctx).factors_of(&caller.sub).await?;
    let listed: Vec<_> = factors
        .iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .map(|f| json!({ "id": f.id, "name": f.label, "created_at": f.created_at, "last_used_at": f.last_used_at }))
        .collect();
    Ok(no_store(json(StatusCode::OK, serde_json::Value::Array(listed))))
}

/// `DELETE /auth/passkeys/{id}`: only the caller's own; another's (or none) is 404.
pub(super) async fn delete<B>(
    ctx: &RequestCtx<'_>,
    request: &Request<B>,
    target: &Target,
    id: &str,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, Some(target))?;
    let own = store(ctx)
        .factor(id)
        .await?
        .is_some_and(|f| f.kind == FactorKind::Passkey && f.sub == caller.sub);
    if !own || !store(ctx).delete_factor(&caller.sub, id).await? {
        return Err(GatewayError::NoRoute);
    }
    tracing::info!(target: "portcullis::audit", event = "passkey_deleted", sub = %caller.sub, %id);
    Ok(no_content())
}

/// `POST /auth/passkeys/login/start`: request options for a passwordless login (any passkey of
/// this site), for the second factor of `mfa_token`'s login, or (`"step_up": true`) for the
/// caller's step-up; the latter two allow only that user's passkeys.
pub(super) async fn login_start(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let config = config(ctx)?;
    let cross_site = !same_origin(ctx.runtime, request.headers(), target);
    let headers = request.headers().clone();
    let body: LoginStart = match super::body::kind(&request) {
        super::body::BodyKind::Absent => LoginStart::default(),
        _ => super::body::json(request, ctx.runtime.config.server.header_read_timeout).await?,
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
    let rp = relying_party(config, target)?;
    let options = webauthn::request_options(&rp.party(), &ceremony.challenge, &allow);
    started(ctx, &ceremony, options)
}

/// `POST /auth/passkeys/login/finish {"state","credential"}`: finishes what `login/start` began.
pub(super) async fn login_finish(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let config = config(ctx)?;
    let user_agent = super::auth::user_agent(request.headers());
    let cross_site = !same_origin(ctx.runtime, request.headers(), target);
    let headers = request.headers().clone();
    let body: LoginFinish = super::body::json(request, ctx.runtime.config.server.header_read_timeout).await?;
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
    super::mfa::limit(ctx, &record.sub)?;
    let rp = relying_party(config, target)?;
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
            if delivery != Delivery::Tokens && cross_site {
                return Err(GatewayError::CrossSiteRequest);
            }
            let amr = match purpose {
                Purpose::SecondFactor => vec![LOCAL_AMR.to_string(), PASSKEY_AMR.to_string()],
                _ => vec![PASSKEY_AMR.to_string()],
            };
            log_in(
                ctx,
                &record.sub,
                ceremony.pending.as_ref(),
                amr,
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
    amr: Vec<String>,
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
    let who = super::mfa::user_in_good_standing(ctx, sub, pending.map(|p| p.role.as_str()))?;
    let origin = Origin {
        amr,
        ..Origin::local(now)
    };
    let (session, access) = super::auth::begin_session(ctx, &who, origin, user_agent).await?;
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
    let access = super::step_up::renew(ctx, &caller, vec![PASSKEY_AMR.to_string()]).await?;
    tracing::info!(target: "portcullis::audit", event = "step_up", sub = %caller.sub, sid = %caller.sid, ip = %ctx.client, with = "passkey");
    let runtime = ctx.runtime;
    let via_cookie = !headers.contains_key(http::header::AUTHORIZATION);
    let mut response = match via_cookie {
        true => no_store(json(
            StatusCode::OK,
            json!({ "sub": caller.sub, "expires_in": runtime.tokens.ttl() }),
        )),
        false => {
            let body =
                json!({ "access_token": access, "token_type": "Bearer", "expires_in": runtime.tokens.ttl() });
            no_store(json(StatusCode::OK, body))
        }
    };
    if via_cookie {
        let cookie = cookies::set(
            &runtime.config.cookies.access_name,
            &access,
            "/",
            runtime.tokens.ttl(),
        );
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The caller's session from request headers (bearer or same-origin cookie).
fn caller_of(
    ctx: &RequestCtx<'_>,
    headers: &http::HeaderMap,
    target: &Target,
) -> Result<std::sync::Arc<crate::auth::Identity>, GatewayError> {
    let mut request = Request::new(());
    *request.headers_mut() = headers.clone();
    let caller = caller(ctx, &request, Some(target))?;
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

/// The answer to a `start`: the options for the browser and the sealed state for `finish`.
fn started(
    ctx: &RequestCtx<'_>,
    ceremony: &Ceremony,
    options: serde_json::Value,
) -> Result<Response<ResponseBody>, GatewayError> {
    let state = ceremony.seal(key(ctx)).ok_or(GatewayError::Internal)?;
    Ok(no_store(json(
        StatusCode::OK,
        json!({ "publicKey": options, "state": state }),
    )))
}

async fn open(
    ctx: &RequestCtx<'_>,
    state: &str,
    purpose: Purpose,
    now: u64,
) -> Result<Ceremony, GatewayError> {
    let ceremony = Ceremony::open(key(ctx), state, Some(purpose), now).ok_or(
        GatewayError::PasskeyRefused("the ceremony state is invalid or expired"),
    )?;
    spend(ctx, &ceremony, now).await?;
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

/// A ceremony finishes once, on every replica.
async fn spend(ctx: &RequestCtx<'_>, ceremony: &Ceremony, now: u64) -> Result<(), GatewayError> {
    let timing = ctx.runtime.timing(now);
    match store(ctx)
        .use_once(&ceremony.once_key(), ceremony.keep_until(), timing)
        .await?
    {
        true => Ok(()),
        false => Err(GatewayError::PasskeyRefused("the ceremony was finished already")),
    }
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

async fn passkey_ids(store: &dyn Store, sub: &str) -> Result<Vec<String>, GatewayError> {
    let factors = store.factors_of(sub).await?;
    Ok(factors
        .into_iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .map(|f| f.id)
        .collect())
}

fn passkey_name(given: Option<&str>) -> String {
    let printable: String = given
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    match printable.trim() {
        "" => "Passkey".to_string(),
        name => name.to_string(),
    }
}

fn refused(error: webauthn::WebauthnError) -> GatewayError {
    tracing::info!(target: "portcullis::audit", event = "passkey_refused", reason = %error);
    GatewayError::PasskeyRefused("the passkey's answer does not verify")
}

/// The relying party for a request: `rp_id` from the config, the origin the browser is on.
struct Party {
    id: String,
    name: String,
    origin: String,
}

impl Party {
    fn party(&self) -> RelyingParty<'_> {
        RelyingParty {
            id: &self.id,
            name: &self.name,
            origin: &self.origin,
        }
    }
}

/// Passkeys are bound to `rp_id`: the request's host must be it or under it.
fn relying_party(config: &WebauthnConfig, target: &Target) -> Result<Party, GatewayError> {
    let host = target.host.as_str();
    let under = host == config.rp_id || host.ends_with(&format!(".{}", config.rp_id));
    if !under {
        return Err(GatewayError::PasskeyRefused(
            "this host is not under [webauthn] rp_id",
        ));
    }
    Ok(Party {
        id: config.rp_id.clone(),
        name: config.rp_name.clone(),
        origin: format!("https://{}", target.authority),
    })
}

fn config<'r>(ctx: &RequestCtx<'r>) -> Result<&'r WebauthnConfig, GatewayError> {
    ctx.runtime
        .config
        .webauthn
        .as_ref()
        .ok_or(GatewayError::PasskeysNotEnabled)
}

fn key<'r>(ctx: &RequestCtx<'r>) -> &'r Secret<[u8; 32]> {
    &ctx.runtime.tokens.keys().sealing_key
}

fn store<'r>(ctx: &RequestCtx<'r>) -> &'r dyn Store {
    ctx.shared.sessions.store().as_ref()
}
