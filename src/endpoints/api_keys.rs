//! `/admin/api-keys` on the admin listener (SPEC 11): create a key (shown once), list the
//! keys (never the key itself), delete one on every gateway.

use std::time::Duration;

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{body, json};
use crate::auth::api_keys::NewApiKey;
use crate::auth::tokens::{fits_header, unix_now};
use crate::error::GatewayError;
use crate::runtime::Shared;
use crate::sessions::store::ApiKeyRecord;

/// The admin listener is trusted, but its bodies still have a deadline.
const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// Longer than any real use (ten years), short enough that `now + expires_in` stays sane.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;
/// Names are for people, not headers.
const MAX_NAME_CHARS: usize = 100;

type AdminResult = Result<Response<Full<Bytes>>, GatewayError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    sub: String,
    role: String,
    name: String,
    expires_in: Option<u64>,
}

/// `POST /admin/api-keys` → 201 `{"id","key","expires_at"}`, with `Cache-Control: no-store`.
pub(super) async fn create(shared: &Shared, request: Request<Incoming>) -> AdminResult {
    let asked: CreateRequest = body::json(request, BODY_DEADLINE).await?;
    if !fits_header(&asked.sub) || !fits_header(&asked.role) {
        return Err(GatewayError::BadRequest(
            "sub and role must be 1-256 visible ASCII characters",
        ));
    }
    let name_ok = !asked.name.trim().is_empty()
        && asked.name.chars().count() <= MAX_NAME_CHARS
        && !asked.name.chars().any(char::is_control);
    if !name_ok {
        return Err(GatewayError::BadRequest(
            "name must be 1-100 characters, none a control character",
        ));
    }
    if asked
        .expires_in
        .is_some_and(|secs| secs == 0 || secs > MAX_EXPIRES_IN)
    {
        return Err(GatewayError::BadRequest(
            "expires_in must be between 1 and 315360000 seconds",
        ));
    }
    let new = NewApiKey {
        sub: &asked.sub,
        role: &asked.role,
        name: &asked.name,
        expires_in: asked.expires_in,
    };
    let (record, key) = shared.sessions.create_api_key(&new, unix_now()).await?;
    tracing::info!(target: "portcullis::audit", event = "api_key_created", id = %record.id,
        sub = %record.sub, role = %record.role, name = %record.name);
    let body = json!({ "id": record.id, "key": key, "expires_at": record.expires_at });
    let mut response = json(StatusCode::CREATED, body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /admin/api-keys` → 200, every key oldest first.
pub(super) async fn list(shared: &Shared) -> AdminResult {
    let keys = shared.sessions.api_keys().await?;
    let body: Vec<_> = keys.iter().map(describe).collect();
    Ok(json(StatusCode::OK, serde_json::Value::Array(body)))
}

/// `DELETE /admin/api-keys/{id}` → 204, or 404 for a key that does not exist.
pub(super) async fn delete(shared: &Shared, id: &str) -> AdminResult {
    let timing = shared.runtime.load().timing(unix_now());
    match shared.sessions.delete_api_key(id, timing).await? {
        true => {
            tracing::info!(target: "portcullis::audit", event = "api_key_revoked", %id, by = "admin");
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
        false => Err(GatewayError::NoSuchApiKey),
    }
}

fn describe(key: &ApiKeyRecord) -> serde_json::Value {
    json!({
        "id": key.id,
        "sub": key.sub,
        "role": key.role,
        "name": key.name,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    })
}
