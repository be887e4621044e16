//! The compiled route table: which upstream (or gateway endpoint) a normalised request goes to.
//!
//! The most specific route wins: an exact host beats a wildcard host beats no host, then the
//! longest path prefix. Prefixes match whole segments, so `/api` never matches `/apix`.

mod normalize;

use std::borrow::Cow;
use std::cmp::Reverse;

use http::Method;

pub use normalize::{PathRejection, normalize_path};

use crate::config::{HostPattern, RouteConfig};

/// A configured route, as the gateway uses it at request time.
pub type Route = RouteConfig;

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// `/auth/*` or `/.well-known/jwks.json`: answered by the gateway, whatever the host.
    Gateway,
    Upstream(&'a Route),
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Most specific first, so the first match is the answer.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut routes = routes.to_vec();
        routes.sort_by_key(|r| Reverse(specificity(r)));
        RouteTable { routes }
    }

    /// `host` is lower-case without port; `path` is normalised.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> Option<Destination<'_>> {
        if is_gateway_path(path) {
            return Some(Destination::Gateway);
        }
        self.routes
            .iter()
            .find(|r| {
                host_matches(r.host.as_ref(), host)
                    && prefix_matches(&r.path, path)
                    && r.methods.as_ref().is_none_or(|m| m.contains(method))
            })
            .map(Destination::Upstream)
    }
}

/// The path the upstream sees: the normalised path, less the route prefix with `strip_prefix`.
pub fn upstream_path<'p>(route: &Route, path: &'p str) -> Cow<'p, str> {
    if !route.strip_prefix {
        return Cow::Borrowed(path);
    }
    // Whole segments, not bytes: a matched segment may carry `;parameters` the prefix lacks.
    let prefix_segments = route.path.trim_end_matches('/').matches('/').count();
    match path.splitn(prefix_segments + 2, '/').nth(prefix_segments + 1) {
        Some(rest) => Cow::Borrowed(&path[path.len() - rest.len() - 1..]),
        None => Cow::Borrowed("/"),
    }
}

fn is_gateway_path(path: &str) -> bool {
    path == "/auth" || path.starts_with("/auth/") || path == "/.well-known/jwks.json"
}

/// Higher is more specific: host kind, then wildcard suffix length, then prefix length.
fn specificity(route: &Route) -> (u8, usize, usize) {
    let (kind, suffix) = match &route.host {
        Some(HostPattern::Exact(_)) => (2, 0),
        Some(HostPattern::Wildcard(suffix)) => (1, suffix.len()),
        None => (0, 0),
    };
    (kind, suffix, route.path.len())
}

fn host_matches(pattern: Option<&HostPattern>, host: &str) -> bool {
    match pattern {
        None => true,
        Some(HostPattern::Exact(name)) => name == host,
        Some(HostPattern::Wildcard(suffix)) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    let bare = prefix.trim_end_matches('/');
    if path.contains(';') || path.contains("%3B") {
        return segments_match(bare, path);
    }
    match path.strip_prefix(bare) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Segment by segment, ignoring `;parameters` in the path: servlet containers (Tomcat, Jetty,
/// Spring) route `/admin;x=1` as `/admin`, so the gateway must put it under `/admin` too.
/// The normaliser writes an escaped `;` as `%3B`, which a backend may decode first.
fn segments_match(bare_prefix: &str, path: &str) -> bool {
    let mut segments = path.split('/');
    bare_prefix.split('/').all(|want| {
        segments
            .next()
            .is_some_and(|segment| without_parameters(segment) == want)
    })
}

fn without_parameters(segment: &str) -> &str {
    match normalize::parameters_start(segment.as_bytes()) {
        Some(start) => &segment[..start],
        None => segment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route(name: &str, host: Option<HostPattern>, path: &str) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host,
            path: path.into(),
            methods: None,
            upstream: "127.0.0.1:1".parse().unwrap(),
            auth: crate::config::AuthPolicy::Public,
            roles: vec![],
            strip_prefix: false,
            timeout: Duration::from_secs(1),
            websocket: false,
            login_page: None,
        }
    }

    fn chosen(table: &RouteTable, host: &str, path: &str) -> Option<String> {
        match table.find(host, path, &Method::GET)? {
            Destination::Gateway => Some("gateway".into()),
            Destination::Upstream(r) => Some(r.name.clone()),
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let table = RouteTable::new(&[
            route("any-root", None, "/"),
            route("any-api", None, "/api/"),
            route("wild", Some(HostPattern::Wildcard(".example.com".into())), "/"),
            route("exact", Some(HostPattern::Exact("api.example.com".into())), "/"),
            route(
                "exact-deep",
                Some(HostPattern::Exact("api.example.com".into())),
                "/api/v2",
            ),
        ]);
        assert_eq!(chosen(&table, "other.org", "/x").as_deref(), Some("any-root"));
        assert_eq!(chosen(&table, "other.org", "/api/x").as_deref(), Some("any-api"));
        assert_eq!(chosen(&table, "a.example.com", "/api/x").as_deref(), Some("wild"));
        assert_eq!(
            chosen(&table, "api.example.com", "/api/x").as_deref(),
            Some("exact")
        );
        assert_eq!(
            chosen(&table, "api.example.com", "/api/v2/y").as_deref(),
            Some("exact-deep")
        );
        assert_eq!(chosen(&table, "example.com", "/").as_deref(), Some("any-root"));
        assert_eq!(
            chosen(&table, "x.example.com", "/auth/login").as_deref(),
            Some("gateway")
        );
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let table = RouteTable::new(&[route("api", None, "/api/")]);
        assert_eq!(chosen(&table, "h", "/api").as_deref(), Some("api"));
        assert_eq!(chosen(&table, "h", "/api/x").as_deref(), Some("api"));
        assert_eq!(chosen(&table, "h", "/apix"), None);
        assert_eq!(chosen(&table, "h", "/"), None);
    }

    #[test]
    fn a_method_outside_the_list_falls_through_to_the_next_route() {
        let mut only_get = route("ro", None, "/");
        only_get.methods = Some(vec![Method::GET]);
        let table = RouteTable::new(&[only_get, route("fallback", None, "/")]);
        let name = |m: Method| match table.find("h", "/x", &m) {
            Some(Destination::Upstream(r)) => r.name.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(name(Method::GET), "ro");
        assert_eq!(name(Method::POST), "fallback");
    }

    #[test]
    fn strip_prefix_leaves_a_rooted_path() {
        let mut api = route("api", None, "/api/");
        api.strip_prefix = true;
        assert_eq!(upstream_path(&api, "/api/users/1"), "/users/1");
        assert_eq!(upstream_path(&api, "/api/"), "/");
        assert_eq!(upstream_path(&api, "/api"), "/");
        assert_eq!(upstream_path(&api, "/api;v=2/users"), "/users");
    }

    #[test]
    fn path_parameters_do_not_move_a_request_off_its_route() {
        let table = RouteTable::new(&[route("api", None, "/api/"), route("admin", None, "/api/admin")]);
        for path in [
            "/api/admin;x=1",
            "/api/admin;",
            "/api;x=/admin",
            "/api/admin;jsessionid=a/users",
        ] {
            assert_eq!(chosen(&table, "h", path).as_deref(), Some("admin"), "{path}");
        }
        assert_eq!(chosen(&table, "h", "/api/admin%3Bx=1").as_deref(), Some("admin"));
        assert_eq!(chosen(&table, "h", "/api/adminx;x=1").as_deref(), Some("api"));
        assert_eq!(chosen(&table, "h", "/apix;x=/admin"), None);
    }
}
