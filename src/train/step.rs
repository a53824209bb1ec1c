//! One training step's forward and backward passes over a batch: on one device, or
//! data parallel over several through Burn's own multi-device strategy
//! (`burn-train`'s `MultiDevicesTrainStep` runs each device's share on a fork of the
//! network in a thread of its own; the gradients move to the main device with
//! `GradientsParams::to_device` and are summed by `GradientsAccumulator`, as Burn's
//! `MultiDeviceOptim::OptimMainDevice` does). The optimiser step stays with the caller.
//!
//! `--batch` is the whole batch, split over the devices. Each share's loss is weighted
//! by its part of the batch before its backward pass, so the summed gradients are
//! those of the batch's mean loss: the same hyperparameters train the same way on one
//! device or several (batch norm sees each device's share, as in PyTorch's DDP without
//! SyncBatchNorm).

use crate::data::dataset::{Dataset, Pipeline};
use crate::lower::{Network, Value};
use burn::data::dataloader::{DataLoaderIterator, Progress};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn_train::train::MultiDevicesTrainStep;
use burn_train::{InferenceStep, ItemLazy, LearningComponentsMarker, TrainOutput, TrainStep};
use rand::rngs::StdRng;

/// One device's share of a batch.
pub struct Shard<B: Backend> {
    /// Its place in the batch: shares are summed in this order, whichever finishes first.
    pub index: usize,
    pub images: Tensor<B, 4>,
    pub labels: Tensor<B, 1, Int>,
    /// What the share's mean loss is multiplied by before the backward pass: its part
    /// of the batch, times the loss scale (see `loss_scale.rs`).
    pub weight: f64,
    pub smoothing: Option<f32>,
}

/// What one share's forward pass measured.
#[derive(Clone, Debug)]
pub struct ShardOutcome {
    pub index: usize,
    /// The mean loss over the share (unweighted, unscaled).
    pub loss: f64,
    pub hits: usize,
    pub images: usize,
    /// Why the share's passes failed (a backend's panic), if they did.
    pub failure: Option<String>,
}

/// What a whole batch's passes measured, with the batch's gradients on the main device.
pub struct BatchOutcome {
    pub loss_sum: f64,
    pub hits: usize,
    pub images: usize,
    /// The first non-finite share loss, if any.
    pub non_finite: Option<f64>,
    /// The first share's failure, if any.
    pub failure: Option<String>,
    pub grads: GradientsParams,
}

impl ItemLazy for ShardOutcome {
    type ItemSync = ShardOutcome;

    fn sync(self) -> ShardOutcome {
        self
    }
}

/// The forward pass and the loss: in training mode on an autodiff backend, in eval
/// mode otherwise.
fn measure<B: Backend>(network: &Network<B>, shard: Shard<B>) -> (ShardOutcome, Tensor<B, 1>) {
    let images = shard.labels.dims()[0];
    let logits = network.forward(Value::Image(shard.images)).vector();
    let hits = logits.clone().argmax(1).reshape([images]).equal(shard.labels.clone()).int().sum().into_scalar();
    let loss_fn = CrossEntropyLossConfig::new().with_smoothing(shard.smoothing).init(&logits.device());
    let loss = loss_fn.forward(logits, shard.labels);
    let value = loss.clone().into_scalar().elem::<f64>();
    let outcome =
        ShardOutcome { index: shard.index, loss: value, hits: hits.elem::<i64>() as usize, images, failure: None };
    (outcome, loss)
}

fn forward_backward<B: AutodiffBackend>(network: &Network<B>, shard: Shard<B>) -> (ShardOutcome, B::Gradients) {
    let weight = shard.weight;
    let (outcome, loss) = measure(network, shard);
    let loss = if weight == 1.0 { loss } else { loss.mul_scalar(weight) };
    (outcome, loss.backward())
}

/// Burn's training-step interface, which its multi-device step runs on each device.
impl<B: AutodiffBackend> TrainStep for Network<B> {
    type Input = Shard<B>;
    type Output = ShardOutcome;

    fn step(&self, shard: Shard<B>) -> TrainOutput<ShardOutcome> {
        let (index, images) = (shard.index, shard.labels.dims()[0]);
        // A failing device must still answer: Burn's multi-device step waits for every
        // worker, so one that died would leave the run waiting for ever.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| forward_backward(self, shard))) {
            Ok((outcome, grads)) => TrainOutput::new(self, grads, outcome),
            Err(payload) => {
                let failure = Some(crate::backend::failure_message(payload.as_ref()));
                let item = ShardOutcome { index, loss: f64::NAN, hits: 0, images, failure };
                TrainOutput { grads: GradientsParams::new(), item }
            }
        }
    }
}

