//! The contract cases API keys add (SPEC 11): only the hash is kept, a key reads back as it was
//! stored, deleting one records its revocation, and uses only ever raise `last_used_at`.

use super::*;
use crate::auth::api_keys::{NewApiKey, generate};
use crate::sessions::store::{ApiKeyRecord, api_key_sid};

fn key(sub: &str, name: &str, created_at: u64, expires_in: Option<u64>) -> (ApiKeyRecord, String) {
    let new = NewApiKey {
        sub,
        role: "deployer",
        name,
        expires_in,
    };
    generate(&new, created_at)
}

pub(super) async fn an_api_key_reads_back_as_stored_and_never_as_the_key(s: Subject) {
    let store = &*s.store;
    let (first, secret) = key("ci:deploy", "deploy from CI", T0, Some(3600));
    let (second, _) = key("ci:backup", "nightly backup", T0 + 1, None);
    store.create_api_key(&second).await.expect("create");
    store.create_api_key(&first).await.expect("create");
    assert_eq!(store.api_key(&first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(
        store
            .api_key("0123456789abcdef0123456789abcdef")
            .await
            .expect("get"),
        None
    );
    assert_eq!(store.api_keys().await.expect("list"), [first.clone(), second]);
    assert_eq!(first.expires_at, Some(T0 + 3600));
    // A second store on the same data sees the same keys.
    let other = s.another().await;
    assert_eq!(other.api_keys().await.expect("list").len(), 2);
    // The key is never what is kept: no stored field holds its secret part.
    let secret_part = secret.rsplit('_').next().expect("a secret");
    assert!(!format!("{first:?}").contains(secret_part));
    // An id is taken once.
    assert!(store.create_api_key(&first).await.is_err());
}

pub(super) async fn deleting_an_api_key_records_its_revocation_once(s: Subject) {
    let store = &*s.store;
    let (record, _) = key("ci:deploy", "deploy", T0, None);
    store.create_api_key(&record).await.expect("create");
    assert!(
        store
            .delete_api_key(&record.id, at(T0 + 5))
            .await
            .expect("delete")
    );
    assert_eq!(store.api_key(&record.id).await.expect("get"), None);
    assert_eq!(store.api_keys().await.expect("list"), []);
    let sid = api_key_sid(&record.id);
    assert_eq!(
        revocation_list(store, T0 + 5).await,
        [(RevocationKind::Session, sid)]
    );
    // Deleting again, or an unknown id, changes nothing.
    assert!(
        !store
            .delete_api_key(&record.id, at(T0 + 6))
            .await
            .expect("delete")
    );
    assert_eq!(revocation_list(store, T0 + 6).await.len(), 1);
}

pub(super) async fn uses_only_raise_last_used_at_of_existing_keys(s: Subject) {
    let store = &*s.store;
    let (a, _) = key("a", "a", T0, None);
    let (b, _) = key("b", "b", T0, None);
    store.create_api_key(&a).await.expect("create");
    store.create_api_key(&b).await.expect("create");
    let gone = "0123456789abcdef0123456789abcdef".to_string();
    let uses = [(a.id.clone(), T0 + 100), (gone.clone(), T0 + 100)];
    store.touch_api_keys(&uses).await.expect("touch");
    store
        .touch_api_keys(&[(a.id.clone(), T0 + 50)])
        .await
        .expect("an older use");
    let read = |id: &str| {
        let id = id.to_owned();
        async move {
            store
                .api_key(&id)
                .await
                .expect("get")
                .expect("present")
                .last_used_at
        }
    };
    assert_eq!(read(&a.id).await, Some(T0 + 100));
    assert_eq!(read(&b.id).await, None);
    assert_eq!(
        store.api_key(&gone).await.expect("get"),
        None,
        "a use never creates a key"
    );
}
