//! Connection threads: the callback port's connections served thread per
//! core. Each thread runs a single-threaded tokio runtime; the acceptor
//! hands every new connection to the next thread in turn, and the
//! connection's requests are read, verified, replayed and answered there.
//!
//! Why not tokio's work-stealing runtime for them: measured on the
//! project's 2-core machine (docs/benchmarks.md), a callback arriving at a
//! modest rate woke *both* of its workers (one to run it, one to look for
//! work to steal), so that every callback cost two threads' wake-ups and
//! the CPU they take; the native baseline, single-threaded, paid one.
//!
//! Plugin calls are not theirs: they run on the main, work-stealing
//! runtime (`crate::plugin_tasks`), so that one merchant's slow calls never
//! hold up the callbacks sharing its connection's thread. The admin port
//! and the background tasks (the callback log's writer, the completer, the
//! reaper) stay on the main runtime too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The connection threads of one `serve`.
pub struct ConnectionThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

impl ConnectionThreads {
    /// Starts `count` threads (at least one), each with its runtime.
    pub fn start(count: usize) -> std::io::Result<ConnectionThreads> {
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("connections-{index}"))
                    .spawn(move || runtime.block_on(stop.cancelled()))?,
            );
        }
        Ok(ConnectionThreads {
            handles,
            next: AtomicUsize::new(0),
            stop,
            threads,
        })
    }

    /// How many threads serve connections.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The runtime of the thread the next connection goes to.
    pub fn next(&self) -> &Handle {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.handles[turn % self.handles.len()]
    }

    /// Stops the threads once whatever they run is done or given up on
    /// (the caller has drained them): what is still there is dropped.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        // A `serve` that ended early (an error) leaves no thread behind.
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_round_robin_to_threads_of_their_own() {
        let threads = ConnectionThreads::start(2).expect("threads");
        let mut names = Vec::new();
        for _ in 0..4 {
            let name = threads
                .next()
                .spawn(async { std::thread::current().name().map(str::to_string) })
                .await
                .expect("ran");
            names.push(name.unwrap_or_default());
        }
        assert_eq!(
            names,
            [
                "connections-0",
                "connections-1",
                "connections-0",
                "connections-1"
            ]
        );
        threads.stop().await;
    }

    #[tokio::test]
    async fn stopping_ends_the_threads() {
        let threads = ConnectionThreads::start(1).expect("threads");
        let handle = threads.next().clone();
        threads.stop().await;
        let spawned = handle.spawn(async {});
        assert!(
            spawned.await.is_err(),
            "a stopped thread's runtime runs nothing more"
        );
    }
}
