// archc graph's viewer: lays out GRAPH (the item tree `archc graph` embeds) with the
// rules of src/graph/layout.rs and draws it as SVG; blocks open and close on click,
// the level buttons reset what is open, the search box opens the blocks around what it
// finds. Nothing is fetched: the page works from a file.
"use strict";

window.addEventListener("error", (event) => {
  const errors = document.body.dataset.errors ? document.body.dataset.errors + "\n" : "";
  document.body.dataset.errors = errors + String(event.message);
});

const [BOX_W, BOX_H] = SIZES.box;
const items = [];          // every item, by id
const parent = [];         // its enclosing item's id, or -1
const open = new Set();    // ids of the items drawn open
let hits = new Set();

(function number(list, up) {
  for (const item of list) {
    item.id = items.length;
    items.push(item);
    parent.push(up);
    number(children(item), item.id);
  }
})(GRAPH.items, -1);

function children(item) {
  switch (item.kind) {
    case "group": return item.children;
    case "residual": return item.body.concat(item.projection);
    case "scale": return item.gate;
    case "parallel": return item.branches;
    default: return [];
  }
}

function unitAt(item, level) {
  return item.kind !== "layer" && (level === "stage" ? item.stage_unit : level === "block" ? item.block_unit : false);
}

// What is open at a level: everything but its units and, at stage level, the block
// units inside them, so that opening a stage shows its blocks closed.
function setLevel(level) {
  open.clear();
  for (const item of items) {
    const closed = unitAt(item, level) || (level === "stage" && unitAt(item, "block"));
    if (item.kind !== "layer" && !closed) open.add(item.id);
  }
  for (const button of document.querySelectorAll("#levels button")) {
    button.classList.toggle("active", button.dataset.level === level);
  }
  draw();
}

// ---- layout: the same parts as layout.rs (axis at x = 0, flow enters at y = 0) ----

function empty() { return { left: 0, right: 0, height: 0, marks: [], leads: false }; }

function place(into, part, dx, dy) {
  into.left = Math.min(into.left, part.left + dx);
  into.right = Math.max(into.right, part.right + dx);
  for (const mark of part.marks) into.marks.push(moved(mark, dx, dy));
}

function moved(mark, dx, dy) {
  const out = Object.assign({}, mark, { x: mark.x + dx, y: mark.y + dy });
  if (mark.points) out.points = mark.points.map(([x, y]) => [x + dx, y + dy]);
  return out;
}

function line(part, points, flow, arrow = true) { part.marks.push({ type: "line", x: 0, y: 0, points, flow, arrow }); }
function link(part, points) { line(part, points, "data", false); }

function stack(parts) {
  const out = empty();
  let y = 0;
  parts.forEach((part, i) => {
    if (i === 0) out.leads = part.leads;
    else { line(out, [[0, y], [0, y + SIZES.gap]], "data", !part.leads); y += SIZES.gap; }
    place(out, part, 0, y);
    y += part.height;
  });
  out.height = y;
  return out;
}

function column(list) { return stack(list.map(part)); }

function part(item) {
  if (item.kind === "layer" || !open.has(item.id)) return closed(item);
  switch (item.kind) {
    case "group": return frame(item, column(item.children));
    case "residual":
      if (item.off) return column(item.body);
      return beside(item, column(item.body), item.projection.length ? column(item.projection) : null, "shortcut");
    case "scale": return beside(item, empty(), column(item.gate), "gate");
    default: return parallel(item, item.branches.map(part));
  }
}

function closed(item) {
  const out = { left: -BOX_W / 2, right: BOX_W / 2, height: BOX_H, leads: false,
                marks: [{ type: "box", x: -BOX_W / 2, y: 0, item, closed: item.kind !== "layer" }] };
  const shortcut = item.kind === "layer" ? null : hiddenShortcut(item);
  if (shortcut) { out.marks.push({ type: "arc", x: BOX_W / 2, y: 0, shortcut }); out.right += SIZES.arc; }
  return out;
}

function frame(item, inner) {
  const top = SIZES.title + SIZES.pad;
  const left = Math.min(inner.left, -BOX_W / 2) - SIZES.pad;
  const right = Math.max(inner.right, BOX_W / 2) + SIZES.pad;
  const height = top + inner.height + SIZES.pad;
  const out = empty();
  out.marks.push({ type: "frame", x: left, y: 0, w: right - left, h: height, item });
  line(out, [[0, 0], [0, top]], "data", !inner.leads);
  place(out, inner, 0, top);
  link(out, [[0, top + inner.height], [0, height]]);
  return Object.assign(out, { left, right, height, leads: true });
}

