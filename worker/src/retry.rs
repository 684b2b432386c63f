//! Capped exponential backoff with full jitter, for retrying sinks while offsets wait.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self { attempt: 0, base: Duration::from_millis(100), cap: Duration::from_secs(10) }
    }

    /// The next delay: uniform in [0, min(cap, base * 2^attempt)].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1 << self.attempt.min(16)).min(self.cap);
        self.attempt += 1;
        ceiling.mul_f64(unit_random())
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

/// Uniform in [0, 1]: std's randomly seeded hasher is plenty for jitter.
fn unit_random() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let mut backoff = Backoff::new();
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100).saturating_mul(1 << attempt.min(16)).min(Duration::from_secs(10));
            assert!(backoff.next_delay() <= ceiling);
        }
    }
}
