//! `gateway plugin test`: the marketplace's debugger cases and its probes of
//! on-sale products, run against a plugin through the production sandbox
//! and the gateway's own protocol reader, before anything is deployed.
//!
//! Every activity of both generations in its minimal documented shape (the
//! mandatory fields only) and a rich one; the test flag; a repeated
//! identical request answering identically; renewal in every scene; freeze
//! then unfreeze; release of an unknown instance; the answer's field limits
//! (instanceId ≤ 64, frontEndUrl and adminUrl ≤ 512, resultMsg ≤ 255, a
//! create's frontEndUrl present as the debugger requires); and the time and
//! memory used against the limits. Each failure says what to change.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value, json};

use gateway::executor::coded_outcome;
use gateway_sandbox::{CallError, Invocation, LoadedPlugin, MerchantContext, Outcome, Runtime};
use koogallery_contract::{OperationOutput, OperationRequest};
use koogallery_protocol::callback::{self, Generation, ParseContext};
use koogallery_protocol::{Answer, EncryptType, Encryption, Fields, ResultCode};

use crate::invoke::LocalMerchant;

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// `table` (readable) or `json` (one report object).
    #[arg(long, default_value = "table")]
    output: String,
    #[command(flatten)]
    local: LocalMerchant,
}

/// What a case accepts.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// 000000.
    Success,
    /// 000000, or a documented alternative (an unknown instance: 000003).
    SuccessOr(ResultCode),
    /// Any answer of the plugin (an optional feature may decline).
    Answered,
}

/// One callback of the suite.
struct Case {
    name: String,
    generation: Generation,
    fields: Value,
    expect: Expect,
    /// Send it twice, identically: the answers must be the same.
    repeat: bool,
}

/// How one case went.
#[derive(Debug, Serialize)]
struct CaseResult {
    name: String,
    passed: bool,
    result_code: String,
    result_msg: String,
    duration_ms: f64,
    peak_memory_kib: usize,
    /// What failed and what to change; warnings do not fail the case.
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// The whole run.
#[derive(Debug, Serialize)]
struct Report {
    plugin: String,
    passed: usize,
    failed: usize,
    deadline_ms: u64,
    memory_limit_mib: u64,
    cases: Vec<CaseResult>,
}

/// An access key for encrypting credentials as the marketplace would.
const KEY: &str = "conformance-access-key-0000000000";

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let run = args.local.start(&args.file)?;
    let (deadline_ms, memory_mib) = (args.local.deadline_ms, args.local.memory_mib);
    let suite = Suite {
        runtime: &run.runtime,
        plugin: &run.plugin,
        merchant: &run.merchant,
        limits: (deadline_ms, memory_mib),
    };
    let cases = run.tokio.block_on(suite.run());
    let failed = cases.iter().filter(|c| !c.passed).count();
    let report = Report {
        plugin: args.file.display().to_string(),
        passed: cases.len() - failed,
        failed,
        deadline_ms,
        memory_limit_mib: memory_mib,
        cases,
    };
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

struct Suite<'a> {
    runtime: &'a Runtime,
    plugin: &'a std::sync::Arc<LoadedPlugin>,
    merchant: &'a MerchantContext,
    limits: (u64, u64),
}