function beside(item, main, side, flow) {
  const fork = SIZES.gap / 2, top = SIZES.gap, r = SIZES.merge;
  const sideHeight = side ? side.height : 0;
  const merge = top + Math.max(main.height, sideHeight) + SIZES.gap + r;
  const x = Math.max(main.right, r) + SIZES.side - (side ? side.left : 0);
  const out = empty();
  line(out, [[0, 0], [0, top]], "data", !(main.leads || main.height === 0));
  place(out, main, 0, top);
  line(out, [[0, top + main.height], [0, merge - r]], "data");
  if (side) {
    line(out, [[0, fork], [x, fork], [x, top]], flow, !side.leads);
    line(out, [[x, top + sideHeight], [x, merge], [r, merge]], flow);
    place(out, side, x, top);
  } else {
    line(out, [[0, fork], [x, fork], [x, merge], [r, merge]], flow);
  }
  out.right = Math.max(out.right, x);
  out.left = Math.min(out.left, -r);
  out.marks.push({ type: "merge", x: 0, y: merge, item });
  out.height = merge + r;
  out.leads = true;
  return out;
}

function parallel(item, branches) {
  const fork = SIZES.gap / 2, top = SIZES.gap, r = SIZES.merge;
  const merge = top + Math.max(0, ...branches.map((b) => b.height)) + SIZES.gap + r;
  const out = empty();
  let right = r;
  branches.forEach((branch, i) => {
    const x = i === 0 ? 0 : right + SIZES.side - branch.left;
    if (i === 0) {
      line(out, [[0, 0], [0, top]], "data", !branch.leads);
      line(out, [[0, top + branch.height], [0, merge - r]], "data");
    } else {
      line(out, [[0, fork], [x, fork], [x, top]], "data", !branch.leads);
      line(out, [[x, top + branch.height], [x, merge], [r, merge]], "data");
    }
    right = Math.max(right, x + branch.right);
    place(out, branch, x, top);
  });
  out.left = Math.min(out.left, -r);
  out.right = Math.max(out.right, right);
  out.marks.push({ type: "merge", x: 0, y: merge, item });
  out.height = merge + r;
  out.leads = true;
  return out;
}

function end(text) {
  return { left: -BOX_W / 2, right: BOX_W / 2, height: 2 * SIZES.merge, leads: false,
           marks: [{ type: "end", x: 0, y: SIZES.merge, text }] };
}

// ---- what boxes say (as src/graph/mod.rs and svg.rs) ----

function compact(shape) {
  if (shape.length === 3) return shape.join("×");
  if (shape.length === 2) return `${shape[0]} tokens × ${shape[1]}`;
  return String(shape[0]);
}

