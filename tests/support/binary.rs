//! Running the real `portcullis` binary from a test: real ports, output captured to a file,
//! and a guard that always kills and reaps the child it started (and nothing else).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use http::StatusCode;

use super::{Client, DEADLINE, config, eventually};

/// A port that was free a moment ago (the binary needs real port numbers in its config),
/// never one this test process handed out before, and below Linux's ephemeral range
/// (32768-60999): until the port is bound, the kernel would hand it to any outgoing
/// connection or `bind(0)` (of this test, of a browser, of a provider) that asked.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut rng = super::rng::Rng::from_entropy();
    for _ in 0..1000 {
        let port = 20_000 + rng.below(12_000) as u16;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port in 1000 tries");
}

/// The `portcullis` binary of this build, to run a command of it.
pub fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// A running `portcullis run`; killed and reaped on drop, also when the test fails.
pub struct Binary {
    child: Child,
    log: PathBuf,
}

impl Binary {
    /// Starts `portcullis run --config <dir>/gateway.toml` in `dir`, with stdout and stderr
    /// in `<dir>/portcullis.log`, and waits until the admin listener answers `/healthz`.
    pub async fn start(dir: &Path, admin: SocketAddr) -> Binary {
        let log = dir.join("portcullis.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = portcullis()
            .args(["run", "--config"])
            .arg(dir.join("gateway.toml"))
            .current_dir(dir)
            .env_remove("PORTCULLIS_CONFIG")
            .env_remove("RUST_LOG")
            // Logs to a file must be plain without help: a test of that must be able to fail.
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("spawn portcullis");
        let mut binary = Binary { child, log };
        binary.wait_healthy(admin).await;
        binary
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9 portcullis");
        let status = self.child.wait().expect("reap portcullis");
        assert!(
            !status.success(),
            "portcullis exited cleanly on SIGKILL: {status}"
        );
    }

    /// Fails the test with the log if the binary has already exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("portcullis exited early with {status}:\n{}", self.log());
        }
    }

    /// Sends `signal` (a `kill` name such as "HUP" or "TERM") to the running binary.
    pub fn signal(&mut self, signal: &str) {
        self.assert_running();
        let kill = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
        assert!(kill.expect("run kill").success(), "kill -{signal} failed");
    }

    /// Waits until the binary exits (failing after `DEADLINE`) and returns its status.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        eventually(DEADLINE, async || {
            let status = self.child.try_wait().expect("try_wait");
            status.ok_or_else(|| format!("portcullis still runs:\n{}", self.log()))
        })
        .await
    }

    /// Polls the log until a line satisfies `wanted`; fails after `DEADLINE` or on an exit.
    pub async fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) {
        eventually(DEADLINE, async || {
            self.assert_running();
            let log = self.log();
            match log.lines().any(&wanted) {
                true => Ok(()),
                false => Err(format!("no log line {what}:\n{log}")),
            }
        })
        .await
    }

    async fn wait_healthy(&mut self, admin: SocketAddr) {
        eventually(DEADLINE, async || {
            self.assert_running();
            match plain_get(admin, "/healthz").await {
                Some(reply) if reply.starts_with("HTTP/1.1 200") => Ok(()),
                _ => Err(format!("portcullis did not become healthy:\n{}", self.log())),
            }
        })
        .await
    }

    /// Waits until `/readyz` answers 200 (after a start, the store may still be opening).
    pub async fn wait_ready(&self, client: &Client) {
        eventually(DEADLINE, async || match client.readyz().await {
            StatusCode::OK => Ok(()),
            status => Err(format!("/readyz answered {status}, never 200:\n{}", self.log())),
        })
        .await
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        // `kill` on a child that was already reaped is a no-op; never another process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `config::write`, then `portcullis run` on it until `/readyz` answers 200, and a client.
pub async fn start_binary(dir: &Path, server: &str, rest: &str) -> (Binary, Client) {
    let config::BinaryConfig { public, admin, .. } = config::write(dir, server, rest);
    let binary = Binary::start(dir, admin).await;
    let client = Client::new(public, admin, dir);
    binary.wait_ready(&client).await;
    (binary, client)
}

/// A plain-HTTP GET to an admin address; the whole answer as text, `None` if unreachable.
pub async fn plain_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    Some(super::read_until_closed(&mut stream).await)
}

/// Where `tool` is installed: on `PATH`, or in the system folders (nginx is in /usr/sbin,
/// which a user's `PATH` may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let system = ["/usr/bin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(system)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}
