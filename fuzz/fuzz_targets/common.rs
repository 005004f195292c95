//! What the three targets share: one merchant's key, a policy like the
//! served defaults, and "now".

use koogallery_protocol::{EncryptType, ParseContext, VerifyPolicy};

pub const KEY: &str = "fuzz-access-key";

pub const POLICY: VerifyPolicy = VerifyPolicy {
    window_ms: 60_000,
    v1_window_ms: 4 * 3_600_000,
    max_query_bytes: 8 << 10,
    max_query_params: 64,
};

/// A fixed clock, so that a crash reproduces from its input alone.
pub const NOW_MS: i64 = 1_790_000_000_000;

pub fn context() -> ParseContext<'static> {
    ParseContext {
        merchant: "fuzz",
        request_id: "fuzz",
        access_key: KEY,
        encrypt_type: EncryptType::Aes256,
    }
}
