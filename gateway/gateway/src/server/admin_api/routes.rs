//! The admin API's handlers. Each checks who may act first (a refusal
//! changes nothing), then validates, then writes the change with its audit
//! entry and swaps the reloaded merchant in.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gateway_sandbox::{CallError, LoadError, Outcome};
use gateway_store::registry::{
    Activated, Activation, AuditEntry, AuditRow, Deleted, MerchantRow, NewVersion, TokenRow,
    VersionRow,
};
use koogallery_contract::Operation;
use koogallery_protocol::AccessKey;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, Principal};
use crate::config::MerchantSettings;
use crate::registry::{key_id, now_ms, settings_json, sha256_hex};
use crate::server::App;

type Answer<T> = Result<T, ApiError>;

/// A merchant as the API shows it (never its keys, only their handles).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MerchantView {
    pub id: String,
    /// The merchant's settings (encrypt_type, sign_responses, generations,
    /// deadline_ms, memory_mib, create_in_flight, unknown_instances, config).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub disabled: bool,
    pub active_version: Option<i64>,
    pub previous_version: Option<i64>,
    /// Handles of the live access keys.
    pub key_ids: Vec<String>,
    /// Why its callbacks answer 000005 right now, if they do.
    pub unavailable: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    /// 1-64 characters of A-Z, a-z, 0-9, - and _.
    pub id: String,
    /// At least one.
    pub access_keys: Vec<String>,
    /// Defaults for what is left out.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantChange {
    /// Replaces the settings (defaults for what is left out).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    pub disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub access_key: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub key_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    pub contract_version: String,
    pub uploaded_at: i64,
    pub uploaded_by: String,
    pub active: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PluginsView {
    pub active_version: Option<i64>,
    pub previous_version: Option<i64>,
    pub versions: Vec<VersionView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ActivationView {
    pub active_version: i64,
    pub previous_version: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
pub struct UploadQuery {
    /// Activate the new version at once.
    #[serde(default)]
    pub activate: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct NewTokenView {
    pub token_id: String,
    pub merchant_id: Option<String>,
    /// Shown once: only its hash is kept.
    pub token: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub token_id: String,
    pub merchant_id: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub merchant_id: Option<String>,
    pub action: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only merchants whose id sorts after this one (the last id of the
    /// previous page).
    pub after: Option<String>,
    /// At most this many, by id (default and most: 1000). A full page may
    /// have a next one.
    pub limit: Option<u32>,
}

/// The most merchants one list answer holds.
const MAX_LIST: u32 = 1000;

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// At most this many entries, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

pub(super) fn audit_entry(
    who: &Principal,
    merchant: Option<&str>,
    action: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        at: now_ms(),
        actor: who.actor(),
        merchant_id: merchant.map(str::to_string),
        action: action.into(),
        detail_json: detail.to_string(),
    }
}

/// Settings from a request: defaults for what is left out, checked against
/// this gateway's bounds.
fn settings_from(app: &App, value: Option<serde_json::Value>) -> Answer<MerchantSettings> {
    let settings: MerchantSettings = match value {
        Some(value) => serde_json::from_value(value)
            .map_err(|e| ApiError::invalid(format!("settings: {e}")))?,
        None => MerchantSettings::default(),
    };
    app.admin_api
        .config
        .validate_settings("settings", &settings)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(settings)
}

/// The stored settings as the API shows them: secrets by name only
/// (write-only values).
fn settings_view(settings_json: &str) -> serde_json::Value {
    let mut settings: serde_json::Value =
        serde_json::from_str(settings_json).unwrap_or(serde_json::Value::Null);
    if let Some(secrets) = settings
        .get_mut("secrets")
        .and_then(serde_json::Value::as_object_mut)
    {
        for value in secrets.values_mut() {
            *value = serde_json::Value::String("(set)".into());
        }
    }
    settings
}

/// The stored form of new settings: secrets sealed, and those the request
/// left out carried over from `previous` (a write-only value cannot be sent
/// back, so leaving it out must not erase it).
fn stored_settings(
    app: &App,
    mut settings: MerchantSettings,
    secrets_given: bool,
    previous: Option<&str>,
) -> String {
    if !secrets_given
        && let Some(previous) =
            previous.and_then(|json| serde_json::from_str::<MerchantSettings>(json).ok())
    {
        settings.secrets = previous.secrets;
    }
    app.registry().capabilities().seal_secrets(&mut settings);
    settings_json(&settings)
}

/// Only the operator grants capabilities: a merchant's own token may not
/// change its outbound HTTP grant.
fn grants_unchanged(who: &Principal, new: &MerchantSettings, previous: &str) -> Answer<()> {
    if who.merchant().is_none() {
        return Ok(());
    }
    let previous: MerchantSettings = serde_json::from_str(previous).unwrap_or_default();
    if new.allowed_outbound_hosts != previous.allowed_outbound_hosts
        || new.allow_private_networks != previous.allow_private_networks
    {
        return Err(ApiError::forbidden(
            "only the operator token may change allowed_outbound_hosts or allow_private_networks",
        ));
    }
    Ok(())
}

fn valid_id(id: &str) -> Answer<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "id: must be 1-64 characters of A-Z, a-z, 0-9, - and _",
        ))
    }
}

