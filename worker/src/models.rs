//! The loaded models: the primary, whose results are served, and an optional
//! shadow that also scores a sample of the stream, for comparison only
//! (`docs/models.md`).
//!
//! A change (hot swap, promote) loads and checks the new model beside the
//! old one, then replaces a pointer: inference takes the primary once per
//! batch, so batches switch between one batch and the next, and each result
//! names the model that scored it. A model that fails to load or to pass its
//! checks changes nothing.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use model::{ClassifierHandle, LoadOptions, ModelInfo};
use serde::Serialize;

use crate::config::ModelArgs;
use crate::metrics::Metrics;

/// Texts a new model scores before it takes traffic: it must answer each
/// with one finite probability per label.
const WARM_UP_TEXTS: [&str; 4] = ["很好", "质量一般，还行", "The product arrived broken.", "?"];

/// Results the rolling figures (agreement, label shares) look back over.
pub const WINDOW: usize = 1000;

/// One loaded model and what it has done since it was loaded.
pub struct LoadedModel {
    pub handle: ClassifierHandle,
    pub dir: PathBuf,
    pub loaded_at: DateTime<Utc>,
    scored: AtomicU64,
}

impl LoadedModel {
    pub fn info(&self) -> &ModelInfo {
        self.handle.info()
    }

    pub fn id(&self) -> &str {
        &self.handle.info().model_id
    }

    pub fn count_scored(&self, n: usize) {
        self.scored.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn scored(&self) -> u64 {
        self.scored.load(Ordering::Relaxed)
    }
}

/// Why a model change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Refused(String),
    #[error("there is no shadow model to promote; start the worker with SHADOW_MODEL_DIR")]
    NoShadow,
}

/// What a change did.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub primary: String,
    pub previous: String,
    pub shadow: Option<String>,
}

pub struct Models {
    primary: RwLock<Arc<LoadedModel>>,
    shadow: RwLock<Option<Arc<LoadedModel>>>,
    /// Share of the stream's reviews the shadow scores (by review id).
    pub shadow_sample: f64,
    options: LoadOptions,
    threads: Option<usize>,
    /// One change at a time, so two racing swaps cannot interleave.
    changing: tokio::sync::Mutex<()>,
    windows: Mutex<Windows>,
    metrics: Arc<Metrics>,
}

impl Models {
    /// Loads the primary (and the shadow, when given); either failing is an error.
    /// [`start`](Self::start) with the settings of `MODEL_DIR` and its neighbours.
    pub async fn from_args(args: &ModelArgs, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        Self::start(
            args.model_dir.clone(),
            args.shadow_model_dir.clone(),
            args.shadow_sample,
            args.load_options(),
            args.torch_threads,
            metrics,
        )
        .await
    }

    pub async fn start(
        primary: PathBuf,
        shadow: Option<PathBuf>,
        shadow_sample: f64,
        options: LoadOptions,
        threads: Option<usize>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!((0.0..=1.0).contains(&shadow_sample), "SHADOW_SAMPLE must be from 0 to 1, not {shadow_sample}");
        let primary = load(&primary, &options, threads).await?;
        let shadow = match shadow {
            Some(dir) => {
                let shadow =
                    load(&dir, &options, threads).await.map_err(|e| anyhow::anyhow!("SHADOW_MODEL_DIR: {e}"))?;
                // Their results would share one `predictions` row per review.
                anyhow::ensure!(
                    shadow.id() != primary.id(),
                    "SHADOW_MODEL_DIR is the primary model ({})",
                    primary.id()
                );
                Some(shadow)
            }
            None => None,
        };
        let models = Self {
            primary: RwLock::new(primary),
            shadow: RwLock::new(shadow),
            shadow_sample,
            options,
            threads,
            changing: tokio::sync::Mutex::new(()),
            windows: Mutex::default(),
            metrics,
        };
        models.publish_info();
        Ok(models)
    }

