//! The callback log: one record per callback answered (the merchant's view
//! of its callbacks), searched newest first with a cursor, pruned after its
//! retention in small steps. Written lazily (no fsync of its own): a record
//! lost in a crash loses a log line, never an answer.

/// One callback as the log keeps it. `seq` is the store's (0 for a new one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub merchant_id: String,
    pub request_id: String,
    pub generation: String,
    pub activity: String,
    pub order_id: Option<String>,
    pub order_line_id: Option<String>,
    pub instance_id: Option<String>,
    pub result_code: String,
    pub result_msg: String,
    pub latency_us: i64,
    pub path: String,
    pub reason: Option<String>,
    pub attempt: Option<i64>,
    pub plugin_version: Option<i64>,
    pub plugin_sha256: Option<String>,
    pub idempotency_key: Option<String>,
    pub test: bool,
    pub plugin_logs_json: Option<String>,
    pub request_json: Option<String>,
}

/// Which records a search wants; every field narrows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackFilter {
    pub merchant_id: Option<String>,
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    pub result_code: Option<String>,
    pub activity: Option<String>,
    pub path: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The cursor: records older than this `seq`.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// The callback log.
#[async_trait::async_trait]
pub trait CallbackLog: Send + Sync + 'static {
    /// Appends records (one lazy commit for all of them).
    async fn log_callbacks(&self, records: Vec<CallbackRecord>) -> Result<(), crate::StoreError>;
    /// Records matching `filter`, newest first.
    async fn callbacks(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<CallbackRecord>, crate::StoreError>;
    async fn callback(&self, seq: i64) -> Result<Option<CallbackRecord>, crate::StoreError>;
    /// Of `merchant_id`'s records since `since_ms`: how many, and how many
    /// were not answered 000000.
    async fn callback_counts(
        &self,
        merchant_id: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), crate::StoreError>;
    /// Deletes at most `limit` records older than `before_ms`; how many.
    async fn prune_callbacks(&self, before_ms: i64, limit: u32) -> Result<u64, crate::StoreError>;
}
