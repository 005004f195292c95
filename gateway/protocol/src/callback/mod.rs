//! From a verified callback's fields to the contract's typed request: one
//! reader per activity family of both generations.
//!
//! - [`activity`]: the generations and their activities;
//! - `create`: newInstance (V2's flat and rich bodies, V1's query);
//! - `lifecycle`: renew, freeze/unfreeze, release, upgrade;
//! - `reads`: queryInstance and changeInstanceCheck (never recorded);
//! - `license`: getLicense and getLicenseAsync.
//!
//! Also decided here, because it is part of reading the request: the
//! instance id a newInstance gets, and the business key that stays the same
//! across every marketplace retry of the same operation (transport fields
//! such as `businessId`, signatures, timestamps and nonces never enter it).
//! The formulas themselves live in [`crate::ids`].

mod activity;
mod create;
mod license;
mod lifecycle;
mod reads;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use koogallery_contract::{CallContext, Customer, Instant, OperationRequest, Param, Product};
use serde_json::Value;

pub use activity::{Activity, Generation};
pub use reads::MAX_QUERY_IDS;

use crate::credentials::EncryptType;
use crate::fields::{FieldError, Fields};
use crate::ids;

/// The longest id or order field the marketplace sends.
const MAX_ID_CHARS: usize = 64;

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
        CallContext {
            idempotency_key: ids::idempotency_key(self.ctx.merchant, self.test, business_key),
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
        name: buyer.text("customerName", MAX_ID_CHARS)?,
        user_id: buyer.text("userId", MAX_ID_CHARS)?,
        user_name: buyer.text("userName", MAX_ID_CHARS)?,
        mobile_phone: buyer.text("mobilePhone", 256)?,
        email: buyer.text("email", 256)?,
    })
}

fn product(fields: &mut Fields) -> Result<Product, FieldError> {
    Ok(Product {
        product_id: fields.text("productId", MAX_ID_CHARS)?,
        sku_code: fields.text("skuCode", MAX_ID_CHARS)?,
        linear_value: fields.count("linearValue")?,
    })
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
