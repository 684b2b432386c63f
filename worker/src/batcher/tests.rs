use tokio::sync::oneshot;

use super::*;
use crate::stages::{Answer, Origin};

/// A job for the stream lane (where its origin is never looked at).
fn job(id: usize, len: usize) -> Job {
    http_job(id, len).0
}

/// An HTTP job and its caller's end: dropping that abandons the job.
fn http_job(id: usize, len: usize) -> (Job, oneshot::Receiver<Answer>) {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        id: id.to_string(),
        text: String::new(),
        tokens: vec![1; len],
        encoder: 0,
        enqueued: Instant::now(),
        origin: Origin::Http(reply),
    };
    (job, answer)
}

fn limits(max_size: usize, max_tokens: usize) -> Limits {
    Limits { max_size, max_tokens, max_wait: Duration::from_millis(20), http_share: 0.5 }
}

fn ids(batch: &[Job]) -> Vec<String> {
    let mut ids: Vec<String> = batch.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    ids
}

#[test]
fn a_batch_respects_size_and_token_limits() {
    let mut window: Vec<Job> = (0..10).map(|i| job(i, 10)).collect();
    let batch = cut_stream(&mut window, &limits(4, 1000));
    assert_eq!(batch.len(), 4);
    let batch = cut_stream(&mut window, &limits(100, 30));
    assert_eq!(batch.len(), 3, "3 x 10 tokens fit in 30");
    assert_eq!(window.len(), 3);
}

#[test]
fn the_oldest_job_is_always_taken_with_its_nearest_lengths() {
    // lengths: oldest is 50; others 5, 48, 52, 200
    let mut window = vec![job(0, 50), job(1, 5), job(2, 48), job(3, 52), job(4, 200)];
    let batch = cut_stream(&mut window, &limits(3, 10_000));
    assert_eq!(ids(&batch), ["0", "2", "3"]);
    assert_eq!(ids(&window), ["1", "4"]);
}

#[test]
fn a_text_longer_than_the_token_budget_still_goes_alone() {
    let mut window = vec![job(0, 600), job(1, 600)];
    let batch = cut_stream(&mut window, &limits(64, 512));
    assert_eq!(ids(&batch), ["0"]);
}

#[test]
fn http_jobs_go_first() {
    let (a, _a) = http_job(100, 10);
    let (b, _b) = http_job(101, 10);
    let mut urgent: VecDeque<Job> = [a, b].into_iter().collect();
    let mut window: Vec<Job> = (0..5).map(|i| job(i, 10)).collect();
    let mut turns = HttpTurns::new(0.5);
    let batch = cut_batch(&mut urgent, &mut window, &limits(3, 1000), &mut turns);
    assert_eq!(ids(&batch), ["100", "101"], "HTTP jobs alone, ahead of the stream");
    assert!(urgent.is_empty());
    assert_eq!(cut_batch(&mut urgent, &mut window, &limits(3, 1000), &mut turns).len(), 3, "then the stream");
}

#[test]
fn http_takes_at_most_its_share_of_batches_while_the_stream_waits() {
    for share in [0.1, 0.25, 0.5, 0.9] {
        let mut turns = HttpTurns::new(share);
        let http = (0..1000).filter(|_| turns.http_next(true, true)).count();
        let most = (1000.0 * share) as usize + 1;
        assert!((most - 2..=most).contains(&http), "share {share}: {http} of 1000 batches");
    }
    let mut turns = HttpTurns::new(0.1);
    assert!((0..100).all(|_| turns.http_next(true, false)), "no stream backlog: every batch is HTTP's");
    assert!(!turns.http_next(false, true), "no HTTP job: the stream's");
}

/// A running batcher's inputs (HTTP, stream; 16 jobs each), its batches,
/// the model slots and the metrics.
struct Running {
    http: mpsc::Sender<Job>,
    stream: mpsc::Sender<Job>,
    batches: mpsc::Receiver<Batch>,
    slots: ModelSlots,
    metrics: Arc<Metrics>,
}

const CHANNEL: usize = 16;

fn run(limits: Limits) -> Running {
    let (http_tx, http) = mpsc::channel(CHANNEL);
    let (stream_tx, stream) = mpsc::channel(CHANNEL);
    let (out, batches) = mpsc::channel(1);
    let slots = ModelSlots::new();
    let metrics = Arc::new(Metrics::new());
    let batcher = Batcher { limits, slots: slots.clone(), http, stream, out, metrics: metrics.clone() };
    tokio::spawn(batcher.run());
    Running { http: http_tx, stream: stream_tx, batches, slots, metrics }
}

#[tokio::test(start_paused = true)]
async fn with_the_model_idle_a_lone_job_leaves_without_waiting() {
    let mut r = run(limits(64, 8192));
    let t0 = Instant::now();
    r.stream.send(job(1, 10)).await.expect("send");
    let batch = r.batches.recv().await.expect("batch");
    assert_eq!(batch.jobs.len(), 1);
    assert_eq!(Instant::now(), t0, "no (virtual) time passed");
}

#[tokio::test(start_paused = true)]
async fn while_the_model_is_busy_the_next_batch_fills_until_max_wait() {
    let mut r = run(limits(64, 8192));
    r.stream.send(job(0, 10)).await.expect("send");
    let busy = r.batches.recv().await.expect("first batch"); // the model "holds" this one
    let t0 = Instant::now();
    for i in 1..=3 {
        r.stream.send(job(i, 10)).await.expect("send");
    }
    let next = r.batches.recv().await.expect("second batch");
    assert_eq!(next.jobs.len(), 3, "filled while the model was busy");
    assert!(Instant::now() >= t0 + Duration::from_millis(20), "left at max_wait");
    r.slots.release(busy.slot);
}

