//! A real `redis-server` for the tests: started on a free 127.0.0.1 port with its own
//! temporary folder, stopped (only it, by its handle) when dropped.
//!
//! Without `redis-server` on the PATH the tests pass after saying so, unless `CI` is set:
//! there they fail, so CI cannot go green without having run them.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Client;
use redis::aio::MultiplexedConnection;

use crate::sessions::redis::RedisStore;

/// The prefix the gateway's stores use: the tests look at the keys under it.
pub(crate) const PREFIX: &str = "portcullis:";

/// A `redis-server` child process on its own port, stopped (only it) when dropped.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server, or returns `None` (after saying why) when `redis-server` is missing
    /// outside CI.
    pub(crate) fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    pub(crate) fn start_with(extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed, and CI must run the Redis store tests"
            );
            eprintln!("SKIPPED: redis-server is not installed; the Redis store tests did not run");
            return None;
        }
        let mut server = RedisServer {
            port: 0,
            child: None,
            dir: tempfile::tempdir().expect("a temporary folder"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // Another process may take the free port before redis-server binds it: try again.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server did not start");
    }

    /// Starts redis-server on `self.port` and waits until it accepts connections.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().expect("the child's status").is_some()
            {
                self.child = None;
                return false;
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new server on the same port (with no data: nothing is saved).
    pub(crate) fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// A store of its own (its own connections) under the gateway's prefix.
    pub(crate) async fn store(&self) -> RedisStore {
        RedisStore::connect(&self.url(), None, PREFIX)
            .await
            .expect("the store connects")
    }

    /// A plain connection for looking at (and damaging) what the store wrote.
    pub(crate) async fn raw(&self) -> MultiplexedConnection {
        Client::open(self.url())
            .expect("a client")
            .get_multiplexed_async_connection()
            .await
            .expect("a raw connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}
