//! The registry on both engines (SQLite file, PostgreSQL schema): merchants and their keys, versions
//! numbered per merchant over content-addressed modules, activation and
//! rollback, what cannot be deleted, tokens, and an audit entry for every
//! change and none for a refused one — all surviving a reopen.

mod engines;
use engines::Engine;

use gateway_store::registry::{
    Activated, Activation, AuditEntry, Deleted, KeyRow, MerchantRow, NewVersion, TokenRow,
};

fn audit(action: &str, merchant: &str) -> AuditEntry {
    AuditEntry {
        at: 1_000,
        actor: "operator".into(),
        merchant_id: Some(merchant.into()),
        action: action.into(),
        detail_json: "{}".into(),
    }
}

fn merchant(id: &str) -> MerchantRow {
    MerchantRow {
        merchant_id: id.into(),
        settings_json: "{}".into(),
        disabled: false,
        active_version: None,
        previous_version: None,
        bootstrap_hash: None,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

fn key(merchant: &str, id: &str) -> KeyRow {
    KeyRow {
        merchant_id: merchant.into(),
        key_id: id.into(),
        sealed_key: format!("sealed-{id}"),
        created_at: 1_000,
        retired_at: None,
    }
}

fn module(merchant: &str, bytes: &[u8]) -> NewVersion {
    NewVersion {
        merchant_id: merchant.into(),
        sha256: format!("sha-{}", String::from_utf8_lossy(bytes)),
        bytes: bytes.to_vec(),
        contract_version: "1.0.0".into(),
        uploaded_by: "operator".into(),
    }
}

async fn merchants_and_keys_are_created_once_and_keys_retire(engine: Engine) {
    let store = engine.open().await;
    let created = store
        .create_merchant(
            merchant("acme"),
            vec![key("acme", "k1")],
            audit("create", "acme"),
        )
        .await
        .expect("creates");
    assert!(created);
    let again = store
        .create_merchant(
            merchant("acme"),
            vec![key("acme", "k9")],
            audit("create", "acme"),
        )
        .await
        .expect("answers");
    assert!(!again, "an id is taken once");
    assert!(
        store
            .add_key(key("acme", "k2"), audit("add key", "acme"))
            .await
            .expect("adds")
    );
    assert!(
        !store
            .add_key(key("acme", "k2"), audit("add key", "acme"))
            .await
            .expect("answers")
    );
    assert!(
        store
            .retire_key("acme", "k1", audit("retire", "acme"))
            .await
            .expect("retires")
    );
    assert!(
        !store
            .retire_key("acme", "k1", audit("retire", "acme"))
            .await
            .expect("answers")
    );
    let keys = store.keys("acme").await.expect("keys");
    let live: Vec<&str> = keys
        .iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.key_id.as_str())
        .collect();
    assert_eq!(live, ["k2"]);
    assert_eq!(keys.len(), 2, "k9 of the refused create was never stored");

    let mut changed = merchant("acme");
    changed.disabled = true;
    changed.settings_json = r#"{"deadline_ms":500}"#.into();
    assert!(
        store
            .update_merchant(changed.clone(), audit("update", "acme"))
            .await
            .expect("updates")
    );
    assert!(
        !store
            .update_merchant(merchant("nobody"), audit("update", "nobody"))
            .await
            .expect("answers")
    );
    drop(store);
    let store = engine.open().await;
    let stored = store
        .merchant("acme")
        .await
        .expect("reads")
        .expect("is there");
    assert!(stored.disabled);
    assert_eq!(stored.settings_json, changed.settings_json);

    // Changes only: the refused create, key, retire and update left none.
    let actions: Vec<String> = store
        .audit(Some("acme"), 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert_eq!(actions, ["update", "retire", "add key", "create"]);

    // Another process follows the changes after the one it saw, in order.
    let all = store.audit(None, 100).await.expect("audit");
    let first = all.last().map_or(0, |row| row.seq);
    let after: Vec<String> = store
        .audit_after(first, 2)
        .await
        .expect("audit after")
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert_eq!(
        after,
        ["add key", "retire"],
        "oldest first, at most the limit"
    );
    let latest = all.first().map_or(0, |row| row.seq);
    assert!(
        store
            .audit_after(latest, 10)
            .await
            .expect("reads")
            .is_empty()
    );
}

async fn versions_activate_roll_back_and_keep_what_is_in_use(engine: Engine) {
    let store = engine.open().await;
    store
        .create_merchant(merchant("acme"), vec![], audit("create", "acme"))
        .await
        .expect("creates");
    store
        .create_merchant(merchant("beta"), vec![], audit("create", "beta"))
        .await
        .expect("creates");
    let v1 = store
        .add_version(module("acme", b"one"), audit("upload", "acme"))
        .await
        .expect("v1");
    let v2 = store
        .add_version(module("acme", b"two"), audit("upload", "acme"))
        .await
        .expect("v2");
    let shared = store
        .add_version(module("beta", b"one"), audit("upload", "beta"))
        .await
        .expect("b1");
    assert_eq!(
        (v1.version, v2.version, shared.version),
        (1, 2, 1),
        "numbered per merchant"
    );
    assert_eq!(v2.size, 3);

    let activate = |which| store.activate("acme", which, audit("activate", "acme"));
    assert_eq!(
        activate(Activation::Rollback).await.expect("answers"),
        Activated::NothingToRollBackTo
    );
    assert_eq!(
        activate(Activation::Version(7)).await.expect("answers"),
        Activated::NoSuchVersion
    );
    assert_eq!(
        activate(Activation::Version(1)).await.expect("activates"),
        Activated::Done {
            active: 1,
            previous: None
        }
    );
    assert_eq!(
        activate(Activation::Version(2)).await.expect("activates"),
        Activated::Done {
            active: 2,
            previous: Some(1)
        }
    );
    assert_eq!(
        activate(Activation::Rollback).await.expect("rolls back"),
        Activated::Done {
            active: 1,
            previous: Some(2)
        }
    );
    assert_eq!(
        store
            .activate(
                "nobody",
                Activation::Version(1),
                audit("activate", "nobody")
            )
            .await
            .expect("answers"),
        Activated::NoSuchMerchant
    );

    // Active and rollback target are kept; a third version can go.
    let v3 = store
        .add_version(module("acme", b"three"), audit("upload", "acme"))
        .await
        .expect("v3");
    let delete = |version| store.delete_version("acme", version, audit("delete", "acme"));
    assert_eq!(delete(1).await.expect("answers"), Deleted::InUse);
    assert_eq!(delete(2).await.expect("answers"), Deleted::InUse);
    assert_eq!(delete(v3.version).await.expect("deletes"), Deleted::Done);
    assert_eq!(
        delete(v3.version).await.expect("answers"),
        Deleted::NotFound
    );
    assert!(
        store.module("sha-three").await.expect("reads").is_none(),
        "unused module removed"
    );
    assert_eq!(
        store.module("sha-one").await.expect("reads").as_deref(),
        Some(&b"one"[..])
    );

    drop(store);
    let store = engine.open().await;
    let acme = store
        .merchant("acme")
        .await
        .expect("reads")
        .expect("is there");
    assert_eq!(
        (acme.active_version, acme.previous_version),
        (Some(1), Some(2))
    );
    let versions: Vec<i64> = store
        .versions("acme")
        .await
        .expect("lists")
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [1, 2]);
}

async fn tokens_are_found_by_hash_until_revoked(engine: Engine) {
    let store = engine.open().await;
    let token = TokenRow {
        token_id: "tok1".into(),
        merchant_id: Some("acme".into()),
        created_at: 1_000,
        created_by: "operator".into(),
        revoked_at: None,
    };
    store
        .add_token(token.clone(), "hash1".into(), audit("token", "acme"))
        .await
        .expect("adds");
    assert_eq!(
        store.token_by_hash("hash1").await.expect("reads"),
        Some(token)
    );
    assert!(store.token_by_hash("hash2").await.expect("reads").is_none());
    assert!(
        store
            .revoke_token("tok1", audit("revoke", "acme"))
            .await
            .expect("revokes")
    );
    assert!(
        !store
            .revoke_token("tok1", audit("revoke", "acme"))
            .await
            .expect("answers")
    );
    assert!(store.token_by_hash("hash1").await.expect("reads").is_none());
    assert_eq!(store.tokens(Some("acme")).await.expect("lists").len(), 1);
    assert!(store.tokens(Some("beta")).await.expect("lists").is_empty());
}

on_both_engines!(
    merchants_and_keys_are_created_once_and_keys_retire,
    versions_activate_roll_back_and_keep_what_is_in_use,
    tokens_are_found_by_hash_until_revoked,
);
