//! `archc fmt`: one layout, idempotent, never changing meaning, never losing a comment.

mod support;

use archc::elaborate::{Options, compile};
use archc::source::Sources;
use proptest::prelude::*;
use support::Scratch;
use support::runs::archc;

fn format(text: &str) -> Result<String, String> {
    let mut sources = Sources::new();
    let file = sources.add("test.arch", text.to_string());
    archc::fmt::format(file, text).map_err(|d| archc::diagnostics::render_plain(&sources, &d))
}

/// Every `.arch` file under the folders, with its text.
fn files(dirs: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in dirs {
        let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "arch")) {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// What a file means: every network's IR dump and its costs, and every diagnostic's
/// code and message (for files with mistakes). Compiled under the same name, so that
/// imports resolve alike.
fn meaning(name: &str, text: &str) -> String {
    let mut sources = Sources::new();
    let result = compile(&mut sources, name, text, &Options::default());
    let mut out = String::new();
    for model in &result.models {
        out.push_str(&archc::ir::dump(model));
        let report = archc::cost::report(model, archc::cost::Convention::Core, 1, archc::cost::GroupBy::Layer);
        out.push_str(&format!("params {} macs {}\n", report.params, report.macs));
    }
    for d in &result.diagnostics {
        out.push_str(&format!("{} {}\n", d.code.id(), d.message));
    }
    out
}

/// The comments of a text, in order, as written.
fn comments(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.find('#').map(|i| l[i..].trim_end().to_string())).collect()
}

#[test]
fn every_file_that_parses_formats_idempotently_and_keeps_its_meaning_and_comments() {
    let mut formatted_files = 0;
    for (name, text) in files(&["models", "std", "tests/ui", "examples"]) {
        let Ok(once) = format(&text) else { continue };
        let twice = format(&once).unwrap_or_else(|e| panic!("{name}: formatted text does not parse:\n{e}\n{once}"));
        assert_eq!(once, twice, "{name}: formatting is not idempotent");
        assert_eq!(meaning(&name, &text), meaning(&name, &once), "{name}: formatting changed the meaning:\n{once}");
        // No string in these files holds a `#`, so every `#` starts a comment.
        assert_eq!(comments(&text), comments(&once), "{name}: a comment was lost or changed");
        for line in once.lines() {
            assert!(line.chars().count() <= 100 || line.trim_start().starts_with('#'), "{name}: long line {line}");
            assert_eq!(line, line.trim_end(), "{name}: trailing whitespace");
        }
        formatted_files += 1;
    }
    assert!(formatted_files >= 60, "only {formatted_files} files formatted");
}

#[test]
fn the_zoo_and_the_standard_library_are_formatted() {
    for (name, text) in files(&["models", "std"]) {
        assert_eq!(format(&text).unwrap(), text, "{name} is not formatted: run `archc fmt models std`");
    }
}

#[test]
fn a_file_with_syntax_errors_is_refused() {
    let error = format("network net {\n    conv(64, kernel: 3\n}\n").unwrap_err();
    assert!(error.contains("E0001"), "{error}");
}

/// Messy inputs and what they become.
#[test]
fn messy_inputs_snapshots() {
    let cases = [
        (
            "spacing_and_alignment",
            "network   net( classes:int=10 ,width : int = 2*8){\n  input image(3,32,32)\n\n\n\n conv1:conv( width*4,kernel:3,padding:1,bias:false) # stem\n bn1:batchnorm\n relu\n  layer1:stage(basic(64),blocks:2)\n\n  fc:linear(classes)\n}\n",
        ),
        (
            "comments_everywhere",
            "# a file comment\n\n# about the block\nblock b(c: int) {  # after the brace\n    # before a layer\n    conv(c, kernel: 1)  # trailing\n    # before the end\n}\n# between definitions\nnetwork n {\n    input image(3, 8, 8)\n    b(\n        # the width\n        4,  # four\n    )\n}\n# at the end\n",
        ),
        (
            "long_arguments_wrap",
            "network n {\n    input image(3, 224, 224)\n    projection_with_a_long_name: conv(make_divisible(in.channels * 1.5 / 16, 8, 0.9), kernel: 3, stride: 2, padding: 1, dilation: 1, groups: 1, bias: false)\n    relu\n}\n",
        ),
        (
            "loops_tables_and_computed_labels",
            "network n(cfg: list = [ 8,\"M\" ,16 ], deep: bool = false) {\n    input image(3, 8, 8)\n  assert len( cfg )>0 and not deep,\"x\"\n    let w = if deep{ cfg[ 0 ] } else if len(cfg) in [1,2] { 4 } else { cfg[-1] }\n  for i,v in cfg { if v==\"M\" { maxpool(kernel: 2) } else { s{ i }{i}{i}{i}{i}: conv(v, kernel: 3, padding: 1)\n relu } }\n  conv1: conv(w, kernel: 1)\n  x{ 1 + 1 }: relu\n}\n",
        ),
        (
            "bodies_and_one_line_sequences",
            "block cbam_like() {\n    scale { parallel(merge: sum) { { mean(over: spatial) relu } { amax(over: spatial) relu } } sigmoid }\n}\nnetwork n {\n    input image(8, 8, 8)\n    let shared = { conv(8, kernel: 1) relu }\n    residual(shortcut: identity) { shared\n shared }\n    cbam_like\n    insert   se( ) at basic . attention as se in layer3 ,layer4\n    allow( uneven_stride,tiny_input_stem )\n}\n",
        ),
    ];
    for (name, input) in cases {
        let output = format(input).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert_eq!(format(&output).unwrap(), output, "{name}: not idempotent");
        assert_eq!(meaning("n.arch", input), meaning("n.arch", &output), "{name}: meaning changed");
        insta::with_settings!({ snapshot_path => "../snapshots/fmt", prepend_module_to_snapshot => false, description => input }, {
            insta::assert_snapshot!(name, output);
        });
    }
}

