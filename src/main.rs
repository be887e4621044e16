//! Process entry: parse the command line, load the config, serve until a signal, drain.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use portcullis::config;

use cli::{Cli, Command, ConfigArg};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(ConfigArg { config: None })) {
        Command::Run(arg) => run(arg),
        Command::Check(arg) => check(arg),
    }
}

fn check(arg: ConfigArg) -> ExitCode {
    let path = arg.path();
    match config::load(&path) {
        Ok(config) => {
            let tls_files_exist = config.tls.cert.exists() || config.tls.key.exists();
            if tls_files_exist && let Err(e) = portcullis::tls::server_config(&config.tls) {
                eprintln!("{}:1:1: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("{}: ok ({} routes)", path.display(), config.routes.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn run(arg: ConfigArg) -> ExitCode {
    let path = arg.path();
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    portcullis::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: config::Config) -> ExitCode {
    let running = match portcullis::start(config).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(public = %running.public_addr, admin = %running.admin_addr, "portcullis is serving");
    if let Some(demo) = running.demo_addr {
        tracing::info!(%demo, "demo echo upstream is serving");
    }
    wait_for_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    match running.shutdown().await {
        true => tracing::info!("drained"),
        false => tracing::warn!("closed connections that outlived the grace"),
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
