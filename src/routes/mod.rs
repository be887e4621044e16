//! The compiled route table: which upstream (or gateway endpoint) a normalised request goes to.
//!
//! The most specific route wins: an exact host beats a wildcard host beats no host, then the
//! longest path prefix. Prefixes match whole segments, so `/api` never matches `/apix`.
//!
//! Methods never move a request to a less protected route. Routes with the same host pattern
//! and the same path prefix form a *group*; the group is chosen by host and path alone, and
//! only then does the method pick a route inside it (those with a `methods` list first, in
//! file order, then the one without). A method no route of the group takes is a 405 with
//! `Allow`, never a fall-through to a shorter prefix.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use http::{HeaderValue, Method};

use crate::auth::assertion::Assertions;
use crate::config::{HostPattern, RouteConfig};
use crate::path::prefix_matches;
use crate::proxy::UpstreamPool;

/// A configured route as the gateway uses it at request time: its settings, and the pool of
/// its upstream endpoints (`None`: a decision-only route, answered through forward-auth).
#[derive(Clone)]
pub(crate) struct Route {
    config: RouteConfig,
    pub pool: Option<Arc<UpstreamPool>>,
    /// With `assertion = true`: the route's signed identity assertions.
    pub assertions: Option<Assertions>,
}

impl Route {
    pub(crate) fn new(config: RouteConfig, pool: Option<Arc<UpstreamPool>>) -> Route {
        let assertions = config.assertion.then(|| Assertions::new(&config.name));
        Route {
            config,
            pool,
            assertions,
        }
    }
}

impl Deref for Route {
    type Target = RouteConfig;

    fn deref(&self) -> &RouteConfig {
        &self.config
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Destination<'a> {
    /// `/auth/*` or `/.well-known/jwks.json`: answered by the gateway, whatever the host.
    Gateway,
    Upstream(&'a Route),
    /// The host and path belong to `route`'s group, whose routes do not take the method.
    WrongMethod {
        route: &'a Route,
        allow: &'a HeaderValue,
    },
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTable {
    /// Most specific first, so the first group that matches host and path is the answer.
    groups: Vec<RouteGroup>,
}

/// The routes that share one host pattern and one path prefix, and so split by method.
#[derive(Debug, Clone)]
struct RouteGroup {
    /// Routes with a `methods` list first (file order), then at most one without.
    routes: Vec<Route>,
    /// The methods the group takes, for `Allow`; `None` when a route takes every method.
    allow: Option<HeaderValue>,
}

impl RouteTable {
    pub(crate) fn new(routes: Vec<Route>) -> Self {
        let mut groups: Vec<Vec<Route>> = Vec::new();
        let mut group_of = std::collections::HashMap::with_capacity(routes.len());
        for route in routes {
            let index = *group_of.entry(route.place()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[index].push(route);
        }
        let mut groups: Vec<RouteGroup> = groups.into_iter().map(RouteGroup::new).collect();
        groups.sort_by_key(|g| Reverse(specificity(&g.routes[0])));
        RouteTable { groups }
    }

    /// `host` is lower-case without port; `path` is normalised.
    pub(crate) fn find(&self, host: &str, path: &str, method: &Method) -> Option<Destination<'_>> {
        if is_gateway_path(path) {
            return Some(Destination::Gateway);
        }
        let group = self.groups.iter().find(|g| {
            let first = &g.routes[0];
            host_matches(first.host.as_ref(), host) && prefix_matches(&first.path, path)
        })?;
        Some(group.choose(method))
    }
}

impl RouteTable {
    /// The pool of the route named `name`, if it has one.
    pub(crate) fn pool_of(&self, name: &str) -> Option<&UpstreamPool> {
        let route = self
            .groups
            .iter()
            .flat_map(|g| &g.routes)
            .find(|r| r.name == name);
        route.and_then(|r| r.pool.as_deref())
    }

    /// Every route's upstream pool.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &Arc<UpstreamPool>> {
        self.groups
            .iter()
            .flat_map(|g| &g.routes)
            .filter_map(|r| r.pool.as_ref())
    }

    /// Whether some route's host pattern names `host` (routes without a host name none).
    pub(crate) fn names_host(&self, host: &str) -> bool {
        self.groups.iter().any(|g| {
            let pattern = g.routes[0].host.as_ref();
            pattern.is_some() && host_matches(pattern, host)
        })
    }
}

impl RouteGroup {
    fn new(mut routes: Vec<Route>) -> RouteGroup {
        // Stable: file order is kept among the routes with a list.
        routes.sort_by_key(|r| r.methods.is_none());
        let allow = match routes.iter().any(|r| r.methods.is_none()) {
            true => None,
            false => Some(allow_header(&routes)),
        };
        RouteGroup { routes, allow }
    }

    fn choose(&self, method: &Method) -> Destination<'_> {
        let taking = self.routes.iter().find(|r| takes(r, method));
        match (taking, &self.allow) {
            (Some(route), _) => Destination::Upstream(route),
            (None, Some(allow)) => Destination::WrongMethod {
                route: &self.routes[0],
                allow,
            },
            // Unreachable: a group without `allow` has a route that takes every method.
            (None, None) => Destination::Upstream(&self.routes[0]),
        }
    }
}

/// Whether `route` takes `method`. A route that takes `GET` takes `HEAD` too (RFC 9110 9.3.2).
pub(crate) fn takes(route: &Route, method: &Method) -> bool {
    match &route.methods {
        None => true,
        Some(list) => list.contains(method) || (method == Method::HEAD && list.contains(&Method::GET)),
    }
}

/// `GET, HEAD, POST`: every method some route of the group takes, each once, in file order.
fn allow_header(routes: &[Route]) -> HeaderValue {
    let mut names: Vec<&str> = Vec::new();
    for method in routes.iter().flat_map(|r| r.methods.iter().flatten()) {
        let implied_head = (method == Method::GET).then_some("HEAD");
        for name in std::iter::once(method.as_str()).chain(implied_head) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    // Method names are tokens, so the joined list is always a valid header value.
    HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static("GET"))
}

/// The path the upstream sees: the normalised path, less the route prefix with `strip_prefix`.
pub(crate) fn upstream_path<'p>(route: &Route, path: &'p str) -> Cow<'p, str> {
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
    (kind, suffix, route.path.trim_end_matches('/').len())
}

