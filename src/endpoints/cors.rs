//! CORS for `/auth/*`: an origin in `allowed_origins` may call the endpoints with credentials;
//! its exact origin is echoed, never `*`.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Either;

use crate::proxy::ResponseBody;

/// The request's `Origin` when it is one of `allowed` (compared in lower case).
pub(crate) fn allowed_origin(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let lower = origin.to_str().ok()?.to_ascii_lowercase();
    allowed.contains(&lower).then(|| origin.clone())
}

/// The answer to a preflight `OPTIONS`.
pub(crate) fn preflight() -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Default::default()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        // `dpop`: a browser app holding a DPoP key (SPEC 14) sends its proofs.
        HeaderValue::from_static("authorization, content-type, dpop"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// Marks a response as readable by `origin`, with credentials.
pub(crate) fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    // Its script must read the nonce to put in its next DPoP proof.
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("dpop-nonce"),
    );
    headers.append(VARY, HeaderValue::from_static("Origin"));
}
