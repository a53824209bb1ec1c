//! Primitive operations. Each family file states, side by side, an op's arguments, its
//! shape rule, its tensors (parameters and buffers, named as PyTorch names them) and its
//! cost under each counting convention. Adding a layer kind means adding one entry in
//! one family file and listing the family in `FAMILIES`.

pub mod activation;
pub mod attention;
pub mod conv;
pub(crate) mod kernels;
pub mod linear;
pub mod norm;
pub mod onnx;
pub mod pool;
pub mod reshape;
pub mod tokens;
pub mod torch;

use crate::diagnostics::Code;
use crate::tensor::Shape;
use std::fmt;

/// Argument types that primitives take.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Int,
    Float,
    Bool,
    /// One of a fixed set of names, written bare: `merge: sum`.
    Choice(&'static [&'static str]),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Int => write!(f, "int"),
            Ty::Float => write!(f, "float"),
            Ty::Bool => write!(f, "bool"),
            Ty::Choice(options) => write!(f, "one of {}", options.join(", ")),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum ArgDefault {
    Required,
    /// May be left out; the op then decides (e.g. pool stride = kernel).
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    Choice(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub ty: Ty,
    pub default: ArgDefault,
}

pub const fn arg(name: &'static str, ty: Ty, default: ArgDefault) -> ArgSpec {
    ArgSpec { name, ty, default }
}

/// The signature of a primitive and how to build it from checked arguments.
pub struct OpSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub args: &'static [ArgSpec],
    pub build: fn(&Args) -> Result<Op, ArgError>,
}

/// An argument value after type checking against its `ArgSpec`.
#[derive(Clone, Debug, PartialEq)]
pub enum OpArg {
    Int(i64),
    Float(f64),
    Bool(bool),
    Choice(String),
    Absent,
}

impl fmt::Display for OpArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpArg::Int(v) => write!(f, "{v}"),
            OpArg::Float(v) => write!(f, "{v:?}"),
            OpArg::Bool(v) => write!(f, "{v}"),
            OpArg::Choice(v) => write!(f, "{v}"),
            OpArg::Absent => write!(f, "none"),
        }
    }
}

/// Bound arguments of one op, in signature order.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub values: Vec<(&'static str, OpArg)>,
}

/// An argument whose value is out of range; the elaborator points at it.
#[derive(Debug)]
pub struct ArgError {
    pub arg: &'static str,
    pub message: String,
    pub help: Option<String>,
}

