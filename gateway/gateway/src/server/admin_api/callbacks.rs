//! The merchant's view of its callbacks through the admin API: search the
//! callback log, read one record in full, re-drive a failed or parked
//! operation after a fix, list parked operations, and a shadow check of an
//! inactive plugin version against the requests the merchant actually
//! received. A merchant token sees and touches its own merchant only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gateway_sandbox::{KeyValue, KvError, KvQuota, KvScope, Outcome};
use gateway_store::{CallbackFilter, CallbackRecord, OperationId, StuckRow};
use koogallery_contract::OperationRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, Principal};
use crate::plugins::PluginRef;
use crate::registry::now_ms;
use crate::server::App;

type Answer<T> = Result<T, ApiError>;

/// What a search wants; every parameter narrows it. Newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    /// A six-digit result code, e.g. `000005`.
    pub result_code: Option<String>,
    /// A wire activity name, e.g. `newInstance`.
    pub activity: Option<String>,
    /// How it was answered: `executed`, `replayed_cache`, `replayed_store`,
    /// `coalesced`, `in_progress`, `retryable`, `read`, `refused`, …
    pub path: Option<String>,
    /// Records at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Records before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// The cursor: records older than this `seq` (the previous page's `next`).
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// One callback as the log keeps it (the list shows it without the plugin's
/// log records and the request; one record in full shows them).
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackView {
    pub seq: i64,
    pub at_ms: i64,
    pub merchant_id: String,
    pub request_id: String,
    pub generation: String,
    pub activity: String,
    pub order_id: Option<String>,
    pub order_line_id: Option<String>,
    pub instance_id: Option<String>,
    pub result_code: String,
    pub result_msg: String,
    pub latency_ms: f64,
    pub path: String,
    /// Why it was refused, or why the plugin produced no answer.
    pub reason: Option<String>,
    pub attempt: Option<i64>,
    pub plugin_version: Option<i64>,
    pub plugin_sha256: Option<String>,
    /// The operation it answered for (`redrive` takes it).
    pub idempotency_key: Option<String>,
    pub test: bool,
    /// The plugin's own log records (bounded), in full views only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub plugin_logs: Option<serde_json::Value>,
    /// The request, the buyer's personal data masked, in full views only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub request: Option<serde_json::Value>,
}

/// A page of records and the cursor of the next one.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackPage {
    pub records: Vec<CallbackView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<i64>,
}

fn view(record: CallbackRecord, full: bool) -> CallbackView {
    let json = |text: Option<String>| {
        text.filter(|_| full)
            .and_then(|text| serde_json::from_str(&text).ok())
    };
    CallbackView {
        plugin_logs: json(record.plugin_logs_json),
        request: json(record.request_json),
        seq: record.seq,
        at_ms: record.at_ms,
        merchant_id: record.merchant_id,
        request_id: record.request_id,
        generation: record.generation,
        activity: record.activity,
        order_id: record.order_id,
        order_line_id: record.order_line_id,
        instance_id: record.instance_id,
        result_code: record.result_code,
        result_msg: record.result_msg,
        latency_ms: record.latency_us as f64 / 1000.0,
        path: record.path,
        reason: record.reason,
        attempt: record.attempt,
        plugin_version: record.plugin_version,
        plugin_sha256: record.plugin_sha256,
        idempotency_key: record.idempotency_key,
        test: record.test,
    }
}

/// A merchant's callbacks, newest first.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/callbacks", tag = "callbacks",
    params(("id" = String, Path), CallbackQuery),
    responses((status = 200, body = CallbackPage), (status = 403, body = ErrorBody)))]
