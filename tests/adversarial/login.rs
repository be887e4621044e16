//! Adversarial suite: login (issue 9): user enumeration by answer and by timing, and
//! attempts to get around the login and refresh rate limits.
//!
//! Covered: a timing oracle over interleaved, shuffled rounds of unknown user / wrong
//! password / empty password / empty user name / disabled user (identical answers, overlapping
//! latency distributions compared by median); per-IP limit evasion with every client-address
//! header real tools rotate (X-Forwarded-For and 15 relatives, IPv6 and mapped forms), behind
//! a trusted proxy with spoofed left-hand hops (comma-joined and as separate header lines);
//! per-user limit evasion with user-name variants (case, whitespace, NUL, control characters,
//! homoglyphs, fullwidth and zero-width characters, percent- and JSON-escaping) and body
//! variants (JSON, form, cookie mode, media-type spellings); bursts multiplexed on one HTTP/2
//! connection and spread over many parallel connections; and the refresh limit against token
//! re-encodings, the cookie channel, forwarding headers and parallel bursts. Every limit test
//! also proves that the right password does not get in while limited.
//!
//! Left out: basic 401/429 shapes and the simple forwarding-header case (tests/login.rs), the
//! hash pool saturating to 503 (tests/login.rs flood test), refresh rotation (tests/sessions.rs).

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::json;
use support::auth::{Pair, credentials, json_login, raw_login, refresh_request};
use support::rng::Rng;
use support::upstreams::Upstream;
use support::{Gateway, Reply, RequestExt, Setup, request, required_route, send_on, within};

const GENEROUS: &str = "login_per_ip = \"100000/min\"\nlogin_per_user = \"100000/min\"\n";

async fn gateway_with(server: &str, limits: &str) -> Gateway {
    let setup = Setup::routes(format!("[limits]\n{limits}\n")).server(server);
    Gateway::start(setup).await
}

/// What is wrong with `reply` as SPEC 7's over-the-limit answer, if anything.
fn limited_problem(reply: &Reply) -> Option<String> {
    if reply.status != 429 {
        return Some(format!("status {} ({:.120})", reply.status, reply.text()));
    }
    match reply.retry_after() {
        Some(1..=3600) => None,
        other => Some(format!("429 with Retry-After {other:?}")),
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let n = samples.len();
    match n % 2 {
        1 => samples[n / 2],
        _ => (samples[n / 2 - 1] + samples[n / 2]) / 2,
    }
}

// === user enumeration ===

/// SPEC 7: unknown user, wrong password, empty password, empty user name and a disabled user
/// give identical answers in about the same time. Each round sends one attempt of every class
/// in a fresh random order over one HTTP/2 connection, so load from other tests falls on all
/// classes alike; medians (never means) are compared with a generous ratio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_cannot_be_told_apart_by_answer_or_by_timing() {
    const ROUNDS: usize = 36;
    let gateway = gateway_with("", GENEROUS).await;
    let classes: [(&str, &str, &str); 6] = [
        ("wrong password", "alice", "not-alices-password"),
        ("unknown user", "mallory", "not-alices-password"),
        ("empty password", "alice", ""),
        ("empty user name", "", "not-alices-password"),
        ("disabled user, right password", "carol", "carol-password"),
        ("disabled user, wrong password", "carol", "not-carols-password"),
    ];
    let h2 = gateway.h2().await;
    // Warm up: the dummy hash is built on first use, and connections and caches settle.
    for (_, user, password) in &classes {
        send_on(&h2, json_login(user, password, &[])).await;
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); classes.len()];
    let mut reference = None;
    let mut differences = Vec::new();
    let mut shuffle = Rng::from_entropy();
    let mut order: Vec<usize> = (0..classes.len()).collect();
    for round in 0..ROUNDS {
        shuffle.shuffle(&mut order);
        for &index in &order {
            let (name, user, password) = classes[index];
            let started = Instant::now();
            let reply = send_on(&h2, json_login(user, password, &[])).await;
            samples[index].push(started.elapsed());
            // Without the headers that differ on every response by design.
            let seen = reply.comparable(&["date", "x-request-id"]);
            if reply.status != 401 || reply.json()["error"] != "invalid_credentials" {
                differences.push(format!(
                    "round {round}, {name}: {} {}",
                    reply.status,
                    reply.text()
                ));
            }
            match &reference {
                Some((first, expected)) if *expected != seen => differences.push(format!(
                    "round {round}: {name} answers differently from {first}: {seen:?} vs {expected:?}"
                )),
                Some(_) => {}
                None => reference = Some((name, seen)),
            }
        }
    }
    assert!(
        differences.is_empty(),
        "answers differ:\n{}",
        differences.join("\n")
    );
    let medians: Vec<Duration> = samples.iter_mut().map(|s| median(s)).collect();
    let baseline = medians[0].as_secs_f64();
    let report: Vec<String> = classes
        .iter()
        .zip(&medians)
        .map(|((name, _, _), m)| {
            format!(
                "{name}: median {:.1} ms ({:.2}x)",
                m.as_secs_f64() * 1e3,
                m.as_secs_f64() / baseline
            )
        })
        .collect();
    println!(
        "login timing medians over {ROUNDS} rounds:\n{}",
        report.join("\n")
    );
    let outliers: Vec<&String> = report
        .iter()
        .zip(&medians)
        .filter(|(_, m)| !(0.6..=1.6).contains(&(m.as_secs_f64() / baseline)))
        .map(|(line, _)| line)
        .collect();
    assert!(
        outliers.is_empty(),
        "login time tells the classes apart (ratio to the wrong-password median outside 0.6-1.6):\n{}",
        report.join("\n")
    );
    // Control: the same connection logs the right password in.
    assert_eq!(
        send_on(&h2, json_login("alice", "alice-password", &[]))
            .await
            .status,
        200
    );
}