fn valid_key(key: &str) -> Answer<AccessKey> {
    if key.trim().is_empty() || key.len() > 256 {
        return Err(ApiError::invalid(
            "access_key: must be 1-256 characters, not blank",
        ));
    }
    Ok(AccessKey::new(key))
}

async fn merchant_row(app: &App, id: &str) -> Answer<MerchantRow> {
    app.registry()
        .store()
        .merchant(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no merchant {id}")))
}

async fn view(app: &App, row: MerchantRow) -> Answer<MerchantView> {
    let keys = app.registry().store().keys(&row.merchant_id).await?;
    let unavailable = app
        .merchants()
        .get(&row.merchant_id)
        .and_then(|m| match &m.handler {
            crate::merchants::Handler::Unavailable(why) => Some(why.to_string()),
            _ => None,
        });
    Ok(MerchantView {
        settings: settings_view(&row.settings_json),
        key_ids: keys
            .into_iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.key_id)
            .collect(),
        id: row.merchant_id,
        disabled: row.disabled,
        active_version: row.active_version,
        previous_version: row.previous_version,
        unavailable,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Serves what the store now holds for `id` (after a change).
async fn reload(app: &App, id: &str) -> Answer<()> {
    app.registry().reload(id).await?;
    Ok(())
}

/// Lists merchants by id, a page at a time: the operator's all of them,
/// a merchant token's its own.
#[utoipa::path(get, path = "/admin/v1/merchants", tag = "merchants", params(ListQuery),
    responses((status = 200, body = Vec<MerchantView>), (status = 401, body = ErrorBody)))]
pub async fn list_merchants(
    State(app): State<Arc<App>>,
    who: Principal,
    Query(query): Query<ListQuery>,
) -> Answer<Json<Vec<MerchantView>>> {
    let limit = query.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST);
    let after = query.after.unwrap_or_default();
    let rows = match who.merchant() {
        // A merchant token: its own merchant, on the first page only.
        Some(own) => match app.registry().store().merchant(own).await? {
            Some(row) if row.merchant_id.as_str() > after.as_str() => vec![row],
            _ => Vec::new(),
        },
        None => {
            let store = app.registry().store();
            store.merchants_after(&after, limit).await?
        }
    };
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        views.push(view(&app, row).await?);
    }
    Ok(Json(views))
}

