//! The contract cases single sign-on adds (SPEC 10): a session remembers how it began, a
//! provider's back-channel logout ends exactly the sessions it names, and one-use keys.

use super::*;
use crate::sessions::store::IdpLink;

/// A session begun through provider `idp`, in its session `idp_sid`, for its user `idp_sub`.
fn federated(sid: &str, idp: &str, idp_sid: Option<&str>, idp_sub: &str) -> NewSession {
    let mut session = new_session(sid, &format!("{idp}:{idp_sub}"), T0);
    session.origin = Origin {
        idp: idp.to_owned(),
        auth_time: T0 - 30,
        amr: vec!["fed".to_owned(), "mfa".to_owned()],
        idp_sid: idp_sid.map(str::to_owned),
        idp_sub: Some(idp_sub.to_owned()),
        jkt: None,
    };
    session
}

pub(super) async fn a_session_reads_back_with_how_it_began(s: Subject) {
    let store = &*s.store;
    created(store, "local", "alice", T0).await;
    let local = store.get("local").await.expect("get").expect("present");
    assert_eq!(local.origin, Origin::local(T0));
    let session = federated("sso", "corp", Some("op-1"), "alice");
    store.create(session.clone()).await.expect("create");
    let read = store.get("sso").await.expect("get").expect("present");
    assert_eq!(read.origin, session.origin);
    // Rotation and revocation keep it.
    store.advance("sso", 0, at(T0 + 1)).await.expect("advance");
    let revoked = store.revoke_session("sso", at(T0 + 2)).await.expect("revoke");
    assert_eq!(revoked.expect("it was live").origin, session.origin);
    // A DPoP login's key binding (SPEC 14) survives rotation and step-up renewal.
    let mut bound = new_session("bound", "bob", T0);
    bound.origin.jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_owned());
    store.create(bound.clone()).await.expect("create");
    store.advance("bound", 0, at(T0 + 1)).await.expect("advance");
    let amr = ["pwd".to_owned(), "otp".to_owned()];
    let renewed = store.renew_authentication("bound", T0 + 2, &amr, at(T0 + 2));
    assert!(renewed.await.expect("renew"));
    let read = store.get("bound").await.expect("get").expect("present");
    assert_eq!(read.origin.jkt, bound.origin.jkt);
    assert_eq!(local.origin.jkt, None);
}

pub(super) async fn a_back_channel_logout_ends_only_the_sessions_it_names(s: Subject) {
    let store = &*s.store;
    for session in [
        federated("a", "corp", Some("op-1"), "alice"),
        federated("b", "corp", Some("op-2"), "alice"),
        federated("c", "corp", None, "alice"),
        federated("d", "other", Some("op-1"), "alice"),
        federated("e", "corp", Some("op-3"), "bob"),
    ] {
        store.create(session).await.expect("create");
    }
    created(store, "f", "alice", T0).await;
    let now = T0 + 5;
    let by_sid = store
        .revoke_federated("corp", IdpLink::Sid("op-1"), at(now))
        .await;
    assert_eq!(by_sid.expect("revoke"), ["a"]);
    let by_sub = store
        .revoke_federated("corp", IdpLink::Sub("alice"), at(now))
        .await;
    assert_eq!(by_sub.expect("revoke"), ["b", "c"], "a had already ended");
    for link in [
        IdpLink::Sub("alice"),
        IdpLink::Sid("unknown"),
        IdpLink::Sub("carol"),
    ] {
        let again = store.revoke_federated("corp", link, at(now)).await;
        assert_eq!(again.expect("revoke"), Vec::<String>::new(), "{link:?}");
    }
    let live: Vec<String> = ["d", "e", "f"].map(String::from).to_vec();
    for sid in ["a", "b", "c", "d", "e", "f"] {
        let record = store.get(sid).await.expect("get").expect("present");
        assert_eq!(
            record.revoked_at.is_none(),
            live.iter().any(|l| l == sid),
            "{sid}"
        );
    }
    let revoked: Vec<_> = revocation_list(store, now).await;
    let sessions = ["a", "b", "c"].map(|sid| (RevocationKind::Session, sid.to_owned()));
    assert_eq!(
        revoked, sessions,
        "each revoked session is recorded for every replica"
    );
}

pub(super) async fn a_key_is_accepted_once_by_every_store_on_the_same_data(s: Subject) {
    let store = &*s.store;
    let until = T0 + 600;
    assert!(store.use_once("state:1", until, at(T0)).await.expect("use"));
    assert!(!store.use_once("state:1", until, at(T0 + 1)).await.expect("use"));
    let other = s.another().await;
    assert!(!other.use_once("state:1", until, at(T0 + 2)).await.expect("use"));
    assert!(other.use_once("state:2", until, at(T0 + 2)).await.expect("use"));
}