function human(n) {
  const units = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
  n = Number(n);
  for (const [scale, unit] of units) {
    if (n >= scale) {
      const v = n / scale;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${unit}`;
    }
  }
  return String(n);
}

function thousands(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

function isContainer(item) { return item.kind === "group" && ["stage", "repeat", "seq"].includes(item.op); }

function hiddenShortcut(item) { return isContainer(item) ? null : firstShortcut(item); }

function firstShortcut(item) {
  if (item.kind === "residual" && !item.off) return item.projection.length ? "projection" : "identity";
  if (item.kind === "group" || item.kind === "parallel") {
    for (const child of children(item)) { const s = firstShortcut(child); if (s) return s; }
  }
  return null;
}

function holdsGate(item) { return item.kind === "scale" || children(item).some(holdsGate); }

function hiddenGates(item) {
  const out = [];
  for (const child of children(item)) {
    let found;
    if (child.kind === "scale") found = ["gate"];
    else if (isContainer(item)) found = hiddenGates(child);
    else if (holdsGate(child) && child.path) found = [child.label === child.op ? child.op : `${child.label} (${child.op})`];
    else found = hiddenGates(child);
    for (const gate of found) if (!out.includes(gate)) out.push(gate);
  }
  return out;
}

function contents(item) {
  const list = children(item);
  if (!isContainer(item) || !list.length || !list.every((c) => c.op === list[0].op)) return null;
  return `${list.length} × ${list[0].op}`;
}

function title(item, closedBox, room = 31) {
  // A closed stage says what it holds instead of `stage`.
  const op = (closedBox && contents(item)) || item.op;
  const withOp = (name) => (!name || name === item.op ? op : `${name} · ${op}`);
  if (!closedBox || !item.path) return withOp(item.label);
  const found = [withOp(item.path), withOp(item.label), item.label].find((c) => [...c].length <= room);
  return found === undefined ? item.label : found;
}

// An open block's frame: its whole path when that fits, else the path from its last
// named part (`mlp`, `layer1.0`), then cut.
function frameTitle(item, room) {
  const parts = item.path.split(".");
  let from = parts.length - 1;
  while (from > 0 && /^[0-9]+$/.test(parts[from])) from -= 1;
  const short = parts.slice(from).join(".");
  const line = (name) => `${name ? `${name} · ${item.op}` : item.op} · ${human(item.macs)} MACs`;
  const whole = line(item.path);
  return fit([...whole].length <= room ? whole : line(short), room);
}

function details(item) {
  const lines = [];
  if (item.path) lines.push(item.path);
  lines.push(item.op + (item.args ? `(${item.args})` : "") + (item.shared ? " (shared: weights of its first use)" : ""));
  lines.push(`${shapeText(item.input)} → ${shapeText(item.output)}`);
  lines.push(`params ${thousands(item.params)}  MACs ${thousands(item.macs)}  activations ${human(item.activation_bytes)}B`);
  if (item.source) lines.push(item.source);
  return lines.join("\n");
}

function shapeText(shape) {
  return shape.length === 3 ? `image(${shape.join(", ")})` : shape.length === 2 ? `tokens(${shape.join(", ")})` : `vector(${shape[0]})`;
}

function fit(text, room = 31) { return [...text].length <= room ? text : [...text].slice(0, Math.max(room - 1, 0)).join("") + "…"; }

function esc(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

// ---- drawing ----

function draw() {
  const whole = stack([end(`input ${compact(GRAPH.input)}`), column(GRAPH.items), end(`output ${compact(GRAPH.output)}`)]);
  const dx = SIZES.margin - whole.left, dy = SIZES.margin;
  const width = Math.ceil(whole.right - whole.left + 2 * SIZES.margin);
  const height = Math.ceil(whole.height + 2 * SIZES.margin);
  const layers = [[], [], []];
  for (const raw of whole.marks) {
    const mark = moved(raw, dx, dy);
    const html = render(mark);
    layers[mark.type === "frame" ? 0 : mark.type === "line" || mark.type === "arc" ? 1 : 2].push(html);
  }
  document.getElementById("canvas").innerHTML =
    `<svg xmlns="http://www.w3.org/2000/svg" class="archc-graph" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerUnits="userSpaceOnUse" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>` +
    `<rect class="paper" width="100%" height="100%"/>` + layers.flat().join("") + `</svg>`;
  document.body.dataset.nodes = String(document.querySelectorAll("#canvas g.node").length);
}

function render(mark) {
  switch (mark.type) {
    case "box": {
      const item = mark.item;
      const cls = ["node", item.family, mark.closed ? "closed" : "", hits.has(item.id) ? "hit" : ""].join(" ").trim();
      let shape = `→ ${compact(item.output)}`;
      const gates = mark.closed ? hiddenGates(item) : [];
      if (gates.length) shape += `  + ${gates.join(", ")}`;
      const cost = item.shared ? `shared weights · ${human(item.macs)} MACs`
        : item.params == 0 && item.macs == 0 ? "no weights, no MACs" : `${human(item.params)} params · ${human(item.macs)} MACs`;
      const texts = [[title(item, mark.closed), "title"], [shape, "shape"], [cost, "cost"]]
        .map(([t, c], i) => `<text class="${c}" x="${mark.x + 8}" y="${mark.y + 14 + 13 * i}">${esc(fit(t))}</text>`).join("");
      return `<g class="${cls}" data-id="${item.id}" data-path="${esc(item.path)}"><title>${esc(details(item))}</title>` +
        `<rect x="${mark.x}" y="${mark.y}" width="${BOX_W}" height="${BOX_H}" rx="4"/>${texts}</g>`;
    }
    case "merge": {
      const symbol = { add: "+", sum: "+", mul: "×" }[mergeOf(mark.item)] || "‖";
      return `<g class="node merge" data-id="${mark.item.id}"><title>${esc(details(mark.item))}</title>` +
        `<circle cx="${mark.x}" cy="${mark.y}" r="${SIZES.merge}"/><text x="${mark.x}" y="${mark.y + 4}">${symbol}</text></g>`;
    }
    case "frame": {
      const item = mark.item;
      const cls = hits.has(item.id) ? "frame hit" : "frame";
      return `<g class="${cls}" data-id="${item.id}" data-path="${esc(item.path)}"><title>${esc(details(item))}\n(click to close)</title>` +
        `<rect x="${mark.x}" y="${mark.y}" width="${mark.w}" height="${mark.h}" rx="6"/>` +
        `<text x="${mark.x + 6}" y="${mark.y + SIZES.title - 3}">${esc(frameTitle(item, Math.max(1, Math.floor((mark.w - 12) / 6.7))))}</text></g>`;
    }
    case "line":
      return `<polyline class="flow ${mark.flow}" points="${mark.points.map((p) => p.join(",")).join(" ")}"${mark.arrow ? ' marker-end="url(#arrow)"' : ""}/>`;
    case "arc": {
      const top = mark.y + 6, bottom = mark.y + BOX_H - 6, reach = mark.x + SIZES.arc;
      return `<path class="flow shortcut ${mark.shortcut}" d="M${mark.x},${top} C${reach},${top} ${reach},${bottom} ${mark.x},${bottom}" marker-end="url(#arrow)"><title>${mark.shortcut} shortcut</title></path>`;
    }
    default:
      return `<g class="end"><rect x="${mark.x - BOX_W / 2}" y="${mark.y - SIZES.merge}" width="${BOX_W}" height="${2 * SIZES.merge}" rx="9"/>` +
        `<text x="${mark.x}" y="${mark.y + 4}">${esc(mark.text)}</text></g>`;
  }
}

function mergeOf(item) {
  if (item.kind === "residual") return "add";
  if (item.kind === "scale") return "mul";
  return item.merge;
}

// ---- interaction ----

function toggle(id) {
  const item = items[id];
  if (!item || item.kind === "layer") return;
  if (open.has(id)) open.delete(id); else open.add(id);
  draw();
}

function reveal(id) {
  for (let up = parent[id]; up >= 0; up = parent[up]) open.add(up);
}

function search(query) {
  query = query.trim().toLowerCase();
  hits = new Set();
  if (query) {
    items.forEach((item) => { if (item.path && item.path.toLowerCase().includes(query)) { hits.add(item.id); reveal(item.id); } });
  }
  document.getElementById("hits").textContent = query ? `${hits.size} match${hits.size === 1 ? "" : "es"}` : "";
  draw();
  const first = document.querySelector("#canvas .hit");
  if (first && first.scrollIntoView) first.scrollIntoView({ block: "center" });
}

// One layer by its exact name (a row of the top-layers table): opened to and marked.
function locate(path) {
  document.getElementById("search").value = "";
  hits = new Set(items.filter((item) => item.path === path).map((item) => item.id));
  hits.forEach(reveal);
  document.getElementById("hits").textContent = "";
  draw();
  const first = document.querySelector("#canvas .hit");
  if (first && first.scrollIntoView) first.scrollIntoView({ block: "center" });
}

function summary() {
  const t = GRAPH.totals;
  const rows = GRAPH.top.map((r) =>
    `<tr data-path="${esc(r.name)}"><td>${esc(r.name)}</td><td>${esc(r.op)}</td><td>${human(r.macs)}</td><td>${r.percent.toFixed(1)}%</td></tr>`).join("");
  document.getElementById("summary").innerHTML =
    `<h2>${esc(GRAPH.model)}</h2><table class="totals">` +
    `<tr><th>input</th><td>${shapeText(GRAPH.input)}</td></tr><tr><th>output</th><td>${shapeText(GRAPH.output)}</td></tr>` +
    `<tr><th>params</th><td>${thousands(t.params)}</td></tr><tr><th>MACs</th><td>${thousands(t.macs)}</td></tr>` +
    `<tr><th>FLOPs</th><td>${thousands(t.flops)}</td></tr><tr><th>forward activations</th><td>${human(t.forward_activation_bytes)}B</td></tr>` +
    `<tr><th>training, SGD momentum</th><td>${human(t.train_sgd_momentum_bytes)}B</td></tr></table>` +
    `<h3>Top layers by MACs</h3><table class="top"><tr><th>layer</th><th>op</th><th>MACs</th><th>share</th></tr>${rows}</table>` +
    `<p class="note">Batch 1, MACs as <code>archc flops</code> counts them (core convention).</p>`;
}

document.getElementById("canvas").addEventListener("click", (event) => {
  const target = event.target.closest("g.node.closed, g.frame");
  if (target) toggle(Number(target.dataset.id));
});
document.getElementById("canvas").addEventListener("mouseover", (event) => {
  const target = event.target.closest("g[data-id]");
  if (!target) return;
  document.getElementById("details").innerHTML = `<pre>${esc(details(items[Number(target.dataset.id)]))}</pre>`;
});
document.getElementById("summary").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-path]");
  if (row) locate(row.dataset.path);
});
for (const button of document.querySelectorAll("#levels button")) {
  button.addEventListener("click", () => { setLevel(button.dataset.level); search(document.getElementById("search").value); });
}
document.getElementById("search").addEventListener("input", (event) => search(event.target.value));

summary();
setLevel(LEVEL);
