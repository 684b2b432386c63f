//! `bertstream-worker backfill`: re-scores a range of the input topic (by
//! offsets or times), or the stored rows (`--from-table`, once the topic's
//! retention has passed), with a chosen model, into `predictions` (role
//! `backfill`) and, with `--promote-results`, into `classifications`.
//!
//! It reads with `assign`, outside the live consumer group, at most `--rate`
//! reviews a second, so it can run beside the workers. Each batch's results
//! are written before its progress (`db::backfill`), and every write is an
//! idempotent upsert: a backfill killed at any point and run again resumes
//! where its progress says, with no gap and no duplicate row.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indicatif::{ProgressBar, ProgressStyle};
use model::{LoadOptions, Prediction};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use schemas::{parse_review, ParseLimits};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::BackfillArgs;
use crate::db::backfill::PartitionProgress;
use crate::db::predictions::{PredictionRow, Role};
use crate::db::{self, ResultRow, SameMessage};
use crate::kafka;
use crate::models::{self, LoadedModel};
use crate::retry::Backoff;

/// A command line the job cannot run with: exit code 2 and this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// What a backfill did, printed at its end.
#[derive(Debug, Default)]
pub struct Summary {
    pub job: String,
    pub scored: u64,
    /// Messages that are not reviews (the live workers dead-lettered them),
    /// and reviews the model gave non-finite scores.
    pub skipped: u64,
    pub resumed: bool,
    pub labels: BTreeMap<String, u64>,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.scored as f64 / self.seconds.max(1e-9);
        writeln!(f, "backfill {}{}", self.job, if self.resumed { " (resumed)" } else { "" })?;
        writeln!(f, "  scored   {} reviews in {:.1} s ({rate:.0}/s)", self.scored, self.seconds)?;
        writeln!(f, "  skipped  {} messages that are not reviews or got non-finite scores", self.skipped)?;
        let labels: Vec<String> = self.labels.iter().map(|(l, n)| format!("{l}: {n}")).collect();
        write!(f, "  labels   {}", labels.join(", "))
    }
}

/// One message to score and where it came from.
struct Item {
    id: String,
    text: String,
    topic: String,
    partition: i32,
    offset: i64,
    published_at: Option<chrono::DateTime<Utc>>,
    received_at: chrono::DateTime<Utc>,
    fields: serde_json::Value,
}

struct Backfill {
    pool: PgPool,
    model: std::sync::Arc<LoadedModel>,
    job: String,
    promote: bool,
    batch_size: usize,
    limiter: Option<DefaultDirectRateLimiter>,
    summary: Summary,
}

pub async fn run(args: BackfillArgs) -> anyhow::Result<Summary> {
    if args.batch_size == 0 {
        return Err(usage("--batch-size must be at least 1"));
    }
    let started = std::time::Instant::now();
    let pool = db::connect(args.database_url.expose(), 2).context("DATABASE_URL")?;
    db::migrate_with_retry(&pool, Some(Duration::from_secs(60))).await?;
    let options = LoadOptions { device: args.device, max_seq_len: args.max_seq_len, ..LoadOptions::default() };
    let model = models::load(&args.model, &options, args.torch_threads).await.map_err(|e| usage(e.to_string()))?;
    let job = args.job.clone().unwrap_or_else(|| default_job_name(&args, model.id()));
    let limiter = NonZeroU32::new(args.rate).map(|rate| {
        let burst = NonZeroU32::new(args.batch_size as u32).map_or(rate, |b| rate.max(b));
        RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
    });
    let mut backfill = Backfill {
        pool,
        model,
        job: job.clone(),
        promote: args.promote_results,
        batch_size: args.batch_size,
        limiter,
        summary: Summary { job, ..Summary::default() },
    };
    if args.from_table {
        backfill.stored_rows().await?;
    } else {
        backfill.topic_range(&args).await?;
    }
    backfill.summary.seconds = started.elapsed().as_secs_f64();
    Ok(backfill.summary)
}

/// The same command line gives the same name, so running it again resumes.
fn default_job_name(args: &BackfillArgs, model_id: &str) -> String {
    let range = format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}|{}",
        args.kafka.input_topic,
        args.from_offset,
        args.to_offset,
        args.from_time,
        args.to_time,
        args.from_table,
        args.promote_results
    );
    let digest = Sha256::digest(range.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{model_id}/{hex}")
}

