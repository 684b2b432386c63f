//! `bertstream-produce`: publishes reviews from TSV, CSV, JSONL or plain-text
//! files (or stdin) to Kafka as `ReviewV1` JSON keyed by id.
//!
//! A reader thread ([`reader`]) streams and parses the inputs ([`input`]); the
//! sender ([`send`]) paces, produces and counts delivery reports in a
//! [`tally::Tally`]; [`progress`] shows it. Bad lines are reported and skipped
//! (or stop the run with `--strict`); the run ends only when every message
//! sent has its report.

pub mod cli;
pub mod error;
pub mod input;
pub mod kafka;
pub mod progress;
pub mod reader;
pub mod send;
pub mod tally;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use crate::cli::Args;
use crate::error::ProduceError;
use crate::input::{Columns, Input};
use crate::reader::Plan;
use crate::tally::{Stop, Tally};

/// Items read ahead of the sender.
const READ_AHEAD: usize = 1024;

/// How a run went; [`Summary::exit_code`] is the process's exit code.
#[derive(Debug, Clone)]
pub struct Summary {
    pub tally: Tally,
    pub elapsed: Duration,
}

impl Summary {
    pub fn exit_code(&self) -> u8 {
        match (&self.tally.stopped, self.tally.failed) {
            (Some(Stop::Interrupted), _) => 130,
            (Some(_), _) | (None, 1..) => 1,
            (None, 0) => 0,
        }
    }
}

/// Publishes everything the flags name; prints bad lines, failures and the summary on stderr.
pub async fn run(args: Args) -> Result<Summary, ProduceError> {
    let plan = plan(&args)?;
    let options = schemas::KafkaOptions::from_env();
    let producer = kafka::producer(&args.brokers, &options)?;
    kafka::check_topic(&producer, &args.brokers, &args.topic).await?;

    let total_bytes = plan.inputs.iter().map(|i| i.size).sum::<Option<u64>>().map(|b| b * u64::from(plan.repeat));
    let mut progress = progress::Progress::new(total_bytes, args.limit);
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    // Not joined: after an early stop it may sit in a read from stdin.
    reader::spawn(plan, tx).map_err(ProduceError::Thread)?;

    let sender = send::Sender {
        producer: &producer,
        topic: &args.topic,
        limiter: args.rate.and_then(limiter),
        strict: args.strict,
        interrupt: on_ctrl_c(),
    };
    let started = Instant::now();
    let tally = sender.publish(rx, &mut progress).await;
    let summary = Summary { tally, elapsed: started.elapsed() };
    progress.finish();

    eprintln!("{}", progress::summary(&summary.tally, summary.elapsed));
    match &summary.tally.stopped {
        Some(Stop::BadLine) => eprintln!("bertstream-produce: stopped at the first bad line (--strict)"),
        Some(Stop::Fatal(message)) => eprintln!("bertstream-produce: error: {message}"),
        Some(Stop::Interrupted) => eprintln!("bertstream-produce: interrupted"),
        None if summary.tally.failed > 0 => {
            eprintln!("bertstream-produce: {} messages were not delivered", summary.tally.failed)
        }
        None => {}
    }
    Ok(summary)
}

/// The inputs, checked before anything is sent: files exist, stdin at most once.
pub fn plan(args: &Args) -> Result<Plan, ProduceError> {
    let mut inputs = Vec::new();
    let mut stdin = args.files.is_empty();
    for path in &args.files {
        if path.as_os_str() == "-" {
            if stdin && !args.files.is_empty() {
                return Err(ProduceError::Usage("stdin (`-`) can be read only once".into()));
            }
            stdin = true;
            inputs.push(Input::stdin(args.format));
        } else {
            inputs.push(Input::file(path, args.format)?);
        }
    }
    if args.files.is_empty() {
        inputs.push(Input::stdin(args.format));
    }
    if stdin && args.repeat > 1 {
        return Err(ProduceError::Usage("--repeat needs files: stdin cannot be read twice".into()));
    }
    Ok(Plan {
        inputs,
        columns: Columns { id: args.id_column.clone(), text: args.text_column.clone() },
        repeat: args.repeat,
        limit: args.limit,
        strict: args.strict,
    })
}

/// A pacer for `rate` messages a second. Bursts are capped at 10 ms worth, so
/// the rate holds over any window longer than that; `None` when too fast to pace.
pub fn limiter(rate: f64) -> Option<DefaultDirectRateLimiter> {
    let period = Duration::try_from_secs_f64(1.0 / rate).ok()?;
    let burst = NonZeroU32::new((rate / 100.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32)?;
    Quota::with_period(period).map(|quota| RateLimiter::direct(quota.allow_burst(burst)))
}

/// The first Ctrl-C stops reading and waits for deliveries; a second one quits at once.
fn on_ctrl_c() -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let first = notify.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            first.notify_one();
            eprintln!("bertstream-produce: interrupted, waiting for deliveries (Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    notify
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("bertstream-produce").chain(argv.iter().copied())).expect("args")
    }

    #[test]
    fn stdin_is_the_default_and_read_once() {
        let plan = plan(&args(&[])).expect("plan");
        assert_eq!(plan.inputs.len(), 1);
        assert_eq!(plan.inputs[0].name, "stdin");
        assert!(matches!(super::plan(&args(&["-", "-"])), Err(ProduceError::Usage(_))));
        assert!(matches!(super::plan(&args(&["--repeat", "2"])), Err(ProduceError::Usage(_))));
    }

    #[test]
    fn missing_files_fail_before_sending() {
        let err = plan(&args(&["/nonexistent/reviews.tsv"])).expect_err("missing");
        assert!(err.to_string().starts_with("cannot read /nonexistent/reviews.tsv"), "{err}");
    }

    #[test]
    fn exit_codes() {
        let code = |failed, stopped| {
            Summary { tally: Tally { failed, stopped, ..Tally::default() }, elapsed: Duration::ZERO }.exit_code()
        };
        assert_eq!(code(0, None), 0);
        assert_eq!(code(1, None), 1);
        assert_eq!(code(0, Some(Stop::BadLine)), 1);
        assert_eq!(code(0, Some(Stop::Fatal("x".into()))), 1);
        assert_eq!(code(0, Some(Stop::Interrupted)), 130);
    }

    #[test]
    fn limiter_paces_slow_and_fast_rates() {
        assert!(limiter(0.5).is_some());
        assert!(limiter(200.0).is_some());
        assert!(limiter(1e6).is_some());
        assert!(limiter(1e-300).is_none());
    }
}
