//! Training with PyTorch's semantics: SGD (momentum, dampening 0, Nesterov, coupled
//! weight decay) or AdamW (PyTorch's defaults), per-epoch schedules, label smoothing,
//! clipping by global gradient norm, mixed precision (bf16, or f16 with loss scaling)
//! and data parallelism over several devices. Training statistics come from the
//! training forward passes (as PyTorch users print them); evaluation always runs in
//! eval mode (running batch-norm statistics, no dropout). Every random choice derives
//! from the seed and the epoch, so a resumed run repeats an uninterrupted one.

mod checkpoint;
pub mod evaluate;
pub mod job;
pub mod loss_scale;
pub mod schedule;
pub mod sgd;
pub mod step;

pub use crate::report::Warning;
pub use checkpoint::RunDir;
pub use evaluate::{Evaluation, evaluate};

use crate::data::dataset::{Dataset, Pipeline};
use crate::error::{Error, RunError, WeightsError};
use crate::ir::Model;
use crate::lower::transfer::Freeze;
use crate::lower::weights::StateDict;
use crate::lower::{Network, Precision};
use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use loss_scale::LossScale;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use schedule::LrPlan;
use serde::{Deserialize, Serialize};
use sgd::Sgd;
use std::time::Instant;
use step::Stepper;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adamw,
}

/// Everything that decides a run; written to the run directory as config.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hyper {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: OptimizerKind,
    pub lr: LrPlan,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub label_smoothing: f64,
    pub clip_grad_norm: Option<f64>,
    pub seed: u64,
    /// The compute precision (runs from before it existed were f32).
    #[serde(default)]
    pub precision: Precision,
}

/// One line of metrics.csv.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_top1: f64,
    pub val_top5: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_s: f64,
}

/// Where a run is in its epochs (state.json), for `--resume`.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Progress {
    pub completed_epochs: usize,
    pub best_top1: f64,
    pub history: Vec<EpochMetrics>,
    /// The f16 loss scaler's state; `None` in other precisions.
    #[serde(default)]
    pub loss_scale: Option<LossScale>,
}

enum Optim<B: AutodiffBackend> {
    Sgd(OptimizerAdaptor<Sgd, Network<B>, B>),
    AdamW(OptimizerAdaptor<AdamW, Network<B>, B>),
}

impl<B: AutodiffBackend> Optim<B> {
    fn new(hyper: &Hyper) -> Optim<B> {
        match hyper.optimizer {
            OptimizerKind::Sgd => {
                Optim::Sgd(Sgd::pytorch(hyper.momentum, 0.0, hyper.nesterov, hyper.weight_decay).init())
            }
            // PyTorch's AdamW defaults: betas (0.9, 0.999), eps 1e-8, decoupled decay.
            OptimizerKind::Adamw => Optim::AdamW(
                AdamWConfig::new()
                    .with_beta_1(0.9)
                    .with_beta_2(0.999)
                    .with_epsilon(1e-8)
                    .with_weight_decay(hyper.weight_decay as f32)
                    .init(),
            ),
        }
    }

    fn step(&mut self, lr: f64, network: Network<B>, grads: GradientsParams) -> Network<B> {
        match self {
            Optim::Sgd(o) => o.step(lr, network, grads),
            Optim::AdamW(o) => o.step(lr, network, grads),
        }
    }
}

/// The sums of all gradients' squares and of all their values, on the device, read
/// once: the global L2 norm for clipping, and whether every gradient is finite (a NaN
/// or infinity anywhere makes the plain sum non-finite) for f16's loss scaling.
struct GradSums<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sums: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradSums<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let sums = Tensor::cat(vec![g.clone().powi_scalar(2).sum(), g.sum()], 0);
            self.sums = Some(match self.sums.take() {
                Some(total) => total + sums,
                None => sums,
            });
        }
    }
}

