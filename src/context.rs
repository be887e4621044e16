//! One request's context: what the pipeline's phases learn as they run, and what the answer
//! and the access log need at the end, also after a failure. `gateway::handle` owns it; each
//! phase (and each gateway endpoint) takes it instead of a row of loose parameters.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::uri::Authority;
use http::{HeaderValue, Method, Request};

use crate::auth::{Identity, Verifiers};
use crate::proxy::headers;
use crate::runtime::{Runtime, Shared};
use crate::server::ConnectionInfo;
use crate::telemetry::export::{Kind, SpanRecord};
use crate::telemetry::trace::TraceContext;

pub(crate) struct RequestCtx<'r> {
    pub shared: &'r Shared,
    /// The runtime the request started with; a reload meanwhile does not change it.
    pub runtime: &'r Runtime,
    pub connection: &'r ConnectionInfo,
    pub started: Instant,
    pub method: Method,
    pub request_id: HeaderValue,
    /// Its place in a W3C trace: continued from the client's `traceparent`, or begun here.
    pub trace: TraceContext,
    /// When the request began on the wall clock, if its spans are exported (SPEC 15).
    pub span_started: Option<SystemTime>,
    /// SPEC 6's client address, computed once: rate limits, sessions and the log all use it.
    pub client: IpAddr,
    /// The route's name for metrics and the log: `-` before routing, `gateway` for `/auth/*`.
    pub route: &'r str,
    /// The verified caller, if any.
    pub caller: Option<Arc<Identity>>,
    /// The credential was the access cookie, which browsers attach to cross-site requests.
    pub via_cookie: bool,
    /// An allowed origin calling a gateway endpoint: the answer says it may read it.
    pub cors: Option<HeaderValue>,
    /// A browser navigation to a gateway page: a failure is answered as an HTML page.
    pub html_errors: bool,
    /// From a transparent refresh: set on the answer even when the upstream failed, so a
    /// browser never keeps a refresh token that was retired.
    pub set_cookies: Vec<HeaderValue>,
    /// Whether a `Set-Cookie` on the answer reaches the browser: not on a forward-auth
    /// answer, which the proxy does not pass on, so no transparent refresh may rotate there
    /// (the browser would keep a retired refresh token and look like a thief).
    pub cookies_reach_browser: bool,
}

impl<'r> RequestCtx<'r> {
    pub(crate) fn new<B>(
        shared: &'r Shared,
        runtime: &'r Runtime,
        connection: &'r ConnectionInfo,
        request: &Request<B>,
    ) -> RequestCtx<'r> {
        let trusted = &runtime.config.server.trusted_proxies;
        // Begun traces are sampled: the backends decide whether to record their part.
        let trace = TraceContext::of(request.headers(), true);
        let exported = shared.spans.is_some() && trace.sampled();
        RequestCtx {
            shared,
            runtime,
            connection,
            started: Instant::now(),
            method: request.method().clone(),
            request_id: headers::request_id(request.headers()),
            trace,
            span_started: exported.then(SystemTime::now),
            client: headers::client_ip(connection.peer, request.headers(), trusted),
            route: "-",
            caller: None,
            via_cookie: false,
            cors: None,
            html_errors: false,
            set_cookies: Vec::new(),
            cookies_reach_browser: true,
        }
    }
}

impl<'r> RequestCtx<'r> {
    /// The wall-clock start of a phase whose span is exported; `None` (and no clock read)
    /// when this request's spans are not.
    pub(crate) fn span_start(&self) -> Option<SystemTime> {
        self.span_started.map(|_| SystemTime::now())
    }

    /// Hands the span of a phase that began at `start` (from `span_start`) to the exporter.
    pub(crate) fn finish_span(
        &self,
        name: &str,
        kind: Kind,
        start: Option<SystemTime>,
        attributes: Vec<(&'static str, String)>,
        error: bool,
    ) {
        if let (Some(spans), Some(start)) = (&self.shared.spans, start) {
            let mut span = SpanRecord::child(&self.trace, name, kind, start);
            span.attributes = attributes;
            span.error = error;
            spans.record(span);
        }
    }

    /// What this request's credential is checked against.
    pub(crate) fn verifiers(&self) -> Verifiers<'r> {
        Verifiers {
            tokens: &self.runtime.tokens,
            api_keys: &self.shared.api_keys,
            revocations: &self.shared.revocations,
        }
    }
}

/// The request after `early_checks`: where it is going, in canonical form.
pub(crate) struct Target {
    /// Lower-case host without port, for routing.
    pub host: String,
    /// The authority as the client sent it, for `Host` and `X-Forwarded-Host`.
    pub authority: Authority,
    pub path: String,
}