impl Backfill {
    async fn topic_range(&mut self, args: &BackfillArgs) -> anyhow::Result<()> {
        let topic = args.kafka.input_topic.clone();
        let consumer: BaseConsumer = kafka::backfill_consumer_config(&args.kafka).create().map_err(kafka::redacted)?;
        let ranges = tokio::task::block_in_place(|| resolve_ranges(&consumer, &topic, args))?;
        let progress = db::backfill::start_topic_job(&self.pool, &self.job, &ranges).await?;
        self.summary.resumed = progress != ranges;
        let pending: Vec<PartitionProgress> = progress.into_iter().filter(|p| p.next_offset < p.end_offset).collect();
        let total: i64 = pending.iter().map(|p| p.end_offset - p.next_offset).sum();
        let bar = progress_bar(total as u64, &self.job);
        if pending.is_empty() {
            bar.finish_with_message("nothing left to do");
            return Ok(());
        }
        let mut assignment = TopicPartitionList::new();
        for p in &pending {
            assignment.add_partition_offset(&topic, p.partition, Offset::Offset(p.next_offset))?;
        }
        consumer.assign(&assignment)?;
        let ends: HashMap<i32, i64> = pending.iter().map(|p| (p.partition, p.end_offset)).collect();
        let mut next: HashMap<i32, i64> = pending.iter().map(|p| (p.partition, p.next_offset)).collect();
        let mut items = Vec::new();
        let mut consumed = 0u64;
        let parse_limits = ParseLimits::default();
        while next.iter().any(|(p, n)| *n < ends[p]) {
            let polled = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(500)));
            let message = match polled {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error; retrying");
                    continue;
                }
                None => {
                    // Nothing more to read: a partition whose range ends in
                    // offsets that hold no message (compaction) is done.
                    let positions = consumer.position()?;
                    for e in positions.elements() {
                        if let (Offset::Offset(o), Some(n)) = (e.offset(), next.get_mut(&e.partition())) {
                            *n = (*n).max(o);
                        }
                    }
                    continue;
                }
            };
            let (partition, offset) = (message.partition(), message.offset());
            if offset >= ends[&partition] || offset < next[&partition] {
                continue;
            }
            next.insert(partition, offset + 1);
            consumed += 1;
            let fallback = || format!("{topic}:{partition}:{offset}");
            match parse_review(message.key(), message.payload(), fallback, parse_limits) {
                Ok(review) => items.push(Item {
                    id: review.id,
                    text: review.text,
                    topic: topic.clone(),
                    partition,
                    offset,
                    published_at: message.timestamp().to_millis().and_then(chrono::DateTime::from_timestamp_millis),
                    received_at: Utc::now(),
                    fields: serde_json::Value::Object(review.extra),
                }),
                Err(_) => self.summary.skipped += 1,
            }
            if items.len() >= self.batch_size || consumed as usize >= self.batch_size {
                self.flush(std::mem::take(&mut items), &next).await?;
                bar.inc(std::mem::take(&mut consumed));
            }
        }
        self.flush(items, &next).await?;
        bar.inc(consumed);
        bar.finish_with_message("done");
        Ok(())
    }

    /// Scores and writes `items`, then records each partition's progress.
    async fn flush(&mut self, items: Vec<Item>, next: &HashMap<i32, i64>) -> anyhow::Result<()> {
        self.score_and_write(items).await?;
        for (&p, &n) in next {
            retrying(|| db::backfill::advance_partition(&self.pool, &self.job, p, n)).await?;
        }
        Ok(())
    }

    async fn stored_rows(&mut self) -> anyhow::Result<()> {
        let mut after = db::backfill::start_table_job(&self.pool, &self.job).await?;
        self.summary.resumed = after.is_some();
        let total = db::backfill::count_after(&self.pool, after.as_deref()).await?;
        let bar = progress_bar(total as u64, &self.job);
        loop {
            let rows = db::backfill::stored_after(&self.pool, after.as_deref(), self.batch_size).await?;
            let Some(last) = rows.last().map(|r| r.review_id.clone()) else { break };
            let n = rows.len() as u64;
            let items = rows
                .into_iter()
                .map(|r| Item {
                    id: r.review_id,
                    text: r.text,
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    published_at: r.published_at,
                    received_at: r.received_at,
                    fields: r.fields,
                })
                .collect();
            self.score_and_write(items).await?;
            retrying(|| db::backfill::advance_table(&self.pool, &self.job, &last)).await?;
            after = Some(last);
            bar.inc(n);
        }
        bar.finish_with_message("done");
        Ok(())
    }

    /// Scores `items` (after the rate limiter allows them) and upserts the
    /// results: each id's newest message of the batch.
    async fn score_and_write(&mut self, items: Vec<Item>) -> anyhow::Result<()> {
        let items = newest_per_id(items);
        if items.is_empty() {
            return Ok(());
        }
        if let Some(limiter) = &self.limiter {
            let n = NonZeroU32::new(items.len() as u32).unwrap_or(NonZeroU32::MIN);
            limiter.until_n_ready(n).await.context("--rate is below --batch-size")?;
        }
        let encoder = self.model.handle.encoder();
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let started = std::time::Instant::now();
        let predictions = self.model.handle.predict(encoder.batch(&encoder.encode_all(&texts)?)).await?;
        let scored = texts.len();
        // NaN or infinite scores (fp16 overflow) cannot be stored: such reviews are skipped.
        let (items, predictions): (Vec<Item>, Vec<Prediction>) =
            items.into_iter().zip(predictions).filter(|(_, p)| p.scores.iter().all(|s| s.is_finite())).unzip();
        self.summary.skipped += (scored - items.len()) as u64;
        let model_ms = started.elapsed().as_secs_f32() * 1000.0;
        let classified_at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let labels = &self.model.info().labels;
        let scores = |p: &Prediction| labels.iter().cloned().zip(p.scores.iter().copied()).collect::<BTreeMap<_, _>>();
        let rows: Vec<PredictionRow> = items
            .iter()
            .zip(&predictions)
            .map(|(item, p)| PredictionRow {
                review_id: item.id.clone(),
                model: self.model.id().to_string(),
                role: Role::Backfill,
                label: p.label.clone(),
                score: p.score,
                scores: scores(p),
                topic: item.topic.clone(),
                partition: item.partition,
                offset: item.offset,
                classified_at,
            })
            .collect();
        retrying(|| db::predictions::upsert(&self.pool, &rows)).await?;
        if self.promote {
            let results: Vec<ResultRow> = items
                .iter()
                .zip(&predictions)
                .map(|(item, p)| ResultRow {
                    review_id: item.id.clone(),
                    text: item.text.clone(),
                    label: p.label.clone(),
                    score: p.score,
                    scores: scores(p),
                    model: self.model.id().to_string(),
                    topic: item.topic.clone(),
                    partition: item.partition,
                    offset: item.offset,
                    published_at: item.published_at,
                    received_at: item.received_at,
                    classified_at,
                    queue_ms: 0.0,
                    model_ms,
                    batch_size: items.len() as i32,
                    fields: item.fields.clone(),
                })
                .collect();
            // Each attempt gets its own copy: the upsert fills in rows it finds stored.
            let pool = &self.pool;
            retrying(|| {
                let mut rows = results.clone();
                async move { db::upsert(pool, &mut rows, SameMessage::Replace).await.map(drop) }
            })
            .await
            .context("promoting results")?;
        }
        self.summary.scored += predictions.len() as u64;
        for p in &predictions {
            *self.summary.labels.entry(p.label.clone()).or_default() += 1;
        }
        Ok(())
    }
}

