//! `gateway plugin invoke`: one operation of a plugin, under the same limits
//! as production, reported as JSON on stdout. The request is either the
//! contract's own (`--request`, with the operation named), or a marketplace
//! callback exactly as the seller console shows it (`--marketplace`: a V2
//! JSON body or a V1 query string), read by the gateway's protocol reader as
//! a served callback would be.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};

use gateway::config::{SandboxConfig, defaults, lower};
use gateway::executor::coded_outcome;
use gateway::request_json;
use gateway_sandbox::{Invocation, LoadedPlugin, MerchantContext, Outcome, Runtime};
use koogallery_contract::{Operation, OperationRequest};
use koogallery_protocol::callback::{self, Generation, ParseContext};
use koogallery_protocol::{Fields, ResultCode};

use crate::cli::{SandboxArgs, read_file};

#[derive(Debug, Args)]
pub(crate) struct InvokeArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// The operation (with `--request`): create, query, renew, update-status,
    /// release, upgrade, change-check or issue-license.
    operation: Option<Operation>,
    /// The request as JSON: a file, or `-` for stdin. Fields you leave out
    /// get defaults (call context, extensions, and for create the instance id
    /// the gateway would assign).
    #[arg(long, required_unless_present = "marketplace", requires = "operation")]
    request: Option<String>,
    /// A marketplace callback as the seller console shows it — a V2 JSON body,
    /// or a V1 query string (`activity=newInstance&orderId=…`) — from a file
    /// or `-`; its activity names the operation, its testFlag the test mode.
    #[arg(long, conflicts_with_all = ["request", "operation", "live"])]
    marketplace: Option<String>,
    /// Mark the call as real (testFlag=0). By default calls are marked as
    /// tests, so plugins avoid real side effects.
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    local: LocalMerchant,
}