// === per-IP limit ===

/// With `login_per_ip = 3/min` and no trusted proxies, no client-sent header makes a new
/// client: after the budget, every spoofed attempt is 429, the right password included.
#[tokio::test]
async fn no_client_address_header_resets_the_per_ip_limit() {
    // Every header that tools rotate to look like a new client (Burp IP Rotate, ffuf, hydra
    // wrappers), each with a fresh address on every attempt.
    let spoofing_headers = |n: usize| -> Vec<(&'static str, String)> {
        let v4 = format!("198.51.100.{}", n % 250 + 1);
        vec![
            ("x-forwarded-for", v4.clone()),
            ("x-forwarded-for", format!("{v4}, 203.0.113.{}", n % 250 + 1)),
            ("x-forwarded-for", format!("2001:db8::{n:x}")),
            ("x-forwarded-for", format!("::ffff:{v4}")),
            ("x-forwarded-for", "127.0.0.1".to_string()),
            ("x-forwarded-for", "unknown".to_string()),
            ("x-real-ip", v4.clone()),
            ("forwarded", format!("for={v4};proto=https")),
            ("forwarded", format!("for=\"[2001:db8::{n:x}]\"")),
            ("true-client-ip", v4.clone()),
            ("cf-connecting-ip", v4.clone()),
            ("fastly-client-ip", v4.clone()),
            ("x-client-ip", v4.clone()),
            ("x-cluster-client-ip", v4.clone()),
            ("x-originating-ip", v4.clone()),
            ("x-remote-ip", v4.clone()),
            ("x-remote-addr", v4.clone()),
            ("x-host", v4.clone()),
            ("client-ip", v4.clone()),
            ("x-forwarded", format!("for={v4}")),
            ("forwarded-for", v4.clone()),
            ("x-proxyuser-ip", v4.clone()),
            ("x_forwarded_for", v4.clone()),
            ("via", format!("1.1 {v4}")),
        ]
    };
    let gateway = gateway_with("", "login_per_ip = \"3/min\"\nlogin_per_user = \"100000/min\"\n").await;
    for n in 0..3 {
        let reply = gateway.login(&format!("spray{n}"), "Winter2024!").await;
        assert_eq!(reply.status, 401, "attempt {n}: {}", reply.text());
    }
    let mut failures = Vec::new();
    for (n, (name, value)) in spoofing_headers(7).into_iter().enumerate() {
        let headers = [(name, value.as_str())];
        let request = match n % 2 {
            0 => json_login("bob", "bob-password", &headers),
            _ => json_login(&format!("spray-{n}"), "Winter2024!", &headers),
        };
        let reply = gateway.send(request).await;
        if let Some(problem) = limited_problem(&reply) {
            failures.push(format!("{name}: {value}: {problem}"));
        }
    }
    // All of them at once, over HTTP/2.
    let all = spoofing_headers(99);
    let headers: Vec<(&str, &str)> = all.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = gateway.send_h2(json_login("bob", "bob-password", &headers)).await;
    if let Some(problem) = limited_problem(&reply) {
        failures.push(format!("every header at once over h2: {problem}"));
    }
    assert!(
        failures.is_empty(),
        "the per-IP limit was evaded:\n{}",
        failures.join("\n")
    );
}

