//! What an edit to a network changed (`archc diff A B`): modules added, removed and
//! changed, matched by dotted name so that an SE inserted into `layer3` is exactly those
//! modules rather than a shifted list; tensors added, removed and reshaped, by PyTorch
//! name; and the cost of it per stage and in total.
//!
//! Matching: inside each block, the children (seen through residuals, gates and
//! parallels, which have no names) are aligned by a longest common subsequence on their
//! names; a numbered child (`layer1.0.2`, an unlabelled `relu`) matches by its op, so
//! that numbering shifted by an insertion is no change (it is reported only where it
//! renames weights). A matched pair differs by op, arguments, output shape or wiring
//! (the residuals, gates and parallels inside the module itself).

use crate::cost::{self, Convention, GroupBy};
use crate::ir::{Model, Node, NodeKind, Shortcut};
use crate::lower::transfer::{NamedShape, Reshaped, Transfer};
use serde::Serialize;

/// One side of the comparison, as the report names it.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub file: String,
    pub model: String,
    /// The input it was built for (its own, or `--input`).
    pub input: crate::ir::Shape,
    /// The `--set` values this side was built with.
    pub settings: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub schema: &'static str,
    pub a: Side,
    pub b: Side,
    pub batch: u64,
    /// Added and removed subtrees (by their root), changed and renumbered modules, in
    /// B's order with removed ones where they stood in A.
    pub modules: Vec<ModuleChange>,
    pub tensors: Tensors,
    pub stages: Vec<StageCost>,
    pub total: StageCost,
    /// What A's trained weights (`--weights`) give B, and whether they fit A.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<WeightsTransfer>,
}

