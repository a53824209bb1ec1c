//! Turning images into tokens and back to vectors: patchify, class token, position
//! embeddings, and the read-outs (select a token, average the tokens).

use super::*;
use crate::diagnostics::Code;

const POSITION_KINDS: &[&str] = &["learned", "sinusoidal"];

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "patchify",
        summary: "patch embedding: patchify(dim, patch: p, bias: true); image(C, H, W) → tokens(H/p · W/p, dim)",
        args: &[
            arg("dim", Ty::Int, ArgDefault::Required),
            arg("patch", Ty::Int, ArgDefault::Required),
            arg("bias", Ty::Bool, ArgDefault::Bool(true)),
        ],
        build: |a| {
            Ok(Op::Patchify(Patchify {
                dim: a.at_least("dim", 1)?,
                patch: a.at_least("patch", 1)?,
                bias: a.bool("bias"),
            }))
        },
    },
    OpSpec {
        name: "class_token",
        summary: "prepends a learned class token: tokens(N, D) → tokens(N + 1, D)",
        args: &[],
        build: |_| Ok(Op::ClassToken(ClassToken)),
    },
    OpSpec {
        name: "pos_embedding",
        summary: "adds position embeddings: pos_embedding(kind: learned|sinusoidal)",
        args: &[arg("kind", Ty::Choice(POSITION_KINDS), ArgDefault::Choice("learned"))],
        build: |a| Ok(Op::PosEmbedding(PosEmbedding { learned: a.choice("kind") == "learned" })),
    },
    OpSpec {
        name: "select_token",
        summary: "picks one token: select_token(index: 0); tokens(N, D) → vector(D)",
        args: &[arg("index", Ty::Int, ArgDefault::Int(0))],
        build: |a| Ok(Op::SelectToken(SelectToken { index: a.at_least("index", 0)? })),
    },
    OpSpec {
        name: "mean_tokens",
        summary: "averages the tokens: tokens(N, D) → vector(D)",
        args: &[],
        build: |_| Ok(Op::MeanTokens(MeanTokens)),
    },
];

fn tokens_input(op: &str, input: &Shape) -> Result<(u64, u64), ShapeError> {
    match *input {
        Shape::Tokens { n, d } => Ok((n, d)),
        _ => Err(ShapeError::wrong_kind(op, "tokens", input)),
    }
}

/// A convolution with kernel = stride = patch, flattened to tokens (torchvision's
/// `conv_proj` followed by reshape and permute).
#[derive(Clone, Debug, PartialEq)]
pub struct Patchify {
    pub dim: u64,
    pub patch: u64,
    pub bias: bool,
}

impl OpRule for Patchify {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Shape::Image { h, w, .. } = *input else { return Err(ShapeError::wrong_kind("patchify", "image", input)) };
        let p = self.patch;
        if h < p || w < p {
            return Err(ShapeError::new(
                Code::EmptyFeatureMap,
                format!("a {p}×{p} patch is larger than the {h}×{w} image: no tokens are left"),
                format!("{h}×{w} holds no {p}×{p} patch"),
            )
            .help("use a smaller patch or a larger input"));
        }
        if h % p != 0 || w % p != 0 {
            let sizes: Vec<String> =
                (1..=h.min(w).min(64)).filter(|q| h % q == 0 && w % q == 0).map(|q| q.to_string()).collect();
            return Err(ShapeError::new(
                Code::PatchDontDivide,
                format!("patch size {p} does not divide the {h}×{w} image"),
                format!("{h}×{w} is not a whole number of {p}×{p} patches"),
            )
            .help(format!("use a patch size that divides both sides ({}), or change `--input`", sizes.join(", ")))
            // A strided convolution drops the remainder: what PyTorch would give.
            .recover(Some(Shape::Tokens { n: (h / p) * (w / p), d: self.dim })));
        }
        Ok(Shape::Tokens { n: (h / p) * (w / p), d: self.dim })
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        let mut tensors = vec![param("weight", vec![self.dim, input.features(), self.patch, self.patch])];
        if self.bias {
            tensors.push(param("bias", vec![self.dim]));
        }
        tensors
    }

    /// A convolution: tokens × dim × C × p² MACs (counted by all conventions).
    fn cost(&self, input: &Shape, output: &Shape) -> Cost {
        let macs = numel(output).saturating_mul(product(&[input.features(), self.patch, self.patch]));
        Cost::matmul(macs).plus(Cost::elementwise(if self.bias { numel(output) } else { 0 }))
    }
}

/// torchvision's `class_token` parameter, concatenated before the tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassToken;

