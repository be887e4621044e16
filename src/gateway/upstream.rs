//! Phase 5: the request the upstream receives. Identity and forwarding headers are the
//! gateway's alone: every client copy is stripped before the verified values are set.

use crate::caller::binding::DPOP;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::uri::PathAndQuery;
use http::{Request, Uri, Version};
use hyper::body::Incoming;

use crate::auth::assertion::ASSERTION_HEADER;
use crate::caller;
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::proxy::RequestBody;
use crate::proxy::headers::{self, Forwarding, X_REQUEST_ID};
use crate::proxy::upgrade;
use crate::routes::{self, Route};
use crate::telemetry::trace::{TRACEPARENT, TRACESTATE};

pub(super) fn upstream_request(
    ctx: &RequestCtx<'_>,
    route: &Route,
    target: &Target,
    request: Request<Incoming>,
    asks_upgrade: bool,
) -> Result<Request<RequestBody>, GatewayError> {
    let (runtime, connection) = (ctx.runtime, ctx.connection);
    let config = &runtime.config;
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.limits.max_body_bytes) {
        return Err(GatewayError::BodyTooLarge);
    }
    let headers = &mut parts.headers;
    headers::strip_hop_by_hop(headers);
    runtime
        .identity_headers
        .strip_then_set(headers, ctx.caller.as_deref());
    if let Some(assertion) = caller::assertion(ctx, route)? {
        headers.insert(ASSERTION_HEADER, assertion);
    }
    // The DPoP proof goes with the token: an upstream that gets one gets both (and could
    // check them itself); one that does not gets neither.
    if !config.headers.forward_authorization {
        headers.remove(AUTHORIZATION);
        headers.remove(DPOP);
    }
    headers::strip_own_cookies(headers, &runtime.own_cookies());
    let peer_ip = connection.peer.ip().to_canonical();
    let forwarding = Forwarding {
        client_ip: ctx.client,
        peer_ip,
        peer_trusted: config
            .server
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer_ip)),
        peer_headers: &connection.peer_headers,
        host: target.authority.as_str(),
    };
    headers::set_forwarding(headers, &forwarding);
    headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    // The upstream's parent span is the gateway's; a trace begun here has no state yet.
    headers.insert(TRACEPARENT, ctx.trace.traceparent());
    if !ctx.trace.continued() {
        headers.remove(TRACESTATE);
    }
    if asks_upgrade {
        upgrade::ask_for_upgrade(headers);
    }
    parts.uri = upstream_uri(route, target, parts.uri.query())?;
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(
        parts,
        RequestBody::new(body, config.limits.max_body_bytes),
    ))
}

fn upstream_uri(route: &Route, target: &Target, query: Option<&str>) -> Result<Uri, GatewayError> {
    let path = routes::upstream_path(route, &target.path);
    // Built once and handed over as `Bytes`, so `http` validates it without another copy.
    let mut text = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    text.push_str(&path);
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    let path_and_query =
        PathAndQuery::from_maybe_shared(Bytes::from(text)).map_err(|_| GatewayError::BadRequestTarget)?;
    // The pool puts the chosen endpoint's scheme and authority in front.
    Ok(Uri::from(path_and_query))
}
