//! Session benchmarks: refresh throughput against the SQLite store (every refresh is one
//! durable transaction) and start-up (open + revocation load) with 1,000,000 stored sessions.
//! Run with `cargo bench --bench sessions`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::auth::Revocations;
use portcullis::auth::tokens::unix_now;
use portcullis::secret::Secret;
use portcullis::sessions::refresh_token::new_seed;
use portcullis::sessions::service::{Holder, SessionService, Standing};
use portcullis::sessions::sqlite::SqliteStore;
use portcullis::sessions::store::{NewSession, Origin, Store, Timing};

fn timing() -> Timing {
    let now_ms = portcullis::auth::tokens::unix_now_ms();
    Timing {
        now: now_ms / 1000,
        now_ms,
        grace_ms: 30_000,
        idle_ttl: 7 * 86_400,
        revocation_ttl: 905,
    }
}

fn alice(origin: &Origin) -> Holder<'_> {
    Holder {
        sub: "alice",
        role: "admin",
        ip: "127.0.0.1".into(),
        user_agent: None,
        origin,
    }
}

fn refresh(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("open"));
    let service = SessionService::new(store, Arc::new(Revocations::new()), Default::default());
    let started = runtime
        .block_on(service.begin(alice(&Origin::local(unix_now())), unix_now(), 86_400))
        .expect("begin");
    let mut token = started.refresh_token;
    c.bench_function("refresh/sqlite (rotate, fsync per commit)", |b| {
        b.iter(|| {
            let refreshed = runtime
                .block_on(service.refresh(&token, timing(), |_| Standing::Unknown, None))
                .expect("refresh");
            token = refreshed.refresh_token;
        })
    });
}

/// Seeds a database with `count` sessions, 1% of them revoked, once; then measures opening it
/// and rebuilding the in-memory revocation state, which is what a start does.
fn startup(c: &mut Criterion) {
    const COUNT: usize = 1_000_000;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("million.db");
    let store = SqliteStore::open(&path).expect("open");
    let now = unix_now();
    let seeding = Instant::now();
    let sessions = (0..COUNT).map(|i| NewSession {
        sid: format!("{i:032x}"),
        sub: format!("user{}", i % 50_000),
        role: "user".into(),
        seed: Secret::new(new_seed()),
        created_at: now,
        expires_at: now + 86_400,
        user_agent: Some("bench".into()),
        ip: "127.0.0.1".into(),
        origin: Origin::local(now),
    });
    store.insert_many_for_bench(sessions).expect("seed sessions");
    let revoked = runtime.block_on(async {
        for i in (0..COUNT).step_by(100) {
            store
                .revoke_session(&format!("{i:032x}"), timing())
                .await
                .expect("revoke");
        }
        COUNT / 100
    });
    println!(
        "seeded {COUNT} sessions ({revoked} revoked) in {:?}",
        seeding.elapsed()
    );
    drop(store);
    let mut group = c.benchmark_group("startup");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("open + load revocations, 1M sessions", |b| {
        b.iter(|| {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
            let service = SessionService::new(store, Arc::new(Revocations::new()), Default::default());
            let (loaded, _feed) = runtime.block_on(service.load_state(unix_now())).expect("load");
            assert_eq!(loaded, revoked);
        })
    });
    group.finish();
}

criterion_group!(benches, refresh, startup);
criterion_main!(benches);
