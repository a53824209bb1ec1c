//! The laid-out network as one SVG document: boxes with three lines (name and op,
//! output shape, params and MACs), a tooltip (`<title>`) with the rest, frames for open
//! blocks, and lines for the data flow, shortcuts and gates. Same tree, same bytes.

use super::layout::{self, ARC_REACH, BOX_HEIGHT, BOX_WIDTH, FRAME_TITLE, MERGE_RADIUS, Mark};
use super::{Graph, Item, Level, compact};
use crate::format::human;
use std::fmt::Write;

/// The colours and lines of every picture (the HTML page uses the same sheet).
pub const STYLE: &str = include_str!("graph.css");

/// The advance of one character of the 11 px monospace font, and how many fit on one
/// line of a box.
const CHAR_WIDTH: f64 = 6.7;
const LINE_CHARS: usize = 31;

pub fn svg(graph: &Graph, level: Level) -> String {
    let layout = layout::layout(graph, level);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="archc-graph" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}">"#,
        w = layout.width.ceil(),
        h = (layout.height + LEGEND.len() as f64 * LEGEND_ROW).ceil()
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&caption(graph, level)));
    let _ = writeln!(out, "<style>\n{STYLE}</style>");
    out.push_str(ARROW);
    let _ = writeln!(out, r#"<rect class="paper" width="100%" height="100%"/>"#);
    // Frames first (behind), then lines, then boxes and merges on top.
    let order = |mark: &Mark| match mark {
        Mark::Frame { .. } => 0,
        Mark::Line { .. } | Mark::Arc { .. } => 1,
        _ => 2,
    };
    for pass in 0..3 {
        for mark in layout.marks.iter().filter(|m| order(m) == pass) {
            write_mark(&mut out, mark, level);
        }
    }
    legend(&mut out, layout.height);
    out.push_str("</svg>\n");
    out
}

/// What the lines and symbols mean: (class of the sample line, or the symbol; words).
const LEGEND: [(&str, &str); 5] = [
    ("flow data", "data flow"),
    ("flow shortcut identity", "identity shortcut (into +)"),
    ("flow shortcut projection", "projection shortcut"),
    ("flow gate", "gate: SE, CBAM (into ×)"),
    ("‖", "concat; bold box: closed block"),
];
const LEGEND_ROW: f64 = 15.0;

/// The legend, below the picture.
fn legend(out: &mut String, top: f64) {
    out.push_str("<g class=\"legend\">\n");
    for (i, (sample, words)) in LEGEND.iter().enumerate() {
        let y = top + LEGEND_ROW * i as f64;
        let x = layout::MARGIN;
        if sample.starts_with("flow") {
            let _ = writeln!(
                out,
                r#"<polyline class="{sample}" points="{x:.1},{:.1} {:.1},{:.1}"/>"#,
                y + 4.0,
                x + 24.0,
                y + 4.0
            );
        } else {
            let _ = writeln!(out, r#"<text class="symbol" x="{:.1}" y="{:.1}">{sample}</text>"#, x + 12.0, y + 8.0);
        }
        let _ = writeln!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 32.0, y + 8.0, escape(words));
    }
    out.push_str("</g>\n");
}

/// What the picture shows, in one line (the SVG's title).
pub fn caption(graph: &Graph, level: Level) -> String {
    format!(
        "{} ({}), --level {}: {} params, {} MACs",
        graph.model,
        graph.file,
        level.name(),
        human(graph.totals.params),
        human(graph.totals.macs)
    )
}

const ARROW: &str = r#"<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerUnits="userSpaceOnUse" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>
"#;