/// Creates a merchant (operator only).
#[utoipa::path(post, path = "/admin/v1/merchants", tag = "merchants", request_body = NewMerchant,
    responses((status = 201, body = MerchantView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_merchant(
    State(app): State<Arc<App>>,
    who: Principal,
    body: Result<Json<NewMerchant>, axum::extract::rejection::JsonRejection>,
) -> Answer<(StatusCode, Json<MerchantView>)> {
    who.operator_only()?;
    let Json(new) = body?;
    valid_id(&new.id)?;
    if new.access_keys.is_empty() {
        return Err(ApiError::invalid("access_keys: at least one key is needed"));
    }
    let keys = new
        .access_keys
        .iter()
        .map(|k| valid_key(k))
        .collect::<Answer<Vec<_>>>()?;
    let settings = settings_from(&app, new.settings)?;
    let _change = app.registry().changes().lock().await;
    let now = now_ms();
    let row = MerchantRow {
        merchant_id: new.id.clone(),
        settings_json: stored_settings(&app, settings, true, None),
        disabled: false,
        active_version: None,
        previous_version: None,
        bootstrap_hash: None,
        created_at: now,
        updated_at: now,
    };
    let sealed = keys
        .iter()
        .map(|key| app.registry().seal_key(&new.id, key, now))
        .collect();
    let key_ids: Vec<String> = keys.iter().map(key_id).collect();
    let audit = audit_entry(
        &who,
        Some(&new.id),
        "merchant.create",
        serde_json::json!({ "key_ids": key_ids }),
    );
    if !app
        .registry()
        .store()
        .create_merchant(row, sealed, audit)
        .await?
    {
        return Err(ApiError::conflict(
            "merchant_exists",
            format!("merchant {} exists already", new.id),
        ));
    }
    reload(&app, &new.id).await?;
    let row = merchant_row(&app, &new.id).await?;
    Ok((StatusCode::CREATED, Json(view(&app, row).await?)))
}

/// Shows one merchant.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}", tag = "merchants",
    params(("id" = String, Path)),
    responses((status = 200, body = MerchantView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show_merchant(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<Json<MerchantView>> {
    who.may(&id)?;
    let row = merchant_row(&app, &id).await?;
    Ok(Json(view(&app, row).await?))
}

/// Changes a merchant's settings or disables (enables) it.
#[utoipa::path(patch, path = "/admin/v1/merchants/{id}", tag = "merchants",
    params(("id" = String, Path)), request_body = MerchantChange,
    responses((status = 200, body = MerchantView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_merchant(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    body: Result<Json<MerchantChange>, axum::extract::rejection::JsonRejection>,
) -> Answer<Json<MerchantView>> {
    who.may(&id)?;
    let Json(change) = body?;
    let secrets_given = change
        .settings
        .as_ref()
        .is_some_and(|value| value.get("secrets").is_some());
    let settings = match change.settings {
        Some(value) => Some(settings_from(&app, Some(value))?),
        None => None,
    };
    let _change = app.registry().changes().lock().await;
    let row = merchant_row(&app, &id).await?;
    if let Some(settings) = &settings {
        grants_unchanged(&who, settings, &row.settings_json)?;
    }
    let detail = serde_json::json!({
        "settings": settings.is_some(),
        "disabled": change.disabled,
    });
    let updated = MerchantRow {
        settings_json: match settings {
            Some(settings) => {
                stored_settings(&app, settings, secrets_given, Some(&row.settings_json))
            }
            None => row.settings_json.clone(),
        },
        disabled: change.disabled.unwrap_or(row.disabled),
        updated_at: now_ms(),
        ..row
    };
    let audit = audit_entry(&who, Some(&id), "merchant.update", detail);
    if !app
        .registry()
        .store()
        .update_merchant(updated, audit)
        .await?
    {
        return Err(ApiError::not_found(format!("no merchant {id}")));
    }
    reload(&app, &id).await?;
    let row = merchant_row(&app, &id).await?;
    Ok(Json(view(&app, row).await?))
}

/// Adds an access key (for rotation: both keys verify until one retires).
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/keys", tag = "keys",
    params(("id" = String, Path)), request_body = NewKey,
    responses((status = 201, body = KeyView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_key(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    body: Result<Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> Answer<(StatusCode, Json<KeyView>)> {
    who.may(&id)?;
    let Json(new) = body?;
    let key = valid_key(&new.access_key)?;
    let _change = app.registry().changes().lock().await;
    merchant_row(&app, &id).await?;
    let row = app.registry().seal_key(&id, &key, now_ms());
    let key_id = row.key_id.clone();
    let audit = audit_entry(
        &who,
        Some(&id),
        "key.add",
        serde_json::json!({ "key_id": key_id }),
    );
    if !app.registry().store().add_key(row, audit).await? {
        return Err(ApiError::conflict(
            "key_exists",
            "the merchant has this key already",
        ));
    }
    reload(&app, &id).await?;
    Ok((StatusCode::CREATED, Json(KeyView { key_id })))
}

/// Retires an access key; the last live key cannot be retired.
#[utoipa::path(delete, path = "/admin/v1/merchants/{id}/keys/{key_id}", tag = "keys",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn retire_key(
    State(app): State<Arc<App>>,
    who: Principal,
    Path((id, key)): Path<(String, String)>,
) -> Answer<StatusCode> {
    who.may(&id)?;
    let _change = app.registry().changes().lock().await;
    let live: Vec<String> = app
        .registry()
        .store()
        .keys(&id)
        .await?
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.key_id)
        .collect();
    if !live.contains(&key) {
        return Err(ApiError::not_found(format!(
            "no live key {key} of merchant {id}"
        )));
    }
    if live.len() == 1 {
        return Err(ApiError::conflict(
            "last_key",
            "the last live key cannot be retired: add its successor first",
        ));
    }
    let audit = audit_entry(
        &who,
        Some(&id),
        "key.retire",
        serde_json::json!({ "key_id": key }),
    );
    app.registry().store().retire_key(&id, &key, audit).await?;
    reload(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn version_view(row: VersionRow, active: Option<i64>) -> VersionView {
    VersionView {
        active: active == Some(row.version),
        version: row.version,
        sha256: row.sha256,
        size: row.size,
        contract_version: row.contract_version,
        uploaded_at: row.uploaded_at,
        uploaded_by: row.uploaded_by,
    }
}

/// Lists a merchant's plugin versions and which one is active.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/plugins", tag = "plugins",
    params(("id" = String, Path)),
    responses((status = 200, body = PluginsView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn list_plugins(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<Json<PluginsView>> {
    who.may(&id)?;
    let row = merchant_row(&app, &id).await?;
    let versions = app.registry().store().versions(&id).await?;
    Ok(Json(PluginsView {
        active_version: row.active_version,
        previous_version: row.previous_version,
        versions: versions
            .into_iter()
            .map(|v| version_view(v, row.active_version))
            .collect(),
    }))
}

/// The stable code of a refused module.
fn load_error_code(error: &LoadError) -> &'static str {
    match error {
        LoadError::TooLarge { .. } => "plugin_too_large",
        LoadError::NotWasm => "not_wasm",
        LoadError::CoreModule => "core_module",
        LoadError::Invalid(_) => "invalid_component",
        LoadError::WrongWorld { .. } => "wrong_world",
        LoadError::UnsupportedVersion { .. } => "unsupported_contract_version",
        LoadError::ForbiddenImports(_) => "forbidden_imports",
        LoadError::Link(_) => "link_failed",
        LoadError::ExceedsSandbox(_) => "exceeds_sandbox",
        LoadError::Source(_) => "unreadable",
        LoadError::NeedsOutboundGrant { .. } => "needs_outbound_grant",
    }
}

/// Uploads a plugin component (the request body, `application/wasm`):
/// validated and compiled before it is kept; `?activate=true` activates it.
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/plugins", tag = "plugins",
    params(("id" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = VersionView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn upload_plugin(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<(StatusCode, Json<VersionView>)> {
    who.may(&id)?;
    let limit = app.admin_api.max_plugin_bytes;
    let wasm = body.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "plugin_too_large",
            format!("the component is larger than the {limit}-byte limit"),
        )
    })?;
    let row = merchant_row(&app, &id).await?;
    let settings: MerchantSettings = serde_json::from_str(&row.settings_json).unwrap_or_default();
    let own_limit = settings.max_plugin_mib.saturating_mul(1 << 20);
    if wasm.len() as u64 > own_limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "plugin_too_large",
            format!(
                "the component is {} bytes; merchant {id} may upload at most {} MiB \
                 (its max_plugin_mib, which the operator sets)",
                wasm.len(),
                settings.max_plugin_mib
            ),
        ));
    }
    let report = validate(&app, &id, wasm.clone()).await?;
    let sha256 = sha256_hex(&wasm);
    let audit = audit_entry(
        &who,
        Some(&id),
        "plugin.upload",
        serde_json::json!({ "sha256": sha256, "size": wasm.len() }),
    );
    let new = NewVersion {
        merchant_id: id.clone(),
        sha256,
        bytes: wasm.to_vec(),
        contract_version: report.contract_version,
        uploaded_by: who.actor(),
    };
    // Numbered under the change lock; activation takes it itself.
    let row = {
        let _change = app.registry().changes().lock().await;
        app.registry().store().add_version(new, audit).await?
    };
    let mut active = None;
    if query.activate {
        active = Some(
            activate(&app, &who, &id, Activation::Version(row.version))
                .await?
                .active_version,
        );
    }
    Ok((StatusCode::CREATED, Json(version_view(row, active))))
}

/// Validates and compiles `wasm` off the request path, one upload at a
/// time, within the compile limit; then makes a smoke call.
async fn validate(
    app: &Arc<App>,
    merchant: &str,
    wasm: Bytes,
) -> Answer<gateway_sandbox::ComponentReport> {
    let state = &app.admin_api;
    let _permit = state
        .compiles
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the compile queue is closed"))?;
    let runtime = app.registry().runtime().clone();
    let compile = tokio::task::spawn_blocking(move || runtime.load(&wasm));
    let plugin = match tokio::time::timeout(state.compile_limit, compile).await {
        Ok(Ok(Ok(plugin))) => Ok(plugin),
        Ok(Ok(Err(error))) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            load_error_code(&error),
            error.to_string(),
        )),
        Ok(Err(join)) => Err(ApiError::internal(join)),
        Err(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "compile_timeout",
            format!(
                "the component did not compile within {} s",
                state.compile_limit.as_secs()
            ),
        )),
    }?;
    smoke_call(app, merchant, &plugin).await?;
    Ok(plugin.report().clone())
}

/// Runs a test-mode `create` (the marketplace's test flag set) with the
/// merchant's configuration and limits: a plugin that traps, runs past its
/// deadline or its memory on a plain request is refused. A business refusal
/// is an answer, and passes.
async fn smoke_call(
    app: &Arc<App>,
    merchant: &str,
    plugin: &Arc<gateway_sandbox::LoadedPlugin>,
) -> Answer<()> {
    let Some(served) = app.merchants().get(merchant) else {
        return Err(ApiError::not_found(format!("no merchant {merchant}")));
    };
    let granted = served.context.egress.is_some();
    if let Err(error) = plugin.report().check_grants(merchant, granted) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            load_error_code(&error),
            error.to_string(),
        ));
    }
    let fields = serde_json::json!({ "order_id": "GATEWAY-UPLOAD-SMOKE-TEST" });
    let request = crate::request_json::build(Operation::Create, merchant, fields, true)
        .map_err(ApiError::internal)?;
    let invocation = app
        .registry()
        .runtime()
        .invoke(plugin, &served.context, &request)
        .await;
    match invocation.outcome {
        Outcome::Answered(_) | Outcome::Declined(_) => Ok(()),
        // The gateway was busy, not the plugin at fault.
        Outcome::Failed(
            failure @ (CallError::Overloaded { .. }
            | CallError::MerchantBusy { .. }
            | CallError::MemoryBudget { .. }),
        ) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("the smoke call could not run now ({failure}); upload again"),
        )),
        // The merchant's own plugin: its trap detail is theirs to see.
        Outcome::Failed(failure) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "smoke_call_failed",
            format!("a test-mode create call (order GATEWAY-UPLOAD-SMOKE-TEST) failed: {failure}"),
        )),
    }
}

