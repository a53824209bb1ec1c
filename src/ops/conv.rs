//! 2-D convolution, and the sliding-window arithmetic it shares with pooling.

use super::*;
use crate::diagnostics::Code;

pub const SPECS: &[OpSpec] = &[OpSpec {
    name: "conv",
    summary: "2-D convolution: conv(out, kernel: k, stride: 1, padding: 0, dilation: 1, groups: 1, bias: true)",
    args: &[
        arg("out", Ty::Int, ArgDefault::Required),
        arg("kernel", Ty::Int, ArgDefault::Required),
        arg("stride", Ty::Int, ArgDefault::Int(1)),
        arg("padding", Ty::Int, ArgDefault::Int(0)),
        arg("dilation", Ty::Int, ArgDefault::Int(1)),
        arg("groups", Ty::Int, ArgDefault::Int(1)),
        arg("bias", Ty::Bool, ArgDefault::Bool(true)),
        arg("in_channels", Ty::Int, ArgDefault::Absent),
    ],
    build: |a| {
        Ok(Op::Conv(Conv {
            out: a.at_least("out", 1)?,
            window: Window {
                kernel: a.at_least("kernel", 1)?,
                stride: a.at_least("stride", 1)?,
                padding: a.at_least("padding", 0)?,
                dilation: a.at_least("dilation", 1)?,
                ceil: false,
            },
            groups: a.at_least("groups", 1)?,
            bias: a.bool("bias"),
            in_channels: a.optional_at_least("in_channels", 1)?,
        }))
    },
}];

/// PyTorch's `nn.Conv2d` with a square kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub out: u64,
    pub window: Window,
    pub groups: u64,
    pub bias: bool,
    /// What the user says the input has; checked, never needed.
    pub in_channels: Option<u64>,
}

/// A square sliding window over both spatial dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: u64,
    pub stride: u64,
    pub padding: u64,
    pub dilation: u64,
    pub ceil: bool,
}

impl Window {
    /// The span one window covers: dilation·(kernel−1)+1.
    pub fn extent(&self) -> u64 {
        self.dilation.saturating_mul(self.kernel - 1).saturating_add(1)
    }

    /// Output size along one dimension, PyTorch's `pooling_output_shape`:
    /// ⌊(size + 2·padding − extent [+ stride − 1 in ceil mode]) / stride⌋ + 1, where a
    /// last ceil-mode window that would start in the right padding is dropped.
    pub fn output_size(&self, op: &str, size: u64) -> Result<u64, ShapeError> {
        let (size_i, padding, stride) = (size as i128, self.padding as i128, self.stride as i128);
        let padded = size_i + 2 * padding;
        let extent = self.extent() as i128;
        let numerator = padded - extent + if self.ceil { stride - 1 } else { 0 };
        let mut out = numerator.div_euclid(stride) + 1;
        if self.ceil && out >= 1 && (out - 1) * stride >= size_i + padding {
            out -= 1;
        }
        if out < 1 {
            let padded_text = if self.padding > 0 { format!(" (padded to {padded})") } else { String::new() };
            return Err(ShapeError::new(
                Code::KernelTooLarge,
                format!("`{op}` window is {extent} wide, but its input is only {size} wide{padded_text}"),
                format!("window {extent} wide on an input {size} wide"),
            )
            .help(format!("use a kernel of at most {padded}, add padding, or downsample less before this layer")));
        }
        Ok(out as u64)
    }

    /// Rows (or columns) of real input that no window reaches, at the end of a dimension.
    /// Only meaningful when windows touch or overlap (extent ≥ stride); a 1×1 stride-2
    /// convolution subsamples by design.
    pub fn dropped_rows(&self, size: u64, out: u64) -> u64 {
        if self.stride == 1 || self.extent() < self.stride || self.ceil {
            return 0;
        }
        let last_covered =
            (out - 1).saturating_mul(self.stride).saturating_add(self.extent()).saturating_sub(self.padding + 1);
        (size - 1).saturating_sub(last_covered)
    }