fn host_matches(pattern: Option<&HostPattern>, host: &str) -> bool {
    match pattern {
        None => true,
        Some(HostPattern::Exact(name)) => name == host,
        Some(HostPattern::Wildcard(suffix)) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
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
            upstream: None,
            auth: crate::config::AuthPolicy::Public,
            roles: vec![],
            strip_prefix: false,
            timeout: Duration::from_secs(1),
            websocket: false,
            login_page: None,
            accept: vec![crate::config::Acceptable::Session],
            assertion: false,
            require_dpop: false,
            rules: vec![],
            line: 1,
        }
    }

    fn table<const N: usize>(configs: [RouteConfig; N]) -> RouteTable {
        RouteTable::new(configs.into_iter().map(|c| Route::new(c, None)).collect())
    }

    fn chosen(table: &RouteTable, host: &str, path: &str) -> Option<String> {
        match table.find(host, path, &Method::GET)? {
            Destination::Gateway => Some("gateway".into()),
            Destination::Upstream(r) => Some(r.name.clone()),
            Destination::WrongMethod { .. } => Some("405".into()),
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let table = table([
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
        let table = table([route("api", None, "/api/")]);
        assert_eq!(chosen(&table, "h", "/api").as_deref(), Some("api"));
        assert_eq!(chosen(&table, "h", "/api/x").as_deref(), Some("api"));
        assert_eq!(chosen(&table, "h", "/apix"), None);
        assert_eq!(chosen(&table, "h", "/"), None);
    }

    fn with_methods(name: &str, path: &str, methods: &[Method]) -> RouteConfig {
        let mut r = route(name, None, path);
        r.methods = Some(methods.to_vec());
        r
    }

    fn chosen_for(table: &RouteTable, method: Method, path: &str) -> String {
        match table.find("h", path, &method) {
            Some(Destination::Upstream(r)) => r.name.clone(),
            Some(Destination::WrongMethod { allow, .. }) => format!("405 {}", allow.to_str().unwrap()),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_method_splits_routes_only_within_one_host_and_prefix() {
        let table = table([
            route("catch-all", None, "/"),
            with_methods("read", "/api/", &[Method::GET]),
            route("write", None, "/api"),
            with_methods("admin", "/admin-area/", &[Method::GET]),
        ]);
        assert_eq!(chosen_for(&table, Method::GET, "/api/x"), "read");
        assert_eq!(chosen_for(&table, Method::HEAD, "/api/x"), "read");
        assert_eq!(chosen_for(&table, Method::POST, "/api/x"), "write");
        assert_eq!(chosen_for(&table, Method::GET, "/admin-area/users/1"), "admin");
        // Never on to the public catch-all: the method does not choose the prefix.
        assert_eq!(
            chosen_for(&table, Method::DELETE, "/admin-area/users/1"),
            "405 GET, HEAD"
        );
        let lower_get = Method::from_bytes(b"get").unwrap();
        assert_eq!(chosen_for(&table, lower_get, "/admin-area/"), "405 GET, HEAD");
        assert_eq!(chosen_for(&table, Method::GET, "/other"), "catch-all");
    }

    #[test]
    fn allow_lists_every_method_of_the_group_once() {
        let table = table([
            with_methods("a", "/x/", &[Method::POST, Method::GET]),
            with_methods("b", "/x", &[Method::PUT, Method::POST]),
        ]);
        assert_eq!(
            chosen_for(&table, Method::DELETE, "/x/1"),
            "405 POST, GET, HEAD, PUT"
        );
        assert_eq!(chosen_for(&table, Method::PUT, "/x/1"), "b");
    }

    #[test]
    fn strip_prefix_leaves_a_rooted_path() {
        let mut api = route("api", None, "/api/");
        api.strip_prefix = true;
        let api = Route::new(api, None);
        assert_eq!(upstream_path(&api, "/api/users/1"), "/users/1");
        assert_eq!(upstream_path(&api, "/api/"), "/");
        assert_eq!(upstream_path(&api, "/api"), "/");
        assert_eq!(upstream_path(&api, "/api;v=2/users"), "/users");
    }

    #[test]
    fn path_parameters_do_not_move_a_request_off_its_route() {
        let table = table([route("api", None, "/api/"), route("admin", None, "/api/admin")]);
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
