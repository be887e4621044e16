//! The demo upstream: an HTTP server that answers every request with a JSON description of
//! what it received, so a fresh clone has something to proxy to (and tests an oracle).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::endpoints::json;

/// The largest body the echo reads back; more is answered with 413.
const MAX_ECHO_BODY: usize = 16 << 20;

pub async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
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
