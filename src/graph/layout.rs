//! Top-to-bottom layout of the item tree, recursive and deterministic: a sequence is a
//! column on one vertical axis; a residual is its body on the axis with the shortcut to
//! its right (a line, or the projection's column) meeting at a `+`; a gate is a column
//! to the right of the axis meeting it at a `×`; parallel branches stand side by side
//! and meet at their merge; an open block is a frame around its column. The HTML viewer
//! (`viewer.js`) lays out the same tree with the same rules and constants, so that the
//! SVG and the page look alike.

use super::{Graph, Item, ItemKind, Level};

pub const BOX_WIDTH: f64 = 220.0;
pub const BOX_HEIGHT: f64 = 46.0;
pub const GAP: f64 = 16.0;
pub const SIDE_GAP: f64 = 26.0;
pub const MERGE_RADIUS: f64 = 9.0;
pub const FRAME_PAD: f64 = 8.0;
pub const FRAME_TITLE: f64 = 16.0;
/// How far the arc beside a closed residual block reaches to its right.
pub const ARC_REACH: f64 = 18.0;
pub const MARGIN: f64 = 16.0;

/// What a line stands for: the main data flow, a shortcut, or a gate's branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Data,
    Shortcut,
    Gate,
}

impl Flow {
    pub fn class(self) -> &'static str {
        match self {
            Flow::Data => "data",
            Flow::Shortcut => "shortcut",
            Flow::Gate => "gate",
        }
    }
}

/// One thing to draw, in absolute coordinates (pixels, y down).
#[derive(Clone, Debug)]
pub enum Mark<'a> {
    /// A layer, or a closed block or stage.
    Box { x: f64, y: f64, item: &'a Item, closed: bool },
    /// A residual's `+`, a gate's `×`, a parallel's merge, centred at (x, y).
    Merge { x: f64, y: f64, item: &'a Item },
    /// An open block or stage around its contents.
    Frame { x: f64, y: f64, w: f64, h: f64, item: &'a Item },
    /// `arrow`: ends in an arrowhead (not where it only reaches a frame's border or
    /// a fork, whose own line carries the arrow on).
    Line { points: Vec<(f64, f64)>, flow: Flow, arrow: bool },
    /// The shortcut of a closed residual block, as an arc beside its box.
    Arc { x: f64, y: f64, shortcut: &'static str },
    /// The network's input or output, a rounded label centred at (x, y).
    End { x: f64, y: f64, text: String },
}

pub struct Layout<'a> {
    pub width: f64,
    pub height: f64,
    pub marks: Vec<Mark<'a>>,
}

/// A laid-out piece: its extent left and right of its axis (x = 0), its height from
/// y = 0, where the flow enters on the axis, to where it leaves, also on the axis.
struct Part<'a> {
    left: f64,
    right: f64,
    height: f64,
    marks: Vec<Mark<'a>>,
    /// Draws its own line (and arrow) from its top to its first box: a frame, a fork.
    leads: bool,
}

impl<'a> Part<'a> {
    fn empty() -> Part<'a> {
        Part { left: 0.0, right: 0.0, height: 0.0, marks: Vec::new(), leads: false }
    }

    /// Adds `other` with its axis at `dx` and its top at `dy`.
    fn place(&mut self, other: Part<'a>, dx: f64, dy: f64) {
        self.left = self.left.min(other.left + dx);
        self.right = self.right.max(other.right + dx);
        self.marks.extend(other.marks.into_iter().map(|mark| moved(mark, dx, dy)));
    }

    fn line(&mut self, points: Vec<(f64, f64)>, flow: Flow) {
        self.marks.push(Mark::Line { points, flow, arrow: true });
    }

    /// A line that only reaches a border or a fork: no arrowhead.
    fn link(&mut self, points: Vec<(f64, f64)>) {
        self.marks.push(Mark::Line { points, flow: Flow::Data, arrow: false });
    }
}

