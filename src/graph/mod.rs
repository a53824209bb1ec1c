//! Pictures of a network (`archc graph`): the IR as a tree of drawable items, each with
//! its shapes, its cost and the `.arch` line it comes from, then laid out top to bottom
//! (`layout`) and written as SVG, DOT, or an HTML page that lays the same tree out in
//! the browser and lets the reader open and close blocks.
//!
//! The tree keeps the IR's structure (a residual is a body beside its shortcut, a gate
//! is a side branch into a multiply, a parallel is branches into a merge) rather than
//! flattening it into an edge list, so that the layout can draw the ResNet paper's
//! figure instead of a general graph.

mod dot;
mod html;
pub mod layout;
mod svg;

use crate::cost::{self, Convention};
use crate::ir::{Merge, Model, Node, NodeKind, Shape, Shortcut};
use crate::source::Sources;
use serde::Serialize;

pub use dot::dot;
pub use html::html;
pub use svg::svg;

/// How much of the network one box stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Each top-level child of the network (`conv1`, `layer1`, ..., `fc`) as one box.
    Stage,
    /// Each block instance (`layer1.0`) as one box, inside its stage's frame.
    Block,
    /// Every op, inside the frames of its blocks and stages.
    Layer,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Stage => "stage",
            Level::Block => "block",
            Level::Layer => "layer",
        }
    }
}

/// What `archc graph` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A picture laid out by archc (same network, same bytes).
    Svg,
    /// One self-contained page: open and close blocks, search, hover for details.
    Html,
    /// Graphviz's language, for `dot -Tpng`.
    Dot,
}

impl Format {
    /// The format a file name asks for by its extension.
    pub fn of(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "svg" => Some(Format::Svg),
            "html" | "htm" => Some(Format::Html),
            "dot" | "gv" => Some(Format::Dot),
            _ => None,
        }
    }
}

/// The network drawn in `format` at `level`.
pub fn draw(model: &Model, sources: &Sources, format: Format, level: Level) -> String {
    let graph = build(model, sources);
    match format {
        Format::Svg => svg(&graph, level),
        Format::Html => html(&graph, level),
        Format::Dot => dot(&graph, level),
    }
}

/// One network, ready to draw.
#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    pub model: String,
    pub file: String,
    pub input: Shape,
    pub output: Shape,
    pub totals: Totals,
    /// The ten layers with the most MACs, most first.
    pub top: Vec<Top>,
    pub items: Vec<Item>,
}

/// What `archc flops` gives as totals (core convention, batch 1).
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    #[serde(serialize_with = "cost::exact")]
    pub params: u128,
    #[serde(serialize_with = "cost::exact")]
    pub macs: u128,
    #[serde(serialize_with = "cost::exact")]
    pub flops: u128,
    #[serde(serialize_with = "cost::exact")]
    pub forward_activation_bytes: u128,
    #[serde(serialize_with = "cost::exact")]
    pub train_sgd_momentum_bytes: u128,
}

#[derive(Clone, Debug, Serialize)]
pub struct Top {
    pub name: String,
    pub op: String,
    #[serde(serialize_with = "cost::exact")]
    pub macs: u128,
    /// The share of the network's MACs, in percent.
    pub percent: f64,
}

/// One node of the IR as drawn: an op, a block (or stage, or sequence), or one of the
/// structural forms with its branches.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// The dotted path (`layer2.0.conv1`); structural forms share their parent's.
    pub path: String,
    /// What the box says first: the path's last part, or the op for a numbered layer.
    pub label: String,
    /// `conv`, `bottleneck`, `stage`, `residual`, ...
    pub op: String,
    /// The op's arguments as the IR dump writes them (empty for blocks).
    pub args: String,
    pub input: Shape,
    pub output: Shape,
    #[serde(serialize_with = "cost::exact")]
    pub params: u128,
    #[serde(serialize_with = "cost::exact")]
    pub macs: u128,
    /// Bytes of float32 outputs this item writes for one image.
    #[serde(serialize_with = "cost::exact")]
    pub activation_bytes: u128,
    /// `file:line` of the `.arch` text that made it.
    pub source: String,
    /// What the box is coloured by: the op's family (`conv`, `norm`, ...) or `block`.
    pub family: &'static str,
    /// A second use of a `let`-bound module: its weights are counted at the first.
    pub shared: bool,
    /// One box at `--level stage` (a top-level child of the network).
    pub stage_unit: bool,
    /// One box at `--level block` (a block instance, as `archc flops --by block`).
    pub block_unit: bool,
    #[serde(flatten)]
    pub kind: ItemKind,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ItemKind {
    Layer,
    /// A block instance, stage, repeat or sequence: its children in order.
    Group {
        children: Vec<Item>,
    },
    /// `body(x) + shortcut(x)`; `projection` empty for an identity shortcut. `off`: a
    /// residual switched off (`skip: false`), drawn as its body alone.
    Residual {
        body: Vec<Item>,
        projection: Vec<Item>,
        off: bool,
    },
    /// `x * gate(x)`.
    Scale {
        gate: Vec<Item>,
    },
    /// Every branch from the same input, merged.
    Parallel {
        merge: &'static str,
        branches: Vec<Item>,
    },
}

