//! Background upkeep of the operation records:
//!
//! - the **completer** re-drives operations that failed transiently or whose
//!   worker died holding the lease, without waiting for the marketplace's
//!   next retry, and parks those that used all their attempts (a parked
//!   operation is logged for a human; a marketplace retry still re-executes
//!   it);
//! - the **reaper** deletes settled operation records after the retention
//!   window and expired nonces. The instance mapping is never reaped.
//!
//! Both are loops that stop when their cancellation token fires; a failed
//! pass is logged and the next pass tries again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Operations, Path};
use crate::protocol::time::now_ms;
use crate::store::{Reaped, StoreError};

/// How upkeep runs.
#[derive(Clone, Debug)]
pub struct UpkeepSettings {
    /// How often the completer looks for stuck operations.
    pub completer_interval: Duration,
    /// Attempts (the marketplace's and the completer's) before parking.
    pub max_attempts: u32,
    /// Stuck operations re-driven per pass.
    pub batch: u32,
    /// How often the reaper runs.
    pub reaper_interval: Duration,
    /// How long settled operation records are kept.
    pub retention: Duration,
}

impl Default for UpkeepSettings {
    fn default() -> Self {
        UpkeepSettings {
            completer_interval: Duration::from_secs(30),
            max_attempts: 5,
            batch: 16,
            reaper_interval: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one completer pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompleterPass {
    pub redriven: usize,
    pub completed: usize,
    pub parked: usize,
}

impl Operations {
    /// One completer pass.
    pub async fn complete_stuck(
        &self,
        settings: &UpkeepSettings,
    ) -> Result<CompleterPass, StoreError> {
        let store = self.store();
        let mut pass = CompleterPass::default();
        for (merchant, business_key, attempt) in store
            .park_exhausted(now_ms(), settings.max_attempts)
            .await?
        {
            tracing::error!(
                merchant,
                business_key,
                attempt,
                "operation parked after its last attempt; it needs a human \
                 (a marketplace retry still re-executes it)"
            );
            pass.parked += 1;
        }
        let stuck = store
            .stuck(now_ms(), settings.max_attempts, settings.batch)
            .await?;
        for record in stuck {
            pass.redriven += 1;
            let path = self.redrive(&record).await;
            tracing::info!(
                merchant = record.id.merchant_id,
                business_key = record.business_key,
                attempt = record.attempt + 1,
                outcome = path.map_or("unreadable", Path::label),
                "completer re-drove an operation"
            );
            if path == Some(Path::Executed) {
                pass.completed += 1;
            }
        }
        Ok(pass)
    }

    /// One reaper pass.
    pub async fn reap(&self, settings: &UpkeepSettings) -> Result<Reaped, StoreError> {
        let now = now_ms();
        let retention = i64::try_from(settings.retention.as_millis()).unwrap_or(i64::MAX / 2);
        let reaped = self
            .store()
            .reap(now.saturating_sub(retention), now)
            .await?;
        if reaped != Reaped::default() {
            tracing::info!(
                operations = reaped.operations,
                nonces = reaped.nonces,
                "reaped old operation records and nonces"
            );
        }
        Ok(reaped)
    }

    /// Runs the completer and the reaper until `stop` fires.
    pub async fn run_upkeep(&self, settings: UpkeepSettings, stop: CancellationToken) {
        let mut completer = tokio::time::interval(settings.completer_interval);
        let mut reaper = tokio::time::interval(settings.reaper_interval);
        completer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reaper.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = completer.tick() => {
                    if let Err(error) = self.complete_stuck(&settings).await {
                        tracing::warn!(%error, "completer pass failed");
                    }
                }
                _ = reaper.tick() => {
                    if let Err(error) = self.reap(&settings).await {
                        tracing::warn!(%error, "reaper pass failed");
                    }
                }
            }
        }
    }
}
