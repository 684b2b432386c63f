//! Writing the model directory atomically: files go into a hidden temporary
//! directory beside `--out`, which replaces `--out` only once complete. If
//! anything fails, dropping [`OutputDir`] removes the temporary directory.

use std::path::{Path, PathBuf};

use model::config::BertConfig;
use model::dir::{save_weights, Meta, CONFIG_FILE, META_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use model::ngram::{NgramHead, NGRAM_HEAD_FILE};
use model::tokenize::TextEncoder;
use tch::nn::VarStore;

use crate::error::{Result, TrainError};
use crate::init::Prepared;
use crate::metrics::Metrics;
use crate::summary::FitSummary;
use crate::{chart, report};

pub const METRICS_FILE: &str = "metrics.json";
pub const REPORT_FILE: &str = "report.txt";
pub const CHART_FILE: &str = "training.png";

pub struct OutputDir {
    target: PathBuf,
    temp: PathBuf,
    committed: bool,
}

impl OutputDir {
    pub fn create(target: &Path) -> Result<Self> {
        let name = target
            .file_name()
            .ok_or_else(|| TrainError::Invalid(format!("--out {}: not a directory name", target.display())))?;
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(TrainError::io(parent))?;
        let temp = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(TrainError::io(&temp))?;
        }
        std::fs::create_dir(&temp).map_err(TrainError::io(&temp))?;
        Ok(Self { target: target.into(), temp, committed: false })
    }

    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Moves the finished directory to `--out`, replacing what was there.
    pub fn commit(mut self) -> Result<()> {
        if self.target.exists() {
            let old = self.temp.with_extension("old");
            std::fs::rename(&self.target, &old).map_err(TrainError::io(&self.target))?;
            std::fs::rename(&self.temp, &self.target).map_err(TrainError::io(&self.target))?;
            std::fs::remove_dir_all(&old).map_err(TrainError::io(&old))?;
        } else {
            std::fs::rename(&self.temp, &self.target).map_err(TrainError::io(&self.target))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(TrainError::io(path))
}

/// `bertstream.json` for a model trained now, with inputs of up to `max_seq_len` tokens.
pub fn meta(max_seq_len: usize) -> Meta {
    Meta {
        max_seq_len,
        created_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ..Default::default()
    }
}

/// What every model directory holds, `fit`'s and `pretrain`'s alike: config,
/// weights, tokenizer and `bertstream.json`.
pub fn write_checkpoint(
    dir: &Path,
    config: &BertConfig,
    vs: &VarStore,
    encoder: &TextEncoder,
    meta: &Meta,
) -> Result<()> {
    write_json(&dir.join(CONFIG_FILE), config)?;
    save_weights(vs, &dir.join(WEIGHTS_FILE))?;
    encoder.save(&dir.join(TOKENIZER_FILE))?;
    write_json(&dir.join(META_FILE), meta)
}

/// `fit`'s model directory: the checkpoint (with the data digest and headline
/// metrics in `bertstream.json`), the n-gram head if any, `metrics.json`, the
/// text report and the chart.
pub fn write_model_dir(
    out: &OutputDir,
    p: &Prepared,
    head: Option<&NgramHead>,
    summary: &FitSummary,
    data_digest: &str,
    max_seq_len: usize,
) -> Result<()> {
    let dir = out.path();
    let headline =
        |m: &Metrics| serde_json::json!({"accuracy": m.accuracy, "macro_f1": m.macro_f1, "examples": m.examples});
    let meta = Meta {
        data_digest: Some(data_digest.into()),
        metrics: Some(serde_json::json!({"dev": headline(&summary.dev), "test": summary.test.as_ref().map(headline)})),
        ..meta(max_seq_len)
    };
    write_checkpoint(dir, &p.config, &p.vs, &p.encoder, &meta)?;
    if let Some(head) = head {
        head.save(&dir.join(NGRAM_HEAD_FILE))?;
    }
    write_json(&dir.join(METRICS_FILE), summary)?;
    let text = report::fit_report(summary);
    std::fs::write(dir.join(REPORT_FILE), &text).map_err(TrainError::io(dir.join(REPORT_FILE)))?;
    if let Err(e) = chart::draw(&dir.join(CHART_FILE), summary) {
        // The chart is a convenience: a missing font must not cost the model.
        tracing::warn!("{CHART_FILE} not written: {e}");
    }
    Ok(())
}
