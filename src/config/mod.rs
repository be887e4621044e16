//! The gateway's configuration: typed, validated values built from `gateway.toml`.
//!
//! `file` mirrors the TOML, `validate` turns it into the types below and collects every
//! error with its `file:line:col` before reporting, so one `portcullis check` shows them all.

mod file;
pub(crate) mod problems;
mod rules;
mod sections;
mod structure;
mod upstream;
mod validate;
pub mod values;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;

pub use rules::*;
pub use sections::*;
pub use upstream::*;
pub use values::Rate;

/// Everything the gateway needs to run, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; relative paths inside it were resolved against its folder.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub tokens: TokensConfig,
    pub users: UsersConfig,
    pub store: StoreConfig,
    pub cookies: CookiesConfig,
    pub headers: HeadersConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub demo: Option<DemoConfig>,
    pub routes: Vec<RouteConfig>,
    pub providers: Vec<ProviderConfig>,
    pub issuers: Vec<IssuerConfig>,
    /// `None`: no TOTP (its endpoints answer 404).
    pub mfa: Option<MfaConfig>,
    /// `None`: no passkeys (their endpoints answer 404).
    pub webauthn: Option<WebauthnConfig>,
    pub dpop: DpopConfig,
    pub admin: AdminConfig,
    pub ui: UiConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub redirect_listen: Option<SocketAddr>,
    /// The name (and port, if not 443) clients reach the gateway by; the redirect uses it.
    pub public_host: Option<http::uri::Authority>,
    pub admin_listen: SocketAddr,
    pub trusted_proxies: Vec<IpNet>,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub self_signed_if_missing: bool,
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_idle_ttl: Duration,
    pub refresh_grace: Duration,
    pub leeway: Duration,
    /// The first key signs; every key verifies.
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Es256,
    EdDsa,
    Rs256,
    Hs256,
}

impl KeyAlgorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Es256 => "ES256",
            KeyAlgorithm::EdDsa => "EdDSA",
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::Hs256 => "HS256",
        }
    }
}

/// Where a key's material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    PrivateKeyFile(PathBuf),
    /// Verify-only: for tokens signed by a key that is being rotated out.
    PublicKeyFile(PathBuf),
    SecretFile(PathBuf),
    SecretEnv(String),
}

#[derive(Debug, Clone)]
pub struct KeyConfig {
    pub kid: String,
    pub alg: KeyAlgorithm,
    pub source: KeySource,
    pub generate_if_missing: bool,
}

impl KeyConfig {
    /// The key's file when it is one that can be generated and does not exist.
    pub fn missing_file(&self) -> Option<&Path> {
        match &self.source {
            KeySource::PrivateKeyFile(path) | KeySource::SecretFile(path) if !path.exists() => Some(path),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersConfig {
    /// A `users.toml` with `[[user]]` entries, reloaded when it changes.
    File(PathBuf),
    /// Delegate the password check to an existing backend.
    CheckUrl(http::Uri),
}

/// Where sessions and revocations are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded default: one SQLite file.
    Sqlite { path: PathBuf },
    /// Shared by several gateway replicas.
    Redis {
        url: String,
        password: Option<SecretSource>,
    },
}

/// Where a secret (the Redis password, a provider's client secret) comes from: never inline
/// in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CookiesConfig {
    pub enabled: bool,
    pub access_name: String,
    pub refresh_name: String,
    pub allowed_origins: Vec<String>,
    pub transparent_refresh: bool,
}

#[derive(Debug, Clone)]
pub struct HeadersConfig {
    pub subject: HeaderName,
    pub role: HeaderName,
    pub session: HeaderName,
    /// SPEC 13: a header with the caller's `amr` (space-separated), when configured.
    pub amr: Option<HeaderName>,
    pub forward_authorization: bool,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub login_per_ip: Rate,
    pub login_per_user: Rate,
    pub refresh_per_session: Rate,
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `portcullis=debug`.
    pub level: String,
}

/// How the gateway authenticates at a provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret.
    Basic,
    /// `client_id` and `client_secret` as form fields.
    Post,
}

