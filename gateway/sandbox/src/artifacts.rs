//! Precompiled plugin artifacts on disk, so that a restart does not compile
//! again. An artifact is keyed by the component's content hash and by the
//! engine's compatibility hash (wasmtime version and code-generation
//! settings). A missing, stale, truncated or corrupt artifact is a cache miss,
//! never a crash: its checksum is verified before wasmtime sees it.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::RuntimeError;

/// Length of the checksum that prefixes every artifact file.
const CHECKSUM_LEN: usize = 32;

pub(crate) struct ArtifactStore {
    dir: Option<PathBuf>,
    engine_tag: String,
}

impl ArtifactStore {
    /// A store in `dir` (created if needed), or none at all.
    pub(crate) fn new(dir: Option<PathBuf>, engine: &Engine) -> Result<Self, RuntimeError> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|source| RuntimeError::ArtifactDir {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(ArtifactStore {
            dir,
            engine_tag: engine_tag(engine),
        })
    }

    fn path(&self, content_hash: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{content_hash}-{}.cwasm", self.engine_tag)))
    }

    /// The precompiled component, if a sound artifact exists.
    pub(crate) fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let path = self.path(content_hash)?;
        let bytes = std::fs::read(&path).ok()?;
        let Some((checksum, cwasm)) = bytes.split_at_checked(CHECKSUM_LEN) else {
            return discard(&path, "truncated");
        };
        if Sha256::digest(cwasm).as_slice() != checksum {
            return discard(&path, "checksum mismatch");
        }
        // SAFETY: the bytes are an artifact this gateway wrote for an engine
        // with the same compatibility hash (it is in the file name), into a
        // directory only the gateway writes, and the checksum proves they are
        // the bytes written. wasmtime still checks version and settings.
        match unsafe { Component::deserialize(engine, cwasm) } {
            Ok(component) => Some(component),
            Err(e) => discard(&path, &format!("{e:#}")),
        }
    }

    /// Stores an artifact. Best effort: a failure only costs a compile later.
    pub(crate) fn save(&self, content_hash: &str, cwasm: &[u8]) {
        let Some(path) = self.path(content_hash) else {
            return;
        };
        if let Err(e) = write_atomically(&path, cwasm) {
            tracing::warn!(path = %path.display(), error = %e, "could not store a precompiled plugin artifact");
        }
    }
}

fn discard(path: &Path, why: &str) -> Option<Component> {
    tracing::warn!(path = %path.display(), why, "ignoring an unusable plugin artifact; recompiling");
    let _ = std::fs::remove_file(path);
    None
}

/// Writes checksum + bytes to a temporary file, syncs it, and renames it into
/// place, so a reader never sees a partial artifact.
fn write_atomically(path: &Path, cwasm: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&Sha256::digest(cwasm))?;
    file.write_all(cwasm)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A short, stable digest of the engine's compatibility hash.
fn engine_tag(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// Feeds `Hash` implementations into SHA-256 (stable across runs, unlike
/// `DefaultHasher`'s output, which std does not promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the digest is read from the inner state
    }
}
