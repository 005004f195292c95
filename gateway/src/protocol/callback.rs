//! From a verified callback's fields to the contract's typed request: one
//! function per activity of both generations (research §2.2, §3.2).
//!
//! Also decided here, because it is part of reading the request: the
//! instance id a newInstance gets, and the business key that stays the same
//! across every marketplace retry of the same operation (transport fields
//! such as `businessId`, signatures, timestamps and nonces never enter it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::credentials::{self, EncryptType};
use super::fields::{FieldError, Fields};
use crate::contract::{
    CallContext, ChangeCheckRequest, ChargingMode, CreateKind, CreateRequest, Customer, Instant,
    LicenseRequest, OperationRequest, Param, Period, PeriodUnit, Product, QueryRequest,
    ReleaseRequest, RenewRequest, RenewScene, StatusCause, StatusChange, StatusRequest,
    UpgradeRequest,
};
use crate::ids;

/// The protocol generation of a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generation {
    /// GET, fields and `authToken` in the query string.
    V1,
    /// POST JSON, `signature`/`timestamp`/`nonce` in the query string.
    V2,
}

impl Generation {
    pub fn label(self) -> &'static str {
        match self {
            Generation::V1 => "v1",
            Generation::V2 => "v2",
        }
    }
}

/// The most instance ids one queryInstance may ask for.
pub const MAX_QUERY_IDS: usize = 100;
/// Longest id / order fields (research §2.2).
const ID: usize = 64;

/// An activity, by its wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activity {
    NewInstance,
    QueryInstance,
    RefreshInstance,
    /// V2 freeze/unfreeze.
    UpdateInstanceStatus,
    /// V1 expiry (a freeze).
    ExpireInstance,
    /// V1 pay-per-use freeze/normal.
    InstanceStatus,
    ReleaseInstance,
    /// V2 `upgradeInstance`.
    UpgradeInstance,
    /// V1 `upgrade`.
    Upgrade,
    ChangeInstanceCheck,
    /// V1 License 1.0 `getLicense`.
    GetLicense,
    /// V2 `getLicenseAsync`.
    GetLicenseAsync,
}

impl Activity {
    const V2: [Activity; 8] = [
        Activity::NewInstance,
        Activity::QueryInstance,
        Activity::RefreshInstance,
        Activity::UpdateInstanceStatus,
        Activity::ReleaseInstance,
        Activity::UpgradeInstance,
        Activity::ChangeInstanceCheck,
        Activity::GetLicenseAsync,
    ];
    const V1: [Activity; 8] = [
        Activity::NewInstance,
        Activity::QueryInstance,
        Activity::RefreshInstance,
        Activity::ExpireInstance,
        Activity::InstanceStatus,
        Activity::ReleaseInstance,
        Activity::Upgrade,
        Activity::GetLicense,
    ];

    /// The activities a generation sends.
    pub fn of(generation: Generation) -> &'static [Activity] {
        match generation {
            Generation::V1 => &Activity::V1,
            Generation::V2 => &Activity::V2,
        }
    }

    pub fn wire_name(self) -> &'static str {
        match self {
            Activity::NewInstance => "newInstance",
            Activity::QueryInstance => "queryInstance",
            Activity::RefreshInstance => "refreshInstance",
            Activity::UpdateInstanceStatus => "updateInstanceStatus",
            Activity::ExpireInstance => "expireInstance",
            Activity::InstanceStatus => "instanceStatus",
            Activity::ReleaseInstance => "releaseInstance",
            Activity::UpgradeInstance => "upgradeInstance",
            Activity::Upgrade => "upgrade",
            Activity::ChangeInstanceCheck => "changeInstanceCheck",
            Activity::GetLicense => "getLicense",
            Activity::GetLicenseAsync => "getLicenseAsync",
        }
    }

    /// The activity `name` names in `generation`, if any.
    pub fn from_wire(generation: Generation, name: &str) -> Option<Activity> {
        Activity::of(generation)
            .iter()
            .copied()
            .find(|a| a.wire_name() == name)
    }
}

