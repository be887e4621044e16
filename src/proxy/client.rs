//! The pooled keep-alive client that carries requests to upstreams.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::time::Instant;

use super::body::{BodyTooLarge, ClientBodyFailed, RequestBody};
use super::connector::{SpoilableConnector, Spoiler};
use crate::config::UpstreamTlsConfig;
use crate::tls::{self, TlsError};

/// Why a request to an upstream got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream refused the connection")]
    Unreachable,
    #[error("the upstream failed to answer")]
    Failed,
    #[error("the upstream did not answer in time")]
    Timeout,
    /// Every endpoint of the route is out of rotation.
    #[error("no upstream endpoint is in rotation")]
    NoneHealthy,
    /// The client's body passed the size limit mid-stream.
    #[error("request body exceeds the size limit")]
    BodyTooLarge,
    /// The client's body broke off or was malformed.
    #[error("the request body is malformed or was cut short")]
    ClientBody,
}

/// Answers to the gateway's own requests are small JSON documents.
const MAX_OWN_RESPONSE: usize = 64 * 1024;

/// The pool shared by every route's `http://` endpoints; connections are keyed by upstream
/// authority. Routes with `https://` endpoints have a `TlsClient` of their own.
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
        let connector = connector();
        UpstreamClient {
            client: builder().build(SpoilableConnector(connector.clone())),
            own_requests: builder().build(connector),
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

    /// Sends `request`, waiting until `deadline` at most for the response head.
    pub(super) async fn send(
        &self,
        request: Request<RequestBody>,
        deadline: Instant,
    ) -> Result<Response<Incoming>, UpstreamError> {
        exchange(&self.client, request, deadline).await
    }
}

/// A route's own pool for `https://` (and `http://`) endpoints, with its TLS settings.
pub(super) type TlsClient = Client<HttpsConnector<SpoilableConnector>, RequestBody>;

pub(super) fn tls_client(config: &UpstreamTlsConfig) -> Result<TlsClient, TlsError> {
    let mut plain = connector();
    // The TLS layer above takes `https://` URIs; this one only opens the TCP connection.
    plain.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls::upstream_client_config(config)?)
        .https_or_http();
    let https = match &config.server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| TlsError::ServerName(e.to_string()))?;
            https.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let connector = https.enable_http1().wrap_connector(SpoilableConnector(plain));
    Ok(builder().build(connector))
}

fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector
}

fn builder() -> Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        // A retried request could reach the upstream twice; the pool decides, not hyper.
        .retry_canceled_requests(false)
        .set_host(false);
    builder
}

/// One attempt: sends `request` through `client`, waiting until `deadline` at most for the
/// response head.
pub(super) async fn exchange<C>(
    client: &Client<C, RequestBody>,
    request: Request<RequestBody>,
    deadline: Instant,
) -> Result<Response<Incoming>, UpstreamError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let asked_to_upgrade = request.headers().contains_key(UPGRADE);
    match tokio::time::timeout_at(deadline, client.request(request)).await {
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
            tracing::debug!(error = %e, source = ?e.source(), "upstream connect failed");
            Err(UpstreamError::Unreachable)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, source = ?e.source(), "upstream request failed");
            Err(UpstreamError::Failed)
        }
        Err(_elapsed) => Err(UpstreamError::Timeout),
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
