//! Group commit: every write of the store goes through one task that owns
//! one connection, and commits whatever writes are waiting together — one
//! transaction, one fsync for the whole batch.
//!
//! Why: SQLite has one writer at a time and `synchronous=FULL` makes every
//! commit an fsync. Separate connections writing at once take turns through
//! the busy handler (which sleeps), and pay an fsync each; a single writer
//! batching N writes pays one fsync and never waits on a lock of its own.
//!
//! Each write runs inside a savepoint, so one write failing (a constraint)
//! rolls back only itself. Some failures (a full disk, an I/O error) make
//! SQLite roll back the whole transaction instead: then the batch starts
//! again without the failing write, re-running its neighbours (writes are
//! re-runnable closures for this), so that one oversized write never fails
//! the callbacks that happened to share its batch. Every caller hears its
//! result only after the `COMMIT` of the batch its write is in.
//!
//! Not every write needs its own fsync ([`Durability`]): a write whose loss
//! in a crash harms nothing (a nonce, a claim, a transient failure, a
//! reaped row) is
//! committed `synchronous=NORMAL` when its batch holds nothing else. It is
//! appended to the WAL all the same, and the next synced commit — which
//! fsyncs the WAL up to its own end — makes it durable too: a synced write
//! is never durable while an earlier lazy one is lost. So a caller told
//! "done" about a synced write holds a durable write; about a lazy one, a
//! write that survives anything but a crash of the machine before the next
//! synced commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use sqlx::{Connection as _, Executor as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// The most writes committed together.
const MAX_BATCH: usize = 64;

/// The most writes waiting for the writer. Past it, a write fails at once
/// (`StoreError::Busy`): a stalled store must answer 000005 quickly, not
/// queue callbacks without bound.
const MAX_QUEUED: usize = 4096;

/// One write: runs its statements on the writer's connection, inside the
/// batch's transaction. It may run more than once (see the module docs), so
/// it clones what it needs on each run.
pub type WriteFn<T> = Box<
    dyn for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + Sync,
>;

/// What a write's caller may rely on once told it committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// On disk: its batch's commit fsyncs the WAL (`synchronous=FULL`).
    Synced,
    /// Committed and visible, durable with the next synced commit; a crash
    /// of the machine before that loses it. Only for writes whose loss harms
    /// nothing (see the module docs).
    Lazy,
}

/// A queued write, its result type erased.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs the write and keeps its result; says whether it succeeded.
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Delivers the kept result if the batch committed, else `failed`.
    fn deliver(self: Box<Self>, committed: Result<(), String>);
}

struct Typed<T> {
    write: WriteFn<T>,
    durability: Durability,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let result = (self.write)(conn).await;
            let succeeded = result.is_ok();
            self.result = Some(result);
            succeeded
        })
    }

    fn deliver(self: Box<Self>, committed: Result<(), String>) {
        let result = match (committed, self.result) {
            // A write that failed on its own reports its own error.
            (_, Some(Err(error))) => Err(error),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(why), _) => Err(StoreError::Commit(why)),
            (Ok(()), None) => Err(StoreError::Commit("the write never ran".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// The handle callers write through.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    state: Arc<State>,
}

/// What the writer task shares with its handles.
#[derive(Default)]
struct State {
    /// Batches finished, for the tests that prove what shared a batch.
    #[cfg_attr(not(test), allow(dead_code))]
    batches: AtomicU64,
    /// Batches in a row that could not begin or commit (0: healthy).
    failing: AtomicU64,
    /// Why the last batch failed.
    last_failure: std::sync::Mutex<Option<String>>,
}

/// Whether the writer commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Batches in a row that could not begin or commit.
    pub failing_batches: u64,
    pub last_failure: Option<String>,
}

impl Writer {
    /// Starts the writer task on `conn`.
    pub fn start(conn: SqliteConnection) -> Writer {
        let (jobs, queue) = mpsc::channel(MAX_QUEUED);
        let state = Arc::new(State::default());
        tokio::spawn(run(conn, queue, state.clone()));
        Writer { jobs, state }
    }

    /// How the last batches went.
    pub fn health(&self) -> Health {
        Health {
            failing_batches: self.state.failing.load(Ordering::Relaxed),
            last_failure: self
                .state
                .last_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// Batches the writer has finished (committed or not).
    #[cfg(test)]
    fn batches(&self) -> u64 {
        self.state.batches.load(Ordering::Relaxed)
    }

    /// Runs `write` in the next batch; resolves once the batch committed.
    pub async fn write<T: Send + 'static>(
        &self,
        durability: Durability,
        write: WriteFn<T>,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            write,
            durability,
            result: None,
            reply,
        });
        self.jobs.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    state: Arc<State>,
) {
    // The connection starts `synchronous=FULL` (see `SqliteStore::open`).
    let mut synced = true;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let needs_sync = batch
            .iter()
            .any(|job| job.durability() == Durability::Synced);
        let outcome = match set_synchronous(&mut conn, &mut synced, needs_sync).await {
            Ok(()) => commit_batch(&mut conn, batch).await,
            Err(why) => {
                fail_all(batch, &why);
                Err(why)
            }
        };
        state.batches.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => state.failing.store(0, Ordering::Relaxed),
            Err(why) => {
                state.failing.fetch_add(1, Ordering::Relaxed);
                *state
                    .last_failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
            }
        }
    }
    let _ = conn.close().await;
}

