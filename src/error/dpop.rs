//! How DPoP refusals are answered (RFC 9449 §7.1, SPEC 14): a `DPoP` challenge naming the
//! algorithms we take and the error, and the labels they are counted and audited under.

use http::HeaderValue;

use crate::auth::TokenError;
use crate::auth::dpop::DpopError;

/// Why a request to a protected resource failed its DPoP checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DpopFailure {
    #[error("{0}")]
    Proof(DpopError),
    /// The token sent with `Authorization: DPoP` is itself not valid.
    #[error("{0}")]
    Token(TokenError),
    #[error("the token is DPoP-bound: send it as Authorization: DPoP with a proof")]
    BoundTokenAsBearer,
    #[error("the token is not DPoP-bound; send it as Authorization: Bearer")]
    NotBound,
    /// A `require_dpop` route presented with a bearer credential (token, cookie, API key).
    #[error("this route accepts only DPoP-bound tokens")]
    BearerRefused,
    /// A `require_dpop` route presented with no credential at all.
    #[error("a DPoP-bound token is required")]
    Required,
}

/// The algorithms a proof may use (SPEC 14), as the challenge's `algs` lists them.
const CHALLENGE: &str = "DPoP realm=\"portcullis\", algs=\"ES256 EdDSA Ed25519 RS256\"";

impl DpopFailure {
    /// The OAuth error code: the body's `error` and the challenge's.
    pub(super) fn code(self) -> &'static str {
        match self {
            DpopFailure::Proof(_) => "invalid_dpop_proof",
            DpopFailure::Required => "unauthorized",
            _ => "invalid_token",
        }
    }

    /// `portcullis_auth_failures_total{reason}` and the audit event's reason.
    pub(super) fn reason(self) -> &'static str {
        match self {
            DpopFailure::Proof(error) => error.reason(),
            DpopFailure::Token(error) => super::labels::token_reason(error),
            DpopFailure::BoundTokenAsBearer => "dpop_bound_as_bearer",
            DpopFailure::NotBound => "dpop_not_bound",
            DpopFailure::BearerRefused => "dpop_required",
            DpopFailure::Required => "missing",
        }
    }

    /// RFC 6750 §3.1: no error code when the request carried no credential at all.
    pub(super) fn challenge(self) -> HeaderValue {
        match self {
            DpopFailure::Required => HeaderValue::from_static(CHALLENGE),
            failure => challenge_with(failure.code(), &failure.to_string()),
        }
    }
}

/// The challenge with `error` and a description; the texts are ours, fixed and printable.
pub(super) fn challenge_with(error: &str, description: &str) -> HeaderValue {
    let text = format!("{CHALLENGE}, error=\"{error}\", error_description=\"{description}\"");
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(CHALLENGE))
}
