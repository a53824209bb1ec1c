//! Fully connected layer (`nn.Linear`), on vectors or on every token.

use super::*;
use crate::diagnostics::Code;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "linear",
    summary: "fully connected layer: linear(out, bias: true); on vectors, or on each token",
    args: &[
        arg("out", Ty::Int, Default::Required),
        arg("bias", Ty::Bool, Default::Bool(true)),
        arg("in_features", Ty::Int, Default::Absent),
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
            return Err(ShapeError::wrong_kind("linear", "vector", input));
        }
        let d = input.features();
        if let Some(declared) = self.in_features
            && declared != d
        {
            return Err(ShapeError::new(
                Code::ChannelMismatch,
                format!("`linear` declares {declared} input features, but its input has {d}"),
                format!("expects {declared} features, gets {input}"),
            )
            .help(format!("write `in_features: {d}` or fix the layer that produces {d} features")));
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