impl Item {
    /// The merge this item draws (`+`, `×`, concat), if any: what `archc flops` counts
    /// as a row of its own.
    pub fn merge(&self) -> Option<&'static str> {
        match &self.kind {
            ItemKind::Residual { off: false, .. } => Some("add"),
            ItemKind::Scale { .. } => Some("mul"),
            ItemKind::Parallel { merge, .. } => Some(merge),
            _ => None,
        }
    }

    /// Whether the item is one box at `level`.
    pub fn collapsed(&self, level: Level) -> bool {
        !matches!(self.kind, ItemKind::Layer)
            && match level {
                Level::Stage => self.stage_unit,
                Level::Block => self.block_unit,
                Level::Layer => false,
            }
    }

    /// A stage, repeat or `{ ... }` sequence: what holds blocks rather than being one.
    pub fn is_container(&self) -> bool {
        matches!(self.kind, ItemKind::Group { .. }) && matches!(self.op.as_str(), "stage" | "repeat" | "seq")
    }

    /// The shortcut a closed block hides, for the arc drawn beside its box: `identity`
    /// or `projection` for the first residual inside it (none for a closed stage, whose
    /// blocks each have their own).
    pub fn hidden_shortcut(&self) -> Option<&'static str> {
        if self.is_container() { None } else { self.first_shortcut() }
    }

    fn first_shortcut(&self) -> Option<&'static str> {
        match &self.kind {
            ItemKind::Residual { off: false, projection, .. } => {
                Some(if projection.is_empty() { "identity" } else { "projection" })
            }
            ItemKind::Group { .. } | ItemKind::Parallel { .. } => {
                self.children().into_iter().find_map(Item::first_shortcut)
            }
            _ => None,
        }
    }

    /// The gates (SE, CBAM) a closed block hides: the outermost parts of it that hold
    /// a `x * gate(x)`, as `se (cbam)`; for a stage, those of its blocks, once each.
    pub fn hidden_gates(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for child in self.children() {
            let found = match &child.kind {
                ItemKind::Scale { .. } => vec!["gate".to_string()],
                _ if self.is_container() => child.hidden_gates(),
                _ if child.holds_gate() && !child.path.is_empty() => vec![if child.label == child.op {
                    child.op.clone()
                } else {
                    format!("{} ({})", child.label, child.op)
                }],
                _ => child.hidden_gates(),
            };
            for gate in found {
                if !out.contains(&gate) {
                    out.push(gate);
                }
            }
        }
        out
    }

    /// What a closed stage holds when its parts are alike: `3 × bottleneck`.
    pub fn contents(&self) -> Option<String> {
        let children = self.children();
        let first = children.first()?;
        (self.is_container() && children.iter().all(|c| c.op == first.op))
            .then(|| format!("{} × {}", children.len(), first.op))
    }

    fn holds_gate(&self) -> bool {
        matches!(self.kind, ItemKind::Scale { .. }) || self.children().iter().any(|c| c.holds_gate())
    }

    pub fn children(&self) -> Vec<&Item> {
        match &self.kind {
            ItemKind::Layer => Vec::new(),
            ItemKind::Group { children } => children.iter().collect(),
            ItemKind::Residual { body, projection, .. } => body.iter().chain(projection).collect(),
            ItemKind::Scale { gate } => gate.iter().collect(),
            ItemKind::Parallel { branches, .. } => branches.iter().collect(),
        }
    }

    /// The first line of the item's box: `conv1 · conv`, `layer1.0 · bottleneck`. A
    /// closed block gives its whole path when it fits (`room` characters), else its
    /// last part (its frame names the rest), and drops the op before the name.
    pub fn title(&self, level: Level, room: usize) -> String {
        // A closed stage says what it holds instead of `stage`.
        let op = match self.contents() {
            Some(contents) if self.collapsed(level) => contents,
            _ => self.op.clone(),
        };
        let with_op =
            |name: &str| if name.is_empty() || name == self.op { op.clone() } else { format!("{name} · {op}") };
        if !self.collapsed(level) || self.path.is_empty() {
            return with_op(&self.label);
        }
        let candidates = [with_op(&self.path), with_op(&self.label), self.label.clone()];
        candidates.into_iter().find(|c| c.chars().count() <= room).unwrap_or_else(|| self.label.clone())
    }

    /// An open block's frame says where it is, `layer1.0 · bottleneck · 232 M MACs`, in
    /// `room` characters: its whole path when that fits, else the path from its last
    /// named part (`mlp`, `layer1.0`), then cut.
    pub fn frame_title(&self, room: usize) -> String {
        let parts: Vec<&str> = self.path.split('.').collect();
        let from = (1..parts.len()).rev().find(|&i| !parts[i].chars().all(|c| c.is_ascii_digit())).unwrap_or(0);
        let line = |name: &str| {
            let what = if name.is_empty() { self.op.clone() } else { format!("{name} · {}", self.op) };
            format!("{what} · {} MACs", crate::format::human(self.macs))
        };
        let whole = line(&self.path);
        if whole.chars().count() <= room { whole } else { line(&parts[from..].join(".")) }
    }

    /// The tooltip: everything the item's box has no room for.
    pub fn details(&self) -> String {
        let mut out = String::new();
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push('\n');
        }
        out.push_str(&self.op);
        if !self.args.is_empty() {
            out.push_str(&format!("({})", self.args));
        }
        if self.shared {
            out.push_str(" (shared: weights of its first use)");
        }
        out.push_str(&format!("\n{} → {}", self.input, self.output));
        out.push_str(&format!(
            "\nparams {}  MACs {}  activations {}",
            crate::format::thousands(self.params),
            crate::format::thousands(self.macs),
            crate::format::bytes(self.activation_bytes)
        ));
        if !self.source.is_empty() {
            out.push_str(&format!("\n{}", self.source));
        }
        out
    }
}

