// Opens an `archc graph --format html` page in Debian's headless Chromium and uses it
// as a reader would: each level button, a click on a closed block and on its frame, a
// search. Prints what it saw as one JSON object; tests/graph.rs checks it.
//
//   node graph.mjs PAGE.html SCREENSHOT.png [BLOCK_TO_OPEN] [QUERY]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [page_path, screenshot, open_path = "", query = ""] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const seen = { console_errors: [], page_errors: [], requests: [], levels: {} };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (message) => { if (message.type() === "error" || message.type() === "warning") seen.console_errors.push(message.text()); });
  page.on("pageerror", (error) => seen.page_errors.push(String(error)));
  // The page must need nothing but itself.
  page.on("request", (request) => { if (!request.url().startsWith("file:") && !request.url().startsWith("data:")) seen.requests.push(request.url()); });
  await page.goto(pathToFileURL(page_path).href);
  const nodes = () => page.locator("#canvas g.node").count();
  seen.initial = await nodes();
  seen.boxes = {};
  for (const level of ["stage", "block", "layer"]) {
    await page.click(`#levels button[data-level="${level}"]`);
    seen.levels[level] = await nodes();
    // Where the viewer put each box, to compare with archc's own SVG layout.
    seen.boxes[level] = await page.$$eval("#canvas g.node:not(.merge) > rect", (rects) =>
      rects.map((r) => [r.parentNode.dataset.path, Number(r.getAttribute("x")), Number(r.getAttribute("y"))]));
  }
  if (open_path) {
    // At stage level, opening a stage shows its blocks, closed.
    const stage = open_path.split(".")[0];
    await page.click('#levels button[data-level="stage"]');
    await page.click(`#canvas g.node.closed[data-path="${stage}"]`);
    seen.stage_opened = await nodes();
  }
  await page.click('#levels button[data-level="block"]');
  if (open_path) {
    await page.click(`#canvas g.node.closed[data-path="${open_path}"]`);
    seen.after_open = await nodes();
    seen.frame_opened = await page.locator(`#canvas g.frame[data-path="${open_path}"]`).count();
    await page.hover(`#canvas g.node[data-path="${open_path}.conv2"]`);
    seen.details = await page.locator("#details").innerText();
    await page.click(`#canvas g.frame[data-path="${open_path}"] text`);
    seen.after_close = await nodes();
  }
  if (query) {
    await page.fill("#search", query);
    seen.search = { hits: await page.locator("#canvas .hit").count(), said: await page.locator("#hits").innerText() };
    await page.fill("#search", "");
  }
  seen.summary = await page.locator("#summary").innerText();
  // A row of the top-layers table finds that layer and no other.
  await page.click('#levels button[data-level="stage"]');
  await page.click("#summary tr[data-path]");
  seen.located = await page.locator("#canvas .hit").count();
  await page.click('#levels button[data-level="block"]');
  // The whole page in one viewport (a full-page capture would repeat the sticky header).
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: 1400, height: Math.min(height, 16000) });
  await page.screenshot({ path: screenshot });
  seen.body_errors = (await page.evaluate(() => document.body.dataset.errors)) || "";
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
