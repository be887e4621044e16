//! Sending one request through a route's pool: pick an endpoint, send, and on failure try
//! another endpoint within `retries`, but only when that cannot make the request happen twice
//! (SPEC 12): after a failed connect (nothing reached the upstream; the unread body comes
//! back), or for an idempotent method whose body is empty or was never read.

use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::RequestBody;
use super::client::{UpstreamClient, UpstreamError, exchange};
use super::pool::UpstreamPool;
use crate::config::Endpoint;

impl UpstreamPool {
    /// Sends `request` (its URI a path and query) to an endpoint, trying others after failures
    /// the retry policy allows, until `deadline` for the response head.
    pub async fn send(
        &self,
        plain: &UpstreamClient,
        request: Request<RequestBody>,
        deadline: Instant,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let (mut parts, mut body) = request.into_parts();
        let mut path = std::mem::take(&mut parts.uri)
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let body_was_empty = body.is_end_stream();
        let (mut tried, mut retries_left) = (0u64, self.retries);
        let mut i = self.pick(tried).ok_or(UpstreamError::NoneHealthy)?;
        loop {
            tried |= 1 << i;
            // The last attempt takes the path itself: no copy when there will be no retry.
            let attempt_path = match retries_left {
                0 => std::mem::replace(&mut path, PathAndQuery::from_static("/")),
                _ => path.clone(),
            };
            parts.uri = endpoint_uri(&self.endpoints[i].endpoint, attempt_path)?;
            // A copy of the head only where a retry may need it: it costs a header-map clone.
            let again = (retries_left > 0).then(|| head_copy(&parts));
            let (attempt, reclaimed) = match again.is_some() && !body_was_empty {
                true => {
                    let (body, back) = body.reclaimable();
                    (body, Some(back))
                }
                false => (body, None),
            };
            let method = parts.method.clone();
            let request = Request::from_parts(parts, attempt);
            let result = {
                let _busy = self.busy(i);
                match &self.tls {
                    Some(client) => exchange(client, request, deadline).await,
                    None => plain.send(request, deadline).await,
                }
            };
            let error = match result {
                Ok(response) => {
                    self.answered(i);
                    return Ok(response);
                }
                Err(error) => error,
            };
            if error == UpstreamError::Unreachable {
                self.connect_failed(i);
            }
            let Some(next_head) = again.filter(|_| may_retry(error, &method)) else {
                return Err(error);
            };
            body = match (body_was_empty, reclaimed.map(|mut back| back.try_recv())) {
                (true, _) => RequestBody::empty(),
                (false, Some(Ok(unread))) => unread,
                // Some of the body is gone upstream: it cannot be sent again.
                _ => return Err(error),
            };
            let Some(next) = self.pick(tried) else {
                return Err(error);
            };
            tracing::debug!(route = %self.route, endpoint = %self.endpoints[i].label, %error, "retrying on another endpoint");
            (i, parts, retries_left) = (next, next_head, retries_left - 1);
        }
    }
}

/// A connect that failed sent nothing; any other failure may have reached the upstream, which
/// only an idempotent method (RFC 9110 9.2.2) may risk twice. A timeout is never retried: the
/// route's timeout bounds the whole exchange.
fn may_retry(error: UpstreamError, method: &Method) -> bool {
    match error {
        UpstreamError::Unreachable => true,
        UpstreamError::Failed => method.is_idempotent(),
        _ => false,
    }
}

pub(super) fn endpoint_uri(endpoint: &Endpoint, path: PathAndQuery) -> Result<Uri, UpstreamError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(endpoint.scheme.clone());
    parts.authority = Some(endpoint.authority.clone());
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).map_err(|_| UpstreamError::Failed)
}

fn head_copy(parts: &http::request::Parts) -> http::request::Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}
