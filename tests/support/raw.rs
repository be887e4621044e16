//! Raw HTTP/1.1 on the client side: bytes written as they are, responses parsed off the wire
//! strictly, so that nothing in a client library repairs or hides what the gateway sent.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Gateway, Reply, within};

/// How long a client waits for something that should come promptly.
pub const PROMPT: Duration = Duration::from_secs(5);

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// As the harness's `Reply` (status and body), for its echo helpers (`upstream_uri`, ...).
    pub fn reply(&self) -> Reply {
        Reply {
            status: StatusCode::from_u16(self.status).expect("a status code"),
            headers: HeaderMap::new(),
            body: Bytes::from(self.body.clone()),
        }
    }

    pub fn json(&self) -> Value {
        self.reply().json()
    }
}

pub fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

/// `name: value` pairs of a parsed head, values as (lossy) text.
pub fn fields(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
        .collect()
}

pub enum Parse {
    Partial,
    Done(Response, usize),
    Bad(String),
}

/// One response off the front of `buf` (skipping 1xx but 101); `head` for a response to HEAD.
pub fn parse_response(buf: &[u8], head: bool) -> Parse {
    let mut offset = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let len = match parsed.parse(&buf[offset..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Parse::Partial,
            Err(e) => return Parse::Bad(format!("{e}")),
        };
        let status = parsed.code.unwrap_or_default();
        let start = offset + len;
        if (100..200).contains(&status) && status != 101 {
            offset = start;
            continue;
        }
        let mut response = Response {
            status,
            headers: fields(parsed.headers),
            body: Vec::new(),
        };
        let rest = &buf[start..];
        let used = if head || [101, 204, 304].contains(&status) {
            0
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            match decode_chunked(rest) {
                Ok(Some(chunked)) => {
                    response.body = chunked.body;
                    chunked.used
                }
                Ok(None) => return Parse::Partial,
                Err(e) => return Parse::Bad(e),
            }
        } else if let Some(len) = response.header("content-length") {
            let Ok(len) = len.parse::<usize>() else {
                return Parse::Bad(format!("content-length {len:?}"));
            };
            let Some(body) = rest.get(..len) else {
                return Parse::Partial;
            };
            response.body = body.to_vec();
            len
        } else {
            return Parse::Bad("response without framing".into());
        };
        return Parse::Done(response, start + used);
    }
}

/// Every complete response in `bytes`, in order; stops at anything incomplete or malformed,
/// so a truncated stream shows up as a missing response.
pub fn parse_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut responses = Vec::new();
    while let Parse::Done(response, used) = parse_response(bytes, false) {
        responses.push(response);
        bytes = &bytes[used..];
    }
    responses
}

/// `data` as one chunk of a chunked body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
}

/// A chunked body read in full.
pub struct Chunked {
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// Bytes taken, trailer section included.
    pub used: usize,
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// A strict chunked decoder (RFC 9112 7.1): `Ok(None)` means incomplete.
pub fn decode_chunked(bytes: &[u8]) -> Result<Option<Chunked>, String> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find_crlf(&bytes[pos..]) else {
            return Ok(None);
        };
        let line = &bytes[pos..pos + eol];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        if size_text.is_empty() || size_text.len() > 15 || !size_text.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("bad chunk size line {:?}", String::from_utf8_lossy(line)));
        }
        let size = usize::from_str_radix(&String::from_utf8_lossy(size_text), 16).expect("1-15 hex digits");
        pos += eol + 2;
        if size == 0 {
            let mut trailers = Vec::new();
            loop {
                let Some(eol) = find_crlf(&bytes[pos..]) else {
                    return Ok(None);
                };
                let line = String::from_utf8_lossy(&bytes[pos..pos + eol]).into_owned();
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(Chunked {
                        body,
                        trailers,
                        used: pos,
                    }));
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                trailers.push((name.to_string(), value.trim().to_string()));
            }
        }
        if bytes.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&bytes[pos..pos + size]);
        if &bytes[pos + size..pos + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        pos += size + 2;
    }
}

/// How reading a response failed, with the (lossy) text of any unfinished response.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed the connection.
    Closed(String),
    TimedOut(String),
    Garbage(String, String),
}

/// A raw HTTP/1.1 client connection: TLS to the gateway, or plain TCP to a listener.
pub struct Client<S = TlsStream<TcpStream>> {
    stream: S,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub async fn open(gateway: &Gateway) -> Client {
        Client::on(gateway.tls_connect(&[b"http/1.1"]).await)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn on(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Writes, ignoring errors: the gateway may already have closed (that is checked later).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Sends `request` and reads the next response; `head` for a response to HEAD.
    pub async fn exchange(&mut self, request: &[u8], head: bool) -> Result<Response, ReadEnd> {
        self.send(request).await;
        self.response(head).await
    }

    /// The next response; `head` for a response to HEAD.
    pub async fn response(&mut self, head: bool) -> Result<Response, ReadEnd> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match parse_response(&self.buf, head) {
                Parse::Done(response, used) => {
                    self.buf.drain(..used);
                    return Ok(response);
                }
                Parse::Bad(e) => return Err(ReadEnd::Garbage(e, self.text())),
                Parse::Partial => {}
            }
            if self.eof {
                return Err(ReadEnd::Closed(self.text()));
            }
            match tokio::time::timeout(PROMPT, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(ReadEnd::TimedOut(self.text())),
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Sends `bytes` in one write and reads every response until the gateway closes.
/// `heads` marks which responses answer a HEAD request, by position.
pub async fn exchange(
    gateway: &Gateway,
    bytes: &[u8],
    heads: &[usize],
) -> (Vec<Response>, Result<(), ReadEnd>) {
    let mut client = Client::open(gateway).await;
    client.send(bytes).await;
    let mut responses = Vec::new();
    loop {
        match client.response(heads.contains(&responses.len())).await {
            Ok(response) => responses.push(response),
            Err(ReadEnd::Closed(rest)) if rest.is_empty() => return (responses, Ok(())),
            Err(end) => return (responses, Err(end)),
        }
    }
}

/// Writes `request` on a new plain TCP connection to `addr` and reads one response.
pub async fn plain_exchange(addr: SocketAddr, request: &str) -> Response {
    let mut client = Client::on(within(TcpStream::connect(addr)).await.expect("connect"));
    let response = client.exchange(request.as_bytes(), false).await;
    response.expect("a whole HTTP response")
}
