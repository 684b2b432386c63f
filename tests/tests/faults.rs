//! Faults RELIABILITY.md asks us to survive, each followed by the ledger audit.

use std::time::Duration;

use bertstream_tests::*;

const STEADY: Duration = Duration::from_secs(240);

async fn published(topics: &Topics, n: usize, prefix: &str) {
    let records: Vec<_> = (0..n).map(|i| review(&format!("{prefix}-{i:05}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_then_restart_loses_nothing() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    published(&topics, 6000, "k").await;
    let mut worker = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "32")]);
    wait_until(STEADY, "some rows", || async { stored_count(&db).await >= 1500 }).await;
    worker.kill_9();
    let at_kill = stored_count(&db).await;
    assert!(at_kill < 6000, "killed mid-run ({at_kill} rows)");
    // What was committed at the kill is in the table (L2).
    let committed = committed_offsets(&topics.input, &topics.group);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db).await.expect("connect");
    for (partition, offset) in &committed {
        let below: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM classifications WHERE source_partition = $1 AND source_offset < $2",
        )
        .bind(partition)
        .bind(offset)
        .fetch_one(&mut conn)
        .await
        .expect("count");
        assert!(below >= *offset, "partition {partition}: committed {offset} but only {below} rows below it");
    }
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "all 6000 rows", || async { stored_count(&db).await == 6000 }).await;
    stop_and_audit([&mut worker], &topics, &db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_drains_commits_and_exits_0() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    published(&topics, 4000, "s").await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "some rows", || async { stored_count(&db).await >= 500 }).await;
    let status = worker.terminate(Duration::from_secs(30)).expect("exits within the 30 s bound");
    assert!(status.success(), "exit status {status}\n{}", worker.log_text());
    let stored = stored_count(&db).await;
    // Everything stored is committed (L2): a restart starts exactly after it.
    let committed: i64 = committed_offsets(&topics.input, &topics.group).values().sum();
    assert_eq!(committed, stored, "committed offsets match the rows");
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "all 4000 rows", || async { stored_count(&db).await == 4000 }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.output_duplicates(), 0, "a graceful stop publishes nothing twice");
}

/// A SIGTERM while the worker is still starting up (here: waiting for its
/// database, which refuses connections) ends it cleanly and at once, having
/// consumed, committed and published nothing.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_starting_up_exits_0() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    set_database_available(&db, false).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "the worker waiting for Postgres", || {
        let log = worker.log_text();
        async move { log.contains("postgres not ready") }
    })
    .await;
    let status = worker.terminate(Duration::from_secs(10)).expect("exits within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}\n{}", worker.log_text());
    assert!(worker.log_text().contains("stopped while starting up"), "{}", worker.log_text());
    set_database_available(&db, true).await;
    stop_and_audit([&mut worker], &topics, &db).await;
}

/// The longest wait for Postgres a JSON log reports (`"waited_secs":N`).
fn waited_secs(log: &str) -> u64 {
    log.split("\"waited_secs\":")
        .skip(1)
        .filter_map(|rest| {
            rest.trim_start_matches(|c: char| !c.is_ascii_digit())
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// A worker started while Postgres is down waits for it as long as a running
/// worker would ride out the outage (past the minute after which it used to
/// give up), then starts and works.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_while_postgres_is_down_waits_for_it() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    set_database_available(&db, false).await;
    published(&topics, 50, "w").await;
    // JSON lines: no colour codes between a field's name and its value.
    let mut worker = Worker::start(&topics, &db, &[("LOG_FORMAT", "json")]);
    wait_until(Duration::from_secs(150), "70 s of waiting for Postgres", || {
        let waited = waited_secs(&worker.log_text());
        async move { waited >= 70 }
    })
    .await;
    assert!(worker.exited().is_none(), "the worker gave up waiting\n{}", worker.log_text());
    set_database_available(&db, true).await;
    wait_until(STEADY, "50 rows", || async { stored_count(&db).await == 50 }).await;
    stop_and_audit([&mut worker], &topics, &db).await;
}

/// The first messages are stored before Postgres goes down and the rest are
/// published only after, so the worker meets the outage however fast it is.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_mid_run_holds_offsets_then_catches_up() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    published(&topics, 300, "pg-before").await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "the first 300 rows", || async { stored_count(&db).await == 300 }).await;
    set_database_available(&db, false).await;
    published(&topics, 2700, "pg-during").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // While Postgres is down, the committed offsets never pass what the table holds.
    let committed_during: i64 = committed_offsets(&topics.input, &topics.group).values().sum();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed_later: i64 = committed_offsets(&topics.input, &topics.group).values().sum();
    assert_eq!(committed_during, committed_later, "no offset moves while Postgres is down");
    assert!(committed_during <= 300, "committed {committed_during} with 300 rows stored");
    set_database_available(&db, true).await;
    wait_until(STEADY, "all 3000 rows after Postgres returns", || async { stored_count(&db).await == 3000 }).await;
    stop_and_audit([&mut worker], &topics, &db).await;
    assert!(worker.log_text().contains("postgres upsert failed; retrying"), "{}", worker.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_the_partitions_and_one_takes_over_when_the_other_leaves() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    published(&topics, 6000, "g").await;
    let mut first = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "16")]);
    let mut second = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "16")]);
    wait_until(STEADY, "both workers assigned", || async {
        first.log_text().contains("partitions assigned") && second.log_text().contains("partitions assigned")
    })
    .await;
    wait_until(STEADY, "some rows", || async { stored_count(&db).await >= 1500 }).await;
    first.stop();
    wait_until(STEADY, "all 6000 rows", || async { stored_count(&db).await == 6000 }).await;
    stop_and_audit([&mut first, &mut second], &topics, &db).await;
}

