//! The plugin contract (`wit/plugin.wit`) as plain Rust data: the typed
//! requests a marketplace callback becomes, and what a plugin answers.
//!
//! These are the gateway's own types. The sandbox converts them to and from
//! the bindings it generates from the WIT (exhaustively, so a field added to
//! the contract fails to compile until it is carried everywhere); everything
//! else — the protocol parser, the idempotency layer, the store, the CLI —
//! passes these around without knowing about wasmtime.
//!
//! Their serde form is a persisted format: stored operation records and the
//! request fingerprint are built from it. It is the form the first gateway
//! stored (field names as the Rust fields, enum cases as the Rust variants)
//! and it never changes; see `koogallery_protocol::ids` for the formulas that
//! depend on it and `gateway::operations` for the versioned envelope.

use serde::{Deserialize, Serialize};

/// The WIT package plugins must target.
pub const PACKAGE: &str = "koogallery:plugin";
/// The contract version this gateway implements; plugins built against any
/// `0.1.x` are accepted.
pub const VERSION: &str = "0.1.1";
/// The exported interface every plugin provides.
pub const PROVISIONING_INTERFACE: &str = "koogallery:plugin/provisioning";

/// A point in time: seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instant {
    pub unix_seconds: i64,
}

/// A free-form name/value pair (`extendParams`, unknown request fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// Facts about the call itself, present on every request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallContext {
    /// Stable across every retry of the same business operation.
    pub idempotency_key: String,
    /// 1 for the first execution, then 2, 3, … on re-execution.
    pub attempt: u32,
    /// The marketplace's debugger and probes (testFlag=1).
    pub test: bool,
    /// The gateway's id for this callback.
    pub request_id: String,
}

/// The buyer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub mobile_phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargingMode {
    Period,
    PayPerUse,
    OneTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeriodUnit {
    Year,
    Month,
    Week,
    Day,
    Hour,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub unit: PeriodUnit,
    pub count: u32,
}

/// The product (SKU) bought.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub linear_value: Option<u64>,
}

/// What the buyer uses to reach the product; credentials in plain text
/// (the gateway encrypts them for the marketplace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub front_end_url: Option<String>,
    pub admin_url: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<String>,
    pub memo: Option<String>,
}

/// Every way a plugin can decline; each case is one result code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PluginError {
    InvalidRequest(String),
    InstanceNotFound(String),
    InProgress(String),
    Internal(String),
    NoResources(String),
    ServiceError(String),
    AlreadySubscribed(String),
    SoldOut(String),
}

impl PluginError {
    /// The reason the plugin gave.
    pub fn reason(&self) -> &str {
        match self {
            PluginError::InvalidRequest(r)
            | PluginError::InstanceNotFound(r)
            | PluginError::InProgress(r)
            | PluginError::Internal(r)
            | PluginError::NoResources(r)
            | PluginError::ServiceError(r)
            | PluginError::AlreadySubscribed(r)
            | PluginError::SoldOut(r) => r,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateKind {
    Purchase,
    Trial,
    PayPerUse,
}

/// newInstance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub call: CallContext,
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub kind: CreateKind,
    pub customer: Option<Customer>,
    pub product: Product,
    pub charging_mode: Option<ChargingMode>,
    pub period: Option<Period>,
    pub expire_at: Option<Instant>,
    pub extensions: Vec<Param>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub instance_id: String,
    pub app_info: Option<AppInfo>,
}

/// queryInstance: up to 100 instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    pub call: CallContext,
    pub instance_ids: Vec<String>,
}

/// Usage of a pay-per-use instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub related_instance_id: Option<String>,
    pub value: f64,
    pub statistical_time: Instant,
    pub dashboard_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub instance_id: String,
    pub app_info: Option<AppInfo>,
    pub usage: Vec<Usage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenewScene {
    Renewal,
    TrialToFormal,
    UnsubscribeRenewalPeriod,
}

/// refreshInstance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub call: CallContext,
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub scene: RenewScene,
    pub product_id: Option<String>,
    pub expire_at: Instant,
    pub extensions: Vec<Param>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusChange {
    Freeze,
    Unfreeze,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusCause {
    Expired,
    Marketplace,
}

/// Freeze or unfreeze (V2 updateInstanceStatus, V1 expireInstance and
/// instanceStatus).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    pub call: CallContext,
    pub instance_id: String,
    pub order_id: Option<String>,
    pub change: StatusChange,
    pub cause: StatusCause,
}

/// releaseInstance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub call: CallContext,
    pub instance_id: String,
    pub order_id: Option<String>,
    pub order_line_id: Option<String>,
}

