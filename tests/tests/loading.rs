//! Loading plugins: validation refuses what is not a plugin of our world, a
//! component compiles once per process and is reused from disk after a
//! restart, and a broken artifact is a cache miss rather than a crash.

use std::sync::Arc;

use e2e::{answered, merchant, request, runtime, runtime_with};
use gateway::registry::sha256_hex;
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
    assert_eq!(
        rt.stats().compilations,
        0,
        "world and imports are checked before anything is compiled"
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
        0,
        "none of them reached the compiler"
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
        artifacts: Some(gateway_sandbox::ArtifactSettings {
            dir: dir.to_path_buf(),
            key: [9; 32],
        }),
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

/// An artifact swapped in from another plugin (or forged with a checksum of
/// its own) is never run: its MAC is keyed outside the directory.
#[tokio::test]
async fn a_swapped_or_forged_artifact_is_recompiled_never_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = test_support::plugin_bytes("reference");
    let misbehave = test_support::plugin_bytes("misbehave");
    let first = runtime_with(settings_with_artifacts(dir.path()));
    first.load(&reference).expect("loads");
    first.load(&misbehave).expect("loads");
    let artifact_of = |wasm: &[u8]| {
        let hash = sha256_hex(wasm);
        std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains(&hash))
            .expect("an artifact per plugin")
    };
    let (theirs, ours) = (artifact_of(&misbehave), artifact_of(&reference));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode();
        assert_eq!(
            mode(dir.path()) & 0o777,
            0o700,
            "the directory is owner-only"
        );
        assert_eq!(mode(&ours) & 0o777, 0o600, "artifacts are owner-only");
    }
    std::fs::copy(&theirs, &ours).expect("swap the other plugin's artifact in");
    let swapped = runtime_with(settings_with_artifacts(dir.path()));
    let plugin = swapped.load(&reference).expect("loads");
    assert_eq!(
        swapped.stats().compilations,
        1,
        "the swapped artifact was refused"
    );
    let who = merchant(&[], std::time::Duration::from_secs(5));
    let fields = json!({"order_id": "CS1", "order_line_id": "CS1-1",
        "charging_mode": "Period", "expire_at": {"unix_seconds": 1795000000}});
    let invocation = swapped
        .invoke(&plugin, &who, &request(Operation::Create, fields))
        .await;
    let gateway_sandbox::Outcome::Answered(koogallery_contract::OperationOutput::Created(created)) =
        &invocation.outcome
    else {
        panic!("the reference plugin answers: {:?}", invocation.outcome)
    };
    let url = created
        .app_info
        .as_ref()
        .and_then(|a| a.front_end_url.as_deref());
    assert!(
        url.is_some_and(|u| !u.contains("misbehave")),
        "the reference plugin's own code ran: {url:?}"
    );

    // The old format: a SHA-256 of the bytes in front of them.
    let cwasm = std::fs::read(&theirs).expect("artifact")[32..].to_vec();
    let mut forged = <sha2::Sha256 as sha2::Digest>::digest(&cwasm).to_vec();
    forged.extend_from_slice(&cwasm);
    std::fs::write(&ours, forged).expect("forge");
    let forged_run = runtime_with(settings_with_artifacts(dir.path()));
    forged_run.load(&reference).expect("loads");
    assert_eq!(
        forged_run.stats().compilations,
        1,
        "the forgery was refused"
    );
}

/// Past the cache's bound (count or code bytes) the least recently used
/// plugin is evicted; loading it again by its hash takes its precompiled
/// artifact and never needs its bytes.
#[test]
fn an_evicted_plugin_reloads_from_its_artifact_without_its_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = test_support::plugin_bytes("reference");
    let misbehave = test_support::plugin_bytes("misbehave");
    let (reference_hash, misbehave_hash) = (sha256_hex(&reference), sha256_hex(&misbehave));
    let rt = runtime_with(RuntimeSettings {
        max_cached_plugins: 1,
        ..settings_with_artifacts(dir.path())
    });
    rt.load(&reference).expect("loads");
    rt.load(&misbehave).expect("loads");
    assert_eq!(rt.stats().cached_plugins, 1, "the count bound holds");
    assert!(rt.cached(&reference_hash).is_none(), "the older one left");
    assert!(rt.cached(&misbehave_hash).is_some());

    let reloaded = rt
        .load_stored(&reference_hash, reference.len(), || {
            Err(LoadError::Source("the bytes were not needed".into()))
        })
        .expect("reloads from the artifact");
    assert_eq!(reloaded.report().content_hash, reference_hash);
    assert_eq!(
        (rt.stats().compilations, rt.stats().artifact_hits),
        (2, 1),
        "no compile on the way back"
    );

    // The byte bound: room for the larger plugin's code, not for both.
    let sizes = [
        reloaded.code_bytes(),
        rt.cached(&misbehave_hash).map_or(0, |p| p.code_bytes()),
    ];
    let by_bytes = runtime_with(RuntimeSettings {
        max_cached_plugins: 100,
        max_cached_plugin_bytes: (sizes[0].max(sizes[1]) + 1) as u64,
        ..settings_with_artifacts(dir.path())
    });
    by_bytes.load(&reference).expect("loads");
    by_bytes.load(&misbehave).expect("loads");
    let stats = by_bytes.stats();
    assert_eq!(stats.cached_plugins, 1, "the byte bound holds: {stats:?}");
}

/// Without an artifact the bytes are fetched, and bytes that are not the
/// component asked for are refused before anything compiles.
#[test]
fn a_stored_plugin_without_artifact_is_fetched_and_checked_against_its_hash() {
    let rt = runtime(2);
    let reference = test_support::plugin_bytes("reference");
    let hash = sha256_hex(&reference);
    let swapped = rt.load_stored(&hash, reference.len(), || {
        Ok(test_support::plugin_bytes("misbehave"))
    });
    assert!(
        matches!(&swapped, Err(LoadError::Source(why)) if why.contains("another sha256")),
        "{:?}",
        swapped.err()
    );
    let down = rt.load_stored(&hash, reference.len(), || {
        Err(LoadError::Source("store unreachable".into()))
    });
    assert!(matches!(down, Err(LoadError::Source(_))));
    assert_eq!(rt.stats().compilations, 0);
    let loaded = rt
        .load_stored(&hash, reference.len(), || Ok(reference.clone()))
        .expect("loads");
    assert_eq!(loaded.report().size_bytes, reference.len());
    assert_eq!(rt.stats().compilations, 1);
}