/// Each id's newest message in `items` (read in offset order per partition).
fn newest_per_id(items: Vec<Item>) -> Vec<Item> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<Item> = Vec::with_capacity(items.len());
    for item in items {
        match index.get(&item.id) {
            Some(&i) => kept[i] = item,
            None => {
                index.insert(item.id.clone(), kept.len());
                kept.push(item);
            }
        }
    }
    kept
}

/// Retries a write while Postgres is unavailable (logged), as the sinks do;
/// a row Postgres refuses is an error (the job stops; rerun resumes it).
async fn retrying<F, Fut>(mut write: F) -> Result<(), sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let mut backoff = Backoff::new();
    loop {
        match write().await {
            Ok(()) => return Ok(()),
            Err(e) if db::is_data_error(&e) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "backfill write failed; retrying");
                backoff.wait().await;
            }
        }
    }
}

fn progress_bar(total: u64, job: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(job.to_string());
    bar
}

/// Per partition: the range `[from, to)` the command line asks for, checked
/// against what the topic holds.
fn resolve_ranges(consumer: &BaseConsumer, topic: &str, args: &BackfillArgs) -> anyhow::Result<Vec<PartitionProgress>> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).context("reading the topic's metadata")?;
    let partitions: Vec<i32> =
        metadata.topics().first().map_or(Vec::new(), |t| t.partitions().iter().map(|p| p.id()).collect());
    if partitions.is_empty() {
        return Err(usage(format!("topic `{topic}` does not exist or has no partitions")));
    }
    let from = args.from_offset.as_deref().map(|s| parse_offsets(s, "--from-offset")).transpose()?;
    let to = args.to_offset.as_deref().map(|s| parse_offsets(s, "--to-offset")).transpose()?;
    let named: Vec<i32> = [&from, &to].into_iter().flatten().filter_map(|s| s.partitions()).flatten().collect();
    for p in &named {
        if !partitions.contains(p) {
            return Err(usage(format!(
                "partition {p} does not exist: topic `{topic}` has partitions 0 to {}",
                partitions.len() - 1
            )));
        }
    }
    let chosen: Vec<i32> =
        if named.is_empty() { partitions } else { partitions.into_iter().filter(|p| named.contains(p)).collect() };
    let at_time = |time: Option<chrono::DateTime<Utc>>| -> anyhow::Result<Option<HashMap<i32, i64>>> {
        let Some(time) = time else { return Ok(None) };
        let mut list = TopicPartitionList::new();
        for &p in &chosen {
            list.add_partition_offset(topic, p, Offset::Offset(time.timestamp_millis()))?;
        }
        let found = consumer.offsets_for_times(list, timeout).context("looking up offsets by time")?;
        Ok(Some(found.elements().iter().map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1))).collect()))
    };
    let (from_time, to_time) = (at_time(args.from_time)?, at_time(args.to_time)?);
    let mut ranges = Vec::new();
    for p in chosen {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout).context("reading the partition's offsets")?;
        // A time past the last message gives -1: the range runs to the end.
        let by_time =
            |m: &Option<HashMap<i32, i64>>| m.as_ref().map(|m| m.get(&p).copied().filter(|o| *o >= 0).unwrap_or(high));
        let start = from.as_ref().and_then(|s| s.get(p)).or(by_time(&from_time)).unwrap_or(low);
        let end = to.as_ref().and_then(|s| s.get(p)).or(by_time(&to_time)).unwrap_or(high);
        if start < low {
            return Err(usage(format!(
                "partition {p}: offset {start} is no longer in the topic (it starts at {low}); use --from-table"
            )));
        }
        if end > high {
            return Err(usage(format!("partition {p}: the range ends at {end}, past the partition's end ({high})")));
        }
        if start > end {
            return Err(usage(format!("partition {p}: the range starts at {start}, after its end ({end})")));
        }
        ranges.push(PartitionProgress { partition: p, next_offset: start, end_offset: end });
    }
    Ok(ranges)
}

