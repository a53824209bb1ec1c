//! Multi-head self-attention over tokens, laid out as `nn.MultiheadAttention`
//! (packed `in_proj_weight`, `out_proj`), which is what torchvision's ViT uses.

use super::*;
use crate::diagnostics::Code;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "attention",
    summary: "multi-head self-attention: attention(heads: h, bias: true, dropout: 0.0); tokens(N, D) → tokens(N, D)",
    args: &[
        arg("heads", Ty::Int, ArgDefault::Required),
        arg("bias", Ty::Bool, ArgDefault::Bool(true)),
        arg("dropout", Ty::Float, ArgDefault::Float(0.0)),
    ],
    build: |a| {
        let dropout = a.float("dropout");
        if !(0.0..=1.0).contains(&dropout) {
            return Err(ArgError::new(
                "dropout",
                format!("dropout probability must be in [0, 1], but it is {dropout}"),
            ));
        }
        Ok(Op::Attention(Attention { heads: a.at_least("heads", 1)?, bias: a.bool("bias"), dropout }))
    },
}];

#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub heads: u64,
    pub bias: bool,
    pub dropout: f64,
}

impl OpRule for Attention {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Shape::Tokens { d, .. } = *input else { return Err(ShapeError::wrong_kind("attention", "tokens", input)) };
        if d % self.heads != 0 {
            let divisors: Vec<String> = (1..=d.min(64)).filter(|h| d % h == 0).map(|h| h.to_string()).collect();
            return Err(ShapeError::new(
                Code::HeadsDontDivide,
                format!("{} heads do not divide the embedding width {d}", self.heads),
                format!("{d} / {} is not a whole number", self.heads),
            )
            .help(format!("use a number of heads that divides {d}: {}", divisors.join(", ")))
            .recover(Some(*input)));
        }
        Ok(*input)
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        let d = input.features();
        let mut tensors = vec![param("in_proj_weight", vec![3u64.saturating_mul(d), d])];
        if self.bias {
            tensors.push(param("in_proj_bias", vec![3u64.saturating_mul(d)]));
        }
        tensors.push(param("out_proj.weight", vec![d, d]));
        if self.bias {
            tensors.push(param("out_proj.bias", vec![d]));
        }
        tensors
    }

    /// core: q/k/v and output projections (4·N·D²) plus QKᵀ and AV (2·N²·D).
    /// fvcore: the projections only (it has no handle for scaled_dot_product_attention).
    /// full: core, plus bias adds (4·N·D), score scaling (H·N²) and softmax (3·H·N²).
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        let Shape::Tokens { n, d } = *input else { return Cost::default() };
        let projections = product(&[n, d, d]).saturating_mul(4);
        let matmuls = product(&[n, n, d]).saturating_mul(2);
        let scores = product(&[self.heads, n, n]);
        let bias = if self.bias { product(&[n, d]).saturating_mul(4) } else { 0 };
        Cost {
            core: projections.saturating_add(matmuls),
            fvcore: projections,
            full: projections.saturating_add(matmuls).saturating_add(bias).saturating_add(scores.saturating_mul(4)),
        }
    }

    fn lints(&self, _input: &Shape) -> Vec<LintHit> {
        if self.dropout < 1.0 {
            return Vec::new();
        }
        vec![LintHit {
            code: Code::DropoutOne,
            message: "attention dropout with p = 1 drops every attention weight while training".into(),
            label: "drops everything".into(),
            help: Some("use a probability below 1".into()),
        }]
    }
}

// ---- Lowering -------------------------------------------------------------------

use super::linear::{LinearModule, init_linear};
use crate::tensor::init;
use crate::tensor::precision::{as_dtype_of, in_f32};
use burn::module::{Module, Param};
use burn::nn::DropoutConfig;
use burn::prelude::{Backend, Tensor};
use burn::tensor::activation::softmax;

/// `nn.MultiheadAttention`'s tensors and computation (batch first): packed q/k/v
/// projection, scaled dot-product per head, dropout on the attention weights.
#[derive(Module, Debug)]
pub struct AttentionModule<B: Backend> {
    /// [3·D, D]: rows 0..D project queries, D..2D keys, 2D..3D values.
    pub in_proj_weight: Param<Tensor<B, 2>>,
    pub in_proj_bias: Option<Param<Tensor<B, 1>>>,
    pub out_proj: LinearModule<B>,
    pub heads: usize,
    pub dropout: f64,
}

