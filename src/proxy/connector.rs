//! Upstream connections the gateway can spoil. hyper accepts some responses a proxy must
//! refuse (both `Content-Length` and `Transfer-Encoding`, an unasked `101`) and would pool
//! their connection again; a spoiled connection fails its next read or write instead, so
//! hyper closes it. The handle rides on every response (`Connected::extra`), which costs a
//! clone of an `Arc` per response rather than a capture of the connection per request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Marks the connection a response came on as unfit for another request.
#[derive(Clone, Default)]
pub(super) struct Spoiler(Arc<AtomicBool>);

impl Spoiler {
    pub(super) fn spoil(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn check(&self) -> io::Result<()> {
        match self.0.load(Ordering::Relaxed) {
            true => Err(io::Error::other("connection spoiled by a malformed response")),
            false => Ok(()),
        }
    }
}

/// `HttpConnector`, with each connection wrapped in a `SpoilableStream`.
#[derive(Clone)]
pub(super) struct SpoilableConnector(pub HttpConnector);

impl tower_service::Service<Uri> for SpoilableConnector {
    type Response = SpoilableStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<SpoilableStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(SpoilableStream {
                io,
                spoiler: Spoiler::default(),
            })
        })
    }
}

pub(super) struct SpoilableStream {
    io: TokioIo<TcpStream>,
    spoiler: Spoiler,
}

impl Connection for SpoilableStream {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.spoiler.clone())
    }
}

impl Read for SpoilableStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.spoiler.check()?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl Write for SpoilableStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.spoiler.check()?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.spoiler.check()?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
