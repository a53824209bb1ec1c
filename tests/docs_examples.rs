//! Every example in the README and docs/ that shows a static command (`check`, `flops`,
//! `ir`, `explain`, `export`) and its output is that command's output today: each block that
//! starts with `$ archc ...` is run and compared line by line. Examples that train or
//! measure (their numbers vary) elide lines with `...` and are not compared.

use std::process::Command;

const STATIC: &[&str] = &["check", "flops", "ir", "explain", "export", "diff", "graph"];

/// (file, line, command words, expected output) of each static example.
fn examples() -> Vec<(String, usize, Vec<String>, String)> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir("docs")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.display().to_string())
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let block_starts = lines[i] == "```" && lines.get(i + 1).is_some_and(|l| l.starts_with("$ archc "));
            if !block_starts {
                i += 1;
                continue;
            }
            let command = lines[i + 1];
            let words: Vec<String> = command["$ archc ".len()..].split_whitespace().map(str::to_string).collect();
            let end = (i + 2..lines.len()).find(|&j| lines[j] == "```").expect("a closed block");
            let expected = lines[i + 2..end].join("\n");
            // An example that elides lines (`...` on a line, or ending one) is a sketch.
            let elided = expected.lines().any(|l| l.trim_end().ends_with("..."));
            let shows_everything = !command.ends_with('\\') && !command.contains("...") && !elided;
            if STATIC.contains(&words[0].as_str()) && shows_everything {
                out.push((file.clone(), i + 2, words, expected));
            }
            i = end + 1;
        }
    }
    out
}

#[test]
fn every_static_example_is_the_commands_output() {
    let examples = examples();
    let found: Vec<String> =
        examples.iter().map(|(file, line, words, _)| format!("{file}:{line} {}", words.join(" "))).collect();
    assert!(examples.len() >= 3, "found only {found:?}");
    let mut wrong = Vec::new();
    for (file, line, words, expected) in &examples {
        let out = Command::new(env!("CARGO_BIN_EXE_archc")).args(words).env("NO_COLOR", "1").output().unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let printed: Vec<&str> = printed.trim_end().lines().map(str::trim_end).collect();
        let expected: Vec<&str> = expected.lines().map(str::trim_end).collect();
        if printed != expected {
            wrong.push(format!(
                "{file}:{line}: `archc {}` prints:\n{}\n--- the example shows:\n{}",
                words.join(" "),
                printed.join("\n"),
                expected.join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
