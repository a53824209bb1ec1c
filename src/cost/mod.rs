//! Static cost: parameters, multiply-accumulates and memory, summed from the IR by
//! layer, block or stage. Exact integers end to end (u128, saturating); floats only
//! appear when a table is formatted. Each op's own rule lives beside the op
//! (`ops::*::cost`); the rules for the structural nodes, which only `full` counts,
//! are here.

pub mod admission;
pub mod rounding;
mod table;

pub use table::{Format, render, render_comparison, render_sweep};

use crate::ir::{Model, Node, NodeKind, Shape, Shortcut};
use crate::ops::{Cost, numel};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// Convolutions, linear layers and attention matmuls (= FlopCounterMode / 2).
    Core,
    /// fvcore 0.1.5 FlopCountAnalysis defaults.
    Fvcore,
    /// Core plus every elementwise, normalisation and pooling op.
    Full,
}

impl Convention {
    pub fn name(self) -> &'static str {
        match self {
            Convention::Core => "core",
            Convention::Fvcore => "fvcore",
            Convention::Full => "full",
        }
    }

    fn pick(self, cost: Cost) -> u128 {
        match self {
            Convention::Core => cost.core,
            Convention::Fvcore => cost.fvcore,
            Convention::Full => cost.full,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// Every op.
    Layer,
    /// Each block instance (`layer1.0`) as one row.
    Block,
    /// Each top-level child of the network (`conv1`, `layer1`, ..., `fc`) as one row.
    Stage,
}

/// Integers in JSON: numbers while they fit in 64 bits (every real model), decimal
/// strings beyond, so that absurd models are exact instead of wrapped.
/// An exact integer as JSON: a number when it fits in 64 bits, a decimal string beyond.
pub fn json_exact(value: u128) -> serde_json::Value {
    u64::try_from(value).map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

pub fn exact<S: serde::Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
    match u64::try_from(*value) {
        Ok(n) => serializer.serialize_u64(n),
        Err(_) => serializer.serialize_str(&value.to_string()),
    }
}

/// One row of a cost table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub op: String,
    pub output: Shape,
    #[serde(serialize_with = "exact")]
    pub params: u128,
    #[serde(serialize_with = "exact")]
    pub macs: u128,
    /// Output elements for the whole batch.
    #[serde(serialize_with = "exact")]
    pub activations: u128,
}

/// Memory in bytes, for float32 tensors.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    #[serde(serialize_with = "exact")]
    pub param_bytes: u128,
    /// Every op's output for the batch, plus the input: what one forward pass writes.
    #[serde(serialize_with = "exact")]
    pub forward_activation_bytes: u128,
    /// Estimate: weights + gradients + momentum + activations kept for backward.
    #[serde(serialize_with = "exact")]
    pub train_sgd_momentum_bytes: u128,
    /// Estimate: weights + gradients + two Adam moments + activations kept for backward.
    #[serde(serialize_with = "exact")]
    pub train_adam_bytes: u128,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub convention: Convention,
    pub input: Shape,
    pub batch: u64,
    #[serde(serialize_with = "exact")]
    pub params: u128,
    #[serde(serialize_with = "exact")]
    pub macs: u128,
    #[serde(serialize_with = "exact")]
    pub flops: u128,
    #[serde(serialize_with = "exact")]
    pub activations: u128,
    pub memory: Memory,
    #[serde(rename = "layers")]
    pub rows: Vec<Row>,
}

const FLOAT_BYTES: u128 = 4;

/// Costs one model. `batch` multiplies MACs and activations, not parameters.
pub fn report(model: &Model, convention: Convention, batch: u64, by: GroupBy) -> Report {
    let mut rows = Vec::new();
    for node in &model.nodes {
        collect(node, convention, batch, &mut rows);
    }
    let params = model.params();
    let macs = rows.iter().fold(0u128, |s, r| s.saturating_add(r.macs));
    let activations = rows.iter().fold(0u128, |s, r| s.saturating_add(r.activations));
    let input_elements = numel(&model.input).saturating_mul(batch as u128);
    let forward = activations.saturating_add(input_elements).saturating_mul(FLOAT_BYTES);
    let weights = params.saturating_mul(FLOAT_BYTES);
    let memory = Memory {
        param_bytes: weights,
        forward_activation_bytes: forward,
        train_sgd_momentum_bytes: weights.saturating_mul(3).saturating_add(forward),
        train_adam_bytes: weights.saturating_mul(4).saturating_add(forward),
    };
    let rows = if by == GroupBy::Layer { rows } else { group(model, convention, batch, by) };
    Report {
        model: model.name.clone(),
        convention,
        input: model.input,
        batch,
        params,
        macs,
        flops: macs.saturating_mul(2),
        activations,
        memory,
        rows,
    }
}

