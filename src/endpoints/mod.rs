//! Requests the gateway answers itself: `/auth/*` and the JWKS on the public listener, the
//! admin listener, and the plain-HTTP redirect.

pub mod admin;
pub mod auth;
mod body;
pub mod cors;
pub mod redirect;
pub mod sessions;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// A small JSON response for the gateway's own endpoints.
pub fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
