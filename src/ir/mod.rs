//! The IR: a tree of named, fully shaped nodes. Everything downstream (check, cost,
//! lower) reads this and never re-derives a shape.

mod print;

pub use crate::tensor::Shape;
pub use print::{dump, trace, trace_steps};

use crate::ops::{Args, Op, TensorSpec};
use crate::source::Span;

/// One elaborated network.
#[derive(Clone, Debug)]
pub struct Model {
    pub name: String,
    pub input: Shape,
    pub output: Shape,
    pub nodes: Vec<Node>,
    pub span: Span,
}

/// One layer as the checker met it, in the order it was checked, whether it was built
/// or failed: what `check --trace` shows for a network with errors, and what the
/// language server's hover reads (a layer in a block has one step per instance).
#[derive(Clone, Debug)]
pub struct Step {
    pub path: String,
    pub name: String,
    /// The primitive, or `None` for a structural form that failed (a residual whose
    /// shortcut does not fit).
    pub op: Option<Op>,
    pub input: Shape,
    /// `None` when the layer failed and no shape could be guessed for what follows.
    pub output: Option<Shape>,
    pub span: Span,
    /// The error this layer's shape rule reported, if it failed.
    pub error: Option<crate::diagnostics::Code>,
}

/// A computed value that was rounded to a whole number while a network was built:
/// `make_divisible(planes * width, 8)`, `round(3 * depth)`, an integer division that
/// dropped a remainder. What `check --rounding` lists.
/// The rule of a `Rounding` made by an integer `/` that dropped a remainder.
pub const FLOOR_DIVISION: &str = "floor division";

#[derive(Clone, Debug, PartialEq)]
pub struct Rounding {
    /// The expression that rounded.
    pub span: Span,
    /// How: `round`, `floor`, `ceil`, `make_divisible(·, 8)`, `floor division`.
    pub rule: String,
    /// The value before rounding.
    pub exact: f64,
    pub rounded: i64,
}

#[derive(Clone, Debug)]
pub struct Node {
    /// The dotted path (`layer2.0.conv1`); weights live under it. Structural nodes
    /// (residual, scale, parallel) share their parent's path.
    pub path: String,
    pub kind: NodeKind,
    pub input: Shape,
    pub output: Shape,
    pub span: Span,
    /// Set on the second and later uses of a `let`-bound module: the weights are the
    /// ones of the first use, at the same path, and are not counted again.
    pub shared: bool,
}

#[derive(Clone, Debug)]
pub enum NodeKind {
    Op {
        name: &'static str,
        args: Args,
        op: Op,
    },
    /// A block instance (`bottleneck`), a `{ ... }` sequence (`seq`), or the copies made
    /// by `stage` / `repeat`.
    Block {
        name: String,
        children: Vec<Node>,
    },
    /// `body(x) + shortcut(x)`.
    Residual {
        body: Vec<Node>,
        shortcut: Shortcut,
    },
    /// `x * gate(x)`, the gate broadcast over channels or positions.
    Scale {
        gate: Vec<Node>,
    },
    /// Every branch sees the same input; outputs merged.
    Parallel {
        merge: Merge,
        branches: Vec<Node>,
    },
}

#[derive(Clone, Debug)]
pub enum Shortcut {
    Identity,
    Projection(Box<Node>),
    /// `residual(enabled: false)`: the body alone, a plain network.
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    Sum,
    Concat,
    Mul,
}

impl Merge {
    pub fn name(self) -> &'static str {
        match self {
            Merge::Sum => "sum",
            Merge::Concat => "concat",
            Merge::Mul => "mul",
        }
    }
}

/// A parameter or buffer with its full PyTorch-style name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub trainable: bool,
}

impl Node {
    /// Direct children, in order (shortcut projection last).
    pub fn children(&self) -> Vec<&Node> {
        match &self.kind {
            NodeKind::Op { .. } => Vec::new(),
            NodeKind::Block { children, .. } => children.iter().collect(),
            NodeKind::Residual { body, shortcut } => {
                let mut all: Vec<&Node> = body.iter().collect();
                if let Shortcut::Projection(projection) = shortcut {
                    all.push(projection);
                }
                all
            }
            NodeKind::Scale { gate } => gate.iter().collect(),
            NodeKind::Parallel { branches, .. } => branches.iter().collect(),
        }
    }

    /// The op's own tensors (empty for composite nodes).
    pub fn own_tensors(&self) -> Vec<TensorSpec> {
        match &self.kind {
            NodeKind::Op { op, .. } => op.rule().tensors(&self.input),
            _ => Vec::new(),
        }
    }

    pub fn kind_name(&self) -> String {
        match &self.kind {
            NodeKind::Op { name, .. } => name.to_string(),
            NodeKind::Block { name, .. } => name.clone(),
            NodeKind::Residual { shortcut: Shortcut::Off, .. } => "residual(off)".into(),
            NodeKind::Residual { .. } => "residual".into(),
            NodeKind::Scale { .. } => "scale".into(),
            NodeKind::Parallel { merge, .. } => format!("parallel({})", merge.name()),
        }
    }

    fn collect_tensors(&self, out: &mut Vec<NamedTensor>) {
        if self.shared {
            return;
        }
        for tensor in self.own_tensors() {
            let name = if tensor.suffix.is_empty() { self.path.clone() } else { join_path(&self.path, tensor.suffix) };
            out.push(NamedTensor { name, shape: tensor.shape, trainable: tensor.trainable });
        }
        for child in self.children() {
            child.collect_tensors(out);
        }
    }

    /// Visits this node and every descendant, depth first, with the nesting depth.
    pub fn walk<'a>(&'a self, depth: usize, visit: &mut dyn FnMut(&'a Node, usize)) {
        visit(self, depth);
        for child in self.children() {
            child.walk(depth + 1, visit);
        }
    }
}

impl Model {
    /// Every parameter and buffer, named as PyTorch's `state_dict()` would name it.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for node in &self.nodes {
            node.collect_tensors(&mut out);
        }
        out
    }

    /// Trainable parameters (`sum(p.numel() for p in model.parameters())`).
    pub fn params(&self) -> u128 {
        self.tensors()
            .iter()
            .filter(|t| t.trainable)
            .fold(0u128, |sum, t| sum.saturating_add(crate::ops::product(&t.shape)))
    }

    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Node, usize)) {
        for node in &self.nodes {
            node.walk(0, visit);
        }
    }
}

pub fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}
