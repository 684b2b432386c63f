//! What the model crate's integration tests share.

use std::path::{Path, PathBuf};
use std::process::Command;

use bertstream_train::init::ScratchShape;
use bertstream_train::metrics::Metrics;
use bertstream_train::train_loop::Schedule;
use bertstream_train::vocab::VocabOptions;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `fixtures/<script>` with `args` in the project venv and fails the
/// test if it fails; skipped (with a note) where the venv has no transformers.
pub fn run_transformers_check(script: &str, args: &[&std::ffi::OsStr]) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let has_transformers =
        Command::new(&python).args(["-c", "import transformers"]).output().is_ok_and(|o| o.status.success());
    if !has_transformers {
        eprintln!("skipping {script}: {} cannot import transformers", python.display());
        return;
    }
    let output = Command::new(&python).arg(fixtures().join(script)).args(args).output().expect("python runs");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed:\n{log}");
    eprintln!("{log}");
}

/// A model small enough to train in seconds in a debug build (1 layer x 64).
pub fn tiny_shape() -> ScratchShape {
    ScratchShape {
        layers: 1,
        hidden: 64,
        heads: 2,
        intermediate: 128,
        vocab: VocabOptions { min_count: 2, max_words: 200, cjk_pieces: 0 },
    }
}

/// A schedule small enough to train the tiny test models in seconds in a debug build.
pub fn small_schedule(epochs: usize, lr: f64, seed: u64) -> Schedule {
    Schedule {
        epochs,
        lr,
        batch_size: 16,
        max_seq_len: 64,
        warmup: 0.1,
        weight_decay: 0.01,
        max_grad_norm: 1.0,
        seed,
        time_budget: None,
        device: tch::Device::Cpu,
        bf16: false,
        progress: false,
    }
}

/// The model learnt something: dev accuracy clearly above always answering the majority class.
pub fn assert_beats_majority(dev: &Metrics) {
    let majority = dev.majority_accuracy();
    assert!(
        dev.accuracy > majority + 0.05,
        "dev accuracy {} does not beat the majority class {majority}",
        dev.accuracy
    );
}

/// Torch's random generator is global: tests that fit one after another
/// instead of at once, or the seeded runs would draw from each other's stream.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
