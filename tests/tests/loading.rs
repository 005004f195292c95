//! Loading plugins: validation refuses what is not a plugin of our world, a
//! component compiles once per process and is reused from disk after a
//! restart, and a broken artifact is a cache miss rather than a crash.

use std::sync::Arc;

use e2e::{answered, merchant, request, runtime, runtime_with};
use gateway_sandbox::{LoadError, RuntimeSettings};
use koogallery_contract::Operation;
use serde_json::json;

#[test]
fn components_of_another_world_or_with_forbidden_imports_are_refused() {
    let rt = runtime(2);
    let wrong = rt.load(&test_support::plugin_bytes("wrong-world")).err();
    assert!(
        matches!(&wrong, Some(LoadError::WrongWorld { found, .. }) if found == "greet"),
        "{wrong:?}"
    );
    let fs = rt.load(&test_support::plugin_bytes("fs-reader")).err();
    assert!(
        matches!(&fs, Some(LoadError::ForbiddenImports(list)) if list.contains("wasi:filesystem/")),
        "{fs:?}"
    );
}

#[test]
fn bytes_that_are_no_component_are_refused_with_a_reason() {
    let rt = runtime(2);
    assert_eq!(
        rt.load(b"\0asm\x01\0\0\0").err(),
        Some(LoadError::CoreModule)
    );
    assert_eq!(
        rt.load(b"#!/bin/sh\necho hi\n").err(),
        Some(LoadError::NotWasm)
    );
    let reference = test_support::plugin_bytes("reference");
    let truncated = rt.load(&reference[..reference.len() / 2]).err();
    assert!(
        matches!(truncated, Some(LoadError::Invalid(_))),
        "{truncated:?}"
    );
    let small = runtime_with(RuntimeSettings {
        max_component_bytes: 1024,
        ..e2e::settings(Default::default())
    });
    assert!(matches!(
        small.load(&reference).err(),
        Some(LoadError::TooLarge { limit: 1024, .. })
    ));
    assert_eq!(
        rt.stats().compilations,
        1,
        "only the truncated component reached the compiler"
    );
}

#[test]
fn the_same_bytes_compile_once() {
    let rt = runtime(2);
    let wasm = test_support::plugin_bytes("reference");
    let first = rt.load(&wasm).expect("loads");
    let second = rt.load(&wasm).expect("loads again");
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(rt.stats().compilations, 1);
    rt.load(&test_support::plugin_bytes("misbehave"))
        .expect("another plugin loads");
    assert_eq!(rt.stats().compilations, 2);
}

fn settings_with_artifacts(dir: &std::path::Path) -> RuntimeSettings {
    RuntimeSettings {
        artifact_dir: Some(dir.to_path_buf()),
        ..e2e::settings(Default::default())
    }
}

async fn create_works(rt: &gateway_sandbox::Runtime, wasm: &[u8]) {
    let plugin = rt.load(wasm).expect("loads");
    let fields =
        json!({"instance_id": "i-1", "order_id": "CS1", "kind": "Purchase", "product": {}});
    let invocation = rt
        .invoke(
            &plugin,
            &merchant(&[], std::time::Duration::from_secs(2)),
            &request(Operation::Create, fields),
        )
        .await;
    answered(&invocation);
}

#[tokio::test]
async fn a_restart_reuses_the_precompiled_artifact_and_a_corrupt_one_is_recompiled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = test_support::plugin_bytes("reference");

    let first = runtime_with(settings_with_artifacts(dir.path()));
    create_works(&first, &wasm).await;
    assert_eq!(
        (first.stats().compilations, first.stats().artifact_hits),
        (1, 0)
    );
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let artifact = &artifacts[0];

    let restarted = runtime_with(settings_with_artifacts(dir.path()));
    create_works(&restarted, &wasm).await;
    assert_eq!(
        (
            restarted.stats().compilations,
            restarted.stats().artifact_hits
        ),
        (0, 1)
    );

    // Flip bytes in the middle of the compiled code.
    let mut bytes = std::fs::read(artifact).expect("artifact");
    let middle = bytes.len() / 2;
    bytes[middle..middle + 16]
        .iter_mut()
        .for_each(|b| *b ^= 0xFF);
    std::fs::write(artifact, &bytes).expect("corrupt it");
    let after_corruption = runtime_with(settings_with_artifacts(dir.path()));
    create_works(&after_corruption, &wasm).await;
    assert_eq!(
        (
            after_corruption.stats().compilations,
            after_corruption.stats().artifact_hits
        ),
        (1, 0)
    );

    // A truncated artifact likewise; the next start finds the rewritten one.
    std::fs::write(artifact, b"short").expect("truncate it");
    let after_truncation = runtime_with(settings_with_artifacts(dir.path()));
    create_works(&after_truncation, &wasm).await;
    assert_eq!(after_truncation.stats().compilations, 1);
    let healed = runtime_with(settings_with_artifacts(dir.path()));
    create_works(&healed, &wasm).await;
    assert_eq!(
        (healed.stats().compilations, healed.stats().artifact_hits),
        (0, 1),
        "the artifact was rewritten"
    );
}
