//! The run directory: config.json, the model's source, state.json, and each epoch's
//! checkpoint in a directory of its own (`checkpoints/N`: `last.safetensors` and
//! `best.safetensors` in PyTorch names, `last.mpk` and `optimizer.mpk` in Burn's
//! format for `--resume`, metrics.csv, curves.png). An epoch counts once state.json,
//! which names its directory, is renamed into place; its files for people are then
//! linked into the run directory itself. A run killed at any instant resumes from the
//! last committed epoch, with nothing of a later one mixed in.

use super::{EpochMetrics, Progress, Warning};
use crate::data::dataset::Pipeline;
use crate::error::{Error, FileKind, IoReason, RunError};
use crate::lower::{Network, Precision};
use crate::plots;
use crate::report::files::{
    DirLock, create_dir, fault_step, lock_dir, publish, remove_dir, remove_file, rename, sync_dir, sync_file,
};
use crate::report::write_atomic;
use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type SgdRecord<B> = <OptimizerAdaptor<super::sgd::Sgd, Network<B>, B> as Optimizer<Network<B>, B>>::Record;
type AdamWRecord<B> = <OptimizerAdaptor<AdamW, Network<B>, B> as Optimizer<Network<B>, B>>::Record;

pub enum OptimRecord<B: AutodiffBackend> {
    Sgd(SgdRecord<B>),
    AdamW(AdamWRecord<B>),
}

/// A run directory, locked for the life of this value: a second archc on it is refused.
pub struct RunDir {
    pub dir: PathBuf,
    _lock: DirLock,
}

/// Burn's named MessagePack records, as bytes: archc writes and reads the files itself,
/// so that a failed write is an error (Burn's file recorder drops the error of its
/// buffered writer's last flush) and the bytes are the ones the digest is taken of.
/// The bytes are what Burn's `NamedMpkFileRecorder` writes, so older runs read too.
fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::new()
}

/// Reads a record written by `record`.
fn load<R: burn::record::Record<B>, B: burn::prelude::Backend>(path: &Path, device: &B::Device) -> Result<R, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Read { path: path.to_path_buf(), reason: e.into() })?;
    let cannot_resume =
        |e: burn::record::RecorderError| RunError::ResumeFrom { file: path.to_path_buf(), reason: e.to_string() };
    Ok(recorder().load(bytes, device).map_err(cannot_resume)?)
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

/// state.json: where the run is, and the checkpoint that holds it. Renaming this small
/// file into place is the commit point of an epoch.
#[derive(Serialize, Deserialize)]
struct State {
    #[serde(flatten)]
    progress: Progress,
    /// The checkpoint directory, relative to the run (`checkpoints/3`); absent in runs
    /// written before checkpoints had directories, whose files are in the run itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
    /// Each of the checkpoint's files, so that resuming can tell one that is not the
    /// one this state was saved with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    files: BTreeMap<String, Digest>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct Digest {
    bytes: u64,
    sha256: String,
}

/// A sha256 as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Digest {
    fn of(path: &Path) -> Result<Digest, Error> {
        use sha2::Digest as _;
        use std::io::Read;
        let unreadable = |e: std::io::Error| Error::Read { path: path.to_path_buf(), reason: e.into() };
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        let sha256 = hex(&hasher.finalize());
        Ok(Digest { bytes, sha256 })
    }
}

/// The files a checkpoint publishes in the run directory itself, for people and for
/// `eval`/`predict`: hard links to the committed checkpoint's.
const PUBLISHED: [&str; 4] = ["last.safetensors", "best.safetensors", "metrics.csv", "curves.png"];

impl RunDir {
    /// A new run: the directory (created and locked), the model's source and its
    /// configuration (written last: a run directory is one once config.json is there).
    /// A directory that already holds a run is refused: only `--resume` continues one.
    pub fn create(dir: &Path, config: &str, model_source: &str) -> Result<RunDir, Error> {
        create_dir(dir)?;
        let lock = lock_dir(dir)?;
        if dir.join("config.json").exists() {
            return Err(RunError::AlreadyARun { dir: dir.to_path_buf() }.into());
        }
        write_atomic(&dir.join("model.arch"), model_source)?;
        write_atomic(&dir.join("config.json"), config)?;
        sync_dir(dir)?;
        Ok(RunDir { dir: dir.to_path_buf(), _lock: lock })
    }

