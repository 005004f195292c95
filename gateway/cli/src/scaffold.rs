//! `gateway plugin new <name> [--lang rust|python]`: a plugin project of its
//! own, outside this repository, that builds on a fresh machine from the
//! package registries alone (crates.io; PyPI's componentize-py for Python). The contract (WIT) and the SDK are vendored into it, pinned to the
//! contract version of this gateway; nothing points back to these sources.
//!
//! The templates live in `gateway/cli/templates/<lang>/`; the SDK and the
//! WIT are the repository's own files, embedded at build time, so a
//! scaffolded project always matches the gateway that made it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lang {
    Rust,
    /// componentize-py (PyPI).
    Python,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The project's name (a directory of that name is created).
    name: String,
    /// The plugin's language.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to create it (default: the current directory).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

const WIT: &str = include_str!("../../../wit/plugin.wit");

/// The SDK's sources, by path in the project.
const SDK: [(&str, &str); 7] = [
    (
        "sdk/src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "sdk/src/config.rs",
        include_str!("../../../plugins/sdk/src/config.rs"),
    ),
    (
        "sdk/src/error.rs",
        include_str!("../../../plugins/sdk/src/error.rs"),
    ),
    (
        "sdk/src/http.rs",
        include_str!("../../../plugins/sdk/src/http.rs"),
    ),
    (
        "sdk/src/kv.rs",
        include_str!("../../../plugins/sdk/src/kv.rs"),
    ),
    (
        "sdk/src/log.rs",
        include_str!("../../../plugins/sdk/src/log.rs"),
    ),
    (
        "sdk/src/time.rs",
        include_str!("../../../plugins/sdk/src/time.rs"),
    ),
];

/// The Python template, by path in the project.
const PYTHON: [(&str, &str); 5] = [
    ("app.py", include_str!("../templates/python/app.py.tmpl")),
    (
        "helpers.py",
        include_str!("../templates/python/helpers.py.tmpl"),
    ),
    (
        "test_helpers.py",
        include_str!("../templates/python/test_helpers.py.tmpl"),
    ),
    (
        "requirements.txt",
        include_str!("../templates/python/requirements.txt.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/python/README.md.tmpl"),
    ),
];

/// The Rust template, by path in the project.
const RUST: [(&str, &str); 6] = [
    (
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    (
        "sdk/Cargo.toml",
        include_str!("../templates/rust/sdk.Cargo.toml.tmpl"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../templates/rust/cargo-config.toml"),
    ),
    (
        "rust-toolchain.toml",
        include_str!("../templates/rust/rust-toolchain.toml"),
    ),
    ("src/lib.rs", include_str!("../templates/rust/lib.rs.tmpl")),
    (
        "README.md",
        include_str!("../templates/rust/README.md.tmpl"),
    ),
];

pub(crate) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        anyhow::bail!(
            "`{name}` cannot name a plugin: use 1-64 lower-case letters, digits, - and _, \
             starting with a letter"
        );
    }
    let root = args.dir.join(name);
    if root.exists() {
        anyhow::bail!(
            "{} exists already; choose another name or --dir",
            root.display()
        );
    }
    let crate_file = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", name)
            .replace("{{crate_file}}", &crate_file)
            .replace("{{contract}}", koogallery_contract::VERSION)
    };
    write(&root, "wit/plugin.wit", WIT)?;
    let next = match args.lang {
        Lang::Rust => {
            for (path, text) in RUST {
                write(&root, path, &fill(text))?;
            }
            for (path, text) in SDK {
                // The SDK finds the contract in the project's `wit/`.
                let text = text.replace("path: \"../../wit\"", "path: \"../wit\"");
                write(&root, path, &text)?;
            }
            write(&root, ".gitignore", "/target\n")?;
            vec![
                "cargo test".to_string(),
                "cargo build --release --target wasm32-wasip2".to_string(),
                format!("gateway plugin test target/wasm32-wasip2/release/{crate_file}.wasm"),
            ]
        }
        Lang::Python => {
            for (path, text) in PYTHON {
                write(&root, path, &fill(text))?;
            }
            write(&root, ".gitignore", "/.venv\n*.wasm\n__pycache__/\n")?;
            vec![
                "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".to_string(),
                ".venv/bin/python -m unittest".to_string(),
                format!(
                    ".venv/bin/componentize-py -d wit -w plugin componentize app --stub-wasi -o {name}.wasm"
                ),
                format!("gateway plugin test {name}.wasm"),
            ]
        }
    };
    let contract = koogallery_contract::VERSION;
    println!("created {} (contract {contract})", root.display());
    println!("  cd {}", root.display());
    for command in next {
        println!("  {command}");
    }
    Ok(ExitCode::SUCCESS)
}

fn write(root: &Path, path: &str, text: &str) -> anyhow::Result<()> {
    let path = root.join(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
