//! Which input offsets are done. An offset is stored for commit only once
//! every message before it in its partition is done (its result in Postgres
//! and on the output topic, or it is in the DLQ): the contiguous done prefix.
//!
//! Each assignment of a partition is a new generation; work begun under an
//! older one (before a revoke) cannot move the offsets of the new owner.
//!
//! Offsets are auto-committed from the store every second, and committed
//! synchronously when partitions are revoked ([`OffsetsContext`]) and on shutdown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};

use crate::metrics::Metrics;

/// How long a revoke waits for the revoked partitions' in-flight messages.
const REVOKE_DRAIN: Duration = Duration::from_secs(10);

/// The input consumer: its context keeps the tracker in step with the group.
pub type WorkerConsumer = StreamConsumer<OffsetsContext>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
}

/// Proof that an offset was begun under a given assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub partition: Partition,
    pub offset: i64,
    generation: u64,
}

#[derive(Debug, Default)]
struct State {
    assigned: bool,
    generation: u64,
    pending: BTreeSet<i64>,
    /// One past the highest offset begun.
    next: i64,
    /// The last offset returned for storing.
    stored: i64,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: Mutex<HashMap<Partition, State>>,
}

impl OffsetTracker {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Partition, State>) -> T) -> T {
        f(&mut self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A partition was assigned to us: a new generation starts.
    pub fn assign(&self, partition: Partition) {
        self.with(|map| {
            let state = map.entry(partition).or_default();
            *state = State { assigned: true, generation: state.generation + 1, ..State::default() };
        });
    }

    /// A partition was revoked: whatever is still in flight for it no longer moves offsets.
    pub fn revoke(&self, partition: &Partition) {
        self.with(|map| {
            if let Some(state) = map.get_mut(partition) {
                *state = State { generation: state.generation + 1, ..State::default() };
            }
        });
    }

    /// The ticket a message received now would get, if its partition is ours.
    pub fn ticket(&self, partition: Partition, offset: i64) -> Option<Ticket> {
        self.with(|map| {
            let state = map.get(&partition).filter(|s| s.assigned)?;
            Some(Ticket { generation: state.generation, partition, offset })
        })
    }

    /// Marks a message as in flight. False if its partition was revoked since
    /// the ticket was issued: drop the message, its new owner will read it.
    /// Messages must be begun in offset order per partition.
    pub fn begin(&self, ticket: &Ticket) -> bool {
        self.with(|map| match map.get_mut(&ticket.partition) {
            Some(state) if state.assigned && state.generation == ticket.generation => {
                if state.next == 0 {
                    state.stored = ticket.offset; // where this generation starts reading: nothing to store yet
                }
                state.pending.insert(ticket.offset);
                state.next = state.next.max(ticket.offset + 1);
                true
            }
            _ => false,
        })
    }

    /// Marks a message done. Returns the offset to store (the next one to read)
    /// when the done prefix of its partition grew.
    pub fn finish(&self, ticket: &Ticket) -> Option<i64> {
        self.finish_and(ticket, |_| {})
    }

    /// [`finish`](Self::finish), then `store(offset)` while still holding the
    /// tracker, so a revoke and reassign cannot come between the generation
    /// check and the store (an older generation's offset stored after the new
    /// owner's would move the committed offset backwards).
    pub fn finish_and(&self, ticket: &Ticket, store: impl FnOnce(i64)) -> Option<i64> {
        self.with(|map| {
            let state = map.get_mut(&ticket.partition).filter(|s| s.generation == ticket.generation)?;
            state.pending.remove(&ticket.offset);
            let point = state.pending.first().copied().unwrap_or(state.next);
            (point > state.stored).then(|| {
                state.stored = point;
                store(point);
                point
            })
        })
    }

    /// Messages in flight for a partition.
    pub fn in_flight(&self, partition: &Partition) -> usize {
        self.with(|map| map.get(partition).map_or(0, |s| s.pending.len()))
    }

    /// Messages in flight in all partitions.
    pub fn total_in_flight(&self) -> usize {
        self.with(|map| map.values().map(|s| s.pending.len()).sum())
    }
}

/// Marks a message done and stores the partition's new offset if it moved.
pub fn store(consumer: &WorkerConsumer, tracker: &OffsetTracker, ticket: &Ticket) {
    tracker.finish_and(ticket, |next| {
        // `store_offsets` stores the offset as given (the next to read);
        // `store_offset` would add one.
        let mut list = TopicPartitionList::new();
        let stored = list
            .add_partition_offset(&ticket.partition.topic, ticket.partition.partition, rdkafka::Offset::Offset(next))
            .and_then(|()| consumer.store_offsets(&list));
        if let Err(e) = stored {
            tracing::debug!(error = %e, partition = ticket.partition.partition, "offset not stored (partition revoked?)");
        }
    });
}

/// The consumer's callbacks: rebalances move the tracker's generations and
/// give new partitions the source's pause state, and librdkafka's statistics
/// give the lag metric.
pub struct OffsetsContext {
    pub tracker: Arc<OffsetTracker>,
    /// Whether the source holds its input paused (its queue is full).
    /// librdkafka keeps a partition's pause flag while it is revoked and
    /// assigned again, and does not pause one that is new to us, so each
    /// assignment is paused or resumed to match.
    pub input_paused: AtomicBool,
    pub metrics: Arc<Metrics>,
    pub input_topic: String,
    /// Results counted at the last statistics, and the recent rate.
    pub rate: Mutex<RecentRate>,
}

/// Results per second, smoothed over the last few statistics intervals.
#[derive(Debug, Default)]
pub struct RecentRate {
    last: Option<(Instant, u64)>,
    per_second: f64,
}

impl RecentRate {
    /// Folds in `done`, the results made so far; returns the rate.
    fn update(&mut self, done: u64) -> f64 {
        let now = Instant::now();
        if let Some((at, before)) = self.last {
            let seconds = now.duration_since(at).as_secs_f64();
            if seconds > 0.0 {
                let latest = done.saturating_sub(before) as f64 / seconds;
                self.per_second = 0.5 * self.per_second + 0.5 * latest;
            }
        }
        self.last = Some((now, done));
        self.per_second
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements().iter().map(|e| Partition { topic: e.topic().to_string(), partition: e.partition() }).collect()
}

impl ClientContext for OffsetsContext {
    fn stats(&self, statistics: Statistics) {
        // Assigned partitions only: librdkafka reports -1 for the others.
        let lag: BTreeMap<i32, i64> = statistics
            .topics
            .get(&self.input_topic)
            .map(|t| t.partitions.values().filter(|p| p.partition >= 0 && p.consumer_lag >= 0))
            .into_iter()
            .flatten()
            .map(|p| (p.partition, p.consumer_lag))
            .collect();
        let rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner).update(self.metrics.messages_out.get());
        self.metrics.set_lag(lag, rate);
    }
}

impl ConsumerContext for OffsetsContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else { return };
        let revoked = partitions(list);
        if !consumer.assignment_lost() {
            // Let what is in flight for these partitions finish, so that their
            // new owner does not redo it, then commit.
            let in_flight: usize = revoked.iter().map(|p| self.tracker.in_flight(p)).sum();
            if in_flight > 0 {
                tracing::info!(in_flight, "partitions being revoked: waiting for their in-flight messages");
            }
            let start = Instant::now();
            while revoked.iter().any(|p| self.tracker.in_flight(p) > 0) && start.elapsed() < REVOKE_DRAIN {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke");
            }
        }
        for p in &revoked {
            self.tracker.revoke(p);
        }
        tracing::info!(partitions = ?revoked.iter().map(|p| p.partition).collect::<Vec<_>>(), "partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned = partitions(list);
            for p in &assigned {
                self.tracker.assign(p.clone());
            }
            let matched =
                if self.input_paused.load(Ordering::Relaxed) { consumer.pause(list) } else { consumer.resume(list) };
            if let Err(e) = matched {
                tracing::warn!(error = %e, "assigned partitions not given the input's pause state");
            }
            tracing::info!(partitions = ?assigned.iter().map(|p| p.partition).collect::<Vec<_>>(), "partitions assigned");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        Partition { topic: "t".into(), partition: n }
    }