pub async fn list_callbacks(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Answer<Json<CallbackPage>> {
    who.may(&id)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let filter = CallbackFilter {
        merchant_id: Some(id),
        order_id: query.order_id,
        instance_id: query.instance_id,
        result_code: query.result_code,
        activity: query.activity,
        path: query.path,
        since_ms: query.since_ms,
        until_ms: query.until_ms,
        before_seq: query.before,
        limit,
    };
    let records = app.registry().store().callbacks(&filter).await?;
    let next = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let records = records.into_iter().map(|r| view(r, false)).collect();
    Ok(Json(CallbackPage { records, next }))
}

/// One callback in full: the plugin's log records and the masked request.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/callbacks/{seq}", tag = "callbacks",
    params(("id" = String, Path), ("seq" = i64, Path)),
    responses((status = 200, body = CallbackView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show_callback(
    State(app): State<Arc<App>>,
    who: Principal,
    Path((id, seq)): Path<(String, i64)>,
) -> Answer<Json<CallbackView>> {
    who.may(&id)?;
    match app.registry().store().callback(seq).await? {
        Some(record) if record.merchant_id == id => Ok(Json(view(record, true))),
        _ => Err(ApiError::not_found(format!(
            "no callback {seq} of merchant {id}"
        ))),
    }
}

/// A merchant's health at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackReport {
    pub merchant_id: String,
    /// Callbacks logged in the last hour, and those not answered 000000.
    pub last_hour: u64,
    pub last_hour_failed: u64,
    /// `last_hour_failed / last_hour` (0 without callbacks).
    pub failure_rate: f64,
    /// When its oldest operation that failed transiently or was parked,
    /// and has not succeeded since, was recorded (Unix ms), and its age.
    pub oldest_unresolved_failure_ms: Option<i64>,
    pub oldest_unresolved_failure_age_secs: Option<f64>,
    pub parked: usize,
}

/// The rate of non-000000 answers in the last hour and the oldest
/// unresolved failure: what to look at before the marketplace's 3-hour
/// retry window closes.
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/report", tag = "callbacks",
    params(("id" = String, Path)),
    responses((status = 200, body = CallbackReport), (status = 403, body = ErrorBody)))]
pub async fn report(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<Json<CallbackReport>> {
    who.may(&id)?;
    let store = app.registry().store();
    let now = now_ms();
    let (last_hour, last_hour_failed) = store.callback_counts(&id, now - 3_600_000).await?;
    let oldest = store
        .oldest_failures()
        .await?
        .into_iter()
        .find(|(merchant, _)| *merchant == id)
        .map(|(_, since)| since);
    let parked = store.parked(&id, 1000).await?.len();
    Ok(Json(CallbackReport {
        merchant_id: id,
        last_hour,
        last_hour_failed,
        failure_rate: if last_hour == 0 {
            0.0
        } else {
            last_hour_failed as f64 / last_hour as f64
        },
        oldest_unresolved_failure_ms: oldest,
        oldest_unresolved_failure_age_secs: oldest
            .map(|since| (now - since).max(0) as f64 / 1000.0),
        parked,
    }))
}

/// Which operation to re-drive.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Redrive {
    /// The operation's idempotency key (a callback record's `idempotency_key`).
    pub idempotency_key: String,
    /// Re-run an operation that already has a final answer (success or a
    /// business refusal). Audited.
    #[serde(default)]
    pub force: bool,
}

/// How a re-drive ended: the operation's stored answer now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redriven {
    pub idempotency_key: String,
    /// `succeeded`, `failed_final`, `failed_retryable`, `in_flight`, `parked`.
    pub status: String,
    pub attempt: u32,
    pub instance_id: Option<String>,
    /// The stored answer's code and message (what the next retry receives).
    pub result_code: Option<String>,
    pub result_msg: Option<String>,
}

/// Re-runs a failed or parked operation with its idempotency key and
/// instance id and a higher attempt, on the merchant's active plugin
/// version; the result becomes the answer the marketplace's next retry
/// receives.
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/operations/redrive", tag = "callbacks",
    params(("id" = String, Path)), request_body = Redrive,
    responses((status = 200, body = Redriven), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redrive(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
    body: Result<Json<Redrive>, axum::extract::rejection::JsonRejection>,
) -> Answer<Json<Redriven>> {
    who.may(&id)?;
    let Json(ask) = body?;
    let store = app.registry().store();
    let op_id = OperationId {
        merchant_id: id.clone(),
        idempotency_key: ask.idempotency_key.clone(),
    };
    let Some(record) = store.load(&op_id).await? else {
        return Err(ApiError::not_found(format!(
            "no operation {} of merchant {id}",
            ask.idempotency_key
        )));
    };
    let mut action = "operation.redrive";
    if record.status.is_final() {
        if !ask.force {
            return Err(ApiError::conflict(
                "final_answer",
                format!(
                    "operation {} already has a final answer ({}); pass force to run it again",
                    ask.idempotency_key,
                    record.status.as_str()
                ),
            ));
        }
        if !store.reopen(&op_id, record.attempt, now_ms()).await? {
            return Err(ApiError::conflict(
                "changed",
                "the operation changed meanwhile; look again",
            ));
        }
        app.operations().forget(&op_id).await;
        action = "operation.redrive.force";
    }
    let detail = serde_json::json!({
        "idempotency_key": ask.idempotency_key,
        "attempt": record.attempt,
        "status": record.status.as_str(),
    });
    let audit = super::routes::audit_entry(&who, Some(&id), action, detail);
    store.append_audit(audit).await?;
    let record = store
        .load(&op_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the operation was reaped meanwhile"))?;
    app.operations()
        .redrive(&record)
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "unreadable", e.to_string()))?;
    let now = store
        .load(&op_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the operation was reaped meanwhile"))?;
    Ok(Json(redriven(&now)))
}

fn redriven(record: &gateway_store::OperationRecord) -> Redriven {
    let stored = record
        .result_json
        .as_deref()
        .and_then(|json| crate::operations::envelope::read_answer(json).ok());
    Redriven {
        idempotency_key: record.id.idempotency_key.clone(),
        status: record.status.as_str().to_string(),
        attempt: record.attempt,
        instance_id: record.instance_id.clone(),
        result_code: stored.as_ref().map(|a| a.result_code.code().to_string()),
        result_msg: stored.map(|a| a.result_msg),
    }
}

/// A parked operation: the completer gave up on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedView {
    pub idempotency_key: String,
    pub kind: String,
    pub instance_id: Option<String>,
    pub attempt: u32,
    pub updated_at: i64,
}

