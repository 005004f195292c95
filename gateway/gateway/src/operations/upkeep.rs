//! Background upkeep of the operation records:
//!
//! - the **completer** re-drives operations that failed transiently or whose
//!   worker died holding the lease, without waiting for the marketplace's
//!   next retry, and parks those that used all their attempts. A record it
//!   cannot read (an unknown kind, another layout, a column out of range) is
//!   parked on its own with the reason, logged as an error, so that it never
//!   blocks the others or fails a pass. A parked operation waits for a human;
//!   a marketplace retry still re-executes it;
//! - the **reaper** deletes settled operation records after the retention
//!   window and expired nonces. The instance mapping is never reaped.
//!
//! Both are loops that stop when their cancellation token fires; a failed
//! pass is logged and the next pass tries again.

use std::time::Duration;

use gateway_store::{OperationId, Reaped, StoreError, StuckRow};
use koogallery_protocol::time::now_ms;
use tokio_util::sync::CancellationToken;

use super::{Operations, Redriven};

/// How upkeep runs (built by `config::lower::upkeep`).
#[derive(Clone, Debug)]
pub struct UpkeepSettings {
    /// How often the completer looks for stuck operations.
    pub completer_interval: Duration,
    /// Attempts (the marketplace's and the completer's) before parking.
    pub max_attempts: u32,
    /// How often the reaper runs.
    pub reaper_interval: Duration,
    /// How long settled operation records are kept.
    pub retention: Duration,
}

/// Stuck records read per batch.
const BATCH: u32 = 16;
/// Batches one pass reads at most (a pass reads another batch only when
/// the last one was full and parked something).
const MAX_BATCHES_PER_PASS: usize = 8;

/// What one completer pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompleterPass {
    /// Records re-driven.
    pub redriven: usize,
    /// Of those, the ones whose plugin ran to a final result.
    pub completed: usize,
    /// Records parked after their last attempt.
    pub parked: usize,
    /// Records parked because they could not be read.
    pub unreadable: usize,
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
        for _ in 0..MAX_BATCHES_PER_PASS {
            let rows = store.stuck(now_ms(), settings.max_attempts, BATCH).await?;
            let full = rows.len() == BATCH as usize;
            let parked_before = pass.unreadable;
            for row in rows {
                match row {
                    StuckRow::Record(record) => match self.redrive(&record).await {
                        Ok(outcome) => {
                            pass.redriven += 1;
                            if outcome == Redriven::Completed {
                                pass.completed += 1;
                            }
                            tracing::info!(
                                merchant = record.id.merchant_id,
                                business_key = record.business_key,
                                attempt = record.attempt + 1,
                                outcome = outcome.label(),
                                "completer re-drove an operation"
                            );
                        }
                        Err(why) => {
                            self.park_unreadable(&record.id, &why.0).await;
                            pass.unreadable += 1;
                        }
                    },
                    StuckRow::Unreadable { id, why } => {
                        self.park_unreadable(&id, &why).await;
                        pass.unreadable += 1;
                    }
                }
            }
            if !full || pass.unreadable == parked_before {
                break;
            }
        }
        Ok(pass)
    }

    /// Parks a record the completer cannot read, so it stops coming back.
    async fn park_unreadable(&self, id: &OperationId, why: &str) {
        let reason = format!("unreadable: {why}");
        let parked = self.store().park(id, &reason, now_ms()).await;
        tracing::error!(
            merchant = id.merchant_id,
            idempotency_key = id.idempotency_key,
            why,
            parked = parked.is_ok(),
            "an operation record cannot be read; parked for a human"
        );
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