/// Who the callback is for and how to read its encrypted fields.
#[derive(Clone, Copy, Debug)]
pub struct ParseContext<'a> {
    pub merchant: &'a str,
    pub request_id: &'a str,
    /// The key that verified the request (decrypts V1 mobilePhone/email).
    pub access_key: &'a str,
    pub encrypt_type: EncryptType,
}

/// A verified, validated callback, ready for the plugin.
#[derive(Clone, Debug)]
pub struct Callback {
    pub generation: Generation,
    pub activity: Activity,
    pub test: bool,
    /// Stable across retries of the same business operation.
    pub business_key: String,
    pub request: OperationRequest,
    /// Things worth a log line that did not stop the callback (never values).
    pub warnings: Vec<String>,
}

/// Fields that are transport, not business: never extensions, never keys.
const TRANSPORT_FIELDS: [&str; 7] = [
    "activity",
    "testFlag",
    "businessId",
    "authToken",
    "timeStamp",
    "signature",
    "nonce",
];

/// The activity named in `fields`; 000002 when absent or unknown.
pub fn activity(generation: Generation, fields: &mut Fields) -> Result<Activity, FieldError> {
    let name = fields.required("activity", 32)?;
    Activity::from_wire(generation, &name).ok_or(FieldError::UnknownActivity(name))
}

/// Reads a callback of `generation` from its fields.
pub fn parse(
    generation: Generation,
    mut fields: Fields,
    ctx: &ParseContext<'_>,
) -> Result<Callback, FieldError> {
    let activity = activity(generation, &mut fields)?;
    let test = fields.test_flag()?;
    let mut reader = Reader {
        fields,
        ctx,
        generation,
        test,
        warnings: Vec::new(),
    };
    let (business_key, request) = match activity {
        Activity::NewInstance => reader.create()?,
        Activity::QueryInstance => reader.query()?,
        Activity::RefreshInstance => reader.renew()?,
        Activity::UpdateInstanceStatus | Activity::InstanceStatus | Activity::ExpireInstance => {
            reader.status(activity)?
        }
        Activity::ReleaseInstance => reader.release()?,
        Activity::UpgradeInstance | Activity::Upgrade => reader.upgrade()?,
        Activity::ChangeInstanceCheck => reader.change_check()?,
        Activity::GetLicense | Activity::GetLicenseAsync => reader.license()?,
    };
    Ok(Callback {
        generation,
        activity,
        test,
        business_key,
        request,
        warnings: reader.warnings,
    })
}

struct Reader<'a> {
    fields: Fields,
    ctx: &'a ParseContext<'a>,
    generation: Generation,
    test: bool,
    warnings: Vec<String>,
}

