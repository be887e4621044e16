//! Every way a request can fail, and the one table that turns each into an HTTP response.
//! Handlers return `Result<_, GatewayError>`; only `gateway::respond` turns one into a response,
//! so statuses, bodies and `WWW-Authenticate` are decided here and nowhere else.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::auth::cookies;
use crate::auth::dpop::DpopError;
use crate::auth::{CredentialError, TokenError};
use crate::federation::{FlowError, LogoutProblem, OidcFailure};
use crate::mfa::MfaError;
use crate::path::PathRejection;
use crate::policy::StepUp;
use crate::proxy::{ResponseBody, UpstreamError};
use crate::server::framing::FramingViolation;
use crate::sessions::store::StoreError;
use crate::sessions::users::LoginError;

/// RFC 9449 §8: where the gateway hands out its DPoP nonces.
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GatewayError {
    #[error("ambiguous request framing ({0:?})")]
    AmbiguousFraming(FramingViolation),
    #[error("{0}")]
    BadPath(PathRejection),
    #[error("the request target must be a path")]
    BadRequestTarget,
    #[error("missing, repeated or invalid Host")]
    BadHost,
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    #[error("the request head is not valid HTTP/1.1")]
    MalformedHead,
    #[error("request headers are too large")]
    HeadersTooLarge,
    #[error("the request target is too long")]
    UriTooLong,
    #[error("no route matches this request")]
    NoRoute,
    #[error("no live session with that id")]
    NoSuchSession,
    #[error("no API key with that id")]
    NoSuchApiKey,
    #[error("authentication is required")]
    AuthenticationRequired,
    #[error("{0}")]
    InvalidToken(TokenError),
    /// RFC 9449 §7.1: a request to a protected resource refused over DPoP.
    #[error("{0}")]
    Dpop(DpopFailure),
    /// RFC 9449 §5: a bad proof at login or refresh (400, no challenge).
    #[error("{0}")]
    DpopProofRefused(DpopError),
    /// RFC 9449 §8, §9: the proof must carry the nonce this answer gives in `DPoP-Nonce`.
    #[error("a DPoP proof with the nonce in DPoP-Nonce is required")]
    UseDpopNonce {
        nonce: HeaderValue,
        at_token_endpoint: bool,
    },
    #[error("the caller's role is not allowed here")]
    InsufficientScope,
    #[error("cross-site request refused: Origin or Referer is not this site")]
    CrossSiteRequest,
    #[error("a rule of this route refuses the request")]
    RuleDenied,
    /// RFC 9470: the caller must prove who they are again, or with a second factor.
    #[error("{}", step_up_message(.0))]
    StepUpRequired(StepUp),
    #[error("a cookie of the gateway appears twice")]
    DuplicateCookie,
    #[error("log in first")]
    LoginRequired { location: HeaderValue },
    /// Forward-auth for nginx, whose `auth_request` passes on only 2xx, 401 and 403: a 401
    /// that names the login page in `Location` for the proxy to redirect to.
    #[error("log in first")]
    LoginRequiredViaProxy { location: HeaderValue },
    #[error("forward-auth answers only proxies in trusted_proxies")]
    UntrustedForwardAuth,
    #[error("the admin API needs Authorization: Bearer <the admin token>")]
    AdminTokenRequired,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("the code is wrong, expired or used already")]
    InvalidCode,
    #[error("the mfa_token is invalid or expired; log in again")]
    InvalidMfaToken,
    #[error("TOTP is not enabled on this gateway")]
    MfaNotEnabled,
    #[error("a TOTP authenticator is enrolled already; delete it first")]
    AlreadyEnrolled,
    #[error("no TOTP authenticator is enrolled")]
    NotEnrolled,
    #[error("passkeys are not enabled on this gateway")]
    PasskeysNotEnabled,
    #[error("passkey refused: {0}")]
    PasskeyRefused(&'static str),
    #[error("the refresh token is not valid")]
    InvalidGrant,
    /// Answered exactly like `InvalidGrant`; kept apart for metrics and logs.
    #[error("the refresh token is not valid")]
    RefreshReuse,
    #[error("the session store is unavailable; retry shortly")]
    StoreUnavailable,
    #[error("too many attempts; retry later")]
    RateLimited { retry_after_secs: u64 },
    #[error("the gateway is busy checking passwords; retry shortly")]
    LoginOverloaded,
    #[error("the password checker is unavailable")]
    CheckerUnavailable,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("this path does not take that method")]
    MethodNotAllowed { allow: HeaderValue },
    #[error("the body must be JSON")]
    UnsupportedMediaType,
    #[error("internal error")]
    Internal,
    #[error("request body exceeds the size limit")]
    BodyTooLarge,
    #[error("the request body was not sent in time")]
    RequestTimeout,
    #[error("the request body is malformed or was cut short")]
    BadRequestBody,
    #[error("the upstream refused the connection")]
    UpstreamUnreachable,
    #[error("the upstream failed to answer")]
    UpstreamFailed,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    #[error("no upstream endpoint is in rotation; retry shortly")]
    NoHealthyUpstream,
    #[error("the login through the provider failed ({})", .0.reason())]
    OidcFailed(OidcFailure),
    #[error("the identity provider cannot be reached; retry shortly")]
    ProviderUnavailable,
    #[error("the logout token was refused ({})", .0.reason())]
    BadLogoutToken(LogoutProblem),
}

