//! The command line: every flag is documented here and shows up in `--help`.

use std::path::PathBuf;

use clap::Parser;

use crate::input::Format;

/// Publish reviews from TSV, CSV, JSONL or plain-text files (or stdin) to a
/// Kafka topic as ReviewV1 JSON, keyed by the review id.
///
/// Ids come from an id column or field when there is one, else from the file
/// name and line number (`reviews.tsv` line 7 -> `reviews:7`, stdin ->
/// `stdin:7`), so publishing the same file again yields the same ids.
/// Bad lines are reported as `file:line: reason` and skipped (or stop the run
/// with --strict). Extra librdkafka settings come from environment variables
/// `KAFKA_OPT_<NAME>` (KAFKA_OPT_SASL_USERNAME -> sasl.username).
///
/// Exit code: 0 when everything read was delivered; 1 when a delivery failed,
/// --strict met a bad line, or an error stopped the run; 2 for a usage error;
/// 130 when interrupted.
#[derive(Debug, Clone, Parser)]
#[command(name = "bertstream-produce", version, about, long_about)]
pub struct Args {
    /// Files to publish, in order. `-` (or no file at all) reads stdin.
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,

    /// Kafka bootstrap servers, a comma-separated list of host:port.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Topic to publish to.
    #[arg(long, env = "INPUT_TOPIC", default_value = "reviews")]
    pub topic: String,

    /// Input format. Default: from each file's extension (.tsv/.tab -> tsv,
    /// .csv -> csv, .jsonl/.ndjson -> jsonl), otherwise text; stdin is text.
    ///
    /// tsv: `label<TAB>text`, or columns named by a header line (a first line
    /// with a `label` or `text` column); the label is kept as field `label`.
    /// csv: a header line, then one review per record (quoted fields may span
    /// lines). jsonl: one ReviewV1 object per line, other fields kept.
    /// text: one review per line.
    #[arg(long, value_enum, verbatim_doc_comment)]
    pub format: Option<Format>,

    /// Column (CSV, TSV with a header) or field (JSONL) holding the id.
    /// Default: `id` when present, else ids are made from file name and line.
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,

    /// Column (CSV, TSV with a header) or field (JSONL) holding the text.
    /// Default: `text` (for a two-column TSV `label<TAB>x` header: the non-label column).
    #[arg(long, value_name = "NAME")]
    pub text_column: Option<String>,

    /// Pace publishing to at most N messages per second (`500`, `500/s`,
    /// `0.5`). Default: as fast as the broker takes them.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Publish the input K times (load tests). Repeats after the first get an
    /// id suffix (`#2`, `#3`, ...) so they are distinct messages. Files only:
    /// stdin cannot be read twice.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    /// Stop after N messages (repeats included). Default: no limit.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Stop at the first bad line with exit code 1, instead of reporting and
    /// skipping it. What was read before it is still delivered.
    #[arg(long)]
    pub strict: bool,
}

/// Parses `--rate`: a positive number, optionally followed by `/s`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let number = s.trim().strip_suffix("/s").unwrap_or(s.trim());
    match number.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err("the rate must be a positive number of messages per second".into()),
        Err(_) => Err(format!("`{s}` is not a rate; use a number of messages per second, e.g. 500 or 500/s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn rates_parse_with_or_without_unit() {
        assert_eq!(parse_rate("500"), Ok(500.0));
        assert_eq!(parse_rate("500/s"), Ok(500.0));
        assert_eq!(parse_rate(" 0.5 "), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn flags_are_consistent_and_documented() {
        Args::command().debug_assert();
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--brokers",
            "--topic",
            "--format",
            "--id-column",
            "--text-column",
            "--rate",
            "--repeat",
            "--limit",
            "--strict",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
        assert!(help.contains("KAFKA_BROKERS") && help.contains("INPUT_TOPIC") && help.contains("[default: reviews]"));
    }

    #[test]
    fn repeat_must_be_positive() {
        assert!(Args::try_parse_from(["p", "--repeat", "0"]).is_err());
        let args = Args::try_parse_from(["p", "a.tsv", "-", "--repeat", "3", "--rate", "10/s"]).expect("valid");
        assert_eq!((args.repeat, args.rate, args.files.len()), (3, Some(10.0), 2));
    }
}