/// Behind a trusted proxy (the test plays it, from 127.0.0.1) the client is the right-most
/// untrusted hop; an attacker controls only the hops to its left, so rotating them changes
/// nothing. Comma-joined chains.
#[tokio::test]
async fn spoofed_hops_before_a_trusted_proxy_do_not_reset_the_per_ip_limit() {
    let gateway = gateway_with(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        "login_per_ip = \"3/min\"\nlogin_per_user = \"100000/min\"\n",
    )
    .await;
    const CLIENT: &str = "203.0.113.7";
    for n in 0..3 {
        let chain = format!("198.51.100.{n}, {CLIENT}");
        let reply = gateway
            .send(json_login(
                &format!("spray{n}"),
                "guess",
                &[("x-forwarded-for", &chain)],
            ))
            .await;
        assert_eq!(reply.status, 401, "attempt {n}: {}", reply.text());
    }
    let mut failures = Vec::new();
    for (n, chain) in [
        format!("198.51.100.77, {CLIENT}"),
        format!("10.0.0.1, 127.0.0.1, {CLIENT}"),
        format!("127.0.0.1, {CLIENT}"),
        format!("garbage, {CLIENT}"),
        format!("2001:db8::1, {CLIENT}"),
        format!("{CLIENT}, {CLIENT}"),
        format!("[2001:db8::2]:443, {CLIENT}"),
        format!(
            "{},{CLIENT}",
            (0..50)
                .map(|i| format!("192.0.2.{i}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let user = if n == 0 {
            "bob".to_string()
        } else {
            format!("spray-{n}")
        };
        let password = if n == 0 { "bob-password" } else { "guess" };
        let reply = gateway
            .send(json_login(&user, password, &[("x-forwarded-for", &chain)]))
            .await;
        if let Some(problem) = limited_problem(&reply) {
            failures.push(format!("X-Forwarded-For: {chain}: {problem}"));
        }
    }
    // Control: another real client behind the same proxy is not limited.
    let other = gateway
        .send(json_login(
            "bob",
            "bob-password",
            &[("x-forwarded-for", "203.0.113.8")],
        ))
        .await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert!(
        failures.is_empty(),
        "spoofed hops evaded the per-IP limit:\n{}",
        failures.join("\n")
    );
}

/// Proxies such as HAProxy (`option forwardfor`) add their own `X-Forwarded-For` line rather
/// than joining the client's. RFC 9110 5.3 makes two lines equal to one comma-joined list, so
/// the client is still the right-most untrusted entry: the proxy's line, not the attacker's.
#[tokio::test]
async fn a_spoofed_forwarded_for_line_before_the_proxys_own_line_does_not_reset_the_limit() {
    let gateway = gateway_with(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        "login_per_ip = \"3/min\"\nlogin_per_user = \"100000/min\"\n",
    )
    .await;
    const CLIENT: &str = "203.0.113.7";
    let attempt = |n: usize, user: &str, password: &str| {
        let spoofed = format!("198.51.100.{n}");
        let mut request = json_login(user, password, &[("x-forwarded-for", &spoofed)]);
        request
            .headers_mut()
            .append("x-forwarded-for", http::HeaderValue::from_static(CLIENT));
        request
    };
    let mut statuses = Vec::new();
    for n in 0..8 {
        statuses.push(
            gateway
                .send(attempt(n, &format!("spray{n}"), "guess"))
                .await
                .status
                .as_u16(),
        );
    }
    let right = gateway.send(attempt(100, "bob", "bob-password")).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "attempts from {CLIENT} with a rotating spoofed first line: {statuses:?}"
    );
    assert!(
        limited_problem(&right).is_none(),
        "the right password from the limited client: {}",
        right.status
    );
}

// === per-user limit ===

/// With `login_per_user = 3/min`, alice's budget is spent; then every spelling of her name,
/// every body format and every channel is tried with her right password. None may log in,
/// and the spellings that name exactly `alice` once decoded must get the 429.
#[tokio::test]
async fn user_name_and_body_variants_do_not_evade_the_per_user_limit() {
    let gateway = gateway_with("", "login_per_ip = \"100000/min\"\nlogin_per_user = \"3/min\"\n").await;
    for n in 0..3 {
        let reply = gateway.login("alice", &format!("guess-{n}")).await;
        assert_eq!(reply.status, 401, "attempt {n}: {}", reply.text());
    }
    let right = "alice-password";
    let origin = [("origin", "https://localhost")];
    // (case, request, whether it names exactly alice, or a case-variant the limiter folds)
    let mut cases: Vec<(String, Request<Full<Bytes>>, bool)> = vec![
        ("exact name".into(), json_login("alice", right, &[]), true),
        ("Alice".into(), json_login("Alice", right, &[]), true),
        ("ALICE".into(), json_login("ALICE", right, &[]), true),
        (
            "JSON unicode escapes".into(),
            raw_login(
                Some("application/json"),
                format!("{{\"username\":\"\\u0061\\u006c\\u0069\\u0063\\u0065\",\"password\":\"{right}\"}}"),
                &[],
            ),
            true,
        ),
        (
            "JSON with whitespace and reordered members".into(),
            raw_login(
                Some("application/json"),
                format!("{{ \"password\" : \"{right}\" ,\n \"username\" : \"alice\" }}"),
                &[],
            ),
            true,
        ),
        (
            "media type with charset".into(),
            raw_login(
                Some("application/json; charset=utf-8"),
                credentials("alice", right),
                &[],
            ),
            true,
        ),
        (
            "media type in capitals".into(),
            raw_login(Some("APPLICATION/JSON"), credentials("alice", right), &[]),
            true,
        ),
        (
            "mode token".into(),
            raw_login(
                Some("application/json"),
                json!({"username": "alice", "password": right, "mode": "token"}).to_string(),
                &[],
            ),
            true,
        ),
        (
            "mode cookie".into(),
            raw_login(
                Some("application/json"),
                json!({"username": "alice", "password": right, "mode": "cookie"}).to_string(),
                &origin,
            ),
            true,
        ),
        (
            "HTML form".into(),
            raw_login(
                Some("application/x-www-form-urlencoded"),
                format!("username=alice&password={right}"),
                &origin,
            ),
            true,
        ),
        (
            "HTML form, percent-encoded name".into(),
            raw_login(
                Some("application/x-www-form-urlencoded"),
                format!("username=%61%6C%69%63%65&password={right}"),
                &origin,
            ),
            true,
        ),
        (
            "HTML form, fields reordered with return_to".into(),
            raw_login(
                Some("application/x-www-form-urlencoded"),
                format!("return_to=%2F&password={right}&username=alice"),
                &origin,
            ),
            true,
        ),
        (
            "spoofed X-Forwarded-For".into(),
            json_login("alice", right, &[("x-forwarded-for", "198.51.100.9")]),
            true,
        ),
    ];
    let padded = format!("alice{}", " ".repeat(295));
    for (name, username) in [
        ("a leading space", " alice"),
        ("a trailing space", "alice "),
        ("a trailing tab", "alice\t"),
        ("a trailing newline", "alice\n"),
        ("a trailing NUL", "alice\u{0}"),
        ("a NUL inside", "ali\u{0}ce"),
        ("a zero-width space", "ali\u{200b}ce"),
        ("a soft hyphen", "ali\u{ad}ce"),
        ("a BOM", "\u{feff}alice"),
        ("Cyrillic a", "\u{430}lice"),
        ("dotless i", "al\u{131}ce"),
        ("Kelvin-style fold (long s)", "alic\u{17f}"),
        ("fullwidth letters", "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}"),
        ("combining acute on e", "alice\u{301}"),
        ("percent-encoded in JSON", "%61lice"),
        ("URL-encoded NUL suffix", "alice%00"),
        ("a 300-byte padded name", padded.as_str()),
    ] {
        cases.push((
            format!("user name with {name}"),
            json_login(username, right, &[]),
            false,
        ));
    }
    let mut failures = Vec::new();
    for (name, request, names_alice) in cases {
        let reply = gateway.send(request).await;
        if [200, 303].contains(&reply.status.as_u16()) || reply.headers.contains_key("set-cookie") {
            failures.push(format!("{name}: LOGGED IN with {}", reply.status));
        } else if names_alice && let Some(problem) = limited_problem(&reply) {
            failures.push(format!("{name}: {problem}"));
        }
    }
    // The limit still holds for the exact name at the end.
    let reply = gateway.login("alice", right).await;
    if let Some(problem) = limited_problem(&reply) {
        failures.push(format!("alice afterwards: {problem}"));
    }
    assert!(
        failures.is_empty(),
        "the per-user limit was evaded:\n{}",
        failures.join("\n")
    );
    // Control: another user is not limited.
    assert_eq!(gateway.login("bob", "bob-password").await.status, 200);
}

// === bursts ===

/// The attempts that got past the limiter: every answer that is not a 429 (with Retry-After).
fn admitted(replies: &[Reply]) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut passed = 0;
    for (i, reply) in replies.iter().enumerate() {
        match reply.status.as_u16() {
            429 if reply.retry_after().is_some() => {}
            429 => problems.push(format!("attempt {i}: 429 without Retry-After")),
            200 | 303 => problems.push(format!("attempt {i}: LOGGED IN")),
            401 => passed += 1,
            other => problems.push(format!("attempt {i}: unexpected {other}: {}", reply.text())),
        }
    }
    (passed, problems)
}

