//! The structure the README's "Layout" promises, checked on the source itself: imports
//! between the top-level modules of `src/` only point down (no cycle; leaves import
//! only leaves; nothing imports the CLI; the compiler never imports a job), the library
//! prints nothing, and its public functions do not return errors as bare strings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules that import nothing above them.
const LEAVES: &[&str] = &["source", "diagnostics", "error", "format", "tensor", "report", "plots", "suggest"];
/// The compiler, below every job.
const COMPILER: &[&str] = &["syntax", "ops", "ir", "elaborate", "cost", "lower", "data", "backend"];

/// Every `.rs` file under `src/`, with its top-level module (`train` for
/// `src/train/job.rs`, `plots` for `src/plots.rs`).
fn sources() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new("src").to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix("src").expect("under src/").to_string_lossy().to_string();
                let top = relative.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_string();
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                out.push((relative, top, text));
            }
        }
    }
    out
}

/// The text without `//` comments (doc comments mention modules freely).
fn code(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The top-level modules a file names through `crate::` (`crate::train::job` and
/// `crate::{tensor::Shape, ir}` alike) or `$crate::`.
fn imported(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = code(text);
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group.split(',').map(|part| part.trim().split("::").next().unwrap_or_default()).collect()
            }
            None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default()],
        };
        out.extend(names.into_iter().filter(|n| modules.contains(*n)).map(str::to_string));
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let files = sources();
    let modules: BTreeSet<String> =
        files.iter().map(|(_, top, _)| top.clone()).filter(|t| t != "lib" && t != "main").collect();
    let mut edges: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (relative, top, text) in &files {
        if !modules.contains(top) {
            continue;
        }
        let entry = edges.entry(top.clone()).or_default();
        for target in imported(text, &modules) {
            if &target != top {
                entry.insert((target, relative.clone()));
            }
        }
    }
    edges
}

/// The modules reachable from `from` (itself excluded unless on a cycle).
fn reachable(graph: &BTreeMap<String, BTreeSet<(String, String)>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = vec![from.to_string()];
    while let Some(module) = stack.pop() {
        for (next, _) in graph.get(&module).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    let graph = graph();
    assert!(graph.len() > 15, "the scan found the modules: {:?}", graph.keys());
    let cycles: Vec<&String> = graph.keys().filter(|m| reachable(&graph, m).contains(*m)).collect();
    let edges: Vec<String> = cycles
        .iter()
        .flat_map(|m| {
            graph[*m].iter().filter(|(t, _)| cycles.contains(&t)).map(move |(t, f)| format!("{m} → {t} ({f})"))
        })
        .collect();
    assert!(cycles.is_empty(), "modules on an import cycle: {cycles:?}\n{}", edges.join("\n"));
}

#[test]
fn leaves_import_only_leaves_and_nothing_imports_the_cli() {
    let graph = graph();
    for (module, targets) in &graph {
        for (target, file) in targets {
            if LEAVES.contains(&module.as_str()) {
                assert!(LEAVES.contains(&target.as_str()), "the leaf `{module}` imports `{target}` in src/{file}");
            }
            assert_ne!(target, "cli", "`{module}` imports the CLI in src/{file}");
            if COMPILER.contains(&module.as_str()) {
                assert!(
                    LEAVES.contains(&target.as_str()) || COMPILER.contains(&target.as_str()),
                    "the compiler module `{module}` imports the job `{target}` in src/{file}"
                );
            }
        }
    }
}

#[test]
fn the_library_prints_nothing_and_returns_typed_errors() {
    for (relative, top, text) in sources() {
        if top == "cli" || top == "main" {
            continue;
        }
        let code = code(&text);
        for printer in ["println!(", "eprintln!(", "print!(", "eprint!("] {
            // `print!(` also matches inside `eprint!(`/`println!(`: a hit is a hit.
            assert!(!code.contains(printer), "src/{relative} prints ({printer}); report through events instead");
        }
        // A public function's signature, up to its body, with `String` as the error.
        for (at, _) in code.match_indices("pub fn ") {
            let signature = &code[at..code[at..].find('{').map_or(code.len(), |end| at + end)];
            let flat: String = signature.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                !(flat.contains("Result<") && flat.trim_end().ends_with(", String>")),
                "src/{relative}: `{flat}` returns its error as a string; use archc::error"
            );
        }
    }
}
