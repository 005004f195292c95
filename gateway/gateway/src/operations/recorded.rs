//! One recorded business operation: built from a verified callback (or read
//! back from its record, for the completer), and what it writes — the claim's
//! record and, per attempt, the fenced completion.

use gateway_store::{
    Completion, InstanceAssignment, InstanceChange, NewOperation, OperationId, OperationRecord,
    OperationStatus, ReplayGuard,
};
use koogallery_contract::OperationRequest;
use koogallery_protocol::{AccessKey, Callback, Disposition, ResultCode, ids};

use super::envelope::{self, Unreadable};
use super::kind::Kind;
use super::{Executed, Pinned};
use crate::sealing::Sealer;

/// One recorded business operation, ready to run.
#[derive(Clone, Debug)]
pub struct RecordedOperation {
    pub id: OperationId,
    pub kind: Kind,
    pub test: bool,
    /// The business key, readable (for logs and operators).
    pub business_key: String,
    /// See `koogallery_protocol::ids::fingerprint`.
    pub fingerprint: String,
    pub request: OperationRequest,
    /// The instance acted on (not for a create).
    pub instance_id: Option<String>,
    /// The instance a create proposes.
    pub assignment: Option<InstanceAssignment>,
    /// Record an unknown instance on success instead of refusing it.
    pub import_unknown_instance: bool,
    /// The key credentials in the answer are encrypted with (`None`: the
    /// merchant's first key).
    pub sealing_key: Option<AccessKey>,
    /// When the marketplace signed the request (Unix ms), for the status
    /// changes that must not be applied out of order.
    pub signed_at_ms: Option<i64>,
    /// What the caller pinned for the execution (see [`Pinned`]).
    pub pinned: Option<Pinned>,
    /// The request's replay guard, remembered with the claim (the caller
    /// sets it; see `Operations::run`).
    pub replay_guard: Option<ReplayGuard>,
}

impl RecordedOperation {
    /// The recorded operation of a verified callback signed at
    /// `signed_at_ms`; `None` for reads.
    pub fn from_callback(
        merchant: &str,
        callback: &Callback,
        signed_at_ms: i64,
        import_unknown_instance: bool,
        sealing_key: Option<AccessKey>,
    ) -> Option<RecordedOperation> {
        let kind = Kind::of(&callback.request)?;
        let mut request = callback.request.clone();
        let fingerprint = ids::fingerprint_in_place(&mut request);
        Some(RecordedOperation {
            id: OperationId {
                merchant_id: merchant.to_string(),
                idempotency_key: request.call().idempotency_key.clone(),
            },
            kind,
            test: callback.test,
            business_key: callback.business_key.replace('\0', " / "),
            fingerprint,
            instance_id: request.acted_on().map(str::to_string),
            assignment: assignment_of(&request),
            request,
            import_unknown_instance,
            sealing_key,
            signed_at_ms: kind.toggles().map(|_| signed_at_ms),
            pinned: None,
            replay_guard: None,
        })
    }

    /// An operation rebuilt from its record, for the completer.
    pub fn from_record(
        record: &OperationRecord,
        import_unknown_instance: bool,
        sealer: &Sealer,
    ) -> Result<RecordedOperation, Unreadable> {
        let kind = Kind::from_stored_name(&record.kind)
            .ok_or_else(|| Unreadable(format!("unknown operation kind `{}`", record.kind)))?;
        let request = envelope::read_request(&record.request_json, Some(kind.operation()), sealer)?;
        if Kind::of(&request) != Some(kind) {
            return Err(Unreadable(format!(
                "the stored request is a `{}`, not a `{}`",
                request.operation(),
                record.kind
            )));
        }
        Ok(RecordedOperation {
            id: record.id.clone(),
            kind,
            test: record.test,
            business_key: record.business_key.clone(),
            fingerprint: record.fingerprint.clone(),
            instance_id: request.acted_on().map(str::to_string),
            assignment: assignment_of(&request),
            request,
            import_unknown_instance,
            sealing_key: None,
            // The completer re-drives what was claimed: its order was
            // checked when it arrived.
            signed_at_ms: None,
            // It runs on the merchant as served now.
            pinned: None,
            // No request of its own: its guard was remembered with its claim.
            replay_guard: None,
        })
    }

    /// The record a claim of this operation inserts (its buyer sealed).
    pub fn new_record(&self, sealer: &Sealer) -> NewOperation {
        NewOperation {
            id: self.id.clone(),
            test: self.test,
            kind: self.kind.stored_name().to_string(),
            business_key: self.business_key.clone(),
            instance_id: self.instance_id.clone(),
            assignment: self.assignment.clone(),
            fingerprint: self.fingerprint.clone(),
            request_json: envelope::write_request(&self.request, sealer),
            replay_guard: self.replay_guard.clone(),
        }
    }

