//! A route's `methods` list splits routes of one host and prefix; it never moves a request to a
//! route that protects less (issue 13, defect 1). Judged by what each upstream received.

mod support;

use http::{Method, Request};
use support::config::route;
use support::upstreams::Upstream;
use support::{Gateway, Reply, RequestExt, Setup};

/// Every method a client might try: standard, WebDAV, made-up, and a lower-case `get`
/// (methods are case-sensitive, so `get` is not `GET`).
fn methods() -> Vec<Method> {
    let all = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
    ];
    let all = all.into_iter().chain(["PROPFIND", "PURGE", "get"]);
    all.map(|name| Method::from_bytes(name.as_bytes()).unwrap())
        .collect()
}

/// What a request should come to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Forwarded to the upstream with this index, with no identity headers.
    Reached(usize),
    /// Answered by the gateway with this status; no upstream saw it.
    Refused(u16),
}

async fn send(gateway: &Gateway, method: &Method, host: &str, path: &str) -> Reply {
    let request = Request::builder().method(method.clone()).uri(path);
    let headers = [("host", host), ("x-auth-sub", "admin")];
    gateway.send(request.headers(&headers).empty()).await
}

/// Sends every method without a token and checks status, `Allow`, and which upstream saw it.
async fn check_layout(
    layout: &str,
    gateway: &Gateway,
    upstreams: &[Upstream],
    (host, path): (&str, &str),
    expect: impl Fn(&Method) -> Expect,
    allow: &str,
) {
    for method in methods() {
        let before: Vec<usize> = upstreams.iter().map(|u| u.counts.requests()).collect();
        let reply = send(gateway, &method, host, path).await;
        let after: Vec<usize> = upstreams.iter().map(|u| u.counts.requests()).collect();
        let reached: Vec<usize> = (0..upstreams.len()).filter(|&i| after[i] != before[i]).collect();
        let case = format!("{layout}: {method} {host}{path} -> {}", reply.status);
        match expect(&method) {
            Expect::Reached(index) => {
                assert_eq!(reached, [index], "{case}");
                assert!(reply.status.is_success(), "{case}");
                if method != Method::HEAD {
                    assert!(reply.upstream_header("x-auth-sub").is_empty(), "{case}");
                }
            }
            Expect::Refused(status) => {
                assert_eq!(reached, Vec::<usize>::new(), "{case}: an upstream received it");
                assert_eq!(reply.status.as_u16(), status, "{case}");
                if status == 405 {
                    assert_eq!(reply.headers["allow"], allow, "{case}");
                    if method != Method::HEAD {
                        assert_eq!(reply.json()["error"], "method_not_allowed", "{case}");
                    }
                }
            }
        }
    }
}

fn is_get_or_head(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

#[tokio::test]
async fn a_method_outside_a_protected_routes_list_never_reaches_a_public_catch_all() {
    let (admin, public) = (Upstream::echo().await, Upstream::echo().await);
    let routes = format!(
        "{}{}",
        route(
            "admin-area",
            "/admin-area/",
            admin.addr,
            "methods = [\"GET\"]\nroles = [\"admin\"]"
        ),
        route("everything", "/", public.addr, "auth = \"public\""),
    );
    let gateway = Gateway::start(Setup::routes(routes)).await;
    let upstreams = [admin, public];
    let expect = |m: &Method| match is_get_or_head(m) {
        true => Expect::Refused(401),
        false => Expect::Refused(405),
    };
    check_layout(
        "admin-area",
        &gateway,
        &upstreams,
        ("localhost", "/admin-area/users/1"),
        expect,
        "GET, HEAD",
    )
    .await;
    // The catch-all still takes everything under its own prefix.
    let other = |_: &Method| Expect::Reached(1);
    check_layout(
        "admin-area",
        &gateway,
        &upstreams,
        ("localhost", "/elsewhere"),
        other,
        "",
    )
    .await;
    // An admin still reaches the protected route, as themselves.
    let token = gateway.token("alice").await;
    let reply = gateway.get_with_token("/admin-area/users/1", &token).await;
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);
    assert_eq!(upstreams[0].counts.requests(), 1);
}

