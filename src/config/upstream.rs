//! How a route reaches its backends (SPEC 12): the endpoints, how requests spread over them,
//! which failures are retried, the TLS settings for `https://` endpoints and the health check.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};

/// A route's backends; a route without one is decision-only (forward-auth answers only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Never empty, no endpoint twice.
    pub endpoints: Vec<Endpoint>,
    pub balance: Balance,
    /// How many other attempts a request may get (bounded by validation).
    pub retries: u32,
    /// For the `https://` endpoints.
    pub tls: UpstreamTlsConfig,
    pub health_check: Option<HealthCheckConfig>,
}

impl UpstreamConfig {
    /// Whether some endpoint speaks TLS.
    pub fn uses_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.scheme == Scheme::HTTPS)
    }
}

/// One backend address: `http://` or `https://`, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Power of two random choices: the less busy of two healthy endpoints.
    LeastRequest,
    RoundRobin,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsConfig {
    /// The CAs that may sign the backends' certificates; `None`: the system roots.
    pub ca_file: Option<PathBuf>,
    /// The gateway's certificate and key for backends that require mutual TLS.
    pub client_cert: Option<ClientCertificate>,
    /// The name sent as SNI and verified in the certificate; `None`: each endpoint's host.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Asked with `GET`; any 2xx passes.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}
