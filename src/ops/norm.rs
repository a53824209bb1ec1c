//! Normalisation: batch norm (images, vectors) and layer norm (tokens, vectors).

use super::*;

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "batchnorm",
        summary: "batch normalisation over channels: batchnorm(eps: 1e-5, momentum: 0.1)",
        args: &[arg("eps", Ty::Float, Default::Float(1e-5)), arg("momentum", Ty::Float, Default::Float(0.1))],
        build: |a| {
            let eps = a.float("eps");
            if eps <= 0.0 {
                return Err(ArgError::new("eps", format!("`eps` must be positive, but it is {eps}")));
            }
            let momentum = a.float("momentum");
            if !(0.0..=1.0).contains(&momentum) {
                return Err(ArgError::new("momentum", format!("`momentum` must be in [0, 1], but it is {momentum}")));
            }
            Ok(Op::BatchNorm(BatchNorm { eps, momentum }))
        },
    },
    OpSpec {
        name: "layernorm",
        summary: "layer normalisation over the last dimension: layernorm(eps: 1e-5, affine: true)",
        args: &[arg("eps", Ty::Float, Default::Float(1e-5)), arg("affine", Ty::Bool, Default::Bool(true))],
        build: |a| {
            let eps = a.float("eps");
            if eps <= 0.0 {
                return Err(ArgError::new("eps", format!("`eps` must be positive, but it is {eps}")));
            }
            Ok(Op::LayerNorm(LayerNorm { eps, affine: a.bool("affine") }))
        },
    },
];

/// `nn.BatchNorm2d` on images, `nn.BatchNorm1d` on vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub eps: f64,
    pub momentum: f64,
}

impl OpRule for BatchNorm {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        match input {
            Shape::Tokens { .. } => {
                Err(ShapeError::wrong_kind("batchnorm", "image", input).help("normalise tokens with `layernorm`"))
            }
            _ => Ok(*input),
        }
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        let c = input.features();
        vec![
            param("weight", vec![c]),
            param("bias", vec![c]),
            buffer("running_mean", vec![c]),
            buffer("running_var", vec![c]),
            buffer("num_batches_tracked", vec![]),
        ]
    }

    /// Not in core. fvcore (eval mode, affine): 2 per element. full: 2 per element
    /// (the folded scale-and-shift of inference).
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        let n = numel(input) * 2;
        Cost { core: 0, fvcore: n, full: n }
    }
}

/// `nn.LayerNorm(d)` over the last dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    pub eps: f64,
    pub affine: bool,
}

impl OpRule for LayerNorm {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        match input {
            Shape::Image { .. } => {
                Err(ShapeError::wrong_kind("layernorm", "tokens", input).help("normalise images with `batchnorm`"))
            }
            _ => Ok(*input),
        }
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        if !self.affine {
            return Vec::new();
        }
        let d = input.features();
        vec![param("weight", vec![d]), param("bias", vec![d])]
    }

    /// Not in core. fvcore and full: 5 per element with affine (mean, variance,
    /// normalise, scale, shift), 4 without.
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        let n = numel(input) * if self.affine { 5 } else { 4 };
        Cost { core: 0, fvcore: n, full: n }
    }
}
