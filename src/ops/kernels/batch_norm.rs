//! Batch norm's training pass as one autodiff op: forward and backward are the
//! contiguous per-channel loops of `archc_kernels::batch_norm`.

use super::{Ad, Kind, cast, is_f32, kind, tensor, values};
use archc_kernels::batch_norm::{self as kernel, Planes, Statistics};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};

/// Training batch norm over `x` as [batch, channels, spatial]: the normalised,
/// scaled and shifted output, and the per-channel batch mean and biased variance (for
/// the running statistics, outside the autodiff graph). `None` when `B` is not
/// `Autodiff<Flex>` or the tensors are not f32: the caller then runs the generic version.
#[allow(clippy::type_complexity)]
pub fn train<B: Backend>(
    x: &Tensor<B, 3>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f64,
) -> Option<(Tensor<B, 3>, Tensor<B, 1>, Tensor<B, 1>)> {
    if !matches!(kind::<B>(), Some(Kind::Autodiff)) {
        return None;
    }
    let (x, gamma, beta): (Tensor<Ad, 3>, Tensor<Ad, 1>, Tensor<Ad, 1>) =
        (cast(x.clone()), cast(gamma.clone()), cast(beta.clone()));
    let device = x.device();
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    if ![&x.primitive, &gamma.primitive, &beta.primitive].into_iter().all(is_f32) {
        return None;
    }
    let input = x.primitive.to_contiguous();
    let [batch, channels, spatial] = input.shape().dims::<3>();
    let at = Planes { batch, channels, spatial };
    let stats = kernel::statistics(values(&input), at, eps);
    let gamma_values = gamma.primitive.to_contiguous();
    let y =
        kernel::normalize(values(&input), at, &stats, values(&gamma_values), values(&beta.primitive.to_contiguous()));
    let y = tensor(y, &[batch, channels, spatial]);
    let per_channel = |v: &[f32]| Tensor::<Ad, 1>::from_data(TensorData::new(v.to_vec(), [channels]), &device);
    let (mean, var) = (per_channel(&stats.mean), per_channel(&stats.var));
    let prep = BatchNormBackward.prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()]);
    let y = match prep.compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Saved { x: input, gamma: gamma_values, at, stats }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let y = Tensor::<Ad, 3>::from_primitive(TensorPrimitive::Float(y));
    Some((cast(y), cast(mean), cast(var)))
}

/// What the backward pass needs: the input (shared, not copied), gamma and the
/// statistics; x̂ is recomputed rather than stored.
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    at: Planes,
    stats: Statistics,
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { x, gamma, at, stats } = ops.state;
        let found = kernel::backward(values(&x), values(&dy), at, &stats, values(&gamma), x_node.is_some());
        if let (Some(node), Some(dx)) = (x_node, found.input) {
            grads.register::<Flex>(node.id, tensor(dx, &[at.batch, at.channels, at.spatial]));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, tensor(found.gamma, &[at.channels]));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, tensor(found.beta, &[at.channels]));
        }
    }
}
