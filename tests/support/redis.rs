//! A real `redis-server` for a test: its own port and directory, nothing saved, stopped (only
//! it) on drop. Without `redis-server` installed a test skips after saying so, unless `CI` is
//! set: there it fails. A `Partition` is a proxy in front of it that a test cuts and restores.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::DEADLINE;
use super::binary::free_port;

/// A `redis-server` child on its own port; only it is killed and reaped, on drop too.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port, or `None` (after saying so) when `redis-server` is not
    /// installed and `CI` is not set.
    pub async fn start() -> Option<RedisServer> {
        let version = Command::new("redis-server").arg("--version").output();
        if !version.is_ok_and(|out| out.status.success()) && super::skip_without("redis-server") {
            return None;
        }
        let mut server = RedisServer {
            port: 0,
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        // Another process may take the free port before redis-server binds it: try again.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn().await {
                return Some(server);
            }
        }
        panic!("redis-server did not start");
    }

    /// Spawns redis-server on `self.port` and waits until it answers `PING`; false when it
    /// exited (the port was taken) or never answered.
    async fn spawn(&mut self) -> bool {
        let port = self.port;
        let child = self.child.insert(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server"),
        );
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if child.try_wait().expect("redis-server status").is_some() {
                self.child = None;
                return false;
            }
            if answers_ping(port).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills and reaps the server (its data is gone: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new, empty server on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// A proxy to this server on `127.0.0.1:<port>`, open until the test cuts it.
    pub async fn partition(&self) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let target = ("127.0.0.1", self.port);
        let (link, _) = watch::channel(Link::Open);
        let links = link.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut link = links.subscribe();
                tokio::spawn(async move {
                    // Accepted while cut: closed at once; while silent: hangs until it opens.
                    if !open(&mut link).await {
                        return;
                    }
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let ((in_read, in_write), (out_read, out_write)) =
                        (inbound.into_split(), outbound.into_split());
                    tokio::select! {
                        _ = pump(in_read, out_write, link.clone()) => {}
                        _ = pump(out_read, in_write, link) => {}
                    }
                });
            }
        });
        Partition { addr, link }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis on `port` answers a raw `PING` with `+PONG`.
async fn answers_ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.ok()?);
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut answer = String::new();
        stream.read_line(&mut answer).await.ok()?;
        Some(answer == "+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

/// What a `Partition` lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow both ways.
    Open,
    /// Every connection is dropped at once, and new ones are closed as soon as accepted.
    Cut,
    /// Packets are lost: connections stay open but nothing is delivered (held, not dropped)
    /// until the link opens again; new connections are accepted and left hanging.
    Silent,
}

/// A proxy between a client (given `url()`) and Redis, to partition them.
pub struct Partition {
    addr: SocketAddr,
    link: watch::Sender<Link>,
}

impl Partition {
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Copies one direction of a proxied connection until either side closes or the link is cut.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut link: watch::Receiver<Link>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = link.wait_for(|l| *l == Link::Cut) => return,
        };
        let n = match read {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        // Silent: hold what was read until the link opens again.
        if !open(&mut link).await || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits while the link is silent; whether it is then open (rather than cut).
async fn open(link: &mut watch::Receiver<Link>) -> bool {
    matches!(
        link.wait_for(|l| *l != Link::Silent).await.as_deref(),
        Ok(Link::Open)
    )
}
