//! Zero channels around an image's own (`pad_channels`, the option-A shortcut's
//! widening) on burn-flex through `archc_kernels::pad`: Burn concatenates zero tensors
//! on one thread, and its backward slices the gradient into a strided view copied later.

use super::{Ad, Kind, cast, is_f32, kind, tensor, values};
use archc_kernels::pad::{self as kernel, PadChannels};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};

/// `x` with `before` zero channels ahead of its own and `after` behind, on archc's
/// kernels, or `None` when `B` is neither burn-flex nor its autodiff, or `x` is not f32
/// (the caller then concatenates with Burn's).
pub fn pad_channels<B: Backend>(x: &Tensor<B, 4>, before: usize, after: usize) -> Option<Tensor<B, 4>> {
    match kind::<B>()? {
        Kind::Flex => {
            let x = cast::<_, Tensor<Flex, 4>>(x.clone()).into_primitive().tensor();
            let (pad, y) = forward(&x, before, after)?;
            Some(cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(output(&pad, &x, y)))))
        }
        Kind::Autodiff => {
            let x = cast::<_, Tensor<Ad, 4>>(x.clone()).into_primitive().tensor();
            let (pad, y) = forward(&x.primitive, before, after)?;
            let y = output(&pad, &x.primitive, y);
            let y = match PadBackward.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((pad, x.primitive.shape().as_slice().to_vec()), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Some(cast(Tensor::<Ad, 4>::from_primitive(TensorPrimitive::Float(y))))
        }
    }
}

fn output(pad: &PadChannels, x: &FlexTensor, y: Vec<f32>) -> FlexTensor {
    let shape = x.shape();
    let [b, _, h, w] = <[usize; 4]>::try_from(shape.as_slice()).expect("checked by `forward`");
    tensor(y, &[b, pad.before + pad.channels + pad.after, h, w])
}

/// The padding's sizes and the padded values; `None` for what the kernel does not take.
fn forward(x: &FlexTensor, before: usize, after: usize) -> Option<(PadChannels, Vec<f32>)> {
    let [batch, channels, h, w] = <[usize; 4]>::try_from(x.shape().as_slice()).ok()?;
    if !is_f32(x) || batch * channels * h * w == 0 {
        return None;
    }
    let pad = PadChannels { batch, channels, spatial: h * w, before, after };
    let x = x.to_contiguous();
    Some((pad, kernel::pad_channels(&pad, values(&x))))
}

#[derive(Debug)]
struct PadBackward;

impl Backward<Flex, 1> for PadBackward {
    /// The padding, and the input's shape.
    type State = (PadChannels, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents else { return };
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (pad, shape) = ops.state;
        grads.register::<Flex>(node.id, tensor(kernel::pad_channels_backward(&pad, values(&dy)), &shape));
    }
}
