//! The store on both engines (a real SQLite file, a real PostgreSQL
//! schema): the atomic claim under 200 concurrent claimers, instance
//! assignment surviving the operation record, fenced takeover and
//! completion, nonces across a reopen and in the claim, the reaper, the migration guard,
//! corrupt rows; and on SQLite, a store that cannot grow and background
//! checkpoints.

mod engines;
use engines::Engine;

use gateway_store::{
    Claim, Completion, InstanceAssignment, InstanceChange, NewOperation, OperationId,
    OperationStatus, Remembered, ReplayGuard, SqliteSettings, SqliteStore, Store, StoreError,
    StuckRow,
};

const LEASE: i64 = 30_000;

fn op(key: &str, order: &str) -> NewOperation {
    NewOperation {
        id: OperationId {
            merchant_id: "acme".into(),
            idempotency_key: key.into(),
        },
        test: false,
        kind: "create".into(),
        business_key: format!("create / {order} / line-1"),
        instance_id: None,
        assignment: Some(InstanceAssignment {
            order_id: order.into(),
            order_line_key: "line-1".into(),
            instance_id: format!("inst-{order}"),
        }),
        fingerprint: "f1".into(),
        request_json: "{}".into(),
        replay_guard: None,
    }
}

fn done(status: OperationStatus, result: &str) -> Completion {
    Completion {
        status,
        result_json: result.into(),
        instance: None,
        supersedes: Vec::new(),
    }
}

/// A replay guard remembered for five minutes.
fn guard(key: &str, binding: Option<&str>) -> ReplayGuard {
    ReplayGuard {
        key: key.into(),
        binding: binding.map(str::to_string),
        memory_ms: 300_000,
    }
}

/// Test settings: a short busy timeout, no size cap.
fn settings(path: &std::path::Path) -> SqliteSettings {
    SqliteSettings {
        path: path.to_path_buf(),
        busy_timeout: std::time::Duration::from_secs(2),
        max_size_bytes: None,
    }
}

async fn two_hundred_concurrent_claims_have_exactly_one_winner(engine: Engine) {
    let store = engine.open().await;
    let claims = (0..200).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim(&op("k1", "CS1"), 1_000, LEASE).await })
    });
    let mut winners = 0;
    let mut instance_ids = std::collections::BTreeSet::new();
    for claim in futures_join(claims).await {
        match claim.expect("no store error under contention") {
            Claim::Won { instance_id } => {
                winners += 1;
                instance_ids.extend(instance_id);
            }
            Claim::Exists(record) => {
                assert_eq!(record.status, OperationStatus::InFlight);
                assert_eq!(record.attempt, 1);
                instance_ids.extend(record.instance_id);
            }
            Claim::Replayed(remembered) => panic!("no replay guard was given: {remembered:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        instance_ids.into_iter().collect::<Vec<_>>(),
        vec!["inst-CS1".to_string()]
    );
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("the task finished"));
    }
    out
}

async fn the_instance_mapping_outlives_the_reaped_operation(engine: Engine) {
    let store = engine.open().await;
    let Claim::Won { instance_id } = store
        .claim(&op("k1", "CS1"), 1_000, LEASE)
        .await
        .expect("the store answers")
    else {
        panic!("first claim wins");
    };
    assert_eq!(instance_id.as_deref(), Some("inst-CS1"));
    let id = op("k1", "CS1").id;
    assert!(
        store
            .complete(&id, 1, &done(OperationStatus::Succeeded, "r"), 2_000)
            .await
            .expect("the store answers")
    );
    let reaped = store.reap(10_000, 10_000).await.expect("the store answers");
    assert_eq!(reaped.operations, 1);
    assert_eq!(store.load(&id).await.expect("the store answers"), None);
    // A much later manual restart of the order claims afresh, proposing a
    // different id: the mapping wins.
    let mut again = op("k1", "CS1");
    if let Some(a) = again.assignment.as_mut() {
        a.instance_id = "a-new-proposal".into();
    }
    let Claim::Won { instance_id } = store
        .claim(&again, 20_000, LEASE)
        .await
        .expect("the store answers")
    else {
        panic!("the reaped key is claimable again");
    };
    assert_eq!(instance_id.as_deref(), Some("inst-CS1"));
    let instance = store
        .instance("acme", "inst-CS1")
        .await
        .expect("the store answers");
    assert_eq!(instance.map(|i| i.order_id), Some(Some("CS1".into())));
}

