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
