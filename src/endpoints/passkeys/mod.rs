//! Passkeys (SPEC 13): registering one (signed in), listing and deleting one's own, and what
//! every passkey endpoint shares (the relying party, the ceremony state); using one is in
//! `sign_in`.

mod sign_in;

pub(super) use sign_in::{login_finish, login_start};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::auth::no_store;
use super::sessions::{caller, no_content};
use super::{json, store};
use crate::auth::tokens::unix_now;
use crate::config::WebauthnConfig;
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::mfa::webauthn::{self, Ceremony, Purpose, RegistrationCredential, RelyingParty};
use crate::proxy::ResponseBody;
use crate::secret::Secret;
use crate::sessions::store::{FactorKind, FactorRecord, Store};

/// Longest passkey name kept.
const MAX_NAME_CHARS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFinish {
    state: String,
    credential: RegistrationCredential,
    name: Option<String>,
}

/// `POST /auth/passkeys/register/start`: creation options for a new passkey of the caller.
pub(super) async fn register_start(
    ctx: &RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (config, caller) = (config(ctx)?, caller(ctx, &request, target)?);
    let now = unix_now();
    let mut ceremony = Ceremony::begin(Purpose::Register, now).ok_or(GatewayError::Internal)?;
    ceremony.sub = Some(caller.sub.clone());
    ceremony.user_handle = webauthn::user_handle(key(ctx), &caller.sub);
    let existing = passkey_ids(store(ctx), &caller.sub).await?;
    let rp = relying_party(ctx, config, target)?;
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
    let caller = caller(ctx, &request, target)?;
    let body: RegisterFinish =
        super::body::json(request, ctx.runtime.config.server.header_read_timeout).await?;
    let now = unix_now();
    let ceremony = open(ctx, &body.state, Purpose::Register, now).await?;
    if ceremony.sub.as_deref() != Some(caller.sub.as_str()) {
        return Err(GatewayError::PasskeyRefused(
            "the ceremony was begun by someone else",
        ));
    }
    let rp = relying_party(ctx, config, target)?;
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
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let caller = caller(ctx, request, target)?;
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
    let caller = caller(ctx, request, target)?;
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

/// Passkeys are bound to `rp_id`: the request's host must be it or under it, and a host the
/// gateway serves (`public_host`, a route's host, or a name on its certificate), since the
/// client chooses `Host`: a page on some other subdomain of `rp_id` must not be able to run
/// a ceremony as if it were the gateway.
fn relying_party(
    ctx: &RequestCtx<'_>,
    config: &WebauthnConfig,
    target: &Target,
) -> Result<Party, GatewayError> {
    let host = target.host.as_str();
    let under = host == config.rp_id || host.ends_with(&format!(".{}", config.rp_id));
    let public = ctx
        .runtime
        .config
        .server
        .public_host
        .as_ref()
        .is_some_and(|p| p.host().eq_ignore_ascii_case(host));
    if !under || !(public || ctx.runtime.serves_host(host)) {
        return Err(GatewayError::PasskeyRefused(
            "this host is not the gateway's under [webauthn] rp_id",
        ));
    }
    // Browsers leave the default port out of an origin.
    let origin = match target.authority.port_u16() {
        Some(port) if port != 443 => format!("https://{host}:{port}"),
        _ => format!("https://{host}"),
    };
    Ok(Party {
        id: config.rp_id.clone(),
        name: config.rp_name.clone(),
        origin,
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
