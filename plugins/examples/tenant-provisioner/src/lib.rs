//! An example plugin that does real work: it provisions tenants in the
//! merchant's own backend (`examples/backend`) through outbound HTTP.
//!
//! Configuration of its merchant:
//! - `backend_url` (config): where the backend listens, for example
//!   `http://127.0.0.1:8088`; the operator grants exactly that origin in
//!   `allowed_outbound_hosts`;
//! - `backend_token` (a secret): the backend's bearer token.
//!
//! Every change forwards the gateway's idempotency key as the backend's
//! `Idempotency-Key`, so a retry, or a re-execution after the gateway
//! crashed mid-call, never creates a second tenant. The marketplace's test
//! calls (`call.test`) answer without touching the backend.

use koogallery_plugin_sdk::http::Request;
use koogallery_plugin_sdk::json::{Value, json};
use koogallery_plugin_sdk::prelude::*;

/// Each backend request may take this long (the gateway also clamps it to
/// the call's deadline).
const TIMEOUT_MS: u64 = 1500;

struct TenantProvisioner;

fn backend(path: &str) -> PluginResult<String> {
    let base = config::require("backend_url")?;
    Ok(format!("{}{path}", base.trim_end_matches('/')))
}

/// A change in the backend, idempotent on the call's key.
fn change(request: Request, call: &CallContext) -> PluginResult<Value> {
    let token = config::require("backend_token")?;
    let response = request
        .bearer(&token)
        .idempotency_key(&call.idempotency_key)
        .timeout_ms(TIMEOUT_MS)
        .send()?;
    if response.status == 404 {
        return Err(error::instance_not_found("the backend has no such tenant"));
    }
    Ok(response.error_for_status()?.json()?)
}

impl Plugin for TenantProvisioner {
    fn create(req: CreateRequest) -> Result<Created, PluginError> {
        if req.call.test {
            return Ok(Created {
                instance_id: req.instance_id,
                app_info: None,
            });
        }
        let body = json!({
            "instance_id": req.instance_id,
            "order_id": req.order_id,
            "plan": req.product.sku_code,
            "expire_at": req.expire_at.map(|at| at.unix_seconds),
        });
        let tenant = change(Request::post(&backend("/tenants")?).json(&body)?, &req.call)?;
        let text = |key: &str| tenant.get(key).and_then(Value::as_str).map(str::to_string);
        log::info!("tenant provisioned", instance_id = req.instance_id);
        Ok(Created {
            instance_id: req.instance_id,
            app_info: Some(AppInfo {
                front_end_url: None,
                admin_url: text("admin_url"),
                user_name: text("username"),
                password: None,
                memo: text("tenant_id").map(|id| format!("tenant {id}")),
            }),
        })
    }

    fn renew(req: RenewRequest) -> Result<(), PluginError> {
        if req.call.test {
            return Ok(());
        }
        let path = format!("/tenants/{}/renew", req.instance_id);
        let body = json!({ "expire_at": req.expire_at.unix_seconds });
        change(Request::post(&backend(&path)?).json(&body)?, &req.call)?;
        Ok(())
    }

    fn update_status(req: StatusRequest) -> Result<(), PluginError> {
        if req.call.test {
            return Ok(());
        }
        let action = match req.change {
            StatusChange::Freeze => "freeze",
            StatusChange::Unfreeze => "unfreeze",
        };
        let path = format!("/tenants/{}/{action}", req.instance_id);
        change(Request::post(&backend(&path)?), &req.call)?;
        Ok(())
    }

    fn release(req: ReleaseRequest) -> Result<(), PluginError> {
        if req.call.test {
            return Ok(());
        }
        let path = format!("/tenants/{}", req.instance_id);
        match change(Request::delete(&backend(&path)?), &req.call) {
            // Already gone: released is released.
            Err(PluginError::InstanceNotFound(_)) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

export_plugin!(TenantProvisioner);
