//! The one refresh-token rotation service, used by `POST /auth/refresh` and by the transparent
//! refresh of a proxied request alike: the same per-session limit, store rules, audit events
//! and metric labels, whichever path asked.

use std::net::IpAddr;

use crate::auth::dpop::DpopError;
use crate::auth::tokens::unix_now;
use crate::context::RequestCtx;
use crate::error::{GatewayError, refresh_result};
use crate::sessions::refresh_token;
use crate::sessions::service::RefreshError;

/// Which path asked for the rotation; recorded in the audit event, nothing else differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asker {
    /// `POST /auth/refresh`.
    Endpoint,
    /// A proxied request whose access cookie expired (`transparent_refresh`).
    Transparent,
}

/// A rotated session: the new pair and whose it is.
pub(crate) struct Rotated {
    pub sub: String,
    pub role: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// Retires `token` and issues its successor pair (SPEC 5.3), counting the outcome in
/// `portcullis_refreshes_total{result}`. `proven_key`: the thumbprint of the key the request's
/// DPoP proof was signed with; a session bound to a key refreshes only with it (SPEC 14).
pub(crate) async fn rotate(
    ctx: &RequestCtx<'_>,
    token: &str,
    asker: Asker,
    proven_key: Option<&str>,
) -> Result<Rotated, GatewayError> {
    let result = rotate_uncounted(ctx, token, asker, proven_key).await;
    ctx.shared.metrics.refresh(refresh_result(&result));
    result
}

async fn rotate_uncounted(
    ctx: &RequestCtx<'_>,
    token: &str,
    asker: Asker,
    proven_key: Option<&str>,
) -> Result<Rotated, GatewayError> {
    let (runtime, ip) = (ctx.runtime, ctx.client);
    // Keyed on the session the token names: a client cannot spread one session's refreshes
    // over several budgets, and an unparseable token never reaches the store anyway.
    if let Some(presented) = refresh_token::parse(token) {
        runtime
            .refresh_limits
            .check(&presented.sid)
            .map_err(GatewayError::rate_limited)?;
    }
    let now = unix_now();
    let standing = |session: &_| runtime.passwords.standing(session);
    let refreshed = ctx
        .shared
        .sessions
        .refresh(token, runtime.timing(now), standing, proven_key)
        .await
        .map_err(|error| refresh_failed(error, ip, asker, proven_key))?;
    let access = runtime
        .tokens
        .issue_grant(&refreshed.grant(), now)
        .map_err(|_| GatewayError::Internal)?;
    let transparent = asker == Asker::Transparent;
    tracing::info!(target: "portcullis::audit", event = "refresh", sub = %refreshed.sub, sid = %refreshed.sid, %ip, transparent);
    Ok(Rotated {
        sub: refreshed.sub,
        role: refreshed.role,
        access_token: access.token,
        refresh_token: refreshed.refresh_token,
    })
}

fn refresh_failed(error: RefreshError, ip: IpAddr, asker: Asker, proven_key: Option<&str>) -> GatewayError {
    match error {
        RefreshError::WrongKey if proven_key.is_none() => GatewayError::DpopProofRefused(DpopError::Missing),
        RefreshError::WrongKey => GatewayError::DpopProofRefused(DpopError::WrongKey),
        RefreshError::Store(_) => GatewayError::StoreUnavailable,
        RefreshError::Reuse { sid, sub } => {
            let transparent = asker == Asker::Transparent;
            tracing::warn!(target: "portcullis::audit", event = "refresh_reuse", %sub, %sid, %ip, transparent);
            GatewayError::RefreshReuse
        }
        RefreshError::Invalid | RefreshError::Ended | RefreshError::Barred => GatewayError::InvalidGrant,
    }
}
