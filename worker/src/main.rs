use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use bertstream_worker::config::{RunArgs, Secret};
use bertstream_worker::{db, pipeline};

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
    /// Apply the database migrations and exit.
    Migrate {
        /// Postgres URL (never logged).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Secret,
    },
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Run(args) => pipeline::run(*args).await,
        Command::Migrate { database_url } => {
            let pool = db::connect(database_url.expose(), 1)?;
            db::MIGRATOR.run(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