/// (global L2 norm, all finite) of the gradients; no gradient at all is norm 0.
fn grad_stats<B: AutodiffBackend>(network: &Network<B>, grads: &GradientsParams) -> (f64, bool) {
    let mut sums = GradSums::<B> { grads, sums: None };
    network.visit(&mut sums);
    let Some(sums) = sums.sums else { return (0.0, true) };
    // `iter` converts each value: the read cannot fail.
    match sums.into_data().iter::<f64>().collect::<Vec<_>>()[..] {
        [squares, sum] => (squares.sqrt(), sum.is_finite()),
        // Never counted as finite: under f16 scaling the step is skipped. (Not reached:
        // the visitor always sums both values.)
        _ => (f64::NAN, false),
    }
}

/// The sum of `w − w` over every parameter: 0 when all are finite, NaN otherwise (a
/// plain sum of large finite weights could overflow).
struct NonFinite<B: AutodiffBackend> {
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NonFinite<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let weights = param.val().inner();
        let sum = (weights.clone() - weights).sum();
        self.sum = Some(match self.sum.take() {
            Some(total) => total + sum,
            None => sum,
        });
    }
}

/// Whether every weight is finite (one device read).
fn weights_finite<B: AutodiffBackend>(network: &Network<B>) -> bool {
    let mut visitor = NonFinite::<B> { sum: None };
    network.visit(&mut visitor);
    visitor.sum.is_none_or(|sum| sum.into_scalar().elem::<f64>() == 0.0)
}

/// Every gradient multiplied by `factor`.
struct Rescale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    factor: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Rescale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

fn rescale<B: AutodiffBackend>(network: &Network<B>, mut grads: GradientsParams, factor: f64) -> GradientsParams {
    network.visit(&mut Rescale::<B> { grads: &mut grads, factor, _b: std::marker::PhantomData });
    grads
}

/// Moves the gradients of the parameters `ids` out of `grads` into their own set.
struct TakeGrads<'a, B: AutodiffBackend> {
    ids: &'a std::collections::HashSet<ParamId>,
    from: &'a mut GradientsParams,
    taken: GradientsParams,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for TakeGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.ids.contains(&param.id)
            && let Some(g) = self.from.remove::<B::InnerBackend, D>(param.id)
        {
            self.taken.register::<B::InnerBackend, D>(param.id, g);
        }
    }
}

fn take_grads<B: AutodiffBackend>(
    network: &Network<B>,
    grads: &mut GradientsParams,
    ids: &std::collections::HashSet<ParamId>,
) -> GradientsParams {
    let mut take = TakeGrads::<B> { ids, from: grads, taken: GradientsParams::new(), _b: std::marker::PhantomData };
    network.visit(&mut take);
    take.taken
}

/// What the caller sees after each batch and epoch (progress lines, bars), and what a
/// run could not do without stopping.
pub trait Observer {
    fn batch(&mut self, _done: usize, _total: usize, _loss: f64, _acc: f64, _images_per_s: f64) {}
    fn epoch(&mut self, metrics: &EpochMetrics, epochs: usize);
    fn warning(&mut self, _warning: &Warning) {}
}

