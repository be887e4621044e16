//! Sockets only: accept loops, the TLS handshake deadline, HTTP/1.1 or HTTP/2 by ALPN,
//! connection deadlines, and draining on shutdown.

pub mod framing;
mod idle;
mod stall;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio_rustls::TlsAcceptor;

use crate::proxy::ResponseBody;
use crate::proxy::headers::PeerHeaders;
use framing::FramingVerdicts;

/// Shutdown signals and the set of tasks to wait for; cloned into every listener.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Stop accepting, and ask open connections to finish their requests and close.
    pub shutdown: CancellationToken,
    /// The grace is over: close whatever is still open.
    pub abort: CancellationToken,
    pub tasks: TaskTracker,
}

/// Per-connection limits from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

/// What the server knows about the connection a request came on.
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// The framing guard's verdicts; `None` on HTTP/2, where h2 itself enforces framing.
    pub framing: Option<Arc<FramingVerdicts>>,
    pub peer_headers: PeerHeaders,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, framing: Option<Arc<FramingVerdicts>>) -> ConnectionInfo {
        ConnectionInfo {
            peer,
            framing,
            peer_headers: PeerHeaders::new(peer.ip().to_canonical()),
        }
    }
}

/// What the public listener serves: the gateway, seen from the sockets.
pub trait PublicService: Send + Sync + 'static {
    /// For a new connection: the certificate in force when it starts.
    fn acceptor(&self) -> TlsAcceptor;
    fn connection_opened(&self);
    fn connection_closed(&self);
    /// Answers one request; every error is already a response.
    fn handle(
        self: Arc<Self>,
        connection: Arc<ConnectionInfo>,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static;
}

/// Accepts TLS connections for the gateway until shutdown.
pub async fn serve_public<S: PublicService>(
    listener: TcpListener,
    gateway: Arc<S>,
    limits: ConnectionLimits,
    life: Lifecycle,
) {
    while let Some((tcp, peer)) = accept(&listener, &life).await {
        let connection = serve_tls(tcp, peer, gateway.clone(), limits, life.clone());
        life.tasks.spawn(connection);
    }
}

/// Accepts plain HTTP/1.1 connections (admin, redirect, demo upstream) until shutdown.
pub async fn serve_plain<H, F>(listener: TcpListener, handler: H, limits: ConnectionLimits, life: Lifecycle)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    while let Some((tcp, _peer)) = accept(&listener, &life).await {
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = http1_builder(limits).serve_connection(TokioIo::new(tcp), service);
        life.tasks.spawn(drive(connection, life.clone(), None));
    }
}

/// The next connection, or `None` once shutdown has begun.
async fn accept(listener: &TcpListener, life: &Lifecycle) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = life.shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    return Some((tcp, peer));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_tls<S: PublicService>(
    tcp: TcpStream,
    peer: SocketAddr,
    gateway: Arc<S>,
    limits: ConnectionLimits,
    life: Lifecycle,
) {
    let _open = OpenConnection::count(&gateway);
    // Asked per connection: after a reload, new handshakes get the new certificate.
    let acceptor = gateway.acceptor();
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        outcome = handshake => match outcome {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
        // A shutdown does not wait for handshakes: the client has sent no request yet.
        _ = life.shutdown.cancelled() => return,
    };
    let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let tls = stall::guard(tls, limits.idle_timeout);
    if is_h2 {
        let (io, activity) = idle::track(tls);
        let info = Arc::new(ConnectionInfo::new(peer, None));
        let service = service_fn(move |request| respond(gateway.clone(), info.clone(), request));
        let connection = http2_builder(limits).serve_connection(TokioIo::new(io), service);
        let watch = Http2Watch {
            activity,
            idle_timeout: limits.idle_timeout,
            frame_timeout: limits.header_read_timeout,
        };
        drive(connection, life, Some(watch)).await;
    } else {
        let (io, verdicts) = framing::guard(tls, limits.header_read_timeout, limits.max_header_bytes);
        let info = Arc::new(ConnectionInfo::new(peer, Some(verdicts)));
        let service = service_fn(move |request| respond(gateway.clone(), info.clone(), request));
        let connection = http1_builder(limits).serve_connection(TokioIo::new(io), service);
        drive(connection.with_upgrades(), life, None).await;
    }
}

