//! The byte budget of what the worker holds from Kafka (`QUEUE_MAX_BYTES`):
//! a message takes its bytes when it is read and gives them back when its
//! work is over (result durable, dead-lettered, or dropped after a revoke),
//! wherever that happens. The source pauses the input while the budget is
//! spent, so a message may overshoot it once: one larger than the whole
//! budget still passes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// What a held message costs beyond its bytes: the job, its ticket and
/// position, the task or batch slot it sits in.
pub const PER_MESSAGE: usize = 512;

#[derive(Debug, Clone)]
pub struct ByteBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    held: AtomicUsize,
    max: usize,
    /// Wakes the source when the budget stops being spent.
    freed: Notify,
}

/// Bytes taken from the budget, given back when dropped.
#[derive(Debug)]
pub struct HeldBytes {
    budget: Arc<Inner>,
    bytes: usize,
}

impl ByteBudget {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Inner { held: AtomicUsize::new(0), max, freed: Notify::new() }))
    }

    pub fn take(&self, bytes: usize) -> HeldBytes {
        self.0.held.fetch_add(bytes, Ordering::AcqRel);
        HeldBytes { budget: self.0.clone(), bytes }
    }

    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::Acquire)
    }

    pub fn spent(&self) -> bool {
        self.held() >= self.0.max
    }

    /// Resolves once the budget goes from spent to not spent (at once if it
    /// did since the last call).
    pub async fn freed(&self) {
        self.0.freed.notified().await
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        let before = self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        if before >= self.budget.max && before - self.bytes < self.budget.max {
            self.budget.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_come_back_when_dropped_and_the_source_is_woken_once_freed() {
        let budget = ByteBudget::new(100);
        let a = budget.take(60);
        let b = budget.take(60);
        assert!(budget.spent());
        drop(a);
        assert!(!budget.spent());
        assert_eq!(budget.held(), 60);
        // The drop that freed the budget left a wake-up for the next wait.
        tokio::time::timeout(std::time::Duration::from_secs(1), budget.freed()).await.expect("woken");
        drop(b);
        assert_eq!(budget.held(), 0);
        let huge = budget.take(1000);
        assert!(budget.spent(), "one message larger than the budget is held (and pauses the rest)");
        drop(huge);
    }
}
