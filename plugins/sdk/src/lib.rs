//! The plugin SDK: write a KooGallery merchant plugin in plain Rust.
//!
//! This crate owns the guest side of the contract in `wit/plugin.wit`: it
//! generates the bindings once, and wraps them in the few things an author
//! needs: the [`Plugin`] trait (one method per marketplace activity family,
//! with sensible defaults for the optional ones), [`export_plugin!`], error
//! constructors in [`error`], structured logging in [`log`], configuration
//! and secrets in [`config`], the merchant's key-value store in [`kv`],
//! outbound HTTP in [`http`] (when the operator grants it) and time helpers
//! in [`time`].
//!
//! ```ignore
//! use koogallery_plugin_sdk::prelude::*;
//!
//! struct MyPlugin;
//!
//! impl Plugin for MyPlugin {
//!     fn create(req: CreateRequest) -> Result<Created, PluginError> {
//!         log::info!("creating", instance_id = req.instance_id);
//!         Ok(Created { instance_id: req.instance_id, app_info: None })
//!     }
//!     fn renew(_req: RenewRequest) -> Result<(), PluginError> { Ok(()) }
//!     fn update_status(_req: StatusRequest) -> Result<(), PluginError> { Ok(()) }
//!     fn release(_req: ReleaseRequest) -> Result<(), PluginError> { Ok(()) }
//! }
//!
//! export_plugin!(MyPlugin);
//! ```

// The generated code names this crate by its public path, so that the export
// macro works from the plugin crate; inside the SDK itself that path must
// resolve too.
extern crate self as koogallery_plugin_sdk;

/// The raw generated bindings. Prefer the re-exports in [`prelude`].
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "koogallery_plugin_sdk::bindings",
        runtime_path: "koogallery_plugin_sdk::__wit_bindgen_rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt as __wit_bindgen_rt;

/// JSON values (`json!`, `Value`) for request and response bodies.
#[cfg(feature = "json")]
pub use serde_json as json;

pub mod config;
pub mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod time;

use bindings::exports::koogallery::plugin::provisioning as exported;
pub use bindings::koogallery::plugin::types::{
    AppInfo, CallContext, ChargingMode, Customer, Instant, Param, Period, PeriodUnit, PluginError,
    Product,
};
pub use exported::{
    ChangeCheckRequest, CreateKind, CreateRequest, Created, InstanceReport, License,
    LicenseRequest, QueryRequest, ReleaseRequest, RenewRequest, RenewScene, StatusCause,
    StatusChange, StatusRequest, UpgradeRequest, Usage,
};

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::error::{self, PluginResult};
    pub use crate::{
        AppInfo, CallContext, ChangeCheckRequest, ChargingMode, CreateKind, CreateRequest, Created,
        Customer, InstanceReport, Instant, License, LicenseRequest, Param, Period, PeriodUnit,
        Plugin, PluginError, Product, QueryRequest, ReleaseRequest, RenewRequest, RenewScene,
        StatusCause, StatusChange, StatusRequest, UpgradeRequest, Usage,
    };
    pub use crate::{config, export_plugin, http, kv, log, time};
}

/// One method per marketplace activity family. The four lifecycle methods are
/// required; the others default to the answer a product without that feature
/// should give.
pub trait Plugin {
    /// newInstance: provision the instance the gateway named in `req.instance_id`.
    fn create(req: CreateRequest) -> Result<Created, PluginError>;
    /// refreshInstance: renewal, trial conversion or shortened period.
    fn renew(req: RenewRequest) -> Result<(), PluginError>;
    /// expireInstance / updateInstanceStatus / instanceStatus: freeze or unfreeze.
    fn update_status(req: StatusRequest) -> Result<(), PluginError>;
    /// releaseInstance: delete the instance and its data.
    fn release(req: ReleaseRequest) -> Result<(), PluginError>;

    /// queryInstance. Default: every instance is reported without details.
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
    /// upgrade / upgradeInstance. Default: upgrades are not offered.
    fn upgrade(_req: UpgradeRequest) -> Result<(), PluginError> {
        Err(error::invalid_request("this product offers no upgrades"))
    }
    /// changeInstanceCheck. Default: no change is supported.
    fn change_check(_req: ChangeCheckRequest) -> Result<(), PluginError> {
        Err(error::invalid_request(
            "this product supports no change at renewal",
        ))
    }
    /// getLicense / getLicenseAsync. Default: the product issues no licenses.
    fn issue_license(_req: LicenseRequest) -> Result<License, PluginError> {
        Err(error::invalid_request("this product issues no licenses"))
    }
}

impl<T: Plugin> exported::Guest for T {
    fn create(req: CreateRequest) -> Result<Created, PluginError> {
        <T as Plugin>::create(req)
    }
    fn query(req: QueryRequest) -> Result<Vec<InstanceReport>, PluginError> {
        <T as Plugin>::query(req)
    }
    fn renew(req: RenewRequest) -> Result<(), PluginError> {
        <T as Plugin>::renew(req)
    }
    fn update_status(req: StatusRequest) -> Result<(), PluginError> {
        <T as Plugin>::update_status(req)
    }
    fn release(req: ReleaseRequest) -> Result<(), PluginError> {
        <T as Plugin>::release(req)
    }
    fn upgrade(req: UpgradeRequest) -> Result<(), PluginError> {
        <T as Plugin>::upgrade(req)
    }
    fn change_check(req: ChangeCheckRequest) -> Result<(), PluginError> {
        <T as Plugin>::change_check(req)
    }
    fn issue_license(req: LicenseRequest) -> Result<License, PluginError> {
        <T as Plugin>::issue_license(req)
    }
}

/// Exports a type implementing [`Plugin`] as the component's `provisioning`
/// interface. Use it once, at the root of the plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        $crate::bindings::__export_plugin_world!($plugin with_types_in $crate::bindings);
    };
}
