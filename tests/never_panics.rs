//! The parser and checker never panic: random text, mutated zoo models, deep nesting,
//! huge numbers and enormous models all end in diagnostics (or a model), never a crash.
//! The same entry point is fuzzed by `fuzz/fuzz_targets/check.rs` (`cargo fuzz run check`).

use archc::elaborate::{Options, compile};
use archc::source::Sources;
use proptest::prelude::*;

fn check(text: &str) -> archc::elaborate::Compilation {
    let mut sources = Sources::new();
    let result = compile(&mut sources, "input.arch", text, &Options::default());
    // Rendering is part of what users run; it must not panic either.
    let _ = archc::diagnostics::render_plain(&sources, &result.diagnostics);
    for model in &result.models {
        let _ = archc::ir::trace(model);
        let _ = archc::cost::report(model, archc::cost::Convention::Full, 7, archc::cost::GroupBy::Block);
    }
    result
}

fn zoo_sources() -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir("models").unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ":",
    ",",
    "=",
    ".",
    "-",
    "*",
    "/",
    "%",
    "\n",
    " ",
    "0",
    "1",
    "2",
    "16",
    "-1",
    "99999999999999999999",
    "9223372036854775807",
    "1e308",
    "0.0",
    "conv",
    "linear",
    "residual",
    "scale",
    "parallel",
    "repeat",
    "stage",
    "block",
    "network",
    "input",
    "image",
    "tokens",
    "vector",
    "let",
    "insert",
    "at",
    "in",
    "in.channels",
    "point",
    "allow",
    "import",
    "\"x.arch\"",
    "basic",
    "bottleneck",
    "se",
    "cbam",
    "attention",
    "patchify",
    "kernel:",
    "stride:",
    "times:",
    "blocks:",
    "shortcut:",
    "#",
    "flatten",
    "relu",
    "for",
    "if",
    "else",
    "and",
    "or",
    "not",
    "assert",
    "[",
    "]",
    "==",
    "<",
    ">=",
    "range(",
    "len(",
    "layer{i}:",
    "{i + 1}",
    "\"M\"",
    "v",
];

/// A statement of a loop-and-table program, with holes for random numbers.
const LOOP_STATEMENTS: &[&str] = &[
    "for v in cfg { conv(v, kernel: 3, padding: 1) }",
    "for i, v in cfg { if v == \"M\" { maxpool(kernel: 2) } else { conv(v, kernel: 3, padding: 1) relu } }",
    "for i in range(#) { layer{i}: conv(cfg[i % len(cfg)], kernel: 1) }",
    "for i in range(#, #, #) { relu }",
    "if # > # and not # == # { relu } else if # in cfg { batchnorm } else {}",
    "let w = if # < # { cfg[#] } else { cfg[-#] }",
    "conv(w, kernel: 1)",
    "assert len(cfg) > #, \"too short\"",
    "layer{#}: relu",
    "for v in [#, \"M\", #] { for u in range(v) { relu } }",
    "let cfg = cfg + [#, #]",
    "repeat(times: #) { conv(cfg[#], kernel: 3, padding: 1) }",
];

/// A random edit: delete a range, duplicate a range, or insert a token.
fn mutate(source: &str, edits: &[(u8, usize, usize, usize)]) -> String {
    let mut text: Vec<char> = source.chars().collect();
    for &(kind, a, b, token) in edits {
        if text.is_empty() {
            break;
        }
        let start = a % text.len();
        let end = (start + b % 24).min(text.len());
        match kind % 3 {
            0 => {
                text.drain(start..end);
            }
            1 => {
                let piece: Vec<char> = text[start..end].to_vec();
                text.splice(start..start, piece);
            }
            _ => {
                let piece: Vec<char> = TOKENS[token % TOKENS.len()].chars().collect();
                text.splice(start..start, piece);
            }
        }
    }
    text.into_iter().collect()
}

