//! The shapes values can have. The batch dimension is implicit everywhere.

use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A feature map: channels, height, width.
    Image { c: u64, h: u64, w: u64 },
    /// A token sequence: count, width.
    Tokens { n: u64, d: u64 },
    /// A flat feature vector.
    Vector { d: u64 },
}

impl Shape {
    pub fn kind(&self) -> &'static str {
        match self {
            Shape::Image { .. } => "image",
            Shape::Tokens { .. } => "tokens",
            Shape::Vector { .. } => "vector",
        }
    }

    pub fn dims(&self) -> Vec<u64> {
        match *self {
            Shape::Image { c, h, w } => vec![c, h, w],
            Shape::Tokens { n, d } => vec![n, d],
            Shape::Vector { d } => vec![d],
        }
    }

    /// Number of elements per sample; `None` if it overflows.
    pub fn elements(&self) -> Option<u64> {
        self.dims().into_iter().try_fold(1u64, |acc, d| acc.checked_mul(d))
    }

    /// The feature (channel) dimension: channels of an image, width of tokens or vectors.
    pub fn features(&self) -> u64 {
        match *self {
            Shape::Image { c, .. } => c,
            Shape::Tokens { d, .. } | Shape::Vector { d } => d,
        }
    }

    /// The same shape with another feature width.
    pub fn with_features(&self, f: u64) -> Shape {
        match *self {
            Shape::Image { h, w, .. } => Shape::Image { c: f, h, w },
            Shape::Tokens { n, .. } => Shape::Tokens { n, d: f },
            Shape::Vector { .. } => Shape::Vector { d: f },
        }
    }

    pub fn spatial(&self) -> Option<(u64, u64)> {
        match *self {
            Shape::Image { h, w, .. } => Some((h, w)),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Image { c, h, w } => write!(f, "image({c}, {h}, {w})"),
            Shape::Tokens { n, d } => write!(f, "tokens({n}, {d})"),
            Shape::Vector { d } => write!(f, "vector({d})"),
        }
    }
}

impl Serialize for Shape {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.dims().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let dims = Vec::<u64>::deserialize(deserializer)?;
        match dims.as_slice() {
            [c, h, w] => Ok(Shape::Image { c: *c, h: *h, w: *w }),
            [n, d] => Ok(Shape::Tokens { n: *n, d: *d }),
            [d] => Ok(Shape::Vector { d: *d }),
            _ => Err(serde::de::Error::custom(format!("a shape has 1 to 3 sizes, not {}", dims.len()))),
        }
    }
}
