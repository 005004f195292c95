//! Precompiled plugin artifacts on disk, so that a restart does not compile
//! again. An artifact is keyed by the component's content hash and by the
//! engine's compatibility hash (wasmtime version and code-generation
//! settings).
//!
//! `Component::deserialize` runs the bytes it is given as native code, so an
//! artifact is trusted only if its MAC verifies: HMAC-SHA256, under a key
//! that does not live in the artifact directory, over the engine tag, the
//! component's hash and the compiled bytes. A missing, stale, truncated,
//! altered or swapped artifact is a cache miss (recompiled), never a crash
//! and never someone else's code. The directory is created owner-only
//! (0700), the files 0600.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::RuntimeError;

/// Length of the MAC that prefixes every artifact file.
const MAC_LEN: usize = 32;

/// Where artifacts are kept, and the key that authenticates them.
#[derive(Clone)]
pub struct ArtifactSettings {
    pub dir: PathBuf,
    /// Must not be readable from `dir` (see the module docs).
    pub key: [u8; 32],
}

impl std::fmt::Debug for ArtifactSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactSettings")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish()
    }
}

pub(crate) struct ArtifactStore {
    settings: Option<ArtifactSettings>,
    engine_tag: String,
}

impl ArtifactStore {
    /// A store in `settings.dir` (created owner-only if needed), or none.
    pub(crate) fn new(
        settings: Option<ArtifactSettings>,
        engine: &Engine,
    ) -> Result<Self, RuntimeError> {
        if let Some(settings) = &settings {
            create_private_dir(&settings.dir).map_err(|source| RuntimeError::ArtifactDir {
                path: settings.dir.clone(),
                source,
            })?;
        }
        Ok(ArtifactStore {
            settings,
            engine_tag: engine_tag(engine),
        })
    }

    fn path(&self, content_hash: &str) -> Option<PathBuf> {
        let settings = self.settings.as_ref()?;
        Some(
            settings
                .dir
                .join(format!("{content_hash}-{}.cwasm", self.engine_tag)),
        )
    }

    /// The MAC of an artifact: it binds the bytes to this engine and to the
    /// component they were compiled from.
    fn mac(&self, key: &[u8; 32], content_hash: &str, cwasm: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(self.engine_tag.as_bytes());
        mac.update(&[0]);
        mac.update(content_hash.as_bytes());
        mac.update(&[0]);
        mac.update(cwasm);
        mac
    }

    /// The precompiled component and the size of its code, if an authentic
    /// artifact exists.
    pub(crate) fn load(&self, engine: &Engine, content_hash: &str) -> Option<(Component, usize)> {
        let key = self.settings.as_ref()?.key;
        let path = self.path(content_hash)?;
        let bytes = std::fs::read(&path).ok()?;
        let Some((mac, cwasm)) = bytes.split_at_checked(MAC_LEN) else {
            return discard(&path, "truncated");
        };
        if self
            .mac(&key, content_hash, cwasm)
            .verify_slice(mac)
            .is_err()
        {
            return discard(&path, "its MAC does not verify (altered, or not ours)");
        }
        // SAFETY: the MAC proves that this gateway wrote these very bytes,
        // compiled by an engine with this compatibility tag from the
        // component with this hash; the key never lives next to them.
        // wasmtime still checks version and settings.
        match unsafe { Component::deserialize(engine, cwasm) } {
            Ok(component) => Some((component, cwasm.len())),
            Err(e) => discard(&path, &format!("{e:#}")),
        }
    }

    /// Stores an artifact. Best effort: a failure only costs a compile later.
    pub(crate) fn save(&self, content_hash: &str, cwasm: &[u8]) {
        let (Some(settings), Some(path)) = (&self.settings, self.path(content_hash)) else {
            return;
        };
        let mac = self
            .mac(&settings.key, content_hash, cwasm)
            .finalize()
            .into_bytes();
        if let Err(e) = write_atomically(&path, &mac, cwasm) {
            tracing::warn!(path = %path.display(), error = %e, "could not store a precompiled plugin artifact");
        }
    }
}

fn discard<T>(path: &Path, why: &str) -> Option<T> {
    tracing::warn!(path = %path.display(), why, "ignoring an unusable plugin artifact; recompiling");
    let _ = std::fs::remove_file(path);
    None
}

/// Creates `dir` (and its parents) and makes it owner-only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes MAC + bytes to a temporary owner-only file, syncs it, and renames
/// it into place, so a reader never sees a partial artifact.
fn write_atomically(path: &Path, mac: &[u8], cwasm: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(mac)?;
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
