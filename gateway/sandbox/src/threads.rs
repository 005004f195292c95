//! The threads a demoted merchant's plugin calls run on (see `shares`): a
//! tokio runtime of their own, whose threads lower their own OS scheduling
//! priority (`nice`) when they start.
//!
//! Why: a spinning or memory-hungry plugin keeps a thread busy for as long
//! as its CPU share allows. On the gateway's own runtime that thread would
//! be one of the few that also accept connections, verify signatures and
//! commit to the store, and the kernel would share the cores evenly between
//! it and them. Here the kernel runs the request path first whenever both
//! want a core, and all demoted merchants together get at most these
//! threads. Measured on 2 cores (docs/benchmarks.md, "Fairness between
//! merchants"): a mixed attack moved a well-behaved merchant's p99 1.55×
//! with demotion, 1.72× without; a memory-hungry one 2.05× against 3.84×.
//!
//! Why only the demoted: the hop onto these threads and back costs two
//! wake-ups, which doubled a short call's time (p50 31 → 73 µs) and halved
//! the sandbox's throughput. Lowering one's own priority needs no
//! privilege; raising it back would, which is why the threads stay lowered
//! for good.

use std::future::Future;

use tokio::task::JoinHandle;

/// How the plugin threads are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadSettings {
    /// Worker threads; 0: none, calls run on the caller's own runtime
    /// (no hop per call, no lower priority).
    pub threads: usize,
    /// How much below normal priority they run (0–19; 0 keeps normal).
    pub nice: i32,
}

/// The plugin threads' runtime. Dropping it stops them (calls in flight are
/// abandoned, as at shutdown).
pub(crate) struct PluginThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

impl PluginThreads {
    /// The threads `settings` asks for; none for 0.
    pub(crate) fn start(settings: ThreadSettings) -> std::io::Result<Option<PluginThreads>> {
        if settings.threads == 0 {
            return Ok(None);
        }
        let nice = settings.nice.clamp(0, 19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .thread_name("plugin")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Some(PluginThreads {
            runtime: Some(runtime),
        }))
    }

    /// Runs `call` on the plugin threads. Dropping the returned handle
    /// cancels the call (as dropping it in place would).
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> CallHandle<T> {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives until the plugin threads are dropped");
        CallHandle(runtime.spawn(call))
    }
}

impl Drop for PluginThreads {
    fn drop(&mut self) {
        // A runtime may not be dropped (it would block) inside another.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A call running on the plugin threads; aborted when dropped.
pub(crate) struct CallHandle<T>(JoinHandle<T>);

impl<T> CallHandle<T> {
    /// Waits for the call; `Err` if it panicked or its threads stopped.
    pub(crate) async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for CallHandle<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's priority by `nice`. Linux scopes
/// `setpriority(PRIO_PROCESS, 0)` to the calling thread. Best effort: a
/// thread left at normal priority is merely less polite.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: `setpriority` has no memory-safety preconditions.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn plugin_threads_run_below_normal_priority() {
        let threads = PluginThreads::start(ThreadSettings {
            threads: 1,
            nice: 7,
        })
        .expect("threads")
        .expect("one thread");
        // SAFETY: no preconditions; errno is not consulted (7 is not -1).
        let seen = threads
            .spawn(async { unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) } })
            .join()
            .await
            .expect("ran");
        // SAFETY: as above.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(seen, (ours + 7).min(19));
    }

    #[tokio::test]
    async fn a_dropped_handle_cancels_its_call() {
        let threads = PluginThreads::start(ThreadSettings {
            threads: 1,
            nice: 0,
        })
        .expect("threads")
        .expect("one thread");
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let handle = threads.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            let _ = done.send(());
        });
        drop(handle);
        assert!(
            finished.await.is_err(),
            "the call was dropped, not finished"
        );
    }
}
