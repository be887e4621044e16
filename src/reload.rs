//! Config reload without a restart: `POST /admin/reload`, `SIGHUP` and a file watcher all build
//! a new runtime off the hot path and swap it in as one unit. In-flight requests finish on the
//! runtime they started with; new handshakes get the new certificate. A rejected edit is logged
//! with its `file:line:col` and the running config stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, KeySource};
use crate::runtime::{Runtime, Shared};
use crate::server::Lifecycle;
use crate::sessions::users::{PasswordCheck, Stamp, USERS_POLL_INTERVAL, stamp};

/// How often the watched files are checked, and how long a change must rest before a reload
/// (editors write in several steps).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
const SETTLE: Duration = Duration::from_millis(300);

/// Rebuilds the runtime from the config file; returns the changed settings that only a
/// restart applies, or every error found.
pub(crate) async fn reload(shared: &Shared, trigger: &'static str) -> Result<Vec<&'static str>, String> {
    // One reload at a time: a slow reload of an older file must not land after a newer one.
    let _one_at_a_time = shared.reload_lock.lock().await;
    let current = shared.runtime.load_full();
    let (client, health) = (shared.client.clone(), shared.metrics.upstream_health());
    let previous = current.clone();
    let built = tokio::task::spawn_blocking(move || {
        let mut config = config::load(&previous.config.source).map_err(|e| e.to_string())?;
        let restart = keep_restart_only(&previous.config, &mut config);
        let runtime = Runtime::build(config, &client, &health, Some(&previous)).map_err(|e| e.to_string())?;
        Ok::<_, String>((runtime, restart))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
    let path = current.config.source.display();
    match built {
        Ok((runtime, restart)) => {
            follow_new_users_file(shared, &current, &runtime);
            // A provider new in this config is asked now, not by its first login.
            runtime.federation.prefetch();
            runtime.issuer_keys.start();
            runtime.start_health_checks(&shared.client);
            forget_removed_endpoints(shared, &current, &runtime);
            shared.runtime.store(Arc::new(runtime));
            shared.metrics.config_reload("ok");
            for setting in &restart {
                tracing::warn!(%setting, "this setting changed but only takes effect after a restart");
            }
            tracing::info!(target: "portcullis::audit", event = "config_reloaded", file = %path, trigger);
            Ok(restart)
        }
        Err(errors) => {
            shared.metrics.config_reload("rejected");
            for line in errors.lines() {
                tracing::error!("{line}");
            }
            tracing::warn!(target: "portcullis::audit", event = "config_rejected", file = %path, trigger);
            Err(errors)
        }
    }
}

/// The health series of endpoints that the new runtime no longer has.
fn forget_removed_endpoints(shared: &Shared, previous: &Runtime, next: &Runtime) {
    let kept: std::collections::HashSet<_> = next.routes.pools().flat_map(|p| p.series()).collect();
    let health = shared.metrics.upstream_health();
    for (route, endpoint) in previous.routes.pools().flat_map(|p| p.series()) {
        if !kept.contains(&(route, endpoint)) {
            health.forget(route, endpoint);
        }
    }
}

/// A reload that names another users file gets a reloader for it (the old one stops by itself).
fn follow_new_users_file(shared: &Shared, previous: &Runtime, next: &Runtime) {
    let PasswordCheck::File(users) = &next.passwords else {
        return;
    };
    let kept = matches!(&previous.passwords, PasswordCheck::File(old) if Arc::ptr_eq(old, users));
    if !kept {
        users.spawn_reloader(USERS_POLL_INTERVAL, shared.shutdown.clone());
    }
}

/// Settings bound to sockets, the store or the process at start: the new config keeps the
/// running values, so the runtime says what is really in force, and the changes are named.
fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let (old, next) = (&running.server, &mut new.server);
    macro_rules! keep {
        ($name:literal, $old:expr, $new:expr) => {
            if $old != $new {
                changed.push($name);
                $new = $old.clone();
            }
        };
    }
    keep!("server.listen", old.listen, next.listen);
    keep!("server.admin_listen", old.admin_listen, next.admin_listen);
    keep!(
        "server.redirect_listen",
        old.redirect_listen,
        next.redirect_listen
    );
    keep!(
        "server.max_header_bytes",
        old.max_header_bytes,
        next.max_header_bytes
    );
    keep!(
        "server.header_read_timeout",
        old.header_read_timeout,
        next.header_read_timeout
    );
    keep!("server.idle_timeout", old.idle_timeout, next.idle_timeout);
    keep!("server.shutdown_grace", old.shutdown_grace, next.shutdown_grace);
    keep!("store", running.store, new.store);
    // The span exporter is started once per process.
    keep!("telemetry", running.telemetry, new.telemetry);
    // The log subscriber is installed once per process.
    keep!("log", running.log, new.log);
    let (old_demo, new_demo) = (
        running.demo.as_ref().map(|d| d.echo_listen),
        new.demo.as_ref().map(|d| d.echo_listen),
    );
    if old_demo != new_demo {
        changed.push("demo");
        new.demo = running.demo.clone();
    }
    changed
}

/// The state of the watched files, taken when a runtime is built from them.
pub(crate) struct Watched(Vec<(PathBuf, Option<Stamp>)>);

impl Watched {
    pub(crate) fn now(config: &Config) -> Watched {
        Watched(stamps(config))
    }
}

/// Reloads whenever the config file, the certificate, a key file or an upstream TLS file
/// changes from `initial`
/// (taken at start, so an edit saved before this task first runs is not missed).
pub(crate) async fn watch(shared: Arc<Shared>, life: Lifecycle, initial: Watched) {
    let mut seen = initial.0;
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = life.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = stamps(&shared.runtime.load().config);
        if now == seen {
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let settled = stamps(&shared.runtime.load().config);
        if settled != now {
            continue; // still being written: look again next tick
        }
        // Whatever the outcome, this state of the files has been handled (and logged). Not
        // the state after the reload: an edit saved while it was being built would be marked
        // seen and never applied. (A reload that names other files costs one extra reload.)
        let _ = reload(&shared, "watch").await;
        seen = settled;
    }
}

/// The files a runtime was built from, with their stamps.
fn stamps(config: &Config) -> Vec<(PathBuf, Option<Stamp>)> {
    let mut files = vec![
        config.source.clone(),
        config.tls.cert.clone(),
        config.tls.key.clone(),
    ];
    files.extend(config.tokens.keys.iter().filter_map(|key| match &key.source {
        KeySource::PrivateKeyFile(path) | KeySource::PublicKeyFile(path) | KeySource::SecretFile(path) => {
            Some(path.clone())
        }
        KeySource::SecretEnv(_) => None,
    }));
    let upstream_tls = config
        .routes
        .iter()
        .filter_map(|r| r.upstream.as_ref())
        .map(|u| &u.tls);
    for tls in upstream_tls {
        let client = tls
            .client_cert
            .iter()
            .flat_map(|c| [c.cert.clone(), c.key.clone()]);
        files.extend(tls.ca_file.iter().cloned().chain(client));
    }
    files
        .into_iter()
        .map(|path| (stamp(&path), path))
        .map(|(s, p)| (p, s))
        .collect()
}