/// A network of random loop, table and condition statements with random numbers.
fn loop_program(statements: &[(usize, Vec<i64>)]) -> String {
    let mut body = String::new();
    for (index, numbers) in statements {
        let template = LOOP_STATEMENTS[index % LOOP_STATEMENTS.len()];
        let mut numbers = numbers.iter().cycle();
        let mut pieces = template.split('#');
        let mut statement = pieces.next().unwrap_or_default().to_string();
        for piece in pieces {
            statement.push_str(&numbers.next().copied().unwrap_or(0).to_string());
            statement.push_str(piece);
        }
        body.push_str(&format!("    {statement}\n"));
    }
    format!(
        "network looped(cfg: list = [16, \"M\", 32]) {{\n    input image(3, 32, 32)\n{body}    flatten\n    linear(10)\n}}\n"
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn loops_and_conditions_never_panic(
        statements in proptest::collection::vec(
            (any::<usize>(), proptest::collection::vec(prop_oneof![-3i64..40, Just(i64::MAX), Just(i64::MIN), Just(0)], 1..4)),
            1..8,
        ),
    ) {
        let text = loop_program(&statements);
        let result = check(&text);
        // Every statement form parses; what fails is a diagnostic, never a panic.
        prop_assert!(!result.diagnostics.iter().any(|d| d.code == archc::diagnostics::Code::Syntax), "{text}");
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn random_tokens_never_panic(tokens in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = tokens.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" ");
        check(&text);
    }

    #[test]
    fn mutated_zoo_models_never_panic(
        model in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>()), 1..6),
    ) {
        let sources = zoo_sources();
        let source = &sources[model.index(sources.len())];
        check(&mutate(source, &edits));
    }
}

#[test]
fn deep_nesting_is_a_diagnostic() {
    let text = format!("network n {{ input vector(4)\n x: linear({}1{}) }}", "(".repeat(100_000), ")".repeat(100_000));
    let result = check(&text);
    assert!(result.diagnostics.iter().any(|d| d.code.id() == "E0025"));
    let blocks = format!("network n {{ input vector(4)\n {} }}", "{ ".repeat(5_000) + &"} ".repeat(5_000));
    assert!(check(&blocks).diagnostics.iter().any(|d| d.code.id() == "E0025"));
}

#[test]
fn deeply_nested_blocks_are_a_diagnostic() {
    let mut text = String::from("block b0(n: int) { linear(n) }\n");
    for i in 1..200 {
        text.push_str(&format!("block b{i}(n: int) {{ x: b{}(n) }}\n", i - 1));
    }
    text.push_str("network n { input vector(4)\n top: b199(4) }");
    assert!(check(&text).diagnostics.iter().any(|d| d.code.id() == "E0025"));
}

#[test]
fn enormous_models_are_counted_not_built() {
    // 10^15 parameters: a linear layer 10^7 → 10^8.
    let text = "network huge { input vector(10000000)\n fc: linear(100000000, bias: false) }";
    let result = check(text);
    assert!(result.diagnostics.is_empty());
    assert_eq!(result.models[0].params(), 1_000_000_000_000_000);
    let overflow = "network o { input image(3, 4294967296, 4294967296)\n c: conv(4294967296, kernel: 1) }";
    assert!(check(overflow).diagnostics.iter().any(|d| d.code.id() == "E0016"));
    let copies = "network r { input vector(4)\n layers: repeat(linear(4), times: 150000) }";
    let result = check(copies);
    assert!(result.diagnostics.is_empty(), "150k layers still elaborate");
    let runaway = "block two { a: repeat(linear(4), times: 1000)\n b: repeat(linear(4), times: 1000) }\n\
                   network r { input vector(4)\n layers: repeat(two, times: 1000) }";
    assert!(check(runaway).diagnostics.iter().any(|d| d.code.id() == "E0025"));
}

/// What a user sees if archc itself fails (a bug, or a backend's panic): one line and
/// exit code 101; `RUST_BACKTRACE` keeps Rust's own report. The panic is asked for
/// through an environment variable that exists for this test.
#[test]
fn a_failure_inside_archc_is_one_line_and_exit_101() {
    let run = |backtrace: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_archc"));
        command.args(["check", "models/lenet5.arch"]).env("ARCHC_PANIC_FOR_TEST", "1").env_remove("RUST_BACKTRACE");
        if backtrace {
            command.env("RUST_BACKTRACE", "1");
        }
        command.output().unwrap()
    };
    let out = run(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: archc stopped: a panic asked for by ARCHC_PANIC_FOR_TEST (at src/main.rs:"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = run(true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{err}");
    assert!(err.contains("panicked at src/main.rs") && err.contains("stack backtrace"), "{err}");
}