/// Shows one version.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/plugins/{version}", tag = "plugins",
    params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show_plugin(
    State(app): State<Arc<App>>,
    who: Principal,
    Path((id, version)): Path<(String, i64)>,
) -> Answer<Json<VersionView>> {
    who.may(&id)?;
    let row = merchant_row(&app, &id).await?;
    let found = app
        .registry()
        .store()
        .versions(&id)
        .await?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ApiError::not_found(format!("merchant {id} has no version {version}")))?;
    Ok(Json(version_view(found, row.active_version)))
}

/// Deletes a version that is neither active nor the rollback target.
#[utoipa::path(delete, path = "/admin/v1/merchants/{id}/plugins/{version}", tag = "plugins",
    params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn delete_plugin(
    State(app): State<Arc<App>>,
    who: Principal,
    Path((id, version)): Path<(String, i64)>,
) -> Answer<StatusCode> {
    who.may(&id)?;
    let _change = app.registry().changes().lock().await;
    let audit = audit_entry(
        &who,
        Some(&id),
        "plugin.delete",
        serde_json::json!({ "version": version }),
    );
    match app
        .registry()
        .store()
        .delete_version(&id, version, audit)
        .await?
    {
        Deleted::Done => Ok(StatusCode::NO_CONTENT),
        Deleted::NotFound => Err(ApiError::not_found(format!(
            "merchant {id} has no version {version}"
        ))),
        Deleted::InUse => Err(ApiError::conflict(
            "version_in_use",
            format!("version {version} is active or the rollback target; activate another first"),
        )),
    }
}

