//! One callback, from raw request to signed answer:
//!
//! 1. read the body (bounded) — too large → 000002;
//! 2. find the merchant (or its decoy) and verify the signature over the raw
//!    bytes — failure → 000001, and nothing else happens;
//! 3. validate the activity's fields → 000002 naming the field;
//! 4. refuse a replayed V2 nonce or V1 token (remembered in the store: by
//!    a recorded operation's claim, in its transaction; before a read's
//!    plugin call) → 000001;
//! 5. a recorded operation goes through the idempotency layer
//!    ([`crate::operations`]: replay, single-flight, claim, plugin, fenced
//!    completion); a read (queryInstance, changeInstanceCheck) runs the
//!    plugin directly. Either way the plugin runs in a spawned task (a
//!    client disconnect never aborts it halfway) and the handler waits at
//!    most for what is left of the answer budget, then answers 000004;
//! 6. serialise, sign the exact bytes (`Body-Sign`), count, log, and queue
//!    the callback's record for the callback log (`crate::callback_log`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use gateway_store as store;
use koogallery_protocol::inbound::ReplayGuard;
use koogallery_protocol::{
    self as protocol, AccessKey, Activity, Answer, AuthError, Callback, FieldError, Generation,
    ParseContext, Rejection, ResultCode, Verified, signing, time,
};

use super::App;
use crate::config::{CreateInFlight, UnknownInstances};
use crate::executor;
use crate::merchants::Merchant;
use crate::metrics::{self, CallbackLabels, LatencyLabels, OperationLabels};
use crate::operations::{AnswerPath, Decision, Pinned, RecordedOperation};

/// What the handler learned, for the answer, the metrics and the log.
struct Handled {
    answer: Answer,
    /// The key that signs the answer.
    signer: Option<AccessKey>,
    generation: Option<Generation>,
    activity: Option<Activity>,
    /// Refused before its signature was known good: anyone can cause it, so
    /// its log lines are throttled (the metrics count every one).
    unauthenticated: bool,
    /// Why it was refused, for the log (never a value from the request).
    reason: Option<String>,
    /// For the callback log: set once the merchant is known and the
    /// request authenticated (unauthenticated traffic is anyone's to send,
    /// so it is counted, never kept in a merchant's log).
    logged: Option<Logged>,
}

/// What the callback log needs beyond the answer.
struct Logged {
    request: Option<koogallery_contract::OperationRequest>,
    /// How it was answered (`AnswerPath::label`, `read`, `refused`).
    path: &'static str,
    /// The operation record it answered for.
    idempotency_key: Option<String>,
}

/// An authenticated callback's answer, and how it was reached.
struct Answered {
    answer: Answer,
    path: &'static str,
    idempotency_key: Option<String>,
}

impl Handled {
    fn refused(answer: Answer, signer: Option<AccessKey>, generation: Option<Generation>) -> Self {
        Handled {
            answer,
            signer,
            generation,
            activity: None,
            unauthenticated: false,
            reason: None,
            logged: None,
        }
    }

    fn unauthenticated(self, reason: impl std::fmt::Display) -> Self {
        Handled {
            unauthenticated: true,
            reason: Some(reason.to_string()),
            ..self
        }
    }
}

