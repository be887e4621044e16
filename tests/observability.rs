//! Metrics and logs of a scripted session against the real binary: the counters move as they
//! should, and no secret the session used appears in any log line or metric.

mod support;

use http::Method;
use serde_json::json;
use support::binary::{plain_get, start_binary};
use support::upstreams::Upstream;
use support::{Client, ES256_TOKENS, Reply, RequestExt, public_route, request};

/// `POST path` with a JSON body and `extra` headers.
async fn post(client: &Client, path: &str, body: serde_json::Value, extra: &[(&str, &str)]) -> Reply {
    client
        .send(request(Method::POST, path).headers(extra).json(&body))
        .await
}

/// The value of one series in Prometheus text, or 0 when absent.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_scripted_session_moves_the_counters_and_leaves_no_secret_in_logs_or_metrics() {
    let echo = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!(
        "{ES256_TOKENS}\n[log]\nformat = \"json\"\n\n\
         [[routes]]\nname = \"api\"\npath = \"/api/\"\nupstream = \"http://{}\"\n",
        echo.addr
    );
    let (binary, client) = start_binary(dir.path(), "", &rest).await;

    let login = client.login("alice", "alice-password").await;
    assert_eq!(login.status, 200);
    let access = login.json()["access_token"].as_str().unwrap().to_string();
    let refresh_token = login.json()["refresh_token"].as_str().unwrap().to_string();
    let wrong = client.login("alice", "not-her-password").await;
    assert_eq!(wrong.status, 401);
    let cookie_login = post(
        &client,
        "/auth/login",
        json!({ "username": "bob", "password": "bob-password", "mode": "cookie" }),
        &[("origin", "https://localhost")],
    )
    .await;
    assert_eq!(cookie_login.status, 200);
    let cookie_values: Vec<String> = cookie_login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| {
            c.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_string()
        })
        .collect();

    assert_eq!(client.get_with_token("/api/one", &access).await.status, 200);
    assert_eq!(client.get_with_token("/api/two", &access).await.status, 200);
    assert_eq!(client.get("/api/three").await.status, 401);
    assert_eq!(
        client.get_with_token("/api/four", "not.a.token").await.status,
        401
    );
    let refreshed = client.refresh(&refresh_token).await;
    assert_eq!(refreshed.status, 200);
    let new_refresh = refreshed.json()["refresh_token"].as_str().unwrap().to_string();
    let new_access = refreshed.json()["access_token"].as_str().unwrap().to_string();
    let logout = client.logout(&new_refresh).await;
    assert_eq!(logout.status, 204);
    assert_eq!(client.get_with_token("/api/five", &new_access).await.status, 401);

    let metrics = plain_get(client.admin, "/metrics").await.expect("metrics");
    let expected = [
        ("portcullis_requests_total{route=\"api\",status=\"200\"}", 2.0),
        ("portcullis_requests_total{route=\"api\",status=\"401\"}", 3.0),
        ("portcullis_auth_failures_total{reason=\"missing\"}", 1.0),
        ("portcullis_auth_failures_total{reason=\"invalid_token\"}", 1.0),
        ("portcullis_auth_failures_total{reason=\"revoked\"}", 1.0),
        ("portcullis_logins_total{result=\"ok\"}", 2.0),
        ("portcullis_logins_total{result=\"invalid_credentials\"}", 1.0),
        ("portcullis_refreshes_total{result=\"ok\"}", 1.0),
        ("portcullis_revocations{kind=\"session\"}", 1.0),
        ("portcullis_request_duration_seconds_count{route=\"api\"}", 5.0),
    ];
    for (series_name, value) in expected {
        assert_eq!(
            series(&metrics, series_name),
            value,
            "{series_name} in:\n{metrics}"
        );
    }

    let log = binary.log();
    for event in ["login_ok", "login_failed", "refresh", "logout"] {
        assert!(
            log.contains(&format!("\"event\":\"{event}\"")),
            "no {event} audit event in:\n{log}"
        );
    }
    let secrets = [
        "alice-password".to_string(),
        "not-her-password".to_string(),
        "bob-password".to_string(),
        access,
        refresh_token,
        new_access,
        new_refresh,
    ];
    for secret in secrets.iter().chain(&cookie_values) {
        assert!(!log.contains(secret.as_str()), "a secret appears in the log");
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret appears in the metrics"
        );
    }
}

#[tokio::test]
async fn text_logs_in_a_file_are_plain_and_name_the_client_behind_a_trusted_proxy() {
    let echo = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let server = "trusted_proxies = [\"127.0.0.1/32\"]";
    let rest = format!("{ES256_TOKENS}\n{}", public_route("open", "/", echo.addr));
    let (binary, client) = start_binary(dir.path(), server, &rest).await;

    assert_eq!(client.login("alice", "wrong").await.status, 401);
    let from_proxy = request(Method::GET, "/hello")
        .header("x-forwarded-for", "203.0.113.7")
        .empty();
    assert_eq!(client.send(from_proxy).await.status, 200);

    let log = binary.log();
    assert!(
        !log.contains('\x1b'),
        "terminal colour codes in a log file:\n{log:?}"
    );
    assert!(log.contains("event=\"login_failed\""), "not grep-able:\n{log}");
    let access_line = log
        .lines()
        .find(|line| line.contains("portcullis::access") && line.contains("route=\"open\""))
        .unwrap_or_else(|| panic!("no access line for the proxied request:\n{log}"));
    assert!(access_line.contains("client=203.0.113.7"), "{access_line}");
    assert!(access_line.contains("peer=127.0.0.1:"), "{access_line}");
}

/// SPEC 15: a client's `traceparent` is continued (same trace, the gateway's span as the
/// upstream's parent, `tracestate` passed on), an invalid or missing one begins a trace, and
/// the access line names the trace.
#[tokio::test]
async fn a_trace_is_continued_or_begun_and_named_in_the_access_log() {
    let echo = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!("{ES256_TOKENS}\n{}", public_route("open", "/", echo.addr));
    let (binary, client) = start_binary(dir.path(), "", &rest).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = format!("00-{trace}-00f067aa0ba902b7-01");
    let traced = request(Method::GET, "/traced")
        .headers(&[("traceparent", &parent), ("tracestate", "vendor=abc")])
        .empty();
    let reply = client.send(traced).await;
    let sent = reply.upstream_header("traceparent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let fields: Vec<&str> = sent[0].split('-').collect();
    assert_eq!((fields[0], fields[1], fields[3]), ("00", trace, "01"), "{sent:?}");
    assert!(
        fields[2].len() == 16 && fields[2] != "00f067aa0ba902b7",
        "the gateway's own span: {sent:?}"
    );
    assert_eq!(reply.upstream_header("tracestate"), ["vendor=abc"]);

    let invalid = request(Method::GET, "/untraced")
        .headers(&[
            ("traceparent", "00-zz-00f067aa0ba902b7-01"),
            ("tracestate", "vendor=abc"),
        ])
        .empty();
    let reply = client.send(invalid).await;
    let begun = reply.upstream_header("traceparent");
    assert!(begun.len() == 1 && !begun[0].contains(trace), "{begun:?}");
    assert!(
        reply.upstream_header("tracestate").is_empty(),
        "state of no trace"
    );
    let begun_id = begun[0].split('-').nth(1).expect("a trace id").to_string();

    let log = binary.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("portcullis::access"))
        .collect();
    assert!(
        access.iter().any(|l| l.contains(&format!("trace_id={trace}"))),
        "{log}"
    );
    assert!(
        access.iter().any(|l| l.contains(&format!("trace_id={begun_id}"))),
        "{log}"
    );
}
