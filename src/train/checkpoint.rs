//! The run directory: config.json, the model's source, metrics.csv, checkpoints
//! (`last.safetensors`, `best.safetensors` in PyTorch names; `last.mpk` and
//! `optimizer.mpk` in Burn's format for `--resume`) and state.json. Every file is
//! written to a temporary name and renamed, so an interrupted run never leaves half a
//! file; state.json is renamed last.

use super::{EpochMetrics, Progress, Warning};
use crate::data::dataset::Pipeline;
use crate::error::{Error, FileKind, IoReason, RunError};
use crate::lower::{Network, Precision};
use crate::plots;
use crate::report::files::create_dir;
use crate::report::write_atomic;
use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, Optimizer, Sgd};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type SgdRecord<B> =
    <OptimizerAdaptor<Sgd<<B as AutodiffBackend>::InnerBackend>, Network<B>, B> as Optimizer<Network<B>, B>>::Record;
type AdamWRecord<B> = <OptimizerAdaptor<AdamW, Network<B>, B> as Optimizer<Network<B>, B>>::Record;

pub enum OptimRecord<B: AutodiffBackend> {
    Sgd(SgdRecord<B>),
    AdamW(AdamWRecord<B>),
}

pub struct RunDir {
    pub dir: PathBuf,
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

/// What a checkpoint carries beside its tensors, for `eval` and `predict`: the input
/// normalisation, the class names, the `--set` network arguments and the precision
/// it trained in (the weights themselves are f32).
pub fn metadata(
    pipeline: &Pipeline,
    classes: &[String],
    settings: &[(String, String)],
    precision: Precision,
) -> BTreeMap<String, String> {
    let join = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    let mut metadata = BTreeMap::new();
    metadata.insert("mean".into(), join(&pipeline.mean));
    metadata.insert("std".into(), join(&pipeline.std));
    metadata.insert("classes".into(), serde_json::to_string(classes).unwrap_or_default());
    if !settings.is_empty() {
        metadata.insert("set".into(), serde_json::to_string(settings).unwrap_or_default());
    }
    if precision != Precision::F32 {
        metadata.insert("precision".into(), precision.to_string());
    }
    metadata
}

/// `curves.png`: loss (train, validation) and accuracy (train, validation top-1) per epoch.
fn curves(path: &Path, history: &[EpochMetrics]) -> Result<(), plots::DrawError> {
    let pick = |f: fn(&EpochMetrics) -> f64| history.iter().map(|m| (m.epoch as f64, f(m))).collect::<Vec<_>>();
    plots::atomic_png(path, (1200, 480), |root| {
        let (left, right) = root.split_horizontally(600);
        plots::line_chart(
            &left,
            &plots::Axes { title: "loss", x: "epoch", y: "" },
            &[("train", pick(|m| m.train_loss), plots::BLUE), ("validation", pick(|m| m.val_loss), plots::RED)],
        )?;
        plots::line_chart(
            &right,
            &plots::Axes { title: "accuracy", x: "epoch", y: "" },
            &[("train", pick(|m| m.train_acc), plots::BLUE), ("validation top-1", pick(|m| m.val_top1), plots::RED)],
        )
    })
}

fn csv(history: &[EpochMetrics]) -> String {
    let mut out = String::from("epoch,train_loss,train_acc,val_loss,val_top1,val_top5,lr,seconds,images_per_s\n");
    for m in history {
        out.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.8},{:.3},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_top1, m.val_top5, m.lr, m.seconds, m.images_per_s
        ));
    }
    out
}

impl RunDir {
    /// A new run: the directory (created), its configuration and the model's source.
    pub fn create(dir: &Path, config: &str, model_source: &str) -> Result<RunDir, Error> {
        create_dir(dir)?;
        write_atomic(&dir.join("config.json"), config)?;
        write_atomic(&dir.join("model.arch"), model_source)?;
        Ok(RunDir { dir: dir.to_path_buf() })
    }