/// 40 attempts multiplexed on one HTTP/2 connection at once: exactly the budget is checked,
/// the rest are 429, and the right password is refused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_multiplexed_on_one_http2_connection_gets_only_the_budget() {
    let gateway = gateway_with("", "login_per_ip = \"5/min\"\nlogin_per_user = \"100000/min\"\n").await;
    let h2 = gateway.h2().await;
    let attempts = (0..40).map(|n| send_on(&h2, json_login(&format!("burst{n}"), "guess", &[])));
    let replies = within(futures_util::future::join_all(attempts)).await;
    let (passed, problems) = admitted(&replies);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(passed, 5, "attempts past a limit of 5");
    let reply = send_on(&h2, json_login("bob", "bob-password", &[])).await;
    assert!(
        limited_problem(&reply).is_none(),
        "the right password after the burst: {}",
        reply.status
    );
}

/// The same burst spread over 30 parallel TLS connections aimed at one user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_many_parallel_connections_gets_only_the_budget() {
    let gateway = gateway_with("", "login_per_ip = \"100000/min\"\nlogin_per_user = \"4/min\"\n").await;
    let gateway = &gateway;
    let attempts = (0..30).map(|n| async move {
        let request = match n % 3 {
            0 => json_login("bob", &format!("guess-{n}"), &[]),
            1 => json_login(
                "BOB",
                &format!("guess-{n}"),
                &[("x-forwarded-for", "198.51.100.1")],
            ),
            _ => raw_login(
                Some("application/x-www-form-urlencoded"),
                format!("username=bob&password=guess-{n}"),
                &[("origin", "https://localhost")],
            ),
        };
        match n % 2 {
            0 => gateway.send(request).await,
            _ => gateway.send_h2(request).await,
        }
    });
    let replies = within(futures_util::future::join_all(attempts)).await;
    let (passed, problems) = admitted(&replies);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(passed, 4, "attempts past a per-user limit of 4");
    let reply = gateway.login("bob", "bob-password").await;
    assert!(
        limited_problem(&reply).is_none(),
        "the right password after the burst: {}",
        reply.status
    );
}

