//! The reads: queryInstance and changeInstanceCheck. They are answered by
//! the plugin and never recorded, but carry keys like every request.

use koogallery_contract::{ChangeCheckRequest, OperationRequest, QueryRequest};

use super::{MAX_ID_CHARS, Reader, product};
use crate::fields::FieldError;

/// The most instance ids one queryInstance may ask for.
pub const MAX_QUERY_IDS: usize = 100;

impl Reader<'_> {
    pub(super) fn query(&mut self) -> Result<(String, OperationRequest), FieldError> {
        // The documented length (100) cannot hold 100 ids; the per-id limit
        // and the id count are what the gateway enforces.
        let list = self
            .fields
            .required("instanceId", MAX_QUERY_IDS * (MAX_ID_CHARS + 1))?;
        let instance_ids: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        if instance_ids.is_empty() {
            return Err(FieldError::Missing("instanceId".into()));
        }
        if instance_ids.len() > MAX_QUERY_IDS {
            return Err(FieldError::invalid("instanceId", "lists more than 100 ids"));
        }
        if instance_ids
            .iter()
            .any(|id| id.chars().count() > MAX_ID_CHARS)
        {
            return Err(FieldError::TooLong {
                field: "instanceId".into(),
                max: MAX_ID_CHARS,
            });
        }
        let key = crate::ids::business_key::query(&instance_ids);
        let request = QueryRequest {
            call: self.call(&key),
            instance_ids,
        };
        Ok((key, OperationRequest::Query(request)))
    }

    pub(super) fn change_check(&mut self) -> Result<(String, OperationRequest), FieldError> {
        let instance_id = self.fields.required("instanceId", MAX_ID_CHARS)?;
        let product = match self.fields.nested("productInfo")? {
            Some(mut p) => product(&mut p)?,
            None => return Err(FieldError::Missing("productInfo".into())),
        };
        let key = crate::ids::business_key::change_check(&instance_id, &product);
        let request = ChangeCheckRequest {
            call: self.call(&key),
            instance_id,
            product,
        };
        Ok((key, OperationRequest::ChangeCheck(request)))
    }
}
