//! Adversarial suite: path and host confusion (issue 9, SPEC 3 "Route choice" and 6).
//!
//! Covers:
//! - a property test (proptest, fixed seed, 384 cases, each sent over raw HTTP/1.1 and raw
//!   HTTP/2) that random request targets built from `/ // . .. %2e %2E %2f %2F %5c %5C ;x= #
//!   ? %00 %25 a b ü %C3%BC` (behind a prefix chosen to confuse the route table) are routed
//!   where an independent reference normaliser says (RFC 3986 6.2.2.2 and 5.2.4 plus the
//!   refusals SPEC 3 lists), reach only that route's upstream, and carry the normalised path
//!   and the unchanged query (routing reads each segment without its `;params`, as servlet
//!   containers do; `path_parameters_never_move_a_request_off_its_protected_route` pins the
//!   cases that once escaped a protected route);
//! - an explicit prefix-boundary table (`/apiX`, `/API`, `/api%2fadmin`, `/api/./admin`,
//!   `/static/../api/admin`, ...), with and without a token, over both protocols;
//! - host confusion: exact / wildcard / default host routes against Host case, port, trailing
//!   dot, duplicates, emptiness, userinfo, absolute-form targets and HTTP/2 `:authority`.
//!
//! Set `ADVERSARIAL_VERBOSE=1` to print every case and its outcome.
//!
//! Leaves out: `strip_prefix` (tests/forwarding.rs), header hygiene (adversarial_headers), framing
//! (adversarial_smuggling).

#[path = "../support/mod.rs"]
mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use support::cases::assert_none_failed;
use support::matrix::Bench;
use support::probe::{Probe, Proto};
use support::recorder::plain_responder;

// ===================================================================================
// The path bench: four routes on four recorders.
// ===================================================================================

/// `/api` public, `/api/admin` role admin, `/static` public, `/` catch-all public; and a token
/// of alice (role admin).
async fn path_bench() -> (Bench, String) {
    let routes = [
        ("admin", "/api/admin", "auth = \"required\"\nroles = [\"admin\"]"),
        ("api", "/api", "auth = \"public\""),
        ("static", "/static", "auth = \"public\""),
        ("root", "/", "auth = \"public\""),
    ];
    let bench = Bench::start(&routes, plain_responder).await;
    let admin_token = bench.gateway.token("alice").await;
    (bench, admin_token)
}

impl Verdict {
    /// Sends `request` (tagged `tag`, carrying an admin token if `with_token`) and checks the
    /// outcome against this verdict; returns the complaint, if any.
    async fn check(
        &self,
        bench: &Bench,
        proto: Proto,
        tag: &str,
        request: Probe,
        with_token: bool,
    ) -> Option<String> {
        let answer = request.send(&bench.gateway, proto).await;
        let reached = bench.reached(tag);
        let refused = answer.refused() && reached.is_empty();
        let (good, want) = match self {
            Verdict::Refused => (refused, "400".to_string()),
            Verdict::Routed { or_refused: true, .. } if refused => return None,
            Verdict::Routed { route, path, .. } if *route == "admin" && !with_token => (
                answer.status == Some(401) && reached.is_empty(),
                format!("401 from the admin route ({path})"),
            ),
            Verdict::Routed { route, path, .. } => {
                let one = reached.len() == 1 && reached[0].0 == *route && reached[0].1.path == *path;
                (
                    answer.status == Some(200) && one,
                    format!("{route} to get {path:?}"),
                )
            }
        };
        let landed: Vec<String> = reached
            .iter()
            .map(|(r, s)| format!("{r} got {:?}", s.path))
            .collect();
        (!good).then(|| {
            format!(
                "want {want}; client got {}, upstreams: {landed:?}",
                answer.first_line()
            )
        })
    }
}

// ===================================================================================
// The reference: RFC 3986 plus SPEC 3, written from the documents.
// ===================================================================================

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Refused,
    /// The route that must get the request, and the request target its upstream must see;
    /// with `or_refused`, a 400 is as good (a fragment, see `reference`).
    Routed {
        route: &'static str,
        path: String,
        or_refused: bool,
    },
}