impl Suite<'_> {
    async fn run(&self) -> Vec<CaseResult> {
        let mut results = Vec::new();
        for generation in [Generation::V2, Generation::V1] {
            // The instance the later cases of this generation act on.
            let created = self.create_instance(generation).await;
            for case in cases(generation, &created) {
                results.push(self.check(&case).await);
            }
        }
        results
    }

    /// The instance id assigned to the suite's own order of `generation`.
    async fn create_instance(&self, generation: Generation) -> String {
        let first = &cases(generation, "")[0];
        match self.parse(first) {
            Ok(OperationRequest::Create(create)) => create.instance_id,
            _ => "unknown-instance".to_string(),
        }
    }

    fn parse(&self, case: &Case) -> Result<OperationRequest, String> {
        let map = match &case.fields {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        let ctx = ParseContext {
            merchant: &self.merchant.label,
            request_id: &format!("conformance-{}", case.name),
            access_key: KEY,
            encrypt_type: EncryptType::default(),
        };
        callback::parse(case.generation, Fields::new(map), &ctx)
            .map(|callback| callback.request)
            .map_err(|e| format!("the gateway refuses this request itself: {e}"))
    }

    async fn check(&self, case: &Case) -> CaseResult {
        let mut result = CaseResult {
            name: case.name.clone(),
            passed: false,
            result_code: String::new(),
            result_msg: String::new(),
            duration_ms: 0.0,
            peak_memory_kib: 0,
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let request = match self.parse(case) {
            Ok(request) => request,
            Err(why) => {
                result.problems.push(why);
                return result;
            }
        };
        let first = self
            .runtime
            .invoke(self.plugin, self.merchant, &request)
            .await;
        let coded = coded_outcome(&first.outcome);
        result.result_code = coded.code.code().to_string();
        result.result_msg = coded.message.clone();
        result.duration_ms = first.duration.as_secs_f64() * 1000.0;
        result.peak_memory_kib = first.peak_memory_bytes / 1024;
        self.judge(case, &request, &first, &mut result);
        if case.repeat {
            let again = self
                .runtime
                .invoke(self.plugin, self.merchant, &request)
                .await;
            if again.outcome != first.outcome {
                result.problems.push(format!(
                    "the same request (same idempotency key) answered differently the second time \
                     ({} then {}): a retry must get the same answer; derive ids and credentials from \
                     the request, not from randomness or the clock",
                    coded.code.code(),
                    coded_outcome(&again.outcome).code.code()
                ));
            }
        }
        result.passed = result.problems.is_empty();
        result
    }

    fn judge(
        &self,
        case: &Case,
        request: &OperationRequest,
        invocation: &Invocation,
        result: &mut CaseResult,
    ) {
        let problems = &mut result.problems;
        let code = coded_outcome(&invocation.outcome).code;
        match &invocation.outcome {
            Outcome::Failed(error) => problems.push(failure_hint(error)),
            _ => match case.expect {
                Expect::Success if code != ResultCode::Success => problems.push(format!(
                    "expected 000000: the marketplace sends this shape; a plugin must accept the \
                     mandatory fields alone ({})",
                    result.result_msg
                )),
                Expect::SuccessOr(other) if code != ResultCode::Success && code != other => {
                    problems.push(format!("expected 000000 or {}", other.code()))
                }
                Expect::Answered if code != ResultCode::Success => result.warnings.push(format!(
                    "declined ({}): fine only if the product does not offer this",
                    result.result_msg
                )),
                _ => {}
            },
        }
        if let Outcome::Answered(output) = &invocation.outcome {
            answer_limits(request, output, problems);
        }
        let (deadline_ms, memory_mib) = self.limits;
        let used = invocation.duration.as_secs_f64() * 1000.0;
        if used > deadline_ms as f64 / 2.0 {
            result.warnings.push(format!(
                "took {used:.0} ms of its {deadline_ms} ms deadline: little headroom under load"
            ));
        }
        let memory = invocation.peak_memory_bytes as f64 / (1 << 20) as f64;
        if memory > memory_mib as f64 / 2.0 {
            result.warnings.push(format!(
                "used {memory:.1} MiB of its {memory_mib} MiB memory limit"
            ));
        }
    }
}

/// What to change when the sandbox stopped the call.
fn failure_hint(error: &CallError) -> String {
    let hint = match error {
        CallError::Deadline { .. } => {
            "answer sooner: start long provisioning asynchronously and report it through query"
        }
        CallError::MemoryLimit { .. } => "use less memory, or ask the operator for a larger limit",
        CallError::Trap { .. } => "the plugin trapped or panicked: see its detail and stderr",
        CallError::OutputTooLarge { .. } => "return a smaller answer",
        _ => "the sandbox could not run the call",
    };
    format!("{error}: {hint}")
}

/// The answer's documented field limits, on the wire form.
fn answer_limits(request: &OperationRequest, output: &OperationOutput, problems: &mut Vec<String>) {
    let encryption = Encryption {
        access_key: KEY,
        encrypt_type: EncryptType::default(),
    };
    let answer = Answer::success(output, encryption);
    let mut limit = |what: &str, value: Option<&String>, max: usize| {
        if let Some(value) = value
            && value.chars().count() > max
        {
            problems.push(format!(
                "{what} is {} characters; at most {max}",
                value.chars().count()
            ));
        }
    };
    limit("instanceId", answer.instance_id.as_ref(), 64);
    limit("resultMsg", Some(&answer.result_msg), 255);
    if let Some(info) = &answer.app_info {
        limit("appInfo.frontEndUrl", info.front_end_url.as_ref(), 512);
        limit("appInfo.adminUrl", info.admin_url.as_ref(), 512);
    }
    for instance in answer.info.iter().flatten() {
        limit("info[].instanceId", Some(&instance.instance_id), 64);
    }
    // (An instance id other than the assigned one is overruled by the
    // sandbox itself, loudly: the answer always carries the assigned one.)
    if let (OperationRequest::Create(_), OperationOutput::Created(created)) = (request, output) {
        let front_end = created
            .app_info
            .as_ref()
            .and_then(|a| a.front_end_url.as_ref());
        if front_end.is_none() {
            problems.push(
                "no app-info.front-end-url: the marketplace's debugger rejects a subscription \
                 answer without one"
                    .to_string(),
            );
        }
    }
}

/// The suite's callbacks of `generation`; the first is the create whose
/// instance (`instance`) the others act on.
fn cases(generation: Generation, instance: &str) -> Vec<Case> {
    let case = |name: &str, fields: Value, expect: Expect| Case {
        name: format!("{}.{name}", generation.label()),
        generation,
        fields,
        expect,
        repeat: false,
    };
    let order = "CSCONFORMANCE0001";
    let line = "CSCONFORMANCE0001-000001";
    let unknown = "conformance-no-such-instance";
    let mut all = match generation {
        Generation::V2 => vec![
            Case {
                repeat: true,
                ..case(
                    "newInstance.minimal",
                    json!({"activity": "newInstance", "orderId": order, "orderLineId": line,
                        "businessId": "b-1"}),
                    Expect::Success,
                )
            },
            case(
                "newInstance.test-flag",
                json!({"activity": "newInstance", "orderId": "CSCONFORMANCE0002",
                    "orderLineId": "CSCONFORMANCE0002-000001", "businessId": "b-2", "testFlag": "1"}),
                Expect::Success,
            ),
            case(
                "newInstance.rich",
                json!({"activity": "newInstance", "businessId": "b-3", "testFlag": "1",
                    "buyerInfo": {"customerId": "c-1", "customerName": "Zhang San",
                        "mobilePhone": "13800000000", "email": "buyer@example.com"},
                    "orderInfo": [{"orderId": "CSCONFORMANCE0003", "orderLineId": "CSCONFORMANCE0003-000001",
                        "trialFlag": "0", "chargingMode": "PERIOD", "periodType": "month", "periodNumber": 1,
                        "expireTime": "20301231235959",
                        "productInfo": [{"skuCode": "sku-1", "productId": "P-1", "linearValue": 5}],
                        "extendParams": [{"name": "emailDomainName", "value": "example.com"}]}]}),
                Expect::Success,
            ),
            case(
                "newInstance.trial",
                json!({"activity": "newInstance", "businessId": "b-4",
                    "orderInfo": [{"orderId": "CSCONFORMANCE0004", "orderLineId": "CSCONFORMANCE0004-000001",
                        "trialFlag": "1", "chargingMode": "PERIOD", "expireTime": "20301231235959"}]}),
                Expect::Success,
            ),
            case(
                "queryInstance.minimal",
                json!({"activity": "queryInstance", "instanceId": instance}),
                Expect::Success,
            ),
        ],
        Generation::V1 => vec![
            Case {
                repeat: true,
                ..case(
                    "newInstance.minimal",
                    json!({"activity": "newInstance", "customerId": "c-1", "businessId": "b-1",
                        "orderId": order, "productId": "P-1"}),
                    Expect::Success,
                )
            },
            case(
                "newInstance.rich",
                json!({"activity": "newInstance", "customerId": "c-1", "customerName": "Zhang San",
                    "businessId": "b-2", "orderId": "CSCONFORMANCE0002", "productId": "P-1",
                    "skuCode": "sku-1", "expireTime": "20301231235959", "periodType": "month",
                    "periodNumber": "1", "testFlag": "1"}),
                Expect::Success,
            ),
            case(
                "queryInstance.minimal",
                json!({"activity": "queryInstance", "instanceId": instance}),
                Expect::Success,
            ),
        ],
    };
    all.extend(lifecycle(generation, instance, unknown, &case));
    all
}

/// Renewals, status changes, upgrade, change check and release.
fn lifecycle(
    generation: Generation,
    instance: &str,
    unknown: &str,
    case: &dyn Fn(&str, Value, Expect) -> Case,
) -> Vec<Case> {
    match generation {
        Generation::V2 => {
            let mut all: Vec<Case> = ["RENEWAL", "TRIAL_TO_FORMAL", "UNSUBSCRIBE_RENEWAL_PERIOD"]
                .iter()
                .enumerate()
                .map(|(i, scene)| {
                    case(
                        &format!("refreshInstance.{scene}"),
                        json!({"activity": "refreshInstance", "instanceId": instance,
                            "orderId": format!("CSRENEW000{i}"), "orderLineId": format!("CSRENEW000{i}-000001"),
                            "scene": scene, "expireTime": "20311231235959"}),
                        Expect::Success,
                    )
                })
                .collect();
            all.extend([
                case(
                    "updateInstanceStatus.FREEZE",
                    json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": "FREEZE"}),
                    Expect::Success,
                ),
                case(
                    "updateInstanceStatus.UNFREEZE",
                    json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": "UNFREEZE"}),
                    Expect::Success,
                ),
                // Sent only for products that offer upgrades.
                case(
                    "upgradeInstance.minimal",
                    json!({"activity": "upgradeInstance", "instanceId": instance,
                        "orderId": "CSUPGRADE0001", "orderLineId": "CSUPGRADE0001-000001"}),
                    Expect::Answered,
                ),
                case(
                    "changeInstanceCheck.minimal",
                    json!({"activity": "changeInstanceCheck", "instanceId": instance,
                        "productInfo": {"productId": "P-2"}}),
                    Expect::Answered,
                ),
                case(
                    "releaseInstance.minimal",
                    json!({"activity": "releaseInstance", "instanceId": instance}),
                    Expect::Success,
                ),
                case(
                    "releaseInstance.unknown",
                    json!({"activity": "releaseInstance", "instanceId": unknown}),
                    Expect::SuccessOr(ResultCode::InstanceNotFound),
                ),
            ]);
            all
        }
        Generation::V1 => vec![
            case(
                "refreshInstance.minimal",
                json!({"activity": "refreshInstance", "instanceId": instance, "orderId": "CSRENEW0001",
                    "expireTime": "20311231235959"}),
                Expect::Success,
            ),
            case(
                "expireInstance.minimal",
                json!({"activity": "expireInstance", "instanceId": instance, "orderId": "CSCONFORMANCE0001"}),
                Expect::Success,
            ),
            case(
                "instanceStatus.NORMAL",
                json!({"activity": "instanceStatus", "instanceId": instance, "instanceStatus": "NORMAL"}),
                Expect::Success,
            ),
            case(
                "upgrade.minimal",
                json!({"activity": "upgrade", "instanceId": instance, "orderId": "CSUPGRADE0001",
                    "skuCode": "sku-2", "productId": "P-2"}),
                Expect::Answered,
            ),
            case(
                "releaseInstance.minimal",
                json!({"activity": "releaseInstance", "instanceId": instance, "orderId": "CSCONFORMANCE0001"}),
                Expect::Success,
            ),
            case(
                "releaseInstance.unknown",
                json!({"activity": "releaseInstance", "instanceId": unknown, "orderId": "CSCONFORMANCE0009"}),
                Expect::SuccessOr(ResultCode::InstanceNotFound),
            ),
        ],
    }
}

fn print_table(report: &Report) {
    println!("{}", report.plugin);
    for case in &report.cases {
        let mark = if case.passed { "PASS" } else { "FAIL" };
        println!(
            "{mark}  {:<40} {}  {:>7.1} ms  {:>6} KiB",
            case.name, case.result_code, case.duration_ms, case.peak_memory_kib
        );
        for problem in &case.problems {
            println!("        ✗ {problem}");
        }
        for warning in &case.warnings {
            println!("        ! {warning}");
        }
    }
    println!(
        "{} passed, {} failed (deadline {} ms, memory {} MiB)",
        report.passed, report.failed, report.deadline_ms, report.memory_limit_mib
    );
}
