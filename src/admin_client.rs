//! `portcullis admin …`: the admin API (SPEC 4, 11, 15) from the command line, at the
//! `admin_listen` and with the `[admin]` token of the config it is given. Plain HTTP/1.1 to
//! the admin listener, which is on loopback or guarded by the token.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::config::Config;
use crate::secret::Secret;

/// The whole exchange: connect, send, read the answer.
const DEADLINE: Duration = Duration::from_secs(30);

pub struct AdminClient {
    addr: SocketAddr,
    token: Option<Secret<String>>,
}

/// One call of the admin API.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

impl Call {
    pub fn get(path: String) -> Call {
        Call::without_body(Method::GET, path)
    }

    pub fn sessions_of(sub: &str) -> Call {
        Call::get(format!("/admin/sessions?sub={}", escaped(sub)))
    }

    pub fn revoke_session(sid: &str) -> Call {
        Call::without_body(Method::DELETE, format!("/admin/sessions/{}", escaped(sid)))
    }

    pub fn revoke_user(sub: &str) -> Call {
        Call::without_body(Method::POST, format!("/admin/users/{}/revoke", escaped(sub)))
    }

    /// `POST /admin/api-keys`; `expires_in` in seconds, `None` for a key that lasts until deleted.
    pub fn create_api_key(sub: &str, role: &str, name: &str, expires_in: Option<u64>) -> Call {
        let body = serde_json::json!({ "sub": sub, "role": role, "name": name, "expires_in": expires_in });
        Call {
            body: Some(body),
            ..Call::without_body(Method::POST, "/admin/api-keys".into())
        }
    }

    pub fn delete_api_key(id: &str) -> Call {
        Call::without_body(Method::DELETE, format!("/admin/api-keys/{}", escaped(id)))
    }

    pub fn without_body(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            body: None,
        }
    }
}

impl AdminClient {
    /// The admin listener of `config` (a wildcard address is reached on loopback) and its
    /// token, read now.
    pub fn for_config(config: &Config) -> Result<AdminClient, String> {
        let listen = config.server.admin_listen;
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let token = config
            .admin
            .token
            .as_ref()
            .map(|source| source.read())
            .transpose()?;
        Ok(AdminClient {
            addr: SocketAddr::new(ip, listen.port()),
            token,
        })
    }

    /// The answer's status and JSON body (`null` for an empty one).
    pub async fn send(&self, call: Call) -> Result<(StatusCode, Value), String> {
        tokio::time::timeout(DEADLINE, self.exchange(call))
            .await
            .map_err(|_| format!("the admin listener at {} did not answer in time", self.addr))?
    }

    async fn exchange(&self, call: Call) -> Result<(StatusCode, Value), String> {
        let unreachable =
            |e: &dyn std::fmt::Display| format!("cannot reach the admin listener at {}: {e}", self.addr);
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let response = sender
            .send_request(self.request(call)?)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        let value = match body.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        };
        Ok((status, value))
    }

    fn request(&self, call: Call) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder()
            .method(call.method)
            .uri(call.path)
            .header(HOST, self.addr.to_string());
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let body = match call.body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        request
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))
    }
}

/// A user name or id as one path segment or query value.
fn escaped(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}