    pub fn uneven_lint(&self, op: &str, h: u64, w: u64) -> Vec<LintHit> {
        let (Ok(oh), Ok(ow)) = (self.output_size(op, h), self.output_size(op, w)) else { return Vec::new() };
        let (dh, dw) = (self.dropped_rows(h, oh), self.dropped_rows(w, ow));
        if dh == 0 && dw == 0 {
            return Vec::new();
        }
        vec![LintHit {
            code: Code::UnevenStride,
            message: format!(
                "stride {} does not tile the {h}×{w} input: the last {} of real input are ignored",
                self.stride,
                if dh > 0 && dw > 0 {
                    format!("{dh} row(s) and {dw} column(s)")
                } else if dh > 0 {
                    format!("{dh} row(s)")
                } else {
                    format!("{dw} column(s)")
                }
            ),
            label: format!("output {oh}×{ow} covers only part of {h}×{w}"),
            help: Some("pad the input (or use `ceil_mode: true` for pooling) so that every row is used".into()),
        }]
    }

    pub fn image_output(&self, op: &str, c: u64, h: u64, w: u64) -> Result<Shape, ShapeError> {
        Ok(Shape::Image { c, h: self.output_size(op, h)?, w: self.output_size(op, w)? })
    }
}

impl OpRule for Conv {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Shape::Image { c, h, w } = *input else { return Err(ShapeError::wrong_kind("conv", "image", input)) };
        if let Some(declared) = self.in_channels
            && declared != c
        {
            return Err(ShapeError::new(
                Code::ChannelMismatch,
                format!("`conv` declares {declared} input channel{}, but its input has {c}", plural(declared)),
                format!("expects {declared} channel{}, gets {input}", plural(declared)),
            )
            .help(format!("write `in_channels: {c}` or fix the layer that produces {c} channels"))
            .recover(self.window.image_output("conv", self.out, h, w).ok()));
        }
        for (what, n) in [("input channels", c), ("output channels", self.out)] {
            if n % self.groups != 0 {
                return Err(ShapeError::new(
                    Code::InvalidValue,
                    format!("`groups: {}` does not divide the {n} {what}", self.groups),
                    format!("{n} {what} in {} groups", self.groups),
                )
                .help("choose groups that divide both the input and output channels")
                .recover(self.window.image_output("conv", self.out, h, w).ok()));
            }
        }
        self.window.image_output("conv", self.out, h, w)
    }

    fn tensors(&self, input: &Shape) -> Vec<TensorSpec> {
        let k = self.window.kernel;
        let mut tensors = vec![param("weight", vec![self.out, input.features() / self.groups, k, k])];
        if self.bias {
            tensors.push(param("bias", vec![self.out]));
        }
        tensors
    }

    /// MACs = output elements × (input channels / groups) × k². Bias adds are not
    /// multiply-adds; `full` counts them as one op per output element.
    fn cost(&self, input: &Shape, output: &Shape) -> Cost {
        let k = self.window.kernel;
        let macs = numel(output).saturating_mul(product(&[input.features() / self.groups, k, k]));
        let bias = if self.bias { numel(output) } else { 0 };
        Cost::matmul(macs).plus(Cost::elementwise(bias))
    }

    fn lints(&self, input: &Shape) -> Vec<LintHit> {
        match *input {
            Shape::Image { h, w, .. } => self.window.uneven_lint("conv", h, w),
            _ => Vec::new(),
        }
    }
}

// ---- Lowering -------------------------------------------------------------------

use super::kernels;
use crate::tensor::init;
use crate::tensor::precision::as_dtype_of;
use burn::module::{Module, Param};
use burn::prelude::{Backend, Tensor};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use std::sync::Arc;

/// `nn.Conv2d`'s tensors in PyTorch's layout: weight [out, in/groups, k, k], bias [out].
#[derive(Module, Debug)]
pub struct ConvModule<B: Backend> {
    pub weight: Param<Tensor<B, 4>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    /// The weight's forms kept between calls (`kernels::conv::Prepared`): only in a
    /// network whose weights do not change, `Network::for_inference`'s.
    pub prepared: Option<Arc<kernels::conv::Prepared>>,
}

/// Builds a convolution's weights with PyTorch's default initialisation.
pub fn init_conv<B: Backend>(
    in_channels: usize,
    out: usize,
    window: &Window,
    groups: usize,
    bias: bool,
    device: &B::Device,
) -> ConvModule<B> {
    let k = window.kernel as usize;
    let per_group = in_channels / groups;
    let bound = init::fan_in_bound(per_group * k * k);
    ConvModule {
        weight: Param::from_tensor(init::uniform([out, per_group, k, k], bound, device)),
        bias: bias.then(|| Param::from_tensor(init::uniform([out], bound, device))),
        stride: window.stride as usize,
        padding: window.padding as usize,
        dilation: window.dilation as usize,
        groups,
        prepared: None,
    }
}

