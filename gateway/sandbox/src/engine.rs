//! The one wasmtime `Engine` of the process: its configuration (pooling
//! allocator sized for a server, epoch interruption, no component-model-async)
//! and the ticker thread that drives epochs.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::RuntimeError;

/// How the engine is sized (from the gateway's configuration; see
/// ARCHITECTURE.md for the arithmetic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// Sandboxes that may exist at once (pool slots, and permits of the
    /// semaphore in front of the pool).
    pub max_instances: u32,
    /// The largest linear memory any merchant may be given. This is also the
    /// per-slot virtual-memory reservation, so the process reserves about
    /// `2 × max_instances × (max_memory_bytes + 32 MiB guard)` of address space.
    pub max_memory_bytes: usize,
    /// Use the pooling allocator (about 3× cheaper per call). Turn off only
    /// where address space is scarce.
    pub pooling: bool,
    /// Whether a pool slot's reset scans for the pages the call dirtied
    /// (`PAGEMAP_SCAN`, Linux ≥ 6.7) instead of clearing all it keeps
    /// resident.
    pub pagemap_scan: PagemapScan,
}

/// [`EngineSettings::pagemap_scan`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PagemapScan {
    /// Where the kernel has it and no swap is active: wasmtime does not
    /// reset pages that were swapped out (its PR #14357), so with swap a
    /// slot could hand one call's data to the next.
    #[default]
    Auto,
    /// Always; the engine fails to start where the kernel lacks it. The
    /// operator vouches that swap stays off.
    On,
    Off,
}

/// How pool slots are made clean between calls, as decided at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotReset {
    /// Only the pages the call dirtied are reset (`PAGEMAP_SCAN`).
    DirtyPages,
    /// The slot's resident part is cleared whole, the rest decommitted.
    ClearResident,
    /// No pool: every call maps fresh memory.
    OnDemand,
}

impl SlotReset {
    /// The label used in the log and in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            SlotReset::DirtyPages => "dirty_pages",
            SlotReset::ClearResident => "clear_resident",
            SlotReset::OnDemand => "on_demand",
        }
    }
}

/// Whether any swap area is active (`/proc/swaps` lists one). Unreadable
/// counts as active: the safe answer.
fn swap_active() -> bool {
    std::fs::read_to_string("/proc/swaps").map_or(true, |swaps| swaps.lines().count() > 1)
}

/// The epoch tick: the granularity of deadlines and of yielding to other
/// tasks while wasm runs.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Memory a reused pool slot keeps resident instead of returning it to the
/// kernel: at least the guests' usual footprint, or calls on several threads
/// contend in `madvise`.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// A slot whose call held more memory than this is reset off the answering
/// task (see `reset_in_background`); below it the reset is a memset of at
/// most `KEEP_RESIDENT_BYTES` and a small `madvise`, cheaper than a hop.
pub(crate) const INLINE_RESET_BYTES: usize = 8 << 20;

/// Core instances, memories and tables one component may have. A Rust
/// `wasm32-wasip2` plugin has about 18 core instances (most are tiny
/// adapter shims), one memory and a handful of tables.
pub(crate) const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
pub(crate) const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
pub(crate) const MAX_TABLES_PER_COMPONENT: u32 = 16;
/// Guard region after each linear memory.
const MEMORY_GUARD_BYTES: u64 = 32 << 20;

impl EngineSettings {
    fn validate(&self) -> Result<(), RuntimeError> {
        let fail = |m: &str| Err(RuntimeError::Settings(m.to_string()));
        if self.max_instances == 0 {
            return fail("max_instances must be at least 1");
        }
        if self.max_memory_bytes < (1 << 20) {
            return fail("max_memory_bytes must be at least 1 MiB");
        }
        if u32::try_from(self.max_memory_bytes).is_err() {
            return fail("max_memory_bytes must be below 4 GiB (plugins use 32-bit memories)");
        }
        Ok(())
    }
}

/// Builds the engine, and says how its slots are reset. Call once per
/// process.
pub(crate) fn build_engine(settings: &EngineSettings) -> Result<(Engine, SlotReset), RuntimeError> {
    settings.validate()?;
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // On by default in wasmtime 48 and 50% slower per call; plugins do not
    // use component-model async.
    config.concurrency_support(false);
    // Bounded address space per memory (the default is 4 GiB + guard per
    // slot, about 1 TiB for 256 slots); wasmtime adds explicit bounds checks.
    config.memory_reservation(settings.max_memory_bytes as u64);
    config.memory_guard_size(MEMORY_GUARD_BYTES);
    config.memory_reservation_for_growth(0);
    let reset = if settings.pooling {
        let reset = slot_reset(settings.pagemap_scan)?;
        let mut pool = pool_config(settings);
        pool.pagemap_scan(match reset {
            SlotReset::DirtyPages => Enabled::Yes,
            _ => Enabled::No,
        });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        reset
    } else {
        SlotReset::OnDemand
    };
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
    Ok((engine, reset))
}

fn slot_reset(scan: PagemapScan) -> Result<SlotReset, RuntimeError> {
    let available = PoolingAllocationConfig::is_pagemap_scan_available();
    match scan {
        PagemapScan::Off => Ok(SlotReset::ClearResident),
        PagemapScan::On if available => Ok(SlotReset::DirtyPages),
        PagemapScan::On => Err(RuntimeError::Settings(
            "pagemap_scan is on, but this kernel has no PAGEMAP_SCAN (Linux 6.7 or later)".into(),
        )),
        PagemapScan::Auto if available && !swap_active() => Ok(SlotReset::DirtyPages),
        PagemapScan::Auto => Ok(SlotReset::ClearResident),
    }
}

fn pool_config(settings: &EngineSettings) -> PoolingAllocationConfig {
    let n = settings.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        .total_memories(n.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
        .total_tables(n.saturating_mul(MAX_TABLES_PER_COMPONENT))
        // Async calls run on fiber stacks, which come from the pool too.
        .total_stacks(n)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(settings.max_memory_bytes)
        .max_unused_warm_slots(n.min(100))
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    pool
}

/// Increments the engine's epoch every `tick` on a dedicated OS thread (not a
/// tokio task: if every worker is busy running guests, a task would starve
/// and deadlines would never fire). The thread ends with the engine.
pub(crate) fn spawn_epoch_ticker(engine: &Engine, tick: Duration) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_page_resets_need_the_kernel_and_no_swap_unless_insisted_on() {
        let available = PoolingAllocationConfig::is_pagemap_scan_available();
        assert_eq!(
            slot_reset(PagemapScan::Off).ok(),
            Some(SlotReset::ClearResident)
        );
        let auto = slot_reset(PagemapScan::Auto).ok();
        if available && !swap_active() {
            assert_eq!(auto, Some(SlotReset::DirtyPages));
        } else {
            assert_eq!(auto, Some(SlotReset::ClearResident));
        }
        assert_eq!(
            slot_reset(PagemapScan::On).is_ok(),
            available,
            "on: dirty pages where the kernel has them, else an error"
        );
    }
}