/// upgradeInstance (V2) / upgrade (V1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeRequest {
    pub call: CallContext,
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub product: Product,
    pub extensions: Vec<Param>,
}

/// changeInstanceCheck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCheckRequest {
    pub call: CallContext,
    pub instance_id: String,
    pub product: Product,
}

/// getLicense (V1) / getLicenseAsync (V2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseRequest {
    pub call: CallContext,
    pub instance_id: Option<String>,
    pub order_id: Option<String>,
    pub event_id: Option<String>,
    pub customer: Option<Customer>,
    pub product: Option<Product>,
    pub effective_at: Option<Instant>,
    pub expire_at: Option<Instant>,
    pub device_fingerprint: Option<String>,
    pub extensions: Vec<Param>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    pub content: String,
}

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
    /// Every operation, in declaration order (so `op as usize` is its
    /// position here).
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

    /// The WIT name of the function (also the command line's name).
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// A typed request for one operation. Serialises as the bare record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

    /// The buyer, for the operations that carry one (create, license).
    pub fn customer_mut(&mut self) -> Option<&mut Option<Customer>> {
        match self {
            OperationRequest::Create(r) => Some(&mut r.customer),
            OperationRequest::IssueLicense(r) => Some(&mut r.customer),
            OperationRequest::Query(_)
            | OperationRequest::Renew(_)
            | OperationRequest::UpdateStatus(_)
            | OperationRequest::Release(_)
            | OperationRequest::Upgrade(_)
            | OperationRequest::ChangeCheck(_) => None,
        }
    }

    /// The instance the request acts on, if it names one (a create names
    /// the one it proposes in [`CreateRequest::instance_id`] instead).
    pub fn acted_on(&self) -> Option<&str> {
        match self {
            OperationRequest::Renew(r) => Some(&r.instance_id),
            OperationRequest::UpdateStatus(r) => Some(&r.instance_id),
            OperationRequest::Release(r) => Some(&r.instance_id),
            OperationRequest::Upgrade(r) => Some(&r.instance_id),
            OperationRequest::ChangeCheck(r) => Some(&r.instance_id),
            OperationRequest::IssueLicense(r) => r.instance_id.as_deref(),
            OperationRequest::Create(_) | OperationRequest::Query(_) => None,
        }
    }

    /// Parses the serde form of a request for `operation`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_the_operations_in_declaration_order() {
        for (position, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, position, "{op}");
        }
    }

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
        assert_eq!(request.acted_on(), Some("i-1"));
        let missing = OperationRequest::from_json(Operation::Renew, serde_json::json!({}));
        assert!(
            missing
                .expect_err("incomplete")
                .to_string()
                .contains("missing field")
        );
    }

    /// The serde form is persisted (operation records, fingerprints): this
    /// is the exact text the first gateway stored for this request.
    #[test]
    fn the_persisted_form_is_frozen() {
        let request = OperationRequest::Create(CreateRequest {
            call: CallContext {
                idempotency_key: "kg-1".into(),
                attempt: 2,
                test: false,
                request_id: "r".into(),
            },
            instance_id: "i".into(),
            order_id: "CS1".into(),
            order_line_id: Some("L".into()),
            kind: CreateKind::PayPerUse,
            customer: None,
            product: Product {
                product_id: Some("P".into()),
                sku_code: None,
                linear_value: Some(3),
            },
            charging_mode: Some(ChargingMode::OneTime),
            period: Some(Period {
                unit: PeriodUnit::Month,
                count: 1,
            }),
            expire_at: Some(Instant { unix_seconds: 7 }),
            extensions: vec![Param {
                name: "n".into(),
                value: "v".into(),
            }],
        });
        let text = serde_json::to_string(&request).expect("serialises");
        assert_eq!(
            text,
            r#"{"call":{"idempotency_key":"kg-1","attempt":2,"test":false,"request_id":"r"},"instance_id":"i","order_id":"CS1","order_line_id":"L","kind":"PayPerUse","customer":null,"product":{"product_id":"P","sku_code":null,"linear_value":3},"charging_mode":"OneTime","period":{"unit":"Month","count":1},"expire_at":{"unix_seconds":7},"extensions":[{"name":"n","value":"v"}]}"#
        );
        let back = OperationRequest::from_json(
            Operation::Create,
            serde_json::from_str(&text).expect("JSON"),
        )
        .expect("reads back");
        assert_eq!(back, request);
    }
}