async fn a_takeover_fences_out_the_stale_worker(engine: Engine) {
    let store = engine.open().await;
    let id = op("k1", "CS1").id;
    store
        .claim(&op("k1", "CS1"), 1_000, 100)
        .await
        .expect("the store answers");
    assert_eq!(
        store
            .take_over(&id, 1, 1_050, LEASE)
            .await
            .expect("the store answers"),
        None,
        "a live lease cannot be taken over"
    );
    assert_eq!(
        store
            .take_over(&id, 1, 1_200, LEASE)
            .await
            .expect("the store answers"),
        Some(2)
    );
    assert_eq!(
        store
            .take_over(&id, 1, 1_300, LEASE)
            .await
            .expect("the store answers"),
        None,
        "a takeover from an attempt already superseded loses"
    );
    let stale = store
        .complete(&id, 1, &done(OperationStatus::Succeeded, "stale"), 1_400)
        .await
        .expect("the store answers");
    assert!(!stale, "the stale worker's write is refused");
    let fresh = store
        .complete(&id, 2, &done(OperationStatus::Succeeded, "fresh"), 1_500)
        .await
        .expect("the store answers");
    assert!(fresh);
    let record = store
        .load(&id)
        .await
        .expect("the store answers")
        .expect("the record");
    assert_eq!(record.status, OperationStatus::Succeeded);
    assert_eq!(record.attempt, 2);
    assert_eq!(record.result_json.as_deref(), Some("fresh"));
    assert_eq!(record.locked_until, None);
    assert_eq!(
        store
            .take_over(&id, 2, 99_000, LEASE)
            .await
            .expect("the store answers"),
        None,
        "a success is never taken over"
    );
}

async fn a_transient_failure_is_retaken_and_exhausted_ones_are_parked(engine: Engine) {
    let store = engine.open().await;
    let id = op("k1", "CS1").id;
    store
        .claim(&op("k1", "CS1"), 1_000, LEASE)
        .await
        .expect("the store answers");
    store
        .complete(
            &id,
            1,
            &done(OperationStatus::FailedRetryable, "trap"),
            1_100,
        )
        .await
        .expect("the store answers");
    let stuck = store.stuck(1_200, 3, 10).await.expect("the store answers");
    assert!(
        matches!(&stuck[..], [StuckRow::Record(r)] if r.status == OperationStatus::FailedRetryable),
        "{stuck:?}"
    );
    assert_eq!(
        store
            .take_over(&id, 1, 1_300, LEASE)
            .await
            .expect("the store answers"),
        Some(2)
    );
    store
        .complete(&id, 2, &done(OperationStatus::FailedRetryable, "x"), 1_400)
        .await
        .expect("the store answers");
    assert_eq!(
        store
            .take_over(&id, 2, 1_500, LEASE)
            .await
            .expect("the store answers"),
        Some(3)
    );
    store
        .complete(&id, 3, &done(OperationStatus::FailedRetryable, "x"), 1_600)
        .await
        .expect("the store answers");
    assert!(
        store
            .stuck(1_700, 3, 10)
            .await
            .expect("the store answers")
            .is_empty()
    );
    let parked = store
        .park_exhausted(1_700, 3)
        .await
        .expect("the store answers");
    assert_eq!(
        parked,
        vec![("acme".into(), "create / CS1 / line-1".into(), 3)]
    );
    let record = store
        .load(&id)
        .await
        .expect("the store answers")
        .expect("the record");
    assert_eq!(record.status, OperationStatus::Parked);
    assert_eq!(
        store
            .take_over(&id, 3, 1_800, LEASE)
            .await
            .expect("the store answers"),
        Some(4),
        "a marketplace retry may still take a parked operation over"
    );
}

