//! Hot reload (SPEC 1, 3, 8): `POST /admin/reload`, `SIGHUP` and the file watcher swap in a
//! new runtime without dropping connections or failing requests; a bad edit is rejected with
//! its `file:line:col` and the running config stays; new handshakes get a replaced
//! certificate; settings that only a restart applies are reported.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::client::conn::http1;
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use support::binary::{Binary, free_port};
use support::client::{self, Connection};
use support::upstreams::{Upstream, ok_response};
use support::{
    Client, DEADLINE, GENEROUS_LIMITS, Gateway, Reply, Setup, config, eventually, public_route, test_users,
    user_entry, within, write_atomically,
};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

// === upstreams that say who they are ===

/// An upstream that answers every request with 200 and its own name (A, B or C) as the whole
/// body, so each response tells which upstream the gateway chose.
async fn named(name: &'static str) -> Upstream {
    Upstream::raw(move |_| ok_response(name), false).await
}

// === config edits ===

/// The path every test requests; the `svc` route sends it to one of the named upstreams.
const SVC: &str = "/svc/x";

/// The route the tests edit: `/svc/` to `upstream`, public, with a valid timeout.
fn svc_route(upstream: SocketAddr) -> String {
    config::route("svc", "/svc/", upstream, "auth = \"public\"\ntimeout = \"5s\"")
}

/// How a `file:line:col: ` message about `path` starts when it points at the first
/// `needle` in `text`.
fn error_prefix(path: &Path, text: &str, needle: &str) -> String {
    format!("{}:{}: ", path.display(), config::position(text, needle))
}

/// Replaces exactly one occurrence of `from`, failing if the text does not have it once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} is not once in:\n{text}");
    text.replacen(from, to, 1)
}

/// Mistakes an operator makes in the `svc` route: what replaces its timeout line, what the
/// error must point at (a bad duration: the value; an unknown key: the key), and a word its
/// message must contain.
const BAD_EDITS: [(&str, &str, &str); 2] = [
    ("timeout = \"forever\"\n", "\"forever\"", "forever"),
    ("timeout = \"5s\"\nretry = 3\n", "retry = 3", "retry"),
];

/// A config file a test rewrites: the text it started with, whose `svc` route pointed at
/// `first`.
struct ConfigFile {
    path: PathBuf,
    original: String,
    first: SocketAddr,
}

impl ConfigFile {
    fn of(gateway: &Gateway, first: SocketAddr) -> ConfigFile {
        let path = gateway.config_path();
        let original = std::fs::read_to_string(&path).expect("read gateway.toml");
        ConfigFile {
            path,
            original,
            first,
        }
    }

    /// The original text with the `svc` route pointed at `upstream`.
    fn pointing_at(&self, upstream: SocketAddr) -> String {
        let line = |addr| format!("upstream = \"http://{addr}\"");
        replace_once(&self.original, &line(self.first), &line(upstream))
    }

    fn write(&self, text: &str) {
        write_atomically(&self.path, text);
    }

    /// Writes `text` with mistake `k` of `BAD_EDITS`; how the error's line must start, and
    /// the word it must name.
    fn write_bad(&self, text: &str, k: usize) -> (String, &'static str) {
        let (line, at, word) = BAD_EDITS[k];
        let bad = replace_once(text, "timeout = \"5s\"\n", line);
        self.write(&bad);
        (error_prefix(&self.path, &bad, at), word)
    }
}

// === the admin listener ===

async fn reload(gateway: &Client) -> Reply {
    gateway.admin(Method::POST, "/admin/reload").await
}

/// Asserts a `200 {"status":"reloaded"}` and returns its `restart_needed`.
fn assert_reloaded(reply: &Reply) -> Vec<String> {
    let body = reply.json();
    assert_eq!(reply.status, 200, "the reload was not accepted: {body}");
    assert_eq!(body["status"], "reloaded", "{body}");
    body["restart_needed"]
        .as_array()
        .unwrap_or_else(|| panic!("no restart_needed array: {body}"))
        .iter()
        .map(|setting| setting.as_str().expect("setting name").to_string())
        .collect()
}

