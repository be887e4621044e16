//! Process entry: parse the command line, load the config, serve until a signal, drain.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use portcullis::config;

use cli::{AdminAction, AdminArgs, ApiKeysAction, Cli, Command, ConfigArg, ExplainArgs, KeygenArgs};
use portcullis::admin_client::{AdminClient, Call};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(ConfigArg { config: None })) {
        Command::Run(arg) => run(arg),
        Command::Check(arg) => check(arg),
        Command::HashPassword => hash_password(),
        Command::Keygen(args) => keygen(args),
        Command::Explain(args) => explain(args),
        Command::Admin(args) => admin(args),
    }
}

fn admin(args: AdminArgs) -> ExitCode {
    let client = config::load(&args.config.path())
        .map_err(|errors| errors.to_string())
        .and_then(|config| AdminClient::for_config(&config));
    let client = match client {
        Ok(client) => client,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let answer = match runtime {
        Ok(runtime) => runtime.block_on(client.send(admin_call(args.action))),
        Err(e) => Err(format!("cannot start: {e}")),
    };
    match answer {
        Ok((status, body)) if status.is_success() => {
            if !body.is_null() {
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!(
                "{status}: {}",
                body["message"].as_str().unwrap_or(&body.to_string())
            );
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn admin_call(action: AdminAction) -> Call {
    match action {
        AdminAction::Sessions { sub } => Call::sessions_of(&sub),
        AdminAction::Revoke {
            session: Some(sid), ..
        } => Call::revoke_session(&sid),
        AdminAction::Revoke { sub, .. } => Call::revoke_user(&sub.unwrap_or_default()),
        AdminAction::ApiKeys(ApiKeysAction::List) => Call::get("/admin/api-keys".into()),
        AdminAction::ApiKeys(ApiKeysAction::Create {
            sub,
            role,
            name,
            expires_in,
        }) => Call::create_api_key(&sub, &role, &name, expires_in.map(|d| d.as_secs())),
        AdminAction::ApiKeys(ApiKeysAction::Delete { id }) => Call::delete_api_key(&id),
        AdminAction::Reload => Call::without_body(http::Method::POST, "/admin/reload".into()),
    }
}

fn explain(args: ExplainArgs) -> ExitCode {
    let path = args.config.path();
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let question = portcullis::explain::Question {
        method: args.method,
        url: args.url,
        sub: args.sub,
        role: args.role,
        idp: args.idp,
        mfa: args.mfa,
        auth_age: args.auth_age,
        from: args.from,
    };
    match portcullis::explain::explain(&config, &question) {
        Ok(explanation) => {
            print!("{}", explanation.text);
            match explanation.allowed {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            }
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn hash_password() -> ExitCode {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        eprint!("Password: ");
        rpassword::read_password()
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    };
    let password = match password {
        Ok(password) => password
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&password)
            .to_string(),
        Err(e) => {
            eprintln!("cannot read the password: {e}");
            return ExitCode::FAILURE;
        }
    };
    if password.is_empty() || password.len() > 1024 {
        eprintln!("the password must be 1 to 1024 bytes");
        return ExitCode::FAILURE;
    }
    match portcullis::sessions::users::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash the password: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(args: KeygenArgs) -> ExitCode {
    match portcullis::auth::keys::generate(args.alg, &args.out) {
        Ok(()) => {
            println!("wrote a new {} key to {}", args.alg.name(), args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check(arg: ConfigArg) -> ExitCode {
    let path = arg.path();
    match config::load(&path) {
        Ok(config) => match check_files(&config) {
            Ok(()) => {
                println!("{}: ok ({} routes)", path.display(), config.routes.len());
                ExitCode::SUCCESS
            }
            Err(lines) => {
                eprintln!("{lines}");
                ExitCode::FAILURE
            }
        },
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// Loads what the config names (certificate, keys, upstream TLS files, users) without writing
/// anything: files that `self_signed_if_missing` or `generate_if_missing` would create are left
/// out. The error is `file:line:col: message` lines; the users file has positions of its own.
fn check_files(config: &config::Config) -> Result<(), String> {
    let at_config = |e: &dyn std::fmt::Display| format!("{}:1:1: {e}", config.source.display());
    if config.tls.cert.exists() || config.tls.key.exists() {
        portcullis::tls::server_config(&config.tls).map_err(|e| at_config(&e))?;
    }
    let mut tokens = config.tokens.clone();
    tokens
        .keys
        .retain(|key| !(key.generate_if_missing && key.missing_file().is_some()));
    if !tokens.keys.is_empty() {
        portcullis::auth::keys::KeySet::load(&tokens).map_err(|e| at_config(&e))?;
    }
    // Every route's unusable TLS files at once, like the config's own errors.
    let upstream_tls: Vec<String> = config
        .routes
        .iter()
        .filter_map(|route| Some((route, route.upstream.as_ref().filter(|u| u.uses_tls())?)))
        .filter_map(|(route, upstream)| {
            portcullis::tls::upstream_client_config(&upstream.tls)
                .err()
                .map(|e| at_config(&format!("route {:?}: {e}", route.name)))
        })
        .collect();
    if !upstream_tls.is_empty() {
        return Err(upstream_tls.join("\n"));
    }
    if let Some(mfa) = &config.mfa {
        let to_be_written =
            matches!(&mfa.key, config::SecretSource::File(path) if mfa.generate_if_missing && !path.exists());
        if !to_be_written {
            portcullis::mfa::Totp::load(mfa).map_err(|e| at_config(&format!("[mfa]: {e}")))?;
        }
    }
    portcullis::pages::Pages::load(&config.ui).map_err(|e| at_config(&format!("[ui]: {e}")))?;
    if let Some(token) = &config.admin.token {
        portcullis::auth::admin_token::AdminToken::load(token)
            .map_err(|e| at_config(&format!("[admin]: {e}")))?;
    }
    if let config::UsersConfig::File(path) = &config.users {
        portcullis::sessions::users::UsersFile::load(path).map_err(|e| e.to_string())?;
    }
    Ok(())
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
    // Installed before anything listens, so a signal that arrives early still drains.
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    while signals.next().await == Signal::Reload {
        match running.reload().await {
            Ok(_) => tracing::info!("configuration reloaded on SIGHUP"),
            Err(_) => tracing::warn!("configuration rejected on SIGHUP; the running one stays"),
        }
    }
    tracing::info!("shutting down: draining in-flight requests (a second signal exits at once)");
    tokio::select! {
        drained = running.shutdown() => match drained {
            true => tracing::info!("drained"),
            false => tracing::warn!("closed connections that outlived the grace"),
        },
        _ = signals.stop() => {
            tracing::warn!("second signal: exiting without waiting for the drain");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

/// SIGTERM and SIGINT stop; SIGHUP reloads the config.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    async fn stop(&mut self) {
        while self.next().await != Signal::Stop {}
    }
}
