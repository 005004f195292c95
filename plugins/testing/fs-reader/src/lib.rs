//! A plugin that reads a file. It imports `wasi:filesystem`, which the gateway
//! does not grant, so `gateway plugin check` and loading must refuse it.

use koogallery_plugin_sdk::prelude::*;

struct FsReader;

impl Plugin for FsReader {
    fn create(req: CreateRequest) -> PluginResult<Created> {
        let secret =
            std::fs::read_to_string("/etc/passwd").map_err(|e| error::internal(e.to_string()))?;
        Ok(Created {
            instance_id: req.instance_id,
            app_info: Some(AppInfo {
                front_end_url: None,
                admin_url: None,
                user_name: None,
                password: None,
                memo: Some(secret),
            }),
        })
    }
    fn renew(_req: RenewRequest) -> PluginResult<()> {
        Ok(())
    }
    fn update_status(_req: StatusRequest) -> PluginResult<()> {
        Ok(())
    }
    fn release(_req: ReleaseRequest) -> PluginResult<()> {
        Ok(())
    }
}

export_plugin!(FsReader);
