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