async fn activate(
    app: &Arc<App>,
    who: &Principal,
    id: &str,
    which: Activation,
) -> Answer<ActivationView> {
    let _change = app.registry().changes().lock().await;
    let action = match which {
        Activation::Version(_) => "plugin.activate",
        Activation::Rollback => "plugin.rollback",
    };
    let detail = match which {
        Activation::Version(version) => serde_json::json!({ "version": version }),
        Activation::Rollback => serde_json::json!({}),
    };
    let audit = audit_entry(who, Some(id), action, detail);
    match app.registry().store().activate(id, which, audit).await? {
        Activated::Done { active, previous } => {
            reload(app, id).await?;
            Ok(ActivationView {
                active_version: active,
                previous_version: previous,
            })
        }
        Activated::NoSuchMerchant => Err(ApiError::not_found(format!("no merchant {id}"))),
        Activated::NoSuchVersion => Err(ApiError::not_found(format!(
            "merchant {id} has no such version"
        ))),
        Activated::NothingToRollBackTo => Err(ApiError::conflict(
            "nothing_to_roll_back_to",
            "no version was active before the current one",
        )),
    }
}

/// Activates a version: callbacks that started before finish on the old
/// one, the next ones run on this one.
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/plugins/{version}/activate",
    tag = "plugins", params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = ActivationView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn activate_plugin(
    State(app): State<Arc<App>>,
    who: Principal,
    Path((id, version)): Path<(String, i64)>,
) -> Answer<Json<ActivationView>> {
    who.may(&id)?;
    Ok(Json(
        activate(&app, &who, &id, Activation::Version(version)).await?,
    ))
}

