// Tokenizes every .arch file of the zoo, the standard library and the UI tests with
// the TextMate grammar (vscode-textmate + oniguruma, what VS Code itself runs) and
// checks what a reader sees: comments are comments, definitions are named, every
// built-in layer is highlighted as one, labels are labels, and no bracket region is
// left open at the end of a file (which would miscolour everything after it).
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const root = path.resolve(__dirname, "../../..");
const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
const onigLib = oniguruma.loadWASM(wasm).then(() => ({
  createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
  createOnigString: (s) => new oniguruma.OnigString(s),
}));
const grammarPath = path.join(__dirname, "../syntaxes/arch.tmLanguage.json");
const registry = new vsctm.Registry({
  onigLib,
  loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
});
const LAYERS = JSON.parse(fs.readFileSync(grammarPath, "utf8"))
  .repository.layer.match.replace(/^\\b\(|\)\\b$/g, "")
  .split("|");

function files() {
  const out = [];
  for (const dir of ["models", "std", "tests/ui"]) {
    for (const name of fs.readdirSync(path.join(root, dir)).sort()) {
      if (name.endsWith(".arch")) out.push(path.join(dir, name));
    }
  }
  return out;
}

// The code part of a line: what comes before a `#` that is not in a string.
function commentStart(line) {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') inString = !inString;
    else if (line[i] === "#" && !inString) return i;
  }
  return -1;
}

(async () => {
  const grammar = await registry.loadGrammar("source.arch");
  // The rule stack's depth after a line that opens nothing.
  const baseDepth = grammar.tokenizeLine("relu", vsctm.INITIAL).ruleStack.depth;
  let failures = 0;
  let checked = 0;
  const fail = (file, n, message) => {
    failures++;
    console.error(`${file}:${n + 1}: ${message}`);
  };
  for (const file of files()) {
    const lines = fs.readFileSync(path.join(root, file), "utf8").split("\n");
    let stack = vsctm.INITIAL;
    let depth = 0; // parentheses open in the file so far (code only)
    lines.forEach((line, n) => {
      const result = grammar.tokenizeLine(line, stack);
      stack = result.ruleStack;
      const scopeAt = (column) => {
        const token = result.tokens.find((t) => t.startIndex <= column && column < t.endIndex);
        return token ? token.scopes.join(" ") : "";
      };
      const hash = commentStart(line);
      if (hash >= 0 && !scopeAt(hash).includes("comment.line.number-sign.arch")) {
        fail(file, n, `comment not scoped as a comment: ${scopeAt(hash)}`);
      }
      const code = hash >= 0 ? line.slice(0, hash) : line;
      for (const m of code.matchAll(/\b(block|network)\s+([A-Za-z_]\w*)/g)) {
        const at = m.index + m[0].length - m[2].length;
        if (!scopeAt(at).includes("entity.name.type.arch")) fail(file, n, `definition ${m[2]} not named`);
      }
      for (const m of code.matchAll(/\b([a-z_]+)\b/g)) {
        if (LAYERS.includes(m[1]) && !/\.\s*$/.test(code.slice(0, m.index)) && !scopeAt(m.index).includes("support.function.builtin.arch")
            && !scopeAt(m.index).includes("variable.parameter.arch") && !scopeAt(m.index).includes("entity.name")) {
          fail(file, n, `layer ${m[1]} not highlighted: ${scopeAt(m.index)}`);
        }
      }
      const label = /^(\s*)([A-Za-z_0-9]\w*)\s*:/.exec(code);
      if (label && depth === 0 && !scopeAt(label[1].length).includes("entity.name.tag.label.arch")) {
        fail(file, n, `label ${label[2]} not scoped as a label: ${scopeAt(label[1].length)}`);
      }
      for (const ch of code.replace(/"[^"]*"/g, "")) {
        if (ch === "(") depth++;
        if (ch === ")") depth = Math.max(0, depth - 1);
      }
      checked++;
    });
    // Files with unbalanced brackets on purpose (syntax-error UI tests) may end open.
    if (depth === 0 && stack.depth > baseDepth) {
      fail(file, lines.length - 1, "a region is still open at the end of the file");
    }
  }
  console.log(`${files().length} files, ${checked} lines tokenized, ${failures} failures`);
  process.exit(failures ? 1 : 0);
})();
