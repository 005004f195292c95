//! The hot cache's entry: a final result, as cached and replayed, and what
//! it weighs (the cache is bounded by estimated bytes).

use gateway_store::OperationId;
use koogallery_protocol::Answer;

/// A final result.
#[derive(Debug)]
pub(super) struct Settled {
    pub(super) fingerprint: String,
    pub(super) answer: Answer,
    /// Whether this drive ran the plugin (else it read the store).
    pub(super) executed: bool,
}

/// The least a cached result is taken to weigh (keys, bookkeeping).
pub const MIN_ENTRY_WEIGHT: u32 = 256;

impl Settled {
    /// Roughly the bytes the entry holds.
    pub(super) fn weight(&self, id: &OperationId) -> u32 {
        let answer = &self.answer;
        let app_info = answer.app_info.as_ref().map_or(0, |info| {
            [
                &info.front_end_url,
                &info.admin_url,
                &info.user_name,
                &info.password,
                &info.memo,
            ]
            .iter()
            .map(|field| field.as_ref().map_or(0, String::len))
            .sum()
        });
        let text = id.merchant_id.len()
            + id.idempotency_key.len()
            + self.fingerprint.len()
            + answer.result_msg.len()
            + answer.instance_id.as_ref().map_or(0, String::len)
            + answer.license.as_ref().map_or(0, String::len)
            + app_info;
        u32::try_from(text)
            .unwrap_or(u32::MAX)
            .saturating_add(MIN_ENTRY_WEIGHT)
    }
}