impl Conv {
    pub fn init<B: Backend>(&self, input: &Shape, device: &B::Device) -> ConvModule<B> {
        init_conv(input.features() as usize, self.out as usize, &self.window, self.groups as usize, self.bias, device)
    }
}

impl<B: Backend> ConvModule<B> {
    /// This convolution followed by the per-channel affine map `y * scale + shift` (an
    /// eval-mode batch norm), as one convolution: each output channel's filter and
    /// bias scaled, the shift added to the bias.
    pub fn fold(&self, (scale, shift): (Tensor<B, 1>, Tensor<B, 1>)) -> ConvModule<B> {
        let out = scale.dims()[0];
        let weight = self.weight.val() * scale.clone().reshape([out, 1, 1, 1]);
        let bias = match &self.bias {
            Some(bias) => bias.val() * scale + shift,
            None => shift,
        };
        ConvModule {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            prepared: None,
        }
    }

    /// The same convolution, keeping its weight's transforms from one call to the next
    /// (`kernels::conv::Prepared`): for a network whose weights no longer change.
    pub fn prepared(mut self) -> ConvModule<B> {
        self.prepared = Some(Arc::default());
        self
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if let Some(y) = self.forward_fused(&x, kernels::Tail::none()) {
            return y;
        }
        let weight = as_dtype_of(self.weight.val(), &x);
        let bias = self.bias.as_ref().map(|b| as_dtype_of(b.val(), &x));
        let options = ConvOptions::new(
            [self.stride, self.stride],
            [self.padding, self.padding],
            [self.dilation, self.dilation],
            self.groups,
        );
        conv2d(x, weight, bias, options)
    }

    /// `tail(conv(x))` in one op on archc's kernels (a fused chain, `lower/fuse.rs`), or
    /// `None` where they do not apply.
    pub fn forward_fused(&self, x: &Tensor<B, 4>, tail: kernels::Tail<B, 4>) -> Option<Tensor<B, 4>> {
        let weight = as_dtype_of(self.weight.val(), x);
        let bias = self.bias.as_ref().map(|b| as_dtype_of(b.val(), x));
        let settings = kernels::conv::Settings {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        };
        kernels::conv::conv2d(x, &weight, bias.as_ref(), settings, tail, self.prepared.as_deref())
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph};

impl Conv {
    pub fn onnx(&self, g: &mut Graph, x: &str, path: &str) -> String {
        let weight = g.weight(path, "weight");
        let bias = self.bias.then(|| g.weight(path, "bias"));
        conv_node(g, x, &weight, bias.as_deref(), &self.window, self.groups)
    }
}

/// `Conv` with PyTorch's square window, symmetric padding and groups.
pub fn conv_node(g: &mut Graph, x: &str, weight: &str, bias: Option<&str>, window: &Window, groups: u64) -> String {
    let (k, s, p, d) = (window.kernel as i64, window.stride as i64, window.padding as i64, window.dilation as i64);
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    g.node(
        "Conv",
        &inputs,
        vec![
            ("kernel_shape", Attribute::Ints(vec![k, k])),
            ("strides", Attribute::Ints(vec![s, s])),
            ("pads", Attribute::Ints(vec![p, p, p, p])),
            ("dilations", Attribute::Ints(vec![d, d])),
            ("group", Attribute::Int(groups as i64)),
        ],
    )
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, int, keyword, text};

impl Conv {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        TorchOp::module(conv_call(input.features(), self.out, &self.window, self.groups, self.bias))
    }
}

/// `nn.Conv2d` with its window written out (kernel, stride and padding always, so that
/// blocks differing only in stride share a class).
pub fn conv_call(input: u64, out: u64, window: &Window, groups: u64, bias: bool) -> torch::Call {
    let mut args = vec![
        int("in_channels", input),
        int("out_channels", out),
        keyword("kernel_size", window.kernel),
        keyword("stride", window.stride),
        keyword("padding", window.padding),
    ];
    if window.dilation != 1 {
        args.push(keyword("dilation", window.dilation));
    }
    if groups != 1 {
        args.push(keyword("groups", groups));
    }
    if !bias {
        args.push(text("bias=False"));
    }
    torch::call("nn.Conv2d", args)
}
