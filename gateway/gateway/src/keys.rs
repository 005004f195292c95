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
        match std::fs::read_to_string(file) {
            Ok(text) => parse(text.trim()).ok_or_else(|| KeyError::BadFile {
                path: file.to_path_buf(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(file),
            Err(source) => Err(KeyError::Io {
                path: file.to_path_buf(),
                source,
            }),
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

/// Writes a fresh random key to `file`, readable by its owner only.
fn create(file: &Path) -> Result<Keys, KeyError> {
    let io = |source| KeyError::Io {
        path: file.to_path_buf(),
        source,
    };
    let master: [u8; 32] = rand::random();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options.open(file).map_err(io)?;
    std::io::Write::write_all(&mut handle, hex::encode(master).as_bytes()).map_err(io)?;
    handle.sync_all().map_err(io)?;
    tracing::info!(path = %file.display(), "generated the gateway's master key");
    Ok(Keys { master })
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
