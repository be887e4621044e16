//! Phase 6: the request goes to one of the route's upstream endpoints through its pool (with
//! the retries it allows), within the route's timeout; a WebSocket upgrade the upstream
//! accepts becomes a tunnel.

use http::{Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::proxy::headers;
use crate::proxy::upgrade::{self, TunnelGuard};
use crate::proxy::{RequestBody, ResponseBody};
use crate::routes::Route;

pub(super) async fn forward(
    ctx: &RequestCtx<'_>,
    route: &Route,
    upstream: Request<RequestBody>,
    on_upgrade: Option<OnUpgrade>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let pool = route.pool.as_ref().ok_or(GatewayError::NoRoute)?;
    let deadline = tokio::time::Instant::now() + route.timeout;
    let response = pool.send(&ctx.shared.client, upstream, deadline).await?;
    match on_upgrade {
        Some(downstream) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            if let Some(framing) = &ctx.connection.framing {
                framing.stop_scanning();
            }
            let guard = TunnelGuard {
                revocations: ctx.shared.revocations.clone(),
                identity: ctx.caller.clone(),
                shutdown: ctx.shared.shutdown.clone(),
            };
            Ok(upgrade::tunnel(response, downstream, guard))
        }
        _ => Ok(downstream_response(ctx, response)),
    }
}

/// The upstream's answer without hop-by-hop headers, and without any attempt to set the
/// gateway's own cookies.
fn downstream_response(ctx: &RequestCtx<'_>, response: Response<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_own_set_cookies(&mut parts.headers, &ctx.runtime.own_cookies());
    Response::from_parts(parts, Either::Left(body))
}
