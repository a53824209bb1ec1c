//! `archc bench`: what a lowered network costs when it really runs. Latency (median
//! and p90), images/s, achieved GFLOP/s against the static cost, and peak memory, per
//! batch size and mode (eval-mode inference; or a training step: forward, backward and
//! an SGD-with-momentum update), on random inputs after warm-up iterations.
//!
//! The JSON schema (`Report`) is shared with `bench/pytorch_reference.py`, so
//! `--compare` can put the two side by side.

mod job;
mod memory;
mod table;

pub use job::{Benched, Events, Request, run};
pub use memory::MemoryProbe;
pub use table::{read_reference, render, side_by_side};

use crate::backend::BackendKind;
use crate::cost::{self, Convention, GroupBy};
use crate::error::DeviceError;
use crate::ir::Model;
use crate::lower::{Network, Precision, Value};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The schema name written into every report; bump it when a field changes meaning.
pub const SCHEMA: &str = "archc-bench/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Eval-mode forward pass.
    Infer,
    /// Forward, backward and an optimiser step.
    Train,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Infer => "infer",
            Mode::Train => "train",
        }
    }

    /// FLOPs of one image relative to its forward pass: the backward pass costs about
    /// twice the forward (a gradient for the input and one for the weights), the
    /// convention PyTorch's and the labs' "training FLOPs" use.
    pub fn flops_factor(self) -> f64 {
        match self {
            Mode::Infer => 1.0,
            Mode::Train => 3.0,
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    pub batches: Vec<usize>,
    pub modes: Vec<Mode>,
    pub warmup: usize,
    pub iters: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub median: f64,
    pub p90: f64,
}

/// One row of the schema: one model, mode and batch size.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    pub model: String,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub batch: usize,
    pub mode: Mode,
    pub latency_ms: Latency,
    pub images_per_s: f64,
    pub gflops_achieved: f64,
    /// Resident-set growth on the CPU, allocator growth on CUDA; `null` where unknown.
    pub peak_bytes: Option<u64>,
}

/// A whole run, as `--format json` prints it and `--compare` reads it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// `archc 0.1.0`, or `pytorch 2.15.0` for the reference script.
    pub tool: String,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// The CPU model and core count (and GPU, where one was used).
    pub machine: String,
    pub results: Vec<Measurement>,
}

impl Report {
    pub fn new(results: Vec<Measurement>) -> Report {
        Report {
            schema: SCHEMA.into(),
            tool: format!("archc {}", env!("CARGO_PKG_VERSION")),
            date: today(),
            machine: machine(),
            results,
        }
    }
}

/// Where the measurements run, as the report names it.
pub struct Target {
    pub kind: BackendKind,
    pub precision: Precision,
    pub threads: usize,
}

impl Target {
    /// `cuda`, or `cuda-bf16` in mixed precision (as the PyTorch reference names its runs).
    fn backend_name(&self) -> String {
        match self.precision {
            Precision::F32 => self.kind.to_string(),
            p => format!("{}-{p}", self.kind),
        }
    }

    fn device_name(&self) -> String {
        match self.kind {
            BackendKind::Cuda => "cuda:0".into(),
            _ => "cpu".into(),
        }
    }

    /// Waits until the device has finished everything queued (a no-op on the CPU).
    fn sync<B: Backend>(&self, device: &B::Device) -> Result<(), DeviceError> {
        B::sync(device).map_err(|e| DeviceError::Failed { backend: self.kind.to_string(), reason: e.to_string() })
    }
}