/// The merchant's parked operations, most recent first (resume one with
/// `redrive`).
#[utoipa::path(get, path = "/admin/v1/merchants/{id}/operations/parked", tag = "callbacks",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<ParkedView>), (status = 403, body = ErrorBody)))]
pub async fn list_parked(
    State(app): State<Arc<App>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Vec<ParkedView>>> {
    who.may(&id)?;
    let rows = app.registry().store().parked(&id, 1000).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| match row {
                StuckRow::Record(r) => ParkedView {
                    idempotency_key: r.id.idempotency_key,
                    kind: r.kind,
                    instance_id: r.instance_id,
                    attempt: r.attempt,
                    updated_at: r.updated_at,
                },
                StuckRow::Unreadable { id, .. } => ParkedView {
                    idempotency_key: id.idempotency_key,
                    kind: "unreadable".into(),
                    instance_id: None,
                    attempt: 0,
                    updated_at: 0,
                },
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ShadowQuery {
    /// How many of the latest recorded requests to replay (default 200, at most 1000).
    pub count: Option<u32>,
}

/// One replayed request: what the active version answered, what the
/// candidate answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowRow {
    pub seq: i64,
    pub activity: String,
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    pub active_code: String,
    pub active_msg: String,
    pub active_latency_ms: f64,
    pub candidate_code: String,
    pub candidate_msg: String,
    pub candidate_latency_ms: f64,
    pub candidate_peak_memory_bytes: usize,
    /// The code differs, or the message of a refusal.
    pub changed: bool,
    /// A success would become a failure.
    pub regression: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowReport {
    pub version: i64,
    pub compared: usize,
    pub changed: usize,
    pub regressions: usize,
    /// Every compared request, newest first.
    pub rows: Vec<ShadowRow>,
}

/// Replays the merchant's latest recorded requests against plugin version
/// `version` in test mode and compares its answers with what was answered.
/// Nothing live changes: no operation record is written, the key-value
/// store is read but written only in memory for the run.
#[utoipa::path(post, path = "/admin/v1/merchants/{id}/plugins/{version}/shadow", tag = "plugins",
    params(("id" = String, Path), ("version" = i64, Path), ShadowQuery),
    responses((status = 200, body = ShadowReport), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn shadow(
    State(app): State<Arc<App>>,
    who: Principal,
    Path((id, version)): Path<(String, i64)>,
    Query(query): Query<ShadowQuery>,
) -> Answer<Json<ShadowReport>> {
    who.may(&id)?;
    let store = app.registry().store();
    let found = store
        .versions(&id)
        .await?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ApiError::not_found(format!("no version {version} of merchant {id}")))?;
    let served = app
        .merchants()
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no merchant {id}")))?;
    let plugin_ref = PluginRef {
        version,
        sha256: found.sha256.as_str().into(),
        size: usize::try_from(found.size).unwrap_or(usize::MAX),
    };
    let plugin = app
        .registry()
        .plugins()
        .get(&plugin_ref)
        .await
        .map_err(|failure| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_plugin",
                format!("plugin version {version} {failure}"),
            )
        })?;
    let mut context = served.context.clone();
    context.kv = context.kv.map(|live| KvScope {
        quota: live.quota,
        backend: Arc::new(ScratchKv {
            live: live.backend,
            writes: Mutex::default(),
        }),
    });
    let count = query.count.unwrap_or(200).clamp(1, 1000);
    let recorded = recorded_requests(&app, &id, count).await?;
    let mut rows = Vec::with_capacity(recorded.len());
    for (record, request) in recorded {
        let request = in_test_mode(request, record.seq);
        let invocation = app
            .registry()
            .runtime()
            .invoke(&plugin, &context, &request)
            .await;
        let coded = crate::executor::coded_outcome(&invocation.outcome);
        let candidate_msg = match &invocation.outcome {
            Outcome::Failed(error) => error.to_string(),
            _ => coded.message.clone(),
        };
        let candidate_code = coded.code.code().to_string();
        // A success's message is the wire's own; a refusal's says why.
        let changed = candidate_code != record.result_code
            || (candidate_code != "000000" && candidate_msg != record.result_msg);
        rows.push(ShadowRow {
            regression: record.result_code == "000000" && candidate_code != "000000",
            changed,
            seq: record.seq,
            activity: record.activity,
            order_id: record.order_id,
            instance_id: record.instance_id,
            active_code: record.result_code,
            active_msg: record.result_msg,
            active_latency_ms: record.latency_us as f64 / 1000.0,
            candidate_code,
            candidate_msg,
            candidate_latency_ms: invocation.duration.as_secs_f64() * 1000.0,
            candidate_peak_memory_bytes: invocation.peak_memory_bytes,
        });
    }
    Ok(Json(ShadowReport {
        version,
        compared: rows.len(),
        changed: rows.iter().filter(|r| r.changed).count(),
        regressions: rows.iter().filter(|r| r.regression).count(),
        rows,
    }))
}

/// The merchant's latest `count` requests that ran its plugin (executed
/// operations and reads), with the request each carried.
async fn recorded_requests(
    app: &App,
    merchant: &str,
    count: u32,
) -> Answer<Vec<(CallbackRecord, OperationRequest)>> {
    let store = app.registry().store();
    let mut found = Vec::new();
    let mut before = None;
    // Pages of the log until `count` re-runnable records (or the end).
    while found.len() < count as usize {
        let filter = CallbackFilter {
            merchant_id: Some(merchant.to_string()),
            before_seq: before,
            limit: 1000,
            ..CallbackFilter::default()
        };
        let page = store.callbacks(&filter).await?;
        let last = page.last().map(|r| r.seq);
        let full = page.len() == 1000;
        for record in page {
            let request = record
                .request_json
                .as_deref()
                .and_then(crate::callback_log::logged_request);
            if let Some(request) = request
                && !record.test
            {
                found.push((record, request));
                if found.len() == count as usize {
                    break;
                }
            }
        }
        if !full {
            break;
        }
        before = last;
    }
    Ok(found)
}

/// The request as a test call (`call.test`), with a request id of its own.
fn in_test_mode(mut request: OperationRequest, seq: i64) -> OperationRequest {
    use OperationRequest as R;
    let call = match &mut request {
        R::Create(r) => &mut r.call,
        R::Query(r) => &mut r.call,
        R::Renew(r) => &mut r.call,
        R::UpdateStatus(r) => &mut r.call,
        R::Release(r) => &mut r.call,
        R::Upgrade(r) => &mut r.call,
        R::ChangeCheck(r) => &mut r.call,
        R::IssueLicense(r) => &mut r.call,
    };
    call.test = true;
    call.request_id = format!("shadow-{seq}");
    request
}

/// The live key-value store, read; writes kept in memory for one run.
struct ScratchKv {
    live: Arc<dyn KeyValue>,
    writes: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

impl ScratchKv {
    fn written(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn write(&self, key: &str, value: Option<Vec<u8>>) {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_string(), value);
    }
}

#[async_trait::async_trait]
impl KeyValue for ScratchKv {
    async fn get(&self, merchant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.written(key) {
            Some(value) => Ok(value),
            None => self.live.get(merchant, key).await,
        }
    }

    async fn set(&self, _: &str, key: &str, value: Vec<u8>, _: &KvQuota) -> Result<(), KvError> {
        self.write(key, Some(value));
        Ok(())
    }

    async fn delete(&self, merchant: &str, key: &str) -> Result<bool, KvError> {
        let existed = self.get(merchant, key).await?.is_some();
        self.write(key, None);
        Ok(existed)
    }

    async fn list_keys(
        &self,
        merchant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        let mut keys = self.live.list_keys(merchant, prefix, after, limit).await?;
        let writes = self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        keys.retain(|key| !matches!(writes.get(key), Some(None)));
        for (key, value) in writes {
            let in_range = key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a);
            if value.is_some() && in_range && !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys.sort();
        keys.truncate(limit as usize);
        Ok(keys)
    }
}
