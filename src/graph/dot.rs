//! The network as Graphviz DOT, for people who lay out with `dot`: one node per box of
//! the picture at the chosen level, open blocks as clusters, shortcuts dashed and gates
//! in their own colour.

use super::svg::box_lines;
use super::{Graph, Item, ItemKind, Level, compact};
use std::fmt::Write;

pub fn dot(graph: &Graph, level: Level) -> String {
    let mut writer = Writer { out: String::new(), next: 0, clusters: 0, level, indent: 1 };
    let _ = writeln!(writer.out, "digraph {} {{", quote(&graph.model));
    writer.out.push_str("  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#edf2f7\", fontname=\"monospace\", fontsize=10];\n  edge [color=\"#4a5568\"];\n");
    let input =
        writer.node(&format!("input {}", compact(&graph.input)), "shape=oval, fillcolor=\"#1a202c\", fontcolor=white");
    let ends = writer.column(&graph.items, vec![(input, "")]);
    let output = writer
        .node(&format!("output {}", compact(&graph.output)), "shape=oval, fillcolor=\"#1a202c\", fontcolor=white");
    writer.edges(&ends, output);
    writer.out.push_str("}\n");
    writer.out
}

/// Where the flow leaves a piece: node ids, each with the style of the edge out of it.
type Ends = Vec<(usize, &'static str)>;

struct Writer {
    out: String,
    next: usize,
    clusters: usize,
    level: Level,
    indent: usize,
}

const SHORTCUT: &str = "style=dashed, color=\"#2b6cb0\", penwidth=2";
const GATE: &str = "color=\"#c05621\"";

impl Writer {
    fn node(&mut self, label: &str, attributes: &str) -> usize {
        let id = self.next;
        self.next += 1;
        let pad = "  ".repeat(self.indent);
        let _ = writeln!(self.out, "{pad}n{id} [label={}, {attributes}];", quote(label));
        id
    }

    fn edges(&mut self, from: &Ends, to: usize) {
        let pad = "  ".repeat(self.indent);
        for (id, style) in from {
            let attributes = if style.is_empty() { String::new() } else { format!(" [{style}]") };
            let _ = writeln!(self.out, "{pad}n{id} -> n{to}{attributes};");
        }
    }

    fn column(&mut self, items: &[Item], mut ends: Ends) -> Ends {
        for item in items {
            ends = self.item(item, ends);
        }
        ends
    }

    /// A layer or a closed block: one node.
    fn boxed(&mut self, item: &Item, ends: Ends) -> Ends {
        let closed = item.collapsed(self.level);
        let lines: Vec<String> = box_lines(item, self.level).into_iter().map(|(text, _)| text).collect();
        let mut attributes = format!("tooltip={}", quote(&item.details()));
        if let Some(color) = fill(item.family) {
            attributes.push_str(&format!(", fillcolor=\"{color}\""));
        }
        if closed {
            attributes.push_str(", penwidth=2");
        }
        let id = self.node(&lines.join("\n"), &attributes);
        self.edges(&ends, id);
        vec![(id, "")]
    }

    fn item(&mut self, item: &Item, ends: Ends) -> Ends {
        if item.collapsed(self.level) {
            return self.boxed(item, ends);
        }
        match &item.kind {
            ItemKind::Layer => self.boxed(item, ends),
            ItemKind::Group { children } => {
                let pad = "  ".repeat(self.indent);
                self.clusters += 1;
                let _ = writeln!(self.out, "{pad}subgraph cluster_{} {{", self.clusters);
                let _ = writeln!(
                    self.out,
                    "{pad}  label={}; style=dashed; color=\"#a0aec0\";",
                    quote(&item.frame_title(usize::MAX))
                );
                self.indent += 1;
                let ends = self.column(children, ends);
                self.indent -= 1;
                let _ = writeln!(self.out, "{pad}}}");
                ends
            }
            ItemKind::Residual { body, off: true, .. } => self.column(body, ends),
            ItemKind::Residual { body, projection, .. } => {
                let body_ends = self.column(body, ends.clone());
                let shortcut: Ends = ends.iter().map(|(id, _)| (*id, SHORTCUT)).collect();
                let side =
                    if projection.is_empty() { shortcut } else { restyle(self.column(projection, shortcut), SHORTCUT) };
                self.merge(item, "+", [body_ends, side].concat())
            }
            ItemKind::Scale { gate } => {
                let gated: Ends = ends.iter().map(|(id, _)| (*id, GATE)).collect();
                let gate_ends = restyle(self.column(gate, gated), GATE);
                self.merge(item, "×", [ends, gate_ends].concat())
            }
            ItemKind::Parallel { merge, branches } => {
                let mut all = Ends::new();
                for branch in branches {
                    all.extend(self.item(branch, ends.clone()));
                }
                self.merge(
                    item,
                    if *merge == "concat" {
                        "concat"
                    } else if *merge == "mul" {
                        "×"
                    } else {
                        "+"
                    },
                    all,
                )
            }
        }
    }

    fn merge(&mut self, item: &Item, symbol: &str, ends: Ends) -> Ends {
        let attributes = format!("shape=circle, fillcolor=white, tooltip={}", quote(&item.details()));
        let id = self.node(symbol, &attributes);
        self.edges(&ends, id);
        vec![(id, "")]
    }
}

fn restyle(ends: Ends, style: &'static str) -> Ends {
    ends.into_iter().map(|(id, _)| (id, style)).collect()
}

/// The fill of a family's boxes, as in the SVG's style sheet.
fn fill(family: &str) -> Option<&'static str> {
    Some(match family {
        "conv" => "#dbeafe",
        "linear" => "#fde2c8",
        "norm" => "#dcfce7",
        "activation" => "#fef9c3",
        "pool" => "#ede9fe",
        "attention" => "#fee2e2",
        "tokens" => "#e0f2fe",
        "block" => "#e2e8f0",
        _ => return None,
    })
}

/// A DOT string: quoted, with `"` and `\` escaped and newlines as `\n`.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}