fn moved(mark: Mark<'_>, dx: f64, dy: f64) -> Mark<'_> {
    match mark {
        Mark::Box { x, y, item, closed } => Mark::Box { x: x + dx, y: y + dy, item, closed },
        Mark::Merge { x, y, item } => Mark::Merge { x: x + dx, y: y + dy, item },
        Mark::Frame { x, y, w, h, item } => Mark::Frame { x: x + dx, y: y + dy, w, h, item },
        Mark::Line { points, flow, arrow } => {
            Mark::Line { points: points.into_iter().map(|(x, y)| (x + dx, y + dy)).collect(), flow, arrow }
        }
        Mark::Arc { x, y, shortcut } => Mark::Arc { x: x + dx, y: y + dy, shortcut },
        Mark::End { x, y, text } => Mark::End { x: x + dx, y: y + dy, text },
    }
}

/// The whole network, from its input at the top to its output at the bottom.
pub fn layout(graph: &Graph, level: Level) -> Layout<'_> {
    let end = |text: String| Part {
        left: -BOX_WIDTH / 2.0,
        right: BOX_WIDTH / 2.0,
        height: MERGE_RADIUS * 2.0,
        marks: vec![Mark::End { x: 0.0, y: MERGE_RADIUS, text }],
        leads: false,
    };
    let mut parts = vec![end(format!("input {}", super::compact(&graph.input)))];
    parts.push(column(&graph.items, level));
    parts.push(end(format!("output {}", super::compact(&graph.output))));
    let whole = stack(parts);
    let mut marks = Vec::new();
    let (dx, dy) = (MARGIN - whole.left, MARGIN);
    marks.extend(whole.marks.into_iter().map(|mark| moved(mark, dx, dy)));
    Layout { width: whole.right - whole.left + 2.0 * MARGIN, height: whole.height + 2.0 * MARGIN, marks }
}

fn column<'a>(items: &'a [Item], level: Level) -> Part<'a> {
    stack(items.iter().map(|item| part(item, level)).collect())
}

/// Parts one below the other on one axis, joined by lines.
fn stack(parts: Vec<Part<'_>>) -> Part<'_> {
    let mut out = Part::empty();
    let mut y = 0.0;
    for (i, part) in parts.into_iter().enumerate() {
        if i == 0 {
            out.leads = part.leads;
        } else if part.leads {
            out.link(vec![(0.0, y), (0.0, y + GAP)]);
            y += GAP;
        } else {
            out.line(vec![(0.0, y), (0.0, y + GAP)], Flow::Data);
            y += GAP;
        }
        let height = part.height;
        out.place(part, 0.0, y);
        y += height;
    }
    out.height = y;
    out
}

fn part<'a>(item: &'a Item, level: Level) -> Part<'a> {
    if item.collapsed(level) || matches!(item.kind, ItemKind::Layer) {
        return closed(item, level);
    }
    match &item.kind {
        ItemKind::Layer => closed(item, level),
        ItemKind::Group { children } => frame(item, column(children, level)),
        ItemKind::Residual { body, off: true, .. } => column(body, level),
        ItemKind::Residual { body, projection, .. } => {
            let side = (!projection.is_empty()).then(|| column(projection, level));
            beside(item, column(body, level), side, Flow::Shortcut)
        }
        ItemKind::Scale { gate } => beside(item, Part::empty(), Some(column(gate, level)), Flow::Gate),
        ItemKind::Parallel { branches, .. } => parallel(item, branches.iter().map(|b| part(b, level)).collect()),
    }
}

fn closed(item: &Item, level: Level) -> Part<'_> {
    let mut part = Part {
        left: -BOX_WIDTH / 2.0,
        right: BOX_WIDTH / 2.0,
        height: BOX_HEIGHT,
        marks: vec![Mark::Box { x: -BOX_WIDTH / 2.0, y: 0.0, item, closed: item.collapsed(level) }],
        leads: false,
    };
    if item.collapsed(level)
        && let Some(shortcut) = item.hidden_shortcut()
    {
        part.marks.push(Mark::Arc { x: BOX_WIDTH / 2.0, y: 0.0, shortcut });
        part.right += ARC_REACH;
    }
    part
}

