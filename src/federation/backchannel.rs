//! OpenID Connect Back-Channel Logout 1.0: the provider POSTs a signed `logout_token` naming
//! a provider session (`sid`) or user (`sub`) that has ended. It is verified like an id_token
//! (same keys, issuer and audience), plus 2.6: the logout event, `sid` or `sub`, no `nonce`,
//! a `jti` (spent once, through the store, by the endpoint).

use serde_json::{Map, Value};

use super::flow::verify_id_token;
use super::provider::Provider;
use super::{FlowError, LogoutProblem};

/// The event a logout token must carry (2.4).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Real logout tokens are well under 2 KiB.
pub(crate) const MAX_LOGOUT_TOKEN_BYTES: usize = 8 * 1024;
/// A `jti` is remembered this long past the token's `exp` (the leeway allows late use).
const JTI_SLACK_SECS: u64 = 60;

/// Which sessions a verified logout token ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Named {
    /// The provider session: the gateway sessions begun in it.
    Sid(String),
    /// The provider's user: every gateway session of theirs through that provider.
    Sub(String),
}

/// A verified logout token.
#[derive(Debug)]
pub(crate) struct Logout {
    pub named: Named,
    pub jti: String,
    /// Until when its `jti` must be remembered.
    pub keep_jti_until: u64,
}

pub(crate) async fn verify(
    provider: &Provider,
    token: &str,
    leeway: u64,
    now: u64,
) -> Result<Logout, FlowError> {
    if token.is_empty() || token.len() > MAX_LOGOUT_TOKEN_BYTES {
        return Err(LogoutProblem::Malformed.into());
    }
    let known = provider.known().await.map_err(FlowError::Unavailable)?;
    let claims = verify_id_token(provider, known, token, leeway, now)
        .await
        .map_err(|error| match error {
            FlowError::Failed(_) => FlowError::Logout(LogoutProblem::BadToken),
            other => other,
        })?;
    Ok(logout_claims(&claims)?)
}

/// The claims 2.4 and 2.6 require of a logout token, beyond an id_token's.
fn logout_claims(claims: &Map<String, Value>) -> Result<Logout, LogoutProblem> {
    let events = claims.get("events").and_then(Value::as_object);
    if !events
        .and_then(|e| e.get(LOGOUT_EVENT))
        .is_some_and(Value::is_object)
    {
        return Err(LogoutProblem::NoLogoutEvent);
    }
    if claims.contains_key("nonce") {
        return Err(LogoutProblem::HasNonce);
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let jti = text("jti").ok_or(LogoutProblem::NoJti)?;
    let named = match (text("sid"), text("sub")) {
        (Some(sid), _) => Named::Sid(sid.to_owned()),
        (None, Some(sub)) => Named::Sub(sub.to_owned()),
        (None, None) => return Err(LogoutProblem::NoSubject),
    };
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    Ok(Logout {
        named,
        jti: jti.to_owned(),
        keep_jti_until: exp.saturating_add(JTI_SLACK_SECS),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn logout(claims: Value) -> Result<Logout, LogoutProblem> {
        logout_claims(claims.as_object().expect("an object"))
    }

    #[test]
    fn a_logout_token_needs_the_event_a_jti_and_sid_or_sub_and_no_nonce() {
        let event = json!({ LOGOUT_EVENT: {} });
        let good =
            logout(json!({"events": event, "jti": "j", "sid": "s", "sub": "u", "exp": 10})).expect("valid");
        assert_eq!(
            (good.named, good.keep_jti_until),
            (Named::Sid("s".into()), 10 + JTI_SLACK_SECS)
        );
        let by_sub = logout(json!({"events": event, "jti": "j", "sub": "u"})).expect("valid");
        assert_eq!(by_sub.named, Named::Sub("u".into()));
        let cases = [
            (json!({"jti": "j", "sid": "s"}), LogoutProblem::NoLogoutEvent),
            (
                json!({"events": {"other": {}}, "jti": "j", "sid": "s"}),
                LogoutProblem::NoLogoutEvent,
            ),
            (
                json!({"events": { LOGOUT_EVENT: "x" }, "jti": "j", "sid": "s"}),
                LogoutProblem::NoLogoutEvent,
            ),
            (
                json!({"events": event, "jti": "j", "sid": "s", "nonce": "n"}),
                LogoutProblem::HasNonce,
            ),
            (json!({"events": event, "sid": "s"}), LogoutProblem::NoJti),
            (json!({"events": event, "jti": "j"}), LogoutProblem::NoSubject),
        ];
        for (claims, problem) in cases {
            assert_eq!(logout(claims.clone()).unwrap_err(), problem, "{claims}");
        }
    }
}