    /// An existing run, for `--resume`.
    pub fn open(dir: &Path) -> Result<(RunDir, String), Error> {
        let path = dir.join("config.json");
        let config = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::from(RunError::NotARunDir { dir: dir.to_path_buf() }),
            _ => Error::Read { path, reason: IoReason::os(&e) },
        })?;
        Ok((RunDir { dir: dir.to_path_buf() }, config))
    }

    /// The network and optimiser state of the last completed epoch, if any.
    #[allow(clippy::type_complexity)]
    pub fn resume<B: AutodiffBackend>(
        &self,
        network: Network<B>,
        device: &B::Device,
    ) -> Result<Option<((Network<B>, OptimRecord<B>), Progress)>, Error> {
        let state = self.dir.join("state.json");
        // No state yet: the run has not finished an epoch.
        let text = match std::fs::read_to_string(&state) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Read { path: state, reason: e.into() }),
        };
        let progress: Progress = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: state.clone(),
            kind: FileKind::Damaged,
            problem: e.to_string(),
        })?;
        let cannot_resume = |file: &str, e: burn::record::RecorderError| RunError::ResumeFrom {
            file: self.dir.join(file),
            reason: e.to_string(),
        };
        let record = recorder().load(self.dir.join("last"), device).map_err(|e| cannot_resume("last.mpk", e))?;
        let network = network.load_record(record);
        let optimizer = match recorder().load::<SgdRecord<B>>(self.dir.join("optimizer"), device) {
            Ok(r) => OptimRecord::Sgd(r),
            Err(_) => OptimRecord::AdamW(
                recorder()
                    .load::<AdamWRecord<B>>(self.dir.join("optimizer"), device)
                    .map_err(|e| cannot_resume("optimizer.mpk", e))?,
            ),
        };
        Ok(Some(((network, optimizer), progress)))
    }

    fn record_atomic<R: burn::record::Record<B>, B: burn::prelude::Backend>(
        &self,
        name: &str,
        record: R,
    ) -> Result<(), Error> {
        let temp = self.dir.join(format!("{name}-tmp"));
        // The recorder adds the extension itself.
        let written = temp.with_extension("mpk");
        let result = recorder().record(record, temp).map_err(|e| IoReason::Other(e.to_string())).and_then(|()| {
            std::fs::rename(&written, self.dir.join(format!("{name}.mpk"))).map_err(|e| IoReason::os(&e))
        });
        result.map_err(|reason| {
            let _ = std::fs::remove_file(&written);
            Error::Write { path: self.dir.join(format!("{name}.mpk")), reason }
        })
    }

    pub fn save_epoch<B: AutodiffBackend>(
        &self,
        network: &Network<B>,
        optimizer: OptimRecord<B>,
        progress: &Progress,
        best: bool,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<Warning>, Error> {
        let mut weights = network.state_dict();
        weights.metadata.extend(metadata.clone());
        weights.write_safetensors(&self.dir.join("last.safetensors"), &network.num_batches_tracked())?;
        if best {
            weights.write_safetensors(&self.dir.join("best.safetensors"), &network.num_batches_tracked())?;
        }
        self.record_atomic::<_, B>("last", network.clone().into_record())?;
        match optimizer {
            OptimRecord::Sgd(r) => self.record_atomic::<_, B>("optimizer", r)?,
            OptimRecord::AdamW(r) => self.record_atomic::<_, B>("optimizer", r)?,
        }
        write_atomic(&self.dir.join("metrics.csv"), csv(&progress.history))?;
        // A chart that cannot be drawn (no font) is worth a warning, not a stopped run.
        let warnings = match curves(&self.dir.join("curves.png"), &progress.history) {
            Ok(()) => Vec::new(),
            Err(reason) => vec![Warning::NoCurves { reason: reason.to_string() }],
        };
        let state = serde_json::to_string_pretty(progress)
            .map_err(|e| Error::Write { path: self.dir.join("state.json"), reason: IoReason::Other(e.to_string()) })?;
        write_atomic(&self.dir.join("state.json"), state)?;
        Ok(warnings)
    }
}
