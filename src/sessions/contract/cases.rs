//! The contract cases: SPEC 5.3 (rotation, replay, reuse, ending) and 5.4 (revocation,
//! listing, purging) as every store must apply them. Each case gets a fresh, empty store.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::*;
use crate::sessions::store::{Advance, Revocation, StoreError};

pub(super) async fn a_created_session_reads_back_with_its_seed_intact(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    let record = store.get("s1").await.expect("get").expect("present");
    assert_eq!(record.seed.expose(), &seed_for("s1"));
    assert_eq!(
        (record.sid.as_str(), record.sub.as_str(), record.role.as_str()),
        ("s1", "alice", "user")
    );
    assert_eq!(
        (record.generation, record.rotated_at_ms, record.last_used_at),
        (0, T0 * 1000, T0)
    );
    assert_eq!((record.created_at, record.expires_at), (T0, T0 + REFRESH_TTL));
    assert_eq!(record.user_agent.as_deref(), Some("curl/8"));
    assert_eq!((record.ip.as_str(), record.revoked_at), ("192.0.2.7", None));
    assert!(store.get("unknown").await.expect("get").is_none());

    let mut anonymous = new_session("s2", "alice", T0);
    anonymous.user_agent = None;
    store.create(anonymous).await.expect("create");
    assert_eq!(
        store.get("s2").await.expect("get").expect("present").user_agent,
        None
    );
    store.ping().await.expect("ping");
    store.flush().await.expect("flush");
}