/// Its eval-mode twin, which Burn's learning components require beside it.
impl<B: Backend> InferenceStep for Network<B> {
    type Input = Shard<B>;
    type Output = ShardOutcome;

    fn step(&self, shard: Shard<B>) -> ShardOutcome {
        measure(self, shard).0
    }
}

/// The types Burn's multi-device step is generic over. Only the network and backend
/// matter to it; the optimiser and schedule stay archc's own.
type Components<B> = LearningComponentsMarker<B, f64, Network<B>, OptimizerAdaptor<super::sgd::Sgd, Network<B>, B>>;

/// A share already on its device, handed to Burn's multi-device step as the one item
/// of a data loader (the batch was drawn and augmented on the main thread, in order,
/// so a run's images do not depend on how many devices it has).
struct OneShard<B: Backend>(Option<Shard<B>>);

impl<B: Backend> Iterator for OneShard<B> {
    type Item = Shard<B>;

    fn next(&mut self) -> Option<Shard<B>> {
        self.0.take()
    }
}

impl<B: Backend> DataLoaderIterator<Shard<B>> for OneShard<B> {
    fn progress(&self) -> Progress {
        Progress::new(usize::from(self.0.is_none()), 1)
    }
}

/// Runs training steps on one device or several.
pub enum Stepper<B: AutodiffBackend> {
    Single(B::Device),
    Parallel { devices: Vec<B::Device>, step: MultiDevicesTrainStep<Components<B>> },
}

impl<B: AutodiffBackend> Stepper<B> {
    /// The first device is the main one: it holds the network and the optimiser.
    pub fn new(devices: Vec<B::Device>) -> Stepper<B> {
        match devices.as_slice() {
            [one] => Stepper::Single(one.clone()),
            _ => Stepper::Parallel { step: MultiDevicesTrainStep::new(&devices), devices },
        }
    }

    /// Forward and backward passes over the images `indices` of `data`, the loss
    /// multiplied by `loss_scale` for the backward pass.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        network: &Network<B>,
        data: &Dataset,
        indices: &[usize],
        pipeline: &Pipeline,
        rng: &mut StdRng,
        smoothing: Option<f32>,
        loss_scale: f64,
    ) -> BatchOutcome {
        let devices = match self {
            Stepper::Single(device) => std::slice::from_ref(device),
            Stepper::Parallel { devices, .. } => devices.as_slice(),
        };
        let per_device = indices.len().div_ceil(devices.len());
        let shards: Vec<Shard<B>> = indices
            .chunks(per_device)
            .zip(devices)
            .enumerate()
            .map(|(index, (part, device))| {
                let (images, labels) = pipeline.batch::<B>(data, part, Some(rng), device);
                let share = part.len() as f64 / indices.len() as f64;
                Shard { index, images, labels, weight: share * loss_scale, smoothing }
            })
            .collect();
        let mut outcomes = Vec::with_capacity(shards.len());
        let grads = match self {
            Stepper::Single(_) => {
                let shard = shards.into_iter().next().expect("a batch has images");
                let (outcome, grads) = forward_backward(network, shard);
                outcomes.push(outcome);
                GradientsParams::from_grads(grads, network)
            }
            Stepper::Parallel { devices, step } => {
                let mut loaders: Vec<Box<dyn DataLoaderIterator<Shard<B>>>> =
                    shards.into_iter().map(|s| Box::new(OneShard(Some(s))) as Box<_>).collect();
                // A batch smaller than the device count leaves some devices idle.
                loaders.resize_with(devices.len(), || Box::new(OneShard(None)));
                let (mut outputs, _) = step.step(&mut loaders, network);
                outputs.sort_by_key(|o| o.output.item.index);
                let mut accumulator = GradientsAccumulator::new();
                for output in outputs {
                    accumulator.accumulate(network, output.output.grads.to_device(&devices[0], network));
                    outcomes.push(output.output.item);
                }
                accumulator.grads()
            }
        };
        BatchOutcome {
            loss_sum: outcomes.iter().map(|o| o.loss * o.images as f64).sum(),
            hits: outcomes.iter().map(|o| o.hits).sum(),
            images: outcomes.iter().map(|o| o.images).sum(),
            non_finite: outcomes.iter().map(|o| o.loss).find(|l| !l.is_finite()),
            failure: outcomes.iter().find_map(|o| o.failure.clone()),
            grads,
        }
    }
}