async fn nonces_are_remembered_across_a_reopen_until_they_expire(engine: Engine) {
    let store = engine.open().await;
    let remember = |store: &std::sync::Arc<dyn gateway_store::Backend>, merchant, at| {
        let store = store.clone();
        async move {
            store
                .remember_nonce(merchant, &guard("n1", None), at)
                .await
                .expect("the store answers")
        }
    };
    let again = Remembered::Again { same_binding: true };
    assert_eq!(remember(&store, "acme", 1_000).await, Remembered::New);
    assert_eq!(remember(&store, "acme", 2_000).await, again);
    assert_eq!(remember(&store, "other", 2_000).await, Remembered::New);
    let store = engine.open().await;
    assert_eq!(
        remember(&store, "acme", 3_000).await,
        again,
        "the replay is seen after a restart"
    );
    assert_eq!(
        remember(&store, "acme", 302_000).await,
        Remembered::New,
        "an expired memory may be renewed"
    );
    let reaped = store.reap_nonces(700_000).await.expect("the store answers");
    assert_eq!(reaped, 2);
}

async fn a_token_is_bound_to_what_it_signed(engine: Engine) {
    let store = engine.open().await;
    let remember = |binding| {
        let store = store.clone();
        async move {
            store
                .remember_nonce("acme", &guard("v1:token", Some(binding)), 1_000)
                .await
                .expect("the store answers")
        }
    };
    assert_eq!(remember("digest-a").await, Remembered::New);
    assert_eq!(
        remember("digest-a").await,
        Remembered::Again { same_binding: true },
        "the same request resent"
    );
    assert_eq!(
        remember("digest-b").await,
        Remembered::Again {
            same_binding: false
        },
        "the same token over other parameters"
    );
}

async fn a_claim_remembers_its_replay_guard_first(engine: Engine) {
    let store = engine.open().await;
    let guarded = |key: &str, order: &str, nonce: &str, binding: Option<&str>| NewOperation {
        replay_guard: Some(guard(nonce, binding)),
        ..op(key, order)
    };
    let claim = |op: NewOperation| {
        let store = store.clone();
        async move {
            store
                .claim(&op, 1_000, LEASE)
                .await
                .expect("the store answers")
        }
    };
    assert!(matches!(
        claim(guarded("k1", "CS1", "n1", None)).await,
        Claim::Won { .. }
    ));
    // Another operation under the same nonce writes nothing at all.
    let replayed = claim(guarded("k2", "CS2", "n1", None)).await;
    assert!(
        matches!(replayed, Claim::Replayed(Remembered::Again { .. })),
        "{replayed:?}"
    );
    assert_eq!(
        store
            .load(&op("k2", "CS2").id)
            .await
            .expect("the store answers"),
        None
    );
    let instance = store
        .instance("acme", "inst-CS2")
        .await
        .expect("the store answers");
    assert_eq!(instance, None, "no instance was proposed");
    // The nonce the claim kept is the one a read's guard meets.
    let read = store
        .remember_nonce("acme", &guard("n1", None), 2_000)
        .await;
    assert_eq!(read.ok(), Some(Remembered::Again { same_binding: true }));
    // A V1 token resent over the same parameters goes on; over others it does not.
    let first = claim(guarded("k3", "CS3", "v1:t", Some("digest-a"))).await;
    assert!(matches!(first, Claim::Won { .. }), "{first:?}");
    let resent = claim(guarded("k3", "CS3", "v1:t", Some("digest-a"))).await;
    assert!(matches!(resent, Claim::Exists(_)), "{resent:?}");
    let reused = claim(guarded("k4", "CS4", "v1:t", Some("digest-b"))).await;
    let refused = Remembered::Again {
        same_binding: false,
    };
    assert!(
        matches!(reused, Claim::Replayed(r) if r == refused),
        "{reused:?}"
    );
}

async fn the_reaper_keeps_leased_work_and_instances(engine: Engine) {
    let store = engine.open().await;
    store
        .claim(&op("old", "CS1"), 1_000, LEASE)
        .await
        .expect("the store answers");
    store
        .complete(
            &op("old", "CS1").id,
            1,
            &done(OperationStatus::FailedFinal, "sold out"),
            1_000,
        )
        .await
        .expect("the store answers");
    store
        .claim(&op("leased", "CS2"), 1_000, 1_000_000)
        .await
        .expect("the store answers");
    store
        .claim(&op("recent", "CS3"), 50_000, LEASE)
        .await
        .expect("the store answers");
    let reaped = store.reap(10_000, 20_000).await.expect("the store answers");
    assert_eq!(reaped.operations, 1);
    assert_eq!(
        store
            .load(&op("old", "CS1").id)
            .await
            .expect("the store answers"),
        None
    );
    assert!(
        store
            .load(&op("leased", "CS2").id)
            .await
            .expect("the store answers")
            .is_some()
    );
    assert!(
        store
            .load(&op("recent", "CS3").id)
            .await
            .expect("the store answers")
            .is_some()
    );
    for order in ["CS1", "CS2", "CS3"] {
        let instance = format!("inst-{order}");
        assert!(
            store
                .instance("acme", &instance)
                .await
                .expect("the store answers")
                .is_some()
        );
    }
}

