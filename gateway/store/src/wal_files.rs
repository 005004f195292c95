//! The files beside an SQLite database in WAL mode, and what the WAL-index
//! (the `-shm` file every connection maps; its header is documented in
//! SQLite's `walformat.html`) says about them: the last committed frame
//! (`mxFrame`) and the frames a checkpoint has copied (`nBackfill`). The
//! checkpoint thread decides by what waits to be copied; the writer tells
//! by the last frame whether a commit appended anything.
//!
//! Read without SQLite's locks: a header being rewritten may read stale or
//! mixed, which costs one checkpoint early or late, or one sync more; never
//! a wrong page (checkpoints and commits take the locks themselves). One
//! gap is known: if another process commits lazily between the writer's two
//! reads, the writer takes that for its own commit and skips the sync
//! (replicas that serve together share PostgreSQL, not an SQLite file).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The files beside a database in WAL mode.
pub struct WalFiles {
    wal: PathBuf,
    index: PathBuf,
    /// The WAL-index, opened at its first read and kept: the writer reads
    /// it around every synced batch. Its owner keeps a connection to the
    /// database open, so the file stays the one SQLite maps.
    index_file: OnceLock<File>,
}

/// The WAL-index header's fields read here (offsets per `walformat.html`):
/// `szPage` (u16; 1 means 65,536), `mxFrame` (u32), and the checkpoint's
/// `nBackfill` (u32), in the machine's byte order.
const PAGE_SIZE_AT: usize = 14;
const LAST_FRAME_AT: usize = 16;
const COPIED_AT: usize = 96;
const HEADER_BYTES: usize = COPIED_AT + 4;

impl WalFiles {
    pub fn of(database: PathBuf) -> WalFiles {
        let with = |suffix: &str| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        WalFiles {
            wal: with("-wal"),
            index: with("-shm"),
            index_file: OnceLock::new(),
        }
    }

    /// Committed bytes not yet copied into the database file. Where the
    /// WAL-index cannot be read, the WAL file's size stands in (it is never
    /// less).
    pub fn waiting_bytes(&self) -> u64 {
        self.waiting_in_index()
            .unwrap_or_else(|| std::fs::metadata(&self.wal).map_or(0, |m| m.len()))
    }

    /// The last committed frame (`mxFrame`), if the WAL-index can be read.
    pub fn last_frame(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(field(&self.header()?, LAST_FRAME_AT)?))
    }

    /// Puts the WAL file's written pages on disk (nothing to do if there is
    /// no WAL file yet).
    pub fn sync_wal(&self) -> std::io::Result<()> {
        match File::open(&self.wal) {
            Ok(file) => file.sync_data(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn waiting_in_index(&self) -> Option<u64> {
        let header = self.header()?;
        let page_size = match u16::from_ne_bytes(field(&header, PAGE_SIZE_AT)?) {
            1 => 65_536,
            size => u64::from(size),
        };
        let last_frame = u32::from_ne_bytes(field(&header, LAST_FRAME_AT)?);
        let copied = u32::from_ne_bytes(field(&header, COPIED_AT)?);
        Some(u64::from(last_frame.saturating_sub(copied)) * page_size)
    }

    fn header(&self) -> Option<[u8; HEADER_BYTES]> {
        let file = match self.index_file.get() {
            Some(file) => file,
            None => {
                let opened = File::open(&self.index).ok()?;
                self.index_file.get_or_init(|| opened)
            }
        };
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact_at(&mut header, 0).ok()?;
        Some(header)
    }
}

/// The `N` bytes of `header` at `at`.
fn field<const N: usize>(header: &[u8], at: usize) -> Option<[u8; N]> {
    header.get(at..at + N)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use rusqlite::Connection;

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