    /// The request for one attempt: its fence number, and for a create the
    /// instance id the store assigned.
    pub(super) fn request_for(&self, attempt: u32, assigned: Option<&str>) -> OperationRequest {
        let mut request = self.request.clone();
        request.call_mut().attempt = attempt;
        if let (OperationRequest::Create(create), Some(id)) = (&mut request, assigned) {
            create.instance_id = id.to_string();
        }
        request
    }

    /// How an attempt ended, as the store keeps it.
    pub(super) fn completion(&self, executed: &Executed, instance_id: Option<&str>) -> Completion {
        let status = match executed.disposition {
            Disposition::Retryable => OperationStatus::FailedRetryable,
            Disposition::Final if executed.answer.result_code == ResultCode::Success => {
                OperationStatus::Succeeded
            }
            Disposition::Final => OperationStatus::FailedFinal,
        };
        let instance = instance_id.and_then(|id| {
            let status = match status {
                OperationStatus::Succeeded => self.kind.instance_status_after_success(),
                OperationStatus::FailedFinal if self.kind == Kind::Create => Some("failed"),
                _ => return None,
            };
            Some(InstanceChange {
                instance_id: id.to_string(),
                status,
                expires_at: expiry(&self.request),
                status_changed_at: self.signed_at_ms,
                import: self.import_unknown_instance && self.kind != Kind::Create,
            })
        });
        let supersedes = match (status, self.kind.toggles()) {
            (OperationStatus::Succeeded, Some(other)) => vec![other.stored_name().to_string()],
            _ => Vec::new(),
        };
        Completion {
            status,
            result_json: envelope::write_answer(&executed.answer),
            instance,
            supersedes,
        }
    }
}

/// The instance a create proposes for its order line. V2 keys the line on
/// orderLineId; V1 (no lines) on productId.
fn assignment_of(request: &OperationRequest) -> Option<InstanceAssignment> {
    let OperationRequest::Create(create) = request else {
        return None;
    };
    let line = create
        .order_line_id
        .as_ref()
        .or(create.product.product_id.as_ref());
    Some(InstanceAssignment {
        order_id: create.order_id.clone(),
        order_line_key: line.cloned().unwrap_or_default(),
        instance_id: create.instance_id.clone(),
    })
}

/// The expiry an operation tells, in Unix seconds.
fn expiry(request: &OperationRequest) -> Option<i64> {
    match request {
        OperationRequest::Create(r) => r.expire_at.map(|at| at.unix_seconds),
        OperationRequest::Renew(r) => Some(r.expire_at.unix_seconds),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery_contract::{CallContext, Instant, Param, RenewRequest, RenewScene};

    fn renewal(request_id: &str, attempt: u32, extra: &str, expire: i64) -> OperationRequest {
        OperationRequest::Renew(RenewRequest {
            call: CallContext {
                idempotency_key: "kg-1".into(),
                attempt,
                test: false,
                request_id: request_id.into(),
            },
            instance_id: "i-1".into(),
            order_id: "CS1".into(),
            order_line_id: Some("L1".into()),
            scene: RenewScene::Renewal,
            product_id: None,
            expire_at: Instant {
                unix_seconds: expire,
            },
            extensions: vec![Param {
                name: "retryCount".into(),
                value: extra.into(),
            }],
        })
    }

    #[test]
    fn the_fingerprint_ignores_the_call_and_unknown_fields_but_not_business_fields() {
        let first = ids::fingerprint(&renewal("r1", 1, "0", 100));
        assert_eq!(first, ids::fingerprint(&renewal("r2", 3, "7", 100)));
        assert_ne!(first, ids::fingerprint(&renewal("r1", 1, "0", 200)));
        assert_eq!(first.len(), 64);
    }

    fn record(kind: &str, request_json: String) -> OperationRecord {
        OperationRecord {
            id: OperationId {
                merchant_id: "m".into(),
                idempotency_key: "kg-1".into(),
            },
            test: false,
            kind: kind.into(),
            business_key: "renew / i-1".into(),
            instance_id: Some("i-1".into()),
            fingerprint: "f".into(),
            status: OperationStatus::FailedRetryable,
            attempt: 1,
            locked_until: None,
            request_json,
            result_json: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_record_reads_back_into_its_operation_or_says_why_not() {
        let request = renewal("r1", 1, "0", 100);
        let sealer = Sealer::new(&[1; 32]);
        let stored = envelope::write_request(&request, &sealer);
        let op = RecordedOperation::from_record(&record("renew", stored.clone()), false, &sealer)
            .expect("readable");
        assert_eq!(op.kind, Kind::Renew);
        assert_eq!(op.request, request);
        assert_eq!(op.instance_id.as_deref(), Some("i-1"));
        let unknown = RecordedOperation::from_record(
            &record("status:suspend", stored.clone()),
            false,
            &sealer,
        )
        .expect_err("an unknown kind");
        assert!(unknown.0.contains("status:suspend"), "{unknown}");
        let mismatched = RecordedOperation::from_record(&record("release", stored), false, &sealer)
            .expect_err("a renew stored as a release");
        assert!(mismatched.0.contains("not a `release`"), "{mismatched}");
    }
}