/// Asserts a `422 config_rejected` whose message has a line that starts with `prefix`
/// (`file:line:col: `) and names `word`.
fn assert_rejected_at(reply: &Reply, prefix: &str, word: &str) {
    let body = reply.json();
    assert_eq!(reply.status, 422, "the bad edit was not rejected: {body}");
    assert_eq!(body["error"], "config_rejected", "{body}");
    let lines = body["message"]
        .as_array()
        .unwrap_or_else(|| panic!("message is not an array of lines: {body}"));
    let found = lines
        .iter()
        .filter_map(Value::as_str)
        .any(|line| line.starts_with(prefix) && line.contains(word));
    assert!(
        found,
        "no message line starts with {prefix:?} and names {word:?}: {body}"
    );
}

// === TLS clients ===

type Sender = http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 client config that trusts exactly `certs`.
fn trusting(certs: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    client::config(certs, rustls::DEFAULT_VERSIONS, &[b"http/1.1"])
}

/// The certificate the gateway presented on `stream`.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let certs = stream.get_ref().1.peer_certificates().expect("peer certificates");
    certs[0].clone().into_owned()
}

/// The name of the upstream that answered `GET /svc/x` on the open connection `sender`.
async fn served_on(sender: &mut Sender) -> String {
    let reply = client::h1_get(sender, SVC).await.expect("response");
    assert_eq!(reply.status, 200, "GET {SVC} failed: {}", reply.text());
    reply.text()
}

/// `served_on` a new connection.
async fn served_by(gateway: &Client) -> String {
    served_on(&mut gateway.h1().await).await
}

/// Polls `served_by` until the upstream `name` answers; fails after `limit`.
async fn wait_until_served_by(gateway: &Gateway, name: &str, limit: Duration) {
    eventually(limit, async || match served_by(gateway).await {
        answered if answered == name => Ok(()),
        answered => Err(format!(
            "still served by {answered} {limit:?} after the edit, not by {name}"
        )),
    })
    .await
}

// === steady load during many rewrites ===

const CLIENTS: usize = 8;
const REWRITES: usize = 20;
/// The load stops after the rewrites, and in any case after this long.
const LOAD_LIMIT: Duration = Duration::from_secs(10);
/// Each config state is held at least this long, so the watcher sees several of them.
const PHASE: Duration = Duration::from_millis(150);

/// One request of a load client: when it was sent and when its answer arrived (the gateway
/// chose a config somewhere in between), and the upstream that answered or what went wrong.
struct Sample {
    sent: Instant,
    answered: Instant,
    outcome: Result<String, String>,
}

/// A load client after it stopped: its samples, and its connection for a last check.
type LoadClient = (Vec<Sample>, Sender, Connection);

/// Sends `GET /svc/x` on one keep-alive connection, one after the other, until `stop` or
/// `until`, or until a request fails (a failure fails the test).
async fn run_load_client(
    (mut sender, connection): (Sender, Connection),
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicUsize>,
    until: Instant,
) -> LoadClient {
    let mut samples = Vec::new();
    let mut failed = false;
    while !failed && !stop.load(Ordering::SeqCst) && Instant::now() < until {
        let sent = Instant::now();
        let outcome = match client::h1_get(&mut sender, SVC).await {
            Ok(reply) if reply.status == 200 => Ok(reply.text()),
            Ok(reply) => Err(format!("{}: {}", reply.status, reply.text())),
            Err(e) => Err(format!("connection lost: {e}")),
        };
        failed = outcome.is_err();
        samples.push(Sample {
            sent,
            answered: Instant::now(),
            outcome,
        });
        progress.fetch_add(1, Ordering::SeqCst);
    }
    (samples, sender, connection)
}

/// Waits until every load client has completed `more` further requests (the last of them
/// sent after this call), or one of them has stopped.
async fn wait_for_progress(progress: &[Arc<AtomicUsize>], clients: &[JoinHandle<LoadClient>], more: usize) {
    let start: Vec<usize> = progress.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    eventually(DEADLINE, async || {
        let behind: Vec<usize> = (0..progress.len())
            .filter(|&k| progress[k].load(Ordering::SeqCst) < start[k] + more)
            .collect();
        match behind.is_empty() || clients.iter().any(JoinHandle::is_finished) {
            true => Ok(()),
            false => Err(format!(
                "load clients {behind:?} made no progress for {DEADLINE:?}"
            )),
        }
    })
    .await
}

