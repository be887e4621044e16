//! The labels failures are counted under (SPEC 8): auth failure reasons, upstream error
//! kinds, login and refresh results. Kept beside the status table they follow.

use super::GatewayError;
use crate::auth::TokenError;
use crate::auth::dpop::DpopError;
use crate::auth::foreign::ForeignTokenError;

impl GatewayError {
    /// `portcullis_auth_failures_total{reason}`, for the failures that are about credentials.
    pub(crate) fn auth_failure_reason(&self) -> Option<&'static str> {
        use GatewayError::*;
        Some(match self {
            AuthenticationRequired | LoginRequired { .. } | LoginRequiredViaProxy { .. } => "missing",
            InvalidToken(error) => token_reason(*error),
            Dpop(failure) => failure.reason(),
            DpopProofRefused(error) => error.reason(),
            UseDpopNonce { .. } => DpopError::NonceRequired.reason(),
            InsufficientScope => "insufficient_scope",
            CrossSiteRequest => "cross_site",
            RuleDenied => "rule_denied",
            StepUpRequired(_) => "step_up",
            InvalidCode | InvalidMfaToken | PasskeyRefused(_) => "second_factor",
            _ => return None,
        })
    }

    /// A refusal over DPoP (SPEC 14), audited with its reason; a request for a nonce is the
    /// protocol's first step, not a refusal worth auditing.
    pub(crate) fn is_dpop_refusal(&self) -> bool {
        matches!(self, GatewayError::Dpop(_) | GatewayError::DpopProofRefused(_))
    }

    /// `portcullis_upstream_errors_total{kind}`, for failures of the upstream.
    pub(crate) fn upstream_error_kind(&self) -> Option<&'static str> {
        match self {
            GatewayError::UpstreamUnreachable => Some("connect"),
            GatewayError::UpstreamTimeout => Some("timeout"),
            GatewayError::UpstreamFailed => Some("failed"),
            GatewayError::NoHealthyUpstream => Some("no_healthy_endpoint"),
            _ => None,
        }
    }
}

/// The failure reason of a token that did not verify.
pub(super) fn token_reason(error: TokenError) -> &'static str {
    match error {
        TokenError::Expired => "expired",
        TokenError::Revoked => "revoked",
        TokenError::NotAccepted => "not_accepted",
        TokenError::ApiKeyInvalid => "api_key_invalid",
        TokenError::ApiKeyExpired => "api_key_expired",
        TokenError::Foreign(ForeignTokenError::Expired) => "issuer_token_expired",
        TokenError::Foreign(_) => "issuer_token_invalid",
        TokenError::Unmapped => "issuer_token_unmapped",
        TokenError::IssuerUnavailable => "issuer_unavailable",
        _ => "invalid_token",
    }
}

/// `portcullis_logins_total{result}`.
pub(crate) fn login_result<T>(result: &Result<T, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(GatewayError::InvalidCredentials) => "invalid_credentials",
        Err(GatewayError::RateLimited { .. }) => "rate_limited",
        Err(GatewayError::LoginOverloaded) => "overloaded",
        Err(GatewayError::CheckerUnavailable | GatewayError::StoreUnavailable) => "unavailable",
        Err(_) => "bad_request",
    }
}

/// `portcullis_refreshes_total{result}`.
pub(crate) fn refresh_result<T>(result: &Result<T, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(GatewayError::RateLimited { .. }) => "rate_limited",
        Err(GatewayError::StoreUnavailable) => "unavailable",
        Err(GatewayError::RefreshReuse) => "reuse",
        Err(_) => "invalid",
    }
}
