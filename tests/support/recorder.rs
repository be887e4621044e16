//! A recording upstream: a raw HTTP/1.1 server on 127.0.0.1 that frames requests strictly
//! (RFC 9112, as a careful origin server would), keeps every byte and every request per
//! connection, notes any request it could not frame, and answers as the test says. Nothing
//! is hidden from this oracle: trailers, framing, and requests cut short are all recorded.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::raw::{decode_chunked, fields};
use super::{DEADLINE, within};

/// How the upstream framed a request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// One request as the upstream received it; recorded as soon as its head is whole.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The upstream connection it came on, counted from 1.
    pub conn: usize,
    pub method: String,
    /// The request target.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub trailers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// False until the body is whole; stays false when the connection ended (or broke) first:
    /// the gateway aborted it.
    pub complete: bool,
    /// The request's bytes as received: head, body framing, trailer section.
    pub wire: Vec<u8>,
}

impl Recorded {
    /// Every value of the head fields named `name` (any case).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Everything the upstream saw.
#[derive(Debug, Default, Clone)]
pub struct Log {
    pub connections: usize,
    /// Connections that have ended.
    pub ended: usize,
    pub requests: Vec<Recorded>,
    /// Requests the upstream could not frame (ambiguous or malformed), with the bytes.
    pub unframeable: Vec<(usize, String)>,
    /// Bytes read on a connection the upstream handed over to another protocol (`Then::Hold`).
    pub after_switch: Vec<u8>,
    /// Every byte received, on all connections.
    pub wire: Vec<u8>,
}

/// What the upstream does after answering a request.
#[derive(Clone, Copy)]
pub enum Then {
    KeepAlive,
    Close,
    /// Keep the connection open without answering further; record whatever arrives.
    Hold,
}

/// How the upstream answers a request: the bytes to write, and what to do next.
pub trait Responder: Fn(&Recorded) -> (Vec<u8>, Then) + Send + Sync + 'static {}

impl<F: Fn(&Recorded) -> (Vec<u8>, Then) + Send + Sync + 'static> Responder for F {}

/// A 200 with `body` as text/plain.
pub fn ok_with(body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// The ordinary answer: 200 `up:<target>`, so a client can tell whose response it got.
pub fn ok_reply(request: &Recorded) -> Vec<u8> {
    ok_with(format!("up:{}", request.path).as_bytes())
}

pub fn plain_responder(request: &Recorded) -> (Vec<u8>, Then) {
    (ok_reply(request), Then::KeepAlive)
}

pub struct Recorder {
    pub addr: std::net::SocketAddr,
    log: Arc<watch::Sender<Log>>,
}

impl Recorder {
    pub async fn start(responder: impl Responder) -> Recorder {
        let responder = Arc::new(responder);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(watch::Sender::new(Log::default()));
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let mut conn = 0;
                shared.send_modify(|log| {
                    log.connections += 1;
                    conn = log.connections;
                });
                let (log, responder) = (shared.clone(), responder.clone());
                tokio::spawn(async move {
                    serve(tcp, conn, &log, &*responder).await;
                    log.send_modify(|log| log.ended += 1);
                });
            }
        });
        Recorder { addr, log }
    }

    /// A copy of everything seen so far.
    pub fn log(&self) -> Log {
        self.log.borrow().clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.borrow().requests.clone()
    }

    pub fn unframeable(&self) -> Vec<(usize, String)> {
        self.log.borrow().unframeable.clone()
    }

    /// Requests whose target contains `tag`.
    pub fn tagged(&self, tag: &str) -> Vec<Recorded> {
        self.requests_where(|r| r.path.contains(tag))
    }

    /// Requests carrying `X-Case: tag`.
    pub fn case(&self, tag: &str) -> Vec<Recorded> {
        self.requests_where(|r| r.header("x-case") == [tag])
    }

    fn requests_where(&self, wanted: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        let log = self.log.borrow();
        log.requests.iter().filter(|r| wanted(r)).cloned().collect()
    }

    /// Waits a moment before final checks, so that an aborted request the gateway dropped
    /// a moment ago is in the log.
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// Waits (within the deadline) until `condition` holds for the log.
    pub async fn wait_for(&self, condition: impl FnMut(&Log) -> bool) -> Log {
        let mut log = self.log.subscribe();
        within(log.wait_for(condition))
            .await
            .expect("upstream log")
            .clone()
    }
}

