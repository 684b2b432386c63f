//! `pretrain` on a small real slice (`fixtures/reviews-small.tsv`): the
//! masked-LM loss (and the bag-of-words loss) falls, the directory loads in transformers as a
//! BertForMaskedLM, and `fit --init` of it trains a classifier that learns.

use std::path::{Path, PathBuf};

use bertstream_train::fit::{fit, FitOptions};
use bertstream_train::init::Start;
use bertstream_train::pretrain::{pretrain, PretrainEpoch, PretrainOptions, PretrainSummary};
use bertstream_train::split_file;
use model::{Classifier, LoadOptions};

mod common;
use common::{assert_beats_majority, fixtures, run_transformers_check, serial, small_schedule, tiny_shape};

#[test]
fn pretrain_learns_loads_in_transformers_and_fine_tunes() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, pretrained, summary) = pretrain_slice(tmp.path(), 0.0);
    let (first, last) = (&summary.history[0], summary.history.last().expect("epochs"));
    assert_eq!(summary.history.len(), 4);
    assert!(last.loss < first.loss - 0.3, "masked-LM loss did not fall: {first:?} -> {last:?}");
    assert!(last.bag_of_words_loss.is_none(), "no bag-of-words loss without the objective");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "bertstream.json",
        "pretrain.json",
    ] {
        assert!(pretrained.join(file).is_file(), "{file} missing");
    }
    check_with_transformers(&pretrained, &data.join("dev.tsv"), tmp.path(), last.loss);

    let model = tmp.path().join("model");
    let fit_options = FitOptions {
        train: data.join("train.tsv"),
        dev: data.join("dev.tsv"),
        test: None,
        out: model.clone(),
        start: Start::Init(pretrained),
        dropout: None,
        eval_every: None,
        ngram_teacher: 0.0,
        ngram_head: 0.0,
        ngram_joint: false,
        schedule: small_schedule(4, 3e-3, 5),
    };
    let fitted = fit(&fit_options).expect("fit --init");
    assert_beats_majority(&fitted.dev);
    let classifier = Classifier::load(&model, &LoadOptions::default()).expect("loads as a served model");
    assert_eq!(classifier.labels(), ["-1", "1"]);
}

/// `--bag-of-words`: [CLS]'s prediction of each text's tokens improves, and
/// the directory is still a BertForMaskedLM that transformers scores alike.
#[test]
fn bag_of_words_objective_learns_and_keeps_a_masked_lm() {
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, pretrained, summary) = pretrain_slice(tmp.path(), 1.0);
    let (first, last) = (&summary.history[0], summary.history.last().expect("epochs"));
    let bag_loss = |e: &PretrainEpoch| e.bag_of_words_loss.expect("bag-of-words loss recorded");
    assert!(bag_loss(last) < bag_loss(first) - 0.3, "bag-of-words loss did not fall: {first:?} -> {last:?}");
    assert!(last.loss < first.loss - 0.3, "masked-LM loss did not fall: {first:?} -> {last:?}");
    check_with_transformers(&pretrained, &data.join("dev.tsv"), tmp.path(), last.loss);
}

/// Splits the slice into `tmp/split` and pretrains the tiny model on its
/// training texts for 4 epochs into `tmp/pretrained`.
fn pretrain_slice(tmp: &Path, bag_of_words: f64) -> (PathBuf, PathBuf, PretrainSummary) {
    let data = tmp.join("split");
    split_file(&fixtures().join("reviews-small.tsv"), &data, "6:2:2".parse().expect("ratios"), 1).expect("split");
    let pretrained = tmp.join("pretrained");
    let options = PretrainOptions {
        corpus: vec![data.join("train.tsv")],
        out: pretrained.clone(),
        shape: tiny_shape(),
        dropout: 0.1,
        mask_prob: 0.15,
        bag_of_words,
        schedule: small_schedule(4, 3e-3, 5),
    };
    let summary = pretrain(&options).expect("pretrain");
    (data, pretrained, summary)
}

/// `fixtures/check_hf_mlm.py`: transformers loads every trained weight and scores the dev texts as we did.
fn check_with_transformers(model: &Path, dev: &Path, tmp: &Path, our_loss: f64) {
    let texts = tmp.join("mlm-texts.txt");
    let body: String = std::fs::read_to_string(dev)
        .expect("dev")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t'))
        .map(|(_, t)| format!("{t}\n"))
        .collect();
    std::fs::write(&texts, body).expect("texts");
    let loss = our_loss.to_string();
    run_transformers_check("check_hf_mlm.py", &[model.as_os_str(), texts.as_os_str(), loss.as_ref()]);
}
