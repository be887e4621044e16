//! The command line: `run` (the default) and `check`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