impl ArgError {
    pub fn new(arg: &'static str, message: impl Into<String>) -> ArgError {
        ArgError { arg, message: message.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> ArgError {
        self.help = Some(help.into());
        self
    }
}

impl Args {
    fn get(&self, name: &str) -> &OpArg {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v).unwrap_or(&OpArg::Absent)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            OpArg::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> f64 {
        match self.get(name) {
            OpArg::Float(v) => *v,
            OpArg::Int(v) => *v as f64,
            _ => 0.0,
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), OpArg::Bool(true))
    }

    pub fn choice(&self, name: &str) -> &str {
        match self.get(name) {
            OpArg::Choice(v) => v,
            _ => "",
        }
    }

    /// A required integer that must be at least `min`.
    pub fn at_least(&self, name: &'static str, min: i64) -> Result<u64, ArgError> {
        let value = self.int(name).unwrap_or(0);
        if value < min {
            let what = if min == 1 { "positive".to_string() } else { format!("at least {min}") };
            return Err(ArgError::new(name, format!("`{name}` must be {what}, but it is {value}")));
        }
        Ok(value as u64)
    }

    /// An optional integer (default `Absent`) that must be at least `min` when given.
    pub fn optional_at_least(&self, name: &'static str, min: i64) -> Result<Option<u64>, ArgError> {
        match self.int(name) {
            None => Ok(None),
            Some(_) => self.at_least(name, min).map(Some),
        }
    }

    /// The canonical text of the arguments, as the IR dump prints them.
    pub fn render(&self) -> String {
        self.values
            .iter()
            .filter(|(_, v)| *v != OpArg::Absent)
            .map(|(n, v)| format!("{n}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A mistake found by a shape rule: the facts, without a location (the elaborator adds it).
#[derive(Debug)]
pub struct ShapeError {
    pub code: Code,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    /// The shape the layer would give had its input fitted (a convolution declared for
    /// 64 channels still gives its `out` channels): checking goes on with it, so the
    /// next independent mistake is found in the same run. `None` when there is no
    /// honest guess; what follows is then not checked (and not blamed).
    pub recovered: Option<Shape>,
}

impl ShapeError {
    pub fn new(code: Code, message: impl Into<String>, label: impl Into<String>) -> ShapeError {
        ShapeError { code, message: message.into(), label: label.into(), help: None, recovered: None }
    }

    pub fn recover(mut self, shape: Option<Shape>) -> ShapeError {
        self.recovered = shape;
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> ShapeError {
        self.help = Some(help.into());
        self
    }

    /// The op needs another kind of value (image / tokens / vector).
    pub fn wrong_kind(op: &str, expected: &str, input: &Shape) -> ShapeError {
        let help = match (expected, input.kind()) {
            ("vector", "image") => "add `flatten` before it (or `global_avgpool` then `flatten`)".to_string(),
            ("vector", "tokens") => {
                "pick one token with `select_token(0)` or average them with `mean_tokens`".to_string()
            }
            ("tokens", "image") => "turn the image into tokens with `patchify(dim, patch: p)`".to_string(),
            (_, _) => format!("`{op}` needs {expected} input"),
        };
        ShapeError::new(
            Code::NeedsFlatten,
            format!("`{op}` expects {}, but its input is {input}", with_article(expected)),
            format!("this gets {input}"),
        )
        .help(help)
    }
}

/// The plural `s` for a count of things (`1 channel`, `3 channels`).
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn with_article(kind: &str) -> String {
    match kind {
        "image" => "an image".into(),
        "tokens" => "tokens".into(),
        "vector" => "a vector".into(),
        other => other.into(),
    }
}

/// A warning found by an op's own lint rule.
#[derive(Debug)]
pub struct LintHit {
    pub code: Code,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

/// A tensor an op owns. `suffix` is appended to the node's path (`conv1` + `weight`);
/// an empty suffix names the node itself (`class_token`), as PyTorch does for a bare
/// `nn.Parameter` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub suffix: &'static str,
    pub shape: Vec<u64>,
    /// Trainable parameter (counted) or buffer (running statistics; not counted).
    pub trainable: bool,
}

pub fn param(suffix: &'static str, shape: Vec<u64>) -> TensorSpec {
    TensorSpec { suffix, shape, trainable: true }
}

pub fn buffer(suffix: &'static str, shape: Vec<u64>) -> TensorSpec {
    TensorSpec { suffix, shape, trainable: false }
}

/// Multiply-accumulates of one op for one sample, under each convention (README:
/// "Counting conventions"). Exact integers; saturating so that absurd models report a
/// huge number instead of wrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Convolutions, linear layers, attention matmuls: `FlopCounterMode` / 2.
    pub core: u128,
    /// fvcore 0.1.5's `FlopCountAnalysis` defaults.
    pub fvcore: u128,
    /// Core plus every elementwise, normalisation and pooling operation.
    pub full: u128,
}

impl Cost {
    /// Counted the same in every convention (a matmul).
    pub fn matmul(macs: u128) -> Cost {
        Cost { core: macs, fvcore: macs, full: macs }
    }

    /// Only counted by `full` (elementwise work).
    pub fn elementwise(ops: u128) -> Cost {
        Cost { core: 0, fvcore: 0, full: ops }
    }

    pub fn plus(self, other: Cost) -> Cost {
        Cost {
            core: self.core.saturating_add(other.core),
            fvcore: self.fvcore.saturating_add(other.fvcore),
            full: self.full.saturating_add(other.full),
        }
    }

    pub fn times(self, n: u64) -> Cost {
        let n = n as u128;
        Cost {
            core: self.core.saturating_mul(n),
            fvcore: self.fvcore.saturating_mul(n),
            full: self.full.saturating_mul(n),
        }
    }
}

/// Product of sizes as u128, saturating.
pub fn product(factors: &[u64]) -> u128 {
    factors.iter().fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// The elements of a shape as u128 (shapes are checked to fit in u64).
pub fn numel(shape: &Shape) -> u128 {
    product(&shape.dims())
}

/// What every primitive provides. Implementations live beside their `OpSpec`s.
pub trait OpRule {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError>;
    fn tensors(&self, _input: &Shape) -> Vec<TensorSpec> {
        Vec::new()
    }
    fn cost(&self, input: &Shape, output: &Shape) -> Cost;
    fn lints(&self, _input: &Shape) -> Vec<LintHit> {
        Vec::new()
    }
}

macro_rules! op_enum {
    ($( $variant:ident($ty:ty) ),* $(,)?) => {
        /// A primitive with its arguments resolved.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op { $( $variant($ty) ),* }

        impl Op {
            pub fn rule(&self) -> &dyn OpRule {
                match self { $( Op::$variant(op) => op ),* }
            }
        }
    };
}

op_enum! {
    Conv(conv::Conv),
    Linear(linear::Linear),
    BatchNorm(norm::BatchNorm),
    LayerNorm(norm::LayerNorm),
    Pool(pool::Pool),
    GlobalPool(pool::GlobalPool),
    AdaptiveAvgPool(pool::AdaptiveAvgPool),
    Reduce(pool::Reduce),
    Activation(activation::Activation),
    Flatten(reshape::Flatten),
    Identity(reshape::Identity),
    Dropout(reshape::Dropout),
    PadChannels(reshape::PadChannels),
    Attention(attention::Attention),
    Patchify(tokens::Patchify),
    ClassToken(tokens::ClassToken),
    PosEmbedding(tokens::PosEmbedding),
    SelectToken(tokens::SelectToken),
    MeanTokens(tokens::MeanTokens),
}

impl Op {
    /// The op as ONNX nodes reading the value `x` (eval mode); `path` names its weights.
    pub fn onnx(&self, g: &mut onnx::Graph, x: &str, input: &Shape, path: &str) -> Result<String, onnx::Unsupported> {
        Ok(match self {
            Op::Conv(op) => op.onnx(g, x, path),
            Op::Linear(op) => op.onnx(g, x, input, path),
            Op::BatchNorm(op) => op.onnx(g, x, path),
            Op::LayerNorm(op) => op.onnx(g, x, input, path),
            Op::Pool(op) => op.onnx(g, x),
            Op::GlobalPool(op) => op.onnx(g, x),
            Op::AdaptiveAvgPool(op) => op.onnx(g, x, input)?,
            Op::Reduce(op) => op.onnx(g, x),
            Op::Activation(op) => op.onnx(g, x, input),
            Op::Flatten(op) => op.onnx(g, x, input),
            Op::Identity(_) | Op::Dropout(_) => x.to_string(),
            Op::PadChannels(op) => op.onnx(g, x, input),
            Op::Attention(op) => op.onnx(g, x, input, path),
            Op::Patchify(op) => op.onnx(g, x, path),
            Op::ClassToken(op) => op.onnx(g, x, input, path),
            Op::PosEmbedding(op) => op.onnx(g, x, input, path),
            Op::SelectToken(op) => op.onnx(g, x),
            Op::MeanTokens(op) => op.onnx(g, x),
        })
    }
}

impl Op {
    /// The op as PyTorch code (see `torch.rs`).
    pub fn torch(&self, input: &Shape) -> torch::TorchOp {
        match self {
            Op::Conv(op) => op.torch(input),
            Op::Linear(op) => op.torch(input),
            Op::BatchNorm(op) => op.torch(input),
            Op::LayerNorm(op) => op.torch(input),
            Op::Pool(op) => op.torch(),
            Op::GlobalPool(op) => op.torch(),
            Op::AdaptiveAvgPool(op) => op.torch(),
            Op::Reduce(op) => op.torch(),
            Op::Activation(op) => op.torch(input),
            Op::Flatten(op) => op.torch(input),
            Op::Identity(op) => op.torch(),
            Op::Dropout(op) => op.torch(),
            Op::PadChannels(op) => op.torch(input),
            Op::Attention(op) => op.torch(input),
            Op::Patchify(op) => op.torch(input),
            Op::ClassToken(op) => op.torch(input),
            Op::PosEmbedding(op) => op.torch(input),
            Op::SelectToken(op) => op.torch(),
            Op::MeanTokens(op) => op.torch(),
        }
    }
}

const FAMILIES: &[&[OpSpec]] = &[
    conv::SPECS,
    linear::SPECS,
    norm::SPECS,
    pool::SPECS,
    activation::SPECS,
    reshape::SPECS,
    attention::SPECS,
    tokens::SPECS,
];

/// The families' names, in `FAMILIES`' order (what a picture colours an op by).
const FAMILY_NAMES: &[&str] = &["conv", "linear", "norm", "pool", "activation", "reshape", "attention", "tokens"];

/// The family an op belongs to (`conv`, `norm`, `pool`, ...): the file it is defined in.
pub fn family(name: &str) -> Option<&'static str> {
    FAMILIES.iter().zip(FAMILY_NAMES).find(|(specs, _)| specs.iter().any(|s| s.name == name)).map(|(_, f)| *f)
}

/// Ops whose output always has their input's shape. When such a layer has a mistake
/// in its arguments (or a misspelt name that suggests one), checking goes on with the
/// shape unchanged instead of giving up on everything after it.
pub fn preserves_shape(name: &str) -> bool {
    matches!(
        name,
        "batchnorm"
            | "layernorm"
            | "relu"
            | "gelu"
            | "silu"
            | "sigmoid"
            | "tanh"
            | "softmax"
            | "dropout"
            | "identity"
            | "attention"
            | "pos_embedding"
    )
}

pub fn spec(name: &str) -> Option<&'static OpSpec> {
    FAMILIES.iter().flat_map(|f| f.iter()).find(|s| s.name == name)
}

pub fn all_specs() -> impl Iterator<Item = &'static OpSpec> {
    FAMILIES.iter().flat_map(|f| f.iter())
}
