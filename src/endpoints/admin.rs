//! The admin listener: health and readiness (metrics and the admin API join later).
//! It is a separate socket, by default on loopback; nothing here is on the public listener.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::json;
use crate::gateway::Shared;

pub async fn handle<B>(shared: Arc<Shared>, request: Request<B>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, json!({ "status": "ok" })),
        (&Method::GET, "/readyz") => {
            let routes = shared.runtime.load().config.routes.len();
            json(StatusCode::OK, json!({ "status": "ready", "routes": routes }))
        }
        _ => json(
            StatusCode::NOT_FOUND,
            json!({ "error": "not_found", "message": "no such admin endpoint" }),
        ),
    }
}