/// A good edit: written at `written`, its reload answered at `reloaded`.
struct Swap {
    written: Instant,
    reloaded: Instant,
    target: &'static str,
}

/// The requests answered by an upstream the config in force did not name, and for each swap
/// how many requests only its target could answer (so the check had something to check).
///
/// A request sent after swap `j` was written may be answered by: after the swap's reload
/// answered, only its target; between writing the file and that answer, the old or the new
/// target (the watcher may get there first). Bad edits change nothing. The gateway picks the
/// config when the request reaches it, which can be after `sent`: a swap written before the
/// answer came may already have been in force.
fn misrouted(samples: &[&Sample], swaps: &[Swap]) -> (Vec<String>, Vec<usize>) {
    let mut wrong = Vec::new();
    let mut strict = vec![0; swaps.len()];
    for sample in samples {
        let Ok(answered) = &sample.outcome else {
            continue;
        };
        let j = swaps.iter().rposition(|s| s.written <= sample.sent).unwrap_or(0);
        let mut allowed = vec![swaps[j].target];
        if j > 0 && sample.sent < swaps[j].reloaded {
            allowed.push(swaps[j - 1].target);
        }
        let written_meanwhile = swaps[j + 1..].iter().take_while(|s| s.written <= sample.answered);
        allowed.extend(written_meanwhile.map(|s| s.target));
        if allowed.len() == 1 {
            strict[j] += 1;
        }
        if !allowed.contains(&answered.as_str()) {
            wrong.push(format!(
                "a request sent {:?} after swap #{j} (to {}) and answered {:?} later came from \
                 {answered}, not one of {allowed:?}",
                sample.sent - swaps[j].written,
                swaps[j].target,
                sample.answered - sample.sent,
            ));
        }
    }
    (wrong, strict)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_https_load_survives_twenty_alternating_good_and_bad_rewrites_without_a_failure() {
    let a = named("A").await;
    let b = named("B").await;
    let c = named("C").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let file = ConfigFile::of(&gateway, a.addr);
    let started = Instant::now();
    let until = started + LOAD_LIMIT;

    let stop = Arc::new(AtomicBool::new(false));
    let mut progress = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let connection = client::h1(gateway.tls_connect(&[b"http/1.1"]).await).await;
        let counter = Arc::new(AtomicUsize::new(0));
        progress.push(counter.clone());
        let load = run_load_client(connection, stop.clone(), counter, until);
        clients.push(tokio::spawn(load));
    }
    wait_for_progress(&progress, &clients, 2).await;

    let mut swaps = vec![Swap {
        written: started,
        reloaded: started,
        target: "A",
    }];
    // Three upstreams in turn, so the config before a swap and the edit after it never name
    // the same one: a request served by a stale config cannot pass for one that met the next
    // edit on its way.
    let upstreams = [("A", &a), ("B", &b), ("C", &c)];
    for i in 0..REWRITES {
        let phase = Instant::now();
        let (name, next) = upstreams[swaps.len() % upstreams.len()];
        if i % 2 == 0 {
            // A good edit: the route now goes to the next upstream.
            let written = Instant::now();
            file.write(&file.pointing_at(next.addr));
            let restart = assert_reloaded(&reload(&gateway).await);
            assert!(
                restart.is_empty(),
                "edit #{i}: a route edit needs no restart: {restart:?}"
            );
            swaps.push(Swap {
                written,
                reloaded: Instant::now(),
                target: name,
            });
        } else {
            // A bad edit that would also send the route to the next upstream.
            let (prefix, word) = file.write_bad(&file.pointing_at(next.addr), i / 2 % 2);
            assert_rejected_at(&reload(&gateway).await, &prefix, word);
        }
        wait_for_progress(&progress, &clients, 2).await;
        tokio::time::sleep(PHASE.saturating_sub(phase.elapsed())).await;
    }
    let rewrites_done = Instant::now();
    stop.store(true, Ordering::SeqCst);

    let mut finished = Vec::new();
    for client in clients {
        finished.push(within(client).await.expect("load client task"));
    }
    assert!(
        rewrites_done < until,
        "the rewrites took {:?}, longer than the load ran",
        rewrites_done - started
    );

    let samples: Vec<&Sample> = finished.iter().flat_map(|(samples, _, _)| samples).collect();
    let failures: Vec<&String> = samples.iter().filter_map(|s| s.outcome.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the rewrites, e.g. {:?}",
        failures.len(),
        samples.len(),
        &failures[..failures.len().min(5)]
    );
    for (k, (samples, _, _)) in finished.iter().enumerate() {
        assert!(
            samples.len() >= 2 * REWRITES,
            "client {k} sent only {} requests",
            samples.len()
        );
    }
    let served: Vec<usize> = upstreams.iter().map(|(_, u)| u.counts.requests()).collect();
    assert!(
        served.iter().all(|&n| n > 0),
        "A, B and C got {served:?} requests: the good edits did not switch the route"
    );
    let (wrong, strict) = misrouted(&samples, &swaps);
    assert!(
        wrong.is_empty(),
        "{} requests went to an upstream the config in force did not name, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // Each client sent a request after every reload answered and had its answer before the
    // next edit (`wait_for_progress`): those only the swap's own target may answer.
    assert!(
        strict.iter().all(|&n| n >= CLIENTS),
        "requests checked against one upstream only, per swap: {strict:?}"
    );

    // Every client's one connection is still open, and now serves the last good edit.
    let last = swaps.last().expect("swaps").target;
    for (k, (_, mut sender, connection)) in finished.into_iter().enumerate() {
        assert!(!connection.is_finished(), "client {k}'s connection was closed");
        let answered = served_on(&mut sender).await;
        assert_eq!(answered, last, "client {k}, after the rewrites");
    }
    assert_eq!(served_by(&gateway).await, last, "a new connection");
}

// === bad edits ===

#[tokio::test]
async fn a_rejected_edit_keeps_the_old_routes_and_names_the_line_and_column_of_the_mistake() {
    let a = named("A").await;
    let b = named("B").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let file = ConfigFile::of(&gateway, a.addr);
    assert_eq!(served_by(&gateway).await, "A");

    for k in 0..BAD_EDITS.len() {
        // The edit would also move the route to B: none of it may take effect.
        let (prefix, word) = file.write_bad(&file.pointing_at(b.addr), k);
        assert_rejected_at(&reload(&gateway).await, &prefix, word);
        assert_eq!(
            served_by(&gateway).await,
            "A",
            "{word}: after the rejected reload"
        );
    }
    // The watcher sees the same bad file and rejects it as well.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    for _ in 0..3 {
        assert_eq!(
            served_by(&gateway).await,
            "A",
            "after the watcher saw the bad file"
        );
    }
    assert_eq!(
        b.counts.requests(),
        0,
        "a request reached the upstream of a rejected edit"
    );

    // Fixing the file is then enough.
    file.write(&file.pointing_at(b.addr));
    assert_reloaded(&reload(&gateway).await);
    assert_eq!(served_by(&gateway).await, "B");
}

