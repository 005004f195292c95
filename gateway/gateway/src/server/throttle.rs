//! Rate limits for log lines that anyone can cause (a refused, unsigned
//! request): at most a few per second are written, the rest are counted and
//! the count is reported with the next line that is. The metrics count every
//! event; the log only needs to say that it is happening.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `per_window` events per `window`.
#[derive(Debug)]
pub(crate) struct Throttle {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    started: Instant,
    allowed: u32,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new(per_window: u32, window: Duration) -> Throttle {
        Throttle {
            per_window,
            window,
            state: Mutex::new(State {
                started: Instant::now(),
                allowed: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` if this event may be logged, `n` being how many were
    /// suppressed since the last one that was; `None` if it must not.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.started.elapsed() >= self.window {
            state.started = Instant::now();
            state.allowed = 0;
        }
        if state.allowed < self.per_window {
            state.allowed += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_per_window_pass_and_the_rest_are_counted() {
        let throttle = Throttle::new(2, Duration::from_millis(50));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            throttle.admit(),
            Some(2),
            "the next one reports the suppressed"
        );
        assert_eq!(throttle.admit(), Some(0));
    }
}
