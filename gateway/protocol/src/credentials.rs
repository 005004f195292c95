//! Credential encryption for `appInfo.userName` / `appInfo.password` (and the
//! `mobilePhone` / `email` a V1 newInstance carries).
//!
//! The marketplace's Java sample derives the AES key with `SHA1PRNG` seeded
//! with the access key, so the key is *not* the access key's bytes: this
//! module reproduces that generator byte for byte. The wire form is a
//! 16-character ASCII IV followed by the base64 AES-CBC/PKCS#7 ciphertext.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// Length of the IV prefix, in ASCII characters (= bytes).
pub const IV_CHARS: usize = 16;

/// The marketplace's `encryptType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum EncryptType {
    /// `1`: AES-256-CBC (the marketplace's default).
    #[default]
    Aes256,
    /// `2`: AES-128-CBC.
    Aes128,
}

impl EncryptType {
    /// The value sent as `encryptType`.
    pub fn wire_value(self) -> &'static str {
        match self {
            EncryptType::Aes256 => "1",
            EncryptType::Aes128 => "2",
        }
    }

    fn key_len(self) -> usize {
        match self {
            EncryptType::Aes256 => 32,
            EncryptType::Aes128 => 16,
        }
    }
}

impl TryFrom<u8> for EncryptType {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(EncryptType::Aes256),
            2 => Ok(EncryptType::Aes128),
            other => Err(format!(
                "encrypt_type must be 1 (AES-256) or 2 (AES-128), not {other}"
            )),
        }
    }
}

impl From<EncryptType> for u8 {
    fn from(value: EncryptType) -> u8 {
        match value {
            EncryptType::Aes256 => 1,
            EncryptType::Aes128 => 2,
        }
    }
}

/// Why a credential could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("does not start with a {IV_CHARS}-character ASCII IV")]
    BadIv,
    #[error("the ciphertext is not base64")]
    NotBase64,
    #[error("wrong key or corrupted ciphertext")]
    BadCiphertext,
    #[error("the plaintext is not UTF-8")]
    NotUtf8,
}

/// The AES key Java's `KeyGenerator` produces when initialised with a
/// `SHA1PRNG` seeded by `access_key`.
pub fn derive_key(access_key: &str, encrypt_type: EncryptType) -> Vec<u8> {
    let mut state: [u8; 20] = Sha1::digest(access_key.as_bytes()).into();
    let mut stream = Vec::with_capacity(40);
    while stream.len() < encrypt_type.key_len() {
        let output: [u8; 20] = Sha1::digest(state).into();
        stream.extend_from_slice(&output);
        update_state(&mut state, &output);
    }
    stream.truncate(encrypt_type.key_len());
    stream
}

/// `sun.security.provider.SecureRandom.updateState`: state += output + 1,
/// as little-endian-by-index signed bytes with carry.
fn update_state(state: &mut [u8; 20], output: &[u8; 20]) {
    let mut carry: i32 = 1;
    let mut changed = false;
    for (s, o) in state.iter_mut().zip(output) {
        let sum = i32::from(*s as i8) + i32::from(*o as i8) + carry;
        let new = (sum & 0xff) as u8;
        changed |= *s != new;
        *s = new;
        carry = sum >> 8;
    }
    if !changed {
        state[0] = state[0].wrapping_add(1);
    }
}

/// Encrypts `plaintext` under a fresh random IV.
pub fn encrypt(access_key: &str, encrypt_type: EncryptType, plaintext: &str) -> String {
    let iv: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(IV_CHARS)
        .map(char::from)
        .collect();
    encrypt_with_iv(access_key, encrypt_type, &iv, plaintext)
}

/// Encrypts with a given IV (for test vectors). `iv` must be 16 ASCII bytes.
pub fn encrypt_with_iv(
    access_key: &str,
    encrypt_type: EncryptType,
    iv: &str,
    plaintext: &str,
) -> String {
    let key = derive_key(access_key, encrypt_type);
    let iv_bytes = iv.as_bytes();
    let ciphertext = match encrypt_type {
        EncryptType::Aes256 => cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, iv_bytes)
            .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes())),
        EncryptType::Aes128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, iv_bytes)
            .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes())),
    };
    // Key and IV lengths are fixed by construction; an IV of the wrong length
    // is a programming error in the caller, reported as an empty ciphertext.
    let ciphertext = ciphertext.unwrap_or_default();
    format!("{iv}{}", BASE64.encode(ciphertext))
}

/// Decrypts the wire form `IV || base64(ciphertext)`.
pub fn decrypt(
    access_key: &str,
    encrypt_type: EncryptType,
    wire: &str,
) -> Result<String, DecryptError> {
    let (iv, encoded) = wire.split_at_checked(IV_CHARS).ok_or(DecryptError::BadIv)?;
    let ciphertext = BASE64
        .decode(encoded)
        .map_err(|_| DecryptError::NotBase64)?;
    let key = derive_key(access_key, encrypt_type);
    let plaintext = match encrypt_type {
        EncryptType::Aes256 => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| DecryptError::BadIv)?
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext),
        EncryptType::Aes128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| DecryptError::BadIv)?
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext),
    }
    .map_err(|_| DecryptError::BadCiphertext)?;
    String::from_utf8(plaintext).map_err(|_| DecryptError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::vectors;

    #[test]
    fn key_derivation_and_ciphertexts_match_the_shared_vectors() {
        let v = vectors();
        let key = v["access_key"].as_str().expect("access_key");
        let c = &v["credential_encryption"];
        let text = |k: &str| c[k].as_str().expect(k).to_string();
        let cases = [
            (EncryptType::Aes128, "aes128_key_hex", "aes128_output"),
            (EncryptType::Aes256, "aes256_key_hex", "aes256_output"),
        ];
        for (encrypt_type, key_hex, output) in cases {
            assert_eq!(hex::encode(derive_key(key, encrypt_type)), text(key_hex));
            let wire = encrypt_with_iv(key, encrypt_type, &text("iv"), &text("plaintext"));
            assert_eq!(wire, text(output));
            assert_eq!(decrypt(key, encrypt_type, &wire), Ok(text("plaintext")));
        }
    }

    #[test]
    fn random_ivs_round_trip_and_differ() {
        let a = encrypt("k", EncryptType::Aes256, "pässwörd");
        let b = encrypt("k", EncryptType::Aes256, "pässwörd");
        assert_ne!(a, b, "a fresh IV each time");
        assert!(a[..IV_CHARS].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            decrypt("k", EncryptType::Aes256, &a).as_deref(),
            Ok("pässwörd")
        );
    }

    #[test]
    fn bad_wire_forms_are_errors_not_panics() {
        assert_eq!(
            decrypt("k", EncryptType::Aes128, "short"),
            Err(DecryptError::BadIv)
        );
        assert_eq!(
            decrypt("k", EncryptType::Aes128, "AbCdEfGh12345678***"),
            Err(DecryptError::NotBase64)
        );
        let wire = encrypt_with_iv("k", EncryptType::Aes128, "AbCdEfGh12345678", "admin");
        assert_eq!(
            decrypt("other", EncryptType::Aes128, &wire),
            Err(DecryptError::BadCiphertext)
        );
        // A multi-byte character straddling the IV boundary.
        assert_eq!(
            decrypt("k", EncryptType::Aes128, "AbCdEfGh1234567é===="),
            Err(DecryptError::BadIv)
        );
    }
}
