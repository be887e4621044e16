//! OTLP/HTTP export of the gateway's spans (SPEC 15, `[telemetry] otlp_endpoint`): each
//! sampled request's span, and its authentication, password hashing and upstream call as
//! children. The request path only builds a small record and `try_send`s it to a bounded
//! queue: a full queue drops the span and counts it, nothing ever waits. One task batches the
//! records, encodes them as OTLP protobuf and POSTs them to `<endpoint>/v1/traces`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::trace::TraceContext;

/// Spans waiting for export; beyond this they are dropped (and counted).
const QUEUE: usize = 4096;
/// A batch is sent when it is this big, or `FLUSH_EVERY` after its first span.
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// One POST to the collector, connecting included.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a span was: the request the gateway served, or a call it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Internal,
    Client,
}

/// One finished span, as the request path hands it over.
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, String)>,
    pub error: bool,
}

impl SpanRecord {
    /// The request's own span in `trace`: the id the upstream was told, the caller's parent.
    pub fn request(trace: &TraceContext, name: String, start: SystemTime) -> SpanRecord {
        SpanRecord::new(trace, trace.span_id, trace.parent_id, name, Kind::Server, start)
    }

    /// A child of the request span of `trace`, with a fresh id.
    pub fn child(trace: &TraceContext, name: &str, kind: Kind, start: SystemTime) -> SpanRecord {
        let (id, parent) = (super::trace::new_span_id(), Some(trace.span_id));
        SpanRecord::new(trace, id, parent, name.to_string(), kind, start)
    }

    /// Ends now, no attributes, no error.
    fn new(
        trace: &TraceContext,
        span_id: [u8; 8],
        parent_id: Option<[u8; 8]>,
        name: String,
        kind: Kind,
        start: SystemTime,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: trace.trace_id,
            span_id,
            parent_id,
            name,
            kind,
            start,
            end: SystemTime::now(),
            attributes: Vec::new(),
            error: false,
        }
    }
}

/// Where the request path sends finished spans.
#[derive(Clone)]
pub struct Spans {
    queue: mpsc::Sender<SpanRecord>,
    dropped: Counter,
}

impl Spans {
    /// Queues `span` for export; never waits.
    pub fn record(&self, span: SpanRecord) {
        if self.queue.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

/// Starts the export task for `endpoint` (an `http://` collector), which ends with `stop`
/// after sending what it holds.
pub fn start(endpoint: &Uri, service: String, dropped: Counter, stop: CancellationToken) -> Spans {
    let (queue, received) = mpsc::channel(QUEUE);
    let url = format!("{}/v1/traces", endpoint.to_string().trim_end_matches('/'));
    let exporter = Exporter {
        url,
        service,
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        dropped: dropped.clone(),
    };
    tokio::spawn(exporter.run(received, stop));
    Spans { queue, dropped }
}

struct Exporter {
    url: String,
    service: String,
    client: Client<HttpConnector, Full<Bytes>>,
    dropped: Counter,
}

impl Exporter {
    async fn run(self, mut received: mpsc::Receiver<SpanRecord>, stop: CancellationToken) {
        let mut failing = false;
        loop {
            let mut batch = Vec::new();
            let first = tokio::select! {
                _ = stop.cancelled() => None,
                span = received.recv() => span,
            };
            let Some(first) = first else {
                received.close();
                while let Ok(span) = received.try_recv() {
                    batch.push(span);
                }
                self.send(batch, &mut failing).await;
                return;
            };
            batch.push(first);
            let deadline = tokio::time::sleep(FLUSH_EVERY);
            tokio::pin!(deadline);
            while batch.len() < BATCH {
                tokio::select! {
                    _ = &mut deadline => break,
                    span = received.recv() => match span {
                        Some(span) => batch.push(span),
                        None => break,
                    },
                }
            }
            self.send(batch, &mut failing).await;
        }
    }

    /// POSTs `batch`; a collector that is down loses the batch (counted), said once per outage.
    async fn send(&self, batch: Vec<SpanRecord>, failing: &mut bool) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        let body = encode(&self.service, batch);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            return;
        };
        let answer = tokio::time::timeout(POST_TIMEOUT, self.client.request(request)).await;
        let delivered = matches!(&answer, Ok(Ok(response)) if response.status().is_success());
        if delivered {
            if std::mem::take(failing) {
                tracing::info!(url = %self.url, "the trace collector accepts spans again");
            }
            return;
        }
        self.dropped.inc_by(count as u64);
        if !std::mem::replace(failing, true) {
            let why = match answer {
                Ok(Ok(response)) => format!("answered {}", response.status()),
                Ok(Err(error)) => error.to_string(),
                Err(_) => "no answer in time".to_string(),
            };
            tracing::warn!(url = %self.url, %why, "cannot export spans; dropping them until the collector answers");
        }
    }
}

/// One OTLP request holding `spans` of this service.
fn encode(service: &str, spans: Vec<SpanRecord>) -> Vec<u8> {
    let resource = Resource {
        attributes: vec![text("service.name", service.to_string())],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "portcullis".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans: spans.into_iter().map(to_proto).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec()
}

fn to_proto(record: SpanRecord) -> Span {
    let kind = match record.kind {
        Kind::Server => span::SpanKind::Server,
        Kind::Internal => span::SpanKind::Internal,
        Kind::Client => span::SpanKind::Client,
    };
    let code = match record.error {
        true => status::StatusCode::Error,
        false => status::StatusCode::Unset,
    };
    Span {
        trace_id: record.trace_id.to_vec(),
        span_id: record.span_id.to_vec(),
        parent_span_id: record.parent_id.map(|id| id.to_vec()).unwrap_or_default(),
        name: record.name,
        kind: kind as i32,
        start_time_unix_nano: nanos(record.start),
        end_time_unix_nano: nanos(record.end),
        attributes: record
            .attributes
            .into_iter()
            .map(|(key, value)| text(key, value))
            .collect(),
        status: Some(Status {
            code: code as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
