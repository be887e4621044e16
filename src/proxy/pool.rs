//! A route's upstream endpoints as the request path sees them (SPEC 12): which are in
//! rotation, how busy each is, and which one a request goes to. Outcomes of requests
//! (connect failures) and of health checks (`proxy::health`) take endpoints out of rotation
//! and bring them back; `proxy::dispatch` sends a request through the pool, with retries.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

use super::client::{TlsClient, tls_client};
use crate::config::{Balance, Endpoint, HealthCheckConfig, UpstreamConfig};
use crate::telemetry::metrics::UpstreamHealth;
use crate::tls::TlsError;

/// Without a health check, this many consecutive connect failures take an endpoint out...
const PASSIVE_UNHEALTHY_AFTER: u32 = 3;
/// ... for this long; then requests try it again, and one more failure takes it out again.
const PASSIVE_COOL_DOWN: Duration = Duration::from_secs(10);
/// `out_until` of an endpoint that only passing health checks bring back.
const UNTIL_CHECKS_PASS: u64 = u64::MAX;

/// One route's endpoints and the client that reaches them.
pub struct UpstreamPool {
    pub(super) route: String,
    pub(super) endpoints: Box<[EndpointState]>,
    balance: Balance,
    pub(super) retries: u32,
    /// Consecutive failures that take an endpoint out; `None`: never (a lone endpoint without
    /// a health check has nowhere else to send requests, and its 502s say more than a 503).
    eject_after: Option<u32>,
    pub(super) health_check: Option<HealthCheckConfig>,
    /// Round robin's position.
    cursor: AtomicUsize,
    /// The clock `out_until` counts in, in milliseconds since this instant.
    born: Instant,
    /// `None`: the shared plain-HTTP client.
    pub(super) tls: Option<TlsClient>,
}

pub(super) struct EndpointState {
    pub endpoint: Endpoint,
    /// `endpoint` as text, for logs and the metric label.
    pub label: String,
    in_flight: AtomicU32,
    /// Consecutive failed connects or health checks.
    failures: AtomicU32,
    /// Consecutive passed health checks while out of rotation.
    passes: AtomicU32,
    /// 0: in rotation; else the pool clock's millisecond from which requests may try it again
    /// (`UNTIL_CHECKS_PASS`: never by time).
    out_until: AtomicU64,
    healthy: Gauge,
}

impl UpstreamPool {
    /// The pool for `route`'s `config`; endpoints a `previous` pool of the route had keep
    /// whether they were in rotation.
    pub fn build(
        route: &str,
        config: &UpstreamConfig,
        health: &UpstreamHealth,
        previous: Option<&UpstreamPool>,
    ) -> Result<UpstreamPool, TlsError> {
        let tls = match config.uses_tls() {
            true => Some(tls_client(&config.tls)?),
            false => None,
        };
        let eject_after = match &config.health_check {
            Some(check) => Some(check.unhealthy_after),
            None if config.endpoints.len() > 1 => Some(PASSIVE_UNHEALTHY_AFTER),
            None => None,
        };
        let pool = UpstreamPool {
            route: route.to_string(),
            endpoints: config
                .endpoints
                .iter()
                .map(|e| EndpointState::new(route, e, health))
                .collect(),
            balance: config.balance,
            retries: config.retries,
            eject_after,
            health_check: config.health_check.clone(),
            cursor: AtomicUsize::new(0),
            born: Instant::now(),
            tls,
        };
        for (i, state) in pool.endpoints.iter().enumerate() {
            let was_out = previous
                .and_then(|p| p.endpoints.iter().find(|old| old.endpoint == state.endpoint))
                .is_some_and(|old| old.out_until.load(Relaxed) != 0);
            if was_out && eject_after.is_some() {
                pool.take_out(i, "it was out of rotation before the reload");
            }
        }
        Ok(pool)
    }

    /// The `(route, endpoint)` labels of this pool's health series.
    pub fn series(&self) -> impl Iterator<Item = (&str, &str)> {
        self.endpoints
            .iter()
            .map(|e| (self.route.as_str(), e.label.as_str()))
    }