pub const SCHEMA: &str = "archc-diff/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
    /// Same module under a new number: its weights change names.
    Renumbered,
    /// The same named module in another place among its siblings (`after` says where).
    Moved,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModuleChange {
    pub change: Change,
    /// B's path (A's for a removed module).
    pub path: String,
    /// A's path, where it differs (renumbered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
    pub op: String,
    /// What differs: `op basic → bottleneck`, `out 64 → 128`, `output image(…) → …`,
    /// `wiring residual (identity shortcut) → residual (off)`.
    pub what: Vec<String>,
    /// The module just before it in its block (B's side), for an added or removed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Layers inside an added or removed module (1 for a layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
    /// Tensors of an added or removed module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<usize>,
    #[serde(serialize_with = "signed")]
    pub params: i128,
    #[serde(serialize_with = "signed")]
    pub macs: i128,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Tensors {
    /// Same name, same shape.
    pub same: usize,
    pub added: Vec<NamedShape>,
    pub removed: Vec<NamedShape>,
    /// `found` is A's shape, `expected` B's.
    pub reshaped: Vec<Reshaped>,
}

/// A stage's (or the whole network's) cost on each side; `None` where it has no such
/// stage.
#[derive(Clone, Debug, Serialize)]
pub struct StageCost {
    pub name: String,
    /// The stage's op or block (`stage`, `conv`, `relu`).
    pub op: String,
    pub a: Option<Cost>,
    pub b: Option<Cost>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    #[serde(serialize_with = "cost::exact")]
    pub params: u128,
    #[serde(serialize_with = "cost::exact")]
    pub macs: u128,
    /// Bytes of float32 activations one forward pass writes for the batch (the total
    /// adds the input, as `archc flops` does).
    #[serde(serialize_with = "cost::exact")]
    pub activation_bytes: u128,
}

#[derive(Clone, Debug, Serialize)]
pub struct WeightsTransfer {
    pub weights: std::path::PathBuf,
    /// Tensors where the file and A differ (A's that it lacks or shapes otherwise, its
    /// own that A lacks): not A's weights, then.
    pub misfit_a: usize,
    pub transfer: Transfer,
}

fn signed<S: serde::Serializer>(value: &i128, serializer: S) -> Result<S::Ok, S::Error> {
    match i64::try_from(*value) {
        Ok(n) => serializer.serialize_i64(n),
        Err(_) => serializer.serialize_str(&value.to_string()),
    }
}

impl Diff {
    /// Nothing differs: same modules, same tensors, same wiring.
    pub fn identical(&self) -> bool {
        self.modules.is_empty()
            && self.tensors.added.is_empty()
            && self.tensors.removed.is_empty()
            && self.tensors.reshaped.is_empty()
    }

    /// Same tensors by name and shape, but modules changed: the wiring differs.
    pub fn same_tensors(&self) -> bool {
        self.tensors.added.is_empty() && self.tensors.removed.is_empty() && self.tensors.reshaped.is_empty()
    }

    pub fn count(&self, change: Change) -> usize {
        self.modules.iter().filter(|m| m.change == change).count()
    }
}

/// Compares two built networks. `batch` multiplies MACs and activations.
pub fn compare(a: (&Model, Side), b: (&Model, Side), batch: u64) -> Diff {
    let (model_a, side_a) = a;
    let (model_b, side_b) = b;
    let mut modules = Vec::new();
    // The network's own residuals, gates and parallels (outside any block).
    let (root_a, root_b) = (forms(model_a.nodes.iter()), forms(model_b.nodes.iter()));
    if root_a != root_b {
        let (params, macs) = (delta(model_a.params(), model_b.params()), 0);
        modules.push(ModuleChange {
            change: Change::Changed,
            path: "(network)".into(),
            was: None,
            op: model_b.name.clone(),
            what: vec![format!("wiring {} → {}", words(&root_a), words(&root_b))],
            after: None,
            layers: None,
            tensors: None,
            params,
            macs,
        });
    }
    align(&named(&model_a.nodes), &named(&model_b.nodes), batch, &mut modules);
    let report_a = cost::report(model_a, Convention::Core, batch, GroupBy::Stage);
    let report_b = cost::report(model_b, Convention::Core, batch, GroupBy::Stage);
    let row_cost =
        |r: &cost::Row| Cost { params: r.params, macs: r.macs, activation_bytes: r.activations.saturating_mul(4) };
    let (rows_a, rows_b) = (&report_a.rows, &report_b.rows);
    // By name; the network's own merges (no name) by what they are, too.
    let aligned = merge_aligned(rows_a.len(), rows_b.len(), |i, j| {
        let (a, b) = (&rows_a[i], &rows_b[j]);
        match (a.name == b.name, a.op == b.op) {
            (true, true) => 2,
            (true, false) if !a.name.is_empty() => 1,
            _ => 0,
        }
    });
    // A stage that moved is one row, where B has it.
    let moved = |i: usize, j: usize| !rows_a[i].name.is_empty() && rows_a[i].name == rows_b[j].name;
    let stages = pair_moved(aligned, moved)
        .into_iter()
        .map(|((i, j), _)| {
            let a = i.map(|i| &report_a.rows[i]);
            let b = j.map(|j| &report_b.rows[j]);
            let (name, op) = b.or(a).map(|r| (r.name.clone(), r.op.clone())).unwrap_or_default();
            StageCost { name, op, a: a.map(row_cost), b: b.map(row_cost) }
        })
        .collect();
    let whole =
        |r: &cost::Report| Cost { params: r.params, macs: r.macs, activation_bytes: r.activations.saturating_mul(4) };
    Diff {
        schema: SCHEMA,
        a: side_a,
        b: side_b,
        batch,
        modules,
        tensors: tensors(model_a, model_b),
        stages,
        total: StageCost {
            name: "total".into(),
            op: String::new(),
            a: Some(whole(&report_a)),
            b: Some(whole(&report_b)),
        },
        transfer: None,
    }
}

/// What `weights` (A's, trained) give B: the report `archc train --init` prints.
pub fn transfer(a: &Model, b: &Model, path: &std::path::Path) -> Result<WeightsTransfer, crate::error::Error> {
    let weights = crate::lower::weights::StateDict::read(path)?;
    let fit = Transfer::plan(a, &weights);
    Ok(WeightsTransfer {
        weights: path.to_path_buf(),
        misfit_a: fit.new.len() + fit.reshaped.len() + fit.unused.len(),
        transfer: Transfer::plan(b, &weights),
    })
}

fn counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

fn tensors(a: &Model, b: &Model) -> Tensors {
    let a_tensors: Vec<_> = a.tensors().into_iter().filter(|t| !counter(&t.name)).collect();
    let b_tensors: Vec<_> = b.tensors().into_iter().filter(|t| !counter(&t.name)).collect();
    let in_a: std::collections::HashMap<&str, &Vec<u64>> =
        a_tensors.iter().map(|t| (t.name.as_str(), &t.shape)).collect();
    let in_b: std::collections::HashSet<&str> = b_tensors.iter().map(|t| t.name.as_str()).collect();
    let mut out = Tensors::default();
    for t in &b_tensors {
        match in_a.get(t.name.as_str()) {
            None => out.added.push(NamedShape { name: t.name.clone(), shape: t.shape.clone() }),
            Some(shape) if **shape == t.shape => out.same += 1,
            Some(shape) => {
                out.reshaped.push(Reshaped { name: t.name.clone(), found: (*shape).clone(), expected: t.shape.clone() })
            }
        }
    }
    for t in a_tensors.iter().filter(|t| !in_b.contains(t.name.as_str())) {
        out.removed.push(NamedShape { name: t.name.clone(), shape: t.shape.clone() });
    }
    out
}

/// The named children of a list of nodes, seen through the unnamed forms.
fn named<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Vec<&'a Node> {
    let mut out = Vec::new();
    for node in nodes {
        if matches!(node.kind, NodeKind::Residual { .. } | NodeKind::Scale { .. } | NodeKind::Parallel { .. }) {
            out.extend(named(node.children()));
        } else {
            out.push(node);
        }
    }
    out
}

