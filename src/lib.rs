//! Portcullis: a TLS-terminating reverse proxy that authenticates requests before they reach
//! an existing backend. `start` is what the binary and the tests drive.
//!
//! Lint policy: Cargo.toml's `[lints]` for every target, plus these for the library alone
//! (test crates keep their kit `pub`, and long table-driven tests are fine); thresholds in
//! clippy.toml.

#![forbid(unsafe_code)]
#![warn(unreachable_pub, rust_2018_idioms)]
#![cfg_attr(not(test), warn(clippy::too_many_lines, clippy::large_futures))]

pub mod admin_client;
pub mod auth;
pub(crate) mod caller;
pub mod config;
pub(crate) mod context;
pub mod demo;
pub(crate) mod endpoints;
pub(crate) mod error;
pub mod explain;
pub(crate) mod federation;
pub(crate) mod gateway;
pub mod limits;
pub mod mfa;
pub mod pages;
pub mod path;
pub mod policy;
pub mod proxy;
pub(crate) mod reload;
pub(crate) mod routes;
pub(crate) mod runtime;
pub mod secret;
pub mod server;
pub mod sessions;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::limits::HashPool;
use crate::proxy::UpstreamClient;
use crate::runtime::{Runtime, Shared};
use crate::sessions::service::SessionService;
use crate::sessions::users::{PasswordCheck, USERS_POLL_INTERVAL};

/// How often ended sessions and expired revocations are forgotten.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

use crate::server::{ConnectionLimits, Lifecycle};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Store(#[from] sessions::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started gateway: its bound addresses and the handle that stops it.
pub struct Running {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub redirect_addr: Option<SocketAddr>,
    pub demo_addr: Option<SocketAddr>,
    life: Lifecycle,
    grace: Duration,
    shared: Arc<Shared>,
}

impl Running {
    /// Re-reads the config (what `SIGHUP` does); see `reload::reload`.
    pub async fn reload(&self) -> Result<Vec<&'static str>, String> {
        reload::reload(&self.shared, "signal").await
    }

    /// Stops accepting, lets in-flight requests finish within `shutdown_grace`, then closes
    /// whatever is left. Returns whether everything finished within the grace.
    pub async fn shutdown(self) -> bool {
        self.life.shutdown.cancel();
        self.life.tasks.close();
        let drained = tokio::time::timeout(self.grace, self.life.tasks.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!("shutdown grace elapsed; closing the remaining connections");
            self.life.abort.cancel();
            self.life.tasks.wait().await;
        }
        if let Err(e) = self.shared.sessions.store().flush().await {
            tracing::warn!(error = %e, "flushing the session store at shutdown failed");
        }
        drained
    }
}

/// Binds every listener and starts serving `config`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let life = Lifecycle::default();
    let (shared, feed_position) = build_shared(&config, &life).await?;
    let shared = Arc::new(shared);
    let watched = reload::Watched::now(&config);
    let listeners = Listeners::bind(&config).await?;
    let running = Running {
        public_addr: local_addr(&listeners.public)?,
        admin_addr: local_addr(&listeners.admin)?,
        redirect_addr: listeners.redirect.as_ref().map(local_addr).transpose()?,
        demo_addr: listeners.demo.as_ref().map(local_addr).transpose()?,
        life: life.clone(),
        grace: config.server.shutdown_grace,
        shared: shared.clone(),
    };
    if let PasswordCheck::File(users) = &shared.runtime.load().passwords {
        users.spawn_reloader(USERS_POLL_INTERVAL, life.shutdown.clone());
    }
    shared.runtime.load().federation.prefetch();
    shared.runtime.load().issuer_keys.start();
    shared.runtime.load().start_health_checks(&shared.client);
    life.tasks.spawn(purge_periodically(shared.clone(), life.clone()));
    if shared.sessions.store().is_shared() {
        let (follower, stop) = (shared.clone(), life.shutdown.clone());
        life.tasks
            .spawn(async move { follower.sessions.follow_changes(feed_position, stop).await });
    }
    let (writer, stop) = (shared.clone(), life.shutdown.clone());
    life.tasks
        .spawn(async move { writer.sessions.write_api_key_uses(stop).await });
    life.tasks
        .spawn(reload::watch(shared.clone(), life.clone(), watched));
    serve(listeners, shared, &config, running.public_addr.port(), &life);
    Ok(running)
}

