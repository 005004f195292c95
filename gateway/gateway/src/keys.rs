//! The gateway's master key, and the keys derived from it:
//!
//! - the **artifact key** authenticates precompiled plugin artifacts
//!   (`gateway_sandbox` refuses an artifact whose MAC does not verify, so a
//!   file swapped into the artifact directory is recompiled, never run);
//! - the **sealing key** encrypts customer data in stored requests
//!   (`crate::sealing`).
//!
//! The master key comes from `GATEWAY_KEY` (64 hex characters; what a
//! secrets manager or several replicas should use), or else from the key
//! file (`key_file`, default `gateway.key` under `data_dir`), which is
//! created with 32 random bytes, mode 0600, on first start. Keep it out of
//! backups of the data directory, or better outside it: whoever holds the
//! key and the store can read the customer data in it.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable that holds the master key, in hex.
pub const KEY_ENV: &str = "GATEWAY_KEY";

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{KEY_ENV} must be 64 hexadecimal characters (32 bytes)")]
    BadEnv,
    #[error("the key file {path} must hold 64 hexadecimal characters")]
    BadFile { path: PathBuf },
    #[error("the key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The master key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Keys {
    master: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// The master key from `env_value` (the content of `GATEWAY_KEY`, if
    /// set) or from `file`, created if missing.
    pub fn load(env_value: Option<&str>, file: &Path) -> Result<Keys, KeyError> {
        if let Some(hex_key) = env_value {
            return parse(hex_key.trim()).ok_or(KeyError::BadEnv);
        }
        match read(file) {
            Err(KeyError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                create(file)
            }
            found => found,
        }
    }

    /// A fixed key, for tests and tools that keep nothing.
    pub fn from_bytes(master: [u8; 32]) -> Keys {
        Keys { master }
    }

    /// The key for `purpose`: HMAC-SHA256 of the purpose under the master
    /// key, so that keys for different purposes are independent.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.master)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Authenticates precompiled artifacts.
    pub fn artifact_key(&self) -> [u8; 32] {
        self.derive("koogallery-gateway/artifacts/v1")
    }

    /// Seals customer data at rest.
    pub fn sealing_key(&self) -> [u8; 32] {
        self.derive("koogallery-gateway/sealing/v1")
    }
}

fn parse(hex_key: &str) -> Option<Keys> {
    let bytes = hex::decode(hex_key).ok()?;
    Some(Keys {
        master: bytes.try_into().ok()?,
    })
}

/// The key in `file`.
fn read(file: &Path) -> Result<Keys, KeyError> {
    let text = std::fs::read_to_string(file).map_err(|source| KeyError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    parse(text.trim()).ok_or_else(|| KeyError::BadFile {
        path: file.to_path_buf(),
    })
}

/// Writes a fresh random key to `file`, readable by its owner only. It is
/// written and synced under a temporary name, then linked into place
/// without replacing anything: replicas started together on one data
/// directory race here, and the losers read the winner's key, which is
/// whole (it was linked only once written).
fn create(file: &Path) -> Result<Keys, KeyError> {
    let io = |source| KeyError::Io {
        path: file.to_path_buf(),
        source,
    };
    let master: [u8; 32] = rand::random();
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    // Created owner-only (0600 on Unix).
    let mut staged = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    staged
        .write_all(hex::encode(master).as_bytes())
        .map_err(io)?;
    staged.as_file().sync_all().map_err(io)?;
    match staged.persist_noclobber(file) {
        Ok(_) => {
            tracing::info!(path = %file.display(), "generated the gateway's master key");
            Ok(Keys { master })
        }
        Err(lost) if lost.error.kind() == ErrorKind::AlreadyExists => read(file),
        Err(failed) => Err(io(failed.error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sub/gateway.key");
        let first = Keys::load(None, &file).expect("created");
        let again = Keys::load(None, &file).expect("read");
        assert_eq!(first.artifact_key(), again.artifact_key());
        assert_ne!(first.artifact_key(), first.sealing_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains(&hex::encode(first.master)));
    }

    #[test]
    fn replicas_starting_together_on_one_key_file_all_get_the_same_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gateway.key");
        let start = std::sync::Barrier::new(8);
        let keys: Vec<Keys> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        Keys::load(None, &file)
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|racer| {
                    racer
                        .join()
                        .expect("no panic")
                        .expect("every racer has the key")
                })
                .collect()
        });
        assert!(keys.iter().all(|key| key.master == keys[0].master));
        assert_eq!(
            Keys::load(None, &file).expect("read").master,
            keys[0].master
        );
    }

    #[test]
    fn the_environment_wins_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gateway.key");
        let hex_key = "11".repeat(32);
        let from_env = Keys::load(Some(&hex_key), &file).expect("from the environment");
        assert_eq!(from_env.master, [0x11; 32]);
        assert!(
            !file.exists(),
            "no file is written when the environment has the key"
        );
        assert!(matches!(
            Keys::load(Some("not hex"), &file),
            Err(KeyError::BadEnv)
        ));
        std::fs::write(&file, "abcd").expect("a short key");
        assert!(matches!(
            Keys::load(None, &file),
            Err(KeyError::BadFile { .. })
        ));
    }
}