/// Rolls back to the version active before the current one.
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/rollback", tag = "plugins",
    params(("id" = String, Path)),
    responses((status = 200, body = ActivationView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback_plugin(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<Json<ActivationView>> {
    who.may(&id)?;
    Ok(Json(activate(&app, &who, &id, Activation::Rollback).await?))
}

/// Makes a merchant token (operator only); the token is shown once.
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/tokens", tag = "tokens",
    params(("id" = String, Path)),
    responses((status = 201, body = NewTokenView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn create_token(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<(StatusCode, Json<NewTokenView>)> {
    who.operator_only()?;
    merchant_row(&app, &id).await?;
    let token = format!("gwt_{}", hex::encode(rand::random::<[u8; 32]>()));
    let token_id = format!("tok_{}", hex::encode(rand::random::<[u8; 6]>()));
    let row = TokenRow {
        token_id: token_id.clone(),
        merchant_id: Some(id.clone()),
        created_at: now_ms(),
        created_by: who.actor(),
        revoked_at: None,
    };
    let audit = audit_entry(
        &who,
        Some(&id),
        "token.create",
        serde_json::json!({ "token_id": token_id }),
    );
    let hash = hex::encode(super::auth::digest(&token));
    app.registry().store().add_token(row, hash, audit).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenView {
            token_id,
            merchant_id: Some(id),
            token,
        }),
    ))
}

/// Lists admin tokens (operator only; never their secrets).
#[utoipa::path(get, path = "/admin/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(app): State<Arc<App>>,
    who: Principal,
) -> Answer<Json<Vec<TokenView>>> {
    who.operator_only()?;
    let rows = app.registry().store().tokens(None).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| TokenView {
                token_id: row.token_id,
                merchant_id: row.merchant_id,
                created_at: row.created_at,
                created_by: row.created_by,
                revoked_at: row.revoked_at,
            })
            .collect(),
    ))
}

