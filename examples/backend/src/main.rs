//! An example merchant backend: the system a plugin provisions tenants in.
//!
//! A small HTTP service with its own SQLite database and an API that
//! creates, renews, freezes, unfreezes and deletes tenants, behind a bearer
//! token. Every change is idempotent on its `Idempotency-Key` header: a
//! repeated key gets the first answer again and changes nothing, so a
//! gateway that re-executes an operation after a crash never creates a
//! second tenant. Tenants get ids of the backend's own (not the
//! marketplace's instance id), as a real system's would, so that only the
//! idempotency key keeps a retry from creating a duplicate.
//!
//! ```text
//! merchant-backend --listen 127.0.0.1:8088 --db backend.db --token secret
//! POST   /tenants                      {instance_id, order_id, plan, expire_at}
//! POST   /tenants/{instance_id}/renew  {expire_at}
//! POST   /tenants/{instance_id}/freeze | /unfreeze
//! DELETE /tenants/{instance_id}
//! GET    /tenants[?instance_id=…]      every tenant (for people and tests)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clap::Parser;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Parser, Debug)]
#[command(about = "An example merchant backend (tenants in SQLite, idempotent API)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    #[arg(long, default_value = "merchant-backend.db")]
    db: PathBuf,
    /// The bearer token every request must carry.
    #[arg(long, env = "BACKEND_TOKEN")]
    token: String,
    /// Wait this long before creating a tenant (to let tests kill a caller
    /// mid-request).
    #[arg(long, default_value_t = 0)]
    create_delay_ms: u64,
}

struct Backend {
    db: Mutex<Connection>,
    token: String,
    create_delay: Duration,
    /// One change at a time: a duplicate waits for the first and then
    /// finds its stored answer.
    changes: tokio::sync::Mutex<()>,
}

type Shared = Arc<Backend>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id   TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    plan        TEXT NOT NULL,
    status      TEXT NOT NULL,
    expire_at   INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tenants_by_instance ON tenants (instance_id);
