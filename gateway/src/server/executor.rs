//! Running a merchant's handler (its sandboxed plugin, or native code for
//! the benchmarks' baseline) and turning the outcome into an unsigned
//! answer: the one path from a plugin call to an [`Answer`], used by the
//! idempotency layer (through [`Executor`]) and by reads (queryInstance,
//! changeInstanceCheck) alike.

use std::sync::Arc;

use super::merchants::{Handler, Merchant, Merchants};
use super::metrics::{self, Metrics};
use crate::config::{AccessKey, UnknownInstances};
use crate::contract::OperationRequest;
use crate::operations::{BoxFuture, Disposition, Executed, Executor, disposition_of};
use crate::protocol::{Answer, Encryption};
use crate::result_code::{self, ResultCode};
use crate::runtime::{Outcome, Runtime};

/// The merchants' handlers, as the idempotency layer sees them.
pub struct HandlerExecutor {
    pub merchants: Arc<Merchants>,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
}

impl Executor for HandlerExecutor {
    fn execute(
        &self,
        merchant_id: &str,
        request: OperationRequest,
        sealing_key: Option<AccessKey>,
    ) -> BoxFuture<Option<Executed>> {
        let merchant = self.merchants.get(merchant_id).cloned();
        let (runtime, metrics) = (self.runtime.clone(), self.metrics.clone());
        Box::pin(async move {
            let merchant = merchant?;
            let key = sealing_key.or_else(|| merchant.keys.first().cloned())?;
            Some(run(&runtime, &metrics, &merchant, &request, &key).await)
        })
    }

    fn imports_unknown_instances(&self, merchant_id: &str) -> bool {
        self.merchants
            .get(merchant_id)
            .is_some_and(|m| m.unknown_instances == UnknownInstances::Import)
    }
}

/// Runs `request` on the merchant's handler and answers for it, with
/// credentials encrypted under `key`.
pub async fn run(
    runtime: &Runtime,
    metrics: &Metrics,
    merchant: &Merchant,
    request: &OperationRequest,
    key: &AccessKey,
) -> Executed {
    let outcome = match &merchant.handler {
        Handler::Plugin(plugin) => {
            runtime
                .invoke(plugin, &merchant.context, request)
                .await
                .outcome
        }
        Handler::Native(native) => native(request),
    };
    if let Outcome::Failed(error) = &outcome {
        tracing::warn!(error = %error, "plugin call failed");
        metrics::count(&metrics.plugin_failures, &merchant.id, error.kind());
    }
    let instance_id = match request {
        OperationRequest::Create(create) => Some(create.instance_id.as_str()),
        _ => None,
    };
    if let (Outcome::Answered(crate::contract::OperationOutput::Created(created)), Some(ours)) =
        (&outcome, instance_id)
        && created.instance_id != ours
    {
        tracing::error!(
            plugin_said = created.instance_id,
            assigned = ours,
            "the plugin reported a different instance id; the gateway's assigned id is answered"
        );
    }
    match &outcome {
        Outcome::Answered(output) => Executed {
            answer: Answer::success(
                output,
                instance_id,
                Encryption {
                    access_key: key.expose(),
                    encrypt_type: merchant.encrypt_type,
                },
            ),
            disposition: Disposition::Final,
        },
        other => {
            let coded = result_code::for_outcome(other);
            let disposition = match other {
                Outcome::Failed(_) => Disposition::Retryable,
                _ => disposition_of(coded.code),
            };
            Executed {
                answer: Answer::coded(&coded),
                disposition,
            }
        }
    }
}

/// The answer while an operation is still running: 000004, or for a create
/// whose merchant chose so, success with the already-assigned instance id.
pub fn in_progress(merchant: &Merchant, instance_id: Option<String>) -> Answer {
    use crate::config::CreateInFlight;
    match instance_id {
        Some(id) if merchant.create_in_flight == CreateInFlight::Success => {
            let mut answer = Answer::new(ResultCode::Success, "instance is being provisioned");
            answer.instance_id = Some(id);
            answer
        }
        _ => Answer::new(
            ResultCode::Processing,
            "still being processed, please retry",
        ),
    }
}
