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
//! What waits is read from the WAL-index (the `-shm` file every connection
//! maps; its header is documented in SQLite's `walformat.html`): the last
//! committed frame (`mxFrame`) less the frames already copied
//! (`nBackfill`). Not the WAL file's size: SQLite reuses the file from its
//! start after a checkpoint and truncates it only to `journal_size_limit`,
//! so once grown the file stays large, and a size rule checkpointed at
//! every look (measured: 40 times a second at 1,000 creates/s, each a
//! database-file sync for a few pages).
//!
//! Durability is unchanged: a commit is durable once in the WAL (its fsync);
//! a checkpoint only moves pages, and SQLite fsyncs the database file
//! before it lets the WAL be reused.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;

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

/// The files beside a database in WAL mode.
pub(crate) struct WalFiles {
    wal: PathBuf,
    index: PathBuf,
}

impl WalFiles {
    pub(crate) fn of(database: PathBuf) -> WalFiles {
        let with = |suffix: &str| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        WalFiles {
            wal: with("-wal"),
            index: with("-shm"),
        }
    }

    /// Committed bytes not yet copied into the database file. Where the
    /// WAL-index cannot be read, the WAL file's size stands in (it is never
    /// less).
    fn waiting_bytes(&self) -> u64 {
        waiting_in_index(&self.index)
            .unwrap_or_else(|| std::fs::metadata(&self.wal).map_or(0, |m| m.len()))
    }

    /// The last committed frame (`mxFrame`), if the WAL-index can be read.
    pub(crate) fn last_frame(&self) -> Option<u32> {
        let mut field = [0u8; 4];
        File::open(&self.index)
            .ok()?
            .read_exact_at(&mut field, 16)
            .ok()?;
        Some(u32::from_ne_bytes(field))
    }

    /// Puts the WAL file's written pages on disk (nothing to do if there is
    /// no WAL file yet).
    pub(crate) fn sync_wal(&self) -> std::io::Result<()> {
        match File::open(&self.wal) {
            Ok(file) => file.sync_data(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Reads the WAL-index header: `szPage` (u16 at 14; 1 means 65,536),
/// `mxFrame` (u32 at 16), and the checkpoint's `nBackfill` (u32 at 96), in
/// the machine's byte order. Read without SQLite's locks: a header being
/// rewritten may read stale or mixed, which costs one early or late
/// checkpoint, never a wrong page (the checkpoint itself takes the locks).
fn waiting_in_index(index: &Path) -> Option<u64> {
    let mut header = [0u8; 100];
    File::open(index).ok()?.read_exact_at(&mut header, 0).ok()?;
    let u16_at = |at: usize| {
        header
            .get(at..at + 2)?
            .try_into()
            .ok()
            .map(u16::from_ne_bytes)
    };
    let u32_at = |at: usize| {
        header
            .get(at..at + 4)?
            .try_into()
            .ok()
            .map(u32::from_ne_bytes)
    };
    let page_size = match u16_at(14)? {
        1 => 65_536,
        size => u64::from(size),
    };
    let frames = u32_at(16)?.saturating_sub(u32_at(96)?);
    Some(u64::from(frames) * page_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &tempfile::TempDir) -> (Connection, PathBuf) {
        let path = dir.path().join("c.db");
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (x BLOB NOT NULL);",
        )
        .expect("a table");
        (conn, path)
    }

    #[test]
    fn what_waits_is_the_committed_frames_not_yet_copied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, path) = database(&dir);
        let files = WalFiles::of(path);
        // One transaction: one frame per page it dirtied (the new leaves,
        // their parent, the database header's page).
        let insert = |n: usize| {
            conn.execute_batch("BEGIN").expect("begun");
            for _ in 0..n {
                conn.execute("INSERT INTO t (x) VALUES (zeroblob(3000))", [])
                    .expect("inserted");
            }
            conn.execute_batch("COMMIT").expect("committed");
        };
        insert(50);
        let waiting = files.waiting_bytes();
        assert!(
            (50 * 4096..=60 * 4096).contains(&waiting),
            "50 pages and their B-tree's: {waiting}"
        );
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .expect("checkpointed");
        assert_eq!(files.waiting_bytes(), 0, "all copied");
        let wal_size = std::fs::metadata(&files.wal).expect("the WAL").len();
        assert!(wal_size > 50 * 4096, "the file stays large: {wal_size}");

        insert(3);
        let waiting = files.waiting_bytes();
        assert!(
            (3 * 4096..=6 * 4096).contains(&waiting),
            "only the new frames wait, whatever the file's size: {waiting}"
        );
    }

    #[test]
    fn without_an_index_the_wal_file_stands_in() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = WalFiles::of(dir.path().join("none.db"));
        assert_eq!(files.waiting_bytes(), 0);
        std::fs::write(&files.wal, [0u8; 5000]).expect("a WAL file");
        assert_eq!(files.waiting_bytes(), 5000);
    }
}
