//! What one merchant's calls may take of the sandbox together, so that a
//! runaway, sleeping or memory-hungry plugin cannot crowd out the others:
//!
//! - **instances**: how many of its calls may hold a sandbox at once (in
//!   front of the global pool's semaphore, so one merchant never takes every
//!   slot);
//! - **CPU slots**: how many of its calls may run wasm at once. A call holds
//!   a slot ([`CpuTurn`]) only while its wasm runs: it gives it up while it
//!   waits in a host call (a sleep, I/O) and at every epoch tick, then queues
//!   behind the merchant's other calls for it again. So a merchant's spinning
//!   calls take turns on its slots instead of every core, and its sleeping
//!   ones take none; a short call (most are) takes a free slot and is done;
//! - **memory**: how much linear memory its running calls may hold
//!   together, inside the gateway's overall memory budget. Growth past
//!   either traps that call (a memory-limit failure, 000005).
//!
//! And a merchant whose calls were lately *heavy* (ran wasm for
//! `wasm_cpu::HEAVY_CPU` of CPU, grew past the inline-reset size, or hit a
//! limit) is **demoted** for [`DEMOTION`]: its calls run on the
//! low-priority plugin threads (`threads.rs`), where their CPU and page
//! faults yield to the request path. Everyone else's calls run in place,
//! without that hop's cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{CallHook, CallHookHandler, StoreContextMut, Trap};

/// One merchant's share of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    /// Calls holding a sandbox at once.
    pub max_instances: u32,
    /// Calls running wasm at once.
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
    /// Demoted until this many ms after `created`.
    demoted_until_ms: AtomicU64,
    created: Instant,
}

/// How long a heavy call demotes its merchant's calls to the plugin threads.
pub const DEMOTION: Duration = Duration::from_secs(60);

impl MerchantShare {
    pub fn new(limits: ShareLimits) -> MerchantShare {
        MerchantShare {
            instances: Arc::new(Semaphore::new(limits.max_instances.max(1) as usize)),
            cpu: Arc::new(Semaphore::new(limits.cpu_slots.max(1) as usize)),
            memory: Arc::new(MemoryAccount::new("merchant", limits.memory_bytes)),
            limits,
            demoted_until_ms: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    /// Whether this merchant's calls run on the plugin threads now.
    pub fn demoted(&self) -> bool {
        self.since_created_ms() < self.demoted_until_ms.load(Ordering::Relaxed)
    }

    /// A heavy call: demote this merchant for [`DEMOTION`] from now.
    pub(crate) fn demote(&self) {
        let demotion = u64::try_from(DEMOTION.as_millis()).unwrap_or(u64::MAX);
        let until = self.since_created_ms().saturating_add(demotion);
        self.demoted_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn since_created_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
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

/// One call's turn on its merchant's CPU slots: taken whenever the call
/// enters wasm, given back whenever it leaves (for a host call, at an epoch
/// tick, at the end). Taking a turn waits at most until the call's deadline.
#[derive(Clone)]
pub(crate) struct CpuTurn {
    slot: Arc<TurnSlot>,
    deadline_at: Instant,
}

/// Whether a call holds one of its merchant's CPU slots. A flag and a
/// forgotten permit rather than a lock around a permit: a call crosses
/// between wasm and the host several times (every string of a request is
/// copied in through a guest allocation), and each crossing takes or gives
/// back its turn.
struct TurnSlot {
    slots: Arc<Semaphore>,
    held: AtomicBool,
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        if *self.held.get_mut() {
            self.slots.add_permits(1);
        }
    }
}

impl CpuTurn {
    pub(crate) fn new(share: &MerchantShare, deadline_at: Instant) -> CpuTurn {
        CpuTurn {
            slot: Arc::new(TurnSlot {
                slots: share.cpu.clone(),
                held: AtomicBool::new(false),
            }),
            deadline_at,
        }
    }

    /// Takes a slot (at once when one is free); `false` if the deadline
    /// passed first.
    pub(crate) async fn take(&self) -> bool {
        let slot = &self.slot;
        if slot.held.load(Ordering::Acquire) {
            return true;
        }
        match slot.slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => {
                let waited =
                    tokio::time::timeout_at(self.deadline_at.into(), slot.slots.acquire()).await;
                match waited {
                    Ok(Ok(permit)) => permit.forget(),
                    _ => return false,
                }
            }
        }
        slot.held.store(true, Ordering::Release);
        true
    }

    pub(crate) fn give_back(&self) {
        if self.slot.held.swap(false, Ordering::AcqRel) {
            self.slot.slots.add_permits(1);
        }
    }
}

/// Takes and gives back a call's [`CpuTurn`] as wasmtime crosses between
/// wasm and the host (`Store::call_hook_async`).
pub(crate) struct CpuTurnHook(pub(crate) CpuTurn);

#[async_trait::async_trait]
impl<T: Send> CallHookHandler<T> for CpuTurnHook {
    async fn handle_call_event(
        &self,
        _store: StoreContextMut<'_, T>,
        transition: CallHook,
    ) -> wasmtime::Result<()> {
        match transition {
            CallHook::CallingWasm | CallHook::ReturningFromHost => {
                if self.0.take().await {
                    Ok(())
                } else {
                    // Out of time waiting for a turn: the call's deadline.
                    Err(Trap::Interrupt.into())
                }
            }
            CallHook::ReturningFromWasm | CallHook::CallingHost => {
                self.0.give_back();
                Ok(())
            }
        }
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

    #[tokio::test]
    async fn a_cpu_turn_is_held_once_given_back_once_and_returned_when_dropped() {
        let share = MerchantShare::new(ShareLimits {
            max_instances: 4,
            cpu_slots: 1,
            memory_bytes: 1 << 20,
        });
        let soon = || Instant::now() + Duration::from_millis(50);
        let first = CpuTurn::new(&share, soon());
        assert!(first.take().await);
        assert!(
            first.take().await,
            "taking a held turn again holds one slot"
        );
        let second = CpuTurn::new(&share, soon());
        assert!(
            !second.take().await,
            "the only slot is held until the deadline"
        );

        first.give_back();
        first.give_back();
        assert_eq!(share.cpu.available_permits(), 1, "given back once");
        let third = CpuTurn::new(&share, soon());
        assert!(third.take().await);
        drop(third.clone());
        assert_eq!(share.cpu.available_permits(), 0, "a clone's drop keeps it");
        drop(third);
        assert_eq!(share.cpu.available_permits(), 1, "the last drop returns it");
    }
}
