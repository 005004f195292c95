//! The host side of the WIT contract (`wit/plugin.wit`): the generated
//! bindings, the names of the operations, and typed requests and outputs that
//! the rest of the gateway passes around without knowing about wasmtime.
//!
//! Requests and outputs are the generated record types themselves (with serde
//! derives added), so a field added to the contract is a field everywhere.

use serde::{Deserialize, Serialize};

mod bindings {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub(crate) use bindings::koogallery::plugin::{
    config as config_import, log as log_import, types as types_import,
};
pub(crate) use bindings::{Plugin as PluginBindings, PluginPre};

pub use bindings::exports::koogallery::plugin::provisioning::{
    ChangeCheckRequest, CreateKind, CreateRequest, Created, InstanceReport, License,
    LicenseRequest, QueryRequest, ReleaseRequest, RenewRequest, RenewScene, StatusCause,
    StatusChange, StatusRequest, UpgradeRequest, Usage,
};
pub use bindings::koogallery::plugin::log::{Field as LogField, Level as LogLevel};
pub use bindings::koogallery::plugin::types::{
    AppInfo, CallContext, ChargingMode, Customer, Instant, Param, Period, PeriodUnit, PluginError,
    Product,
};

/// The WIT package plugins must target.
pub const PACKAGE: &str = "koogallery:plugin";
/// The contract version this gateway implements; plugins built against any
/// `0.1.x` are accepted.
pub const VERSION: &str = "0.1.0";
/// The exported interface every plugin provides.
pub const PROVISIONING_INTERFACE: &str = "koogallery:plugin/provisioning";

/// One function of the `provisioning` interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Create,
    Query,
    Renew,
    UpdateStatus,
    Release,
    Upgrade,
    ChangeCheck,
    IssueLicense,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::Create,
        Operation::Query,
        Operation::Renew,
        Operation::UpdateStatus,
        Operation::Release,
        Operation::Upgrade,
        Operation::ChangeCheck,
        Operation::IssueLicense,
    ];

    /// The WIT name of the function, as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Query => "query",
            Operation::Renew => "renew",
            Operation::UpdateStatus => "update-status",
            Operation::Release => "release",
            Operation::Upgrade => "upgrade",
            Operation::ChangeCheck => "change-check",
            Operation::IssueLicense => "issue-license",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An operation name that is not part of the contract.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown operation `{0}`; expected one of: create, query, renew, update-status, release, upgrade, change-check, issue-license"
)]
pub struct UnknownOperation(pub String);

impl std::str::FromStr for Operation {
    type Err = UnknownOperation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| UnknownOperation(s.to_string()))
    }
}

/// A typed request for one operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OperationRequest {
    Create(CreateRequest),
    Query(QueryRequest),
    Renew(RenewRequest),
    UpdateStatus(StatusRequest),
    Release(ReleaseRequest),
    Upgrade(UpgradeRequest),
    ChangeCheck(ChangeCheckRequest),
    IssueLicense(LicenseRequest),
}

impl OperationRequest {
    pub fn operation(&self) -> Operation {
        match self {
            OperationRequest::Create(_) => Operation::Create,
            OperationRequest::Query(_) => Operation::Query,
            OperationRequest::Renew(_) => Operation::Renew,
            OperationRequest::UpdateStatus(_) => Operation::UpdateStatus,
            OperationRequest::Release(_) => Operation::Release,
            OperationRequest::Upgrade(_) => Operation::Upgrade,
            OperationRequest::ChangeCheck(_) => Operation::ChangeCheck,
            OperationRequest::IssueLicense(_) => Operation::IssueLicense,
        }
    }

    /// The call context every request carries.
    pub fn call(&self) -> &CallContext {
        match self {
            OperationRequest::Create(r) => &r.call,
            OperationRequest::Query(r) => &r.call,
            OperationRequest::Renew(r) => &r.call,
            OperationRequest::UpdateStatus(r) => &r.call,
            OperationRequest::Release(r) => &r.call,
            OperationRequest::Upgrade(r) => &r.call,
            OperationRequest::ChangeCheck(r) => &r.call,
            OperationRequest::IssueLicense(r) => &r.call,
        }
    }