// === refresh limit ===

/// `POST /auth/refresh` with the JSON `body` as given and extra `headers`.
fn refresh_with(body: String, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let request = request(Method::POST, "/auth/refresh").header("content-type", "application/json");
    request.headers(headers).with_body(body)
}

/// With `refresh_per_session = 3/min`, once a session's budget is spent no re-encoding of its
/// token, no channel and no burst rotates it again, and the live pair keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_variants_and_bursts_do_not_evade_the_per_session_limit() {
    let echo = Upstream::echo().await;
    let rest = format!(
        "{}[limits]\n{GENEROUS}refresh_per_session = \"3/min\"\n",
        required_route("api", "/api/", echo.addr)
    );
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let login = gateway.login("alice", "alice-password").await;
    assert_eq!(login.status, 200, "{}", login.text());
    let mut pair = Pair::from_reply(&login, "login");
    let mut retired = Vec::new();
    for n in 1..=3 {
        let reply = gateway.send(refresh_request(&pair.refresh)).await;
        assert_eq!(reply.status, 200, "refresh {n}: {}", reply.text());
        retired.push(pair.refresh.clone());
        pair = Pair::from_reply(&reply, "refresh");
    }
    let live = pair.refresh.clone();
    let escaped: String = live.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let cookie = format!("__Secure-portcullis-refresh={live}");
    let charset = {
        let mut request = refresh_request(&live);
        request.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        request
    };
    let via_cookie = Request::post("/auth/refresh")
        .header("host", "localhost")
        .header("origin", "https://localhost")
        .header("cookie", cookie.as_str())
        .body(Full::new(Bytes::new()))
        .expect("request");
    // (case, request, whether it presents this session's token and so must be limited)
    let mut cases: Vec<(String, Request<Full<Bytes>>, bool)> = vec![
        ("the live token".into(), refresh_request(&live), true),
        (
            "the live token, JSON unicode-escaped".into(),
            refresh_with(format!("{{\"refresh_token\":\"{escaped}\"}}"), &[]),
            true,
        ),
        (
            "the live token with spoofed client addresses".into(),
            refresh_with(
                json!({ "refresh_token": live }).to_string(),
                &[("x-forwarded-for", "198.51.100.5"), ("x-real-ip", "198.51.100.5")],
            ),
            true,
        ),
        (
            "the live token from a new User-Agent".into(),
            refresh_with(
                json!({ "refresh_token": live }).to_string(),
                &[("user-agent", "another-tab/1.0")],
            ),
            true,
        ),
        (
            "the token just retired (within the grace)".into(),
            refresh_request(retired.last().expect("retired")),
            true,
        ),
        (
            "the first retired token".into(),
            refresh_request(&retired[0]),
            true,
        ),
        ("the live token, charset media type".into(), charset, true),
        ("the live token in the refresh cookie".into(), via_cookie, true),
    ];
    // Other spellings of the same token are not the token: refused, never a rotation.
    for (name, token) in [
        ("padded", format!("{live}=")),
        (
            "in the standard alphabet",
            live.replace('-', "+").replace('_', "/"),
        ),
        ("with a trailing space", format!("{live} ")),
        ("upper-cased", live.to_ascii_uppercase()),
        ("truncated by one character", live[..live.len() - 1].to_string()),
    ] {
        cases.push((format!("the live token {name}"), refresh_request(&token), false));
    }
    let mut failures = Vec::new();
    for (name, request, must_be_limited) in cases {
        let reply = gateway.send(request).await;
        if reply.status == 200 {
            failures.push(format!("{name}: ROTATED"));
        } else if must_be_limited && let Some(problem) = limited_problem(&reply) {
            failures.push(format!("{name}: {problem}"));
        }
    }
    // A burst of the live token over one HTTP/2 connection and over parallel connections.
    let h2 = gateway.h2().await;
    let burst = (0..20).map(|_| send_on(&h2, refresh_request(&live)));
    let gateway_ref = &gateway;
    let live_ref = &live;
    let parallel = (0..10).map(|_| async move { gateway_ref.send(refresh_request(live_ref)).await });
    let (burst, parallel) = within(async {
        tokio::join!(
            futures_util::future::join_all(burst),
            futures_util::future::join_all(parallel)
        )
    })
    .await;
    for (i, reply) in burst.iter().chain(&parallel).enumerate() {
        if let Some(problem) = limited_problem(reply) {
            failures.push(format!("burst attempt {i}: {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "the refresh limit was evaded:\n{}",
        failures.join("\n")
    );
    // Nothing rotated: the live pair's access token still reaches the upstream.
    let reply = gateway.get_with_token("/api/x", &pair.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Control: another session of the same user is not limited.
    let other = Pair::from_reply(&gateway.login("alice", "alice-password").await, "login");
    let reply = gateway.send(refresh_request(&other.refresh)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}
