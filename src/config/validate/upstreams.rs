//! Checks of a route's backends (SPEC 12): `upstream` or `upstreams`, `balance`, `retries`,
//! `[routes.upstream_tls]` and `[routes.health_check]`.

use std::ops::Range;

use rustls_pki_types::ServerName;
use toml::Spanned;

use super::Checker;
use crate::config::file::{HealthCheckFile, UpstreamTlsFile};
use crate::config::values::*;
use crate::config::*;

/// Each retry costs the client another wait, and a few endpoints are tried before that stops
/// helping: a bound keeps one request from turning into a storm.
const MAX_RETRIES: i64 = 5;
const MAX_THRESHOLD: i64 = 100;
/// A request remembers the endpoints it tried in one 64-bit word.
const MAX_ENDPOINTS: usize = 64;

/// The backend keys of one `[[routes]]` table, as the file gave them.
pub(super) struct UpstreamKeys {
    pub upstream: Option<Spanned<String>>,
    pub upstreams: Option<Spanned<Vec<Spanned<String>>>>,
    pub balance: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub tls: Option<Spanned<UpstreamTlsFile>>,
    pub health_check: Option<Spanned<HealthCheckFile>>,
}

impl Checker<'_> {
    /// `None` for a decision-only route (no `upstream` and no `upstreams`).
    pub(super) fn upstream(&mut self, keys: UpstreamKeys, route: &Range<usize>) -> Option<UpstreamConfig> {
        let UpstreamKeys {
            upstream,
            upstreams,
            balance,
            retries,
            tls,
            health_check,
        } = keys;
        let endpoints = match (upstream, upstreams) {
            (Some(_), Some(list)) => {
                let message = "give upstream (one endpoint) or upstreams (several), not both";
                self.error(list.span(), message);
                return None;
            }
            (Some(one), None) => self.each(std::slice::from_ref(&one), endpoint),
            (None, Some(list)) => self.endpoints(list),
            (None, None) => {
                self.decision_only(route, balance.is_some() || retries.is_some(), tls, health_check);
                return None;
            }
        };
        let balance = self.value(balance.as_ref(), "least_request", |b| match b {
            "least_request" => Ok(Balance::LeastRequest),
            "round_robin" => Ok(Balance::RoundRobin),
            other => Err(format!(
                "balance must be \"least_request\" or \"round_robin\", not {other:?}"
            )),
        });
        let retries = self.bounded(retries, 0, 0..=MAX_RETRIES, "retries");
        let uses_tls = endpoints.iter().any(|e| e.scheme == http::uri::Scheme::HTTPS);
        let tls = match tls {
            Some(tls) if !uses_tls => {
                let message = "[routes.upstream_tls] applies to https:// upstreams; this route has none";
                self.error(tls.span(), message);
                UpstreamTlsConfig::default()
            }
            Some(tls) => self.upstream_tls(tls),
            None => UpstreamTlsConfig::default(),
        };
        let health_check = health_check.map(|h| self.health_check(h));
        Some(UpstreamConfig {
            endpoints,
            balance,
            retries,
            tls,
            health_check,
        })
    }

    fn endpoints(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Vec<Endpoint> {
        if list.get_ref().is_empty() {
            self.error(
                list.span(),
                "upstreams = [] reaches nothing; omit it for a decision-only route",
            );
        }
        if list.get_ref().len() > MAX_ENDPOINTS {
            self.error(
                list.span(),
                format!("upstreams takes at most {MAX_ENDPOINTS} endpoints"),
            );
        }
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(list.get_ref().len());
        for given in list.get_ref() {
            match endpoint(given.get_ref()) {
                Ok(e) if endpoints.contains(&e) => {
                    self.error(given.span(), format!("upstreams lists {e} twice"));
                }
                Ok(e) => endpoints.push(e),
                Err(message) => self.error(given.span(), message),
            }
        }
        endpoints
    }

    /// A route without backends takes none of their settings.
    fn decision_only(
        &mut self,
        route: &Range<usize>,
        spreading: bool,
        tls: Option<Spanned<UpstreamTlsFile>>,
        health_check: Option<Spanned<HealthCheckFile>>,
    ) {
        let given = [
            spreading.then(|| route.clone()),
            tls.map(|t| t.span()),
            health_check.map(|h| h.span()),
        ];
        if let Some(span) = given.into_iter().flatten().next() {
            let message = "balance, retries, upstream_tls and health_check need upstream or upstreams \
                           (a route without them is decision-only)";
            self.error(span, message);
        }
    }

    fn upstream_tls(&mut self, tls: Spanned<UpstreamTlsFile>) -> UpstreamTlsConfig {
        let span = tls.span();
        let UpstreamTlsFile {
            ca_file,
            client_cert,
            client_key,
            server_name,
        } = tls.into_inner();
        let client_cert = match (client_cert, client_key) {
            (Some(cert), Some(key)) => {
                let (cert, key) = (self.existing_file(&cert), self.existing_file(&key));
                cert.zip(key).map(|(cert, key)| ClientCertificate { cert, key })
            }
            (None, None) => None,
            _ => {
                self.error(
                    span,
                    "client_cert and client_key go together (mutual TLS needs both)",
                );
                None
            }
        };
        UpstreamTlsConfig {
            ca_file: ca_file.and_then(|file| self.existing_file(&file)),
            client_cert,
            server_name: self.optional_text(server_name, tls_server_name),
        }
    }

    fn health_check(&mut self, check: Spanned<HealthCheckFile>) -> HealthCheckConfig {
        let span = check.span();
        let HealthCheckFile {
            path,
            interval,
            timeout,
            unhealthy_after,
            healthy_after,
        } = check.into_inner();
        let path = self.required(&path, "path", &span, "[routes.health_check]");
        let interval = self.value(interval.as_ref(), "5s", positive_duration);
        let timeout_given = timeout.as_ref().map(|t| t.span());
        let timeout = self.value(timeout.as_ref(), "1s", positive_duration);
        if timeout > interval {
            let message = "the health check's timeout must not be longer than its interval";
            self.error(timeout_given.unwrap_or(span.clone()), message);
        }
        HealthCheckConfig {
            path: self.value(path, "/", health_path),
            interval,
            timeout,
            unhealthy_after: self.bounded(unhealthy_after, 3, 1..=MAX_THRESHOLD, "unhealthy_after"),
            healthy_after: self.bounded(healthy_after, 2, 1..=MAX_THRESHOLD, "healthy_after"),
        }
    }

    /// An integer within `range`, or `default` when absent (and after reporting a bad one).
    fn bounded(
        &mut self,
        given: Option<Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<i64>,
        key: &str,
    ) -> u32 {
        match given {
            Some(n) if range.contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                let (low, high) = (range.start(), range.end());
                self.error(n.span(), format!("{key} must be between {low} and {high}"));
                default
            }
            None => default,
        }
    }
}

fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("{text:?} must be longer than zero")),
        d => Ok(d),
    }
}

fn health_path(text: &str) -> Result<String, String> {
    let valid =
        text.starts_with('/') && !text.starts_with("//") && text.bytes().all(|b| b.is_ascii_graphic());
    match valid && http::uri::PathAndQuery::try_from(text).is_ok() {
        true => Ok(text.to_string()),
        false => Err(format!(
            "health check path {text:?} must be a path like \"/healthz\""
        )),
    }
}

/// The name a backend's certificate is verified against: a DNS name or an IP address.
fn tls_server_name(text: &str) -> Result<String, String> {
    match ServerName::try_from(text) {
        Ok(_) => Ok(text.to_string()),
        Err(_) => Err(format!(
            "server_name {text:?} must be a DNS name or an IP address"
        )),
    }
}