/// Lines of a zoo file with their code part re-spaced at random (indentation, spaces
/// after `(`, `,` and `:`, before `)`), which must format to the same text; and a
/// trailing comment added to random lines, each of which must survive.
fn perturbed(text: &str, spaces: &[u8], marks: &[bool]) -> (String, usize) {
    let mut out = String::new();
    let mut added = 0;
    for (i, line) in text.lines().enumerate() {
        let (code, comment) = match line.find('#') {
            Some(at) => (&line[..at], &line[at..]),
            None => (line, ""),
        };
        let pick = |k: usize| " ".repeat(spaces[(i * 7 + k) % spaces.len()] as usize);
        let mut respaced = pick(0);
        // Blanks inside a string literal are its text, not spacing.
        let mut in_string = false;
        for (k, ch) in code.trim_start().chars().enumerate() {
            in_string ^= ch == '"';
            if ch == ')' && !in_string {
                respaced.push_str(&pick(k + 1));
            }
            respaced.push(ch);
            if matches!(ch, '(' | ',' | ':') && !in_string {
                respaced.push_str(&pick(k + 2));
            }
        }
        out.push_str(&respaced);
        out.push_str(comment);
        // A trailing comment only where the line is code, not inside a wrapped comment.
        if comment.is_empty() && !code.trim().is_empty() && marks[i % marks.len()] {
            out.push_str(&format!("  # mark {i}"));
            added += 1;
        }
        out.push('\n');
    }
    (out, added)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn respaced_and_commented_zoo_files_format_alike(
        index in 0usize..64,
        spaces in proptest::collection::vec(0u8..4, 1..16),
        marks in proptest::collection::vec(any::<bool>(), 1..16),
    ) {
        let zoo = files(&["models", "std"]);
        let (name, text) = &zoo[index % zoo.len()];
        let (respaced, _) = perturbed(text, &spaces, &[false]);
        prop_assert_eq!(format(&respaced).unwrap(), text.clone(), "{} respaced", name);
        let (commented, added) = perturbed(text, &spaces, &marks);
        let output = format(&commented).unwrap();
        prop_assert_eq!(format(&output).unwrap(), output.clone());
        prop_assert_eq!(meaning(name, text), meaning(name, &output));
        prop_assert_eq!(output.matches("# mark ").count(), added);
        prop_assert_eq!(comments(&commented), comments(&output));
    }
}

#[test]
fn check_lists_unformatted_files_and_fails_and_fmt_rewrites_them() {
    let dir = Scratch::new("fmt", "check");
    let messy = dir.join("messy.arch");
    let tidy = dir.join("tidy.arch");
    std::fs::write(&messy, "network n{\ninput image(3,8,8)\nconv(8,kernel:1)\n}\n").unwrap();
    std::fs::write(&tidy, "network n {\n    input image(3, 8, 8)\n    conv(8, kernel: 1)\n}\n").unwrap();
    let out = archc(&["fmt", "--check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\n", messy.display()));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), "network n{\ninput image(3,8,8)\nconv(8,kernel:1)\n}\n");

    let out = archc(&["fmt", messy.to_str().unwrap(), tidy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("formatted {}\n", messy.display()));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), std::fs::read_to_string(&tidy).unwrap());
    assert_eq!(archc(&["fmt", "--check", dir.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn a_file_with_a_syntax_error_is_left_untouched() {
    let dir = Scratch::new("fmt", "syntax");
    let broken = dir.join("broken.arch");
    let text = "network n {\n  conv(8, kernel: 1\n}\n";
    std::fs::write(&broken, text).unwrap();
    let out = archc(&["fmt", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("E0001") && stderr.contains("is not formatted"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), text);
    assert!(!dir.join("broken.arch.tmp").exists());
}

#[test]
fn a_dash_formats_standard_input_to_standard_output() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["fmt", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"network n{input image(3,8,8) relu}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "network n {\n    input image(3, 8, 8)\n    relu\n}\n");
}
