//! Logging in through OpenID Connect providers (SPEC 10): the configured providers and what
//! the gateway learnt from each, the login redirect, the callback's checks, and back-channel
//! logout tokens. This is the one room that talks to identity providers, never on the path
//! of a proxied request; `endpoints::oidc` turns its results into sessions and responses.

mod backchannel;
mod claims;
mod flow;
mod http;
mod issuer_keys;
mod provider;
mod state;

use std::sync::Arc;

pub(crate) use backchannel::{Logout, Named};
pub(crate) use flow::{Callback, check_state, finish, start};
pub(crate) use issuer_keys::{IssuerError, IssuerKeyring};
pub(crate) use provider::{Provider, ProviderError};
pub(crate) use state::{COOKIE, LIFETIME_SECS, LoginState};

use crate::auth::foreign::ForeignTokenError;
use crate::config::ProviderConfig;

pub(crate) async fn verify_logout(
    provider: &Provider,
    token: &str,
    leeway: u64,
    now: u64,
) -> Result<Logout, FlowError> {
    backchannel::verify(provider, token, leeway, now).await
}

/// Where an issuer publishes its discovery document (OpenID Connect Discovery 1.0 section 4).
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Why a login through a provider was refused; each is an `oidc_failed` audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OidcFailure {
    /// No login cookie, or one this gateway did not seal or that was altered.
    MissingState,
    StateExpired,
    /// The provider returned another state, or the login was for another provider.
    StateMismatch,
    /// The login's state was already spent: a replayed callback.
    Replayed,
    /// The provider answered `error=` (the user cancelled, or was refused).
    ProviderError,
    /// The callback's `iss` names another issuer (RFC 9207 mix-up).
    IssuerMismatch,
    /// Neither a code nor an error.
    BadCallback,
    /// The token endpoint refused the code (spent, expired, or not ours).
    CodeRejected,
    NoIdToken,
    IdToken(ForeignTokenError),
    Nonce,
    Azp,
    NoSubject,
    NoRole,
    EmailNotVerified,
    EmailDomain,
}

impl OidcFailure {
    pub(crate) fn reason(self) -> &'static str {
        use OidcFailure::*;
        match self {
            MissingState => "missing_state",
            StateExpired => "state_expired",
            StateMismatch => "state_mismatch",
            Replayed => "replayed",
            ProviderError => "provider_error",
            IssuerMismatch => "issuer_mismatch",
            BadCallback => "bad_callback",
            CodeRejected => "code_rejected",
            NoIdToken => "no_id_token",
            IdToken(ForeignTokenError::BadAlgorithm) => "id_token_algorithm",
            IdToken(ForeignTokenError::UnknownKey) => "id_token_unknown_key",
            IdToken(ForeignTokenError::BadSignature) => "id_token_signature",
            IdToken(ForeignTokenError::WrongIssuer) => "id_token_issuer",
            IdToken(ForeignTokenError::WrongAudience) => "id_token_audience",
            IdToken(ForeignTokenError::Expired) => "id_token_expired",
            IdToken(ForeignTokenError::NotYetValid | ForeignTokenError::IssuedInFuture) => {
                "id_token_not_yet_valid"
            }
            IdToken(ForeignTokenError::Malformed | ForeignTokenError::BadClaims) => "id_token_malformed",
            Nonce => "nonce",
            Azp => "azp",
            NoSubject => "no_subject",
            NoRole => "no_role",
            EmailNotVerified => "email_not_verified",
            EmailDomain => "email_domain",
        }
    }
}

/// Why a back-channel logout token was refused (answered 400, nothing revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogoutProblem {
    Malformed,
    /// Signature, issuer, audience or lifetime.
    BadToken,
    NoLogoutEvent,
    HasNonce,
    NoJti,
    NoSubject,
    Replayed,
}

impl LogoutProblem {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            LogoutProblem::Malformed => "malformed",
            LogoutProblem::BadToken => "bad_token",
            LogoutProblem::NoLogoutEvent => "no_logout_event",
            LogoutProblem::HasNonce => "nonce",
            LogoutProblem::NoJti => "no_jti",
            LogoutProblem::NoSubject => "no_sid_or_sub",
            LogoutProblem::Replayed => "replayed",
        }
    }
}

/// What a step of a provider login can end in besides success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlowError {
    #[error("the login through the provider failed ({})", .0.reason())]
    Failed(OidcFailure),
    #[error("the logout token was refused ({})", .0.reason())]
    Logout(LogoutProblem),
    #[error("the provider is unavailable: {0}")]
    Unavailable(ProviderError),
    #[error("the session store is unavailable")]
    Store,
    #[error("internal error")]
    Internal,
}

impl From<OidcFailure> for FlowError {
    fn from(failure: OidcFailure) -> FlowError {
        FlowError::Failed(failure)
    }
}

impl From<LogoutProblem> for FlowError {
    fn from(problem: LogoutProblem) -> FlowError {
        FlowError::Logout(problem)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("provider {name:?}: {reason}")]
pub struct FederationError {
    name: String,
    reason: String,
}

/// The configured providers, built with the runtime; a provider whose config and secret did
/// not change keeps what it learnt across a reload.
#[derive(Default)]
pub(crate) struct Federation {
    providers: Vec<Arc<Provider>>,
}

impl Federation {
    pub(crate) fn build(
        configs: &[ProviderConfig],
        previous: Option<&Federation>,
    ) -> Result<Federation, FederationError> {
        let mut providers = Vec::with_capacity(configs.len());
        for config in configs {
            let failed = |reason: String| FederationError {
                name: config.name.clone(),
                reason,
            };
            let secret = config
                .client_secret
                .read()
                .map_err(|e| failed(format!("client secret: {e}")))?;
            let kept = previous
                .and_then(|p| p.get(&config.name))
                .filter(|p| p.config == *config && p.secret == secret);
            let provider = match kept {
                Some(kept) => kept.clone(),
                None => {
                    let http = http::ProviderHttp::new(config.ca_file.as_deref())
                        .map_err(|e| failed(e.to_string()))?;
                    Arc::new(Provider::new(config.clone(), secret, http))
                }
            };
            providers.push(provider);
        }
        Ok(Federation { providers })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    pub(crate) fn configs(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| &p.config)
    }

    /// Asks every provider now, in the background, so the first login need not wait.
    pub(crate) fn prefetch(&self) {
        for provider in &self.providers {
            let provider = provider.clone();
            tokio::spawn(async move { provider.prefetch().await });
        }
    }
}
