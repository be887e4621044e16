//! The demo upstream: an HTTP server that answers every request with a JSON description of
//! what it received, so a fresh clone has something to proxy to (and tests an oracle), and
//! serves the two example pages under `/demo/`.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::endpoints::json;

/// The largest body the echo reads back; more is answered with 413.
const MAX_ECHO_BODY: usize = 16 << 20;

/// The shipped example pages: a login form and an app that calls a protected API.
const PAGES: &[(&str, &str)] = &[
    ("/demo/login.html", include_str!("../demo/login.html")),
    ("/demo/app.html", include_str!("../demo/app.html")),
];

pub async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some((_, page)) = PAGES.iter().find(|(path, _)| *path == request.uri().path()) {
        let mut response = Response::new(Full::new(Bytes::from_static(page.as_bytes())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return json(StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": e.to_string() })),
    };
    let headers: Vec<(&str, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    json(
        StatusCode::OK,
        json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body.len(),
            "body": String::from_utf8_lossy(&body),
        }),
    )
}
