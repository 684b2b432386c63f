//! `bertstream-produce`: publish reviews from files or stdin to Kafka.
//! Everything lives in the library; this only parses flags, sets up logging
//! and turns the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
use bertstream_producer::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    // Logs go to stderr, quiet by default (RUST_LOG=debug shows the Kafka settings used).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bertstream-produce: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bertstream_producer::run(args)) {
        Ok(summary) => ExitCode::from(summary.exit_code()),
        Err(e) => {
            eprintln!("bertstream-produce: error: {e}");
            ExitCode::FAILURE
        }
    }
}
