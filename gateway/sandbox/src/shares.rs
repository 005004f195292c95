//! What one merchant's calls may take of the sandbox together, so that a
//! runaway, sleeping or memory-hungry plugin cannot crowd out the others:
//!
//! - **instances**: how many of its calls may hold a sandbox at once (in
//!   front of the global pool's semaphore, so one merchant never takes every
//!   slot);
//! - **CPU slots**: how many of its calls may run wasm at once *past their
//!   first epoch tick*. A well-behaved call ends before its first tick and
//!   never touches them; a long-running one gives its slot up at every tick
//!   and queues for it again, so a merchant's spinning calls share its slots
//!   instead of every core;
//! - **memory**: how much linear memory its running calls may hold
//!   together, inside the gateway's overall memory budget. Growth past
//!   either traps that call (a memory-limit failure, 000005).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// One merchant's share of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    /// Calls holding a sandbox at once.
    pub max_instances: u32,
    /// Calls running wasm past their first epoch tick at once.
    pub cpu_slots: u32,
    /// Linear memory of all running calls together, in bytes.
    pub memory_bytes: usize,
}

/// A merchant's share, shared by all its calls. Build one per merchant.
#[derive(Debug)]
pub struct MerchantShare {
    pub(crate) limits: ShareLimits,
    pub(crate) instances: Arc<Semaphore>,
    pub(crate) cpu: Arc<Semaphore>,
    pub(crate) memory: Arc<MemoryAccount>,
}

impl MerchantShare {
    pub fn new(limits: ShareLimits) -> MerchantShare {
        MerchantShare {
            instances: Arc::new(Semaphore::new(limits.max_instances.max(1) as usize)),
            cpu: Arc::new(Semaphore::new(limits.cpu_slots.max(1) as usize)),
            memory: Arc::new(MemoryAccount::new("merchant", limits.memory_bytes)),
            limits,
        }
    }

    /// Calls of this merchant holding a sandbox right now.
    pub fn busy_instances(&self) -> usize {
        (self.limits.max_instances.max(1) as usize)
            .saturating_sub(self.instances.available_permits())
    }

    /// Linear memory this merchant's running calls hold right now.
    pub fn memory_in_use(&self) -> usize {
        self.memory.used()
    }
}

/// Memory charged against a budget by the calls that hold it.
#[derive(Debug)]
pub(crate) struct MemoryAccount {
    /// Whose budget, for the error (`merchant` or `gateway`).
    pub(crate) scope: &'static str,
    pub(crate) budget: usize,
    used: AtomicUsize,
}

impl MemoryAccount {
    pub(crate) fn new(scope: &'static str, budget: usize) -> MemoryAccount {
        MemoryAccount {
            scope,
            budget,
            used: AtomicUsize::new(0),
        }
    }

    /// Charges `bytes` if they fit the budget.
    pub(crate) fn charge(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.budget)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_charges_within_its_budget_and_releases() {
        let account = MemoryAccount::new("merchant", 100);
        assert!(account.charge(60));
        assert!(!account.charge(41), "past the budget");
        assert!(account.charge(40));
        account.release(50);
        assert_eq!(account.used(), 50);
        account.release(500);
        assert_eq!(account.used(), 0, "never below zero");
    }
}