/// RFC 3986 2.3.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// RFC 3986 3.3 `pchar` minus pct-encoded: what may appear literally in a path segment.
fn literal_pchar(b: u8) -> bool {
    unreserved(b) || b"!$&'()*+,;=:@".contains(&b)
}

/// RFC 3986 5.2.4, step by step on an input buffer and an output buffer.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_string();
    let mut output = String::new();
    let pop_last = |output: &mut String| match output.rfind('/') {
        Some(i) => output.truncate(i),
        None => output.clear(),
    };
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_string(); // A
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_string(); // A
        } else if input.starts_with("/./") {
            input = input[2..].to_string(); // B
        } else if input == "/." {
            input = "/".into(); // B
        } else if input.starts_with("/../") {
            input = input[3..].to_string(); // C
            pop_last(&mut output);
        } else if input == "/.." {
            input = "/".into(); // C
            pop_last(&mut output);
        } else if input == "." || input == ".." {
            input.clear(); // D
        } else {
            // E: the first segment, with its leading slash, moves to the output.
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = input[end..].to_string();
        }
    }
    output
}

/// The normalised path of a raw one, or `None` when SPEC 3 says 400.
///
/// Percent-encoding normalisation first (RFC 3986 6.2.2.1-2: unreserved characters decoded,
/// other escapes kept with upper-case hex), refusing what SPEC 3 lists (encoded `/`, encoded or
/// literal `\`, NUL, a dot segment written with an escape) and a dot segment followed by
/// `;parameters`, which servlet containers read as a dot segment. Then repeated slashes are
/// merged and dot segments removed (RFC 3986 5.2.4). Slashes are merged first, as nginx's
/// `merge_slashes` and a file system do; SPEC lists both steps without an order.
fn reference_path(raw: &[u8]) -> Option<String> {
    if raw.first() != Some(&b'/') {
        return None;
    }
    let mut segments = Vec::new();
    for raw_segment in raw[1..].split(|b| *b == b'/') {
        let mut segment = String::new();
        let mut escaped_dot = false;
        let mut i = 0;
        while i < raw_segment.len() {
            let b = raw_segment[i];
            if b == b'%' {
                let hex = std::str::from_utf8(raw_segment.get(i + 1..i + 3)?).ok()?;
                let value = u8::from_str_radix(hex, 16).ok()?;
                match value {
                    b'/' | b'\\' | 0 => return None,
                    v if unreserved(v) => {
                        escaped_dot |= v == b'.';
                        segment.push(char::from(v));
                    }
                    v => segment.push_str(&format!("%{v:02X}")),
                }
                i += 3;
            } else if literal_pchar(b) {
                segment.push(char::from(b));
                i += 1;
            } else {
                return None;
            }
        }
        let name = segment.split(';').next().unwrap_or_default();
        let dot = name == "." || name == "..";
        if dot && (escaped_dot || segment.contains(';')) {
            return None;
        }
        segments.push(segment);
    }
    let mut merged = format!("/{}", segments.join("/"));
    while merged.contains("//") {
        merged = merged.replace("//", "/");
    }
    Some(remove_dot_segments(&merged))
}

/// SPEC 3: longest route prefix, matched on whole segments of the normalised path, each
/// segment read without its `;parameters` (as Tomcat, Jetty and Spring read it).
fn reference_route(path: &str) -> &'static str {
    let bare: Vec<&str> = path
        .split('/')
        .map(|s| s.split(';').next().unwrap_or_default())
        .collect();
    let path = bare.join("/");
    let path = path.as_str();
    let prefixes = [("admin", "/api/admin"), ("api", "/api"), ("static", "/static")];
    for (route, prefix) in prefixes {
        if let Some(rest) = path.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return route;
        }
    }
    "root"
}

