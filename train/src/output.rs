//! Writing the model directory atomically: files go into a hidden temporary
//! directory beside `--out`, which replaces `--out` only once complete. If
//! anything fails, dropping [`OutputDir`] removes the temporary directory.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::init::Prepared;
use crate::summary::FitSummary;
use crate::{chart, report};
use model::dir::{save_weights, Meta, CONFIG_FILE, META_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

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

pub(super) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(TrainError::io(path))
}

/// Config, weights, tokenizer, `bertstream.json`, `metrics.json`, the text report and the chart.
pub fn write_model_dir(out: &OutputDir, p: &Prepared, summary: &FitSummary, data_digest: &str, max_seq_len: usize) -> Result<()> {
    let dir = out.path();
    write_json(&dir.join(CONFIG_FILE), &p.config)?;
    save_weights(&p.vs, &dir.join(WEIGHTS_FILE))?;
    p.encoder.save(&dir.join(TOKENIZER_FILE))?;
    let headline = |m: &crate::metrics::Metrics| serde_json::json!({"accuracy": m.accuracy, "macro_f1": m.macro_f1, "examples": m.examples});
    let meta = Meta {
        max_seq_len,
        data_digest: Some(data_digest.into()),
        metrics: Some(serde_json::json!({"dev": headline(&summary.dev), "test": summary.test.as_ref().map(headline)})),
        created_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        extra: Default::default(),
    };
    write_json(&dir.join(META_FILE), &meta)?;
    write_json(&dir.join(METRICS_FILE), summary)?;
    let text = report::fit_report(summary);
    std::fs::write(dir.join(REPORT_FILE), &text).map_err(TrainError::io(dir.join(REPORT_FILE)))?;
    if let Err(e) = chart::draw(&dir.join(CHART_FILE), summary) {
        // The chart is a convenience: a missing font must not cost the model.
        tracing::warn!("{CHART_FILE} not written: {e}");
    }
    Ok(())
}
