//! Prometheus metrics: the SPEC 8 families, recorded by the request path and served as
//! OpenMetrics text on the admin listener's `GET /metrics`.
//!
//! Every label value is chosen by the caller from a bounded set (route names from the config,
//! 3-digit statuses, fixed reason words): never a raw path, a user name or a token, so neither
//! cardinality nor sensitive values can leak in through a label.

use std::cell::RefCell;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::encode`]'s output. Counters are exposed OpenMetrics-style
/// (`# TYPE portcullis_requests counter` over `portcullis_requests_total` samples), which
/// Prometheus reads correctly only when the response is labelled as OpenMetrics.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the request-duration buckets, in seconds: from a cache-hot 500 µs proxy hop
/// to the 10 s beyond which only the route timeout (504) is of interest; `+Inf` is implicit.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

// Label values known in advance get a zero series at start, so dashboards and `rate()` see
// them before the first event instead of a missing series.
const AUTH_FAILURE_REASONS: [&str; 6] = [
    "missing",
    "invalid_token",
    "expired",
    "revoked",
    "insufficient_scope",
    "cross_site",
];
const LOGIN_RESULTS: [&str; 5] = [
    "ok",
    "invalid_credentials",
    "rate_limited",
    "overloaded",
    "unavailable",
];
const REFRESH_RESULTS: [&str; 5] = ["ok", "invalid", "reuse", "rate_limited", "unavailable"];
const RELOAD_RESULTS: [&str; 2] = ["ok", "rejected"];
const REVOCATION_KINDS: [&str; 2] = ["session", "user"];

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