/// The cost of one node and everything inside it: (params, MACs, activations), as
/// `report` counts them (a shared module's weights once, at its first use).
pub fn subtree(node: &Node, convention: Convention, batch: u64) -> (u128, u128, u128) {
    let mut rows = Vec::new();
    collect(node, convention, batch, &mut rows);
    rows.iter().fold((0, 0, 0), |(p, m, a), r| {
        (p.saturating_add(r.params), m.saturating_add(r.macs), a.saturating_add(r.activations))
    })
}

/// One row per op, residual add, gate multiply and merge.
fn collect(node: &Node, convention: Convention, batch: u64, rows: &mut Vec<Row>) {
    let own = |op: String, cost: Cost, params: u128| Row {
        name: node.path.clone(),
        op,
        output: node.output,
        params,
        macs: convention.pick(cost).saturating_mul(batch as u128),
        activations: numel(&node.output).saturating_mul(batch as u128),
    };
    match &node.kind {
        NodeKind::Op { name, op, .. } => {
            let params = if node.shared {
                0
            } else {
                op.rule()
                    .tensors(&node.input)
                    .iter()
                    .filter(|t| t.trainable)
                    .map(|t| crate::ops::product(&t.shape))
                    .sum()
            };
            rows.push(own(name.to_string(), op.rule().cost(&node.input, &node.output), params));
        }
        _ => {
            for child in node.children() {
                collect(child, convention, batch, rows);
            }
            // Residual adds, gates and merges write a tensor too: they appear in every
            // convention (with the MACs that convention gives them), so activations and
            // memory do not depend on the convention.
            if let Some((op, cost)) = structural_cost(node) {
                rows.push(own(op.to_string(), cost, 0));
            }
        }
    }
}

/// Rules for the nodes that are not ops (only `full` counts their work):
/// - residual add: one addition per output element (none when the skip is off);
/// - scale: one multiplication per element of the input;
/// - parallel sum / mul: one op per output element for each branch after the first;
///   concat: nothing.
fn structural_cost(node: &Node) -> Option<(&'static str, Cost)> {
    let elements = numel(&node.output);
    match &node.kind {
        NodeKind::Residual { shortcut: Shortcut::Off, .. } => None,
        NodeKind::Residual { .. } => Some(("add", Cost::elementwise(elements))),
        NodeKind::Scale { .. } => Some(("scale", Cost::elementwise(elements))),
        NodeKind::Parallel { merge, branches } => match merge {
            crate::ir::Merge::Concat => Some(("concat", Cost::default())),
            _ => Some((
                merge.name(),
                Cost::elementwise(elements.saturating_mul(branches.len().saturating_sub(1) as u128)),
            )),
        },
        _ => None,
    }
}

/// Block or stage rows: each unit's subtree summed (a shared module's weights at its
/// first use, as everywhere), walking the tree so that two units of the same name
/// (a `let` module used twice) stay two rows; the merge of a form the units are seen
/// through is a row of its own, after its branches.
fn group(model: &Model, convention: Convention, batch: u64, by: GroupBy) -> Vec<Row> {
    fn units(node: &Node, convention: Convention, batch: u64, by: GroupBy, out: &mut Vec<Row>) {
        let see_through = match by {
            GroupBy::Stage => structural(node),
            _ => holds_blocks(node),
        };
        if !see_through {
            let (params, macs, activations) = subtree(node, convention, batch);
            out.push(Row {
                name: node.path.clone(),
                op: node.kind_name(),
                output: node.output,
                params,
                macs,
                activations,
            });
            return;
        }
        for child in node.children() {
            units(child, convention, batch, by, out);
        }
        if let Some((op, cost)) = structural_cost(node) {
            out.push(Row {
                name: node.path.clone(),
                op: op.to_string(),
                output: node.output,
                params: 0,
                macs: convention.pick(cost).saturating_mul(batch as u128),
                activations: numel(&node.output).saturating_mul(batch as u128),
            });
        }
    }
    let mut out = Vec::new();
    for node in &model.nodes {
        units(node, convention, batch, by, &mut out);
    }
    out
}

/// A residual, gate or parallel: a form with no name and no weights of its own.
pub fn structural(node: &Node) -> bool {
    matches!(node.kind, NodeKind::Residual { .. } | NodeKind::Scale { .. } | NodeKind::Parallel { .. })
}

/// Whether `--by block` looks inside this node for block instances: a stage, repeat or
/// `{ ... }` sequence, or a residual, gate or parallel form; anything else (a block
/// instance, an op) is one unit.
pub fn holds_blocks(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Block { name, .. } => matches!(name.as_str(), "stage" | "repeat" | "seq"),
        _ => structural(node),
    }
}
