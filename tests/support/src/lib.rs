//! Test support: real plugin components, built from source.
//!
//! The first call in a process builds the whole `plugins/` workspace for
//! `wasm32-wasip2` (release profile) into `target/plugins`, a target directory
//! of its own so that it never waits on the lock of the `cargo test` that runs
//! us. Cargo makes repeated builds no-ops, and its lock serialises concurrent
//! test processes. Later calls in the process reuse the result.

pub mod callbacks;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The plugins a test can ask for, by short name.
pub const PLUGINS: [&str; 7] = [
    "reference",
    "misbehave",
    "wrong-world",
    "fs-reader",
    "outbound",
    "contract-0-1-0",
    "tenant-provisioner",
];

/// The path of a built plugin component, by its short name (one of
/// [`PLUGINS`]).
pub fn plugin_path(name: &str) -> PathBuf {
    assert!(
        PLUGINS.contains(&name),
        "no test plugin named `{name}`; known: {PLUGINS:?}"
    );
    let dir = built_plugins();
    dir.join(format!("{}_plugin.wasm", name.replace('-', "_")))
}

/// The bytes of a built plugin component.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let path = plugin_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn built_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build_plugins)
}

fn build_plugins() -> PathBuf {
    let root = repo_root();
    let target_dir = root.join("target/plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root.join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Settings of the outer build must not leak into the guest build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| panic!("could not run cargo to build the test plugins: {e}"));
    assert!(
        output.status.success(),
        "building the test plugins failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join("wasm32-wasip2/release")
}
