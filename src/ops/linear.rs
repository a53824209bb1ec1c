//! Fully connected layer (`nn.Linear`), on vectors or on every token.

use super::*;
use crate::diagnostics::Code;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "linear",
    summary: "fully connected layer: linear(out, bias: true); on vectors, or on each token",
    args: &[
        arg("out", Ty::Int, ArgDefault::Required),
        arg("bias", Ty::Bool, ArgDefault::Bool(true)),
        arg("in_features", Ty::Int, ArgDefault::Absent),
    ],
    build: |a| {
        Ok(Op::Linear(Linear {
            out: a.at_least("out", 1)?,
            bias: a.bool("bias"),
            in_features: a.optional_at_least("in_features", 1)?,
        }))
    },
}];

#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub out: u64,
    pub bias: bool,
    pub in_features: Option<u64>,
}

impl OpRule for Linear {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        if let Shape::Image { .. } = input {
            // What was meant is almost always `flatten` first: a vector of `out` features.
            return Err(ShapeError::wrong_kind("linear", "vector", input).recover(Some(Shape::Vector { d: self.out })));
        }
        let d = input.features();
        if let Some(declared) = self.in_features
            && declared != d
        {
            return Err(ShapeError::new(
                Code::ChannelMismatch,
                format!("`linear` declares {declared} input feature{}, but its input has {d}", plural(declared)),
                format!("expects {declared} feature{}, gets {input}", plural(declared)),
            )
            .help(format!("write `in_features: {d}` or fix the layer that produces {d} features"))
            .recover(Some(input.with_features(self.out))));
        }
        Ok(input.with_features(self.out))
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        let mut tensors = vec![param("weight", vec![self.out, input.features()])];
        if self.bias {
            tensors.push(param("bias", vec![self.out]));
        }
        tensors
    }

    /// MACs = output elements × input features; `full` adds one op per output for bias.
    fn cost(&self, input: &Shape, output: &Shape) -> Cost {
        let macs = numel(output).saturating_mul(input.features() as u128);
        Cost::matmul(macs).plus(Cost::elementwise(if self.bias { numel(output) } else { 0 }))
    }
}

// ---- Lowering -------------------------------------------------------------------

use crate::tensor::init;
use crate::tensor::precision::as_dtype_of;
use burn::module::{Module, Param};
use burn::prelude::{Backend, Tensor};

/// `nn.Linear`'s tensors in PyTorch's layout: weight [out, in], bias [out].
#[derive(Module, Debug)]
pub struct LinearModule<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
}

/// PyTorch's default: weight and bias U(±1/√in).
pub fn init_linear<B: Backend>(inputs: usize, outputs: usize, bias: bool, device: &B::Device) -> LinearModule<B> {
    let bound = init::fan_in_bound(inputs);
    LinearModule {
        weight: Param::from_tensor(init::uniform([outputs, inputs], bound, device)),
        bias: bias.then(|| Param::from_tensor(init::uniform([outputs], bound, device))),
    }
}

impl Linear {
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> LinearModule<B> {
        init_linear(input.features() as usize, self.out as usize, self.bias, device)
    }
}

impl<B: Backend> LinearModule<B> {
    /// [batch, in] → [batch, out]: x·Wᵀ + b.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let weight = as_dtype_of(self.weight.val(), &x);
        let y = x.matmul(weight.transpose());
        match &self.bias {
            Some(bias) => {
                let bias = as_dtype_of(bias.val(), &y).unsqueeze_dim(0);
                y + bias
            }
            None => y,
        }
    }

    /// [batch, tokens, in] → [batch, tokens, out], the same map on every token.
    pub fn forward_tokens(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, d] = x.dims();
        let y = self.forward(x.reshape([b * n, d]));
        let out = y.dims()[1];
        y.reshape([b, n, out])
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::Graph;

impl Linear {
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape, path: &str) -> String {
        let weight = g.weight(path, "weight");
        let bias = self.bias.then(|| g.weight(path, "bias"));
        g.linear(x, input, &weight, bias.as_deref())
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, int, text};

impl Linear {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let mut args = vec![int("in_features", input.features()), int("out_features", self.out)];
        if !self.bias {
            args.push(text("bias=False"));
        }
        TorchOp::module(torch::call("nn.Linear", args))
    }
}
