//! Pooling: windowed max/average, global and adaptive pooling, and reductions over
//! the spatial or channel dimensions (what SE and CBAM compute with `mean`/`amax`).

use super::conv::Window;
use super::*;

const WINDOW_ARGS: &[ArgSpec] = &[
    arg("kernel", Ty::Int, ArgDefault::Required),
    arg("stride", Ty::Int, ArgDefault::Absent),
    arg("padding", Ty::Int, ArgDefault::Int(0)),
    arg("ceil_mode", Ty::Bool, ArgDefault::Bool(false)),
];

const AVG_ARGS: &[ArgSpec] = &[
    arg("kernel", Ty::Int, ArgDefault::Required),
    arg("stride", Ty::Int, ArgDefault::Absent),
    arg("padding", Ty::Int, ArgDefault::Int(0)),
    arg("ceil_mode", Ty::Bool, ArgDefault::Bool(false)),
    arg("count_include_pad", Ty::Bool, ArgDefault::Bool(true)),
];

const OVER: &[&str] = &["spatial", "channels"];

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "maxpool",
        summary: "max pooling: maxpool(kernel: k, stride: k, padding: 0, ceil_mode: false)",
        args: WINDOW_ARGS,
        build: |a| Ok(Op::Pool(Pool { kind: PoolKind::Max, window: window(a)?, count_include_pad: false })),
    },
    OpSpec {
        name: "avgpool",
        summary: "average pooling: avgpool(kernel: k, stride: k, padding: 0, ceil_mode: false, count_include_pad: true)",
        args: AVG_ARGS,
        build: |a| {
            Ok(Op::Pool(Pool {
                kind: PoolKind::Avg,
                window: window(a)?,
                count_include_pad: a.bool("count_include_pad"),
            }))
        },
    },
    OpSpec {
        name: "global_avgpool",
        summary: "average over height and width (nn.AdaptiveAvgPool2d(1)): image(C, H, W) → image(C, 1, 1)",
        args: &[],
        build: |_| Ok(Op::GlobalPool(GlobalPool { kind: PoolKind::Avg })),
    },
    OpSpec {
        name: "global_maxpool",
        summary: "maximum over height and width (nn.AdaptiveMaxPool2d(1)): image(C, H, W) → image(C, 1, 1)",
        args: &[],
        build: |_| Ok(Op::GlobalPool(GlobalPool { kind: PoolKind::Max })),
    },
    OpSpec {
        name: "adaptive_avgpool",
        summary: "average into a fixed grid (nn.AdaptiveAvgPool2d(size)): image(C, H, W) → image(C, size, size)",
        args: &[arg("size", Ty::Int, ArgDefault::Required)],
        build: |a| Ok(Op::AdaptiveAvgPool(AdaptiveAvgPool { size: a.at_least("size", 1)? })),
    },
    OpSpec {
        name: "mean",
        summary: "mean over spatial positions (x.mean((2, 3), keepdim=True)) or channels (x.mean(1, keepdim=True))",
        args: &[arg("over", Ty::Choice(OVER), ArgDefault::Required)],
        build: |a| Ok(Op::Reduce(Reduce { kind: PoolKind::Avg, over: over(a) })),
    },
    OpSpec {
        name: "amax",
        summary: "maximum over spatial positions (x.amax((2, 3), keepdim=True)) or channels (x.amax(1, keepdim=True))",
        args: &[arg("over", Ty::Choice(OVER), ArgDefault::Required)],
        build: |a| Ok(Op::Reduce(Reduce { kind: PoolKind::Max, over: over(a) })),
    },
];

fn window(a: &Args) -> Result<Window, ArgError> {
    let kernel = a.at_least("kernel", 1)?;
    let stride = a.optional_at_least("stride", 1)?.unwrap_or(kernel);
    let padding = a.at_least("padding", 0)?;
    if padding > kernel / 2 {
        return Err(ArgError::new("padding", format!("padding {padding} is more than half the kernel ({kernel})"))
            .help(format!("PyTorch allows at most {} for a kernel of {kernel}", kernel / 2)));
    }
    Ok(Window { kernel, stride, padding, dilation: 1, ceil: a.bool("ceil_mode") })
}

fn over(a: &Args) -> Over {
    if a.choice("over") == "channels" { Over::Channels } else { Over::Spatial }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    Spatial,
    Channels,
}

fn image_input(op: &str, input: &Shape) -> Result<(u64, u64, u64), ShapeError> {
    match *input {
        Shape::Image { c, h, w } => Ok((c, h, w)),
        _ => Err(ShapeError::wrong_kind(op, "image", input)),
    }
}

/// `nn.MaxPool2d` / `nn.AvgPool2d`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub window: Window,
    pub count_include_pad: bool,
}

impl Pool {
    fn name(&self) -> &'static str {
        if self.kind == PoolKind::Max { "maxpool" } else { "avgpool" }
    }
}

