//! Normalisation: batch norm (images, vectors) and layer norm (tokens, vectors).

use super::*;

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "batchnorm",
        summary: "batch normalisation over channels: batchnorm(eps: 1e-5, momentum: 0.1)",
        args: &[arg("eps", Ty::Float, ArgDefault::Float(1e-5)), arg("momentum", Ty::Float, ArgDefault::Float(0.1))],
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
        args: &[arg("eps", Ty::Float, ArgDefault::Float(1e-5)), arg("affine", Ty::Bool, ArgDefault::Bool(true))],
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

// ---- Lowering -------------------------------------------------------------------

use super::kernels::Tail;
use crate::tensor::precision::{in_f32, widened};
use burn::module::{Module, Param, RunningState};
use burn::prelude::{Backend, Tensor};

/// Batch norm with PyTorch's semantics: normalise with the biased batch variance while
/// training, update the running variance with the unbiased one (Burn's own BatchNorm
/// uses the biased one, so eval logits would drift from PyTorch's after training).
#[derive(Module, Debug)]
pub struct BatchNormModule<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub running_mean: RunningState<Tensor<B, 1>>,
    pub running_var: RunningState<Tensor<B, 1>>,
    pub eps: f64,
    pub momentum: f64,
    /// Set by `--freeze`: eval mode even while training (running statistics used and
    /// kept), as a fine-tuned backbone's batch norms are.
    pub frozen: bool,
}

impl BatchNorm {
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> BatchNormModule<B> {
        let c = input.features() as usize;
        BatchNormModule {
            weight: Param::from_tensor(Tensor::ones([c], device)),
            bias: Param::from_tensor(Tensor::zeros([c], device)),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            eps: self.eps,
            momentum: self.momentum,
            frozen: false,
        }
    }
}

impl<B: Backend> BatchNormModule<B> {
    /// Eval mode as a per-channel affine map `x * scale + shift`, from the running
    /// statistics: what inference runs, and what folding puts into a convolution.
    pub fn eval_affine(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let device = self.weight.device();
        let mean = self.running_mean.value().to_device(&device);
        let var = self.running_var.value().to_device(&device);
        let scale = self.weight.val() / var.add_scalar(self.eps).sqrt();
        let shift = self.bias.val() - mean * scale.clone();
        (scale, shift)
    }

    /// Over [batch, channels, ...]: training statistics on autodiff backends (the
    /// training ones) unless frozen, running statistics otherwise. Always computed in f32, returned
    /// in the input's precision.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        in_f32(x, |x| self.forward_f32(x))
    }

    fn forward_f32<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let channels = dims[1];
        let mut per_channel = [1usize; D];
        per_channel[1] = channels;
        if self.frozen || !B::ad_enabled(&x.device()) {
            let (scale, shift) = self.eval_affine();
            return x * scale.reshape(per_channel) + shift.reshape(per_channel);
        }
        // As [batch, channels, spatial]: each channel's values are contiguous planes.
        let (batch, spatial) = (dims[0], dims[2..].iter().product::<usize>());
        let x = x.reshape([batch, channels, spatial]);
        let (gamma, beta) = (self.weight.val(), self.bias.val());
        let (y, mean, var) = match super::kernels::batch_norm::train(&x, &gamma, &beta, self.eps, Tail::none()) {
            Some(fused) => fused,
            None => {
                let count = batch * spatial;
                // Both reductions along contiguous memory (no transposed copy); the
                // normalisation is two broadcast ops.
                let mean = x.clone().sum_dim(2).sum_dim(0).div_scalar(count as f64);
                let centered = x - mean.clone();
                let var = centered.clone().square().sum_dim(2).sum_dim(0).div_scalar(count as f64);
                let scale = gamma.reshape([1, channels, 1]) / var.clone().add_scalar(self.eps).sqrt();
                let y = centered * scale + beta.reshape([1, channels, 1]);
                (y, mean.reshape([channels]), var.reshape([channels]))
            }
        };
        self.update_running(mean, var, batch * spatial);
        y.reshape(dims)
    }

    /// `relu(bn(x) + residual)` (each part optional) in one op on archc's kernels, in
    /// training mode: a fused chain (`lower/fuse.rs`). `None` where the kernels do not
    /// apply (another backend, eval mode, a precision other than f32).
    pub fn forward_fused(&self, x: &Tensor<B, 4>, residual: Option<&Tensor<B, 4>>, relu: bool) -> Option<Tensor<B, 4>> {
        if self.frozen || !B::ad_enabled(&x.device()) {
            return None;
        }
        let dims = x.dims();
        let (batch, channels, spatial) = (dims[0], dims[1], dims[2] * dims[3]);
        let as_planes = |t: &Tensor<B, 4>| t.clone().reshape([batch, channels, spatial]);
        let residual = residual.map(as_planes);
        let tail = Tail { residual: residual.as_ref(), relu };
        let (gamma, beta) = (self.weight.val(), self.bias.val());
        let (y, mean, var) = super::kernels::batch_norm::train(&as_planes(x), &gamma, &beta, self.eps, tail)?;
        self.update_running(mean, var, batch * spatial);
        Some(y.reshape(dims))
    }

    /// The running statistics after a training batch of `count` values per channel:
    /// PyTorch's update, with the unbiased variance.
    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>, count: usize) {
        let unbiased = if count > 1 { count as f64 / (count - 1) as f64 } else { 1.0 };
        let m = self.momentum;
        let device = mean.device();
        let running_mean = self.running_mean.value_sync().to_device(&device);
        let running_var = self.running_var.value_sync().to_device(&device);
        self.running_mean.update(running_mean.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m));
        self.running_var.update(running_var.mul_scalar(1.0 - m) + var.detach().mul_scalar(m * unbiased));
    }
}