#[tokio::test(start_paused = true)]
async fn while_the_model_is_busy_the_window_fills_beyond_the_channel() {
    let mut r = run(limits(4, 8192));
    r.stream.send(job(0, 10)).await.expect("send");
    let first = r.batches.recv().await.expect("first batch");
    for i in 1..=4 {
        r.stream.send(job(i, 10)).await.expect("send");
    }
    let second = r.batches.recv().await.expect("second batch"); // both slots are held now
                                                                // Twice what the channel holds: only a window that keeps filling takes them all.
    for i in 0..2 * CHANNEL {
        let len = if i % 2 == 0 { 100 } else { 10 };
        let sent = tokio::time::timeout(Duration::from_secs(1), r.stream.send(job(100 + i, len))).await;
        sent.expect("taken into the window while the model is busy").expect("send");
    }
    r.slots.release(first.slot);
    let third = r.batches.recv().await.expect("third batch");
    assert!(third.jobs.iter().all(|j| j.tokens.len() == 100), "the oldest's length, picked from the whole window");
    r.slots.release(second.slot);
}

#[tokio::test(start_paused = true)]
async fn under_backlog_batches_are_full() {
    let mut r = run(limits(4, 8192));
    for i in 0..12 {
        r.stream.send(job(i, 10)).await.expect("send");
    }
    let mut sizes = Vec::new();
    while sizes.iter().sum::<usize>() < 12 {
        let batch = r.batches.recv().await.expect("batch");
        sizes.push(batch.jobs.len());
        r.slots.release(batch.slot);
    }
    assert!(sizes.iter().skip(1).all(|&s| s == 4), "{sizes:?}");
}

#[tokio::test(start_paused = true)]
async fn the_batcher_holds_one_batch_of_http_texts_and_leaves_the_rest_in_the_channel() {
    let mut r = run(limits(4, 8192));
    let mut callers = Vec::new();
    let (mut sent, mut answered) = (0, 0);
    for _ in 0..20 {
        // A flood: the lane topped up to full before every batch.
        loop {
            let (job, caller) = http_job(sent, 10);
            if r.http.try_send(job).is_err() {
                break;
            }
            callers.push(caller);
            sent += 1;
        }
        let batch = r.batches.recv().await.expect("batch");
        answered += batch.jobs.len();
        r.slots.release(batch.slot);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Past the channel, the batcher holds its HTTP queue (one batch) and a
    // batch cut but not yet taken by the model: nothing grows with the flood.
    let held = sent - answered;
    assert!(held <= CHANNEL + 2 * 4, "{held} texts held past the channel");
}

#[tokio::test(start_paused = true)]
async fn abandoned_http_jobs_never_reach_a_batch() {
    let mut r = run(limits(64, 8192));
    // Keep the model busy, so the next batch fills until max_wait.
    let (first, _first) = http_job(0, 10);
    r.http.send(first).await.expect("send");
    let busy = r.batches.recv().await.expect("first batch");
    let mut waiting = Vec::new();
    for i in 1..=6 {
        let (job, caller) = http_job(i, 10);
        r.http.send(job).await.expect("send");
        // Callers 2, 4 and 6 give up (timed out, disconnected) before the batch is cut.
        if i % 2 == 1 {
            waiting.push(caller);
        }
    }
    let next = r.batches.recv().await.expect("second batch");
    assert_eq!(ids(&next.jobs), ["1", "3", "5"]);
    assert_eq!(r.metrics.http_abandoned.get(), 3);
    r.slots.release(busy.slot);
    r.slots.release(next.slot);

    // A batch of only abandoned jobs is never cut; the stream goes on.
    for i in 7..=8 {
        let (job, caller) = http_job(i, 10);
        drop(caller);
        r.http.send(job).await.expect("send");
    }
    r.stream.send(job(9, 10)).await.expect("send");
    let batch = r.batches.recv().await.expect("a stream batch");
    assert_eq!(ids(&batch.jobs), ["9"]);
    assert_eq!(r.metrics.http_abandoned.get(), 5);
}

#[tokio::test(start_paused = true)]
async fn with_both_lanes_full_the_stream_gets_its_share_and_http_goes_first() {
    let mut r = run(Limits { http_share: 0.25, ..limits(4, 8192) });
    let mut callers = Vec::new();
    let (mut next_id, mut lanes) = (0, Vec::new());
    for _ in 0..40 {
        // HTTP ids are even, stream ids odd; both lanes topped up to full.
        loop {
            let (job, caller) = http_job(next_id, 10);
            if r.http.try_send(job).is_err() {
                break;
            }
            callers.push(caller);
            next_id += 2;
        }
        while r.stream.try_send(job(next_id + 1, 10)).is_ok() {
            next_id += 2;
        }
        let batch = r.batches.recv().await.expect("batch");
        let http = batch.jobs.iter().filter(|j| j.id.parse::<usize>().expect("id") % 2 == 0).count();
        assert!(http == 0 || http == batch.jobs.len(), "a batch is one lane's");
        lanes.push(if http > 0 { 'H' } else { 'S' });
        r.slots.release(batch.slot);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let lanes: String = lanes.into_iter().collect();
    assert!(lanes.starts_with('H'), "HTTP first: {lanes}");
    let stream = lanes.chars().filter(|&c| c == 'S').count();
    assert!(stream >= 40 * 3 / 4 - 1, "the stream gets at least 3/4 of the batches: {lanes}");
}
