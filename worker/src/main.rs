use clap::{Parser, Subcommand};
use schemas::otlp::Otlp;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use bertstream_worker::backfill::{self, UsageError};
use bertstream_worker::config::{BackfillArgs, BenchArgs, RunArgs, Secret};
use bertstream_worker::{bench, db, pipeline};

/// The bertstream stream worker: Kafka -> micro-batches -> BERT -> Postgres +
/// output topic, with the HTTP API and web page in the same process.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format: text, or json for log collectors. Levels come from RUST_LOG.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker: consume, classify, store, serve HTTP.
    Run(Box<RunArgs>),
    /// Re-score a range of the input topic (--from-offset/--to-offset or
    /// --from-time/--to-time; default: all it retains), or the stored results
    /// (--from-table), with --model, into the `predictions` table; with
    /// --promote-results into `classifications` too. Reads outside the live
    /// consumer group at most --rate reviews/s, so it runs beside the workers;
    /// run the same command again to resume after an interruption. Exit code
    /// 2: the command line or the model cannot work (the reason is printed).
    Backfill(Box<BackfillArgs>),
    /// Time the in-process path (parse, tokenize, batch, model, result rows)
    /// on a file of texts, without Kafka or Postgres; prints JSON (docs/benchmarks.md).
    Bench(Box<BenchArgs>),
    /// Apply the database migrations and exit.
    Migrate {
        /// Postgres URL (never logged).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Secret,
    },
}

/// Logs to stderr; spans over OTLP as well when an endpoint is set
/// (`schemas::otlp`), which [`main`] shuts down at exit.
fn init_logging(format: &str) -> anyhow::Result<Option<Otlp>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let (spans, otlp) = schemas::otlp::layer("bertstream-worker")?.unzip();
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if format == "json" { logs.json().boxed() } else { logs.boxed() };
    tracing_subscriber::registry().with(spans).with(logs.with_filter(filter)).init();
    Ok(otlp)
}

// Not `#[tokio::main]`: the OTLP exporter is built before the runtime and
// flushed after it, once every span has ended.
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp = init_logging(&cli.log_format)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(run(cli.command));
    drop(runtime);
    if let Some(otlp) = otlp {
        otlp.shutdown();
    }
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => pipeline::run(*args).await,
        Command::Backfill(args) => match backfill::run(*args).await {
            Ok(summary) => {
                println!("{summary}");
                Ok(())
            }
            Err(e) if e.is::<UsageError>() => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
            Err(e) => Err(e),
        },
        Command::Bench(args) => {
            println!("{}", bench::run(*args).await?);
            Ok(())
        }
        Command::Migrate { database_url } => {
            let pool = db::connect(database_url.expose(), 1)?;
            db::MIGRATOR.run(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
