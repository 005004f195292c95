//! A test plugin for the capabilities: outbound HTTP and the key-value
//! store, driven by its merchant's configuration so that the gateway's tests
//! can aim it anywhere.
//!
//! - `create`: unless a test call (`call.test`), `GET {url}` (configuration `url`; `timeout_ms` optional),
//!   sending the secret `token` as a bearer token when set; answers with
//!   the status and body size in `app_info.memo`, or declines `internal`
//!   with the error, which the tests read in `resultMsg`.
//! - `renew`: sets `expiry/{instance}` in the key-value store, reads it
//!   back, lists `expiry/`; the memo is not available for renew, so a
//!   mismatch declines `internal`.
//! - `release`: stores `kv_value_bytes` bytes (configuration) under
//!   `blob/{instance}`, to test quotas.

use koogallery_plugin_sdk::http::Request;
use koogallery_plugin_sdk::prelude::*;

struct Outbound;

impl Plugin for Outbound {
    fn create(req: CreateRequest) -> Result<Created, PluginError> {
        if req.call.test {
            // The upload's smoke call, and the marketplace's probes.
            return Ok(Created {
                instance_id: req.instance_id,
                app_info: None,
            });
        }
        let url = config::require("url")?;
        let mut request = Request::get(&url).idempotency_key(&req.call.idempotency_key);
        if let Some(ms) = config::get("timeout_ms").and_then(|ms| ms.parse().ok()) {
            request = request.timeout_ms(ms);
        }
        if let Some(token) = config::get("token") {
            request = request.bearer(&token);
        }
        let response = request.send()?;
        Ok(Created {
            instance_id: req.instance_id,
            app_info: Some(AppInfo {
                front_end_url: None,
                admin_url: None,
                user_name: None,
                password: None,
                memo: Some(format!(
                    "status={} bytes={}",
                    response.status,
                    response.body.len()
                )),
            }),
        })
    }

    fn renew(req: RenewRequest) -> Result<(), PluginError> {
        let key = format!("expiry/{}", req.instance_id);
        let value = req.expire_at.unix_seconds.to_string();
        kv::set_string(&key, &value)?;
        if kv::get_string(&key)?.as_deref() != Some(value.as_str()) {
            return Err(error::internal("kv read back a different value"));
        }
        if !kv::keys("expiry/")?.contains(&key) {
            return Err(error::internal("kv did not list the key"));
        }
        Ok(())
    }

    fn update_status(_req: StatusRequest) -> Result<(), PluginError> {
        Ok(())
    }

    fn release(req: ReleaseRequest) -> Result<(), PluginError> {
        let size: usize = config::get_or("kv_value_bytes", "16").parse().unwrap_or(16);
        kv::set(&format!("blob/{}", req.instance_id), &vec![7u8; size])?;
        Ok(())
    }
}

export_plugin!(Outbound);