    /// An endpoint in rotation that `tried` (a bit per endpoint) leaves out, or `None`.
    pub(super) fn pick(&self, tried: u64) -> Option<usize> {
        let mut now = None;
        let mut eligible = |i: usize| tried & (1 << i) == 0 && self.in_rotation(i, &mut now);
        let n = self.endpoints.len();
        if n == 1 {
            return eligible(0).then_some(0);
        }
        match self.balance {
            Balance::RoundRobin => first_from(self.cursor.fetch_add(1, Relaxed), n, &mut eligible),
            Balance::LeastRequest => {
                let a = first_from(fastrand::usize(..n), n, &mut eligible)?;
                let b = first_from(fastrand::usize(..n), n, |i| i != a && eligible(i));
                Some(match b {
                    Some(b) if self.in_flight(b) < self.in_flight(a) => b,
                    _ => a,
                })
            }
        }
    }

    fn in_rotation(&self, i: usize, now: &mut Option<u64>) -> bool {
        match self.endpoints[i].out_until.load(Relaxed) {
            0 => true,
            UNTIL_CHECKS_PASS => false,
            until => *now.get_or_insert_with(|| self.clock()) >= until,
        }
    }

    fn in_flight(&self, i: usize) -> u32 {
        self.endpoints[i].in_flight.load(Relaxed)
    }

    /// Counts a request to endpoint `i` as in flight until the guard drops, where the balance
    /// reads the count (two atomic writes to a line every worker shares, saved elsewhere).
    pub(super) fn busy(&self, i: usize) -> Option<Busy<'_>> {
        if self.balance != Balance::LeastRequest || self.endpoints.len() == 1 {
            return None;
        }
        let counter = &self.endpoints[i].in_flight;
        counter.fetch_add(1, Relaxed);
        Some(Busy(counter))
    }

    pub(super) fn connect_failed(&self, i: usize) {
        let failures = self.endpoints[i].failures.fetch_add(1, Relaxed) + 1;
        if self.eject_after.is_some_and(|limit| failures >= limit) {
            self.take_out(i, "consecutive connect failures");
        }
    }

    /// The endpoint answered (with any status): its connects work.
    pub(super) fn answered(&self, i: usize) {
        let state = &self.endpoints[i];
        // Read first: a write on every request would bounce the line between workers.
        if state.failures.load(Relaxed) != 0 {
            state.failures.store(0, Relaxed);
        }
        // Only a passive ejection's cool-down lets requests reach an endpoint that is out.
        if self.health_check.is_none() && state.out_until.load(Relaxed) != 0 {
            self.put_back(i);
        }
    }

    pub(super) fn checked(&self, i: usize, passed: bool) {
        let (state, check) = (&self.endpoints[i], self.health_check.as_ref());
        let Some(check) = check else { return };
        if passed {
            state.failures.store(0, Relaxed);
            let out = state.out_until.load(Relaxed) != 0;
            if out && state.passes.fetch_add(1, Relaxed) + 1 >= check.healthy_after {
                self.put_back(i);
            }
        } else {
            state.passes.store(0, Relaxed);
            if state.failures.fetch_add(1, Relaxed) + 1 >= check.unhealthy_after {
                self.take_out(i, "failed health checks");
            }
        }
    }

    fn take_out(&self, i: usize, why: &str) {
        let state = &self.endpoints[i];
        let until = match self.health_check {
            Some(_) => UNTIL_CHECKS_PASS,
            None => self.clock() + PASSIVE_COOL_DOWN.as_millis() as u64,
        };
        state.passes.store(0, Relaxed);
        if state.out_until.swap(until, Relaxed) == 0 {
            state.healthy.set(0);
            tracing::warn!(route = %self.route, endpoint = %state.label, why, "upstream endpoint out of rotation");
        }
    }

    fn put_back(&self, i: usize) {
        let state = &self.endpoints[i];
        if state.out_until.swap(0, Relaxed) != 0 {
            state.healthy.set(1);
            tracing::info!(route = %self.route, endpoint = %state.label, "upstream endpoint back in rotation");
        }
    }

    fn clock(&self) -> u64 {
        // Never 0, which means "in rotation".
        self.born.elapsed().as_millis() as u64 + 1
    }
}

impl EndpointState {
    fn new(route: &str, endpoint: &Endpoint, health: &UpstreamHealth) -> EndpointState {
        let label = endpoint.to_string();
        let healthy = health.gauge(route, &label);
        healthy.set(1);
        EndpointState {
            endpoint: endpoint.clone(),
            label,
            in_flight: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            out_until: AtomicU64::new(0),
            healthy,
        }
    }
}

/// The first index from `start` (wrapping) that `wanted` takes.
fn first_from(start: usize, n: usize, mut wanted: impl FnMut(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|&i| wanted(i))
}

/// A request in flight to one endpoint, for `least_request`.
pub(super) struct Busy<'a>(&'a AtomicU32);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
