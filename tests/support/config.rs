//! Config text for tests: routes with any settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::binary::free_port;
use super::{ES256_TOKENS, test_users};

/// A route named `name` at `path` to `upstream`, with `settings` (TOML lines, `auth` included).
pub fn route(name: &str, path: &str, upstream: SocketAddr, settings: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"http://{upstream}\"\n{settings}\n"
    )
}

/// A config for the real binary, written to `<dir>/gateway.toml` with the test users beside it.
pub struct BinaryConfig {
    pub path: PathBuf,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub text: String,
}

/// Real ports, a generated certificate and ES256 key, `server` lines in `[server]`, then `rest`.
pub fn for_binary(dir: &Path, server: &str, rest: &str) -> BinaryConfig {
    write(dir, server, &format!("{ES256_TOKENS}\n{rest}"))
}

/// Real ports, a self-signed certificate, `server` lines in `[server]`, then `rest`.
pub fn write(dir: &Path, server: &str, rest: &str) -> BinaryConfig {
    let [public, admin] = [free_port(), free_port()].map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let text = format!(
        "[server]\nlisten = \"{public}\"\nadmin_listen = \"{admin}\"\n{server}\n\n\
         [tls]\nself_signed_if_missing = true\n\n{rest}"
    );
    std::fs::write(dir.join("users.toml"), test_users()).expect("write users");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, &text).expect("write config");
    BinaryConfig {
        path,
        public,
        admin,
        text,
    }
}

/// `line:col` (1-based) of the first `needle` in `text`: where `check` reports a bad value.
pub fn position(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the config"));
    let line = text[..offset].matches('\n').count() + 1;
    let column = offset - text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("{line}:{column}")
}

/// Runs `portcullis check` on `for_binary(dir, "", rest)`, expecting it to refuse the file;
/// returns the config's text and stderr with the file's path written as `FILE`.
pub fn refused_by_check(dir: &Path, rest: &str) -> (String, String) {
    let config = for_binary(dir, "", rest);
    let output = super::binary::portcullis()
        .args(["check", "--config"])
        .arg(&config.path)
        .output()
        .expect("run check");
    let stderr = String::from_utf8_lossy(&output.stderr).replace(&config.path.display().to_string(), "FILE");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    (config.text, stderr)
}