/// Revokes a token (operator only): it stops working at once.
#[utoipa::path(delete, path = "/admin/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(token_id): Path<String>,
) -> Answer<StatusCode> {
    who.operator_only()?;
    let merchant = app
        .registry()
        .store()
        .tokens(None)
        .await?
        .into_iter()
        .find(|t| t.token_id == token_id)
        .and_then(|t| t.merchant_id);
    let audit = audit_entry(
        &who,
        merchant.as_deref(),
        "token.revoke",
        serde_json::json!({ "token_id": token_id }),
    );
    if app
        .registry()
        .store()
        .revoke_token(&token_id, audit)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token {token_id}")))
    }
}

fn audit_views(rows: Vec<AuditRow>) -> Vec<AuditView> {
    rows.into_iter()
        .map(|row| AuditView {
            seq: row.seq,
            at: row.at,
            actor: row.actor,
            merchant_id: row.merchant_id,
            action: row.action,
            detail: serde_json::from_str(&row.detail_json).unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

fn audit_limit(query: &AuditQuery) -> u32 {
    query.limit.unwrap_or(100).clamp(1, 1000)
}

/// A merchant's audit log, newest first.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/audit", tag = "audit",
    params(("id" = String, Path), AuditQuery),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = ErrorBody)))]
pub async fn merchant_audit(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Answer<Json<Vec<AuditView>>> {
    who.may(&id)?;
    let rows = app
        .registry()
        .store()
        .audit(Some(&id), audit_limit(&query))
        .await?;
    Ok(Json(audit_views(rows)))
}

/// The whole audit log, newest first (operator only).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(app): State<Arc<App>>,
    who: Principal,
    Query(query): Query<AuditQuery>,
) -> Answer<Json<Vec<AuditView>>> {
    who.operator_only()?;
    let rows = app
        .registry()
        .store()
        .audit(None, audit_limit(&query))
        .await?;
    Ok(Json(audit_views(rows)))
}
