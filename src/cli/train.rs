//! `archc train MODEL --data DATASET [options]` and `--resume RUN_DIR`: the arguments,
//! and the run's progress as lines (and a bar on a terminal). The training job itself
//! is `train::job`.

use super::{CompileArgs, print_diagnostics};
use crate::elaborate::Compiled;
use crate::error::Error;
use crate::lower::Precision;
use crate::train::job::{self, Events, InitReport, Start, TrainOptions, Trained};
use crate::train::{EpochMetrics, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    /// The model's `.arch` file (not needed with --resume).
    #[arg(required_unless_present = "resume")]
    pub model: Option<String>,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<String>,
    /// Where the dataset's files are (default: /usr/share/datasets/fashion-mnist for
    /// Fashion-MNIST, /usr/share/datasets/mnist, ./cifar-10-batches-bin, ./cifar-100-binary).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub options: TrainOptions,
    /// Train on a stratified, seeded subset of N images.
    #[arg(long)]
    pub subset: Option<usize>,
    /// The run directory (default: runs/MODEL-DATA-TIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint, with the model and
    /// options it started with: any other model or option given with it must say the
    /// same, except --epochs (to extend the run), --devices, --data-dir, --allow and
    /// --no-memory-check.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many epochs in total, as if interrupted (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    #[command(flatten)]
    memory: super::MemoryArgs,
}

impl TrainArgs {
    fn request(self) -> job::Request {
        job::Request {
            model: self.model,
            data: self.data,
            data_dir: self.data_dir,
            compile: self.compile.options(),
            options: self.options,
            subset: self.subset,
            out: self.out,
            resume: self.resume,
            stop_after: self.stop_after,
            extend_to: None,
            memory_check: self.memory.check(),
            given: Vec::new(),
        }
    }
}

/// `given` lists the options the command line gave (see `given_options`): with
/// `--resume`, each must agree with the run (the job checks), and `--epochs` extends it.
pub fn run(args: TrainArgs, given: &[String]) -> Result<ExitCode, Error> {
    let mut request = args.request();
    if request.resume.is_some() {
        request.given = given.to_vec();
        if given.iter().any(|g| g == "--epochs") {
            request.extend_to = Some(request.options.epochs);
        }
    }
    job::run(request, &mut Printer::default())?;
    Ok(ExitCode::SUCCESS)
}

/// Diagnostics, the run's first line, a progress bar per epoch on a terminal and one
/// line per epoch.
#[derive(Default)]
pub(super) struct Printer {
    bar: Option<ProgressBar>,
    batches: usize,
}

impl Events for Printer {
    fn compiled(&mut self, compiled: &Compiled) {
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    }

    fn started(&mut self, start: &Start) {
        self.batches = start.train_images.div_ceil(start.batch.max(1));
        // With --freeze, the first line also says how much of the network trains.
        let frozen = start.trainable.map_or(String::new(), |(trainable, frozen)| {
            format!(
                "; {} parameters train, {} are frozen",
                crate::format::thousands(trainable),
                crate::format::thousands(frozen)
            )
        });
        println!(
            "training {} on {} ({} images, validation {} images) for {} on {}{}; run directory {}{frozen}",
            start.model.name,
            start.data,
            start.train_images,
            start.val_images,
            match start.epochs {
                1 => "1 epoch".to_string(),
                n => format!("{n} epochs"),
            },
            start.devices.map_or_else(|| start.backend.to_string(), |d| format!("{} ({d})", start.backend)),
            match start.precision {
                Precision::F32 => String::new(),
                p => format!(" in {p}"),
            },
            start.run_dir.display()
        );
    }

    fn transfer(&mut self, report: &InitReport) {
        print!("{}", transfer_report(report));
    }