pub(super) async fn creating_a_session_id_twice_is_refused(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    assert!(matches!(
        store.create(new_session("s1", "bob", T0)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(store.get("s1").await.expect("get").expect("present").sub, "alice");
}

pub(super) async fn the_live_token_rotates_and_the_previous_one_replays_only_within_the_grace(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    assert_eq!(
        store.advance("s1", 0, at(T0 + 5)).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    assert_eq!(
        store.advance("s1", 0, at(T0 + 14)).await,
        Ok(Advance::Replayed { generation: 1 })
    );
    let record = store.get("s1").await.expect("get").expect("present");
    assert_eq!(
        (record.generation, record.rotated_at_ms, record.last_used_at),
        (1, (T0 + 5) * 1000, T0 + 14)
    );

    assert_eq!(
        store.advance("s1", 0, at(T0 + 5 + GRACE)).await,
        Ok(Advance::Reuse)
    );
    let record = store.get("s1").await.expect("get").expect("present");
    assert_eq!(record.revoked_at, Some(T0 + 5 + GRACE));
    let revocations = store.revocations(T0 + 5 + GRACE).await.expect("revocations");
    let expected = Revocation {
        kind: RevocationKind::Session,
        key: "s1".to_owned(),
        not_before: T0 + 5 + GRACE,
        keep_until: T0 + 5 + GRACE + REVOCATION_TTL,
    };
    assert_eq!(revocations, vec![expected]);
    assert_eq!(
        store.advance("s1", 1, at(T0 + 16)).await,
        Ok(Advance::Ended),
        "the live token died too"
    );
}

pub(super) async fn the_grace_window_is_measured_in_milliseconds_and_half_open(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    let mut timing = at(T0 + 1);
    timing.now_ms += 250;
    timing.grace_ms = 500;
    assert_eq!(
        store.advance("s1", 0, timing).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    timing.now_ms += 499;
    assert_eq!(
        store.advance("s1", 0, timing).await,
        Ok(Advance::Replayed { generation: 1 })
    );
    timing.now_ms += 1;
    assert_eq!(store.advance("s1", 0, timing).await, Ok(Advance::Reuse));
}

pub(super) async fn an_older_or_a_future_generation_is_reuse(s: Subject) {
    let store = &*s.store;
    for sid in ["old", "future"] {
        created(store, sid, "alice", T0).await;
        for presented in 0..2 {
            assert!(matches!(
                store.advance(sid, presented, at(T0 + 1)).await,
                Ok(Advance::Rotated { .. })
            ));
        }
    }
    assert_eq!(
        store.advance("old", 0, at(T0 + 2)).await,
        Ok(Advance::Reuse),
        "two generations back"
    );
    assert_eq!(
        store.advance("future", 3, at(T0 + 2)).await,
        Ok(Advance::Reuse),
        "never issued"
    );
    assert_eq!(
        store.advance("future", u64::MAX, at(T0 + 2)).await,
        Ok(Advance::Ended)
    );

    // Generations are compared exactly, also beyond what a Lua number holds exactly.
    created(store, "huge", "alice", T0).await;
    assert_eq!(
        store.advance("huge", u64::MAX, at(T0 + 1)).await,
        Ok(Advance::Reuse)
    );
}

pub(super) async fn expired_idle_revoked_and_unknown_sessions_have_ended(s: Subject) {
    let store = &*s.store;
    created(store, "expired", "alice", T0).await;
    created(store, "idle", "alice", T0).await;
    created(store, "revoked", "alice", T0).await;
    // Keep "expired" in use so that only the absolute end applies to it.
    let generation = || async {
        store
            .get("expired")
            .await
            .expect("get")
            .expect("present")
            .generation
    };
    let mut now = T0;
    while now + IDLE_TTL / 2 < T0 + REFRESH_TTL {
        now += IDLE_TTL / 2;
        assert!(matches!(
            store.advance("expired", generation().await, at(now)).await,
            Ok(Advance::Rotated { .. })
        ));
    }
    assert_eq!(
        store
            .advance("expired", generation().await, at(T0 + REFRESH_TTL))
            .await,
        Ok(Advance::Ended)
    );
    assert_eq!(
        store.advance("idle", 0, at(T0 + IDLE_TTL - 1)).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    assert_eq!(
        store.advance("idle", 1, at(T0 + 2 * IDLE_TTL - 1)).await,
        Ok(Advance::Ended)
    );
    revoked(store, "revoked", T0 + 1).await;
    assert_eq!(store.advance("revoked", 0, at(T0 + 2)).await, Ok(Advance::Ended));
    assert_eq!(store.advance("unknown", 0, at(T0 + 2)).await, Ok(Advance::Ended));
    // Ending is not reuse: nothing but the explicit revocation was recorded.
    assert_eq!(
        revocation_list(store, T0 + 2).await,
        vec![(RevocationKind::Session, "revoked".to_owned())]
    );
}

pub(super) async fn concurrent_refreshes_of_one_session_rotate_exactly_once(s: Subject) {
    created(&*s.store, "s1", "alice", T0).await;
    let outcomes = race(32, |_| Arc::clone(&s.store)).await;
    assert_eq!(count(&outcomes, Advance::Rotated { generation: 1 }), 1);
    assert_eq!(count(&outcomes, Advance::Replayed { generation: 1 }), 31);
    assert_eq!(
        s.store.get("s1").await.expect("get").expect("present").generation,
        1
    );
}

/// Two stores on the same data stand for two gateways (or two processes on one file).
pub(super) async fn two_stores_on_the_same_data_racing_keep_one_lineage(s: Subject) {
    let first = Arc::clone(&s.store);
    let second = s.another().await;
    created(&*first, "s1", "alice", T0).await;
    let outcomes = race(16, |i| Arc::clone(if i % 2 == 0 { &first } else { &second })).await;
    assert_eq!(count(&outcomes, Advance::Rotated { generation: 1 }), 1);
    assert_eq!(count(&outcomes, Advance::Replayed { generation: 1 }), 15);
    // And a login on one is refreshed on the other.
    assert_eq!(
        second.advance("s1", 1, at(T0 + 2)).await,
        Ok(Advance::Rotated { generation: 2 })
    );
    assert_eq!(
        first.get("s1").await.expect("get").expect("present").generation,
        2
    );
}

/// Starts `n` tasks that present generation 0 of `s1` at the same moment, each on the store
/// `pick` gives it, and returns what each got.
async fn race(n: usize, pick: impl Fn(usize) -> Arc<dyn Store>) -> Vec<Advance> {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = pick(i);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.advance("s1", 0, at(T0 + 1)).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(
            task.await
                .expect("the task finished")
                .expect("the store answered"),
        );
    }
    outcomes
}

/// Revokes a session that was live.
async fn revoked(store: &dyn Store, sid: &str, now: u64) {
    let revoked = store.revoke_session(sid, at(now)).await.expect("revoke");
    assert!(revoked.is_some(), "{sid} was live");
}

fn count(outcomes: &[Advance], wanted: Advance) -> usize {
    outcomes.iter().filter(|o| **o == wanted).count()
}

pub(super) async fn revoke_session_revokes_a_live_session_once(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    let revoked = store
        .revoke_session("s1", at(T0 + 3))
        .await
        .expect("revoke")
        .expect("it was live");
    assert_eq!((revoked.sid.as_str(), revoked.revoked_at), ("s1", Some(T0 + 3)));
    assert_eq!(revoked.seed.expose(), &seed_for("s1"));
    for sid in ["s1", "unknown"] {
        let again = store.revoke_session(sid, at(T0 + 4)).await.expect("revoke");
        assert!(again.is_none(), "{sid}");
    }
    assert_eq!(
        the_one_revocation(store, T0 + 4).await,
        (T0 + 3, T0 + 3 + REVOCATION_TTL)
    );
}

pub(super) async fn revoke_user_revokes_every_live_session_of_that_user_only(s: Subject) {
    let store = &*s.store;
    created(store, "a1", "alice", T0).await;
    created(store, "a2", "alice", T0 + 1).await;
    created(store, "a3", "alice", T0 + 2).await;
    created(store, "b1", "bob", T0).await;
    revoked(store, "a3", T0 + 3).await;

    let revoked = store.revoke_user("alice", at(T0 + 4)).await.expect("revoke user");
    assert_eq!(revoked, vec!["a2".to_owned(), "a1".to_owned()]);
    let bob = store.get("b1").await.expect("get").expect("present");
    assert!(bob.revoked_at.is_none());
    let user = Revocation {
        kind: RevocationKind::User,
        key: "alice".to_owned(),
        not_before: T0 + 4,
        keep_until: T0 + 4 + REVOCATION_TTL,
    };
    let revocations = store.revocations(T0 + 4).await.expect("revocations");
    assert!(revocations.contains(&user), "{revocations:?}");
    let sessions = revocations.iter().filter(|r| r.kind == RevocationKind::Session);
    let mut keys: Vec<_> = sessions.map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a1", "a2", "a3"]);
    assert_eq!(revocations.len(), 4);

    // A user with no session at all is still recorded.
    let none = store.revoke_user("nobody", at(T0 + 5)).await.expect("revoke");
    assert!(none.is_empty());
    assert!(
        revocation_list(store, T0 + 5)
            .await
            .contains(&(RevocationKind::User, "nobody".to_owned()))
    );
}

pub(super) async fn recording_a_revocation_again_keeps_the_later_times(s: Subject) {
    let store = &*s.store;
    store
        .revoke_user("alice", at(T0 + 100))
        .await
        .expect("revoke user");
    store
        .revoke_user("alice", at(T0 + 50))
        .await
        .expect("revoke user with a clock behind");
    assert_eq!(
        the_one_revocation(store, T0).await,
        (T0 + 100, T0 + 100 + REVOCATION_TTL)
    );
}

/// The `(not_before, keep_until)` of the only revocation in force at `now`.
async fn the_one_revocation(store: &dyn Store, now: u64) -> (u64, u64) {
    let revocations = store.revocations(now).await.expect("revocations");
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    (revocations[0].not_before, revocations[0].keep_until)
}

pub(super) async fn sessions_of_lists_only_live_sessions_newest_first(s: Subject) {
    let store = &*s.store;
    created(store, "old", "alice", T0 - IDLE_TTL).await;
    created(store, "a1", "alice", T0).await;
    created(store, "a2", "alice", T0 + 1).await;
    created(store, "a0", "alice", T0 + 1).await;
    created(store, "revoked", "alice", T0).await;
    created(store, "b1", "bob", T0).await;
    revoked(store, "revoked", T0 + 1).await;

    let live = store.sessions_of("alice", at(T0 + 2)).await.expect("sessions");
    let sids: Vec<_> = live.iter().map(|s| s.sid.as_str()).collect();
    assert_eq!(sids, ["a0", "a2", "a1"]);
    assert_eq!(live[0].seed.expose(), &seed_for("a0"));
    let nobody = store.sessions_of("nobody", at(T0 + 2)).await.expect("sessions");
    assert!(nobody.is_empty());
}

pub(super) async fn revocations_omit_entries_past_their_keep_until(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    revoked(store, "s1", T0).await;
    assert_eq!(
        the_one_revocation(store, T0 + REVOCATION_TTL - 1).await,
        (T0, T0 + REVOCATION_TTL)
    );
    let after = store.revocations(T0 + REVOCATION_TTL).await.expect("revocations");
    assert!(after.is_empty());
}

pub(super) async fn purge_removes_long_ended_sessions_and_forgotten_revocations(s: Subject) {
    let store = &*s.store;
    let now = T0 + REFRESH_TTL + REVOCATION_TTL;
    created(store, "expired", "alice", T0).await;
    created(store, "idle", "alice", now - REVOCATION_TTL - IDLE_TTL).await;
    created(store, "revoked", "alice", now - 2 * REVOCATION_TTL).await;
    created(store, "just-revoked", "alice", now - 2).await;
    created(store, "live", "alice", now - 1).await;
    revoked(store, "revoked", now - REVOCATION_TTL).await;
    revoked(store, "just-revoked", now - 1).await;

    assert_eq!(
        store.purge(at(now)).await.expect("purge"),
        4,
        "three sessions and one revocation"
    );
    for gone in ["expired", "idle", "revoked"] {
        assert!(store.get(gone).await.expect("get").is_none(), "{gone}");
    }
    for kept in ["just-revoked", "live"] {
        assert!(store.get(kept).await.expect("get").is_some(), "{kept}");
    }
    assert_eq!(
        revocation_list(store, now).await,
        vec![(RevocationKind::Session, "just-revoked".to_owned())]
    );
    assert_eq!(store.purge(at(now)).await.expect("purge"), 0);
}

pub(super) async fn purge_early_in_the_clock_deletes_nothing_it_should_keep(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", 0).await;
    assert_eq!(store.purge(at(1)).await.expect("purge"), 0);
    assert!(store.get("s1").await.expect("get").is_some());
}
