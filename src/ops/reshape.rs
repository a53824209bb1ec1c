//! Ops that move or drop values without arithmetic: flatten, identity, dropout, and
//! zero-padding of channels (the parameter-free "option A" shortcut of CIFAR ResNets).

use super::*;
use crate::diagnostics::Code;

pub const SPECS: &[OpSpec] = &[
    OpSpec {
        name: "flatten",
        summary: "image(C, H, W) → vector(C·H·W); tokens(N, D) → vector(N·D)",
        args: &[],
        build: |_| Ok(Op::Flatten(Flatten)),
    },
    OpSpec { name: "identity", summary: "passes its input through", args: &[], build: |_| Ok(Op::Identity(Identity)) },
    OpSpec {
        name: "dropout",
        summary: "dropout(p: 0.5): zeroes elements with probability p while training",
        args: &[arg("p", Ty::Float, ArgDefault::Float(0.5))],
        build: |a| {
            let p = a.float("p");
            if !(0.0..=1.0).contains(&p) {
                return Err(ArgError::new("p", format!("dropout probability must be in [0, 1], but it is {p}")));
            }
            Ok(Op::Dropout(Dropout { p }))
        },
    },
    OpSpec {
        name: "pad_channels",
        summary: "zero-pads channels up to `channels`, half before and half after (ResNet option A)",
        args: &[arg("channels", Ty::Int, ArgDefault::Required)],
        build: |a| Ok(Op::PadChannels(PadChannels { channels: a.at_least("channels", 1)? })),
    },
];

#[derive(Clone, Debug, PartialEq)]
pub struct Flatten;

impl OpRule for Flatten {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let d = input.elements().ok_or_else(|| {
            ShapeError::new(Code::Overflow, "flattened size does not fit in 64 bits", format!("flattens {input}"))
        })?;
        Ok(Shape::Vector { d })
    }

    fn cost(&self, _input: &Shape, _output: &Shape) -> Cost {
        Cost::default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Identity;

impl OpRule for Identity {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(*input)
    }

    fn cost(&self, _input: &Shape, _output: &Shape) -> Cost {
        Cost::default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    pub p: f64,
}

impl OpRule for Dropout {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        Ok(*input)
    }

    /// Identity at inference: no cost in any convention.
    fn cost(&self, _input: &Shape, _output: &Shape) -> Cost {
        Cost::default()
    }

    fn lints(&self, _input: &Shape) -> Vec<LintHit> {
        if self.p < 1.0 {
            return Vec::new();
        }
        vec![LintHit {
            code: Code::DropoutOne,
            message: "dropout with p = 1 zeroes every activation while training".into(),
            label: "drops everything".into(),
            help: Some("use a probability below 1, such as `dropout(0.5)`".into()),
        }]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PadChannels {
    pub channels: u64,
}

impl PadChannels {
    /// Zero channels added before the input's; the rest go after.
    pub fn before(&self, input_channels: u64) -> u64 {
        (self.channels - input_channels) / 2
    }
}

impl OpRule for PadChannels {
    fn output(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let Shape::Image { c, h, w } = *input else {
            return Err(ShapeError::wrong_kind("pad_channels", "image", input));
        };
        if self.channels < c {
            return Err(ShapeError::new(
                Code::ChannelMismatch,
                format!("`pad_channels` pads to {} channels, but its input already has {c}", self.channels),
                format!("cannot pad {c} channels down to {}", self.channels),
            )
            .recover(Some(Shape::Image { c: self.channels, h, w })));
        }
        Ok(Shape::Image { c: self.channels, h, w })
    }

    fn cost(&self, _input: &Shape, _output: &Shape) -> Cost {
        Cost::default()
    }
}

// ---- Lowering -------------------------------------------------------------------

use crate::map_value;
use crate::tensor::Value;
use burn::nn::DropoutConfig;
use burn::prelude::{Backend, Tensor};

impl Flatten {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        Value::Vector(match x {
            Value::Image(t) => {
                let [b, c, h, w] = t.dims();
                t.reshape([b, c * h * w])
            }
            Value::Tokens(t) => {
                let [b, n, d] = t.dims();
                t.reshape([b, n * d])
            }
            Value::Vector(t) => t,
        })
    }
}

impl Dropout {
    /// Inverted dropout while training (autodiff backends); identity otherwise.
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let training = match &x {
            Value::Image(t) => B::ad_enabled(&t.device()),
            Value::Tokens(t) => B::ad_enabled(&t.device()),
            Value::Vector(t) => B::ad_enabled(&t.device()),
        };
        if !training || self.p == 0.0 {
            return x;
        }
        let dropout = DropoutConfig::new(self.p).init();
        map_value!(x, |t| dropout.forward(t))
    }
}

impl PadChannels {
    pub fn apply<B: Backend>(&self, x: Value<B>) -> Value<B> {
        let x = x.image();
        let [b, c, h, w] = x.dims();
        let before = self.before(c as u64) as usize;
        let after = self.channels as usize - c - before;
        if let Some(y) = super::kernels::pad::pad_channels(&x, before, after) {
            return Value::Image(y);
        }
        let options = (&x.device(), x.dtype());
        let mut parts = Vec::new();
        if before > 0 {
            parts.push(Tensor::zeros([b, before, h, w], options));
        }
        parts.push(x);
        if after > 0 {
            parts.push(Tensor::zeros([b, after, h, w], options));
        }
        Value::Image(Tensor::cat(parts, 1))
    }
}

// ---- ONNX ---------------------------------------------------------------------

use super::onnx::{Attribute, Graph};

impl Flatten {
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape) -> String {
        match input {
            Shape::Vector { .. } => x.to_string(),
            _ => g.node("Flatten", &[x], vec![("axis", Attribute::Int(1))]),
        }
    }
}

impl PadChannels {
    pub fn onnx(&self, g: &mut Graph, x: &str, input: &Shape) -> String {
        let c = input.features();
        let (before, after) = (self.before(c) as i64, (self.channels - c - self.before(c)) as i64);
        let pads = g.ints(&[0, before, 0, 0, 0, after, 0, 0]);
        g.node("Pad", &[x, &pads], vec![("mode", Attribute::Text("constant".into()))])
    }
}

// ---- PyTorch ------------------------------------------------------------------

use super::torch::{self, TorchOp, text};

impl Flatten {
    pub fn torch(&self, input: &Shape) -> TorchOp {
        match input {
            Shape::Vector { .. } => TorchOp::both(torch::call("nn.Identity", vec![]), "{x}"),
            _ => TorchOp::both(torch::call("nn.Flatten", vec![]), "torch.flatten({x}, 1)"),
        }
    }
}

impl Identity {
    pub fn torch(&self) -> TorchOp {
        TorchOp::both(torch::call("nn.Identity", vec![]), "{x}")
    }
}

impl Dropout {
    pub fn torch(&self) -> TorchOp {
        let p = torch::float(self.p);
        TorchOp::both(torch::call("nn.Dropout", vec![text(p.clone())]), format!("F.dropout({{x}}, {p}, self.training)"))
    }
}

impl PadChannels {
    /// Zero channels before and after, as the option-A shortcut pads them.
    pub fn torch(&self, input: &Shape) -> TorchOp {
        let c = input.features();
        let (before, after) = (self.before(c), self.channels - c - self.before(c));
        TorchOp::function(format!("F.pad({{x}}, (0, 0, 0, 0, {before}, {after}))"))
    }
}
