//! Requests the gateway answers itself: `/auth/*` and the JWKS on the public listener
//! (dispatched here, by path and method), the admin listener, and the plain-HTTP redirect.

mod account;
pub(crate) mod admin;
mod api_keys;
mod auth;
mod body;
pub(crate) mod cors;
mod html;
mod mfa;
mod oidc;
mod passkeys;
pub(crate) mod redirect;
mod sessions;
mod step_up;
mod verify;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::context::{RequestCtx, Target};
use crate::error::GatewayError;
use crate::proxy::ResponseBody;

/// `DELETE` under here ends one of the caller's own sessions.
const OWN_SESSION: &str = "/auth/sessions/";
/// `DELETE` under here removes one of the caller's own passkeys.
const OWN_PASSKEY: &str = "/auth/passkeys/";

/// The gateway endpoints of the public listener (phase 2 sends them here).
pub(crate) async fn handle(
    ctx: &mut RequestCtx<'_>,
    request: Request<Incoming>,
    target: &Target,
) -> Result<Response<ResponseBody>, GatewayError> {
    ctx.cors = cors::allowed_origin(request.headers(), &ctx.runtime.config.cookies.allowed_origins);
    if target.path.starts_with(oidc::PREFIX) {
        return oidc::handle(ctx, request, target).await;
    }
    if target.path == "/auth/verify" && request.method() == Method::GET {
        return verify::verify(ctx, request, target).await;
    }
    let ctx = &*ctx;
    match (target.path.as_str(), request.method()) {
        (_, &Method::OPTIONS) if ctx.cors.is_some() => Ok(cors::preflight()),
        ("/auth/login", &Method::POST) => auth::login(ctx, request, target).await,
        ("/auth/login", &Method::GET) => Ok(html::login_page(ctx, &request)),
        ("/auth/login/mfa", &Method::POST) => mfa::finish_login(ctx, request, target).await,
        ("/auth/mfa", &Method::GET) => mfa::page(ctx, &request, target).await,
        ("/auth/mfa/totp/enroll", &Method::POST) => mfa::enroll(ctx, request, target).await,
        ("/auth/mfa/totp/confirm", &Method::POST) => mfa::confirm(ctx, request, target).await,
        ("/auth/mfa/totp", &Method::DELETE) => mfa::remove(ctx, request, target).await,
        ("/auth/passkeys", &Method::GET) => passkeys::list(ctx, &request, target).await,
        ("/auth/passkeys.js", &Method::GET) => Ok(html::passkeys_script()),
        ("/auth/passkeys/register/start", &Method::POST) => {
            passkeys::register_start(ctx, request, target).await
        }
        ("/auth/passkeys/register/finish", &Method::POST) => {
            passkeys::register_finish(ctx, request, target).await
        }
        ("/auth/passkeys/login/start", &Method::POST) => passkeys::login_start(ctx, request, target).await,
        ("/auth/passkeys/login/finish", &Method::POST) => passkeys::login_finish(ctx, request, target).await,
        (path, &Method::DELETE) if path.starts_with(OWN_PASSKEY) => {
            let id = &path[OWN_PASSKEY.len()..];
            passkeys::delete(ctx, &request, target, id).await
        }
        ("/auth/step-up", &Method::GET) => step_up::page_for(ctx, &request, target).await,
        ("/auth/step-up", &Method::POST) => step_up::step_up(ctx, request, target).await,
        ("/auth/me", &Method::GET) => auth::me(ctx, &request, target),
        (account::PAGE, &Method::GET) => account::show(ctx, &request, target).await,
        ("/auth/account/revoke", &Method::POST) => account::revoke(ctx, request, target).await,
        ("/auth/account/logout", &Method::POST) => account::sign_out(ctx, &request, target, false).await,
        ("/auth/account/logout-all", &Method::POST) => account::sign_out(ctx, &request, target, true).await,
        ("/auth/logo", &Method::GET) => html::logo(ctx.runtime),
        ("/.well-known/jwks.json", &Method::GET) => Ok(auth::jwks(ctx.runtime)),
        ("/auth/refresh", &Method::POST) => sessions::refresh(ctx, request, target).await,
        ("/auth/logout", &Method::POST) => sessions::logout(ctx, request, target).await,
        ("/auth/logout-all", &Method::POST) => sessions::logout_all(ctx, &request, target).await,
        ("/auth/sessions", &Method::GET) => sessions::list(ctx, &request, target).await,
        (path, &Method::DELETE) if path.starts_with(OWN_SESSION) => {
            let sid = &path[OWN_SESSION.len()..];
            sessions::revoke_own(ctx, &request, target, sid).await
        }
        (path, _) => {
            Err(allowed_method(path).map_or(GatewayError::NoRoute, GatewayError::method_not_allowed))
        }
    }
}

/// The one method each gateway path takes, for the `Allow` of a 405.
fn allowed_method(path: &str) -> Option<&'static str> {
    match path {
        "/auth/login" => Some("GET, POST"),
        "/auth/refresh" | "/auth/logout" | "/auth/logout-all" => Some("POST"),
        "/auth/account/revoke" | "/auth/account/logout" | "/auth/account/logout-all" => Some("POST"),
        "/auth/account" | "/auth/logo" => Some("GET"),
        "/auth/login/mfa" | "/auth/mfa/totp/enroll" | "/auth/mfa/totp/confirm" => Some("POST"),
        "/auth/mfa/totp" => Some("DELETE"),
        "/auth/step-up" => Some("GET, POST"),
        "/auth/passkeys" | "/auth/passkeys.js" | "/auth/mfa" => Some("GET"),
        path if path.starts_with("/auth/passkeys/register/") || path.starts_with("/auth/passkeys/login/") => {
            Some("POST")
        }
        path if path.starts_with(OWN_PASSKEY) => Some("DELETE"),
        "/auth/me" | "/auth/sessions" | "/auth/verify" | "/.well-known/jwks.json" => Some("GET"),
        path if path.starts_with(OWN_SESSION) => Some("DELETE"),
        _ => None,
    }
}

/// The first value of a query parameter, decoded.
fn query_param<B>(request: &Request<B>, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// The session store, for the endpoints that read and write it directly (second factors).
fn store<'r>(ctx: &RequestCtx<'r>) -> &'r dyn crate::sessions::store::Store {
    ctx.shared.sessions.store().as_ref()
}

/// A small JSON response for the gateway's own endpoints.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