async fn serve(mut tcp: TcpStream, conn: usize, log: &watch::Sender<Log>, responder: &impl Responder) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    // The log index of the request whose head is in, but not yet its body.
    let mut open: Option<usize> = None;
    let record = |open: &mut Option<usize>, mut request: Recorded| {
        request.conn = conn;
        log.send_modify(|log| match *open {
            Some(i) => log.requests[i] = request,
            None => {
                *open = Some(log.requests.len());
                log.requests.push(request);
            }
        });
    };
    loop {
        // Take as many complete requests as the buffer holds.
        loop {
            match parse_request(&buf) {
                Parse::Partial(None) => break,
                Parse::Partial(Some(request)) => {
                    record(&mut open, request);
                    break;
                }
                Parse::Error(why, request) => {
                    if let Some(request) = request {
                        record(&mut open, request);
                    }
                    let text = format!("{why}: {:?}", String::from_utf8_lossy(&buf));
                    log.send_modify(|log| log.unframeable.push((conn, text)));
                    return;
                }
                Parse::Done(request, used) => {
                    record(&mut open, request.clone());
                    open = None;
                    buf.drain(..used);
                    let (reply, then) = responder(&request);
                    if tcp.write_all(&reply).await.is_err() {
                        return;
                    }
                    match then {
                        Then::KeepAlive => {}
                        Then::Close => return,
                        Then::Hold => {
                            log.send_modify(|log| log.after_switch.extend_from_slice(&buf));
                            while let Ok(Ok(n @ 1..)) =
                                tokio::time::timeout(DEADLINE, tcp.read(&mut chunk)).await
                            {
                                log.send_modify(|log| log.after_switch.extend_from_slice(&chunk[..n]));
                            }
                            return;
                        }
                    }
                }
            }
        }
        let n = tcp.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            // The connection ended: a request cut short is already in the log, incomplete.
            if open.is_none() && !buf.is_empty() {
                let text = format!("eof inside a head: {:?}", String::from_utf8_lossy(&buf));
                log.send_modify(|log| log.unframeable.push((conn, text)));
            }
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        log.send_modify(|log| log.wire.extend_from_slice(&chunk[..n]));
    }
}

enum Parse {
    /// More bytes needed; the head, when it is already whole, as an incomplete request.
    Partial(Option<Recorded>),
    Done(Recorded, usize),
    Error(String, Option<Recorded>),
}

/// Strict RFC 9112 framing, as a careful origin server would apply it.
fn parse_request(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parse::Partial(None),
        Err(e) => return Parse::Error(format!("bad head ({e})"), None),
    };
    let mut request = Recorded {
        conn: 0,
        method: parsed.method.unwrap_or_default().to_string(),
        path: parsed.path.unwrap_or_default().to_string(),
        headers: fields(parsed.headers),
        trailers: Vec::new(),
        body: Vec::new(),
        framing: Framing::None,
        complete: false,
        wire: buf[..head_len].to_vec(),
    };
    if !buf[..head_len].windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r') {
        return Parse::Error("bare LF in the head the gateway sent".into(), Some(request));
    }
    let cl = request.header("content-length");
    let te = request.header("transfer-encoding");
    request.framing = match (cl.as_slice(), te.as_slice()) {
        ([], []) => Framing::None,
        ([one], []) if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => {
            Framing::Length(one.parse().unwrap_or(u64::MAX))
        }
        ([], [one]) if one.eq_ignore_ascii_case("chunked") => Framing::Chunked,
        _ => {
            let why = format!("ambiguous framing CL={cl:?} TE={te:?}");
            return Parse::Error(why, Some(request));
        }
    };
    let rest = &buf[head_len..];
    let used = match request.framing {
        Framing::None => 0,
        Framing::Length(len) => match usize::try_from(len).ok().filter(|&len| rest.len() >= len) {
            Some(len) => {
                request.body = rest[..len].to_vec();
                len
            }
            None => {
                request.body = rest.to_vec();
                request.wire = buf.to_vec();
                return Parse::Partial(Some(request));
            }
        },
        Framing::Chunked => match decode_chunked(rest) {
            Ok(Some(chunked)) => {
                request.body = chunked.body;
                request.trailers = chunked.trailers;
                chunked.used
            }
            Ok(None) => {
                request.wire = buf.to_vec();
                return Parse::Partial(Some(request));
            }
            Err(why) => return Parse::Error(why, Some(request)),
        },
    };
    request.complete = true;
    request.wire = buf[..head_len + used].to_vec();
    Parse::Done(request, head_len + used)
}