CREATE TABLE IF NOT EXISTS idempotency (
    key    TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body   TEXT NOT NULL
);";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let db =
        Connection::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    db.execute_batch(SCHEMA)?;
    let backend = Arc::new(Backend {
        db: Mutex::new(db),
        token: args.token,
        create_delay: Duration::from_millis(args.create_delay_ms),
        changes: tokio::sync::Mutex::new(()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    // The first line of standard output says where (tests and scripts read it).
    println!("merchant backend on http://{}", listener.local_addr()?);
    axum::serve(listener, app(backend)).await?;
    Ok(())
}

fn app(backend: Shared) -> Router {
    Router::new()
        .route("/tenants", post(create).get(list))
        .route("/tenants/{instance_id}", delete(remove))
        .route("/tenants/{instance_id}/renew", post(renew))
        .route("/tenants/{instance_id}/freeze", post(freeze))
        .route("/tenants/{instance_id}/unfreeze", post(unfreeze))
        .route("/health", get(|| async { "ok" }))
        .with_state(backend)
}

/// An answer: status and JSON body (also what is stored per key).
struct Answer(StatusCode, Value);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn error(status: StatusCode, message: &str) -> Answer {
    Answer(status, json!({ "error": message }))
}

impl Backend {
    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn authorized(&self, headers: &HeaderMap) -> Result<(), Answer> {
        let expected = format!("Bearer {}", self.token);
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(given) if given == expected => Ok(()),
            _ => Err(error(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required",
            )),
        }
    }

    /// Runs `change` once per idempotency key: a repeated key gets the
    /// stored answer. The answer is stored in the change's transaction.
    async fn once(
        &self,
        headers: &HeaderMap,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<Answer>,
    ) -> Answer {
        if let Err(refused) = self.authorized(headers) {
            return refused;
        }
        let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "an Idempotency-Key header is required",
            );
        };
        let key = key.to_string();
        let _one_at_a_time = self.changes.lock().await;
        let mut db = self.db();
        let result = (|| {
            let tx = db.transaction()?;
            let stored: Option<(u16, String)> = tx
                .query_row(
                    "SELECT status, body FROM idempotency WHERE key = ?1",
                    [&key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((status, body)) = stored {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return Ok(Answer(
                    status,
                    serde_json::from_str(&body).unwrap_or(Value::Null),
                ));
            }
            let answer = change(&tx)?;
            tx.execute(
                "INSERT INTO idempotency (key, status, body) VALUES (?1, ?2, ?3)",
                params![key, answer.0.as_u16(), answer.1.to_string()],
            )?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>(answer)
        })();
        result.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
    }
}

#[derive(Deserialize)]
struct NewTenant {
    instance_id: String,
    order_id: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    expire_at: Option<i64>,
}

/// Creates a tenant. The work runs in a task of its own, so that it
/// finishes even if the caller hangs up (as a gateway killed mid-call
/// does): the next request with the same key then finds its answer.
async fn create(
    State(backend): State<Shared>,
    headers: HeaderMap,
    Json(new): Json<NewTenant>,
) -> Answer {
    let work = tokio::spawn(async move { create_once(&backend, &headers, new).await });
    work.await
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

async fn create_once(backend: &Backend, headers: &HeaderMap, new: NewTenant) -> Answer {
    if backend.authorized(headers).is_ok() && !backend.create_delay.is_zero() {
        tokio::time::sleep(backend.create_delay).await;
    }
    backend
        .once(headers, |tx| {
            let tenant_id = new_tenant_id(tx)?;
            let plan = new.plan.clone().unwrap_or_else(|| "standard".into());
            tx.execute(
                "INSERT INTO tenants (tenant_id, instance_id, order_id, plan, status, expire_at, \
                 created_at) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6)",
                params![
                    tenant_id,
                    new.instance_id,
                    new.order_id,
                    plan,
                    new.expire_at,
                    now()
                ],
            )?;
            tracing::info!(%tenant_id, instance_id = %new.instance_id, "tenant created");
            Ok(Answer(
                StatusCode::CREATED,
                json!({
                    "tenant_id": tenant_id,
                    "admin_url": format!("https://tenants.example.com/{tenant_id}/admin"),
                    "username": format!("admin-{}", &tenant_id[..8]),
                }),
            ))
        })
        .await
}

fn new_tenant_id(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<String> {
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM tenants", [], |row| row.get(0))?;
    let seed = format!("{}-{}-{:?}", now(), count, std::time::Instant::now());
    Ok(hex::encode(&Sha256::digest(seed.as_bytes())[..8]))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Changes the status of an instance's tenants; 404 when it has none.
fn set_status(
    tx: &rusqlite::Transaction<'_>,
    instance_id: &str,
    status: &str,
) -> rusqlite::Result<Answer> {
    let changed = tx.execute(
        "UPDATE tenants SET status = ?2 WHERE instance_id = ?1 AND status != 'deleted'",
        params![instance_id, status],
    )?;
    Ok(if changed == 0 {
        error(StatusCode::NOT_FOUND, "no such tenant")
    } else {
        Answer(
            StatusCode::OK,
            json!({ "instance_id": instance_id, "status": status }),
        )
    })
}

#[derive(Deserialize)]
struct Renewal {
    expire_at: i64,
}

async fn renew(
    State(backend): State<Shared>,
    Path(instance_id): Path<String>,
    headers: HeaderMap,
    Json(renewal): Json<Renewal>,
) -> Answer {
    backend
        .once(&headers, |tx| {
            let changed = tx.execute(
                "UPDATE tenants SET expire_at = ?2 WHERE instance_id = ?1 AND status != 'deleted'",
                params![instance_id, renewal.expire_at],
            )?;
            Ok(if changed == 0 {
                error(StatusCode::NOT_FOUND, "no such tenant")
            } else {
                Answer(StatusCode::OK, json!({ "expire_at": renewal.expire_at }))
            })
        })
        .await
}

async fn freeze(
    State(backend): State<Shared>,
    Path(instance_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    backend
        .once(&headers, |tx| set_status(tx, &instance_id, "frozen"))
        .await
}

async fn unfreeze(
    State(backend): State<Shared>,
    Path(instance_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    backend
        .once(&headers, |tx| set_status(tx, &instance_id, "active"))
        .await
}

async fn remove(
    State(backend): State<Shared>,
    Path(instance_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    backend
        .once(&headers, |tx| set_status(tx, &instance_id, "deleted"))
        .await
}

#[derive(Deserialize)]
struct Filter {
    instance_id: Option<String>,
}

async fn list(
    State(backend): State<Shared>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Answer {
    if let Err(refused) = backend.authorized(&headers) {
        return refused;
    }
    let db = backend.db();
    let rows = (|| {
        let mut statement = db.prepare(
            "SELECT tenant_id, instance_id, order_id, plan, status, expire_at FROM tenants \
             WHERE ?1 IS NULL OR instance_id = ?1 ORDER BY created_at, tenant_id",
        )?;
        let rows = statement.query_map([&filter.instance_id], |row| {
            Ok(json!({
                "tenant_id": row.get::<_, String>(0)?,
                "instance_id": row.get::<_, String>(1)?,
                "order_id": row.get::<_, String>(2)?,
                "plan": row.get::<_, String>(3)?,
                "status": row.get::<_, String>(4)?,
                "expire_at": row.get::<_, Option<i64>>(5)?,
            }))
        })?;
        rows.collect::<rusqlite::Result<Vec<Value>>>()
    })();
    match rows {
        Ok(rows) => Answer(StatusCode::OK, json!({ "tenants": rows })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
