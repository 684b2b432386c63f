use tokio::sync::oneshot;

use super::*;
use crate::stages::Origin;

fn job(id: usize, len: usize) -> Job {
    let (reply, _) = oneshot::channel();
    Job {
        id: id.to_string(),
        text: String::new(),
        tokens: vec![1; len],
        encoder: 0,
        enqueued: Instant::now(),
        origin: Origin::Http(reply),
    }
}

fn limits(max_size: usize, max_tokens: usize) -> Limits {
    Limits { max_size, max_tokens, max_wait: Duration::from_millis(20) }
}

fn ids(batch: &[Job]) -> Vec<String> {
    let mut ids: Vec<String> = batch.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    ids
}

#[test]
fn a_batch_respects_size_and_token_limits() {
    let mut window: Vec<Job> = (0..10).map(|i| job(i, 10)).collect();
    let batch = cut_batch(&mut VecDeque::new(), &mut window, &limits(4, 1000));
    assert_eq!(batch.len(), 4);
    let batch = cut_batch(&mut VecDeque::new(), &mut window, &limits(100, 30));
    assert_eq!(batch.len(), 3, "3 x 10 tokens fit in 30");
    assert_eq!(window.len(), 3);
}

#[test]
fn the_oldest_job_is_always_taken_with_its_nearest_lengths() {
    // lengths: oldest is 50; others 5, 48, 52, 200
    let mut window = vec![job(0, 50), job(1, 5), job(2, 48), job(3, 52), job(4, 200)];
    let batch = cut_batch(&mut VecDeque::new(), &mut window, &limits(3, 10_000));
    assert_eq!(ids(&batch), ["0", "2", "3"]);
    assert_eq!(ids(&window), ["1", "4"]);
}

#[test]
fn a_text_longer_than_the_token_budget_still_goes_alone() {
    let mut window = vec![job(0, 600), job(1, 600)];
    let batch = cut_batch(&mut VecDeque::new(), &mut window, &limits(64, 512));
    assert_eq!(ids(&batch), ["0"]);
}

#[test]
fn http_jobs_go_first() {
    let mut urgent: VecDeque<Job> = [job(100, 10), job(101, 10)].into_iter().collect();
    let mut window: Vec<Job> = (0..5).map(|i| job(i, 10)).collect();
    let batch = cut_batch(&mut urgent, &mut window, &limits(3, 1000));
    assert_eq!(ids(&batch), ["100", "101"], "HTTP jobs alone, ahead of the stream");
    assert!(urgent.is_empty());
    assert_eq!(cut_batch(&mut urgent, &mut window, &limits(3, 1000)).len(), 3, "then the stream");
}

fn start(limits: Limits) -> (mpsc::Sender<Job>, mpsc::Receiver<Batch>, ModelSlots) {
    let (_http_tx, http) = mpsc::channel(16);
    let (stream_tx, stream) = mpsc::channel(16);
    let (out, batches) = mpsc::channel(1);
    let slots = ModelSlots::new();
    let batcher = Batcher { limits, slots: slots.clone(), http, stream, out };
    tokio::spawn(async move {
        let _keep_http_open = _http_tx;
        batcher.run().await
    });
    (stream_tx, batches, slots)
}

#[tokio::test(start_paused = true)]
async fn with_the_model_idle_a_lone_job_leaves_without_waiting() {
    let (tx, mut batches, _) = start(limits(64, 8192));
    let t0 = Instant::now();
    tx.send(job(1, 10)).await.expect("send");
    let batch = batches.recv().await.expect("batch");
    assert_eq!(batch.jobs.len(), 1);
    assert_eq!(Instant::now(), t0, "no (virtual) time passed");
}

#[tokio::test(start_paused = true)]
async fn while_the_model_is_busy_the_next_batch_fills_until_max_wait() {
    let (tx, mut batches, slots) = start(limits(64, 8192));
    tx.send(job(0, 10)).await.expect("send");
    let busy = batches.recv().await.expect("first batch"); // the model "holds" this one
    let t0 = Instant::now();
    for i in 1..=3 {
        tx.send(job(i, 10)).await.expect("send");
    }
    let next = batches.recv().await.expect("second batch");
    assert_eq!(next.jobs.len(), 3, "filled while the model was busy");
    assert!(Instant::now() >= t0 + Duration::from_millis(20), "left at max_wait");
    slots.release(busy.slot);
}

#[tokio::test(start_paused = true)]
async fn under_backlog_batches_are_full() {
    let (tx, mut batches, slots) = start(limits(4, 8192));
    for i in 0..12 {
        tx.send(job(i, 10)).await.expect("send");
    }
    let mut sizes = Vec::new();
    while sizes.iter().sum::<usize>() < 12 {
        let batch = batches.recv().await.expect("batch");
        sizes.push(batch.jobs.len());
        slots.release(batch.slot);
    }
    assert!(sizes.iter().skip(1).all(|&s| s == 4), "{sizes:?}");
}
