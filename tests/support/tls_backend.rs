//! Backends for upstream tests: a test CA and the certificates it signs, and a real HTTP or
//! HTTPS server (which may require client certificates) that records the TLS handshakes it
//! completed and the requests it answered, and that a test can kill and restart on its port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::DEADLINE;

/// A certificate authority of the test's own, trusted by nothing else.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this CA, for `usage`.
    pub fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        Leaf { cert, key }
    }

    /// Writes the CA certificate as PEM to `dir`/`name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        write(dir, name, self.cert.pem())
    }
}

/// A certificate signed by a `TestCa`, with its key.
pub struct Leaf {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Leaf {
    /// Writes `dir`/`stem`.crt and `dir`/`stem`.key as PEM.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = write(dir, &format!("{stem}.crt"), self.cert.pem());
        (cert, write(dir, &format!("{stem}.key"), self.key.serialize_pem()))
    }

    /// A server config presenting this certificate; with `client_ca`, a client must present
    /// a certificate that CA signed.
    pub fn server_config(&self, client_ca: Option<&TestCa>) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.cert.der().clone()).expect("client CA");
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                builder.with_client_cert_verifier(verifier.build().expect("client verifier"))
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let config = builder.with_single_cert(vec![self.cert.der().clone()], key);
        Arc::new(config.expect("server config"))
    }
}

fn write(dir: &Path, name: &str, contents: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write PEM");
    path
}

/// One TLS handshake a backend completed.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The client's end-entity certificate, if it presented one.
    pub client_cert: Option<CertificateDer<'static>>,
}

/// What a backend saw; it outlives restarts.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    pub handshakes: Mutex<Vec<Handshake>>,
    /// The target of every request answered, counted at the HTTP layer (after the handshake).
    pub targets: Mutex<Vec<String>>,
}

impl Seen {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().expect("handshakes").clone()
    }

    /// How many requests answered had a target starting with `prefix`.
    pub fn requests(&self, prefix: &str) -> usize {
        let targets = self.targets.lock().expect("targets");
        targets.iter().filter(|t| t.starts_with(prefix)).count()
    }
}

/// A backend answering every request with the demo echo, over HTTP or HTTPS.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    tls: Option<TlsAcceptor>,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn plain() -> Backend {
        Backend::listen(([127, 0, 0, 1], 0).into(), None, Arc::default()).await
    }

    pub async fn tls(config: Arc<ServerConfig>) -> Backend {
        Backend::listen(([127, 0, 0, 1], 0).into(), Some(config.into()), Arc::default()).await
    }

    async fn listen(addr: SocketAddr, tls: Option<TlsAcceptor>, seen: Arc<Seen>) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let (acceptor, shared) = (tls.clone(), seen.clone());
        let task = tokio::spawn(async move {
            // The connections belong to this task: killing it closes them with the listener,
            // so no keep-alive connection survives the kill.
            let mut connections = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, seen) = (acceptor.clone(), shared.clone());
                connections.spawn(async move {
                    let Some(acceptor) = acceptor else {
                        return serve(tcp, seen).await;
                    };
                    let Ok(Ok(tls)) = tokio::time::timeout(DEADLINE, acceptor.accept(tcp)).await else {
                        return;
                    };
                    let connection = tls.get_ref().1;
                    let handshake = Handshake {
                        sni: connection.server_name().map(str::to_string),
                        client_cert: connection.peer_certificates().and_then(|c| c.first().cloned()),
                    };
                    seen.handshakes.lock().expect("handshakes").push(handshake);
                    serve(tls, seen).await;
                });
            }
        });
        Backend {
            addr,
            seen,
            tls,
            task,
        }
    }

    /// Closes the listener and every connection: connects to the port are refused.
    pub async fn kill(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Listens again on the same port, with the same TLS settings and the same `seen`.
    pub async fn restart(&mut self) {
        *self = Backend::listen(self.addr, self.tls.clone(), self.seen.clone()).await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, seen: Arc<Seen>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let target = request.uri().to_string();
        seen.targets.lock().expect("targets").push(target);
        async move { Ok::<_, Infallible>(portcullis::demo::echo(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    let _ = connection.await;
}