#[tokio::test]
async fn a_request_in_flight_during_a_reload_finishes_on_the_upstream_it_started_with() {
    let a = Upstream::delayed_echo(Duration::from_millis(800)).await;
    let b = named("B").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let file = ConfigFile::of(&gateway, a.addr);
    let (mut sender, connection) = client::h1(gateway.tls_connect(&[b"http/1.1"]).await).await;
    let in_flight = tokio::spawn(async move {
        let reply = client::h1_get(&mut sender, SVC).await;
        (reply, sender)
    });
    let deadline = Instant::now() + DEADLINE;
    while a.counts.requests() == 0 {
        assert!(Instant::now() < deadline, "the request never reached A");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    file.write(&file.pointing_at(b.addr));
    assert_reloaded(&reload(&gateway).await);
    assert!(!in_flight.is_finished(), "A answered before the reload was done");

    let (reply, mut sender) = within(in_flight).await.expect("task");
    let reply = reply.expect("the in-flight request");
    assert_eq!(reply.status, 200, "the in-flight request: {}", reply.text());
    assert_eq!(
        reply.upstream_uri(),
        SVC,
        "the in-flight request, answered by A's echo"
    );
    // The same connection goes on, with the new routes.
    assert_eq!(served_on(&mut sender).await, "B");
    assert!(!connection.is_finished());
    assert_eq!(served_by(&gateway).await, "B");
}

// === certificates ===

/// Generates a new self-signed certificate for localhost and saves it over the gateway's,
/// key first, each file replaced atomically. Returns the new certificate.
fn replace_certificate(dir: &Path) -> CertificateDer<'static> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    write_atomically(
        &dir.join("certs/gateway.key"),
        generated.signing_key.serialize_pem().as_bytes(),
    );
    write_atomically(&dir.join("certs/gateway.crt"), generated.cert.pem().as_bytes());
    generated.cert.der().clone()
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_while_an_open_one_keeps_working() {
    let a = named("A").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let old = client::gateway_cert(gateway.dir.path());

    // A connection opened before the swap, used once.
    let before = within(client::connect(
        gateway.addr,
        &trusting(std::slice::from_ref(&old)),
    ))
    .await
    .expect("handshake before the swap");
    assert_eq!(presented(&before), old);
    let (mut kept, kept_connection) = client::h1(before).await;
    assert_eq!(served_on(&mut kept).await, "A");

    let new = replace_certificate(gateway.dir.path());
    assert_ne!(new, old);
    let restart = assert_reloaded(&reload(&gateway).await);
    assert!(
        restart.is_empty(),
        "a certificate swap needs no restart: {restart:?}"
    );

    let both = trusting(&[old.clone(), new.clone()]);
    let after = within(client::connect(gateway.addr, &both))
        .await
        .expect("handshake after the swap");
    assert!(
        presented(&after) == new,
        "a connection opened after the reload was given the old certificate"
    );
    assert_eq!(served_on(&mut client::h1(after).await.0).await, "A");
    let refused = within(client::connect(gateway.addr, &trusting(&[old]))).await;
    assert!(
        refused.is_err_and(|e| e.starts_with("handshake")),
        "a client that trusts only the old certificate still completed a handshake"
    );

    // The connection from before the swap goes on.
    for n in 0..3 {
        let answered = served_on(&mut kept).await;
        assert_eq!(
            answered, "A",
            "request {n} on the connection opened before the swap"
        );
    }
    assert!(!kept_connection.is_finished());
}

