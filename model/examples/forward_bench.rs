//! Forward throughput of the model crate: a `BertForSequenceClassification`
//! (random weights of a given shape, or a model directory's with `--model`),
//! timed under `no_grad`.
//!
//! Two kinds of batches: fixed `BATCHxSEQ_LEN` shapes of random token ids,
//! unpadded (no attention mask, like the worker's unpadded batches; `--mask`
//! passes an all-ones mask to measure what a mask costs); or `--plan FILE`,
//! batches of real texts' token lengths (one batch a line, its lengths
//! separated by spaces: `torch_forward.py --make-plan` writes it), padded and
//! masked as the classifier pads them. A plan's batches of one size are timed
//! back to back with one wait at the end (`seq_per_s`) and one by one
//! (`median_s`: at batch 1, one text's latency).
//!
//! Prints one JSON line per shape or plan batch size, the same lines as
//! `bench/model/torch_forward.py`, so that `bench/model/run.sh` can set them
//! side by side. `sdp_backend` is the attention kernel libtorch picks for the
//! batch's shapes, kind and mask (`math`, `flash`, `efficient`, `cudnn`).
//!
//! ```text
//! cargo run --release -p bertstream-model --example forward_bench -- \
//!     --device cpu --threads 2 --shapes 32x64,32x128 --warmup 1 --iters 5
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bertstream_model::bert::{BertForSequenceClassification, BertModel};
use bertstream_model::dir::load_weights;
use bertstream_model::{BertConfig, DeviceSpec, Dtype, EncodedBatch, ModelDir};
use clap::Parser;
use serde_json::{json, Value};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Parser)]
#[command(about = "Forward throughput (sequences/s) of a BERT classifier")]
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
    /// A model directory: its shape and weights instead of the flags above and random weights.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// fp32, fp16 (CUDA only) or bf16.
    #[arg(long, default_value = "fp32")]
    dtype: Dtype,
    /// The same as --dtype fp16.
    #[arg(long, conflicts_with = "dtype")]
    fp16: bool,
    /// libtorch intra-op threads (tch::set_num_threads); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
    /// Comma-separated `BATCHxSEQ_LEN` shapes.
    #[arg(long, default_value = "32x64,32x128")]
    shapes: String,
    /// Batches of real token lengths instead of --shapes (one batch a line).
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Fixed shapes get an all-ones attention mask (the cost of a mask) instead of none.
    #[arg(long)]
    mask: bool,
    /// Untimed passes per shape before timing.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed passes per shape; the median is reported. A plan's batches of one
    /// size are all timed, and cycled through to at least this many.
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

/// A plan's batches, grouped by batch size in the order sizes first appear.
fn read_plan(path: &PathBuf) -> Result<Vec<(usize, Vec<Vec<usize>>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut groups: Vec<(usize, Vec<Vec<usize>>)> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let lengths: Vec<usize> = line
            .split_whitespace()
            .map(|x| x.parse().ok().filter(|&l| l >= 1))
            .collect::<Option<_>>()
            .with_context(|| format!("{} line {}: not token lengths", path.display(), n + 1))?;
        match groups.iter_mut().find(|(size, _)| *size == lengths.len()) {
            Some((_, batches)) => batches.push(lengths),
            None => groups.push((lengths.len(), vec![lengths])),
        }
    }
    Ok(groups)
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

/// One batch on the device: ids, the attention mask (if any), rows and tokens before padding.
struct Input {
    ids: Tensor,
    mask: Option<Tensor>,
    rows: usize,
    tokens: usize,
    padded: usize,
}

/// Random ids of the given lengths, padded and masked as the classifier does it.
fn plan_input(lengths: &[usize], vocab: i64, device: Device) -> Input {
    let sequences: Vec<Vec<i64>> = lengths
        .iter()
        .map(|&len| Vec::<i64>::try_from(Tensor::randint_low(1, vocab, [len as i64], (Kind::Int64, Device::Cpu))))
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let batch = EncodedBatch::pad(&sequences, 0);
    let (ids, mask) = batch.to_tensors(device);
    Input { ids, mask, rows: batch.rows, tokens: lengths.iter().sum(), padded: batch.padded_tokens() }
}

fn fixed_input(batch: i64, seq_len: i64, vocab: i64, mask: bool, device: Device) -> Input {
    let ids = Tensor::randint(vocab, [batch, seq_len], (Kind::Int64, device));
    let mask = mask.then(|| Tensor::ones([batch, seq_len], (Kind::Int64, device)));
    let tokens = (batch * seq_len) as usize;
    Input { ids, mask, rows: batch as usize, tokens, padded: tokens }
}

/// The attention kernel libtorch picks for this input's shapes and kind, with
/// the mask the model makes of a padded batch's, or without one.
fn sdp_backend(input: &Input, masked: bool, config: &BertConfig, kind: Kind, device: Device) -> &'static str {
    let (b, l) = (input.ids.size()[0], input.ids.size()[1]);
    let q = Tensor::zeros([b, config.num_attention_heads, l, config.head_dim()], (kind, device));
    let mask = input.mask.as_ref().map_or_else(|| input.ids.ones_like(), Tensor::shallow_clone);
    let bias = masked.then(|| BertModel::attention_bias(&mask, kind));
    match Tensor::f_internal_fused_sdp_choice(&q, &q, &q, bias.as_ref(), 0.0, false, None, false) {
        Ok(0) => "math",
        Ok(1) => "flash",
        Ok(2) => "efficient",
        Ok(3) => "cudnn",
        Ok(_) => "other",
        Err(_) => "none",
    }
}

