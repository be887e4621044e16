//! Forward-auth (SPEC 12): `GET /auth/verify`, for a proxy that already runs in front of the
//! backends (nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`). The original
//! request is read from `X-Forwarded-*` (or nginx's `X-Original-*`), believed only from a peer
//! in `trusted_proxies`; it is routed, authenticated and authorised exactly as a proxied
//! request, and the answer is the decision: 200 with the identity headers, 401, a redirect to
//! the login page for a browser navigation, 403.

use std::str::FromStr;

use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, Method, Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::caller::{self, authenticate, authorize};
use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::path::normalize_path;
use crate::proxy::ResponseBody;
use crate::routes::Destination;

const FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

pub(super) async fn verify(
    ctx: &mut RequestCtx<'_>,
    request: Request<Incoming>,
    own: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    let runtime = ctx.runtime;
    let peer = ctx.connection.peer.ip().to_canonical();
    if !runtime
        .config
        .server
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer))
    {
        return Err(GatewayError::UntrustedForwardAuth);
    }
    let (mut parts, _) = request.into_parts();
    let (method, uri, target) = original(&parts.headers, own)?;
    // nginx's `auth_request` passes on only 2xx, 401 and 403: its login redirect is a 401.
    let behind_nginx = parts.headers.contains_key(ORIGINAL_URI);
    (parts.method, parts.uri) = (method, uri);
    let original = Request::from_parts(parts, ());
    let route = match runtime.routes.find(&target.host, &target.path, original.method()) {
        Some(Destination::Upstream(route)) => route,
        Some(Destination::WrongMethod { allow, .. }) => {
            return Err(GatewayError::MethodNotAllowed { allow: allow.clone() });
        }
        Some(Destination::Gateway) | None => return Err(GatewayError::NoRoute),
    };
    ctx.route = &route.name;
    ctx.cookies_reach_browser = false;
    let via_proxy = |error| match error {
        GatewayError::LoginRequired { location } if behind_nginx => {
            GatewayError::LoginRequiredViaProxy { location }
        }
        error => error,
    };
    authenticate(ctx, route, &original, &target)
        .await
        .map_err(via_proxy)?;
    authorize(ctx, route, &original, &target).map_err(via_proxy)?;
    let mut answer = Response::new(Either::Right(Full::default()));
    let headers = answer.headers_mut();
    runtime
        .identity_headers
        .strip_then_set(headers, ctx.caller.as_deref());
    if let Some(assertion) = caller::assertion(ctx, route)? {
        headers.insert(crate::auth::assertion::ASSERTION_HEADER, assertion);
    }
    Ok(answer)
}

/// The original request's method, target (origin-form) and routing target. The host is
/// `X-Forwarded-Host`, else the `Host` the proxy sent.
fn original(headers: &HeaderMap, own: &Target) -> Result<(Method, Uri, Target), GatewayError> {
    let bad = |what| GatewayError::BadRequest(what);
    let method = match one(headers, &FORWARDED_METHOD)?.or(one(headers, &ORIGINAL_METHOD)?) {
        Some(name) => Method::from_str(name).map_err(|_| bad("the forwarded method is not a method"))?,
        None => Method::GET,
    };
    let target = one(headers, &FORWARDED_URI)?
        .or(one(headers, &ORIGINAL_URI)?)
        .ok_or(bad(
            "X-Forwarded-Uri or X-Original-URI must name the original request",
        ))?;
    let path_and_query = PathAndQuery::from_str(target)
        .ok()
        .filter(|p| p.as_str().starts_with('/'))
        .ok_or(bad("the forwarded URI must be a path, like /app/page?x=1"))?;
    let authority = match one(headers, &FORWARDED_HOST)? {
        Some(host) => Authority::from_str(host)
            .ok()
            .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
            .ok_or(bad("X-Forwarded-Host is not a host"))?,
        None => own.authority.clone(),
    };
    let routing = Target {
        host: authority.host().trim_end_matches('.').to_ascii_lowercase(),
        path: normalize_path(path_and_query.path())?,
        authority,
    };
    Ok((method, Uri::from(path_and_query), routing))
}

/// A header the proxy sends once, as text; twice is a request we cannot read one way.
fn one<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, GatewayError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| GatewayError::BadRequest("a forwarded header is not text")),
        (Some(_), Some(_)) => Err(GatewayError::BadRequest("a forwarded header is sent twice")),
    }
}
