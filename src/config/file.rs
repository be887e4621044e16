//! The serde mirror of `gateway.toml`: what the file may say, nothing more.
//!
//! Every table denies unknown keys, and every value that needs checking beyond its TOML type
//! keeps its span so that `validate` can point at it as `file:line:col`. Keys a table requires
//! are `Option` here too: `validate` reports each missing one, where serde would stop at the first.

use serde::Deserialize;
use toml::Spanned;

type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub tls: TlsFile,
    pub tokens: Option<TokensFile>,
    #[serde(default)]
    pub users: UsersFile,
    #[serde(default)]
    pub store: StoreFile,
    #[serde(default)]
    pub cookies: CookiesFile,
    #[serde(default)]
    pub headers: HeadersFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub log: LogFile,
    pub demo: Option<Spanned<DemoFile>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteFile>>,
    #[serde(default)]
    pub providers: Vec<Spanned<ProviderFile>>,
    #[serde(default)]
    pub issuers: Vec<Spanned<IssuerFile>>,
    pub mfa: Option<Spanned<MfaFile>>,
    pub webauthn: Option<Spanned<WebauthnFile>>,
    #[serde(default)]
    pub dpop: DpopFile,
    #[serde(default)]
    pub admin: AdminFile,
    #[serde(default)]
    pub ui: UiFile,
    #[serde(default)]
    pub telemetry: TelemetryFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryFile {
    pub otlp_endpoint: Option<Text>,
    pub service_name: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UiFile {
    pub title: Option<Text>,
    pub logo_file: Option<Text>,
    pub template_dir: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    pub token_file: Option<Text>,
    pub token_env: Option<Text>,
    pub protect_metrics: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DpopFile {
    pub max_age: Option<Text>,
    pub require_nonce: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebauthnFile {
    pub rp_id: Option<Text>,
    pub rp_name: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaFile {
    pub key_file: Option<Text>,
    pub key_env: Option<Text>,
    pub generate_if_missing: Option<bool>,
    pub issuer: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    pub listen: Option<Text>,
    pub redirect_listen: Option<Text>,
    pub public_host: Option<Text>,
    pub admin_listen: Option<Text>,
    #[serde(default)]
    pub trusted_proxies: Vec<Text>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub header_read_timeout: Option<Text>,
    pub idle_timeout: Option<Text>,
    pub shutdown_grace: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub self_signed_if_missing: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokensFile {
    pub issuer: Option<Text>,
    pub audience: Option<Text>,
    pub access_ttl: Option<Text>,
    pub refresh_ttl: Option<Text>,
    pub refresh_idle_ttl: Option<Text>,
    pub refresh_grace: Option<Text>,
    pub leeway: Option<Text>,
    #[serde(default)]
    pub keys: Vec<Spanned<KeyFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyFile {
    pub kid: Option<Text>,
    pub alg: Option<Text>,
    pub private_key_file: Option<Text>,
    pub public_key_file: Option<Text>,
    pub secret_file: Option<Text>,
    pub secret_env: Option<Text>,
    /// Not in the SPEC: write a new key when the file is missing (development only).
    pub generate_if_missing: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsersFile {
    pub file: Option<Text>,
    pub check_url: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreFile {
    pub backend: Option<Text>,
    pub path: Option<Text>,
    pub url: Option<Text>,
    pub password_env: Option<Text>,
    pub password_file: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CookiesFile {
    pub enabled: Option<bool>,
    pub access_name: Option<Text>,
    pub refresh_name: Option<Text>,
    #[serde(default)]
    pub allowed_origins: Vec<Text>,
    pub transparent_refresh: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeadersFile {
    pub subject: Option<Text>,
    pub role: Option<Text>,
    pub session: Option<Text>,
    pub amr: Option<Text>,
    pub forward_authorization: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub login_per_ip: Option<Text>,
    pub login_per_user: Option<Text>,
    pub refresh_per_session: Option<Text>,
    pub max_body_bytes: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogFile {
    pub format: Option<Text>,
    pub level: Option<Text>,
}

/// Not in the SPEC: a built-in echo upstream so a fresh clone has something to proxy to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DemoFile {
    pub echo_listen: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderFile {
    pub name: Option<Text>,
    pub display_name: Option<Text>,
    pub issuer: Option<Text>,
    pub client_id: Option<Text>,
    pub client_secret_file: Option<Text>,
    pub client_secret_env: Option<Text>,
    pub client_auth: Option<Text>,
    pub scopes: Option<Spanned<Vec<Text>>>,
    pub subject_claim: Option<Text>,
    pub subject_prefix: Option<Text>,
    pub role_claim: Option<Text>,
    #[serde(default)]
    pub role_map: Vec<Spanned<Vec<Text>>>,
    pub default_role: Option<Text>,
    #[serde(default)]
    pub allowed_email_domains: Vec<Text>,
    pub ca_file: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteFile {
    pub name: Option<Text>,
    pub host: Option<Text>,
    pub path: Option<Text>,
    pub methods: Option<Spanned<Vec<Text>>>,
    pub upstream: Option<Text>,
    pub auth: Option<Text>,
    #[serde(default)]
    pub roles: Vec<Text>,
    pub strip_prefix: Option<bool>,
    pub timeout: Option<Text>,
    pub websocket: Option<bool>,
    pub login_page: Option<Text>,
    pub accept: Option<Spanned<Vec<Text>>>,
    pub upstreams: Option<Spanned<Vec<Text>>>,
    pub balance: Option<Text>,
    pub retries: Option<Spanned<i64>>,
    pub upstream_tls: Option<Spanned<UpstreamTlsFile>>,
    pub health_check: Option<Spanned<HealthCheckFile>>,
    pub assertion: Option<bool>,
    pub require_dpop: Option<Spanned<bool>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub effect: Option<Text>,
    #[serde(default)]
    pub roles: Vec<Text>,
    #[serde(default)]
    pub subjects: Vec<Text>,
    #[serde(default)]
    pub idp: Vec<Text>,
    #[serde(default)]
    pub methods: Vec<Text>,
    #[serde(default)]
    pub paths: Vec<Text>,
    #[serde(default)]
    pub from: Vec<Text>,
    pub mfa: Option<Spanned<bool>>,
    pub max_auth_age: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamTlsFile {
    pub ca_file: Option<Text>,
    pub client_cert: Option<Text>,
    pub client_key: Option<Text>,
    pub server_name: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthCheckFile {
    pub path: Option<Text>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    pub unhealthy_after: Option<Spanned<i64>>,
    pub healthy_after: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerFile {
    pub name: Option<Text>,
    pub issuer: Option<Text>,
    pub jwks_uri: Option<Text>,
    pub ca_file: Option<Text>,
    pub audience: Option<Text>,
    pub algorithms: Option<Spanned<Vec<Text>>>,
    pub subject_claim: Option<Text>,
    pub subject_prefix: Option<Text>,
    pub role_claim: Option<Text>,
    #[serde(default)]
    pub role_map: Vec<Spanned<Vec<Text>>>,
    pub default_role: Option<Text>,
}
