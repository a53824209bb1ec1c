//! Windowed max and average pooling on burn-flex through `archc_kernels::pool`. Burn-flex's
//! pooling computes each window's indices with scalar, bounds-checked arithmetic; in
//! LeNet-5 it was the largest cost of an inference pass. A 1×1 window without padding
//! (the option-A shortcut's subsampling) is a strided copy, and its backward one pass
//! (Burn's strided slice zeroed the whole input gradient, then wrote into it, on one
//! thread).

use super::{Ad, Kind, cast, is_f32, kind, tensor, values};
use archc_kernels::pool::{self as kernel, Pool2d};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};
use std::sync::Arc;

/// Which pooling, with what it keeps for the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Max,
    Avg { count_include_pad: bool },
}

/// A square-window pooling's settings, as the lowering holds them.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub reduction: Reduction,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub ceil_mode: bool,
}

/// The pooling on archc's kernels, or `None` when `B` is neither burn-flex nor its
/// autodiff, or the input is not f32 (the caller then runs Burn's).
pub fn pool2d<B: Backend>(x: &Tensor<B, 4>, settings: Settings) -> Option<Tensor<B, 4>> {
    match kind::<B>()? {
        Kind::Flex => {
            let x = cast::<_, Tensor<Flex, 4>>(x.clone()).into_primitive().tensor();
            let (pool, y, _) = forward(&x, settings)?;
            Some(cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(output(&pool, y)))))
        }
        Kind::Autodiff => {
            let x = cast::<_, Tensor<Ad, 4>>(x.clone()).into_primitive().tensor();
            let (pool, y, arg) = forward(&x.primitive, settings)?;
            let y = output(&pool, y);
            let y = match PoolBackward.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(Saved { pool, reduction: settings.reduction, arg }, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Some(cast(Tensor::<Ad, 4>::from_primitive(TensorPrimitive::Float(y))))
        }
    }
}

fn output(pool: &Pool2d, y: Vec<f32>) -> burn::backend::flex::FlexTensor {
    let [h, w] = pool.output_size();
    tensor(y, &[pool.batch, pool.channels, h, w])
}

/// Runs the forward kernel: the sizes, the output and (max pooling) where each output
/// came from; `None` for what it does not handle.
#[allow(clippy::type_complexity)]
fn forward(
    x: &burn::backend::flex::FlexTensor,
    settings: Settings,
) -> Option<(Pool2d, Vec<f32>, Option<Arc<Vec<u32>>>)> {
    let [batch, channels, height, width] = <[usize; 4]>::try_from(x.shape().as_slice()).ok()?;
    if !is_f32(x) {
        return None;
    }
    let pool = Pool2d {
        batch,
        channels,
        height,
        width,
        kernel: [settings.kernel; 2],
        stride: [settings.stride; 2],
        padding: [settings.padding; 2],
        ceil_mode: settings.ceil_mode,
        count_include_pad: matches!(settings.reduction, Reduction::Avg { count_include_pad: true }),
    };
    if !pool.is_supported() {
        return None;
    }
    let x = x.to_contiguous();
    if pool.is_subsampling() {
        return Some((pool, kernel::subsample(&pool, values(&x)), None));
    }
    Some(match settings.reduction {
        Reduction::Max => {
            let (y, arg) = kernel::max_forward(&pool, values(&x));
            (pool, y, Some(Arc::new(arg)))
        }
        Reduction::Avg { .. } => (pool, kernel::avg_forward(&pool, values(&x)), None),
    })
}

/// The backward pass needs the sizes and, for max pooling, where each output came from
/// (shared, as the state is cloned).
#[derive(Clone, Debug)]
struct Saved {
    pool: Pool2d,
    reduction: Reduction,
    arg: Option<Arc<Vec<u32>>>,
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents else { return };
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { pool, reduction, arg } = ops.state;
        let dx = match (reduction, arg) {
            _ if pool.is_subsampling() => kernel::subsample_backward(&pool, values(&dy)),
            (Reduction::Max, Some(arg)) => kernel::max_backward(&pool, &arg, values(&dy)),
            _ => kernel::avg_backward(&pool, values(&dy)),
        };
        let shape = [pool.batch, pool.channels, pool.height, pool.width];
        grads.register::<Flex>(node.id, tensor(dx, &shape));
    }
}