/// Measures every (mode, batch) of the plan for one model. `progress` hears each
/// measurement as it finishes.
pub fn measure<B: AutodiffBackend>(
    model: &Model,
    plan: &Plan,
    target: &Target,
    device: &B::Device,
    progress: &mut dyn FnMut(&Measurement),
) -> Result<Vec<Measurement>, DeviceError> {
    let forward_flops = cost::report(model, Convention::Core, 1, GroupBy::Layer).flops as f64;
    let mut results = Vec::new();
    for &mode in &plan.modes {
        for &batch in &plan.batches {
            let (seconds, peak_bytes) = match mode {
                Mode::Infer => time_inference::<B::InnerBackend>(model, batch, plan, target, device)?,
                Mode::Train => time_training::<B>(model, batch, plan, target, device)?,
            };
            let latency = Latency { median: percentile(&seconds, 0.5) * 1e3, p90: percentile(&seconds, 0.9) * 1e3 };
            let images_per_s = batch as f64 / (latency.median / 1e3);
            let measurement = Measurement {
                model: model.name.clone(),
                backend: target.backend_name(),
                device: target.device_name(),
                threads: target.threads,
                batch,
                mode,
                gflops_achieved: forward_flops * mode.flops_factor() * images_per_s / 1e9,
                latency_ms: latency,
                images_per_s,
                peak_bytes,
            };
            progress(&measurement);
            results.push(measurement);
        }
    }
    Ok(results)
}

/// Seconds per iteration (after warm-up) and the peak memory of the whole measurement.
type Timings = (Vec<f64>, Option<u64>);

/// Runs `step` for the warm-up and then the timed iterations, synchronising the device
/// before each timing stops; memory is watched from before the first warm-up step.
fn time_steps<B: Backend>(
    plan: &Plan,
    target: &Target,
    device: &B::Device,
    mut step: impl FnMut(),
) -> Result<Timings, DeviceError> {
    target.sync::<B>(device)?;
    let probe = MemoryProbe::start::<B>(target.kind, device);
    let mut seconds = Vec::with_capacity(plan.iters);
    for i in 0..plan.warmup + plan.iters {
        let start = Instant::now();
        step();
        target.sync::<B>(device)?;
        if i >= plan.warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
    }
    Ok((seconds, probe.and_then(|p| p.peak_growth())))
}

fn time_inference<B: Backend>(
    model: &Model,
    batch: usize,
    plan: &Plan,
    target: &Target,
    device: &B::Device,
) -> Result<Timings, DeviceError> {
    B::seed(device, 0);
    // A network on a backend without autodiff runs in eval mode (running batch-norm
    // statistics, no dropout), as `archc predict` and `archc eval` do.
    let network = Network::<B>::new(model, device).with_precision(target.precision).for_inference();
    let input = Value::random(&model.input, batch, device);
    time_steps::<B>(plan, target, device, || {
        network.forward(input.clone());
    })
}

fn time_training<B: AutodiffBackend>(
    model: &Model,
    batch: usize,
    plan: &Plan,
    target: &Target,
    device: &B::Device,
) -> Result<Timings, DeviceError> {
    B::seed(device, 0);
    // An `Option` so that the step can move the network through the optimiser.
    let mut network = Some(Network::<B>::new(model, device).with_precision(target.precision));
    // The labs' optimiser: SGD with momentum 0.9, as `archc train` builds it.
    let mut optimizer = crate::train::sgd::Sgd::pytorch(0.9, 0.0, false, 0.0).init::<B, Network<B>>();
    let input = Value::random(&model.input, batch, device);
    let labels = crate::tensor::cyclic_labels::<B>(&model.output, batch, device);
    time_steps::<B>(plan, target, device, || {
        let Some(current) = network.take() else { return };
        let loss = current.forward(input.clone()).probe_loss(labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        network = Some(optimizer.step(0.01, current, grads));
    })
}

/// Nearest-rank percentile (`q` in (0, 1]); the median of an even count is the mean of
/// the middle two. `bench/pytorch_reference.py` computes the same.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if q == 0.5 && n.is_multiple_of(2) {
        return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Today's UTC date, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    civil_date(secs)
}

/// `YYYY-MM-DD` of a Unix time (Howard Hinnant's civil-from-days, proleptic Gregorian).
fn civil_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `Intel Xeon ... (2 cores)` from /proc/cpuinfo, or the architecture elsewhere.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cpu} ({cores} cores)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&samples, 0.5), 3.0);
        assert_eq!(percentile(&samples, 0.9), 5.0);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 0.9), 9.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_795_392_000), "2026-11-23");
        assert_eq!(civil_date(1_795_391_999), "2026-11-22");
    }
}
