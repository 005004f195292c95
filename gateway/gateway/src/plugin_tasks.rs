//! Where plugin calls run: each in a task of its own (a client that
//! disconnects never aborts a call halfway), tracked (shutdown waits for
//! them), and on the runtime the gateway was started on — the main,
//! work-stealing one — whichever thread the callback arrived on.
//!
//! Why not on the connection thread that asked (`server::connection_threads`):
//! a merchant's calls that spin until their deadline would then hold up
//! every other callback on that thread, whatever its merchant; measured by
//! the fairness test (`gateway-cli`'s `tests/fairness.rs`), a well-behaved
//! merchant's p99 under attack went from 10–13 ms to 21–38 ms. On the
//! work-stealing runtime another worker takes the other callbacks' calls,
//! and heavy merchants move on to the sandbox's low-priority threads. A
//! replay runs no plugin and stays on its connection thread.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Spawns plugin calls (see the module docs).
#[derive(Clone, Debug)]
pub struct PluginTasks {
    tracker: TaskTracker,
    /// The runtime current when this was made; none outside one (tests
    /// that build parts without a runtime), where tasks go to the caller's.
    runtime: Option<Handle>,
}

impl PluginTasks {
    /// Plugin tasks on the runtime this is called on.
    pub fn on_current_runtime() -> PluginTasks {
        PluginTasks {
            tracker: TaskTracker::new(),
            runtime: Handle::try_current().ok(),
        }
    }

    /// Runs `task` on the plugin runtime, tracked.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => self.tracker.spawn_on(task, runtime),
            None => self.tracker.spawn(task),
        }
    }

    /// Takes no more tasks (the ones running go on).
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Resolves once closed and every task has ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_the_runtime_they_were_made_on_whoever_spawns_them() {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("main-runtime")
            .build()
            .expect("runtime");
        let tasks = main.block_on(async { PluginTasks::on_current_runtime() });
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ran_on = other.block_on(async {
            tasks
                .spawn(async { std::thread::current().name().map(str::to_string) })
                .await
                .expect("ran")
        });
        assert_eq!(ran_on.as_deref(), Some("main-runtime"));
        tasks.close();
        main.block_on(tasks.wait());
    }
}
