//! A merchant's access key: the secret both sides sign with. Its `Debug`
//! never shows it, so a key can sit in any struct that is logged.

use serde::Deserialize;

/// An access key. Its `Debug` never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct AccessKey(String);

impl AccessKey {
    pub fn new(key: impl Into<String>) -> Self {
        AccessKey(key.into())
    }

    /// The key itself, for signing. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for AccessKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = AccessKey::new("s3cret-key");
        assert_eq!(format!("{key:?}"), "AccessKey(<redacted>)");
        assert_eq!(key.expose(), "s3cret-key");
    }
}
