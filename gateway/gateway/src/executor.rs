//! Running a merchant's handler and turning the outcome into an unsigned
//! answer: the one path from a plugin call to an [`Answer`], used by the
//! idempotency layer (through [`Executor`]) and by reads (queryInstance,
//! changeInstanceCheck) alike. [`coded_outcome`] is the one mapping from a
//! call's outcome to a result code.

use std::sync::Arc;

use gateway_sandbox::{CallError, Outcome};
use koogallery_contract::OperationRequest;
use koogallery_protocol::result_code::for_plugin_error;
use koogallery_protocol::{AccessKey, Answer, CodedResult, Disposition, Encryption, ResultCode};

use crate::callback_log::CallTraces;
use crate::config::{CreateInFlight, UnknownInstances};
use crate::merchants::{Handler, Merchant, Merchants};
use crate::metrics::{self, Metrics};
use crate::operations::{Executed, Executor, Pinned};
use crate::plugins::Plugins;

/// The result code of a plugin call's outcome. Every sandbox failure is an
/// internal error (000005): the marketplace retries it, and a retry may well
/// succeed (a deadline under load, a busy pool). Its message says what kind
/// of failure it was, never the plugin's internals.
pub fn coded_outcome(outcome: &Outcome) -> CodedResult {
    match outcome {
        Outcome::Answered(_) => CodedResult::new(ResultCode::Success, ""),
        Outcome::Declined(error) => for_plugin_error(error),
        Outcome::Failed(error) => coded_failure(error),
    }
}

fn coded_failure(error: &CallError) -> CodedResult {
    CodedResult::new(ResultCode::Internal, &error.public_message())
}

/// The merchants' handlers, as the idempotency layer sees them.
pub struct HandlerExecutor {
    pub merchants: Arc<Merchants>,
    pub plugins: Plugins,
    pub metrics: Arc<Metrics>,
    /// Where each call leaves what its callback's log record needs.
    pub traces: Option<CallTraces>,
}

#[async_trait::async_trait]
impl Executor for HandlerExecutor {
    async fn execute(
        &self,
        merchant_id: &str,
        pinned: Option<&Pinned>,
        request: OperationRequest,
        sealing_key: Option<AccessKey>,
    ) -> Option<Executed> {
        let pinned = pinned.and_then(|p| p.clone().downcast::<Merchant>().ok());
        let merchant = pinned.or_else(|| self.merchants.get(merchant_id))?;
        let key = sealing_key.or_else(|| merchant.keys.first().cloned())?;
        let traces = self.traces.as_ref();
        Some(
            run(
                &self.plugins,
                &self.metrics,
                traces,
                &merchant,
                &request,
                &key,
            )
            .await,
        )
    }

    fn imports_unknown_instances(&self, merchant_id: &str) -> bool {
        self.merchants
            .get(merchant_id)
            .is_some_and(|m| m.unknown_instances == UnknownInstances::Import)
    }
}

/// Runs `request` on the merchant's handler and answers for it, with
/// credentials encrypted under `key`; leaves the call's trace in `traces`.
pub async fn run(
    plugins: &Plugins,
    metrics: &Metrics,
    traces: Option<&CallTraces>,
    merchant: &Merchant,
    request: &OperationRequest,
    key: &AccessKey,
) -> Executed {
    let outcome = match &merchant.handler {
        Handler::Plugin(plugin) => match plugins.get(plugin).await {
            Ok(loaded) => {
                let invocation = plugins
                    .runtime()
                    .invoke(&loaded, &merchant.context, request)
                    .await;
                if let Some(traces) = traces {
                    let failure = match &invocation.outcome {
                        Outcome::Failed(error) => Some(error.to_string()),
                        _ => None,
                    };
                    let ran = Some((plugin.version, plugin.sha256.clone()));
                    traces.leave(request, ran, &invocation.logs, failure);
                }
                invocation.outcome
            }
            Err(failure) => {
                tracing::error!(
                    version = plugin.version,
                    sha256 = %plugin.sha256,
                    "the merchant's plugin version {} {failure}",
                    plugin.version
                );
                return unavailable(metrics, merchant);
            }
        },
        Handler::Unavailable(_) => return unavailable(metrics, merchant),
        #[cfg(feature = "native-handlers")]
        Handler::Native(native) => native(request),
    };
    match outcome {
        Outcome::Answered(output) => Executed {
            answer: Answer::success(
                &output,
                Encryption {
                    access_key: key.expose(),
                    encrypt_type: merchant.encrypt_type,
                },
            ),
            disposition: Disposition::Final,
        },
        Outcome::Declined(error) => {
            let coded = for_plugin_error(&error);
            Executed {
                disposition: coded.code.disposition(),
                answer: Answer::coded(&coded),
            }
        }
        Outcome::Failed(error) => {
            // The sandbox has logged it; count it here.
            let label = metrics.merchant(&merchant.id);
            metrics::count(&metrics.plugin_failures, label, error.kind());
            Executed {
                answer: Answer::coded(&coded_failure(&error)),
                disposition: Disposition::Retryable,
            }
        }
    }
}

/// The answer of a merchant whose plugin cannot run: 000005, so the
/// marketplace retries.
fn unavailable(metrics: &Metrics, merchant: &Merchant) -> Executed {
    let label = metrics.merchant(&merchant.id);
    metrics::count(&metrics.plugin_failures, label, "unavailable");
    let message = "the merchant's plugin is unavailable; please retry";
    Executed {
        answer: Answer::new(ResultCode::Internal, message),
        disposition: Disposition::Retryable,
    }
}

/// The answer while an operation is still running: 000004, or for a create
/// whose merchant chose so, success with the already-assigned instance id.
pub fn in_progress(merchant: &Merchant, instance_id: Option<String>) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_failures_are_internal_errors_that_say_what_happened() {
        let failure = CallError::Deadline {
            deadline_ms: 50,
            blocked_in_host: false,
        };
        let coded = coded_outcome(&Outcome::Failed(failure));
        assert_eq!(coded.code, ResultCode::Internal);
        assert!(coded.message.contains("deadline"), "{}", coded.message);
        let trap = CallError::Trap {
            trap: "unreachable".into(),
            detail: Some("panicked at secret.rs".into()),
        };
        let coded = coded_outcome(&Outcome::Failed(trap));
        assert!(
            !coded.message.contains("secret"),
            "no internals on the wire"
        );
    }
}