/// The residuals, gates and parallels among `nodes` and inside them (not inside named
/// children), as words: what "wiring" compares.
fn forms<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Vec<String> {
    let mut out = Vec::new();
    for node in nodes {
        let word = match &node.kind {
            NodeKind::Residual { shortcut: Shortcut::Identity, .. } => "residual (identity shortcut)",
            NodeKind::Residual { shortcut: Shortcut::Projection(_), .. } => "residual (projection shortcut)",
            NodeKind::Residual { shortcut: Shortcut::Off, .. } => "residual (off)",
            NodeKind::Scale { .. } => "gate",
            NodeKind::Parallel { merge, .. } => match merge {
                crate::ir::Merge::Sum => "parallel (sum)",
                crate::ir::Merge::Concat => "parallel (concat)",
                crate::ir::Merge::Mul => "parallel (mul)",
            },
            _ => continue,
        };
        out.push(word.to_string());
        out.extend(forms(node.children()));
    }
    out
}

/// A module's own wiring (none for a layer).
fn wiring(node: &Node) -> Vec<String> {
    if matches!(node.kind, NodeKind::Op { .. }) { Vec::new() } else { forms(node.children()) }
}

fn words(wiring: &[String]) -> String {
    if wiring.is_empty() { "none".to_string() } else { wiring.join(", ") }
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// What two children are matched by: their name, or their op when they are numbered.
fn key(node: &Node) -> String {
    let name = last(&node.path);
    if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
        format!("#{}", node.kind_name())
    } else {
        name.to_string()
    }
}

