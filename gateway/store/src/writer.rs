//! Group commit: every write of the store goes through one thread that owns
//! one connection, and commits whatever writes are waiting together — one
//! transaction, one fsync for the whole batch.
//!
//! A thread of its own, running SQLite synchronously (rusqlite): a write
//! costs its caller two wake-ups (the job in, the result out), whatever the
//! number of statements in it. Through an async driver every statement —
//! and `BEGIN`, each `SAVEPOINT`, `RELEASE` and `COMMIT` — was a round trip
//! to a worker thread; measured, those context switches were most of a
//! create's CPU (docs/benchmarks.md).
//!
//! Why: SQLite has one writer at a time and `synchronous=FULL` makes every
//! commit an fsync. Separate connections writing at once take turns through
//! the busy handler (which sleeps), and pay an fsync each; a single writer
//! batching N writes pays one fsync and never waits on a lock of its own.
//!
//! Each write runs inside a savepoint, so one write failing (a constraint)
//! rolls back only itself; a write alone in its batch (most of them, below
//! saturation) runs without one, its failure rolling back the whole
//! transaction, which held nothing else. Some failures (a full disk, an I/O
//! error) make SQLite roll back the whole transaction instead: then the
//! batch starts again without the failing write, re-running its neighbours
//! (writes are re-runnable closures for this), so that one oversized write
//! never fails the callbacks that happened to share its batch. Every caller
//! hears its result only after the `COMMIT` of the batch its write is in.
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
//! synced commit. SQLite syncs the WAL only when a commit appends to it, so a
//! synced batch that changed nothing (the store's probe, an update that
//! matched no row) syncs the WAL file itself: its caller may be relying on
//! it for the lazy writes before it (a create answered in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;
use crate::wal_files::WalFiles;

/// The most writes committed together.
const MAX_BATCH: usize = 64;

/// The most writes waiting for the writer. Past it, a write fails at once
/// (`StoreError::Busy`): a stalled store must answer 000005 quickly, not
/// queue callbacks without bound.
const MAX_QUEUED: usize = 4096;

/// One write: runs its statements on the writer's connection, inside the
/// batch's transaction. It may run more than once (see the module docs).
pub type WriteFn<T> = Box<dyn Fn(&Connection) -> Result<T, StoreError> + Send>;

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
    /// Runs the write and keeps its result; says how it went.
    fn run(&mut self, conn: &Connection) -> Ran;
    /// Delivers the kept result if the batch committed, else `failed`.
    fn deliver(self: Box<Self>, committed: Result<(), String>);
}

/// How one write went.
enum Ran {
    Succeeded,
    /// Refused on its own account (a constraint): the store is fine.
    Refused,
    /// Failed because the store is (a full disk, an I/O error…).
    StoreInTrouble(String),
}

/// Whether `error` says the store itself is in trouble, not the write.
fn store_in_trouble(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        error.sqlite_error_code(),
        Some(
            DiskFull
                | SystemIoFailure
                | DatabaseCorrupt
                | NotADatabase
                | OutOfMemory
                | CannotOpen
                | ReadOnly
        )
    )
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

    fn run(&mut self, conn: &Connection) -> Ran {
        let result = (self.write)(conn);
        let ran = match &result {
            Ok(_) => Ran::Succeeded,
            Err(StoreError::Sql(error)) if store_in_trouble(error) => {
                Ran::StoreInTrouble(error.to_string())
            }
            Err(_) => Ran::Refused,
        };
        self.result = Some(result);
        ran
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

/// The handle callers write through. The writer thread ends (and closes
/// its connection) once every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::SyncSender<Box<dyn Job>>,
    state: Arc<State>,
}

/// What the writer thread shares with its handles.
#[derive(Default)]
struct State {
    /// Batches begun, for the tests that prove what shared a batch.
    #[cfg_attr(not(test), allow(dead_code))]
    batches: AtomicU64,
    /// Batches in a row that could not begin or commit (0: healthy).
    failing: AtomicU64,
    /// Why the last batch failed.
    last_failure: std::sync::Mutex<Option<String>>,
    /// Synced batches whose commit appended nothing, so that the writer
    /// synced the WAL itself.
    #[cfg_attr(not(test), allow(dead_code))]
    wal_syncs: AtomicU64,
}

/// Whether the writer commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Batches in a row that could not begin or commit.
    pub failing_batches: u64,
    pub last_failure: Option<String>,
}

