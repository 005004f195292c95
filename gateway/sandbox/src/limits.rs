//! Per-call resource limits, and the store's resource limiter that enforces
//! the memory limit (the call's own, its merchant's share, the gateway's
//! budget) and remembers what happened for error reporting.

use std::sync::Arc;
use std::time::Duration;

use crate::shares::MemoryAccount;

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

/// Why growth was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Past the call's own limit; the total it asked for.
    Limit(usize),
    /// Past a shared budget (`merchant` or `gateway`), of that many bytes.
    Budget { scope: &'static str, budget: usize },
}

/// Enforces the memory limit across all memories of one store, charges what
/// it commits to the shared accounts (released when the store is dropped),
/// and records the peak and the first refused growth.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    committed: usize,
    peak: usize,
    refused: Option<Refusal>,
    accounts: Vec<Arc<MemoryAccount>>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize, accounts: Vec<Arc<MemoryAccount>>) -> Self {
        MemoryLimiter {
            limit,
            committed: 0,
            peak: 0,
            refused: None,
            accounts,
        }
    }

    /// The most linear memory the store held at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// Why growth was refused, if it was.
    pub(crate) fn refused(&self) -> Option<Refusal> {
        self.refused
    }

    /// Charges `bytes` to every account, or to none.
    fn charge(&self, bytes: usize) -> Result<(), Refusal> {
        for (i, account) in self.accounts.iter().enumerate() {
            if !account.charge(bytes) {
                for charged in &self.accounts[..i] {
                    charged.release(bytes);
                }
                return Err(Refusal::Budget {
                    scope: account.scope,
                    budget: account.budget,
                });
            }
        }
        Ok(())
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
        // Trap rather than let `memory.grow` return -1: a guest allocator
        // would abort anyway, and this way the failure is unambiguous.
        if wanted > self.limit {
            self.refused = Some(Refusal::Limit(wanted));
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (asked for {wanted})",
                self.limit
            ));
        }
        let more = wanted.saturating_sub(self.committed);
        if let Err(refusal) = self.charge(more) {
            self.refused = Some(refusal);
            return Err(wasmtime::format_err!("a shared memory budget is exhausted"));
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

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        for account in &self.accounts {
            account.release(self.committed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn tracks_the_peak_across_memories_and_refuses_past_the_limit() {
        let mut limiter = MemoryLimiter::new(100, Vec::new());
        assert!(limiter.memory_growing(0, 40, None).is_ok());
        assert!(limiter.memory_growing(0, 30, None).is_ok());
        assert!(limiter.memory_growing(40, 60, None).is_ok());
        assert_eq!(limiter.peak(), 90);
        assert!(limiter.memory_growing(60, 80, None).is_err());
        assert_eq!(limiter.refused(), Some(Refusal::Limit(110)));
        assert_eq!(limiter.peak(), 90);
    }

    #[test]
    fn growth_is_charged_to_the_shared_budgets_and_released_on_drop() {
        let merchant = Arc::new(MemoryAccount::new("merchant", 100));
        let gateway = Arc::new(MemoryAccount::new("gateway", 150));
        let accounts = vec![merchant.clone(), gateway.clone()];
        let mut first = MemoryLimiter::new(100, accounts.clone());
        assert!(first.memory_growing(0, 60, None).is_ok());
        let mut second = MemoryLimiter::new(100, accounts.clone());
        assert!(
            second.memory_growing(0, 50, None).is_err(),
            "the merchant's share holds 100"
        );
        assert_eq!(
            second.refused(),
            Some(Refusal::Budget {
                scope: "merchant",
                budget: 100
            })
        );
        assert_eq!(gateway.used(), 60, "nothing charged for the refusal");
        drop(first);
        assert_eq!((merchant.used(), gateway.used()), (0, 0));
    }
}
