//! A plugin built against the first contract, `koogallery:plugin@0.1.0`
//! (its WIT frozen in `wit/`, as released): the gateway must keep loading
//! and serving it as the contract grows within 0.1.x.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::koogallery::plugin::provisioning::*;
use koogallery::plugin::types::PluginError;

struct Old;

impl Guest for Old {
    fn create(req: CreateRequest) -> Result<Created, PluginError> {
        let plan = koogallery::plugin::config::get("plan").unwrap_or_else(|| "basic".into());
        Ok(Created {
            instance_id: req.instance_id,
            app_info: Some(koogallery::plugin::types::AppInfo {
                front_end_url: None,
                admin_url: None,
                user_name: None,
                password: None,
                memo: Some(format!("built against 0.1.0; plan {plan}")),
            }),
        })
    }
    fn query(req: QueryRequest) -> Result<Vec<InstanceReport>, PluginError> {
        Ok(req
            .instance_ids
            .into_iter()
            .map(|instance_id| InstanceReport {
                instance_id,
                app_info: None,
                usage: Vec::new(),
            })
            .collect())
    }
    fn renew(_: RenewRequest) -> Result<(), PluginError> {
        Ok(())
    }
    fn update_status(_: StatusRequest) -> Result<(), PluginError> {
        Ok(())
    }
    fn release(_: ReleaseRequest) -> Result<(), PluginError> {
        Ok(())
    }
    fn upgrade(_: UpgradeRequest) -> Result<(), PluginError> {
        Ok(())
    }
    fn change_check(_: ChangeCheckRequest) -> Result<(), PluginError> {
        Ok(())
    }
    fn issue_license(_: LicenseRequest) -> Result<License, PluginError> {
        Err(PluginError::InvalidRequest("no licenses".into()))
    }
}

export!(Old);
