//! The admin listener: health, readiness and the session admin API. It is a separate socket,
//! on loopback by default; nothing here is reachable from the public listener.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use super::sessions::describe;
use super::{api_keys, json};
use crate::auth::tokens::unix_now;
use crate::error::GatewayError;
use crate::runtime::Shared;

pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if let Err(error) = admitted(&shared, &path, request.headers()) {
        return error.to_plain_response();
    }
    let result = match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => Ok(json(StatusCode::OK, json!({ "status": "ok" }))),
        (&Method::GET, "/readyz") => Ok(ready(&shared).await),
        (&Method::GET, "/metrics") => Ok(metrics(&shared)),
        (&Method::GET, "/admin/sessions") => list(&shared, request.uri().query()).await,
        (&Method::DELETE, p) if p.starts_with("/admin/sessions/") => {
            revoke_session(&shared, &p["/admin/sessions/".len()..]).await
        }
        (&Method::POST, "/admin/reload") => Ok(reload(&shared).await),
        (&Method::POST, API_KEYS) => api_keys::create(&shared, request).await,
        (&Method::GET, API_KEYS) => api_keys::list(&shared).await,
        (&Method::DELETE, p) if p.starts_with(API_KEY) => {
            api_keys::delete(&shared, &p[API_KEY.len()..]).await
        }
        (&Method::POST, p) if p.starts_with("/admin/users/") && p.ends_with("/revoke") => {
            revoke_user(&shared, &p["/admin/users/".len()..p.len() - "/revoke".len()]).await
        }
        _ => Err(GatewayError::NoRoute),
    };
    result.unwrap_or_else(|error| error.to_plain_response())
}

/// SPEC 15: with `[admin] token_file`, `/admin/*` (and `/metrics` with `protect_metrics`)
/// needs the token; `/healthz` and `/readyz` stay open for probes.
fn admitted(shared: &Shared, path: &str, headers: &http::HeaderMap) -> Result<(), GatewayError> {
    let runtime = shared.runtime.load();
    let Some(token) = &runtime.admin_token else {
        return Ok(());
    };
    let guarded = path.starts_with("/admin/") || (path == "/metrics" && runtime.config.admin.protect_metrics);
    if !guarded || token.admits(headers) {
        return Ok(());
    }
    // Never the presented value: it may be a real token with a typo.
    let presented = headers.contains_key(http::header::AUTHORIZATION);
    tracing::warn!(target: "portcullis::audit", event = "admin_refused", %path, presented);
    Err(GatewayError::AdminTokenRequired)
}

const API_KEYS: &str = "/admin/api-keys";
const API_KEY: &str = "/admin/api-keys/";

/// Failures go through the same error table as the public listener's.
type AdminResult = Result<Response<Full<Bytes>>, GatewayError>;

/// Prometheus text; the revocation gauges are read at scrape time.
fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let (sessions, users) = shared.revocations.len();
    shared.metrics.set_revocations("session", sessions as i64);
    shared.metrics.set_revocations("user", users as i64);
    let mut response = Response::new(Full::new(Bytes::from(shared.metrics.encode())));
    let content_type = http::HeaderValue::from_static(crate::telemetry::metrics::CONTENT_TYPE);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    response
}

/// Ready when a config is loaded (always, once listening) and the store answers.
async fn ready(shared: &Shared) -> Response<Full<Bytes>> {
    let routes = shared.runtime.load().config.routes.len();
    match shared.sessions.store().ping().await {
        Ok(()) => json(StatusCode::OK, json!({ "status": "ready", "routes": routes })),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "not_ready", "store": e.to_string() }),
        ),
    }
}

async fn list(shared: &Shared, query: Option<&str>) -> AdminResult {
    let sub = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("sub="))
        .filter(|sub| !sub.is_empty())
        .ok_or(GatewayError::BadRequest("give the user as ?sub=NAME"))?;
    let sub = percent_decode(sub).ok_or(GatewayError::BadRequest("sub is not valid percent-encoding"))?;
    let timing = shared.runtime.load().timing(unix_now());
    let sessions = shared.sessions.list(&sub, timing).await?;
    let body: Vec<_> = sessions.iter().map(|s| describe(s, None)).collect();
    Ok(json(StatusCode::OK, serde_json::Value::Array(body)))
}

async fn revoke_session(shared: &Shared, sid: &str) -> AdminResult {
    let timing = shared.runtime.load().timing(unix_now());
    match shared.sessions.end(sid, timing).await? {
        Some(session) => {
            tracing::info!(target: "portcullis::audit", event = "session_revoked", sub = %session.sub, %sid, by = "admin");
            Ok(no_content())
        }
        None => Err(GatewayError::NoSuchSession),
    }
}

async fn revoke_user(shared: &Shared, sub: &str) -> AdminResult {
    let sub =
        percent_decode(sub).ok_or(GatewayError::BadRequest("the user is not valid percent-encoding"))?;
    let timing = shared.runtime.load().timing(unix_now());
    let ended = shared.sessions.end_all(&sub, timing).await?;
    tracing::info!(target: "portcullis::audit", event = "session_revoked", %sub, sessions = ended.len(), by = "admin");
    Ok(no_content())
}

/// `200 {"status":"reloaded","restart_needed":[...]}`, or `422` with every error found.
async fn reload(shared: &Shared) -> Response<Full<Bytes>> {
    match crate::reload::reload(shared, "admin").await {
        Ok(restart) => json(
            StatusCode::OK,
            json!({ "status": "reloaded", "restart_needed": restart }),
        ),
        Err(errors) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "config_rejected", "message": errors.lines().collect::<Vec<_>>() }),
        ),
    }
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Decodes `%XX` escapes in a user name taken from a path or query; `None` if malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