/// The label set of the event families, e.g. `[("result", "ok".into())]`: one owned value per
/// label, its name fixed by the family.
type Labels<const N: usize> = [(&'static str, String); N];

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels<N> {
    pairs.map(|(name, value)| (name, value.to_owned()))
}

type RequestLabels = (RouteLabel, StatusLabel);

thread_local! {
    /// The crate looks series up only by `&LabelSet`, never by borrowed parts, so the request
    /// path refills this per-thread label set in place instead of building a new `String`.
    static REQUEST_LABELS: RefCell<RequestLabels> = RefCell::default();
}

/// The gateway's metrics; one per process, shared by every listener and kept across reloads.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    auth_failures: Family<Labels<1>, Counter>,
    logins: Family<Labels<1>, Counter>,
    oidc_logins: Family<Labels<2>, Counter>,
    refreshes: Family<Labels<1>, Counter>,
    upstream_errors: Family<Labels<2>, Counter>,
    revocations: Family<Labels<1>, Gauge>,
    config_reloads: Family<Labels<1>, Counter>,
    upstream_healthy: Family<Labels<2>, Gauge>,
    open_connections: Gauge,
    spans_dropped: Counter,
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("portcullis"),
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            auth_failures: Family::default(),
            logins: Family::default(),
            oidc_logins: Family::default(),
            refreshes: Family::default(),
            upstream_errors: Family::default(),
            revocations: Family::default(),
            config_reloads: Family::default(),
            upstream_healthy: Family::default(),
            open_connections: Gauge::default(),
            spans_dropped: Counter::default(),
        };
        metrics.seed();
        metrics.register()
    }

    /// Runs on every proxied request. Once the series exist it costs a thread-local label refill
    /// (no allocation), a hash and a shared read lock per family (writers only when a new series
    /// appears), one atomic add, and the route histogram's mutex held for a 14-bound scan. The
    /// first call for a (route, status) allocates its series.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let record = |labels: &RequestLabels| {
            self.duration.get_or_create(&labels.0).observe(seconds);
            self.requests.get_or_create(labels).inc();
        };
        let reused = REQUEST_LABELS.try_with(|cell| {
            let Ok(mut labels) = cell.try_borrow_mut() else {
                return false;
            };
            labels.0.route.clear();
            labels.0.route.push_str(route);
            labels.1.status = status;
            record(&labels);
            true
        });
        // Only during thread teardown: pay for one owned label set rather than drop the sample.
        if !matches!(reused, Ok(true)) {
            record(&(
                RouteLabel {
                    route: route.to_owned(),
                },
                StatusLabel { status },
            ));
        }
    }

    // The calls below run on error, login and admin paths, not on every proxied request: each
    // builds an owned label (one small `String` allocation), then a read lock and an atomic add.

    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&labels([("reason", reason)]))
            .inc();
    }

    pub fn login(&self, result: &str) {
        self.logins.get_or_create(&labels([("result", result)])).inc();
    }

    /// Logins through a provider (SPEC 10): `idp` is a configured provider name.
    pub fn oidc_login(&self, idp: &str, result: &str) {
        let labels = labels([("idp", idp), ("result", result)]);
        self.oidc_logins.get_or_create(&labels).inc();
    }

    pub fn refresh(&self, result: &str) {
        self.refreshes.get_or_create(&labels([("result", result)])).inc();
    }

    /// The dropped-spans counter, for the span exporter (SPEC 15).
    pub fn spans_dropped(&self) -> Counter {
        self.spans_dropped.clone()
    }

    pub fn upstream_error(&self, route: &str, kind: &str) {
        let labels = labels([("route", route), ("kind", kind)]);
        self.upstream_errors.get_or_create(&labels).inc();
    }

    /// The number of revocation entries held in memory, by `kind`, as last counted.
    pub fn set_revocations(&self, kind: &str, count: i64) {
        self.revocations
            .get_or_create(&labels([("kind", kind)]))
            .set(count);
    }

    pub fn config_reload(&self, result: &str) {
        self.config_reloads
            .get_or_create(&labels([("result", result)]))
            .inc();
    }

    /// `portcullis_upstream_healthy`, for building upstream pools (off the async workers too).
    pub fn upstream_health(&self) -> UpstreamHealth {
        UpstreamHealth(self.upstream_healthy.clone())
    }

    /// One atomic add; pair every call with [`Metrics::connection_closed`] (a drop guard).
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// OpenMetrics/Prometheus text for GET /metrics; serve it with [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail, and our label values are plain strings and numbers;
        // should the crate ever report an error, answer an empty but well-formed exposition.
        match encode(&mut text, &self.registry) {
            Ok(()) => text,
            Err(_) => String::from("# EOF\n"),
        }
    }

    fn seed(&self) {
        let counters = [
            (&self.auth_failures, "reason", &AUTH_FAILURE_REASONS[..]),
            (&self.logins, "result", &LOGIN_RESULTS[..]),
            (&self.refreshes, "result", &REFRESH_RESULTS[..]),
            (&self.config_reloads, "result", &RELOAD_RESULTS[..]),
        ];
        for (family, name, values) in counters {
            values
                .iter()
                .for_each(|value| drop(family.get_or_create(&labels([(name, value)]))));
        }
        for kind in REVOCATION_KINDS {
            drop(self.revocations.get_or_create(&labels([("kind", kind)])));
        }
    }

    /// Names are given without `_total`: the crate appends it to counters itself.
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "requests",
            "Requests answered, by route and status",
            self.requests.clone(),
        );
        let help = "Time from request head to response head, by route";
        r.register_with_unit("request_duration", help, Unit::Seconds, self.duration.clone());
        r.register(
            "auth_failures",
            "Authentication refusals",
            self.auth_failures.clone(),
        );
        r.register("logins", "Login attempts, by result", self.logins.clone());
        let help = "Logins through an OpenID Connect provider, by provider and result";
        r.register("oidc_logins", help, self.oidc_logins.clone());
        r.register(
            "refreshes",
            "Refresh rotations, by result",
            self.refreshes.clone(),
        );
        r.register(
            "upstream_errors",
            "Failed upstream exchanges",
            self.upstream_errors.clone(),
        );
        r.register(
            "revocations",
            "Revocation entries in memory",
            self.revocations.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads, by result",
            self.config_reloads.clone(),
        );
        let help = "Whether an upstream endpoint is in rotation (1) or out of it (0)";
        r.register("upstream_healthy", help, self.upstream_healthy.clone());
        r.register(
            "open_connections",
            "Open downstream connections",
            self.open_connections.clone(),
        );
        let help = "Spans not exported: the queue was full or the collector did not take them";
        r.register("trace_spans_dropped", help, self.spans_dropped.clone());
        self
    }
}

/// A handle on `portcullis_upstream_healthy{route,endpoint}`.
#[derive(Clone, Debug)]
pub struct UpstreamHealth(Family<Labels<2>, Gauge>);

impl UpstreamHealth {
    /// The 0/1 gauge of whether `route`'s `endpoint` is in rotation; the pool keeps the handle
    /// and sets it itself, so a health change costs one atomic store.
    pub fn gauge(&self, route: &str, endpoint: &str) -> Gauge {
        let labels = labels([("route", route), ("endpoint", endpoint)]);
        self.0.get_or_create(&labels).clone()
    }