impl Attention {
    /// PyTorch's `_reset_parameters`: xavier_uniform in-projection, zero biases.
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> AttentionModule<B> {
        let d = input.features() as usize;
        let mut out_proj = init_linear(d, d, self.bias, device);
        if self.bias {
            out_proj.bias = Some(Param::from_tensor(Tensor::zeros([d], device)));
        }
        AttentionModule {
            in_proj_weight: Param::from_tensor(init::uniform([3 * d, d], init::xavier_bound(d, 3 * d), device)),
            in_proj_bias: self.bias.then(|| Param::from_tensor(Tensor::zeros([3 * d], device))),
            out_proj,
            heads: self.heads as usize,
            dropout: self.dropout,
        }
    }
}

impl<B: Backend> AttentionModule<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, d] = x.dims();
        let (mut weights, v) = self.attend(x);
        if B::ad_enabled(&weights.device()) && self.dropout > 0.0 {
            weights = DropoutConfig::new(self.dropout).init().forward(weights);
        }
        let context = weights.matmul(v).swap_dims(1, 2).reshape([b * n, d]);
        self.out_proj.forward(context).reshape([b, n, d])
    }

    /// Each head's attention weights, softmax(QKᵀ/√d): [batch, heads, queries, keys].
    /// Row 0 of a ViT is what the class token attends to.
    pub fn weights(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        self.attend(x).0
    }

    /// The attention weights (before dropout) and the values, both per head.
    fn attend(&self, x: Tensor<B, 3>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, n, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let weight = as_dtype_of(self.in_proj_weight.val(), &x);
        let mut qkv = x.reshape([b * n, d]).matmul(weight.transpose());
        if let Some(bias) = &self.in_proj_bias {
            let bias = as_dtype_of(bias.val(), &qkv).unsqueeze_dim(0);
            qkv = qkv + bias;
        }
        let qkv = qkv.reshape([b, n, 3 * d]);
        let heads = |part: usize| {
            qkv.clone().slice([0..b, 0..n, part * d..(part + 1) * d]).reshape([b, n, h, dh]).swap_dims(1, 2)
        };
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt());
        // In f32, as autocast does: the exponentials' sum needs the range.
        (in_f32(scores, |s| softmax(s, 3)), v)
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph};

impl Attention {
    /// `nn.MultiheadAttention` in eval mode: the packed projection, split into heads,
    /// softmax(QKᵀ/√d_h)·V, heads joined, the output projection.
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape, path: &str) -> String {
        let d = input.features() as i64;
        let (h, dh) = (self.heads as i64, d / self.heads as i64);
        let weight = g.weight(path, "in_proj_weight");
        let bias = self.bias.then(|| g.weight(path, "in_proj_bias"));
        let qkv = g.linear(x, input, &weight, bias.as_deref());
        let sizes = g.ints(&[d, d, d]);
        let split = g.node("Split", &[&qkv, &sizes], vec![("axis", Attribute::Int(2))]);
        // Split has three outputs: rename the node's one output into three.
        let parts = ["q", "k", "v"].map(|part| format!("{split}_{part}"));
        if let Some(node) = g.nodes.last_mut() {
            node.outputs = parts.to_vec();
        }
        let heads = |g: &mut Graph, part: &str, perm: &[i64]| {
            let split = g.reshape(part, &[0, 0, h, dh]);
            g.transpose(&split, perm)
        };
        let q = heads(g, &parts[0], &[0, 2, 1, 3]);
        let k = heads(g, &parts[1], &[0, 2, 3, 1]);
        let v = heads(g, &parts[2], &[0, 2, 1, 3]);
        let scores = g.node("MatMul", &[&q, &k], Vec::new());
        let root = g.scalar((dh as f64).sqrt() as f32);
        let scaled = g.node("Div", &[&scores, &root], Vec::new());
        let weights = g.node("Softmax", &[&scaled], vec![("axis", Attribute::Int(-1))]);
        let context = g.node("MatMul", &[&weights, &v], Vec::new());
        let joined = g.transpose(&context, &[0, 2, 1, 3]);
        let joined = g.reshape(&joined, &[0, 0, d]);
        let out_weight = g.weight(path, "out_proj.weight");
        let out_bias = self.bias.then(|| g.weight(path, "out_proj.bias"));
        g.linear(&joined, input, &out_weight, out_bias.as_deref())
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, int, text};

impl Attention {
    /// `nn.MultiheadAttention` over a batch of token sequences (batch first).
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let mut args = vec![int("embed_dim", input.features()), int("num_heads", self.heads)];
        if self.dropout != 0.0 {
            args.push(text(format!("dropout={}", torch::float(self.dropout))));
        }
        if !self.bias {
            args.push(text("bias=False"));
        }
        args.push(text("batch_first=True"));
        TorchOp {
            module: Some(torch::call("nn.MultiheadAttention", args)),
            apply: "{m}({x}, {x}, {x}, need_weights=False)[0]",
            function: None,
        }
    }
}