/// Everything the listeners share, and the revocation feed position to follow from.
async fn build_shared(config: &Config, life: &Lifecycle) -> Result<(Shared, String), StartError> {
    let client = UpstreamClient::new();
    auth::keys::generate_missing(&config.tokens).map_err(runtime::RuntimeError::from)?;
    mfa::generate_missing_key(config.mfa.as_ref()).map_err(runtime::RuntimeError::from)?;
    let metrics = telemetry::metrics::Metrics::new();
    let metrics_dropped = metrics.spans_dropped();
    let runtime = Runtime::build(config.clone(), &client, &metrics.upstream_health(), None)?;
    let revocations = Arc::new(auth::Revocations::new());
    let api_keys = Arc::new(auth::ApiKeys::new());
    let store = sessions::open_store(&config.store).await?;
    let sessions = SessionService::new(store, revocations.clone(), api_keys.clone());
    let (loaded, position) = sessions.load_state(auth::tokens::unix_now()).await?;
    tracing::info!(
        revocations = loaded,
        api_keys = api_keys.len(),
        "loaded revocations and API keys from the session store"
    );
    let shared = Shared {
        runtime: ArcSwap::from_pointee(runtime),
        client,
        hash_pool: HashPool::with_default_size(),
        revocations,
        api_keys,
        sessions,
        metrics,
        reload_lock: tokio::sync::Mutex::new(()),
        // Tunnels close when the shutdown grace is over.
        shutdown: life.abort.clone(),
        spans: config.telemetry.otlp_endpoint.as_ref().map(|endpoint| {
            let service = config.telemetry.service_name.clone();
            telemetry::export::start(endpoint, service, metrics_dropped, life.abort.clone())
        }),
    };
    Ok((shared, position))
}

struct Listeners {
    public: TcpListener,
    admin: TcpListener,
    redirect: Option<TcpListener>,
    demo: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Listeners, StartError> {
        let server = &config.server;
        Ok(Listeners {
            public: bind(server.listen).await?,
            admin: bind(server.admin_listen).await?,
            redirect: match server.redirect_listen {
                Some(addr) => Some(bind(addr).await?),
                None => None,
            },
            demo: match &config.demo {
                Some(demo) => Some(bind(demo.echo_listen).await?),
                None => None,
            },
        })
    }
}

/// Spawns one accept loop per listener.
fn serve(listeners: Listeners, shared: Arc<Shared>, config: &Config, https_port: u16, life: &Lifecycle) {
    let server = &config.server;
    let limits = ConnectionLimits {
        handshake_timeout: server.header_read_timeout,
        header_read_timeout: server.header_read_timeout,
        idle_timeout: server.idle_timeout,
        max_header_bytes: server.max_header_bytes,
    };
    let admin_shared = shared.clone();
    let admin_handler = move |request| endpoints::admin::handle(admin_shared.clone(), request);
    life.tasks.spawn(server::serve_plain(
        listeners.admin,
        admin_handler,
        limits,
        life.clone(),
    ));
    if let Some(redirect) = listeners.redirect {
        let redirect_shared = shared.clone();
        let handler = move |request| {
            let runtime = redirect_shared.runtime.load();
            std::future::ready(endpoints::redirect::handle(&runtime, https_port, &request))
        };
        life.tasks
            .spawn(server::serve_plain(redirect, handler, limits, life.clone()));
    }
    if let Some(demo) = listeners.demo {
        life.tasks
            .spawn(server::serve_plain(demo, demo::echo, limits, life.clone()));
    }
    life.tasks.spawn(server::serve_public(
        listeners.public,
        shared,
        limits,
        life.clone(),
    ));
}

/// Forgets ended sessions and expired revocations once a minute.
async fn purge_periodically(shared: Arc<Shared>, life: Lifecycle) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tokio::select! {
            _ = life.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let timing = shared.runtime.load().timing(auth::tokens::unix_now());
        if let Err(e) = shared.sessions.purge(timing).await {
            tracing::warn!(error = %e, "purging the session store failed; retrying next minute");
        }
        shared.runtime.load().login_limits.forget_idle();
        shared.runtime.load().refresh_limits.forget_idle();
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr: ([0, 0, 0, 0], 0).into(),
        source,
    })
}
