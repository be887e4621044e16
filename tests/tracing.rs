//! Span export (SPEC 15, `[telemetry] otlp_endpoint`): a collector that decodes the real OTLP
//! protobuf (`opentelemetry-proto`) receives the request's span and its children
//! (authentication, password hashing, the upstream call) in the client's trace, with the
//! parentage the upstream was told; a collector that is down costs requests nothing and the
//! lost spans are counted.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use support::binary::plain_get;
use support::upstreams::{Upstream, refused_addr};
use support::{DEADLINE, GENEROUS_LIMITS, Gateway, RequestExt, Setup, eventually, request, required_route};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP collector: every span of every `POST /v1/traces` it decoded, and the
/// `service.name` each came with.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Collector {
    async fn start() -> (Collector, Upstream) {
        let collector = Collector::default();
        let kept = collector.clone();
        let upstream = Upstream::serve(move |tcp, _| {
            let kept = kept.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let kept = kept.clone();
                async move { Ok::<_, Infallible>(kept.receive(request).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service),
            );
        })
        .await;
        (collector, upstream)
    }

    async fn receive(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let protobuf = request
            .headers()
            .get("content-type")
            .is_some_and(|t| t == "application/x-protobuf");
        let right = request.method() == Method::POST && request.uri().path() == "/v1/traces" && protobuf;
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let Some(export) = ExportTraceServiceRequest::decode(body).ok().filter(|_| right) else {
            let mut refused = Response::new(Full::default());
            *refused.status_mut() = StatusCode::BAD_REQUEST;
            return refused;
        };
        let mut spans = self.spans.lock().expect("lock");
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref().cloned())
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
        Response::new(Full::default())
    }

    /// Waits until a span named `name` arrived; returns it with its service.
    async fn span(&self, name: &str) -> (String, Span) {
        eventually(DEADLINE, async || {
            let spans = self.spans.lock().expect("lock");
            let found = spans.iter().find(|(_, span)| span.name == name).cloned();
            let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
            found.ok_or(format!("no span {name:?} among {names:?}"))
        })
        .await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_reach_the_collector_in_the_clients_trace_with_their_parentage() {
    let (collector, listening) = Collector::start().await;
    let echo = Upstream::echo().await;
    let rest = format!(
        "{}{GENEROUS_LIMITS}[telemetry]\notlp_endpoint = \"http://{}\"\nservice_name = \"edge-gw\"\n",
        required_route("api", "/api/", echo.addr),
        listening.addr
    );
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let access = gateway.pair("alice").await.access;
    let traced = request(Method::GET, "/api/orders")
        .bearer(&access)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .empty();
    let reply = gateway.send(traced).await;
    assert_eq!(reply.status, StatusCode::OK);
    let told = reply.upstream_header("traceparent");
    let upstream_parent = told[0].split('-').nth(2).expect("a parent id").to_string();

    let (service, served) = collector.span("GET api").await;
    assert!(service.contains("edge-gw"), "{service}");
    assert_eq!(
        (hex(&served.trace_id), hex(&served.parent_span_id)),
        (TRACE.into(), CLIENT_SPAN.into())
    );
    assert_eq!(
        hex(&served.span_id),
        upstream_parent,
        "the upstream's parent is the request's span"
    );
    assert_eq!(served.kind, SpanKind::Server as i32);
    assert!(served.end_time_unix_nano > served.start_time_unix_nano);
    for (name, kind) in [
        ("authenticate", SpanKind::Internal),
        ("upstream", SpanKind::Client),
    ] {
        let (_, child) = eventually(DEADLINE, async || {
            let spans = collector.spans.lock().expect("lock");
            let child = spans
                .iter()
                .find(|(_, s)| s.name == name && hex(&s.trace_id) == TRACE)
                .cloned();
            child.ok_or(format!("no {name} span in the client's trace"))
        })
        .await;
        assert_eq!(
            hex(&child.parent_span_id),
            hex(&served.span_id),
            "{name}'s parent"
        );
        assert_eq!(child.kind, kind as i32, "{name}");
        assert!(
            served.start_time_unix_nano <= child.start_time_unix_nano,
            "{name} within the request"
        );
    }
    // The login's password hashing is a child of the login request's own span.
    let (_, hashing) = collector.span("password hashing").await;
    let (_, login) = collector.span("POST gateway").await;
    assert_eq!(
        (hashing.trace_id.clone(), hashing.parent_span_id.clone()),
        (login.trace_id, login.span_id)
    );
}

#[tokio::test]
async fn a_collector_that_is_down_costs_requests_nothing_and_lost_spans_are_counted() {
    let echo = Upstream::echo().await;
    let down = refused_addr().await;
    let rest = format!(
        "{}[telemetry]\notlp_endpoint = \"http://{down}\"\n",
        required_route("api", "/api/", echo.addr)
    );
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let access = gateway.pair("alice").await.access;
    for _ in 0..20 {
        assert_eq!(
            gateway.get_with_token("/api/x", &access).await.status,
            StatusCode::OK
        );
    }
    eventually(DEADLINE, async || {
        let metrics = plain_get(gateway.admin, "/metrics").await.unwrap_or_default();
        let line = metrics
            .lines()
            .find(|l| l.starts_with("portcullis_trace_spans_dropped_total"));
        let count: f64 = line
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        (count >= 20.0)
            .then_some(())
            .ok_or(format!("dropped spans counted: {line:?}"))
    })
    .await;
}

#[test]
fn check_refuses_a_collector_url_it_cannot_post_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    for endpoint in [
        "https://collector:4318",
        "http://collector:4318/v1/traces",
        "collector:4318",
    ] {
        let rest = format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\n");
        let (_, stderr) = support::config::refused_by_check(dir.path(), &rest);
        assert!(
            stderr.contains("must be http://host:port"),
            "{endpoint}: {stderr}"
        );
    }
}