    /// An existing run, for `--resume`: locked, and cleaned of what a run killed in
    /// the middle of a checkpoint left (a checkpoint never committed, temporary
    /// files, published files of another epoch).
    pub fn open(dir: &Path) -> Result<(RunDir, String), Error> {
        let path = dir.join("config.json");
        if !path.exists() {
            return Err(RunError::NotARunDir { dir: dir.to_path_buf() }.into());
        }
        let lock = lock_dir(dir)?;
        let config = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::from(RunError::NotARunDir { dir: dir.to_path_buf() }),
            _ => Error::Read { path, reason: IoReason::os(&e) },
        })?;
        let run = RunDir { dir: dir.to_path_buf(), _lock: lock };
        run.recover()?;
        Ok((run, config))
    }

    fn state(&self) -> Result<Option<State>, Error> {
        let path = self.dir.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // No state yet: the run has not finished an epoch.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Read { path, reason: e.into() }),
        };
        let damaged = |problem: String| Error::Malformed { path: path.clone(), kind: FileKind::Damaged, problem };
        let state: State = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        // Recovery removes every checkpoint but this one: it must be one of them.
        if let Some(checkpoint) = &state.checkpoint {
            let number = checkpoint.strip_prefix("checkpoints/").filter(|n| n.parse::<u64>().is_ok());
            if number.is_none() {
                return Err(damaged(format!("its checkpoint `{checkpoint}` is not `checkpoints/N`")));
            }
        }
        Ok(Some(state))
    }

    /// Removes everything the committed state does not name, and publishes its files.
    fn recover(&self) -> Result<(), Error> {
        let committed = self.state()?.and_then(|s| s.checkpoint);
        let checkpoints = self.dir.join("checkpoints");
        // Without state.json, only epoch 1's checkpoint can be there (killed before its
        // commit); a later one means state.json was lost, and discarding would lose work.
        if committed.is_none() {
            let later = std::fs::read_dir(&checkpoints).into_iter().flatten().flatten().map(|e| e.path()).find(|p| {
                p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 1)
            });
            if let Some(checkpoint) = later {
                return Err(RunError::StateLost { dir: self.dir.clone(), checkpoint }.into());
            }
        }
        if committed.is_none() {
            self.remove_checkpoints_but(None)?;
        }
        // Temporary names from every writer (`x.tmp`, `x-tmp.mpk`, `x.tmp.png`).
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".tmp") || name.ends_with("-tmp.mpk") || name.ends_with(".tmp.png") {
                    remove_file(&entry.path())?;
                }
            }
        }
        match committed {
            Some(checkpoint) => self.publish(&self.dir.join(checkpoint)),
            None => Ok(()),
        }
    }

    /// Links the checkpoint's files into the run directory, then removes every older
    /// checkpoint (only now: until the new one is published, they are what is shown).
    fn publish(&self, checkpoint: &Path) -> Result<(), Error> {
        for name in PUBLISHED {
            let file = checkpoint.join(name);
            if file.exists() {
                publish(&file, &self.dir.join(name))?;
            }
        }
        sync_dir(&self.dir)?;
        self.remove_checkpoints_but(Some(checkpoint))?;
        // Runs from before checkpoint directories kept these in the run itself.
        for legacy in ["last.mpk", "optimizer.mpk"] {
            remove_file(&self.dir.join(legacy))?;
        }
        Ok(())
    }

    /// Removes every checkpoint directory (finished or not) but `keep`.
    fn remove_checkpoints_but(&self, keep: Option<&Path>) -> Result<(), Error> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("checkpoints")) else { return Ok(()) };
        for path in entries.flatten().map(|e| e.path()) {
            if keep != Some(path.as_path()) {
                remove_dir(&path)?;
            }
        }
        Ok(())
    }

    /// How many epochs the run has completed (0 before its first checkpoint).
    pub fn completed_epochs(&self) -> Result<usize, Error> {
        Ok(self.state()?.map_or(0, |s| s.progress.completed_epochs))
    }

    /// The network and optimiser state of the last completed epoch, if any. Every file
    /// of the checkpoint is checked against state.json first: one that is not the file
    /// the state was saved with is refused, by name.
    #[allow(clippy::type_complexity)]
    pub fn resume<B: AutodiffBackend>(
        &self,
        network: Network<B>,
        device: &B::Device,
    ) -> Result<Option<((Network<B>, OptimRecord<B>), Progress)>, Error> {
        let Some(state) = self.state()? else {
            return Ok(None);
        };
        let checkpoint = match &state.checkpoint {
            Some(checkpoint) => self.dir.join(checkpoint),
            None => self.dir.clone(),
        };
        for (name, digest) in &state.files {
            let file = checkpoint.join(name);
            let found = if file.exists() { Some(Digest::of(&file)?) } else { None };
            if found.as_ref() != Some(digest) {
                return Err(RunError::NotOfCheckpoint {
                    file,
                    epoch: state.progress.completed_epochs,
                    missing: found.is_none(),
                }
                .into());
            }
        }
        let record = load(&checkpoint.join("last.mpk"), device)?;
        let network = network.load_record(record);
        let optimizer_path = checkpoint.join("optimizer.mpk");
        let optimizer = match load::<SgdRecord<B>, B>(&optimizer_path, device) {
            Ok(r) => OptimRecord::Sgd(r),
            Err(_) => OptimRecord::AdamW(load::<AdamWRecord<B>, B>(&optimizer_path, device)?),
        };
        Ok(Some(((network, optimizer), state.progress)))
    }

    /// Saves an epoch. Its files are written into a fresh directory
    /// (`checkpoints/N.tmp`), flushed to disk and renamed to `checkpoints/N`; then
    /// state.json, which names that directory and each file's digest, is renamed into
    /// place: the one step that makes the epoch count. Until then a resume continues
    /// from the previous epoch and discards the new directory.
    pub fn save_epoch<B: AutodiffBackend>(
        &self,
        network: &Network<B>,
        optimizer: OptimRecord<B>,
        progress: &Progress,
        best: bool,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<Warning>, Error> {
        let previous = self.state()?.and_then(|s| s.checkpoint).map(|c| self.dir.join(c));
        let checkpoints = self.dir.join("checkpoints");
        create_dir(&checkpoints)?;
        let name = progress.completed_epochs.to_string();
        let staging = checkpoints.join(format!("{name}.tmp"));
        remove_dir(&staging)?;
        create_dir(&staging)?;
        let staged = stage(&staging, network, optimizer, progress, best, previous.as_deref(), metadata);
        let (warnings, files) = match staged {
            Ok(staged) => staged,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(error);
            }
        };
        let checkpoint = checkpoints.join(&name);
        remove_dir(&checkpoint)?;
        rename(&staging, &checkpoint)?;
        sync_dir(&checkpoints)?;

        let state = State {
            progress: progress.clone(),
            checkpoint: Some(format!("checkpoints/{name}")),
            files: files.into_iter().map(|(name, digest)| (name.to_string(), digest)).collect(),
        };
        let text = serde_json::to_string_pretty(&state)
            .map_err(|e| Error::Write { path: self.dir.join("state.json"), reason: IoReason::Other(e.to_string()) })?;
        write_atomic(&self.dir.join("state.json"), text)?;
        sync_dir(&self.dir)?;
        self.publish(&checkpoint)?;
        Ok(warnings)
    }
}