    /// Drops the series of an endpoint that a reload took away.
    pub fn forget(&self, route: &str, endpoint: &str) {
        let labels = labels([("route", route), ("endpoint", endpoint)]);
        self.0.remove(&labels);
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that each of `lines` is a whole line of `text`.
    fn assert_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(text.lines().any(|l| l == *line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn requests_are_counted_by_route_and_status_and_timed_by_route() {
        let metrics = Metrics::new();
        metrics.request("api", 200, 0.003);
        metrics.request("api", 200, 0.2);
        metrics.request("api", 404, 0.0001);
        metrics.request("demo", 502, 12.0);
        assert_lines(
            &metrics.encode(),
            &[
                r#"portcullis_requests_total{route="api",status="200"} 2"#,
                r#"portcullis_requests_total{route="api",status="404"} 1"#,
                r#"portcullis_requests_total{route="demo",status="502"} 1"#,
                "# TYPE portcullis_request_duration_seconds histogram",
                r#"portcullis_request_duration_seconds_count{route="api"} 3"#,
                r#"portcullis_request_duration_seconds_bucket{le="0.0005",route="api"} 1"#,
                r#"portcullis_request_duration_seconds_bucket{le="0.005",route="api"} 2"#,
                r#"portcullis_request_duration_seconds_bucket{le="10.0",route="demo"} 0"#,
                r#"portcullis_request_duration_seconds_bucket{le="+Inf",route="demo"} 1"#,
            ],
        );
    }

    #[test]
    fn events_are_counted_by_their_label_and_known_labels_start_at_zero() {
        let metrics = Metrics::new();
        assert_lines(&metrics.encode(), &[r#"portcullis_logins_total{result="ok"} 0"#]);
        metrics.auth_failure("expired");
        metrics.login("ok");
        metrics.login("ok");
        metrics.refresh("reuse");
        metrics.upstream_error("api", "timeout");
        metrics.config_reload("rejected");
        assert_lines(
            &metrics.encode(),
            &[
                r#"portcullis_auth_failures_total{reason="expired"} 1"#,
                r#"portcullis_auth_failures_total{reason="missing"} 0"#,
                r#"portcullis_logins_total{result="ok"} 2"#,
                r#"portcullis_refreshes_total{result="reuse"} 1"#,
                r#"portcullis_upstream_errors_total{route="api",kind="timeout"} 1"#,
                r#"portcullis_config_reloads_total{result="rejected"} 1"#,
                r#"portcullis_config_reloads_total{result="ok"} 0"#,
            ],
        );
    }

    #[test]
    fn gauges_go_up_and_down() {
        let metrics = Metrics::new();
        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.set_revocations("session", 7);
        metrics.set_revocations("user", 3);
        metrics.set_revocations("session", 5);
        assert_lines(
            &metrics.encode(),
            &[
                "# TYPE portcullis_open_connections gauge",
                "portcullis_open_connections 1",
                r#"portcullis_revocations{kind="session"} 5"#,
                r#"portcullis_revocations{kind="user"} 3"#,
            ],
        );
        metrics.connection_closed();
        assert_lines(&metrics.encode(), &["portcullis_open_connections 0"]);
    }

    #[test]
    fn only_the_spec_metric_names_are_exposed() {
        let metrics = Metrics::new();
        metrics.request("api", 200, 0.01);
        metrics.upstream_error("api", "connect");
        let text = metrics.encode();
        assert!(text.ends_with("\n# EOF\n"));
        // SPEC 8, with the three series a histogram is exposed as.
        let expected = [
            "portcullis_requests_total",
            "portcullis_request_duration_seconds_bucket",
            "portcullis_request_duration_seconds_count",
            "portcullis_request_duration_seconds_sum",
            "portcullis_auth_failures_total",
            "portcullis_logins_total",
            "portcullis_refreshes_total",
            "portcullis_upstream_errors_total",
            "portcullis_revocations",
            "portcullis_config_reloads_total",
            "portcullis_open_connections",
            // SPEC 15: spans the exporter could not deliver.
            "portcullis_trace_spans_dropped_total",
        ];
        let samples = text.lines().filter(|line| !line.starts_with('#'));
        let names: Vec<&str> = samples.filter_map(|line| line.split(['{', ' ']).next()).collect();
        for name in &names {
            assert!(expected.contains(name), "unexpected {name}");
        }
        for name in &expected {
            assert!(names.contains(name), "{name} is not exposed:\n{text}");
        }
    }

    #[test]
    fn label_values_from_many_threads_land_in_one_series() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let metrics = metrics.clone();
                std::thread::spawn(move || (0..250).for_each(|_| metrics.request("api", 200, 0.001)))
            })
            .collect();
        for thread in threads {
            thread.join().expect("recording thread");
        }
        metrics.request("a-much-longer-route-name-than-before", 200, 0.001);
        metrics.request("api", 200, 0.001);
        assert_lines(
            &metrics.encode(),
            &[
                r#"portcullis_requests_total{route="api",status="200"} 1001"#,
                r#"portcullis_requests_total{route="a-much-longer-route-name-than-before",status="200"} 1"#,
            ],
        );
    }
}