/// The whole reference for one request target.
///
/// Raw non-ASCII cannot appear in a URI at all (RFC 3986 2): refused. A `#` cannot appear in a
/// request target either (RFC 9112 3.2, RFC 9113 8.3.1); a server may refuse it, or drop the
/// fragment (whatever it holds) as a client would (RFC 3986 3.5) and route on what is left,
/// which is safe as long as it forwards exactly what it routed: both are accepted. The query is
/// what follows the first `?` (before any `#`) and is forwarded unchanged; raw non-ASCII there is
/// invalid too, but the gateway never routes on the query, so forwarding it byte for byte is
/// as acceptable as a 400.
fn reference(target: &[u8]) -> Verdict {
    let fragment = target.iter().position(|b| *b == b'#');
    let target = &target[..fragment.unwrap_or(target.len())];
    let (path, query) = match target.iter().position(|b| *b == b'?') {
        Some(q) => (&target[..q], Some(&target[q..])),
        None => (target, None),
    };
    if path.iter().any(|b| !b.is_ascii_graphic()) {
        return Verdict::Refused;
    }
    let raw_query = query.is_some_and(|q| q.iter().any(|b| !b.is_ascii_graphic()));
    match reference_path(path) {
        None => Verdict::Refused,
        Some(normal) => Verdict::Routed {
            route: reference_route(&normal),
            path: format!(
                "{normal}{}",
                query.map(|q| String::from_utf8_lossy(q)).unwrap_or_default()
            ),
            or_refused: fragment.is_some() || raw_query,
        },
    }
}

#[test]
fn the_reference_normaliser_agrees_with_rfc_3986_examples() {
    // RFC 3986 5.2.4's own examples and 5.4's normal and abnormal ones (paths only).
    assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
    assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
    for (raw, want) in [
        ("/b/c/g", "/b/c/g"),
        ("/b/c/./g", "/b/c/g"),
        ("/b/c/g/", "/b/c/g/"),
        ("/b/c/.", "/b/c/"),
        ("/b/c/./", "/b/c/"),
        ("/b/c/..", "/b/"),
        ("/b/c/../g", "/b/g"),
        ("/b/c/../..", "/"),
        ("/b/c/../../../g", "/g"),
        ("/./g", "/g"),
        ("/../g", "/g"),
        ("/b/c/g.", "/b/c/g."),
        ("/b/c/.g", "/b/c/.g"),
        ("/b/c/g..", "/b/c/g.."),
        ("/b/c/./../g", "/b/g"),
        ("/b/c/g/./h", "/b/c/g/h"),
        ("/b/c/g;x=1/./y", "/b/c/g;x=1/y"),
        ("/b/c/g;x=1/../y", "/b/c/y"),
        ("/%7Euser/%61", "/~user/a"),
        ("/%c3%bc", "/%C3%BC"),
        ("//a//b/", "/a/b/"),
        ("/a//../b", "/b"),
    ] {
        assert_eq!(reference_path(raw.as_bytes()).as_deref(), Some(want), "{raw}");
    }
    for refused in [
        "/a%2fb",
        "/a%5Cb",
        "/a\\b",
        "/%00",
        "/%2e%2e/x",
        "/a/.%2E",
        "/..;/x",
        "/.;x=/",
        "a/b",
    ] {
        assert_eq!(reference_path(refused.as_bytes()), None, "{refused}");
    }
}

// ===================================================================================
// The property test.
// ===================================================================================

/// The pieces a path is built from; those that always make it a 400 are drawn less often, so
/// that about half the cases reach an upstream.
const PIECES: &[&str] = &[
    "/", "//", ".", "..", "%2e", "%2E", ";x=", "#", "?", "%25", "a", "b", "%C3%BC", "admin", "api",
];
const REFUSED_PIECES: &[&str] = &["%2f", "%2F", "%5c", "%5C", "%00", "ü"];