    /// The call context, to set the attempt of a re-execution.
    pub fn call_mut(&mut self) -> &mut CallContext {
        match self {
            OperationRequest::Create(r) => &mut r.call,
            OperationRequest::Query(r) => &mut r.call,
            OperationRequest::Renew(r) => &mut r.call,
            OperationRequest::UpdateStatus(r) => &mut r.call,
            OperationRequest::Release(r) => &mut r.call,
            OperationRequest::Upgrade(r) => &mut r.call,
            OperationRequest::ChangeCheck(r) => &mut r.call,
            OperationRequest::IssueLicense(r) => &mut r.call,
        }
    }

    /// The request's `extensions`, for the operations that carry them.
    pub fn extensions_mut(&mut self) -> Option<&mut Vec<Param>> {
        match self {
            OperationRequest::Create(r) => Some(&mut r.extensions),
            OperationRequest::Renew(r) => Some(&mut r.extensions),
            OperationRequest::Upgrade(r) => Some(&mut r.extensions),
            OperationRequest::IssueLicense(r) => Some(&mut r.extensions),
            OperationRequest::Query(_)
            | OperationRequest::UpdateStatus(_)
            | OperationRequest::Release(_)
            | OperationRequest::ChangeCheck(_) => None,
        }
    }

    /// Parses the JSON form of a request for `operation` (field names as in
    /// the generated Rust types: `order_id`, `instance_id`, …).
    pub fn from_json(
        operation: Operation,
        value: serde_json::Value,
    ) -> Result<OperationRequest, serde_json::Error> {
        use serde_json::from_value as parse;
        Ok(match operation {
            Operation::Create => OperationRequest::Create(parse(value)?),
            Operation::Query => OperationRequest::Query(parse(value)?),
            Operation::Renew => OperationRequest::Renew(parse(value)?),
            Operation::UpdateStatus => OperationRequest::UpdateStatus(parse(value)?),
            Operation::Release => OperationRequest::Release(parse(value)?),
            Operation::Upgrade => OperationRequest::Upgrade(parse(value)?),
            Operation::ChangeCheck => OperationRequest::ChangeCheck(parse(value)?),
            Operation::IssueLicense => OperationRequest::IssueLicense(parse(value)?),
        })
    }
}

/// What a plugin returned on success.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationOutput {
    Created(Created),
    Instances(Vec<InstanceReport>),
    License(License),
    /// Operations that return nothing but success.
    Done,
}

/// Calls the function of `request` on an instantiated plugin.
pub(crate) async fn dispatch<T: Send>(
    plugin: &PluginBindings,
    store: &mut wasmtime::Store<T>,
    request: &OperationRequest,
) -> wasmtime::Result<Result<OperationOutput, PluginError>> {
    let api = plugin.koogallery_plugin_provisioning();
    Ok(match request {
        OperationRequest::Create(r) => api
            .call_create(store, r)
            .await?
            .map(OperationOutput::Created),
        OperationRequest::Query(r) => api
            .call_query(store, r)
            .await?
            .map(OperationOutput::Instances),
        OperationRequest::Renew(r) => api
            .call_renew(store, r)
            .await?
            .map(|()| OperationOutput::Done),
        OperationRequest::UpdateStatus(r) => api
            .call_update_status(store, r)
            .await?
            .map(|()| OperationOutput::Done),
        OperationRequest::Release(r) => api
            .call_release(store, r)
            .await?
            .map(|()| OperationOutput::Done),
        OperationRequest::Upgrade(r) => api
            .call_upgrade(store, r)
            .await?
            .map(|()| OperationOutput::Done),
        OperationRequest::ChangeCheck(r) => api
            .call_change_check(store, r)
            .await?
            .map(|()| OperationOutput::Done),
        OperationRequest::IssueLicense(r) => api
            .call_issue_license(store, r)
            .await?
            .map(OperationOutput::License),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>().ok(), Some(op));
        }
        let err = "explode"
            .parse::<Operation>()
            .expect_err("not an operation");
        assert!(err.to_string().contains("unknown operation `explode`"));
    }

    #[test]
    fn a_request_parses_from_json_and_keeps_its_operation() {
        let json = serde_json::json!({
            "call": {"idempotency_key": "k", "attempt": 1, "test": true, "request_id": "r"},
            "instance_id": "i-1",
        });
        let request = OperationRequest::from_json(Operation::Release, json).expect("valid");
        assert_eq!(request.operation(), Operation::Release);
        assert_eq!(request.call().idempotency_key, "k");
        let missing = OperationRequest::from_json(Operation::Renew, serde_json::json!({}));
        assert!(
            missing
                .expect_err("incomplete")
                .to_string()
                .contains("missing field")
        );
    }
}