/// One OpenID Connect provider users may log in through (SPEC 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// `[a-z0-9-]+`: in URLs, in the `idp` of sessions and tokens.
    pub name: String,
    pub display_name: String,
    /// Exactly as written: the id_token's `iss` must equal it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    pub client_auth: ClientAuth,
    /// Always holds `openid`.
    pub scopes: Vec<String>,
    pub mapping: ClaimMapping,
    /// Lower-case; empty means any email (or none).
    pub allowed_email_domains: Vec<String>,
    pub ca_file: Option<PathBuf>,
}

/// How a foreign token's claims become our `sub` and role (SPEC 10 and 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub subject_claim: String,
    pub subject_prefix: String,
    pub role_claim: Option<String>,
    /// (value of `role_claim`, role): the first listed pair whose value is present wins.
    pub role_map: Vec<(String, String)>,
    /// `None`: refuse a token whose claims map to no role.
    pub default_role: Option<String>,
}

/// Someone else whose access tokens routes may accept (SPEC 11): typically the organisation's
/// identity provider issuing client-credentials tokens to services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// `[a-z0-9-]+`: in routes' `accept` (`issuer:<name>`) and in the session header.
    pub name: String,
    /// Exactly as written: the token's `iss` must equal it.
    pub issuer: String,
    /// `None`: from the issuer's discovery document.
    pub jwks_uri: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub audience: String,
    /// Asymmetric only, never empty.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// The role claim is a space-separated string (like `scope`) or an array.
    pub mapping: ClaimMapping,
}

/// The asymmetric algorithms a foreign token may use (`[[issuers]] algorithms`, providers'
/// id_tokens): never `none`, never HMAC.
pub const ASYMMETRIC: &[jsonwebtoken::Algorithm] = &[
    jsonwebtoken::Algorithm::RS256,
    jsonwebtoken::Algorithm::RS384,
    jsonwebtoken::Algorithm::RS512,
    jsonwebtoken::Algorithm::PS256,
    jsonwebtoken::Algorithm::PS384,
    jsonwebtoken::Algorithm::PS512,
    jsonwebtoken::Algorithm::ES256,
    jsonwebtoken::Algorithm::ES384,
    jsonwebtoken::Algorithm::EdDSA,
];

/// A kind of credential a route accepts (SPEC 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptable {
    /// Our own access token, by bearer or cookie.
    Session,
    ApiKey,
    /// An access token of the `[[issuers]]` entry with this name.
    Issuer(String),
}

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub echo_listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lower-case host name, compared exactly.
    Exact(String),
    /// The suffix including its leading dot (`.example.com` for `*.example.com`).
    Wildcard(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicy {
    Required,
    Public,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<HostPattern>,
    /// A normalised path prefix.
    pub path: String,
    /// `None` means every method.
    pub methods: Option<Vec<Method>>,
    /// `None`: decision-only, answered through forward-auth alone.
    pub upstream: Option<UpstreamConfig>,
    pub auth: AuthPolicy,
    pub roles: Vec<String>,
    pub strip_prefix: bool,
    pub timeout: Duration,
    pub websocket: bool,
    /// Where a browser without a session is sent (302 with `return_to`) instead of a 401.
    pub login_page: Option<String>,
    /// Never empty; `[Session]` unless the file says otherwise.
    pub accept: Vec<Acceptable>,
    /// Whether requests carry a signed identity assertion (`X-Auth-Assertion`).
    pub assertion: bool,
    /// Only DPoP-bound tokens with their proof are accepted: bearer credentials are refused.
    pub require_dpop: bool,
    /// Decided in order after authentication; with rules, a request no rule matches is refused.
    pub rules: Vec<RuleConfig>,
    /// The line of its `[[routes]]` in the file, for `portcullis explain`.
    pub line: usize,
}

impl RouteConfig {
    /// Host pattern and prefix (`/api` and `/api/` match the same paths): routes of one place
    /// are told apart only by method.
    pub fn place(&self) -> (Option<HostPattern>, String) {
        (self.host.clone(), self.path.trim_end_matches('/').to_string())
    }
}

/// One problem in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Every problem found in one pass over a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    parse(path, &text)
}

/// Validates config `text` as if it had been read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    validate::validate(path, text)
}

/// The config path the CLI uses when none is given: `$PORTCULLIS_CONFIG`, then `./gateway.toml`.
pub fn default_path() -> PathBuf {
    std::env::var_os("PORTCULLIS_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gateway.toml"))
}
