//! Forward throughput of the model crate: a random-weight
//! `BertForSequenceClassification` of a given shape, timed under `no_grad`
//! on random token ids, unpadded (no attention mask, like most of the worker's length-grouped batches).
//!
//! Prints one JSON line per `batch x seq_len` shape (the median of the timed
//! iterations), the same lines as `bench/model/torch_forward.py`, so that
//! `bench/model/run.sh` can set them side by side.
//!
//! ```text
//! cargo run --release -p bertstream-model --example forward_bench -- \
//!     --device cpu --threads 2 --shapes 32x64,32x128 --warmup 1 --iters 5
//! ```

use std::time::Instant;

use anyhow::{bail, Context, Result};
use bertstream_model::bert::BertForSequenceClassification;
use bertstream_model::{BertConfig, DeviceSpec};
use clap::Parser;
use serde_json::json;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Parser)]
#[command(about = "Forward throughput (sequences/s) of a random-weight BERT classifier")]
struct Args {
    /// Encoder layers.
    #[arg(long, default_value_t = 12)]
    layers: i64,
    /// Hidden width.
    #[arg(long, default_value_t = 768)]
    hidden: i64,
    /// Attention heads (must divide --hidden).
    #[arg(long, default_value_t = 12)]
    heads: i64,
    /// Feed-forward width.
    #[arg(long, default_value_t = 3072)]
    intermediate: i64,
    /// Vocabulary size (21128: bert-base-chinese).
    #[arg(long, default_value_t = 21128)]
    vocab: i64,
    /// Classes of the classifier head.
    #[arg(long, default_value_t = 3)]
    labels: i64,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Half-precision weights and activations (CUDA only).
    #[arg(long)]
    fp16: bool,
    /// libtorch intra-op threads (tch::set_num_threads); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
    /// Comma-separated `BATCHxSEQ_LEN` shapes.
    #[arg(long, default_value = "32x64,32x128")]
    shapes: String,
    /// Untimed passes per shape before timing.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed passes per shape; the median is reported.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Seed for the weights and the token ids.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

fn parse_shapes(spec: &str) -> Result<Vec<(i64, i64)>> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (b, l) =
                s.trim().split_once(['x', 'X']).with_context(|| format!("shape `{s}` is not BATCHxSEQ_LEN"))?;
            let (b, l): (i64, i64) = (b.parse()?, l.parse()?);
            if b < 1 || l < 1 {
                bail!("shape `{s}` must be positive");
            }
            Ok((b, l))
        })
        .collect()
}

fn config(args: &Args) -> Result<BertConfig> {
    let config: BertConfig = serde_json::from_value(json!({
        "vocab_size": args.vocab,
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "intermediate_size": args.intermediate,
    }))?;
    config.validate()?;
    Ok(config)
}

fn synchronize(device: Device) {
    if let Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
}

/// CPU time of the whole process (all threads, user + system) in seconds, from
/// `/proc/self/stat` (Linux; tick resolution, 10 ms); `None` elsewhere. Less
/// sensitive than wall time to other processes on a shared machine, but it
/// counts OpenMP threads spinning at barriers too: compare it at --threads 1.
fn process_cpu_seconds() -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / USER_HZ)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let shapes = parse_shapes(&args.shapes)?;
    let config = config(&args)?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let device = args.device.resolve()?;
    if args.fp16 && device == Device::Cpu {
        bail!("--fp16 needs a CUDA device");
    }
    if let Some(&(_, l)) = shapes.iter().find(|(_, l)| *l > config.max_position_embeddings) {
        bail!("seq_len {l} exceeds max_position_embeddings {}", config.max_position_embeddings);
    }
    tch::manual_seed(args.seed);

    let mut vs = VarStore::new(device);
    let model = BertForSequenceClassification::new(&vs.root(), &config, args.labels)?;
    vs.freeze();
    if args.fp16 {
        vs.half();
    }
    let _guard = tch::no_grad_guard();
    let threads = tch::get_num_threads();

    for (batch, seq_len) in shapes {
        let ids = Tensor::randint(args.vocab, [batch, seq_len], (Kind::Int64, device));
        for _ in 0..args.warmup {
            let _ = model.forward_t(&ids, None, false);
        }
        synchronize(device);
        let mut seconds = Vec::with_capacity(args.iters);
        let mut cpu_seconds = Vec::with_capacity(args.iters);
        for _ in 0..args.iters {
            let cpu_start = process_cpu_seconds();
            let start = Instant::now();
            let logits = model.forward_t(&ids, None, false);
            synchronize(device);
            seconds.push(start.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (cpu_start, process_cpu_seconds()) {
                cpu_seconds.push(b - a);
            }
            drop(logits);
        }
        let median_s = median(seconds.clone());
        let cpu_s = (cpu_seconds.len() == seconds.len()).then(|| median(cpu_seconds));
        let line = json!({
            "impl": "bertstream",
            "device": device_name(device),
            "dtype": if args.fp16 { "fp16" } else { "fp32" },
            "threads": threads,
            "layers": args.layers,
            "hidden": args.hidden,
            "heads": args.heads,
            "intermediate": args.intermediate,
            "vocab": args.vocab,
            "batch": batch,
            "seq_len": seq_len,
            "warmup": args.warmup,
            "iters": args.iters,
            "median_s": median_s,
            "min_s": seconds.iter().copied().fold(f64::INFINITY, f64::min),
            "seq_per_s": batch as f64 / median_s,
            "cpu_s": cpu_s,
        });
        println!("{line}");
    }
    Ok(())
}

fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}