/// Switches the connection to `synchronous=FULL` or `NORMAL` for the next
/// batch (outside a transaction, where SQLite allows it). A batch that needs
/// an fsync never commits without one: failing to switch fails it.
async fn set_synchronous(
    conn: &mut SqliteConnection,
    synced: &mut bool,
    needs_sync: bool,
) -> Result<(), String> {
    if *synced == needs_sync {
        return Ok(());
    }
    let pragma = if needs_sync {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    };
    match conn.execute(pragma).await {
        Ok(_) => {
            *synced = needs_sync;
            Ok(())
        }
        // Staying synced is always safe; only a failed switch to it is not.
        Err(_) if !needs_sync => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Commits `batch`: every write in its own savepoint, one `COMMIT`. An
/// error says the store itself failed (the batch could not begin or commit),
/// as opposed to one write failing on its own.
async fn commit_batch(
    conn: &mut SqliteConnection,
    mut batch: Vec<Box<dyn Job>>,
) -> Result<(), String> {
    // Each round either commits or drops one write that took the whole
    // transaction down with it, so this ends after at most `batch.len()`.
    // Such a write means the store itself is in trouble (a full disk, an I/O
    // error): the batch counts as failed even if its neighbours commit.
    let mut lost = None;
    loop {
        if let Err(error) = conn.execute("BEGIN IMMEDIATE").await {
            let why = error.to_string();
            fail_all(batch, &why);
            return Err(why);
        }
        match run_all(conn, &mut batch).await {
            Round::Ran => break,
            Round::TransactionLost { culprit } => {
                let _ = conn.execute("ROLLBACK").await;
                batch.remove(culprit).deliver(Ok(()));
                lost = Some(
                    "a write made SQLite roll back its transaction (a full disk or an I/O \
                     error)"
                        .to_string(),
                );
                if batch.is_empty() {
                    return lost.map_or(Ok(()), Err);
                }
            }
            Round::Unknown(why) => {
                let _ = conn.execute("ROLLBACK").await;
                fail_all(batch, &why);
                return Err(why);
            }
        }
    }
    let committed = match conn.execute("COMMIT").await {
        Ok(_) => Ok(()),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(error.to_string())
        }
    };
    for job in batch {
        job.deliver(committed.clone());
    }
    committed.and(lost.map_or(Ok(()), Err))
}

/// How one round of a batch went.
enum Round {
    /// Every write ran (each succeeded or was rolled back to its savepoint).
    Ran,
    /// The write at `culprit` failed and SQLite rolled the whole transaction
    /// back with it.
    TransactionLost { culprit: usize },
    /// The transaction is in a state the writer cannot tell.
    Unknown(String),
}

async fn run_all(conn: &mut SqliteConnection, batch: &mut [Box<dyn Job>]) -> Round {
    for (index, job) in batch.iter_mut().enumerate() {
        if let Err(error) = conn.execute("SAVEPOINT write").await {
            return Round::Unknown(error.to_string());
        }
        if job.run(conn).await {
            if let Err(error) = conn.execute("RELEASE write").await {
                return Round::Unknown(error.to_string());
            }
            continue;
        }
        if conn.execute("ROLLBACK TO write").await.is_err() {
            // The savepoint is gone: the failure rolled back the transaction.
            return Round::TransactionLost { culprit: index };
        }
        if let Err(error) = conn.execute("RELEASE write").await {
            return Round::Unknown(error.to_string());
        }
    }
    Round::Ran
}

fn fail_all(batch: Vec<Box<dyn Job>>, why: &str) {
    for job in batch {
        job.deliver(Err(why.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions as _;
    use std::time::Duration;

    /// A connection to a fresh file that cannot grow past a few pages.
    async fn capped_connection(dir: &tempfile::TempDir) -> SqliteConnection {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .connect()
            .await
            .expect("opens");
        conn.execute("CREATE TABLE t (x TEXT NOT NULL)")
            .await
            .expect("a table");
        conn.execute("PRAGMA max_page_count = 16")
            .await
            .expect("a cap");
        conn
    }

    fn insert(text: String) -> WriteFn<()> {
        Box::new(move |conn| {
            let text = text.clone();
            Box::pin(async move {
                sqlx::query("INSERT INTO t (x) VALUES ($1)")
                    .bind(text)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
    }

    /// A write that reports the `synchronous` setting its batch commits at
    /// (1 NORMAL, 2 FULL).
    fn synchronous_seen() -> WriteFn<i64> {
        Box::new(|conn| {
            Box::pin(async move {
                Ok(sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await?)
            })
        })
    }

    /// Holds the writer inside a batch until `release` is notified, so that
    /// what is queued meanwhile shares the next batch.
    async fn hold(writer: &Writer) -> (tokio::task::JoinHandle<()>, Arc<tokio::sync::Notify>) {
        let (started, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let holder = tokio::spawn({
            let (writer, started, release) = (writer.clone(), started.clone(), release.clone());
            async move {
                writer
                    .write::<()>(
                        Durability::Lazy,
                        Box::new(move |_| {
                            let (started, release) = (started.clone(), release.clone());
                            Box::pin(async move {
                                started.notify_one();
                                release.notified().await;
                                Ok(())
                            })
                        }),
                    )
                    .await
                    .expect("the holder commits");
            }
        });
        started.notified().await;
        (holder, release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_synced_unless_every_write_in_it_is_lazy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir).await);
        let seen = |durability| writer.write(durability, synchronous_seen());
        assert_eq!(seen(Durability::Lazy).await.expect("lazy"), 1);
        assert_eq!(seen(Durability::Synced).await.expect("synced"), 2);
        assert_eq!(seen(Durability::Lazy).await.expect("lazy again"), 1);

        // A lazy write sharing a batch with a synced one is synced with it.
        let (holder, release) = hold(&writer).await;
        let lazy = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(Durability::Lazy, synchronous_seen()).await }
        });
        let synced = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(Durability::Synced, synchronous_seen()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one();
        holder.await.expect("task");
        assert_eq!(lazy.await.expect("task").expect("lazy"), 2);
        assert_eq!(synced.await.expect("task").expect("synced"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_rolls_back_alone_and_its_batch_neighbours_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir).await);
        let (holder, release) = hold(&writer).await;
        let big = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .write(Durability::Synced, insert("x".repeat(1 << 20)))
                    .await
            }
        });
        let small: Vec<_> = (0..20)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .write(Durability::Synced, insert(format!("n{i}")))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(writer.batches(), 0, "the first batch is still held");
        release.notify_one();
        holder.await.expect("task");
        let full = big.await.expect("task").expect_err("the file is full");
        assert!(full.to_string().contains("full"), "{full}");
        for write in small {
            write
                .await
                .expect("task")
                .expect("committed despite its neighbour");
        }
        assert_eq!(
            writer.batches(),
            2,
            "the failing write and its 20 neighbours shared one batch"
        );
        let mut check = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .connect()
            .await
            .expect("a second connection");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut check)
            .await
            .expect("counted");
        assert_eq!(rows, 20, "durable, and nothing of the big write");
    }
}