/// Starting points that put the random tail near a route boundary.
const PREFIXES: &[&str] = &[
    "/",
    "/api",
    "/api/",
    "/api/admin",
    "/api/admin/",
    "/static",
    "/static/",
    "/apiX",
    "/API",
    "/api%2fadmin",
    "/api/./admin",
    "/static/../api/admin",
    "/%61pi/admin",
    "/api//admin",
    "/static/%2e%2e/api/admin",
    "/static/..;/api/admin",
];

#[test]
fn random_paths_route_where_the_reference_normaliser_says() {
    let targets = (
        prop::sample::select(PREFIXES),
        prop::collection::vec(
            prop_oneof![6 => prop::sample::select(PIECES), 1 => prop::sample::select(REFUSED_PIECES)],
            0..8,
        ),
        any::<bool>(),
    )
        .prop_map(|(prefix, pieces, with_token)| (format!("{prefix}{}", pieces.concat()), with_token));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (bench, admin_token) = runtime.block_on(path_bench());
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let config = Config {
        cases: 384,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    // proptest itself is synchronous: the bench runs on its own runtime.
    let result = runner.run(&targets, |(target, with_token)| {
        let want = reference(target.as_bytes());
        if std::env::var_os("ADVERSARIAL_VERBOSE").is_some() {
            eprintln!("{target:?} -> {want:?}");
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut problems = Vec::new();
        for proto in [Proto::H1, Proto::H2] {
            let tag = format!("p{n}-{proto:?}");
            let request = Probe::get(&tag, target.as_bytes()).bearer(with_token.then_some(&admin_token));
            let found = runtime.block_on(want.check(&bench, proto, &tag, request, with_token));
            problems.extend(found.into_iter().map(|p| format!("{proto:?}: {p}")));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(TestCaseError::fail(format!(
                "{target:?} (token: {with_token}, reference: {want:?}): {}",
                problems.join("; ")
            ))),
        }
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

// ===================================================================================
// Explicit prefix-boundary cases (and proptest regressions).
// ===================================================================================

#[tokio::test]
async fn prefix_boundary_confusion_routes_where_the_spec_says() {
    /// Target, and the route and upstream request target SPEC 3 gives it (`None`: 400).
    const BOUNDARY: &[(&str, Option<(&str, &str)>)] = &[
        ("/apiX", Some(("root", "/apiX"))),
        ("/apiX/admin", Some(("root", "/apiX/admin"))),
        ("/API", Some(("root", "/API"))),
        ("/API/admin", Some(("root", "/API/admin"))),
        ("/api/ADMIN", Some(("api", "/api/ADMIN"))),
        ("/api%2fadmin", None),
        ("/api%2Fadmin/x", None),
        ("/api/./admin", Some(("admin", "/api/admin"))),
        ("/./api/admin", Some(("admin", "/api/admin"))),
        ("/../api/admin", Some(("admin", "/api/admin"))),
        ("/static/../api/admin", Some(("admin", "/api/admin"))),
        ("/static;x=/../api/admin", Some(("admin", "/api/admin"))),
        ("/static/..%2fapi/admin", None),
        ("/static/%2e%2e/api/admin", None),
        ("/static/.%2e/api/admin", None),
        ("/static/..;/api/admin", None),
        ("/static/.;/../api/admin", None),
        ("/api/%61dmin", Some(("admin", "/api/admin"))),
        ("/api/adm%69n", Some(("admin", "/api/admin"))),
        ("/%61pi/admin", Some(("admin", "/api/admin"))),
        ("/api//admin", Some(("admin", "/api/admin"))),
        ("//api/admin", Some(("admin", "/api/admin"))),
        ("/api/admin/.", Some(("admin", "/api/admin/"))),
        ("/api/admin/..", Some(("api", "/api/"))),
        ("/api/admin/../admin/x", Some(("admin", "/api/admin/x"))),
        ("/api/admin%2f..", None),
        ("/api/admin\\..\\x", None),
        ("/api/admin%5c..%5cx", None),
        ("/api/admin%00", None),
        ("/api/admin%2500", Some(("api", "/api/admin%2500"))),
        ("/api/admin.", Some(("api", "/api/admin."))),
        (
            "/api/admin?x=/../static",
            Some(("admin", "/api/admin?x=/../static")),
        ),
        ("/static?/../api/admin", Some(("static", "/static?/../api/admin"))),
        ("/api/admin#/../../static", Some(("admin", "/api/admin"))),
        ("/static#/../api/admin", Some(("static", "/static"))),
        // Shrunk proptest failures, kept as regressions (a fragment is dropped, whatever it holds).
        ("/#", Some(("root", "/"))),
        ("/#ü", Some(("root", "/"))),
        ("/?ü", Some(("root", "/?ü"))),
        ("/api/adminü", None),
        ("*", None),
        ("api/admin", None),
    ];
    let (bench, admin_token) = path_bench().await;
    let mut failures = Vec::new();
    for (i, (target, want)) in BOUNDARY.iter().enumerate() {
        let want = match want {
            Some((route, path)) => Verdict::Routed {
                route,
                path: path.to_string(),
                or_refused: matches!(
                    reference(target.as_bytes()),
                    Verdict::Routed { or_refused: true, .. }
                ),
            },
            None => Verdict::Refused,
        };
        // The table and the reference must agree, or one of them is wrong.
        if reference(target.as_bytes()) != want {
            failures.push(format!(
                "{target:?}: the reference says {:?}",
                reference(target.as_bytes())
            ));
        }
        for proto in [Proto::H1, Proto::H2] {
            for with_token in [false, true] {
                let tag = format!("b{i}-{proto:?}-{with_token}");
                let request = Probe::get(&tag, *target).bearer(with_token.then_some(&admin_token));
                if let Some(problem) = want.check(&bench, proto, &tag, request, with_token).await {
                    failures.push(format!("{target:?} {proto:?} token={with_token}: {problem}"));
                }
            }
        }
    }
    assert_none_failed("prefix boundaries", &failures);
}

/// `/api/admin;x=1` is the segment `admin;x=1` for the gateway, so it misses the admin route
/// and is forwarded by the public `/api` route; Tomcat, Jetty and Spring drop `;params` and
/// serve `/api/admin`. The gateway already refuses `..;` for this very reason. A protected
/// prefix must also match a segment that only adds parameters (or such a path must be refused).
#[tokio::test]
async fn path_parameters_never_move_a_request_off_its_protected_route() {
    let (bench, _) = path_bench().await;
    let mut failures = Vec::new();
    for (i, target) in [
        "/api/admin;x=1",
        "/api/admin;jsessionid=abc/users",
        "/api/admin;",
        "/api;x=/admin",
    ]
    .iter()
    .enumerate()
    {
        for proto in [Proto::H1, Proto::H2] {
            let tag = format!("param{i}-{proto:?}");
            let answer = Probe::get(&tag, *target).send(&bench.gateway, proto).await;
            let reached = bench.reached(&tag).len();
            if !(answer.status == Some(401) || answer.refused()) || reached != 0 {
                failures.push(format!(
                    "{target:?} {proto:?} without a token: client got {}, {reached} upstream request(s)",
                    answer.first_line()
                ));
            }
        }
    }
    assert_none_failed("path parameters on a protected route", &failures);
}

// ===================================================================================
// Host confusion.
// ===================================================================================

#[derive(Debug, Clone, Copy)]
enum HostWant {
    Route(&'static str),
    Refused,
    /// Either this route or 400 (stated per case).
    RouteOrRefused(&'static str),
}

use HostWant::{Refused, Route, RouteOrRefused};

/// An HTTP/1.1 case: name, request target, `Host` fields, outcome.
type H1Case = (&'static str, &'static str, &'static [&'static str], HostWant);
/// An HTTP/2 case (`:path` `/x`): name, `:authority`, `Host` fields, outcome.
type H2Case = (
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    HostWant,
);

/// The route a host (as the upstream was told it) belongs to, by the host patterns above.
fn host_route(host: &str) -> &'static str {
    let lower = host.to_ascii_lowercase();
    // Without the port: `[v6]:port` or `name:port`.
    let name = match lower.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => lower.split(':').next().unwrap_or_default(),
    };
    let name = name.trim_end_matches('.');
    match name {
        "api.example.com" => "exact",
        n if n.ends_with(".example.com") => "wild",
        _ => "default",
    }
}

async fn run_host_cases(h1: &[H1Case], h2: &[H2Case]) -> Vec<String> {
    let routes = [
        ("exact", "/", "host = \"api.example.com\"\nauth = \"public\""),
        ("wild", "/", "host = \"*.example.com\"\nauth = \"public\""),
        ("default", "/", "auth = \"public\""),
    ];
    let bench = Bench::start(&routes, plain_responder).await;
    let mut failures = Vec::new();
    let h1 = h1
        .iter()
        .map(|&(name, target, hosts, want)| (name, Proto::H1, target, None, hosts, want));
    let h2 = h2
        .iter()
        .map(|&(name, authority, hosts, want)| (name, Proto::H2, "/x", authority, hosts, want));
    for (i, (name, proto, target, authority, hosts, want)) in h1.chain(h2).enumerate() {
        let tag = format!("h{i}");
        let mut request = Probe::get(&tag, target);
        request.authority = authority.map(String::from);
        request.hosts = Some(hosts.iter().map(|h| h.to_string()).collect());
        let want = match want {
            Refused => Verdict::Refused,
            Route(route) | RouteOrRefused(route) => Verdict::Routed {
                route,
                path: "/x".into(),
                or_refused: matches!(want, RouteOrRefused(_)),
            },
        };
        let found = want.check(&bench, proto, &tag, request, false).await;
        let mut problems: Vec<String> = found.into_iter().collect();
        // Whatever it was routed by, the upstream must be told the authority it was routed on.
        if let [(route, seen)] = bench.reached(&tag).as_slice() {
            let host = seen.header("host");
            let forwarded_host = seen.header("x-forwarded-host");
            if host.len() != 1 || host != forwarded_host || host_route(host[0]) != *route {
                problems.push(format!(
                    "routed to {route} but the upstream was told Host {host:?}, X-Forwarded-Host {forwarded_host:?}"
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{proto:?} {name}: {}", problems.join("; ")));
        }
    }
    failures
}

#[tokio::test]
async fn routing_uses_one_consistent_authority_and_refuses_mismatches() {
    const HOST_CASES_H1: &[H1Case] = &[
        ("plain", "/x", &["api.example.com"], Route("exact")),
        ("upper case", "/x", &["API.Example.COM"], Route("exact")),
        // A fully qualified name: the same host; refusing it would be safe too.
        (
            "trailing dot",
            "/x",
            &["api.example.com."],
            RouteOrRefused("exact"),
        ),
        ("port", "/x", &["api.example.com:8443"], Route("exact")),
        ("default port", "/x", &["api.example.com:443"], Route("exact")),
        ("wildcard", "/x", &["x.api.example.com"], Route("wild")),
        ("wildcard needs a label", "/x", &["example.com"], Route("default")),
        (
            "suffix look-alike",
            "/x",
            &["api.example.com.evil.net"],
            Route("default"),
        ),
        ("glued look-alike", "/x", &["evilexample.com"], Route("default")),
        ("other host", "/x", &["evil.net"], Route("default")),
        ("ipv6 literal", "/x", &["[::1]:8443"], Route("default")),
        (
            "two different Hosts",
            "/x",
            &["evil.net", "api.example.com"],
            Refused,
        ),
        (
            "two equal Hosts",
            "/x",
            &["api.example.com", "api.example.com"],
            Refused,
        ),
        ("empty Host", "/x", &[""], Refused),
        ("no Host", "/x", &[], Refused),
        ("userinfo", "/x", &["evil.net@api.example.com"], Refused),
        ("userinfo reversed", "/x", &["api.example.com@evil.net"], Refused),
        ("Host with a path", "/x", &["api.example.com/admin"], Refused),
        ("two ports", "/x", &["api.example.com:1:2"], Refused),
        ("comma list", "/x", &["evil.net, api.example.com"], Refused),
        // Percent-encoding is not allowed in a Host; it must never match the exact route.
        (
            "escaped dot",
            "/x",
            &["api%2eexample.com"],
            RouteOrRefused("default"),
        ),
        (
            "absolute-form",
            "http://api.example.com/x",
            &["api.example.com"],
            Route("exact"),
        ),
        (
            "absolute-form https",
            "https://api.example.com/x",
            &["api.example.com"],
            Route("exact"),
        ),
        (
            "absolute-form case",
            "http://API.example.com/x",
            &["api.EXAMPLE.com"],
            Route("exact"),
        ),
        (
            "absolute-form vs other Host",
            "http://api.example.com/x",
            &["evil.net"],
            Refused,
        ),
        (
            "other absolute-form vs Host",
            "http://evil.net/x",
            &["api.example.com"],
            Refused,
        ),
        (
            "absolute-form userinfo",
            "http://evil.net@api.example.com/x",
            &["api.example.com"],
            Refused,
        ),
        (
            "absolute-form other port",
            "http://api.example.com:8443/x",
            &["api.example.com"],
            Refused,
        ),
        (
            "absolute-form without Host",
            "http://api.example.com/x",
            &[],
            Refused,
        ),
        (
            "absolute-form path normalised",
            "http://api.example.com/a/../x",
            &["api.example.com"],
            Route("exact"),
        ),
    ];
    const HOST_CASES_H2: &[H2Case] = &[
        ("authority", Some("api.example.com"), &[], Route("exact")),
        (
            "authority upper case",
            Some("API.EXAMPLE.COM"),
            &[],
            Route("exact"),
        ),
        (
            "authority with port",
            Some("api.example.com:8443"),
            &[],
            Route("exact"),
        ),
        ("authority wildcard", Some("x.example.com"), &[], Route("wild")),
        (
            "authority and equal Host",
            Some("api.example.com"),
            &["api.example.com"],
            Route("exact"),
        ),
        (
            "authority and other Host",
            Some("api.example.com"),
            &["evil.net"],
            Refused,
        ),
        (
            "other authority and Host",
            Some("evil.net"),
            &["api.example.com"],
            Refused,
        ),
        ("Host only", None, &["api.example.com"], Route("exact")),
        (
            "two Hosts, no authority",
            None,
            &["api.example.com", "evil.net"],
            Refused,
        ),
        (
            "authority userinfo",
            Some("evil.net@api.example.com"),
            &[],
            Refused,
        ),
        ("empty authority", Some(""), &[], Refused),
        ("no authority, no Host", None, &[], Refused),
    ];
    let failures = run_host_cases(HOST_CASES_H1, HOST_CASES_H2).await;
    assert_none_failed("host confusion", &failures);
}

/// RFC 9110 4.2.3 / RFC 3986 3.2.3: a port is digits only. The gateway routes
/// `Host: api.example.com:abc` on its host part and passes the malformed Host on, so the backend
/// gets an authority the gateway never validated (it ends up in absolute URLs such as
/// password-reset links and in virtual-host selection on the backend).
#[tokio::test]
async fn a_malformed_port_in_the_authority_is_refused() {
    const CASES_H1: &[H1Case] = &[
        ("non-numeric port", "/x", &["api.example.com:abc"], Refused),
        ("port with dots", "/x", &["api.example.com:evil.net"], Refused),
        ("port out of range", "/x", &["api.example.com:99999"], Refused),
        (
            "absolute-form non-numeric port",
            "http://api.example.com:abc/x",
            &["api.example.com:abc"],
            Refused,
        ),
    ];
    const CASES_H2: &[H2Case] = &[(
        "authority non-numeric port",
        Some("api.example.com:abc"),
        &[],
        Refused,
    )];
    let failures = run_host_cases(CASES_H1, CASES_H2).await;
    assert_none_failed("malformed ports", &failures);
}
