//! Text forms of the IR: the shape trace (`archc check --trace`) and the canonical IR
//! dump (`archc ir`). Both are snapshot-tested.

use super::{Model, Node, NodeKind, Shape, Shortcut, Step};
use crate::ops::TensorSpec;
use std::fmt::Write;

/// One line per node: dotted name, op, output shape, indented by nesting.
pub fn trace(model: &Model) -> String {
    let mut rows: Vec<(usize, String, String, String)> = Vec::new();
    model.walk(&mut |node, depth| {
        let name = match &node.kind {
            NodeKind::Op { .. } | NodeKind::Block { .. } => node.path.clone(),
            _ => format!("({})", node.kind_name()),
        };
        let op = match &node.kind {
            NodeKind::Residual { shortcut: Shortcut::Projection(p), .. } => format!("shortcut: {}", p.kind_name()),
            NodeKind::Residual { shortcut: Shortcut::Identity, .. } => "shortcut: identity".into(),
            NodeKind::Residual { shortcut: Shortcut::Off, .. } => "no shortcut".into(),
            NodeKind::Op { .. } | NodeKind::Block { .. } => node.kind_name(),
            _ => String::new(),
        };
        let op = if node.shared { format!("{op} (shared)") } else { op };
        rows.push((depth, name, op, node.output.to_string()));
    });
    let mut out = String::new();
    let _ = writeln!(out, "{}: input {}", model.name, model.input);
    write_rows(&mut out, &rows);
    out
}

/// Trace rows (nesting depth, name, op, shape) in aligned columns, indented by depth.
fn write_rows(out: &mut String, rows: &[(usize, String, String, String)]) {
    let name_width = rows.iter().map(|(d, n, _, _)| d * 2 + n.chars().count()).max().unwrap_or(0);
    let op_width = rows.iter().map(|(_, _, o, _)| o.chars().count()).max().unwrap_or(0);
    for (depth, name, op, shape) in rows {
        let indent = "  ".repeat(*depth);
        let pad = name_width - depth * 2;
        let _ = writeln!(out, "  {indent}{name:<pad$}  {op:<op_width$}  {shape}");
    }
}

/// Layers shown after the last failure in a trace of a network with errors: enough to
/// see where checking went on, not the whole rest of a ResNet-152.
const STEPS_AFTER_LAST_FAILURE: usize = 3;

/// The trace of a network that did not check: every layer met up to the last failure
/// and a few after it, flat (indented by the depth of its name), each failed layer
/// marked with its code and the shape checking went on with.
pub fn trace_steps(network: &str, input: Option<Shape>, steps: &[Step]) -> String {
    let last_failure = steps.iter().rposition(|s| s.error.is_some());
    let shown = last_failure.map_or(steps.len(), |i| (i + 1 + STEPS_AFTER_LAST_FAILURE).min(steps.len()));
    let rows: Vec<(usize, String, String, String)> = steps[..shown]
        .iter()
        .map(|step| {
            let depth = step.path.matches('.').count();
            let outcome = match (step.error, step.output) {
                (None, Some(output)) => output.to_string(),
                (Some(code), Some(output)) => format!("✗ {} (on {}), checked on as {output}", code.id(), step.input),
                (Some(code), None) => format!("✗ {} (on {}), no shape to go on with", code.id(), step.input),
                (None, None) => String::new(),
            };
            (depth, step.path.clone(), step.name.clone(), outcome)
        })
        .collect();
    let mut out = String::new();
    let input = input.map_or("unknown".to_string(), |s| s.to_string());
    let _ = writeln!(out, "{network}: input {input} (has errors; the trace is as far as checking got)");
    write_rows(&mut out, &rows);
    if shown < steps.len() {
        let _ = writeln!(out, "  … and {} more layers checked", steps.len() - shown);
    }
    out
}

/// The canonical text form: every node with its resolved arguments, shapes and tensors.
pub fn dump(model: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "network {}: {} -> {} {{", model.name, model.input, model.output);
    for node in &model.nodes {
        dump_node(&mut out, node, 1);
    }
    out.push_str("}\n");
    out
}

fn dump_node(out: &mut String, node: &Node, depth: usize) {
    let indent = "  ".repeat(depth);
    let shared = if node.shared { " shared" } else { "" };
    match &node.kind {
        NodeKind::Op { name, args, op } => {
            let tensors = tensor_list(&op.rule().tensors(&node.input));
            let _ = writeln!(
                out,
                "{indent}{} = {name}({}){shared} : {} -> {}{tensors}",
                node.path,
                args.render(),
                node.input,
                node.output
            );
        }
        _ => {
            let header = match &node.kind {
                NodeKind::Block { name, .. } => format!("{} = {name}", node.path),
                NodeKind::Residual { shortcut: Shortcut::Identity, .. } => "residual(shortcut: identity)".into(),
                NodeKind::Residual { shortcut: Shortcut::Off, .. } => "residual(enabled: false)".into(),
                NodeKind::Residual { shortcut: Shortcut::Projection(_), .. } => "residual(shortcut: projection)".into(),
                other => node_kind_header(other),
            };
            let _ = writeln!(out, "{indent}{header}{shared} : {} -> {} {{", node.input, node.output);
            for child in node.children() {
                dump_node(out, child, depth + 1);
            }
            let _ = writeln!(out, "{indent}}}");
        }
    }
}

fn node_kind_header(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Scale { .. } => "scale".into(),
        NodeKind::Parallel { merge, .. } => format!("parallel(merge: {})", merge.name()),
        _ => String::new(),
    }
}

fn tensor_list(tensors: &[TensorSpec]) -> String {
    if tensors.is_empty() {
        return String::new();
    }
    let items: Vec<String> = tensors
        .iter()
        .map(|t| {
            let dims: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            let name = if t.suffix.is_empty() { "(self)" } else { t.suffix };
            format!("{name}{}[{}]", if t.trainable { "" } else { "~" }, dims.join("x"))
        })
        .collect();
    format!("  {{{}}}", items.join(", "))
}