/// A worker joining mid-run: the rebalance callback lets the in-flight
/// messages of the revoked partitions finish before it commits, so nothing
/// is done twice (no output key published twice), even with one runtime
/// thread (the callback runs on the source's own thread, and the stages
/// that finish those messages go on meanwhile).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_joining_mid_run_causes_no_redo_even_with_one_runtime_thread() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    published(&topics, 6000, "j").await;
    let env = [("TOKIO_WORKER_THREADS", "1"), ("MAX_BATCH_SIZE", "16"), ("QUEUE_CAPACITY", "256")];
    let mut first = Worker::start(&topics, &db, &env);
    wait_until(STEADY, "the stream under way", || async { stored_count(&db).await >= 300 }).await;
    let mut second = Worker::start(&topics, &db, &env);
    wait_until(STEADY, "the second worker given partitions", || async {
        second.log_text().contains("partitions assigned")
    })
    .await;
    assert!(stored_count(&db).await < 6000, "the second worker joined after the stream was done: it proves nothing");
    wait_all_committed(&topics, STEADY).await;
    let ledger = stop_and_audit([&mut first, &mut second], &topics, &db).await;
    assert_eq!(ledger.output_duplicates(), 0, "messages in flight at the revoke were done again");
}

/// Three workers share six partitions; one is killed with SIGKILL mid-run
/// and another joins later: the group moves the partitions around and the
/// ledger holds (nothing lost, nothing committed early).
#[tokio::test(flavor = "multi_thread")]
async fn three_workers_one_killed_and_one_joining_lose_nothing() {
    let topics = Topics::create(6).await;
    let db = fresh_database().await;
    published(&topics, 9000, "three").await;
    let env = [("MAX_BATCH_SIZE", "16"), ("QUEUE_CAPACITY", "512")];
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&topics, &db, &env)).collect();
    wait_until(STEADY, "the stream under way", || async { stored_count(&db).await >= 1000 }).await;
    let mut killed = workers.remove(1);
    killed.kill_9();
    let at_kill = stored_count(&db).await;
    assert!(at_kill < 9000, "killed after the run was done: it proves nothing");
    let later = (at_kill + 1000).min(9000);
    wait_until(STEADY, "more rows after the kill", || async { stored_count(&db).await >= later }).await;
    workers.push(Worker::start(&topics, &db, &env));
    wait_all_committed(&topics, STEADY).await;
    let ledger = stop_and_audit(workers.iter_mut(), &topics, &db).await;
    assert_eq!(ledger.table.len(), 9000);
}

/// A partition taken away while its batches wait on Postgres (the revoke
/// gives up waiting for them) and the input is paused, then given back to
/// the same worker: the work begun before the revoke no longer counts, so the
/// partition's messages are read again, and its committed offset still
/// reaches the end. With one runtime thread, HTTP is answered while the
/// rebalance callback waits: the callback blocks only the source's own thread.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_taken_away_and_given_back_with_batches_in_flight_commits_to_the_end() {
    partition_taken_away_and_given_back(false).await;
}