    fn begun(tracker: &OffsetTracker, partition: i32, offset: i64) -> Ticket {
        let ticket = tracker.ticket(p(partition), offset).expect("assigned");
        assert!(tracker.begin(&ticket));
        ticket
    }

    #[test]
    fn only_the_contiguous_done_prefix_is_stored() {
        let tracker = OffsetTracker::default();
        tracker.assign(p(0));
        let t: Vec<Ticket> = (10..14).map(|o| begun(&tracker, 0, o)).collect();
        assert_eq!(tracker.finish(&t[1]), None, "10 is still in flight");
        assert_eq!(tracker.finish(&t[3]), None);
        assert_eq!(tracker.finish(&t[0]), Some(12), "10 and 11 done: next to read is 12");
        assert_eq!(tracker.finish(&t[2]), Some(14));
        assert_eq!(tracker.in_flight(&p(0)), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let tracker = OffsetTracker::default();
        tracker.assign(p(0));
        tracker.assign(p(1));
        let a = begun(&tracker, 0, 5);
        let b = begun(&tracker, 1, 7);
        assert_eq!(tracker.finish(&b), Some(8));
        assert_eq!(tracker.total_in_flight(), 1);
        assert_eq!(tracker.finish(&a), Some(6));
    }

    #[test]
    fn a_store_and_a_revoke_never_interleave() {
        let tracker = std::sync::Arc::new(OffsetTracker::default());
        tracker.assign(p(0));
        let ticket = begun(&tracker, 0, 7);
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let storing = {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                tracker.finish_and(&ticket, |_| {
                    entered_tx.send(()).expect("send");
                    go_rx.recv().expect("go"); // hold the store open
                })
            })
        };
        entered_rx.recv().expect("the store began");
        let revoking = {
            let tracker = tracker.clone();
            std::thread::spawn(move || tracker.revoke(&p(0)))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!revoking.is_finished(), "the revoke waits for the store to finish");
        go_tx.send(()).expect("go");
        assert_eq!(storing.join().expect("store"), Some(8));
        revoking.join().expect("revoke");
        assert!(tracker.ticket(p(0), 8).is_none(), "revoked");
    }

    #[test]
    fn work_from_before_a_revoke_moves_nothing() {
        let tracker = OffsetTracker::default();
        tracker.assign(p(0));
        let old = begun(&tracker, 0, 3);
        let issued_before_revoke = tracker.ticket(p(0), 4).expect("assigned");
        tracker.revoke(&p(0));
        assert!(tracker.ticket(p(0), 5).is_none(), "not ours any more");
        assert!(!tracker.begin(&issued_before_revoke), "received before the revoke: dropped");
        tracker.assign(p(0));
        let new = begun(&tracker, 0, 3);
        assert_eq!(tracker.finish(&old), None, "an old generation's result stores nothing");
        assert_eq!(tracker.in_flight(&p(0)), 1);
        assert_eq!(tracker.finish(&new), Some(4));
    }
}