/// Times `inputs` (cycled to at least `iters`): back to back with one wait at
/// the end, then one by one. Returns (sequences/s, per-batch median and min seconds, CPU seconds per batch).
fn time(
    model: &BertForSequenceClassification,
    inputs: &[Input],
    iters: usize,
    device: Device,
) -> (f64, f64, f64, Option<f64>) {
    let n = iters.max(inputs.len());
    let run = |i: usize| model.forward_t(&inputs[i % inputs.len()].ids, inputs[i % inputs.len()].mask.as_ref(), false);
    let rows: usize = (0..n).map(|i| inputs[i % inputs.len()].rows).sum();
    synchronize(device);
    let start = Instant::now();
    for i in 0..n {
        drop(run(i));
    }
    synchronize(device);
    let seq_per_s = rows as f64 / start.elapsed().as_secs_f64();
    let mut seconds = Vec::with_capacity(n);
    let mut cpu_seconds = Vec::with_capacity(n);
    for i in 0..n {
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        let logits = run(i);
        synchronize(device);
        seconds.push(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu_start, process_cpu_seconds()) {
            cpu_seconds.push(b - a);
        }
        drop(logits);
    }
    let min = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let cpu_s = (cpu_seconds.len() == seconds.len()).then(|| median(cpu_seconds));
    (seq_per_s, median(seconds), min, cpu_s)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let dtype = if args.fp16 { Dtype::Fp16 } else { args.dtype };
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let device = args.device.resolve()?;
    if dtype == Dtype::Fp16 && device == Device::Cpu {
        bail!("fp16 needs a CUDA device");
    }
    tch::manual_seed(args.seed);

    let (config, labels) = match &args.model {
        Some(dir) => {
            let dir = ModelDir::open(dir)?;
            let labels = dir.config.labels()?.len().max(1) as i64;
            (dir.config, labels)
        }
        None => (config(&args)?, args.labels),
    };
    let mut vs = VarStore::new(device);
    let model = BertForSequenceClassification::new(&vs.root(), &config, labels)?;
    if let Some(dir) = &args.model {
        load_weights(&mut vs, &dir.join("model.safetensors"), &[])?;
    }
    vs.freeze();
    match dtype {
        Dtype::Fp32 => {}
        Dtype::Fp16 => vs.half(),
        Dtype::Bf16 => vs.bfloat16(),
    }
    let _guard = tch::no_grad_guard();
    let threads = tch::get_num_threads();
    let vocab = config.vocab_size;

    // (batch, seq_len label, inputs)
    let mut runs: Vec<(usize, Value, Vec<Input>)> = Vec::new();
    if let Some(plan) = &args.plan {
        for (size, batches) in read_plan(plan)? {
            if let Some(l) = batches.iter().flatten().find(|&&l| l as i64 > config.max_position_embeddings) {
                bail!("a length of {l} exceeds max_position_embeddings {}", config.max_position_embeddings);
            }
            runs.push((size, json!("real"), batches.iter().map(|b| plan_input(b, vocab, device)).collect()));
        }
    } else {
        for (batch, seq_len) in parse_shapes(&args.shapes)? {
            if seq_len > config.max_position_embeddings {
                bail!("seq_len {seq_len} exceeds max_position_embeddings {}", config.max_position_embeddings);
            }
            runs.push((batch as usize, json!(seq_len), vec![fixed_input(batch, seq_len, vocab, args.mask, device)]));
        }
    }

    for (batch, seq_len, inputs) in runs {
        // Every batch once at least: a shape's first pass is slow (kernel choice, oneDNN primitives).
        for i in 0..args.warmup.max(inputs.len()) {
            let input = &inputs[i % inputs.len()];
            drop(model.forward_t(&input.ids, input.mask.as_ref(), false));
        }
        let (seq_per_s, median_s, min_s, cpu_s) = time(&model, &inputs, args.iters, device);
        let tokens: usize = inputs.iter().map(|i| i.tokens).sum();
        let padded: usize = inputs.iter().map(|i| i.padded).sum();
        let masked = inputs.iter().filter(|i| i.mask.is_some()).count();
        let line = json!({
            "impl": "bertstream",
            "device": device_name(device),
            "dtype": dtype.to_string(),
            "threads": threads,
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
            "heads": config.num_attention_heads,
            "intermediate": config.intermediate_size,
            "vocab": vocab,
            "batch": batch,
            "seq_len": seq_len,
            "batches": inputs.len(),
            "mean_len": tokens as f64 / inputs.iter().map(|i| i.rows).sum::<usize>() as f64,
            "padding": 1.0 - tokens as f64 / padded as f64,
            "masked_batches": masked,
            "sdp_masked": sdp_backend(&inputs[0], true, &config, dtype.kind(), device),
            "sdp_unmasked": sdp_backend(&inputs[0], false, &config, dtype.kind(), device),
            "warmup": args.warmup,
            "iters": args.iters.max(inputs.len()),
            "median_s": median_s,
            "min_s": min_s,
            "seq_per_s": seq_per_s,
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
