//! Micro-benchmarks of the per-request hot path: token verification (cached and uncached, per
//! algorithm), path normalisation, upstream header rewriting and the HTTP/1.1 framing guard.
//! Run with `cargo bench`.

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis::auth::AccessTokens;
use portcullis::auth::api_keys::{ApiKeys, NewApiKey, generate};
use portcullis::auth::keys::{KeySet, generate_missing};
use portcullis::auth::tokens::unix_now;
use portcullis::config::{KeyAlgorithm, KeyConfig, KeySource, TokensConfig};
use portcullis::path::normalize_path;
use portcullis::proxy::headers;
use portcullis::server::framing;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

fn tokens_for(alg: KeyAlgorithm, dir: &std::path::Path) -> AccessTokens {
    let source = match alg {
        KeyAlgorithm::Hs256 => KeySource::SecretFile(dir.join(alg.name())),
        _ => KeySource::PrivateKeyFile(dir.join(alg.name())),
    };
    let config = TokensConfig {
        issuer: "portcullis".into(),
        audience: "default".into(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86_400),
        refresh_idle_ttl: Duration::from_secs(86_400),
        refresh_grace: Duration::from_secs(30),
        leeway: Duration::from_secs(5),
        keys: vec![KeyConfig {
            kid: "k1".into(),
            alg,
            source,
            generate_if_missing: true,
        }],
    };
    generate_missing(&config).expect("generate key");
    AccessTokens::new(&config, KeySet::load(&config).expect("load key"))
}

fn verification(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    for alg in [
        KeyAlgorithm::Hs256,
        KeyAlgorithm::Es256,
        KeyAlgorithm::EdDsa,
        KeyAlgorithm::Rs256,
    ] {
        let tokens = tokens_for(alg, dir.path());
        let now = unix_now();
        let token = tokens
            .issue("alice", "admin", "session-1", now)
            .expect("issue")
            .token;
        c.bench_function(&format!("verify/{}/cached", alg.name()), |b| {
            b.iter(|| tokens.verify(black_box(&token), now).expect("valid"))
        });
        // A fresh token per iteration would measure signing too, so the uncached path is
        // measured by rebuilding the verifier's cache: a new AccessTokens per batch.
        c.bench_function(&format!("verify/{}/uncached", alg.name()), |b| {
            b.iter_batched(
                || tokens_for(alg, dir.path()),
                |fresh| fresh.verify(black_box(&token), now).expect("valid"),
                criterion::BatchSize::PerIteration,
            )
        });
    }
}

/// An API key (SPEC 11): one map lookup, one SHA-256 of the key, a constant-time compare.
fn api_key_verification(c: &mut Criterion) {
    let keys = ApiKeys::new();
    let new = NewApiKey {
        sub: "ci:deploy",
        role: "deployer",
        name: "bench",
        expires_in: None,
    };
    let now = unix_now();
    let (record, key) = generate(&new, now);
    keys.insert(&record).expect("insert");
    for _ in 0..10_000 {
        keys.insert(&generate(&new, now).0).expect("insert");
    }
    c.bench_function("verify/api_key", |b| {
        b.iter(|| keys.verify(black_box(&key), now).expect("valid"))
    });
}

fn path_normalisation(c: &mut Criterion) {
    c.bench_function("normalize/plain", |b| {
        b.iter(|| normalize_path(black_box("/api/v1/users/42/orders")))
    });
    c.bench_function("normalize/messy", |b| {
        b.iter(|| normalize_path(black_box("/api//v1/./users/%7Ealice/../42/%3a")))
    });
}

fn header_rewriting(c: &mut Criterion) {
    let mut template = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("authorization", "Bearer abc.def.ghi"),
        ("cookie", "theme=dark; __Host-portcullis-access=tok"),
        ("x-auth-sub", "spoofed"),
        ("connection", "keep-alive"),
    ] {
        template.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let identity = [
        HeaderName::from_static("x-auth-sub"),
        HeaderName::from_static("x-auth-role"),
        HeaderName::from_static("x-auth-session"),
    ];
    c.bench_function("headers/strip", |b| {
        b.iter_batched(
            || template.clone(),
            |mut headers| {
                headers::strip_hop_by_hop(&mut headers);
                headers::strip_identity(&mut headers, &identity);
                headers::strip_own_cookies(
                    &mut headers,
                    &["__Host-portcullis-access", "__Secure-portcullis-refresh"],
                );
                headers
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// A client that sends the same bytes again on every read, as fast as they are read.
struct Repeat(&'static [u8]);

impl AsyncRead for Repeat {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        buf.put_slice(self.0);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Repeat {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One read of a whole browser-sized request head through the guard, and its verdict taken.
fn framing_guard(c: &mut Criterion) {
    const HEAD: &[u8] = b"GET /api/v1/orders/12345?expand=items&page=2 HTTP/1.1\r\n\
        Host: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: application/json, text/plain, */*\r\nAccept-Language: en-GB,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\nAuthorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln\r\n\
        Referer: https://app.example.com/orders\r\nCookie: theme=dark; lang=en\r\n\
        Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Site: same-site\r\nConnection: keep-alive\r\n\r\n";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let (mut guard, verdicts) = framing::guard(Repeat(HEAD), Duration::from_secs(10), 16384);
    let mut storage = vec![0u8; 8192];
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function("framing/guard", |b| {
        b.iter(|| {
            let mut buf = ReadBuf::new(&mut storage);
            let polled = Pin::new(&mut guard).poll_read(&mut cx, &mut buf);
            assert!(matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() == HEAD.len());
            black_box(verdicts.next_request()).expect("admitted");
        })
    });
}

criterion_group!(
    benches,
    verification,
    api_key_verification,
    path_normalisation,
    header_rewriting,
    framing_guard
);
criterion_main!(benches);