/// The same, but given back only once the input has resumed (Postgres back,
/// the partition the worker kept finished): librdkafka keeps a partition's
/// pause flag across the revoke, so without the worker's pause rule it would
/// never be read again.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_revoked_while_paused_and_given_back_after_the_input_resumed_is_read() {
    partition_taken_away_and_given_back(true).await;
}

async fn partition_taken_away_and_given_back(after_resume: bool) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let env = [("MAX_BATCH_SIZE", "16"), ("QUEUE_CAPACITY", "256"), ("TOKIO_WORKER_THREADS", "1")];
    let mut worker = Worker::start(&topics, &db, &env);
    published(&topics, 100, "before").await;
    wait_until(STEADY, "the first 100 rows", || async { stored_count(&db).await == 100 }).await;
    set_database_available(&db, false).await;
    // Whichever partition the visitor below is given must have batches
    // waiting on Postgres. The worker reads a backlog one partition after
    // the other, in long runs: only messages fewer than the stages hold
    // (over 100 at MAX_BATCH_SIZE 16) are sure to be in flight on both.
    published(&topics, 80, "in-flight").await;
    wait_until(STEADY, "the 80 messages read", || async {
        worker.metric("bertstream_messages_in_total").await == Some(180.0)
    })
    .await;
    // Then a backlog that fills the queue and pauses the input.
    published(&topics, 2000, "back").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A member that takes a partition and holds it, without committing, until told to leave.
    let (taken_tx, taken) = std::sync::mpsc::channel();
    let (leave, told_to_leave) = std::sync::mpsc::channel::<()>();
    let group = topics.group.clone();
    let input = topics.input.clone();
    let visitor = std::thread::spawn(move || {
        let visitor: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", &group)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "10000")
            .create()
            .expect("consumer");
        visitor.subscribe(&[&input]).expect("subscribe");
        let start = std::time::Instant::now();
        let partition = loop {
            if let Some(p) = visitor.assignment().expect("assignment").elements().first() {
                break p.partition();
            }
            assert!(start.elapsed() < STEADY, "the visitor was never given a partition");
            let _ = visitor.poll(Duration::from_millis(100));
        };
        taken_tx.send(partition).expect("send");
        while told_to_leave.try_recv().is_err() {
            let _ = visitor.poll(Duration::from_millis(100));
        }
        visitor.unsubscribe();
        let _ = visitor.poll(Duration::from_millis(500));
    });
    wait_until(STEADY, "the revoke waiting for in-flight messages", || {
        let log = worker.log_text();
        async move { log.contains("waiting for their in-flight messages") }
    })
    .await;
    let health = reqwest::get(worker.url("/healthz")).await.expect("healthz");
    assert!(health.status().is_success());
    assert!(
        !worker.log_text().contains("partitions revoked"),
        "HTTP was answered only once the rebalance callback had returned: the callback blocked the runtime"
    );
    let taken = taken.recv_timeout(STEADY).expect("the visitor's partition");
    wait_until(STEADY, "the revoke over", || {
        let log = worker.log_text();
        async move { log.contains("partitions revoked") }
    })
    .await;

    if after_resume {
        // The input resumes while the visitor holds its partition: the worker
        // finishes the one it kept, which it could not have read whole paused.
        set_database_available(&db, true).await;
        let kept = 1 - taken;
        let kept_end = end_offsets(&topics.input)[&kept];
        wait_until(STEADY, "the kept partition done", || async {
            stored_rows(&db).await.values().filter(|r| r.partition == kept).count() as i64 == kept_end
        })
        .await;
    }
    leave.send(()).expect("leave");
    visitor.join().expect("visitor");
    wait_until(STEADY, "the partition given back", || {
        let log = worker.log_text();
        async move { log.lines().filter(|l| l.contains("partitions assigned") && !l.ends_with("[]")).count() >= 2 }
    })
    .await;
    if !after_resume {
        set_database_available(&db, true).await;
    }
    wait_until(STEADY, "all 2180 rows", || async { stored_count(&db).await == 2180 }).await;
    wait_all_committed(&topics, STEADY).await;
    stop_and_audit([&mut worker], &topics, &db).await;
}