/// `GET|POST /callbacks/{merchant_id}`. Whatever arrives there gets a
/// contract answer (HTTP 200, JSON, signed): an id that is not valid UTF-8
/// is an unknown merchant, another method is an invalid request.
pub(super) async fn callback(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let merchant_id = path.map(|Path(id)| id).unwrap_or_default();
    let started = Instant::now();
    let request_id = new_request_id();
    let merchant = app.merchants.get(&merchant_id);
    let merchant_label = merchant.as_ref().map_or("unknown", |m| m.id.as_str());
    let metric_label = match &merchant {
        Some(m) => app.metrics.merchant(&m.id),
        None => "unknown",
    }
    .to_string();
    let span =
        tracing::info_span!("callback", request_id = %request_id, merchant = %merchant_label);
    let in_flight = app.metrics.in_flight_guard();
    let deadline = tokio::time::Instant::from_std(started) + app.answer_budget;
    let incoming = Incoming {
        merchant_id: &merchant_id,
        merchant: merchant.as_ref(),
        method: &method,
        uri: &uri,
        request_id: &request_id,
        deadline,
    };
    let handled = handle(&app, incoming, body).instrument(span.clone()).await;
    drop(in_flight);

    let bytes = handled.answer.to_bytes();
    let activity = handled.activity.map_or("unknown", Activity::wire_name);
    let generation = handled.generation.map_or("unknown", Generation::label);
    let elapsed = started.elapsed();
    app.metrics
        .callbacks
        .get_or_create(&CallbackLabels {
            merchant: metric_label.clone(),
            generation,
            activity,
            result_code: handled.answer.result_code.code(),
        })
        .inc();
    app.metrics
        .latency
        .get_or_create(&LatencyLabels {
            merchant: metric_label,
            activity,
        })
        .observe(elapsed.as_secs_f64());
    let suppressed = if handled.unauthenticated {
        app.refusals.admit()
    } else {
        Some(0)
    };
    if let Some(suppressed) = suppressed {
        let replayed = handled.logged.as_ref().is_some_and(|l| is_replay(l.path));
        span.in_scope(|| {
            // A replay changed nothing and is counted and kept in the
            // callback log: its line is for debugging only (at tens of
            // thousands a second, formatting it was about a tenth of the replay
            // path's CPU).
            macro_rules! answered {
                ($level:ident) => {
                    tracing::$level!(
                        generation,
                        activity,
                        result_code = handled.answer.result_code.code(),
                        duration_ms = elapsed.as_secs_f64() * 1000.0,
                        refused = handled.reason.as_deref(),
                        suppressed,
                        "callback answered"
                    )
                };
            }
            if replayed {
                answered!(debug);
            } else {
                answered!(info);
            }
        });
    }
    if let (Some(merchant), Some(logged)) = (&merchant, handled.logged) {
        let facts = Facts {
            merchant: &merchant.id,
            request_id: &request_id,
            generation,
            activity,
            elapsed,
        };
        log_callback(&app, facts, &handled.answer, handled.reason, logged);
    }
    respond(bytes, handled.signer.as_ref(), &request_id)
}

/// Whether a callback was answered from an earlier execution's result
/// (nothing ran, nothing was written but its callback log record).
fn is_replay(path: &str) -> bool {
    [
        AnswerPath::ReplayedFromCache,
        AnswerPath::ReplayedFromStore,
        AnswerPath::Coalesced,
    ]
    .iter()
    .any(|replay| replay.label() == path)
}

/// What every callback log record says about its callback.
struct Facts<'a> {
    merchant: &'a str,
    request_id: &'a str,
    generation: &'static str,
    activity: &'static str,
    elapsed: std::time::Duration,
}

/// Queues the callback's record for the callback log (never waits).
fn log_callback(
    app: &App,
    facts: Facts<'_>,
    answer: &Answer,
    reason: Option<String>,
    logged: Logged,
) {
    let record = gateway_store::CallbackRecord {
        at_ms: time::now_ms(),
        merchant_id: facts.merchant.to_string(),
        request_id: facts.request_id.to_string(),
        generation: facts.generation.to_string(),
        activity: facts.activity.to_string(),
        instance_id: answer.instance_id.clone(),
        result_code: answer.result_code.code().to_string(),
        result_msg: answer.result_msg.clone(),
        latency_us: i64::try_from(facts.elapsed.as_micros()).unwrap_or(i64::MAX),
        path: logged.path.to_string(),
        reason,
        idempotency_key: logged.idempotency_key,
        ..Default::default()
    };
    // Only what ran the plugin left a trace, and needs its request kept: a
    // replay carries the same request again.
    let ran_plugin = matches!(logged.path, "executed" | "retryable" | "read");
    let record = if ran_plugin {
        with_trace(record, app.callback_log.traces().take(facts.request_id))
    } else {
        record
    };
    let keep_request = ran_plugin;
    app.callback_log
        .record(record, logged.request, keep_request);
}