impl Writer {
    /// Starts the writer thread on `conn` (in `synchronous=FULL` mode).
    pub fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::sync_channel(MAX_QUEUED);
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, &queue, &shared))?;
        Ok(Writer { jobs, state })
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

    /// Batches the writer has begun (committed or not).
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
            mpsc::TrySendError::Full(_) => StoreError::Busy,
            mpsc::TrySendError::Disconnected(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, queue: &mpsc::Receiver<Box<dyn Job>>, state: &State) {
    let mut synced = true;
    let wal = conn
        .path()
        .filter(|path| !path.is_empty())
        .map(|path| WalFiles::of(path.into()));
    while let Ok(first) = queue.recv() {
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
        // Counted, and its health recorded, before any write of it is
        // answered: a caller who heard back sees the state its batch left.
        state.batches.fetch_add(1, Ordering::Relaxed);
        let mut replies = Vec::with_capacity(batch.len());
        let frames_before = wal
            .as_ref()
            .filter(|_| needs_sync)
            .map(WalFiles::last_frame);
        let mut outcome = match set_synchronous(&conn, &mut synced, needs_sync) {
            Ok(()) => commit_batch(&conn, batch, &mut replies),
            Err(why) => {
                fail_all(batch, &why, &mut replies);
                Err(why)
            }
        };
        if let (Some(wal), Some(before), Ok(())) = (&wal, frames_before, &outcome)
            && let Err(why) = synced_even_if_empty(wal, before, state)
        {
            for (_, committed) in &mut replies {
                *committed = Err(why.clone());
            }
            outcome = Err(why);
        }
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
        for (job, committed) in replies {
            job.deliver(committed);
        }
    }
}

/// After a synced batch committed: if its commit appended no frame (SQLite
/// then syncs nothing), syncs the WAL for the lazy writes committed before
/// it. `before` is the last frame before the batch, if it could be read
/// (unknown: synced all the same).
fn synced_even_if_empty(wal: &WalFiles, before: Option<u32>, state: &State) -> Result<(), String> {
    if before.is_some() && wal.last_frame() != before {
        return Ok(());
    }
    state.wal_syncs.fetch_add(1, Ordering::Relaxed);
    wal.sync_wal()
        .map_err(|error| format!("syncing the WAL: {error}"))
}

/// Answers held back until the batch's health is recorded.
type Replies = Vec<(Box<dyn Job>, Result<(), String>)>;

