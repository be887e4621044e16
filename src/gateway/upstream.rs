//! Phases 5 and 7: the request the upstream receives, and the response the client receives.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, STRICT_TRANSPORT_SECURITY};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;

use super::{ConnectionInfo, Runtime, Target};
use crate::auth::{self, Identity};
use crate::error::GatewayError;
use crate::proxy::headers::{self, Forwarding, X_REQUEST_ID};
use crate::proxy::{RequestBody, ResponseBody};
use crate::routes::{self, Route};

/// On every response of the public listener (unless the upstream set its own).
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

pub(super) fn upstream_request(
    runtime: &Runtime,
    connection: &ConnectionInfo,
    route: &Route,
    target: &Target,
    request: Request<Incoming>,
    request_id: &HeaderValue,
    identity: Option<Arc<Identity>>,
) -> Result<Request<RequestBody>, GatewayError> {
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
    headers::strip_identity(headers, &runtime.identity_headers);
    if !config.headers.forward_authorization {
        headers.remove(AUTHORIZATION);
    }
    headers::strip_own_cookies(headers, &runtime.own_cookies());
    let trusted = &config.server.trusted_proxies;
    let peer_ip = connection.peer.ip().to_canonical();
    let forwarding = Forwarding {
        client_ip: headers::client_ip(connection.peer, headers, trusted),
        peer_ip,
        peer_trusted: trusted.iter().any(|net| net.contains(&peer_ip)),
        peer_headers: &connection.peer_headers,
        host: target.authority.as_str(),
    };
    headers::set_forwarding(headers, &forwarding);
    headers.insert(X_REQUEST_ID, request_id.clone());
    if let Some(identity) = identity {
        auth::set_identity(headers, &runtime.identity_headers, &identity);
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
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(route.upstream.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::BadRequestTarget)
}

// === phase 7: respond ===

pub(super) fn downstream_response(runtime: &Runtime, response: Response<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_own_set_cookies(&mut parts.headers, &runtime.own_cookies());
    Response::from_parts(parts, Either::Left(body))
}

pub(super) fn respond(response: &mut Response<ResponseBody>, request_id: HeaderValue) {
    let headers = response.headers_mut();
    headers.entry(STRICT_TRANSPORT_SECURITY).or_insert(HSTS);
    headers.insert(X_REQUEST_ID, request_id);
}
