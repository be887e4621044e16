//! Phase 3's DPoP part (SPEC 14): a DPoP-bound token is accepted only as `Authorization: DPoP`
//! with a proof by its key for this very request; an unbound token never comes that way; a
//! `require_dpop` route takes nothing else. Login and refresh read a proof here too.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::auth::dpop::{DpopError, Expected, request_htu};
use crate::auth::tokens::unix_now;
use crate::auth::{Credential, Identity};
use crate::context::{RequestCtx, Target};
use crate::error::{DpopFailure, GatewayError};

/// RFC 9449 §4.1: the proof's header.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Where a proof is checked: its refusals are answered differently (RFC 9449 §5 and §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkpoint {
    /// A protected resource (proxied, forward-auth, the gateway's own session endpoints).
    Resource,
    /// `/auth/login`, `/auth/refresh` and the other ways of getting tokens.
    TokenEndpoint,
}

/// Whether the credential and the verified token agree on DPoP, and the proof holds.
pub(crate) fn check(
    ctx: &RequestCtx<'_>,
    request: (&Method, &HeaderMap),
    target: &Target,
    credential: Credential<'_>,
    identity: &Identity,
    require_dpop: bool,
) -> Result<(), GatewayError> {
    let (method, headers) = request;
    match (&identity.jkt, credential) {
        (Some(jkt), Credential::Dpop(token)) => {
            let bound = Some((token, jkt.as_str()));
            prove(ctx, headers, method, target, bound, Checkpoint::Resource).map(drop)
        }
        (Some(_), _) => Err(GatewayError::Dpop(DpopFailure::BoundTokenAsBearer)),
        (None, Credential::Dpop(_)) => Err(GatewayError::Dpop(DpopFailure::NotBound)),
        (None, _) if require_dpop => Err(GatewayError::Dpop(DpopFailure::BearerRefused)),
        (None, _) => Ok(()),
    }
}

/// At a token endpoint: the thumbprint of the key whose proof came with the request, or
/// `None` when it came without one (the tokens are then bearer tokens).
pub(crate) fn proven_key(
    ctx: &RequestCtx<'_>,
    headers: &HeaderMap,
    target: &Target,
) -> Result<Option<String>, GatewayError> {
    if !headers.contains_key(DPOP) {
        return Ok(None);
    }
    prove(ctx, headers, &ctx.method, target, None, Checkpoint::TokenEndpoint).map(Some)
}

/// The key thumbprint of the one `DPoP` header's proof for this request, made with the
/// access token and key of `bound` (token, `cnf.jkt`) when there is one; refusals in the
/// form `at` calls for.
fn prove(
    ctx: &RequestCtx<'_>,
    headers: &HeaderMap,
    method: &Method,
    target: &Target,
    bound: Option<(&str, &str)>,
    at: Checkpoint,
) -> Result<String, GatewayError> {
    let mut proofs = headers.get_all(DPOP).iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(proof), None) => proof.to_str().map_err(|_| DpopError::Malformed),
        (None, _) => Err(DpopError::Missing),
        (Some(_), Some(_)) => Err(DpopError::Malformed),
    };
    let uri = request_htu(&target.authority, &target.path);
    let expected = Expected {
        method: method.as_str(),
        uri: &uri,
        access_token: bound.map(|(token, _)| token),
        jkt: bound.map(|(_, jkt)| jkt),
        now: unix_now(),
    };
    let verified = proof.and_then(|proof| ctx.runtime.dpop.verify(proof, &expected));
    verified.map_err(|error| refused(ctx, error, at))
}

/// A nonce error carries a fresh nonce; the others say what was wrong.
fn refused(ctx: &RequestCtx<'_>, error: DpopError, at: Checkpoint) -> GatewayError {
    let at_token_endpoint = at == Checkpoint::TokenEndpoint;
    if error == DpopError::NonceRequired
        && let Some(nonce) = fresh_nonce(ctx)
    {
        return GatewayError::UseDpopNonce {
            nonce,
            at_token_endpoint,
        };
    }
    match at_token_endpoint {
        true => GatewayError::DpopProofRefused(error),
        false => GatewayError::Dpop(DpopFailure::Proof(error)),
    }
}

/// A nonce for the `DPoP-Nonce` header, when `[dpop] require_nonce` is on.
pub(crate) fn fresh_nonce(ctx: &RequestCtx<'_>) -> Option<HeaderValue> {
    let nonce = ctx.runtime.dpop.fresh_nonce(unix_now())?;
    HeaderValue::from_str(&nonce).ok()
}