#[tokio::test]
async fn the_file_watcher_alone_serves_a_replaced_certificate_to_new_connections() {
    let a = named("A").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let_the_watcher_start(&gateway).await;
    let old = client::gateway_cert(gateway.dir.path());
    let new = replace_certificate(gateway.dir.path());
    let both = trusting(&[old, new.clone()]);
    let started = Instant::now();
    loop {
        let stream = within(client::connect(gateway.addr, &both))
            .await
            .expect("handshake");
        if presented(&stream) == new {
            assert_eq!(served_on(&mut client::h1(stream).await.0).await, "A");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "new connections still get the old certificate 5 s after it was replaced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// === the file watcher ===

/// Serves one request and gives the gateway's background tasks a moment: the watcher takes
/// its first look at the files when it first runs, and an edit before that look goes unseen.
async fn let_the_watcher_start(gateway: &Gateway) {
    assert_eq!(served_by(gateway).await, "A");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn the_file_watcher_alone_applies_a_good_edit_within_seconds() {
    let a = named("A").await;
    let b = named("B").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let file = ConfigFile::of(&gateway, a.addr);
    let_the_watcher_start(&gateway).await;

    file.write(&file.pointing_at(b.addr));
    wait_until_served_by(&gateway, "B", Duration::from_secs(5)).await;
    let a_before = a.counts.requests();
    for _ in 0..5 {
        assert_eq!(served_by(&gateway).await, "B");
    }
    assert_eq!(
        a.counts.requests(),
        a_before,
        "requests went back to A after the watcher's reload"
    );
}

#[tokio::test]
async fn an_edit_saved_right_after_start_is_still_applied_by_the_file_watcher() {
    let a = named("A").await;
    let b = named("B").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    // Saved before this (single-threaded) test yields: the gateway runs, with routes to A.
    let file = ConfigFile::of(&gateway, a.addr);
    file.write(&file.pointing_at(b.addr));
    wait_until_served_by(&gateway, "B", Duration::from_secs(5)).await;
}

/// `text` with `count` more public routes after it (to an address nothing serves): a config
/// that takes the gateway a second or more to parse and validate.
fn with_filler_routes(text: &str, count: usize) -> String {
    let nowhere = SocketAddr::from(([127, 0, 0, 1], 9));
    let filler = (0..count).map(|i| public_route(&format!("filler{i}"), &format!("/filler{i}/"), nowhere));
    format!("{text}\n{}", filler.collect::<String>())
}

/// Upstreams A, B and C, a gateway on A, and an edit to B that is slow to validate: the
/// watcher picks it up within 1.3 s and is then busy with it for a second or more.
async fn watcher_busy_with_a_slow_edit_to_b() -> (Gateway, ConfigFile, [Upstream; 3]) {
    let upstreams = [named("A").await, named("B").await, named("C").await];
    let gateway = Gateway::start(Setup::routes(svc_route(upstreams[0].addr))).await;
    let file = ConfigFile::of(&gateway, upstreams[0].addr);
    let_the_watcher_start(&gateway).await;
    file.write(&with_filler_routes(&file.pointing_at(upstreams[1].addr), 15_000));
    tokio::time::sleep(Duration::from_millis(1700)).await;
    (gateway, file, upstreams)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_reload_of_an_older_edit_does_not_overwrite_a_newer_admin_reload() {
    let (gateway, file, [_a, _b, c]) = watcher_busy_with_a_slow_edit_to_b().await;
    // A newer edit to C, reloaded through the admin API while the watcher is still busy.
    file.write(&file.pointing_at(c.addr));
    assert_reloaded(&reload(&gateway).await);

    // The file and the answer say C: whatever the watcher finishes later must not undo it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let answered = served_by(&gateway).await;
        assert_eq!(
            answered,
            "C",
            "{:?} after the admin reload of the newer edit, an older edit is in force",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_saved_while_the_watcher_builds_an_older_one_is_applied_after_it() {
    let (gateway, file, [_a, _b, c]) = watcher_busy_with_a_slow_edit_to_b().await;
    // The edit to C lands while the watcher is busy, and nothing but the watcher may apply it.
    file.write(&file.pointing_at(c.addr));
    wait_until_served_by(&gateway, "C", Duration::from_secs(15)).await;
}

// === settings that need a restart ===

#[tokio::test]
async fn a_changed_admin_listen_is_reported_as_needing_a_restart_and_the_old_listener_stays() {
    let a = named("A").await;
    let b = named("B").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let file = ConfigFile::of(&gateway, a.addr);
    let text = replace_once(
        &file.pointing_at(b.addr),
        "admin_listen = \"127.0.0.1:0\"",
        &format!("admin_listen = \"127.0.0.1:{}\"", free_port()),
    );
    file.write(&text);

    let restart = assert_reloaded(&reload(&gateway).await);
    assert_eq!(restart, ["server.admin_listen"]);
    assert_eq!(gateway.healthz().await, 200, "the old admin listener");
    // The rest of the edit took effect.
    assert_eq!(served_by(&gateway).await, "B");
    // Still reported on the next reload: the running listener is still the old one.
    let restart = assert_reloaded(&reload(&gateway).await);
    assert_eq!(restart, ["server.admin_listen"], "on a second reload");
}

#[tokio::test]
async fn a_changed_log_setting_is_reported_as_needing_a_restart() {
    let a = named("A").await;
    let gateway = Gateway::start(Setup::routes(svc_route(a.addr))).await;
    let file = ConfigFile::of(&gateway, a.addr);
    file.write(&format!(
        "{}\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
        file.original
    ));
    let restart = assert_reloaded(&reload(&gateway).await);
    assert!(
        restart.iter().any(|setting| setting.starts_with("log")),
        "[log] only takes effect at start, yet the reload reported {restart:?}"
    );
}

// === users.toml ===

async fn login_status(gateway: &Gateway, name: &str) -> StatusCode {
    gateway.login(name, &format!("{name}-password")).await.status
}

#[tokio::test]
async fn a_user_added_to_users_toml_can_log_in_after_a_reload_without_a_restart() {
    let a = named("A").await;
    let gateway = Gateway::start(Setup::routes(format!("{GENEROUS_LIMITS}{}", svc_route(a.addr)))).await;
    let users = gateway.dir.path().join("users.toml");
    assert_eq!(login_status(&gateway, "dave").await, 401, "dave before the edit");

    let text = format!("{}{}", test_users(), user_entry("dave", "user", ""));
    write_atomically(&users, &text);
    assert_reloaded(&reload(&gateway).await);
    assert_eq!(login_status(&gateway, "dave").await, 200, "dave after the reload");
    assert_eq!(
        login_status(&gateway, "alice").await,
        200,
        "alice after the reload"
    );
}

#[tokio::test]
async fn a_bad_users_toml_edit_is_rejected_with_its_position_and_the_old_users_stay() {
    let a = named("A").await;
    let gateway = Gateway::start(Setup::routes(format!("{GENEROUS_LIMITS}{}", svc_route(a.addr)))).await;
    let users = gateway.dir.path().join("users.toml");
    let text = format!(
        "{}{}nickname = \"e\"\n",
        test_users(),
        user_entry("erin", "user", "")
    );
    write_atomically(&users, &text);
    let prefix = error_prefix(&users, &text, "nickname");
    assert_rejected_at(&reload(&gateway).await, &prefix, "nickname");
    assert_eq!(
        login_status(&gateway, "alice").await,
        200,
        "alice after the rejected edit"
    );
    assert_eq!(
        login_status(&gateway, "erin").await,
        401,
        "erin of the rejected edit"
    );
    assert_eq!(served_by(&gateway).await, "A");
}

#[tokio::test]
async fn edits_to_a_users_file_named_by_a_reload_still_take_effect_without_a_restart() {
    let a = named("A").await;
    let rest = format!(
        "{GENEROUS_LIMITS}[users]\nfile = \"users.toml\"\n\n{}",
        svc_route(a.addr)
    );
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let file = ConfigFile::of(&gateway, a.addr);
    let second = gateway.dir.path().join("users2.toml");
    write_atomically(
        &second,
        format!("{}{}", test_users(), user_entry("dave", "user", "")).as_bytes(),
    );
    file.write(&replace_once(
        &file.original,
        "file = \"users.toml\"",
        "file = \"users2.toml\"",
    ));
    assert_reloaded(&reload(&gateway).await);
    assert_eq!(login_status(&gateway, "dave").await, 200, "dave from users2.toml");

    // Let the config watcher handle the gateway.toml edit first, so it cannot be what
    // picks up the next one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = format!(
        "{}{}{}",
        test_users(),
        user_entry("dave", "user", ""),
        user_entry("erin", "user", "")
    );
    write_atomically(&second, &text);
    let started = Instant::now();
    while login_status(&gateway, "erin").await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "erin, added to users2.toml, still cannot log in 5 s later"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// === the real binary: SIGHUP ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_rejects_a_bad_edit_on_sighup_with_its_position_and_applies_a_good_one() {
    let a = named("A").await;
    let b = named("B").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let written = config::for_binary(dir.path(), "shutdown_grace = \"5s\"", &svc_route(a.addr));
    let file = ConfigFile {
        path: written.path,
        original: written.text,
        first: a.addr,
    };

    let mut child = Binary::start(dir.path(), written.admin).await;
    let client = Client::new(written.public, written.admin, dir.path());
    assert_eq!(served_by(&client).await, "A");

    // A bad edit (that would also move the route to B), then SIGHUP.
    let (prefix, word) = file.write_bad(&file.pointing_at(b.addr), 0);
    child.signal("HUP");
    let wanted = |line: &str| line.contains(&prefix) && line.contains(word);
    child
        .wait_for_line(&format!("containing {prefix:?}"), wanted)
        .await;
    child
        .wait_for_line("with the config_rejected audit event of the signal", |line| {
            line.contains("config_rejected") && line.contains("signal")
        })
        .await;
    for _ in 0..3 {
        assert_eq!(
            served_by(&client).await,
            "A",
            "after the rejected edit:\n{}",
            child.log()
        );
    }
    assert_eq!(b.counts.requests(), 0);

    // A good edit, then SIGHUP.
    file.write(&file.pointing_at(b.addr));
    child.signal("HUP");
    child
        .wait_for_line("with the config_reloaded audit event of the signal", |line| {
            line.contains("config_reloaded") && line.contains("signal")
        })
        .await;
    assert_eq!(
        served_by(&client).await,
        "B",
        "after the good edit and SIGHUP:\n{}",
        child.log()
    );
    child.assert_running();
}
