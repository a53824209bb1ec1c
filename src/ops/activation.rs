//! Elementwise activations and softmax. Shape-preserving; cost only under `full`.

use super::*;

const GELU_APPROX: &[&str] = &["none", "tanh"];

pub const SPECS: &[OpSpec] = &[
    OpSpec { name: "relu", summary: "max(x, 0)", args: &[], build: |_| Ok(act(ActKind::Relu)) },
    OpSpec {
        name: "gelu",
        summary: "GELU, exact (erf) or approximate: gelu(approximate: none|tanh)",
        args: &[arg("approximate", Ty::Choice(GELU_APPROX), ArgDefault::Choice("none"))],
        build: |a| Ok(act(if a.choice("approximate") == "tanh" { ActKind::GeluTanh } else { ActKind::Gelu })),
    },
    OpSpec { name: "silu", summary: "x·sigmoid(x)", args: &[], build: |_| Ok(act(ActKind::Silu)) },
    OpSpec { name: "sigmoid", summary: "1 / (1 + e^−x)", args: &[], build: |_| Ok(act(ActKind::Sigmoid)) },
    OpSpec { name: "tanh", summary: "hyperbolic tangent", args: &[], build: |_| Ok(act(ActKind::Tanh)) },
    OpSpec {
        name: "softmax",
        summary: "softmax over the feature dimension (channels, or the last dimension)",
        args: &[],
        build: |_| Ok(act(ActKind::Softmax)),
    },
];

fn act(kind: ActKind) -> Op {
    Op::Activation(Activation { kind })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    Relu,
    Gelu,
    GeluTanh,
    Silu,
    Sigmoid,
    Tanh,
    Softmax,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Activation {
    pub kind: ActKind,
}

impl OpRule for Activation {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(*input)
    }

    /// full: one op per element (softmax: three — exponent, sum, divide).
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        let per_element = if self.kind == ActKind::Softmax { 3 } else { 1 };
        Cost::elementwise(numel(input).saturating_mul(per_element))
    }
}

// ---- Lowering -------------------------------------------------------------------

use crate::map_value;
use crate::tensor::Value;
use crate::tensor::precision::widened;
use burn::prelude::{Backend, Tensor};
use burn::tensor::activation;

/// GELU with the exact erf form; written out so that every backend differentiates
/// the same function (NdArray's own GELU backward uses the tanh approximation).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let cdf = x.clone().div_scalar(std::f64::consts::SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
    x * cdf
}

/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), PyTorch's `approximate='tanh'`.
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let inner =
        (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715)).mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    x.clone() * inner.tanh().add_scalar(1.0).mul_scalar(0.5)
}

impl Activation {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        match self.kind {
            ActKind::Relu => map_value!(x, |t| activation::relu(t)),
            ActKind::Gelu => map_value!(x, |t| gelu(t)),
            ActKind::GeluTanh => map_value!(x, |t| gelu_tanh(t)),
            ActKind::Silu => map_value!(x, |t| activation::silu(t)),
            ActKind::Sigmoid => map_value!(x, |t| activation::sigmoid(t)),
            ActKind::Tanh => map_value!(x, |t| t.tanh()),
            // Over channels for images, over the last dimension otherwise; in f32 and
            // returned in f32, as autocast runs it.
            ActKind::Softmax => match x {
                Value::Image(t) => Value::Image(activation::softmax(widened(t), 1)),
                Value::Tokens(t) => Value::Tokens(activation::softmax(widened(t), 2)),
                Value::Vector(t) => Value::Vector(activation::softmax(widened(t), 1)),
            },
        }
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph};

impl Activation {
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape) -> String {
        match self.kind {
            ActKind::Relu => g.node("Relu", &[x], Vec::new()),
            ActKind::Sigmoid => g.node("Sigmoid", &[x], Vec::new()),
            ActKind::Tanh => g.node("Tanh", &[x], Vec::new()),
            ActKind::Silu => {
                let gate = g.node("Sigmoid", &[x], Vec::new());
                g.node("Mul", &[x, &gate], Vec::new())
            }
            ActKind::Gelu => g.gelu(x, false),
            ActKind::GeluTanh => g.gelu(x, true),
            ActKind::Softmax => {
                let axis = if matches!(input, Shape::Image { .. }) { 1 } else { -1 };
                g.node("Softmax", &[x], vec![("axis", Attribute::Int(axis))])
            }
        }
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, text};

impl Activation {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let (module, args, function): (&'static str, Vec<torch::Arg>, String) = match self.kind {
            ActKind::Relu => ("nn.ReLU", vec![], "F.relu({x})".into()),
            ActKind::Gelu => ("nn.GELU", vec![], "F.gelu({x})".into()),
            ActKind::GeluTanh => {
                ("nn.GELU", vec![text("approximate=\"tanh\"")], "F.gelu({x}, approximate=\"tanh\")".into())
            }
            ActKind::Silu => ("nn.SiLU", vec![], "F.silu({x})".into()),
            ActKind::Sigmoid => ("nn.Sigmoid", vec![], "torch.sigmoid({x})".into()),
            ActKind::Tanh => ("nn.Tanh", vec![], "torch.tanh({x})".into()),
            ActKind::Softmax => {
                let dim = if matches!(input, Shape::Image { .. }) { 1 } else { -1 };
                ("nn.Softmax", vec![text(format!("dim={dim}"))], format!("{{x}}.softmax(dim={dim})"))
            }
        };
        TorchOp::both(torch::call(module, args), function)
    }
}
