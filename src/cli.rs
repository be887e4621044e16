//! The command line: `run` (the default), `check`, the tools, and `admin` (the admin API).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use portcullis::config::KeyAlgorithm;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A TLS reverse proxy that authenticates every request"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default when no command is given).
    Run(ConfigArg),
    /// Validate the whole config and the files it names; exit 1 with `file:line:col: message` lines.
    Check(ConfigArg),
    /// Read a password from stdin (no echo on a terminal) and print its argon2id PHC string.
    HashPassword,
    /// Write a new signing key (mode 0600); never overwrites an existing file.
    Keygen(KeygenArgs),
    /// Show the route a request takes and each of its rules' verdict for a caller; exit 0
    /// when allowed, 1 when refused (or a step-up is needed), 2 when the question is invalid.
    Explain(ExplainArgs),
    /// Call the admin API of the gateway the config describes (its admin_listen, its [admin]
    /// token); print the answer's JSON; exit 1 when the gateway refuses, 2 when unreachable.
    Admin(AdminArgs),
}

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// A user's live sessions.
    Sessions {
        #[arg(long)]
        sub: String,
    },
    /// End one session (--session ID) or every session and token of a user (--sub NAME).
    Revoke {
        #[arg(long, conflicts_with = "sub", required_unless_present = "sub")]
        session: Option<String>,
        #[arg(long)]
        sub: Option<String>,
    },
    /// API keys (SPEC 11).
    #[command(subcommand)]
    ApiKeys(ApiKeysAction),
    /// Reload gateway.toml and users.toml now.
    Reload,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysAction {
    /// Every key (never the key itself).
    List,
    /// A new key for a machine client; the key is shown once.
    Create {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        /// How long it lasts, e.g. 90d (default: until deleted).
        #[arg(long, value_parser = portcullis::config::values::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Revoke a key on every replica.
    Delete { id: String },
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The request's method, e.g. GET.
    #[arg(long)]
    pub method: http::Method,
    /// `https://host/path?query`, or a path.
    #[arg(long)]
    pub url: String,
    /// The caller's subject; without --sub and --role the caller is anonymous.
    #[arg(long)]
    pub sub: Option<String>,
    #[arg(long)]
    pub role: Option<String>,
    /// How the caller logged in: local (the default), a provider's name, api_key, issuer:NAME.
    #[arg(long)]
    pub idp: Option<String>,
    /// The session holds a second factor.
    #[arg(long)]
    pub mfa: bool,
    /// Time since the caller last proved who they are, e.g. 20m (default 0s).
    #[arg(long, value_parser = portcullis::config::values::parse_duration)]
    pub auth_age: Option<std::time::Duration>,
    /// The client address (default 127.0.0.1).
    #[arg(long)]
    pub from: Option<std::net::IpAddr>,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// ES256, EdDSA, RS256 or HS256.
    #[arg(long, value_parser = parse_algorithm)]
    pub alg: KeyAlgorithm,
    /// Where to write the key (PKCS#8 PEM; for HS256 a base64url secret).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    [
        KeyAlgorithm::Es256,
        KeyAlgorithm::EdDsa,
        KeyAlgorithm::Rs256,
        KeyAlgorithm::Hs256,
    ]
    .into_iter()
    .find(|alg| alg.name() == text)
    .ok_or_else(|| format!("{text:?}: use ES256, EdDSA, RS256 or HS256"))
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Config file; defaults to $PORTCULLIS_CONFIG, then ./gateway.toml.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(portcullis::config::default_path)
    }
}
