//! Real upstream servers on 127.0.0.1 ephemeral ports that record what they were sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts of what an upstream saw.
#[derive(Default)]
pub struct Counts {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
}

impl Counts {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
}

impl Upstream {
    /// The gateway's own demo echo: answers with JSON describing the request it received.
    pub async fn echo() -> Upstream {
        Self::delayed_echo(Duration::ZERO).await
    }

    /// The echo, answering only after `delay`.
    pub async fn delayed_echo(delay: Duration) -> Upstream {
        Upstream::serve(move |tcp, seen| {
            let service = service_fn(move |request: Request<Incoming>| {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(portcullis::demo::echo(request).await)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service),
            );
        })
        .await
    }

    /// A TCP server that reads each request head and answers with `reply(n)` for the n-th
    /// request overall (0-based), then closes if `close` is set.
    pub async fn raw(reply: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static, close: bool) -> Upstream {
        let reply = Arc::new(reply);
        Upstream::serve(move |mut tcp, seen| {
            let reply = reply.clone();
            tokio::spawn(async move {
                while read_head(&mut tcp).await {
                    let n = seen.requests.fetch_add(1, Ordering::SeqCst);
                    if tcp.write_all(&reply(n)).await.is_err() || close {
                        return;
                    }
                }
            });
        })
        .await
    }

    /// A listener on an ephemeral port that counts connections and hands each to `serve`.
    pub async fn serve(serve: impl Fn(TcpStream, Arc<Counts>) + Send + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let counts = Arc::new(Counts::default());
        let seen = counts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                seen.connections.fetch_add(1, Ordering::SeqCst);
                serve(tcp, seen.clone());
            }
        });
        Upstream { addr, counts }
    }
}

/// Reads one request head (bodies are not expected); false on EOF or error.
async fn read_head(tcp: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// An address where nothing listens: connections to it are refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// A plain response body for raw upstreams.
pub fn ok_response(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}
