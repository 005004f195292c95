//! How much CPU one call spent running wasm, measured where it is cheap
//! enough: at the epoch ticks it sees (see `on_epoch_tick`), which a short
//! call rarely does. A call is *heavy* (and demotes its merchant, see
//! `shares`) when that CPU reaches [`HEAVY_CPU`].
//!
//! Why CPU and not ticks: epoch ticks follow the wall clock. On a busy
//! machine the kernel may take a core from a 20 µs call for longer than a
//! tick, and counting its ticks then demoted a well-behaved merchant (seen
//! under the served create benchmark: a fifth of the server's samples on
//! the plugin threads after one such call), whose calls, on the lowered
//! threads, were preempted more often still and so stayed demoted.
//!
//! What is measured: the thread's CPU clock from the moment the call
//! resumes wasm after a tick (its mark) to the next tick, if both fall on
//! the same thread within [`SEGMENT_MAX`] of wall time. A longer segment
//! waited for something (a host call that suspended, a preemption) and may
//! hold other tasks' CPU, so it is not counted; a spinning call is ticked
//! every [`EPOCH_TICK`](crate::engine::EPOCH_TICK) and so keeps giving short
//! segments. Reading a thread's CPU clock costs about half a microsecond
//! here, which is why it is read at ticks only, never per call.

use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::engine::EPOCH_TICK;

/// CPU in wasm that makes a call heavy: half a tick between two ticks is
/// already more than any well-behaved call takes in all.
pub(crate) const HEAVY_CPU: Duration = Duration::from_millis(5);

/// The longest segment (mark to tick, wall time) that is counted.
const SEGMENT_MAX: Duration = match EPOCH_TICK.checked_div(2) {
    Some(half) => EPOCH_TICK.saturating_add(half),
    None => EPOCH_TICK,
};

/// One call's CPU in wasm, as far as its ticks measured it.
#[derive(Debug, Default)]
pub(crate) struct WasmCpu {
    state: Mutex<Measured>,
}

#[derive(Debug, Default)]
struct Measured {
    mark: Option<Mark>,
    used: Duration,
}

/// Where and when the call last resumed wasm.
#[derive(Debug, Clone, Copy)]
struct Mark {
    thread: ThreadId,
    at: Instant,
    cpu: Duration,
}

impl Mark {
    fn here() -> Option<Mark> {
        Some(Mark {
            thread: std::thread::current().id(),
            at: Instant::now(),
            cpu: thread_cpu()?,
        })
    }
}

impl WasmCpu {
    /// The call resumes wasm on this thread now.
    pub(crate) fn resume(&self) {
        self.lock().mark = Mark::here();
    }

    /// A tick on this thread: counts the segment since the mark, if it was
    /// one stretch of running (see the module's docs).
    pub(crate) fn tick(&self) {
        let mut state = self.lock();
        let (Some(mark), Some(now)) = (state.mark.take(), Mark::here()) else {
            return;
        };
        let wall = now.at.duration_since(mark.at);
        if mark.thread == now.thread && wall <= SEGMENT_MAX {
            let cpu = now.cpu.saturating_sub(mark.cpu).min(wall);
            state.used = state.used.saturating_add(cpu);
        }
    }

    /// Whether the call ran wasm for [`HEAVY_CPU`] or more.
    pub(crate) fn heavy(&self) -> bool {
        self.lock().used >= HEAVY_CPU
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Measured> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The calling thread's CPU time (user + system). `None` where the
/// platform has no per-thread clock: then no call is heavy by its CPU (its
/// memory and limits still count).
fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec for the call.
        let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        if read != 0 {
            return None;
        }
        let secs = u64::try_from(now.tv_sec).ok()?;
        let nanos = u32::try_from(now.tv_nsec).ok()?;
        Some(Duration::new(secs, nanos))
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin_for(wall: Duration) {
        let until = Instant::now() + wall;
        let mut x = 0u64;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn a_segment_spent_running_counts_and_makes_the_call_heavy() {
        let cpu = WasmCpu::default();
        cpu.resume();
        spin_for(HEAVY_CPU + Duration::from_millis(2));
        cpu.tick();
        assert!(cpu.heavy());
    }

    #[test]
    fn time_off_the_cpu_does_not_count() {
        // A preempted call: the wall clock runs, its thread's CPU clock does
        // not. Within SEGMENT_MAX, so the segment is measured, and found
        // light.
        let cpu = WasmCpu::default();
        cpu.resume();
        std::thread::sleep(HEAVY_CPU + Duration::from_millis(3));
        cpu.tick();
        assert!(!cpu.heavy());
    }

    #[test]
    fn segments_add_up() {
        let cpu = WasmCpu::default();
        for _ in 0..2 {
            cpu.resume();
            spin_for(HEAVY_CPU / 2 + Duration::from_millis(1));
            cpu.tick();
        }
        assert!(cpu.heavy());
    }

    #[test]
    fn a_tick_without_a_mark_or_on_another_thread_counts_nothing() {
        let cpu = std::sync::Arc::new(WasmCpu::default());
        spin_for(HEAVY_CPU * 2);
        cpu.tick();
        assert!(!cpu.heavy(), "no mark: nothing measured");

        cpu.resume();
        let elsewhere = cpu.clone();
        std::thread::spawn(move || {
            spin_for(HEAVY_CPU * 2);
            elsewhere.tick();
        })
        .join()
        .expect("the other thread ran");
        assert!(!cpu.heavy(), "a tick on another thread is no segment");
    }
}
