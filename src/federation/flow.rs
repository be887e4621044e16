//! The authorization code flow with PKCE, as the gateway drives it: the redirect to the
//! provider, and at the callback every check before a session may begin. The callback checks
//! the state first and exchanges the code second (oauth2-proxy exchanges first, which spends
//! the code of a forged callback); the endpoint spends the state in the store in between.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{self, Mapped};
use super::provider::{Known, Provider, ProviderError};
use super::state::{LoginState, StateProblem, same_secret};
use super::{FlowError, OidcFailure};
use crate::auth::foreign::{Expected, ForeignTokenError};
use crate::config::ClientAuth;
use crate::secret::Secret;

/// The query of `/auth/oidc/{name}/callback`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// RFC 9207: which provider answered; stops a mix-up between several providers.
    pub iss: Option<String>,
}

impl Callback {
    /// A query that repeats a parameter is refused as a whole: which copy counts is unknowable.
    pub(crate) fn parse(query: Option<&str>) -> Option<Callback> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let mut callback = Callback::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "code" => &mut callback.code,
                "state" => &mut callback.state,
                "error" => &mut callback.error,
                "iss" => &mut callback.iss,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(callback)
    }
}

/// The token endpoint's answer; only the id_token matters to the gateway.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

/// Where to send the browser, and the sealed login to set as the cookie.
pub(crate) async fn start(
    provider: &Provider,
    sealing_key: &Secret<[u8; 32]>,
    return_to: String,
    redirect_uri: String,
    now: u64,
) -> Result<(String, String), FlowError> {
    let known = provider.known().await.map_err(FlowError::Unavailable)?;
    let config = &provider.config;
    let login = LoginState::begin(&config.name, return_to, redirect_uri, now);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &login.redirect_uri)
        .append_pair("scope", &config.scopes.join(" "))
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &login.code_challenge())
        .append_pair("code_challenge_method", "S256")
        .finish();
    let endpoint = &known.authorization_endpoint;
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let sealed = login.seal(sealing_key).ok_or(FlowError::Internal)?;
    Ok((format!("{endpoint}{separator}{query}"), sealed))
}

/// The login the cookie remembers, if the cookie is ours, intact, fresh and for this provider,
/// and the provider returned its state.
pub(crate) fn check_state(
    provider: &Provider,
    sealing_key: &Secret<[u8; 32]>,
    cookie: Option<&str>,
    callback: &Callback,
    now: u64,
) -> Result<LoginState, OidcFailure> {
    let cookie = cookie.ok_or(OidcFailure::MissingState)?;
    let login = LoginState::open(sealing_key, cookie, now).map_err(|problem| match problem {
        StateProblem::Unreadable => OidcFailure::MissingState,
        StateProblem::Expired => OidcFailure::StateExpired,
    })?;
    let returned = callback.state.as_deref().unwrap_or("");
    match login.provider == provider.config.name && same_secret(returned, &login.state) {
        true => Ok(login),
        false => Err(OidcFailure::StateMismatch),
    }
}

/// The provider's answer, the code exchange and the id_token checks, then the claim mapping.
pub(crate) async fn finish(
    provider: &Provider,
    login: &LoginState,
    callback: &Callback,
    leeway: u64,
    now: u64,
) -> Result<Mapped, FlowError> {
    let config = &provider.config;
    if let Some(error) = &callback.error {
        let error: String = error.chars().filter(char::is_ascii_graphic).take(64).collect();
        tracing::info!(provider = %config.name, %error, "the provider refused the login");
        return Err(OidcFailure::ProviderError.into());
    }
    if callback.iss.as_ref().is_some_and(|iss| *iss != config.issuer) {
        return Err(OidcFailure::IssuerMismatch.into());
    }
    let code = callback.code.as_deref().ok_or(OidcFailure::BadCallback)?;
    let known = provider.known().await.map_err(FlowError::Unavailable)?;
    let id_token = exchange(provider, &known, login, code).await?;
    let claims = verify_id_token(provider, known, &id_token, leeway, now).await?;
    if !claims
        .get("nonce")
        .and_then(Value::as_str)
        .is_some_and(|nonce| same_secret(nonce, &login.nonce))
    {
        return Err(OidcFailure::Nonce.into());
    }
    check_azp(&claims, &config.client_id)?;
    Ok(claims::map(config, &claims, now)?)
}