impl OpRule for Pool {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (c, h, w) = image_input(self.name(), input)?;
        self.window.image_output(self.name(), c, h, w)
    }

    /// Not in core or fvcore (fvcore has no handle for max_pool2d / avg_pool2d).
    /// full: k² comparisons or additions per output element.
    fn cost(&self, _input: &Shape, output: &Shape) -> Cost {
        Cost::elementwise(numel(output).saturating_mul(product(&[self.window.kernel, self.window.kernel])))
    }

    fn lints(&self, input: &Shape) -> Vec<LintHit> {
        match *input {
            Shape::Image { h, w, .. } => self.window.uneven_lint(self.name(), h, w),
            _ => Vec::new(),
        }
    }
}

/// `nn.AdaptiveAvgPool2d(1)` / `nn.AdaptiveMaxPool2d(1)`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalPool {
    pub kind: PoolKind,
}

impl OpRule for GlobalPool {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let name = if self.kind == PoolKind::Avg { "global_avgpool" } else { "global_maxpool" };
        let (c, _, _) = image_input(name, input)?;
        Ok(Shape::Image { c, h: 1, w: 1 })
    }

    /// Not in core. fvcore counts adaptive_avg_pool2d as one per input element and
    /// has no handle for adaptive_max_pool2d. full: one per input element.
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        let n = numel(input);
        Cost { core: 0, fvcore: if self.kind == PoolKind::Avg { n } else { 0 }, full: n }
    }
}

/// `nn.AdaptiveAvgPool2d(size)`: PyTorch's bins, start = ⌊i·H/s⌋, end = ⌈(i+1)·H/s⌉.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveAvgPool {
    pub size: u64,
}

impl OpRule for AdaptiveAvgPool {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (c, _, _) = image_input("adaptive_avgpool", input)?;
        Ok(Shape::Image { c, h: self.size, w: self.size })
    }

    /// fvcore: one per input element. full: one per input element the bins read
    /// (bins overlap when the output is larger than the input, so count per bin).
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        let (h, w) = input.spatial().unwrap_or((1, 1));
        let bins = |size: u64| -> u128 {
            (0..self.size).map(|i| (((i + 1) * size).div_ceil(self.size) - (i * size) / self.size) as u128).sum()
        };
        Cost {
            core: 0,
            fvcore: numel(input),
            full: (input.features() as u128).saturating_mul(bins(h)).saturating_mul(bins(w)),
        }
    }
}

/// `x.mean(dims, keepdim=True)` / `x.amax(dims, keepdim=True)` over spatial positions
/// (→ image(C, 1, 1)) or channels (→ image(1, H, W)).
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub kind: PoolKind,
    pub over: Over,
}

impl OpRule for Reduce {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let name = if self.kind == PoolKind::Avg { "mean" } else { "amax" };
        let (c, h, w) = image_input(name, input)?;
        Ok(match self.over {
            Over::Spatial => Shape::Image { c, h: 1, w: 1 },
            Over::Channels => Shape::Image { c: 1, h, w },
        })
    }

    /// Not in core or fvcore (aten::mean and aten::amax have no handle).
    /// full: one per input element.
    fn cost(&self, input: &Shape, _output: &Shape) -> Cost {
        Cost::elementwise(numel(input))
    }
}

// ---- Lowering -------------------------------------------------------------------

use super::kernels;
use crate::tensor::Value;
use burn::prelude::{Backend, Tensor};
use burn::tensor::Slice;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};

fn square(n: u64) -> [usize; 2] {
    [n as usize, n as usize]
}

impl Pool {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let x = x.image();
        let w = &self.window;
        let settings = kernels::pool::Settings {
            reduction: match self.kind {
                PoolKind::Max => kernels::pool::Reduction::Max,
                PoolKind::Avg => kernels::pool::Reduction::Avg { count_include_pad: self.count_include_pad },
            },
            kernel: w.kernel as usize,
            stride: w.stride as usize,
            padding: w.padding as usize,
            ceil_mode: w.ceil,
        };
        if let Some(y) = kernels::pool::pool2d(&x, settings) {
            return Value::Image(y);
        }
        // Elsewhere, a 1×1 window without padding (the option-A shortcut's subsampling)
        // picks every stride-th pixel: a strided slice, far cheaper than a pooling kernel
        // and its backward pass. Floor and ceil mode both give ⌈size / stride⌉ outputs.
        if w.kernel == 1 && w.padding == 0 {
            let step = w.stride as isize;
            let every = Slice::new(0, None, step);
            return Value::Image(x.slice([Slice::full(), Slice::full(), every, every]));
        }
        Value::Image(match self.kind {
            PoolKind::Max => max_pool2d(x, square(w.kernel), square(w.stride), square(w.padding), [1, 1], w.ceil),
            PoolKind::Avg => {
                avg_pool2d(x, square(w.kernel), square(w.stride), square(w.padding), self.count_include_pad, w.ceil)
            }
        })
    }
}

fn spatial<B: Backend>(x: Tensor<B, 4>, kind: PoolKind) -> Tensor<B, 4> {
    match kind {
        PoolKind::Avg => x.mean_dim(3).mean_dim(2),
        PoolKind::Max => x.max_dim(3).max_dim(2),
    }
}

impl GlobalPool {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        Value::Image(spatial(x.image(), self.kind))
    }
}