fn align(a: &[&Node], b: &[&Node], batch: u64, out: &mut Vec<ModuleChange>) {
    let numbered = |node: &Node| key(node).starts_with('#');
    // Same name (or, numbered, same op) first, keeping the number where it can; then
    // numbered modules left at the same number with different ops: one changed module.
    // Among those, a layer identical to the other side's (same op, arguments, shapes,
    // weights) before one that merely keeps its number: an inserted conv is added,
    // not a change of the conv that follows it.
    let worth = |i: usize, j: usize| -> u32 {
        if key(a[i]) == key(b[j]) {
            1000 + 4 * u32::from(alike(a[i], b[j], batch)) + u32::from(a[i].path == b[j].path)
        } else {
            u32::from(numbered(a[i]) && numbered(b[j]) && a[i].path == b[j].path)
        }
    };
    let mut previous: Option<String> = None;
    // A named module on both sides that the order could not match has moved.
    let moved = |i: usize, j: usize| !numbered(a[i]) && key(a[i]) == key(b[j]);
    for (pair, was_moved) in pair_moved(merge_aligned(a.len(), b.len(), worth), moved) {
        match pair {
            (Some(i), Some(j)) => {
                let place = was_moved.then(|| previous.clone().unwrap_or_else(|| "(first)".into()));
                compare_pair(a[i], b[j], place, batch, out);
                previous = Some(b[j].path.clone());
            }
            (None, Some(j)) => {
                out.push(whole(Change::Added, b[j], previous.clone(), batch));
                previous = Some(b[j].path.clone());
            }
            (Some(i), None) => out.push(whole(Change::Removed, a[i], previous.clone(), batch)),
            (None, None) => {}
        }
    }
}

/// The same op with the same arguments, shapes, parameters and MACs.
fn alike(a: &Node, b: &Node, batch: u64) -> bool {
    let args = |node: &Node| match &node.kind {
        NodeKind::Op { args, .. } => args.render(),
        _ => String::new(),
    };
    a.kind_name() == b.kind_name()
        && (a.input, a.output) == (b.input, b.output)
        && args(a) == args(b)
        && totals(a, batch) == totals(b, batch)
}

fn holds_tensors(node: &Node) -> bool {
    let mut any = false;
    node.walk(0, &mut |n, _| any |= !n.shared && !n.own_tensors().is_empty());
    any
}

fn totals(node: &Node, batch: u64) -> (u128, u128) {
    let (params, macs, _) = cost::subtree(node, Convention::Core, batch);
    (params, macs)
}

fn delta(a: u128, b: u128) -> i128 {
    let clamp = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
    clamp(b).saturating_sub(clamp(a))
}

fn whole(change: Change, node: &Node, after: Option<String>, batch: u64) -> ModuleChange {
    let (params, macs) = totals(node, batch);
    let mut layers = 0;
    node.walk(0, &mut |n, _| layers += usize::from(matches!(n.kind, NodeKind::Op { .. })));
    let mut tensors = 0;
    node.walk(0, &mut |n, _| {
        if !n.shared {
            tensors += n.own_tensors().iter().filter(|t| !t.suffix.ends_with("num_batches_tracked")).count()
        }
    });
    let sign = if change == Change::Added { 1 } else { -1 };
    ModuleChange {
        change,
        path: node.path.clone(),
        was: None,
        op: node.kind_name(),
        what: Vec::new(),
        after,
        layers: Some(layers),
        tensors: Some(tensors),
        params: sign * i128::try_from(params).unwrap_or(i128::MAX),
        macs: sign * i128::try_from(macs).unwrap_or(i128::MAX),
    }
}

