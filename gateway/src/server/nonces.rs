//! Replay protection for V2 callbacks: every `(merchant, nonce)` seen with a
//! valid signature is remembered for at least twice the timestamp window,
//! and a second sighting is refused.
//!
//! The memory is per process (a bounded moka cache). Several replicas behind
//! a load balancer each remember what they saw; moving nonces into the shared
//! store is the idempotency issue's job. A replay that lands on another
//! replica still meets the timestamp window and, for every mutating
//! activity, the idempotent answer.

use std::time::Duration;

use moka::sync::Cache;

pub struct NonceMemory {
    seen: Cache<(String, String), ()>,
}

impl NonceMemory {
    pub fn new(remember_for: Duration, capacity: u64) -> Self {
        NonceMemory {
            seen: Cache::builder()
                .time_to_live(remember_for)
                .max_capacity(capacity)
                .build(),
        }
    }

    /// Records the nonce; false if it was already there (a replay). Atomic:
    /// of two concurrent identical requests, exactly one is first.
    pub fn first_sighting(&self, merchant: &str, nonce: &str) -> bool {
        self.seen
            .entry((merchant.to_string(), nonce.to_string()))
            .or_insert(())
            .is_fresh()
    }

    pub fn len(&self) -> u64 {
        self.seen.run_pending_tasks();
        self.seen.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_fresh_once_per_merchant() {
        let nonces = NonceMemory::new(Duration::from_secs(60), 100);
        assert!(nonces.first_sighting("acme", "n1"));
        assert!(!nonces.first_sighting("acme", "n1"));
        assert!(nonces.first_sighting("other", "n1"));
        assert_eq!(nonces.len(), 2);
    }

    #[test]
    fn concurrent_duplicates_have_exactly_one_winner() {
        let nonces = std::sync::Arc::new(NonceMemory::new(Duration::from_secs(60), 100));
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let nonces = nonces.clone();
                    scope.spawn(move || usize::from(nonces.first_sighting("m", "same")))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(winners, 1);
    }
}