    /// The model that scores the next batch.
    pub fn primary(&self) -> Arc<LoadedModel> {
        self.primary.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn shadow(&self) -> Option<Arc<LoadedModel>> {
        self.shadow.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the shadow scores this review: a fixed share of ids, the same
    /// on every worker, so a review is either compared or not.
    pub fn sampled(&self, review_id: &str) -> bool {
        self.shadow_sample >= 1.0 || (id_hash(review_id.as_bytes()) as f64 / u64::MAX as f64) < self.shadow_sample
    }

    /// Loads `dir`, checks it, and makes it the primary. Its labels must be
    /// the primary's (in any order): consumers of the output topic rely on them.
    pub async fn swap_primary(&self, dir: &Path) -> Result<Change, ChangeError> {
        let _one_at_a_time = self.changing.lock().await;
        let outcome = self.try_swap(dir).await;
        let result = if outcome.is_ok() { "ok" } else { "refused" };
        self.metrics.model_changes.with_label_values(&["swap", result]).inc();
        match &outcome {
            Ok(change) => {
                tracing::info!(primary = %change.primary, previous = %change.previous, dir = %dir.display(), "primary model swapped")
            }
            Err(e) => tracing::warn!(dir = %dir.display(), reason = %e, "model swap refused; the primary is unchanged"),
        }
        outcome
    }

    async fn try_swap(&self, dir: &Path) -> Result<Change, ChangeError> {
        let new = load(dir, &self.options, self.threads).await.map_err(|e| ChangeError::Refused(e.to_string()))?;
        let previous = self.primary();
        same_labels(&previous, &new)?;
        if self.shadow().is_some_and(|s| s.id() == new.id()) {
            return Err(ChangeError::Refused(format!("{} is the shadow: promote it instead", new.id())));
        }
        *self.primary.write().unwrap_or_else(PoisonError::into_inner) = new.clone();
        self.publish_info();
        Ok(Change {
            primary: new.id().into(),
            previous: previous.id().into(),
            shadow: self.shadow().map(|s| s.id().into()),
        })
    }

    /// Makes the shadow the primary and the primary the shadow: calling it
    /// again rolls back.
    pub async fn promote(&self) -> Result<Change, ChangeError> {
        let _one_at_a_time = self.changing.lock().await;
        let outcome = (|| {
            let shadow = self.shadow().ok_or(ChangeError::NoShadow)?;
            let previous = self.primary();
            same_labels(&previous, &shadow)?;
            *self.primary.write().unwrap_or_else(PoisonError::into_inner) = shadow.clone();
            *self.shadow.write().unwrap_or_else(PoisonError::into_inner) = Some(previous.clone());
            Ok(Change {
                primary: shadow.id().into(),
                previous: previous.id().into(),
                shadow: Some(previous.id().into()),
            })
        })();
        let result = if outcome.is_ok() { "ok" } else { "refused" };
        self.metrics.model_changes.with_label_values(&["promote", result]).inc();
        if let Ok(change) = &outcome {
            self.publish_info();
            tracing::info!(primary = %change.primary, shadow = ?change.shadow, "shadow promoted");
        }
        outcome
    }

    /// Records a batch's labels by role, and the shadow's agreement, for the
    /// rolling figures and their gauges.
    pub fn observe(&self, primary: &[&str], shadow: &[(&str, &str)]) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows.primary.extend(primary.iter().map(|l| l.to_string()));
        windows.shadow.extend(shadow.iter().map(|(_, s)| s.to_string()));
        windows.agreement.extend(shadow.iter().map(|(p, s)| p == s));
        windows.trim();
        let m = &self.metrics;
        if let Some(agreement) = windows.agreement() {
            m.shadow_agreement.set(agreement);
        }
        for (role, shares) in
            [("primary", windows.shares(&windows.primary)), ("shadow", windows.shares(&windows.shadow))]
        {
            for (label, share) in shares {
                m.label_share.with_label_values(&[role, &label]).set(share);
            }
        }
    }

    /// The rolling figures: agreement of primary and shadow, and label shares by role.
    pub fn rolling(&self) -> Rolling {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        Rolling {
            window: WINDOW,
            agreement: windows.agreement(),
            primary_labels: windows.shares(&windows.primary),
            shadow_labels: windows.shares(&windows.shadow),
        }
    }

    /// `bertstream_model_info{role, model}`: 1 for each loaded model; the
    /// rolling figures start again, as they describe the models in place.
    fn publish_info(&self) {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let info = &self.metrics.model_info;
        info.reset();
        info.with_label_values(&["primary", self.primary().id()]).set(1);
        if let Some(shadow) = self.shadow() {
            info.with_label_values(&["shadow", shadow.id()]).set(1);
        }
        self.metrics.label_share.reset();
    }
}

/// Loads a model on a blocking thread and checks it on a warm-up batch.
pub async fn load(dir: &Path, options: &LoadOptions, threads: Option<usize>) -> anyhow::Result<Arc<LoadedModel>> {
    let (dir, options) = (dir.to_path_buf(), options.clone());
    tokio::task::spawn_blocking(move || {
        let handle = ClassifierHandle::spawn(dir.clone(), options, threads)
            .map_err(|e| anyhow::anyhow!("{} is not a usable model: {e}", dir.display()))?;
        warm_up(&handle).map_err(|e| anyhow::anyhow!("{} failed its warm-up batch: {e}", dir.display()))?;
        Ok(Arc::new(LoadedModel { handle, dir, loaded_at: Utc::now(), scored: AtomicU64::new(0) }))
    })
    .await?
}

impl LoadedModel {
    /// Whether the model still scores the warm-up batch: after a batch
    /// failed, this tells a record at fault from a model at fault.
    pub async fn healthy(&self) -> bool {
        let encoder = self.handle.encoder();
        let Ok(sequences) = encoder.encode_all(&WARM_UP_TEXTS) else { return false };
        self.handle.predict(encoder.batch(&sequences)).await.is_ok()
    }
}

fn warm_up(handle: &ClassifierHandle) -> anyhow::Result<()> {
    let labels = &handle.info().labels;
    let unique: BTreeSet<&String> = labels.iter().collect();
    anyhow::ensure!(unique.len() == labels.len(), "its labels {labels:?} repeat");
    let encoder = handle.encoder();
    let batch = encoder.batch(&encoder.encode_all(&WARM_UP_TEXTS)?);
    let predictions = handle.predict_blocking(batch)?;
    anyhow::ensure!(
        predictions.len() == WARM_UP_TEXTS.len(),
        "it answered {} of {} texts",
        predictions.len(),
        WARM_UP_TEXTS.len()
    );
    for p in &predictions {
        anyhow::ensure!(
            p.scores.len() == labels.len(),
            "it gave {} scores for {} labels",
            p.scores.len(),
            labels.len()
        );
        anyhow::ensure!(p.scores.iter().all(|s| s.is_finite()), "it gave non-finite scores {:?}", p.scores);
    }
    Ok(())
}

fn same_labels(current: &LoadedModel, new: &LoadedModel) -> Result<(), ChangeError> {
    let set = |m: &LoadedModel| m.info().labels.iter().cloned().collect::<BTreeSet<_>>();
    if set(current) != set(new) {
        return Err(ChangeError::Refused(format!(
            "{} has labels {:?} but the primary {} has {:?}; a primary must keep the labels consumers know",
            new.id(),
            new.info().labels,
            current.id(),
            current.info().labels
        )));
    }
    Ok(())
}

/// 64-bit FNV-1a, then murmur3's finalizer so that similar ids (`r-1`,
/// `r-2`) spread over the whole range: stable across processes and versions,
/// as the sample must be.
fn id_hash(bytes: &[u8]) -> u64 {
    let mut h =
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The rolling figures of [`Models::rolling`].
#[derive(Debug, Clone, Serialize)]
pub struct Rolling {
    /// Results looked back over, per figure.
    pub window: usize,
    /// Share of the shadow's recent results that agree with the primary's.
    pub agreement: Option<f64>,
    pub primary_labels: HashMap<String, f64>,
    pub shadow_labels: HashMap<String, f64>,
}

#[derive(Default)]
struct Windows {
    primary: VecDeque<String>,
    shadow: VecDeque<String>,
    agreement: VecDeque<bool>,
}

impl Windows {
    fn trim(&mut self) {
        for window in [&mut self.primary, &mut self.shadow] {
            let excess = window.len().saturating_sub(WINDOW);
            window.drain(..excess);
        }
        let excess = self.agreement.len().saturating_sub(WINDOW);
        self.agreement.drain(..excess);
    }

    fn clear(&mut self) {
        *self = Self::default();
    }

    fn agreement(&self) -> Option<f64> {
        let n = self.agreement.len();
        (n > 0).then(|| self.agreement.iter().filter(|a| **a).count() as f64 / n as f64)
    }

    fn shares(&self, window: &VecDeque<String>) -> HashMap<String, f64> {
        let mut counts: HashMap<String, f64> = HashMap::new();
        for label in window {
            *counts.entry(label.clone()).or_default() += 1.0;
        }
        let n = window.len() as f64;
        counts.values_mut().for_each(|c| *c /= n);
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_a_stable_share_of_ids() {
        let share = |sample: f64| {
            let ids = (0..10_000).map(|i| format!("r-{i}"));
            ids.filter(|id| id_hash(id.as_bytes()) as f64 / (u64::MAX as f64) < sample).count()
        };
        assert_eq!(share(0.0), 0);
        assert!((900..1100).contains(&share(0.1)), "{}", share(0.1));
        assert_eq!(id_hash(b"r-1"), id_hash(b"r-1"));
    }

    #[test]
    fn windows_keep_the_last_results_only() {
        let mut w = Windows::default();
        w.agreement.extend(std::iter::repeat_n(false, WINDOW));
        w.agreement.extend(std::iter::repeat_n(true, WINDOW));
        w.primary.extend(["1", "1", "0", "-1"].map(String::from));
        w.trim();
        assert_eq!(w.agreement(), Some(1.0));
        assert_eq!(w.shares(&w.primary)["1"], 0.5);
        assert!(w.shares(&w.shadow).is_empty());
    }
}