/// Where a new run's weights come from, when not from the seed.
#[derive(Clone, Copy)]
pub enum Init<'a> {
    /// Every tensor of the network must be there, as it is (a reference run replayed).
    Exact(&'a StateDict),
    /// The tensors whose name and shape match (`--init`, see `lower::transfer`).
    Matching(&'a StateDict),
}

pub struct Session<'a> {
    pub model: &'a Model,
    pub train: &'a Dataset,
    pub val: &'a Dataset,
    pub pipeline: &'a Pipeline,
    pub hyper: &'a Hyper,
    pub run: &'a RunDir,
    /// Stop after this many epochs in total (tests simulate an interruption with it).
    pub stop_after: Option<usize>,
    /// The network arguments given with `--set`: checkpoints record them, so that
    /// evaluating the weights on a network built differently is caught.
    pub settings: &'a [(String, String)],
    /// Weights (and batch-norm statistics) to start a new run from instead of the
    /// seeded initialisation. A resumed run starts from its own checkpoint instead.
    pub init: Option<Init<'a>>,
    /// The parameters kept fixed (`--freeze`), on a new run and a resumed one.
    pub freeze: Option<&'a Freeze>,
    /// `--head-lr-mult`: the learning rate's multiplier for the tensors `--init` did
    /// not provide, and their names.
    pub head: Option<(f64, &'a [String])>,
    /// The `--init` file's name and sha256, which every checkpoint records.
    pub origin: Option<(&'a str, &'a str)>,
    /// Each epoch's order of the training images, to replay a run another framework
    /// made; `None` draws it from the seed.
    pub order: Option<&'a [Vec<usize>]>,
}

/// Trains (or resumes) a run to `hyper.epochs`, writing everything to the run directory.
/// The network and optimiser live on the first of `devices`; with more than one, each
/// batch is split over them (see `step.rs`).
pub fn train<B: AutodiffBackend>(
    session: &Session,
    devices: &[B::Device],
    observer: &mut dyn Observer,
) -> Result<Progress, Error> {
    let hyper = session.hyper;
    let device = devices.first().ok_or(RunError::NoDevice)?;
    crate::backend::check_precision::<B>(hyper.precision, "training", device)?;
    B::seed(device, hyper.seed);
    let mut network = Network::<B>::new(session.model, device).with_precision(hyper.precision);
    network = match session.init {
        Some(Init::Exact(weights)) => {
            network.load_state_dict(weights).map_err(|problems| WeightsError::InitDoesNotFit { problems })?
        }
        Some(Init::Matching(weights)) => network.load_matching(weights),
        None => network,
    };
    let mut metadata =
        checkpoint::metadata(session.pipeline, &session.train.classes, session.settings, hyper.precision);
    if let Some((file, sha256)) = session.origin {
        metadata.insert("init".into(), file.into());
        metadata.insert("init_sha256".into(), sha256.into());
    }
    let mut optim = Optim::<B>::new(hyper);
    let mut progress =
        Progress { loss_scale: hyper.precision.scales_loss().then(LossScale::default), ..Progress::default() };
    if let Some((restored, state)) = session.run.resume::<B>(network.clone(), device)? {
        network = restored.0;
        optim = match (optim, restored.1) {
            (Optim::Sgd(o), checkpoint::OptimRecord::Sgd(r)) => Optim::Sgd(o.load_record(r)),
            (Optim::AdamW(o), checkpoint::OptimRecord::AdamW(r)) => Optim::AdamW(o.load_record(r)),
            _ => {
                return Err(RunError::OtherOptimizer { dir: session.run.dir.clone() }.into());
            }
        };
        progress = state;
    }
    // After the resume too: a checkpoint's record does not say which parameters train.
    if let Some(freeze) = session.freeze {
        network = network.freeze(freeze);
    }
    let head = session.head.map(|(multiplier, names)| {
        let names: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        (multiplier, network.param_ids(|name| names.contains(name)))
    });
    let smoothing = (hyper.label_smoothing > 0.0).then_some(hyper.label_smoothing as f32);
    let stepper = Stepper::<B>::new(devices.to_vec());
    let last_epoch = session.stop_after.unwrap_or(hyper.epochs).min(hyper.epochs);
    for epoch in progress.completed_epochs..last_epoch {
        let start = Instant::now();
        // Everything random in this epoch comes from (seed, epoch).
        let epoch_seed = hyper.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        // Burn's generator is one per backend, not per device: with several devices, the
        // order in which their threads draw dropout masks from it is the scheduler's.
        B::seed(device, epoch_seed);
        let mut rng = StdRng::seed_from_u64(epoch_seed);
        let order = match session.order {
            Some(orders) => orders.get(epoch).cloned().ok_or(RunError::NoOrder { epoch: epoch + 1 })?,
            None => {
                let mut order: Vec<usize> = (0..session.train.len()).collect();
                order.shuffle(&mut rng);
                order
            }
        };
        let lr = hyper.lr.at(epoch);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let batches = order.len().div_ceil(hyper.batch);
        for (b, indices) in order.chunks(hyper.batch).enumerate() {
            let scale = progress.loss_scale.as_ref().map_or(1.0, |s| s.scale);
            let outcome = stepper.run(&network, session.train, indices, session.pipeline, &mut rng, smoothing, scale);
            if let Some(failure) = outcome.failure {
                let dir = session.run.dir.clone();
                return Err(RunError::DeviceFailed { epoch: epoch + 1, batch: b, failure, dir }.into());
            }
            if let Some(value) = outcome.non_finite {
                let dir = session.run.dir.clone();
                return Err(RunError::LossNotFinite { value, epoch: epoch + 1, batch: b, dir }.into());
            }
            let mut grads = outcome.grads;
            // One read of the gradients serves the f16 overflow check and the clipping
            // (`torch.nn.utils.clip_grad_norm_`, on the unscaled gradients).
            let stats =
                (progress.loss_scale.is_some() || hyper.clip_grad_norm.is_some()).then(|| grad_stats(&network, &grads));
            let take_step = match progress.loss_scale.as_mut() {
                Some(scaler) => scaler.update(stats.is_none_or(|(_, finite)| finite)),
                None => true,
            };
            if take_step {
                // Unscaling and clipping are one multiplication.
                let mut factor = 1.0 / scale;
                if let (Some(max), Some((norm, _))) = (hyper.clip_grad_norm, stats)
                    && norm / scale > max
                {
                    factor *= max / (norm / scale + 1e-6);
                }
                if factor != 1.0 {
                    grads = rescale(&network, grads, factor);
                }
                if let Some((multiplier, ids)) = &head {
                    let head_grads = take_grads(&network, &mut grads, ids);
                    if !head_grads.is_empty() {
                        network = optim.step(lr * multiplier, network, head_grads);
                    }
                }
                network = optim.step(lr, network, grads);
            }
            loss_sum += outcome.loss_sum;
            correct += outcome.hits;
            seen += outcome.images;
            observer.batch(
                b + 1,
                batches,
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
                seen as f64 / start.elapsed().as_secs_f64(),
            );
        }
        let train_seconds = start.elapsed().as_secs_f64();
        // A ReLU turns NaN into 0 on Burn's backends (PyTorch's keeps it), so weights
        // that became NaN can leave the loss finite: check them before they are saved.
        if !weights_finite(&network) {
            return Err(RunError::WeightsNotFinite { epoch: epoch + 1, dir: session.run.dir.clone() }.into());
        }
        let eval = evaluate::<B::InnerBackend>(&network.valid(), session.val, session.pipeline, hyper.batch, device);
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss: eval.loss,
            val_top1: eval.top1,
            val_top5: eval.top5,
            lr,
            seconds: start.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_seconds,
        };
        progress.completed_epochs = epoch + 1;
        let best = metrics.val_top1 > progress.best_top1 || progress.history.is_empty();
        if best {
            progress.best_top1 = metrics.val_top1;
        }
        progress.history.push(metrics.clone());
        let record = match &optim {
            Optim::Sgd(o) => checkpoint::OptimRecord::Sgd(o.to_record()),
            Optim::AdamW(o) => checkpoint::OptimRecord::AdamW(o.to_record()),
        };
        for warning in session.run.save_epoch(&network, record, &progress, best, &metadata)? {
            observer.warning(&warning);
        }
        observer.epoch(&metrics, hyper.epochs);
    }
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::weights::{RawTensor, StateDict};
    use burn::backend::{Autodiff, Flex};

    fn network_with(weights: [f32; 4]) -> Network<Autodiff<Flex>> {
        let text = "network n { input vector(2)\n fc: linear(2, bias: false) }";
        let compiled =
            crate::elaborate::compile(&mut crate::source::Sources::new(), "n.arch", text, &Default::default());
        let dict = StateDict {
            tensors: [("fc.weight".to_string(), RawTensor { shape: vec![2, 2], data: weights.to_vec() })].into(),
            metadata: Default::default(),
        };
        Network::new(&compiled.models[0], &Default::default()).load_state_dict(&dict).unwrap()
    }

    #[test]
    fn weights_finite_finds_nan_and_infinity_and_no_overflow() {
        assert!(weights_finite(&network_with([1.0, -2.0, 0.0, 3.0])));
        // Their plain sum would overflow to infinity.
        assert!(weights_finite(&network_with([3e38, 3e38, 3e38, -1.0])));
        assert!(!weights_finite(&network_with([1.0, f32::NAN, 0.0, 3.0])));
        assert!(!weights_finite(&network_with([1.0, 2.0, f32::INFINITY, 3.0])));
        assert!(!weights_finite(&network_with([f32::NEG_INFINITY, 2.0, 0.0, 3.0])));
    }
}
