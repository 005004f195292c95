//! The callback log on a real SQLite file: appended in batches, searched
//! per merchant newest first with each filter and the cursor, and pruned by
//! age a step at a time.

mod engines;
use engines::Engine;

use gateway_store::{CallbackFilter, CallbackRecord};

fn record(merchant: &str, at_ms: i64, order: &str, code: &str) -> CallbackRecord {
    CallbackRecord {
        at_ms,
        merchant_id: merchant.into(),
        request_id: format!("r-{at_ms}"),
        generation: "v2".into(),
        activity: "newInstance".into(),
        order_id: Some(order.into()),
        instance_id: Some(format!("i-{order}")),
        result_code: code.into(),
        result_msg: "m".into(),
        path: "executed".into(),
        ..CallbackRecord::default()
    }
}

fn seqs(records: &[CallbackRecord]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

async fn records_are_searched_per_merchant_newest_first_and_pruned_by_age(engine: Engine) {
    let store = engine.open().await;
    let batch = vec![
        record("m1", 1_000, "o1", "000000"),
        record("m1", 2_000, "o2", "000005"),
        record("m2", 2_500, "o2", "000005"),
        record("m1", 3_000, "o3", "000000"),
    ];
    store.log_callbacks(batch).await.expect("logged");
    let m1 = |filter: CallbackFilter| CallbackFilter {
        merchant_id: Some("m1".into()),
        limit: 10,
        ..filter
    };
    let all = store
        .callbacks(&m1(CallbackFilter::default()))
        .await
        .expect("search");
    assert_eq!(
        all.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
        [3_000, 2_000, 1_000]
    );
    let failed = store
        .callbacks(&m1(CallbackFilter {
            result_code: Some("000005".into()),
            ..Default::default()
        }))
        .await
        .expect("search");
    assert_eq!(failed.len(), 1, "m2's record is not m1's");
    assert_eq!(failed[0].order_id.as_deref(), Some("o2"));
    let by_instance = store
        .callbacks(&m1(CallbackFilter {
            instance_id: Some("i-o3".into()),
            ..Default::default()
        }))
        .await
        .expect("search");
    assert_eq!(by_instance.len(), 1);
    let since = store
        .callbacks(&m1(CallbackFilter {
            since_ms: Some(2_000),
            ..Default::default()
        }))
        .await
        .expect("search");
    assert_eq!(since.len(), 2);
    let cursor = CallbackFilter {
        merchant_id: Some("m1".into()),
        before_seq: Some(all[0].seq),
        limit: 1,
        ..CallbackFilter::default()
    };
    let page = store.callbacks(&cursor).await.expect("search");
    assert_eq!(seqs(&page), [all[1].seq], "the cursor");
    let full = store
        .callback(all[0].seq)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(full, all[0]);

    // Pruning: older than 2,600 ms, one at a time.
    assert_eq!(store.prune_callbacks(2_600, 1).await.expect("pruned"), 1);
    assert_eq!(store.prune_callbacks(2_600, 10).await.expect("pruned"), 2);
    assert_eq!(store.prune_callbacks(2_600, 10).await.expect("pruned"), 0);
    let left = store
        .callbacks(&CallbackFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(left.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [3_000]);
}

on_both_engines!(records_are_searched_per_merchant_newest_first_and_pruned_by_age,);

/// A batch longer than one multi-record statement (and not a multiple of
/// it): every record is appended once, in the batch's order, with every
/// value in its own column.
async fn a_large_batch_keeps_every_record_whole_and_in_order(engine: Engine) {
    let store = engine.open().await;
    let full = |i: i64| CallbackRecord {
        order_line_id: Some(format!("line-{i}")),
        latency_us: i * 7,
        reason: Some(format!("reason-{i}")),
        attempt: Some(i % 3 + 1),
        plugin_version: Some(i % 5),
        plugin_sha256: Some(format!("sha-{i}")),
        idempotency_key: Some(format!("key-{i}")),
        test: i % 2 == 0,
        plugin_logs_json: Some(format!("[{i}]")),
        request_json: Some(format!("{{\"n\":{i}}}")),
        ..record("m1", 10_000 + i, &format!("o{i}"), "000000")
    };
    let batch: Vec<CallbackRecord> = (0..75).map(full).collect();
    store.log_callbacks(batch.clone()).await.expect("logged");
    let mut kept = store
        .callbacks(&CallbackFilter {
            merchant_id: Some("m1".into()),
            limit: 100,
            ..CallbackFilter::default()
        })
        .await
        .expect("search");
    kept.reverse();
    assert_eq!(kept.len(), batch.len());
    for (seq, (kept, sent)) in (kept[0].seq..).zip(kept.iter().zip(&batch)) {
        assert_eq!(kept.seq, seq, "appended in the batch's order");
        let full = store
            .callback(kept.seq)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(CallbackRecord { seq: 0, ..full }, *sent);
    }
}

on_both_engines!(a_large_batch_keeps_every_record_whole_and_in_order,);