async fn a_status_change_supersedes_the_opposite_change(engine: Engine) {
    let store = engine.open().await;
    store
        .claim(&op("create", "CS1"), 1_000, LEASE)
        .await
        .expect("the store answers");
    let status_op = |key: &str, kind: &str| NewOperation {
        kind: kind.into(),
        instance_id: Some("inst-CS1".into()),
        assignment: None,
        ..op(key, "CS1")
    };
    let change = |status, signed_at| InstanceChange {
        instance_id: "inst-CS1".into(),
        status: Some(status),
        expires_at: None,
        status_changed_at: Some(signed_at),
        import: false,
    };
    store
        .claim(&status_op("freeze", "status:freeze"), 2_000, LEASE)
        .await
        .expect("the store answers");
    let froze = Completion {
        instance: Some(change("frozen", 2_000)),
        supersedes: vec!["status:unfreeze".into()],
        ..done(OperationStatus::Succeeded, "ok")
    };
    assert!(
        store
            .complete(&status_op("freeze", "").id, 1, &froze, 2_100)
            .await
            .expect("the store answers")
    );
    let instance = store
        .instance("acme", "inst-CS1")
        .await
        .expect("the store answers");
    assert_eq!(instance.map(|i| i.status).as_deref(), Some("frozen"));
    store
        .claim(&status_op("unfreeze", "status:unfreeze"), 3_000, LEASE)
        .await
        .expect("the store answers");
    let unfroze = Completion {
        instance: Some(change("active", 3_000)),
        supersedes: vec!["status:freeze".into()],
        ..done(OperationStatus::Succeeded, "ok")
    };
    assert!(
        store
            .complete(&status_op("unfreeze", "").id, 1, &unfroze, 3_100)
            .await
            .expect("the store answers")
    );
    assert_eq!(
        store
            .load(&status_op("freeze", "").id)
            .await
            .expect("the store answers"),
        None,
        "the next freeze runs again"
    );
    assert!(
        store
            .load(&status_op("unfreeze", "").id)
            .await
            .expect("the store answers")
            .is_some()
    );
    let instance = store
        .instance("acme", "inst-CS1")
        .await
        .expect("the store answers")
        .expect("the instance");
    assert_eq!(instance.status_changed_at, Some(3_000));
    // An older change applied late never moves the mark back.
    store
        .claim(&status_op("late", "status:freeze"), 4_000, LEASE)
        .await
        .expect("the store answers");
    let late = Completion {
        instance: Some(change("frozen", 2_500)),
        ..done(OperationStatus::Succeeded, "ok")
    };
    store
        .complete(&status_op("late", "").id, 1, &late, 4_100)
        .await
        .expect("the store answers");
    let instance = store
        .instance("acme", "inst-CS1")
        .await
        .expect("the store answers")
        .expect("the instance");
    assert_eq!(instance.status_changed_at, Some(3_000));
}

#[tokio::test]
async fn a_store_that_cannot_grow_fails_the_claim_and_keeps_what_it_had() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.db");
    let settings = settings(&path);
    let store = SqliteStore::open(&settings).await.expect("opens");
    store
        .claim(&op("first", "CS0"), 1_000, LEASE)
        .await
        .expect("the store answers");
    let capped = SqliteSettings {
        max_size_bytes: Some(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) + 8192),
        ..settings
    };
    let store = SqliteStore::open(&capped).await.expect("opens");
    let big = NewOperation {
        request_json: "x".repeat(1 << 20),
        ..op("big", "CS1")
    };
    let error = store
        .claim(&big, 2_000, LEASE)
        .await
        .expect_err("the disk is full");
    assert!(matches!(error, StoreError::Sql(_)), "{error}");
    assert_eq!(
        store.load(&big.id).await.expect("the store answers"),
        None,
        "nothing half written"
    );
    assert_eq!(
        store
            .instance("acme", "inst-CS1")
            .await
            .expect("the store answers"),
        None,
        "the instance proposal rolled back with the claim"
    );
    assert!(
        store
            .load(&op("first", "CS0").id)
            .await
            .expect("the store answers")
            .is_some()
    );
}