impl Reader<'_> {
    /// The call context for a business key: the idempotency key is derived
    /// from the merchant, the test flag and the key, nothing else.
    fn call(&self, business_key: &str) -> CallContext {
        let digest = Sha256::new()
            .chain_update(self.ctx.merchant)
            .chain_update([0, u8::from(self.test)])
            .chain_update(business_key)
            .finalize();
        CallContext {
            idempotency_key: format!("kg-{}", &hex::encode(digest)[..32]),
            attempt: 1,
            test: self.test,
            request_id: self.ctx.request_id.to_string(),
        }
    }

    /// Unread business fields, plus `extendParams`/`saasExtendParams` pairs.
    fn extensions(&mut self, mut params: Vec<Param>) -> Vec<Param> {
        params.extend(
            self.fields
                .unread(&TRANSPORT_FIELDS)
                .into_iter()
                .map(|(name, value)| Param { name, value }),
        );
        params
    }

    fn create(&mut self) -> Result<(String, OperationRequest), FieldError> {
        match self.generation {
            Generation::V2 => self.create_v2(),
            Generation::V1 => self.create_v1(),
        }
    }

    /// V2 newInstance: the documented flat body, or the richer
    /// `buyerInfo` + `orderInfo[]` body of the signature example.
    fn create_v2(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let mut order = self.fields.nested("orderInfo")?;
        let mut order_field =
            |reader: &mut Reader, name: &'static str| -> Result<Option<String>, FieldError> {
                match reader.fields.text(name, ID)? {
                    Some(value) => Ok(Some(value)),
                    None => match order.as_mut() {
                        Some(order) => order.text(name, ID),
                        None => Ok(None),
                    },
                }
            };
        let order_id =
            order_field(self, "orderId")?.ok_or(FieldError::Missing("orderId".into()))?;
        let line =
            order_field(self, "orderLineId")?.ok_or(FieldError::Missing("orderLineId".into()))?;
        let customer = match self.fields.nested("buyerInfo")? {
            Some(mut buyer) => Some(customer(&mut buyer)?),
            None => None,
        };
        let (kind, charging, period, expire_at, product, params) = match order.as_mut() {
            Some(order) => {
                let trial = order.text("trialFlag", 2)?.as_deref() == Some("1");
                let charging = charging_mode(order.text("chargingMode", 32)?.as_deref());
                let period = period(order)?;
                let expire_at = order.compact_time("expireTime")?;
                let product = match order.nested("productInfo")? {
                    Some(mut p) => product(&mut p)?,
                    None => no_product(),
                };
                let params = name_value_list(order.raw("extendParams"));
                (
                    create_kind(trial, charging),
                    charging,
                    period,
                    expire_at,
                    product,
                    params,
                )
            }
            None => (
                CreateKind::Purchase,
                None,
                None,
                None,
                no_product(),
                Vec::new(),
            ),
        };
        let instance_id = ids::instance_id(self.ctx.merchant, &order_id, Some(&line));
        let key = format!("create\0{order_id}\0{line}");
        let request = CreateRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            order_line_id: Some(line),
            kind,
            customer,
            product,
            charging_mode: charging,
            period,
            expire_at: expire_at.map(instant),
            extensions: self.extensions(params),
        };
        Ok((key, OperationRequest::Create(request)))
    }

    /// V1 newInstance: flat query fields. V1 has no order lines; the
    /// instance keys on orderId + productId (pay-per-use orders hold one
    /// instance per product).
    fn create_v1(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let order_id = self.fields.required("orderId", ID)?;
        let customer_id = self.fields.required("customerId", 100)?;
        let product_id = self.fields.required("productId", ID)?;
        let mut customer = Customer {
            id: customer_id,
            name: self.fields.text("customerName", ID)?,
            user_id: self.fields.text("userId", ID)?,
            user_name: self.fields.text("userName", ID)?,
            mobile_phone: None,
            email: None,
        };
        customer.mobile_phone = self.decrypted("mobilePhone")?;
        customer.email = self.decrypted("email")?;
        let trial = self.fields.text("trialFlag", 2)?.as_deref() == Some("1");
        let charging = charging_mode(self.fields.text("chargingMode", 32)?.as_deref());
        let period = period(&mut self.fields)?;
        let expire_at = self.fields.compact_time("expireTime")?;
        let linear_value = self.fields.count("amount")?;
        let product = Product {
            product_id: Some(product_id.clone()),
            sku_code: self.fields.text("skuCode", ID)?,
            linear_value,
        };
        let params = self.saas_extend_params();
        let instance_id = ids::instance_id(self.ctx.merchant, &order_id, Some(&product_id));
        let key = format!("create\0{order_id}\0{product_id}");
        let request = CreateRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            order_line_id: None,
            kind: create_kind(trial, charging),
            customer: Some(customer),
            product,
            charging_mode: charging,
            period,
            expire_at: expire_at.map(instant),
            extensions: self.extensions(params),
        };
        Ok((key, OperationRequest::Create(request)))
    }

    /// A V1 field the marketplace AES-encrypts. An undecryptable value is
    /// dropped with a warning rather than failing the order: the plugin
    /// gets `none`, the buyer still gets the product.
    fn decrypted(&mut self, name: &'static str) -> Result<Option<String>, FieldError> {
        let Some(wire) = self.fields.text(name, 256)? else {
            return Ok(None);
        };
        match credentials::decrypt(self.ctx.access_key, self.ctx.encrypt_type, &wire) {
            Ok(plain) => Ok(Some(plain)),
            Err(error) => {
                self.warnings.push(format!(
                    "{name} could not be decrypted ({error}); passed as none"
                ));
                Ok(None)
            }
        }
    }

    /// `saasExtendParams`: base64 of a JSON `[{"name":…,"value":…}]` array.
    fn saas_extend_params(&mut self) -> Vec<Param> {
        let Some(Value::String(encoded)) = self.fields.raw("saasExtendParams").cloned() else {
            return Vec::new();
        };
        let decoded = BASE64
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        match decoded {
            Some(list) => name_value_list(Some(&list)),
            None => {
                self.warnings
                    .push("saasExtendParams is not base64 JSON; passed through as is".into());
                vec![Param {
                    name: "saasExtendParams".into(),
                    value: encoded,
                }]
            }
        }
    }

    fn query(&mut self) -> Result<(String, OperationRequest), FieldError> {
        // The documented length (100) cannot hold 100 ids; the per-id limit
        // and the id count are what the gateway enforces.
        let list = self
            .fields
            .required("instanceId", MAX_QUERY_IDS * (ID + 1))?;
        let ids: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return Err(FieldError::Missing("instanceId".into()));
        }
        if ids.len() > MAX_QUERY_IDS {
            return Err(FieldError::invalid("instanceId", "lists more than 100 ids"));
        }
        if ids.iter().any(|id| id.chars().count() > ID) {
            return Err(FieldError::TooLong {
                field: "instanceId".into(),
                max: ID,
            });
        }
        let key = format!("query\0{}", ids.join(","));
        let request = QueryRequest {
            call: self.call(&key),
            instance_ids: ids,
        };
        Ok((key, OperationRequest::Query(request)))
    }

    fn renew(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let order_id = self.fields.required("orderId", ID)?;
        let instance_id = self.fields.required("instanceId", ID)?;
        let (order_line_id, scene) = match self.generation {
            Generation::V2 => {
                let line = self.fields.required("orderLineId", ID)?;
                let scene = match self.fields.required("scene", ID)?.as_str() {
                    "RENEWAL" => RenewScene::Renewal,
                    "TRIAL_TO_FORMAL" => RenewScene::TrialToFormal,
                    "UNSUBSCRIBE_RENEWAL_PERIOD" => RenewScene::UnsubscribeRenewalPeriod,
                    _ => {
                        return Err(FieldError::invalid(
                            "scene",
                            "must be RENEWAL, TRIAL_TO_FORMAL or UNSUBSCRIBE_RENEWAL_PERIOD",
                        ));
                    }
                };
                (Some(line), scene)
            }
            Generation::V1 => {
                let trial = self.fields.text("trialToFormal", 2)?.as_deref() == Some("1");
                let scene = if trial {
                    RenewScene::TrialToFormal
                } else {
                    RenewScene::Renewal
                };
                (None, scene)
            }
        };
        let expire_at = self
            .fields
            .compact_time("expireTime")?
            .ok_or(FieldError::Missing("expireTime".into()))?;
        let product_id = self.fields.text("productId", ID)?;
        let key = format!(
            "renew\0{instance_id}\0{order_id}\0{}",
            order_line_id.as_deref().unwrap_or("")
        );
        let request = RenewRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            order_line_id,
            scene,
            product_id,
            expire_at: instant(expire_at),
            extensions: self.extensions(Vec::new()),
        };
        Ok((key, OperationRequest::Renew(request)))
    }

    fn status(&mut self, activity: Activity) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", ID)?;
        let (change, cause, order_id) = match activity {
            Activity::ExpireInstance => {
                let order = self.fields.required("orderId", ID)?;
                (StatusChange::Freeze, StatusCause::Expired, Some(order))
            }
            Activity::InstanceStatus => {
                let change = match self.fields.required("instanceStatus", 32)?.as_str() {
                    "FREEZE" => StatusChange::Freeze,
                    "NORMAL" => StatusChange::Unfreeze,
                    _ => {
                        return Err(FieldError::invalid(
                            "instanceStatus",
                            "must be FREEZE or NORMAL",
                        ));
                    }
                };
                (
                    change,
                    StatusCause::Marketplace,
                    self.fields.text("orderId", ID)?,
                )
            }
            _ => {
                let change = match self.fields.required("status", 32)?.as_str() {
                    "FREEZE" => StatusChange::Freeze,
                    "UNFREEZE" => StatusChange::Unfreeze,
                    _ => return Err(FieldError::invalid("status", "must be FREEZE or UNFREEZE")),
                };
                (
                    change,
                    StatusCause::Marketplace,
                    self.fields.text("orderId", ID)?,
                )
            }
        };
        let key = format!(
            "status\0{instance_id}\0{change:?}\0{}",
            order_id.as_deref().unwrap_or("")
        );
        let request = StatusRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            change,
            cause,
        };
        Ok((key, OperationRequest::UpdateStatus(request)))
    }

    fn release(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", ID)?;
        let order_id = match self.generation {
            Generation::V1 => Some(self.fields.required("orderId", ID)?),
            Generation::V2 => self.fields.text("orderId", ID)?,
        };
        let order_line_id = self.fields.text("orderLineId", ID)?;
        let key = format!("release\0{instance_id}");
        let request = ReleaseRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            order_line_id,
        };
        Ok((key, OperationRequest::Release(request)))
    }

    fn upgrade(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", ID)?;
        let order_id = self.fields.required("orderId", ID)?;
        let (order_line_id, product) = match self.generation {
            Generation::V2 => {
                let line = self.fields.required("orderLineId", ID)?;
                let product = match self.fields.nested("productInfo")? {
                    Some(mut p) => product(&mut p)?,
                    None => product(&mut self.fields)?,
                };
                (Some(line), product)
            }
            Generation::V1 => {
                let product = Product {
                    product_id: Some(self.fields.required("productId", ID)?),
                    sku_code: Some(self.fields.required("skuCode", ID)?),
                    linear_value: self.fields.count("amount")?,
                };
                (None, product)
            }
        };
        let key = format!(
            "upgrade\0{instance_id}\0{order_id}\0{}",
            order_line_id.as_deref().unwrap_or("")
        );
        let request = UpgradeRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            order_line_id,
            product,
            extensions: self.extensions(Vec::new()),
        };
        Ok((key, OperationRequest::Upgrade(request)))
    }

    fn change_check(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", ID)?;
        let product = match self.fields.nested("productInfo")? {
            Some(mut p) => product(&mut p)?,
            None => return Err(FieldError::Missing("productInfo".into())),
        };
        let key = format!(
            "change-check\0{instance_id}\0{}\0{}\0{:?}",
            product.product_id.as_deref().unwrap_or(""),
            product.sku_code.as_deref().unwrap_or(""),
            product.linear_value
        );
        let request = ChangeCheckRequest {
            call: self.call(&key),
            instance_id,
            product,
        };
        Ok((key, OperationRequest::ChangeCheck(request)))
    }

    fn license(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let request = match self.generation {
            Generation::V2 => {
                let instance_id = self.fields.required("instanceId", ID)?;
                let event_id = self.fields.required("eventId", ID)?;
                let effective_at = self
                    .fields
                    .flexible_time("effectiveTime", 32)?
                    .ok_or(FieldError::Missing("effectiveTime".into()))?;
                LicenseRequest {
                    call: self.call(""),
                    instance_id: Some(instance_id),
                    order_id: self.fields.text("orderId", ID)?,
                    event_id: Some(event_id),
                    customer: None,
                    product: None,
                    effective_at: Some(instant(effective_at)),
                    expire_at: self.fields.flexible_time("expireTime", 32)?.map(instant),
                    device_fingerprint: self.fields.text("deviceFingerprint", 1024)?,
                    extensions: Vec::new(),
                }
            }
            Generation::V1 => {
                let order_id = self.fields.required("orderId", ID)?;
                let customer = Customer {
                    id: self.fields.required("customerId", 100)?,
                    name: self.fields.text("customerName", ID)?,
                    user_id: None,
                    user_name: None,
                    mobile_phone: None,
                    email: None,
                };
                let product = Product {
                    product_id: Some(self.fields.required("productId", ID)?),
                    sku_code: self.fields.text("skuCode", ID)?,
                    linear_value: self.fields.count("amount")?,
                };
                LicenseRequest {
                    call: self.call(""),
                    instance_id: self.fields.text("instanceId", ID)?,
                    order_id: Some(order_id),
                    event_id: None,
                    customer: Some(customer),
                    product: Some(product),
                    effective_at: None,
                    expire_at: self.fields.compact_time("expireTime")?.map(instant),
                    device_fingerprint: None,
                    extensions: Vec::new(),
                }
            }
        };
        // The same order (V1) or event (V2) must always get the same license.
        let key = format!(
            "license\0{}\0{}\0{}",
            request.instance_id.as_deref().unwrap_or(""),
            request.order_id.as_deref().unwrap_or(""),
            request.event_id.as_deref().unwrap_or("")
        );
        let params = self.saas_extend_params();
        let request = LicenseRequest {
            call: self.call(&key),
            extensions: self.extensions(params),
            ..request
        };
        Ok((key, OperationRequest::IssueLicense(request)))
    }
}