/// A public `GET` route and a `writes` route (with `writes_extra`) on `/api/`, and a public
/// catch-all; upstreams in that order.
async fn reads_and_writes(writes_extra: &str) -> (Gateway, [Upstream; 3]) {
    let upstreams = [
        Upstream::echo().await,
        Upstream::echo().await,
        Upstream::echo().await,
    ];
    let public_get = "methods = [\"GET\"]\nauth = \"public\"";
    let routes = format!(
        "{}{}{}",
        route("reads", "/api/", upstreams[0].addr, public_get),
        route("writes", "/api", upstreams[1].addr, writes_extra),
        route("everything", "/", upstreams[2].addr, "auth = \"public\""),
    );
    (Gateway::start(Setup::routes(routes)).await, upstreams)
}

#[tokio::test]
async fn a_public_read_and_a_protected_write_can_share_one_prefix() {
    let (gateway, upstreams) = reads_and_writes("").await;
    let expect = |m: &Method| match is_get_or_head(m) {
        true => Expect::Reached(0),
        false => Expect::Refused(401),
    };
    let target = ("localhost", "/api/items");
    check_layout("split", &gateway, &upstreams, target, expect, "").await;
}

#[tokio::test]
async fn routes_that_all_list_methods_answer_405_with_the_methods_they_take() {
    let (gateway, upstreams) = reads_and_writes("methods = [\"POST\", \"PUT\"]").await;
    let expect = |m: &Method| {
        if is_get_or_head(m) {
            Expect::Reached(0)
        } else if *m == Method::POST || *m == Method::PUT {
            Expect::Refused(401)
        } else {
            Expect::Refused(405)
        }
    };
    let target = ("localhost", "/api/items");
    check_layout(
        "all listed",
        &gateway,
        &upstreams,
        target,
        expect,
        "GET, HEAD, POST, PUT",
    )
    .await;
}

#[tokio::test]
async fn a_method_never_moves_a_request_to_a_less_specific_host() {
    let (exact, any_host) = (Upstream::echo().await, Upstream::echo().await);
    let routes = format!(
        "{}{}",
        route(
            "exact",
            "/",
            exact.addr,
            "host = \"app.example.com\"\nmethods = [\"GET\"]"
        ),
        route("any-host", "/", any_host.addr, "auth = \"public\""),
    );
    let gateway = Gateway::start(Setup::routes(routes)).await;
    let upstreams = [exact, any_host];
    let expect = |m: &Method| match is_get_or_head(m) {
        true => Expect::Refused(401),
        false => Expect::Refused(405),
    };
    let target = ("app.example.com", "/x");
    check_layout("host", &gateway, &upstreams, target, expect, "GET, HEAD").await;
    let other = |_: &Method| Expect::Reached(1);
    check_layout("host", &gateway, &upstreams, ("other.example", "/x"), other, "").await;
}

#[tokio::test]
async fn http2_requests_follow_the_same_method_rule() {
    let (admin, public) = (Upstream::echo().await, Upstream::echo().await);
    let routes = format!(
        "{}{}",
        route("admin-area", "/admin-area/", admin.addr, "methods = [\"GET\"]"),
        route("everything", "/", public.addr, "auth = \"public\""),
    );
    let gateway = Gateway::start(Setup::routes(routes)).await;
    for method in [
        Method::DELETE,
        Method::POST,
        Method::from_bytes(b"PROPFIND").unwrap(),
    ] {
        let request = Request::builder().method(method.clone());
        let request = request.uri("https://localhost/admin-area/users/1").empty();
        let reply = gateway.send_h2(request).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.headers["allow"], "GET, HEAD");
    }
    assert_eq!(admin.counts.requests() + public.counts.requests(), 0);
}

#[tokio::test]
async fn check_refuses_two_routes_of_one_prefix_that_take_the_same_method() {
    let upstream = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[tls]\nself_signed_if_missing = true\n{}{}{}",
        route("a", "/api/", upstream.addr, "methods = [\"GET\", \"POST\"]"),
        route("b", "/api", upstream.addr, "methods = [\"PUT\", \"POST\"]"),
        route("c", "/x/", upstream.addr, "methods = []"),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let errors = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(
        errors.contains(":8:1: routes \"a\" and \"b\" both take POST on the same host and path prefix"),
        "{errors}"
    );
    assert!(
        errors.contains(":17:11: methods = [] takes no request"),
        "{errors}"
    );
}
