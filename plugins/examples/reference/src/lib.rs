//! The reference plugin: a realistic merchant plugin that exercises the whole
//! contract, and the template to copy when writing your own.
//!
//! It provisions tenants of an imaginary SaaS product hosted at the merchant's
//! `base_url`. It keeps no state of its own: everything it answers is derived
//! from the request and the merchant's configuration, so every retry of an
//! operation gets the same answer (the property the marketplace demands).
//! A real plugin would call its backend here, passing `call.idempotency_key`.
//!
//! Configuration keys (all optional):
//! - `base_url`: where tenants live (default `https://saas.example.com`).
//! - `credential_salt`: mixed into generated passwords (default `demo`).
//! - `max_linear_value`: the largest quantity (seats, GB…) sold (default 1000).
//! - `sold_out_skus`: comma-separated SKU codes that are sold out.

use koogallery_plugin_sdk::prelude::*;
use sha2::{Digest, Sha256};

struct Reference;

/// The most instance ids one queryInstance may carry (marketplace contract).
const MAX_QUERY_IDS: usize = 100;

impl Plugin for Reference {
    fn create(req: CreateRequest) -> PluginResult<Created> {
        error::require_non_empty("instance-id", &req.instance_id)?;
        error::require_non_empty("order-id", &req.order_id)?;
        check_product(&req.product)?;
        match (req.kind, req.charging_mode) {
            (CreateKind::Trial, _) | (_, Some(ChargingMode::Period)) if req.expire_at.is_none() => {
                return Err(error::invalid_request(
                    "a subscription or trial needs expire-at",
                ));
            }
            (CreateKind::PayPerUse, Some(ChargingMode::Period)) => {
                return Err(error::invalid_request(
                    "a pay-per-use instance cannot have period charging",
                ));
            }
            _ => {}
        }
        let mut app = app_info_for(&req.instance_id);
        app.memo = Some(memo_for(&req));
        log::info!(
            "tenant provisioned",
            instance_id = req.instance_id,
            order_id = req.order_id,
            attempt = req.call.attempt,
            test = req.call.test,
        );
        Ok(Created {
            instance_id: req.instance_id,
            app_info: Some(app),
        })
    }

    fn query(req: QueryRequest) -> PluginResult<Vec<InstanceReport>> {
        if req.instance_ids.is_empty() {
            return Err(error::invalid_request("no instance id to query"));
        }
        if req.instance_ids.len() > MAX_QUERY_IDS {
            return Err(error::invalid_request(format!(
                "at most {MAX_QUERY_IDS} instance ids per query"
            )));
        }
        req.instance_ids
            .into_iter()
            .map(|instance_id| {
                error::require_non_empty("instance-id", &instance_id)?;
                Ok(InstanceReport {
                    app_info: Some(app_info_for(&instance_id)),
                    instance_id,
                    usage: Vec::new(),
                })
            })
            .collect()
    }

    fn renew(req: RenewRequest) -> PluginResult<()> {
        error::require_non_empty("instance-id", &req.instance_id)?;
        error::require_non_empty("order-id", &req.order_id)?;
        if req.expire_at.unix_seconds <= 0 {
            return Err(error::invalid_request("expire-at must be a real date"));
        }
        log::info!(
            "subscription extended",
            instance_id = req.instance_id,
            scene = format!("{:?}", req.scene),
            expire_at = time::format_marketplace(req.expire_at),
        );
        Ok(())
    }

    fn update_status(req: StatusRequest) -> PluginResult<()> {
        error::require_non_empty("instance-id", &req.instance_id)?;
        log::info!(
            "tenant status changed",
            instance_id = req.instance_id,
            change = format!("{:?}", req.change),
            cause = format!("{:?}", req.cause),
        );
        Ok(())
    }

    fn release(req: ReleaseRequest) -> PluginResult<()> {
        error::require_non_empty("instance-id", &req.instance_id)?;
        log::info!("tenant released", instance_id = req.instance_id);
        Ok(())
    }

    fn upgrade(req: UpgradeRequest) -> PluginResult<()> {
        error::require_non_empty("instance-id", &req.instance_id)?;
        error::require_non_empty("order-id", &req.order_id)?;
        // V2 upgradeInstance carries only the instance and the upgrade order
        // (the new product is read from the order); V1 names the product.
        check_product(&req.product)?;
        log::info!(
            "tenant upgraded",
            instance_id = req.instance_id,
            order_id = req.order_id
        );
        Ok(())
    }

    fn change_check(req: ChangeCheckRequest) -> PluginResult<()> {
        error::require_non_empty("instance-id", &req.instance_id)?;
        check_product(&req.product).map_err(|_| {
            error::invalid_request("the target product cannot be switched to at renewal")
        })
    }

    fn issue_license(req: LicenseRequest) -> PluginResult<License> {
        // The same request must always yield the same license: derive it from
        // the most stable identifier the marketplace sent.
        let subject = req
            .event_id
            .as_deref()
            .or(req.order_id.as_deref())
            .or(req.instance_id.as_deref())
            .ok_or_else(|| {
                error::invalid_request("a license request names an event, order or instance")
            })?;
        let content = format!(
            "LIC-{}",
            &digest_hex(&["license", subject])[..24].to_uppercase()
        );
        log::info!("license issued", subject = subject);
        Ok(License { content })
    }
}

/// Refuses sold-out SKUs and quantities beyond what the merchant sells.
fn check_product(product: &Product) -> PluginResult<()> {
    if let Some(sku) = &product.sku_code {
        let sold_out = config::get_or("sold_out_skus", "");
        if sold_out
            .split(',')
            .map(str::trim)
            .any(|s| !s.is_empty() && s == sku)
        {
            return Err(error::sold_out(format!("sku {sku} is sold out")));
        }
    }
    if let Some(quantity) = product.linear_value {
        let max = config::get_or("max_linear_value", "1000")
            .parse::<u64>()
            .unwrap_or(1000);
        if quantity > max {
            return Err(error::no_resources(format!(
                "{quantity} exceeds the {max} units available"
            )));
        }
    }
    Ok(())
}

/// Where the tenant lives and how its administrator signs in. Derived from the
/// instance id alone, so `create` and `query` agree and retries are identical.
fn app_info_for(instance_id: &str) -> AppInfo {
    let base = config::get_or("base_url", "https://saas.example.com");
    let base = base.trim_end_matches('/');
    let salt = config::get_or("credential_salt", "demo");
    let tenant = format!("t-{}", &digest_hex(&["tenant", instance_id])[..12]);
    let password = digest_hex(&["password", &salt, instance_id])[..16].to_string();
    AppInfo {
        front_end_url: Some(format!("{base}/{tenant}")),
        admin_url: Some(format!("{base}/{tenant}/admin")),
        user_name: Some(format!("admin@{tenant}")),
        password: Some(password),
        memo: None,
    }
}

fn memo_for(req: &CreateRequest) -> String {
    let mut memo = match req.kind {
        CreateKind::Trial => "trial".to_string(),
        CreateKind::PayPerUse => "pay-per-use".to_string(),
        CreateKind::Purchase => "subscription".to_string(),
    };
    if let Some(expire_at) = req.expire_at {
        memo.push_str(&format!(" until {}", time::format_marketplace(expire_at)));
    }
    if req.call.test {
        memo.push_str(" (test)");
    }
    memo
}

fn digest_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

export_plugin!(Reference);
