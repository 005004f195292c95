//! The host bindings generated from `wit/plugin.wit`, and the conversions
//! between them and the gateway's own contract types
//! (`koogallery_contract`). Nothing outside this crate sees a generated
//! type.
//!
//! Every conversion destructures its source exhaustively, so a field added
//! to the WIT stops the build here until it is carried through.

use koogallery_contract as c;

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit",
        exports: { default: async },
        imports: { "koogallery:plugin/kv": async },
    });
}

pub(crate) use generated::koogallery::plugin::{
    config as config_import, kv as kv_import, types as types_import,
};
pub(crate) use generated::{Plugin as PluginBindings, PluginPre};

use generated::exports::koogallery::plugin::provisioning as wit;
pub(crate) use generated::koogallery::plugin::log::Level as LogLevel;
use generated::koogallery::plugin::types as wit_types;

/// Calls the function of `request` on an instantiated plugin.
pub(crate) async fn dispatch<T: Send>(
    plugin: &PluginBindings,
    store: &mut wasmtime::Store<T>,
    request: &c::OperationRequest,
) -> wasmtime::Result<Result<c::OperationOutput, c::PluginError>> {
    use c::OperationOutput as Out;
    let api = plugin.koogallery_plugin_provisioning();
    let answered = match request {
        c::OperationRequest::Create(r) => api
            .call_create(store, &create(r))
            .await?
            .map(|created| Out::Created(from_created(created))),
        c::OperationRequest::Query(r) => api
            .call_query(store, &query(r))
            .await?
            .map(|reports| Out::Instances(reports.into_iter().map(from_report).collect())),
        c::OperationRequest::Renew(r) => api.call_renew(store, &renew(r)).await?.map(done),
        c::OperationRequest::UpdateStatus(r) => {
            api.call_update_status(store, &status(r)).await?.map(done)
        }
        c::OperationRequest::Release(r) => api.call_release(store, &release(r)).await?.map(done),
        c::OperationRequest::Upgrade(r) => api.call_upgrade(store, &upgrade(r)).await?.map(done),
        c::OperationRequest::ChangeCheck(r) => api
            .call_change_check(store, &change_check(r))
            .await?
            .map(done),
        c::OperationRequest::IssueLicense(r) => api
            .call_issue_license(store, &license(r))
            .await?
            .map(|wit::License { content }| Out::License(c::License { content })),
    };
    Ok(answered.map_err(from_plugin_error))
}

fn done(_: ()) -> c::OperationOutput {
    c::OperationOutput::Done
}

// ---- gateway → plugin

fn call(value: &c::CallContext) -> wit_types::CallContext {
    let c::CallContext {
        idempotency_key,
        attempt,
        test,
        request_id,
    } = value;
    wit_types::CallContext {
        idempotency_key: idempotency_key.clone(),
        attempt: *attempt,
        test: *test,
        request_id: request_id.clone(),
    }
}

fn instant(value: c::Instant) -> wit_types::Instant {
    let c::Instant { unix_seconds } = value;
    wit_types::Instant { unix_seconds }
}

fn params(values: &[c::Param]) -> Vec<wit_types::Param> {
    values
        .iter()
        .map(|c::Param { name, value }| wit_types::Param {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn customer(value: &c::Customer) -> wit_types::Customer {
    let c::Customer {
        id,
        name,
        user_id,
        user_name,
        mobile_phone,
        email,
    } = value;
    wit_types::Customer {
        id: id.clone(),
        name: name.clone(),
        user_id: user_id.clone(),
        user_name: user_name.clone(),
        mobile_phone: mobile_phone.clone(),
        email: email.clone(),
    }
}

fn product(value: &c::Product) -> wit_types::Product {
    let c::Product {
        product_id,
        sku_code,
        linear_value,
    } = value;
    wit_types::Product {
        product_id: product_id.clone(),
        sku_code: sku_code.clone(),
        linear_value: *linear_value,
    }
}

fn charging_mode(value: c::ChargingMode) -> wit_types::ChargingMode {
    match value {
        c::ChargingMode::Period => wit_types::ChargingMode::Period,
        c::ChargingMode::PayPerUse => wit_types::ChargingMode::PayPerUse,
        c::ChargingMode::OneTime => wit_types::ChargingMode::OneTime,
    }
}

fn period(value: c::Period) -> wit_types::Period {
    let c::Period { unit, count } = value;
    let unit = match unit {
        c::PeriodUnit::Year => wit_types::PeriodUnit::Year,
        c::PeriodUnit::Month => wit_types::PeriodUnit::Month,
        c::PeriodUnit::Week => wit_types::PeriodUnit::Week,
        c::PeriodUnit::Day => wit_types::PeriodUnit::Day,
        c::PeriodUnit::Hour => wit_types::PeriodUnit::Hour,
    };
    wit_types::Period { unit, count }
}

fn create(value: &c::CreateRequest) -> wit::CreateRequest {
    let c::CreateRequest {
        call: context,
        instance_id,
        order_id,
        order_line_id,
        kind,
        customer: buyer,
        product: bought,
        charging_mode: charging,
        period: term,
        expire_at,
        extensions,
    } = value;
    wit::CreateRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        order_id: order_id.clone(),
        order_line_id: order_line_id.clone(),
        kind: match kind {
            c::CreateKind::Purchase => wit::CreateKind::Purchase,
            c::CreateKind::Trial => wit::CreateKind::Trial,
            c::CreateKind::PayPerUse => wit::CreateKind::PayPerUse,
        },
        customer: buyer.as_ref().map(customer),
        product: product(bought),
        charging_mode: charging.map(charging_mode),
        period: term.map(period),
        expire_at: expire_at.map(instant),
        extensions: params(extensions),
    }
}

fn query(value: &c::QueryRequest) -> wit::QueryRequest {
    let c::QueryRequest {
        call: context,
        instance_ids,
    } = value;
    wit::QueryRequest {
        call: call(context),
        instance_ids: instance_ids.clone(),
    }
}

fn renew(value: &c::RenewRequest) -> wit::RenewRequest {
    let c::RenewRequest {
        call: context,
        instance_id,
        order_id,
        order_line_id,
        scene,
        product_id,
        expire_at,
        extensions,
    } = value;
    wit::RenewRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        order_id: order_id.clone(),
        order_line_id: order_line_id.clone(),
        scene: match scene {
            c::RenewScene::Renewal => wit::RenewScene::Renewal,
            c::RenewScene::TrialToFormal => wit::RenewScene::TrialToFormal,
            c::RenewScene::UnsubscribeRenewalPeriod => wit::RenewScene::UnsubscribeRenewalPeriod,
        },
        product_id: product_id.clone(),
        expire_at: instant(*expire_at),
        extensions: params(extensions),
    }
}

fn status(value: &c::StatusRequest) -> wit::StatusRequest {
    let c::StatusRequest {
        call: context,
        instance_id,
        order_id,
        change,
        cause,
    } = value;
    wit::StatusRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        order_id: order_id.clone(),
        change: match change {
            c::StatusChange::Freeze => wit::StatusChange::Freeze,
            c::StatusChange::Unfreeze => wit::StatusChange::Unfreeze,
        },
        cause: match cause {
            c::StatusCause::Expired => wit::StatusCause::Expired,
            c::StatusCause::Marketplace => wit::StatusCause::Marketplace,
        },
    }
}

