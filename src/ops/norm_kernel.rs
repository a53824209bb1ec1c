//! Batch norm's training pass as one fused op on burn-flex, the default CPU backend.
//!
//! Written with generic tensor ops, a training batch norm is a chain of broadcast
//! element-wise ops, each recorded for autodiff and each walking strided memory; on
//! burn-flex that chain was most of a ResNet's training step. Here it is one custom
//! autodiff op: the forward pass makes two passes over each channel's contiguous
//! planes (statistics, then normalise), the backward pass two more (the two sums, then
//! the standard formula), rayon-parallel over channels and planes.
//!
//! Burn has no fused batch norm; this is a backend extension done inside archc, and
//! the shape of what we would propose upstream (a `batch_norm_train` module op with a
//! default decomposition). Other backends keep the tensor-op version in `norm.rs`. The
//! switch is by type (`TypeId`), so no new trait bound spreads through the lowering.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};
use rayon::prelude::*;
use std::any::{Any, TypeId};

type Ad = Autodiff<Flex>;

/// Moves a value to a type that `TypeId` says is the same type.
fn cast<A: 'static, T: 'static>(value: A) -> T {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("cast only between identical types")
}

/// Training batch norm over `x` as [batch, channels, spatial]: the normalised,
/// scaled and shifted output, and the per-channel batch mean and biased variance (for
/// the running statistics, outside the autodiff graph). `None` when `B` is not
/// `Autodiff<Flex>`: the caller then runs the generic version.
#[allow(clippy::type_complexity)]
pub fn train<B: Backend>(
    x: &Tensor<B, 3>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f64,
) -> Option<(Tensor<B, 3>, Tensor<B, 1>, Tensor<B, 1>)> {
    if TypeId::of::<B>() != TypeId::of::<Ad>() {
        return None;
    }
    let (x, gamma, beta): (Tensor<Ad, 3>, Tensor<Ad, 1>, Tensor<Ad, 1>) =
        (cast(x.clone()), cast(gamma.clone()), cast(beta.clone()));
    let (y, mean, var) = flex_train(x, gamma, beta, eps);
    Some((cast(y), cast(mean), cast(var)))
}

fn flex_train(
    x: Tensor<Ad, 3>,
    gamma: Tensor<Ad, 1>,
    beta: Tensor<Ad, 1>,
    eps: f64,
) -> (Tensor<Ad, 3>, Tensor<Ad, 1>, Tensor<Ad, 1>) {
    let device = x.device();
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let input = x.primitive.to_contiguous();
    let [n, c, s] = dims3(&input);
    let stats = Stats::of(slice(&input), n, c, s, eps);
    let y = stats.normalize(
        slice(&input),
        slice(&gamma.primitive.to_contiguous()),
        slice(&beta.primitive.to_contiguous()),
        n,
        s,
    );
    let y = FlexTensor::from_data(TensorData::new(y, [n, c, s]));
    let mean = Tensor::<Ad, 1>::from_data(TensorData::new(stats.mean.clone(), [c]), &device);
    let var = Tensor::<Ad, 1>::from_data(TensorData::new(stats.var.clone(), [c]), &device);
    let prep = BatchNormBackward.prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()]);
    let y = match prep.compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Saved { x: input, gamma: gamma.primitive, stats }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (Tensor::from_primitive(TensorPrimitive::Float(y)), mean, var)
}

fn dims3(t: &FlexTensor) -> [usize; 3] {
    t.shape().dims::<3>()
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// Per-channel batch statistics, accumulated in f64.
#[derive(Clone, Debug)]
struct Stats {
    mean: Vec<f32>,
    /// Biased (divided by the count), as the normalisation uses.
    var: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Stats {
    fn of(x: &[f32], n: usize, c: usize, s: usize, eps: f64) -> Stats {
        let count = (n * s) as f64;
        let per_channel: Vec<(f32, f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = || (0..n).map(move |b| &x[(b * c + ch) * s..][..s]);
                let sum: f64 = planes().map(|p| p.iter().map(|&v| v as f64).sum::<f64>()).sum();
                let mean = sum / count;
                let squares: f64 =
                    planes().map(|p| p.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean)).sum::<f64>()).sum();
                let var = squares / count;
                (mean as f32, var as f32, (1.0 / (var + eps).sqrt()) as f32)
            })
            .collect();
        Stats {
            mean: per_channel.iter().map(|t| t.0).collect(),
            var: per_channel.iter().map(|t| t.1).collect(),
            inv_std: per_channel.iter().map(|t| t.2).collect(),
        }
    }

    /// `(x - mean) * inv_std * gamma + beta`, plane by plane.
    fn normalize(&self, x: &[f32], gamma: &[f32], beta: &[f32], n: usize, s: usize) -> Vec<f32> {
        let c = self.mean.len();
        let mut y = vec![0f32; n * c * s];
        y.par_chunks_mut(s).zip(x.par_chunks(s)).enumerate().for_each(|(plane, (out, input))| {
            let ch = plane % c;
            let scale = self.inv_std[ch] * gamma[ch];
            let shift = beta[ch] - self.mean[ch] * scale;
            for (o, &v) in out.iter_mut().zip(input) {
                *o = v * scale + shift;
            }
        });
        y
    }
}

/// What the backward pass needs: the input (shared, not copied), gamma and the
/// statistics; x̂ is recomputed rather than stored.
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    stats: Stats,
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { x, gamma, stats } = ops.state;
        let [n, c, s] = dims3(&x);
        let (x, dy, gamma) = (slice(&x), slice(&dy), gamma.to_contiguous());
        let gamma = slice(&gamma);
        // Per channel: dβ = Σ dy, dγ = Σ dy·x̂.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mean, inv_std) = (stats.mean[ch], stats.inv_std[ch]);
                let (mut dbeta, mut dgamma) = (0f64, 0f64);
                for b in 0..n {
                    let at = (b * c + ch) * s;
                    for (&g, &v) in dy[at..at + s].iter().zip(&x[at..at + s]) {
                        dbeta += g as f64;
                        dgamma += g as f64 * ((v - mean) * inv_std) as f64;
                    }
                }
                (dbeta, dgamma)
            })
            .collect();
        if let Some(node) = x_node {
            // dx = γ·inv_std · (dy − dβ/M − x̂·dγ/M), M = batch × spatial.
            let count = (n * s) as f64;
            let mut dx = vec![0f32; n * c * s];
            dx.par_chunks_mut(s).enumerate().for_each(|(plane, out)| {
                let ch = plane % c;
                let (mean, inv_std) = (stats.mean[ch], stats.inv_std[ch]);
                let k = gamma[ch] * inv_std;
                let (mean_dy, mean_dy_xhat) = ((sums[ch].0 / count) as f32, (sums[ch].1 / count) as f32);
                let at = plane * s;
                for ((o, &g), &v) in out.iter_mut().zip(&dy[at..at + s]).zip(&x[at..at + s]) {
                    let x_hat = (v - mean) * inv_std;
                    *o = k * (g - mean_dy - x_hat * mean_dy_xhat);
                }
            });
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, [n, c, s])));
        }
        let per_channel = |values: Vec<f32>| FlexTensor::from_data(TensorData::new(values, [c]));
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, per_channel(sums.iter().map(|t| t.1 as f32).collect()));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, per_channel(sums.iter().map(|t| t.0 as f32).collect()));
        }
    }
}
