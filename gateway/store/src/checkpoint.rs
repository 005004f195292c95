//! WAL checkpoints off the writer's thread.
//!
//! In WAL mode every committed page is written twice: appended to the WAL
//! by the commit, then copied into the database file by a checkpoint. By
//! default SQLite checkpoints on the committing connection once the WAL
//! passes 1,000 pages — on the one writer thread every callback's write
//! waits for (measured: most of a create's store time was page copying).
//! Here a thread of its own checkpoints (`PASSIVE`: it never blocks the
//! writer or a reader) as soon as the WAL passes [`CHECKPOINT_AT_BYTES`];
//! the writer keeps SQLite's automatic checkpoint only as a fallback, at
//! [`WRITER_FALLBACK_PAGES`], should this thread fall behind.
//!
//! Durability is unchanged: a commit is durable once in the WAL (its fsync);
//! a checkpoint only moves pages, and SQLite fsyncs the database file
//! before it lets the WAL be reused.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;

/// The WAL size at which this thread checkpoints.
pub const CHECKPOINT_AT_BYTES: u64 = 4 << 20;

/// The WAL size, in pages, at which the writer checkpoints itself.
pub const WRITER_FALLBACK_PAGES: u32 = 8_192;

/// How often the WAL's size is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(25);

/// Starts the checkpoint thread on `conn` (a connection of its own to the
/// database at `path`); it ends once `alive` cannot be upgraded (the store
/// is gone).
pub fn start<T: Send + Sync + 'static>(
    conn: Connection,
    path: PathBuf,
    alive: Weak<T>,
) -> std::io::Result<()> {
    let mut wal = path.into_os_string();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(LOOK_EVERY);
                let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                if size < CHECKPOINT_AT_BYTES {
                    continue;
                }
                // Best effort: a failure leaves the work to the writer's
                // fallback, and is tried again on the next look.
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::debug!(%error, "a background checkpoint failed");
                }
            }
        })?;
    Ok(())
}