/// What the plugin call of this callback left (attempt, version, logs).
fn with_trace(
    mut record: gateway_store::CallbackRecord,
    trace: Option<Arc<crate::callback_log::CallTrace>>,
) -> gateway_store::CallbackRecord {
    if let Some(trace) = trace {
        record.attempt = Some(i64::from(trace.attempt));
        record.plugin_version = trace.plugin_version;
        record.plugin_sha256 = trace.plugin_sha256.as_deref().map(str::to_string);
        record.plugin_logs_json = trace.plugin_logs_json.clone();
        if record.reason.is_none() {
            record.reason = trace.failure.clone();
        }
    }
    record
}

/// The request line and who it is for.
struct Incoming<'a> {
    merchant_id: &'a str,
    merchant: Option<&'a Arc<Merchant>>,
    method: &'a Method,
    uri: &'a Uri,
    request_id: &'a str,
    /// When the answer budget runs out.
    deadline: tokio::time::Instant,
}

async fn handle(app: &Arc<App>, incoming: Incoming<'_>, body: Body) -> Handled {
    let Incoming {
        merchant_id,
        merchant,
        method,
        uri,
        request_id,
        deadline,
    } = incoming;
    let decoy;
    let keys: &[AccessKey] = match merchant {
        Some(m) => &m.keys,
        None => {
            decoy = [app.merchants.decoy_key(merchant_id)];
            &decoy
        }
    };
    let signs = merchant.is_none_or(|m| m.sign_responses);
    let first_key = keys.first().filter(|_| signs).cloned();
    if method != Method::GET && method != Method::POST {
        let message = format!("method {method} is not a callback (GET for V1, POST for V2)");
        return refuse_early(message, first_key);
    }
    let read = tokio::time::timeout_at(deadline, axum::body::to_bytes(body, app.max_body_bytes));
    let body = match read.await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            let message = format!("request body larger than {} bytes", app.max_body_bytes);
            return refuse_early(message, first_key);
        }
        Err(_) => {
            let message = "request body not received within the answer budget".to_string();
            return refuse_early(message, first_key);
        }
    };
    let raw_query = uri.query().unwrap_or("");
    let is_get = method == Method::GET;
    let encrypt_type = merchant.map(|m| m.encrypt_type).unwrap_or_default();
    let ctx = ParseContext {
        merchant: merchant_id,
        request_id,
        access_key: "",
        encrypt_type,
    };
    let generation = protocol::detect_generation(is_get, raw_query);
    if let Some(merchant) = merchant.filter(|m| !m.generations.contains(&generation)) {
        return refuse_generation(app, merchant, generation, first_key);
    }
    let read = protocol::read_callback(
        generation,
        raw_query,
        &body,
        keys,
        time::now_ms(),
        &app.policy,
        &ctx,
    );
    let (verified, callback) = match read {
        Ok(read) => read,
        Err(rejection) => return refuse(app, merchant, rejection, first_key, generation),
    };
    let signer = signs.then(|| keys[verified.key_index].clone());
    // The decoy never verifies, so a verified callback has a real merchant.
    let Some(merchant) = merchant else {
        return refuse(app, None, AuthError::Mismatch.into(), signer, generation);
    };
    for warning in &callback.warnings {
        tracing::warn!(activity = callback.activity.wire_name(), "{warning}");
    }
    let key = &keys[verified.key_index];
    match answer_callback(app, merchant, &verified, &callback, key, deadline).await {
        Ok(answered) => Handled {
            answer: answered.answer,
            signer,
            generation: Some(callback.generation),
            activity: Some(callback.activity),
            unauthenticated: false,
            reason: None,
            logged: Some(Logged {
                request: Some(callback.request),
                path: answered.path,
                idempotency_key: answered.idempotency_key,
            }),
        },
        Err(rejection) => refuse(app, Some(merchant), rejection, signer, generation),
    }
}

