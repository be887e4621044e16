//! The sections of part two that stand alone (SPEC 13-15): second factors and passkeys,
//! DPoP, the admin token, the pages' branding and span export.

use std::path::PathBuf;
use std::time::Duration;

use super::SecretSource;

/// `[telemetry]`: span export (SPEC 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector (`http://host:4318`); `None`: spans are not exported.
    pub otlp_endpoint: Option<http::Uri>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

/// `[ui]`: how the gateway's pages look (SPEC 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiConfig {
    /// The name every page shows (default "Portcullis").
    pub title: String,
    /// Shown at the top of every page, served at `/auth/logo`.
    pub logo_file: Option<PathBuf>,
    /// Files named like the built-in templates (`login.html`, `layout.html`, ...) replace them.
    pub template_dir: Option<PathBuf>,
}

/// `[admin]`: who may use the admin listener (SPEC 15).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminConfig {
    /// `None`: `/admin/*` is open to whoever reaches the (loopback) listener.
    pub token: Option<SecretSource>,
    /// `/metrics` needs the token too.
    pub protect_metrics: bool,
}

/// `[dpop]`: sender-constrained tokens (SPEC 14). DPoP proofs are always accepted; this tunes
/// how they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    /// How old a proof's `iat` may be.
    pub max_age: Duration,
    /// Proofs must carry a nonce the gateway issued (`DPoP-Nonce`).
    pub require_nonce: bool,
}

/// `[webauthn]`: passkeys (SPEC 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// The domain passkeys are bound to: the gateway's host or a parent domain of it.
    pub rp_id: String,
    /// The name browsers show when they ask to create a passkey.
    pub rp_name: String,
}

/// `[mfa]`: TOTP second factors (SPEC 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaConfig {
    /// At least 32 bytes of secret text; the AES-256-GCM key for TOTP secrets at rest is
    /// derived from it.
    pub key: SecretSource,
    /// Development: write a new key file when it is missing.
    pub generate_if_missing: bool,
    /// The name authenticator apps show next to the account.
    pub issuer: String,
}