fn instant(unix_seconds: i64) -> Instant {
    Instant { unix_seconds }
}

fn no_product() -> Product {
    Product {
        product_id: None,
        sku_code: None,
        linear_value: None,
    }
}

fn customer(buyer: &mut Fields) -> Result<Customer, FieldError> {
    Ok(Customer {
        id: buyer.required("customerId", 100)?,
        name: buyer.text("customerName", ID)?,
        user_id: buyer.text("userId", ID)?,
        user_name: buyer.text("userName", ID)?,
        mobile_phone: buyer.text("mobilePhone", 256)?,
        email: buyer.text("email", 256)?,
    })
}

fn product(fields: &mut Fields) -> Result<Product, FieldError> {
    Ok(Product {
        product_id: fields.text("productId", ID)?,
        sku_code: fields.text("skuCode", ID)?,
        linear_value: fields.count("linearValue")?,
    })
}

/// `PERIOD`, `ONETIME`, `ON_DEMAND`… (V2) or V1's `3` (one-off). An
/// unknown mode is `none`; its raw text stays available to the plugin
/// through the order's fields.
fn charging_mode(text: Option<&str>) -> Option<ChargingMode> {
    match text?.to_ascii_uppercase().replace(['_', '-'], "").as_str() {
        "PERIOD" | "PERIODIC" => Some(ChargingMode::Period),
        "ONDEMAND" | "PAYPERUSE" | "USAGE" => Some(ChargingMode::PayPerUse),
        "ONETIME" | "PERTIME" | "ONCE" | "3" => Some(ChargingMode::OneTime),
        _ => None,
    }
}

