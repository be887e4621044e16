//! The request pipeline of the public listener, as named phases over one `RequestCtx`:
//!
//! 1. `early_checks`: framing verdict, Host, request target, header size, path
//!    normalisation -> 400 / 414 / 431
//! 2. `route`: gateway endpoint (`endpoints::handle`) or route table -> 404 / 405
//! 3. `caller::authenticate`: bearer token or access cookie (or a transparent refresh)
//!    -> `Identity` -> 401 / 429
//! 4. `caller::authorize`: same-origin rule for cookie-authenticated unsafe requests, roles -> 403
//! 5. `upstream_request`: body limit, strip-then-set of identity and forwarding headers -> 413
//! 6. `forward`: pooled client with the route's timeout, or a WebSocket tunnel -> 502 / 504
//! 7. `respond`: response hygiene (HSTS, request id, cookies, CORS), metrics and one
//!    access-log line; the only place where a `GatewayError` becomes a response
//!
//! A new capability is a new phase here or a new step inside one, reading and writing the
//! context, not another parameter.

mod early;
mod forward;
mod respond;
mod upstream;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio_rustls::TlsAcceptor;

use crate::caller::{authenticate, authorize};
use crate::context::{RequestCtx, Target};
use crate::endpoints;
use crate::error::GatewayError;
use crate::proxy::{ResponseBody, upgrade};
use crate::routes::{Destination, Route};
use crate::runtime::Shared;
use crate::server::{ConnectionInfo, PublicService};
use crate::telemetry::export::Kind;
use early::early_checks;
use forward::forward;
use respond::{UpgradeAsked, respond};
use upstream::upstream_request;

impl PublicService for Shared {
    fn acceptor(&self) -> TlsAcceptor {
        self.runtime.load().tls.clone()
    }

    fn connection_opened(&self) {
        self.metrics.connection_opened();
    }

    fn connection_closed(&self) {
        self.metrics.connection_closed();
    }

    fn handle(
        self: Arc<Self>,
        connection: Arc<ConnectionInfo>,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static {
        handle(self, connection, request)
    }
}

/// Answers one request of the public listener; every error is already a response.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    connection: Arc<ConnectionInfo>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let runtime = shared.runtime.load_full();
    let mut ctx = RequestCtx::new(&shared, &runtime, &connection, &request);
    let upgrade_asked = UpgradeAsked::of(&request);
    let result = pipeline(&mut ctx, request).await;
    respond(ctx, result, upgrade_asked)
}

async fn pipeline(
    ctx: &mut RequestCtx<'_>,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let target = early_checks(ctx, &request)?;
    let Some(route) = route(ctx, &request, &target)? else {
        // Boxed: a large future that proxied requests need not carry.
        return Box::pin(endpoints::handle(ctx, request, &target)).await;
    };
    let start = ctx.span_start();
    let authenticated = authenticate(ctx, route, &request, &target).await;
    ctx.finish_span(
        "authenticate",
        Kind::Internal,
        start,
        Vec::new(),
        authenticated.is_err(),
    );
    authenticated?;
    authorize(ctx, route, &request, &target)?;
    // Only authenticated, authorised requests to a WebSocket route may ask for an upgrade.
    let on_upgrade =
        (route.websocket && upgrade::is_websocket(&request)).then(|| hyper::upgrade::on(&mut request));
    let upstream = upstream_request(ctx, route, &target, request, on_upgrade.is_some())?;
    let start = ctx.span_start();
    let forwarded = forward(ctx, route, upstream, on_upgrade).await;
    if start.is_some() {
        let status = forwarded
            .as_ref()
            .map_or(0, |response| response.status().as_u16());
        let attributes = vec![("http.response.status_code", status.to_string())];
        ctx.finish_span("upstream", Kind::Client, start, attributes, forwarded.is_err());
    }
    forwarded
}

/// Phase 2: the route the request goes to, or `None` for the gateway's own endpoints.
fn route<'r>(
    ctx: &mut RequestCtx<'r>,
    request: &Request<Incoming>,
    target: &Target,
) -> Result<Option<&'r Route>, GatewayError> {
    let runtime = ctx.runtime;
    match runtime.routes.find(&target.host, &target.path, request.method()) {
        // A decision-only route answers forward-auth alone: to a proxied request it is absent.
        Some(Destination::Upstream(route)) if route.pool.is_none() => Err(GatewayError::NoRoute),
        Some(Destination::Upstream(route)) => {
            ctx.route = &route.name;
            Ok(Some(route))
        }
        Some(Destination::Gateway) => {
            ctx.route = "gateway";
            Ok(None)
        }
        Some(Destination::WrongMethod { route, allow }) => {
            ctx.route = &route.name;
            Err(GatewayError::MethodNotAllowed { allow: allow.clone() })
        }
        None => Err(GatewayError::NoRoute),
    }
}
