//! Lowering: the shaped IR → a Burn network built at run time, generic over the
//! backend. Burn's `Module` derive cannot hold a recursive tree, so the IR is
//! flattened into a list of weight-carrying layers plus a program of steps over value
//! slots (residual adds, gates, merges and weight-free ops are steps). Each op's own
//! lowering lives beside its shape and cost rules in `src/ops/`.

mod fold;
mod fuse;
mod program;
pub mod transfer;
pub mod weights;

pub use crate::tensor::{Precision, Value};
pub use program::{Program, Step, StepLabel};

use crate::ir::{Model, Shape};
use crate::ops::Op;
use crate::ops::attention::AttentionModule;
use crate::ops::conv::ConvModule;
use crate::ops::linear::LinearModule;
use crate::ops::norm::{BatchNormModule, LayerNormModule};
use crate::ops::tokens::{EmbeddingModule, to_tokens};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::DType;

/// A layer that carries weights. Variants hold PyTorch-layout tensors whose field
/// names are PyTorch's (`weight`, `bias`, `running_mean`, `in_proj_weight`, ...).
#[derive(Module, Debug)]
pub enum Layer<B: Backend> {
    Conv(ConvModule<B>),
    Patchify(ConvModule<B>),
    Linear(LinearModule<B>),
    BatchNorm(BatchNormModule<B>),
    LayerNorm(LayerNormModule<B>),
    Attention(AttentionModule<B>),
    ClassToken(EmbeddingModule<B>),
    PosEmbedding(EmbeddingModule<B>),
}

impl<B: Backend> Layer<B> {
    /// Runs the layer; `compute` is the dtype of the network's compute precision, which
    /// convolutions, linear layers and attention cast their input to.
    fn forward(&self, x: Value<B>, compute: DType) -> Value<B> {
        let low_precision =
            matches!(self, Layer::Conv(_) | Layer::Patchify(_) | Layer::Linear(_) | Layer::Attention(_));
        let x = if low_precision { x.cast(compute) } else { x };
        match (self, x) {
            (Layer::Conv(conv), x) => Value::Image(conv.forward(x.image())),
            (Layer::Patchify(conv), x) => Value::Tokens(to_tokens(conv.forward(x.image()))),
            (Layer::Linear(linear), Value::Tokens(t)) => Value::Tokens(linear.forward_tokens(t)),
            (Layer::Linear(linear), x) => Value::Vector(linear.forward(x.vector())),
            (Layer::BatchNorm(bn), Value::Image(t)) => Value::Image(bn.forward(t)),
            (Layer::BatchNorm(bn), x) => Value::Vector(bn.forward(x.vector())),
            (Layer::LayerNorm(ln), x) => crate::map_value!(x, |t| ln.forward(t)),
            (Layer::Attention(attention), x) => Value::Tokens(attention.forward(x.tokens())),
            (Layer::ClassToken(token), x) => Value::Tokens(token.prepend(x.tokens())),
            (Layer::PosEmbedding(positions), x) => Value::Tokens(positions.add(x.tokens())),
        }
    }
}

impl Op {
    /// The weight-carrying layer for this op, or `None` for ops without weights.
    pub fn init_layer<B: Backend>(&self, input: &Shape, device: &B::Device) -> Option<Layer<B>> {
        Some(match self {
            Op::Conv(op) => Layer::Conv(op.init(input, device)),
            Op::Patchify(op) => Layer::Patchify(op.init(input, device)),
            Op::Linear(op) => Layer::Linear(op.init(input, device)),
            Op::BatchNorm(op) => Layer::BatchNorm(op.init(input, device)),
            Op::LayerNorm(op) => Layer::LayerNorm(op.init(input, device)),
            Op::Attention(op) => Layer::Attention(op.init(input, device)),
            Op::ClassToken(op) => Layer::ClassToken(op.init(input, device)),
            Op::PosEmbedding(op) if op.learned => Layer::PosEmbedding(op.init(input, device)),
            _ => return None,
        })
    }

    /// Runs an op that has no weights.
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        match self {
            Op::Pool(op) => op.apply(x),
            Op::GlobalPool(op) => op.apply(x),
            Op::AdaptiveAvgPool(op) => op.apply(x),
            Op::Reduce(op) => op.apply(x),
            Op::Activation(op) => op.apply(x),
            Op::Flatten(op) => op.apply(x),
            Op::Dropout(op) => op.apply(x),
            Op::PadChannels(op) => op.apply(x),
            Op::PosEmbedding(op) => op.apply_fixed(x),
            Op::SelectToken(op) => op.apply(x),
            Op::MeanTokens(op) => op.apply(x),
            Op::Identity(_) => x,
            other => unreachable!("{other:?} carries weights and is lowered to a layer"),
        }
    }
}

/// A lowered network: its layers (the weights, one per weight-carrying IR op, named
/// by `program.layer_paths`), the program that wires them, and the precision it
/// computes in (its weights are f32 whatever that is).
#[derive(Module, Debug)]
pub struct Network<B: Backend> {
    pub layers: Vec<Layer<B>>,
    pub program: Program,
    pub precision: Precision,
}

impl<B: Backend> Network<B> {
    /// Builds the network for a checked model, with PyTorch's default initialisation,
    /// computing in f32.
    pub fn new(model: &Model, device: &B::Device) -> Network<B> {
        let (program, layers) = program::lower(model, device);
        let program = program.planned(&layers);
        Network { layers, program, precision: Precision::F32 }
    }

    /// The same network computing in `precision` (see `precision.rs`).
    pub fn with_precision(mut self, precision: Precision) -> Network<B> {
        self.precision = precision;
        self
    }

    /// Runs the network. `input` must have the model's declared input shape (with a
    /// batch dimension in front); the output is f32 whatever the compute precision.
    pub fn forward(&self, input: Value<B>) -> Value<B> {
        let compute = self.precision.dtype().into();
        self.program.run(&self.layers, input, compute).cast(DType::F32)
    }

    /// `forward`, showing `observe` every step's output (see `Program::run_observed`).
    pub fn forward_observed(&self, input: Value<B>, observe: &mut dyn FnMut(usize, &Value<B>)) -> Value<B> {
        let compute = self.precision.dtype().into();
        self.program.run_observed(&self.layers, input, compute, observe).cast(DType::F32)
    }

    /// `forward` without the fused chains: every step on its own (for comparisons).
    pub fn forward_unfused(&self, input: Value<B>) -> Value<B> {
        self.forward_observed(input, &mut |_, _| {})
    }

    /// Convenience for image classifiers: [batch, C, H, W] → [batch, classes].
    pub fn logits(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(Value::Image(images)).vector()
    }

    fn run_layer(layers: &[Layer<B>], index: usize, x: Value<B>, compute: DType) -> Value<B> {
        layers[index].forward(x, compute)
    }
}
