//! WebSocket tunnels: the upgrade passes through only after authentication, the tunnel opens
//! only when the upstream answers 101, and it is closed when the caller's session is revoked.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::ResponseBody;
use super::headers::strip_hop_by_hop;
use crate::auth::{Identity, Revocations};

/// An HTTP/1.1 `GET` asking to switch to the WebSocket protocol.
pub fn is_websocket<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    request.method() == Method::GET
        && request.version() == Version::HTTP_11
        && has_token(UPGRADE, "websocket")
        && has_token(CONNECTION, "upgrade")
}

/// Restores the two hop-by-hop headers an upgrade needs after the hygiene removed them.
pub fn ask_for_upgrade(headers: &mut HeaderMap) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

/// What a tunnel watches to know when to close.
pub struct TunnelGuard {
    pub revocations: Arc<Revocations>,
    pub identity: Option<Arc<Identity>>,
    pub shutdown: CancellationToken,
}

/// Joins the client's and the upstream's upgraded connections in a background task, and
/// returns the 101 that lets the client switch.
pub fn tunnel(
    mut upstream: Response<Incoming>,
    downstream: OnUpgrade,
    guard: TunnelGuard,
) -> Response<ResponseBody> {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    tokio::spawn(async move {
        let (Ok(client), Ok(server)) = tokio::join!(downstream, upstream_upgrade) else {
            return;
        };
        let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            _ = revoked(&guard) => {
                let sub = guard.identity.as_ref().map(|i| i.sub.as_str()).unwrap_or("-");
                tracing::info!(target: "portcullis::audit", event = "tunnel_closed", %sub, reason = "session revoked");
            }
            _ = guard.shutdown.cancelled() => {}
        }
    });
    let (mut parts, _) = upstream.into_parts();
    let upgrade = parts.headers.get(UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(upgrade) = upgrade {
        parts.headers.insert(UPGRADE, upgrade);
    }
    Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
}

/// Resolves when the tunnel's identity is revoked; never for an anonymous tunnel.
async fn revoked(guard: &TunnelGuard) {
    let Some(identity) = &guard.identity else {
        return std::future::pending().await;
    };
    let mut changes = guard.revocations.subscribe();
    loop {
        if guard.revocations.check(identity).is_err() {
            return;
        }
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
