//! Phase 7: every answer of the public listener leaves through `respond`, success or
//! failure: the error table turns a failure into a response, then the same hygiene, metrics
//! and access-log line apply to all.

use http::header::{SET_COOKIE, STRICT_TRANSPORT_SECURITY, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode, Version};

use crate::context::RequestCtx;
use crate::endpoints::cors;
use crate::error::GatewayError;
use crate::proxy::ResponseBody;
use crate::proxy::headers::X_REQUEST_ID;
use crate::telemetry::export::SpanRecord;

/// On every response of the public listener (unless the upstream set its own).
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Whether this is an HTTP/1.1 request that asks to switch protocols, as hyper decides it:
/// the framing guard holds what follows it until told whether the switch happened.
pub(super) struct UpgradeAsked(bool);

impl UpgradeAsked {
    pub(super) fn of<B>(request: &Request<B>) -> UpgradeAsked {
        UpgradeAsked(request.version() == Version::HTTP_11 && request.headers().contains_key(UPGRADE))
    }
}

pub(super) fn respond(
    mut ctx: RequestCtx<'_>,
    result: Result<Response<ResponseBody>, GatewayError>,
    upgrade_asked: UpgradeAsked,
) -> Response<ResponseBody> {
    let mut response = result.unwrap_or_else(|error| {
        count_failure(&ctx, &error);
        match ctx.html_errors {
            true => error.to_page_response(&ctx.runtime.pages),
            false => error.to_response(),
        }
    });
    if let Some(framing) = &ctx.connection.framing
        && upgrade_asked.0
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        framing.upgrade_refused();
    }
    let headers = response.headers_mut();
    headers.entry(STRICT_TRANSPORT_SECURITY).or_insert(HSTS);
    headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    // Even when the upstream failed: a browser must not keep a refresh token we retired.
    for cookie in std::mem::take(&mut ctx.set_cookies) {
        headers.append(SET_COOKIE, cookie);
    }
    if let Some(origin) = ctx.cors.take() {
        cors::allow(headers, origin);
    }
    log_and_count(&ctx, &response);
    response
}

/// SPEC 8's failure counters, by the labels the error table gives.
fn count_failure(ctx: &RequestCtx<'_>, error: &GatewayError) {
    let metrics = &ctx.shared.metrics;
    if let Some(reason) = error.auth_failure_reason() {
        metrics.auth_failure(reason);
        // A refused proof may be an attack with a stolen token: the audit log says so.
        if error.is_dpop_refusal() {
            let (route, client) = (ctx.route, ctx.client);
            tracing::info!(target: "portcullis::audit", event = "dpop_refused", reason, route, %client);
        }
    }
    if let Some(kind) = error.upstream_error_kind() {
        metrics.upstream_error(ctx.route, kind);
    }
}

fn log_and_count(ctx: &RequestCtx<'_>, response: &Response<ResponseBody>) {
    let latency = ctx.started.elapsed();
    let status = response.status().as_u16();
    export_request_span(ctx, status);
    ctx.shared
        .metrics
        .request(ctx.route, status, latency.as_secs_f64());
    tracing::info!(
        target: "portcullis::access",
        method = %ctx.method,
        route = ctx.route,
        status,
        latency_us = latency.as_micros() as u64,
        request_id = ctx.request_id.to_str().unwrap_or("-"),
        trace_id = %ctx.trace.trace_id(),
        client = %ctx.client,
        peer = %ctx.connection.peer,
        sub = ctx.caller.as_ref().map_or("-", |identity| identity.sub.as_str()),
    );
}

/// The request's own span (its id is the one the upstream was told), when exported.
fn export_request_span(ctx: &RequestCtx<'_>, status: u16) {
    let (Some(spans), Some(start)) = (&ctx.shared.spans, ctx.span_started) else {
        return;
    };
    let name = format!("{} {}", ctx.method, ctx.route);
    let mut span = SpanRecord::request(&ctx.trace, name, start);
    span.attributes = vec![
        ("http.request.method", ctx.method.to_string()),
        ("http.route", ctx.route.to_string()),
        ("http.response.status_code", status.to_string()),
        ("client.address", ctx.client.to_string()),
    ];
    span.error = status >= 500;
    spans.record(span);
}
