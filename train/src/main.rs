//! `bertstream-train`: split labelled data, train a classifier, evaluate it, predict.
//! A thin shell over the `bertstream_train` library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use bertstream_train::data::Ratios;
use bertstream_train::fit::{fit, FitOptions};
use bertstream_train::init::{ScratchShape, Start};
use bertstream_train::input::Format;
use bertstream_train::pretrain::{pretrain, PretrainOptions};
use bertstream_train::train_loop::Schedule;
use bertstream_train::vocab::VocabOptions;
use bertstream_train::{evaluate, report, split_file, SPLIT_FILES};
use clap::{Args, Parser, Subcommand};
use model::{DeviceSpec, LoadOptions};

#[derive(Parser)]
#[command(
    name = "bertstream-train",
    version,
    about = "Train, evaluate and export BERT text classifiers (labelled data as `label<TAB>text` TSV; \
             eval and predict also read CSV, JSONL and plain text)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// De-duplicate a labelled TSV and split it, stratified by label, into train.tsv, dev.tsv and test.tsv.
    Split {
        /// The labelled file: `label<TAB>text` per line; a `label<TAB>text` header is optional.
        #[arg(long)]
        input: PathBuf,
        /// Directory for train.tsv, dev.tsv and test.tsv (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Train:dev:test proportions, applied within each label.
        #[arg(long, default_value = "6:2:2")]
        ratios: Ratios,
        /// Seed of the shuffle: the same input and seed give the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Train a classifier and write a model directory (loadable by the worker and by transformers).
    Fit(Box<FitArgs>),
    /// Masked-LM pretraining of a compact BERT from scratch on unlabelled text, as a start for `fit --init`.
    Pretrain(Box<PretrainArgs>),
    /// Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix on labelled data.
    Eval {
        /// The model directory.
        #[arg(long)]
        model: PathBuf,
        /// The labelled data to score: TSV, or CSV or JSONL with a label in every row (see --format).
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        format: FormatArg,
        /// Print the metrics as JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Classify texts: JSONL out with id, text, true_label (where the input has a label), label, score and scores.
    Predict {
        /// The model directory.
        #[arg(long)]
        model: PathBuf,
        /// The texts to classify (see --format). Rows without an id get their line number as id.
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        format: FormatArg,
        /// Where to write the JSONL (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// The input format of `eval` and `predict`, named as in `bertstream-produce`.
#[derive(Args)]
struct FormatArg {
    /// Input format. Default: from the file's extension (.tsv/.tab -> tsv,
    /// .csv -> csv, .jsonl/.ndjson -> jsonl), otherwise text.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Args)]
struct RunArgs {
    /// auto (first CUDA device, else CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// CPU threads for torch (0: torch's default, one per core). On a busy
    /// machine 1 can be much faster: torch's OpenMP threads spin while they wait.
    #[arg(long, default_value_t = 0)]
    threads: i32,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("start").required(true).args(["init", "scratch"])))]
struct FitArgs {
    /// Training data (`label<TAB>text`); its labels define the classes.
    #[arg(long)]
    train: PathBuf,
    /// Dev data, evaluated every epoch; the best epoch by macro-F1 is kept.
    #[arg(long)]
    dev: PathBuf,
    /// Test data, evaluated once with the kept weights.
    #[arg(long)]
    test: Option<PathBuf>,
    /// The model directory to write (replaced only once training succeeded).
    #[arg(long)]
    out: PathBuf,
    /// Fine-tune this HF BERT checkpoint directory (or a `pretrain` output), with a new classifier head for the data's labels.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Train a compact BERT from scratch, with a vocabulary built from the training texts.
    #[arg(long)]
    scratch: bool,
    /// Also evaluate on dev every N steps (default: once per epoch).
    #[arg(long)]
    eval_every: Option<usize>,
    /// Weight (0-1) of a teacher in the training targets: a TF-IDF character 1-3-gram logistic regression
    /// fitted on the training texts in 5 folds, each text's probabilities from the fold that left it out;
    /// a target becomes (1 - W) x label + W x teacher. 0: off. Small data sets gain most (docs/training.md).
    #[arg(long, default_value_t = 0.0)]
    ngram_teacher: f64,
    /// Serve an n-gram model beside the encoder: TF-IDF of character 1-3-grams and a logistic regression
    /// fitted on all training texts, its logits mixed in at this share (written as ngram_head.safetensors;
    /// eval, predict and the worker apply it; transformers does not). 0: off. See docs/training.md.
    #[arg(long, default_value_t = 0.0)]
    ngram_head: f64,
    /// Train the encoder beside the n-gram head (needs --ngram-head): in training its logits are mixed at
    /// the head's share with the n-gram model's out-of-fold log-probabilities, so it learns what they miss.
    #[arg(long)]
    ngram_joint: bool,
    #[command(flatten)]
    schedule: ScheduleArgs,
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct PretrainArgs {
    /// Unlabelled text: `.tsv` files are read as `label<TAB>text` (labels ignored), other files one text per line.
    #[arg(long, required = true, num_args = 1..)]
    corpus: Vec<PathBuf>,
    /// The model directory to write (an HF BertForMaskedLM; give it to `fit --init`).
    #[arg(long)]
    out: PathBuf,
    /// Share of the tokens hidden and predicted.
    #[arg(long, default_value_t = 0.15)]
    mask_prob: f64,
    /// Weight of a second objective beside the masked LM (0: off, BERT's
    /// masked LM alone): from the [CLS] position through the pooler, predict
    /// the distribution of the text's tokens, so that what a classifier reads
    /// starts out summing up the whole text. With 1, fine-tuning did better
    /// after a thousand steps or more; after a few hundred it can stall
    /// (docs/training.md has the figures).
    #[arg(long, default_value_t = 0.0)]
    bag_of_words: f64,
    #[command(flatten)]
    schedule: ScheduleArgs,
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// The optimisation flags `fit` and `pretrain` share.
#[derive(Args)]
struct ScheduleArgs {
    /// Passes over the data (fewer if --time-budget runs out first).
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Peak learning rate of AdamW (default: 1e-3 from scratch, 3e-5 with --init).
    #[arg(long)]
    lr: Option<f64>,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Longest input in tokens, [CLS] and [SEP] included; longer texts are truncated.
    #[arg(long, default_value_t = 128)]
    max_seq_len: usize,
    /// Fraction of the training steps spent warming the learning rate up from 0 (then linear decay to 0).
    #[arg(long, default_value_t = 0.06)]
    warmup: f64,
    /// AdamW decoupled weight decay (not applied to biases and LayerNorm).
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Gradients are scaled down to at most this global L2 norm.
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Dropout for hidden states and attention (default: the checkpoint's; 0.1 from scratch).
    #[arg(long)]
    dropout: Option<f64>,
    /// Seed for the initial weights, dropout and batch order; on CPU the same seed gives the same model (without --time-budget).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop training after this many seconds (final evaluation and writing included); the learning rate decays to 0 by then.
    #[arg(long)]
    time_budget: Option<f64>,
    /// Mixed precision: matrix products in bfloat16, weights and optimizer in fp32. Pays on CUDA and, at batch sizes
    /// of 64 and more, on CPUs with bf16 units (AVX512-BF16, AMX); slower on CPUs without them.
    #[arg(long)]
    bf16: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

impl ScheduleArgs {
    /// `default_lr` where `--lr` is not given.
    fn schedule(&self, default_lr: f64, run: &RunArgs) -> anyhow::Result<Schedule> {
        Ok(Schedule {
            epochs: self.epochs,
            lr: self.lr.unwrap_or(default_lr),
            batch_size: self.batch_size,
            max_seq_len: self.max_seq_len,
            warmup: self.warmup,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            seed: self.seed,
            time_budget: self.time_budget,
            device: run.device.resolve()?,
            bf16: self.bf16,
            progress: !self.quiet,
        })
    }
}

/// The shape of a model trained from scratch (`fit --scratch`, `pretrain`).
#[derive(Args)]
struct ShapeArgs {
    /// Transformer layers.
    #[arg(long, default_value_t = ScratchShape::default().layers)]
    layers: i64,
    /// Hidden size.
    #[arg(long, default_value_t = ScratchShape::default().hidden)]
    hidden: i64,
    /// Attention heads (must divide --hidden).
    #[arg(long, default_value_t = ScratchShape::default().heads)]
    heads: i64,
    /// Feed-forward size.
    #[arg(long, default_value_t = ScratchShape::default().intermediate)]
    intermediate: i64,
    /// Characters and words seen fewer times stay out of the vocabulary.
    #[arg(long, default_value_t = ScratchShape::default().vocab.min_count)]
    min_count: usize,
    /// At most this many whole (non-CJK) words in the vocabulary.
    #[arg(long, default_value_t = ScratchShape::default().vocab.max_words)]
    max_words: usize,
    /// Learn this many multi-character pieces (WordPiece training) and keep CJK runs whole instead of one token per
    /// CJK character, so frequent words become one token: shorter inputs, word features (--min-count and --max-words then
    /// do not apply). 0: BERT's per-character way.
    #[arg(long, default_value_t = ScratchShape::default().vocab.cjk_pieces)]
    cjk_pieces: usize,
}

impl ShapeArgs {
    fn shape(&self) -> ScratchShape {
        ScratchShape {
            layers: self.layers,
            hidden: self.hidden,
            heads: self.heads,
            intermediate: self.intermediate,
            vocab: VocabOptions { min_count: self.min_count, max_words: self.max_words, cjk_pieces: self.cjk_pieces },
        }
    }
}

/// oneDNN keeps a compiled primitive per tensor shape, and training batches
/// come in many shapes (dynamic padding): with its default cache `pretrain`'s
/// memory grew from 1 GB to 3 GB in two minutes; with none it stays near 1 GB
/// (docs/training.md). Set before torch starts, unless the user set it.
const ONEDNN_CACHE: &str = "ONEDNN_PRIMITIVE_CACHE_CAPACITY";

fn main() -> std::process::ExitCode {
    if std::env::var_os(ONEDNN_CACHE).is_none() {
        std::env::set_var(ONEDNN_CACHE, "0");
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message chain, without anyhow's backtrace: errors here are about input.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match Cli::parse().command {
        Command::Split { input, out, ratios, seed } => {
            let summary = split_file(&input, &out, ratios, seed)?;
            let d = &summary.dedup;
            println!(
                "read {} rows: dropped {} exact duplicates and {} rows of {} texts with conflicting labels; kept {}",
                d.rows_read, d.duplicate_rows, d.conflicting_rows, d.conflicting_texts, d.kept
            );
            for (name, counts) in SPLIT_FILES.iter().zip(&summary.counts) {
                let total: usize = counts.values().sum();
                println!("{}: {total} ({counts:?})", out.join(name).display());
            }
        }
        Command::Fit(args) => run_fit(*args)?,
        Command::Pretrain(args) => run_pretrain(*args)?,
        Command::Eval { model, data, format, json, run } => {
            let metrics = evaluate::evaluate_file(&model, &data, format.format, &load_options(run))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&metrics)?);
            } else {
                print!("{}", report::metrics_table(&metrics));
            }
        }
        Command::Predict { model, input, format, output, run } => {
            let format = format.format;
            let options = load_options(run);
            let count = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                    let mut writer = std::io::BufWriter::new(file);
                    let n = evaluate::predict_file(&model, &input, format, &mut writer, &options)?;
                    writer.flush().with_context(|| format!("writing {}", path.display()))?;
                    n
                }
                None => evaluate::predict_file(&model, &input, format, &mut std::io::stdout().lock(), &options)?,
            };
            eprintln!("classified {count} texts");
        }
    }
    Ok(())
}

fn load_options(run: RunArgs) -> LoadOptions {
    set_threads(run.threads);
    LoadOptions { device: run.device, ..Default::default() }
}

fn set_threads(threads: i32) {
    if threads > 0 {
        tch::set_num_threads(threads);
    }
}

fn run_fit(a: FitArgs) -> anyhow::Result<()> {
    set_threads(a.run.threads);
    let start = match a.init {
        Some(dir) => Start::Init(dir),
        None => Start::Scratch(a.shape.shape()),
    };
    let lr = if matches!(start, Start::Scratch(_)) { 1e-3 } else { 3e-5 };
    let options = FitOptions {
        train: a.train,
        dev: a.dev,
        test: a.test,
        out: a.out.clone(),
        start,
        dropout: a.schedule.dropout,
        eval_every: a.eval_every,
        ngram_teacher: a.ngram_teacher,
        ngram_head: a.ngram_head,
        ngram_joint: a.ngram_joint,
        schedule: a.schedule.schedule(lr, &a.run)?,
    };
    let summary = fit(&options)?;
    print!("{}", report::fit_report(&summary));
    println!("wrote {}", a.out.display());
    Ok(())
}

fn run_pretrain(a: PretrainArgs) -> anyhow::Result<()> {
    set_threads(a.run.threads);
    let options = PretrainOptions {
        corpus: a.corpus,
        out: a.out.clone(),
        shape: a.shape.shape(),
        dropout: a.schedule.dropout.unwrap_or(0.1),
        mask_prob: a.mask_prob,
        bag_of_words: a.bag_of_words,
        schedule: a.schedule.schedule(1e-3, &a.run)?,
    };
    let summary = pretrain(&options)?;
    println!(
        "{} texts ({} duplicates dropped), {} tokens; {} steps in {:.0}s{}; {} parameters",
        summary.texts,
        summary.duplicates_dropped,
        summary.tokens,
        summary.steps,
        summary.seconds,
        if summary.stopped_by_time_budget { " (stopped by --time-budget)" } else { "" },
        summary.parameters
    );
    println!("wrote {} (fine-tune it with `fit --init {}`)", a.out.display(), a.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent_and_the_formats_documented() {
        Cli::command().debug_assert();
        for command in ["eval", "predict"] {
            let mut cli = Cli::command();
            let help = cli.find_subcommand_mut(command).expect(command).render_long_help().to_string();
            for want in ["--format", "tsv", "csv", "jsonl", "text", ".ndjson", "label<TAB>text", "`id`"] {
                assert!(help.contains(want), "`{want}` missing from {command} --help:\n{help}");
            }
        }
    }

    #[test]
    fn format_is_optional_and_named_as_in_the_producer() {
        let cli =
            Cli::try_parse_from(["t", "predict", "--model", "m", "--input", "x.txt", "--format", "tsv"]).expect("ok");
        assert!(matches!(cli.command, Command::Predict { format: FormatArg { format: Some(Format::Tsv) }, .. }));
        let cli = Cli::try_parse_from(["t", "eval", "--model", "m", "--data", "x.csv"]).expect("ok");
        assert!(matches!(cli.command, Command::Eval { format: FormatArg { format: None }, .. }));
        assert!(Cli::try_parse_from(["t", "eval", "--model", "m", "--data", "x", "--format", "xml"]).is_err());
    }
}
