//! The explorable page: one self-contained HTML file (no network access when opened)
//! holding the item tree as JSON, the style sheet of the SVG, and `viewer.js`, which
//! lays the tree out with the rules of `layout.rs` and redraws it as blocks are opened
//! and closed, names searched, or the level changed.

use super::layout::{ARC_REACH, BOX_HEIGHT, BOX_WIDTH, FRAME_PAD, FRAME_TITLE, GAP, MARGIN, MERGE_RADIUS, SIDE_GAP};
use super::svg::{STYLE, caption, escape};
use super::{Graph, Level};
use std::fmt::Write;

const VIEWER: &str = include_str!("viewer.js");
const PAGE_STYLE: &str = include_str!("page.css");

pub fn html(graph: &Graph, level: Level) -> String {
    // `</` inside a script element would end it; JSON allows `<\/`.
    let data = serde_json::to_string(graph).unwrap_or_default().replace("</", "<\\/");
    let mut out = String::new();
    let title = escape(&caption(graph, level));
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{STYLE}{PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>{model}</h1>
  <span class="file">{file}</span>
  <nav id="levels"><button data-level="stage">stages</button><button data-level="block">blocks</button><button data-level="layer">layers</button></nav>
  <input id="search" type="search" placeholder="search names (layer3.1, se, conv2)" autocomplete="off">
  <span id="hits"></span>
</header>
<main>
  <div id="canvas"></div>
  <aside>
    <section id="summary"></section>
    <section id="details"><p class="hint">Hover a box for its details; click a block to open or close it.</p></section>
    <section id="legend"><h3>Legend</h3><ul>
      <li><svg class="archc-graph" width="28" height="8"><polyline class="flow data" points="2,4 26,4"/></svg> data flow</li>
      <li><svg class="archc-graph" width="28" height="8"><polyline class="flow shortcut identity" points="2,4 26,4"/></svg> identity shortcut, into a <b>+</b></li>
      <li><svg class="archc-graph" width="28" height="8"><polyline class="flow shortcut projection" points="2,4 26,4"/></svg> projection shortcut (a closed block's arc, too)</li>
      <li><svg class="archc-graph" width="28" height="8"><polyline class="flow gate" points="2,4 26,4"/></svg> gate (SE, CBAM), into a <b>×</b></li>
      <li><b>‖</b> concat; bold box: a closed block (click to open); dashed frame: an open one (click to close)</li>
    </ul></section>
  </aside>
</main>
<script>
const GRAPH = {data};
const LEVEL = "{level}";
const SIZES = {{ box: [{BOX_WIDTH}, {BOX_HEIGHT}], gap: {GAP}, side: {SIDE_GAP}, merge: {MERGE_RADIUS}, pad: {FRAME_PAD}, title: {FRAME_TITLE}, arc: {ARC_REACH}, margin: {MARGIN} }};
{VIEWER}</script>
</body>
</html>
"#,
        model = escape(&graph.model),
        file = escape(&graph.file),
        level = level.name(),
    );
    out
}
