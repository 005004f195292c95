//! `gateway plugin test`: the reference plugin passes the marketplace's
//! debugger cases and probes; plugins that trap, run past their deadline or
//! answer without a front-end URL fail with the reason and exit 4.

use std::process::{Command, Output};

use serde_json::Value;

fn plugin_test(plugin: &str, extra: &[&str]) -> (Output, Value) {
    let path = test_support::plugin_path(plugin);
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["plugin", "test"])
        .arg(&path)
        .args(["--output", "json"])
        .args(extra)
        .output()
        .expect("the CLI runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

fn failed_cases(report: &Value) -> Vec<(String, String)> {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|case| case["passed"] == false)
        .map(|case| {
            (
                case["name"].as_str().unwrap_or_default().to_string(),
                case["problems"].to_string(),
            )
        })
        .collect()
}

#[test]
fn the_reference_plugin_passes_every_case_of_both_generations() {
    let (output, report) = plugin_test("reference", &[]);
    assert_eq!(
        failed_cases(&report),
        Vec::<(String, String)>::new(),
        "{report}"
    );
    assert_eq!(output.status.code(), Some(0));
    let names: Vec<&str> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for expected in [
        "v2.newInstance.minimal",
        "v2.upgradeInstance.minimal",
        "v2.refreshInstance.TRIAL_TO_FORMAL",
        "v2.releaseInstance.unknown",
        "v1.newInstance.minimal",
        "v1.upgrade.minimal",
        "v1.expireInstance.minimal",
    ] {
        assert!(names.contains(&expected), "{expected} is run: {names:?}");
    }
}

#[test]
fn plugins_that_break_the_rules_fail_with_the_reason() {
    let (output, report) = plugin_test("misbehave", &["--config", "create_behaviour=trap"]);
    assert_eq!(output.status.code(), Some(4), "{report}");
    let failed = failed_cases(&report);
    assert!(
        failed
            .iter()
            .any(|(name, why)| name == "v2.newInstance.minimal" && why.contains("trapped")),
        "{failed:?}"
    );

    let slow = ["--config", "create_behaviour=sleep", "--deadline-ms", "300"];
    let (output, report) = plugin_test("misbehave", &slow);
    assert_eq!(output.status.code(), Some(4));
    let failed = failed_cases(&report);
    assert!(
        failed
            .iter()
            .any(|(_, why)| why.contains("deadline") && why.contains("asynchronously")),
        "{failed:?}"
    );

    // Built against the first contract, answering without a front-end URL.
    let (output, report) = plugin_test("contract-0-1-0", &[]);
    assert_eq!(output.status.code(), Some(4));
    let failed = failed_cases(&report);
    assert!(
        failed.iter().any(|(_, why)| why.contains("front-end-url")),
        "{failed:?}"
    );
}

/// A command that must succeed, with its output on failure.
fn succeed(command: &mut Command) -> Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn a_new_rust_plugin_builds_on_its_own_and_passes_the_suite() {
    let dir = tempfile::tempdir().expect("a directory");
    succeed(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["plugin", "new", "demo", "--dir"])
            .arg(dir.path()),
    );
    let project = dir.path().join("demo");
    // Nothing in the project points back into this repository.
    let repo = test_support::repo_root()
        .canonicalize()
        .expect("the repository");
    for entry in walk(&project) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains(repo.to_str().unwrap_or("/nowhere")) && !text.contains("../../"),
            "{} points outside the project",
            entry.display()
        );
    }
    // Its README's commands, with a target directory kept between runs.
    let target = repo.join("target/scaffolded");
    succeed(
        Command::new("cargo")
            .arg("test")
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target),
    );
    succeed(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target),
    );
    let wasm = target.join("wasm32-wasip2/release/demo.wasm");
    let output = succeed(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["plugin", "test"])
            .arg(&wasm),
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(" 0 failed"));

    // A name that cannot be a crate, or a directory that exists: refused.
    let refused = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["plugin", "new", "Not A Name", "--dir"])
        .arg(dir.path())
        .output()
        .expect("the CLI runs");
    assert_eq!(refused.status.code(), Some(1));
    let again = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["plugin", "new", "demo", "--dir"])
        .arg(dir.path())
        .output()
        .expect("the CLI runs");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_new_python_plugin_builds_with_componentize_py_and_passes_the_suite() {
    let dir = tempfile::tempdir().expect("a directory");
    succeed(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["plugin", "new", "pydemo", "--lang", "python", "--dir"])
            .arg(dir.path()),
    );
    let project = dir.path().join("pydemo");
    // The README's commands, with the virtual environment kept between runs
    // (scripts/test creates it; the first run here would too).
    let venv = test_support::repo_root().join("target/pyenv");
    if !venv.join("bin/componentize-py").exists() {
        succeed(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        succeed(
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(project.join("requirements.txt")),
        );
    }
    succeed(
        Command::new(venv.join("bin/python"))
            .args(["-m", "unittest"])
            .current_dir(&project),
    );
    succeed(
        Command::new(venv.join("bin/componentize-py"))
            .args([
                "-d",
                "wit",
                "-w",
                "plugin",
                "componentize",
                "app",
                "--stub-wasi",
                "-o",
                "pydemo.wasm",
            ])
            .current_dir(&project),
    );
    let output = succeed(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["plugin", "test"])
            .arg(project.join("pydemo.wasm")),
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(" 0 failed"));
}

/// `examples/python-plugin` is exactly what `gateway plugin new
/// python-plugin --lang python` writes (the scaffold test above builds and
/// tests that output), so the shipped example cannot drift from it.
#[test]
fn the_python_example_is_the_scaffolds_output() {
    let dir = tempfile::tempdir().expect("a directory");
    succeed(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args([
                "plugin",
                "new",
                "python-plugin",
                "--lang",
                "python",
                "--dir",
            ])
            .arg(dir.path()),
    );
    let fresh = dir.path().join("python-plugin");
    let shipped = test_support::repo_root().join("examples/python-plugin");
    let mut files = walk(&fresh);
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let relative = file.strip_prefix(&fresh).expect("under the project");
        let expected = std::fs::read(&file).expect("the scaffold's file");
        let found = std::fs::read(shipped.join(relative)).unwrap_or_default();
        assert!(
            expected == found,
            "examples/python-plugin/{} differs from the scaffold: regenerate it with \
             `gateway plugin new python-plugin --lang python --dir examples`",
            relative.display()
        );
    }
}
