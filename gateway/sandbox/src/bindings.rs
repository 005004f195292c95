//! The host bindings generated from `wit/plugin.wit`, the conversions
//! between them and the gateway's own contract types
//! (`koogallery_contract`), and the plugin's functions as called
//! ([`Functions`]: found once per loaded plugin). Nothing outside this
//! crate sees a generated type.
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
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower, TypedFunc,
};

use generated::exports::koogallery::plugin::provisioning as wit;
pub(crate) use generated::koogallery::plugin::log::Level as LogLevel;
use generated::koogallery::plugin::types as wit_types;

/// The interface whose functions the gateway calls (a plugin built
/// against any `0.1.x` of the contract exports it under a compatible name).
const PROVISIONING: &str = "koogallery:plugin/provisioning@0.1.1";

/// A loaded plugin's provisioning functions, found once (by name, at load)
/// and type-checked once each, on their first call.
///
/// Why not the generated `Plugin::new` per call: it type-checks all eight
/// functions of every fresh instance against the contract's records, about
/// a tenth of a whole `release` cycle (docs/benchmarks.md). A function's
/// type belongs to the component, not to an instance, so one check holds
/// for every instance of the same [`InstancePre`].
pub(crate) struct Functions {
    indices: [ComponentExportIndex; 8],
    checked: [AtomicBool; 8],
}

impl Functions {
    /// Finds the functions in `pre`'s component; an error names the
    /// missing one.
    pub(crate) fn find<T>(pre: &InstancePre<T>) -> wasmtime::Result<Functions> {
        let component = pre.component();
        let interface = component
            .get_export_index(None, PROVISIONING)
            .ok_or_else(|| wasmtime::format_err!("no exported instance named `{PROVISIONING}`"))?;
        let mut indices = Vec::with_capacity(c::Operation::ALL.len());
        for operation in c::Operation::ALL {
            let name = operation.name();
            let index = component
                .get_export_index(Some(&interface), name)
                .ok_or_else(|| {
                    wasmtime::format_err!("`{PROVISIONING}` does not export `{name}`")
                })?;
            indices.push(index);
        }
        let indices = indices
            .try_into()
            .map_err(|_| wasmtime::format_err!("the contract has eight functions"))?;
        Ok(Functions {
            indices,
            checked: Default::default(),
        })
    }

    /// Calls `operation`'s function of `instance` (an instance of the
    /// component these functions were found in) with `params`.
    async fn call<T, P, R>(
        &self,
        operation: c::Operation,
        store: &mut wasmtime::Store<T>,
        instance: &Instance,
        params: P,
    ) -> wasmtime::Result<R>
    where
        T: Send,
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        // `Operation::ALL` lists the variants in declaration order.
        let slot = operation as usize;
        let func = instance
            .get_func(&mut *store, self.indices[slot])
            .ok_or_else(|| wasmtime::format_err!("`{operation}` is not a function"))?;
        let typed = if self.checked[slot].load(Ordering::Acquire) {
            // SAFETY: the same export of the same component passed
            // `Func::typed` with these very types before (below); a
            // component's function types do not change between instances.
            unsafe { TypedFunc::<P, R>::new_unchecked(func) }
        } else {
            let typed = func.typed::<P, R>(&*store)?;
            self.checked[slot].store(true, Ordering::Release);
            typed
        };
        typed.call_async(&mut *store, params).await
    }

    /// Calls one of the functions that answer nothing but success or a
    /// plugin error (renew, status, release, upgrade, change check).
    async fn done<T, A>(
        &self,
        operation: c::Operation,
        store: &mut wasmtime::Store<T>,
        instance: &Instance,
        request: &A,
    ) -> wasmtime::Result<Result<c::OperationOutput, wit_types::PluginError>>
    where
        T: Send,
        A: Lower + Sync,
    {
        let (answer,): (Result<(), wit_types::PluginError>,) =
            self.call(operation, store, instance, (request,)).await?;
        Ok(answer.map(|()| c::OperationOutput::Done))
    }
}

/// Calls the function of `request` on an instance of the plugin whose
/// `functions` these are.
pub(crate) async fn dispatch<T: Send>(
    functions: &Functions,
    instance: &Instance,
    store: &mut wasmtime::Store<T>,
    request: &c::OperationRequest,
) -> wasmtime::Result<Result<c::OperationOutput, c::PluginError>> {
    use c::OperationOutput as Out;
    let op = request.operation();
    type Answer<T> = (Result<T, wit_types::PluginError>,);
    let answered = match request {
        c::OperationRequest::Create(r) => {
            let (created,): Answer<wit::Created> =
                functions.call(op, store, instance, (&create(r),)).await?;
            created.map(|created| Out::Created(from_created(created)))
        }
        c::OperationRequest::Query(r) => {
            let (reports,): Answer<Vec<wit::InstanceReport>> =
                functions.call(op, store, instance, (&query(r),)).await?;
            reports.map(|reports| Out::Instances(reports.into_iter().map(from_report).collect()))
        }
        c::OperationRequest::Renew(r) => functions.done(op, store, instance, &renew(r)).await?,
        c::OperationRequest::UpdateStatus(r) => {
            functions.done(op, store, instance, &status(r)).await?
        }
        c::OperationRequest::Release(r) => functions.done(op, store, instance, &release(r)).await?,
        c::OperationRequest::Upgrade(r) => functions.done(op, store, instance, &upgrade(r)).await?,
        c::OperationRequest::ChangeCheck(r) => {
            functions
                .done(op, store, instance, &change_check(r))
                .await?
        }
        c::OperationRequest::IssueLicense(r) => {
            let (license,): Answer<wit::License> =
                functions.call(op, store, instance, (&license(r),)).await?;
            license.map(|wit::License { content }| Out::License(c::License { content }))
        }
    };
    Ok(answered.map_err(from_plugin_error))
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