/// Trades the code for tokens at the token endpoint (RFC 6749 4.1.3, with the PKCE verifier).
async fn exchange(
    provider: &Provider,
    known: &Known,
    login: &LoginState,
    code: &str,
) -> Result<String, FlowError> {
    let config = &provider.config;
    let (form, basic) = exchange_request(provider, known, login, code)?;
    let answer = provider
        .http
        .post_form(&known.token_endpoint, form, basic)
        .await
        .map_err(|e| FlowError::Unavailable(ProviderError::Fetch(e)))?;
    if answer.status != http::StatusCode::OK {
        let reason = serde_json::from_slice::<Value>(&answer.body).ok().and_then(|v| {
            v.get("error")
                .and_then(Value::as_str)
                .map(|e| e.chars().take(64).collect::<String>())
        });
        tracing::info!(provider = %config.name, status = answer.status.as_u16(), error = ?reason, "the token endpoint refused the code");
        return Err(OidcFailure::CodeRejected.into());
    }
    let tokens: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|_| OidcFailure::NoIdToken)?;
    Ok(tokens.id_token.ok_or(OidcFailure::NoIdToken)?)
}

/// The token request's form and, for `client_secret_basic`, its `Authorization`.
fn exchange_request(
    provider: &Provider,
    known: &Known,
    login: &LoginState,
    code: &str,
) -> Result<(String, Option<HeaderValue>), FlowError> {
    let (client_id, secret) = (&provider.config.client_id, provider.secret.expose());
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &login.redirect_uri)
        .append_pair("code_verifier", &login.verifier);
    let basic = match known.client_auth {
        ClientAuth::Post => {
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", secret);
            None
        }
        ClientAuth::Basic => Some(basic_credentials(client_id, secret)?),
    };
    Ok((form.finish(), basic))
}

/// RFC 6749 2.3.1: both parts form-encoded before they are joined and base64-encoded.
fn basic_credentials(client_id: &str, secret: &str) -> Result<HeaderValue, FlowError> {
    let encode = |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    let credentials = STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)));
    let mut value =
        HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|_| FlowError::Internal)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The id_token's signature and standard claims, fetching the keys again once when it names
/// a key the gateway has not seen (a provider that rotated its keys).
pub(crate) async fn verify_id_token(
    provider: &Provider,
    known: std::sync::Arc<Known>,
    token: &str,
    leeway: u64,
    now: u64,
) -> Result<Map<String, Value>, FlowError> {
    let expected = |known: &Known| -> Result<Map<String, Value>, ForeignTokenError> {
        let expected = Expected {
            issuer: &provider.config.issuer,
            audience: &provider.config.client_id,
            algorithms: &known.algorithms,
            leeway,
            now,
        };
        known.keys.verify(token, &expected)
    };
    match expected(&known) {
        Err(ForeignTokenError::UnknownKey) => {
            let newer = provider.newer_keys(&known).await;
            let verified = newer.map_or(Err(ForeignTokenError::UnknownKey), |newer| expected(&newer));
            Ok(verified.map_err(OidcFailure::IdToken)?)
        }
        verified => Ok(verified.map_err(OidcFailure::IdToken)?),
    }
}

/// OpenID Connect Core 3.1.3.7: with several audiences `azp` must be present; when present it
/// must be the gateway's client id.
fn check_azp(claims: &Map<String, Value>, client_id: &str) -> Result<(), OidcFailure> {
    let several = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(azp) if azp.as_str() == Some(client_id) => Ok(()),
        None if !several => Ok(()),
        _ => Err(OidcFailure::Azp),
    }
}
