//! The gateway's pages as HTTP answers (SPEC 10, 13, 15): the login page, again with what
//! went wrong after a failed form login, the headers every page gets, and the logo and script
//! the pages load. What the pages say is in `pages`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};

use super::query_param;
use crate::auth::csrf;
use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::proxy::ResponseBody;
use crate::runtime::Runtime;

/// `GET /auth/login?return_to=/path`: the gateway's own login page (SPEC 10 lists each
/// provider on it). A route's `login_page = "/auth/login"` sends browsers here.
pub(super) fn login_page<B>(ctx: &RequestCtx<'_>, request: &Request<B>) -> Response<ResponseBody> {
    let return_to = csrf::safe_return_to(query_param(request, "return_to").as_deref());
    let passkeys = ctx.runtime.config.webauthn.is_some();
    page(
        ctx.runtime
            .pages
            .login(ctx.runtime.federation.configs(), &return_to, passkeys, None),
    )
}

/// `GET /auth/logo`: `[ui] logo_file`. Served as an image only: an SVG opened on its own
/// runs no script (`sandbox`) and loads nothing.
pub(super) fn logo(runtime: &Runtime) -> Result<Response<ResponseBody>, GatewayError> {
    let logo = runtime.pages.logo().ok_or(GatewayError::NoRoute)?;
    let mut response = Response::new(Either::Right(Full::new(logo.bytes.clone())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(logo.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    Ok(response)
}

/// One of the gateway's pages: never cached, never framed (clickjacking of its forms), and
/// allowed nothing but its own inline style and forms posting to itself.
pub(super) fn page(html: String) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(html))));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; \
             style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// `GET /auth/passkeys.js`: the passkey buttons' script (the pages' CSP allows only our own).
pub(super) fn passkeys_script() -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        crate::pages::PASSKEYS_JS.as_bytes(),
    ))));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// What the login form says about a failed attempt, in words for a person: never which of
/// the username or the password was wrong.
pub(super) fn form_problem(error: &GatewayError) -> Option<&'static str> {
    Some(match error {
        GatewayError::InvalidCredentials => "The username or password is not right.",
        GatewayError::RateLimited { .. } => "Too many attempts. Wait a minute, then try again.",
        GatewayError::LoginOverloaded | GatewayError::CheckerUnavailable | GatewayError::StoreUnavailable => {
            "Signing in is not possible right now. Try again shortly."
        }
        _ => return None,
    })
}

/// The login page again, with the problem, the failure's status and its `Retry-After`.
pub(super) fn login_form_again(
    ctx: &RequestCtx<'_>,
    return_to: &str,
    error: &GatewayError,
) -> Response<ResponseBody> {
    let runtime = ctx.runtime;
    let passkeys = runtime.config.webauthn.is_some();
    let html = runtime.pages.login(
        runtime.federation.configs(),
        return_to,
        passkeys,
        form_problem(error),
    );
    let mut response = page(html);
    *response.status_mut() = error.status();
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
