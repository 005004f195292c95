//! One store test suite, two engines: a test written once as
//! `async fn name(engine: Engine)` runs on SQLite (a file in a temporary
//! directory) and on PostgreSQL (a scratch schema, dropped afterwards) by
//! listing it in [`on_both_engines!`].

#![allow(dead_code)] // each test binary uses part of this

use std::sync::Arc;
use std::time::Duration;

use gateway_store::test_support::ScratchSchema;
use gateway_store::{Backend, PostgresSettings, PostgresStore, SqliteSettings, SqliteStore};

/// Where one test's store lives, so that it can be opened again.
pub enum Engine {
    Sqlite(tempfile::TempDir),
    Postgres(ScratchSchema),
}

impl Engine {
    pub async fn sqlite() -> Engine {
        Engine::Sqlite(tempfile::tempdir().expect("a temp dir"))
    }

    pub async fn postgres() -> Engine {
        Engine::Postgres(ScratchSchema::create().await)
    }

    pub fn sqlite_settings(dir: &tempfile::TempDir) -> SqliteSettings {
        SqliteSettings {
            path: dir.path().join("gateway.db"),
            busy_timeout: Duration::from_secs(2),
            max_size_bytes: None,
        }
    }

    pub fn postgres_settings(schema: &ScratchSchema) -> PostgresSettings {
        PostgresSettings {
            url: schema.url(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }

    /// Opens (and migrates) the store; again, if it was opened before.
    pub async fn open(&self) -> Arc<dyn Backend> {
        self.try_open().await.expect("the store opens")
    }

    pub async fn try_open(&self) -> Result<Arc<dyn Backend>, gateway_store::StoreError> {
        Ok(match self {
            Engine::Sqlite(dir) => Arc::new(SqliteStore::open(&Self::sqlite_settings(dir)).await?),
            Engine::Postgres(schema) => {
                Arc::new(PostgresStore::open(&Self::postgres_settings(schema)).await?)
            }
        })
    }

    /// Runs `sql` behind the store's back (a second connection), as another
    /// program or a disk fault would change it.
    pub async fn tamper(&self, sql: &str) {
        match self {
            Engine::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("gateway.db"))
                .expect("a second connection")
                .execute_batch(sql)
                .expect("the statement runs"),
            Engine::Postgres(schema) => {
                let (client, connection) =
                    tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
                        .await
                        .expect("a second connection");
                let driver = tokio::spawn(connection);
                client.batch_execute(sql).await.expect("the statement runs");
                drop(client);
                let _ = driver.await;
            }
        }
    }
}

/// Runs each `async fn name(engine: Engine)` listed as two tests,
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::engines::Engine::sqlite().await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name($crate::engines::Engine::postgres().await).await
                }
            }
        )*
    };
}
