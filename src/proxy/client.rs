//! The pooled keep-alive client that carries requests to upstreams.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::{BodyTooLarge, ClientBodyFailed, RequestBody};
use super::connector::{SpoilableConnector, Spoiler};

/// Why a request to an upstream got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream refused the connection")]
    Unreachable,
    #[error("the upstream failed to answer")]
    Failed,
    #[error("the upstream did not answer in time")]
    Timeout,
    /// The client's body passed the size limit mid-stream.
    #[error("request body exceeds the size limit")]
    BodyTooLarge,
    /// The client's body broke off or was malformed.
    #[error("the request body is malformed or was cut short")]
    ClientBody,
}

/// Answers to the gateway's own requests are small JSON documents.
const MAX_OWN_RESPONSE: usize = 64 * 1024;

/// One pool shared by all routes; connections are keyed by upstream authority.
///
/// hyper drops a pooled connection on any protocol error, and `send` spoils one whose
/// response hyper accepted but a proxy must refuse, so an upstream that answered with a
/// malformed response never gets another request on that connection.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<SpoilableConnector, RequestBody>,
    /// For requests the gateway writes itself (e.g. the `check_url` password check).
    own_requests: Client<HttpConnector, Full<Bytes>>,
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamClient {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            // A retried request could reach the upstream twice; the client decides, not us.
            .retry_canceled_requests(false)
            .set_host(false);
        UpstreamClient {
            client: builder.build(SpoilableConnector(connector.clone())),
            own_requests: builder.build(connector),
        }
    }

    /// POSTs a JSON body the gateway wrote itself and reads the whole (bounded) answer.
    pub async fn post_json(
        &self,
        uri: &Uri,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), UpstreamError> {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let request = Request::post(uri.clone())
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| UpstreamError::Failed)?;
        let exchange = async {
            let response = self
                .own_requests
                .request(request)
                .await
                .map_err(|e| match e.is_connect() {
                    true => UpstreamError::Unreachable,
                    false => UpstreamError::Failed,
                })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_OWN_RESPONSE)
                .collect()
                .await;
            let body = body.map_err(|_| UpstreamError::Failed)?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// Sends `request`, waiting at most `timeout` for the response head.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let asked_to_upgrade = request.headers().contains_key(UPGRADE);
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => match malformed(&response, asked_to_upgrade) {
                None => Ok(response),
                Some(what) => {
                    tracing::debug!(what, "upstream sent a malformed response");
                    // hyper would drain a short body and pool the connection again.
                    if let Some(spoiler) = response.extensions().get::<Spoiler>() {
                        spoiler.spoil();
                    }
                    Err(UpstreamError::Failed)
                }
            },
            Ok(Err(e)) if caused_by::<BodyTooLarge>(&e) => Err(UpstreamError::BodyTooLarge),
            Ok(Err(e)) if caused_by::<ClientBodyFailed>(&e) => Err(UpstreamError::ClientBody),
            Ok(Err(e)) if e.is_connect() => {
                tracing::debug!(error = %e, "upstream connect failed");
                Err(UpstreamError::Unreachable)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, source = ?e.source(), "upstream request failed");
                Err(UpstreamError::Failed)
            }
            Err(_elapsed) => Err(UpstreamError::Timeout),
        }
    }
}

/// What hyper accepts but a proxy must not relay (RFC 9112 6.3, RFC 9110 15.2.2).
fn malformed(response: &Response<Incoming>, asked_to_upgrade: bool) -> Option<&'static str> {
    let headers = response.headers();
    if headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH) {
        return Some("both Content-Length and Transfer-Encoding");
    }
    if response.status() == StatusCode::SWITCHING_PROTOCOLS && !asked_to_upgrade {
        return Some("a protocol switch nobody asked for");
    }
    None
}

fn caused_by<T: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}