/// Switches the connection to `synchronous=FULL` or `NORMAL` for the next
/// batch (outside a transaction, where SQLite allows it). A batch that needs
/// an fsync never commits without one: failing to switch fails it.
fn set_synchronous(conn: &Connection, synced: &mut bool, needs_sync: bool) -> Result<(), String> {
    if *synced == needs_sync {
        return Ok(());
    }
    let pragma = if needs_sync {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    };
    // Prepared anew each time, never cached: SQLite applies this pragma
    // while preparing it, so a cached statement would switch nothing.
    match conn.execute_batch(pragma) {
        Ok(()) => {
            *synced = needs_sync;
            Ok(())
        }
        // Staying synced is always safe; only a failed switch to it is not.
        Err(_) if !needs_sync => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Commits `batch`: every write in its own savepoint (unless alone), one
/// `COMMIT`. An error says the store itself failed (the batch could not
/// begin or commit), as opposed to one write failing on its own.
fn commit_batch(
    conn: &Connection,
    mut batch: Vec<Box<dyn Job>>,
    replies: &mut Replies,
) -> Result<(), String> {
    // Each round either commits or drops one write that took the whole
    // transaction down with it, so this ends after at most `batch.len()`.
    // Such a write means the store itself is in trouble (a full disk, an I/O
    // error): the batch counts as failed even if its neighbours commit.
    let mut lost = None;
    loop {
        if let Err(error) = control(conn, "BEGIN IMMEDIATE") {
            let why = error.to_string();
            fail_all(batch, &why, replies);
            return Err(why);
        }
        match run_all(conn, &mut batch) {
            Round::Ran { trouble: None } => break,
            Round::Ran { trouble } => {
                // Its neighbours commit; the store is in trouble all the same.
                lost = trouble;
                break;
            }
            Round::TransactionLost { culprit } => {
                let _ = control(conn, "ROLLBACK");
                replies.push((batch.remove(culprit), Ok(())));
                lost = Some(
                    "a write made SQLite roll back its transaction (a full disk or an I/O \
                     error)"
                        .to_string(),
                );
                if batch.is_empty() {
                    return lost.map_or(Ok(()), Err);
                }
            }
            Round::LoneWriteFailed { trouble } => {
                // Its transaction held nothing else: rolled back whole.
                let _ = control(conn, "ROLLBACK");
                replies.extend(batch.drain(..).map(|job| (job, Ok(()))));
                return trouble.map_or(Ok(()), Err);
            }
            Round::Unknown(why) => {
                let _ = control(conn, "ROLLBACK");
                fail_all(batch, &why, replies);
                return Err(why);
            }
        }
    }
    let committed = commit(conn);
    for job in batch {
        replies.push((job, committed.clone()));
    }
    committed.and(lost.map_or(Ok(()), Err))
}

fn commit(conn: &Connection) -> Result<(), String> {
    match control(conn, "COMMIT") {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = control(conn, "ROLLBACK");
            Err(error.to_string())
        }
    }
}

/// A transaction-control statement, prepared once per connection.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// How one round of a batch went.
enum Round {
    /// Every write ran (each succeeded or was rolled back to its savepoint);
    /// `trouble` if one failed because of the store itself.
    Ran { trouble: Option<String> },
    /// The write at `culprit` failed and SQLite rolled the whole transaction
    /// back with it.
    TransactionLost { culprit: usize },
    /// The batch's only write failed (on its own account, or with
    /// `trouble` if because of the store); it ran without a savepoint, so
    /// the transaction is to be rolled back.
    LoneWriteFailed { trouble: Option<String> },
    /// The transaction is in a state the writer cannot tell.
    Unknown(String),
}

fn run_all(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Round {
    // A write alone in its batch needs no savepoint: if it fails, rolling
    // back the whole transaction undoes exactly it. (A savepoint makes
    // SQLite copy every page the write touches into its sub-journal first.)
    if let [job] = batch {
        return match job.run(conn) {
            Ran::Succeeded => Round::Ran { trouble: None },
            Ran::Refused => Round::LoneWriteFailed { trouble: None },
            Ran::StoreInTrouble(why) => Round::LoneWriteFailed { trouble: Some(why) },
        };
    }
    let mut trouble = None;
    for (index, job) in batch.iter_mut().enumerate() {
        if let Err(error) = control(conn, "SAVEPOINT write") {
            return Round::Unknown(error.to_string());
        }
        match job.run(conn) {
            Ran::Succeeded => {
                if let Err(error) = control(conn, "RELEASE write") {
                    return Round::Unknown(error.to_string());
                }
                continue;
            }
            Ran::Refused => {}
            Ran::StoreInTrouble(why) => trouble = Some(why),
        }
        if conn.is_autocommit() || control(conn, "ROLLBACK TO write").is_err() {
            // The savepoint is gone: the failure rolled back the transaction.
            return Round::TransactionLost { culprit: index };
        }
        if let Err(error) = control(conn, "RELEASE write") {
            return Round::Unknown(error.to_string());
        }
    }
    Round::Ran { trouble }
}

fn fail_all(batch: Vec<Box<dyn Job>>, why: &str, replies: &mut Replies) {
    for job in batch {
        replies.push((job, Err(why.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connection to a fresh file that cannot grow past a few pages.
    fn capped_connection(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("w.db")).expect("opens");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             CREATE TABLE t (x TEXT NOT NULL); PRAGMA max_page_count = 16;",
        )
        .expect("a capped table");
        conn
    }

    fn insert(text: String) -> WriteFn<()> {
        Box::new(move |conn| {
            conn.execute("INSERT INTO t (x) VALUES (?1)", [&text])?;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_synced_batch_that_appends_nothing_syncs_the_wal_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir)).expect("writer");
        let syncs = || writer.state.wal_syncs.load(Ordering::Relaxed);
        writer
            .write(Durability::Lazy, insert("lazy".into()))
            .await
            .expect("a lazy write");
        writer
            .write(Durability::Synced, insert("synced".into()))
            .await
            .expect("a synced write");
        assert_eq!(syncs(), 0, "SQLite synced the commits that appended");
        writer
            .write(Durability::Lazy, insert("lazy again".into()))
            .await
            .expect("a lazy write");
        writer
            .write::<()>(Durability::Synced, Box::new(|_| Ok(())))
            .await
            .expect("an empty synced write");
        assert_eq!(syncs(), 1, "the empty synced batch synced the WAL");
        writer
            .write::<()>(Durability::Lazy, Box::new(|_| Ok(())))
            .await
            .expect("an empty lazy write");
        assert_eq!(syncs(), 1, "a lazy batch promises no sync");
    }

    /// A write that reports the `synchronous` setting its batch commits at
    /// (1 NORMAL, 2 FULL).
    fn synchronous_seen() -> WriteFn<i64> {
        Box::new(|conn| Ok(conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?))
    }

    /// Holds the writer inside a batch until `release` is sent, so that
    /// what is queued meanwhile shares the next batch.
    async fn hold(writer: &Writer) -> (tokio::task::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
        let (started, is_started) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let started = std::sync::Mutex::new(Some(started));
        let released = std::sync::Mutex::new(released);
        let holder = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .write::<()>(
                        Durability::Lazy,
                        Box::new(move |_| {
                            if let Some(started) = started.lock().expect("lock").take() {
                                let _ = started.send(());
                            }
                            let _ = released.lock().expect("lock").recv();
                            Ok(())
                        }),
                    )
                    .await
                    .expect("the holder commits");
            }
        });
        is_started.await.expect("the holder runs");
        (holder, release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_synced_unless_every_write_in_it_is_lazy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir)).expect("writer");
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
        release.send(()).expect("released");
        holder.await.expect("task");
        assert_eq!(lazy.await.expect("task").expect("lazy"), 2);
        assert_eq!(synced.await.expect("task").expect("synced"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_rolls_back_alone_and_its_batch_neighbours_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir)).expect("writer");
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
        assert_eq!(writer.batches(), 1, "the first batch is still held");
        release.send(()).expect("released");
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
        let check = Connection::open(dir.path().join("w.db")).expect("a second connection");
        let rows: i64 = check
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .expect("counted");
        assert_eq!(rows, 20, "durable, and nothing of the big write");
    }

    #[tokio::test]
    async fn a_write_alone_fails_alone_and_the_next_one_commits() {
        // (Each write here is a batch of its own: none is queued meanwhile.)
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir)).expect("writer");
        let full = writer
            .write(Durability::Synced, insert("x".repeat(1 << 20)))
            .await
            .expect_err("the file is full");
        assert!(full.to_string().contains("full"), "{full}");
        assert_eq!(
            writer.health().failing_batches,
            1,
            "a full disk is the store's trouble, whatever SQLite did with the transaction"
        );
        let refused = writer
            .write::<()>(
                Durability::Synced,
                Box::new(|conn| {
                    conn.execute("INSERT INTO t (x) VALUES ('half')", [])?;
                    conn.execute("INSERT INTO t (x) VALUES (NULL)", [])?;
                    Ok(())
                }),
            )
            .await
            .expect_err("NOT NULL");
        assert!(refused.to_string().contains("NOT NULL"), "{refused}");
        writer
            .write(Durability::Synced, insert("small".into()))
            .await
            .expect("the next write commits");
        let check = Connection::open(dir.path().join("w.db")).expect("a second connection");
        let rows: Vec<String> = check
            .prepare("SELECT x FROM t")
            .and_then(|mut rows| rows.query_map([], |row| row.get(0))?.collect())
            .expect("read back");
        assert_eq!(rows, ["small"], "nothing of the refused write's first half");
        assert_eq!(
            writer.health().failing_batches,
            0,
            "a refused write is no store failure"
        );
        assert_eq!(writer.batches(), 3, "each write was a batch of its own");
    }

    /// A write failing because of the store (here a disk-full code while
    /// SQLite kept the transaction) marks the store in trouble; its
    /// neighbours still commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_failing_for_the_store_marks_it_in_trouble() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = Writer::start(capped_connection(&dir)).expect("writer");
        let disk_full = || -> WriteFn<()> {
            Box::new(|_| {
                let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL);
                Err(rusqlite::Error::SqliteFailure(code, None).into())
            })
        };
        let (holder, release) = hold(&writer).await;
        let failing = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(Durability::Synced, disk_full()).await }
        });
        let neighbour = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(Durability::Synced, insert("n".into())).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).expect("released");
        holder.await.expect("task");
        failing.await.expect("task").expect_err("its own error");
        neighbour
            .await
            .expect("task")
            .expect("the neighbour commits");
        assert_eq!(writer.health().failing_batches, 1, "{:?}", writer.health());
    }
}