impl OpRule for ClassToken {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (n, d) = tokens_input("class_token", input)?;
        Ok(Shape::Tokens { n: n.saturating_add(1), d })
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        vec![param("", vec![1, 1, input.features()])]
    }

    /// A concatenation: no arithmetic.
    fn cost(&self, _input: &Shape, _output: &Shape) -> Cost {
        Cost::default()
    }
}

/// Learned (`pos_embedding` parameter, torchvision's name) or fixed sinusoidal
/// position embeddings, added to the tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct PosEmbedding {
    pub learned: bool,
}

impl OpRule for PosEmbedding {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (_, d) = tokens_input("pos_embedding", input)?;
        if !self.learned && d % 2 != 0 {
            return Err(ShapeError::new(
                Code::InvalidValue,
                format!("sinusoidal position embeddings need an even width, but the tokens are {d} wide"),
                "odd width".to_string(),
            )
            .help("use `pos_embedding(kind: learned)` or an even width")
            .recover(Some(*input)));
        }
        Ok(*input)
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        match (*input, self.learned) {
            (Shape::Tokens { n, d }, true) => vec![param("", vec![1, n, d])],
            _ => Vec::new(),
        }
    }

    /// full: one addition per element.
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        Cost::elementwise(numel(input))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SelectToken {
    pub index: u64,
}

impl OpRule for SelectToken {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (n, d) = tokens_input("select_token", input)?;
        if self.index >= n {
            return Err(ShapeError::new(
                Code::InvalidValue,
                format!("token {} does not exist: there are {n} tokens", self.index),
                format!("index {} of {n} tokens", self.index),
            )
            .recover(Some(Shape::Vector { d })));
        }
        Ok(Shape::Vector { d })
    }

    fn cost(&self, _input: &Shape, _output: &Shape) -> Cost {
        Cost::default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MeanTokens;

impl OpRule for MeanTokens {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (_, d) = tokens_input("mean_tokens", input)?;
        Ok(Shape::Vector { d })
    }

    /// full: one addition per element.
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        Cost::elementwise(numel(input))
    }
}

// ---- Lowering -------------------------------------------------------------------

use super::conv::{ConvModule, Window, init_conv};
use crate::tensor::precision::promoted;
use crate::tensor::{Value, init};
use burn::module::{Module, Param};
use burn::prelude::{Backend, Tensor};

impl Patchify {
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> ConvModule<B> {
        let window = Window { kernel: self.patch, stride: self.patch, padding: 0, dilation: 1, ceil: false };
        init_conv(input.features() as usize, self.dim as usize, &window, 1, self.bias, device)
    }
}

/// [batch, D, h, w] → [batch, h·w, D], as torchvision's `_process_input`.
pub fn to_tokens<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, d, h, w] = x.dims();
    x.reshape([b, d, h * w]).swap_dims(1, 2)
}

/// One learned tensor named by the layer's path itself: torchvision's `class_token`
/// ([1, 1, D]) and `pos_embedding` ([1, N, D]).
#[derive(Module, Debug)]
pub struct EmbeddingModule<B: Backend> {
    pub value: Param<Tensor<B, 3>>,
}

impl ClassToken {
    /// torchvision starts the class token at zero.
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> EmbeddingModule<B> {
        EmbeddingModule { value: Param::from_tensor(Tensor::zeros([1, 1, input.features() as usize], device)) }
    }
}

impl<B: Backend> EmbeddingModule<B> {
    pub fn prepend(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, _, d] = x.dims();
        let (token, x) = promoted(self.value.val().expand([b, 1, d]), x);
        Tensor::cat(vec![token, x], 1)
    }

    pub fn add(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (x, value) = promoted(x, self.value.val());
        x + value
    }
}

impl PosEmbedding {
    /// torchvision: normal(std = 0.02).
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> EmbeddingModule<B> {
        let Shape::Tokens { n, d } = *input else { unreachable!("checked IR: positions are added to tokens") };
        EmbeddingModule { value: Param::from_tensor(init::normal([1, n as usize, d as usize], 0.02, device)) }
    }

    /// The fixed table of Vaswani et al.: sin at even features, cos at odd ones,
    /// angle = position / 10000^(2i / D).
    pub fn sinusoidal(n: usize, d: usize) -> Vec<f32> {
        let mut table = vec![0f32; n * d];
        for pos in 0..n {
            for i in 0..d / 2 {
                let angle = pos as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
                table[pos * d + 2 * i] = angle.sin() as f32;
                table[pos * d + 2 * i + 1] = angle.cos() as f32;
            }
        }
        table
    }

    pub fn apply_fixed<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let x = x.tokens();
        let [_, n, d] = x.dims();
        let table = Tensor::<B, 1>::from_floats(Self::sinusoidal(n, d).as_slice(), &x.device()).reshape([1, n, d]);
        let (x, table) = promoted(x, table);
        Value::Tokens(x + table)
    }
}