/// A recorded operation through the idempotency layer, its replay guard
/// remembered by its claim (unless a final answer can be replayed without
/// writing anything); a read directly, after its guard is remembered.
async fn answer_callback(
    app: &Arc<App>,
    merchant: &Arc<Merchant>,
    verified: &Verified,
    callback: &Callback,
    key: &AccessKey,
    deadline: tokio::time::Instant,
) -> Result<Answered, Rejection> {
    let imports = merchant.unknown_instances == UnknownInstances::Import;
    let op = RecordedOperation::from_callback(
        &merchant.id,
        callback,
        verified.signed_at_ms,
        imports,
        Some(key.clone()),
    )
    .map(|op| RecordedOperation {
        // Its plugin runs on the merchant its keys verified.
        pinned: Some(merchant.clone() as Pinned),
        ..op
    });
    // A final answer this process holds is the same whoever asks again: it
    // needs no write, not even the replay guard's.
    if let Some(op) = &op
        && let Some((decision, path)) = app.operations.cached(op).await
    {
        return Ok(decided(app, merchant, op, decision, path));
    }
    let Some(op) = op else {
        return answer_read(app, merchant, verified, callback, key, deadline).await;
    };
    // A recorded operation's guard is remembered by its claim (one
    // transaction; see `Operations::run`).
    let op = RecordedOperation {
        replay_guard: Some(stored_guard(app, &verified.replay)),
        ..op
    };
    // A merchant whose creates in flight are answered as successes keeps
    // some of the budget for making the claim durable first.
    let run_until = match merchant.create_in_flight {
        CreateInFlight::Success => deadline.checked_sub(NAMING_MARGIN).unwrap_or(deadline),
        CreateInFlight::Processing => deadline,
    };
    let (decision, path) = match app.operations.run(op.clone(), run_until).await {
        Ok(ran) => ran,
        Err(remembered) => return Err(refusal(remembered, &verified.replay).into()),
    };
    // The store cannot write; if it holds the final answer, it can still be
    // replayed (read-only).
    if path == AnswerPath::StoreFailed
        && let Ok(Some((decision, path))) =
            tokio::time::timeout_at(deadline, app.operations.stored(&op)).await
    {
        return Ok(decided(app, merchant, &op, decision, path));
    }
    let decision = durable_before_named(app, merchant, decision, deadline).await;
    Ok(decided(app, merchant, &op, decision, path))
}

/// A read runs the plugin with no claim: its replay guard is remembered
/// first.
async fn answer_read(
    app: &Arc<App>,
    merchant: &Arc<Merchant>,
    verified: &Verified,
    callback: &Callback,
    key: &AccessKey,
    deadline: tokio::time::Instant,
) -> Result<Answered, Rejection> {
    let (answer, path) = match remember(app, &merchant.id, &verified.replay, deadline).await {
        Remembered::New => (
            run_read(app, merchant, callback, key, deadline).await,
            "read",
        ),
        Remembered::Replay(error) => return Err(error.into()),
        Remembered::StoreFailed => {
            let message = "the request could not be recorded; please retry";
            (Answer::new(ResultCode::Internal, message), "store_failed")
        }
    };
    Ok(Answered {
        answer,
        path,
        idempotency_key: None,
    })
}

/// What [`durable_before_named`] may take of the answer budget.
const NAMING_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// A create in flight is answered with its instance id (`create_in_flight
/// = "success"`) only once its claim is on disk. Claims commit without an
/// fsync (a lost one is re-claimed with the same id and key); a synced
/// commit makes every earlier write durable, so one is made here first.
/// If it fails or is late, the answer is 000004 instead.
async fn durable_before_named(
    app: &App,
    merchant: &Merchant,
    decision: Decision,
    deadline: tokio::time::Instant,
) -> Decision {
    let named = matches!(
        decision,
        Decision::InProgress {
            instance_id: Some(_)
        }
    );
    if !named || merchant.create_in_flight != CreateInFlight::Success {
        return decision;
    }
    match tokio::time::timeout_at(deadline, app.store.probe()).await {
        Ok(Ok(())) => decision,
        _ => Decision::InProgress { instance_id: None },
    }
}

/// What remembering a request's replay guard found.
enum Remembered {
    New,
    Replay(AuthError),
    StoreFailed,
}

