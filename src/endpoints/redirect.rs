//! The plain-HTTP listener: every request is sent to the same path over HTTPS with 308.

use std::str::FromStr;

use bytes::Bytes;
use http::header::{HOST, LOCATION};
use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::json;

/// Answers 308 to `https://<host>[:https_port]<path>?<query>`.
pub fn handle<B>(https_port: u16, request: &Request<B>) -> Response<Full<Bytes>> {
    match location(https_port, request) {
        Some(location) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(LOCATION, location);
            response
        }
        None => json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "bad_request", "message": "missing or invalid Host" }),
        ),
    }
}

fn location<B>(https_port: u16, request: &Request<B>) -> Option<HeaderValue> {
    let host = request.headers().get(HOST)?.to_str().ok()?;
    let authority = Authority::from_str(host).ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let port = match https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    HeaderValue::from_str(&format!("https://{}{port}{path}", authority.host())).ok()
}
