//! Validation of plugin components: the cheap checks on raw bytes before
//! anything is compiled (size, magic number, a component rather than a core
//! module, and — read from its top-level sections — our world, our contract
//! version and only imports the gateway grants), then the same checks on the
//! compiled component's type.

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::engine::MAX_MEMORIES_PER_COMPONENT;
use super::error::LoadError;
use koogallery_contract::PROVISIONING_INTERFACE;

/// What `gateway plugin check` reports about a valid component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentReport {
    /// SHA-256 of the component's bytes, in hex.
    pub content_hash: String,
    pub size_bytes: usize,
    /// The version of `koogallery:plugin` the component targets.
    pub contract_version: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl ComponentReport {
    /// Whether the component makes outbound HTTP requests.
    pub fn uses_outbound_http(&self) -> bool {
        self.imports
            .iter()
            .any(|name| name.starts_with("wasi:http/outgoing-handler@"))
    }

    /// Refuses the component for `merchant` when it imports a capability the
    /// merchant was not granted.
    pub fn check_grants(&self, merchant: &str, outbound_granted: bool) -> Result<(), LoadError> {
        if self.uses_outbound_http() && !outbound_granted {
            return Err(LoadError::NeedsOutboundGrant {
                merchant: merchant.to_string(),
            });
        }
        Ok(())
    }
}

/// Interfaces a plugin may import, and the version line of each.
const ALLOWED_IMPORTS: &[(&str, &str)] = &[
    ("koogallery:plugin/types", "0.1."),
    ("koogallery:plugin/log", "0.1."),
    ("koogallery:plugin/config", "0.1."),
    ("koogallery:plugin/kv", "0.1."),
    // Granted per merchant: see `ComponentReport::check_grants`.
    ("wasi:http/types", "0.2."),
    ("wasi:http/outgoing-handler", "0.2."),
    ("wasi:io/error", "0.2."),
    ("wasi:io/poll", "0.2."),
    ("wasi:io/streams", "0.2."),
    ("wasi:cli/environment", "0.2."),
    ("wasi:cli/exit", "0.2."),
    ("wasi:cli/stdin", "0.2."),
    ("wasi:cli/stdout", "0.2."),
    ("wasi:cli/stderr", "0.2."),
    ("wasi:cli/terminal-input", "0.2."),
    ("wasi:cli/terminal-output", "0.2."),
    ("wasi:cli/terminal-stdin", "0.2."),
    ("wasi:cli/terminal-stdout", "0.2."),
    ("wasi:cli/terminal-stderr", "0.2."),
    ("wasi:clocks/monotonic-clock", "0.2."),
    ("wasi:clocks/wall-clock", "0.2."),
    ("wasi:random/random", "0.2."),
    ("wasi:random/insecure", "0.2."),
    ("wasi:random/insecure-seed", "0.2."),
];

/// The contract versions this gateway serves: `0.1.x`.
const SUPPORTED_VERSION_LINE: &str = "0.1.";

/// Everything that can be told from the bytes, before the (costly, and for
/// a hostile module possibly slow) compile.
pub(crate) fn precheck(wasm: &[u8], max_bytes: usize) -> Result<(), LoadError> {
    check_bytes(wasm, max_bytes)?;
    let (imports, exports) = top_level_names(wasm)?;
    contract_version(&exports)?;
    refuse_forbidden(&imports)
}

