//! Shared helpers of the end-to-end tests: a runtime with test-friendly
//! settings, requests built from compact JSON, and outcome assertions.

pub mod http_stub;
pub mod served;

use std::sync::Arc;
use std::time::Duration;

use gateway::config::{SandboxConfig, lower};
use gateway_sandbox::{
    CallError, Invocation, LoadedPlugin, MerchantContext, Outcome, Runtime, RuntimeSettings,
};
use koogallery_contract::{Operation, OperationOutput, OperationRequest, PluginError};
use serde_json::Value;

/// A runtime configured like the served gateway's, with at most
/// `max_instances` sandboxes.
pub fn runtime(max_instances: u32) -> Runtime {
    runtime_with(settings(SandboxConfig {
        max_instances,
        ..SandboxConfig::default()
    }))
}

/// The runtime settings the served gateway would use for `sandbox`
/// (artifacts in memory only).
pub fn settings(sandbox: SandboxConfig) -> RuntimeSettings {
    lower::runtime(&sandbox, None)
}

pub fn runtime_with(settings: RuntimeSettings) -> Runtime {
    Runtime::new(settings).expect("the runtime starts")
}

/// Loads one of the test plugins (see `test_support::PLUGINS`).
pub fn load(runtime: &Runtime, plugin: &str) -> Arc<LoadedPlugin> {
    runtime
        .load(&test_support::plugin_bytes(plugin))
        .expect("the test plugin loads")
}

/// A merchant with the given configuration values and deadline.
pub fn merchant(config: &[(&str, &str)], deadline: Duration) -> MerchantContext {
    lower::merchant_context(
        "test-merchant",
        config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        gateway_sandbox::CallLimits {
            deadline,
            ..lower::default_call_limits()
        },
        &SandboxConfig::default(),
    )
}

/// A request for `operation` from the business fields in `fields`; the rest
/// comes from the gateway's own defaults (`gateway::request_json`).
pub fn request(operation: Operation, fields: Value) -> OperationRequest {
    gateway::request_json::build(operation, "test-merchant", fields, true)
        .expect("a well-formed test request")
}

/// The output of an answered call, or a panic naming what happened instead.
pub fn answered(invocation: &Invocation) -> &OperationOutput {
    match &invocation.outcome {
        Outcome::Answered(output) => output,
        other => panic!("expected an answer, got {other:?}"),
    }
}

pub fn declined(invocation: &Invocation) -> &PluginError {
    match &invocation.outcome {
        Outcome::Declined(error) => error,
        other => panic!("expected the plugin to decline, got {other:?}"),
    }
}

pub fn failed(invocation: &Invocation) -> &CallError {
    match &invocation.outcome {
        Outcome::Failed(error) => error,
        other => panic!("expected the call to fail, got {other:?}"),
    }
}
