//! Signature verification + parsing per request (target ≤ 5 µs), for both
//! generations, with plain JSON parsing of the same body as the baseline.
//!
//! `cargo bench -p koogallery-protocol --bench protocol`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use koogallery_protocol::{
    self as protocol, EncryptType, Generation, ParseContext, VerifyPolicy, marketplace,
};

const KEY: &str = "00000000-test-key-0000-000000000000";
const NOW: i64 = 1_716_363_778_801;

fn ctx() -> ParseContext<'static> {
    ParseContext {
        merchant: "acme",
        request_id: "r",
        access_key: KEY,
        encrypt_type: EncryptType::Aes256,
    }
}

fn bench(c: &mut Criterion) {
    let body = br#"{"activity":"newInstance","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","businessId":"61e834ba-7b97-4418-b8f7-e5345137278c","testFlag":"1"}"#;
    let v2_query = marketplace::v2_query(KEY, body, NOW, &marketplace::random_nonce());
    let params: Vec<(String, String)> = [
        ("activity", "newInstance"),
        ("businessId", "61e834ba-7b97-4418-b8f7-e5345137278c"),
        ("customerId", "68cbc86abc2018ab880d92f36422fa0e"),
        ("expireTime", "20200727153156"),
        ("orderId", "CS1906666666ABCDE"),
        ("productId", "00301-666666-0--0"),
        ("testFlag", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let v1_query = marketplace::v1_query(KEY, &params, NOW);
    // The served gateway's default window (`config::lower::verify_policy`).
    let policy = VerifyPolicy {
        window_ms: 60_000,
        v1_window_ms: 4 * 3600 * 1000,
        max_query_bytes: 8192,
        max_query_params: 64,
    };
    let keys = [KEY];

    let mut group = c.benchmark_group("inbound");
    group.bench_function("baseline: serde_json parse of the body", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)))
    });
    group.bench_function("v2 newInstance: verify + parse", |b| {
        b.iter(|| {
            protocol::read_callback(
                Generation::V2,
                black_box(&v2_query),
                black_box(body),
                &keys,
                NOW,
                &policy,
                &ctx(),
            )
            .map(|(_, callback)| callback.activity)
        })
    });
    group.bench_function("v1 newInstance: verify + parse", |b| {
        b.iter(|| {
            protocol::read_callback(
                Generation::V1,
                black_box(&v1_query),
                b"",
                &keys,
                NOW,
                &policy,
                &ctx(),
            )
            .map(|(_, callback)| callback.activity)
        })
    });
    group.finish();
    assert!(
        protocol::read_callback(Generation::V2, &v2_query, body, &keys, NOW, &policy, &ctx())
            .is_ok()
            && protocol::read_callback(Generation::V1, &v1_query, b"", &keys, NOW, &policy, &ctx())
                .is_ok(),
        "the benchmarked requests must be valid"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
