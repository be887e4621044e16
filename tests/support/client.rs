//! TLS clients built by hand, for a gateway the harness did not start (the real binary) or
//! for tests at the TLS level: configs trusting given certificates, handshakes, and hyper
//! connections on them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Reply, RequestExt, get, within};

/// A client connection's task: it ends when the connection closes.
pub type Connection = JoinHandle<Result<(), hyper::Error>>;

/// The certificate a gateway generated into `dir`.
pub fn gateway_cert(dir: &Path) -> CertificateDer<'static> {
    let path = dir.join("certs/gateway.crt");
    CertificateDer::from_pem_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A client config that trusts exactly `roots`, speaks `versions` and offers `alpn`.
pub fn config(
    roots: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone()).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// `config` with TLS 1.2 and 1.3, trusting the certificate a gateway generated into `dir`.
pub fn trusting(dir: &Path, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    config(&[gateway_cert(dir)], rustls::DEFAULT_VERSIONS, alpn)
}

/// A new TLS connection to `addr` as `localhost`, or why it could not be made (callers
/// bound the wait).
pub async fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").expect("name");
    let connector = TlsConnector::from(config.clone());
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// The ClientHello a client with `config` sends first.
pub fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("name");
    let mut connection = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).expect("ClientHello");
    hello
}

/// An HTTP/1.1 client on `stream` (TLS, or plain TCP to the admin listener).
pub async fn h1(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
) -> (http1::SendRequest<Full<Bytes>>, Connection) {
    let (sender, connection) = within(http1::handshake(TokioIo::new(stream)))
        .await
        .expect("h1 handshake");
    (sender, tokio::spawn(connection))
}

/// An HTTP/2 client on `stream`.
pub async fn h2(stream: TlsStream<TcpStream>) -> (http2::SendRequest<Full<Bytes>>, Connection) {
    let (sender, connection) = within(http2::handshake(TokioExecutor::new(), TokioIo::new(stream)))
        .await
        .expect("h2 handshake");
    (sender, tokio::spawn(connection))
}

/// A request for `path` with `Host: localhost`, a bearer `token` if any, `headers` and `body`.
pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut request = super::request(Method::from_bytes(method.as_bytes()).expect("method"), path);
    if let Some(token) = token {
        request = request.bearer(token);
    }
    request.headers(headers).with_body(body)
}

/// A response read in full, or what went wrong on the connection; a hang fails the test.
pub type Answer = Result<Reply, hyper::Error>;

/// `GET path` on an open HTTP/1.1 connection.
pub async fn h1_get(sender: &mut http1::SendRequest<Full<Bytes>>, path: &str) -> Answer {
    within(sender.ready()).await?;
    Reply::try_read(within(sender.send_request(get(path))).await).await
}

/// `GET path` on an open HTTP/2 connection.
pub async fn h2_get(sender: &mut http2::SendRequest<Full<Bytes>>, path: &str) -> Answer {
    let request = Request::get(format!("https://localhost{path}")).body(Full::new(Bytes::new()));
    Reply::try_read(within(sender.send_request(request.expect("request"))).await).await
}

/// `GET path` on a new client on `stream`: over HTTP/2 when ALPN chose h2, else HTTP/1.1.
pub async fn get_over(stream: TlsStream<TcpStream>, path: &str) -> Answer {
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        h2_get(&mut h2(stream).await.0, path).await
    } else {
        h1_get(&mut h1(stream).await.0, path).await
    }
}
