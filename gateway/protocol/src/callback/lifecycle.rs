//! The life of an instance after its creation: renew (refreshInstance),
//! freeze and unfreeze (V2 updateInstanceStatus, V1 expireInstance and
//! instanceStatus), release, upgrade.

use koogallery_contract::{
    OperationRequest, Product, ReleaseRequest, RenewRequest, RenewScene, StatusCause, StatusChange,
    StatusRequest, UpgradeRequest,
};

use super::{Activity, Generation, MAX_ID_CHARS, Reader, instant, product};
use crate::fields::FieldError;
use crate::ids;

impl Reader<'_> {
    pub(super) fn renew(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let order_id = self.fields.required("orderId", MAX_ID_CHARS)?;
        let instance_id = self.fields.required("instanceId", MAX_ID_CHARS)?;
        let (order_line_id, scene) = match self.generation {
            Generation::V2 => {
                let line = self.fields.required("orderLineId", MAX_ID_CHARS)?;
                let scene = match self.fields.required("scene", MAX_ID_CHARS)?.as_str() {
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
        let product_id = self.fields.text("productId", MAX_ID_CHARS)?;
        let key = ids::business_key::renew(&instance_id, &order_id, order_line_id.as_deref());
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

    pub(super) fn status(
        &mut self,
        activity: Activity,
    ) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", MAX_ID_CHARS)?;
        let (change, cause, order_id) = match activity {
            Activity::ExpireInstance => {
                let order = self.fields.required("orderId", MAX_ID_CHARS)?;
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
                    self.fields.text("orderId", MAX_ID_CHARS)?,
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
                    self.fields.text("orderId", MAX_ID_CHARS)?,
                )
            }
        };
        let key = ids::business_key::status(&instance_id, change, order_id.as_deref());
        let request = StatusRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            change,
            cause,
        };
        Ok((key, OperationRequest::UpdateStatus(request)))
    }

    pub(super) fn release(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", MAX_ID_CHARS)?;
        let order_id = match self.generation {
            Generation::V1 => Some(self.fields.required("orderId", MAX_ID_CHARS)?),
            Generation::V2 => self.fields.text("orderId", MAX_ID_CHARS)?,
        };
        let order_line_id = self.fields.text("orderLineId", MAX_ID_CHARS)?;
        let key = ids::business_key::release(&instance_id);
        let request = ReleaseRequest {
            call: self.call(&key),
            instance_id,
            order_id,
            order_line_id,
        };
        Ok((key, OperationRequest::Release(request)))
    }

    pub(super) fn upgrade(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", MAX_ID_CHARS)?;
        let order_id = self.fields.required("orderId", MAX_ID_CHARS)?;
        let (order_line_id, product) = match self.generation {
            Generation::V2 => {
                let line = self.fields.required("orderLineId", MAX_ID_CHARS)?;
                let product = match self.fields.nested("productInfo")? {
                    Some(mut p) => product(&mut p)?,
                    None => product(&mut self.fields)?,
                };
                (Some(line), product)
            }
            Generation::V1 => {
                let product = Product {
                    product_id: Some(self.fields.required("productId", MAX_ID_CHARS)?),
                    sku_code: Some(self.fields.required("skuCode", MAX_ID_CHARS)?),
                    linear_value: self.fields.count("amount")?,
                };
                (None, product)
            }
        };
        let key = ids::business_key::upgrade(&instance_id, &order_id, order_line_id.as_deref());
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
}