/// The framing guard's verdict on a request head (HTTP/1.1 only).
impl From<FramingViolation> for GatewayError {
    fn from(violation: FramingViolation) -> GatewayError {
        match violation {
            FramingViolation::MalformedHead => GatewayError::MalformedHead,
            FramingViolation::HeadTooLarge => GatewayError::HeadersTooLarge,
            FramingViolation::TargetTooLong => GatewayError::UriTooLong,
            ambiguous => GatewayError::AmbiguousFraming(ambiguous),
        }
    }
}

// === what lower layers' errors mean to a client ===

impl From<PathRejection> for GatewayError {
    fn from(rejection: PathRejection) -> GatewayError {
        GatewayError::BadPath(rejection)
    }
}

impl From<TokenError> for GatewayError {
    fn from(error: TokenError) -> GatewayError {
        GatewayError::InvalidToken(error)
    }
}

/// Two copies of a gateway cookie: which one the browser meant is unknowable.
impl From<cookies::DuplicateCookie> for GatewayError {
    fn from(_: cookies::DuplicateCookie) -> GatewayError {
        GatewayError::DuplicateCookie
    }
}

/// A malformed `Authorization` or a tossed access cookie: an invalid credential (SPEC 6).
impl From<CredentialError> for GatewayError {
    fn from(_: CredentialError) -> GatewayError {
        GatewayError::InvalidToken(TokenError::Malformed)
    }
}