async fn a_store_from_a_newer_gateway_is_refused(engine: Engine) {
    drop(engine.open().await);
    let store = engine.open().await;
    store
        .claim(&op("k", "CS1"), 1_000, LEASE)
        .await
        .expect("reopening keeps the schema");
    engine
        .tamper("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .await;
    let refused = engine.try_open().await;
    assert!(
        matches!(refused, Err(StoreError::TooNew { found: 999, .. })),
        "{:?}",
        refused.err()
    );
}

async fn a_corrupt_row_is_returned_on_its_own_and_can_be_parked(engine: Engine) {
    let store = engine.open().await;
    for (key, order) in [("bad", "CS1"), ("good", "CS2")] {
        let id = op(key, order).id;
        store
            .claim(&op(key, order), 1_000, LEASE)
            .await
            .expect("the store answers");
        store
            .complete(&id, 1, &done(OperationStatus::FailedRetryable, "x"), 1_100)
            .await
            .expect("the store answers");
    }
    engine
        .tamper("UPDATE operations SET attempt = -1 WHERE idempotency_key = 'bad'")
        .await;
    let store = engine.open().await;
    let stuck = store
        .stuck(2_000, 5, 10)
        .await
        .expect("one bad row fails no batch");
    let (unreadable, readable): (Vec<_>, Vec<_>) = stuck
        .into_iter()
        .partition(|row| matches!(row, StuckRow::Unreadable { .. }));
    assert!(
        matches!(&readable[..], [StuckRow::Record(r)] if r.id.idempotency_key == "good"),
        "{readable:?}"
    );
    let [StuckRow::Unreadable { id, why }] = &unreadable[..] else {
        panic!("one unreadable row: {unreadable:?}")
    };
    assert_eq!(id.idempotency_key, "bad");
    assert!(why.contains("attempt -1"), "{why}");
    assert!(
        store
            .park(id, "unreadable: attempt -1", 2_100)
            .await
            .expect("the store answers")
    );
    let stuck = store.stuck(2_200, 5, 10).await.expect("the store answers");
    assert_eq!(stuck.len(), 1, "the parked row no longer comes back");
}

/// Checkpoints run on a thread of their own: pages written to the WAL
/// reach the database file without the writer checkpointing (its own
/// automatic checkpoint is only a fallback, far above what is written here).
#[tokio::test]
async fn the_wal_is_checkpointed_into_the_database_in_the_background() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.db");
    let store = SqliteStore::open(&settings(&path)).await.expect("opens");
    let database_bytes = || std::fs::metadata(&path).map_or(0, |m| m.len());
    let before = database_bytes();
    // Each remembered nonce is a commit of its own: several pages of WAL.
    for i in 0..2_000 {
        let nonce = format!("{i:08}-{}", "n".repeat(200));
        store
            .remember_nonce("m", &guard(&nonce, None), 1_000)
            .await
            .expect("remembered");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while database_bytes() < before + (1 << 20) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint moved the WAL's pages into the database: {} bytes",
            database_bytes()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

on_both_engines!(
    two_hundred_concurrent_claims_have_exactly_one_winner,
    a_claim_remembers_its_replay_guard_first,
    the_instance_mapping_outlives_the_reaped_operation,
    a_takeover_fences_out_the_stale_worker,
    a_transient_failure_is_retaken_and_exhausted_ones_are_parked,
    nonces_are_remembered_across_a_reopen_until_they_expire,
    a_token_is_bound_to_what_it_signed,
    the_reaper_keeps_leased_work_and_instances,
    a_status_change_supersedes_the_opposite_change,
    a_store_from_a_newer_gateway_is_refused,
    a_corrupt_row_is_returned_on_its_own_and_can_be_parked,
);