/// What `plugin invoke` and `plugin test` share: the plugin run as a local
/// merchant under the production limits, with the grants given here.
#[derive(Debug, Args)]
pub(crate) struct LocalMerchant {
    /// The merchant the calls are for (labels logs; part of the instance ids).
    #[arg(long, default_value = "local")]
    pub(crate) merchant: String,
    /// A merchant configuration value for the plugin, `KEY=VALUE`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Call deadline in milliseconds (production default).
    #[arg(long, default_value_t = defaults::deadline_ms())]
    pub(crate) deadline_ms: u64,
    /// Memory limit in MiB (production default).
    #[arg(long, default_value_t = defaults::memory_mib())]
    pub(crate) memory_mib: u64,
    #[command(flatten)]
    outbound: OutboundArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// A plugin loaded for local calls, and where they run.
pub(crate) struct LocalRun {
    pub(crate) runtime: Runtime,
    pub(crate) plugin: Arc<LoadedPlugin>,
    pub(crate) merchant: MerchantContext,
    pub(crate) tokio: tokio::runtime::Runtime,
}

impl LocalMerchant {
    /// Loads `file` and makes the merchant its calls are for: its
    /// configuration, limits, outbound grant, and a key-value store in
    /// memory (what the plugin writes it reads back).
    pub(crate) fn start(&self, file: &Path) -> anyhow::Result<LocalRun> {
        let wasm = read_file(file)?;
        let runtime = self.sandbox.runtime()?;
        let plugin = runtime
            .load(&wasm)
            .map_err(|e| anyhow::anyhow!("{} is not a valid plugin: {e}", file.display()))?;
        let mut merchant = lower::merchant_context(
            &self.merchant,
            self.config.iter().cloned().collect(),
            lower::limits(self.deadline_ms, self.memory_mib),
            &SandboxConfig::default(),
        );
        merchant.kv = Some(gateway::capabilities::MemoryKv::scope());
        merchant.egress = self.outbound.policy(&self.merchant)?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(LocalRun {
            runtime,
            plugin,
            merchant,
            tokio,
        })
    }
}

/// A local outbound HTTP grant, as an operator gives one to a merchant.
#[derive(Debug, clap::Args)]
pub(crate) struct OutboundArgs {
    /// Let the plugin reach this `scheme://host[:port]` (repeatable), with
    /// the gateway's default limits.
    #[arg(long = "allow-outbound", value_name = "ENTRY")]
    pub(crate) allowed: Vec<String>,
    /// Let it reach loopback and private networks too (a backend on this
    /// machine); link-local addresses stay refused.
    #[arg(long)]
    pub(crate) allow_private_networks: bool,
}

impl OutboundArgs {
    /// The grant for `merchant`, if any entry is given.
    pub(crate) fn policy(
        &self,
        merchant: &str,
    ) -> anyhow::Result<Option<std::sync::Arc<gateway_sandbox::EgressPolicy>>> {
        if self.allowed.is_empty() {
            return Ok(None);
        }
        let allowed = gateway_egress::AllowList::parse(&self.allowed)?;
        let limits = lower::egress_limits(&gateway::config::OutboundHttpConfig::default());
        let client = gateway_egress::EgressClient::new(None)?;
        Ok(Some(gateway_egress::EgressPolicy::new(
            merchant.into(),
            allowed,
            self.allow_private_networks,
            limits,
            client,
        )))
    }
}

pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

pub(crate) fn run(args: &InvokeArgs) -> anyhow::Result<ExitCode> {
    let merchant_id = &args.local.merchant;
    let request = match (&args.marketplace, &args.request, args.operation) {
        (Some(source), _, _) => marketplace_request(source, merchant_id)?,
        (None, Some(source), Some(operation)) => {
            let json = read_request(source)?;
            request_json::build(operation, merchant_id, json, !args.live)?
        }
        _ => anyhow::bail!("name the operation and --request, or give --marketplace"),
    };
    let operation = request.operation();
    let run = args.local.start(&args.file)?;
    let invocation = run
        .tokio
        .block_on(run.runtime.invoke(&run.plugin, &run.merchant, &request));
    let report = report(operation, &invocation);
    println!("{}", serde_json::to_string_pretty(&report)?);
    let code = coded_outcome(&invocation.outcome).code;
    Ok(if code == ResultCode::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn read_text(source: &str) -> anyhow::Result<String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(source).map_err(|e| anyhow::anyhow!("cannot read {source}: {e}"))
    }
}

fn read_request(source: &str) -> anyhow::Result<Value> {
    serde_json::from_str(&read_text(source)?)
        .map_err(|e| anyhow::anyhow!("the request in {source} is not valid JSON: {e}"))
}

/// A marketplace callback read as the gateway reads a served one (its
/// signature aside): a JSON object is V2, anything else a V1 query string.
fn marketplace_request(source: &str, merchant: &str) -> anyhow::Result<OperationRequest> {
    let text = read_text(source)?;
    let text = text.trim();
    let (generation, map) = if text.starts_with('{') {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("the V2 body in {source} is not valid JSON: {e}"))?;
        match value {
            Value::Object(map) => (Generation::V2, map),
            _ => anyhow::bail!("the V2 body in {source} is not a JSON object"),
        }
    } else {
        let query = text.rsplit_once('?').map_or(text, |(_, query)| query);
        let map = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(&s.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (decode(key), Value::String(decode(value)))
            })
            .collect();
        (Generation::V1, map)
    };
    let ctx = ParseContext {
        merchant,
        request_id: "invoke",
        access_key: "",
        encrypt_type: Default::default(),
    };
    callback::parse(generation, Fields::new(map), &ctx)
        .map(|callback| callback.request)
        .map_err(|e| anyhow::anyhow!("the gateway would refuse this callback (000002): {e}"))
}

/// The JSON printed for an invocation.
fn report(operation: Operation, invocation: &Invocation) -> Value {
    let coded = coded_outcome(&invocation.outcome);
    let mut report = json!({
        "operation": operation,
        "result_code": coded.code.code(),
        "result_msg": coded.message,
        "duration_ms": invocation.duration.as_secs_f64() * 1000.0,
        "peak_memory_bytes": invocation.peak_memory_bytes,
        "logs": invocation.logs,
    });
    let (key, value) = match &invocation.outcome {
        Outcome::Answered(output) => ("result", request_json::to_wit_names(json!(output))),
        Outcome::Declined(error) => ("error", request_json::to_wit_names(json!(error))),
        Outcome::Failed(error) => (
            "failure",
            json!({"error": error, "message": error.to_string()}),
        ),
    };
    report[key] = value;
    report["outcome"] = json!(match &invocation.outcome {
        Outcome::Answered(_) => "answered",
        Outcome::Declined(_) => "declined",
        Outcome::Failed(_) => "failed",
    });
    for (name, captured) in [
        ("stdout", &invocation.stdout),
        ("stderr", &invocation.stderr),
    ] {
        if !captured.text.is_empty() || captured.dropped_bytes > 0 {
            report[name] = json!({"text": captured.text, "dropped_bytes": captured.dropped_bytes});
        }
    }
    report
}