/// Unreachable or corrupt alike: nothing is accepted while the store cannot be trusted.
impl From<MfaError> for GatewayError {
    fn from(error: MfaError) -> GatewayError {
        match error {
            MfaError::NotEnabled => GatewayError::MfaNotEnabled,
            MfaError::NotEnrolled => GatewayError::NotEnrolled,
            MfaError::AlreadyEnrolled => GatewayError::AlreadyEnrolled,
            MfaError::InvalidCode => GatewayError::InvalidCode,
            MfaError::Store(_) => GatewayError::StoreUnavailable,
            MfaError::Unreadable => GatewayError::Internal,
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(_: StoreError) -> GatewayError {
        GatewayError::StoreUnavailable
    }
}

impl From<LoginError> for GatewayError {
    fn from(error: LoginError) -> GatewayError {
        match error {
            LoginError::InvalidCredentials => GatewayError::InvalidCredentials,
            LoginError::Overloaded => GatewayError::LoginOverloaded,
            LoginError::CheckerUnavailable => GatewayError::CheckerUnavailable,
        }
    }
}

impl From<FlowError> for GatewayError {
    fn from(error: FlowError) -> GatewayError {
        match error {
            FlowError::Failed(failure) => GatewayError::OidcFailed(failure),
            FlowError::Logout(problem) => GatewayError::BadLogoutToken(problem),
            FlowError::Unavailable(_) => GatewayError::ProviderUnavailable,
            FlowError::Store => GatewayError::StoreUnavailable,
            FlowError::Internal => GatewayError::Internal,
        }
    }
}

impl From<UpstreamError> for GatewayError {
    fn from(error: UpstreamError) -> GatewayError {
        match error {
            UpstreamError::Unreachable => GatewayError::UpstreamUnreachable,
            UpstreamError::Failed => GatewayError::UpstreamFailed,
            UpstreamError::Timeout => GatewayError::UpstreamTimeout,
            UpstreamError::NoneHealthy => GatewayError::NoHealthyUpstream,
            UpstreamError::BodyTooLarge => GatewayError::BodyTooLarge,
            UpstreamError::ClientBody => GatewayError::BadRequestBody,
        }
    }
}

impl GatewayError {
    /// A 429 telling the client how long to wait (at least a second).
    pub(crate) fn rate_limited(wait: std::time::Duration) -> GatewayError {
        GatewayError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        }
    }

    /// A 405 whose `Allow` names the methods the path takes.
    pub(crate) fn method_not_allowed(allow: &'static str) -> GatewayError {
        GatewayError::MethodNotAllowed {
            allow: HeaderValue::from_static(allow),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            AmbiguousFraming(_)
            | BadPath(_)
            | BadRequestTarget
            | BadHost
            | DuplicateAuthorization
            | MalformedHead
            | BadRequest(_)
            | BadRequestBody
            | DuplicateCookie
            | OidcFailed(OidcFailure::BadCallback)
            | BadLogoutToken(_)
            | DpopProofRefused(_)
            | UseDpopNonce {
                at_token_endpoint: true,
                ..
            } => StatusCode::BAD_REQUEST,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            NoRoute | NoSuchSession | NoSuchApiKey | MfaNotEnabled | PasskeysNotEnabled => {
                StatusCode::NOT_FOUND
            }
            AlreadyEnrolled | NotEnrolled => StatusCode::CONFLICT,
            AuthenticationRequired
            | LoginRequiredViaProxy { .. }
            | InvalidToken(_)
            | Dpop(_)
            | UseDpopNonce { .. }
            | InvalidCredentials
            | InvalidCode
            | InvalidMfaToken
            | PasskeyRefused(_)
            | InvalidGrant
            | RefreshReuse
            | AdminTokenRequired
            | StepUpRequired(_) => StatusCode::UNAUTHORIZED,
            InsufficientScope | CrossSiteRequest | RuleDenied | OidcFailed(_) | UntrustedForwardAuth => {
                StatusCode::FORBIDDEN
            }
            LoginRequired { .. } => StatusCode::FOUND,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            LoginOverloaded | CheckerUnavailable | StoreUnavailable | ProviderUnavailable
            | NoHealthyUpstream => StatusCode::SERVICE_UNAVAILABLE,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            UpstreamUnreachable | UpstreamFailed => StatusCode::BAD_GATEWAY,
            UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The machine-readable `error` member of the JSON body.
    pub(crate) fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            AmbiguousFraming(_)
            | BadPath(_)
            | BadRequestTarget
            | BadHost
            | DuplicateAuthorization
            | MalformedHead
            | BadRequest(_)
            | BadRequestBody
            | DuplicateCookie => "bad_request",
            HeadersTooLarge => "headers_too_large",
            UriTooLong => "uri_too_long",
            NoRoute | NoSuchSession | NoSuchApiKey | MfaNotEnabled | PasskeysNotEnabled => "not_found",
            PasskeyRefused(_) => "passkey_refused",
            AlreadyEnrolled => "already_enrolled",
            NotEnrolled => "not_enrolled",
            InvalidCode => "invalid_code",
            InvalidMfaToken => "invalid_mfa_token",
            AuthenticationRequired | AdminTokenRequired => "unauthorized",
            InvalidToken(_) => "invalid_token",
            Dpop(failure) => failure.code(),
            DpopProofRefused(_) => "invalid_dpop_proof",
            UseDpopNonce { .. } => "use_dpop_nonce",
            InsufficientScope => "insufficient_scope",
            CrossSiteRequest => "cross_site_request",
            RuleDenied => "access_denied",
            StepUpRequired(_) => "insufficient_user_authentication",
            LoginRequired { .. } | LoginRequiredViaProxy { .. } => "login_required",
            UntrustedForwardAuth => "forbidden",
            InvalidCredentials => "invalid_credentials",
            InvalidGrant | RefreshReuse => "invalid_grant",
            StoreUnavailable => "unavailable",
            RateLimited { .. } => "rate_limited",
            LoginOverloaded => "overloaded",
            CheckerUnavailable => "unavailable",
            MethodNotAllowed { .. } => "method_not_allowed",
            UnsupportedMediaType => "unsupported_media_type",
            Internal => "internal",
            BodyTooLarge => "body_too_large",
            RequestTimeout => "request_timeout",
            UpstreamUnreachable | UpstreamFailed => "bad_gateway",
            UpstreamTimeout => "gateway_timeout",
            NoHealthyUpstream => "unavailable",
            OidcFailed(_) => "oidc_failed",
            ProviderUnavailable => "unavailable",
            // Back-Channel Logout 1.0 2.8: an OAuth error code.
            BadLogoutToken(_) => "invalid_request",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 3) for token failures on protected routes,
    /// and RFC 9470's for a step-up.
    fn challenge(&self) -> Option<HeaderValue> {
        let fixed = match self {
            GatewayError::AuthenticationRequired | GatewayError::LoginRequiredViaProxy { .. } => {
                "Bearer realm=\"portcullis\""
            }
            GatewayError::InvalidToken(_) => "Bearer realm=\"portcullis\", error=\"invalid_token\"",
            GatewayError::InsufficientScope => "Bearer realm=\"portcullis\", error=\"insufficient_scope\"",
            GatewayError::AdminTokenRequired => "Bearer realm=\"portcullis-admin\"",
            GatewayError::StepUpRequired(step_up) => return Some(step_up_challenge(step_up)),
            GatewayError::Dpop(failure) => return Some(failure.challenge()),
            GatewayError::UseDpopNonce {
                at_token_endpoint: false,
                ..
            } => return Some(dpop::challenge_with("use_dpop_nonce", &self.to_string())),
            _ => return None,
        };
        Some(HeaderValue::from_static(fixed))
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            GatewayError::LoginOverloaded
            | GatewayError::CheckerUnavailable
            | GatewayError::StoreUnavailable
            | GatewayError::ProviderUnavailable
            | GatewayError::NoHealthyUpstream => Some(1),
            _ => None,
        }
    }

    /// After these the connection cannot be trusted to be in sync, so it is closed.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            GatewayError::AmbiguousFraming(_)
                | GatewayError::MalformedHead
                | GatewayError::UriTooLong
                | GatewayError::BodyTooLarge
        )
    }

    /// The response of the public listener.
    pub(crate) fn to_response(&self) -> Response<ResponseBody> {
        self.to_plain_response().map(Either::Right)
    }

    /// The same status and headers with an HTML page, for a browser navigating a gateway page.
    pub(crate) fn to_page_response(&self, pages: &crate::pages::Pages) -> Response<ResponseBody> {
        let page = pages.error(self.status().as_u16(), self.code(), &self.to_string());
        let mut response = self.to_plain_response();
        *response.body_mut() = Full::new(Bytes::from(page));
        let content_type = HeaderValue::from_static("text/html; charset=utf-8");
        response.headers_mut().insert(CONTENT_TYPE, content_type);
        response.map(Either::Right)
    }

    /// The same response with a plain body, for the admin listener.
    pub(crate) fn to_plain_response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge() {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        match self {
            GatewayError::LoginRequired { location } | GatewayError::LoginRequiredViaProxy { location } => {
                headers.insert(http::header::LOCATION, location.clone());
            }
            GatewayError::MethodNotAllowed { allow } => {
                headers.insert(http::header::ALLOW, allow.clone());
            }
            GatewayError::UseDpopNonce { nonce, .. } => {
                headers.insert(DPOP_NONCE, nonce.clone());
            }
            _ => {}
        }
        if self.closes_connection() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests;

mod dpop;
mod labels;
pub(crate) use dpop::DpopFailure;
pub(crate) use labels::{login_result, refresh_result};

fn step_up_message(step_up: &StepUp) -> &'static str {
    match (step_up.mfa, step_up.max_age) {
        (true, Some(_)) => "log in again recently and with a second factor to continue",
        (true, None) => "a second factor is required to continue",
        (false, _) => "log in again to continue: the last login is too long ago",
    }
}

/// `Bearer realm="portcullis", error="insufficient_user_authentication", ...` with
/// `acr_values="mfa"` and `max_age=N` as the rule needs (RFC 9470 3).
fn step_up_challenge(step_up: &StepUp) -> HeaderValue {
    let mut challenge = format!(
        "Bearer realm=\"portcullis\", error=\"insufficient_user_authentication\", \
         error_description=\"{}\"",
        step_up_message(step_up)
    );
    if step_up.mfa {
        challenge.push_str(", acr_values=\"mfa\"");
    }
    if let Some(max_age) = step_up.max_age {
        challenge.push_str(&format!(", max_age={max_age}"));
    }
    // Only fixed text and digits: always a valid header value.
    HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer realm=\"portcullis\""))
}