/// `moved_after`: the pair was matched out of order; the module it now follows.
fn compare_pair(a: &Node, b: &Node, moved_after: Option<String>, batch: u64, out: &mut Vec<ModuleChange>) {
    let mut what = Vec::new();
    let (op_a, op_b) = (a.kind_name(), b.kind_name());
    if op_a != op_b {
        what.push(format!("op {op_a} → {op_b}"));
    } else if let (NodeKind::Op { args: args_a, .. }, NodeKind::Op { args: args_b, .. }) = (&a.kind, &b.kind) {
        let render = |args: &crate::ops::Args| -> Vec<(String, String)> {
            args.values.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
        };
        let (list_a, list_b) = (render(args_a), render(args_b));
        for (name, value_b) in &list_b {
            let value_a = list_a.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
            if &value_a != value_b {
                what.push(format!("{name} {value_a} → {value_b}"));
            }
        }
    }
    let (params_a, macs_a) = totals(a, batch);
    let (params_b, macs_b) = totals(b, batch);
    // A new input matters where it changes the module's weights or work (a conv after
    // a wider one), not where it only passes through.
    if a.input != b.input && (params_a != params_b || macs_a != macs_b) {
        what.push(format!("input {} → {}", a.input, b.input));
    }
    if a.output != b.output {
        what.push(format!("output {} → {}", a.output, b.output));
    }
    // A different block is wired its own way; its wiring says nothing more.
    let (wiring_a, wiring_b) = (wiring(a), wiring(b));
    if op_a == op_b && wiring_a != wiring_b {
        what.push(format!("wiring {} → {}", words(&wiring_a), words(&wiring_b)));
    }
    let renamed = a.path != b.path && holds_tensors(a);
    let own = |change| ModuleChange {
        change,
        path: b.path.clone(),
        was: (a.path != b.path).then(|| a.path.clone()),
        op: op_b.clone(),
        what: what.clone(),
        after: moved_after.clone(),
        layers: None,
        tensors: None,
        params: delta(params_a, params_b),
        macs: delta(macs_a, macs_b),
    };
    let change = if moved_after.is_some() {
        Change::Moved
    } else if !what.is_empty() {
        Change::Changed
    } else {
        Change::Renumbered
    };
    if op_a != op_b {
        // A different block: its insides are not the same thing renamed.
        out.push(own(change));
        return;
    }
    if moved_after.is_some() || !what.is_empty() || renamed {
        out.push(own(change));
    }
    if !matches!(a.kind, NodeKind::Op { .. }) {
        align(&named(a.children()), &named(b.children()), batch, out);
    }
}

/// An entry of A, of B, or one of each matched.
type Pair = (Option<usize>, Option<usize>);

/// The merged pairs with each A-only entry that `same` pairs with a B-only entry joined
/// to it, at B's place (marked `true`: matched out of order).
fn pair_moved(pairs: Vec<Pair>, same: impl Fn(usize, usize) -> bool) -> Vec<(Pair, bool)> {
    let only_a: Vec<usize> =
        pairs.iter().filter_map(|p| if let (Some(i), None) = p { Some(*i) } else { None }).collect();
    let mut taken = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for pair in &pairs {
        match *pair {
            (None, Some(j)) => match only_a.iter().find(|&&i| !taken.contains(&i) && same(i, j)) {
                Some(&i) => {
                    taken.insert(i);
                    out.push(((Some(i), Some(j)), true));
                }
                None => out.push((*pair, false)),
            },
            _ => out.push((*pair, false)),
        }
    }
    out.retain(|(pair, moved)| *moved || !matches!(pair, (Some(i), None) if taken.contains(i)));
    out
}

/// Two lists merged along the alignment (no crossings) whose matched pairs are worth
/// the most (`worth` 0: cannot match): `(Some(i), Some(j))` for a match, `(Some(i),
/// None)` for A's alone, `(None, Some(j))` for B's alone, in B's order with A's
/// unmatched entries where they stood.
fn merge_aligned(n: usize, m: usize, worth: impl Fn(usize, usize) -> u32) -> Vec<Pair> {
    let mut table = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let matched = match worth(i, j) {
                0 => 0,
                w => table[i + 1][j + 1] + w,
            };
            table[i][j] = matched.max(table[i + 1][j]).max(table[i][j + 1]);
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        let w = if i < n && j < m { worth(i, j) } else { 0 };
        if w > 0 && table[i][j] == table[i + 1][j + 1] + w {
            out.push((Some(i), Some(j)));
            i += 1;
            j += 1;
        } else if i < n && (j == m || table[i + 1][j] >= table[i][j + 1]) {
            out.push((Some(i), None));
            i += 1;
        } else {
            out.push((None, Some(j)));
            j += 1;
        }
    }
    out
}