/// What staging an epoch gives: its warnings, and each file written with its digest.
type Staged = (Vec<Warning>, Vec<(&'static str, Digest)>);

/// Writes an epoch's files into `dir`, each flushed to disk, and returns their digests.
/// `best.safetensors` is this epoch's weights when they are the best so far, and
/// otherwise the previous checkpoint's (a hard link, not a copy).
fn stage<B: AutodiffBackend>(
    dir: &Path,
    network: &Network<B>,
    optimizer: OptimRecord<B>,
    progress: &Progress,
    best: bool,
    previous: Option<&Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<Staged, Error> {
    let mut weights = network.state_dict();
    weights.metadata.extend(metadata.clone());
    weights.write_safetensors(&dir.join("last.safetensors"), &network.num_batches_tracked())?;
    if best {
        weights.write_safetensors(&dir.join("best.safetensors"), &network.num_batches_tracked())?;
    } else if let Some(previous) = previous.map(|p| p.join("best.safetensors")).filter(|p| p.exists()) {
        publish(&previous, &dir.join("best.safetensors"))?;
    }
    record(dir, "last", network.clone().into_record())?;
    match optimizer {
        OptimRecord::Sgd(r) => record(dir, "optimizer", r)?,
        OptimRecord::AdamW(r) => record(dir, "optimizer", r)?,
    }
    write_atomic(&dir.join("metrics.csv"), csv(&progress.history))?;
    // A chart that cannot be drawn (no font) is worth a warning, not a stopped run.
    let warnings = match curves(&dir.join("curves.png"), &progress.history) {
        Ok(()) => Vec::new(),
        Err(reason) => vec![Warning::NoCurves { reason: reason.to_string() }],
    };
    let mut files = Vec::new();
    for name in ["last.safetensors", "best.safetensors", "last.mpk", "optimizer.mpk", "metrics.csv", "curves.png"] {
        let path = dir.join(name);
        if path.exists() {
            sync_file(&path).map_err(|e| Error::Write { path: path.clone(), reason: IoReason::os(&e) })?;
            files.push((name, Digest::of(&path)?));
        }
    }
    sync_dir(dir)?;
    Ok((warnings, files))
}

/// Writes a record in Burn's format as `dir/NAME.mpk`.
fn record<R: burn::record::Record<B>, B: burn::prelude::Backend>(
    dir: &Path,
    name: &str,
    record: R,
) -> Result<(), Error> {
    let path = dir.join(format!("{name}.mpk"));
    let unwritable = |reason| Error::Write { path: path.clone(), reason };
    let bytes = recorder().record(record, ()).map_err(|e| unwritable(IoReason::Other(e.to_string())))?;
    std::fs::write(&path, bytes).map_err(|e| unwritable(IoReason::os(&e)))?;
    fault_step("write", &path);
    Ok(())
}
