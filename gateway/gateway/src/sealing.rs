//! Customer data sealed at rest: AES-256-GCM under the sealing key
//! (`crate::keys`), a fresh random nonce per value, stored as
//! `base64(nonce ‖ ciphertext ‖ tag)`. The store never holds a buyer's name,
//! phone number or e-mail in clear; the gateway opens them only to hand the
//! request to the plugin (a re-driven operation).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Bytes of the nonce that prefixes every sealed value.
const NONCE_BYTES: usize = 12;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed value is not base64")]
    NotBase64,
    #[error("the sealed value is too short")]
    Truncated,
    #[error("the sealed value does not open with this gateway's key (another key, or altered)")]
    WrongKey,
}

/// Seals and opens values with one key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// `plaintext`, sealed.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        // Encrypting into a Vec cannot fail for inputs under 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        BASE64.encode(sealed)
    }

    /// The plaintext of a value [`seal`](Self::seal) produced.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let bytes = BASE64.decode(sealed).map_err(|_| OpenError::NotBase64)?;
        if bytes.len() < NONCE_BYTES {
            return Err(OpenError::Truncated);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| OpenError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal(b"13812345678");
        assert!(!sealed.contains("1381"));
        assert_ne!(
            sealed,
            sealer.seal(b"13812345678"),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(&sealed).as_deref(), Ok(&b"13812345678"[..]));
        assert_eq!(
            Sealer::new(&[8; 32]).open(&sealed),
            Err(OpenError::WrongKey)
        );
        let mut altered = BASE64.decode(&sealed).expect("base64");
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            sealer.open(&BASE64.encode(altered)),
            Err(OpenError::WrongKey)
        );
        assert_eq!(sealer.open("***"), Err(OpenError::NotBase64));
        assert_eq!(sealer.open("AAAA"), Err(OpenError::Truncated));
    }
}