/// Remembers the replay guard of a verified request (a V2 nonce, a V1
/// token bound to its parameters) in the store, within the deadline.
async fn remember(
    app: &App,
    merchant_id: &str,
    guard: &ReplayGuard,
    deadline: tokio::time::Instant,
) -> Remembered {
    let stored = stored_guard(app, guard);
    let remembered = app
        .store
        .remember_nonce(merchant_id, &stored, time::now_ms());
    match tokio::time::timeout_at(deadline, remembered).await {
        Ok(Ok(remembered)) if stored.admits(remembered) => Remembered::New,
        Ok(Ok(remembered)) => Remembered::Replay(refusal(remembered, guard)),
        Ok(Err(error)) => {
            tracing::error!(%error, "the replay guard could not be recorded; answered 000005");
            Remembered::StoreFailed
        }
        Err(_elapsed) => {
            tracing::error!("the store did not record the replay guard within the budget");
            Remembered::StoreFailed
        }
    }
}

/// A verified request's replay guard as the store keeps it: a V1 token is
/// bound to the digest of the parameters it signed, and remembered for as
/// long as a V1 timestamp is accepted.
fn stored_guard(app: &App, guard: &ReplayGuard) -> store::ReplayGuard {
    match guard {
        ReplayGuard::Nonce(nonce) => store::ReplayGuard {
            key: nonce.clone(),
            binding: None,
            memory_ms: app.nonce_memory_ms,
        },
        ReplayGuard::Token {
            token,
            params_digest,
        } => store::ReplayGuard {
            key: format!("v1:{token}"),
            binding: Some(params_digest.clone()),
            memory_ms: app.v1_token_memory_ms,
        },
    }
}

/// Why a request whose guard was seen before is refused: a V1 token over
/// other parameters is a reused token; anything else a replayed nonce.
fn refusal(remembered: store::Remembered, guard: &ReplayGuard) -> AuthError {
    let bound = matches!(guard, ReplayGuard::Token { .. });
    match remembered {
        store::Remembered::Again {
            same_binding: false,
        } if bound => AuthError::ReusedToken,
        _ => AuthError::ReplayedNonce,
    }
}

/// The answer for an operation's decision, counted.
fn decided(
    app: &App,
    merchant: &Merchant,
    op: &RecordedOperation,
    decision: Decision,
    path: AnswerPath,
) -> Answered {
    Answered {
        answer: decided_answer(app, merchant, op, decision, path),
        path: path.label(),
        idempotency_key: Some(op.id.idempotency_key.clone()),
    }
}

fn decided_answer(
    app: &App,
    merchant: &Merchant,
    op: &RecordedOperation,
    decision: Decision,
    path: AnswerPath,
) -> Answer {
    app.metrics
        .operations
        .get_or_create(&OperationLabels {
            merchant: app.metrics.merchant(&merchant.id).to_string(),
            kind: op.kind.label().into(),
            path: path.label().into(),
        })
        .inc();
    match decision {
        Decision::Answer(answer) => *answer,
        Decision::InProgress { instance_id } => {
            if path == AnswerPath::InProgress {
                let label = app.metrics.merchant(&merchant.id);
                metrics::count(&app.metrics.budget_overruns, label, "in_progress");
            }
            executor::in_progress(merchant, instance_id)
        }
    }
}

/// A read (queryInstance, changeInstanceCheck): answered by the plugin,
/// never recorded; still in a task of its own, within the budget.
async fn run_read(
    app: &Arc<App>,
    merchant: &Arc<Merchant>,
    callback: &Callback,
    key: &AccessKey,
    deadline: tokio::time::Instant,
) -> Answer {
    let task = {
        let (plugins, metrics, merchant, request, key) = (
            app.registry.plugins().clone(),
            app.metrics.clone(),
            merchant.clone(),
            callback.request.clone(),
            key.clone(),
        );
        let traces = app.callback_log.traces().clone();
        app.tasks.spawn(
            async move {
                let traces = Some(&traces);
                executor::run(&plugins, &metrics, traces, &merchant, &request, &key).await
            }
            // The plugin's log records carry the callback's request id.
            .instrument(tracing::Span::current()),
        )
    };
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(executed)) => executed.answer,
        Ok(Err(join_error)) => {
            tracing::error!(error = %join_error, "the plugin task failed");
            Answer::new(ResultCode::Internal, "")
        }
        Err(_) => {
            tracing::warn!(
                budget_ms = app.answer_budget.as_millis() as u64,
                "answer budget exhausted; the call continues in the background"
            );
            let label = app.metrics.merchant(&merchant.id);
            metrics::count(&app.metrics.budget_overruns, label, "budget");
            executor::in_progress(merchant, None)
        }
    }
}

