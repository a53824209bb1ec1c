//! Elementwise activations and softmax. Shape-preserving; cost only under `full`.

use super::*;

const GELU_APPROX: &[&str] = &["none", "tanh"];

pub const SPECS: &[OpSpec] = &[
    OpSpec { name: "relu", summary: "max(x, 0)", args: &[], build: |_| Ok(act(ActKind::Relu)) },
    OpSpec {
        name: "gelu",
        summary: "GELU, exact (erf) or approximate: gelu(approximate: none|tanh)",
        args: &[arg("approximate", Ty::Choice(GELU_APPROX), Default::Choice("none"))],
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
