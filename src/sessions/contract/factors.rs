//! The contract cases second factors and step-up add (SPEC 13): factors read back as stored,
//! belong to one user, and are deleted only by their owner; a step-up renews how a live
//! session was proved, and nothing else.

use super::*;
use crate::sessions::store::{Advance, FactorKind, FactorRecord, SessionRecord};

fn factor(id: &str, sub: &str, kind: FactorKind, created_at: u64) -> FactorRecord {
    FactorRecord {
        id: id.to_owned(),
        sub: sub.to_owned(),
        kind,
        label: format!("{id} label"),
        // Every byte value, to show the data is kept as bytes.
        data: (0..=255u8).collect(),
        created_at,
        last_used_at: None,
    }
}

pub(super) async fn factors_read_back_as_stored_and_belong_to_one_user(s: Subject) {
    let store = &*s.store;
    let passkey = factor("cred-b", "alice", FactorKind::Passkey, T0 + 5);
    let totp = factor("totp:alice", "alice", FactorKind::Totp, T0);
    let bobs = factor("cred-c", "bob", FactorKind::Passkey, T0);
    for record in [&passkey, &totp, &bobs] {
        assert!(store.put_factor(record).await.expect("put"));
    }
    assert_eq!(store.factor("cred-b").await.expect("get"), Some(passkey.clone()));
    assert_eq!(store.factor("unknown").await.expect("get"), None);
    assert_eq!(
        store.factors_of("alice").await.expect("list"),
        [totp.clone(), passkey.clone()]
    );
    assert_eq!(store.factors_of("carol").await.expect("list"), []);
    // Replacing keeps one record, with every field new.
    let used = FactorRecord {
        label: String::new(),
        data: vec![1, 2, 3],
        last_used_at: Some(T0 + 60),
        ..passkey.clone()
    };
    assert!(store.put_factor(&used).await.expect("replace"));
    let other = s.another().await;
    assert_eq!(other.factor("cred-b").await.expect("get"), Some(used.clone()));
    // An id that is another user's is refused, and left as it was.
    let stolen = FactorRecord {
        sub: "mallory".to_owned(),
        ..used.clone()
    };
    assert!(!store.put_factor(&stolen).await.expect("put"));
    assert_eq!(store.factor("cred-b").await.expect("get"), Some(used));
    assert_eq!(store.factors_of("mallory").await.expect("list"), []);
}

pub(super) async fn only_its_owner_deletes_a_factor(s: Subject) {
    let store = &*s.store;
    let record = factor("cred-a", "alice", FactorKind::Passkey, T0);
    assert!(store.put_factor(&record).await.expect("put"));
    assert!(!store.delete_factor("bob", "cred-a").await.expect("delete"));
    assert!(!store.delete_factor("alice", "unknown").await.expect("delete"));
    assert_eq!(store.factors_of("alice").await.expect("list"), [record]);
    assert!(store.delete_factor("alice", "cred-a").await.expect("delete"));
    assert!(
        !store
            .delete_factor("alice", "cred-a")
            .await
            .expect("delete twice")
    );
    assert_eq!(store.factor("cred-a").await.expect("get"), None);
    assert_eq!(store.factors_of("alice").await.expect("list"), []);
}

pub(super) async fn a_step_up_renews_how_a_live_session_was_proved_and_nothing_else(s: Subject) {
    let store = &*s.store;
    created(store, "s1", "alice", T0).await;
    let before = store.get("s1").await.expect("get").expect("present");
    let amr = vec!["pwd".to_owned(), "otp".to_owned()];
    assert!(
        store
            .renew_authentication("s1", T0 + 100, &amr, at(T0 + 100))
            .await
            .expect("renew")
    );
    let after = s.another().await.get("s1").await.expect("get").expect("present");
    assert_eq!((after.origin.auth_time, &after.origin.amr), (T0 + 100, &amr));
    let unchanged = |r: &SessionRecord| {
        let o = &r.origin;
        (
            r.sub.clone(),
            r.generation,
            r.last_used_at,
            r.expires_at,
            r.seed.expose().to_vec(),
            o.idp.clone(),
            o.idp_sid.clone(),
        )
    };
    assert_eq!(unchanged(&after), unchanged(&before));
    // A refresh afterwards keeps the renewed origin.
    assert!(matches!(
        store.advance("s1", 0, at(T0 + 200)).await.expect("advance"),
        Advance::Rotated { .. }
    ));
    let rotated = store.get("s1").await.expect("get").expect("present");
    assert_eq!(
        (rotated.origin.auth_time, rotated.origin.amr),
        (T0 + 100, amr.clone())
    );
    // Unknown, revoked, expired and idle sessions are not renewed.
    assert!(
        !store
            .renew_authentication("nope", T0, &amr, at(T0))
            .await
            .expect("unknown")
    );
    created(store, "idle", "alice", T0).await;
    let idle = at(T0 + IDLE_TTL + 1);
    assert!(
        !store
            .renew_authentication("idle", T0, &amr, idle)
            .await
            .expect("idle")
    );
    created(store, "old", "alice", T0).await;
    let ended = at(T0 + REFRESH_TTL);
    assert!(
        !store
            .renew_authentication("old", T0, &amr, ended)
            .await
            .expect("expired")
    );
    store.revoke_session("s1", at(T0 + 300)).await.expect("revoke");
    assert!(
        !store
            .renew_authentication("s1", T0 + 301, &amr, at(T0 + 301))
            .await
            .expect("revoked")
    );
}
