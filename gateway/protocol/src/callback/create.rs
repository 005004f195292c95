//! newInstance: V2's documented flat body or the richer `buyerInfo` +
//! `orderInfo[]` body of the signature example, and V1's query fields
//! (with the marketplace-encrypted mobilePhone/email).

use koogallery_contract::{
    ChargingMode, CreateKind, CreateRequest, Customer, OperationRequest, Period, PeriodUnit,
    Product,
};

use super::{
    Generation, MAX_ID_CHARS, Reader, customer, instant, name_value_list, no_product, product,
};
use crate::credentials;
use crate::fields::{FieldError, Fields};
use crate::ids;

impl Reader<'_> {
    pub(super) fn create(&mut self) -> Result<(String, OperationRequest), FieldError> {
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
                match reader.fields.text(name, MAX_ID_CHARS)? {
                    Some(value) => Ok(Some(value)),
                    None => match order.as_mut() {
                        Some(order) => order.text(name, MAX_ID_CHARS),
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
        let key = ids::business_key::create(&order_id, &line);
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
        let order_id = self.fields.required("orderId", MAX_ID_CHARS)?;
        let customer_id = self.fields.required("customerId", 100)?;
        let product_id = self.fields.required("productId", MAX_ID_CHARS)?;
        let mut customer = Customer {
            id: customer_id,
            name: self.fields.text("customerName", MAX_ID_CHARS)?,
            user_id: self.fields.text("userId", MAX_ID_CHARS)?,
            user_name: self.fields.text("userName", MAX_ID_CHARS)?,
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
            sku_code: self.fields.text("skuCode", MAX_ID_CHARS)?,
            linear_value,
        };
        let params = self.saas_extend_params();
        let instance_id = ids::instance_id(self.ctx.merchant, &order_id, Some(&product_id));
        let key = ids::business_key::create(&order_id, &product_id);
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

#[cfg(test)]
mod tests {
    use super::super::{Callback, ParseContext, parse};
    use super::*;
    use crate::credentials::EncryptType;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use koogallery_contract::Instant;
    use serde_json::{Value, json};

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