/// hyper's service: the answer, which cannot fail.
async fn respond<S: PublicService>(
    gateway: Arc<S>,
    connection: Arc<ConnectionInfo>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    Ok(gateway.handle(connection, request).await)
}

/// Keeps the open-connection count right on every way out of a connection task.
struct OpenConnection<S: PublicService>(Arc<S>);

impl<S: PublicService> OpenConnection<S> {
    fn count(service: &Arc<S>) -> OpenConnection<S> {
        service.connection_opened();
        OpenConnection(service.clone())
    }
}

impl<S: PublicService> Drop for OpenConnection<S> {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

fn http1_builder(limits: ConnectionLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts this timer while waiting for the next request, so it is the idle
        // keep-alive deadline; the framing guard enforces the shorter head deadline.
        .header_read_timeout(limits.idle_timeout)
        // On the public listener the framing guard refuses larger heads (and more header
        // lines than hyper's default 100) before hyper sees them; these limits answer for
        // the plain listeners, and the buffer leaves room for a whole head.
        .max_header_size(limits.max_header_bytes)
        .max_buf_size((limits.max_header_bytes * 2).max(8192));
    builder
}

fn http2_builder(limits: ConnectionLimits) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(128);
    builder
}

/// A hyper connection that can be asked to finish its requests and close.
trait Drain: Future {
    fn drain(self: Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, B> Drain for http1::Connection<I, S>
where
    Self: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Drain for http1::UpgradeableConnection<I, S>
where
    Self: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Drain for http2::Connection<I, S, TokioExecutor>
where
    Self: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs a connection until it ends, draining it on shutdown or when idle (HTTP/2 only; hyper
/// closes idle HTTP/1.1 connections itself), and dropping it when the grace runs out.
async fn drive<C: Drain>(connection: C, life: Lifecycle, watch: Option<Http2Watch>) {
    let mut connection = pin!(connection);
    let mut stalled = pin!(or_never(watch.as_ref().map(Http2Watch::stalled)));
    let idle_expired = or_never(watch.as_ref().map(Http2Watch::idle));
    tokio::select! {
        _ = connection.as_mut() => return,
        // A trickled frame or header block is an attack, not a request: no graceful goodbye.
        _ = stalled.as_mut() => return,
        _ = life.shutdown.cancelled() => {}
        _ = idle_expired => {}
    }
    connection.as_mut().drain();
    // A client that never answers the GOAWAY's PING would hold the drain open: another idle
    // period without a byte moving ends it, counted from now so the GOAWAY goes out first.
    if let Some(watch) = &watch {
        watch.activity.touch();
    }
    let still_idle = or_never(watch.as_ref().map(Http2Watch::idle));
    tokio::select! {
        _ = connection => {}
        _ = stalled => {}
        _ = still_idle => {}
        _ = life.abort.cancelled() => {}
    }
}

/// Waits for `future`, or forever when there is none (HTTP/1.1 has nothing to watch).
async fn or_never<F: Future>(future: Option<F>) {
    match future {
        Some(future) => {
            future.await;
        }
        None => std::future::pending().await,
    }
}

/// What `drive` watches on an HTTP/2 connection, which hyper times out neither when idle nor
/// when a client trickles a frame.
struct Http2Watch {
    activity: Arc<idle::Activity>,
    idle_timeout: Duration,
    /// How long one frame, or one header block, may take to arrive: the head deadline.
    frame_timeout: Duration,
}

impl Http2Watch {
    fn idle(&self) -> impl Future<Output = ()> + '_ {
        self.activity.expired(self.idle_timeout)
    }

    fn stalled(&self) -> impl Future<Output = ()> + '_ {
        self.activity.stalled(self.frame_timeout)
    }
}