impl AdaptiveAvgPool {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        Value::Image(adaptive_avg_pool2d(x.image(), square(self.size)))
    }
}

impl Reduce {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let x = x.image();
        Value::Image(match (self.over, self.kind) {
            (Over::Spatial, kind) => spatial(x, kind),
            (Over::Channels, PoolKind::Avg) => x.mean_dim(1),
            (Over::Channels, PoolKind::Max) => x.max_dim(1),
        })
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph, Unsupported};

impl Pool {
    pub fn onnx(&self, g: &mut Graph, x: &str) -> String {
        let w = &self.window;
        let (k, s, p) = (w.kernel as i64, w.stride as i64, w.padding as i64);
        let mut attributes = vec![
            ("kernel_shape", Attribute::Ints(vec![k, k])),
            ("strides", Attribute::Ints(vec![s, s])),
            ("pads", Attribute::Ints(vec![p, p, p, p])),
            ("ceil_mode", Attribute::Int(w.ceil as i64)),
        ];
        match self.kind {
            PoolKind::Max => g.node("MaxPool", &[x], attributes),
            PoolKind::Avg => {
                attributes.push(("count_include_pad", Attribute::Int(self.count_include_pad as i64)));
                g.node("AveragePool", &[x], attributes)
            }
        }
    }
}

impl GlobalPool {
    pub fn onnx(&self, g: &mut Graph, x: &str) -> String {
        match self.kind {
            PoolKind::Avg => g.node("GlobalAveragePool", &[x], Vec::new()),
            PoolKind::Max => g.node("GlobalMaxPool", &[x], Vec::new()),
        }
    }
}

impl AdaptiveAvgPool {
    /// ONNX has no adaptive pooling: bins of equal size are an AveragePool, others
    /// cannot be written.
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape) -> Result<String, Unsupported> {
        let Shape::Image { h, w, .. } = *input else { unreachable!("checked IR: pooling takes images") };
        if h % self.size != 0 || w % self.size != 0 {
            return Err(Unsupported {
                what: format!(
                    "adaptive_avgpool({}) on {h}×{w} makes bins of unequal sizes, which ONNX has no operator for",
                    self.size
                ),
            });
        }
        let (kh, kw) = ((h / self.size) as i64, (w / self.size) as i64);
        Ok(g.node(
            "AveragePool",
            &[x],
            vec![("kernel_shape", Attribute::Ints(vec![kh, kw])), ("strides", Attribute::Ints(vec![kh, kw]))],
        ))
    }
}

impl Reduce {
    pub fn onnx(&self, g: &mut Graph, x: &str) -> String {
        let op_type = match self.kind {
            PoolKind::Avg => "ReduceMean",
            PoolKind::Max => "ReduceMax",
        };
        let axes: &[i64] = match self.over {
            Over::Spatial => &[2, 3],
            Over::Channels => &[1],
        };
        g.reduce(op_type, x, axes, true)
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, int, keyword, text};

impl Pool {
    pub fn torch(&self) -> TorchOp {
        let w = &self.window;
        let mut args = vec![int("kernel_size", w.kernel), keyword("stride", w.stride), keyword("padding", w.padding)];
        let mut extra = String::new();
        if w.ceil {
            args.push(text("ceil_mode=True"));
            extra.push_str(", ceil_mode=True");
        }
        let (module, function) = match self.kind {
            PoolKind::Max => ("nn.MaxPool2d", "F.max_pool2d"),
            PoolKind::Avg => {
                if !self.count_include_pad {
                    args.push(text("count_include_pad=False"));
                    extra.push_str(", count_include_pad=False");
                }
                ("nn.AvgPool2d", "F.avg_pool2d")
            }
        };
        let call = format!("{function}({{x}}, {}, stride={}, padding={}{extra})", w.kernel, w.stride, w.padding);
        TorchOp::both(torch::call(module, args), call)
    }
}

impl GlobalPool {
    pub fn torch(&self) -> TorchOp {
        match self.kind {
            PoolKind::Avg => {
                TorchOp::both(torch::call("nn.AdaptiveAvgPool2d", vec![text("1")]), "F.adaptive_avg_pool2d({x}, 1)")
            }
            PoolKind::Max => {
                TorchOp::both(torch::call("nn.AdaptiveMaxPool2d", vec![text("1")]), "F.adaptive_max_pool2d({x}, 1)")
            }
        }
    }
}

impl AdaptiveAvgPool {
    pub fn torch(&self) -> TorchOp {
        let call = format!("F.adaptive_avg_pool2d({{x}}, {})", self.size);
        TorchOp::both(torch::call("nn.AdaptiveAvgPool2d", vec![int("output_size", self.size)]), call)
    }
}

impl Reduce {
    pub fn torch(&self) -> TorchOp {
        let method = match self.kind {
            PoolKind::Avg => "mean",
            PoolKind::Max => "amax",
        };
        let dims = match self.over {
            Over::Spatial => "(2, 3)",
            Over::Channels => "1",
        };
        TorchOp::function(format!("{{x}}.{method}({dims}, keepdim=True)"))
    }
}
