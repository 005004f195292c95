//! WAL checkpoints off the writer's thread.
//!
//! In WAL mode every committed page is written twice: appended to the WAL
//! by the commit, then copied into the database file by a checkpoint. By
//! default SQLite checkpoints on the committing connection once the WAL
//! passes 1,000 pages — on the one writer thread every callback's write
//! waits for (measured: most of a create's store time was page copying).
//! Here a thread of its own checkpoints (`PASSIVE`: it never blocks the
//! writer or a reader) as soon as [`CHECKPOINT_AT_BYTES`] of committed pages
//! wait in the WAL to be copied; the writer keeps SQLite's automatic
//! checkpoint only as a fallback, at [`WRITER_FALLBACK_PAGES`], should this
//! thread fall behind.
//!
//! What waits is the WAL-index's count of frames not yet copied
//! (`wal_files`), not the WAL file's size: SQLite reuses the file from its
//! start after a checkpoint and truncates it only to `journal_size_limit`,
//! so once grown the file stays large, and a size rule checkpointed at
//! every look (measured: 40 times a second at 1,000 creates/s, each a
//! database-file sync for a few pages).
//!
//! Durability is unchanged: a commit is durable once in the WAL (its fsync);
//! a checkpoint only moves pages, and SQLite fsyncs the database file
//! before it lets the WAL be reused.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;

use crate::wal_files::WalFiles;

/// Committed bytes waiting in the WAL at which this thread checkpoints.
pub const CHECKPOINT_AT_BYTES: u64 = 4 << 20;

/// The WAL size, in pages, at which the writer checkpoints itself.
pub const WRITER_FALLBACK_PAGES: u32 = 8_192;

/// How often the WAL-index is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(25);

/// Starts the checkpoint thread on `conn` (a connection of its own to the
/// database at `path`); it ends once `alive` cannot be upgraded (the store
/// is gone).
pub fn start<T: Send + Sync + 'static>(
    conn: Connection,
    path: PathBuf,
    alive: Weak<T>,
) -> std::io::Result<()> {
    let files = WalFiles::of(path);
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(LOOK_EVERY);
                if files.waiting_bytes() < CHECKPOINT_AT_BYTES {
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
