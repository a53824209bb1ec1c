//! Values flowing through a lowered network: the IR's image / tokens / vector, as
//! Burn tensors with the batch dimension first.

use super::Shape;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::{DType, Distribution, TensorData};

#[derive(Clone, Debug)]
pub enum Value<B: Backend> {
    /// [batch, channels, height, width]
    Image(Tensor<B, 4>),
    /// [batch, tokens, width]
    Tokens(Tensor<B, 3>),
    /// [batch, features]
    Vector(Tensor<B, 2>),
}

/// Applies a rank-generic tensor expression to whichever tensor a value holds.
#[macro_export]
macro_rules! map_value {
    ($value:expr, |$t:ident| $body:expr) => {
        match $value {
            $crate::tensor::Value::Image($t) => $crate::tensor::Value::Image($body),
            $crate::tensor::Value::Tokens($t) => $crate::tensor::Value::Tokens($body),
            $crate::tensor::Value::Vector($t) => $crate::tensor::Value::Vector($body),
        }
    };
}

impl<B: Backend> Value<B> {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Image(_) => "image",
            Value::Tokens(_) => "tokens",
            Value::Vector(_) => "vector",
        }
    }

    // The IR checked every shape before lowering, so a value of the wrong kind here is
    // a bug in archc, not a user error.
    pub fn image(self) -> Tensor<B, 4> {
        match self {
            Value::Image(t) => t,
            other => unreachable!("checked IR promised an image, got {}", other.kind()),
        }
    }

    pub fn tokens(self) -> Tensor<B, 3> {
        match self {
            Value::Tokens(t) => t,
            other => unreachable!("checked IR promised tokens, got {}", other.kind()),
        }
    }

    pub fn vector(self) -> Tensor<B, 2> {
        match self {
            Value::Vector(t) => t,
            other => unreachable!("checked IR promised a vector, got {}", other.kind()),
        }
    }

    pub fn batch(&self) -> usize {
        match self {
            Value::Image(t) => t.dims()[0],
            Value::Tokens(t) => t.dims()[0],
            Value::Vector(t) => t.dims()[0],
        }
    }

    /// The element type it computes in (see `precision.rs`).
    pub fn dtype(&self) -> DType {
        match self {
            Value::Image(t) => t.dtype(),
            Value::Tokens(t) => t.dtype(),
            Value::Vector(t) => t.dtype(),
        }
    }

    /// The same value in `dtype`.
    pub fn cast(self, dtype: DType) -> Value<B> {
        crate::map_value!(self, |t| super::precision::cast(t, dtype))
    }

    /// Both values in the wider of their precisions (see `precision.rs`).
    fn promoted(self, other: Value<B>) -> (Value<B>, Value<B>) {
        let dtype = super::precision::wider(self.dtype(), other.dtype());
        (self.cast(dtype), other.cast(dtype))
    }

    /// Elementwise sum of two values of the same shape.
    pub fn plus(self, other: Value<B>) -> Value<B> {
        match self.promoted(other) {
            (Value::Image(a), Value::Image(b)) => Value::Image(a + b),
            (Value::Tokens(a), Value::Tokens(b)) => Value::Tokens(a + b),
            (Value::Vector(a), Value::Vector(b)) => Value::Vector(a + b),
            (a, b) => unreachable!("checked IR adds {} and {}", a.kind(), b.kind()),
        }
    }

    /// Elementwise product of two values of the same shape.
    pub fn times(self, other: Value<B>) -> Value<B> {
        match self.promoted(other) {
            (Value::Image(a), Value::Image(b)) => Value::Image(a * b),
            (Value::Tokens(a), Value::Tokens(b)) => Value::Tokens(a * b),
            (Value::Vector(a), Value::Vector(b)) => Value::Vector(a * b),
            (a, b) => unreachable!("checked IR multiplies {} and {}", a.kind(), b.kind()),
        }
    }

    /// `x * gate`, the gate broadcast over positions (per-channel) or channels (spatial).
    pub fn scale(self, gate: Value<B>) -> Value<B> {
        match self.promoted(gate) {
            (Value::Image(x), Value::Image(g)) => Value::Image(x * g),
            (Value::Image(x), Value::Vector(g)) => {
                let [b, c] = g.dims();
                Value::Image(x * g.reshape([b, c, 1, 1]))
            }
            (Value::Tokens(x), Value::Tokens(g)) => Value::Tokens(x * g),
            (Value::Tokens(x), Value::Vector(g)) => {
                let [b, d] = g.dims();
                Value::Tokens(x * g.reshape([b, 1, d]))
            }
            (Value::Vector(x), Value::Vector(g)) => Value::Vector(x * g),
            (x, g) => unreachable!("checked IR scales {} by {}", x.kind(), g.kind()),
        }
    }

    /// Concatenation along channels (images) or the last dimension, in the widest of
    /// the values' precisions.
    pub fn concat(values: Vec<Value<B>>) -> Value<B> {
        let widest = values.iter().map(Value::dtype).reduce(super::precision::wider);
        let values: Vec<Value<B>> = match widest {
            Some(dtype) => values.into_iter().map(|v| v.cast(dtype)).collect(),
            None => values,
        };
        match values.first() {
            Some(Value::Image(_)) => Value::Image(Tensor::cat(values.into_iter().map(Value::image).collect(), 1)),
            Some(Value::Tokens(_)) => Value::Tokens(Tensor::cat(values.into_iter().map(Value::tokens).collect(), 2)),
            _ => Value::Vector(Tensor::cat(values.into_iter().map(Value::vector).collect(), 1)),
        }
    }

    /// A batch of standard-normal values of `shape`: the input of benchmarks and of
    /// the analyses that probe a network at initialisation.
    pub fn random(shape: &Shape, batch: usize, device: &B::Device) -> Value<B> {
        let normal = Distribution::Normal(0.0, 1.0);
        match *shape {
            Shape::Image { c, h, w } => {
                Value::Image(Tensor::random([batch, c as usize, h as usize, w as usize], normal, device))
            }
            Shape::Tokens { n, d } => Value::Tokens(Tensor::random([batch, n as usize, d as usize], normal, device)),
            Shape::Vector { d } => Value::Vector(Tensor::random([batch, d as usize], normal, device)),
        }
    }

    /// The loss a probe backpropagates: cross-entropy against `labels` for a classifier,
    /// else the output's mean (which exercises the same backward pass).
    pub fn probe_loss(self, labels: Option<Tensor<B, 1, Int>>) -> Tensor<B, 1> {
        match (self, labels) {
            (Value::Vector(logits), Some(labels)) => {
                CrossEntropyLossConfig::new().init(&logits.device()).forward(logits, labels)
            }
            (Value::Image(t), _) => t.mean(),
            (Value::Tokens(t), _) => t.mean(),
            (Value::Vector(t), _) => t.mean(),
        }
    }
}

/// Labels 0, 1, …, classes−1, 0, 1, … for a batch, when `output` is a classifier's
/// vector of class scores: a probe's labels, every class represented.
pub fn cyclic_labels<B: Backend>(output: &Shape, batch: usize, device: &B::Device) -> Option<Tensor<B, 1, Int>> {
    let Shape::Vector { d } = *output else { return None };
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % d as i64).collect();
    Some(Tensor::from_data(TensorData::new(labels, [batch]), device))
}
