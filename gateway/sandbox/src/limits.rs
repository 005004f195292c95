//! Per-call resource limits, and the store's resource limiter that enforces
//! the memory limit and remembers what happened for error reporting.

use std::time::Duration;

/// The limits of one plugin call. A merchant has its own deadline and
/// memory (configured); the output and log budgets are the sandbox's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock budget of the call, from its start: queueing for a sandbox,
    /// instantiation, guest execution and time blocked in host calls.
    pub deadline: Duration,
    /// Linear memory a plugin instance may use, in bytes.
    pub memory_bytes: usize,
    /// The largest answer a plugin may return (as JSON), in bytes.
    pub max_output_bytes: usize,
    /// Log budget of one call: structured records, and stdout and stderr
    /// (each), in bytes. Past it, output is dropped and counted.
    pub max_log_bytes: usize,
}

/// The largest answer a plugin may return: an instance id and a few URLs.
pub const MAX_OUTPUT_BYTES: usize = 64 << 10;
/// Log budget of one call (structured records; stdout and stderr each).
pub const MAX_LOG_BYTES: usize = 16 << 10;

impl CallLimits {
    /// A merchant's deadline and memory, with the sandbox's budgets.
    pub fn new(deadline: Duration, memory_bytes: usize) -> CallLimits {
        CallLimits {
            deadline,
            memory_bytes,
            max_output_bytes: MAX_OUTPUT_BYTES,
            max_log_bytes: MAX_LOG_BYTES,
        }
    }
}

/// Most instances, tables and memories one component may create: generous
/// for any real plugin, a hard stop for a hostile one.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Enforces the memory limit across all memories of one store and records the
/// peak and the first refused growth.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    committed: usize,
    peak: usize,
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            committed: 0,
            peak: 0,
            refused: None,
        }
    }

    /// The most linear memory the store held at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// The total size the store asked for when it was refused, if it was.
    pub(crate) fn refused(&self) -> Option<usize> {
        self.refused
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = self
            .committed
            .saturating_sub(current)
            .saturating_add(desired);
        if wanted > self.limit {
            self.refused = Some(wanted);
            // Trap rather than let `memory.grow` return -1: a guest allocator
            // would abort anyway, and this way the failure is unambiguous.
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (asked for {wanted})",
                self.limit
            ));
        }
        self.committed = wanted;
        self.peak = self.peak.max(wanted);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn tracks_the_peak_across_memories_and_refuses_past_the_limit() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 40, None).is_ok());
        assert!(limiter.memory_growing(0, 30, None).is_ok());
        assert!(limiter.memory_growing(40, 60, None).is_ok());
        assert_eq!(limiter.peak(), 90);
        assert!(limiter.memory_growing(60, 80, None).is_err());
        assert_eq!(limiter.refused(), Some(110));
        assert_eq!(limiter.peak(), 90);
    }
}
