//! Config text for tests: routes with any settings.

use std::net::SocketAddr;

/// A route named `name` at `path` to `upstream`, with `settings` (TOML lines, `auth` included).
pub fn route(name: &str, path: &str, upstream: SocketAddr, settings: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"http://{upstream}\"\n{settings}\n"
    )
}