/// `nn.LayerNorm(d)` over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNormModule<B: Backend> {
    pub weight: Option<Param<Tensor<B, 1>>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> LayerNormModule<B> {
        let d = input.features() as usize;
        LayerNormModule {
            weight: self.affine.then(|| Param::from_tensor(Tensor::ones([d], device))),
            bias: self.affine.then(|| Param::from_tensor(Tensor::zeros([d], device))),
            eps: self.eps,
        }
    }
}

impl<B: Backend> LayerNormModule<B> {
    /// Computed in f32 and returned in f32, as autocast runs it.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let x = widened(x);
        let last = D - 1;
        let mean = x.clone().mean_dim(last);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(last);
        let mut y = centered / var.add_scalar(self.eps).sqrt();
        let mut shape = [1usize; D];
        shape[last] = y.dims()[last];
        if let Some(weight) = &self.weight {
            y = y * weight.val().reshape(shape);
        }
        if let Some(bias) = &self.bias {
            y = y + bias.val().reshape(shape);
        }
        y
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph};

impl BatchNorm {
    /// Eval mode: the running statistics.
    pub fn onnx(&self, g: &mut Graph, x: &str, path: &str) -> String {
        let inputs = ["weight", "bias", "running_mean", "running_var"].map(|field| g.weight(path, field));
        let [scale, bias, mean, var] = &inputs;
        g.node("BatchNormalization", &[x, scale, bias, mean, var], vec![("epsilon", Attribute::Float(self.eps as f32))])
    }
}

impl LayerNorm {
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape, path: &str) -> String {
        let d = input.features() as i64;
        let (scale, bias) = match self.affine {
            true => (g.weight(path, "weight"), g.weight(path, "bias")),
            false => (g.floats(&[d], vec![1.0; d as usize]), g.floats(&[d], vec![0.0; d as usize])),
        };
        let attributes = vec![("axis", Attribute::Int(-1)), ("epsilon", Attribute::Float(self.eps as f32))];
        g.node("LayerNormalization", &[x, &scale, &bias], attributes)
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, int, text};

impl BatchNorm {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let mut args = vec![int("num_features", input.features())];
        if self.eps != 1e-5 {
            args.push(text(format!("eps={}", torch::float(self.eps))));
        }
        if self.momentum != 0.1 {
            args.push(text(format!("momentum={}", torch::float(self.momentum))));
        }
        let func = if matches!(input, Shape::Image { .. }) { "nn.BatchNorm2d" } else { "nn.BatchNorm1d" };
        TorchOp::module(torch::call(func, args))
    }
}

impl LayerNorm {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let mut args = vec![int("normalized_shape", input.features())];
        if self.eps != 1e-5 {
            args.push(text(format!("eps={}", torch::float(self.eps))));
        }
        if !self.affine {
            args.push(text("elementwise_affine=False"));
        }
        TorchOp::module(torch::call("nn.LayerNorm", args))
    }
}
