//! `bench/gpu.sh run`, dry: every part of the GPU machine's run, on CPU, with
//! the debug binaries, a tiny random model and a few hundred texts, so that
//! the script (and what it calls) cannot rot between GPU runs. Needs neither
//! Kafka nor Postgres. No timing is checked: only that each part ran (fp16
//! is skipped on CPU) and left its section in results.json.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use bertstream_tests::{python, repo_root, tiny_model, unique, worker_binary};

/// A binary cargo built beside the worker (examples, test binaries).
fn built(relative: &str) -> PathBuf {
    let path = worker_binary().parent().expect("profile dir").join(relative);
    assert!(path.is_file(), "{} not built: run `cargo build --workspace --all-targets`", path.display());
    path
}

/// The newest build of the model crate's parity tests, if any.
fn parity_binary() -> Option<PathBuf> {
    let deps = worker_binary().parent().expect("profile dir").join("deps");
    std::fs::read_dir(deps)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("parity-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// What `bench/gpu.sh build` stages, made of links to this machine's builds
/// and the test fixtures: the random tiny model stands in for the trained one.
fn stage(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("stage");
    symlink(worker_binary(), bin.join("bertstream-worker")).expect("link");
    symlink(built("examples/forward_bench"), bin.join("forward_bench")).expect("link");
    symlink(built("examples/dtype_agreement"), bin.join("dtype_agreement")).expect("link");
    if let Some(parity) = parity_binary() {
        symlink(parity, bin.join("parity")).expect("link");
    }
    symlink(tiny_model(), dir.join("model-small")).expect("link");
    symlink(tiny_model().join("vocab.txt"), dir.join("vocab.txt")).expect("link");
    let reviews = std::fs::read_to_string(repo_root().join("train/tests/fixtures/reviews-small.tsv")).expect("reviews");
    let texts: Vec<&str> = reviews.lines().skip(1).filter_map(|l| l.split_once('\t').map(|(_, t)| t)).collect();
    std::fs::write(dir.join("texts.txt"), texts.join("\n") + "\n").expect("texts");
}

#[test]
fn the_gpu_run_script_runs_every_part_on_cpu() {
    let dir = std::env::temp_dir().join(unique("gpu-bench"));
    let (stage_dir, out) = (dir.join("stage"), dir.join("out"));
    stage(&stage_dir);
    let status = Command::new(repo_root().join("bench/gpu.sh"))
        .arg("run")
        .env("STAGE", &stage_dir)
        .env("OUT", &out)
        .env("PYTHON", python())
        .env("DEVICE", "cpu")
        // fp16 is skipped on CPU (that path is checked too); bf16 goes through the agreement check.
        .env("DTYPES", "fp16 fp32")
        .env("MODEL_SHAPE", "--layers 2 --hidden 64 --heads 2 --intermediate 128")
        .env("MAX_LEN", "64")
        .env("REVIEWS", "400")
        .env("BENCH_WARMUP", "64")
        .env("LATENCY_SAMPLES", "10")
        .env("BENCH_BATCH", "32")
        .env("BENCH_TOKENS", "2048")
        .env("AGREE_TEXTS", "100")
        // A random model's near-even probabilities flip labels: the threshold is for trained models.
        .env("AGREE_MIN", "0")
        .env("BATCHES", "1 8")
        .env("PLAN_SEQS", "16")
        .env("WARMUP", "1")
        .env("ITERS", "2")
        .env("BUDGET", "300")
        // One libtorch thread a side: on a busy machine more spin against each other.
        .env("THREADS", "1")
        .status()
        .expect("run bench/gpu.sh");
    let status_tsv = std::fs::read_to_string(out.join("status.tsv")).unwrap_or_default();
    assert!(status.success(), "bench/gpu.sh failed:\n{status_tsv}");

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("results.json")).expect("json");
    for section in [
        "machine",
        "settings",
        "status",
        "parity",
        "agreement",
        "plan",
        "inprocess",
        "forward",
        "mask",
        "grad_mode",
        "e2e_cpu",
        "goals",
    ] {
        assert!(results.get(section).is_some(), "results.json has no `{section}`");
    }
    for part in
        ["cuda-check", "agreement", "model", "inprocess-fp32", "plain-fp32", "forward-fp32", "mask-fp32", "nograd-fp32"]
    {
        assert_eq!(results["status"][part]["status"], "ok", "{part}: {status_tsv}");
    }
    assert_eq!(results["status"]["inprocess-fp16"]["status"], "skipped", "{status_tsv}");
    let ours = &results["inprocess"]["fp32"]["bertstream"];
    assert_eq!(ours["reviews"], 400, "{ours}");
    assert!(ours["padding"].as_f64().is_some() && ours["p50_ms"].as_f64().is_some(), "{ours}");
    assert!(results["inprocess"]["fp32"]["pytorch"]["reviews_per_s"].as_f64().is_some(), "{results}");
    let forward = results["forward"]["fp32"].as_array().expect("forward rows");
    assert_eq!(forward.len(), 2, "one row per batch size: {forward:?}");
    assert_eq!(results["agreement"][0]["dtype"], "bf16");
    let table = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    assert!(table.contains("## In-process") && table.contains("## Model forward"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}