/// `64×56×56`, `197×192` (tokens), `1000`.
pub fn compact(shape: &Shape) -> String {
    match shape {
        Shape::Image { c, h, w } => format!("{c}×{h}×{w}"),
        Shape::Tokens { n, d } => format!("{n} tokens × {d}"),
        Shape::Vector { d } => format!("{d}"),
    }
}

/// The network as a tree of items with their costs (core MACs, batch 1).
pub fn build(model: &Model, sources: &Sources) -> Graph {
    let report = cost::report(model, Convention::Core, 1, cost::GroupBy::Layer);
    let mut rows: Vec<&cost::Row> = report.rows.iter().filter(|r| r.macs > 0).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.macs));
    let top = rows
        .iter()
        .take(10)
        .map(|r| Top {
            name: r.name.clone(),
            op: r.op.clone(),
            macs: r.macs,
            percent: if report.macs == 0 { 0.0 } else { r.macs as f64 * 100.0 / report.macs as f64 },
        })
        .collect();
    let items = model.nodes.iter().map(|node| item(node, sources, true, !cost::holds_blocks(node), false)).collect();
    Graph {
        model: model.name.clone(),
        file: sources.name(model.span.file).to_string(),
        input: model.input,
        output: model.output,
        totals: Totals {
            params: report.params,
            macs: report.macs,
            flops: report.flops,
            forward_activation_bytes: report.memory.forward_activation_bytes,
            train_sgd_momentum_bytes: report.memory.train_sgd_momentum_bytes,
        },
        top,
        items,
    }
}

/// `top`: the node is at the network's level (seen through unnamed residuals, gates
/// and parallels there); `block_unit`: it is a block instance (or an op) that no block
/// above encloses (`enclosed`: one above does). Units as `archc flops --by` has them.
fn item(node: &Node, sources: &Sources, top: bool, block_unit: bool, enclosed: bool) -> Item {
    let (params, macs, activations) = cost::subtree(node, Convention::Core, 1);
    let stage_unit = top && !cost::structural(node);
    let top = top && cost::structural(node);
    let enclosed = enclosed || block_unit;
    let child = |child: &Node| item(child, sources, top, !enclosed && !cost::holds_blocks(child), enclosed);
    let items = |nodes: &[Node]| -> Vec<Item> { nodes.iter().map(child).collect() };
    let (op, args, kind) = match &node.kind {
        NodeKind::Op { name, args, .. } => (name.to_string(), args.render(), ItemKind::Layer),
        NodeKind::Block { name, children } => {
            (name.clone(), String::new(), ItemKind::Group { children: items(children) })
        }
        NodeKind::Residual { body, shortcut } => {
            let projection = match shortcut {
                Shortcut::Projection(projection) => vec![child(projection)],
                _ => Vec::new(),
            };
            let off = matches!(shortcut, Shortcut::Off);
            (node.kind_name(), String::new(), ItemKind::Residual { body: items(body), projection, off })
        }
        NodeKind::Scale { gate } => (node.kind_name(), String::new(), ItemKind::Scale { gate: items(gate) }),
        NodeKind::Parallel { merge, branches } => {
            let merge = match merge {
                Merge::Sum => "sum",
                Merge::Concat => "concat",
                Merge::Mul => "mul",
            };
            (node.kind_name(), String::new(), ItemKind::Parallel { merge, branches: items(branches) })
        }
    };
    let last = node.path.rsplit('.').next().unwrap_or_default();
    let numbered = last.chars().all(|c| c.is_ascii_digit());
    let structural =
        matches!(node.kind, NodeKind::Residual { .. } | NodeKind::Scale { .. } | NodeKind::Parallel { .. });
    let label = if numbered || structural { op.clone() } else { last.to_string() };
    let (line, _) = sources.line_column(node.span.file, node.span.start);
    Item {
        path: if structural { String::new() } else { node.path.clone() },
        label,
        op,
        args,
        input: node.input,
        output: node.output,
        params,
        macs,
        activation_bytes: activations.saturating_mul(4),
        source: format!("{}:{line}", sources.name(node.span.file)),
        family: match &node.kind {
            NodeKind::Op { name, .. } => crate::ops::family(name).unwrap_or("other"),
            _ => "block",
        },
        shared: node.shared,
        stage_unit,
        block_unit,
        kind,
    }
}
