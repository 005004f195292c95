//! Group commit: every write of the store goes through one task that owns
//! one connection, and commits whatever writes are waiting together — one
//! transaction, one fsync for the whole batch.
//!
//! Why: SQLite has one writer at a time and `synchronous=FULL` makes every
//! commit an fsync. Separate connections writing at once take turns through
//! the busy handler (which sleeps), and pay an fsync each; a single writer
//! batching N writes pays one fsync and never waits on a lock of its own.
//!
//! Each write runs inside a savepoint, so one write failing (a full disk
//! mid-batch, a constraint) rolls back only itself. Its caller hears the
//! result only after the batch's `COMMIT` succeeded: nobody is ever told
//! "done" about a write that is not durable.

use std::future::Future;
use std::pin::Pin;

use sqlx::{Connection as _, Executor as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// The most writes committed together.
const MAX_BATCH: usize = 64;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One write: runs its statements on the writer's connection, inside the
/// batch's transaction.
pub type WriteFn<T> = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send,
>;

/// A queued write, its result type erased.
trait Job: Send {
    /// Runs the write; what it returns delivers the result once the batch's
    /// fate is known.
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection)
    -> BoxFuture<'c, Box<dyn Delivery>>;
    /// The batch could not even begin.
    fn fail(self: Box<Self>, why: String);
}

trait Delivery: Send {
    fn succeeded(&self) -> bool;
    /// `committed`: whether the batch's COMMIT succeeded.
    fn deliver(self: Box<Self>, committed: Result<(), String>);
}

struct Typed<T> {
    write: WriteFn<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Outcome<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
    ) -> BoxFuture<'c, Box<dyn Delivery>> {
        let Typed { write, reply } = *self;
        Box::pin(async move {
            let result = write(conn).await;
            Box::new(Outcome { result, reply }) as Box<dyn Delivery>
        })
    }

    fn fail(self: Box<Self>, why: String) {
        let _ = self.reply.send(Err(StoreError::Commit(why)));
    }
}

impl<T: Send> Delivery for Outcome<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn deliver(self: Box<Self>, committed: Result<(), String>) {
        let result = match committed {
            Ok(()) => self.result,
            Err(why) => Err(StoreError::Commit(why)),
        };
        let _ = self.reply.send(result);
    }
}

/// The handle callers write through.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer task on `conn`.
    pub fn start(conn: SqliteConnection) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, queue));
        Writer { jobs }
    }

    /// Runs `write` in the next batch; resolves once the batch committed.
    pub async fn write<T: Send + 'static>(&self, write: WriteFn<T>) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed { write, reply });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(mut conn: SqliteConnection, mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, batch).await;
    }
    let _ = conn.close().await;
}

async fn commit_batch(conn: &mut SqliteConnection, batch: Vec<Box<dyn Job>>) {
    if let Err(error) = conn.execute("BEGIN IMMEDIATE").await {
        let why = error.to_string();
        for job in batch {
            job.fail(why.clone());
        }
        return;
    }
    let mut deliveries = Vec::with_capacity(batch.len());
    for job in batch {
        let started = conn.execute("SAVEPOINT write").await;
        if let Err(error) = started {
            job.fail(error.to_string());
            continue;
        }
        let delivery = job.run(conn).await;
        let closed = if delivery.succeeded() {
            conn.execute("RELEASE write").await
        } else {
            match conn.execute("ROLLBACK TO write").await {
                Ok(_) => conn.execute("RELEASE write").await,
                Err(error) => Err(error),
            }
        };
        if let Err(error) = closed {
            // The transaction is in an unknown state: fail it all.
            let why = error.to_string();
            deliveries.push(delivery);
            for delivery in deliveries {
                delivery.deliver(Err(why.clone()));
            }
            let _ = conn.execute("ROLLBACK").await;
            return;
        }
        deliveries.push(delivery);
    }
    let committed = match conn.execute("COMMIT").await {
        Ok(_) => Ok(()),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(error.to_string())
        }
    };
    for delivery in deliveries {
        delivery.deliver(committed.clone());
    }
}
