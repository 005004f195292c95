//! The state machine of one operation: claim → (on a win) plugin → fenced
//! completion; or, when a record exists, replay it, wait for it, or take it
//! over. Runs in a spawned task, so that a client disconnect never cuts it
//! halfway (see `Operations::run`).
//!
//! ```text
//!            claim (with the instance mapping, one transaction)
//!  (none) ─────────────────────────────▶ in_flight(attempt=1, lease)
//!                                          │           │             │
//!           plugin ok / business refusal   │ transient │ lease passes │ (crash)
//!                                          ▼           ▼             ▼
//!                     succeeded | failed_final   failed_retryable ──▶ take over: attempt+1
//! ```

use std::sync::Arc;

use gateway_store::{Claim, OperationRecord, OperationStatus, Remembered, StoreError};
use koogallery_protocol::Answer;

use super::Inner;
use super::cache::Settled;
use super::envelope;
use super::recorded::RecordedOperation;
use koogallery_protocol::time::now_ms;

/// Why a drive produced no final result. Never cached.
#[derive(Debug)]
pub(super) enum Unsettled {
    /// Someone else holds the lease (or took our fence).
    InProgress {
        instance_id: Option<String>,
    },
    /// This attempt failed transiently; answer it, a retry re-executes.
    Retryable(Box<Answer>),
    /// The stored operation has other business fields.
    Mismatch {
        stored: String,
    },
    Store(StoreError),
    /// No answer from the handler: the task failed, or the merchant is no
    /// longer served (a completer re-driving an old record).
    Failed(String),
    /// The request's replay guard was seen before: nothing was claimed.
    Replayed(Remembered),
}

/// Claims `op` and drives it from there. Its failures are logged here,
/// once, whether or not a caller still waits for them.
pub(super) async fn drive(
    inner: Arc<Inner>,
    op: RecordedOperation,
    wait_until: tokio::time::Instant,
) -> Result<Arc<Settled>, Unsettled> {
    let driven = claim_and_drive(inner, &op, wait_until).await;
    match &driven {
        Err(Unsettled::Store(error)) => tracing::error!(
            business_key = %op.business_key,
            %error,
            "the store failed; the operation is not recorded as done (answered 000005)"
        ),
        Err(Unsettled::Failed(why)) => tracing::error!(
            business_key = %op.business_key,
            why,
            "the operation produced no answer (answered 000005)"
        ),
        _ => {}
    }
    driven
}

async fn claim_and_drive(
    inner: Arc<Inner>,
    op: &RecordedOperation,
    wait_until: tokio::time::Instant,
) -> Result<Arc<Settled>, Unsettled> {
    let claim = inner
        .store
        .claim(&op.new_record(&inner.sealer), now_ms(), inner.lease_ms())
        .await
        .map_err(Unsettled::Store)?;
    match claim {
        Claim::Won { instance_id } => {
            inner.claimed.insert(op.id.clone(), instance_id.clone());
            execute(&inner, op, 1, instance_id).await
        }
        Claim::Exists(record) => {
            inner
                .claimed
                .insert(op.id.clone(), record.instance_id.clone());
            drive_record(inner, op.clone(), *record, wait_until).await
        }
        Claim::Replayed(remembered) => Err(Unsettled::Replayed(remembered)),
    }
}

/// Follows an existing record: replay it, wait for it, or take it over.
pub(super) async fn drive_record(
    inner: Arc<Inner>,
    op: RecordedOperation,
    mut record: OperationRecord,
    wait_until: tokio::time::Instant,
) -> Result<Arc<Settled>, Unsettled> {
    loop {
        if record.fingerprint != op.fingerprint {
            return Err(Unsettled::Mismatch {
                stored: record.fingerprint,
            });
        }
        if record.status.is_final() {
            return settled_from(&record);
        }
        let now = now_ms();
        let leased = record.status == OperationStatus::InFlight
            && record.locked_until.is_some_and(|until| until >= now);
        if !leased {
            let taken = inner
                .store
                .take_over(&record.id, record.attempt, now, inner.lease_ms())
                .await
                .map_err(Unsettled::Store)?;
            if let Some(attempt) = taken {
                tracing::info!(
                    business_key = %op.business_key,
                    attempt,
                    previous = record.status.as_str(),
                    "taking the operation over"
                );
                return execute(&inner, &op, attempt, record.instance_id.clone()).await;
            }
        } else if tokio::time::Instant::now() + inner.settings.poll_interval() > wait_until {
            return Err(Unsettled::InProgress {
                instance_id: record.instance_id,
            });
        } else {
            tokio::time::sleep(inner.settings.poll_interval()).await;
        }
        record = match inner.store.load(&op.id).await.map_err(Unsettled::Store)? {
            Some(record) => record,
            // Reaped under our feet: nothing to follow; the retry claims anew.
            None => return Err(Unsettled::InProgress { instance_id: None }),
        };
    }
}

/// Runs attempt `attempt` and writes its end under the fence.
async fn execute(
    inner: &Inner,
    op: &RecordedOperation,
    attempt: u32,
    instance_id: Option<String>,
) -> Result<Arc<Settled>, Unsettled> {
    if let (Some(assigned), Some(proposed)) = (&instance_id, &op.assignment)
        && *assigned != proposed.instance_id
    {
        tracing::info!(
            assigned,
            "the order line already has an instance; reusing it"
        );
    }
    let request = op.request_for(attempt, instance_id.as_deref());
    let Some(executed) = inner
        .executor
        .execute(
            &op.id.merchant_id,
            op.pinned.as_ref(),
            request,
            op.sealing_key.clone(),
        )
        .await
    else {
        let why = format!("merchant {} is no longer served", op.id.merchant_id);
        return Err(Unsettled::Failed(why));
    };
    let target = instance_id.as_deref().or(op.instance_id.as_deref());
    let completion = op.completion(&executed, target);
    match inner
        .store
        .complete(&op.id, attempt, &completion, now_ms())
        .await
    {
        Ok(true) if completion.status.is_final() => Ok(Arc::new(Settled {
            fingerprint: op.fingerprint.clone(),
            answer: executed.answer,
            executed: true,
        })),
        Ok(true) => Err(Unsettled::Retryable(Box::new(executed.answer))),
        Ok(false) => {
            tracing::warn!(
                business_key = %op.business_key,
                attempt,
                "another worker took the operation over; this attempt's result was not written"
            );
            Err(Unsettled::InProgress { instance_id })
        }
        Err(error) => Err(Unsettled::Store(error)),
    }
}

/// The final result a record holds.
pub(super) fn settled_from(record: &OperationRecord) -> Result<Arc<Settled>, Unsettled> {
    let corrupt = |why: String| Unsettled::Store(StoreError::Corrupt(why));
    let text = record
        .result_json
        .as_deref()
        .ok_or_else(|| corrupt(format!("{} has no result", record.business_key)))?;
    let answer = envelope::read_answer(text)
        .map_err(|why| corrupt(format!("{}: {why}", record.business_key)))?;
    Ok(Arc::new(Settled {
        fingerprint: record.fingerprint.clone(),
        answer,
        executed: false,
    }))
}
