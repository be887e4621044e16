//! The plain-HTTP listener: every request is sent to the same path over HTTPS with 308.
//!
//! The `Location` host is `[server] public_host` when configured. Without it, the client's
//! `Host` is used only when the gateway serves that name (a route's host pattern or the
//! certificate names it): the redirect must not point browsers at a host an attacker chose.

use std::str::FromStr;

use bytes::Bytes;
use http::header::{HOST, LOCATION};
use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::json;
use crate::runtime::Runtime;

/// Answers 308 to `https://<host>[:port]<path>?<query>`, or 400 for a host it does not serve.
pub(crate) fn handle<B>(runtime: &Runtime, https_port: u16, request: &Request<B>) -> Response<Full<Bytes>> {
    let location = match &runtime.config.server.public_host {
        Some(public) => with_target(public.as_str(), request),
        None => client_host(runtime, request).and_then(|host| {
            let port = match https_port {
                443 => String::new(),
                port => format!(":{port}"),
            };
            with_target(&format!("{host}{port}"), request)
        }),
    };
    match location {
        Some(location) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(LOCATION, location);
            response
        }
        None => json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "bad_request", "message": "missing, invalid or unknown Host" }),
        ),
    }
}

/// The host of the client's `Host`, lower-case and without its port, if the gateway serves it.
fn client_host<B>(runtime: &Runtime, request: &Request<B>) -> Option<String> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return None;
    };
    let authority = Authority::from_str(host.to_str().ok()?).ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    runtime.serves_host(&host).then_some(host)
}

fn with_target<B>(authority: &str, request: &Request<B>) -> Option<HeaderValue> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    HeaderValue::from_str(&format!("https://{authority}{path}")).ok()
}
