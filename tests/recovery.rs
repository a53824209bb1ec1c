//! Error recovery: one mistake inserted anywhere in any zoo model is exactly one error,
//! at the inserted line (no cascade of follow-on errors, nothing hidden), and the
//! warnings the model had are still the only warnings.

use archc::diagnostics::Diagnostic;
use archc::elaborate::{Options, compile};
use archc::ir::Shape;
use archc::source::Sources;
use proptest::prelude::*;

fn zoo() -> Vec<(String, String)> {
    let mut paths: Vec<_> = std::fs::read_dir("models").unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "arch"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

struct Checked {
    errors: Vec<(String, usize)>,
    warnings: Vec<String>,
    rendered: String,
}

fn check(name: &str, text: &str) -> Checked {
    let mut sources = Sources::new();
    let result = compile(&mut sources, name, text, &Options::default());
    let line = |d: &Diagnostic| sources.line_column(d.primary.span.file, d.primary.span.start).0;
    Checked {
        errors: result
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| (d.code.id().to_string(), line(d)))
            .collect(),
        warnings: result.diagnostics.iter().filter(|d| !d.is_error()).map(|d| d.code.id().to_string()).collect(),
        rendered: archc::diagnostics::render_plain(&sources, &result.diagnostics),
    }
}

/// Lines after which a statement may be inserted: inside a body, outside any argument
/// list, not in the middle of a definition's header or of a statement that goes on to
/// the next line (`assert c,`), not inside the branches of an `if` value
/// (`let cfg = if ... { [..] }`).
fn statement_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut parens = 0i32;
    // For each open brace: whether it holds a value (an `if` expression's branch).
    let mut open: Vec<bool> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or_default();
        let value_braces = code.contains("= if ") || open.last() == Some(&true);
        for ch in code.chars() {
            match ch {
                '{' => open.push(value_braces),
                '}' => {
                    open.pop();
                }
                '(' | '[' => parens += 1,
                ')' | ']' => parens -= 1,
                _ => {}
            }
        }
        let continues = code.trim_end().ends_with(',');
        if !open.is_empty() && !open.contains(&true) && parens == 0 && !code.trim().is_empty() && !continues {
            lines.push(n);
        }
    }
    lines
}

fn insert_after(text: &str, line: usize, statement: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(line + 1, statement);
    lines.join("\n") + "\n"
}

/// A mistake that fits any shape: an op name misspelt (a shape-preserving one, so
/// checking goes on), or an argument a shape-preserving op does not take.
fn anywhere(kind: usize) -> (&'static str, &'static str) {
    match kind % 3 {
        0 => ("    reluu", "E0002"),
        1 => ("    dropout(0.0, rate: 1)", "E0003"),
        _ => ("    identity(true)", "E0003"),
    }
}

/// A mistake that keeps the shape it is given: a layer declared for one channel or
/// feature more than it gets (checking goes on with what it would give).
fn keeping(shape: Shape) -> String {
    match shape {
        Shape::Image { c, .. } => format!("    inserted: conv({c}, kernel: 1, bias: false, in_channels: {})", c + 1),
        Shape::Tokens { d, .. } | Shape::Vector { d } => format!("    inserted: linear({d}, in_features: {})", d + 1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_mistake_anywhere_in_a_zoo_model_is_exactly_one_error(model in 0usize..64, at in 0usize..1000, kind in 0usize..3) {
        let zoo = zoo();
        let (name, text) = &zoo[model % zoo.len()];
        let before = check(name, text);
        prop_assert!(before.errors.is_empty(), "{name} does not check:\n{}", before.rendered);
        let lines = statement_lines(text);
        let line = lines[at % lines.len()];
        let (statement, code) = anywhere(kind);
        let broken = insert_after(text, line, statement);
        let after = check(name, &broken);
        prop_assert_eq!(after.errors, vec![(code.to_string(), line + 2)], "{} after line {}:\n{}", name, line + 1, after.rendered);
        prop_assert_eq!(after.warnings, before.warnings);
    }

    #[test]
    fn a_channel_mistake_after_any_network_layer_is_exactly_one_error(model in 0usize..64, at in 0usize..1000) {
        let zoo = zoo();
        let (name, text) = &zoo[model % zoo.len()];
        let statements = network_statements(name, text);
        let (line, shape) = statements[at % statements.len()];
        let broken = insert_after(text, line, &keeping(shape));
        let after = check(name, &broken);
        prop_assert_eq!(after.errors, vec![("E0010".to_string(), line + 2)], "{} after line {}:\n{}", name, line + 1, after.rendered);
    }

    /// Two independent mistakes are two errors: the first does not hide the second.
    #[test]
    fn two_mistakes_are_two_errors(model in 0usize..64, first in 0usize..1000, second in 0usize..1000) {
        let zoo = zoo();
        let (name, text) = &zoo[model % zoo.len()];
        let statements = network_statements(name, text);
        let (a, b) = (first % statements.len(), second % statements.len());
        prop_assume!(statements[a].0 != statements[b].0);
        let ((early, early_shape), (late, late_shape)) =
            if statements[a].0 < statements[b].0 { (statements[a], statements[b]) } else { (statements[b], statements[a]) };
        // The later one first, so that the earlier line number stays put.
        let broken = insert_after(text, late, &keeping(late_shape).replace("inserted", "inserted_late"));
        let broken = insert_after(&broken, early, &keeping(early_shape));
        let after = check(name, &broken);
        let expected = vec![("E0010".to_string(), early + 2), ("E0010".to_string(), late + 3)];
        prop_assert_eq!(after.errors, expected, "{}:\n{}", name, after.rendered);
    }
}

/// Whether a line (0-based) is inside a `for` body, where a labelled statement would
/// give its label once per pass (a second, real mistake).
fn inside_loop(text: &str, line: usize) -> bool {
    let mut open: Vec<bool> = Vec::new();
    for code in text.lines().take(line + 1).map(|l| l.split('#').next().unwrap_or_default()) {
        for ch in code.chars() {
            match ch {
                '{' => open.push(code.trim_start().starts_with("for ")),
                '}' => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    open.contains(&true)
}

/// The network's own statements (not those of blocks it uses) outside loops: the line
/// each ends on (0-based) and the shape it gives.
fn network_statements(name: &str, text: &str) -> Vec<(usize, Shape)> {
    let mut sources = Sources::new();
    let result = compile(&mut sources, name, text, &Options::default());
    result.models[0]
        .nodes
        .iter()
        .filter(|n| sources.name(n.span.file) == name)
        .map(|n| {
            let end = text[..n.span.end].trim_end().len();
            (sources.line_column(n.span.file, end).0 - 1, n.output)
        })
        .filter(|(line, _)| !inside_loop(text, *line))
        .collect()
}
