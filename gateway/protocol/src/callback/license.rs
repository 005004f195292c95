//! Licenses: V1 getLicense (License 1.0) and V2 getLicenseAsync. The same
//! order (V1) or event (V2) must always get the same license.

use koogallery_contract::{Customer, LicenseRequest, OperationRequest, Product};

use super::{Generation, MAX_ID_CHARS, Reader, instant};
use crate::fields::FieldError;
use crate::ids;

impl Reader<'_> {
    pub(super) fn license(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let request = match self.generation {
            Generation::V2 => {
                let instance_id = self.fields.required("instanceId", MAX_ID_CHARS)?;
                let event_id = self.fields.required("eventId", MAX_ID_CHARS)?;
                let effective_at = self
                    .fields
                    .flexible_time("effectiveTime", 32)?
                    .ok_or(FieldError::Missing("effectiveTime".into()))?;
                LicenseRequest {
                    call: self.call(""),
                    instance_id: Some(instance_id),
                    order_id: self.fields.text("orderId", MAX_ID_CHARS)?,
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
                let order_id = self.fields.required("orderId", MAX_ID_CHARS)?;
                let customer = Customer {
                    id: self.fields.required("customerId", 100)?,
                    name: self.fields.text("customerName", MAX_ID_CHARS)?,
                    user_id: None,
                    user_name: None,
                    mobile_phone: None,
                    email: None,
                };
                let product = Product {
                    product_id: Some(self.fields.required("productId", MAX_ID_CHARS)?),
                    sku_code: self.fields.text("skuCode", MAX_ID_CHARS)?,
                    linear_value: self.fields.count("amount")?,
                };
                LicenseRequest {
                    call: self.call(""),
                    instance_id: self.fields.text("instanceId", MAX_ID_CHARS)?,
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
        let key = ids::business_key::license(
            request.instance_id.as_deref(),
            request.order_id.as_deref(),
            request.event_id.as_deref(),
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