fn write_mark(out: &mut String, mark: &Mark, level: Level) {
    match mark {
        Mark::Box { x, y, item, closed } => {
            let class = if *closed { "node closed" } else { "node" };
            let _ = writeln!(out, r#"<g class="{class} {}" data-path="{}">"#, item.family, escape(&item.path));
            let _ = writeln!(out, "<title>{}</title>", escape(&item.details()));
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{BOX_WIDTH:.0}" height="{BOX_HEIGHT:.0}" rx="4"/>"#
            );
            for (i, (text, class)) in box_lines(item, level).iter().enumerate() {
                let _ = writeln!(
                    out,
                    r#"<text class="{class}" x="{:.1}" y="{:.1}">{}</text>"#,
                    x + 8.0,
                    y + 14.0 + 13.0 * i as f64,
                    escape(&fit(text, LINE_CHARS))
                );
            }
            out.push_str("</g>\n");
        }
        Mark::Merge { x, y, item } => {
            let symbol = match item.merge() {
                Some("add" | "sum") => "+",
                Some("mul") => "×",
                _ => "‖",
            };
            let _ = writeln!(out, r#"<g class="node merge">"#);
            let _ = writeln!(out, "<title>{}</title>", escape(&item.details()));
            let _ = writeln!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="{MERGE_RADIUS:.0}"/>"#);
            let _ = writeln!(out, r#"<text x="{x:.1}" y="{:.1}">{symbol}</text>"#, y + 4.0);
            out.push_str("</g>\n");
        }
        Mark::Frame { x, y, w, h, item } => {
            let _ = writeln!(out, r#"<g class="frame" data-path="{}">"#, escape(&item.path));
            let _ = writeln!(out, "<title>{}</title>", escape(&item.details()));
            let _ = writeln!(out, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="6"/>"#);
            let room = ((w - 12.0) / CHAR_WIDTH).max(1.0) as usize;
            let title = item.frame_title(room);
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                x + 6.0,
                y + FRAME_TITLE - 3.0,
                escape(&fit(&title, room))
            );
            out.push_str("</g>\n");
        }
        Mark::Line { points, flow, arrow } => {
            let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let marker = if *arrow { r#" marker-end="url(#arrow)""# } else { "" };
            let _ = writeln!(out, r#"<polyline class="flow {}" points="{}"{marker}/>"#, flow.class(), path.join(" "));
        }
        Mark::Arc { x, y, shortcut } => {
            let (top, bottom) = (y + 6.0, y + BOX_HEIGHT - 6.0);
            let reach = x + ARC_REACH;
            let _ = writeln!(
                out,
                r#"<path class="flow shortcut {shortcut}" d="M{x:.1},{top:.1} C{reach:.1},{top:.1} {reach:.1},{bottom:.1} {x:.1},{bottom:.1}" marker-end="url(#arrow)"><title>{shortcut} shortcut</title></path>"#
            );
        }
        Mark::End { x, y, text } => {
            let _ = writeln!(
                out,
                r#"<g class="end"><rect x="{:.1}" y="{:.1}" width="{BOX_WIDTH:.0}" height="{:.0}" rx="9"/><text x="{x:.1}" y="{:.1}">{}</text></g>"#,
                x - BOX_WIDTH / 2.0,
                y - MERGE_RADIUS,
                MERGE_RADIUS * 2.0,
                y + 4.0,
                escape(text)
            );
        }
    }
}

/// The three lines of a box: title, output shape, cost (what a closed block hides, too).
pub fn box_lines(item: &Item, level: Level) -> Vec<(String, &'static str)> {
    let mut shape = format!("→ {}", compact(&item.output));
    let gates = if item.collapsed(level) { item.hidden_gates() } else { Vec::new() };
    if !gates.is_empty() {
        shape.push_str(&format!("  + {}", gates.join(", ")));
    }
    let cost = if item.shared {
        format!("shared weights · {} MACs", human(item.macs))
    } else if item.params == 0 && item.macs == 0 {
        "no weights, no MACs".to_string()
    } else {
        format!("{} params · {} MACs", human(item.params), human(item.macs))
    };
    vec![(item.title(level, LINE_CHARS), "title"), (shape, "shape"), (cost, "cost")]
}

/// The text, cut to `room` characters with an ellipsis.
fn fit(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