fn create_kind(trial: bool, charging: Option<ChargingMode>) -> CreateKind {
    match (trial, charging) {
        (true, _) => CreateKind::Trial,
        (false, Some(ChargingMode::PayPerUse)) => CreateKind::PayPerUse,
        _ => CreateKind::Purchase,
    }
}

fn period(fields: &mut Fields) -> Result<Option<Period>, FieldError> {
    let Some(unit) = fields.text("periodType", 16)? else {
        return Ok(None);
    };
    let unit = match unit.to_ascii_lowercase().as_str() {
        "year" => PeriodUnit::Year,
        "month" => PeriodUnit::Month,
        "week" => PeriodUnit::Week,
        "day" => PeriodUnit::Day,
        "hour" => PeriodUnit::Hour,
        _ => {
            return Err(FieldError::invalid(
                "periodType",
                "must be year, month, week, day or hour",
            ));
        }
    };
    let count = fields.count("periodNumber")?.unwrap_or(1);
    let count =
        u32::try_from(count).map_err(|_| FieldError::invalid("periodNumber", "is too large"))?;
    Ok(Some(Period { unit, count }))
}

/// `[{"name": …, "value": …}]` as params; anything else is ignored.
fn name_value_list(value: Option<&Value>) -> Vec<Param> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.get("name")?.as_str()?.to_string();
            let value = match item.get("value")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(Param { name, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CTX: ParseContext<'static> = ParseContext {
        merchant: "acme",
        request_id: "r-1",
        access_key: "k",
        encrypt_type: EncryptType::Aes256,
    };

    fn parse_json(generation: Generation, value: Value) -> Result<Callback, FieldError> {
        let Value::Object(map) = value else {
            panic!("test input must be an object")
        };
        parse(generation, Fields::new(map), &CTX)
    }

    #[test]
    fn the_rich_v2_body_fills_customer_product_period_and_extensions() {
        let callback = parse_json(
            Generation::V2,
            json!({
                "activity": "newInstance", "businessId": "b-1", "testFlag": "1",
                "buyerInfo": {"customerId": "c-1", "customerName": "Zhang"},
                "orderInfo": [{"orderId": "CS1", "orderLineId": "CS1-000001", "trialFlag": "0",
                    "chargingMode": "PERIOD", "periodType": "month", "periodNumber": 5,
                    "expireTime": "20221224194509",
                    "productInfo": [{"skuCode": "s-1", "productId": "P-1", "linearValue": 20}],
                    "extendParams": [{"name": "emailDomainName", "value": "test.example.com"}]}],
                "newField": "kept"
            }),
        )
        .expect("valid");
        let OperationRequest::Create(create) = callback.request else {
            panic!("a create request")
        };
        assert!(callback.test && create.call.test);
        assert_eq!(create.order_id, "CS1");
        assert_eq!(
            create.instance_id,
            ids::instance_id("acme", "CS1", Some("CS1-000001"))
        );
        assert_eq!(create.customer.map(|c| c.id), Some("c-1".to_string()));
        assert_eq!(create.product.linear_value, Some(20));
        assert_eq!(
            create.period,
            Some(Period {
                unit: PeriodUnit::Month,
                count: 5
            })
        );
        assert_eq!(create.charging_mode, Some(ChargingMode::Period));
        assert_eq!(
            create.expire_at,
            Some(Instant {
                unix_seconds: 1_671_911_109
            })
        );
        let names: Vec<&str> = create.extensions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["emailDomainName", "newField"],
            "businessId is transport"
        );
    }

    #[test]
    fn retries_share_the_idempotency_key_and_other_orders_do_not() {
        let body = |business: &str, order: &str| {
            json!({"activity": "newInstance", "orderId": order, "orderLineId": "L",
                   "businessId": business})
        };
        let key = |value| {
            parse_json(Generation::V2, value)
                .map(|c| c.request.call().idempotency_key.clone())
                .expect("valid")
        };
        assert_eq!(key(body("b-1", "CS1")), key(body("b-2", "CS1")));
        assert_ne!(key(body("b-1", "CS1")), key(body("b-1", "CS2")));
    }

    #[test]
    fn v1_pii_is_decrypted_and_extend_params_decoded() {
        let phone = credentials::encrypt("k", EncryptType::Aes256, "13800000000");
        let extend = BASE64.encode(br#"[{"name":"identificationCode","value":"ID-9"}]"#);
        let callback = parse_json(
            Generation::V1,
            json!({
                "activity": "newInstance", "orderId": "CS1", "customerId": "c", "productId": "P",
                "mobilePhone": phone, "email": "not-encrypted", "saasExtendParams": extend,
                "chargingMode": "3"
            }),
        )
        .expect("valid");
        let OperationRequest::Create(create) = callback.request else {
            panic!("a create request")
        };
        let customer = create.customer.expect("customer");
        assert_eq!(customer.mobile_phone.as_deref(), Some("13800000000"));
        assert_eq!(customer.email, None, "undecryptable: dropped, not failed");
        assert_eq!(callback.warnings.len(), 1);
        assert!(
            !callback.warnings[0].contains("not-encrypted"),
            "values never in warnings"
        );
        assert_eq!(create.charging_mode, Some(ChargingMode::OneTime));
        assert_eq!(create.extensions[0].name, "identificationCode");
        assert_eq!(
            create.instance_id,
            ids::instance_id("acme", "CS1", Some("P"))
        );
    }
}
