//! The HTTPS client that talks to one identity provider: TLS verified against the system's
//! roots and the provider's `ca_file`, every exchange bounded in time and size. Never on the
//! request path of a proxied request.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::tls::{self, TlsError};

/// Connecting, sending and reading the whole answer must fit in this.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Discovery documents, key sets and token responses are a few KiB.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{0} is not a valid URL")]
    BadUrl(String),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0} did not answer in time")]
    Timeout(String),
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{0} sent more than 1 MiB")]
    TooLarge(String),
}

/// A provider's answer: its status and its (bounded) body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Clone)]
pub(crate) struct ProviderHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ProviderHttp {
    /// TLS only: a provider's endpoints are always `https://`.
    pub(crate) fn new(ca_file: Option<&Path>) -> Result<ProviderHttp, TlsError> {
        Self::build(ca_file, false)
    }

    /// Plain `http://` too: for an issuer on loopback, which config checks allow only there.
    pub(crate) fn with_loopback_http(ca_file: Option<&Path>) -> Result<ProviderHttp, TlsError> {
        Self::build(ca_file, true)
    }

    fn build(ca_file: Option<&Path>, plain_http: bool) -> Result<ProviderHttp, TlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls::client_config(ca_file)?).clone());
        let https = match plain_http {
            true => builder.https_or_http().enable_http1().wrap_connector(http),
            false => builder.https_only().enable_http1().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(ProviderHttp { client })
    }

    /// `GET url` expecting 200 with a JSON body.
    pub(crate) async fn get_json(&self, url: &str) -> Result<Bytes, FetchError> {
        let request = Request::get(url).header(ACCEPT, "application/json");
        let answer = self.exchange(url, request, Bytes::new()).await?;
        match answer.status {
            StatusCode::OK => Ok(answer.body),
            status => Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            }),
        }
    }

    /// `POST url` with a form body (and Basic credentials when given); any status is returned,
    /// since an error answer of a token endpoint carries its reason.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: String,
        basic: Option<HeaderValue>,
    ) -> Result<Answer, FetchError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(credentials) = basic {
            request = request.header(AUTHORIZATION, credentials);
        }
        self.exchange(url, request, Bytes::from(form)).await
    }

    async fn exchange(
        &self,
        url: &str,
        request: http::request::Builder,
        body: Bytes,
    ) -> Result<Answer, FetchError> {
        let request = request
            .body(Full::new(body))
            .map_err(|_| FetchError::BadUrl(url.to_owned()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Unreachable {
                    url: url.to_owned(),
                    reason: error_chain(&e),
                })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                    Some(_) => FetchError::TooLarge(url.to_owned()),
                    None => FetchError::Unreachable {
                        url: url.to_owned(),
                        reason: error_chain(&*e),
                    },
                })?;
            Ok(Answer {
                status,
                body: body.to_bytes(),
            })
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(FetchError::Timeout(url.to_owned())))
    }
}

/// The error and its causes on one line: hyper's own message says little ("client error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