fn frame<'a>(item: &'a Item, inner: Part<'a>) -> Part<'a> {
    let top = FRAME_TITLE + FRAME_PAD;
    let left = inner.left.min(-BOX_WIDTH / 2.0) - FRAME_PAD;
    let right = inner.right.max(BOX_WIDTH / 2.0) + FRAME_PAD;
    let height = top + inner.height + FRAME_PAD;
    let mut out = Part::empty();
    out.marks.push(Mark::Frame { x: left, y: 0.0, w: right - left, h: height, item });
    let (inner_height, inner_leads) = (inner.height, inner.leads);
    if inner_leads {
        out.link(vec![(0.0, 0.0), (0.0, top)]);
    } else {
        out.line(vec![(0.0, 0.0), (0.0, top)], Flow::Data);
    }
    out.place(inner, 0.0, top);
    out.link(vec![(0.0, top + inner_height), (0.0, height)]);
    out.leads = true;
    out.left = left;
    out.right = right;
    out.height = height;
    out
}

/// A main column on the axis and a side column (or a bare line when `side` is `None`)
/// to its right, from a fork at the top to the item's merge at the bottom.
fn beside<'a>(item: &'a Item, main: Part<'a>, side: Option<Part<'a>>, flow: Flow) -> Part<'a> {
    let fork = GAP / 2.0;
    let top = GAP;
    let side_height = side.as_ref().map_or(0.0, |s| s.height);
    let bottom = top + main.height.max(side_height);
    let merge = bottom + GAP + MERGE_RADIUS;
    let x = main.right.max(MERGE_RADIUS) + SIDE_GAP - side.as_ref().map_or(0.0, |s| s.left);
    let mut out = Part::empty();
    let (main_height, main_leads) = (main.height, main.leads);
    if main_leads || main_height == 0.0 {
        out.link(vec![(0.0, 0.0), (0.0, top)]);
    } else {
        out.line(vec![(0.0, 0.0), (0.0, top)], Flow::Data);
    }
    out.place(main, 0.0, top);
    out.line(vec![(0.0, top + main_height), (0.0, merge - MERGE_RADIUS)], Flow::Data);
    match side {
        Some(side) => {
            out.marks.push(Mark::Line { points: vec![(0.0, fork), (x, fork), (x, top)], flow, arrow: !side.leads });
            out.line(vec![(x, top + side_height), (x, merge), (MERGE_RADIUS, merge)], flow);
            out.place(side, x, top);
        }
        None => out.line(vec![(0.0, fork), (x, fork), (x, merge), (MERGE_RADIUS, merge)], flow),
    }
    out.right = out.right.max(x);
    out.left = out.left.min(-MERGE_RADIUS);
    out.marks.push(Mark::Merge { x: 0.0, y: merge, item });
    out.height = merge + MERGE_RADIUS;
    out.leads = true;
    out
}

/// Branches side by side, the first on the axis, from one fork to one merge.
fn parallel<'a>(item: &'a Item, branches: Vec<Part<'a>>) -> Part<'a> {
    let fork = GAP / 2.0;
    let top = GAP;
    let bottom = top + branches.iter().map(|b| b.height).fold(0.0, f64::max);
    let merge = bottom + GAP + MERGE_RADIUS;
    let mut out = Part::empty();
    let mut right = MERGE_RADIUS;
    for (i, branch) in branches.into_iter().enumerate() {
        let x = if i == 0 { 0.0 } else { right + SIDE_GAP - branch.left };
        let height = branch.height;
        if i == 0 && branch.leads {
            out.link(vec![(0.0, 0.0), (0.0, top)]);
            out.line(vec![(0.0, top + height), (0.0, merge - MERGE_RADIUS)], Flow::Data);
        } else if i == 0 {
            out.line(vec![(0.0, 0.0), (0.0, top)], Flow::Data);
            out.line(vec![(0.0, top + height), (0.0, merge - MERGE_RADIUS)], Flow::Data);
        } else {
            let arrow = !branch.leads;
            out.marks.push(Mark::Line { points: vec![(0.0, fork), (x, fork), (x, top)], flow: Flow::Data, arrow });
            out.line(vec![(x, top + height), (x, merge), (MERGE_RADIUS, merge)], Flow::Data);
        }
        right = right.max(x + branch.right);
        out.place(branch, x, top);
    }
    out.left = out.left.min(-MERGE_RADIUS);
    out.right = out.right.max(right);
    out.marks.push(Mark::Merge { x: 0.0, y: merge, item });
    out.height = merge + MERGE_RADIUS;
    out.leads = true;
    out
}
