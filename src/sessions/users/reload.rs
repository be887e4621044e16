//! Keeps the users file current: polls its metadata and swaps in a re-validated copy on change.
//!
//! Polling is deliberate: it survives editors that save by writing a new file and renaming it
//! over the old one, which inotify-style watches on the original file miss.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::UsersFile;
use crate::config::ConfigErrors;

/// users.toml that follows edits; a rejected edit keeps the previous users.
pub struct Users {
    path: PathBuf,
    current: ArcSwap<UsersFile>,
    /// The file's stamp when it was last read (or found missing).
    seen: Mutex<Option<Stamp>>,
}

/// What changes when the file is edited in place or replaced by a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

// === impl Users ===

impl Users {
    pub fn new(path: PathBuf, initial: UsersFile) -> Arc<Users> {
        let seen = Mutex::new(stamp(&path));
        Arc::new(Users {
            path,
            current: ArcSwap::from_pointee(initial),
            seen,
        })
    }

    /// The users as of now; a login keeps the snapshot it started with.
    pub fn current(&self) -> Arc<UsersFile> {
        self.current.load_full()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file now. Logs the outcome (with the `config_reloaded` or
    /// `config_rejected` audit event), so callers need not; on error the old users stay.
    pub fn reload_now(&self) -> Result<(), ConfigErrors> {
        // Stamp before reading: an edit that lands during the read is then seen by the next poll.
        self.set_seen(stamp(&self.path));
        match UsersFile::load(&self.path) {
            Ok(file) => {
                let (path, users) = (self.path.display(), file.len());
                tracing::info!(path = %path, users, "users file reloaded");
                tracing::info!(target: "portcullis::audit", event = "config_reloaded", file = %path, users);
                self.current.store(Arc::new(file));
                Ok(())
            }
            Err(errors) => {
                log_rejected(&self.path, &errors);
                Err(errors)
            }
        }
    }

    /// Checks the file every `interval` until `stop`, or until these users are no longer in
    /// use (a reload pointed the config at another file), reloading when its stamp changes.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration, stop: CancellationToken) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Some(users) = weak.upgrade() else { return };
                // Reading and validating (hash parsing included) stays off the async workers.
                if let Err(e) = tokio::task::spawn_blocking(move || users.poll()).await {
                    tracing::error!(error = %e, "users file check failed");
                }
            }
        });
    }

    fn poll(&self) {
        let now = stamp(&self.path);
        if *self.seen.lock().unwrap_or_else(PoisonError::into_inner) == now {
            return;
        }
        if now.is_none() {
            // Said once per disappearance, not every poll; editors may briefly remove the file.
            self.set_seen(None);
            let path = self.path.display();
            tracing::warn!(path = %path, "users file cannot be read; keeping the previous users");
            return;
        }
        // The outcome is already logged; the old users stay on error.
        let _ = self.reload_now();
    }

    fn set_seen(&self, now: Option<Stamp>) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }
}

fn log_rejected(path: &Path, errors: &ConfigErrors) {
    for error in &errors.0 {
        tracing::error!("{error}");
    }
    tracing::error!(path = %path.display(), "users file rejected; keeping the previous users");
    tracing::warn!(
        target: "portcullis::audit",
        event = "config_rejected",
        file = %path.display(),
        errors = errors.0.len(),
    );
}