/// The names a component imports and exports at its top level (nested
/// modules' and components' own imports are satisfied inside it).
fn top_level_names(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), LoadError> {
    use wasmparser::{Parser, Payload};
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    imports.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// Refuses imports the gateway does not grant, naming them.
fn refuse_forbidden(imports: &[String]) -> Result<(), LoadError> {
    let forbidden: Vec<&str> = imports
        .iter()
        .map(String::as_str)
        .filter(|name| !is_allowed_import(name))
        .collect();
    if forbidden.is_empty() {
        Ok(())
    } else {
        Err(LoadError::ForbiddenImports(forbidden.join(", ")))
    }
}

/// Checks that cost nothing, before anything is parsed.
fn check_bytes(wasm: &[u8], max_bytes: usize) -> Result<(), LoadError> {
    if wasm.len() > max_bytes {
        return Err(LoadError::TooLarge {
            size: wasm.len(),
            limit: max_bytes,
        });
    }
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8 are the version; bytes 6..8 the layer: 0 = core module, 1 = component.
    match wasm[6..8] {
        [0, 0] => Err(LoadError::CoreModule),
        _ => Ok(()),
    }
}

/// Checks a compiled component against the world and the sandbox.
pub(crate) fn inspect(
    engine: &Engine,
    component: &Component,
    content_hash: &str,
    size_bytes: usize,
) -> Result<ComponentReport, LoadError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let contract_version = contract_version(&exports)?;
    refuse_forbidden(&imports)?;
    if let Some(needs) = component.resources_required()
        && needs.num_memories > MAX_MEMORIES_PER_COMPONENT
    {
        return Err(LoadError::ExceedsSandbox(format!(
            "{} linear memories (at most {MAX_MEMORIES_PER_COMPONENT})",
            needs.num_memories
        )));
    }
    Ok(ComponentReport {
        content_hash: content_hash.to_string(),
        size_bytes,
        contract_version,
        imports,
        exports,
    })
}

/// The version of the provisioning interface the component exports.
fn contract_version(exports: &[String]) -> Result<String, LoadError> {
    let Some(version) = exports.iter().find_map(|name| {
        let (interface, version) = name.split_once('@')?;
        (interface == PROVISIONING_INTERFACE).then_some(version)
    }) else {
        let found = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(LoadError::WrongWorld {
            expected: PROVISIONING_INTERFACE,
            found,
        });
    };
    if !version.starts_with(SUPPORTED_VERSION_LINE) {
        return Err(LoadError::UnsupportedVersion {
            found: version.to_string(),
        });
    }
    Ok(version.to_string())
}

fn is_allowed_import(name: &str) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    ALLOWED_IMPORTS
        .iter()
        .any(|(allowed, line)| *allowed == interface && version.starts_with(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_are_checked_before_compiling() {
        let component = b"\0asm\x0d\0\x01\0rest";
        assert_eq!(check_bytes(component, 100), Ok(()));
        assert_eq!(
            check_bytes(component, 4),
            Err(LoadError::TooLarge { size: 12, limit: 4 })
        );
        assert_eq!(
            check_bytes(b"\0asm\x01\0\0\0", 100),
            Err(LoadError::CoreModule)
        );
        assert_eq!(check_bytes(b"hello, world", 100), Err(LoadError::NotWasm));
        assert_eq!(check_bytes(b"\0as", 100), Err(LoadError::NotWasm));
    }

    #[test]
    fn the_export_decides_world_and_version() {
        let ok = vec!["koogallery:plugin/provisioning@0.1.3".to_string()];
        assert_eq!(contract_version(&ok).ok().as_deref(), Some("0.1.3"));
        let newer = vec!["koogallery:plugin/provisioning@0.2.0".to_string()];
        assert_eq!(
            contract_version(&newer),
            Err(LoadError::UnsupportedVersion {
                found: "0.2.0".into()
            })
        );
        let other = vec!["greet".to_string()];
        assert!(matches!(
            contract_version(&other),
            Err(LoadError::WrongWorld { .. })
        ));
    }

    #[test]
    fn only_granted_interfaces_may_be_imported() {
        assert!(is_allowed_import("wasi:cli/stdout@0.2.6"));
        assert!(is_allowed_import("koogallery:plugin/log@0.1.0"));
        assert!(!is_allowed_import("wasi:filesystem/types@0.2.6"));
        assert!(!is_allowed_import("wasi:sockets/tcp@0.2.6"));
        assert!(!is_allowed_import("wasi:cli/stdout@0.3.0"));
        assert!(!is_allowed_import("bare-function"));
    }
}
