//! `bertstream-produce`: publish reviews from files or stdin to Kafka.
//! Everything lives in the library; this only parses flags, sets up logging
//! and turns the outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use bertstream_producer::cli::Args;
use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

fn main() -> ExitCode {
    let args = Args::parse();
    // Logs go to stderr, quiet by default (RUST_LOG=debug shows the Kafka settings
    // used). librdkafka's warnings are mostly retries it recovers from; its errors
    // (a broker refusing connections, failed authentication) are worth seeing.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,librdkafka=error,rdkafka=error"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    // Each record's span goes over OTLP too when an endpoint is set (`schemas::otlp`).
    let (spans, otlp) = match schemas::otlp::layer("bertstream-produce") {
        Ok(otlp) => otlp.unzip(),
        Err(e) => {
            eprintln!("bertstream-produce: error: OTLP exporter: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::registry().with(spans).with(logs.with_filter(filter)).init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bertstream-produce: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(bertstream_producer::run(args));
    drop(runtime);
    if let Some(otlp) = otlp {
        otlp.shutdown();
    }
    match outcome {
        Ok(summary) => ExitCode::from(summary.exit_code()),
        Err(e) => {
            eprintln!("bertstream-produce: error: {e}");
            ExitCode::FAILURE
        }
    }
}