/// `--from-offset`/`--to-offset`: one offset for every partition, or `P:O` pairs.
#[derive(Debug, PartialEq)]
enum Offsets {
    All(i64),
    Each(HashMap<i32, i64>),
}

impl Offsets {
    fn get(&self, partition: i32) -> Option<i64> {
        match self {
            Offsets::All(o) => Some(*o),
            Offsets::Each(map) => map.get(&partition).copied(),
        }
    }

    fn partitions(&self) -> Option<Vec<i32>> {
        match self {
            Offsets::All(_) => None,
            Offsets::Each(map) => Some(map.keys().copied().collect()),
        }
    }
}

fn parse_offsets(spec: &str, flag: &str) -> anyhow::Result<Offsets> {
    let bad =
        || usage(format!("{flag} `{spec}`: expected an offset (e.g. 0) or partition:offset pairs (e.g. 0:1200,1:900)"));
    if let Ok(offset) = spec.trim().parse::<i64>() {
        return if offset >= 0 { Ok(Offsets::All(offset)) } else { Err(bad()) };
    }
    let mut map = HashMap::new();
    for pair in spec.split(',') {
        let (p, o) = pair.trim().split_once(':').ok_or_else(bad)?;
        let (p, o): (i32, i64) = (p.trim().parse().map_err(|_| bad())?, o.trim().parse().map_err(|_| bad())?);
        if p < 0 || o < 0 || map.insert(p, o).is_some() {
            return Err(bad());
        }
    }
    Ok(Offsets::Each(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_one_for_all_or_per_partition() {
        assert_eq!(parse_offsets("120", "--from-offset").expect("ok"), Offsets::All(120));
        let each = parse_offsets("0:10, 2:30", "--from-offset").expect("ok");
        assert_eq!((each.get(0), each.get(1), each.get(2)), (Some(10), None, Some(30)));
        for bad in ["", "-1", "0:", "a:1", "0:1,0:2", "1:-5", "0:1;1:2"] {
            let e = parse_offsets(bad, "--to-offset").expect_err(bad);
            assert!(e.to_string().contains("--to-offset"), "{e}");
            assert!(e.is::<UsageError>());
        }
    }
}
