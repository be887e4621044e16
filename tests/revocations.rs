//! The in-memory revocation state (SPEC 5.4) at the library level: what 100,000 live session
//! revocations cost in memory, that none of them is forgotten before its `keep_until`, and
//! how a user revocation splits tokens at `not_before`.
//!
//! This is a test binary of its own because it installs a counting global allocator.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use portcullis::auth::keys::{KeySet, generate_missing};
use portcullis::auth::revocation::{Revocation, RevocationKind};
use portcullis::auth::tokens::{random_id, unix_now};
use portcullis::auth::{AccessTokens, Identity, Revocations, TokenError};
use support::config::for_binary;

// === a per-thread counting allocator ===

/// Counts the bytes each thread has allocated minus the bytes it has freed. Per thread, so
/// that the test harness and tests running in parallel do not blur a measurement; the
/// revocation map is only touched by the measuring thread.
struct Counting;

thread_local! {
    static NET_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // A const-initialised Cell needs no allocation and no destructor; `try_with` still keeps
    // a late allocation during thread teardown from panicking inside the allocator.
    let _ = NET_BYTES.try_with(|net| net.set(net.get() + delta));
}

fn net_bytes() -> i64 {
    NET_BYTES.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }
    // alloc_zeroed and realloc keep their defaults, which go through these two.
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// === helpers ===

const REVOCATIONS: usize = 100_000;

/// Bytes one live session revocation may cost. The map holds a `Box<str>` key (16 bytes) and
/// a `u64` per entry in a hashbrown table behind each DashMap shard: 24 bytes plus one control
/// byte per bucket, at a load factor between 7/16 (just after doubling) and 7/8, so 29 to
/// 57 bytes of table per entry, plus the key's own 32-byte heap copy (a hex sid): 61 to 89
/// bytes. 128 leaves room for a somewhat wider entry and catches anything that keeps far
/// more per revocation (a copy of the token, a per-entry allocation beyond the key, a list
/// per user) before 100,000 revocations turn into tens of MB. These are requested bytes; the
/// allocator's rounding comes on top.
const MAX_BYTES_PER_REVOCATION: f64 = 128.0;

/// The `AccessTokens` of the kit's config for the binary (ES256), its key generated into `dir`.
fn access_tokens(dir: &std::path::Path) -> AccessTokens {
    let config = portcullis::config::load(&for_binary(dir, "", "").path)
        .expect("config")
        .tokens;
    generate_missing(&config).expect("generate key");
    AccessTokens::new(&config, KeySet::load(&config).expect("load key"))
}

/// The verified identity of a real token for `sub` in session `sid`, issued at `iat`.
fn identity(tokens: &AccessTokens, sub: &str, sid: &str, iat: u64) -> Arc<Identity> {
    let issued = tokens.issue(sub, "user", sid, iat).expect("issue");
    let identity = tokens.verify(&issued.token, unix_now()).expect("a valid token");
    assert_eq!((identity.sid.as_str(), identity.iat), (sid, iat));
    identity
}

// === tests ===

#[test]
fn a_hundred_thousand_session_revocations_stay_enforced_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = access_tokens(dir.path());
    let now = unix_now();
    let keep_until = now + 3600;
    // Built before the measurement: only what `apply` keeps is counted.
    let revocations: Vec<Revocation> = (0..REVOCATIONS)
        .map(|_| Revocation {
            kind: RevocationKind::Session,
            key: random_id(),
            not_before: now,
            keep_until,
        })
        .collect();
    let state = Revocations::new();

    let before = net_bytes();
    for revocation in &revocations {
        state.apply(revocation);
    }
    let bytes = net_bytes() - before;

    let per_revocation = bytes as f64 / REVOCATIONS as f64;
    println!(
        "{REVOCATIONS} session revocations: {bytes} bytes in total, {per_revocation:.1} bytes per revocation"
    );
    assert_eq!(state.len(), (REVOCATIONS, 0));
    assert!(
        bytes > 0,
        "the allocator counted nothing: the measurement is broken"
    );
    assert!(
        per_revocation < MAX_BYTES_PER_REVOCATION,
        "{per_revocation:.1} bytes per revocation, over {MAX_BYTES_PER_REVOCATION}"
    );

    let first = identity(&tokens, "alice", &revocations[0].key, now);
    let last = identity(&tokens, "alice", &revocations[REVOCATIONS - 1].key, now);
    let never = identity(&tokens, "alice", &random_id(), now);
    assert_eq!(
        state.check(&first),
        Err(TokenError::Revoked),
        "the first revocation"
    );
    assert_eq!(
        state.check(&last),
        Err(TokenError::Revoked),
        "the last revocation"
    );
    assert_eq!(state.check(&never), Ok(()), "a session that was never revoked");

    // Purging before keep_until forgets nothing, however many entries there are.
    state.purge(now);
    state.purge(keep_until - 1);
    assert_eq!(state.len(), (REVOCATIONS, 0), "purge dropped live revocations");
    assert_eq!(state.check(&first), Err(TokenError::Revoked), "after purge");
    assert_eq!(state.check(&never), Ok(()));

    // Once their tokens have expired they may go, and they do.
    state.purge(keep_until);
    assert_eq!(
        state.len(),
        (0, 0),
        "purge at keep_until kept expired revocations"
    );
    assert_eq!(state.check(&first), Ok(()));
}

#[test]
fn a_user_revocation_covers_tokens_issued_before_not_before_and_no_later_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = access_tokens(dir.path());
    let now = unix_now();
    let not_before = now - 10;
    let state = Revocations::new();
    state.apply(&Revocation {
        kind: RevocationKind::User,
        key: "alice".into(),
        not_before,
        keep_until: now + 900,
    });
    assert_eq!(state.len(), (0, 1));

    let sid = random_id();
    for (iat, expected) in [
        (not_before - 5, Err(TokenError::Revoked)),
        (not_before - 1, Err(TokenError::Revoked)),
        (not_before, Ok(())),
        (not_before + 1, Ok(())),
        (now, Ok(())),
    ] {
        let identity = identity(&tokens, "alice", &sid, iat);
        assert_eq!(
            state.check(&identity),
            expected,
            "alice's token issued at not_before {:+}",
            iat as i64 - not_before as i64
        );
    }
    // Another user's old token is untouched.
    let bob = identity(&tokens, "bob", &random_id(), not_before - 5);
    assert_eq!(state.check(&bob), Ok(()), "bob's token");

    // A second revocation with an earlier not_before never shortens the first.
    state.apply(&Revocation {
        kind: RevocationKind::User,
        key: "alice".into(),
        not_before: not_before - 100,
        keep_until: now + 10,
    });
    let old = identity(&tokens, "alice", &sid, not_before - 1);
    assert_eq!(
        state.check(&old),
        Err(TokenError::Revoked),
        "after an older revocation"
    );
    state.purge(now + 10);
    assert_eq!(state.len(), (0, 1), "an older revocation shortened keep_until");
    assert_eq!(state.check(&old), Err(TokenError::Revoked));
}
