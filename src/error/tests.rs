//! Pins the error table: statuses, challenges, headers.

use super::*;
use GatewayError::*;

/// Pins the contract's status codes (SPEC 3, 6): changing one is a breaking change.
#[test]
fn every_error_maps_to_the_status_the_spec_names() {
    let table = [
        (AmbiguousFraming(FramingViolation::DuplicateContentLength), 400),
        (BadPath(PathRejection::EncodedSlash), 400),
        (BadRequestTarget, 400),
        (BadHost, 400),
        (DuplicateAuthorization, 400),
        (MalformedHead, 400),
        (HeadersTooLarge, 431),
        (UriTooLong, 414),
        (NoRoute, 404),
        (NoSuchSession, 404),
        (NoSuchApiKey, 404),
        (AuthenticationRequired, 401),
        (InvalidToken(TokenError::Expired), 401),
        (InvalidToken(TokenError::NotAccepted), 401),
        (InvalidToken(TokenError::ApiKeyInvalid), 401),
        (InvalidToken(TokenError::IssuerUnavailable), 401),
        (InsufficientScope, 403),
        (CrossSiteRequest, 403),
        (RuleDenied, 403),
        (
            StepUpRequired(StepUp {
                rule: 0,
                mfa: true,
                max_age: None,
            }),
            401,
        ),
        (DuplicateCookie, 400),
        (
            LoginRequired {
                location: HeaderValue::from_static("/login"),
            },
            302,
        ),
        (
            LoginRequiredViaProxy {
                location: HeaderValue::from_static("/login"),
            },
            401,
        ),
        (UntrustedForwardAuth, 403),
        (InvalidCredentials, 401),
        (InvalidCode, 401),
        (InvalidMfaToken, 401),
        (MfaNotEnabled, 404),
        (AlreadyEnrolled, 409),
        (NotEnrolled, 409),
        (PasskeysNotEnabled, 404),
        (PasskeyRefused("x"), 401),
        (InvalidGrant, 401),
        (RefreshReuse, 401),
        (StoreUnavailable, 503),
        (RateLimited { retry_after_secs: 3 }, 429),
        (LoginOverloaded, 503),
        (CheckerUnavailable, 503),
        (BadRequest("x"), 400),
        (GatewayError::method_not_allowed("GET"), 405),
        (UnsupportedMediaType, 415),
        (Internal, 500),
        (BodyTooLarge, 413),
        (RequestTimeout, 408),
        (BadRequestBody, 400),
        (UpstreamUnreachable, 502),
        (UpstreamFailed, 502),
        (UpstreamTimeout, 504),
        (NoHealthyUpstream, 503),
        (OidcFailed(OidcFailure::Nonce), 403),
        (OidcFailed(OidcFailure::BadCallback), 400),
        (ProviderUnavailable, 503),
        (BadLogoutToken(LogoutProblem::Replayed), 400),
    ];
    for (error, status) in table {
        let response = error.to_response();
        assert_eq!(response.status().as_u16(), status, "{error:?}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}

#[test]
fn a_missing_token_asks_for_bearer_credentials() {
    let response = AuthenticationRequired.to_response();
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"portcullis\""
    );
}

#[test]
fn token_failures_carry_the_rfc_6750_error_codes() {
    let invalid = InvalidToken(TokenError::BadSignature).to_response();
    assert_eq!(
        invalid.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"portcullis\", error=\"invalid_token\""
    );
    let scope = InsufficientScope.to_response();
    assert_eq!(
        scope.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\""
    );
    assert_eq!(
        RateLimited { retry_after_secs: 7 }.to_response().headers()[RETRY_AFTER],
        "7"
    );
}

#[test]
fn a_step_up_carries_the_rfc_9470_challenge() {
    let challenge = |mfa, max_age| {
        let response = StepUpRequired(StepUp {
            rule: 2,
            mfa,
            max_age,
        })
        .to_response();
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    let both = challenge(true, Some(600));
    assert!(
        both.starts_with("Bearer realm=\"portcullis\", error=\"insufficient_user_authentication\""),
        "{both}"
    );
    assert!(both.ends_with(", acr_values=\"mfa\", max_age=600"), "{both}");
    let age_only = challenge(false, Some(60));
    assert!(
        age_only.ends_with("\", max_age=60") && !age_only.contains("acr_values"),
        "{age_only}"
    );
}

#[test]
fn ambiguous_framing_closes_the_connection() {
    let response = AmbiguousFraming(FramingViolation::ContentLengthWithTransferEncoding).to_response();
    assert_eq!(response.headers()[CONNECTION], "close");
}
