//! Scratch PostgreSQL schemas for tests: each test gets a schema of its own
//! in the test database (`GATEWAY_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), reached through a URL whose
//! `search_path` names it, and dropped when the guard is.
//!
//! A database that cannot be reached fails the test: the PostgreSQL tests
//! are never skipped (`scripts/test` makes sure the server runs).

use std::sync::atomic::{AtomicU64, Ordering};

/// Where the tests' PostgreSQL is.
pub const TEST_URL_ENV: &str = "GATEWAY_TEST_POSTGRES_URL";
const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of one test's own, dropped (with everything in it) on drop.
pub struct ScratchSchema {
    base: String,
    name: String,
}

impl ScratchSchema {
    /// Creates a fresh schema; panics with the reason if PostgreSQL cannot
    /// be reached.
    pub async fn create() -> ScratchSchema {
        let base = std::env::var(TEST_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_URL.to_string());
        ScratchSchema::create_in(&base).await
    }

    /// Creates a fresh schema in the database at `base`.
    pub async fn create_in(base: &str) -> ScratchSchema {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = base.to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "gwtest_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&base, &format!("CREATE SCHEMA {name}")).await;
        ScratchSchema { base, name }
    }

    /// A URL whose connections use this schema.
    pub fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base, self.name
        )
    }

    /// One number: `sql` (with `bind` as `$1`) in this schema.
    pub async fn number(&self, sql: &str, bind: &str) -> i64 {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the scratch schema: {e}"));
        let driver = tokio::spawn(connection);
        let number = client
            .query_one(sql, &[&bind])
            .await
            .and_then(|row| row.try_get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        drop(client);
        let _ = driver.await;
        number
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        // Dropped from inside a test's runtime: a runtime of its own, on a
        // thread of its own.
        let (base, sql) = (
            self.base.clone(),
            format!("DROP SCHEMA {} CASCADE", self.name),
        );
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(run(&base, &sql));
            }
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop a scratch schema");
        }
    }
}

/// Runs `sql` on a connection of its own to `url`.
async fn run(url: &str, sql: &str) {
    let (client, connection) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(connected) => connected,
        Err(error) => panic!(
            "PostgreSQL at {url} is needed for this test and cannot be reached ({error}); \
             scripts/test starts it, or set {TEST_URL_ENV}"
        ),
    };
    let driver = tokio::spawn(connection);
    if let Err(error) = client.batch_execute(sql).await {
        panic!("`{sql}` failed: {error}");
    }
    drop(client);
    let _ = driver.await;
}
