//! One request sent exactly as written, on a fresh connection: HTTP/1.1 as raw bytes, HTTP/2
//! as raw frames (`h2raw`), so that what no client library would send (odd targets, name case,
//! duplicated, folded or connection-specific fields, trailers) reaches the gateway as written.

use super::Gateway;
use super::h2raw::{self, Field, Outcome, field};
use super::raw::chunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// A request in protocol-neutral form; `Probe::get` fills in the usual parts.
#[derive(Default)]
pub struct Probe {
    pub method: &'static str,
    /// The request target (HTTP/1.1) or `:path` (HTTP/2), byte for byte.
    pub target: Vec<u8>,
    /// HTTP/2's `:authority`, if sent.
    pub authority: Option<String>,
    /// `Host` fields in order (HTTP/1.1 head lines, HTTP/2 regular fields). `None`:
    /// `Host: localhost` over HTTP/1.1, none over HTTP/2.
    pub hosts: Option<Vec<String>>,
    /// Fields for both protocols, names as written (lower-cased over HTTP/2 unless
    /// `h2_keep_case`, as HTTP/2 requires).
    pub fields: Vec<(String, String)>,
    pub h2_keep_case: bool,
    /// Raw HTTP/1.1 head lines, for syntax only HTTP/1.1 has.
    pub h1_lines: Vec<String>,
    /// HTTP/2-only fields (the HTTP/2 analogue of such syntax).
    pub h2_fields: Vec<(String, String)>,
    /// Extra `Connection` tokens (HTTP/1.1 always sends `close`).
    pub connection: Vec<String>,
    /// A body (sent chunked over HTTP/1.1), and trailers after it.
    pub body: Option<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
}

impl Probe {
    /// `GET target` to `localhost`, tagged `X-Case: tag` for the recorder.
    pub fn get(tag: &str, target: impl Into<Vec<u8>>) -> Probe {
        Probe {
            method: "GET",
            target: target.into(),
            authority: Some("localhost".into()),
            fields: vec![("X-Case".into(), tag.into())],
            ..Probe::default()
        }
    }

    /// With `Authorization: Bearer token`, if there is a token.
    pub fn bearer(mut self, token: Option<&str>) -> Probe {
        if let Some(token) = token {
            self.fields
                .push(("Authorization".into(), format!("Bearer {token}")));
        }
        self
    }

    pub async fn send(&self, gateway: &Gateway, proto: Proto) -> Answer {
        match proto {
            Proto::H1 => self.send_h1(gateway).await,
            Proto::H2 => self.send_h2(gateway).await,
        }
    }

    fn h1_bytes(&self) -> Vec<u8> {
        let localhost = ["localhost".to_string()];
        let hosts = self.hosts.as_deref().unwrap_or(&localhost);
        let mut lines: Vec<String> = hosts.iter().map(|host| format!("Host: {host}")).collect();
        let connection = [&["close".to_string()][..], &self.connection].concat();
        lines.push(format!("Connection: {}", connection.join(", ")));
        lines.extend(self.fields.iter().map(|(name, value)| format!("{name}: {value}")));
        lines.extend(self.h1_lines.iter().cloned());
        let framed = self.body.is_some() || !self.trailers.is_empty();
        if !self.trailers.is_empty() {
            let names: Vec<&str> = self.trailers.iter().map(|(n, _)| n.as_str()).collect();
            lines.push(format!("Trailer: {}", names.join(", ")));
        }
        if framed {
            lines.push("Transfer-Encoding: chunked".into());
        }
        let mut head = [self.method.as_bytes(), b" ", &self.target, b" HTTP/1.1\r\n"].concat();
        for line in lines {
            head.extend_from_slice(format!("{line}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        if framed {
            let body = self.body.as_deref().unwrap_or_default();
            if !body.is_empty() {
                head.extend(chunk(body));
            }
            head.extend_from_slice(b"0\r\n");
            for (name, value) in &self.trailers {
                head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
        }
        head
    }

    async fn send_h1(&self, gateway: &Gateway) -> Answer {
        let text = gateway.raw(&self.h1_bytes()).await;
        let response_head = text.split("\r\n\r\n").next().unwrap_or_default();
        let request_id = response_head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_string())
        });
        Answer {
            status: text.split(' ').nth(1).and_then(|s| s.parse().ok()),
            h2: None,
            request_id,
            text,
        }
    }

    async fn send_h2(&self, gateway: &Gateway) -> Answer {
        let mut fields = vec![field(":method", self.method), field(":scheme", "https")];
        fields.extend(
            self.authority
                .iter()
                .map(|authority| field(":authority", authority)),
        );
        fields.push(field(":path", &self.target));
        fields.extend(self.hosts.iter().flatten().map(|host| field("host", host)));
        if !self.connection.is_empty() {
            fields.push(field("connection", self.connection.join(", ")));
        }
        let named = |(name, value): &(String, String)| match self.h2_keep_case {
            true => field(name, value),
            false => field(name.to_ascii_lowercase(), value),
        };
        fields.extend(self.fields.iter().map(named));
        fields.extend(self.h2_fields.iter().map(|(n, v)| field(n, v)));
        let trailers: Vec<Field> = self.trailers.iter().map(named).collect();
        let request = h2raw::Request {
            fields,
            data: self.body.clone().into_iter().collect(),
            trailers: (!trailers.is_empty()).then_some(trailers),
        };
        let outcome = h2raw::send(gateway, &request).await;
        Answer {
            status: outcome.status(),
            text: format!("{outcome:?}"),
            h2: Some(outcome),
            request_id: None,
        }
    }
}

/// What the client saw.
#[derive(Debug)]
pub struct Answer {
    pub status: Option<u16>,
    /// HTTP/2: how the stream ended.
    pub h2: Option<Outcome>,
    /// HTTP/1.1: the response's `X-Request-Id`.
    pub request_id: Option<String>,
    /// HTTP/1.1: everything read; HTTP/2: the outcome.
    pub text: String,
}

impl Answer {
    /// Refused as malformed: 400, or over HTTP/2 also a reset stream or connection.
    pub fn refused(&self) -> bool {
        match &self.h2 {
            Some(outcome) => outcome.refused(),
            None => self.status == Some(400),
        }
    }

    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }
}