    /// The run's last lines: the f16 loss scaler, the best epoch and where the
    /// checkpoints are.
    fn finished(&mut self, trained: &Trained) {
        if let Some(scaler) = &trained.loss_scale {
            println!(
                "f16 loss scale {} at the end; {} step(s) skipped for overflowing gradients",
                scaler.scale, scaler.skipped
            );
        }
        if let Some(best) = trained.history.iter().map(|m| m.val_top1).reduce(f64::max) {
            println!("best validation top-1 {:.2}%; checkpoints in {}", best * 100.0, trained.run_dir.display());
        }
    }
}

impl Observer for Printer {
    fn batch(&mut self, done: usize, total: usize, loss: f64, acc: f64, images_per_s: f64) {
        if !std::io::stdout().is_terminal() {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(self.batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.4}  acc {:.2}%  {images_per_s:.0} img/s", acc * 100.0));
    }

    fn epoch(&mut self, m: &EpochMetrics, epochs: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "epoch {}/{epochs}: train loss {:.4} acc {:.2}% | val loss {:.4} top-1 {:.2}% top-5 {:.2}% | lr {:.5} | {:.1} s, {:.0} img/s",
            m.epoch,
            m.train_loss,
            m.train_acc * 100.0,
            m.val_loss,
            m.val_top1 * 100.0,
            m.val_top5 * 100.0,
            m.lr,
            m.seconds,
            m.images_per_s
        );
    }

    fn warning(&mut self, warning: &crate::train::Warning) {
        eprintln!("warning: {warning}");
    }
}

/// The transfer report: what `--init` carried over, what starts fresh and why, what
/// the file has that the model does not use, and what `--freeze` fixed. Long lists
/// are cut to their first names (init.json has them all).
pub fn transfer_report(report: &InitReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name =
        report.weights.file_name().map_or_else(|| report.weights.display().to_string(), |n| n.to_string_lossy().into());
    let _ = writeln!(out, "init from {name} (sha256 {}):", &report.sha256[..report.sha256.len().min(12)]);
    out.push_str(&transfer_lines(&report.transfer, "init.json"));
    let f = &report.freeze;
    if !f.prefixes.is_empty() {
        let _ = writeln!(
            out,
            "  frozen        {}: {} parameters in {} tensors fixed, {} train",
            f.prefixes.join(", "),
            crate::format::thousands(f.frozen_params),
            f.frozen.len(),
            crate::format::thousands(f.trainable_params)
        );
    }
    out
}

/// What weights give a model, tensor by tensor, in four lines (carried over, new,
/// reshaped, unused); each list cut to its first names, `full` saying where all are.
pub fn transfer_lines(t: &crate::lower::transfer::Transfer, full: &str) -> String {
    use std::fmt::Write as _;
    const SHOWN: usize = 8;
    let shape = |s: &[u64]| format!("[{}]", s.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
    let list = |names: Vec<String>| -> String {
        let mut shown: Vec<String> = names.iter().take(SHOWN).cloned().collect();
        if names.len() > SHOWN {
            shown.push(format!("and {} more ({full} lists them)", names.len() - SHOWN));
        }
        shown.join("; ")
    };
    let values: u128 = t.loaded.iter().map(|l| crate::ops::product(&l.shape)).sum();
    let mut out = String::new();
    let _ = writeln!(out, "  carried over  {} tensors ({} values)", t.loaded.len(), crate::format::thousands(values));
    let _ = write!(out, "  new           {}", t.new.len());
    if !t.new.is_empty() {
        let _ = write!(out, ": {}", list(t.new.iter().map(|n| format!("{} {}", n.name, shape(&n.shape))).collect()));
    }
    let _ = write!(out, "\n  reshaped      {}", t.reshaped.len());
    if !t.reshaped.is_empty() {
        let names =
            t.reshaped.iter().map(|r| format!("{} {} there, {} here", r.name, shape(&r.found), shape(&r.expected)));
        let _ = write!(out, ": {}", list(names.collect()));
    }
    let _ = write!(out, "\n  unused        {}", t.unused.len());
    if !t.unused.is_empty() {
        let _ = write!(out, ": {}", list(t.unused.iter().map(|n| format!("{} {}", n.name, shape(&n.shape))).collect()));
    }
    out.push('\n');
    out
}
