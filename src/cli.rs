//! The command line: `run` (the default) and `check`.

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