impl SelectToken {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let x = x.tokens();
        let [b, _, d] = x.dims();
        let i = self.index as usize;
        Value::Vector(x.slice([0..b, i..i + 1, 0..d]).reshape([b, d]))
    }
}

impl MeanTokens {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let x = x.tokens();
        let [b, _, d] = x.dims();
        Value::Vector(x.mean_dim(1).reshape([b, d]))
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph};

impl Patchify {
    /// The patch convolution, then [batch, D, h, w] → [batch, h·w, D].
    pub fn onnx(&self, g: &mut Graph, x: &str, path: &str) -> String {
        let window = Window { kernel: self.patch, stride: self.patch, padding: 0, dilation: 1, ceil: false };
        let weight = g.weight(path, "weight");
        let bias = self.bias.then(|| g.weight(path, "bias"));
        let y = super::conv::conv_node(g, x, &weight, bias.as_deref(), &window, 1);
        let flat = g.reshape(&y, &[0, self.dim as i64, -1]);
        g.transpose(&flat, &[0, 2, 1])
    }
}

impl ClassToken {
    /// The token expanded to the batch and put in front.
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape, path: &str) -> String {
        let token = g.weight(path, "");
        let shape = g.node("Shape", &[x], Vec::new());
        let first = g.ints(&[0]);
        let batch = g.node("Gather", &[&shape, &first], vec![("axis", Attribute::Int(0))]);
        let rest = g.ints(&[1, input.features() as i64]);
        let target = g.node("Concat", &[&batch, &rest], vec![("axis", Attribute::Int(0))]);
        let tokens = g.node("Expand", &[&token, &target], Vec::new());
        g.node("Concat", &[&tokens, x], vec![("axis", Attribute::Int(1))])
    }
}

impl PosEmbedding {
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape, path: &str) -> String {
        let table = match self.learned {
            true => g.weight(path, ""),
            false => {
                let Shape::Tokens { n, d } = *input else { unreachable!("checked IR: positions are added to tokens") };
                g.floats(&[1, n as i64, d as i64], Self::sinusoidal(n as usize, d as usize))
            }
        };
        g.node("Add", &[x, &table], Vec::new())
    }
}

impl SelectToken {
    pub fn onnx(&self, g: &mut Graph, x: &str) -> String {
        let index = g.int_scalar(self.index as i64);
        g.node("Gather", &[x, &index], vec![("axis", Attribute::Int(1))])
    }
}

impl MeanTokens {
    pub fn onnx(&self, g: &mut Graph, x: &str) -> String {
        g.reduce("ReduceMean", x, &[1], false)
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, int, keyword, text};

impl Patchify {
    /// torchvision's `conv_proj`, then [batch, D, h, w] → [batch, h·w, D].
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let mut args = vec![
            int("in_channels", input.features()),
            int("out_channels", self.dim),
            keyword("kernel_size", self.patch),
            keyword("stride", self.patch),
        ];
        if !self.bias {
            args.push(text("bias=False"));
        }
        TorchOp {
            module: Some(torch::call("nn.Conv2d", args)),
            apply: "{m}({x}).flatten(2).transpose(1, 2)",
            function: None,
        }
    }
}

impl ClassToken {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let zeros = torch::Call {
            func: "torch.zeros",
            args: vec![text("1"), text("1"), int("dim", input.features())],
            wrap: Some("nn.Parameter({})"),
        };
        TorchOp {
            module: Some(zeros),
            apply: "torch.cat([{m}.expand({x}.shape[0], -1, -1), {x}], dim=1)",
            function: None,
        }
    }
}

impl PosEmbedding {
    /// Learned: torchvision's parameter. Fixed: the sinusoidal table, computed in
    /// `forward` (it is not a weight, so not in the state dict).
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let Shape::Tokens { n, d } = *input else { unreachable!("checked IR: positions are added to tokens") };
        match self.learned {
            true => {
                let table = torch::Call {
                    func: "torch.empty",
                    args: vec![text("1"), int("tokens", n), int("dim", d)],
                    wrap: Some("nn.Parameter({}.normal_(std=0.02))"),
                };
                TorchOp { module: Some(table), apply: "{x} + {m}", function: None }
            }
            false => TorchOp::function("{x} + sinusoidal({x}.shape[1], {x}.shape[2]).to({x})"),
        }
    }
}

impl SelectToken {
    pub fn torch(&self) -> TorchOp {
        TorchOp::function(format!("{{x}}[:, {}]", self.index))
    }
}

impl MeanTokens {
    pub fn torch(&self) -> TorchOp {
        TorchOp::function("{x}.mean(1)")
    }
}