fn release(value: &c::ReleaseRequest) -> wit::ReleaseRequest {
    let c::ReleaseRequest {
        call: context,
        instance_id,
        order_id,
        order_line_id,
    } = value;
    wit::ReleaseRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        order_id: order_id.clone(),
        order_line_id: order_line_id.clone(),
    }
}

fn upgrade(value: &c::UpgradeRequest) -> wit::UpgradeRequest {
    let c::UpgradeRequest {
        call: context,
        instance_id,
        order_id,
        order_line_id,
        product: target,
        extensions,
    } = value;
    wit::UpgradeRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        order_id: order_id.clone(),
        order_line_id: order_line_id.clone(),
        product: product(target),
        extensions: params(extensions),
    }
}

fn change_check(value: &c::ChangeCheckRequest) -> wit::ChangeCheckRequest {
    let c::ChangeCheckRequest {
        call: context,
        instance_id,
        product: target,
    } = value;
    wit::ChangeCheckRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        product: product(target),
    }
}

fn license(value: &c::LicenseRequest) -> wit::LicenseRequest {
    let c::LicenseRequest {
        call: context,
        instance_id,
        order_id,
        event_id,
        customer: buyer,
        product: bought,
        effective_at,
        expire_at,
        device_fingerprint,
        extensions,
    } = value;
    wit::LicenseRequest {
        call: call(context),
        instance_id: instance_id.clone(),
        order_id: order_id.clone(),
        event_id: event_id.clone(),
        customer: buyer.as_ref().map(customer),
        product: bought.as_ref().map(product),
        effective_at: effective_at.map(instant),
        expire_at: expire_at.map(instant),
        device_fingerprint: device_fingerprint.clone(),
        extensions: params(extensions),
    }
}

// ---- plugin → gateway

fn from_app_info(value: wit_types::AppInfo) -> c::AppInfo {
    let wit_types::AppInfo {
        front_end_url,
        admin_url,
        user_name,
        password,
        memo,
    } = value;
    c::AppInfo {
        front_end_url,
        admin_url,
        user_name,
        password,
        memo,
    }
}

fn from_created(value: wit::Created) -> c::Created {
    let wit::Created {
        instance_id,
        app_info,
    } = value;
    c::Created {
        instance_id,
        app_info: app_info.map(from_app_info),
    }
}

fn from_report(value: wit::InstanceReport) -> c::InstanceReport {
    let wit::InstanceReport {
        instance_id,
        app_info,
        usage,
    } = value;
    c::InstanceReport {
        instance_id,
        app_info: app_info.map(from_app_info),
        usage: usage
            .into_iter()
            .map(
                |wit::Usage {
                     related_instance_id,
                     value,
                     statistical_time,
                     dashboard_url,
                 }| c::Usage {
                    related_instance_id,
                    value,
                    statistical_time: c::Instant {
                        unix_seconds: statistical_time.unix_seconds,
                    },
                    dashboard_url,
                },
            )
            .collect(),
    }
}

fn from_plugin_error(value: wit_types::PluginError) -> c::PluginError {
    use wit_types::PluginError as E;
    match value {
        E::InvalidRequest(r) => c::PluginError::InvalidRequest(r),
        E::InstanceNotFound(r) => c::PluginError::InstanceNotFound(r),
        E::InProgress(r) => c::PluginError::InProgress(r),
        E::Internal(r) => c::PluginError::Internal(r),
        E::NoResources(r) => c::PluginError::NoResources(r),
        E::ServiceError(r) => c::PluginError::ServiceError(r),
        E::AlreadySubscribed(r) => c::PluginError::AlreadySubscribed(r),
        E::SoldOut(r) => c::PluginError::SoldOut(r),
    }
}
