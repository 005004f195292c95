//! Merchants' key-value entries on a real SQLite file: scoped by merchant,
//! listed by prefix in pages, and held to the quota by the usage row that
//! every write updates in its own transaction (also under concurrent
//! writers and across a reopen).

mod engines;
use engines::Engine;

use gateway_store::{KvLimits, KvWrite};

const ROOMY: KvLimits = KvLimits {
    max_total_bytes: 1 << 20,
    max_keys: 100,
};

async fn a_merchant_sees_only_its_own_keys(engine: Engine) {
    let store = engine.open().await;
    for (merchant, key) in [
        ("m1", "tenant/a"),
        ("m1", "tenant/b"),
        ("m1", "other"),
        ("m2", "tenant/c"),
    ] {
        let stored = store
            .kv_set(merchant, key, key.as_bytes().to_vec(), ROOMY, 1)
            .await;
        assert_eq!(stored.expect("stored"), KvWrite::Stored);
    }
    assert_eq!(
        store.kv_get("m1", "tenant/a").await.expect("read"),
        Some(b"tenant/a".to_vec())
    );
    assert_eq!(
        store.kv_get("m2", "tenant/a").await.expect("read"),
        None,
        "another merchant's key"
    );
    let m1 = store
        .kv_keys("m1", "tenant/", None, 10)
        .await
        .expect("keys");
    assert_eq!(m1, ["tenant/a", "tenant/b"]);
    let page = store.kv_keys("m1", "tenant/", None, 1).await.expect("keys");
    assert_eq!(page, ["tenant/a"]);
    let next = store
        .kv_keys("m1", "tenant/", Some("tenant/a"), 1)
        .await
        .expect("keys");
    assert_eq!(next, ["tenant/b"]);
    assert_eq!(
        store.kv_keys("m2", "", None, 10).await.expect("keys"),
        ["tenant/c"]
    );
    assert!(
        !store.kv_delete("m2", "tenant/a").await.expect("delete"),
        "not m2's"
    );
    assert!(store.kv_delete("m1", "tenant/a").await.expect("delete"));
    assert_eq!(store.kv_get("m1", "tenant/a").await.expect("read"), None);
}

async fn the_quota_counts_keys_and_bytes_and_a_refused_write_changes_nothing(engine: Engine) {
    let store = engine.open().await;
    let limits = KvLimits {
        max_total_bytes: 100,
        max_keys: 2,
    };
    let set = |key: &'static str, size: usize| {
        let store = &store;
        async move {
            store
                .kv_set("m", key, vec![1; size], limits, 1)
                .await
                .expect("a write")
        }
    };
    assert_eq!(set("a", 40).await, KvWrite::Stored);
    assert_eq!(set("b", 40).await, KvWrite::Stored);
    assert!(
        matches!(set("c", 1).await, KvWrite::OverQuota { keys: 3, .. }),
        "a third key"
    );
    assert!(
        matches!(set("a", 60).await, KvWrite::OverQuota { bytes: 102, .. }),
        "too many bytes"
    );
    assert_eq!(
        store.kv_get("m", "a").await.expect("read").map(|v| v.len()),
        Some(40),
        "unchanged"
    );
    assert_eq!(
        set("a", 58).await,
        KvWrite::Stored,
        "replacing counts the difference"
    );
    assert!(store.kv_delete("m", "b").await.expect("delete"));
    assert_eq!(
        set("c", 40).await,
        KvWrite::Stored,
        "a delete gives room back"
    );

    // The usage survives a reopen.
    drop(store);
    let store = engine.open().await;
    let refused = store
        .kv_set("m", "d", vec![1], limits, 1)
        .await
        .expect("a write");
    assert!(
        matches!(refused, KvWrite::OverQuota { keys: 3, .. }),
        "{refused:?}"
    );
}

async fn concurrent_writers_cannot_squeeze_past_the_quota(engine: Engine) {
    let store = engine.open().await;
    let limits = KvLimits {
        max_total_bytes: 1 << 20,
        max_keys: 10,
    };
    let writers: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .kv_set("m", &format!("k{i:02}"), vec![0; 8], limits, 1)
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for writer in writers {
        if writer.await.expect("the task").expect("a write") == KvWrite::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 10);
    assert_eq!(
        store.kv_keys("m", "", None, 100).await.expect("keys").len(),
        10
    );
}

on_both_engines!(
    a_merchant_sees_only_its_own_keys,
    the_quota_counts_keys_and_bytes_and_a_refused_write_changes_nothing,
    concurrent_writers_cannot_squeeze_past_the_quota,
);
