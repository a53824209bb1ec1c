//! Mixed precision with the rules of PyTorch's autocast, so that a bf16 or f16 run
//! carries over. The weights (and the optimiser's state) stay f32. Convolutions,
//! linear layers and attention (autocast's low-precision list) cast their input and
//! their weights to the compute precision; layer norm and softmax (its f32 list)
//! compute in f32 and return f32; batch norm computes its statistics in f32 and
//! returns its input's precision (as cuDNN's does); everything else runs in the
//! precision of its input, and an op with inputs of two precisions (a residual add,
//! a gate, a concatenation, a learned position embedding) promotes them to the wider
//! one, as PyTorch's type promotion does. A CNN thus computes in bf16 from its first
//! convolution on, while a ViT's residual stream stays f32 as it does under autocast.
//! Promotion also keeps every binary op on one dtype: burn-flex reads a mismatched
//! operand's bytes as the other dtype rather than refusing it.
//!
//! Gradients flow back through the casts (Burn's autodiff casts each gradient to its
//! input's dtype), so the weight gradients the optimiser sees are f32. In f32 no cast
//! is made at all: the f32 network is exactly the one archc always ran.

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// bfloat16 compute, f32 weights: f32's range with 8 bits of mantissa.
    Bf16,
    /// float16 compute, f32 weights: 11 bits of mantissa but a narrow range, so
    /// training scales the loss (as PyTorch's GradScaler does).
    F16,
}

impl Precision {
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// Whether training needs loss scaling to keep small gradients from flushing to 0.
    pub fn scales_loss(self) -> bool {
        self == Precision::F16
    }

    /// Whether the backend can compute in this precision on `device`.
    pub fn supported<B: Backend>(self, device: &B::Device) -> bool {
        self == Precision::F32 || B::supports_dtype(device, DType::from(self.dtype()))
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

/// The wider of two dtypes: f32 unless they agree (a network has one low precision).
pub fn wider(a: DType, b: DType) -> DType {
    if a == b { a } else { DType::F32 }
}

/// Both tensors in the wider of their two dtypes.
pub fn promoted<B: Backend, const D: usize, const E: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, E>,
) -> (Tensor<B, D>, Tensor<B, E>) {
    let dtype = wider(a.dtype(), b.dtype());
    (cast(a, dtype), cast(b, dtype))
}

/// `t` in the dtype `like` computes in: how a weight meets its input.
pub fn as_dtype_of<B: Backend, const D: usize, const E: usize>(t: Tensor<B, D>, like: &Tensor<B, E>) -> Tensor<B, D> {
    cast(t, like.dtype())
}

/// `t` in f32, for statistics and sums that low precision would spoil.
pub fn widened<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    cast(t, DType::F32)
}

/// `t` in `dtype`; no op (and no autodiff node) when it already is.
pub fn cast<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if t.dtype() == dtype { t } else { t.cast(dtype) }
}

/// Runs `f` in f32 on `x` and returns its result in `x`'s dtype (batch norm, and the
/// attention weights that meet the values in a low-precision product).
pub fn in_f32<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    f: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    let dtype = x.dtype();
    cast(f(widened(x)), dtype)
}
