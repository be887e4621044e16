//! Phases 3 and 4: who is calling (bearer token or access cookie) and whether they may.

use std::sync::Arc;

use http::HeaderMap;

use super::Runtime;
use crate::auth::tokens::unix_now;
use crate::auth::{self, Identity, Revocations};
use crate::config::AuthPolicy;
use crate::error::GatewayError;
use crate::routes::Route;

/// A protected route needs a valid credential; a public one forwards a valid credential's
/// identity and treats an invalid one as anonymous.
pub(super) fn authenticate(
    runtime: &Runtime,
    revocations: &Revocations,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Arc<Identity>>, GatewayError> {
    let identity = auth::identify(
        &runtime.tokens,
        revocations,
        &runtime.config.cookies,
        headers,
        unix_now(),
    );
    match (route.auth, identity) {
        (AuthPolicy::Required, Ok(None)) => Err(GatewayError::AuthenticationRequired),
        (AuthPolicy::Required, result) => result,
        (AuthPolicy::Public, result) => Ok(result.unwrap_or(None)),
    }
}

// === phase 4: authorize ===

pub(super) fn authorize(route: &Route, identity: Option<&Identity>) -> Result<(), GatewayError> {
    match identity {
        Some(identity) if !route.roles.is_empty() && !route.roles.contains(&identity.role) => {
            Err(GatewayError::InsufficientScope)
        }
        _ => Ok(()),
    }
}
