//! Capped exponential backoff with full jitter, for retrying sinks while
//! offsets wait; and [`Fatal`], for the failures no retry can mend.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A failure retrying cannot mend (an authorization error, a record the
/// broker will never take): the stage gives up on that batch or message and
/// reports it to [`Fatal`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(pub String);

/// The first permanent failure any stage met. The pipeline waits on it: the
/// worker then stops, commits what is durable, and exits non-zero so that
/// the group gives its partitions to a healthy worker (RELIABILITY.md L7).
#[derive(Clone)]
pub struct Fatal(Arc<watch::Sender<Option<String>>>);

impl Fatal {
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(None)))
    }

    /// Records `failure` (the first one is kept) and returns it as an error.
    pub fn report(&self, failure: String) -> Permanent {
        tracing::error!(%failure, "permanent failure: the worker stops");
        self.0.send_if_modified(|first| first.is_none() && first.replace(failure.clone()).is_none());
        Permanent(failure)
    }

    /// Resolves with the first failure reported.
    pub async fn wait(&self) -> String {
        let mut first = self.0.subscribe();
        let failure = first.wait_for(Option::is_some).await.map(|f| f.clone().unwrap_or_default());
        match failure {
            Ok(failure) => failure,
            // The sender lives as long as `self`: never closed while awaited.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Default for Fatal {
    fn default() -> Self {
        Self::new()
    }
}

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

    #[tokio::test]
    async fn fatal_keeps_the_first_failure() {
        let fatal = Fatal::new();
        let waiting = tokio::spawn({
            let fatal = fatal.clone();
            async move { fatal.wait().await }
        });
        fatal.report("first".into());
        fatal.report("second".into());
        assert_eq!(waiting.await.expect("joined"), "first");
        assert_eq!(fatal.wait().await, "first");
    }

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let mut backoff = Backoff::new();
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100).saturating_mul(1 << attempt.min(16)).min(Duration::from_secs(10));
            assert!(backoff.next_delay() <= ceiling);
        }
    }
}
