//! The admin token compare (SPEC 15, issue 20): a wrong token must cost what the right one
//! does, whatever it gets right (no early exit). The presented token is hashed first, so the
//! time follows only its length, which the caller knows anyway, never the secret.
//! Run with `cargo bench --bench admin_token`; the four cases should read alike.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use portcullis::auth::admin_token::AdminToken;
use portcullis::config::SecretSource;

const TOKEN: &str = "4f1c2b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b";

fn presenting(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    headers
}

fn compare(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("admin.token");
    std::fs::write(&path, TOKEN).expect("token file");
    let admin = AdminToken::load(&SecretSource::File(path)).expect("loads");
    let wrong_last = format!("{}0", &TOKEN[..TOKEN.len() - 1]);
    let wrong_first = format!("0{}", &TOKEN[1..]);
    let mut group = c.benchmark_group("admin token");
    for (case, token) in [
        ("right", TOKEN),
        ("wrong in the last byte", wrong_last.as_str()),
        ("wrong in the first byte", wrong_first.as_str()),
        ("one character", "x"),
    ] {
        let headers = presenting(token);
        assert_eq!(admin.admits(&headers), case == "right");
        group.bench_function(case, |b| b.iter(|| black_box(admin.admits(black_box(&headers)))));
    }
    group.finish();
}

criterion_group!(benches, compare);
criterion_main!(benches);