/// 000002 before the request could even be read.
fn refuse_early(message: String, signer: Option<AccessKey>) -> Handled {
    Handled::refused(
        Answer::new(ResultCode::InvalidParams, &message),
        signer,
        None,
    )
    .unauthenticated(message)
}

fn refuse(
    app: &App,
    merchant: Option<&Arc<Merchant>>,
    rejection: Rejection,
    signer: Option<AccessKey>,
    generation: Generation,
) -> Handled {
    let label = merchant.map_or("unknown", |m| app.metrics.merchant(&m.id));
    match &rejection {
        Rejection::Auth(error) => {
            metrics::count(&app.metrics.auth_failures, label, auth_reason(error));
            let answer = Answer::new(ResultCode::AuthFailed, "");
            Handled::refused(answer, signer, Some(generation)).unauthenticated(error)
        }
        Rejection::Invalid(error @ FieldError::QueryTooLarge(_)) => {
            let answer = Answer::new(ResultCode::InvalidParams, &error.to_string());
            Handled::refused(answer, signer, Some(generation)).unauthenticated(error)
        }
        Rejection::Invalid(error) => {
            tracing::warn!(reason = %error, "invalid callback");
            let answer = Answer::new(ResultCode::InvalidParams, &error.to_string());
            Handled {
                reason: Some(error.to_string()),
                logged: Some(Logged {
                    request: None,
                    path: "refused",
                    idempotency_key: None,
                }),
                ..Handled::refused(answer, signer, Some(generation))
            }
        }
    }
}

/// A generation the merchant does not accept: refused as unauthenticated
/// before its signature is read, so that its readers are out of reach.
fn refuse_generation(
    app: &App,
    merchant: &Merchant,
    generation: Generation,
    signer: Option<AccessKey>,
) -> Handled {
    let label = app.metrics.merchant(&merchant.id);
    metrics::count(&app.metrics.auth_failures, label, "generation");
    let answer = Answer::new(ResultCode::AuthFailed, "");
    let reason = format!(
        "{} callbacks are not accepted for this merchant (generations)",
        generation.label()
    );
    Handled::refused(answer, signer, Some(generation)).unauthenticated(reason)
}

fn auth_reason(error: &AuthError) -> &'static str {
    match error {
        AuthError::Missing(_) | AuthError::Duplicate(_) => "missing_or_duplicate_parameter",
        AuthError::BadTimestamp(_) | AuthError::OutsideWindow { .. } => "timestamp",
        AuthError::BadEncoding(_) | AuthError::Mismatch => "signature",
        AuthError::Ambiguous(_) => "ambiguous",
        AuthError::ReplayedNonce => "replayed_nonce",
        AuthError::ReusedToken => "reused_token",
    }
}

/// Any other path: a contract-shaped answer (JSON, 000002) with HTTP 404,
/// so that a misconfigured production URL says what is wrong.
pub(super) async fn no_such_endpoint(uri: Uri) -> Response {
    let shown: String = uri.path().chars().take(64).collect();
    let answer = Answer::new(
        ResultCode::InvalidParams,
        &format!("no such endpoint {shown:?}; callbacks go to /callbacks/{{merchant_id}}"),
    );
    let mut response = respond(answer.to_bytes(), None, &new_request_id());
    *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
    response
}

/// HTTP 200 with the exact bytes and, when signing, their `Body-Sign`.
fn respond(bytes: Vec<u8>, signer: Option<&AccessKey>, request_id: &str) -> Response {
    let sign = signer.map(|key| signing::body_sign(key.expose(), &bytes));
    let mut response = (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        bytes,
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(sign) = sign.and_then(|s| HeaderValue::from_str(&s).ok()) {
        headers.insert(signing::BODY_SIGN_HEADER, sign);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
